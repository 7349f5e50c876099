"""Faults around the outputs: a full disk under the log, a read-only store, kill -9 mid-import."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import re
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from conftest import assert_counts_add_up
from conftest import read_log

import matcher.store as store_mod
from matcher import auditlog
from matcher.cli import cli
from matcher.errors import ExitCode
from matcher.validate import unprivileged_prefix

MATCHER = [sys.executable, "-m", "matcher"]


@pytest.fixture
def ev(tmp_path: Path) -> Path:
    """Ten notable files (ten match records to write) and a list naming them."""
    folder = tmp_path / "ev"
    folder.mkdir()
    lines = []
    for i in range(10):
        data = b"notable %d\n" % i
        (folder / f"f{i}.bin").write_bytes(data)
        lines.append(f"{hashlib.sha256(data).hexdigest()}  f{i}\n")
    (tmp_path / "notable.sha256").write_text("".join(lines))
    return folder


def scan_args(tmp_path: Path, ev: Path, log: Path, db: Path | None = None) -> list[str]:
    lst = str(tmp_path / "notable.sha256")
    args = ["scan", str(ev), "--examiner", "E", "--case", "F-1", "--list", lst, "--log", str(log)]
    return [*args, "--db", str(db or tmp_path / "s.db"), "-q"]


# Disk full under the log -------------------------------------------------------------


@pytest.mark.parametrize("partial", [False, True])
@pytest.mark.parametrize("records", [1, 2, 6])
def test_disk_full_while_logging_stops_cleanly_and_verify_says_incomplete(
    runner: CliRunner,
    tmp_path: Path,
    ev: Path,
    monkeypatch: pytest.MonkeyPatch,
    records: int,
    partial: bool,
) -> None:
    """After `records` lines the log's device is full (optionally after half a line)."""
    log = tmp_path / "run.jsonl"
    real, written = os.write, [0]

    def write(fd: int, data: Any) -> int:
        # Note that only the log's descriptor fills up: other writes go through.
        if os.readlink(f"/proc/self/fd/{fd}") != str(log):
            return real(fd, data)
        if written[0] < records:
            written[0] += 1
            return real(fd, data)
        if partial and written[0] == records:
            written[0] += 1
            return real(fd, bytes(data)[: len(data) // 2])
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(auditlog.os, "write", write)
    result = runner.invoke(cli, [*scan_args(tmp_path, ev, log), "--jobs", "1"])
    monkeypatch.undo()
    assert result.exit_code == ExitCode.FATAL, result.output
    assert "Traceback" not in result.output and not isinstance(result.exception, OSError)
    message = result.output.strip().splitlines()[-1]
    assert message.startswith("Error: Log ") and "ENOSPC" in message and str(log) in message
    assert f"intact to line {records}" in message
    raw = log.read_bytes()
    assert raw.endswith(b"\n") and raw.count(b"\n") == records  # no half line left behind
    verify = runner.invoke(cli, ["verify", str(log)])
    assert verify.exit_code == 1, verify.output
    assert f"line {records}: log is incomplete" in verify.output
    with pytest.raises(auditlog.IncompleteLogError) as caught:
        auditlog.verify(log)
    assert caught.value.line == records


def test_after_disk_full_the_run_resumes_to_every_match_once(tmp_path: Path, ev: Path) -> None:
    """The stopped run is continued by a fresh process with space again: nothing lost or doubled."""
    log = tmp_path / "run.jsonl"
    script = (
        "import errno, os, sys\n"
        "from matcher import auditlog\n"
        "from matcher.cli import cli\n"
        "real, n = os.write, [0]\n"
        "def write(fd, data):\n"
        f"    if os.readlink(f'/proc/self/fd/{{fd}}') == {str(log)!r}:\n"
        "        n[0] += 1\n"
        "        if n[0] > 4: raise OSError(errno.ENOSPC, 'No space left on device')\n"
        "    return real(fd, data)\n"
        "auditlog.os.write = write\n"
        "cli(sys.argv[1:])\n"
    )
    args = scan_args(tmp_path, ev, log)
    full = subprocess.run(
        [sys.executable, "-c", script, *args, "-j", "1"], capture_output=True, timeout=120
    )
    assert full.returncode == ExitCode.FATAL, full.stderr
    assert len(read_log_lines(log)) == 4
    resumed = subprocess.run([*MATCHER, *args, "--resume"], capture_output=True, timeout=120)
    assert resumed.returncode == ExitCode.NOTABLE, resumed.stderr
    assert auditlog.verify(log).runs == 2
    matched = sorted(str(r["path"]) for r in read_log(log) if r["type"] == "match")
    assert matched == sorted(str(p) for p in ev.iterdir())
    assert assert_counts_add_up(log)["notable"] == 10


def test_a_stopped_run_releases_its_log(
    runner: CliRunner, tmp_path: Path, ev: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A library caller (a batch job) resumes in the same process once space is back.

    The scan's log must be closed (its lock released) even when the device
    refuses the `end` record too; otherwise the resume is refused as "in use
    by another matcher process".
    """
    log = tmp_path / "run.jsonl"
    real, written = os.write, [0]

    def write(fd: int, data: Any) -> int:
        if os.readlink(f"/proc/self/fd/{fd}") == str(log):
            written[0] += 1
            if written[0] > 2:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real(fd, data)

    monkeypatch.setattr(auditlog.os, "write", write)
    assert (
        runner.invoke(cli, [*scan_args(tmp_path, ev, log), "-j", "1"]).exit_code == ExitCode.FATAL
    )
    monkeypatch.undo()
    open_fds = [fd for fd in os.listdir("/proc/self/fd") if _points_to(fd, log)]
    resumed = runner.invoke(cli, [*scan_args(tmp_path, ev, log), "-j", "1", "--resume"])
    assert open_fds == [] and resumed.exit_code == ExitCode.NOTABLE, resumed.output


def _points_to(fd: str, path: Path) -> bool:
    try:
        return os.readlink(f"/proc/self/fd/{fd}") == str(path)
    except OSError:
        return False


def read_log_lines(log: Path) -> list[bytes]:
    return log.read_bytes().splitlines()


# A read-only store ---------------------------------------------------------------------


def _fingerprint(db: Path) -> str:
    return hashlib.sha256(db.read_bytes()).hexdigest()


def _seed_store(tmp_path: Path) -> Path:
    db = tmp_path / "store" / "s.db"
    db.parent.mkdir()
    (tmp_path / "old.md5").write_text("d41d8cd98f00b204e9800998ecf8427e\n")
    done = subprocess.run(
        [*MATCHER, "import", str(tmp_path / "old.md5"), "--db", str(db)], capture_output=True
    )
    assert done.returncode == 0, done.stderr
    return db


def _read_only_for_the_child(tmp_path: Path, ev: Path, db: Path) -> tuple[list[str], Path]:
    """chmod 0444 the store; the prefix that runs a child without root's bypass; its log path."""
    db.chmod(0o444)
    prefix: list[str] = []
    if os.geteuid() == 0:
        prefix, _how = unprivileged_prefix([ev, tmp_path / "notable.sha256"], db.parent)
    log = tmp_path / "out" / "run.jsonl"
    log.parent.mkdir(mode=0o777)
    log.parent.chmod(0o777)  # writable by whoever the child runs as
    return prefix, log


def test_read_only_store_file_during_scan_list(tmp_path: Path, ev: Path) -> None:
    """chmod 0444; as root the child loses the powers that bypass it (a real EACCES)."""
    db = _seed_store(tmp_path)
    before = _fingerprint(db)
    prefix, log = _read_only_for_the_child(tmp_path, ev, db)
    proc = subprocess.run(
        [*prefix, *MATCHER, *scan_args(tmp_path, ev, log, db)], capture_output=True, timeout=120
    )
    assert proc.returncode == ExitCode.FATAL, proc.stderr
    assert b"Traceback" not in proc.stderr
    assert proc.stderr.decode().strip() == f"Error: Cannot open hash store {db}: Permission denied"
    assert _fingerprint(db) == before and not log.exists()


def test_store_opened_read_only_rejects_the_import_cleanly(
    runner: CliRunner, tmp_path: Path, ev: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The connection is read-only (as on a read-only medium): the on-the-fly import is refused."""
    db = _seed_store(tmp_path)
    before = _fingerprint(db)
    real = sqlite3.connect

    def read_only(database: str, *args: Any, **kwargs: Any) -> sqlite3.Connection:
        if database == str(db):
            return real(f"file:{db}?mode=ro", *args, uri=True, **kwargs)
        return real(database, *args, **kwargs)

    monkeypatch.setattr(store_mod.sqlite3, "connect", read_only)
    log = tmp_path / "run.jsonl"
    result = runner.invoke(cli, scan_args(tmp_path, ev, log, db))
    monkeypatch.undo()
    assert result.exit_code == ExitCode.FATAL, result.output
    assert isinstance(result.exception, SystemExit) and "Traceback" not in result.output
    reason = "attempt to write a readonly database"
    assert result.output.startswith(f"Error: Import into {db} failed and was rolled back: {reason}")
    assert "cannot be written by this user" in result.output
    assert _fingerprint(db) == before and not log.exists()


# kill -9 during an import ------------------------------------------------------------------


def _big_list(path: Path, lines: int) -> None:
    rng = random.Random(lines)
    with path.open("w") as out:
        for start in range(0, lines, 100_000):
            out.write(
                "".join(f"{rng.randbytes(32).hex()}  f{i}\n" for i in range(start, start + 100_000))
            )


def _state(db: Path) -> dict[str, object]:
    """Everything in the store, opened read-write (which also rolls back a hot journal)."""
    conn = sqlite3.connect(db)
    try:
        return {
            "integrity": conn.execute("PRAGMA integrity_check").fetchall(),
            **{
                t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
                for t in ("lists", "entries", "hashes")
            },
            "rows": [
                conn.execute(f"SELECT * FROM {t} ORDER BY 1").fetchall()
                for t in ("lists", "entries")
            ],
            "hashes": conn.execute("SELECT * FROM hashes ORDER BY algo, digest").fetchall(),
        }
    finally:
        conn.close()


def _lists_json(db: Path) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [*MATCHER, "lists", "--db", str(db), "--json"], capture_output=True, timeout=60
    )


def _kill_import(db: Path, big: Path, ready: Any) -> None:
    proc = subprocess.Popen([*MATCHER, "import", str(big), "--db", str(db)], stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        while not ready() and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.001)
        assert proc.poll() is None, "the import finished before it could be killed"
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.communicate(timeout=60)


@pytest.mark.slow
def test_kill_9_during_a_big_import_leaves_the_store_as_it_was(tmp_path: Path) -> None:
    db = _seed_store(tmp_path)
    before, listed = _state(db), _lists_json(db)
    big = tmp_path / "big.sha256"
    _big_list(big, 2_000_000)
    journal = Path(f"{db}-journal")
    started: list[float] = []

    def under_way() -> bool:
        # Note that the rollback journal appears when the import's transaction first writes.
        if not started and journal.exists():
            started.append(time.monotonic())
        return bool(started) and time.monotonic() - started[0] >= 0.5

    _kill_import(db, big, under_way)
    after = _lists_json(db)
    assert (after.returncode, after.stdout) == (0, listed.stdout), after.stderr
    state = _state(db)
    assert state == before and state["integrity"] == [("ok",)]
    assert json.loads(after.stdout)[0]["name"] == "old.md5"


@pytest.mark.slow
def test_kill_9_while_the_import_commits_leaves_the_store_listable(tmp_path: Path) -> None:
    """Killed while writing the database file itself (a hot journal is left behind).

    `matcher lists` opens the store read-only, and must still show exactly the
    lists from before: a crashed import leaves the store as it was.
    """
    db = _seed_store(tmp_path)
    before, listed = _state(db), _lists_json(db)
    big = tmp_path / "big.sha256"
    _big_list(big, 400_000)
    size = db.stat().st_size
    _kill_import(db, big, lambda: db.stat().st_size > size)
    assert Path(f"{db}-journal").exists(), "killed outside the commit: no hot journal"
    after = _lists_json(db)
    assert (after.returncode, after.stdout, after.stderr) == (0, listed.stdout, b"")
    assert _state(db) == before


# A fault in matcher itself -----------------------------------------------------------


def test_internal_error_mid_scan_exits_2_and_the_log_says_why(
    runner: CliRunner, tmp_path: Path, ev: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bug (here a ValueError planted in matching) is never exit 1, the code of a match.

    Before, Python's own exit 1 followed the traceback, and the log ended
    `interrupted` with no word of why, as if a signal had stopped it.
    """
    import matcher.scan as scan_mod

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise ValueError("planted fault")

    monkeypatch.setattr(scan_mod, "match_batch", broken)
    log = tmp_path / "run.jsonl"
    result = runner.invoke(cli, scan_args(tmp_path, ev, log), catch_exceptions=False)
    assert result.exit_code == ExitCode.FATAL, result.output
    assert "internal error (ValueError: planted fault)" in result.output
    assert "fault in matcher" in result.output
    end = read_log(log)[-1]
    assert end["type"] == "end" and end["status"] == "interrupted"
    assert "aborted by an internal error: ValueError: planted fault" in end["notes"]
    assert runner.invoke(cli, ["verify", str(log)]).exit_code == 0


def test_internal_error_in_another_command_exits_2(
    runner: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: Any, **kwargs: Any) -> Any:
        raise KeyError("planted")

    monkeypatch.setattr(auditlog, "verify", broken)
    log = tmp_path / "x.jsonl"
    log.write_text("{}\n")
    result = runner.invoke(cli, ["verify", str(log)], catch_exceptions=False)
    assert result.exit_code == ExitCode.FATAL, result.output
    assert "internal error (KeyError: 'planted')" in result.output


def test_a_scan_without_list_reads_a_store_it_may_not_write(tmp_path: Path, ev: Path) -> None:
    """A shared store on read-only media (or 0444): before, "Cannot open hash store", exit 2."""
    db = _seed_store(tmp_path)
    imported = subprocess.run([*MATCHER, "import", str(tmp_path / "notable.sha256"), "--db", str(db)],
                              capture_output=True)  # fmt: skip
    assert imported.returncode == 0, imported.stderr
    before = _fingerprint(db)
    prefix, log = _read_only_for_the_child(tmp_path, ev, db)
    args = [a for a in scan_args(tmp_path, ev, log, db)]
    at = args.index("--list")
    del args[at : at + 2]
    proc = subprocess.run([*prefix, *MATCHER, *args], capture_output=True, timeout=120)
    assert proc.returncode == ExitCode.NOTABLE, proc.stderr
    assert sum(r["type"] == "match" for r in read_log(log)) == 10
    assert _fingerprint(db) == before


def test_a_store_it_may_not_write_is_read_beside_a_journal_sqlite_takes_as_not_hot(
    tmp_path: Path, ev: Path
) -> None:
    """A journal is there during every import (or left zeroed by one killed before it wrote the
    store): before, a user who may not write the store was refused it, "an interrupted write
    left a hot journal", whatever SQLite would have said. A journal SQLite must play back is
    still refused so."""
    db = _seed_store(tmp_path)
    journal = Path(f"{db}-journal")
    journal.write_bytes(bytes(512))  # a header not yet written, as while an import is under way
    prefix, _log = _read_only_for_the_child(tmp_path, ev, db)
    listed = subprocess.run([*prefix, *MATCHER, "lists", "--db", str(db), "--json"],
                            capture_output=True, timeout=60)  # fmt: skip
    assert listed.returncode == 0, listed.stderr
    assert [info["name"] for info in json.loads(listed.stdout)] == ["old.md5"]
    db.chmod(0o644)
    child = ("import os, sqlite3, sys\n"
             "conn = sqlite3.connect(sys.argv[1]); conn.execute('PRAGMA cache_size = 10')\n"
             "conn.execute('BEGIN'); conn.execute('CREATE TABLE junk (x)')\n"
             "conn.executemany('INSERT INTO junk VALUES (randomblob(200))', [()] * 20000)\n"
             "os._exit(0)")  # fmt: skip
    killed = subprocess.run([sys.executable, "-c", child, str(db)], timeout=60)
    assert killed.returncode == 0 and journal.read_bytes()[:1] != b"\0", "no hot journal"
    db.chmod(0o444)
    hot = subprocess.run([*prefix, *MATCHER, "lists", "--db", str(db)], capture_output=True,
                         timeout=60)  # fmt: skip
    assert hot.returncode == ExitCode.FATAL
    assert b"an interrupted write left a hot journal that must be rolled back first" in hot.stderr


def test_an_unwritable_stderr_or_a_gone_reader_never_exits_1(tmp_path: Path, ev: Path) -> None:
    """Exit 1 means a notable match: a scan of no match whose stderr was /dev/full, or whose
    reader had gone (`| true`), exited 1 (Python's code for what escaped, click's for EPIPE)."""
    args = [a for a in scan_args(tmp_path, ev, tmp_path / "a.jsonl") if a != "-q"]
    at = args.index("--list")
    (tmp_path / "none.sha256").write_text(f"{hashlib.sha256(b'in no file').hexdigest()}  x\n")
    args[at + 1] = str(tmp_path / "none.sha256")
    with open("/dev/full", "w") as full:
        done = subprocess.run([*MATCHER, *args], stderr=full, stdout=subprocess.DEVNULL, timeout=120)
    assert done.returncode == ExitCode.FATAL
    args[args.index(str(tmp_path / "a.jsonl"))] = str(tmp_path / "b.jsonl")
    reader = subprocess.Popen([*MATCHER, *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    assert reader.stdout is not None
    reader.stdout.close()  # the reader is gone before the first line
    assert reader.wait(timeout=120) == ExitCode.FATAL
    with open("/dev/full", "w") as full:
        missing = subprocess.run([*MATCHER, "scan", str(tmp_path / "nope"), "--examiner", "E",
                                  "--case", "C", "--db", str(tmp_path / "s.db")], stderr=full, timeout=60)  # fmt: skip
    assert missing.returncode == ExitCode.FATAL


def test_an_output_closed_from_the_start_is_an_outcome_not_reported(tmp_path: Path, ev: Path) -> None:
    """Before: Python sets a closed stdout or stderr to None and click dropped what was echoed
    there: `scan --json >&-` exited 1 with its JSON lost, `verify >&-` 0, `scan 2>&-` 1."""

    def closed(fd: int, *argv: str) -> int:
        return subprocess.run([*MATCHER, *argv], preexec_fn=lambda: os.close(fd), stdin=subprocess.DEVNULL,
                              capture_output=False, timeout=120).returncode  # fmt: skip

    log = tmp_path / "a.jsonl"
    args = scan_args(tmp_path, ev, log)
    assert closed(1, *args, "--json") == ExitCode.FATAL
    assert closed(1, "verify", str(log)) == ExitCode.FATAL
    assert closed(2, *scan_args(tmp_path, ev, tmp_path / "b.jsonl")[:-1]) == ExitCode.FATAL  # no -q
    # A command that writes nothing to the closed output is not failed for it.
    assert closed(1, *scan_args(tmp_path, ev, tmp_path / "c.jsonl")) == ExitCode.NOTABLE


def test_a_stdout_that_cannot_be_written_is_said_not_called_a_fault_of_matcher(
    tmp_path: Path, ev: Path
) -> None:
    """Before: `lists --json >/dev/full` printed a traceback and 'internal error ... a fault in
    matcher', and `verify LOG >&-` exited 2 with no word on stderr (an unreadable log's exit)."""
    log = tmp_path / "a.jsonl"
    assert subprocess.run([*MATCHER, *scan_args(tmp_path, ev, log)], timeout=120).returncode == 1
    db = scan_args(tmp_path, ev, log)[scan_args(tmp_path, ev, log).index("--db") + 1]
    for argv in (["lists", "--db", db, "--json"], ["verify", str(log)]):
        with open("/dev/full", "w") as full:
            done = subprocess.run([*MATCHER, *argv], stdout=full, stderr=subprocess.PIPE, text=True, timeout=120)
        assert done.returncode == ExitCode.FATAL, done.stderr
        assert "cannot write to standard output: No space left on device" in done.stderr
        assert "internal error" not in done.stderr and "Traceback" not in done.stderr
        closed = subprocess.run([*MATCHER, *argv], preexec_fn=lambda: os.close(1), stderr=subprocess.PIPE,
                                text=True, timeout=120)  # fmt: skip
        assert closed.returncode == ExitCode.FATAL
        assert "cannot write to standard output: it is closed" in closed.stderr


@pytest.mark.parametrize("where", ["listing a folder", "opening a file"])
def test_running_out_of_open_files_stops_the_scan_to_be_resumed_not_a_complete_scan(
    tmp_path: Path, ev: Path, monkeypatch: pytest.MonkeyPatch, where: str
) -> None:
    """Before: under `ulimit -n 12` the root's listing failed with EMFILE, recorded as an evidence
    walk-error: 'complete: 1 entries: 0 files hashed', exit 4, and --resume refused (complete).
    matcher's own limit is no fault of the evidence: the run stops, to be resumed."""
    import errno

    import matcher.evidence.folder as folder_mod
    import matcher.scan as scan_mod

    real = folder_mod.open_readonly
    real_file = folder_mod.open_file

    def out_of_files(path: bytes, directory: bool = False) -> int:
        if directory and where == "listing a folder":
            raise OSError(errno.EMFILE, "Too many open files")
        return real(path, directory)

    def out_of_files_for_a_file(path: bytes) -> int:
        if where == "opening a file":
            raise OSError(errno.EMFILE, "Too many open files")
        return real_file(path)

    log = tmp_path / "a.jsonl"
    listed = tmp_path / "notable.sha256"
    options = scan_mod.ScanOptions([ev], "E", "F-1", tmp_path / "s.db", log, lists=[listed], jobs=1)
    with monkeypatch.context() as limited:
        limited.setattr(folder_mod, "open_readonly", out_of_files)
        limited.setattr(scan_mod, "open_readonly", out_of_files)
        limited.setattr(scan_mod, "open_file", out_of_files_for_a_file)
        with pytest.raises(scan_mod.ScanAborted, match=r"ran out of open files \(EMFILE\)"):
            scan_mod.run_scan(options)
    end = read_log(log)[-1]
    assert end["status"] == "interrupted" and end["counts"]["errors"] == 0, end
    resumed = subprocess.run([*MATCHER, *scan_args(tmp_path, ev, log), "--resume"], capture_output=True,
                             text=True, timeout=120)  # fmt: skip
    assert resumed.returncode == ExitCode.NOTABLE, resumed.stderr
    assert not [r for r in read_log(log) if r["type"] == "error"]


def test_jobs_default_to_the_cores_the_process_may_use(
    runner: CliRunner, tmp_path: Path, ev: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before: os.cpu_count(), the machine's cores: under `taskset -c 0` (or a batch slot of 4
    cores on a 56-core node) a scan forked a worker per core of the machine."""
    monkeypatch.setattr(os, "cpu_count", lambda: 56)  # the machine
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {3})  # the one core it may use
    log = tmp_path / "a.jsonl"
    result = runner.invoke(cli, scan_args(tmp_path, ev, log))
    assert result.exit_code == ExitCode.NOTABLE, result.output
    assert read_log(log)[0]["options"]["jobs"] == 1


def test_sqlite_unable_to_open_under_a_low_open_file_limit_names_the_limit(
    tmp_path: Path, ev: Path
) -> None:
    """Before: under `ulimit -n 10` or 11 a scan ended 'Cannot open inventory ...: unable to
    open database file': SQLite gives no errno, and it read as a permission problem. Whatever
    the limit, a refusal now names what ran out (or stops the run to be resumed)."""
    import resource

    seen = set()
    for limit in range(8, 16):
        log = tmp_path / f"l{limit}.jsonl"

        def lower(limit: int = limit) -> None:
            resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit))

        done = subprocess.run([*MATCHER, *scan_args(tmp_path, ev, log)], preexec_fn=lower,
                              capture_output=True, text=True, timeout=120, close_fds=True)  # fmt: skip
        assert "Traceback" not in done.stderr
        if done.returncode == ExitCode.FATAL:
            seen.add("refused")
            assert re.search("open files|files open|file descriptor", done.stderr), done.stderr
            assert "ulimit -n" in done.stderr, done.stderr
        else:
            seen.add("ran")
    assert seen == {"refused", "ran"}  # the range crosses the limit matcher needs


def test_the_open_file_note_counts_this_process_descriptors(monkeypatch: pytest.MonkeyPatch) -> None:
    import resource

    from matcher.errors import open_files_note

    in_use = len(os.listdir("/proc/self/fd")) - 1
    monkeypatch.setattr(resource, "getrlimit", lambda what: (in_use + 2, 4096))
    assert f"{in_use} files open, and may open at most {in_use + 2}" in str(open_files_note())
    monkeypatch.setattr(resource, "getrlimit", lambda what: (in_use + 100, 4096))
    assert open_files_note() is None


def test_a_reader_of_stdout_gone_is_said_on_stderr(tmp_path: Path, ev: Path) -> None:
    """`matcher lists | true`, `selftest --json | true` and `scan --json | true` exited 2 with no
    word on stderr (`hash` said it): a scan that completed read as one that failed unexplained."""
    log = tmp_path / "a.jsonl"
    for argv in (scan_args(tmp_path, ev, log) + ["--json"], ["selftest", "--json"]):
        proc = subprocess.Popen([*MATCHER, *argv], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        assert proc.stdout is not None and proc.stderr is not None
        proc.stdout.close()  # the reader is gone before the first line
        err = proc.stderr.read()
        proc.stderr.close()
        assert proc.wait(timeout=120) == ExitCode.FATAL
        assert b"cannot write to standard output: its reader went away (Broken pipe)" in err, err


def test_a_refusal_with_json_to_a_full_stdout_still_says_the_refusal(tmp_path: Path, ev: Path) -> None:
    """`scan --json --algorithms foo > /dev/full` said only "cannot write to standard output":
    the refusal itself (what to fix) was lost. Both are said on stderr."""
    with open("/dev/full", "w") as full:
        done = subprocess.run([*MATCHER, "scan", str(ev), "--examiner", "E", "--case", "C", "--db",
                               str(tmp_path / "s.db"), "--json", "--algorithms", "foo"],
                              stdout=full, stderr=subprocess.PIPE, timeout=60)  # fmt: skip
    assert done.returncode == ExitCode.FATAL
    assert b"unknown algorithm 'foo'" in done.stderr and b"cannot write to standard output" in done.stderr, done.stderr
