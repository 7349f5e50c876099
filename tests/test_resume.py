"""Crash-safe resume, clean interruption and re-matching, driven through real processes."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import assert_counts_add_up
from conftest import read_log
from conftest import rechain

MATCHER = [sys.executable, "-m", "matcher"]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, set[str]]:
    """4,000 seeded files, 1 in 25 on a notable sha256 list, and a store holding it."""
    base = tmp_path_factory.mktemp("corpus")
    ev = base / "ev"
    rng = random.Random(7)
    notable: set[str] = set()
    lines = []
    for d in range(8):
        (ev / f"d{d}").mkdir(parents=True)
        for i in range(500):
            data = rng.randbytes(rng.randint(0, 48 * 1024)) + f"{d}/{i}".encode()
            path = ev / f"d{d}" / f"f{i:03d}"
            path.write_bytes(data)
            if i % 25 == 0:
                notable.add(str(path))
                lines.append(f"{hashlib.sha256(data).hexdigest()}  f{i}\n")
    lst = base / "notable.sha256"
    lst.write_text("".join(lines))
    db = base / "s.db"
    subprocess.run([*MATCHER, "import", str(lst), "--db", str(db)], check=True, capture_output=True)
    return ev, db, notable


def start_scan(ev: Path, db: Path, log: Path, *extra: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [*MATCHER, "scan", str(ev), "--examiner", "E", "--case", "C", "--db", str(db), "--log", str(log), "-q", *extra],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )


def run_scan(ev: Path, db: Path, log: Path, *extra: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [*MATCHER, "scan", str(ev), "--examiner", "E", "--case", "C", "--db", str(db), "--log", str(log), "-q", *extra],
        capture_output=True, timeout=300,
    )


def verify(log: Path) -> int:
    return subprocess.run([*MATCHER, "verify", str(log)], capture_output=True).returncode


def matched_paths(log: Path) -> list[str]:
    return [str(r["path"]) for r in read_log(log) if r["type"] == "match"]


def wait_for_progress(log: Path, proc: subprocess.Popen[bytes], records: int) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        if log.exists() and log.read_bytes().count(b"\n") >= records:
            return
        time.sleep(0.005)


def killed_scan(ev: Path, db: Path, log: Path, records: int) -> None:
    """A scan of `ev` killed with SIGKILL once its log holds `records` lines (or it ended)."""
    proc = start_scan(ev, db, log)
    wait_for_progress(log, proc, records)
    proc.send_signal(signal.SIGKILL)
    proc.communicate()


@pytest.mark.parametrize("after_records", [0, 1, 3, 20, 60, 120])
def test_kill_9_then_resume_logs_every_match_exactly_once(corpus: tuple[Path, Path, set[str]], tmp_path: Path, after_records: int) -> None:
    ev, db, notable = corpus
    log = tmp_path / "run.jsonl"
    proc = start_scan(ev, db, log)
    wait_for_progress(log, proc, after_records)
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    if not log.exists():
        pytest.fail("the scan was killed before it created its log; raise after_records")
    result = run_scan(ev, db, log, "--resume")
    assert result.returncode == 1, result.stderr
    assert verify(log) == 0
    paths = matched_paths(log)
    assert sorted(paths) == sorted(notable)  # never lost, never doubled
    records = read_log(log)
    runs = [r for r in records if r["type"] == "run"]
    assert runs[-1]["resume"] is True
    counts = assert_counts_add_up(log)
    assert counts["files"] == 4000 and counts["notable"] == len(notable)
    # The inventory has no key on path: each file must still be in it exactly once.
    conn = sqlite3.connect(f"{log}.inventory.db")
    try:
        rows, paths = conn.execute("SELECT count(*), count(DISTINCT path) FROM entries").fetchone()
    finally:
        conn.close()
    assert rows == paths == counts["entries"]


def test_torn_last_line_is_set_aside_not_dropped(corpus: tuple[Path, Path, set[str]], tmp_path: Path) -> None:
    ev, db, notable = corpus
    log = tmp_path / "run.jsonl"
    killed_scan(ev, db, log, 10)
    torn = b'{"seq":999,"type":"match","ti'
    with log.open("ab") as f:
        f.write(torn)
    assert verify(log) == 1
    result = run_scan(ev, db, log, "--resume")
    assert result.returncode == 1, result.stderr
    assert verify(log) == 0
    side = list(tmp_path.glob("run.jsonl.torn-*"))
    assert len(side) == 1 and side[0].read_bytes() == torn
    resume_run = [r for r in read_log(log) if r["type"] == "run"][-1]
    recovery = resume_run["crash_recovery"]["torn_tail"]
    assert recovery["sha256"] == hashlib.sha256(torn).hexdigest()
    assert sorted(matched_paths(log)) == sorted(notable)


def test_sigterm_writes_interrupted_end_and_exit_8(corpus: tuple[Path, Path, set[str]], tmp_path: Path) -> None:
    ev, db, notable = corpus
    log = tmp_path / "run.jsonl"
    proc = start_scan(ev, db, log)
    wait_for_progress(log, proc, 5)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode & 8, err
    assert proc.returncode in (8, 9)
    assert b"run the same command with --resume to continue" in err
    assert verify(log) == 0
    end = read_log(log)[-1]
    assert end["type"] == "end" and end["status"] == "interrupted"
    assert_counts_add_up(log)
    result = run_scan(ev, db, log, "--resume")
    assert result.returncode == 1
    assert sorted(matched_paths(log)) == sorted(notable)


def test_a_log_named_by_default_is_named_in_the_resume_hint_and_the_hint_works(corpus: tuple[Path, Path, set[str]], tmp_path: Path) -> None:
    """Without --log the log's name carries the time: the same command plus --resume would not find it."""
    import shlex

    ev, db, notable = corpus
    work = tmp_path / "cwd"
    work.mkdir()
    argv = [*MATCHER, "scan", str(ev), "--examiner", "E", "--case", "C", "--db", str(db), "-q"]
    proc = subprocess.Popen(argv, cwd=work, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not any(p.read_bytes().count(b"\n") >= 3 for p in work.glob("*.jsonl")):
        time.sleep(0.005)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode in (8, 9), err
    (log,) = work.glob("matcher-C-*.jsonl")
    hint = err.decode().split("interrupted: run the same command with ", 1)[1].split(" to continue")[0]
    assert hint == f"--log {log.name} --resume"
    result = subprocess.run([*argv, *shlex.split(hint)], cwd=work, capture_output=True, timeout=300)
    assert result.returncode == 1, result.stderr
    assert verify(log) == 0 and sorted(matched_paths(log)) == sorted(notable)


def test_rematch_with_evidence_removed(corpus: tuple[Path, Path, set[str]], tmp_path: Path) -> None:
    ev, db, notable = corpus
    copy = tmp_path / "ev"
    shutil.copytree(ev / "d0", copy / "d0")
    log = tmp_path / "run.jsonl"
    first = run_scan(copy, db, log)
    assert first.returncode == 1
    # A new list arrives after the scan: a file that was unknown becomes notable.
    target = copy / "d0" / "f001"
    extra = tmp_path / "new.md5"
    extra.write_text(hashlib.md5(target.read_bytes()).hexdigest() + "  new\n")
    db2 = tmp_path / "s2.db"
    shutil.copy(db, db2)
    assert subprocess.run([*MATCHER, "import", str(extra), "--db", str(db2)], capture_output=True).returncode == 0
    target_path = str(target)
    shutil.rmtree(copy)
    new_log = tmp_path / "rematch.jsonl"
    result = subprocess.run([*MATCHER, "rematch", str(log), "--db", str(db2), "--examiner", "R", "--case", "C",
                             "--log", str(new_log), "--json"], capture_output=True)
    assert result.returncode == 1, result.stderr
    assert verify(new_log) == 0
    run = read_log(new_log)[0]
    original_end = read_log(log)[-1]
    head = hashlib.sha256(log.read_bytes().splitlines()[-1]).hexdigest()
    assert run["rematch_of"]["head"] == head
    assert run["rematch_of"]["inventory_sha256"] == original_end["inventory"]["sha256"]
    assert target_path in matched_paths(new_log)
    assert json.loads(result.stdout)["notable"] == len(matched_paths(new_log))
    # It read no evidence (the tree is gone): its summary never says it hashed files.
    assert b"files matched again by their recorded digests" in result.stderr
    assert b"files hashed" not in result.stderr


def test_rematch_refuses_a_changed_inventory(corpus: tuple[Path, Path, set[str]], tmp_path: Path) -> None:
    ev, db, _ = corpus
    log = tmp_path / "run.jsonl"
    run_scan(ev / "d1", db, log)
    inv = Path(f"{log}.inventory.db")
    import sqlite3

    conn = sqlite3.connect(inv)
    conn.execute("UPDATE entries SET verdict = 'known' WHERE rowid = 1")
    conn.commit()
    conn.close()
    result = subprocess.run([*MATCHER, "rematch", str(log), "--db", str(db), "--examiner", "R", "--case", "C",
                             "--log", str(tmp_path / "r.jsonl")], capture_output=True)
    assert result.returncode == 2  # a refusal: exit 1 would read as "notable matches"
    assert b"sealed" in result.stderr
    # The log verified; it is the inventory that is refused (it said "the log does not verify").
    assert b"Refused: the inventory" in result.stderr and b"does not verify" not in result.stderr
    assert not (tmp_path / "r.jsonl").exists()


def _plant_journal(db: Path, edit: str) -> None:
    """Write beside `db` a rollback journal that, rolled back, would apply `edit` (SQL) to it.

    The journal holds, for each page `edit` changes, that page as `edit` leaves it: SQLite's
    rollback copies it over the file (sqlite.org/fileformat.html, the rollback journal).
    """
    import struct

    changed = Path(f"{db}.changed")
    shutil.copy(db, changed)
    conn = sqlite3.connect(changed)
    conn.execute(edit)
    conn.commit()
    conn.close()
    old, new = db.read_bytes(), changed.read_bytes()
    changed.unlink()
    size = struct.unpack(">H", old[16:18])[0]
    pages = [i for i in range(len(old) // size) if old[i * size : (i + 1) * size] != new[i * size : (i + 1) * size]]
    nonce = 7
    journal = bytes.fromhex("d9d505f920a163d7") + struct.pack(">IIIII", len(pages), nonce, len(old) // size, 512, size)
    journal = journal.ljust(512, b"\0")
    for i in pages:
        data = new[i * size : (i + 1) * size]
        if i == 0:
            data = data[:24] + old[24:28] + data[28:]
        check = nonce + sum(data[j] for j in range(size - 200, 0, -200))
        journal += struct.pack(">I", i + 1) + data + struct.pack(">I", check & 0xFFFFFFFF)
    Path(f"{db}-journal").write_bytes(journal)


def test_rematch_reads_the_sealed_inventory_as_it_is_never_a_journal_beside_it(
    corpus: tuple[Path, Path, set[str]], tmp_path: Path
) -> None:
    """Before: the inventory's SHA-256 was checked, then SQLite rolled a journal planted beside
    it into it: the sealed file changed, and a file's digest that was never read was re-matched
    (a notable match no scan would give, in a log that verified)."""
    ev, db, _ = corpus
    log = tmp_path / "run.jsonl"
    assert run_scan(ev / "d1", db, log).returncode == 1
    inventory = Path(f"{log}.inventory.db")
    sealed = inventory.read_bytes()
    from matcher.digests import ALGORITHM_CODES

    conn = sqlite3.connect(db)
    code, digest = conn.execute("SELECT algo, digest FROM hashes LIMIT 1").fetchone()
    conn.close()
    column = {c: a for a, c in ALGORITHM_CODES.items()}[code]
    conn = sqlite3.connect(inventory)
    (unknown,) = conn.execute("SELECT path FROM entries WHERE verdict = 'unknown' LIMIT 1").fetchone()
    conn.close()
    _plant_journal(inventory, f"UPDATE entries SET {column} = x'{digest.hex()}' WHERE path = x'{bytes(unknown).hex()}'")
    new_log = tmp_path / "r.jsonl"
    result = subprocess.run([*MATCHER, "rematch", str(log), "--db", str(db), "--examiner", "R", "--case", "C",
                             "--log", str(new_log)], capture_output=True)  # fmt: skip
    assert inventory.read_bytes() == sealed  # never written
    assert bytes(unknown) not in {os.fsencode(p) for p in matched_paths(new_log)}, result.stderr
    assert result.returncode == 1 and verify(new_log) == 0


@pytest.mark.parametrize("command", ["resume", "rematch"])
def test_a_log_that_does_not_verify_is_refused_with_exit_2_never_1(
    corpus: tuple[Path, Path, set[str]], tmp_path: Path, command: str
) -> None:
    # Exit 1 means notable matches: a batch script must not read a refusal as one.
    ev, db, _ = corpus
    log = tmp_path / "run.jsonl"
    assert run_scan(ev / "d3", db, log).returncode == 1
    lines = log.read_bytes().splitlines(keepends=True)
    lines[0] = lines[0].replace(b'"examiner":"E"', b'"examiner":"F"')  # the run record
    assert b'"examiner":"F"' in lines[0]
    log.write_bytes(b"".join(lines))
    before = log.read_bytes()
    if command == "resume":
        result = run_scan(ev / "d3", db, log, "--resume")
    else:
        result = subprocess.run([*MATCHER, "rematch", str(log), "--db", str(db), "--examiner", "R", "--case", "C",
                                 "--log", str(tmp_path / "r.jsonl")], capture_output=True)
    assert result.returncode == 2, result.stderr
    assert b"refused: the log does not verify: line 2" in result.stderr
    assert log.read_bytes() == before and not (tmp_path / "r.jsonl").exists()


def test_excludes_and_max_size_are_recorded_and_never_clean(corpus: tuple[Path, Path, set[str]], tmp_path: Path) -> None:
    ev, db, _ = corpus
    log = tmp_path / "run.jsonl"
    result = run_scan(ev / "d2", db, log, "--exclude", "f00*", "--max-size", "40K")
    assert result.returncode in (0, 1)
    records = read_log(log)
    assert records[0]["options"]["excludes"] == ["f00*"]
    assert records[0]["options"]["max_size"] == 40 * 1024
    counts = assert_counts_add_up(log)
    assert counts["skipped_by_reason"]["excluded"] == 10
    big = sum(1 for p in (ev / "d2").iterdir() if not p.name.startswith("f00") and p.stat().st_size > 40 * 1024)
    assert counts["skipped_by_reason"]["too-large"] == big
    assert counts["files"] == 500 - 10 - big


def test_each_inventory_commit_follows_a_log_sync_of_its_matches(corpus: tuple[Path, Path, set[str]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """After a power loss, the inventory never calls a file finished whose match is not on disk.

    --resume never reads a finished file again, so a notable file's match
    record must be synced before the inventory row that finishes it is
    committed. Every commit is made here (flush interval 0) and checked.
    """
    import matcher.auditlog as auditlog_mod
    import matcher.inventory as inventory_mod
    import matcher.scan as scan_mod

    ev, db, notable = corpus
    monkeypatch.setattr(scan_mod, "INVENTORY_FLUSH_SECONDS", 0.0)
    monkeypatch.setattr(scan_mod, "MATCH_BATCH", 64)
    appended: list[str] = []  # match paths, in append order
    synced = 0  # how many of them the last sync covered
    commits: list[int] = []
    real_append, real_sync = auditlog_mod.LogWriter.append, auditlog_mod.LogWriter.sync
    real_flush = inventory_mod.Inventory.flush

    def append(self: auditlog_mod.LogWriter, kind: str, fields: dict[str, object]) -> object:
        if kind == "match" and str(fields["path"]).startswith(str(ev)):  # not the self-test's
            appended.append(str(fields["path"]))
        return real_append(self, kind, fields)

    def sync(self: auditlog_mod.LogWriter) -> None:
        nonlocal synced
        real_sync(self)
        synced = len(appended)

    def flush(self: inventory_mod.Inventory) -> None:
        rows = [r for rs in self._pending.values() for r in rs]
        finished_notable = sum(1 for r in rows if "notable" in r)
        if finished_notable:
            # Every match appended so far must be covered by a sync.
            assert synced == len(appended), "inventory committed before its matches were synced"
            commits.append(finished_notable)
        real_flush(self)

    monkeypatch.setattr(auditlog_mod.LogWriter, "append", append)
    monkeypatch.setattr(auditlog_mod.LogWriter, "sync", sync)
    monkeypatch.setattr(inventory_mod.Inventory, "flush", flush)
    log = tmp_path / "run.jsonl"
    summary = scan_mod.run_scan(scan_mod.ScanOptions(evidence=[ev], examiner="E", case="C", db=db, log=log, jobs=2))
    assert summary.status == "complete"
    assert sorted(appended) == sorted(notable) and sum(commits) == len(notable)
    assert len(commits) > 1  # the check ran on several commits, not only the last


def _small_tree(tmp_path: Path) -> tuple[Path, Path, bytes]:
    """ev/ with a notable file and two plain ones, and a store holding the notable one."""
    ev = tmp_path / "ev"
    (ev / "b").mkdir(parents=True)
    notable = b"notable content %d" % random.Random(3).randrange(10**9)
    (ev / "hit.bin").write_bytes(notable)
    (ev / "plain.bin").write_bytes(b"plain")
    (ev / "b" / "inner.bin").write_bytes(b"inner")
    lst = tmp_path / "n.sha256"
    lst.write_text(f"{hashlib.sha256(notable).hexdigest()}  hit\n")
    db = tmp_path / "s.db"
    subprocess.run([*MATCHER, "import", str(lst), "--db", str(db)], check=True, capture_output=True)
    return ev, db, notable


def _interrupted_scan(ev: Path, db: Path, log: Path, monkeypatch: pytest.MonkeyPatch, *, jobs: int = 1) -> None:
    """Run a scan in this process and stop it with SIGINT at its first progress report."""
    import matcher.scan as scan_mod

    def stop(counts: scan_mod.Counts) -> None:
        os.kill(os.getpid(), signal.SIGINT)

    summary = scan_mod.run_scan(scan_mod.ScanOptions([ev], "E", "C", db, log, jobs=jobs), stop)
    assert summary.status == "interrupted"


@pytest.mark.parametrize(
    "change",
    [["--list", "{extra}"], ["--exclude", "*.bin"], ["--algorithms", "md5,sha256"], ["{other_root}"],
     ["--case", "OTHER-CASE"], ["--authority", "warrant 9"]],
    ids=["a new list", "an exclude", "other algorithms", "another root", "another case", "an authority"],
)
def test_a_resume_that_is_not_the_same_scan_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, change: list[str]) -> None:
    """Finished entries are skipped on resume: with other lists, roots or options they would
    count as read under conditions they never were (a new list's match silently missed)."""
    ev, db, _ = _small_tree(tmp_path)
    log = tmp_path / "run.jsonl"
    _interrupted_scan(ev, db, log, monkeypatch)
    extra = tmp_path / "extra.md5"
    extra.write_text(f"{hashlib.md5(b'plain').hexdigest()}  plain\n")
    other = tmp_path / "other"
    other.mkdir()
    args = [a.format(extra=extra, other_root=other) for a in change]
    before, store_before = log.read_bytes(), (tmp_path / "s.db").read_bytes()
    evidence = [] if "{other_root}" in change else [str(ev)]
    result = subprocess.run(
        [*MATCHER, "scan", *evidence, "--examiner", "E", "--case", "C", "--db", str(db),
         "--log", str(log), "-q", "--resume", *args],
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 2, result.stderr
    assert "Cannot resume" in result.stderr and "matcher rematch" in result.stderr
    if "--case" in change:
        assert '--case (the run began under "C")' in result.stderr
    # What the run began with is said: repeating it continues the run.
    said = {"--exclude": "--exclude (the run began with none)",
            "--algorithms": "algorithms (the run began with md5, sha1, sha256)",
            "{other_root}": f"evidence (the run began with {ev})"}  # fmt: skip
    for option, text in said.items():
        if option in change:
            assert text in result.stderr, result.stderr
    assert log.read_bytes() == before and (tmp_path / "s.db").read_bytes() == store_before
    # The same scan (another --jobs is fine) still resumes.
    again = run_scan(ev, db, log, "--resume", "--jobs", "2")
    assert again.returncode == 1, again.stderr
    assert verify(log) == 0


def test_another_examiner_may_resume_and_the_handover_is_noted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A shift handover: the resumed run names its own examiner, and the end record notes the change."""
    ev, db, _ = _small_tree(tmp_path)
    log = tmp_path / "run.jsonl"
    _interrupted_scan(ev, db, log, monkeypatch)
    result = subprocess.run(
        [*MATCHER, "scan", str(ev), "--examiner", "Second Ex\u0430miner", "--case", "C", "--db", str(db),
         "--log", str(log), "-q", "--resume"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 1, result.stderr
    records = read_log(log)
    assert [r["examiner"] for r in records if r["type"] == "run"] == ["E", "Second Ex\u0430miner"]
    assert [r["case"] for r in records if r["type"] == "run"] == ["C", "C"]
    # Both named; a look-alike letter (Cyrillic a) as its code point.
    said = "examiner changed on resume: the run this one continues was by 'E', this one is by "
    assert said + "'Second Ex\\u0430miner'" in records[-1]["notes"], records[-1]["notes"]
    assert verify(log) == 0
    html = subprocess.run([*MATCHER, "report", str(log), "--format", "html"], capture_output=True, text=True)
    resumed_at = [r["seq"] for r in records if r["type"] == "run"][1]
    assert f"E (run at seq 0); Second Ex\u0430miner (run at seq {resumed_at})" in html.stdout
    assert "<td>C</td>" in html.stdout  # one case: shown once


def test_a_match_logged_before_a_crash_stays_notable_if_its_file_is_gone(tmp_path: Path) -> None:
    """The log is synced before the inventory: a crash between them leaves a match record
    with no inventory row. The resume records the file from its match record (it is not
    read again), so a file gone or unreadable by then is still counted as the match it was."""
    ev, db, notable = _small_tree(tmp_path)
    log = tmp_path / "run.jsonl"
    crash = (
        "import os, sys\n"
        "import matcher.inventory as inv\n"
        "real = inv.Inventory.flush\n"
        "def flush(self):\n"
        "    if any('notable' in row for rows in self._pending.values() for row in rows):\n"
        "        os._exit(9)  # the log holds the match; the inventory never gets its row\n"
        "    real(self)\n"
        "inv.Inventory.flush = flush\n"
        "from matcher.cli import cli\n"
        "cli(sys.argv[1:], prog_name='matcher')\n"
    )
    first = subprocess.run(
        [sys.executable, "-c", crash, "scan", str(ev), "--examiner", "E", "--case", "C",
         "--db", str(db), "--log", str(log), "-q", "--jobs", "1"],
        capture_output=True, text=True, timeout=120,
    )
    assert first.returncode == 9, first.stderr
    assert len(matched_paths(log)) == 1
    (ev / "hit.bin").unlink()
    result = run_scan(ev, db, log, "--resume")
    assert result.returncode == 1, result.stderr  # a notable match was found
    assert verify(log) == 0 and matched_paths(log) == [str(ev / "hit.bin")]
    counts = assert_counts_add_up(log)
    assert counts["notable"] == 1 and counts["errors"] == 0 and counts["files"] == 3
    conn = sqlite3.connect(f"{log}.inventory.db")
    try:
        row = conn.execute(
            "SELECT verdict, sha256, detail FROM entries WHERE path = ?", [os.fsencode(ev / "hit.bin")]
        ).fetchone()
    finally:
        conn.close()
    assert row[0] == "notable" and bytes(row[1]) == hashlib.sha256(notable).digest()
    assert "earlier segment" in row[2]


def test_a_failure_that_passes_on_resume_leaves_no_stale_row(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A directory that could not be listed is retried on resume; once it lists, its old
    failure row goes, so the inventory the end record seals says what the counts say."""
    import matcher.evidence.folder as folder_mod

    ev, db, _ = _small_tree(tmp_path)
    log = tmp_path / "run.jsonl"
    real = folder_mod.FolderWalker._list_dir

    def failing(self: folder_mod.FolderWalker, path: bytes, dev: int, ino: int) -> object:
        if path.endswith(b"/b"):
            return folder_mod._walk_failure(path, OSError(5, "Input/output error"))
        return real(self, path, dev, ino)

    monkeypatch.setattr(folder_mod.FolderWalker, "_list_dir", failing)
    _interrupted_scan(ev, db, log, monkeypatch)
    monkeypatch.setattr(folder_mod.FolderWalker, "_list_dir", real)
    result = run_scan(ev, db, log, "--resume")
    assert result.returncode == 1, result.stderr
    counts = assert_counts_add_up(log)
    assert counts["errors"] == 0 and counts["files"] == 3
    conn = sqlite3.connect(f"{log}.inventory.db")
    try:
        rows = conn.execute("SELECT count(*), count(failure) FROM entries").fetchone()
    finally:
        conn.close()
    assert rows == (counts["entries"], 0)


def test_a_match_the_log_refused_is_not_counted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Disk full on a match record: the run stops, and its end record counts only what the
    log and the inventory hold (the count used to run ahead of the failed write)."""
    import matcher.auditlog as auditlog_mod
    import matcher.scan as scan_mod
    from matcher.errors import LogWriteError

    ev, db, _ = _small_tree(tmp_path)
    log = tmp_path / "run.jsonl"
    real_append = auditlog_mod.LogWriter.append

    def append(self: auditlog_mod.LogWriter, kind: str, fields: dict[str, object]) -> object:
        if kind == "match" and str(fields["path"]).startswith(str(ev)):
            raise LogWriteError("No space left on device (simulated)")
        return real_append(self, kind, fields)

    monkeypatch.setattr(auditlog_mod.LogWriter, "append", append)
    with pytest.raises(scan_mod.ScanAborted):
        scan_mod.run_scan(scan_mod.ScanOptions([ev], "E", "C", db, log, jobs=1))
    monkeypatch.setattr(auditlog_mod.LogWriter, "append", real_append)
    assert verify(log) == 0
    (end,) = [r for r in read_log(log) if r["type"] == "end"]
    counts = end["counts"]
    assert counts["notable"] == len(matched_paths(log)) == 0
    conn = sqlite3.connect(f"{log}.inventory.db")
    try:
        rows = conn.execute("SELECT count(*) FROM entries").fetchone()[0]
    finally:
        conn.close()
    assert counts["entries"] == rows


def test_a_resume_matches_against_the_lists_of_its_run_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A shared store gains lists; a resume keeps to the run's own lists (the finished
    entries were never matched against the new one), says so, and stays resumable."""
    ev, db, _ = _small_tree(tmp_path)
    log = tmp_path / "run.jsonl"
    _interrupted_scan(ev, db, log, monkeypatch)
    later = tmp_path / "later.md5"
    later.write_text(f"{hashlib.md5(b'inner').hexdigest()}  inner\n")  # b/inner.bin, read on resume
    subprocess.run([*MATCHER, "import", str(later), "--db", str(db), "--role", "notable"], check=True, capture_output=True)
    result = run_scan(ev, db, log, "--resume")
    assert result.returncode == 1, result.stderr
    assert verify(log) == 0
    assert matched_paths(log) == [str(ev / "hit.bin")]  # not b/inner.bin: 'later' is not the run's
    runs = [r for r in read_log(log) if r["type"] == "run"]
    assert [lst["name"] for lst in runs[-1]["lists"]] == [lst["name"] for lst in runs[0]["lists"]]
    (end,) = [r for r in read_log(log) if r["type"] == "end" and r["status"] == "complete"]
    assert any("later.md5" in note and "rematch" in note for note in end["notes"])
    # A list of the run that is gone is refused.
    log2 = tmp_path / "run2.jsonl"
    _interrupted_scan(ev, db, log2, monkeypatch)
    subprocess.run([*MATCHER, "remove", "n.sha256", "--db", str(db)], check=True, capture_output=True)
    refused = run_scan(ev, db, log2, "--resume")
    assert refused.returncode == 2 and b"no longer in the store" in refused.stderr


def test_a_list_imported_since_in_a_digest_the_run_does_not_compute_leaves_it_resumable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A shared store gains a SHA-512 list while a scan is interrupted: the resume, which
    does not use it, was refused as if it were blind ("add their algorithm to
    --algorithms", which a resume cannot), and its end record noted lists it did not use."""
    ev, db, _ = _small_tree(tmp_path)
    log = tmp_path / "run.jsonl"
    _interrupted_scan(ev, db, log, monkeypatch)
    later = tmp_path / "later.txt"
    later.write_text(f"{hashlib.sha512(b'inner').hexdigest()}\n{hashlib.sha512(b'').hexdigest()}\n")
    subprocess.run([*MATCHER, "import", str(later), "--db", str(db), "--role", "notable", "--format", "plain"], check=True, capture_output=True)
    result = run_scan(ev, db, log, "--resume")
    assert result.returncode == 1, result.stderr
    assert verify(log) == 0
    assert matched_paths(log) == [str(ev / "hit.bin")]
    (end,) = [r for r in read_log(log) if r["type"] == "end" and r["status"] == "complete"]
    assert [note for note in end["notes"] if "later.txt" in note] == [
        note for note in end["notes"] if "imported after the run began" in note
    ]


def test_a_candidates_only_resume_keeps_to_the_sizes_of_its_own_lists(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Lists imported after the run began change neither the candidates nor the mode,
    and one of them given with --list is refused (it would be silently unused)."""
    import matcher.scan as scan_mod

    ev, db, notable = _small_tree(tmp_path)
    sized = tmp_path / "sized.csv"
    sized.write_text(f"sha256,size\n{hashlib.sha256(notable).hexdigest()},{len(notable)}\n")
    subprocess.run([*MATCHER, "import", str(sized), "--db", str(db), "--role", "notable"], check=True, capture_output=True)
    subprocess.run([*MATCHER, "remove", "n.sha256", "--db", str(db)], check=True, capture_output=True)
    log = tmp_path / "run.jsonl"

    def stop(counts: scan_mod.Counts) -> None:
        os.kill(os.getpid(), signal.SIGINT)

    options = scan_mod.ScanOptions([ev], "E", "C", db, log, jobs=1, candidates_only=True)
    assert scan_mod.run_scan(options, stop).status == "interrupted"
    unsized = tmp_path / "unsized.md5"  # would turn --candidates-only off, were it used
    unsized.write_text(f"{hashlib.md5(b'plain').hexdigest()}  plain\n")
    subprocess.run([*MATCHER, "import", str(unsized), "--db", str(db), "--role", "notable"], check=True, capture_output=True)
    refused = run_scan(ev, db, log, "--resume", "--candidates-only", "--list", str(unsized))
    assert refused.returncode == 2 and b"not among the lists of the run" in refused.stderr
    result = run_scan(ev, db, log, "--resume", "--candidates-only")
    assert result.returncode == 1, result.stderr
    (end,) = [r for r in read_log(log) if r["type"] == "end" and r["status"] == "complete"]
    assert end["counts"]["skipped_by_reason"].get("not-candidate") == 2  # plain.bin, b/inner.bin
    assert matched_paths(log) == [str(ev / "hit.bin")]


def test_names_and_arguments_that_are_not_utf8_are_logged_escaped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A list file or an --exclude that is not UTF-8 used to end in a traceback (exit 1,
    the code for a match) with an empty log; it is written as \\xNN text instead."""
    ev, db, notable = _small_tree(tmp_path)
    odd = os.fsdecode(b"l\xff.sha256")
    (tmp_path / odd).write_text(f"{hashlib.sha256(notable).hexdigest()}  hit\n{'0' * 64}  other\n")
    imported = subprocess.run([*MATCHER, "import", str(tmp_path / odd), "--db", str(db), "--name", "odd\udcfe"],
                              capture_output=True, text=True, errors="surrogateescape")
    assert imported.returncode == 0 and "Traceback" not in imported.stderr, imported.stderr
    log = tmp_path / "run.jsonl"
    exclude = os.fsdecode(b"nothing\xfe*")
    proc = subprocess.Popen(
        [*MATCHER, "scan", str(ev), "--examiner", os.fsdecode(b"E\xfe"), "--case", "C", "--db", str(db),
         "--log", str(log), "-q", "--exclude", exclude, "--list", str(tmp_path / odd), "--jobs", "1"],
        stderr=subprocess.PIPE,
    )
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 1 and b"Traceback" not in err, err
    assert verify(log) == 0
    first = read_log(log)[0]
    assert first["examiner"] == "E\\xfe" and "odd\\xfe" in [lst["name"] for lst in first["lists"]]


def test_rematch_takes_the_original_run_from_its_one_verified_read(corpus: tuple[Path, Path, set[str]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The original log is read once, by verify: its first run and last end come from
    those checked bytes (a second read cost as long again and could see other bytes)."""
    from matcher import auditlog
    from matcher import rematch

    ev, db, notable = corpus
    log = tmp_path / "run.jsonl"
    assert run_scan(ev / "d1", db, log).returncode == 1
    report = auditlog.verify(log)
    records = read_log(log)
    assert report.first_run == next(r for r in records if r["type"] == "run")
    assert report.last_end == [r for r in records if r["type"] == "end"][-1]

    def second_read(path: object) -> object:
        raise AssertionError("the original log was read a second time")

    monkeypatch.setattr(auditlog, "read_records", second_read)
    new_log = tmp_path / "rematch.jsonl"
    summary = rematch.run_rematch(
        rematch.RematchOptions(original_log=log, examiner="R", case="C", db=db, log=new_log)
    )
    assert summary.counts.notable == sum(1 for p in notable if "/d1/" in p)
    assert verify(new_log) == 0
    shown = subprocess.run([*MATCHER, "verify", str(log), "--json"], capture_output=True).stdout
    shown = json.loads(shown)
    assert "first_run" not in shown and "last_end" not in shown and shown["intact"] is True


def test_a_resumed_run_counts_bytes_empty_files_and_skips_as_an_uninterrupted_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The resumed end record's totals (bytes, empty files, skips by reason) equal a run's in one go."""
    rng = random.Random(13)
    ev = tmp_path / "ev"
    lines = []
    for d in range(12):
        (ev / f"d{d}").mkdir(parents=True)
        for i in range(600):
            path = ev / f"d{d}" / (f"f{i:03d}.skip" if i % 11 == 0 else f"f{i:03d}")
            data = b"" if i % 7 == 0 else rng.randbytes(rng.randint(1, 8 * 1024))
            path.write_bytes(data)
            if i % 40 == 1:
                lines.append(f"{hashlib.sha256(data).hexdigest()}  f{i}\n")
        for i in range(20):
            (ev / f"d{d}" / f"link{i}").symlink_to(f"f{i:03d}")
    lst = tmp_path / "notable.sha256"
    lst.write_text("".join(lines))
    db = tmp_path / "s.db"
    subprocess.run([*MATCHER, "import", str(lst), "--db", str(db)], check=True, capture_output=True)

    whole = tmp_path / "whole.jsonl"
    assert run_scan(ev, db, whole, "--exclude", "*.skip").returncode == 1
    expected = assert_counts_add_up(whole)
    assert expected["empty"] and expected["skipped_by_reason"] == {"excluded": 660, "symlink": 240}

    from matcher import scan as scan_mod

    def stop(counts: scan_mod.Counts) -> None:
        if counts.files >= 500:  # the walk is then some 4,096 files ahead, not at its end
            os.kill(os.getpid(), signal.SIGINT)

    monkeypatch.setattr(scan_mod, "NOT_CANDIDATE_BATCH", 50)  # skips recorded before the stop
    log = tmp_path / "run.jsonl"
    options = scan_mod.ScanOptions([ev], "E", "C", db, log, jobs=2, excludes=["*.skip"])
    first = scan_mod.run_scan(options, stop)
    assert first.status == "interrupted"
    finished = first.counts
    assert 0 < finished.empty < expected["empty"] and 0 < finished.bytes < expected["bytes"]
    assert 0 < finished.skipped < expected["skipped"]
    result = run_scan(ev, db, log, "--exclude", "*.skip", "--resume")
    assert result.returncode == 1, result.stderr
    assert [r for r in read_log(log) if r["type"] == "run"][-1]["resume"] is True
    counts = assert_counts_add_up(log)
    for key in ("entries", "files", "bytes", "empty", "notable", "known", "unknown", "skipped",
                "skipped_by_reason", "errors"):  # fmt: skip
        assert counts[key] == expected[key], key


@pytest.mark.parametrize(("began", "resumed"), [(None, ""), (None, "   "), ("W 9", "W 9 "), ("W 9 ", "W 9")])
def test_an_authority_that_differs_only_in_blanks_is_the_same(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, began: str | None, resumed: str) -> None:
    import matcher.scan as scan_mod

    ev, db, _ = _small_tree(tmp_path)
    log = tmp_path / "run.jsonl"

    def stop(counts: scan_mod.Counts) -> None:
        os.kill(os.getpid(), signal.SIGINT)

    options = scan_mod.ScanOptions([ev], "E", "C", db, log, jobs=1, authority=began)
    assert scan_mod.run_scan(options, stop).status == "interrupted"
    result = run_scan(ev, db, log, "--resume", "--authority", resumed)
    assert result.returncode == 1, result.stderr
    runs = [r for r in read_log(log) if r["type"] == "run"]
    assert [r["authority"] for r in runs] == [(began or "").strip() or None] * 2


def test_a_resume_keeps_the_notes_on_matches_its_earlier_run_weighed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A known entry giving another SHA-256 of a file than its own was noted in the interrupted
    run's end record, and in no record after the resume: the final end record (and every report)
    lost the caveat, the file counted unknown with no word why."""
    ev, db, _ = _small_tree(tmp_path)
    plain = b"plain"
    known = tmp_path / "k.csv"
    known.write_text(
        f"md5,sha1,sha256\n{hashlib.md5(plain).hexdigest()},{hashlib.sha1(b'x').hexdigest()},"
        f"{hashlib.sha256(b'x').hexdigest()}\n"
    )
    subprocess.run([*MATCHER, "import", str(known), "--db", str(db), "--role", "known"], check=True)
    log = tmp_path / "run.jsonl"
    _interrupted_scan(ev, db, log, monkeypatch)
    said = "1 file(s) matched known list entries that give another digest"
    first = read_log(log)[-1]
    assert any(n.startswith(said) for n in first["notes"]), first["notes"]  # weighed in run 1
    assert run_scan(ev, db, log, "--resume").returncode == 1
    last = read_log(log)[-1]
    assert last["status"] == "complete" and any(n.startswith(said) for n in last["notes"]), last
    assert verify(log) == 0


def test_a_refused_resume_leaves_a_torn_log_untouched(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The torn last line is set aside only once the resume is known to be the same scan."""
    ev, db, _ = _small_tree(tmp_path)
    log = tmp_path / "run.jsonl"
    _interrupted_scan(ev, db, log, monkeypatch)
    lines = log.read_bytes().splitlines(keepends=True)
    log.write_bytes(b"".join(lines[:-1]) + lines[-1][:25])  # the end record torn
    before = log.read_bytes()
    result = run_scan(ev, db, log, "--resume", "--case", "OTHER")
    assert result.returncode == 2 and b"Cannot resume" in result.stderr
    assert log.read_bytes() == before
    assert not list(tmp_path.glob("run.jsonl.torn-*"))
    assert run_scan(ev, db, log, "--resume").returncode == 1  # the same scan: set aside, resumed
    assert list(tmp_path.glob("run.jsonl.torn-*")) and verify(log) == 0


@pytest.mark.parametrize("ends", [b"\r", b"\r\n"], ids=["CR", "CR LF last line"])
def test_a_resume_of_a_log_whose_line_ends_were_converted_changes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, ends: bytes
) -> None:
    """A log copied through a text tool (line ends made CR) read as one torn line: the resume
    moved the whole log to a side file and wrote a new log in its place."""
    ev, db, _ = _small_tree(tmp_path)
    log = tmp_path / "run.jsonl"
    _interrupted_scan(ev, db, log, monkeypatch)
    lines = log.read_bytes().splitlines()
    converted = b"\r".join(lines) + b"\r" if ends == b"\r" else b"\n".join(lines[:-1]) + b"\n" + lines[-1] + b"\r"
    log.write_bytes(converted)
    result = run_scan(ev, db, log, "--resume")
    assert result.returncode == 2 and b"line ends were converted" in result.stderr, result.stderr
    assert log.read_bytes() == converted and not list(tmp_path.glob("run.jsonl.torn-*"))


@pytest.mark.parametrize("content", [b"hi", b"notes without a line end", b"\x00\x01"])
def test_a_resume_into_a_file_that_is_no_log_changes_nothing(tmp_path: Path, content: bytes) -> None:
    """Its bytes look like a torn first line; setting them aside would empty the file and write a log in it."""
    ev, db, _ = _small_tree(tmp_path)
    notes = tmp_path / "notes.txt"
    notes.write_bytes(content)
    result = run_scan(ev, db, notes, "--resume")
    assert result.returncode == 2 and b"is not a match log" in result.stderr
    assert notes.read_bytes() == content and not list(tmp_path.glob("notes.txt.*"))


def test_a_fifo_given_as_the_log_to_resume_is_refused_not_read(corpus: tuple[Path, Path, set[str]], tmp_path: Path) -> None:
    ev, db, _ = corpus
    fifo = tmp_path / "log.jsonl"
    os.mkfifo(fifo)
    result = run_scan(ev / "d4", db, fifo, "--resume")
    assert result.returncode == 2, result.stderr
    assert b"is not a regular file" in result.stderr


@pytest.mark.parametrize("how", ["emptied", "another log"])
def test_a_resume_refuses_an_inventory_that_is_not_its_logs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, how: str) -> None:
    """A resume skips what its inventory calls finished: another log's inventory (or a log
    emptied beside its inventory) would have skipped the notable file unread, exit 1, 0 matches."""
    ev, db, _ = _small_tree(tmp_path)
    log = tmp_path / "run.jsonl"
    result = run_scan(ev, db, log)
    assert result.returncode == 1, result.stderr
    inventory = tmp_path / "run.jsonl.inventory.db"
    if how == "emptied":
        log.write_bytes(b"")
        args = ["--log", str(log)]
    else:
        _interrupted_scan(ev, db, tmp_path / "other.jsonl", monkeypatch)
        args = ["--log", str(tmp_path / "other.jsonl"), "--inventory", str(inventory)]
    before = inventory.read_bytes()
    refused = subprocess.run(
        [*MATCHER, "scan", str(ev), "--examiner", "E", "--case", "C", "--db", str(db), "-q", "--resume", *args],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert refused.returncode == 2, refused.stderr
    assert "Cannot resume" in refused.stderr and str(inventory) in refused.stderr
    assert ("holds no record" if how == "emptied" else "belongs to another log") in refused.stderr
    assert inventory.read_bytes() == before


def test_a_log_emptied_before_its_first_record_resumes_as_a_new_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Killed between creating the log and its run record (or a disk full there): nothing was
    read, the inventory is empty, and the resume runs the whole scan; its inventory is then tied
    to the log, and an inventory made before that tie resumes as before (and is tied then)."""
    ev, db, _ = _small_tree(tmp_path)
    log = tmp_path / "run.jsonl"
    log.write_bytes(b"")
    result = run_scan(ev, db, log, "--resume")
    assert result.returncode == 1, result.stderr
    assert [os.path.basename(p) for p in matched_paths(log)] == ["hit.bin"]
    inventory = sqlite3.connect(tmp_path / "run.jsonl.inventory.db")
    first = hashlib.sha256(log.read_bytes().split(b"\n")[0]).hexdigest()
    assert inventory.execute("SELECT value FROM meta WHERE key = 'log_origin'").fetchone() == (first,)
    inventory.close()
    # An inventory from before the tie (no origin noted) resumes, and is tied by the resume.
    # (Made so, not edited after its run: its end record seals it as it is.)
    from matcher.inventory import Inventory

    log2 = tmp_path / "old.jsonl"
    with monkeypatch.context() as older:
        older.setattr(Inventory, "set_origin", lambda self, origin: None)
        _interrupted_scan(ev, db, log2, monkeypatch)
    resumed = run_scan(ev, db, log2, "--resume")
    assert resumed.returncode == 1, resumed.stderr
    old = sqlite3.connect(tmp_path / "old.jsonl.inventory.db")
    first = hashlib.sha256(log2.read_bytes().split(b"\n")[0]).hexdigest()
    assert old.execute("SELECT value FROM meta WHERE key = 'log_origin'").fetchone() == (first,)
    old.close()
    assert verify(log) == 0 and verify(log2) == 0


def test_an_inventory_that_cannot_be_written_at_the_end_stops_with_the_resume_hint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Its last batch failing (disk full) gave a bare "Cannot write inventory" and no way on;
    the log now closes without an end record (which would seal a short inventory), says so,
    and --resume finishes the scan."""
    import matcher.scan as scan_mod
    from matcher.errors import StoreError
    from matcher.inventory import Inventory

    ev, db, _ = _small_tree(tmp_path)
    log = tmp_path / "run.jsonl"

    def full(self: Inventory) -> None:
        raise StoreError(f"Cannot write inventory {self.path}: database or disk is full")

    with monkeypatch.context() as patch:
        patch.setattr(Inventory, "close", full)
        with pytest.raises(scan_mod.ScanAborted) as caught:
            scan_mod.run_scan(scan_mod.ScanOptions([ev], "E", "C", db, log, jobs=1))
    message = str(caught.value)
    assert "database or disk is full" in message and "continue with --resume" in message
    assert read_log(log)[-1]["type"] != "end" and verify(log) == 1
    resumed = run_scan(ev, db, log, "--resume")
    assert resumed.returncode == 1, resumed.stderr
    assert verify(log) == 0
    assert_counts_add_up(log)


@pytest.mark.parametrize("signed_first", [True, False])
def test_a_resume_keeps_the_signing_of_its_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, signed_first: bool) -> None:
    """A signed run resumed without --sign-key wrote an unsigned end record (and the reverse),
    exit 0; `verify --public-key` then failed the examiner's own log. Now refused, log untouched."""
    import matcher.scan as scan_mod

    ev, db, _ = _small_tree(tmp_path)
    key, pub = tmp_path / "k.pem", tmp_path / "k.pub"
    assert subprocess.run([*MATCHER, "keygen", str(key), str(pub)], capture_output=True).returncode == 0
    log = tmp_path / "run.jsonl"

    def stop(counts: scan_mod.Counts) -> None:
        os.kill(os.getpid(), signal.SIGINT)

    first = scan_mod.ScanOptions([ev], "E", "C", db, log, jobs=1, sign_key=key if signed_first else None)
    assert scan_mod.run_scan(first, stop).status == "interrupted"
    before = log.read_bytes()
    other = [] if signed_first else ["--sign-key", str(key)]
    refused = run_scan(ev, db, log, "--resume", *other)
    assert refused.returncode == 2 and b"--sign-key (a log is signed throughout" in refused.stderr, refused.stderr
    assert log.read_bytes() == before
    same = ["--sign-key", str(key)] if signed_first else []
    assert run_scan(ev, db, log, "--resume", *same).returncode == 1
    check = subprocess.run([*MATCHER, "verify", str(log), *(["--public-key", str(pub)] if signed_first else [])],
                           capture_output=True)  # fmt: skip
    assert check.returncode == 0, check.stderr


def test_a_rematch_of_a_candidates_only_run_says_which_files_it_cannot_match(tmp_path: Path) -> None:
    """The files such a run never read are carried over as skipped; lists imported since may
    name them, and the re-match said nothing of it (and its summary gave the old lists' reason)."""
    ev, db, notable = _small_tree(tmp_path)
    sized = tmp_path / "sized.csv"
    sized.write_text(f"sha256,size\n{hashlib.sha256(notable).hexdigest()},{len(notable)}\n")
    db2 = tmp_path / "s2.db"
    assert subprocess.run([*MATCHER, "import", str(sized), "--db", str(db2), "--role", "notable"]).returncode == 0
    log = tmp_path / "run.jsonl"
    assert run_scan(ev, db2, log, "--candidates-only").returncode == 1
    later = tmp_path / "later.md5"
    later.write_text(f"{hashlib.md5(b'plain').hexdigest()}  plain\n")
    assert subprocess.run([*MATCHER, "import", str(later), "--db", str(db2), "--role", "notable"]).returncode == 0
    new_log = tmp_path / "re.jsonl"
    result = subprocess.run([*MATCHER, "rematch", str(log), "--db", str(db2), "--examiner", "R", "--case", "C",
                             "--log", str(new_log)], capture_output=True, text=True)  # fmt: skip
    assert result.returncode == 1, result.stderr
    notes = read_log(new_log)[-1]["notes"]
    assert any("the original scan ran with --candidates-only: 2 files were never read" in n for n in notes), notes
    assert "scan the evidence again" in result.stderr


def test_a_resume_refuses_a_log_older_than_its_inventory(tmp_path: Path) -> None:
    """The log cut back to its run record (or an older copy restored) beside a newer inventory:
    the resume said complete, notable 1, with no match record in the log, which failed verify."""
    ev, db, _ = _small_tree(tmp_path)
    log = tmp_path / "run.jsonl"
    result = run_scan(ev, db, log)
    assert result.returncode == 1, result.stderr
    log.write_bytes(log.read_bytes().split(b"\n")[0] + b"\n")  # the run record alone
    inventory = tmp_path / "run.jsonl.inventory.db"
    before = inventory.read_bytes()
    refused = run_scan(ev, db, log, "--resume")
    assert refused.returncode == 2, refused.stderr
    assert b"Cannot resume" in refused.stderr and b"no match record" in refused.stderr
    assert b"hit.bin" in refused.stderr
    assert inventory.read_bytes() == before


def test_a_rematch_log_cut_short_is_not_continued_as_a_scan(tmp_path: Path) -> None:
    """Before: `scan --resume` continued a killed re-match's log with any options (its run
    record names none to compare), and the log verified, reading as a re-match of the original."""
    ev, db, _ = _small_tree(tmp_path)
    log = tmp_path / "run.jsonl"
    assert run_scan(ev, db, log).returncode == 1
    again = tmp_path / "rematch.jsonl"
    done = subprocess.run([*MATCHER, "rematch", str(log), "--db", str(db), "--examiner", "R", "--case", "C",
                           "--log", str(again)], capture_output=True, timeout=120)  # fmt: skip
    assert done.returncode == 1, done.stderr
    lines = again.read_bytes().splitlines(keepends=True)
    again.write_bytes(b"".join(lines[:-1]))  # killed before its end record
    said = subprocess.run([*MATCHER, "verify", str(again)], capture_output=True, timeout=120)
    assert said.returncode == 1 and b"a re-match has no --resume" in said.stderr + said.stdout
    before = again.read_bytes()
    refused = run_scan(ev, db, again, "--resume", "--max-size", "1")
    assert refused.returncode == 2, refused.stderr
    assert b"re-match has no --resume" in refused.stderr
    assert again.read_bytes() == before


@pytest.mark.parametrize("finished", [True, False], ids=["complete", "interrupted"])
def test_a_log_whose_line_feeds_were_lost_is_refused_unchanged(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, finished: bool
) -> None:
    """Every line feed turned to CR (a copy through a text tool) reads as one torn line: the
    resume once set it aside (emptying the log), and only then refused, the inventory
    having entries: now refused with the log as it was."""
    ev, db, _ = _small_tree(tmp_path)
    log = tmp_path / "run.jsonl"
    if finished:
        assert run_scan(ev, db, log).returncode == 1
    else:
        _interrupted_scan(ev, db, log, monkeypatch)
    damaged = log.read_bytes().replace(b"\n", b"\r")
    log.write_bytes(damaged)
    result = run_scan(ev, db, log, "--resume")
    assert result.returncode == 2, result.stderr
    assert b"line ends were converted" in result.stderr, result.stderr
    assert log.read_bytes() == damaged
    assert not list(tmp_path.glob("run.jsonl.torn-*"))


def test_a_resume_refuses_an_inventory_changed_since_the_interrupted_run_sealed_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A resume takes its inventory's rows as finished: a row added since the seal (the
    notable file called read and unknown) had that file never read, and the resumed log
    said complete, notable 0, and verified."""
    ev, db, notable = _small_tree(tmp_path)
    log = tmp_path / "run.jsonl"
    _interrupted_scan(ev, db, log, monkeypatch)
    inventory = tmp_path / "run.jsonl.inventory.db"
    sealed = inventory.read_bytes()
    hit = os.fsencode(ev / "hit.bin")
    with contextlib.closing(sqlite3.connect(inventory)) as conn, conn:
        conn.execute("DELETE FROM entries WHERE path = ?", [hit])
        conn.execute(
            "INSERT INTO entries (path, kind, size, mtime_ns, sha256, verdict, run) "
            "VALUES (?, 'file', ?, ?, ?, 'unknown', 0)",
            [hit, len(notable), (ev / "hit.bin").stat().st_mtime_ns, hashlib.sha256(notable).digest()],
        )
    changed = inventory.read_bytes()
    refused = run_scan(ev, db, log, "--resume")
    assert refused.returncode == 2, refused.stderr
    assert b"Cannot resume" in refused.stderr and b"sealed" in refused.stderr
    assert inventory.read_bytes() == changed  # the refusal wrote nothing
    inventory.write_bytes(sealed)  # restored as sealed: the resume goes on
    resumed = run_scan(ev, db, log, "--resume")
    assert resumed.returncode == 1, resumed.stderr
    assert subprocess.run([*MATCHER, "verify", str(log)], capture_output=True).returncode == 0


def test_a_resume_stopped_before_its_run_record_leaves_an_older_inventory_as_sealed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An inventory made before origins were noted got its origin written while the resume was
    checked: a resume stopped before its run record (a full disk) left it changed, and every
    later resume was refused as not what the log sealed."""
    import matcher.scan as scan_mod
    from matcher.errors import LogWriteError
    from matcher.inventory import Inventory

    ev, db, _ = _small_tree(tmp_path)
    log = tmp_path / "run.jsonl"
    with monkeypatch.context() as older:
        older.setattr(Inventory, "set_origin", lambda self, origin: None)  # no origin noted
        _interrupted_scan(ev, db, log, monkeypatch)
    inventory = tmp_path / "run.jsonl.inventory.db"
    before = inventory.read_bytes()

    def full(*args: object, **kwargs: object) -> None:
        raise LogWriteError("Log could not be written (ENOSPC)")

    with monkeypatch.context() as stopped:
        stopped.setattr(scan_mod, "_append_run_record", full)
        with pytest.raises(LogWriteError):
            scan_mod.run_scan(scan_mod.ScanOptions([ev], "E", "C", db, log, jobs=1, resume=True))
    assert inventory.read_bytes() == before
    resumed = run_scan(ev, db, log, "--resume")
    assert resumed.returncode == 1, resumed.stderr
    assert verify(log) == 0


def test_a_resume_whose_inventory_is_missing_reads_every_entry_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the seal asked, a missing inventory (made anew, empty) was refused as 'changed
    since', and the empty file left behind refused every later resume; it holds nothing to
    trust, so every entry is read again, as before, and the end record says so."""
    ev, db, _ = _small_tree(tmp_path)
    log = tmp_path / "run.jsonl"
    _interrupted_scan(ev, db, log, monkeypatch)
    (tmp_path / "run.jsonl.inventory.db").unlink()
    resumed = run_scan(ev, db, log, "--resume")
    assert resumed.returncode == 1, resumed.stderr
    end = read_log(log)[-1]
    assert any("holds nothing of the run this one continues (it was missing" in n for n in end["notes"])
    assert end["counts"]["notable"] == 1 and end["counts"]["files"] == 3
    assert verify(log) == 0


def test_a_rematch_carries_the_original_notes_on_its_files_and_only_those(tmp_path: Path) -> None:
    """What the original said of the files it hashed still holds of their digests (a file named
    as a disk image was hashed as a file, not walked); the re-match's end record said none of
    it. Its notes on its own lists and run (a list already imported) are not carried."""
    ev, db, _ = _small_tree(tmp_path)
    (ev / "b" / "disk.E01").write_bytes(b"not walked")
    lst = tmp_path / "n.sha256"
    log = tmp_path / "run.jsonl"
    assert run_scan(ev, db, log, "--list", str(lst)).returncode == 1
    notes = read_log(log)[-1]["notes"]
    assert any("already imported" in n for n in notes), notes
    [image_note] = [n for n in notes if "named as disk images" in n]
    new_log = tmp_path / "rematch.jsonl"
    done = subprocess.run([*MATCHER, "rematch", str(log), "--db", str(db), "--examiner", "R", "--case", "C",
                           "--log", str(new_log)], capture_output=True, text=True, timeout=120)  # fmt: skip
    assert done.returncode == 1, done.stderr
    carried = [n for n in read_log(new_log)[-1]["notes"] if n.startswith("the original scan noted: ")]
    assert carried == [f"the original scan noted: {image_note}"], carried
    # A re-match of the re-match carries it on, said once.
    again = tmp_path / "again.jsonl"
    done = subprocess.run([*MATCHER, "rematch", str(new_log), "--db", str(db), "--examiner", "R", "--case", "C",
                           "--log", str(again)], capture_output=True, text=True, timeout=120)  # fmt: skip
    assert done.returncode == 1, done.stderr
    assert [n for n in read_log(again)[-1]["notes"] if image_note in n] == carried


@pytest.mark.parametrize("given", ["fifo", "/dev/null"])
def test_an_original_inventory_that_is_not_a_regular_file_is_said_so(tmp_path: Path, given: str) -> None:
    """Before: "was not found (looked for X); pass --original-inventory", X given with it and there."""
    ev, db, _ = _small_tree(tmp_path)
    log = tmp_path / "run.jsonl"
    assert run_scan(ev, db, log).returncode == 1
    special = Path(given) if given.startswith("/") else tmp_path / given
    if not special.exists():
        os.mkfifo(special)
    new_log = tmp_path / "rematch.jsonl"
    done = subprocess.run([*MATCHER, "rematch", str(log), "--db", str(db), "--examiner", "R", "--case", "C",
                           "--log", str(new_log), "--original-inventory", str(special)],
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert f"{special} given with --original-inventory is not a regular file" in done.stderr
    assert "not found" not in done.stderr and not new_log.exists()


def test_a_rematch_for_another_case_says_whose_scan_it_matched(tmp_path: Path) -> None:
    """A new case may re-use an old scan, so it is not refused (as a resume for another case is);
    but its end record said nothing of the case and examiner the evidence was scanned for."""
    ev, db, _ = _small_tree(tmp_path)
    log = tmp_path / "run.jsonl"
    assert run_scan(ev, db, log).returncode == 1  # case C, examiner E
    said = "the original scan was made for case C by examiner E; this re-match is for case NEW-7"
    for case, noted in (("NEW-7", True), ("C", False)):
        new_log = tmp_path / f"re-{case}.jsonl"
        done = subprocess.run([*MATCHER, "rematch", str(log), "--db", str(db), "--examiner", "R",
                               "--case", case, "--log", str(new_log)],
                              capture_output=True, text=True, timeout=120)  # fmt: skip
        assert done.returncode == 1, done.stderr
        notes = read_log(new_log)[-1]["notes"]
        assert (said in notes) is noted, notes
        assert (said in done.stderr) is noted
        assert sum("original scan was made for" in n for n in notes) == noted, notes
    # A re-match of that re-match names the scan itself (it named the first re-match's).
    again = tmp_path / "re-again.jsonl"
    done = subprocess.run([*MATCHER, "rematch", str(tmp_path / "re-NEW-7.jsonl"), "--db", str(db),
                           "--examiner", "S", "--case", "THIRD", "--log", str(again)],
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert done.returncode == 1, done.stderr
    notes = read_log(again)[-1]["notes"]
    assert "the original scan was made for case C by examiner E; this re-match is for case THIRD" in notes


@pytest.mark.parametrize("resume", [False, True])
def test_a_file_that_is_no_log_given_as_log_is_named_as_such_and_left_as_it_was(
    tmp_path: Path, resume: bool
) -> None:
    """Before: case notes given as --log by mistake were 'already exists. Use --resume', and
    --resume then said 'the log does not verify: line 1: not valid JSON'."""
    ev, db, _ = _small_tree(tmp_path)
    notes = tmp_path / "case-notes.txt"
    notes.write_bytes(b"2026-12-01 seized laptop, item 1\nchain of custody: sealed bag 44\n")
    before = notes.read_bytes()
    done = run_scan(ev, db, notes, *(["--resume"] if resume else []))
    assert done.returncode == 2, done.stderr
    assert b"is not a match log" in done.stderr
    assert (b"Check the --log path" if resume else b"choose another --log") in done.stderr
    assert b"--resume to continue" not in done.stderr and b"not valid JSON" not in done.stderr
    assert notes.read_bytes() == before
    assert not list(tmp_path.glob("case-notes.txt?*"))  # no inventory or side file beside it


@pytest.mark.parametrize("copy", ["utf-16", "bom"])
def test_a_log_copied_through_a_text_tool_is_named_as_such_on_resume(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, copy: str
) -> None:
    """Before: a UTF-16 copy of a log was 'not a match log' on resume (and a BOM one 'not valid
    JSON'), where verify names the re-encoding; nothing is changed."""
    ev, db, _ = _small_tree(tmp_path)
    log = tmp_path / "run.jsonl"
    _interrupted_scan(ev, db, log, monkeypatch)
    original = log.read_bytes()
    log.write_bytes(original.decode().encode("utf-16") if copy == "utf-16" else b"\xef\xbb\xbf" + original)
    before = log.read_bytes()
    done = run_scan(ev, db, log, "--resume")
    assert done.returncode == 2, done.stderr
    said = b"the file is in UTF-16" if copy == "utf-16" else b"UTF-8 byte order mark"
    assert said in done.stderr and b"Resume from the original log" in done.stderr, done.stderr
    assert log.read_bytes() == before
    new = run_scan(ev, db, log)  # a new scan to the same log: never sent to --resume
    assert new.returncode == 2 and said in new.stderr and b"resume the original log" in new.stderr
    assert b"Use --resume" not in new.stderr and log.read_bytes() == before


def test_a_new_scan_to_a_complete_log_is_not_sent_to_resume(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before: `scan --log DONE` said "Use --resume to continue it", and --resume then said the
    log ends with a complete run, nothing to resume. An interrupted log is still sent there."""
    ev, db, _ = _small_tree(tmp_path)
    done_log = tmp_path / "done.jsonl"
    assert run_scan(ev, db, done_log).returncode in (0, 1)
    again = run_scan(ev, db, done_log)
    assert again.returncode == 2 and b"ends complete (a finished scan or re-match)" in again.stderr, again.stderr
    assert b"Use --resume" not in again.stderr
    cut = tmp_path / "cut.jsonl"
    _interrupted_scan(ev, db, cut, monkeypatch)
    retry = run_scan(ev, db, cut)
    assert retry.returncode == 2 and b"Use --resume to continue it" in retry.stderr, retry.stderr


def test_a_rematch_names_the_lists_of_the_original_run_that_are_gone(tmp_path: Path) -> None:
    """Before: a re-match after the original's notable list was removed said notable 0, its
    notes silent of the list gone: it read as the files cleared."""
    ev, db, _ = _small_tree(tmp_path)
    log = tmp_path / "run.jsonl"
    assert run_scan(ev, db, log).returncode == 1
    other = tmp_path / "k.sha256"
    other.write_text(f"{hashlib.sha256(b'plain').hexdigest()}  plain\n")
    subprocess.run([*MATCHER, "import", str(other), "--db", str(db), "--role", "known"], check=True, capture_output=True)
    subprocess.run([*MATCHER, "remove", "n.sha256", "--db", str(db)], check=True, capture_output=True)
    new_log = tmp_path / "rematch.jsonl"
    result = subprocess.run([*MATCHER, "rematch", str(log), "--db", str(db), "--examiner", "R", "--case", "C",
                             "--log", str(new_log), "--json"], capture_output=True)  # fmt: skip
    assert result.returncode == 0, result.stderr
    said = ("list 'n.sha256' (notable), which the original scan matched against, is no longer in "
            "the store: its entries are not matched here")  # fmt: skip
    assert said in json.loads(result.stdout)["notes"] and said in read_log(new_log)[-1]["notes"]


def test_every_report_names_a_list_imported_with_invalid_lines_left_out(tmp_path: Path) -> None:
    """Before: the run record kept a list's skipped_invalid count, but no report said the list
    lacked entries (a file one of them names is never matched)."""
    ev, db, notable = _small_tree(tmp_path)
    bad = tmp_path / "bad.sha256"
    bad.write_text(f"{hashlib.sha256(notable).hexdigest()}  hit\nnot a digest line\n")
    fresh = tmp_path / "fresh.db"
    subprocess.run([*MATCHER, "import", str(bad), "--db", str(fresh), "--skip-invalid"], check=True, capture_output=True)
    log = tmp_path / "run.jsonl"
    assert run_scan(ev, fresh, log).returncode == 1
    said = "list 'bad.sha256' was imported with 1 invalid line(s) left out (--skip-invalid)"
    assert any(n.startswith(said) for n in read_log(log)[-1]["notes"])
    for fmt in ("csv", "html", "json", "dfxml"):
        out = tmp_path / f"r.{fmt}"
        done = subprocess.run([*MATCHER, "report", str(log), "--format", fmt, "-o", str(out)], capture_output=True)
        assert done.returncode == 0, done.stderr
        assert "invalid line(s) left out" in out.read_text(), fmt


def test_the_new_evidence_notes_are_carried_into_a_rematch() -> None:
    """The notes this session added on the evidence (a root named twice; a partition past the
    image's end) still hold of the files a re-match matches: carried, as their kin are."""
    from matcher.rematch import _CARRIED

    for note in ("evidence ev is named twice: scanned once",
                 "disk.raw: partition 2 (Linux) starts at byte 69206016, past the image's end "
                 "(68157440 bytes): the image is cut short (or its table is wrong); none of its "
                 "files is read",
                 "evidence ev/d lies inside evidence ev: walked as a root of its own, --exclude "
                 "patterns matched against paths below it (the walk of ev leaves it to that)"):  # fmt: skip
        assert _CARRIED.match(note), note
    assert not _CARRIED.match("--candidates-only: 3 files not hashed (their size was no notable entry's in the scan's lists)")


def _cut_end_and_forge(log: Path, path: str, digests: dict[str, str], size: int, list_name: str = "n.sha256") -> None:
    """Drop the log's end record (a crash before it) and append a match record, chained."""
    from matcher.signing import canonical_bytes

    lines = log.read_bytes().split(b"\n")[:-1][:-1]
    last = json.loads(lines[-1])
    forged = {
        "seq": last["seq"] + 1, "type": "match", "time": last["time"], "prev": hashlib.sha256(lines[-1]).hexdigest(),
        "path": path, "size": size, "mtime": "2026-01-01T00:00:00.000000Z", "digests": digests,
        "matches": [{"list": list_name, "role": "notable", "algorithm": "sha256",
                     "entry": {"size": None, "name": "hit", "id": None, "label": None}}],
    }  # fmt: skip
    log.write_bytes(b"\n".join([*lines, canonical_bytes(forged)]) + b"\n")


def _digests_of(data: bytes) -> dict[str, str]:
    return {a: hashlib.new(a, data).hexdigest() for a in ("md5", "sha1", "sha256")}


@pytest.mark.parametrize(
    "forgery",
    ["digests in no list", "a path under no root", "a file that reads otherwise"],
)
def test_a_match_record_added_after_a_crash_is_never_adopted_and_signed(tmp_path: Path, forgery: str) -> None:
    """A resume took in a match record planted after the crash (a file that is not there, digests
    in no list) without a check, counted it notable and signed the end record over it. A record
    with no inventory row must name digests its lists hold, lie under a root, and a plain file
    still there must read as it says; otherwise the resume is refused, the log left as it was."""
    ev, db, notable = _small_tree(tmp_path)
    log = tmp_path / "run.jsonl"
    assert run_scan(ev, db, log).returncode == 1
    path, digests = {
        "digests in no list": (str(ev / "PLANTED.jpg"), {"md5": "0" * 32, "sha1": "0" * 40, "sha256": "f" * 64}),
        "a path under no root": (str(tmp_path / "elsewhere.jpg"), _digests_of(notable)),
        "a file that reads otherwise": (str(ev / "plain.bin"), _digests_of(notable)),
    }[forgery]
    _cut_end_and_forge(log, path, digests, len(notable))
    before = log.read_bytes()
    result = run_scan(ev, db, log, "--resume")
    assert result.returncode == 2, result.stderr
    assert b"that this scan cannot have written" in result.stderr and b"Traceback" not in result.stderr
    assert log.read_bytes() == before


def test_a_match_record_of_a_file_beside_a_folder_root_is_never_adopted(tmp_path: Path) -> None:
    """`ROOT!member` names a member of an image or archive given as the root. Of a folder root
    it is no path under it: a record planted for `ev!x`, a file beside `ev` (outside the
    evidence) holding the notable content, was taken as under the root, read again, counted
    notable and signed over."""
    ev, db, notable = _small_tree(tmp_path)
    log = tmp_path / "run.jsonl"
    assert run_scan(ev, db, log).returncode == 1
    beside = tmp_path / "ev!x"
    beside.write_bytes(notable)
    _cut_end_and_forge(log, str(beside), _digests_of(notable), len(notable))
    before = log.read_bytes()
    result = run_scan(ev, db, log, "--resume")
    assert result.returncode == 2, result.stderr
    assert b"lies under no evidence root" in result.stderr and b"Traceback" not in result.stderr
    assert log.read_bytes() == before


@pytest.mark.parametrize("root", ["a plain file", "an archive, with --archives"])
def test_a_match_record_of_a_file_beside_a_file_root_is_adopted_only_in_an_archive_or_image(tmp_path: Path, root: str) -> None:
    """`ROOT!member` was taken as under any root that is no folder: beside a plain file root
    `ev.bin` (hashed as one file, nothing inside it walked), a record planted for `ev.bin!x`, a
    file outside the evidence holding the notable content, was read again, counted notable and
    signed over. A member of an archive root walked with --archives is still counted."""
    import zipfile

    _, db, notable = _small_tree(tmp_path)
    log = tmp_path / "run.jsonl"
    archives = root != "a plain file"
    ev = tmp_path / ("ev.zip" if archives else "ev.bin")
    if archives:
        with zipfile.ZipFile(ev, "w") as zf:
            zf.writestr("hit.bin", notable)
    else:
        ev.write_bytes(notable)
    extra = ("--archives",) if archives else ()
    assert run_scan(ev, db, log, *extra).returncode == 1
    beside = tmp_path / f"{ev.name}!x"
    beside.write_bytes(notable)
    _cut_end_and_forge(log, str(beside), _digests_of(notable), len(notable))
    before = log.read_bytes()
    result = run_scan(ev, db, log, "--resume", *extra)
    assert b"Traceback" not in result.stderr, result.stderr
    if archives:
        assert result.returncode == 1, result.stderr
        assert verify(log) == 0
        return
    assert result.returncode == 2, result.stderr
    assert b"lies under no evidence root" in result.stderr
    assert log.read_bytes() == before


def test_a_match_record_of_a_file_gone_since_is_counted_and_said_in_the_end_record(tmp_path: Path) -> None:
    """A record whose digests the run's lists hold, under a root, with no file there now, may be
    a crash's (the file deleted since) or a planted one: it counts, as before, and the end record
    names it, so that a reviewer sees the match rests on the record alone."""
    ev, db, notable = _small_tree(tmp_path)
    log = tmp_path / "run.jsonl"
    assert run_scan(ev, db, log).returncode == 1
    _cut_end_and_forge(log, str(ev / "PLANTED.jpg"), _digests_of(notable), len(notable))
    result = run_scan(ev, db, log, "--resume")
    assert result.returncode == 1, result.stderr
    assert verify(log) == 0
    end = [r for r in read_log(log) if r["type"] == "end"][-1]
    said = [n for n in end["notes"] if "counted from the record alone" in n]
    assert said and "PLANTED.jpg" in said[0], end["notes"]
    assert end["counts"]["notable"] == 2


def test_a_resume_checks_the_signatures_its_key_made(tmp_path: Path) -> None:
    """A signed end record altered (its chain and self digest recomputed, the old signature
    kept) was resumed, and a new end signed over a log that can never verify with that key."""
    ev, db, _ = _small_tree(tmp_path)
    key, pub = tmp_path / "k.pem", tmp_path / "k.pub"
    assert subprocess.run([*MATCHER, "keygen", str(key), str(pub)], capture_output=True).returncode == 0
    log = tmp_path / "run.jsonl"
    crash = (
        "import os, signal, sys\n"
        "import matcher.scan as s\n"
        "opts = s.ScanOptions([sys.argv[1]], 'E', 'C', sys.argv[2], sys.argv[3], jobs=1, sign_key=sys.argv[4])\n"
        "s.run_scan(opts, lambda counts: os.kill(os.getpid(), signal.SIGTERM))\n"
    )
    subprocess.run([sys.executable, "-c", crash, str(ev), str(db), str(log), str(key)], check=True, capture_output=True)
    records = [json.loads(line) for line in log.read_bytes().splitlines()]
    assert records[-1]["type"] == "end" and records[-1]["status"] == "interrupted"
    end = records[-1]
    end["duration_s"] = 99.0
    log.write_bytes(rechain(records, len(records) - 1))
    before = log.read_bytes()
    result = run_scan(ev, db, log, "--resume", "--sign-key", str(key))
    assert result.returncode == 2, result.stderr
    assert b"signature does not verify" in result.stderr, result.stderr
    assert log.read_bytes() == before


def test_a_match_record_past_path_max_with_no_inventory_row_is_read_again(tmp_path: Path) -> None:
    """The resume's check of a match record with no inventory row looked at its file with
    os.lstat, which fails past PATH_MAX: the record went unchecked, said to be of a file not
    there, although the scan itself reads such paths."""
    import sqlite3

    from test_roots import _deep_file

    ev = tmp_path / "ev"
    ev.mkdir()
    names = [f"d{i:02d}_" + "x" * 90 for i in range(45)]
    _deep_file(ev, names, "deepfile")
    db, log = _scan_and_lose_the_notable_row(ev, tmp_path)
    result = run_scan(ev, db, log, "--resume")
    assert result.returncode == 1, result.stderr
    end = read_log(log)[-1]
    assert not [n for n in end["notes"] if "counted from the record alone" in n], end["notes"]
    conn = sqlite3.connect(f"{log}.inventory.db")
    (detail,) = conn.execute("SELECT detail FROM entries WHERE verdict = 'notable'").fetchone()
    conn.close()
    assert "read again, the same digests" in detail


def _scan_and_lose_the_notable_row(ev: Path, tmp_path: Path) -> tuple[Path, Path]:
    """Scan `ev` (whose one notable file holds b"secret\\n") to a log, then undo what a crash
    between the log's sync and the inventory's commit loses: the end record and the notable
    row. Returns (store, log)."""
    import sqlite3

    listed = tmp_path / "n.sha256"
    listed.write_text(f"{hashlib.sha256(b'secret' + bytes([10])).hexdigest()}  s\n")
    db = tmp_path / "s.db"
    subprocess.run([*MATCHER, "import", str(listed), "--db", str(db)], check=True, capture_output=True)
    log = tmp_path / "run.jsonl"
    assert run_scan(ev, db, log).returncode == 1
    log.write_bytes(b"".join(log.read_bytes().splitlines(keepends=True)[:-1]))
    conn = sqlite3.connect(f"{log}.inventory.db")
    conn.execute("DELETE FROM entries WHERE verdict = 'notable'")
    conn.commit()
    conn.close()
    return db, log


def _resumed_after_a_lost_row(tmp_path: Path, touched_ns: int | None = None) -> tuple[Path, int, str]:
    """A notable file (mtime ...123_456_789 ns) whose inventory row a crash lost after its
    match record was logged, then the resume: (the file, its row's mtime_ns, its detail).
    `touched_ns`: the file's mtime set to it between the crash and the resume."""
    import sqlite3

    ev = tmp_path / "ev"
    ev.mkdir()
    secret = ev / "secret.bin"
    secret.write_bytes(b"secret\n")
    os.utime(secret, ns=(1_700_000_000_123_456_789, 1_700_000_000_123_456_789))
    db, log = _scan_and_lose_the_notable_row(ev, tmp_path)
    if touched_ns is not None:
        os.utime(secret, ns=(touched_ns, touched_ns))
    assert run_scan(ev, db, log, "--resume").returncode == 1
    conn = sqlite3.connect(f"{log}.inventory.db")
    mtime_ns, detail = conn.execute(
        "SELECT mtime_ns, detail FROM entries WHERE verdict = 'notable'"
    ).fetchone()
    conn.close()
    return secret, int(mtime_ns), str(detail)


def test_a_row_the_crash_lost_is_written_with_the_files_own_nanosecond_mtime(
    tmp_path: Path,
) -> None:
    """The row was rebuilt from the match record's mtime, given to the microsecond: a resumed
    inventory differed from an uninterrupted run's (1796626449122118000 for ...118961)."""
    secret, mtime_ns, detail = _resumed_after_a_lost_row(tmp_path)
    assert "read again" in detail
    assert mtime_ns == os.lstat(secret).st_mtime_ns == 1_700_000_000_123_456_789


def test_a_row_the_crash_lost_keeps_the_records_mtime_when_the_file_was_touched_since(
    tmp_path: Path,
) -> None:
    """Found by a reviewer: the row took the file's mtime as read again, also when it had moved
    since the match record (a file touched after the crash): a time the run never saw."""
    _, mtime_ns, _ = _resumed_after_a_lost_row(tmp_path, touched_ns=1_800_000_000_000_000_000)
    assert mtime_ns == 1_700_000_000_123_456_000  # the record's, to its microsecond


@pytest.mark.parametrize("row", ["no digest", "no verdict"])
def test_a_resume_refuses_an_inventory_row_no_scan_writes(
    corpus: tuple[Path, Path, set[str]], tmp_path: Path, row: str
) -> None:
    """After a kill -9 no end record seals the inventory: a row inserted by hand (a notable
    file as 'unknown', no digests) was taken as a finished file, its match never logged, and
    the resumed log verified (a validator)."""
    ev, db, notable = corpus
    log = tmp_path / "run.jsonl"
    killed_scan(ev, db, log, 1)
    hidden = os.fsencode(sorted(notable)[-1])
    conn = sqlite3.connect(f"{log}.inventory.db")
    try:
        if row == "no digest":
            conn.execute("INSERT INTO entries (path, kind, size, mtime_ns, verdict, run) "
                         "VALUES (?, 'file', 1, 0, 'unknown', 0)", [hidden])  # fmt: skip
        else:
            conn.execute("INSERT INTO entries (path, kind, size, mtime_ns, md5, sha1, sha256, run) "
                         "VALUES (?, 'file', 1, 0, x'00', x'00', x'00', 0)", [hidden])  # fmt: skip
        conn.commit()
    finally:
        conn.close()
    result = run_scan(ev, db, log, "--resume")
    assert result.returncode == 2, result.stderr
    assert b"finished file row(s) without this run's digests or a verdict" in result.stderr
