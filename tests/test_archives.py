"""Archives through `matcher scan --archives`: members, nesting, bombs, encryption, links."""

from __future__ import annotations

import bz2
import gzip
import hashlib
import io
import json
import lzma
import dataclasses
import os
import random
import shutil
import sqlite3
import stat
import subprocess
import sys
import tarfile
import tracemalloc
import zipfile
import zlib
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from conftest import assert_counts_add_up
from conftest import peer_tool
from conftest import read_log

from matcher.cli import cli
from matcher.errors import ExitCode
from matcher.evidence import archive as archive_mod
from matcher.evidence.archive import ArchiveLimits
from matcher.evidence.archive import ArchiveWalker
from matcher.models import EntryOutcome
from matcher.models import Failure
from matcher.models import FileTask

NOTABLE = b"a benign notable member for the archive tests\n" * 5
OTHER = b"another benign member\n"


def file_base(path: Path) -> tuple[object, ...]:
    """An archive file's base locator, as the walk makes it (path and identity)."""
    return archive_mod.file_base(os.fsencode(path), path.stat())


def zip_bytes(files: dict[str, bytes], method: int = zipfile.ZIP_DEFLATED) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", method) as archive:
        for name, data in files.items():
            archive.writestr(zipfile.ZipInfo(name, (2024, 1, 1, 0, 0, 0)), data, method)
    return out.getvalue()


def tar_bytes(files: dict[str, bytes], compression: str = "") -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.GNU_FORMAT) as archive:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    data = raw.getvalue()
    if compression == "gz":
        return gzip.compress(data, mtime=0)
    if compression == "bz2":
        return bz2.compress(data)
    if compression == "xz":
        return lzma.compress(data)
    return data


@pytest.fixture
def db(tmp_path: Path) -> Path:
    store = tmp_path / "store.db"
    listing = tmp_path / "notable.sha256"
    listing.write_text(f"{hashlib.sha256(NOTABLE).hexdigest()}  notable\n")
    result = CliRunner().invoke(
        cli, ["import", str(listing), "--db", str(store), "--role", "notable"]
    )
    assert result.exit_code == 0, result.output
    return store


def scan(db: Path, tmp_path: Path, evidence: Path, *extra: str) -> tuple[Any, Path]:
    log = tmp_path / f"run{len(list(tmp_path.glob('*.jsonl')))}.jsonl"
    args = [
        "scan",
        str(evidence),
        "--examiner",
        "E",
        "--case",
        "C",
        "--db",
        str(db),
        "--log",
        str(log),
        "-q",
        *extra,
    ]
    result = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert "Traceback" not in result.output
    return result, log


def rows(log: Path) -> dict[bytes, dict[str, Any]]:
    conn = sqlite3.connect(f"{log}.inventory.db")
    conn.row_factory = sqlite3.Row
    try:
        return {bytes(r["path"]): dict(r) for r in conn.execute("SELECT * FROM entries")}
    finally:
        conn.close()


def test_members_of_every_format_are_hashed_with_bang_paths(db: Path, tmp_path: Path) -> None:
    ev = tmp_path / "ev"
    ev.mkdir()
    members = {"dir/notable.bin": NOTABLE, "dir/other.txt": OTHER}
    (ev / "a.zip").write_bytes(zip_bytes(members))
    (ev / "b.tar").write_bytes(tar_bytes(members))
    for comp in ("gz", "bz2", "xz"):
        (ev / f"c.tar.{comp}").write_bytes(tar_bytes(members, comp))
    (ev / "d.bin.gz").write_bytes(gzip.compress(NOTABLE, mtime=0))
    (ev / "e.unnamed").write_bytes(zip_bytes(members))  # content, not name, decides
    result, log = scan(db, tmp_path, ev, "--archives")
    assert result.exit_code == ExitCode.NOTABLE, result.output
    counts = assert_counts_add_up(log)
    assert counts["errors"] == 0
    matches = {r["path"] for r in read_log(log) if r["type"] == "match"}
    expected = {
        f"{ev}/{name}!dir/notable.bin"
        for name in ("a.zip", "b.tar", "c.tar.gz", "c.tar.bz2", "c.tar.xz", "e.unnamed")
    }
    assert matches == expected | {f"{ev}/d.bin.gz!d.bin"}
    inventory = rows(log)
    other = inventory[os.fsencode(f"{ev}/c.tar.xz!dir/other.txt")]
    assert other["kind"] == "member" and bytes(other["sha256"]) == hashlib.sha256(OTHER).digest()
    # Without --archives, the archives are files and nothing more.
    result, log = scan(db, tmp_path, ev)
    assert result.exit_code == 0, result.output
    assert assert_counts_add_up(log)["files"] == 7


def test_max_depth_without_archives_is_refused_not_ignored(db: Path, tmp_path: Path) -> None:
    """Before: `--max-depth 3` alone ran, archives hashed as files, with no word of it."""
    ev = tmp_path / "ev"
    ev.mkdir()
    (ev / "outer.zip").write_bytes(zip_bytes({"notable.bin": NOTABLE}))
    log = tmp_path / "x.jsonl"
    args = ["scan", str(ev), "--examiner", "E", "--case", "C", "--db", str(db), "--log", str(log)]
    result = CliRunner().invoke(cli, [*args, "--max-depth", "3"])
    assert result.exit_code == 2 and "add --archives" in result.output
    assert not log.exists()
    manifest = tmp_path / "m.csv"
    manifest.write_text(f"evidence,case,examiner\n{ev},C,E\n")
    result = CliRunner().invoke(cli, ["batch", str(manifest), "--db", str(db), "--max-depth", "3"])
    assert result.exit_code == 2 and "add --archives" in result.output


def test_nested_archives_and_max_depth(db: Path, tmp_path: Path) -> None:
    ev = tmp_path / "ev"
    ev.mkdir()
    inner = zip_bytes({"deep/notable.bin": NOTABLE})
    middle = tar_bytes({"inner.zip": inner}, "gz")
    (ev / "outer.zip").write_bytes(zip_bytes({"middle.tar.gz": middle, "top.txt": OTHER}))
    result, log = scan(db, tmp_path, ev, "--archives")
    assert result.exit_code == ExitCode.NOTABLE, result.output
    (match,) = [r for r in read_log(log) if r["type"] == "match"]
    assert match["path"] == f"{ev}/outer.zip!middle.tar.gz!inner.zip!deep/notable.bin"
    assert match["kind"] == "member"
    result, log = scan(db, tmp_path, ev, "--archives", "--max-depth", "2")
    assert result.exit_code == 0, result.output
    counts = assert_counts_add_up(log)
    assert counts["skipped_by_reason"] == {"too-deep": 1}
    skipped = rows(log)[os.fsencode(f"{ev}/outer.zip!middle.tar.gz!inner.zip!")]
    assert skipped["skip"] == "too-deep"
    # The too-deep archive itself is still hashed as a member.
    assert rows(log)[os.fsencode(f"{ev}/outer.zip!middle.tar.gz!inner.zip")]["md5"] is not None


def test_zip_bomb_member_is_skipped_never_clean(db: Path, tmp_path: Path) -> None:
    ev = tmp_path / "ev"
    ev.mkdir()
    bomb = zip_bytes({"zeros.bin": bytes(64 << 20), "notable.bin": NOTABLE})
    assert len(bomb) < 200_000
    (ev / "bomb.zip").write_bytes(bomb)
    result, log = scan(db, tmp_path, ev, "--archives")
    assert result.exit_code == ExitCode.NOTABLE, result.output
    counts = assert_counts_add_up(log)
    assert counts["skipped_by_reason"] == {"ratio-too-high": 1}
    row = rows(log)[os.fsencode(f"{ev}/bomb.zip!zeros.bin")]
    assert row["skip"] == "ratio-too-high" and row["md5"] is None and row["verdict"] is None


def test_gzip_bomb_stream_is_skipped(db: Path, tmp_path: Path) -> None:
    ev = tmp_path / "ev"
    ev.mkdir()
    (ev / "zeros.gz").write_bytes(gzip.compress(bytes(32 << 20), mtime=0))
    (ev / "zeros.tar.gz").write_bytes(tar_bytes({"z": bytes(32 << 20), "n": NOTABLE}, "gz"))
    result, log = scan(db, tmp_path, ev, "--archives")
    counts = assert_counts_add_up(log)
    assert counts["skipped_by_reason"] == {"ratio-too-high": 2}, counts
    assert result.exit_code == 0, result.output


def test_member_count_and_total_limits(tmp_path: Path) -> None:
    archive = tmp_path / "many.zip"
    archive.write_bytes(zip_bytes({f"m{i}.txt": b"%d\n" % i for i in range(10)}))
    walker = ArchiveWalker(ArchiveLimits(max_members=4))
    items = list(
        walker.walk(
            os.fsencode(archive),
            file_base(archive),
            archive.read_bytes()[:4096],
            archive.stat().st_size,
        )
    )
    tasks = [i for i in items if isinstance(i, FileTask)]
    (last,) = [i for i in items if isinstance(i, EntryOutcome)]
    assert len(tasks) == 4 and last.skip is not None and last.skip.value == "too-many-members"
    assert "6 more entries" in (last.detail or "")
    walker = ArchiveWalker(ArchiveLimits(max_total_bytes=10))
    items = list(
        walker.walk(
            os.fsencode(archive),
            file_base(archive),
            archive.read_bytes()[:4096],
            archive.stat().st_size,
        )
    )
    skipped = [i for i in items if isinstance(i, EntryOutcome)]
    assert {i.skip.value for i in skipped if i.skip} == {"expanded-too-large"}
    assert sum(i.size for i in items if isinstance(i, FileTask)) <= 10


def test_lying_member_size_is_an_error_not_a_bomb(db: Path, tmp_path: Path) -> None:
    ev = tmp_path / "ev"
    ev.mkdir()
    data = bytearray(zip_bytes({"liar.bin": bytes(1 << 20)}, zipfile.ZIP_DEFLATED))
    # Shrink the declared size in the central directory to 100 bytes.
    central = data.rindex(b"PK\x01\x02")
    data[central + 24 : central + 28] = (100).to_bytes(4, "little")
    (ev / "liar.zip").write_bytes(bytes(data))
    result, log = scan(db, tmp_path, ev, "--archives")
    counts = assert_counts_add_up(log)
    assert counts["errors"] == 1, counts
    assert result.exit_code & ExitCode.INCOMPLETE


def test_encrypted_and_symlink_members(db: Path, tmp_path: Path) -> None:
    zip_tool = peer_tool("zip")
    src = tmp_path / "src"
    src.mkdir()
    (src / "secret.txt").write_bytes(NOTABLE)
    (src / "plain.txt").write_bytes(OTHER)
    os.symlink("/etc/passwd", src / "link")
    ev = tmp_path / "ev"
    ev.mkdir()
    subprocess.run(
        [zip_tool, "-q", "-P", "pw", str(ev / "enc.zip"), "secret.txt"], cwd=src, check=True
    )
    subprocess.run(
        [zip_tool, "-q", "-y", str(ev / "links.zip"), "link", "plain.txt"], cwd=src, check=True
    )
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as archive:
        info = tarfile.TarInfo("tlink")
        info.type = tarfile.SYMTYPE
        info.linkname = "../../outside"
        archive.addfile(info)
    (ev / "links.tar").write_bytes(raw.getvalue())
    result, log = scan(db, tmp_path, ev, "--archives")
    assert result.exit_code == 0, result.output
    counts = assert_counts_add_up(log)
    assert counts["skipped_by_reason"] == {"encrypted": 1, "symlink": 2}, counts
    inventory = rows(log)
    assert inventory[os.fsencode(f"{ev}/enc.zip!secret.txt")]["skip"] == "encrypted"
    assert inventory[os.fsencode(f"{ev}/links.zip!link")]["skip"] == "symlink"
    assert inventory[os.fsencode(f"{ev}/links.tar!tlink")]["skip"] == "symlink"


def test_corrupt_archive_is_an_error_and_the_file_is_still_hashed(db: Path, tmp_path: Path) -> None:
    ev = tmp_path / "ev"
    ev.mkdir()
    (ev / "broken.zip").write_bytes(b"PK\x03\x04" + b"\x00" * 200)
    (ev / "broken.gz").write_bytes(b"\x1f\x8b\x08\x00" + b"\xff" * 100)
    result, log = scan(db, tmp_path, ev, "--archives")
    counts = assert_counts_add_up(log)
    assert counts["files"] == 2 and counts["errors"] == 2, counts
    assert result.exit_code == ExitCode.INCOMPLETE, result.output


# -- 7z (py7zr, the `archives` extra; archives made by Debian's 7zip, `7zz`) ------------

SEVENZ_MTIME = 1_700_000_000


def seven(archive: Path, src: Path, *options: str, names: tuple[str, ...] = (".",)) -> Path:
    """Pack `names` under `src` into `archive` with 7-Zip (an independent producer)."""
    tool = peer_tool("7zz")
    subprocess.run(
        [tool, "a", "-bd", "-bso0", "-bsp0", *options, str(archive), *names],
        cwd=src,
        check=True,
        timeout=120,
    )
    return archive


def seven_tree(root: Path, files: dict[str, bytes]) -> Path:
    root.mkdir()
    for name, data in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        os.utime(path, (SEVENZ_MTIME, SEVENZ_MTIME))
    return root


def digests_of(row: dict[str, Any]) -> tuple[str, str, str]:
    return (bytes(row["md5"]).hex(), bytes(row["sha1"]).hex(), bytes(row["sha256"]).hex())


def known_answer(data: bytes) -> tuple[str, str, str]:
    return (
        hashlib.md5(data).hexdigest(),
        hashlib.sha1(data).hexdigest(),
        hashlib.sha256(data).hexdigest(),
    )


SEVENZ_FILES = {
    "dir/notable.bin": NOTABLE,
    "dir/other.txt": OTHER,
    "big/random.bin": random.Random(77).randbytes(300_000),
    "big/text.txt": b"".join(b"line %d of a benign text\n" % i for i in range(40_000)),
    "empty.txt": b"",
    "\u00fcn\u00efc\u00f6d\u00e9 name.txt": b"a unicode member name\n",
}


@pytest.mark.parametrize("solid", ["-ms=on", "-ms=off"])
def test_7z_members_are_hashed_exactly(db: Path, tmp_path: Path, solid: str) -> None:
    src = seven_tree(tmp_path / "src", SEVENZ_FILES)
    ev = tmp_path / "ev"
    ev.mkdir()
    seven(ev / "packed.7z", src, solid, "-mx1")
    (ev / "no-extension").write_bytes((ev / "packed.7z").read_bytes())  # content decides
    result, log = scan(db, tmp_path, ev, "--archives", "-j", "2")
    assert result.exit_code == ExitCode.NOTABLE, result.output
    counts = assert_counts_add_up(log)
    assert counts["errors"] == 0 and counts["skipped"] == 0, counts
    inventory = rows(log)
    for archive in ("packed.7z", "no-extension"):
        for name, data in SEVENZ_FILES.items():
            row = inventory[os.fsencode(f"{ev}/{archive}!{name}")]
            assert row["kind"] == "member" and row["size"] == len(data), name
            assert digests_of(row) == known_answer(data), name
    row = inventory[os.fsencode(f"{ev}/packed.7z!dir/other.txt")]
    assert row["mtime_ns"] == SEVENZ_MTIME * 1_000_000_000
    assert counts["files"] == 2 * (1 + len(SEVENZ_FILES))
    matches = {r["path"] for r in read_log(log) if r["type"] == "match"}
    assert matches == {f"{ev}/packed.7z!dir/notable.bin", f"{ev}/no-extension!dir/notable.bin"}


def test_7z_nested_in_zip_and_zip_in_7z(db: Path, tmp_path: Path) -> None:
    src = seven_tree(tmp_path / "src", {"deep/notable.bin": NOTABLE, "x.txt": OTHER})
    inner7z = seven(tmp_path / "inner.7z", src, "-mx1")
    wrap = seven_tree(tmp_path / "wrap", {"inner.zip": zip_bytes({"z/notable.bin": NOTABLE})})
    (wrap / "inner.7z").write_bytes(inner7z.read_bytes())
    ev = tmp_path / "ev"
    ev.mkdir()
    (ev / "outer.zip").write_bytes(zip_bytes({"inner.7z": inner7z.read_bytes()}))
    seven(ev / "outer.7z", wrap, "-mx1", "-ms=on")
    result, log = scan(db, tmp_path, ev, "--archives")
    assert result.exit_code == ExitCode.NOTABLE, result.output
    assert assert_counts_add_up(log)["errors"] == 0
    matches = {r["path"] for r in read_log(log) if r["type"] == "match"}
    assert matches == {
        f"{ev}/outer.zip!inner.7z!deep/notable.bin",
        f"{ev}/outer.7z!inner.zip!z/notable.bin",
        f"{ev}/outer.7z!inner.7z!deep/notable.bin",
    }
    inventory = rows(log)
    row = inventory[os.fsencode(f"{ev}/outer.7z!inner.7z!x.txt")]
    assert digests_of(row) == known_answer(OTHER)
    result, log = scan(db, tmp_path, ev, "--archives", "--max-depth", "1")
    assert result.exit_code == 0, result.output
    counts = assert_counts_add_up(log)
    assert counts["skipped_by_reason"] == {"too-deep": 3}, counts
    inventory = rows(log)
    assert inventory[os.fsencode(f"{ev}/outer.7z!inner.zip!")]["skip"] == "too-deep"
    assert inventory[os.fsencode(f"{ev}/outer.zip!inner.7z!")]["skip"] == "too-deep"
    assert inventory[os.fsencode(f"{ev}/outer.7z!inner.7z")]["md5"] is not None


def test_7z_bomb_is_skipped_while_listing(db: Path, tmp_path: Path) -> None:
    files = {"a_zeros.bin": bytes(64 << 20), "b_notable.bin": NOTABLE, "c.txt": OTHER}
    src = seven_tree(tmp_path / "src", files)
    ev = tmp_path / "ev"
    ev.mkdir()
    names = tuple(files)
    seven(ev / "solid.7z", src, "-ms=on", names=names)
    seven(ev / "split.7z", src, "-ms=off", names=names)
    assert (ev / "solid.7z").stat().st_size < 100_000
    result, log = scan(db, tmp_path, ev, "--archives")
    counts = assert_counts_add_up(log)
    inventory = rows(log)
    # Non-solid: each member is its own block; only the bomb is skipped.
    assert inventory[os.fsencode(f"{ev}/split.7z!a_zeros.bin")]["skip"] == "ratio-too-high"
    assert inventory[os.fsencode(f"{ev}/split.7z!b_notable.bin")]["verdict"] == "notable"
    # Solid: every later member needs the bomb expanded first, so it is skipped too.
    for name in names:
        row = inventory[os.fsencode(f"{ev}/solid.7z!{name}")]
        assert row["skip"] == "ratio-too-high" and row["md5"] is None, name
    assert "solid block" in inventory[os.fsencode(f"{ev}/solid.7z!c.txt")]["detail"]
    assert counts["skipped_by_reason"] == {"ratio-too-high": 4}, counts
    assert counts["files"] == 4 and counts["errors"] == 0, counts
    assert result.exit_code == ExitCode.NOTABLE, result.output


def test_7z_member_count_and_total_limits(tmp_path: Path) -> None:
    src = seven_tree(tmp_path / "src", {f"m{i}.txt": b"%d\n" % i * 1000 for i in range(10)})
    archive = seven(tmp_path / "many.7z", src, "-ms=on")

    def walk(limits: ArchiveLimits) -> list[FileTask | EntryOutcome]:
        return list(
            ArchiveWalker(limits).walk(
                os.fsencode(archive),
                file_base(archive),
                archive.read_bytes()[:4096],
                archive.stat().st_size,
            )
        )

    items = walk(ArchiveLimits(max_members=4))
    tasks = [i for i in items if isinstance(i, FileTask)]
    (last,) = [i for i in items if isinstance(i, EntryOutcome)]
    assert len(tasks) == 4 and last.skip is not None and last.skip.value == "too-many-members"
    assert "6 more entries" in (last.detail or "")
    items = walk(ArchiveLimits(max_total_bytes=9_000))
    hashed = [i for i in items if isinstance(i, FileTask)]
    skipped = [i for i in items if isinstance(i, EntryOutcome)]
    assert {i.skip.value for i in skipped if i.skip} == {"expanded-too-large"}
    assert sum(i.size for i in hashed) <= 9_000 and len(hashed) + len(skipped) == 10


def test_7z_encrypted_members_and_headers_are_skipped(db: Path, tmp_path: Path) -> None:
    src = seven_tree(tmp_path / "src", {"secret.bin": NOTABLE, "other.txt": OTHER})
    ev = tmp_path / "ev"
    ev.mkdir()
    seven(ev / "members.7z", src, "-pbenign-password")
    seven(ev / "header.7z", src, "-pbenign-password", "-mhe=on")
    result, log = scan(db, tmp_path, ev, "--archives")
    assert result.exit_code == 0, result.output
    counts = assert_counts_add_up(log)
    assert counts["skipped_by_reason"] == {"encrypted": 3}, counts
    assert counts["files"] == 2 and counts["errors"] == 0
    inventory = rows(log)
    assert inventory[os.fsencode(f"{ev}/members.7z!secret.bin")]["skip"] == "encrypted"
    assert inventory[os.fsencode(f"{ev}/members.7z!other.txt")]["skip"] == "encrypted"
    header = inventory[os.fsencode(f"{ev}/header.7z!")]
    assert header["skip"] == "encrypted" and "header" in header["detail"]


def test_7z_symlink_member_is_not_followed(db: Path, tmp_path: Path) -> None:
    src = seven_tree(tmp_path / "src", {"plain.txt": OTHER})
    os.symlink("/etc/passwd", src / "link")
    ev = tmp_path / "ev"
    ev.mkdir()
    seven(ev / "links.7z", src, "-snl")
    result, log = scan(db, tmp_path, ev, "--archives")
    assert result.exit_code == 0, result.output
    counts = assert_counts_add_up(log)
    assert counts["skipped_by_reason"] == {"symlink": 1}, counts
    row = rows(log)[os.fsencode(f"{ev}/links.7z!link")]
    assert row["skip"] == "symlink" and row["md5"] is None


def test_damaged_7z_is_an_error_naming_it(db: Path, tmp_path: Path) -> None:
    src = seven_tree(
        tmp_path / "src", {"a.bin": random.Random(5).randbytes(200_000), "b.txt": OTHER}
    )
    good = seven(tmp_path / "good.7z", src, "-ms=off", "-mx1").read_bytes()
    ev = tmp_path / "ev"
    ev.mkdir()
    (ev / "truncated.7z").write_bytes(good[: len(good) // 2])
    flipped = bytearray(good)
    for offset in range(1000, 1010):  # inside a.bin's packed data (the first block)
        flipped[offset] ^= 0x55
    (ev / "flipped.7z").write_bytes(bytes(flipped))
    (ev / "garbage.7z").write_bytes(b"7z\xbc\xaf\x27\x1c" + random.Random(9).randbytes(5000))
    result, log = scan(db, tmp_path, ev, "--archives")
    assert result.exit_code == ExitCode.INCOMPLETE, result.output
    counts = assert_counts_add_up(log)
    inventory = rows(log)
    for name in ("truncated.7z", "garbage.7z"):
        row = inventory[os.fsencode(f"{ev}/{name}!")]
        assert row["failure"] == "walk-error" and "7z" in row["detail"], name
        assert inventory[os.fsencode(f"{ev}/{name}")]["md5"] is not None  # still hashed
    bad = inventory[os.fsencode(f"{ev}/flipped.7z!a.bin")]
    assert bad["failure"] is not None and bad["md5"] is None
    fine = inventory[os.fsencode(f"{ev}/flipped.7z!b.txt")]
    assert digests_of(fine) == known_answer(OTHER)
    assert counts["errors"] == 3, counts


def test_without_py7zr_7z_is_skipped_naming_the_extra(
    db: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = seven_tree(tmp_path / "src", {"notable.bin": NOTABLE})
    ev = tmp_path / "ev"
    ev.mkdir()
    packed = seven(ev / "a.7z", src)
    (ev / "outer.zip").write_bytes(zip_bytes({"inner.7z": packed.read_bytes()}))
    monkeypatch.setitem(sys.modules, "py7zr", None)
    result, log = scan(db, tmp_path, ev, "--archives")
    assert result.exit_code == 0, result.output  # the notable member was not read
    counts = assert_counts_add_up(log)
    assert counts["skipped"] == 2 and counts["errors"] == 0, counts
    inventory = rows(log)
    for path in (f"{ev}/a.7z!", f"{ev}/outer.zip!inner.7z!"):
        row = inventory[os.fsencode(path)]
        assert row["skip"] == "unsupported" and row["verdict"] is None, path
        assert "pip install 'matcher[archives]'" in row["detail"], path
    # The archive files themselves are still hashed.
    assert inventory[os.fsencode(f"{ev}/a.7z")]["md5"] is not None
    assert inventory[os.fsencode(f"{ev}/outer.zip!inner.7z")]["md5"] is not None


def test_7z_memory_stays_bounded_on_a_large_member(tmp_path: Path) -> None:
    # 32 MiB from a 16-letter alphabet: LZMA packs it about 1.8:1. A decoder
    # fed a packed block at every call would hold ~8 MiB of unused input here
    # (and half the packed member on a large one).
    table = bytes(97 + (b & 15) for b in range(256))
    rng = random.Random(11)
    data = b"".join(rng.randbytes(1 << 20).translate(table) for _ in range(32))
    src = seven_tree(tmp_path / "src", {"large.txt": data, "small.txt": OTHER})
    archive = seven(tmp_path / "large.7z", src, "-mx1", "-ms=on")
    base = file_base(archive)
    walker = ArchiveWalker(ArchiveLimits())
    (task,) = [
        i
        for i in walker.walk(base[1], base, archive.read_bytes()[:4096], archive.stat().st_size)
        if isinstance(i, FileTask) and i.size == len(data)
    ]
    buffer = memoryview(bytearray(1 << 20))
    digest = hashlib.sha256()
    tracemalloc.start()
    try:
        for chunk in archive_mod.read_chunks(task, buffer):
            digest.update(chunk)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
        archive_mod.close_cached()
    assert digest.hexdigest() == hashlib.sha256(data).hexdigest()
    assert peak < 4 << 20, f"peak {peak} bytes while reading a {len(data)}-byte member"


def test_no_content_byte_of_a_damaged_archive_reaches_the_log(db: Path, tmp_path: Path) -> None:
    """gzip names trailing garbage by quoting it (`Not a gzipped file (b'..')`): never logged."""
    evidence = tmp_path / "ev"
    evidence.mkdir()
    marker = b"QZ\x7fK"
    (evidence / "tail.gz").write_bytes(gzip.compress(b"plain text") + marker)
    (evidence / "tail.tar.gz").write_bytes(gzip.compress(tar_bytes({"a": b"x"})) + marker)
    result, log = scan(db, tmp_path, evidence, "--archives")
    text = log.read_bytes() + result.output.encode()
    assert b"QZ" not in text and b"\\x7fK" not in text, text
    errors = [r for r in read_log(log) if r["type"] == "error"]
    assert len(errors) == 2 and all("start no gz member" in str(r["detail"]) for r in errors), errors


def test_describe_keeps_only_content_free_messages() -> None:
    from matcher.evidence.reasons import describe

    assert describe(gzip.BadGzipFile("Not a gzipped file (b'SE')")) == "BadGzipFile: Not a gzipped file (<bytes>)"
    assert describe(ValueError("invalid literal for int() with base 8: '\\x00ab'")) == "ValueError"
    assert describe(KeyError(b"\x12")) == "KeyError"
    assert describe(zlib.error("Error -3 while decompressing data: invalid block type")).endswith("invalid block type")
    assert describe(OSError(5, "Input/output error")) == "OSError: [Errno 5] Input/output error"


def test_an_archive_whose_parent_became_a_symlink_is_not_read_outside(tmp_path: Path) -> None:
    """The walk saw ev/a/x.zip; if ev/a is then swapped for a symlink out of the evidence,
    the archive opened by that path is another file: never listed or read."""
    from matcher.evidence.folder import FolderWalker
    from matcher.evidence.sources import EvidenceWalker

    ev = tmp_path / "ev"
    (ev / "a").mkdir(parents=True)
    (ev / "a" / "x.zip").write_bytes(zip_bytes({"inside.txt": b"evidence"}))
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "x.zip").write_bytes(zip_bytes({"secret.txt": NOTABLE}))
    walker = EvidenceWalker(FolderWalker(()), {}, archives=ArchiveLimits())
    (task,) = [t for t in FolderWalker(()).walk([os.fsencode(ev)]) if isinstance(t, FileTask)]
    (ev / "a").rename(ev / "a.orig")
    (ev / "a").symlink_to(outside)
    # Nothing listed: the swap is the file's own error, when it is hashed (by its identity too).
    assert list(walker._inside(task, None)) == []
    # Members listed before the swap are refused too when a worker reopens the archive.
    (ev / "a").unlink()
    (ev / "a.orig").rename(ev / "a")
    members = [t for t in walker._inside(task, None) if isinstance(t, FileTask)]
    assert members
    (ev / "a").rename(ev / "a.orig")
    (ev / "a").symlink_to(outside)
    with pytest.raises(OSError, match="replaced by another object"):
        archive_mod.open_base(members[0].locator[1])  # type: ignore[index]


def test_members_sharing_a_name_each_get_a_path_and_both_matches_are_logged(db: Path, tmp_path: Path) -> None:
    """A zip may hold two members of one name (and `tar -r` appends a newer copy under the
    old name): both are read, each under a path of its own, and neither match is lost."""
    import warnings

    evidence = tmp_path / "ev"
    evidence.mkdir()
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zipfile warns of the duplicate name
        with zipfile.ZipFile(buffer, "w") as archive:
            archive.writestr("m.bin", NOTABLE)
            archive.writestr("m.bin", NOTABLE)
            archive.writestr("m.bin (duplicate 2)", b"a real member of that name")
    (evidence / "dup.zip").write_bytes(buffer.getvalue())
    tar = io.BytesIO()
    with tarfile.open(fileobj=tar, mode="w") as archive:
        for data in (b"old copy", NOTABLE):
            info = tarfile.TarInfo("m.bin")
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    (evidence / "dup.tar").write_bytes(tar.getvalue())
    result, log = scan(db, tmp_path, evidence, "--archives")
    matches = sorted(os.path.relpath(str(r["path"]), evidence) for r in read_log(log) if r["type"] == "match")
    assert matches == ["dup.tar!m.bin (duplicate 2)", "dup.zip!m.bin", "dup.zip!m.bin (duplicate 2)"]
    counts = assert_counts_add_up(log)
    conn = sqlite3.connect(f"{log}.inventory.db")
    try:
        paths = [bytes(r[0]) for r in conn.execute("SELECT path FROM entries WHERE kind = 'member'")]
    finally:
        conn.close()
    assert len(paths) == len(set(paths)) == 5 and counts["notable"] == 3
    assert any(p.endswith(b"!m.bin (duplicate 2) (duplicate 2)") for p in paths)


def test_unique_names_never_give_one_path_twice() -> None:
    from matcher.evidence.unique import UniqueNames

    names = UniqueNames()
    given = [b"a", b"a", b"a (duplicate 2)", b"b", b"a", b"a (duplicate 2)"]
    chosen = [names.unique(n) for n in given]
    assert chosen == [b"a", b"a (duplicate 2)", b"a (duplicate 2) (duplicate 2)", b"b",
                      b"a (duplicate 3)", b"a (duplicate 2) (duplicate 3)"]
    assert len(set(chosen)) == len(chosen)


def test_a_member_path_never_names_another_entry_across_nesting_or_the_folder(db: Path, tmp_path: Path) -> None:
    """`a.zip` holding `inner.zip` (with `x`) and a member literally named `inner.zip!x`;
    a real file `b.zip!y.bin` beside `b.zip` holding `y.bin`: four paths, four matches."""
    evidence = tmp_path / "ev"
    evidence.mkdir()
    inner = zip_bytes({"x": NOTABLE})
    (evidence / "a.zip").write_bytes(zip_bytes({"inner.zip": inner, "inner.zip!x": NOTABLE}))
    (evidence / "b.zip").write_bytes(zip_bytes({"y.bin": NOTABLE}))
    (evidence / "b.zip!y.bin").write_bytes(NOTABLE)
    result, log = scan(db, tmp_path, evidence, "--archives")
    matches = sorted(os.path.relpath(str(r["path"]), evidence) for r in read_log(log) if r["type"] == "match")
    assert len(matches) == len(set(matches)) == 4, matches
    assert "b.zip!y.bin" in matches and "b.zip!y.bin (duplicate 2)" in matches
    counts = assert_counts_add_up(log)
    conn = sqlite3.connect(f"{log}.inventory.db")
    try:
        rows = conn.execute("SELECT count(*) FROM entries").fetchone()[0]
    finally:
        conn.close()
    assert counts["notable"] == 4 and rows == counts["entries"]


def _scan_ext4_of(tree: Path, db: Path, tmp_path: Path) -> tuple[Path, Path]:
    """An ext4 image made of `tree` (mke2fs -d), scanned with --archives: (image, log)."""
    image = tmp_path / "ev" / "disk.raw"
    image.parent.mkdir()
    subprocess.run([peer_tool("mke2fs"), "-q", "-F", "-t", "ext4", "-b", "4096", "-d", str(tree),
                    str(image), "16M"], check=True, capture_output=True)  # fmt: skip
    result, log = scan(db, tmp_path, image, "--archives")
    assert result.exit_code == ExitCode.NOTABLE, result.output
    return image, log


def test_a_member_path_never_names_a_file_of_the_same_image(db: Path, tmp_path: Path) -> None:
    """In an ext4 image, `b.zip` holding `y.bin` beside a file literally named `b.zip!y.bin`:
    two paths, two matches, two inventory rows (one path stood for both: one row was lost,
    and a resume would have taken the second entry for done)."""
    tree = tmp_path / "tree"
    tree.mkdir()
    (tree / "b.zip").write_bytes(zip_bytes({"y.bin": NOTABLE, "z.bin": b"other\n"}))
    (tree / "b.zip!y.bin").write_bytes(NOTABLE)
    image, log = _scan_ext4_of(tree, db, tmp_path)
    volume = f"{image}!p0@0:ext4"
    matches = sorted(str(r["path"]) for r in read_log(log) if r["type"] == "match")
    assert matches == [f"{volume}/b.zip!y.bin", f"{volume}/b.zip!y.bin (duplicate 2)"]
    conn = sqlite3.connect(f"{log}.inventory.db")
    try:
        rows, paths = conn.execute("SELECT count(*), count(DISTINCT path) FROM entries").fetchone()
        kinds = dict(conn.execute("SELECT CAST(path AS TEXT), kind FROM entries"))
    finally:
        conn.close()
    assert rows == paths == assert_counts_add_up(log)["entries"]
    assert kinds[f"{volume}/b.zip!y.bin"] == "file"  # the image's own file keeps its path
    assert kinds[f"{volume}/b.zip!z.bin"] == "member"


def test_a_member_under_a_folder_named_like_its_archives_path_in_an_image_gets_a_path_of_its_own(
    db: Path, tmp_path: Path
) -> None:
    """In an ext4 image, `b.zip` holding `d/y.bin` and `d/z.bin` beside a folder `b.zip!d`
    holding `y.bin`. Before, every candidate path under that folder counted as taken, with
    ` (duplicate N)` too: the search for a free one never ended, and the scan hung at full CPU."""
    tree = tmp_path / "tree"
    (tree / "b.zip!d").mkdir(parents=True)
    (tree / "b.zip").write_bytes(zip_bytes({"d/y.bin": NOTABLE, "d/z.bin": b"other\n"}))
    (tree / "b.zip!d" / "y.bin").write_bytes(NOTABLE)
    image = tmp_path / "ev" / "disk.raw"
    image.parent.mkdir()
    subprocess.run([peer_tool("mke2fs"), "-q", "-F", "-t", "ext4", "-b", "4096", "-d", str(tree),
                    str(image), "16M"], check=True, capture_output=True)  # fmt: skip
    log = tmp_path / "run.jsonl"
    result = subprocess.run(
        [sys.executable, "-m", "matcher", "scan", str(image), "--examiner", "E", "--case", "C",
         "--db", str(db), "--log", str(log), "--archives", "-q"],
        capture_output=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == ExitCode.NOTABLE, result.stderr
    volume = f"{image}!p0@0:ext4"
    matches = sorted(str(r["path"]) for r in read_log(log) if r["type"] == "match")
    assert matches == [f"{volume}/b.zip!d/y.bin", f"{volume}/b.zip!d/y.bin (duplicate 2)"]
    conn = sqlite3.connect(f"{log}.inventory.db")
    try:
        kinds = dict(conn.execute("SELECT CAST(path AS TEXT), kind FROM entries"))
    finally:
        conn.close()
    assert kinds[f"{volume}/b.zip!d/y.bin"] == "file"  # the image's own file keeps its path
    assert kinds[f"{volume}/b.zip!d/z.bin"] == "member"  # no file of that path: its own
    assert len(kinds) == assert_counts_add_up(log)["entries"]


def test_members_in_an_image_with_odd_names_keep_unique_paths_and_are_all_read(
    db: Path, tmp_path: Path
) -> None:
    """Names are bytes: a member `\\xff.bin` of `c.tar` beside a real file `c.tar!\\xff.bin`,
    and a PAX member whose name holds a NUL (a suspect can craft both). Every member is
    read, and no two entries share a path."""
    tree = tmp_path / "tree"
    tree.mkdir()
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.GNU_FORMAT,
                      encoding="utf-8", errors="surrogateescape") as archive:  # fmt: skip
        for name, data in (("\udcff.bin", NOTABLE), ("plain.bin", b"plain\n")):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    (tree / "c.tar").write_bytes(raw.getvalue())
    (tree / os.fsdecode(b"c.tar!\xff.bin")).write_bytes(NOTABLE)
    pax = io.BytesIO()
    with tarfile.open(fileobj=pax, mode="w", format=tarfile.PAX_FORMAT) as archive:
        for name, data in (("bad\x00.bin", NOTABLE), ("after.bin", b"after\n")):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    (tree / "d.tar").write_bytes(pax.getvalue())
    image, log = _scan_ext4_of(tree, db, tmp_path)
    counts = assert_counts_add_up(log)
    assert counts["errors"] == 0, [r for r in read_log(log) if r["type"] == "error"]
    conn = sqlite3.connect(f"{log}.inventory.db")
    try:
        rows, paths = conn.execute("SELECT count(*), count(DISTINCT path) FROM entries").fetchone()
        listed = {bytes(p) for (p,) in conn.execute("SELECT path FROM entries")}
    finally:
        conn.close()
    assert rows == paths == counts["entries"]
    volume = os.fsencode(f"{image}!p0@0:ext4/")
    assert volume + b"c.tar!\xff.bin" in listed  # the image's own file
    assert volume + b"c.tar!\xff.bin (duplicate 2)" in listed  # the member
    assert volume + b"d.tar!after.bin" in listed  # read past the member with a NUL


def _damaged_in_the_middle(packed: bytes, at: int) -> bytes:
    """`packed` with 32 bytes flipped at `at`: inside a stored block, it still inflates."""
    return packed[:at] + bytes(b ^ 0x5A for b in packed[at : at + 32]) + packed[at + 32 :]


@pytest.mark.parametrize("compression", ["gz", "xz", "bz2"])
def test_a_compressed_tar_that_fails_its_integrity_check_gives_no_member_digest(
    db: Path, tmp_path: Path, compression: str
) -> None:
    """Random content is kept in stored blocks: damaged, it inflates without an error, and the
    gzip CRC at the end of the stream, after the tar's own end, was never read: the member was
    hashed as the wrong bytes, verdict unknown, exit 0. Now the archive is one error and no
    member is given out; the undamaged archive still gives its members."""
    content = random.Random(11).randbytes(300_000)
    packed = tar_bytes({"t.bin": content, "notable.bin": NOTABLE}, compression)
    ev = tmp_path / "ev"
    ev.mkdir()
    (ev / f"good.tar.{compression}").write_bytes(packed)
    (ev / f"bad.tar.{compression}").write_bytes(_damaged_in_the_middle(packed, len(packed) // 2))
    result, log = scan(db, tmp_path, ev, "--archives")
    inventory = rows(log)
    good = inventory[os.fsencode(f"{ev}/good.tar.{compression}!t.bin")]
    assert bytes(good["sha256"]) == hashlib.sha256(content).digest()
    wrong = [p for p in inventory if p.startswith(os.fsencode(f"{ev}/bad.tar.{compression}!"))]
    for path in wrong:  # a member given out must carry its true digest
        row = inventory[path]
        assert row["sha256"] is None or bytes(row["sha256"]) in (
            hashlib.sha256(content).digest(), hashlib.sha256(NOTABLE).digest(),
        ), path  # fmt: skip
    errors = [r for r in read_log(log) if r["type"] == "error"]
    assert any(f"bad.tar.{compression}" in str(r["path"]) for r in errors), errors
    assert result.exit_code & ExitCode.INCOMPLETE, result.output
    assert_counts_add_up(log)


def test_a_compressed_tar_cut_short_gives_the_members_before_the_cut_and_an_error(
    db: Path, tmp_path: Path
) -> None:
    """Cut short is not damaged: the members before the cut are the stream's own bytes (a
    notable one among them must still be found), then the archive is one error."""
    filler = random.Random(12).randbytes(200_000)
    packed = tar_bytes({"notable.bin": NOTABLE, "later.bin": filler}, "gz")
    ev = tmp_path / "ev"
    ev.mkdir()
    (ev / "cut.tar.gz").write_bytes(packed[: len(packed) - 50_000])
    result, log = scan(db, tmp_path, ev, "--archives")
    matches = [r["path"] for r in read_log(log) if r["type"] == "match"]
    assert matches == [f"{ev}/cut.tar.gz!notable.bin"], matches
    errors = [r for r in read_log(log) if r["type"] == "error"]
    assert any(str(r["path"]).startswith(f"{ev}/cut.tar.gz") for r in errors), errors
    assert result.exit_code & ExitCode.NOTABLE and result.exit_code & ExitCode.INCOMPLETE
    assert_counts_add_up(log)


def test_a_small_zip_member_with_a_bad_crc_fails_alone(db: Path, tmp_path: Path) -> None:
    """Before, a small member (read whole to sniff it) with a bad CRC failed the whole zip:
    the intact notable member after it was never listed (exit 4, not 5)."""
    ev = tmp_path / "ev"
    ev.mkdir()
    data = bytearray(zip_bytes({"small.txt": b"small member content\n", "z.bin": NOTABLE},
                               zipfile.ZIP_STORED))  # fmt: skip
    at = data.index(b"small member")
    data[at] ^= 0x20
    (ev / "bad.zip").write_bytes(bytes(data))
    result, log = scan(db, tmp_path, ev, "--archives")
    assert result.exit_code == ExitCode.NOTABLE | ExitCode.INCOMPLETE, result.output
    inventory = rows(log)
    small = inventory[os.fsencode(f"{ev}/bad.zip!small.txt")]
    assert small["failure"] == "io-error" and "Bad CRC-32" in small["detail"]
    assert inventory[os.fsencode(f"{ev}/bad.zip!z.bin")]["verdict"] == "notable"
    assert assert_counts_add_up(log)["errors"] == 1


@pytest.mark.parametrize("fmt", [tarfile.GNU_FORMAT, tarfile.PAX_FORMAT])
@pytest.mark.parametrize("compression", ["", "gz", "xz"])
def test_sparse_tar_members_are_read_as_tar_reads_them(
    db: Path, tmp_path: Path, fmt: int, compression: str
) -> None:
    """Before: a sparse member was `changed` (its holes counted in its size, read as a window),
    and in a compressed tar its declared size tripped the bomb ratio: the members after it
    were never listed, a notable one among them, exit 0."""
    tar = shutil.which("tar")
    assert tar is not None
    src = tmp_path / "src"
    src.mkdir()
    with open(src / "a_sparse.img", "wb") as out:
        out.seek(5 << 20)
        out.write(b"island")
        out.seek(9 << 20)
        out.write(b"end")
    (src / "z_notable.bin").write_bytes(NOTABLE)
    ev = tmp_path / "ev"
    ev.mkdir()
    name = "s.tar" + (f".{compression}" if compression else "")
    form = "gnu" if fmt == tarfile.GNU_FORMAT else "pax"
    subprocess.run([tar, f"--format={form}", "-S", "-C", str(src), "-caf", str(ev / name),
                    "a_sparse.img", "z_notable.bin"], check=True)  # fmt: skip
    with tarfile.open(ev / name) as archive:
        sparse = archive.getmember("a_sparse.img")
        assert sparse.issparse()
        expected = hashlib.sha256(archive.extractfile(sparse).read()).digest()  # type: ignore[union-attr]
    result, log = scan(db, tmp_path, ev, "--archives")
    assert result.exit_code == ExitCode.NOTABLE, result.output
    inventory = rows(log)
    member = inventory[os.fsencode(f"{ev}/{name}!a_sparse.img")]
    assert member["failure"] is None and bytes(member["sha256"]) == expected
    assert member["size"] == (9 << 20) + 3
    assert inventory[os.fsencode(f"{ev}/{name}!z_notable.bin")]["verdict"] == "notable"
    assert "single file" not in " ".join(str(n) for n in read_log(log)[-1]["notes"])


def test_an_archive_root_walked_with_archives_gets_no_disk_image_note(db: Path, tmp_path: Path) -> None:
    (tmp_path / "a.zip").write_bytes(zip_bytes({"n.bin": NOTABLE}))
    result, log = scan(db, tmp_path, tmp_path / "a.zip", "--archives")
    assert result.exit_code == ExitCode.NOTABLE, result.output
    assert not any("single file" in n for n in read_log(log)[-1]["notes"])
    result, log = scan(db, tmp_path, tmp_path / "a.zip")  # without --archives, it is one file
    assert any("single file" in n for n in read_log(log)[-1]["notes"])


def test_a_member_path_a_sibling_archive_would_also_give_takes_another(db: Path, tmp_path: Path) -> None:
    """Zip `a` holds member `b!c`; zip `a!b` beside it holds `c`: both were `a!b!c`, and a resume
    (which skips a path once finished) read one of them only: a notable file lost, or verify failing."""
    ev = tmp_path / "ev"
    ev.mkdir()
    (ev / "a").write_bytes(zip_bytes({"b!c": NOTABLE}))
    (ev / "a!b").write_bytes(zip_bytes({"c": NOTABLE + b"another"}))
    result, log = scan(db, tmp_path, ev, "--archives")
    paths = [bytes(p) for p in rows(log)]
    assert len(paths) == len(set(paths)) == 4
    assert os.fsencode(f"{ev}/a!b!c (duplicate 2)") in paths and os.fsencode(f"{ev}/a!b!c") in paths


def test_unique_paths_look_before_each_bang_past_the_archive() -> None:
    from matcher.evidence.unique import UniquePaths

    on_disk = {b"ev/a", b"ev/a!b", b"ev/x!y"}
    looked: list[bytes] = []

    def exists(path: bytes) -> bool:
        looked.append(path)
        return path in on_disk

    paths = UniquePaths(exists, b"ev/a")
    assert paths.unique(b"ev/a!b!c") == b"ev/a!b!c (duplicate 2)"  # `ev/a!b` is a file
    assert paths.unique(b"ev/a!plain/name") == b"ev/a!plain/name"
    assert b"ev/a" not in looked  # the archive itself is never taken for a sibling
    assert paths.unique(b"ev/a!n.zip!x") == b"ev/a!n.zip!x"  # a nested member: no such file


@pytest.mark.parametrize("compression", ["", "gz"])
def test_tar_hard_link_member_is_read_as_the_member_it_names(
    db: Path, tmp_path: Path, compression: str
) -> None:
    """Before: a hard-link member (no data of its own) was skipped as a `symlink`, so a notable
    file archived under two names was logged under one; extracted, both names are that file."""
    tar = shutil.which("tar")
    assert tar is not None
    src = tmp_path / "src"
    (src / "d").mkdir(parents=True)
    (src / "a_notable.bin").write_bytes(NOTABLE)
    os.link(src / "a_notable.bin", src / "d" / "b_second_name")
    os.link(src / "a_notable.bin", src / "z_third_name")
    ev = tmp_path / "ev"
    ev.mkdir()
    name = "h.tar" + (f".{compression}" if compression else "")
    subprocess.run([tar, "-C", str(src), "-caf", str(ev / name), "a_notable.bin", "d",
                    "z_third_name"], check=True)  # fmt: skip
    with tarfile.open(ev / name) as archive:
        assert sum(m.islnk() for m in archive.getmembers()) == 2
    result, log = scan(db, tmp_path, ev, "--archives")
    assert result.exit_code == ExitCode.NOTABLE, result.output
    counts = assert_counts_add_up(log)
    assert counts["notable"] == 3 and counts["skipped"] == 0, counts
    inventory = rows(log)
    want = hashlib.sha256(NOTABLE).digest()
    for member in ("a_notable.bin", "d/b_second_name", "z_third_name"):
        row = inventory[os.fsencode(f"{ev}/{name}!{member}")]
        assert bytes(row["sha256"]) == want and row["size"] == len(NOTABLE), member
    matched = {r["path"] for r in read_log(log) if r.get("type") == "match"}
    assert f"{ev}/{name}!d/b_second_name" in matched


def test_tar_hard_link_to_no_earlier_member_is_skipped_saying_so(db: Path, tmp_path: Path) -> None:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.GNU_FORMAT) as archive:
        info = tarfile.TarInfo("orphan")
        info.type = tarfile.LNKTYPE
        info.linkname = "later.bin"
        archive.addfile(info)
        info = tarfile.TarInfo("later.bin")
        info.size = len(OTHER)
        archive.addfile(info, io.BytesIO(OTHER))
    ev = tmp_path / "ev"
    ev.mkdir()
    (ev / "o.tar").write_bytes(raw.getvalue())
    result, log = scan(db, tmp_path, ev, "--archives")
    assert result.exit_code == 0, result.output
    row = rows(log)[os.fsencode(f"{ev}/o.tar!orphan")]
    assert row["skip"] == "symlink" and "no member before it holds" in row["detail"]
    assert assert_counts_add_up(log)["skipped"] == 1


@pytest.mark.parametrize("compression", ["", "gz"])
def test_a_damaged_tar_header_is_an_error_and_the_members_after_it_are_read(
    db: Path, tmp_path: Path, compression: str
) -> None:
    """Before: tarfile took a damaged header for the tar's end: the members after it were
    never listed, and the scan said complete, exit 0 (GNU tar lists them and exits 2)."""
    data = bytearray(tar_bytes({"m0.txt": OTHER, "m1.txt": OTHER + b"1", "secret.bin": NOTABLE,
                                "m3.txt": OTHER + b"3"}))  # fmt: skip
    second = 1024  # m0's header and its one data block come first
    assert data[second : second + 6] == b"m1.txt"
    data[second + 100] ^= 1  # a bit of m1's mode: its header checksum fails
    blob = gzip.compress(bytes(data), mtime=0) if compression else bytes(data)
    ev = tmp_path / "ev"
    ev.mkdir()
    name = "d.tar" + (".gz" if compression else "")
    (ev / name).write_bytes(blob)
    result, log = scan(db, tmp_path, ev, "--archives")
    assert result.exit_code == ExitCode.NOTABLE | ExitCode.INCOMPLETE, result.output
    inventory = rows(log)
    assert inventory[os.fsencode(f"{ev}/{name}!secret.bin")]["verdict"] == "notable"
    assert inventory[os.fsencode(f"{ev}/{name}!m3.txt")]["verdict"] == "unknown"
    assert os.fsencode(f"{ev}/{name}!m1.txt") not in inventory
    error = inventory[os.fsencode(f"{ev}/{name}!")]
    assert error["failure"] == "walk-error" and "damaged tar: from byte 1024 to byte" in error["detail"]
    assert assert_counts_add_up(log)["errors"] == 1


def test_an_archives_own_entry_never_takes_the_path_of_a_file_named_like_it(
    db: Path, tmp_path: Path
) -> None:
    """Before: a damaged tar's entry `d.tar!` and a real file named `d.tar!` beside it had one
    path: two inventory rows of it, and a resume (which skips a path once finished) dropped
    the file."""
    data = bytearray(tar_bytes({"m0.txt": OTHER, "m1.txt": OTHER + b"1", "m3.txt": OTHER}))
    data[1024 + 100] ^= 1  # m1's header checksum fails: a walk-error entry `d.tar!`
    ev = tmp_path / "ev"
    ev.mkdir()
    (ev / "d.tar").write_bytes(bytes(data))
    (ev / "d.tar!").write_bytes(NOTABLE)
    result, log = scan(db, tmp_path, ev, "--archives")
    assert result.exit_code == ExitCode.NOTABLE | ExitCode.INCOMPLETE, result.output
    inventory = rows(log)
    assert inventory[os.fsencode(f"{ev}/d.tar!")]["verdict"] == "notable"
    assert inventory[os.fsencode(f"{ev}/d.tar! (duplicate 2)")]["failure"] == "walk-error"
    conn = sqlite3.connect(f"{log}.inventory.db")
    paths = [row[0] for row in conn.execute("SELECT path FROM entries")]
    conn.close()
    assert len(paths) == len(set(paths))
    assert_counts_add_up(log)


@pytest.mark.parametrize("compression", ["", "gz"])
def test_tars_joined_end_to_end_are_all_listed(db: Path, tmp_path: Path, compression: str) -> None:
    """Before: `cat a.tar b.tar` (or two .tar.gz) listed a's members only, exit 0: b's
    notable member was never read. As `tar -i` does, both are listed; zero blocks are no damage."""
    first = tar_bytes({"a.txt": OTHER}, compression)
    second = tar_bytes({"b/secret.bin": NOTABLE}, compression)
    ev = tmp_path / "ev"
    ev.mkdir()
    name = "joined.tar" + (".gz" if compression else "")
    (ev / name).write_bytes(first + second)
    result, log = scan(db, tmp_path, ev, "--archives")
    assert result.exit_code == ExitCode.NOTABLE, result.output
    inventory = rows(log)
    assert inventory[os.fsencode(f"{ev}/{name}!b/secret.bin")]["verdict"] == "notable"
    assert inventory[os.fsencode(f"{ev}/{name}!a.txt")]["verdict"] == "unknown"
    assert assert_counts_add_up(log)["errors"] == 0


def test_garbage_after_a_tars_end_is_an_error(db: Path, tmp_path: Path) -> None:
    data = tar_bytes({"a.txt": OTHER}) + random.Random(4).randbytes(2048)
    ev = tmp_path / "ev"
    ev.mkdir()
    (ev / "tail.tar").write_bytes(data)
    result, log = scan(db, tmp_path, ev, "--archives")
    assert result.exit_code == ExitCode.INCOMPLETE, result.output
    error = rows(log)[os.fsencode(f"{ev}/tail.tar!")]
    assert error["failure"] == "walk-error" and "to its end" in error["detail"], error


def test_directory_entries_that_hold_data_are_read_as_members(db: Path, tmp_path: Path) -> None:
    """Before: a zip entry named `folder/`, or a 7z entry with the folder attribute, was passed
    over whatever it held: notable bytes hidden there were in no record, complete, exit 0."""
    import py7zr

    ev = tmp_path / "ev"
    ev.mkdir()
    (ev / "d.zip").write_bytes(zip_bytes({"folder/": NOTABLE, "empty/": b"", "x.txt": OTHER}))
    packed = io.BytesIO()
    with py7zr.SevenZipFile(packed, "w") as archive:
        for name, unix in (("folder7", True), ("dosfolder7", False)):
            archive.writestr(NOTABLE, name)
            entry = archive.header.files_info.files[-1]
            # FILE_ATTRIBUTE_DIRECTORY, with or without a Unix folder mode beside it
            entry["attributes"] = 0x10 | (((stat.S_IFDIR | 0o755) << 16) | 0x8000 if unix else 0)
    (ev / "d.7z").write_bytes(packed.getvalue())
    with py7zr.SevenZipFile(ev / "d.7z") as check:
        assert [m.is_directory for m in check.list()] == [True, True]
    result, log = scan(db, tmp_path, ev, "--archives")
    assert result.exit_code == ExitCode.NOTABLE, result.output
    inventory = rows(log)
    assert inventory[os.fsencode(f"{ev}/d.zip!folder/")]["verdict"] == "notable"
    assert inventory[os.fsencode(f"{ev}/d.7z!folder7")]["verdict"] == "notable"
    assert inventory[os.fsencode(f"{ev}/d.7z!dosfolder7")]["verdict"] == "notable"
    assert os.fsencode(f"{ev}/d.zip!empty/") not in inventory  # a plain folder entry
    assert assert_counts_add_up(log)["notable"] == 3


def test_a_member_listed_before_a_bomb_of_zeros_is_read_and_the_limit_named(db: Path, tmp_path: Path) -> None:
    """Before: a notable member listed before the zeros that trip the ratio limit was in no
    record (the archive's error said only 'ValueError'); tar padding is now skipped in large
    reads, not one block at a time."""
    ev = tmp_path / "ev"
    ev.mkdir()
    (ev / "b.tar.gz").write_bytes(gzip.compress(tar_bytes({"n.bin": NOTABLE}) + bytes(64 << 20), 1))
    result, log = scan(db, tmp_path, ev, "--archives")  # 64 MiB of zeros: far past 200:1
    assert result.exit_code == ExitCode.NOTABLE | ExitCode.INCOMPLETE, result.output
    inventory = rows(log)
    assert inventory[os.fsencode(f"{ev}/b.tar.gz!n.bin")]["verdict"] == "notable"
    error = inventory[os.fsencode(f"{ev}/b.tar.gz!")]
    assert error["failure"] == "walk-error" and "ratio limit" in error["detail"], error


def test_exclude_is_not_matched_against_archive_members_and_says_so(db: Path, tmp_path: Path) -> None:
    """A member's name may hold the `!` that joins nested paths: `keep/a!secret.bin` was taken
    for a member `secret.bin` and excluded, and a nested archive excluded was still opened."""
    ev = tmp_path / "ev"
    ev.mkdir()
    (ev / "a.zip").write_bytes(zip_bytes({"keep/a!secret.bin": NOTABLE}))
    result, log = scan(db, tmp_path, ev, "--archives", "--exclude", "secret.bin")
    assert result.exit_code == ExitCode.NOTABLE, result.output
    assert rows(log)[os.fsencode(f"{ev}/a.zip!keep/a!secret.bin")]["verdict"] == "notable"
    assert any("not matched against archive members" in n for n in read_log(log)[-1]["notes"])


def _flag_bad_utf8_name(data: bytes) -> bytes:
    """The zip `data` with every name starting 'name_XX' made 'name_\\xe9\\xe9...' (not UTF-8),
    its UTF-8 flag (bit 11) set in the local and central headers both."""
    raw = bytearray(data)
    for signature, flags, name in ((b"PK\x03\x04", 6, 30), (b"PK\x01\x02", 8, 46)):
        at = raw.find(signature)
        while at >= 0:
            if raw[at + name : at + name + 7] == b"name_XX":
                raw[at + name + 5 : at + name + 7] = b"\xe9\xe9"
                raw[at + flags + 1] |= 0x08  # bit 11 of the little-endian flags
            at = raw.find(signature, at + 4)
    return bytes(raw)


def test_a_zip_member_flagged_utf8_whose_name_is_not_is_read_with_its_name_bytes(
    db: Path, tmp_path: Path
) -> None:
    """Before: Python's zipfile decodes a name flagged UTF-8 strictly, so one such member made
    the whole zip 'archive cannot be listed: UnicodeDecodeError' (exit 4): the notable member
    beside it was never hashed. unzip and 7zz list both."""
    inner = _flag_bad_utf8_name(zip_bytes({"good.txt": NOTABLE, "name_XX.txt": OTHER}))
    assert inner.count(b"name_\xe9\xe9.txt") == 2  # local and central headers
    outer = _flag_bad_utf8_name(zip_bytes({"name_XX.dir/mixed.zip": inner}, zipfile.ZIP_STORED))
    ev = tmp_path / "ev"
    ev.mkdir()
    (ev / "mixed.zip").write_bytes(inner)
    (ev / "outer.zip").write_bytes(outer)
    result, log = scan(db, tmp_path, ev, "--archives")
    assert result.exit_code == ExitCode.NOTABLE, result.output
    counts = assert_counts_add_up(log)
    assert counts["errors"] == 0 and counts["notable"] == 2, counts
    inventory = rows(log)
    nested = os.fsencode(f"{ev}/outer.zip!") + b"name_\xe9\xe9.dir/mixed.zip!"
    for archive in (os.fsencode(f"{ev}/mixed.zip!"), nested):
        good = inventory[archive + b"good.txt"]
        assert good["verdict"] == "notable", good
        odd = inventory[archive + b"name_\xe9\xe9.txt"]  # the archive's bytes, kept
        assert bytes(odd["sha256"]) == hashlib.sha256(OTHER).digest()


def test_an_unreadable_file_is_one_error_with_archives_too(
    db: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before: with --archives, a file that could not be read was two errors, its own and a
    `FILE!` walk-error 'cannot look inside', though nothing showed it was an archive."""
    import matcher.scan as scan_mod
    from matcher.evidence import folder

    ev = tmp_path / "ev"
    ev.mkdir()
    (ev / "locked.zip").write_bytes(zip_bytes({"n.bin": NOTABLE}))
    (ev / "open.txt").write_bytes(OTHER)

    def deny(real: Any) -> Any:
        def opener(path: bytes, directory: bool = False) -> int:
            if path.endswith(b"locked.zip"):
                raise PermissionError(13, "Permission denied")
            return real(path, directory)  # type: ignore[no-any-return]

        return opener

    def deny_file(real: Any) -> Any:
        def opener(path: bytes) -> int:
            if path.endswith(b"locked.zip"):
                raise PermissionError(13, "Permission denied")
            return real(path)  # type: ignore[no-any-return]

        return opener

    monkeypatch.setattr(scan_mod, "open_readonly", deny(scan_mod.open_readonly))
    monkeypatch.setattr(folder, "open_readonly", deny(folder.open_readonly))
    monkeypatch.setattr(scan_mod, "open_file", deny_file(scan_mod.open_file))
    monkeypatch.setattr(folder, "open_file", deny_file(folder.open_file))
    for extra in ((), ("--archives",)):
        result, log = scan(db, tmp_path, ev, "--jobs", "1", *extra)
        assert result.exit_code == ExitCode.INCOMPLETE, result.output
        counts = assert_counts_add_up(log)
        assert counts["entries"] == 2 and counts["errors"] == 1, (extra, counts)
        errors = [r for r in read_log(log) if r["type"] == "error"]
        assert [(e["path"], e["reason"]) for e in errors] == [(f"{ev}/locked.zip", "unreadable")]


def test_a_file_in_an_image_that_cannot_be_read_is_one_error_with_archives_too(
    db: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before: a file in an image that could not be read (the image cut short) was an
    io-error and a `FILE!` walk-error 'cannot look inside' beside it."""
    from matcher.evidence import image as image_mod

    data = zip_bytes({"n.bin": OTHER * 7})
    tree = tmp_path / "tree"
    tree.mkdir()
    (tree / "z.zip").write_bytes(data)
    (tree / "n.bin").write_bytes(NOTABLE)
    real = image_mod.read_range

    def cut_short(handle: tuple[Any, int, int], offset: int, size: int) -> bytes:
        if handle[0].info.meta.size == len(data):
            raise OSError(5, "short read: the image ends here")
        return real(handle, offset, size)

    image = tmp_path / "disk.raw"
    subprocess.run([peer_tool("mke2fs"), "-q", "-F", "-t", "ext4", "-b", "4096", "-d", str(tree),
                    str(image), "16M"], check=True, capture_output=True)  # fmt: skip
    monkeypatch.setattr(image_mod, "read_range", cut_short)
    result, log = scan(db, tmp_path, image, "--archives", "--jobs", "1")
    assert result.exit_code == ExitCode.NOTABLE | ExitCode.INCOMPLETE, result.output
    errors = [r for r in read_log(log) if r["type"] == "error"]
    volume = f"{image}!p0@0:ext4"
    assert [(e["path"], e["reason"]) for e in errors] == [(f"{volume}/z.zip", "io-error")]
    assert assert_counts_add_up(log)["errors"] == 1


def _zip_after(prefix: bytes, files: dict[str, bytes], comment: bytes = b"") -> bytes:
    """`prefix` then a zip whose offsets count from the file's start (as `zip -A` makes an SFX)."""
    out = io.BytesIO(prefix)
    out.seek(0, io.SEEK_END)
    with zipfile.ZipFile(out, "a") as archive:  # appends to data that is not a zip
        for name, data in files.items():
            archive.writestr(zipfile.ZipInfo(name, (2024, 1, 1, 0, 0, 0)), data)
        archive.comment = comment
    return out.getvalue()


def test_a_zip_after_other_data_and_a_v7_tar_are_opened(db: Path, tmp_path: Path) -> None:
    """Before: archives were found by their first bytes only, so a zip after other data (a
    self-extractor, a zip appended to an image) and a V7 tar (no 'ustar' magic) were hashed as
    files, their members never read, with no word of it; unzip, 7zz and tar list them."""
    tar = shutil.which("tar")
    assert tar is not None
    rng = random.Random(7)
    blob = bytes(rng.getrandbits(8) for _ in range(20_000))
    ev = tmp_path / "ev"
    ev.mkdir()
    member = {"in/notable.bin": NOTABLE}
    (ev / "sfx.exe").write_bytes(b"MZ" + blob + zip_bytes(member))  # offsets from the zip
    (ev / "adjusted.exe").write_bytes(_zip_after(b"MZ" + blob, member, b"a zip comment"))
    (ev / "photo.jpg").write_bytes(b"\xff\xd8\xff\xe0" + blob[:300] + zip_bytes(member))
    (ev / "small.bin").write_bytes(b"#!/bin/sh\n" + zip_bytes(member))  # a head that is all
    src = tmp_path / "src"
    (src / "in").mkdir(parents=True)
    (src / "in" / "notable.bin").write_bytes(NOTABLE)
    subprocess.run([tar, "--format=v7", "-C", str(src), "-cf", str(ev / "old.tar"), "in"],
                   check=True)  # fmt: skip
    assert b"ustar" not in (ev / "old.tar").read_bytes()
    (ev / "old.tar.gz").write_bytes(gzip.compress((ev / "old.tar").read_bytes(), mtime=0))
    result, log = scan(db, tmp_path, ev, "--archives")
    assert result.exit_code == ExitCode.NOTABLE, result.output
    counts = assert_counts_add_up(log)
    assert counts["errors"] == 0 and counts["skipped"] == 0, counts
    matches = sorted(r["path"] for r in read_log(log) if r["type"] == "match")
    names = ("adjusted.exe", "old.tar", "old.tar.gz", "photo.jpg", "sfx.exe", "small.bin")
    assert matches == [f"{ev}/{name}!in/notable.bin" for name in names]
    # Given as a root of its own, an SFX is walked, and not noted "hashed as one file".
    result, log = scan(db, tmp_path, ev / "sfx.exe", "--archives")
    assert result.exit_code == ExitCode.NOTABLE, result.output
    assert not any("hashed as one file" in note for note in read_log(log)[-1]["notes"])


def test_archive_detection_never_fires_on_random_or_near_miss_data(tmp_path: Path) -> None:
    """A zip found by its end record, a tar by its header checksum: ordinary files (random
    bytes, text of digits, a header or an end record one byte off) are never taken for one."""
    from matcher.evidence import zips

    rng = random.Random(11)
    for size in [*range(4, 600, 7), *(rng.randrange(600, 20_000) for _ in range(1000))]:
        data = rng.randbytes(size)
        digits = bytes(rng.choices(b"01234567 \n", k=size))
        for sample in (data, digits, b"\x00" * size, b" " * size):
            assert archive_mod.archive_format(sample[: archive_mod.HEAD]) is None
            assert zips.central_directory_at(sample[-archive_mod.HEAD :], size) is None
    # Near misses: a real end record and V7 header, each with one field off.
    ending = b"junk" * 100 + zip_bytes({"a": b"x"}, zipfile.ZIP_STORED)
    assert zips.central_directory_at(ending, len(ending)) == ending.index(b"PK\x01\x02")
    at = ending.rindex(b"PK\x05\x06")
    for offset in (4, 6, 8, 10, 20):  # disk numbers, entries, comment length
        broken = bytearray(ending)
        broken[at + offset] ^= 1
        assert zips.central_directory_at(bytes(broken), len(broken)) is None, offset
    assert zips.central_directory_at(ending + b"\x00", len(ending) + 1) is None
    src = tmp_path / "f"
    src.write_bytes(b"x")
    tar = shutil.which("tar")
    assert tar is not None
    subprocess.run([tar, "--format=v7", "-C", str(tmp_path), "-cf", str(tmp_path / "v.tar"), "f"],
                   check=True)  # fmt: skip
    header = (tmp_path / "v.tar").read_bytes()[:512]
    assert archive_mod.archive_format(header) == "tar"
    for offset in (0, 100, 124, 149, 156, 300):
        broken = bytearray(header)
        broken[offset] = 0x39 if broken[offset] != 0x39 else 0x38
        assert archive_mod.archive_format(bytes(broken)) is None, offset


def test_a_zip64_end_record_with_real_values_in_the_plain_one_is_found(tmp_path: Path) -> None:
    """Python's zipfile adds a zip64 end record past 2 GiB while the plain one holds real
    values: the directory was looked for 76 bytes (the zip64 records) too far, and a zip
    appended to a 2.2 GB file was never opened."""
    from matcher.evidence import zips

    big = tmp_path / "video.bin"
    with open(big, "wb") as sparse:
        sparse.truncate(2200 << 20)  # sparse: no data written
    with zipfile.ZipFile(big, "a") as archive:
        archive.writestr("m.txt", b"x")
    size = big.stat().st_size
    with open(big, "rb") as stream:
        stream.seek(size - archive_mod.HEAD)
        tail = stream.read()
        at = zips.central_directory_at(tail, size)
        assert tail.find(b"PK\x06\x06") > 0  # the case: a zip64 record ...
        assert at == size - len(tail) + tail.index(b"PK\x01\x02")  # ... and the directory found
        assert zips.directory_starts_at(stream, at)


def test_running_out_of_open_files_while_listing_an_archive_stops_the_scan(
    db: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before: EMFILE while a zip was listed became the zip's walk-error: 'complete', exit 4,
    errno lost, and --resume refused (a complete run). matcher's own limit stops the run."""
    import errno

    import matcher.evidence.archive as archive_mod
    import matcher.scan as scan_mod

    ev = tmp_path / "ev"
    ev.mkdir()
    (ev / "a.zip").write_bytes(zip_bytes({"notable.bin": NOTABLE}))

    def out_of_files(*args: object, **kwargs: object) -> None:
        raise OSError(errno.EMFILE, "Too many open files")

    log = tmp_path / "run.jsonl"
    options = scan_mod.ScanOptions([ev], "E", "C", db, log, jobs=1, archives=True)
    with monkeypatch.context() as limited:
        limited.setattr(archive_mod.ArchiveWalker, "_zip", out_of_files)
        with pytest.raises(scan_mod.ScanAborted, match=r"ran out of open files \(EMFILE\)"):
            scan_mod.run_scan(options)
    assert read_log(log)[-1]["status"] == "interrupted"
    summary = scan_mod.run_scan(dataclasses.replace(options, resume=True))
    assert summary.status == "complete" and summary.counts.notable == 1


def test_an_archive_larger_than_max_size_is_not_opened(db: Path, tmp_path: Path) -> None:
    """--max-size skipped the archive as too large, yet read it for its members: a big read
    the examiner asked to spare. Its members stay unlisted; a smaller archive is opened."""
    ev = tmp_path / "ev"
    ev.mkdir()
    (ev / "big.zip").write_bytes(zip_bytes({"n.bin": NOTABLE, "pad": os.urandom(8192)}, zipfile.ZIP_STORED))
    (ev / "small.zip").write_bytes(zip_bytes({"n.bin": NOTABLE}))
    result, log = scan(db, tmp_path, ev, "--archives", "--max-size", "4K")
    assert result.exit_code == 1, result.output
    counts = assert_counts_add_up(log)
    assert counts["skipped_by_reason"] == {"too-large": 1}, counts
    matches = [r["path"] for r in read_log(log) if r["type"] == "match"]
    assert matches == [str(ev / "small.zip!n.bin")], matches


# -- an archive rewritten in place after its members were listed -------------------------

OLD_MTIME = 1_600_000_000


def _listed_members(archive: Path) -> list[FileTask]:
    """The archive's members as a scan lists them (the walk's base locator, its identity)."""
    from matcher.evidence.folder import FolderWalker
    from matcher.evidence.sources import EvidenceWalker

    walker = EvidenceWalker(FolderWalker(()), {}, archives=ArchiveLimits())
    (task,) = [t for t in FolderWalker(()).walk([os.fsencode(archive)]) if isinstance(t, FileTask)]
    return [t for t in walker._inside(task, None) if isinstance(t, FileTask)]


def _rewrite_in_place(path: Path, data: bytes, keep_mtime: bool = False) -> None:
    """Write `data` over the file at `path`: the same inode, the same size."""
    before = path.stat()
    assert len(data) == before.st_size
    with path.open("r+b") as out:
        out.write(data)
    if keep_mtime:
        # Note: a writer that sets the mtime back still moves the ctime (wait for its tick).
        while True:
            os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
            if path.stat().st_ctime_ns != before.st_ctime_ns:
                break
    assert path.stat().st_ino == before.st_ino


def _hash_member(task: FileTask, reader: Any = None) -> EntryOutcome:
    from matcher.evidence.folder import open_readonly
    from matcher.evidence.sources import read_chunks
    from matcher.hashing import Hasher

    hasher = Hasher(("sha256",), open_readonly, chunk_size=256, chunk_reader=reader or read_chunks)
    return hasher.run(task)


def _packed(kind: str, files: dict[str, bytes], tmp_path: Path) -> bytes:
    """An archive of `files`, stored (its size the same for members of the same sizes)."""
    if kind == "7z":
        src = seven_tree(tmp_path / f"src{len(list(tmp_path.iterdir()))}", files)
        packed = tmp_path / "packed.7z"
        packed.unlink(missing_ok=True)
        return seven(packed, src, "-mx0", "-mhc=off", names=tuple(files)).read_bytes()
    if kind == "zip":
        return zip_bytes(files, zipfile.ZIP_STORED)
    if kind == "tar.gz":
        return gzip.compress(tar_bytes(files), compresslevel=0, mtime=0)
    return tar_bytes(files)


def _archive_of(kind: str, files: dict[str, bytes], tmp_path: Path) -> Path:
    archive = tmp_path / f"a.{kind}"
    archive.write_bytes(_packed(kind, files, tmp_path))
    os.utime(archive, (OLD_MTIME, OLD_MTIME))
    return archive


ONE = b"the first benign member, as listed\n" * 40
TWO = b"the second benign member, as listd\n" * 40  # the same size as ONE


@pytest.mark.parametrize("kind", ["tar", "tar.gz", "zip", "7z"])
def test_a_member_of_an_archive_rewritten_after_listing_is_changed_not_a_digest(
    tmp_path: Path, kind: str
) -> None:
    """Before: a worker reopened the archive checking only its device and inode: a tar member
    rewritten in place gave the digest of bytes the listing never saw, and a zip rewritten
    with its members swapped gave one member's digest under the other's name, no error."""
    archive = _archive_of(kind, {"one.bin": ONE, "two.bin": TWO}, tmp_path)
    first, second = _listed_members(archive)
    assert first.path.endswith(b"!one.bin")
    swapped = _packed(kind, {"one.bin": TWO, "two.bin": ONE}, tmp_path)
    if kind == "zip":  # the same names, the members in the other order
        swapped = zip_bytes({"two.bin": TWO, "one.bin": ONE}, zipfile.ZIP_STORED)
    _rewrite_in_place(archive, swapped)
    try:
        for task in (first, second):
            out = _hash_member(task)
            assert out.failure == Failure.CHANGED and out.digests is None, out
            assert out.detail == "the archive changed after it was listed", out
    finally:
        archive_mod.close_cached()


def test_a_cached_container_is_checked_again_for_each_member(tmp_path: Path) -> None:
    """Before: a worker kept a compressed tar's decompressor open across members; the next
    member, read after the archive was rewritten in place (its mtime set back), was hashed."""
    archive = _archive_of("tar.gz", {"one.bin": ONE, "two.bin": TWO}, tmp_path)
    first, second = _listed_members(archive)
    try:
        out = _hash_member(first)
        assert out.digests == {"sha256": hashlib.sha256(ONE).digest()}, out
        data = _packed("tar.gz", {"one.bin": ONE, "two.bin": ONE}, tmp_path)
        _rewrite_in_place(archive, data, keep_mtime=True)
        out = _hash_member(second)
        assert out.failure == Failure.CHANGED and out.digests is None, out
    finally:
        archive_mod.close_cached()


@pytest.mark.parametrize("kind", ["tar", "tar.gz", "zip", "7z"])
def test_a_member_whose_archive_is_rewritten_while_it_is_read_is_changed(
    tmp_path: Path, kind: str
) -> None:
    """Before: a tar member rewritten in place while it was read gave a torn digest (bytes
    that never existed together), logged as hashed; only the archive itself was 'changed'."""
    from matcher.evidence.sources import read_chunks

    archive = _archive_of(kind, {"one.bin": ONE, "two.bin": TWO}, tmp_path)
    first, _ = _listed_members(archive)
    swapped = _packed(kind, {"one.bin": TWO, "two.bin": ONE}, tmp_path)

    def rewritten_midway(task: FileTask, buffer: memoryview) -> Any:
        chunks = read_chunks(task, buffer)
        yield next(chunks)
        _rewrite_in_place(archive, swapped, keep_mtime=True)
        yield from chunks

    try:
        out = _hash_member(first, rewritten_midway)
        assert out.failure == Failure.CHANGED and out.digests is None, out
        assert out.detail == "the archive changed while the member was read", out
    finally:
        archive_mod.close_cached()


def test_an_archive_changed_between_the_walk_and_its_listing_is_not_listed(tmp_path: Path) -> None:
    """Its members would be of another file than the walk saw; the file's own read says
    'changed'. Before: they were listed from the new content, with no word of it."""
    from matcher.evidence.folder import FolderWalker
    from matcher.evidence.sources import EvidenceWalker

    archive = _archive_of("zip", {"one.bin": ONE, "two.bin": TWO}, tmp_path)
    walker = EvidenceWalker(FolderWalker(()), {}, archives=ArchiveLimits())
    (task,) = [t for t in FolderWalker(()).walk([os.fsencode(archive)]) if isinstance(t, FileTask)]
    _rewrite_in_place(archive, zip_bytes({"two.bin": TWO, "one.bin": ONE}, zipfile.ZIP_STORED))
    assert list(walker._inside(task, None)) == []


def test_a_nested_archive_larger_than_max_size_is_not_opened(db: Path, tmp_path: Path) -> None:
    """Only outer archives were spared: a small outer zip's large inner zip was still opened
    and its members read, though the inner one was listed as too large."""
    ev = tmp_path / "ev"
    ev.mkdir()
    inner = zip_bytes({"zeros": bytes(8192), "n.bin": NOTABLE}, zipfile.ZIP_STORED)
    (ev / "outer.zip").write_bytes(zip_bytes({"inner.zip": inner}))
    result, log = scan(db, tmp_path, ev, "--archives", "--max-size", "4K")
    assert result.exit_code == 0, result.output
    counts = assert_counts_add_up(log)
    assert counts["skipped_by_reason"] == {"too-large": 1} and counts["notable"] == 0, counts


@pytest.mark.parametrize(
    ("kind", "options", "method"),
    [
        ("zip", ("-tzip", "-mm=Deflate64"), "zip method 9 (Deflate64)"),
        ("zip", ("-tzip", "-mm=PPMd"), "zip method 98 (PPMd)"),
        ("7z", ("-t7z", "-m0=ARM64", "-m1=LZMA2"), "py7zr cannot decode"),
    ],
)
def test_a_member_compressed_by_a_method_no_decoder_reads_is_unsupported_not_an_io_error(
    db: Path, tmp_path: Path, kind: str, options: tuple[str, ...], method: str
) -> None:
    """Before: a zip member in Deflate64 (or PPMd), a 7z one behind ARM64, was an `io-error`
    ("EIO: archive member unreadable"), which reads as damaged evidence; it is content this
    installation cannot decode: `unsupported`, saying which method."""
    src = seven_tree(tmp_path / "src", {"big.txt": NOTABLE * 4096, "other.txt": b"x" * 5000})
    ev = tmp_path / "ev"
    ev.mkdir()
    seven(ev / f"a.{kind}", src, *options)
    result, log = scan(db, tmp_path, ev, "--archives")
    assert_counts_add_up(log)
    members = {k: v for k, v in rows(log).items() if b"!" in k and not k.endswith(b"!")}
    assert members and all(r["skip"] == "unsupported" for r in members.values()), members
    assert all(method in r["detail"] for r in members.values()), members
    assert not any(r["failure"] for r in rows(log).values())


def test_a_zip_member_whose_method_no_zip_tool_defines_stays_an_error(db: Path, tmp_path: Path) -> None:
    """A method number APPNOTE does not define (200) is a damaged or forged header, not content
    this installation lacks a decoder for: an error (exit flag 4), never a quiet `unsupported`."""
    import struct

    raw = io.BytesIO()
    with zipfile.ZipFile(raw, "w", zipfile.ZIP_STORED) as archive:
        archive.writestr("m.txt", NOTABLE)
    data = bytearray(raw.getvalue())
    local = data.index(b"PK\x03\x04")
    central = data.index(b"PK\x01\x02")
    struct.pack_into("<H", data, local + 8, 200)
    struct.pack_into("<H", data, central + 10, 200)
    ev = tmp_path / "ev"
    ev.mkdir()
    (ev / "m200.zip").write_bytes(bytes(data))
    result, log = scan(db, tmp_path, ev, "--archives")
    assert result.exit_code & 4, result.output
    member = rows(log)[bytes(ev / "m200.zip") + b"!m.txt"]
    assert member["failure"] is not None and member["skip"] is None, member


@pytest.mark.parametrize("kind", ["gz", "xz", "bz2"])
def test_bytes_after_a_compressed_files_last_member(db: Path, tmp_path: Path, kind: str) -> None:
    """Before: xz stream padding (zeros, which `xz -d` reads past) was an EOFError, and a gzip
    file with junk after its member (which `gzip -d` reads, "trailing garbage ignored") a
    BadGzipFile: the archive an error, no member of it hashed, a notable file inside missed.
    Now zeros are padding, and junk is read past with an error naming it."""
    pack = {"gz": lambda d: gzip.compress(d, mtime=0), "xz": lzma.compress, "bz2": bz2.compress}[kind]
    ev = tmp_path / "ev"
    ev.mkdir()
    (ev / f"padded.{kind}").write_bytes(pack(NOTABLE) + bytes(8))
    (ev / f"junk.{kind}").write_bytes(pack(NOTABLE) + b"JUNK-AFTER-IT")
    (ev / f"junk.tar.{kind}").write_bytes(pack(tar_bytes({"n": NOTABLE})) + b"JUNK-AFTER-IT")
    (ev / f"two.{kind}").write_bytes(pack(NOTABLE[:5]) + bytes(4) + pack(NOTABLE[5:]))
    result, log = scan(db, tmp_path, ev, "--archives")
    assert_counts_add_up(log)
    found = rows(log)
    for name in (f"padded.{kind}", f"junk.{kind}", f"junk.tar.{kind}!n", f"two.{kind}"):
        member = next(v for k, v in found.items() if k.startswith(bytes(ev / name)) and b"!" in k[len(bytes(ev)):]
                      and v["sha256"] is not None)  # fmt: skip
        assert bytes(member["sha256"]) == hashlib.sha256(NOTABLE).digest(), name
    errors = {k: v for k, v in found.items() if v["failure"] is not None}
    assert set(errors) == {bytes(ev / f"junk.{kind}") + b"!", bytes(ev / f"junk.tar.{kind}") + b"!"}, errors
    assert all(f"start no {kind} member" in v["detail"] for v in errors.values())
    assert b"JUNK" not in log.read_bytes()


def test_a_gzip_member_whose_crc_does_not_match_is_still_an_error(db: Path, tmp_path: Path) -> None:
    data = bytearray(gzip.compress(NOTABLE, mtime=0))
    data[-8] ^= 0xFF  # the CRC-32 in the member's trailer
    ev = tmp_path / "ev"
    ev.mkdir()
    (ev / "bad.gz").write_bytes(bytes(data))
    result, log = scan(db, tmp_path, ev, "--archives")
    assert result.exit_code & 4, result.output
    assert not [v for v in rows(log).values() if v["sha256"] is not None and bytes(v["sha256"]) == hashlib.sha256(NOTABLE).digest()
                and b"!" in bytes(v["path"])]  # fmt: skip


def test_candidates_only_with_archives_does_not_say_an_opened_archive_was_not_read(tmp_path: Path) -> None:
    """With --archives, an archive of no candidate size is still opened and its members read;
    the end record said "N files not read" of it."""
    import hashlib
    import subprocess
    import sys
    import zipfile

    ev = tmp_path / "ev"
    ev.mkdir()
    with zipfile.ZipFile(ev / "a.zip", "w") as z:
        z.writestr("s.txt", b"zip secret\n")
        z.writestr("big", os.urandom(300_000))
    listed = tmp_path / "n.csv"
    digest = hashlib.md5(b"zip secret\n").hexdigest()
    listed.write_text(f"md5,size\n{digest},11\n")
    matcher = [sys.executable, "-m", "matcher"]
    subprocess.run([*matcher, "import", str(listed), "--db", str(tmp_path / "s.db")], check=True, capture_output=True)
    log = tmp_path / "z.jsonl"
    done = subprocess.run([*matcher, "scan", str(ev), "--examiner", "E", "--case", "C", "--db", str(tmp_path / "s.db"),
                           "--log", str(log), "--archives", "--candidates-only", "-q"], capture_output=True)  # fmt: skip
    assert done.returncode == 1, done.stderr
    notes = [json.loads(line) for line in log.read_bytes().splitlines()][-1]["notes"]
    said = [n for n in notes if n.startswith("--candidates-only: ")]
    assert said and "not read" not in said[0], notes
    assert "archives are opened whatever their size: 1 were, and their members" in said[0], notes
    # Without an archive in the evidence, nothing is said of archives.
    (ev / "a.zip").unlink()
    (ev / "b.txt").write_bytes(b"no archive")
    log2 = tmp_path / "z2.jsonl"
    done = subprocess.run([*matcher, "scan", str(ev), "--examiner", "E", "--case", "C", "--db", str(tmp_path / "s.db"),
                           "--log", str(log2), "--archives", "--candidates-only", "-q"], capture_output=True)  # fmt: skip
    notes = [json.loads(line) for line in log2.read_bytes().splitlines()][-1]["notes"]
    said = [n for n in notes if n.startswith("--candidates-only: ")]
    assert said and "archive" not in said[0], notes


def test_a_member_path_under_a_folder_beside_the_zip_takes_another(db: Path, tmp_path: Path) -> None:
    """A folder `c.zip!d` beside `c.zip` holds `x`: the member `d/x` takes another path,
    its siblings `d/z` (no such file) and `e/y` keep theirs."""
    evidence = tmp_path / "ev"
    (evidence / "c.zip!d").mkdir(parents=True)
    (evidence / "c.zip!d" / "x").write_bytes(NOTABLE)
    (evidence / "c.zip").write_bytes(zip_bytes({"d/x": NOTABLE, "d/z": NOTABLE, "e/y": NOTABLE}))
    result, log = scan(db, tmp_path, evidence, "--archives")
    matches = sorted(os.path.relpath(str(r["path"]), evidence) for r in read_log(log) if r["type"] == "match")
    assert matches == ["c.zip!d/x", "c.zip!d/x (duplicate 2)", "c.zip!d/z", "c.zip!e/y"], matches
    assert_counts_add_up(log)


def test_member_paths_beside_a_zip_are_looked_up_once_per_first_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from matcher.evidence import sources

    looked: list[bytes] = []
    real = os.path.lexists

    def counting(path: bytes) -> bool:
        looked.append(path)
        return real(path)

    monkeypatch.setattr(sources.os.path, "lexists", counting)
    archive = os.fsencode(tmp_path / "a.zip")
    exists = sources._ExistsBeside(archive)
    paths = [archive + b"!d%d/f%d" % (i % 3, i) for i in range(300)]
    assert not any(exists(p) for p in paths)
    assert len(looked) == 3  # a.zip!d0, a.zip!d1, a.zip!d2
    (tmp_path / "a.zip!top").write_bytes(b"x")
    assert exists(archive + b"!top") and not exists(archive + b"!other")


def test_max_members_raises_or_lowers_the_members_read_and_is_recorded(db: Path, tmp_path: Path) -> None:
    """The members limit was fixed at 100,000: a phone's file system zip of more had the rest
    as one `too-many-members` entry, with no way to read them."""
    ev = tmp_path / "ev"
    ev.mkdir()
    members = {f"m{i}.bin": b"member %d\n" % i for i in range(5)}
    (ev / "a.zip").write_bytes(zip_bytes(members))
    result, log = scan(db, tmp_path, ev, "--archives", "--max-members", "3")
    records = read_log(log)
    assert records[0]["options"]["archives"]["max_members"] == 3
    counts = assert_counts_add_up(log)
    assert counts["skipped_by_reason"] == {"too-many-members": 1}, counts
    assert counts["files"] == 1 + 3  # the zip itself, and three of its members
    result, log = scan(db, tmp_path, ev, "--archives", "--max-members", "5")
    counts = assert_counts_add_up(log)
    assert counts["files"] == 1 + 5 and not counts["skipped_by_reason"], counts
    args = ["scan", str(ev), "--examiner", "E", "--case", "C", "--db", str(db)]
    refused = CliRunner().invoke(cli, [*args, "--log", str(tmp_path / "n.jsonl"), "--max-members", "9"])
    assert refused.exit_code == 2 and "add --archives" in refused.output
    manifest = tmp_path / "m.csv"
    manifest.write_text(f"evidence,case,examiner\n{ev},C,E\n")
    refused = CliRunner().invoke(cli, ["batch", str(manifest), "--db", str(db), "--max-members", "9"])
    assert refused.exit_code == 2 and "add --archives" in refused.output
