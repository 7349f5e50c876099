"""zips.member_head / open_member / open_listed read members exactly as zipfile does.

The walk reads every member's head (to find nested archives) and each
worker reads members from their locator's fields without listing the zip:
both must give zipfile's bytes, and fail where zipfile fails, with its error.
"""

from __future__ import annotations

import errno
import functools
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
    head = _result(lambda: zips.member_head(archive.fp, info, HEAD))  # type: ignore[arg-type]
    assert head == _zipfile_read(archive, info, HEAD)


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


def test_a_worker_reads_members_without_listing_the_zip(
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
        for task, (name, content, _method) in zip(tasks, members, strict=True):
            got = b"".join(bytes(c) for c in read_chunks(task, buffer))
            assert hashlib.sha256(got).digest() == hashlib.sha256(content).digest(), name
            assert not listed, name  # bzip2 too: zipfile's reader, from the listing's fields
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


def _crafted(
    name: bytes,
    packed: bytes,
    size: int,
    crc: int,
    method: int = 8,
    flags: int = 0,
    central_name: bytes | None = None,
) -> bytes:
    """A one-member zip whose local and central headers say exactly what is given."""
    local = struct.pack("<4s5H3L2H", b"PK\x03\x04", 20, flags, method, 0, 0x21, crc, len(packed),
                        size, len(name), 0) + name  # fmt: skip
    listed = name if central_name is None else central_name
    central = struct.pack("<4s6H3L5H2L", b"PK\x01\x02", 20, 20, flags, method, 0, 0x21, crc,
                          len(packed), size, len(listed), 0, 0, 0, 0, 0, 0) + listed  # fmt: skip
    start = len(local) + len(packed)
    end = struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, 1, 1, len(central), start, 0)
    return local + packed + central + end


def _result(read: object) -> bytes | str:
    try:
        return read()  # type: ignore[operator,no-any-return]
    except (zipfile.BadZipFile, EOFError, zlib.error) as exc:
        return f"{type(exc).__name__}: {exc}"


def test_damage_past_the_declared_content_fails_as_zipfile_fails() -> None:
    """Found by a validator: the member's own reader asked the inflater only for the bytes still
    owed, so bad deflate data after them (or in a member declared empty) gave a clean digest
    where zipfile, unzip and 7-Zip see a data error."""
    content = b"hello world " * 300
    deflate = zlib.compressobj(9, zlib.DEFLATED, -15)
    body = deflate.compress(content) + deflate.flush(zlib.Z_SYNC_FLUSH)
    cases = [
        _crafted(b"m.txt", body + bytes.fromhex("42bffc4f9baf"), len(content), zlib.crc32(content)),
        _crafted(b"e", b"\xff\xff\xff", 0, 0),
    ]
    for data in cases:
        archive = zipfile.ZipFile(io.BytesIO(data))
        (info,) = archive.infolist()
        expected = _zipfile_read(archive, info)
        assert isinstance(expected, str) and expected.startswith("error: "), expected
        assert _ours(zips.open_member(archive, info)) == expected  # type: ignore[arg-type]
        unlisted = zips.open_listed(io.BytesIO(data), zips.listed_fields(info))
        assert unlisted is not None and _ours(unlisted) == expected  # type: ignore[arg-type]
        head = _result(functools.partial(zips.member_head, archive.fp, info, HEAD))
        assert head == _zipfile_read(archive, info, HEAD)


def test_a_head_read_fails_where_zipfiles_read_of_it_fails() -> None:
    """A deflated member of 5,108 bytes with a bad CRC: zipfile's read of its first 4,096 bytes
    reads it to its end and fails the CRC; the head read took 4,096 bytes and a nested archive
    was walked, a second error for the one bad member."""
    content = _content(11, 5108)
    data = _zip([("in.bin", content, zipfile.ZIP_DEFLATED)])
    info = zipfile.ZipFile(io.BytesIO(data)).infolist()[0]
    central = data.rfind(b"PK\x01\x02")
    damaged = bytearray(data)
    struct.pack_into("<L", damaged, central + 16, info.CRC ^ 1)
    archive = zipfile.ZipFile(io.BytesIO(bytes(damaged)))
    (info,) = archive.infolist()
    expected = _zipfile_read(archive, info, HEAD)
    assert expected == "BadZipFile: Bad CRC-32 for file 'in.bin'"
    assert _result(lambda: zips.member_head(archive.fp, info, HEAD)) == expected  # type: ignore[arg-type]


def test_a_local_name_of_other_bytes_is_left_to_zipfile_even_where_it_decodes_alike() -> None:
    """Central name `caf\\x82.txt` flagged UTF-8 (it is not: the listing reads it as CP437,
    'café.txt'), local name 'café.txt' in UTF-8: decoded each its own way they agreed, and the
    worker hashed a member zipfile refuses (unzip: "mismatching local filename")."""
    packed = b"content\n"
    data = _crafted("café.txt".encode(), packed, len(packed), zlib.crc32(packed), method=0,
                    flags=0x800, central_name=b"caf\x82.txt")  # fmt: skip
    archive = zips.open_zip(io.BytesIO(data))
    (info,) = archive.infolist()
    assert info.orig_filename == "café.txt" and not info.flag_bits & 0x800  # the patched view
    assert zips.open_listed(io.BytesIO(data), zips.listed_fields(info)) is None
    with pytest.raises(zipfile.BadZipFile, match="differ"):
        zips.open_member(archive, info)


def test_an_overlap_that_zipfile_notes_is_left_to_its_open() -> None:
    """zipfile 3.12 and later note where each member's data must end and refuse overlapping
    entries in its open: the local reads must not pass over that check (the end travels in
    the listing's fields)."""
    data = _zip([("a.bin", b"a" * 3000, zipfile.ZIP_STORED), ("b.bin", b"b" * 10, 0)])
    archive = zipfile.ZipFile(io.BytesIO(data))
    first = archive.infolist()[0]
    fields = list(zips.listed_fields(first))
    assert zips.open_listed(io.BytesIO(data), tuple(fields)) is not None
    fields[-1] = first.header_offset + 40  # the data would run past where it must end
    assert zips.open_listed(io.BytesIO(data), tuple(fields)) is None
    noted = zips.Listed(*fields)  # as a ZipInfo of zipfile 3.12 notes it
    assert zips.member_head(archive.fp, noted, HEAD) is None  # type: ignore[arg-type]


def test_an_open_a_signal_interrupts_is_tried_again(monkeypatch: pytest.MonkeyPatch) -> None:
    """Found by a reviewer: os.open retries EINTR (PEP 475), the raw openat2 call did not: a
    file whose open a signal interrupted (a FUSE or NFS mount) would be `unreadable`."""
    import ctypes

    from matcher.evidence import no_symlinks

    if not no_symlinks.available():
        return  # the component-by-component opens are os.open's, which retry
    real = no_symlinks._call
    calls: list[int] = []

    def interrupted_once(*args: object) -> int:
        calls.append(1)
        if len(calls) == 1:
            ctypes.set_errno(errno.EINTR)
            return -1
        return int(real(*args))

    monkeypatch.setattr(no_symlinks, "_call", interrupted_once)
    flags = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC
    os.close(no_symlinks.open_no_symlinks(b"/", flags))
    assert len(calls) == 2
    calls.clear()
    os.close(no_symlinks.opener(flags)(b"/"))  # the scan's own file opener
    assert len(calls) == 2
