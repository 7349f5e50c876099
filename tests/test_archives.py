"""Archives through `matcher scan --archives`: members, nesting, bombs, encryption, links."""

from __future__ import annotations

import bz2
import gzip
import hashlib
import io
import lzma
import os
import sqlite3
import subprocess
import tarfile
import zipfile
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from conftest import assert_counts_add_up
from conftest import peer_tool
from conftest import read_log

from matcher.cli import cli
from matcher.errors import ExitCode
from matcher.evidence.archive import ArchiveLimits
from matcher.evidence.archive import ArchiveWalker
from matcher.models import EntryOutcome
from matcher.models import FileTask

NOTABLE = b"a benign notable member for the archive tests\n" * 5
OTHER = b"another benign member\n"


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
            ("file", os.fsencode(archive)),
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
            ("file", os.fsencode(archive)),
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
