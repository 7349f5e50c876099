"""zips.member_head / open_member / open_listed read members exactly as zipfile does.

The walk reads every member's head (to find nested archives) and each
worker reads members from their locator's fields without listing the zip:
both must give zipfile's bytes, and fail where zipfile fails, with its error.
"""

from __future__ import annotations

import hashlib
import io
import os
import random
import struct
import zipfile
import zlib
from pathlib import Path

import pytest
from hypothesis import HealthCheck
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st

from matcher.evidence import archive as archive_mod
from matcher.evidence import zips
from matcher.evidence.archive import ArchiveLimits
from matcher.evidence.archive import ArchiveWalker
from matcher.evidence.archive import read_chunks
from matcher.models import FileTask

HEAD = archive_mod.HEAD
METHODS = [zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA]


def _content(seed: int, size: int) -> bytes:
    """Benign member content: random bytes, or text that compresses."""
    rng = random.Random(seed)
    if seed % 2:
        return rng.randbytes(size)
    words = [b"alpha", b"beta", b"gamma", b"delta\n"]
    out = b" ".join(rng.choice(words) for _ in range(size // 4 + 1))
    return out[:size]


def _zip(
    members: list[tuple[str, bytes, int]], streamed: bool = False, zip64: bool = False
) -> bytes:
    """A zip of (name, content, method); `streamed` writes data descriptors (unseekable output)."""
    raw = io.BytesIO()
    target: io.RawIOBase | io.BytesIO = _Unseekable(raw) if streamed else raw
    with zipfile.ZipFile(target, "w") as archive:  # type: ignore[arg-type]
        for name, content, method in members:
            info = zipfile.ZipInfo(name, date_time=(2020, 1, 2, 3, 4, 6))
            info.compress_type = method
            with archive.open(info, "w", force_zip64=zip64) as out:
                out.write(content)
    return raw.getvalue()


class _Unseekable(io.RawIOBase):
    def __init__(self, inner: io.BytesIO):
        self.inner = inner

    def writable(self) -> bool:
        return True

    def write(self, data: bytes) -> int:  # type: ignore[override]
        return self.inner.write(data)

    def flush(self) -> None:
        pass


def _zipfile_read(archive: zipfile.ZipFile, info: zipfile.ZipInfo, n: int = -1) -> bytes | str:
    """What zipfile's open gives: the bytes, or the error as 'Type: message'."""
    try:
        with archive.open(info) as member:
            return member.read(n)
    except (zipfile.BadZipFile, EOFError, zlib.error, NotImplementedError) as exc:
        return f"{type(exc).__name__}: {exc}"


def _ours(stream_member: io.RawIOBase, chunk: int = 1000) -> bytes | str:
    """Read a member as read_chunks does (readinto a buffer); bytes or the error."""
    buffer = memoryview(bytearray(chunk))
    out = bytearray()
    try:
        with stream_member:
            while n := stream_member.readinto(buffer):
                out += buffer[:n]
    except (zipfile.BadZipFile, EOFError, zlib.error, NotImplementedError) as exc:
        return f"{type(exc).__name__}: {exc}"
    return bytes(out)


def _check_same(data: bytes) -> None:
    """Every member of the zip `data`: head, full read and unlisted read equal zipfile's."""
    archive = zipfile.ZipFile(io.BytesIO(data))
    for info in archive.infolist():
        expected = _zipfile_read(archive, info)
        head = zips.member_head(archive.fp, info, HEAD)  # type: ignore[arg-type]
        if head is not None:
            assert isinstance(expected, bytes) and head == expected[:HEAD]
        elif info.compress_type in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED) and info.file_size:
            # Only damage (seen by zipfile too) sends a stored or deflated head to zipfile.
            assert isinstance(_zipfile_read(archive, info, HEAD), str) or not isinstance(
                expected, bytes
            )
        assert _ours(zips.open_member(archive, info)) == expected  # type: ignore[arg-type]
        unlisted = zips.open_listed(io.BytesIO(data), zips.listed_fields(info))
        if info.compress_type in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            assert unlisted is not None
        if unlisted is not None:
            assert _ours(unlisted) == expected


SIZES = [0, 1, 100, HEAD - 1, HEAD, HEAD + 1, 65535, 65536, 65537, 200_000]


@pytest.mark.parametrize("streamed", [False, True], ids=["sized", "data-descriptor"])
@pytest.mark.parametrize("zip64", [False, True], ids=["zip", "zip64"])
def test_every_method_and_size_reads_as_zipfile_reads_it(streamed: bool, zip64: bool) -> None:
    members = [
        (f"m{method}-{size}-{seed}.bin", _content(seed, size), method)
        for method in METHODS
        for size in SIZES
        for seed in (1, 2)
    ]
    _check_same(_zip(members, streamed=streamed, zip64=zip64))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.tuples(
            st.binary(max_size=9000),
            st.sampled_from([zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED]),
        ),
        min_size=1,
        max_size=6,
    ),
    st.booleans(),
    st.integers(min_value=1, max_value=70_000),
)
def test_reads_equal_zipfiles_for_any_content_and_buffer(
    members: list[tuple[bytes, int]], streamed: bool, chunk: int
) -> None:
    data = _zip([(f"f{i}", c, m) for i, (c, m) in enumerate(members)], streamed=streamed)
    archive = zipfile.ZipFile(io.BytesIO(data))
    for info in archive.infolist():
        expected = _zipfile_read(archive, info)
        assert _ours(zips.open_member(archive, info), chunk) == expected  # type: ignore[arg-type]
        unlisted = zips.open_listed(io.BytesIO(data), zips.listed_fields(info))
        assert unlisted is not None and _ours(unlisted, chunk) == expected


def _data_offset(data: bytes, info: zipfile.ZipInfo) -> int:
    name_length, extra_length = struct.unpack_from("<2H", data, info.header_offset + 26)
    return info.header_offset + 30 + name_length + extra_length


@pytest.mark.parametrize("method", [zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED])
@pytest.mark.parametrize("size", [10, HEAD, 100_000])
def test_damaged_data_fails_with_zipfiles_own_error(method: int, size: int) -> None:
    data = bytearray(_zip([("a.bin", _content(3, size), method)]))
    info = zipfile.ZipFile(io.BytesIO(bytes(data))).infolist()[0]
    at = _data_offset(bytes(data), info) + info.compress_size // 2
    data[at] ^= 0x55
    damaged = bytes(data)
    archive = zipfile.ZipFile(io.BytesIO(damaged))
    expected = _zipfile_read(archive, info)
    assert isinstance(expected, str)  # a bad CRC, or deflate data zlib refuses
    assert _ours(zips.open_member(archive, info)) == expected  # type: ignore[arg-type]
    unlisted = zips.open_listed(io.BytesIO(damaged), zips.listed_fields(info))
    assert unlisted is not None and _ours(unlisted) == expected
    if info.file_size <= HEAD:
        # A head holding the whole member is checked as zipfile checks it.
        assert zips.member_head(archive.fp, info, HEAD) is None  # type: ignore[arg-type]


@pytest.mark.parametrize("method", [zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED])
def test_a_zip_cut_short_fails_as_zipfile_fails(method: int) -> None:
    whole = _zip([("a.bin", _content(5, 300_000), method)])
    info = zipfile.ZipFile(io.BytesIO(whole)).infolist()[0]
    cut = whole[: _data_offset(whole, info) + info.compress_size // 3]
    stream = io.BytesIO(cut)
    unlisted = zips.open_listed(stream, zips.listed_fields(info))
    assert unlisted is not None
    assert _ours(unlisted) == "EOFError: "  # zipfile's error for a zip cut short


def test_a_local_header_that_disagrees_is_left_to_zipfile() -> None:
    data = bytearray(_zip([("name.bin", b"x" * 5000, zipfile.ZIP_DEFLATED)]))
    info = zipfile.ZipFile(io.BytesIO(bytes(data))).infolist()[0]
    data[info.header_offset + 30] = ord("N")  # the local header's name: "Name.bin"
    archive = zipfile.ZipFile(io.BytesIO(bytes(data)))
    assert zips.open_listed(io.BytesIO(bytes(data)), zips.listed_fields(info)) is None
    assert zips.member_head(archive.fp, info, HEAD) is None  # type: ignore[arg-type]
    with pytest.raises(zipfile.BadZipFile, match="differ"):
        zips.open_member(archive, info)
    data[info.header_offset : info.header_offset + 4] = b"PK\x09\x09"
    archive = zipfile.ZipFile(io.BytesIO(bytes(data)))
    assert zips.open_listed(io.BytesIO(bytes(data)), zips.listed_fields(info)) is None
    with pytest.raises(zipfile.BadZipFile, match="Bad magic number"):
        zips.open_member(archive, info)


def _member_tasks(path: Path) -> list[FileTask]:
    st = os.stat(path)
    with open(path, "rb") as f:
        head = f.read(HEAD)
    base = archive_mod.file_base(os.fsencode(path), st)
    walked = ArchiveWalker(ArchiveLimits()).walk(os.fsencode(path), base, head, st.st_size)
    return [t for t in walked if isinstance(t, FileTask)]


def test_a_worker_reads_stored_and_deflated_members_without_listing_the_zip(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    members = [(f"d/{i}.txt", _content(i, 50 + i * 37), METHODS[i % 2]) for i in range(40)]
    members.append(("odd.bin", _content(7, 3000), zipfile.ZIP_BZIP2))
    path = tmp_path / "ev.zip"
    path.write_bytes(_zip(members))
    tasks = _member_tasks(path)
    assert len(tasks) == len(members)
    listed: list[object] = []
    real = zips.open_zip

    def counting(stream: object) -> zipfile.ZipFile:
        listed.append(stream)
        return real(stream)  # type: ignore[arg-type]

    monkeypatch.setattr(zips, "open_zip", counting)
    archive_mod.close_cached()
    buffer = memoryview(bytearray(1 << 16))
    try:
        for task, (name, content, method) in zip(tasks, members, strict=True):
            got = b"".join(bytes(c) for c in read_chunks(task, buffer))
            assert hashlib.sha256(got).digest() == hashlib.sha256(content).digest(), name
            # Listed only for the member of another method (bzip2), once.
            assert len(listed) == (1 if method == zipfile.ZIP_BZIP2 else 0), name
    finally:
        archive_mod.close_cached()


def test_a_member_whose_local_name_is_not_utf8_is_read_through_the_listing(tmp_path: Path) -> None:
    """A name flagged UTF-8 that is not UTF-8: read through the listing (its patched view)."""
    data = bytearray(_zip([("caf\u00e9.txt", b"content" * 100, zipfile.ZIP_DEFLATED)]))
    raw_name = "caf\u00e9.txt".encode()
    bad = b"caf\xe9.txt\x00"[: len(raw_name)]
    for at in [i for i in range(len(data)) if data.startswith(raw_name, i)]:
        data[at : at + len(raw_name)] = bad
    path = tmp_path / "odd.zip"
    path.write_bytes(bytes(data))
    tasks = _member_tasks(path)
    assert len(tasks) == 1
    archive_mod.close_cached()
    try:
        got = b"".join(bytes(c) for c in read_chunks(tasks[0], memoryview(bytearray(4096))))
    finally:
        archive_mod.close_cached()
    assert got == b"content" * 100
