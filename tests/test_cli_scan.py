"""`matcher scan` end to end: verdicts, the log contract, exit codes, evidence untouched."""

from __future__ import annotations

import base64
import json
import os
import re
import sqlite3
import stat
import subprocess
import sys
from pathlib import Path

import click
import pytest
from click.testing import CliRunner
from conftest import FIXTURES
from conftest import assert_counts_add_up
from conftest import end_record
from conftest import read_log
from conftest import peer_tool

from matcher.cli import cli

sys.path.insert(0, str(FIXTURES))
from make_fixtures import KNOWN  # noqa: E402
from make_fixtures import NOTABLE  # noqa: E402
from make_fixtures import expected_digests  # noqa: E402

LISTS = FIXTURES / "hashlists"


@pytest.fixture
def store(tmp_path: Path, runner: CliRunner) -> Path:
    db = tmp_path / "store.db"
    for name, role in [("notable.csv", "notable"), ("notable.md5", "notable"), ("known.hashdeep", "known")]:
        result = runner.invoke(cli, ["import", str(LISTS / name), "--db", str(db), "--role", role])
        assert result.exit_code == 0, result.output
    return db


def scan(runner: CliRunner, db: Path, log: Path, *evidence: Path, extra: list[str] | None = None) -> object:
    args = ["scan", *map(str, evidence), "--examiner", "Test Examiner", "--case", "T-1",
            "--db", str(db), "--log", str(log), *(extra or [])]
    return runner.invoke(cli, args, catch_exceptions=False)


def test_fixture_scan_logs_exactly_the_notable_files(runner: CliRunner, store: Path, tmp_path: Path, evidence_copy: Path) -> None:
    log = tmp_path / "out" / "run.jsonl"
    log.parent.mkdir()
    result = scan(runner, store, log, evidence_copy, extra=["--json"])
    assert result.exit_code == 1, result.output
    records = read_log(log)
    assert [r["type"] for r in (records[0], records[-1])] == ["run", "end"]
    matches = {os.path.relpath(r["path"], evidence_copy): r for r in records if r["type"] == "match"}
    assert set(matches) == set(NOTABLE)
    truth = expected_digests()
    for rel, record in matches.items():
        assert record["digests"] == truth[rel]
        assert record["size"] == (evidence_copy / rel).stat().st_size
        assert all(m["role"] == "notable" for m in record["matches"])
    csv_hit = [m for m in matches["data/big.bin"]["matches"] if m["list"] == "notable.csv"][0]
    assert csv_hit["entry"] == {"size": 1048593, "name": "data/big.bin", "id": "FX-0004", "label": "Category 1"}
    counts = assert_counts_add_up(log)
    assert counts["notable"] == len(NOTABLE)
    assert counts["known"] == len(KNOWN)
    assert counts["files"] == len(truth)
    summary = json.loads(result.stdout)
    assert summary["notable"] == len(NOTABLE) and summary["exit_code"] == 1
    assert "notable" in result.stderr and "unknown" in result.stderr
    run = records[0]
    assert run["examiner"] == "Test Examiner" and run["case"] == "T-1"
    assert {li["name"] for li in run["lists"]} == {"notable.csv", "notable.md5", "known.hashdeep"}
    assert all(len(li["source_sha256"]) == 64 for li in run["lists"])
    verify = runner.invoke(cli, ["verify", str(log)])
    assert verify.exit_code == 0, verify.output
    assert stat.S_IMODE(log.stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "out" / "run.jsonl.inventory.db").stat().st_mode) == 0o600


def test_no_content_byte_in_the_log(runner: CliRunner, store: Path, tmp_path: Path, evidence_copy: Path) -> None:
    marker = b"CONTENT-MARKER-7f3a9c"
    (evidence_copy / "secret.txt").write_bytes(marker * 10)
    log = tmp_path / "run.jsonl"
    scan(runner, store, log, evidence_copy)
    raw = log.read_bytes()
    assert marker not in raw and base64.b64encode(marker)[:12] not in raw


def test_scan_without_examiner_or_case_runs_nothing(runner: CliRunner, store: Path, tmp_path: Path) -> None:
    log = tmp_path / "run.jsonl"
    for args in (["--case", "T-1"], ["--examiner", "X"], ["--examiner", " ", "--case", "T-1"]):
        result = runner.invoke(cli, ["scan", str(FIXTURES / "evidence"), "--db", str(store), "--log", str(log), *args])
        assert result.exit_code == 2, result.output
        assert not log.exists()


def test_output_inside_evidence_is_refused(runner: CliRunner, store: Path, evidence_copy: Path) -> None:
    before = sorted(p for p in evidence_copy.rglob("*"))
    log = evidence_copy / "notes" / "run.jsonl"
    result = runner.invoke(cli, ["scan", str(evidence_copy), "--examiner", "X", "--case", "T",
                                 "--db", str(store), "--log", str(log)])
    assert result.exit_code == 2
    assert "never writes under an evidence root" in result.output
    assert sorted(p for p in evidence_copy.rglob("*")) == before


def test_a_default_log_inside_the_evidence_is_refused_naming_the_option_that_moves_it(
    runner: CliRunner, store: Path, evidence_copy: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Scanning `.` without --log would put the log (named by default) in the evidence."""
    monkeypatch.chdir(evidence_copy)
    before = sorted(p for p in evidence_copy.rglob("*"))
    result = runner.invoke(cli, ["scan", ".", "--examiner", "X", "--case", "T", "--db", str(store)])
    assert result.exit_code == 2
    assert "The log matcher-T-" in result.stderr and "Choose a path outside it with --log." in result.stderr
    result = runner.invoke(cli, ["scan", ".", "--examiner", "X", "--case", "T", "--db", "s.db",
                                 "--log", str(store.parent / "run.jsonl")])  # fmt: skip
    assert result.exit_code == 2 and "The hash store s.db" in result.stderr and "with --db." in result.stderr
    assert sorted(p for p in evidence_copy.rglob("*")) == before


def test_existing_log_is_never_overwritten(runner: CliRunner, store: Path, tmp_path: Path, evidence_copy: Path) -> None:
    log = tmp_path / "run.jsonl"
    log.write_bytes(b"precious\n")
    result = scan(runner, store, log, evidence_copy)
    assert result.exit_code == 2 and log.read_bytes() == b"precious\n"


def test_hostile_tree_every_entry_accounted_for(runner: CliRunner, store: Path, tmp_path: Path, evidence_copy: Path) -> None:
    root = os.fsencode(evidence_copy)
    big = (evidence_copy / "data" / "big.bin").read_bytes()
    odd = root + b"/caf\xe9-\xff.bin"  # not UTF-8: must round-trip as bytes
    with open(odd, "wb") as f:
        f.write(big)
    os.mkfifo(evidence_copy / "pipe")
    (evidence_copy / "loop").symlink_to(evidence_copy / "loop")
    (evidence_copy / "escape").symlink_to("/etc")
    (evidence_copy / "dirlink").symlink_to(evidence_copy / "notes")
    with open(root + b"/" + b"n" * 255, "wb") as f:
        f.write(b"long name")
    log = tmp_path / "run.jsonl"
    result = scan(runner, store, log, evidence_copy)
    assert result.exit_code == 1, result.output
    counts = assert_counts_add_up(log)
    assert counts["skipped_by_reason"] == {"symlink": 3, "fifo": 1}
    matches = [r for r in read_log(log) if r["type"] == "match"]
    odd_records = [r for r in matches if "path_b64" in r]
    assert len(odd_records) == 1
    assert base64.b64decode(odd_records[0]["path_b64"]) == odd
    entries = 0
    for _dirpath, dirnames, filenames in os.walk(root):
        entries += len(filenames) + sum(1 for d in dirnames if os.path.islink(os.path.join(_dirpath, d)))
    assert counts["entries"] == entries


def test_unreadable_file_never_exits_zero(runner: CliRunner, store: Path, tmp_path: Path, evidence_copy: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import matcher.scan as scan_mod

    real = scan_mod.open_file

    def deny(path: bytes) -> int:
        if path.endswith(b"note-00.txt"):
            raise PermissionError(13, "Permission denied")
        return real(path)

    monkeypatch.setattr(scan_mod, "open_file", deny)
    log = tmp_path / "run.jsonl"
    result = scan(runner, store, log, evidence_copy, extra=["--jobs", "1"])
    assert result.exit_code == 1 | 4, result.output
    errors = [r for r in read_log(log) if r["type"] == "error"]
    assert len(errors) == 1 and errors[0]["reason"] == "unreadable" and errors[0]["errno"] == 13
    counts = assert_counts_add_up(log)
    assert counts["errors"] == 1 and counts["files"] == len(expected_digests()) - 1
    # Without notable lists matching, the code is 4 alone.
    (evidence_copy / "data" / "big.bin").unlink()
    for name in NOTABLE[:-1]:
        (evidence_copy / name).unlink()
    log2 = tmp_path / "run2.jsonl"
    assert scan(runner, store, log2, evidence_copy, extra=["--jobs", "1"]).exit_code == 4


def test_evidence_timestamps_unchanged(runner: CliRunner, store: Path, tmp_path: Path, evidence_copy: Path) -> None:
    old = 1_000_000_000
    for path in evidence_copy.rglob("*"):
        os.utime(path, (old, old), follow_symlinks=False)
    before = {p: os.lstat(p) for p in evidence_copy.rglob("*")}
    scan(runner, store, tmp_path / "run.jsonl", evidence_copy)
    for path, st in before.items():
        now = os.lstat(path)
        assert (now.st_atime_ns, now.st_mtime_ns, now.st_ctime_ns) == (st.st_atime_ns, st.st_mtime_ns, st.st_ctime_ns), path


def test_a_list_given_that_the_store_holds_already_is_said_with_its_role(runner: CliRunner, store: Path, tmp_path: Path, evidence_copy: Path) -> None:
    """--list known.hashdeep, a format imported as notable by default, held as a known list:
    its matches are counted as known and never logged. The note said only "already imported
    as 'known.hashdeep'", so an examiner who gave it to be matched as notable was not told."""
    log = tmp_path / "run.jsonl"
    result = scan(runner, store, log, evidence_copy, extra=["--list", str(LISTS / "known.hashdeep")])
    assert result.exit_code == 1, result.output
    said = f"list {LISTS / 'known.hashdeep'} was already imported as the known list 'known.hashdeep'"
    assert said in end_record(log)["notes"]
    assert f"note: {said}" in result.output


def test_a_list_given_from_inside_the_evidence_is_read_there_and_said(runner: CliRunner, tmp_path: Path, evidence_copy: Path) -> None:
    """A --list found on the evidence (a suspect's own) is read as any list is, in place and
    without O_NOATIME: its access time may move, which the log did not say. The end record says
    so; the other evidence keeps its times. It is read where it is, not from a copy: a copy
    alone lost the files some formats read beside a list (a review found an NSRL hashes.txt
    beside its NSRLFile.txt, refused in place, imported from a copy as a notable list)."""
    import hashlib

    own = evidence_copy / "suspects.sha256"
    named = evidence_copy / "with space, comma.txt"
    own.write_text(f"{hashlib.sha256(named.read_bytes()).hexdigest()}  {named.name}\n")
    nsrl = evidence_copy / "nsrl"
    nsrl.mkdir()
    (nsrl / "NSRLFile.txt").write_bytes(b'"SHA-1","MD5","CRC32","FileName","FileSize","ProductCode","OpSystemCode","SpecialCode"\r\n')
    (nsrl / "hashes.txt").write_text("AAF4C61DDCC5E8A2DABEDE0F3B482CD9AEA9434D\n")
    old = 1_000_000_000
    for path in evidence_copy.rglob("*"):
        os.utime(path, (old, old), follow_symlinks=False)
    before = {p: os.lstat(p) for p in evidence_copy.rglob("*") if p != own}
    db = tmp_path / "s.db"
    done = scan(runner, db, tmp_path / "run.jsonl", evidence_copy, extra=["--list", str(own)])
    assert done.exit_code == 1, done.output
    (said,) = [n for n in end_record(tmp_path / "run.jsonl")["notes"] if "lies inside the evidence" in n]
    assert said.startswith(f"list {own} lies inside the evidence ({evidence_copy})") and "access time" in said
    for path, st in before.items():
        now = os.lstat(path)
        assert (now.st_atime_ns, now.st_mtime_ns, now.st_ctime_ns) == (st.st_atime_ns, st.st_mtime_ns, st.st_ctime_ns), path
    assert sqlite3.connect(db).execute("SELECT source_path FROM lists").fetchall() == [(str(own),)]
    beside = scan(runner, tmp_path / "t.db", tmp_path / "t.jsonl", evidence_copy, extra=["--list", str(nsrl / "hashes.txt")])
    assert beside.exit_code == 2 and "NSRL" in beside.output, beside.output
    outside = scan(runner, tmp_path / "u.db", tmp_path / "u.jsonl", evidence_copy / "data", extra=["--list", str(own)])
    assert outside.exit_code == 0, outside.output  # the list is not under this root: no note
    assert not any("lies inside" in n for n in end_record(tmp_path / "u.jsonl")["notes"])
    # A symlink inside the evidence to a list outside it is read through: said too (a review).
    elsewhere = tmp_path / "elsewhere.sha256"
    elsewhere.write_bytes(own.read_bytes())
    (evidence_copy / "data" / "link.sha256").symlink_to(elsewhere)
    linked = scan(runner, tmp_path / "v.db", tmp_path / "v.jsonl", evidence_copy / "data",
                  extra=["--list", str(evidence_copy / "data" / "link.sha256")])  # fmt: skip
    assert linked.exit_code == 0, linked.output
    assert any("link.sha256 lies inside the evidence" in n for n in end_record(tmp_path / "v.jsonl")["notes"])
    # ... and as a link in the middle of a chain: out/l1 -> evidence/l2 -> the list (a third review).
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "l1").symlink_to(evidence_copy / "data" / "link.sha256")
    chained = scan(runner, tmp_path / "w.db", tmp_path / "w.jsonl", evidence_copy / "data",
                   extra=["--list", str(tmp_path / "out" / "l1")])  # fmt: skip
    assert chained.exit_code == 0, chained.output
    assert any("l1 lies inside the evidence" in n for n in end_record(tmp_path / "w.jsonl")["notes"])


def _log_without_times(log: Path) -> list[dict[str, object]]:
    out = []
    for record in read_log(log):
        if record["type"] in ("match", "error"):
            out.append({k: v for k, v in record.items() if k not in ("time", "prev", "seq")})
    return out


def test_results_identical_whatever_jobs(runner: CliRunner, store: Path, tmp_path: Path, evidence_copy: Path) -> None:
    logs = []
    for jobs in ("1", "2", "3"):
        log = tmp_path / f"run{jobs}.jsonl"
        assert scan(runner, store, log, evidence_copy, extra=["--jobs", jobs]).exit_code == 1
        logs.append(_log_without_times(log))
    assert logs[0] == logs[1] == logs[2] and len(logs[0]) == len(NOTABLE)


def test_digests_agree_with_hashdeep_and_coreutils(runner: CliRunner, store: Path, tmp_path: Path, evidence_copy: Path) -> None:
    (evidence_copy / "chunk").write_bytes(os.urandom((1 << 20) * 3 + 1))
    log = tmp_path / "run.jsonl"
    scan(runner, store, log, evidence_copy, extra=["--algorithms", "md5,sha1,sha256,sha512"])
    conn = sqlite3.connect(f"{log}.inventory.db")
    ours = {bytes(p): (m.hex(), s1.hex(), s2.hex(), s5.hex())
            for p, m, s1, s2, s5 in conn.execute("SELECT path, md5, sha1, sha256, sha512 FROM entries WHERE md5 IS NOT NULL")}
    conn.close()
    assert len(ours) == len(expected_digests()) + 1
    for tool, index in (("md5sum", 0), ("sha1sum", 1), ("sha256sum", 2), ("sha512sum", 3)):
        exe = peer_tool(tool)
        for path, digests in ours.items():
            out = subprocess.run([exe, "-z", "--", os.fsdecode(path)], capture_output=True, check=True).stdout
            assert out.split(b" ")[0].decode() == digests[index], (tool, path)
    hashdeep = peer_tool("hashdeep")
    out = subprocess.run([hashdeep, "-r", "-c", "md5,sha1,sha256", "-l", "."], cwd=evidence_copy,
                         capture_output=True, check=True).stdout.decode()
    theirs = {}
    for line in out.splitlines():
        if line.startswith(("%", "#")) or not line:
            continue
        size, md5, sha1, sha256, name = line.split(",", 4)
        theirs[os.fsencode(os.path.normpath(evidence_copy / name))] = (md5, sha1, sha256)
    assert {p: d[:3] for p, d in ours.items()} == theirs


def test_summary_says_what_is_left_unknown(runner: CliRunner, store: Path, tmp_path: Path, evidence_copy: Path) -> None:
    result = scan(runner, store, tmp_path / "r.jsonl", evidence_copy, extra=["--json"])
    summary = json.loads(result.stdout)
    unknown = len(expected_digests()) - len(NOTABLE) - len(KNOWN)
    assert summary["unknown"] == unknown
    assert f"unknown {unknown}" in result.stderr
    assert end_record(tmp_path / "r.jsonl")["counts"]["unknown"] == unknown


@pytest.mark.parametrize("bulk", [4096, 2])
def test_candidates_only_hashes_only_sized_candidates(runner: CliRunner, tmp_path: Path, evidence_copy: Path, monkeypatch: pytest.MonkeyPatch, bulk: int) -> None:
    # Not-candidate files are recorded in bulk, `bulk` at a time (2: many
    # bulks, interleaved with hashed files): every one still gets its row.
    monkeypatch.setattr("matcher.scan.NOT_CANDIDATE_BATCH", bulk)
    db = tmp_path / "sized.db"
    runner.invoke(cli, ["import", str(LISTS / "notable.csv"), "--db", str(db)])
    log = tmp_path / "c.jsonl"
    # The notable sizes are read from the store once (before the store is
    # held, which refuses lists changed since), not again for the walk.
    from matcher.store import HashStore

    reads = []
    read_sizes = HashStore.notable_sizes
    monkeypatch.setattr(HashStore, "notable_sizes", lambda *a, **k: reads.append(1) or read_sizes(*a, **k))
    result = scan(runner, db, log, evidence_copy, extra=["--candidates-only", "--json"])
    assert result.exit_code == 1, result.output
    assert len(reads) == 1
    counts = assert_counts_add_up(log)
    truth = expected_digests()
    sizes = {(evidence_copy / n).stat().st_size for n in NOTABLE}
    candidates = [n for n in truth if (evidence_copy / n).stat().st_size in sizes]
    assert counts["files"] == len(candidates)
    assert counts["skipped_by_reason"]["not-candidate"] == len(truth) - len(candidates)
    assert counts["notable"] == len(NOTABLE)
    assert read_log(log)[0]["options"]["candidates_only"] is True
    # The summary on screen says what was not read, and what known/unknown then cover; so do
    # the end record and the JSON (a batch job reads those).
    not_read = len(truth) - len(candidates)
    said = (
        f"--candidates-only: {not_read:,} files not hashed (their size was no notable entry's in "
        f"the scan's lists); known and unknown count only the {len(candidates):,} files hashed"
    )
    assert f"note: {said}" in result.stderr
    assert said in end_record(log)["notes"] and said in json.loads(result.stdout)["notes"]
    conn = sqlite3.connect(f"{log}.inventory.db")
    try:
        rows = {os.fsdecode(bytes(r[0])): r[1:] for r in conn.execute(
            "SELECT path, skip, size, sha256 FROM entries")}  # fmt: skip
    finally:
        conn.close()
    assert len(rows) == counts["entries"]
    for name in truth:
        skip, size, sha256 = rows[str(evidence_copy / name)]
        assert size == (evidence_copy / name).stat().st_size
        if name in candidates:
            assert skip is None and sha256 is not None, name
        else:
            assert skip == "not-candidate" and sha256 is None, name


def test_candidates_only_falls_back_when_a_list_lacks_sizes(runner: CliRunner, store: Path, tmp_path: Path, evidence_copy: Path) -> None:
    log = tmp_path / "c.jsonl"
    result = scan(runner, store, log, evidence_copy, extra=["--candidates-only"])
    assert "notable.md5" in result.stderr and "full scan" in result.stderr
    assert "with entries that give no usable size: notable.md5" in result.stderr
    counts = assert_counts_add_up(log)
    assert counts["files"] == len(expected_digests())
    assert read_log(log)[0]["options"]["candidates_only"] is False


def test_candidates_only_fallback_is_said_before_the_first_file_and_kept_in_the_run_record(
    store: Path, tmp_path: Path, evidence_copy: Path
) -> None:
    """Before: the reason came only with the end record and the summary, once the full
    scan had run; a log cut short (kill -9) said `candidates_only: false` of a run that
    asked for it, with nothing saying why."""
    from matcher.scan import ScanOptions
    from matcher.scan import run_scan

    said: list[object] = []
    log = tmp_path / "c.jsonl"
    options = ScanOptions([evidence_copy], "E", "C", store, log, candidates_only=True, jobs=1)
    summary = run_scan(options, progress=lambda counts: said.append(counts.entries), on_note=said.append)
    reason = "--candidates-only ignored (full scan): notable list(s) with entries that give no usable size: notable.md5"
    assert said[0] == reason and said.count(reason) == 1  # before any file was counted
    assert reason in summary.notes
    run = read_log(log)[0]
    assert run["options"]["candidates_only"] is False and run["candidates_only_ignored"] == reason
    # followed: nothing to say, and the run record is as before
    sized = tmp_path / "sized.hashdeep"
    name = sorted(NOTABLE)[0]
    truth = expected_digests()[name]
    sized.write_text(f"%%%% HASHDEEP-1.0\n%%%% size,md5,filename\n{(evidence_copy / name).stat().st_size},{truth['md5']},{name}\n")
    db = tmp_path / "sized.db"
    assert CliRunner().invoke(cli, ["import", str(sized), "--db", str(db), "--role", "notable"]).exit_code == 0
    said.clear()
    log = tmp_path / "d.jsonl"
    run_scan(ScanOptions([evidence_copy], "E", "C", db, log, candidates_only=True, jobs=1), on_note=said.append)
    run = read_log(log)[0]
    assert said == [] and run["options"]["candidates_only"] is True and "candidates_only_ignored" not in run


def test_candidates_only_fallback_is_printed_once_before_the_summary_by_the_command(
    store: Path, tmp_path: Path, evidence_copy: Path
) -> None:
    """The CLI passes on_note: one `note:` line on stderr, ahead of the summary's copy."""
    log = tmp_path / "c.jsonl"
    done = subprocess.run(
        [sys.executable, "-m", "matcher", "scan", str(evidence_copy), "--examiner", "E", "--case", "C",
         "--db", str(store), "--log", str(log), "--candidates-only"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 1, done.stderr
    lines = done.stderr.splitlines()
    early = [i for i, line in enumerate(lines) if line.startswith("note: --candidates-only ignored (full scan)")]
    summary = [i for i, line in enumerate(lines) if line.startswith("complete: ")]
    assert len(early) == 1 and len(summary) == 1 and early[0] < summary[0], done.stderr
    assert lines[early[0]].endswith("no usable size: notable.md5")


def test_the_early_note_is_terminal_safe(capsys: pytest.CaptureFixture[str]) -> None:
    """A list named with an escape sequence: the summary escaped it, the early note did not."""
    from matcher.cli import _note_now

    _note_now(None, "no usable size: evil\x1b[31mRED.md5")
    err = capsys.readouterr().err
    assert "\x1b" not in err and err == "note: no usable size: evil\\x1B[31mRED.md5\n"


def test_a_refused_resume_says_nothing_of_candidates_only(store: Path, tmp_path: Path, evidence_copy: Path) -> None:
    """Before: the fallback was said, then the resume refused (another --exclude): no scan ran."""
    from matcher.errors import UsageError
    from matcher.scan import ScanOptions
    from matcher.scan import run_scan

    log = tmp_path / "c.jsonl"
    run_scan(ScanOptions([evidence_copy], "E", "C", store, log, candidates_only=True, jobs=1))
    lines = log.read_bytes().splitlines(keepends=True)
    log.write_bytes(b"".join(lines[:-1]))  # its end record gone: a run to continue
    said: list[str] = []
    options = ScanOptions([evidence_copy], "E", "C", store, log, candidates_only=True, jobs=1,
                          resume=True, excludes=("*.txt",))  # fmt: skip
    with pytest.raises(UsageError, match="differs"):
        run_scan(options, on_note=said.append)
    assert said == []


def test_a_resume_refused_after_its_run_record_says_nothing_of_candidates_only(
    store: Path, tmp_path: Path, evidence_copy: Path
) -> None:
    """Before: said as the run record was written, then the resume was refused (an
    inventory row changed by hand): the note of a run that never ran."""
    from matcher.errors import UsageError
    from matcher.scan import ScanOptions
    from matcher.scan import run_scan

    log = tmp_path / "c.jsonl"
    run_scan(ScanOptions([evidence_copy], "E", "C", store, log, candidates_only=True, jobs=1))
    log.write_bytes(b"".join(log.read_bytes().splitlines(keepends=True)[:-1]))
    with sqlite3.connect(f"{log}.inventory.db") as conn:
        conn.execute("UPDATE entries SET verdict = NULL WHERE rowid = (SELECT min(rowid) FROM entries)")
    said: list[str] = []
    options = ScanOptions([evidence_copy], "E", "C", store, log, candidates_only=True, jobs=1, resume=True)
    with pytest.raises(UsageError, match="without this run's digests or a verdict"):
        run_scan(options, on_note=said.append)
    assert said == []


def test_an_on_note_that_raises_still_ends_the_log(store: Path, tmp_path: Path, evidence_copy: Path) -> None:
    """Before: the log kept its run record alone ("no end record"), where a progress
    callback's fault ends it with an end record that says so."""
    from matcher.scan import ScanOptions
    from matcher.scan import run_scan

    def fails(text: str) -> None:
        raise ZeroDivisionError(text)

    log = tmp_path / "c.jsonl"
    with pytest.raises(ZeroDivisionError):
        run_scan(ScanOptions([evidence_copy], "E", "C", store, log, candidates_only=True, jobs=1), on_note=fails)
    end = end_record(log)
    assert any("aborted by an internal error: ZeroDivisionError" in n for n in end["notes"]), end
    assert CliRunner().invoke(cli, ["verify", str(log)]).exit_code == 0


def test_candidates_only_falls_back_when_a_list_gives_size_0_for_a_file_that_is_not_empty(
    runner: CliRunner, tmp_path: Path, evidence_copy: Path
) -> None:
    """Before: a notable entry of size 0 with a non-empty file's digest (a supplier writing 0
    for "unknown") made --candidates-only pass over that file: "no notable match", exit 0.
    An entry of size 0 with the empty file's digest is a true size and keeps the mode."""
    import hashlib

    truth = expected_digests()
    name = sorted(NOTABLE)[0]
    md5 = truth[name]["md5"]
    header = "%%%% HASHDEEP-1.0\n%%%% size,md5,filename\n"
    misfit = tmp_path / "zero.hashdeep"
    misfit.write_text(f"{header}0,{md5},{name}\n")
    empty = tmp_path / "empty.hashdeep"
    empty.write_text(f"{header}0,{hashlib.md5(b'').hexdigest()},empty\n")
    for listed, fallback in ((misfit, True), (empty, False)):
        db = tmp_path / f"{listed.stem}.db"
        result = runner.invoke(cli, ["import", str(listed), "--db", str(db), "--role", "notable"])
        assert result.exit_code == 0, result.output
        log = tmp_path / f"{listed.stem}.jsonl"
        result = scan(runner, db, log, evidence_copy, extra=["--candidates-only"])
        assert read_log(log)[0]["options"]["candidates_only"] is not fallback
        if fallback:
            assert result.exit_code == 1, result.output
            assert "--candidates-only ignored (full scan)" in result.stderr
            assert (
                "zero.hashdeep (1 entry gives size 0 with the digest of a file that is not empty)"
                in result.stderr
            )
            assert [r["path"] for r in read_log(log) if r["type"] == "match"] == [str(evidence_copy / name)]
        else:
            assert "ignored" not in result.stderr, result.stderr


def test_candidates_only_with_no_notable_list_is_refused_not_a_complete_scan_of_nothing(
    runner: CliRunner, tmp_path: Path, evidence_copy: Path
) -> None:
    """Before: a store of known lists only gave 'complete', exit 0, every file not-candidate,
    and an end record that said nothing of it: no file could ever have been read."""
    db = tmp_path / "known.db"
    assert runner.invoke(cli, ["import", str(LISTS / "known.hashdeep"), "--db", str(db), "--role", "known"]).exit_code == 0
    log = tmp_path / "c.jsonl"
    result = scan(runner, db, log, evidence_copy, extra=["--candidates-only"])
    assert result.exit_code == 2, result.output
    assert "holds no notable list" in result.stderr and "without --candidates-only" in result.stderr
    assert not log.exists()
    # Without the option the same store scans (known and unknown counted).
    assert scan(runner, db, tmp_path / "d.jsonl", evidence_copy).exit_code == 0


def test_algorithms_that_cannot_match_are_refused(runner: CliRunner, tmp_path: Path, evidence_copy: Path) -> None:
    db = tmp_path / "sha1only.db"
    runner.invoke(cli, ["import", str(LISTS / "notable.txt"), "--db", str(db)])
    result = scan(runner, db, tmp_path / "x.jsonl", evidence_copy, extra=["--algorithms", "md5,sha256"])
    assert result.exit_code == 2 and "nothing could ever match" in result.output
    # It says what would: not "Fix --algorithms" whatever the cause (a review).
    assert "a scan needs --algorithms naming one of sha1" in result.output
    assert not (tmp_path / "x.jsonl").exists()


def test_wrong_algorithm_name_is_a_usage_error(runner: CliRunner, store: Path, tmp_path: Path, evidence_copy: Path) -> None:
    result = runner.invoke(cli, ["scan", str(evidence_copy), "--examiner", "E", "--case", "C", "--db", str(store),
                                 "--algorithms", "md5,crc32"])
    assert result.exit_code == 2 and "crc32" in result.output


def test_blake3_and_sha512_when_asked(runner: CliRunner, tmp_path: Path, evidence_copy: Path) -> None:
    import blake3

    data = (evidence_copy / "notes" / "note-01.txt").read_bytes()
    lst = tmp_path / "b3.txt"
    lst.write_text(f"BLAKE3 (note) = {blake3.blake3(data).hexdigest()}\n")
    db = tmp_path / "b3.db"
    assert runner.invoke(cli, ["import", str(lst), "--db", str(db)]).exit_code == 0
    log = tmp_path / "b.jsonl"
    result = scan(runner, db, log, evidence_copy, extra=["--algorithms", "sha512,blake3"])
    assert result.exit_code == 1, result.output
    [match] = [r for r in read_log(log) if r["type"] == "match"]
    assert match["digests"]["blake3"] == blake3.blake3(data).hexdigest()
    assert set(match["digests"]) == {"sha512", "blake3"}


def test_the_run_record_reports_the_lookup_filters_memory(
    runner: CliRunner, store: Path, tmp_path: Path, evidence_copy: Path
) -> None:
    """Issue 4 asks that the filter's memory be reported: the run record gives it (README)."""
    log = tmp_path / "r.jsonl"
    scan(runner, store, log, evidence_copy)
    (run,) = [r for r in read_log(log) if r["type"] == "run"]
    assert run["filter"]["kind"] == "bloom" and run["filter"]["bytes"] > 0


def _signed_scan_with_checkpoints(
    runner: CliRunner, store: Path, tmp_path: Path, evidence: Path, monkeypatch: pytest.MonkeyPatch
) -> tuple[Path, Path]:
    """(log, key) of a signed scan that leaves a checkpoint every few matches."""
    import matcher.scan as scan_mod

    monkeypatch.setattr(scan_mod, "CHECKPOINT_SECONDS", 0.0)
    monkeypatch.setattr(scan_mod, "MATCH_BATCH", 4)
    key = tmp_path / "k.pem"
    runner.invoke(cli, ["keygen", str(key)])
    log = tmp_path / "r.jsonl"
    scan(runner, store, log, evidence, extra=["--sign-key", str(key), "--jobs", "1"])
    return log, key


def test_long_runs_leave_signed_checkpoints(runner: CliRunner, store: Path, tmp_path: Path, evidence_copy: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    log, key = _signed_scan_with_checkpoints(runner, store, tmp_path, evidence_copy, monkeypatch)
    checkpoints = [r for r in read_log(log) if r["type"] == "checkpoint"]
    assert len(checkpoints) >= 2 and all("signature" in c for c in checkpoints)
    result = runner.invoke(cli, ["verify", str(log), "--public-key", str(key) + ".pub", "--json"])
    assert result.exit_code == 0
    assert json.loads(result.stdout)["signatures_checked"] == len(checkpoints) + 1
    # Without the key, the chain is intact but nothing proves who signed: said plainly.
    result = runner.invoke(cli, ["verify", str(log)])
    assert result.exit_code == 0
    fingerprint = json.loads(runner.invoke(cli, ["verify", str(log), "--json"]).stdout)["key_fingerprints"][0]
    assert f"signed by key {fingerprint}, signatures NOT checked (give --public-key" in result.stdout


def test_a_log_cut_after_signed_checkpoints_is_reported_with_what_verified_before_the_cut(
    runner: CliRunner, store: Path, tmp_path: Path, evidence_copy: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before: verify said only FAILED, and the json and dfxml reports gave records 0,
    signatures_checked 0, no key: the checkpoints that prove who wrote a cut log went unsaid."""
    log, key = _signed_scan_with_checkpoints(runner, store, tmp_path, evidence_copy, monkeypatch)
    lines = log.read_bytes().splitlines(keepends=True)
    last_checkpoint = max(i for i, line in enumerate(lines) if b'"type":"checkpoint"' in line)
    log.write_bytes(b"".join(lines[: last_checkpoint + 1]) + lines[last_checkpoint + 1][:20])  # cut
    signed = sum(b'"type":"checkpoint"' in line for line in lines[: last_checkpoint + 1])
    public = str(key) + ".pub"
    result = runner.invoke(cli, ["verify", str(log), "--public-key", public, "--json"])
    assert result.exit_code == 1
    found = json.loads(result.stdout)
    assert found["intact"] is False and found["records"] == last_checkpoint + 1
    assert found["signatures_checked"] == signed and len(found["key_fingerprints"]) == 1
    text = runner.invoke(cli, ["verify", str(log), "--public-key", public])
    assert f"the {last_checkpoint + 1} record(s) before it verified, {signed} signature(s) verified with key" in text.output
    report = runner.invoke(cli, ["report", str(log), "--format", "json", "--public-key", public])
    verification = json.loads(report.stdout)["log"]["verification"]
    assert verification["intact"] is False and verification["records"] == last_checkpoint + 1
    assert verification["signatures_checked"] == signed
    assert verification["key_fingerprints"] == found["key_fingerprints"]
    said = f"the {last_checkpoint + 1} record(s) before it verified, {signed} signature(s) verified"
    for fmt in ("csv", "html", "case"):
        made = runner.invoke(cli, ["report", str(log), "--format", fmt, "--public-key", public])
        assert said in made.stdout, fmt
    # Cut one record after the checkpoint before: that record is held by its chain alone.
    before = next(i for i, line in enumerate(lines[:-2]) if b'"type":"checkpoint"' in line
                  and b'"type":"checkpoint"' not in lines[i + 1])  # fmt: skip
    log.write_bytes(b"".join(lines[: before + 2]) + lines[before + 2][:20])
    signed = sum(b'"type":"checkpoint"' in line for line in lines[: before + 1])
    text = runner.invoke(cli, ["verify", str(log), "--public-key", public])
    assert f"the {before + 2} record(s) before it verified, {signed} signature(s) verified with key " in text.output
    assert (f"the last at line {before + 1}: the records after it are held by their chain alone"
            in text.output), text.output  # fmt: skip


@pytest.mark.parametrize("rule", ["seconds", "bytes"])
def test_an_interrupted_run_keeps_every_file_hashed_before_it(tmp_path: Path, store: Path, monkeypatch: pytest.MonkeyPatch, rule: str) -> None:
    # Outcomes are settled once SETTLE_BYTES are hashed or SETTLE_SECONDS
    # pass (each made tiny here, in turn), not only once MATCH_BATCH of them
    # wait: a run of a few large files interrupted midway must have
    # recorded, and kept, the files it finished.
    import signal

    import matcher.scan as scan_mod

    monkeypatch.setattr(scan_mod, "SETTLE_SECONDS", 0.0 if rule == "seconds" else 1e9)
    monkeypatch.setattr(scan_mod, "SETTLE_BYTES", 1 if rule == "bytes" else 1 << 62)
    evidence = tmp_path / "ev"
    evidence.mkdir()
    for i in range(6):
        (evidence / f"f{i}").write_bytes(os.urandom(1000 + i))
    log = tmp_path / "run.jsonl"
    options = scan_mod.ScanOptions(
        evidence=[evidence], examiner="E", case="C", db=store, log=log, jobs=1
    )
    calls = []

    def progress(counts: scan_mod.Counts) -> None:
        calls.append(counts.files)
        if len(calls) == 1:
            os.kill(os.getpid(), signal.SIGINT)

    summary = scan_mod.run_scan(options, progress)
    assert summary.status == "interrupted"
    # Settled after the first file: the signal lands in that first report.
    assert calls == [1] and summary.counts.files == 1
    conn = sqlite3.connect(f"{log}.inventory.db")
    try:
        rows = conn.execute("SELECT count(*) FROM entries WHERE sha256 IS NOT NULL").fetchone()[0]
    finally:
        conn.close()
    assert rows == summary.counts.files


def test_a_scan_without_a_store_creates_none(runner: CliRunner, tmp_path: Path, evidence_copy: Path) -> None:
    db = tmp_path / "missing.db"
    result = runner.invoke(cli, ["scan", str(evidence_copy), "--examiner", "E", "--case", "C",
                                 "--db", str(db), "--log", str(tmp_path / "l.jsonl")])
    assert result.exit_code == 2 and "does not exist" in result.output
    assert not db.exists() and not (tmp_path / "l.jsonl").exists()


def test_ctrl_c_before_the_scan_starts_exits_8_not_1(runner: CliRunner, store: Path, tmp_path: Path, evidence_copy: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Exit 1 means a notable match; a Ctrl-C during start-up (self-test, --list import)
    used to give click's 'Aborted!' and 1."""
    import matcher.scan as scan_mod

    def interrupted(**kwargs: object) -> object:
        raise KeyboardInterrupt

    monkeypatch.setattr(scan_mod, "run_selftest", interrupted)
    result = runner.invoke(cli, ["scan", str(evidence_copy), "--examiner", "E", "--case", "C",
                                 "--db", str(store), "--log", str(tmp_path / "l.jsonl")])
    assert result.exit_code == 8 and "Interrupted" in result.output
    # No log yet: --resume would only say the log does not exist.
    assert "nothing to resume: run the command again" in result.output
    assert not (tmp_path / "l.jsonl").exists()
    # A resume interrupted as early leaves its log to be continued again.
    (tmp_path / "r.jsonl").write_bytes(b"")
    result = runner.invoke(cli, ["scan", str(evidence_copy), "--examiner", "E", "--case", "C",
                                 "--db", str(store), "--log", str(tmp_path / "r.jsonl"), "--resume"])
    assert result.exit_code == 8
    assert f"continue it with --resume --log {tmp_path / 'r.jsonl'}" in result.output


def test_a_refused_list_leaves_no_new_store(runner: CliRunner, tmp_path: Path, evidence_copy: Path) -> None:
    bad = tmp_path / "bad.md5"
    bad.write_text("not a hash list\n")
    db = tmp_path / "new.db"
    result = runner.invoke(cli, ["scan", str(evidence_copy), "--examiner", "E", "--case", "C",
                                 "--db", str(db), "--log", str(tmp_path / "l.jsonl"), "--list", str(bad)])
    assert result.exit_code == 2
    assert not any(p.name.startswith("new.db") for p in tmp_path.iterdir())


def test_a_signing_key_that_is_no_key_is_refused_before_a_list_is_imported(runner: CliRunner, tmp_path: Path, evidence_copy: Path) -> None:
    """It was refused only when the log was to be opened: after the self-test, the filter
    build and the --list import, which left a new store behind with no word of it."""
    bad_key = tmp_path / "bad.pem"
    bad_key.write_text("not a key\n")
    db = tmp_path / "new.db"
    result = runner.invoke(cli, ["scan", str(evidence_copy), "--examiner", "E", "--case", "C",
                                 "--db", str(db), "--log", str(tmp_path / "l.jsonl"),
                                 "--list", str(LISTS / "notable.md5"), "--sign-key", str(bad_key)])
    assert result.exit_code == 2
    assert "is not an unencrypted Ed25519 private key" in result.output
    assert not any(p.name.startswith(("new.db", "l.jsonl")) for p in tmp_path.iterdir())


def test_a_log_path_ending_with_a_slash_is_refused_not_written_as_a_file(runner: CliRunner, store: Path, tmp_path: Path, evidence_copy: Path) -> None:
    """`--log /cases/item1/` (a folder not made yet) wrote the log as the file /cases/item1,
    its inventory beside it: a path drops its trailing slash."""
    result = runner.invoke(cli, ["scan", str(evidence_copy), "--examiner", "E", "--case", "C",
                                 "--db", str(store), "--log", f"{tmp_path / 'item1'}/"])
    assert result.exit_code == 2
    assert "ends with /, so it names a folder" in result.output
    assert not any(p.name.startswith("item1") for p in tmp_path.iterdir())
    # `/.` too: a path drops it as it drops the slash (the log was written as item1).
    result = runner.invoke(cli, ["scan", str(evidence_copy), "--examiner", "E", "--case", "C",
                                 "--db", str(store), "--log", f"{tmp_path / 'item1'}/."])
    assert result.exit_code == 2
    assert "ends with /., so it names a folder" in result.output
    assert not any(p.name.startswith("item1") for p in tmp_path.iterdir())


def test_a_scan_without_archives_loads_no_archive_reader(
    store: Path, tmp_path: Path, evidence_copy: Path
) -> None:
    # The archive readers (tarfile, zipfile, 7z) and socket are a tenth of a scan's
    # start-up, which is most of the gap to the C yardstick on a few large files.
    probe = (
        "import sys\n"
        "from matcher.cli import cli\n"
        "try:\n"
        "    cli(sys.argv[1:], prog_name='matcher')\n"
        "except SystemExit:\n"
        "    pass\n"
        "loaded = [m for m in ('tarfile', 'zipfile', 'socket', 'matcher.evidence.archive',\n"
        "                      'matcher.evidence.sevenzip') if m in sys.modules]\n"
        "print('LOADED', ','.join(loaded))\n"
    )
    log = tmp_path / "run.jsonl"
    args = ["scan", str(evidence_copy), "--examiner", "E", "--case", "C",
            "--db", str(store), "--log", str(log)]  # fmt: skip

    def loaded(*extra: str) -> str:
        command = [sys.executable, "-c", probe, *args, *extra]
        return subprocess.run(command, capture_output=True, text=True, check=True).stdout

    out = loaded()
    assert "LOADED \n" in out, out
    assert end_record(log)["status"] == "complete"
    archived = tmp_path / "archived.jsonl"
    args[args.index(str(log))] = str(archived)
    out = loaded("--archives")
    assert "matcher.evidence.archive" in out, out


def _stderr_on_a_terminal(argv: list[str], columns: int = 0) -> tuple[int, bytes]:
    """Run matcher with stderr on a pty of `columns`: its exit code and what it showed."""
    import fcntl
    import pty
    import struct
    import termios

    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, columns, 0, 0))
    try:
        proc = subprocess.Popen([sys.executable, "-m", "matcher", *argv], stdin=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL, stderr=slave)  # fmt: skip
        os.close(slave)
        shown = b""
        while True:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: the terminal's other side is closed
                break
            if not chunk:
                break
            shown += chunk
        code = proc.wait(timeout=60)
    finally:
        os.close(master)
    return code, shown


def test_a_scan_on_a_terminal_shows_the_filter_being_built_once(tmp_path: Path) -> None:
    import hashlib

    evidence = tmp_path / "ev"
    evidence.mkdir()
    (evidence / "a.bin").write_bytes(b"a")
    listing = tmp_path / "l.md5"
    lines = [f"{hashlib.md5(x).hexdigest()}  {x.decode()}\n" for x in (b"b", b"c")]
    listing.write_text("".join(lines))
    db = tmp_path / "s.db"
    subprocess.run([sys.executable, "-m", "matcher", "import", str(listing), "--db", str(db)],
                   check=True, capture_output=True)  # fmt: skip
    scan = ["scan", str(evidence), "--db", str(db), "--examiner", "E", "--case", "C"]
    code, first = _stderr_on_a_terminal([*scan, "--log", str(tmp_path / "1.jsonl")])
    assert code == 0
    assert b"\r\x1b[KBuilding the lookup filter: 0 of 2 digests" in first
    # The line then clears before the summary (also when a run fails: see below).
    assert b"\r\x1b[Kcomplete:" in first
    code, second = _stderr_on_a_terminal([*scan, "--log", str(tmp_path / "2.jsonl")])
    assert code == 0
    assert b"Building the lookup filter" not in second and b"complete:" in second
    # A narrow terminal: the line is cut to its width, so that it never wraps.
    (db.parent / "s.db").unlink()
    subprocess.run([sys.executable, "-m", "matcher", "import", str(listing), "--db", str(db)],
                   check=True, capture_output=True)  # fmt: skip
    code, narrow = _stderr_on_a_terminal([*scan, "--log", str(tmp_path / "3.jsonl")], columns=30)
    assert code == 0
    shown = narrow.split(b"\r\x1b[K")
    assert b"Building the lookup f" in narrow
    assert all(len(piece) <= 29 for piece in shown[1:-1]), shown
    # A run that fails after the build: its error starts a line of its own.
    (db.parent / "s.db").unlink()
    subprocess.run([sys.executable, "-m", "matcher", "import", str(listing), "--db", str(db),
                    "--role", "known"], check=True, capture_output=True)  # fmt: skip
    code, failed = _stderr_on_a_terminal(
        [*scan, "--log", str(tmp_path / "4.jsonl"), "--candidates-only"], columns=100
    )
    assert code == 2
    assert b"Building the lookup filter" in failed
    assert b"\r\x1b[KError:" in failed or b"\r\x1b[K\r\nError:" in failed, failed


def test_a_match_to_an_entry_of_another_size_is_noted(runner: CliRunner, tmp_path: Path) -> None:
    """The digest decides a match; a list entry whose size is not the file's (a wrong list, or a
    collision on a weak digest) matched with no word of it, and --candidates-only misses it."""
    import hashlib

    ev = tmp_path / "ev"
    ev.mkdir()
    files = {"right.bin": b"sized right\n", "wrong.bin": b"sized wrong\n", "known.bin": b"known\n"}
    for name, data in files.items():
        (ev / name).write_bytes(data)
    sha = {name: hashlib.sha256(data).hexdigest() for name, data in files.items()}
    notable = tmp_path / "n.csv"
    notable.write_text(f"sha256,size\n{sha['right.bin']},12\n{sha['wrong.bin']},999\n")
    known = tmp_path / "k.csv"
    known.write_text(f"sha256,size\n{sha['known.bin']},12345\n")
    db = str(tmp_path / "s.db")
    for listing, role in ((notable, "notable"), (known, "known")):
        assert runner.invoke(cli, ["import", str(listing), "--db", db, "--role", role]).exit_code == 0
    log = tmp_path / "l.jsonl"
    result = runner.invoke(cli, ["scan", str(ev), "--examiner", "E", "--case", "C", "--db", db,
                                 "--log", str(log), "-q"])  # fmt: skip
    assert result.exit_code == 1, result.output
    records = read_log(log)
    wrong = [r for r in records if r["type"] == "match" and r["path"].endswith("wrong.bin")]
    assert wrong[0]["size"] == 12 and wrong[0]["matches"][0]["entry"]["size"] == 999
    notes = [n for n in records[-1]["notes"] if "another size" in n]
    assert len(notes) == 1 and notes[0].startswith("1 notable and 1 known file(s)"), notes


def test_an_entry_giving_another_digest_of_the_file_is_no_known_match_and_a_marked_notable_one(
    runner: CliRunner, tmp_path: Path
) -> None:
    """A file whose MD5 is an NSRL entry's, while that entry's SHA-1 and SHA-256 are another
    file's (an MD5 collision, or a wrong entry), was counted known with no word: hidden."""
    import hashlib

    ev = tmp_path / "ev"
    ev.mkdir()
    collided, flagged, plain = b"collides on md5\n", b"flagged\n", b"a known file\n"
    for name, data in (("c.bin", collided), ("f.bin", flagged), ("k.bin", plain)):
        (ev / name).write_bytes(data)

    def line(md5_of: bytes, sha_of: bytes) -> str:
        return (
            f"{hashlib.md5(md5_of).hexdigest()},{hashlib.sha1(sha_of).hexdigest()},"
            f"{hashlib.sha256(sha_of).hexdigest()},{len(md5_of)}\n"
        )

    known = tmp_path / "k.csv"
    known.write_text("md5,sha1,sha256,size\n" + line(collided, b"other") + line(plain, plain))
    notable = tmp_path / "n.csv"
    notable.write_text("md5,sha1,size\n" + f"{hashlib.md5(flagged).hexdigest()},{'0' * 40},8\n")
    db = str(tmp_path / "s.db")
    for listing, role in ((known, "known"), (notable, "notable")):
        assert runner.invoke(cli, ["import", str(listing), "--db", db, "--role", role]).exit_code == 0
    log = tmp_path / "l.jsonl"
    args = ["scan", str(ev), "--examiner", "E", "--case", "C", "--db", db, "--log", str(log), "-q"]
    assert runner.invoke(cli, args).exit_code == 1
    records = read_log(log)
    counts = records[-1]["counts"]
    assert (counts["notable"], counts["known"], counts["unknown"]) == (1, 1, 1), counts
    [match] = [r for r in records if r["type"] == "match"]
    assert match["path"].endswith("f.bin")
    assert match["matches"][0]["digests_differ"] == ["sha1"]
    notes = [n for n in records[-1]["notes"] if "another digest" in n]
    assert len(notes) == 1 and notes[0].startswith("1 file(s) matched known list entries"), notes
    assert "1 notable file(s)" in notes[0]
    # Only the algorithms the run computes are compared: with md5 alone, c.bin is known.
    md5_only = tmp_path / "m.jsonl"
    args = [*args[:-3], "--log", str(md5_only), "--algorithms", "md5", "-q"]
    assert runner.invoke(cli, args).exit_code == 1
    assert read_log(md5_only)[-1]["counts"]["known"] == 2
    # A re-match weighs them alike, and the reports carry the mark.
    again = tmp_path / "r.jsonl"
    rematch = ["rematch", str(log), "--db", db, "--examiner", "E", "--case", "C", "--log", str(again)]
    assert runner.invoke(cli, rematch).exit_code == 1
    assert read_log(again)[-1]["counts"]["known"] == 1
    assert any("another digest" in n for n in read_log(again)[-1]["notes"])
    report = runner.invoke(cli, ["report", str(log), "--format", "json"])
    assert '"digests_differ": [' in report.stdout
    # The CSV says so in its algorithm column, not only inside hits_json.
    table = runner.invoke(cli, ["report", str(log), "--format", "csv"]).stdout
    [row] = [r for r in table.splitlines() if "f.bin" in r]
    assert "md5 (its entry gives another sha1)" in row, row


def test_an_exclude_pattern_never_takes_the_evidence_root_itself(
    runner: CliRunner, store: Path, tmp_path: Path, evidence_copy: Path
) -> None:
    """`--exclude 'ev*'` matching the root's own name made a complete scan of nothing, exit 0."""
    log = tmp_path / "run.jsonl"
    name = evidence_copy.name
    result = scan(runner, store, log, evidence_copy, extra=["--exclude", name])
    assert result.exit_code == 1, result.output
    counts = end_record(log)["counts"]
    assert counts["files"] > 1 and counts["skipped_by_reason"].get("excluded", 0) == 0


def test_a_notable_list_the_algorithms_cannot_match_is_refused_naming_it(
    runner: CliRunner, tmp_path: Path, evidence_copy: Path
) -> None:
    """Before: a sha256-only notable list beside an md5 known list, scanned with --algorithms
    md5: exit 0, notable 0, the list recorded as used, and only a vague note."""
    db = tmp_path / "two.db"
    notable = tmp_path / "n.sha256"
    notable.write_text(f"{'ab' * 32}  x\n")
    known = tmp_path / "k.md5"
    known.write_text(f"{'cd' * 16}  y\n")
    assert runner.invoke(cli, ["import", str(notable), "--db", str(db), "--role", "notable"]).exit_code == 0
    assert runner.invoke(cli, ["import", str(known), "--db", str(db), "--role", "known"]).exit_code == 0
    result = scan(runner, db, tmp_path / "x.jsonl", evidence_copy, extra=["--algorithms", "md5"])
    assert result.exit_code == 2, result.output
    assert "'n.sha256' (sha256)" in result.output and "none of their entries could match" in result.output
    assert not (tmp_path / "x.jsonl").exists()
    result = scan(runner, db, tmp_path / "y.jsonl", evidence_copy, extra=["--algorithms", "md5,sha256"])
    assert result.exit_code in (0, 1), result.output


def test_entries_that_hold_no_digest_the_run_computes_are_counted_per_list(
    runner: CliRunner, tmp_path: Path, evidence_copy: Path
) -> None:
    """Before: 'entries with only md5 digests cannot match', where every entry of the list held
    md5 and sha1 and none could match with --algorithms sha256 (a notable file counted unknown)."""
    db = tmp_path / "s.db"
    both = tmp_path / "both.hashdeep"
    both.write_text(
        "%%%% HASHDEEP-1.0\n%%%% size,md5,sha1,filename\n"
        f"1,{'ab' * 16},{'cd' * 20},x\n2,{'ef' * 16},{'01' * 20},y\n"
    )
    mixed = tmp_path / "mixed.csv"
    mixed.write_text(f"md5,sha256,name\n{'23' * 16},{'45' * 32},x\n{'67' * 16},,y\n{'89' * 16},,z\n")
    for lst, role in ((both, "known"), (mixed, "notable")):
        assert runner.invoke(cli, ["import", str(lst), "--db", str(db), "--role", role]).exit_code == 0
    log = tmp_path / "x.jsonl"
    result = scan(runner, db, log, evidence_copy, extra=["--algorithms", "sha256"])
    assert result.exit_code in (0, 1), result.output
    notes = end_record(log)["notes"]
    assert any("list 'both.hashdeep' (known): 2 of its 2 entries hold no digest" in n for n in notes), notes
    assert any("list 'mixed.csv' (notable): 2 of its 3 entries hold no digest" in n for n in notes), notes
    log = tmp_path / "y.jsonl"
    scan(runner, db, log, evidence_copy, extra=["--algorithms", "md5,sha256"])
    notes = end_record(log)["notes"]
    assert not any("'mixed.csv'" in n and "cannot match" in n for n in notes), notes


def test_log_inventory_store_and_lists_must_be_distinct_files(runner: CliRunner, store: Path, tmp_path: Path, evidence_copy: Path) -> None:
    """An --inventory naming the log wrote the inventory over the log (a 'complete' scan whose
    log did not verify); one naming the store gave 'database is locked' and a log with no end."""
    log = tmp_path / "run.jsonl"
    (tmp_path / "link.db").symlink_to(store)
    os.link(store, tmp_path / "hard.db")
    lst = LISTS / "notable.md5"
    cases = [
        (["--inventory", str(log)], "inventory", "log"),
        (["--inventory", str(tmp_path / "." / "run.jsonl")], "inventory", "log"),
        (["--inventory", str(store)], "inventory", "hash store"),
        (["--inventory", str(tmp_path / "link.db")], "inventory", "hash store"),
        (["--inventory", str(tmp_path / "hard.db")], "inventory", "hash store"),
        (["--list", str(store)], "list", "hash store"),
    ]
    for extra, one, other in cases:
        before = store.read_bytes()
        result = scan(runner, store, log, evidence_copy, extra=extra)
        assert result.exit_code == 2, (extra, result.output)
        assert f"The {one} " in result.stderr and f"the {other} " in result.stderr and "same file" in result.stderr, result.stderr
        assert "Choose another --log or --inventory" in result.stderr or one != "inventory" or other != "log"  # both options named
        assert not log.exists() and store.read_bytes() == before
    new = tmp_path / "new.db"
    result = runner.invoke(cli, ["scan", str(evidence_copy), "--examiner", "E", "--case", "C", "--db", str(new),
                                 "--list", str(lst), "--log", str(log), "--inventory", str(new)])
    assert result.exit_code == 2 and "same file" in result.stderr, result.output
    assert not log.exists() and not new.exists()


def test_an_inventory_that_cannot_be_created_leaves_no_log(runner: CliRunner, store: Path, tmp_path: Path, evidence_copy: Path) -> None:
    """An --inventory in a missing folder was a traceback ('internal error') that left a log of
    0 bytes, which refused the rerun ('already exists. Use --resume')."""
    log = tmp_path / "run.jsonl"
    (tmp_path / "file").write_bytes(b"")
    for inventory, why in [(tmp_path / "no" / "such" / "inv.db", "does not exist; create it, or"),
                           (tmp_path / "file" / "inv.db", "is not a folder;")]:
        result = scan(runner, store, log, evidence_copy, extra=["--inventory", str(inventory)])
        assert result.exit_code == 2, result.output
        assert result.stderr == (f"Error: The folder of the inventory {inventory} {why} "
                                 "choose another --inventory.\n")
        assert not log.exists()
    result = scan(runner, store, tmp_path / "no" / "run.jsonl", evidence_copy)
    assert result.exit_code == 2 and "The folder of the log" in result.stderr and "another --log." in result.stderr
    # A folder that goes (or a link to one that never was) as the inventory is created.
    (tmp_path / "dangling.db").symlink_to(tmp_path / "gone" / "inv.db")
    result = scan(runner, store, log, evidence_copy, extra=["--inventory", str(tmp_path / "dangling.db")])
    assert result.exit_code == 2 and "internal error" not in result.output, result.output
    assert f"Cannot create inventory {tmp_path / 'dangling.db'}" in result.stderr
    assert not log.exists()
    assert scan(runner, store, log, evidence_copy).exit_code == 1


@pytest.mark.parametrize("command", ["scan", "hash", "import", "verify"])
def test_a_current_folder_that_no_longer_exists_is_a_usage_error(runner: CliRunner, store: Path, tmp_path: Path, evidence_copy: Path, monkeypatch: pytest.MonkeyPatch, command: str) -> None:
    """Run from a deleted folder, scan was a traceback ('internal error') from os.getcwd(), and
    hash blamed its output ('Cannot write inventory /abs/x.hd: No such file or directory')."""
    gone = tmp_path / "gone"
    gone.mkdir()
    monkeypatch.chdir(gone)
    gone.rmdir()
    log = tmp_path / "x.jsonl"
    args = {
        "scan": ["scan", str(evidence_copy), "--examiner", "E", "--case", "C", "--db", str(store), "--log", str(log)],
        "hash": ["hash", str(evidence_copy), "-o", str(tmp_path / "x.hd")],
        "import": ["import", str(LISTS / "notable.md5"), "--db", str(tmp_path / "new.db")],
        "verify": ["verify", str(log)],
    }[command]
    result = runner.invoke(cli, args)
    assert result.exit_code == 2, result.output
    assert "Error: The current folder no longer exists" in result.stderr and "internal error" not in result.stderr
    assert "cd to another folder" in result.stderr
    assert not log.exists() and not (tmp_path / "x.hd").exists() and not (tmp_path / "new.db").exists()


def test_run_scan_checks_what_the_command_line_checks(tmp_path: Path, store: Path, evidence_copy: Path) -> None:
    """A library caller's bad algorithm killed the workers (AttributeError; ScanAborted not naming
    it, an interrupted log left); jobs=-3 was taken; a path given as str was an AttributeError."""
    from matcher.errors import UsageError
    from matcher.scan import ScanOptions
    from matcher.scan import run_scan

    log = tmp_path / "run.jsonl"
    bad: list[tuple[dict[str, object], str]] = [
        ({"algorithms": ("md5", "md4")}, "unknown algorithm 'md4'; choose from md5, sha1, sha256"),
        ({"algorithms": ()}, "no algorithm given"),
        ({"jobs": -3}, "jobs must be at least 1 (0: one per core), not -3"),
    ]
    for fields, message in bad:
        options = ScanOptions(evidence=[evidence_copy], examiner="E", case="C", db=store, log=log, **fields)  # type: ignore[arg-type]
        with pytest.raises(UsageError, match=re.escape(message)):
            run_scan(options)
        assert not log.exists()
    # The names the command line takes, and paths as str, as the command line would give them.
    options = ScanOptions(evidence=[str(evidence_copy)], examiner="E", case="C", db=str(store),  # type: ignore[list-item,arg-type]
                          log=str(log), inventory=str(tmp_path / "inv.db"), algorithms=("SHA-256", "MD5"))  # type: ignore[arg-type]
    summary = run_scan(options)
    assert summary.status == "complete" and summary.log == log and summary.inventory == tmp_path / "inv.db"
    assert read_log(log)[0]["algorithms"] == ["md5", "sha256"]


def test_scans_of_one_case_started_in_the_same_second_get_their_own_default_logs(runner: CliRunner, store: Path, tmp_path: Path, evidence_copy: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The second failed with 'Log matcher-C-...Z.jsonl already exists. Use --resume': a log the
    user never named, and --resume would have continued the other scan."""
    import datetime

    import matcher.cli as cli_mod

    here = tmp_path / "here"
    here.mkdir()
    monkeypatch.chdir(here)

    class Frozen(datetime.datetime):
        @classmethod
        def now(cls, tz: datetime.tzinfo | None = None) -> Frozen:
            return cls(2026, 1, 2, 3, 4, 5, tzinfo=tz)

    monkeypatch.setattr(cli_mod.datetime, "datetime", Frozen)
    args = ["scan", str(evidence_copy), "--examiner", "E", "--case", "C", "--db", str(store), "--json"]
    logs = []
    for _ in range(3):
        result = runner.invoke(cli, args)
        assert result.exit_code == 1, result.output
        logs.append(json.loads(result.stdout)["log"])
    assert logs == ["matcher-C-20260102T030405Z.jsonl", "matcher-C-20260102T030405Z-2.jsonl",
                    "matcher-C-20260102T030405Z-3.jsonl"]
    # A name taken between its choice and the log's creation (another scan starting) is
    # followed by the next free one, up to 50 names; then said so, never a --resume of
    # someone else's log.
    chosen = cli_mod._default_log

    def taken(case: str) -> Path:
        log = chosen(case)
        log.write_bytes(b"")
        return log

    monkeypatch.setattr(cli_mod, "_default_log", taken)
    result = runner.invoke(cli, args)
    assert result.exit_code == 2
    assert "Use --resume" not in result.stderr
    assert ("Error: The log name matcher-C-20260102T030405Z-53.jsonl, chosen by default, was taken "
            "meanwhile (another scan starting); run the command again, or give --log.\n") == result.stderr


def test_an_inventory_made_by_another_scan_meanwhile_is_refused(runner: CliRunner, store: Path, tmp_path: Path, evidence_copy: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Before: two scans given one --inventory both passed its 'exists?' check (made minutes
    before it is opened) and both wrote into it: 8,012 rows for 4,006 files, and a rematch of
    either log then counted every file twice, its log verifying."""
    import matcher.scan as scan_mod

    shared = tmp_path / "shared.db"
    original = scan_mod.auditlog.create

    def create_after_another(*args: object, **kwargs: object) -> object:
        shared.write_bytes(b"")  # the other scan's, made between the check and the open
        return original(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(scan_mod.auditlog, "create", create_after_another)
    log = tmp_path / "b.jsonl"
    result = scan(runner, store, log, evidence_copy, extra=["--inventory", str(shared)])
    assert result.exit_code == 2, result.output
    assert "already exists" in result.output and "meanwhile" in result.output
    assert shared.read_bytes() == b"" and not log.exists()


def test_a_log_removed_while_the_scan_runs_is_not_reported_complete(runner: CliRunner, store: Path, tmp_path: Path, evidence_copy: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Before: `rm` of the log mid-scan went unnoticed: 'complete', exit 1, and a head to note
    for a file that no longer existed (every match record lost)."""
    import matcher.scan as scan_mod

    log = tmp_path / "gone.jsonl"
    original = scan_mod.append_end_record

    def end_after_removal(*args: object, **kwargs: object) -> None:
        log.unlink()
        original(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(scan_mod, "append_end_record", end_after_removal)
    result = scan(runner, store, log, evidence_copy)
    assert result.exit_code == 2, result.output
    assert "was removed or replaced while the scan ran" in result.output
    assert "log head" not in result.output


def test_max_size_reads_si_and_binary_units_as_written() -> None:
    """Before: 1MB was taken as 1 MiB (the help spoke of powers of 1024 only): a limit 4.9%
    off what the examiner wrote."""
    from matcher.cli import _size

    assert _size("1MB") == 1_000_000 and _size("2GB") == 2_000_000_000 and _size("3KB") == 3000
    assert _size("1M") == _size("1MiB") == 1 << 20 and _size("4G") == _size("4GiB") == 4 << 30
    assert _size("500") == _size("500B") == 500
    with pytest.raises(click.BadParameter):
        _size("1i")


def test_a_note_naming_evidence_shows_its_controls_as_escapes(runner: CliRunner, tmp_path: Path) -> None:
    """A file named `x\\e[2J\\e[HNOTHING FOUND.img` cleared the examiner's screen through the
    note naming disk-image files (and, piped, click dropped the sequence: a name that is not)."""
    ev = tmp_path / "ev"
    ev.mkdir()
    (ev / "x\x1b[2J\x1b[HNOTHING FOUND.img").write_bytes(b"data")
    db = tmp_path / "s.db"
    (tmp_path / "n.md5").write_text("0123456789abcdef0123456789abcdef  x\n")
    assert runner.invoke(cli, ["import", str(tmp_path / "n.md5"), "--db", str(db)]).exit_code == 0
    result = runner.invoke(cli, ["scan", str(ev), "--examiner", "E", "--case", "C", "--db", str(db),
                                 "--log", str(tmp_path / "l.jsonl")], color=True)  # fmt: skip
    assert result.exit_code == 0, result.output
    [note] = [line for line in result.stderr.splitlines() if "disk image" in line]
    assert "\x1b" not in note and "x\\x1B[2J\\x1B[HNOTHING FOUND.img" in note, note


@pytest.mark.parametrize("color", [True, False])
def test_an_error_naming_evidence_shows_its_controls_as_escapes(
    runner: CliRunner, tmp_path: Path, color: bool
) -> None:
    """Before: an error message took a name's escape sequence to the terminal raw, and piped,
    click dropped it: 'Evidence evBOLD/x does not exist', a path that is not the one given."""
    (tmp_path / "s.db").touch()
    named = tmp_path / "ev\x1b[1mBOLD\nline" / "x"
    result = runner.invoke(cli, ["scan", str(named), "--examiner", "E", "--case", "C", "--db",
                                 str(tmp_path / "s.db"), "--log", str(tmp_path / "l.jsonl")],
                           color=color)  # fmt: skip
    assert result.exit_code == 2, result.output
    assert "\x1b" not in result.stderr and "ev\\x1B[1mBOLD\\nline/x does not exist" in result.stderr
    assert len(result.stderr.rstrip("\n").splitlines()) == 1


def test_an_empty_evidence_path_is_refused_not_the_current_folder(runner: CliRunner, tmp_path: Path) -> None:
    """`matcher scan ""` (an unset variable in a script) scanned the folder it was run from."""
    result = runner.invoke(cli, ["scan", "", "--examiner", "E", "--case", "C", "--db", str(tmp_path / "s.db"),
                                 "--log", str(tmp_path / "l.jsonl")])  # fmt: skip
    assert result.exit_code == 2 and "an empty path" in result.output, result.output
    assert not (tmp_path / "l.jsonl").exists()


def test_scan_json_says_why_it_stopped_on_stdout(runner: CliRunner, tmp_path: Path) -> None:
    """Before: `scan --json` that was refused (exit 2) printed nothing on stdout: a batch script
    reading it had no object to tell why (import --json gives one for a rejected list)."""
    result = runner.invoke(cli, ["scan", str(tmp_path / "nothing"), "--examiner", "E", "--case", "C",
                                 "--db", str(tmp_path / "s.db"), "--json"])  # fmt: skip
    assert result.exit_code == 2
    said = json.loads(result.stdout)
    assert said == {"status": "error", "exit_code": 2, "error": f"Evidence {tmp_path / 'nothing'} does not exist."}
    # Options refused after click parsed them answer too.
    bad = runner.invoke(cli, ["scan", str(tmp_path), "--examiner", "E", "--case", "C", "--db", str(tmp_path / "s.db"),
                              "--json", "--max-depth", "3"])  # fmt: skip
    assert bad.exit_code == 2 and json.loads(bad.stdout)["error"].startswith("--max-depth applies to archives")


def test_json_answers_a_refusal_by_click_itself(runner: CliRunner, tmp_path: Path) -> None:
    """Before: a refusal while click parsed the options (a missing --examiner, a --list or an
    original log that does not exist, a bad --role) printed nothing on stdout with --json."""
    missing = str(tmp_path / "missing")
    for args, said in (
        (["scan", str(tmp_path), "--case", "C", "--json"], "Missing option '--examiner'."),
        (["scan", str(tmp_path), "--examiner", "E", "--case", "C", "--list", missing, "--json"], "--list"),
        (["rematch", missing, "--examiner", "E", "--case", "C", "--log", missing + ".jsonl", "--json"], "ORIGINAL_LOG"),
        (["verify", str(tmp_path / "l.jsonl"), "--public-key", missing, "--json"], "--public-key"),
        (["import", missing, "--role", "bogus", "--json"], "--role"),
        (["lists", "--bogus", "--json"], "--bogus"),
    ):
        result = runner.invoke(cli, args)
        assert result.exit_code == 2, (args, result.output)
        answer = json.loads(result.stdout)
        assert answer["status"] == "error" and answer["exit_code"] == 2 and said in answer["error"], args
    # Without --json (or with it after `--`, an evidence path), stdout stays empty.
    result = runner.invoke(cli, ["scan", str(tmp_path), "--case", "C", "--", "--json"])
    assert result.exit_code == 2 and result.stdout == ""


def test_a_log_and_inventory_named_in_bytes_that_are_not_utf8_are_written_and_verify(
    store: Path, tmp_path: Path, evidence_copy: Path
) -> None:
    """`--log l\\xffog.jsonl` stopped the run at its first record (its inventory path, as text,
    could not be encoded): a traceback, an empty log no command could verify or resume. The
    paths keep their bytes (`_b64` fields), as evidence paths do; verify finds the inventory."""
    folder = os.fsencode(tmp_path)
    log, inventory = folder + b"/l\xffog.jsonl", folder + b"/i\xffnv.db"
    matcher = [sys.executable, "-m", "matcher"]
    done = subprocess.run([*matcher, "scan", str(evidence_copy), "--examiner", "E", "--case", "C", "--db", str(store),
                           "--log", log, "--inventory", inventory, "-q"], capture_output=True)  # fmt: skip
    assert done.returncode == 1, done.stderr
    assert b"Traceback" not in done.stderr
    checked = subprocess.run([*matcher, "verify", log], capture_output=True)
    assert checked.returncode == 0 and b"as sealed" in checked.stdout, checked.stdout + checked.stderr
    with open(log, "rb") as lines:
        records = [json.loads(line) for line in lines]
    assert base64.b64decode(records[0]["inventory_b64"]) == inventory
    assert base64.b64decode(records[-1]["inventory"]["path_b64"]) == inventory
    again = folder + b"/r\xff.jsonl"
    rematched = subprocess.run([*matcher, "rematch", log, "--db", str(store), "--examiner", "E", "--case", "C",
                                "--log", again, "--original-inventory", inventory], capture_output=True)  # fmt: skip
    assert rematched.returncode == 1, rematched.stderr
    assert subprocess.run([*matcher, "verify", again], capture_output=True).returncode == 0


def test_a_default_scan_computes_every_algorithm_a_notable_list_holds(tmp_path: Path) -> None:
    """A notable list mixing SHA-512 and MD5 lines had its SHA-512 entries left blind by a scan
    without --algorithms: a note, "notable 0", exit 0, a notable file missed. The default now
    adds the algorithms the store's notable lists hold; a list --list brings in later with
    others is refused before any file is read; explicit --algorithms are kept (with the note)."""
    import hashlib

    ev = tmp_path / "ev"
    ev.mkdir()
    (ev / "h").write_bytes(b"hello")
    (ev / "w").write_bytes(b"world")
    mixed = tmp_path / "mix.txt"
    mixed.write_text(f"SHA512 (h) = {hashlib.sha512(b'hello').hexdigest()}\nMD5 (x) = {'0' * 31}1\n")
    matcher = [sys.executable, "-m", "matcher"]
    db = tmp_path / "s.db"
    assert subprocess.run([*matcher, "import", str(mixed), "--db", str(db)], capture_output=True).returncode == 0
    base = [*matcher, "scan", str(ev), "--examiner", "E", "--case", "C", "--db", str(db), "-q"]
    done = subprocess.run([*base, "--log", str(tmp_path / "a.jsonl")], capture_output=True)
    assert done.returncode == 1, done.stderr
    records = read_log(tmp_path / "a.jsonl")
    assert records[0]["algorithms"] == ["md5", "sha1", "sha256", "sha512"]
    assert [r["path"] for r in records if r["type"] == "match"] == [str(ev / "h")]
    chosen = subprocess.run([*base, "--log", str(tmp_path / "b.jsonl"), "--algorithms", "md5,sha256"],
                            capture_output=True)  # fmt: skip
    assert chosen.returncode == 0 and "hold no digest this run computes" in " ".join(read_log(tmp_path / "b.jsonl")[-1]["notes"])
    fresh = tmp_path / "fresh.db"
    late = subprocess.run([*matcher, "scan", str(ev), "--examiner", "E", "--case", "C", "--db", str(fresh), "-q",
                           "--list", str(mixed), "--log", str(tmp_path / "c.jsonl")], capture_output=True)  # fmt: skip
    assert late.returncode == 2 and b"--algorithms md5,sha1,sha256,sha512" in late.stderr, late.stderr
    again = subprocess.run([*matcher, "scan", str(ev), "--examiner", "E", "--case", "C", "--db", str(fresh), "-q",
                            "--log", str(tmp_path / "d.jsonl")], capture_output=True)  # fmt: skip
    assert again.returncode == 1, again.stderr


def test_a_default_scan_computes_a_known_lists_algorithm_when_its_entries_need_it(tmp_path: Path) -> None:
    """A known list of SHA-512 digests matched nothing by default: alone in the store, the scan
    was refused with "Fix --algorithms" (none was given); beside a notable MD5 list, its files
    counted unknown (a note, exit 0), the examiner's workload inflated. The default adds a known
    list's algorithms when no default one is given by all its entries, and only then: a known
    list whose entries all give an MD5 adds nothing (every entry is matched by it)."""
    import hashlib

    ev = tmp_path / "ev"
    ev.mkdir()
    (ev / "h").write_bytes(b"hello")
    (ev / "w").write_bytes(b"world")
    files = ((b"hello", "h"), (b"world", "w"))
    known = tmp_path / "known.sha512"
    known.write_text("".join(f"{hashlib.sha512(c).hexdigest()}  {n}\n" for c, n in files))
    both = tmp_path / "both.csv"  # every entry gives its MD5 and its SHA-512
    both.write_text("md5,sha512,name\n" + "".join(
        f"{hashlib.md5(c).hexdigest()},{hashlib.sha512(c).hexdigest()},{n}\n" for c, n in files))  # fmt: skip
    matcher = [sys.executable, "-m", "matcher"]

    def scan(db: Path, log: str) -> tuple[list[object], dict[str, int]]:
        done = subprocess.run([*matcher, "scan", str(ev), "--examiner", "E", "--case", "C", "--db", str(db), "-q",
                               "--log", str(tmp_path / log)], capture_output=True)  # fmt: skip
        assert done.returncode == 0, done.stderr
        records = read_log(tmp_path / log)
        return records[0]["algorithms"], records[-1]["counts"]  # type: ignore[return-value]

    db = tmp_path / "s.db"
    assert subprocess.run([*matcher, "import", str(known), "--db", str(db), "--role", "known"]).returncode == 0
    algorithms, counts = scan(db, "a.jsonl")
    assert algorithms == ["md5", "sha1", "sha256", "sha512"] and (counts["known"], counts["unknown"]) == (2, 0)
    other = tmp_path / "other.md5"
    other.write_text("f" * 32 + "\n")
    assert subprocess.run([*matcher, "import", str(other), "--db", str(db)]).returncode == 0
    algorithms, counts = scan(db, "b.jsonl")
    assert algorithms == ["md5", "sha1", "sha256", "sha512"] and (counts["known"], counts["unknown"]) == (2, 0)
    held = tmp_path / "held.db"
    assert subprocess.run([*matcher, "import", str(both), "--db", str(held), "--role", "known"]).returncode == 0
    algorithms, counts = scan(held, "c.jsonl")
    assert algorithms == ["md5", "sha1", "sha256"] and (counts["known"], counts["unknown"]) == (2, 0)


@pytest.mark.parametrize("taken_at", ["the check", "the log's creation"])
def test_a_default_log_name_taken_by_another_scan_starting_goes_on_to_the_next_name(
    runner: CliRunner, store: Path, tmp_path: Path, evidence_copy: Path, monkeypatch: pytest.MonkeyPatch, taken_at: str
) -> None:
    """Lab jobs of one case started in the same second chose one default name; all but one were
    refused ("taken meanwhile; run the command again"). The refusal comes before anything is
    written, so the scan takes the next free name (-2) and runs."""
    import matcher.scan as scan_mod

    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    real_create, real_run = scan_mod.auditlog.create, scan_mod.run_scan
    taken: list[Path] = []

    def create(path: Path, **kwargs: object) -> object:
        if not taken and Path(path).name.startswith("matcher-LAB-"):  # another scan creates it first
            taken.append(Path(path))
            Path(path).write_bytes(b"")
        return real_create(path, **kwargs)  # type: ignore[arg-type]

    def run(options: scan_mod.ScanOptions, **kwargs: object) -> object:
        if not taken:  # another scan's log is there by the time this one checks
            taken.append(options.log)
            options.log.write_bytes(b"")
        return real_run(options, **kwargs)  # type: ignore[arg-type]

    if taken_at == "the check":
        monkeypatch.setattr("matcher.cli.run_scan", run)
    else:
        monkeypatch.setattr(scan_mod.auditlog, "create", create)
    result = runner.invoke(cli, ["scan", str(evidence_copy), "--examiner", "E", "--case", "LAB", "--db", str(store), "-q",
                                 "--candidates-only"])  # fmt: skip
    assert result.exit_code == 1, result.output
    # the store's list has no sizes: said once, not once per name tried (a review)
    early = [line for line in result.stderr.splitlines() if line.startswith("note: --candidates-only ignored")]
    assert len(early) == 1, result.stderr  # (the summary's own copy is indented)
    (first,) = taken
    logs = sorted(work.glob("matcher-LAB-*.jsonl"))
    assert first in [Path(p.name) for p in logs] and first.stat().st_size == 0  # the other scan's, untouched
    (ours,) = [p for p in logs if p.name != first.name]
    assert ours.name.startswith("matcher-LAB-")
    assert runner.invoke(cli, ["verify", str(ours)]).exit_code == 0


def _a_store_with_a_blake3_list(
    runner: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, role: str
) -> tuple[Path, Path]:
    """An evidence folder, and a store holding one BLAKE3 list of `role`; blake3 made unavailable."""
    import matcher.scan as scan_mod

    ev = tmp_path / "ev"
    ev.mkdir()
    (ev / "a").write_bytes(b"a")
    b3 = tmp_path / "l.b3"
    b3.write_text("ea8f163db38682925e4491c5e58d4bb3506ef8c14eb78a86e908c5624a67200f  hello\n")
    db = tmp_path / "s.db"
    assert runner.invoke(cli, ["import", str(b3), "--db", str(db), "--role", role]).exit_code == 0
    import matcher.lookup_filter as filter_mod

    for module in (scan_mod, filter_mod):
        monkeypatch.setattr(module, "available_algorithms", lambda: ("md5", "sha1", "sha256", "sha512"))
    return ev, db


def test_a_default_scan_that_cannot_compute_a_notable_lists_algorithm_is_refused_cleanly(
    runner: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A BLAKE3 notable list in the store without the blake3 package: every default scan and
    batch item ended in a traceback ("internal error"). Refused, naming the package to install
    or --algorithms; with --algorithms the run goes on, its notes saying what cannot match."""
    ev, db = _a_store_with_a_blake3_list(runner, tmp_path, monkeypatch, "notable")
    base = ["scan", str(ev), "--examiner", "E", "--case", "C", "--db", str(db), "-q", "--json"]
    refused = runner.invoke(cli, [*base, "--log", str(tmp_path / "a.jsonl")])
    assert refused.exit_code == 2, refused.output
    said = json.loads(refused.stdout)["error"]
    assert "cannot compute" in said and "pip install 'matcher[blake3]'" in said, said
    assert "internal error" not in refused.output


def test_a_known_list_of_an_algorithm_this_installation_lacks_leaves_a_default_scan_running(
    runner: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A known BLAKE3 list in a store shared with a lab without the blake3 package stopped every
    default scan there (exit 2) once known lists' algorithms joined the default: a known list's
    algorithm that cannot be computed is left out, its entries said unmatchable in the notes. A
    notable one is still refused (see above)."""
    ev, db = _a_store_with_a_blake3_list(runner, tmp_path, monkeypatch, "known")
    notable = tmp_path / "n.md5"
    notable.write_text("0" * 32 + "  x\n")
    assert runner.invoke(cli, ["import", str(notable), "--db", str(db)]).exit_code == 0
    log = tmp_path / "a.jsonl"
    done = runner.invoke(cli, ["scan", str(ev), "--examiner", "E", "--case", "C", "--db", str(db), "-q", "--log", str(log)])
    assert done.exit_code == 0, done.output
    assert read_log(log)[0]["algorithms"] == ["md5", "sha1", "sha256"]
    (said,) = [n for n in end_record(log)["notes"] if "hold no digest this run computes" in n]
    assert "blake3 is not installed here (pip install 'matcher[blake3]')" in said  # and why (a review)


def test_a_refused_second_list_says_the_first_stayed_imported(
    runner: CliRunner, tmp_path: Path, evidence_copy: Path
) -> None:
    """Each --list is its own import (as `matcher import A B`): a refused second one left the
    first in the store, a new one too, and the error said nothing of it."""
    bad = tmp_path / "bad.md5"
    bad.write_text("0" * 31 + "  cut.bin\n")
    db = tmp_path / "new.db"
    log = tmp_path / "r.jsonl"
    good = LISTS / "notable.md5"
    result = scan(runner, db, log, evidence_copy, extra=["--list", str(good), "--list", str(bad)])
    assert result.exit_code == 2, result.output
    said = " ".join(result.stderr.split())
    assert f"Imported into {db} before it stopped, and kept: {good} (as 'notable.md5')." in said, said
    assert [info["name"] for info in json.loads(runner.invoke(cli, ["lists", "--db", str(db), "--json"]).stdout)] == ["notable.md5"]
    # A list that was in the store before is not said to be imported by this run.
    result = scan(runner, db, tmp_path / "r2.jsonl", evidence_copy, extra=["--list", str(good), "--list", str(bad)])
    assert result.exit_code == 2 and "Imported into" not in result.stderr, result.stderr


def test_a_store_with_another_name_in_the_evidence_is_not_written_by_the_scan(
    runner: CliRunner, tmp_path: Path, evidence_copy: Path
) -> None:
    """Before: the scan saved its lookup filter (and notable sizes) into the store, which
    changed an evidence file when the store had a hard link inside the evidence (a validator)."""
    import hashlib

    db = tmp_path / "s.db"
    assert runner.invoke(cli, ["import", str(LISTS / "notable.csv"), "--db", str(db)]).exit_code == 0
    os.link(db, evidence_copy / "linked.db")
    before = hashlib.sha256(db.read_bytes()).hexdigest()
    for extra in ([], ["--candidates-only"]):
        log = tmp_path / f"run{len(extra)}.jsonl"
        result = scan(runner, db, log, evidence_copy, extra=extra)
        assert result.exit_code == 1, result.output
        assert hashlib.sha256(db.read_bytes()).hexdigest() == before
        assert any("has another name (a hard link)" in n for n in end_record(log)["notes"])
    # A --list would be imported into it: refused, the store unchanged (a review)...
    result = scan(runner, db, tmp_path / "l.jsonl", evidence_copy, extra=["--list", str(LISTS / "notable.md5")])
    assert result.exit_code == 2 and "would write into it" in result.stderr, result.output
    assert hashlib.sha256(db.read_bytes()).hexdigest() == before
    # ... but not one it holds already, which writes nothing (a third review), also under
    # another name (the import's copy wrote before it found the list held: a fourth).
    again = tmp_path / "again.csv"
    again.write_bytes((LISTS / "notable.csv").read_bytes())
    stamp = db.stat().st_mtime_ns
    for listed in (LISTS / "notable.csv", again):
        result = scan(runner, db, tmp_path / f"k{listed.stem}.jsonl", evidence_copy, extra=["--list", str(listed)])
        assert result.exit_code == 1, result.output
        assert hashlib.sha256(db.read_bytes()).hexdigest() == before and db.stat().st_mtime_ns == stamp
    # A FIFO as --list is refused at once, never read (it blocked the check: a fourth review).
    fifo = tmp_path / "fifo.csv"
    os.mkfifo(fifo)
    result = scan(runner, db, tmp_path / "f.jsonl", evidence_copy, extra=["--list", str(fifo)])
    assert result.exit_code == 2 and "is not a regular file" in result.stderr, result.output


def test_sizes_kept_by_an_older_version_do_not_pass_over_the_size_0_check(tmp_path: Path) -> None:
    """A store whose notable sizes were kept before size-0 misfits were checked reused them."""
    from matcher.lookup_filter import lists_fingerprint
    from matcher.models import SizeSet
    from matcher.store import HashStore

    truth = expected_digests()
    name = sorted(NOTABLE)[0]
    listed = tmp_path / "zero.hashdeep"
    listed.write_text(f"%%%% HASHDEEP-1.0\n%%%% size,md5,filename\n0,{truth[name]['md5']},{name}\n")
    store = HashStore(tmp_path / "s.db")
    try:
        from matcher.importing import import_list

        import_list(store, listed, role="notable")
        lists = store.lists()
        fingerprint = lists_fingerprint(lists)
        store.save_filter("notable-sizes", fingerprint, SizeSet.of([0]).tobytes())  # an older one's row
        sizes, lacking = store.notable_sizes(fingerprint, lists)
        assert list(sizes) == [] and lacking and lacking[0].startswith("zero.hashdeep (1 entry gives size 0")
    finally:
        store.close()
