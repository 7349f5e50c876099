"""Disk images through `matcher scan`: every file of every partition, against the source manifest.

The images are built at test time from a seeded tree by `fixtures/images/build.py`
(Debian tools, no mounting). Under CI a missing tool or the missing `images`
extra fails the run instead of skipping it.
"""

from __future__ import annotations

import hashlib
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from conftest import FIXTURES
from conftest import assert_counts_add_up
from conftest import peer_tool
from conftest import read_log

from matcher.cli import cli
from matcher.errors import ExitCode

sys.path.insert(0, str(FIXTURES / "images"))
import build  # noqa: E402

NOTABLE_SHA256 = hashlib.sha256(build.NOTABLE_CONTENT).hexdigest()
ADS = {b"dup1.txt:secret.ads", b"hardlink_to_dup1.txt:secret.ads"}


def _require_images() -> None:
    missing = build.missing_tools()
    try:
        import pyewf  # noqa: F401
        import pytsk3  # noqa: F401
    except ImportError:
        missing.append("pytsk3/libewf-python (pip install 'matcher[images]')")
    if missing:
        pytest.fail(f"image tests need {', '.join(missing)} (.ci/run installs them)")


@pytest.fixture(scope="session")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    _require_images()
    out = tmp_path_factory.mktemp("images")
    result = build.build_all(out / "fx")
    db = out / "store.db"
    listing = out / "notable.sha256"
    listing.write_text(f"{NOTABLE_SHA256}  notable.bin\n")
    outcome = CliRunner().invoke(
        cli, ["import", str(listing), "--db", str(db), "--role", "notable"]
    )
    assert outcome.exit_code == 0, outcome.output
    result["db"] = db
    return result


def run(
    built: dict[str, Any], tmp_path: Path, *evidence: Path, extra: tuple[str, ...] = ()
) -> tuple[Any, Path]:
    log = tmp_path / f"run{len(list(tmp_path.glob('*.jsonl')))}.jsonl"
    args = [
        "scan",
        *map(str, evidence),
        "--examiner",
        "Test Examiner",
        "--case",
        "IMG-1",
        "--db",
        str(built["db"]),
        "--log",
        str(log),
        "-q",
        *extra,
    ]
    result = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert "Traceback" not in result.output
    return result, log


def inventory(log: Path) -> list[dict[str, Any]]:
    conn = sqlite3.connect(f"{log}.inventory.db")
    conn.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in conn.execute("SELECT * FROM entries ORDER BY path")]
    finally:
        conn.close()


def hashed(log: Path, prefix: bytes) -> dict[bytes, dict[str, object]]:
    """{inner path: manifest-style digests} of everything hashed under `prefix`."""
    found: dict[bytes, dict[str, object]] = {}
    for row in inventory(log):
        path = bytes(row["path"])
        if row["md5"] is None or not path.startswith(prefix):
            continue
        found[path[len(prefix) :]] = {
            "md5": bytes(row["md5"]).hex(),
            "sha1": bytes(row["sha1"]).hex(),
            "sha256": bytes(row["sha256"]).hex(),
            "size": row["size"],
        }
    return found


def expected(
    built: dict[str, Any], mode: str, deleted_gone: bool, ads: bool = False
) -> dict[bytes, Any]:
    manifest = dict(built["manifests"][mode])
    if deleted_gone:
        del manifest[build.DELETED]
    if ads:
        digest = {
            "md5": hashlib.md5(build.ADS_CONTENT).hexdigest(),
            "sha1": hashlib.sha1(build.ADS_CONTENT).hexdigest(),
            "sha256": hashlib.sha256(build.ADS_CONTENT).hexdigest(),
            "size": len(build.ADS_CONTENT),
        }
        manifest.update({name: digest for name in ADS})
    return {b"/" + k: v for k, v in manifest.items()}


# (image, [(partition label, manifest mode, deleted content gone, has ADS)])
# Documented differences: deleted_me.txt is deleted in every image (NTFS: by
# clearing its MFT record's in-use flag, build.ntfs_delete); the FAT and exFAT
# trees have no links, newline or non-BMP names; NTFS adds the ADS; symlinks
# are skipped.
CASES = {
    "ext4.raw": [(b"p0@0:ext4", "full", True, False)],
    "fat32.raw": [(b"p0@0:fat32", "fat", True, False)],
    "ntfs.raw": [(b"p0@0:ntfs", "ntfs", True, True)],
    "exfat.raw": [(b"p0@0:exfat", "fat", True, False)],
    "gpt.raw": [
        (b"p1@1048576:ext4", "full", True, False),
        (b"p2@68157440:fat32", "fat", True, False),
    ],
    "mbr.raw": [
        (b"p1@1048576:ntfs", "ntfs", True, True),
        (b"p2@69206016:ext4", "full", True, False),
    ],
    "ext4.E01": [(b"p0@0:ext4", "full", True, False)],
    "gpt.E01": [
        (b"p1@1048576:ext4", "full", True, False),
        (b"p2@68157440:fat32", "fat", True, False),
    ],
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_every_file_of_every_partition_matches_the_manifest(
    built: dict[str, Any], tmp_path: Path, name: str
) -> None:
    image = built["dir"] / name
    result, log = run(built, tmp_path, image)
    assert result.exit_code == ExitCode.NOTABLE, result.output
    counts = assert_counts_add_up(log)
    assert counts["errors"] == 0
    total = 0
    for label, mode, gone, ads in CASES[name]:
        prefix = os.fsencode(image) + b"!" + label
        got = hashed(log, prefix)
        assert got == expected(built, mode, gone, ads), label
        total += len(got)
    assert counts["files"] == total
    rows = {bytes(r["path"]): r for r in inventory(log)}
    skips = {r["skip"] for r in rows.values() if r["skip"]}
    assert "fs-metadata" in skips
    if any(gone for _, _, gone, _ in CASES[name]):
        assert "deleted" in skips
    records = read_log(log)
    run_record = records[0]
    assert run_record["images"][0]["path"] == str(image)
    matches = {r["path"] for r in records if r["type"] == "match"}
    assert matches == {f"{image}!{label.decode()}/notable.bin" for label, *_ in CASES[name]}


def test_fs_metadata_is_listed_and_counted(built: dict[str, Any], tmp_path: Path) -> None:
    image = built["dir"] / "mbr.raw"
    result, log = run(built, tmp_path, image)
    counts = assert_counts_add_up(log)
    rows = {bytes(r["path"]): r for r in inventory(log)}
    ntfs = os.fsencode(image) + b"!p1@1048576:ntfs/"
    for name in (b"$MFT", b"$LogFile", b"$Extend", b"$OrphanFiles", b"$Secure"):
        assert rows[ntfs + name]["skip"] == "fs-metadata", name
    metadata = sum(1 for r in rows.values() if r["skip"] == "fs-metadata")
    assert counts["skipped_by_reason"]["fs-metadata"] == metadata
    fat = built["dir"] / "fat32.raw"
    result, log = run(built, tmp_path, fat)
    rows = {bytes(r["path"]): r for r in inventory(log)}
    label = os.fsencode(fat) + b"!p0@0:fat32/FIXFAT32    (Volume Label Entry)"
    assert rows[label]["skip"] == "fs-metadata"


def test_hard_link_is_read_once_and_reported_under_both_names(
    built: dict[str, Any], tmp_path: Path
) -> None:
    image = built["dir"] / "ext4.raw"
    result, log = run(built, tmp_path, image)
    rows = {bytes(r["path"]): r for r in inventory(log)}
    prefix = os.fsencode(image) + b"!p0@0:ext4/"
    first, second = rows[prefix + b"dup1.txt"], rows[prefix + b"hardlink_to_dup1.txt"]
    assert first["sha256"] == second["sha256"] is not None
    assert second["detail"] == f"hard link: read once, as {image}!p0@0:ext4/dup1.txt"
    assert first["detail"] is None


def test_deleted_entries_are_hashed_and_marked_with_deleted(
    built: dict[str, Any], tmp_path: Path
) -> None:
    truth = built["manifests"]["full"][build.DELETED]
    for name, label in (
        ("ext4.raw", "p0@0:ext4"),
        ("fat32.raw", "p0@0:fat32"),
        ("ntfs.raw", "p0@0:ntfs"),
        ("exfat.raw", "p0@0:exfat"),
    ):
        image = built["dir"] / name
        result, log = run(built, tmp_path, image, extra=("--deleted",))
        assert result.exit_code == ExitCode.NOTABLE, result.output
        assert_counts_add_up(log)
        rows = {bytes(r["path"]): r for r in inventory(log)}
        row = rows[os.fsencode(image) + f"!{label}/".encode() + build.DELETED]
        assert row["kind"] == "deleted-file", name
        assert bytes(row["sha256"]).hex() == truth["sha256"], name
        assert bytes(row["md5"]).hex() == truth["md5"], name
        with_deleted = assert_counts_add_up(log)
        result, log = run(built, tmp_path, image)
        assert result.exit_code == ExitCode.NOTABLE, result.output
        rows = {bytes(r["path"]): r for r in inventory(log)}
        row = rows[os.fsencode(image) + f"!{label}/".encode() + build.DELETED]
        assert row["skip"] == "deleted" and row["md5"] is None, name
        assert row["kind"] == "deleted-file" and row["verdict"] is None, name
        without = assert_counts_add_up(log)
        # The same entry, counted once either way: hashed, or skipped as deleted.
        assert without["files"] == with_deleted["files"] - 1, name
        assert without["skipped_by_reason"]["deleted"] >= 1, name


def test_a_match_on_a_deleted_file_is_a_match(built: dict[str, Any], tmp_path: Path) -> None:
    db = tmp_path / "deleted.db"
    listing = tmp_path / "deleted.sha256"
    truth = built["manifests"]["full"][build.DELETED]["sha256"]
    listing.write_text(f"{truth}  deleted_me.txt\n")
    CliRunner().invoke(cli, ["import", str(listing), "--db", str(db), "--role", "notable"])
    log = tmp_path / "d.jsonl"
    result = CliRunner().invoke(
        cli,
        [
            "scan",
            str(built["dir"] / "ext4.raw"),
            "--deleted",
            "-q",
            "--examiner",
            "E",
            "--case",
            "C",
            "--db",
            str(db),
            "--log",
            str(log),
        ],
    )
    assert result.exit_code == ExitCode.NOTABLE, result.output
    (match,) = [r for r in read_log(log) if r["type"] == "match"]
    assert match["kind"] == "deleted-file"
    assert match["path"].endswith("!p0@0:ext4/deleted_me.txt")


def test_a_deleted_name_in_a_deleted_folder_whose_inode_was_reused_is_not_hashed(
    built: dict[str, Any], tmp_path: Path
) -> None:
    """Before: the reuse check was made only outside deleted folders: D/f1.bin (deleted, in the
    deleted folder D) was hashed as the file that now owns its inode, a false notable match."""
    src = tmp_path / "src"
    (src / "D").mkdir(parents=True)
    (src / "D" / "f1.bin").write_bytes(random.Random(21).randbytes(5000))
    (tmp_path / "g.bin").write_bytes(build.NOTABLE_CONTENT)
    image = tmp_path / "ev" / "e.raw"
    image.parent.mkdir()
    subprocess.run([peer_tool("mke2fs"), "-q", "-F", "-t", "ext4", "-b", "1024", "-N", "64", "-d",
                    str(src), str(image), "8M"], check=True, capture_output=True)  # fmt: skip
    # g.bin takes the inode f1.bin freed; then the folder D is deleted too.
    script = b"rm /D/f1.bin\nwrite g.bin g.bin\nkill_file /D\nunlink /D\n"
    subprocess.run([peer_tool("debugfs"), "-w", "-f", "-", str(image)], input=script, cwd=tmp_path,
                   check=True, capture_output=True)  # fmt: skip
    result, log = run(built, tmp_path, image, extra=("--deleted",))
    rows = {bytes(r["path"]): r for r in inventory(log)}
    prefix = os.fsencode(image) + b"!p0@0:ext4/"
    assert rows[prefix + b"g.bin"]["verdict"] == "notable", result.output
    old = rows[prefix + b"D/f1.bin"]
    assert old["skip"] == "deleted" and old["md5"] is None, old
    assert "reused" in old["detail"], old
    assert [r["path"] for r in read_log(log) if r["type"] == "match"] == [f"{image}!p0@0:ext4/g.bin"]
    assert_counts_add_up(log)


def test_a_deleted_file_that_tsk_lists_only_among_its_orphans_is_hashed(
    built: dict[str, Any], tmp_path: Path
) -> None:
    """Before: a FAT file of a deleted folder whose entry was reused (TSK lists it under
    $OrphanFiles, without metadata) was skipped as deleted, "no metadata left", though TSK
    reads it by its address; an NTFS file listed both by name and among the orphans is
    still read once."""
    env = {**os.environ, "MTOOLS_SKIP_CHECK": "1"}
    (tmp_path / "OLD").mkdir()
    (tmp_path / "OLD" / "kept.bin").write_bytes(build.NOTABLE_CONTENT)
    (tmp_path / "NEW").mkdir()
    (tmp_path / "NEW" / "n.txt").write_bytes(b"new\n")
    image = tmp_path / "ev" / "fat.raw"
    image.parent.mkdir()
    subprocess.run([peer_tool("mkfs.vfat"), "-F", "32", "-C", str(image), "40000"], check=True,
                   capture_output=True)  # fmt: skip
    for command in (["mcopy", "-s", "-i", str(image), str(tmp_path / "OLD"), "::/"],
                    ["mdeltree", "-i", str(image), "::/OLD"],
                    ["mcopy", "-s", "-i", str(image), str(tmp_path / "NEW"), "::/"]):  # fmt: skip
        subprocess.run(command, check=True, capture_output=True, env=env)
    result, log = run(built, tmp_path, image, extra=("--deleted",))
    assert result.exit_code == ExitCode.NOTABLE, result.output
    (match,) = [r for r in read_log(log) if r["type"] == "match"]
    assert "/$OrphanFiles/" in match["path"] and match["kind"] == "deleted-file", match
    assert_counts_add_up(log)
    ntfs = built["dir"] / "ntfs.raw"
    result, log = run(built, tmp_path, ntfs, extra=("--deleted",))
    truth = bytes.fromhex(built["manifests"]["ntfs"][build.DELETED]["sha256"])
    read = [bytes(r["path"]) for r in inventory(log) if r["sha256"] == truth]
    assert read == [os.fsencode(ntfs) + b"!p0@0:ntfs/" + build.DELETED], read
    assert_counts_add_up(log)


def test_ntfs_reserved_mft_records_are_filesystem_metadata_not_deleted_files(
    built: dict[str, Any], tmp_path: Path
) -> None:
    """Before: with --deleted, TSK's orphans OrphanFile-16 ... -23 (MFT records reserved, in no
    use, holding no data) were 8 `deleted` entries, "no metadata left": one file deleted, 9
    counted."""
    image = built["dir"] / "ntfs.raw"
    result, log = run(built, tmp_path, image, extra=("--deleted",))
    rows = {bytes(r["path"]).split(b":ntfs/", 1)[1]: r for r in inventory(log)}
    reserved = [rows[b"$OrphanFiles/OrphanFile-%d" % n] for n in range(16, 24)]
    assert all(r["skip"] == "fs-metadata" for r in reserved), reserved
    assert not [r for r in rows.values() if r["detail"] == "no metadata left"]
    by_reason = assert_counts_add_up(log)["skipped_by_reason"]
    assert isinstance(by_reason, dict) and by_reason["deleted"] == 1, by_reason  # deleted_me.txt,
    # read by its name, listed again among the orphans


def test_notable_matches_equal_those_of_the_source_folder(
    built: dict[str, Any], tmp_path: Path
) -> None:
    src = built["dir"] / "src"
    result, log = run(built, tmp_path, src, extra=("--archives",))
    assert result.exit_code == ExitCode.NOTABLE, result.output
    folder = {r["path"][len(str(src)) :] for r in read_log(log) if r["type"] == "match"}
    assert len(folder) == 3  # notable.bin, and inside sample.zip and sample.tar.gz
    for name, label in (
        ("ext4.raw", "p0@0:ext4"),
        ("ext4.E01", "p0@0:ext4"),
        ("gpt.E01", "p1@1048576:ext4"),
        ("gpt.raw", "p1@1048576:ext4"),
    ):
        image = built["dir"] / name
        result, log = run(built, tmp_path, image, extra=("--archives",))
        assert result.exit_code == ExitCode.NOTABLE, result.output
        assert_counts_add_up(log)
        prefix = f"{image}!{label}"
        found = {
            r["path"][len(prefix) :]
            for r in read_log(log)
            if r["type"] == "match" and r["path"].startswith(prefix)
        }
        assert found == folder, name
    for name in ("src.zip", "src.tar.gz"):
        archive = built["dir"] / name
        result, log = run(built, tmp_path, archive, extra=("--archives",))
        assert result.exit_code == ExitCode.NOTABLE, result.output
        found = {
            "/" + r["path"][len(str(archive)) + 1 :].removeprefix("./")
            for r in read_log(log)
            if r["type"] == "match"
        }
        assert found == folder, name


def test_an_image_named_twice_is_walked_once(built: dict[str, Any], tmp_path: Path) -> None:
    image = built["dir"] / "ext4.raw"
    result, log = run(built, tmp_path, image, image)
    assert result.exit_code == ExitCode.NOTABLE, result.output
    matches = [r["path"] for r in read_log(log) if r["type"] == "match"]
    assert matches and len(matches) == len(set(matches)), matches
    assert f"evidence {image} is named twice: scanned once" in read_log(log)[-1]["notes"]


@pytest.mark.parametrize("order", ["folder first", "image first"])
def test_an_image_named_inside_a_folder_named_too_is_walked_as_an_image(
    built: dict[str, Any], tmp_path: Path, order: str
) -> None:
    """Before: `scan case case/disk.raw` folded the image into the folder's walk ("lies inside
    evidence case: scanned once"), which hashes it as one file: the notable file inside it was
    never read, exit 0."""
    import shutil

    case = tmp_path / "case"
    case.mkdir()
    image = case / "disk.raw"
    shutil.copyfile(built["dir"] / "ext4.raw", image)
    roots = [case, image] if order == "folder first" else [image, case]
    result, log = run(built, tmp_path, *roots)
    assert result.exit_code == ExitCode.NOTABLE, result.output
    assert_counts_add_up(log)
    inside = [r for r in read_log(log) if r["type"] == "match" and r["path"].startswith(f"{image}!")]
    assert inside, read_log(log)
    rows = {bytes(r["path"]): r for r in inventory(log)}
    assert rows[bytes(image)]["md5"] is not None  # the folder's walk still hashes the file itself
    notes = read_log(log)[-1]["notes"]
    assert any(f"evidence {image} lies inside evidence {case}: walked as the disk image" in n for n in notes), notes
    assert not any("scanned once" in n or "named as disk images" in n for n in notes), notes


def test_a_second_name_of_a_folder_in_an_image_is_accounted_for(
    built: dict[str, Any], tmp_path: Path
) -> None:
    """Before: a directory hard link or loop (as debugfs makes) was not walked again, rightly,
    but left no trace: no entry, no count, against "every entry accounted for"."""
    import shutil
    import subprocess

    image = tmp_path / "loop.raw"
    shutil.copyfile(built["dir"] / "ext4.raw", image)
    debugfs = shutil.which("debugfs") or "/sbin/debugfs"
    subprocess.run([debugfs, "-w", "-R", "ln <2> /zz-root-again", str(image)], check=True, capture_output=True)
    result, log = run(built, tmp_path, image)
    assert_counts_add_up(log)
    rows = [r for r in inventory(log) if bytes(r["path"]).endswith(b"/zz-root-again")]
    assert len(rows) == 1 and rows[0]["skip"] == "fs-metadata", rows
    assert "another name of the folder /, walked there" in rows[0]["detail"]
    # Nothing under it is walked twice.
    assert not [r for r in inventory(log) if b"/zz-root-again/" in bytes(r["path"])]


def test_resume_of_an_image_scan_hashes_each_entry_once(
    built: dict[str, Any], tmp_path: Path
) -> None:
    import matcher.scan as scan_mod

    image = built["dir"] / "ext4.E01"
    calls = {"n": 0}
    original = scan_mod._Recorder.record_many

    def record_then_stop(self: Any, outcomes: Any, hits_of: Any) -> None:
        # A SIGTERM after the 19th outcome: the rest of the run is never recorded.
        room = max(0, 19 - calls["n"])
        calls["n"] += len(outcomes)
        original(self, outcomes[:room], hits_of)
        if calls["n"] >= 20:
            raise scan_mod.Interrupted("SIGTERM")

    scan_mod._Recorder.record_many = record_then_stop  # type: ignore[method-assign]
    try:
        result, log = run(built, tmp_path, image, extra=("-j", "1"))
    finally:
        scan_mod._Recorder.record_many = original  # type: ignore[method-assign]
    assert result.exit_code & ExitCode.INTERRUPTED, result.output
    args = [
        "scan",
        str(image),
        "--examiner",
        "Test Examiner",
        "--case",
        "IMG-1",
        "-q",
        "--db",
        str(built["db"]),
        "--log",
        str(log),
        "--resume",
    ]
    result = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert result.exit_code == ExitCode.NOTABLE, result.output
    counts = assert_counts_add_up(log)
    assert counts["files"] == len(expected(built, "full", True))
    matches = [r for r in read_log(log) if r["type"] == "match"]
    assert len(matches) == 1


# -- damaged and non-images ----------------------------------------------------------


def test_truncated_e01_is_a_fatal_error(built: dict[str, Any], tmp_path: Path) -> None:
    cut = tmp_path / "ev" / "cut.E01"
    cut.parent.mkdir()
    data = (built["dir"] / "ext4.E01").read_bytes()
    cut.write_bytes(data[: len(data) // 2])
    result, log = run(built, tmp_path, cut)
    assert result.exit_code == ExitCode.FATAL, result.output
    assert "is incomplete" in result.output or "cannot be opened" in result.output
    assert not log.exists()


def test_missing_split_segment_is_a_fatal_error(built: dict[str, Any], tmp_path: Path) -> None:
    ev = tmp_path / "ev"
    ev.mkdir()
    segments = sorted(built["dir"].glob("gpt.E0*"))
    assert len(segments) >= 3
    for i, segment in enumerate(segments):
        if i != 1:
            shutil.copy(segment, ev / segment.name)
    result, log = run(built, tmp_path, ev / "gpt.E01")
    assert result.exit_code == ExitCode.FATAL, result.output
    assert "segment" in result.output and "missing" in result.output
    last = ev / segments[-1].name
    last.unlink()  # now only the tail is gone: still refused
    shutil.copy(segments[1], ev / segments[1].name)
    result, log = run(built, tmp_path, ev / "gpt.E01")
    assert result.exit_code == ExitCode.FATAL, result.output
    assert "incomplete" in result.output


def _flipped_e01(built: dict[str, Any], tmp_path: Path) -> Path:
    """ext4.E01 with 50 bytes of its middle half flipped: it opens, its media hash fails."""
    ev = tmp_path / "ev"
    ev.mkdir()
    flipped = ev / "flip.E01"
    data = bytearray((built["dir"] / "ext4.E01").read_bytes())
    rng = random.Random(7)
    for offset in rng.sample(range(len(data) // 4, 3 * len(data) // 4), 50):
        data[offset] ^= 0xFF
    flipped.write_bytes(bytes(data))
    return flipped


def test_flipped_byte_is_caught_only_by_verify_image(built: dict[str, Any], tmp_path: Path) -> None:
    flipped = _flipped_e01(built, tmp_path)
    result, log = run(built, tmp_path, flipped, extra=("--verify-image",))
    assert result.exit_code & ExitCode.IMAGE_MISMATCH, result.output
    assert "WARNING" in result.output and "does not match the hash stored" in result.output
    records = read_log(log)
    verify = records[0]["images"][0]["verify"]
    assert verify["match"] is False and verify["stored"]["md5"] != verify["computed"]["md5"]
    assert records[-1]["counts"]["image_mismatches"] == 1
    # Every report says so: the CSV and CASE reports had no word of it, the others a bare count.
    for fmt in ("csv", "json", "dfxml", "html", "case"):
        out = tmp_path / f"flip.{fmt}"
        done = CliRunner().invoke(cli, ["report", str(log), "--format", fmt, "-o", str(out)])
        assert done.exit_code == 0, done.output
        text = out.read_text()
        assert "did not match the hash stored in them" in text, fmt
        assert "does not match the hash stored in the E01" in text, fmt  # the end record's note
    good, log = run(built, tmp_path, built["dir"] / "ext4.E01", extra=("--verify-image",))
    assert good.exit_code == ExitCode.NOTABLE, good.output
    assert read_log(log)[0]["images"][0]["verify"]["match"] is True


def test_a_rematch_of_an_image_that_failed_verify_image_keeps_its_warning(
    built: dict[str, Any], tmp_path: Path
) -> None:
    """The digests re-matched are the ones the original flagged "may be wrong": before, the
    re-match's end record had no mismatch and no note, its run record no images, its report
    no caveat, and it exited 0 (1 with a match), never with flag 16."""
    flipped = _flipped_e01(built, tmp_path)
    result, log = run(built, tmp_path, flipped, extra=("--verify-image",))
    assert result.exit_code & ExitCode.IMAGE_MISMATCH, result.output
    original = read_log(log)
    hashed_row = next(r for r in inventory(log) if r["md5"] is not None and r["size"])
    listing = tmp_path / "now.md5"
    listing.write_text(f"{bytes(hashed_row['md5']).hex()}  now\n")
    db = tmp_path / "now.db"
    done = CliRunner().invoke(cli, ["import", str(listing), "--db", str(db), "--role", "notable"])
    assert done.exit_code == 0, done.output
    new_log = tmp_path / "rematch.jsonl"
    args = ["rematch", str(log), "--db", str(db), "--examiner", "E", "--case", "IMG-1"]
    result = CliRunner().invoke(cli, [*args, "--log", str(new_log)], catch_exceptions=False)
    # As scan's: a match, the original's mismatch, and its unreadable entries if it had any.
    expected = ExitCode.NOTABLE | ExitCode.IMAGE_MISMATCH
    if original[-1]["counts"]["errors"]:
        expected |= ExitCode.INCOMPLETE
    assert result.exit_code == expected, result.output
    records = read_log(new_log)
    assert records[0]["images"] == original[0]["images"]
    assert records[-1]["counts"]["image_mismatches"] == 1
    said = [n for n in records[-1]["notes"] if "does not match the hash stored in the E01" in n]
    assert len(said) == 1 and said[0].startswith("the original scan noted: WARNING: "), said
    out = tmp_path / "rematch.csv"
    done = CliRunner().invoke(cli, ["report", str(new_log), "--format", "csv", "-o", str(out)])
    assert done.exit_code == 0, done.output
    assert "did not match the hash stored in them" in out.read_text()


def test_a_rematch_takes_the_image_checks_of_the_original_last_run(
    built: dict[str, Any], tmp_path: Path
) -> None:
    """Each run (a resume too) checks an E01 again: the re-match took the first run's checks
    (it matched) beside the last end's mismatch, and its own log failed verify."""
    import os
    import signal

    import matcher.scan as scan_mod

    ev = tmp_path / "ev"
    ev.mkdir()
    disk = ev / "disk.E01"
    disk.write_bytes((built["dir"] / "ext4.E01").read_bytes())
    big = tmp_path / "big"
    big.mkdir()
    for n in range(400):
        (big / f"f{n:03}").write_bytes(random.Random(n).randbytes(64 << 10))
    log = tmp_path / "o.jsonl"

    def stop(counts: scan_mod.Counts) -> None:
        os.kill(os.getpid(), signal.SIGINT)

    options = scan_mod.ScanOptions(
        [big, disk], "E", "IMG-1", built["db"], log, jobs=1, verify_image=True
    )
    assert scan_mod.run_scan(options, stop).status == "interrupted"
    assert read_log(log)[0]["images"][0]["verify"]["match"] is True
    data = bytearray(disk.read_bytes())
    for offset in random.Random(7).sample(range(len(data) // 4, 3 * len(data) // 4), 50):
        data[offset] ^= 0xFF
    disk.write_bytes(bytes(data))  # the disk failing between the runs
    args = ["scan", str(big), str(disk), "--examiner", "E", "--case", "IMG-1", "--db",
            str(built["db"]), "--log", str(log), "--verify-image", "--resume", "-q"]  # fmt: skip
    resumed = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert resumed.exit_code & ExitCode.IMAGE_MISMATCH, resumed.output
    new_log = tmp_path / "re.jsonl"
    args = ["rematch", str(log), "--db", str(built["db"]), "--examiner", "E", "--case", "IMG-1"]
    done = CliRunner().invoke(cli, [*args, "--log", str(new_log)], catch_exceptions=False)
    assert done.exit_code & ExitCode.IMAGE_MISMATCH, done.output
    records = read_log(new_log)
    assert records[0]["images"][0]["verify"]["match"] is False
    assert records[-1]["counts"]["image_mismatches"] == 1
    checked = CliRunner().invoke(cli, ["verify", str(new_log)])
    assert checked.exit_code == 0, checked.output


@pytest.mark.parametrize(
    "content", [b"", random.Random(3).randbytes(3 << 20)], ids=["empty", "random"]
)
def test_not_an_image(built: dict[str, Any], tmp_path: Path, content: bytes) -> None:
    ev = tmp_path / "ev"
    ev.mkdir()
    blob = ev / "disk.raw"
    blob.write_bytes(content)
    result, log = run(built, tmp_path, blob, extra=("--images-only",))
    assert result.exit_code == ExitCode.FATAL, result.output
    assert "no volume system or filesystem recognised" in result.output
    assert not log.exists()
    result, log = run(built, tmp_path, blob)  # without --images-only: one plain file
    assert result.exit_code == 0, result.output
    assert assert_counts_add_up(log)["files"] == 1
    warning = "is a single file with no volume system or filesystem recognised"
    assert warning in result.output  # never silently: the summary and the end record say so
    assert any(warning in note for note in read_log(log)[-1]["notes"])


def test_e01_with_no_filesystem_inside_is_an_error(built: dict[str, Any], tmp_path: Path) -> None:
    ev = tmp_path / "ev"
    ev.mkdir()
    raw = tmp_path / "noise.raw"
    raw.write_bytes(random.Random(5).randbytes(1 << 20))
    build._run(
        "ewfacquire", "-u", "-q", "-t", ev / "noise", "-f", "encase6", "-c", "deflate:fast", raw
    )
    result, log = run(built, tmp_path, ev / "noise.E01")
    assert result.exit_code == ExitCode.FATAL, result.output
    assert "no volume system or filesystem recognised" in result.output


def test_without_the_images_extra_the_message_names_it(
    built: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "pytsk3", None)
    result, log = run(built, tmp_path, built["dir"] / "ext4.raw")
    assert result.exit_code == ExitCode.FATAL, result.output
    assert "pip install 'matcher[images]'" in result.output


def test_rematch_of_an_image_scan_needs_no_image(built: dict[str, Any], tmp_path: Path) -> None:
    image = built["dir"] / "gpt.E01"
    result, log = run(built, tmp_path, image, extra=("--archives", "--deleted"))
    assert result.exit_code == ExitCode.NOTABLE, result.output
    original = assert_counts_add_up(log)
    new_log = tmp_path / "rematch.jsonl"
    args = [
        "rematch",
        str(log),
        "--db",
        str(built["db"]),
        "--examiner",
        "E",
        "--case",
        "C",
        "--log",
        str(new_log),
    ]
    result = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert result.exit_code == ExitCode.NOTABLE, result.output
    counts = assert_counts_add_up(new_log)
    assert counts["files"] == original["files"] and counts["notable"] == original["notable"] == 6
    matches = {r["path"] for r in read_log(new_log) if r["type"] == "match"}
    assert f"{image}!p2@68157440:fat32/archives/sample.zip!inner/notable.bin" in matches


def test_exfat_written_without_mounting_is_valid_and_read_exactly(
    built: dict[str, Any], tmp_path: Path
) -> None:
    import exfat_writer

    image = built["dir"] / "exfat.raw"
    fsck = subprocess.run(
        [peer_tool("fsck.exfat"), "-n", str(image)], capture_output=True, text=True, timeout=60
    )
    assert fsck.returncode == 0 and "clean" in fsck.stdout, fsck.stdout + fsck.stderr
    # The fixture really holds fragmented, FAT-chained files and a non-ASCII name.
    volume = exfat_writer.ExfatVolume(image)
    try:
        for rel in build.EXFAT_FRAGMENTED:
            *folders, leaf = rel.decode().split("/")
            chain = volume._chain_of(volume.root)
            for folder in folders:
                chain = volume._chain_of(volume._find(chain, folder)[1])
            _, first, length, contiguous = volume._find(chain, leaf)
            clusters = volume._chain_of(first)
            assert not contiguous and len(clusters) == -(-length // volume.cluster) > 1, rel
            gaps = [b - a for a, b in zip(clusters, clusters[1:], strict=False)]
            assert any(gap != 1 for gap in gaps), rel
    finally:
        volume.file.close()
    result, log = run(built, tmp_path, image)
    assert result.exit_code == ExitCode.NOTABLE, result.output
    counts = assert_counts_add_up(log)
    prefix = os.fsencode(image) + b"!p0@0:exfat"
    got = hashed(log, prefix)
    assert got == expected(built, "fat", True)
    assert "/unicode_\u00fcn\u00efc\u00f6d\u00e9.txt".encode() in got
    rows = {bytes(r["path"]): r for r in inventory(log)}
    for name in (b"$ALLOC_BITMAP", b"$UPCASE_TABLE"):
        assert rows[prefix + b"/" + name]["skip"] == "fs-metadata", name
    assert counts["errors"] == 0 and counts["files"] == len(got)


def test_exfat_writer_checksums_are_checked_by_fsck(built: dict[str, Any], tmp_path: Path) -> None:
    import exfat_writer

    fsck = peer_tool("fsck.exfat")
    for field in ("SetChecksum", "NameHash"):
        copy = tmp_path / f"{field}.raw"
        shutil.copy(built["dir"] / "exfat.raw", copy)
        volume = exfat_writer.ExfatVolume(copy)
        chain = volume._chain_of(volume.root)
        data = bytearray(volume._read_chain(volume.root))
        at = next(p for p in range(0, len(data), 32) if data[p] == exfat_writer.FILE)
        if field == "SetChecksum":
            data[at + 2] ^= 1
        else:
            data[at + 32 + 4] ^= 1  # the Stream Extension's NameHash; SetChecksum redone
            size = (data[at + 1] + 1) * 32
            checksum = exfat_writer.set_checksum(bytes(data[at : at + size]))
            data[at + 2 : at + 4] = checksum.to_bytes(2, "little")
        volume._write(chain, bytes(data))
        volume.close()
        outcome = subprocess.run([fsck, "-n", str(copy)], capture_output=True, timeout=60)
        assert outcome.returncode != 0, field


def test_7z_inside_an_image_is_read_through_the_chain(
    built: dict[str, Any], tmp_path: Path
) -> None:
    src = tmp_path / "src"
    (src / "inner").mkdir(parents=True)
    (src / "inner" / "notable.bin").write_bytes(build.NOTABLE_CONTENT)
    (src / "inner" / "other.txt").write_bytes(b"another benign member\n" * 100)
    tree = tmp_path / "tree"
    (tree / "packed").mkdir(parents=True)
    subprocess.run(
        [peer_tool("7zz"), "a", "-bd", "-bso0", "-ms=on", str(tree / "packed" / "x.7z"), "."],
        cwd=src,
        check=True,
        timeout=120,
    )
    image = tmp_path / "ev" / "with7z.raw"
    image.parent.mkdir()
    build._run("mke2fs", "-q", "-F", "-t", "ext4", "-b", "4096", "-d", tree, image, "16M")
    result, log = run(built, tmp_path, image, extra=("--archives",))
    assert result.exit_code == ExitCode.NOTABLE, result.output
    assert assert_counts_add_up(log)["errors"] == 0
    (match,) = [r for r in read_log(log) if r["type"] == "match"]
    assert match["path"] == f"{image}!p0@0:ext4/packed/x.7z!inner/notable.bin"
    rows = {bytes(r["path"]): r for r in inventory(log)}
    other = rows[os.fsencode(f"{image}!p0@0:ext4/packed/x.7z!inner/other.txt")]
    assert bytes(other["sha256"]) == hashlib.sha256(b"another benign member\n" * 100).digest()


def test_hard_link_not_candidate_takes_its_first_names_outcome(
    built: dict[str, Any], tmp_path: Path
) -> None:
    # --candidates-only records most not-candidate files in bulk, outside the
    # walk order; a hard link's first name must still hand its outcome on.
    image = built["dir"] / "ext4.raw"
    sized = tmp_path / "sized.db"
    imported = CliRunner().invoke(
        cli, ["import", str(FIXTURES / "hashlists" / "notable.csv"), "--db", str(sized)]
    )
    assert imported.exit_code == 0, imported.output
    result, log = run({**built, "db": sized}, tmp_path, image, extra=("--candidates-only",))
    assert read_log(log)[0]["options"]["candidates_only"] is True
    counts = assert_counts_add_up(log)
    rows = {bytes(r["path"]): r for r in inventory(log)}
    assert len(rows) == counts["entries"]
    prefix = os.fsencode(image) + b"!p0@0:ext4/"
    first, second = rows[prefix + b"dup1.txt"], rows[prefix + b"hardlink_to_dup1.txt"]
    assert first["skip"] == second["skip"] == "not-candidate"
    assert first["failure"] is None and second["failure"] is None


def test_a_truncated_raw_image_names_what_tsk_said_for_each_file_it_cut(
    built: dict[str, Any], tmp_path: Path
) -> None:
    """Files past the cut are errors (counted, never clean); their detail read `E?: None`,
    the errno form of an OSError that has none: now pytsk3's own message."""
    cut = tmp_path / "ev" / "ext4_cut.raw"
    cut.parent.mkdir()
    data = (built["dir"] / "ext4.raw").read_bytes()
    cut.write_bytes(data[: 4 * 1024 * 1024])
    result, log = run(built, tmp_path, cut)
    errors = [r for r in read_log(log) if r["type"] == "error"]
    assert errors, result.output
    files = [r for r in errors if r["kind"] == "file"]
    assert files and all("Offset missing in partial image" in r["detail"] for r in files), files
    assert not any("E?" in r["detail"] for r in errors), errors
    assert_counts_add_up(log)


@pytest.mark.parametrize("name", ["ext4.raw", "fat32.raw"])
def test_a_folder_whose_first_block_is_damaged_is_an_error_not_an_empty_folder(
    built: dict[str, Any], tmp_path: Path, name: str
) -> None:
    """TSK lists a folder whose first block is garbage as empty, without an error: its
    files went missing from a complete scan (exit 1 or 0, no error, fewer entries)."""
    import pytsk3

    ev = tmp_path / "ev"
    ev.mkdir()
    damaged = ev / name
    shutil.copyfile(built["dir"] / name, damaged)
    fs = pytsk3.FS_Info(pytsk3.Img_Info(str(damaged)))
    first = next(r.addr for attr in fs.open("/nested") for r in attr if r.len)
    block = int(fs.info.block_size)
    del fs
    with damaged.open("r+b") as f:
        f.seek(first * block)
        f.write(random.Random(7).randbytes(block))
    result, log = run(built, tmp_path, damaged)
    assert result.exit_code & ExitCode.INCOMPLETE, result.output
    errors = [r for r in read_log(log) if r["type"] == "error"]
    assert [(r["path"].rsplit(":", 1)[1], r["reason"]) for r in errors] == [
        (f"{name[:-4]}/nested", "walk-error")
    ], errors
    assert "damaged" in errors[0]["detail"], errors
    assert_counts_add_up(log)


def test_an_ext4_folder_with_inline_entries_is_not_taken_for_a_damaged_one(
    built: dict[str, Any], tmp_path: Path
) -> None:
    """An inline_data folder stores no '.' entry (TSK lists none): it is no damaged folder."""
    src = tmp_path / "src" / "sub" / "deeper"
    src.mkdir(parents=True)
    (src.parent / "small.bin").write_bytes(b"benign small file\n")
    (src / "notable.bin").write_bytes(build.NOTABLE_CONTENT)
    image = tmp_path / "inline.raw"
    subprocess.run([peer_tool("mke2fs"), "-q", "-F", "-t", "ext4", "-O", "inline_data", "-d",
                    str(src.parent.parent), str(image), "8M"], check=True)  # fmt: skip
    result, log = run(built, tmp_path, image)
    assert result.exit_code == ExitCode.NOTABLE, result.output
    assert assert_counts_add_up(log)["errors"] == 0, [r for r in read_log(log) if r["type"] == "error"]


@pytest.mark.parametrize("layout", ["whole image", "partition"])
def test_a_filesystem_cut_short_by_the_images_end_says_so(
    built: dict[str, Any], tmp_path: Path, layout: str
) -> None:
    """Before: a partition cut by the image's end got a note, a filesystem filling the image
    (or one larger than the partition the table gives it) none, though it says its own size."""
    data = (built["dir"] / "ext4.raw").read_bytes()[: 21 << 20]  # 64 MiB in its superblock
    if layout == "partition":  # the table says the partition fits
        data = _mbr([(0x83, 2048, len(data) // 512)]) + bytes(2048 * 512 - 512) + data
    ev = tmp_path / "ev"
    ev.mkdir()
    (ev / "cut.raw").write_bytes(data)
    result, log = run(built, tmp_path, ev / "cut.raw")
    notes = read_log(log)[-1]["notes"]
    assert any("filesystem" in n and "past the image's end" in n and "cut short" in n for n in notes), notes
    assert_counts_add_up(log)


def _mbr(entries: list[tuple[int, int, int]]) -> bytes:
    """A DOS partition table: (type, first sector, sectors) per primary entry."""
    sector = bytearray(512)
    for i, (kind, start, count) in enumerate(entries):
        at = 446 + 16 * i
        sector[at + 4] = kind
        sector[at + 8 : at + 12] = start.to_bytes(4, "little")
        sector[at + 12 : at + 16] = count.to_bytes(4, "little")
    sector[510:512] = b"\x55\xaa"
    return bytes(sector)


def test_an_extended_partition_whose_table_cannot_be_read_is_an_error(
    built: dict[str, Any], tmp_path: Path
) -> None:
    """An extended partition whose EBR lost its signature: TSK lists no logical partition and
    raises nothing, so the ext4 logical partition of mbr.raw went unread in a complete scan."""
    data = bytearray((built["dir"] / "mbr.raw").read_bytes())
    starts = [
        int.from_bytes(data[446 + 16 * i + 8 : 446 + 16 * i + 12], "little")
        for i in range(4)
        if data[446 + 16 * i + 4] in (0x05, 0x0F, 0x85)
    ]
    assert len(starts) == 1, starts
    ebr = starts[0] * 512
    assert data[ebr + 510 : ebr + 512] == b"\x55\xaa"
    data[ebr + 510 : ebr + 512] = b"\0\0"
    ev = tmp_path / "ev"
    ev.mkdir()
    (ev / "mbr.raw").write_bytes(bytes(data))
    result, log = run(built, tmp_path, ev / "mbr.raw")
    assert result.exit_code & ExitCode.INCOMPLETE, result.output
    records = read_log(log)
    errors = [r for r in records if r["type"] == "error"]
    assert [(r["kind"], r["reason"]) for r in errors] == [("partition", "walk-error")], errors
    assert f"@{ebr}:unknown" in errors[0]["path"] and "logical" in errors[0]["detail"], errors
    assert any("extended partition table" in n for n in records[-1]["notes"]), records[-1]
    assert not any(":ext4/" in r.get("path", "") for r in records)  # the logical one is unread
    assert_counts_add_up(log)


def test_an_unreadable_extended_partition_and_a_primary_after_it_are_numbered_apart(
    built: dict[str, Any], tmp_path: Path
) -> None:
    """An extended partition whose EBR is unreadable was labelled p1, and so was the ext4
    primary after it: two partitions of the disk under one number in the log."""
    ext4 = (built["dir"] / "ext4.raw").read_bytes()
    sectors = len(ext4) // 512
    data = bytearray(_mbr([(0x05, 2048, 2048), (0x83, 4096, sectors)]))
    data += bytes(4096 * 512 - len(data)) + ext4  # the EBR at sector 2048: zeros, no signature
    ev = tmp_path / "ev"
    ev.mkdir()
    (ev / "disk.raw").write_bytes(bytes(data))
    result, log = run(built, tmp_path, ev / "disk.raw")
    assert result.exit_code & ExitCode.INCOMPLETE, result.output
    paths = {str(r["path"]).split("!", 1)[1].split("/", 1)[0] for r in read_log(log) if "path" in r}
    assert f"p1@{2048 * 512}:unknown" in paths and f"p2@{4096 * 512}:ext4" in paths, paths
    assert_counts_add_up(log)


def test_a_partition_past_the_images_end_says_so(built: dict[str, Any], tmp_path: Path) -> None:
    """A table entry past the end was `no filesystem that TSK reads`, and a partition cut by the
    end gave no word at all: the image is cut short (or its table is wrong), and now both say so."""
    fat = (built["dir"] / "fat32.raw").read_bytes()  # 64 MiB
    sectors = len(fat) // 512
    ev = tmp_path / "ev"
    ev.mkdir()
    # Partition 2 starts where the image ends (TSK refuses a table that starts further out).
    whole = _mbr([(0x0C, 2048, sectors), (0x83, 2048 + sectors, 2048)]) + bytes(2048 * 512 - 512) + fat
    (ev / "past.raw").write_bytes(whole)
    result, log = run(built, tmp_path, ev / "past.raw")
    # An error (exit flag 4) and a note: it was a skip, "no-filesystem", in a complete scan, exit 0.
    assert result.exit_code & ExitCode.INCOMPLETE, result.output
    failed = [r for r in inventory(log) if r["failure"] is not None and b"p2@" in bytes(r["path"])]
    assert len(failed) == 1 and "past the image's end" in failed[0]["detail"], failed
    notes = read_log(log)[-1]["notes"]
    assert any("partition 2" in n and "none of its files is read" in n for n in notes), notes
    cut = ev.parent / "ev2"
    cut.mkdir()
    single = _mbr([(0x0C, 2048, sectors)]) + bytes(2048 * 512 - 512) + fat
    (cut / "cut.raw").write_bytes(single[: 40 * 1024 * 1024])
    result, log = run(built, tmp_path, cut / "cut.raw")
    assert log.exists(), result.output
    notes = read_log(log)[-1]["notes"]
    assert any("partition 1" in n and "past the image's end" in n for n in notes), notes
    assert_counts_add_up(log)


@pytest.mark.parametrize("damage", ["primary header zeroed", "cut short"])
def test_a_gpt_disk_whose_gpt_cannot_be_read_is_an_error_not_a_clean_scan(
    built: dict[str, Any], tmp_path: Path, damage: str
) -> None:
    """TSK falls back to the protective MBR: its one 0xEE entry was skipped as `no-filesystem`,
    `complete`, exit 0, with none of the disk's files read (a notable one among them)."""
    data = bytearray((built["dir"] / "gpt.raw").read_bytes())
    intact, log = run(built, tmp_path, built["dir"] / "gpt.raw")
    assert intact.exit_code == ExitCode.NOTABLE, intact.output
    if damage == "primary header zeroed":
        data[512:1024] = bytes(512)
    else:
        data = data[: 12 * 1024 * 1024]
    ev = tmp_path / "ev"
    ev.mkdir()
    (ev / "gpt-damaged.raw").write_bytes(bytes(data))
    result, log = run(built, tmp_path, ev / "gpt-damaged.raw")
    assert result.exit_code & ExitCode.INCOMPLETE and not result.exit_code & ExitCode.NOTABLE, result.output
    errors = [r for r in read_log(log) if r["type"] == "error"]
    assert any(r["reason"] == "walk-error" and "GPT cannot be read" in r["detail"] for r in errors), errors
    assert_counts_add_up(log)


def test_two_partition_entries_at_one_offset_walk_its_filesystem_once(
    built: dict[str, Any], tmp_path: Path
) -> None:
    """Before: an MBR with two entries at LBA 2048 walked the filesystem twice, every file as
    p1@1048576 and p2@1048576, a notable file counted twice, with no word of it."""
    fat = (built["dir"] / "fat32.raw").read_bytes()
    sectors = len(fat) // 512
    ev = tmp_path / "ev"
    ev.mkdir()
    table = _mbr([(0x0C, 2048, sectors), (0x0C, 2048, sectors)])
    (ev / "disk.raw").write_bytes(table + bytes(2048 * 512 - 512) + fat)
    result, log = run(built, tmp_path, ev / "disk.raw")
    assert result.exit_code == ExitCode.NOTABLE, result.output
    records = read_log(log)
    assert len([r for r in records if r["type"] == "match"]) == 1
    assert not [r for r in inventory(log) if b"!p2@" in bytes(r["path"])]
    notes = records[-1]["notes"]
    assert any("partition 2" in n and "as partition 1" in n for n in notes), notes
    assert_counts_add_up(log)


@pytest.mark.parametrize("content", ["encrypted", "boot sector zeroed"])
def test_a_disk_none_of_whose_partitions_can_be_read_is_an_error_not_a_clean_scan(
    built: dict[str, Any], tmp_path: Path, content: str
) -> None:
    """Before: its one partition (random bytes, as BitLocker or LUKS look; an NTFS entry whose
    boot sector is zeroed) was skipped as `no-filesystem`: 'complete', 0 files, exit 0."""
    if content == "encrypted":
        data = random.Random(5).randbytes(20 << 20)
        kind = 0x83
    else:
        data = bytearray((built["dir"] / "ntfs.raw").read_bytes())
        data[:512] = bytes(512)
        kind = 0x07
    ev = tmp_path / "ev"
    ev.mkdir()
    (ev / "disk.raw").write_bytes(_mbr([(kind, 2048, len(data) // 512)]) + bytes(2048 * 512 - 512) + data)
    result, log = run(built, tmp_path, ev / "disk.raw")
    assert result.exit_code == ExitCode.INCOMPLETE, result.output
    (error,) = [r for r in read_log(log) if r["type"] == "error"]
    assert error["reason"] == "walk-error" and error["path"].endswith("!p1@1048576:unknown"), error
    assert "no filesystem that TSK reads" in error["detail"], error
    assert not [r for r in inventory(log) if r["skip"] == "no-filesystem"]
    assert_counts_add_up(log)


def test_a_partition_without_a_filesystem_beside_one_with_is_skipped(
    built: dict[str, Any], tmp_path: Path
) -> None:
    """A disk with a readable filesystem may hold partitions with none (swap, a reserved one):
    each is skipped as `no-filesystem`, not an error."""
    fat = (built["dir"] / "fat32.raw").read_bytes()
    sectors = len(fat) // 512
    ev = tmp_path / "ev"
    ev.mkdir()
    table = _mbr([(0x0C, 2048, sectors), (0x82, 2048 + sectors, 2048)])
    (ev / "disk.raw").write_bytes(table + bytes(2048 * 512 - 512) + fat + bytes(2048 * 512))
    result, log = run(built, tmp_path, ev / "disk.raw")
    assert result.exit_code == ExitCode.NOTABLE, result.output
    (skipped,) = [r for r in inventory(log) if r["skip"] == "no-filesystem"]
    assert "no filesystem that TSK reads" in skipped["detail"], skipped
    assert_counts_add_up(log)


def test_a_fat_file_named_like_the_volume_label_entry_is_read(built: dict[str, Any], tmp_path: Path) -> None:
    """TSK shows a FAT label as `NAME (Volume Label Entry)`, which holds no data; a root file
    whose long name ends so was skipped as fs-metadata, unread, a notable one among them."""
    ev = tmp_path / "ev"
    ev.mkdir()
    fat = ev / "fat.raw"
    subprocess.run(["mkfs.vfat", "-F", "16", "-n", "MYLABEL", "-C", str(fat), "16384"],
                   check=True, capture_output=True)  # fmt: skip
    payload = tmp_path / "payload.bin"
    payload.write_bytes(build.NOTABLE_CONTENT)
    subprocess.run(["mcopy", "-i", str(fat), str(payload), "::/MYDISK (Volume Label Entry)"],
                   check=True, capture_output=True, env={**os.environ, "MTOOLS_SKIP_CHECK": "1"})  # fmt: skip
    result, log = run(built, tmp_path, fat)
    assert result.exit_code == ExitCode.NOTABLE, result.output
    rows = {os.path.basename(bytes(r["path"])): r for r in inventory(log)}
    assert rows[b"MYDISK (Volume Label Entry)"]["verdict"] == "notable"
    label = [r for name, r in rows.items() if name.endswith(b"(Volume Label Entry)") and name != b"MYDISK (Volume Label Entry)"]
    assert len(label) == 1 and label[0]["skip"] == "fs-metadata"  # the label itself


@pytest.mark.parametrize("nth", [3, 40, 250, 400])
def test_a_signal_while_tsk_reads_the_image_interrupts_the_scan(
    built: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, nth: int
) -> None:
    """Before: SIGINT landing in TSK's read callback was raised there, and came out of TSK as
    a read error: the scan ended `complete` with a directory "cannot be listed" or a file's
    io-error (exit 0 or 4), and the signal was spent; while the image was opened, as an
    "internal error" (exit 2). It must end `interrupted`, exit 8."""
    import signal

    from matcher.evidence import image as image_mod

    original = image_mod._Media.read
    calls = [0]

    def read(self: Any, offset: int, size: int) -> bytes:
        calls[0] += 1
        if calls[0] == nth:
            os.kill(os.getpid(), signal.SIGINT)
        return original(self, offset, size)

    monkeypatch.setattr(image_mod._Media, "read", read)
    # Note: a test run started in the background inherits SIGINT ignored (a shell's `&`).
    before = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        result, log = run(built, tmp_path, built["dir"] / "mbr.raw", extra=("--jobs", "1"))
    finally:
        signal.signal(signal.SIGINT, before)
    assert calls[0] >= nth
    assert result.exit_code == ExitCode.INTERRUPTED, result.output
    if nth < 100:  # while the image is opened, before the scan's log exists
        assert "Interrupted before the scan began" in result.output and not log.exists()
        return
    records = read_log(log)
    assert records[-1]["status"] == "interrupted", records[-1]
    assert not [r for r in records if r["type"] == "error"], records
    assert not [r for r in inventory(log) if r["failure"]]


def test_a_partition_cut_short_whose_filesystem_cannot_open_is_an_error(
    built: dict[str, Any], tmp_path: Path
) -> None:
    """Before: it was skipped as `no-filesystem`: complete, exit 0, none of its files read
    (the end note even said files in the missing part are read errors, and none was)."""
    fat = (built["dir"] / "fat32.raw").read_bytes()
    ev = tmp_path / "ev"
    ev.mkdir()
    whole = _mbr([(0x0C, 2048, len(fat) // 512)]) + bytes(2048 * 512 - 512) + fat
    (ev / "cut.raw").write_bytes(whole[: 2048 * 512 + 256])  # the table, half a boot sector
    result, log = run(built, tmp_path, ev / "cut.raw")
    assert result.exit_code & ExitCode.INCOMPLETE, result.output
    errors = [r for r in inventory(log) if r["failure"]]
    assert len(errors) == 1 and "past the image's end" in errors[0]["detail"], errors
    assert not [r for r in inventory(log) if r["skip"] == "no-filesystem"]
    assert_counts_add_up(log)


def test_a_named_stream_on_an_ntfs_folder_is_hashed(built: dict[str, Any], tmp_path: Path) -> None:
    """Before: folders were walked into, never asked for their own $DATA streams: a stream on
    a folder (a classic hiding place) was in no record, and the scan said complete, exit 0."""
    image = tmp_path / "ntfs_folder_stream.raw"
    shutil.copyfile(built["dir"] / "ntfs.raw", image)
    build.ntfs_add_folder_stream(image, b"archives", b"hidden", build.NOTABLE_CONTENT)
    result, log = run(built, tmp_path, image)
    assert result.exit_code == ExitCode.NOTABLE, result.output
    rows = {bytes(r["path"]): r for r in inventory(log)}
    stream = rows[os.fsencode(image) + b"!p0@0:ntfs/archives:hidden"]
    assert stream["kind"] == "stream" and stream["sha256"] == bytes.fromhex(NOTABLE_SHA256)
    assert not [p for p in rows if p.endswith(b"/misc:") or b"/nested:" in p]  # no others made up
    assert_counts_add_up(log)


def test_a_named_stream_on_the_ntfs_root_folder_is_hashed(built: dict[str, Any], tmp_path: Path) -> None:
    """Before: the walk started inside the root folder and never asked the root itself for its
    streams: `.:rootstream` (MFT record 5) was in no record, and the scan said complete, exit 0."""
    image = tmp_path / "ntfs_root_stream.raw"
    shutil.copyfile(built["dir"] / "ntfs.raw", image)
    build.ntfs_add_folder_stream(image, b".", b"rootstream", build.NOTABLE_CONTENT)
    result, log = run(built, tmp_path, image)
    assert result.exit_code == ExitCode.NOTABLE, result.output
    rows = {bytes(r["path"]): r for r in inventory(log)}
    stream = rows[os.fsencode(image) + b"!p0@0:ntfs/:rootstream"]
    assert stream["kind"] == "stream" and stream["sha256"] == bytes.fromhex(NOTABLE_SHA256)
    assert stream["verdict"] == "notable"
    assert_counts_add_up(log)


def test_an_ntfs_reparse_point_that_is_no_link_is_read(built: dict[str, Any], tmp_path: Path) -> None:
    """Before: every file with a $REPARSE_POINT was skipped as `symlink` "NTFS reparse point",
    unread with its named streams, though only name surrogates (symlinks, junctions) are links:
    a OneDrive file holding the notable content, and a WOF-compressed file's stream, were lost."""
    src = tmp_path / "src"
    src.mkdir()
    (src / "cloud.bin").write_bytes(build.NOTABLE_CONTENT)
    with (src / "wof.bin").open("wb") as f:
        f.truncate(1 << 20)  # all hole: the unnamed stream of a WOF file holds no cluster
    image = tmp_path / "ev" / "reparse.raw"
    image.parent.mkdir()
    build.ntfs_from_tree(image, src, 8 << 20)
    build.ntfs_add_reparse(image, b"cloud.bin", 0x9000601A, b"\x01" + bytes(7))
    (tmp_path / "wof.payload").write_bytes(build.NOTABLE_CONTENT)  # the compressed data's stand-in
    subprocess.run([peer_tool("ntfscp"), "-q", "-N", "WofCompressedData", str(image),
                    str(tmp_path / "wof.payload"), "/wof.bin"], check=True, capture_output=True)  # fmt: skip
    build.ntfs_add_reparse(image, b"wof.bin", 0x80000017, bytes(8))
    result, log = run(built, tmp_path, image)
    rows = {bytes(r["path"]).split(b":ntfs/", 1)[1]: r for r in inventory(log)}
    assert rows[b"cloud.bin"]["verdict"] == "notable", rows[b"cloud.bin"]
    assert rows[b"wof.bin:WofCompressedData"]["verdict"] == "notable"
    # Its unnamed stream is all hole: the file's data is elsewhere, never hashed as zeros.
    wof = rows[b"wof.bin"]
    assert wof["skip"] == "unsupported" and wof["md5"] is None and "0x80000017" in wof["detail"], wof
    assert not [r for r in rows.values() if r["skip"] == "symlink"]
    assert_counts_add_up(log)


def test_ntfs_special_files_of_wsl_are_skipped_by_their_kind_not_hashed_as_empty(
    built: dict[str, Any], tmp_path: Path
) -> None:
    """Once only name surrogates were taken for links, a WSL FIFO, device or a Unix socket
    (reparse tags without that bit) was hashed as an empty regular file."""
    src = tmp_path / "src"
    src.mkdir()
    tags = {"sock": (0x80000023, "socket"), "fifo": (0x80000024, "fifo"),
            "chr": (0x80000025, "device"), "blk": (0x80000026, "device")}  # fmt: skip
    for name in tags:
        (src / name).write_bytes(b"")
    image = tmp_path / "ev" / "wsl.raw"
    image.parent.mkdir()
    build.ntfs_from_tree(image, src, 8 << 20)
    for name, (tag, _) in tags.items():
        build.ntfs_add_reparse(image, name.encode(), tag, bytes(8))
    result, log = run(built, tmp_path, image)
    rows = {bytes(r["path"]).split(b":ntfs/", 1)[1]: r for r in inventory(log)}
    for name, (_, skip) in tags.items():
        row = rows[name.encode()]
        assert row["skip"] == skip and row["md5"] is None, row
    assert_counts_add_up(log)


def test_ext4_inline_data_is_the_files_own_content_not_a_stream(
    built: dict[str, Any], tmp_path: Path
) -> None:
    """Before: TSK names ext4's inline data attribute "DATA", and the file was reported as a
    stream `FILE:DATA` of kind `stream`: a path that names no ext4 file."""
    src = tmp_path / "src"
    src.mkdir()
    (src / "small.bin").write_bytes(build.NOTABLE_CONTENT[:40])
    (src / "notable.bin").write_bytes(build.NOTABLE_CONTENT)
    image = tmp_path / "inline.raw"
    subprocess.run([peer_tool("mke2fs"), "-q", "-F", "-t", "ext4", "-O", "inline_data", "-d",
                    str(src), str(image), "8M"], check=True)  # fmt: skip
    result, log = run(built, tmp_path, image)
    assert result.exit_code == ExitCode.NOTABLE, result.output
    rows = {bytes(r["path"]): r for r in inventory(log)}
    prefix = os.fsencode(image) + b"!p0@0:ext4/"
    for name, data in ((b"small.bin", build.NOTABLE_CONTENT[:40]), (b"notable.bin", build.NOTABLE_CONTENT)):
        row = rows[prefix + name]
        assert row["kind"] == "file" and row["sha256"] == hashlib.sha256(data).digest(), row
    assert not [p for p in rows if p.endswith(b":DATA")]


def test_exclude_patterns_apply_inside_images_and_archives(built: dict[str, Any], tmp_path: Path) -> None:
    """Before: --exclude was matched in folders only: a file named by a pattern inside an image
    (or an archive) was read and logged as a match, though the run record listed the pattern."""
    image = built["dir"] / "ext4.raw"
    result, log = run(built, tmp_path, image, extra=("--exclude", "notable.bin", "--exclude", "misc",
                                                     "--archives"))  # fmt: skip
    rows = {bytes(r["path"]): r for r in inventory(log)}
    prefix = os.fsencode(image) + b"!p0@0:ext4/"
    assert rows[prefix + b"notable.bin"]["skip"] == "excluded"
    below = [p for p in rows if p.startswith(prefix + b"misc/")]
    assert below and all(rows[p]["skip"] == "excluded" for p in below)
    members = [p for p in rows if b".zip!" in p or b".tar.gz!" in p]
    assert members, "the fixture's archives are walked"
    # Archive members are not matched against the patterns, and the end record says so.
    matches = [r["path"] for r in read_log(log) if r["type"] == "match"]
    assert matches and all("!inner/notable.bin" in m for m in matches), matches
    assert any("not matched against archive members" in n for n in read_log(log)[-1]["notes"])
    assert_counts_add_up(log)


def test_an_e01_not_named_as_a_segment_is_read_by_its_content(built: dict[str, Any], tmp_path: Path) -> None:
    """Before: `evidence.img` holding an E01 was refused: libewf lists segments by name only
    ("unsupported extension: .img"), though detection is by content."""
    ev = tmp_path / "ev"
    ev.mkdir()
    shutil.copyfile(built["dir"] / "ext4.E01", ev / "evidence.img")
    (ev / "evidence.iso").write_bytes(b"a sibling whose name looks like a later segment")
    result, log = run(built, tmp_path, ev / "evidence.img")
    assert result.exit_code == ExitCode.NOTABLE, result.output
    assert read_log(log)[0]["images"][0]["kind"] == "e01"
    prefix = os.fsencode(ev / "evidence.img") + b"!p0@0:ext4"
    assert hashed(log, prefix) == expected(built, "full", True, False)
    assert_counts_add_up(log)


def test_an_unreadable_single_file_is_never_said_to_be_hashed_as_one_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A batch item (batch checks no readability first) that cannot be opened was noted as
    "hashed as one file, not walked as a disk image": it was neither. Its error says why."""
    import matcher.scan as scan_mod

    blob = tmp_path / "disk.raw"
    blob.write_bytes(random.Random(4).randbytes(4096))
    real = scan_mod.open_readonly

    def refused(path: bytes, directory: bool = False) -> int:
        if path == os.fsencode(blob):
            raise PermissionError(13, "Permission denied")
        return real(path, directory)

    listed = tmp_path / "n.sha256"
    listed.write_text(f"{'0' * 64}  other\n")
    real_file = scan_mod.open_file

    def refused_file(path: bytes) -> int:
        if path == os.fsencode(blob):
            raise PermissionError(13, "Permission denied")
        return real_file(path)

    monkeypatch.setattr(scan_mod, "open_readonly", refused)
    monkeypatch.setattr(scan_mod, "open_file", refused_file)
    log = tmp_path / "run.jsonl"
    summary = scan_mod.run_scan(
        scan_mod.ScanOptions([blob], "E", "C", tmp_path / "s.db", log, lists=[listed], jobs=1)
    )
    assert summary.counts.errors == 1 and summary.counts.files == 0
    assert not any("hashed as one file" in note for note in read_log(log)[-1]["notes"])


def test_files_named_as_disk_images_in_a_folder_are_noted_as_hashed_not_walked(
    tmp_path: Path,
) -> None:
    """Before: a folder holding `case.E01` was scanned with no word that the image's files were
    never looked at (a notable file inside it missed in silence)."""
    import matcher.scan as scan_mod

    ev = tmp_path / "ev"
    (ev / "sub" / "holder.img").mkdir(parents=True)  # a folder so named is no image file
    (ev / "a.txt").write_bytes(b"text")
    (ev / "sub" / "case.E01").write_bytes(random.Random(5).randbytes(2048))
    (ev / "sub" / "disk.DD").write_bytes(random.Random(6).randbytes(2048))
    listed = tmp_path / "n.sha256"
    listed.write_text(f"{'0' * 64}  other\n")
    log = tmp_path / "run.jsonl"
    scan_mod.run_scan(scan_mod.ScanOptions([ev], "E", "C", tmp_path / "s.db", log, lists=[listed], jobs=1))
    (note,) = [n for n in read_log(log)[-1]["notes"] if "named as disk images" in n]
    assert note.startswith(f"2 file(s) in the folders are named as disk images (the first: {ev}/sub/case.E01)")
    assert "`matcher scan IMAGE`" in note
    # Not said to be hashed: under --candidates-only or --max-size such a file may be skipped.
    assert "were hashed as files" not in note and "skipped as any file, by --candidates-only" in note
    # One left out by --exclude is not said to be hashed.
    log = tmp_path / "run1.jsonl"
    scan_mod.run_scan(scan_mod.ScanOptions([ev], "E", "C", tmp_path / "s.db", log, jobs=1, excludes=("*.E01",)))
    (note,) = [n for n in read_log(log)[-1]["notes"] if "named as disk images" in n]
    assert note.startswith(f"1 file(s) in the folders are named as disk images (the first: {ev}/sub/disk.DD)")
    (ev / "sub" / "case.E01").unlink()
    (ev / "sub" / "disk.DD").unlink()
    log = tmp_path / "run2.jsonl"
    scan_mod.run_scan(scan_mod.ScanOptions([ev], "E", "C", tmp_path / "s.db", log, jobs=1))
    assert not any("named as disk images" in n for n in read_log(log)[-1]["notes"])


def test_an_e01_scan_leaves_the_access_times_of_its_segments_and_folder_as_they_were(
    built: dict[str, Any], tmp_path: Path
) -> None:
    """Before: libewf opened each segment by its path, without O_NOATIME, so a scan (and
    --verify-image) set the E01's access time, evidence modified; and the folder listed
    for its segments was read without O_NOATIME too. A raw image was left as it was."""
    ev = tmp_path / "ev"
    ev.mkdir()
    for segment in sorted(built["dir"].glob("gpt.E0*")):
        shutil.copyfile(segment, ev / segment.name)
    control = tmp_path / "control.bin"
    control.write_bytes(b"read with a plain open")
    # Note: an access time older than the mtime: relatime moves it on the next read.
    past = 1_577_836_800 * 10**9  # 2020-01-01
    watched = [control, ev, *sorted(ev.iterdir())]
    for path in watched:
        os.utime(path, ns=(past, path.stat().st_mtime_ns))
    control.read_bytes()
    if control.stat().st_atime_ns == past:
        # Note: CI's folders move access times (relatime): there, no skip.
        if os.environ.get("CI"):
            pytest.fail(f"{tmp_path} is mounted noatime: this case cannot be checked here")
        pytest.skip(f"{tmp_path} is mounted noatime: no read moves an access time here")
    result, log = run(built, tmp_path, ev / "gpt.E01", extra=("--verify-image",))
    assert result.exit_code == ExitCode.NOTABLE, result.output
    assert read_log(log)[0]["images"][0]["verify"]["match"] is True
    assert [p.name for p in watched[1:] if p.stat().st_atime_ns != past] == []
