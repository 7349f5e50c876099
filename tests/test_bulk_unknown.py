"""The scan's bulk path for files in no list says exactly what the one-by-one path says.

Most files of a scan are plain, nonempty and certainly in no list (the filter
rules them out): the scan counts them and queues their inventory rows in bulk,
straight from the engine's digests. Forcing every file through the ordered
path (the filter letting every digest through, so each goes to the exact
lookup) must give the same counts, log records and inventory rows.
"""

from __future__ import annotations

import hashlib
import os
import random
import sqlite3
from pathlib import Path

import pytest
from conftest import read_log

from matcher import scan as scan_mod
from matcher.importing import import_list
from matcher.inventory import Inventory
from matcher.match import DigestFilter
from matcher.scan import ScanOptions
from matcher.scan import run_scan
from matcher.store import HashStore


@pytest.fixture
def case(tmp_path: Path) -> tuple[Path, Path, dict[str, bytes]]:
    """A tree of unknown, notable, known, empty, unreadable and special entries, and a store."""
    rng = random.Random(11)
    ev = tmp_path / "ev"
    contents: dict[str, bytes] = {}
    for d in range(3):
        (ev / f"d{d}").mkdir(parents=True)
        for i in range(120):
            data = rng.randbytes(rng.randint(1, 9000))
            path = ev / f"d{d}" / f"f{i:03d}"
            path.write_bytes(data)
            contents[str(path)] = data
    (ev / "empty").write_bytes(b"")
    contents[str(ev / "empty")] = b""
    odd = ev / os.fsdecode(b"name-\xff")  # not UTF-8
    odd.write_bytes(b"odd")
    contents[str(odd)] = b"odd"
    os.mkfifo(ev / "fifo")
    os.symlink("/etc/passwd", ev / "link")
    notable = [p for p in sorted(contents) if contents[p]][::17]
    known = [p for p in sorted(contents) if contents[p]][5::23]
    (tmp_path / "notable.sha256").write_text(
        "".join(f"{hashlib.sha256(contents[p]).hexdigest()}  x\n" for p in notable)
    )
    # An md5-only known list: the bulk path must probe every algorithm's filter.
    (tmp_path / "known.md5").write_text(
        "".join(f"{hashlib.md5(contents[p]).hexdigest()}  x\n" for p in known)
    )
    db = tmp_path / "store.db"
    store = HashStore(db)
    import_list(store, tmp_path / "notable.sha256", role="notable")
    import_list(store, tmp_path / "known.md5", role="known")
    store.close()
    return ev, db, contents


def _scan(
    tmp_path: Path, ev: Path, db: Path, name: str, jobs: int, **options: object
) -> tuple[dict, list, list]:
    log = tmp_path / f"{name}.jsonl"
    summary = run_scan(
        ScanOptions(evidence=[ev], examiner="E", case="C", db=db, log=log, jobs=jobs, **options)  # type: ignore[arg-type]
    )
    records = [
        {k: v for k, v in r.items() if k not in ("time", "prev", "seq", "duration_s", "inventory")}
        for r in read_log(log)
        if r["type"] in ("match", "error", "end")
    ]
    with sqlite3.connect(f"{log}.inventory.db") as conn:
        rows = conn.execute(
            "SELECT path, kind, size, mtime_ns, md5, sha1, sha256, verdict, skip, failure "
            "FROM entries ORDER BY path"
        ).fetchall()
    return summary.counts.as_dict(), records, rows


@pytest.mark.parametrize("jobs", [1, 2])
def test_bulk_unknown_files_are_recorded_as_one_by_one(
    tmp_path: Path,
    case: tuple[Path, Path, dict[str, bytes]],
    monkeypatch: pytest.MonkeyPatch,
    jobs: int,
) -> None:
    ev, db, contents = case
    queued: list[int] = []
    add_digests = Inventory.add_digests

    def spy(self: Inventory, algorithms, tasks, digest_lists, verdict, run) -> None:  # type: ignore[no-untyped-def]
        queued.append(len(tasks))
        add_digests(self, algorithms, tasks, digest_lists, verdict, run)

    monkeypatch.setattr(Inventory, "add_digests", spy)
    bulk = _scan(tmp_path, ev, db, "bulk", jobs)
    bulk_rows = sum(queued)
    queued.clear()

    def every_digest_may_be_stored(self: DigestFilter, algorithms, digest_lists) -> list[bool]:  # type: ignore[no-untyped-def]
        return [True] * len(digest_lists)

    monkeypatch.setattr(DigestFilter, "maybe_stored", every_digest_may_be_stored)
    ordered = _scan(tmp_path, ev, db, "ordered", jobs)
    assert sum(queued) == 1  # every file went the ordered way but the empty one (never a match)
    assert bulk[0] == ordered[0]
    assert [r for r in bulk[1] if r["type"] != "end"] == [r for r in ordered[1] if r["type"] != "end"]
    assert bulk[2] == ordered[2]

    counts, records, rows = bulk
    assert counts["entries"] == len(rows) == len(contents) + 2  # the FIFO and the symlink
    assert counts["notable"] == len([r for r in records if r["type"] == "match"]) > 0
    assert counts["known"] > 0 and counts["unknown"] > 0 and counts["empty"] == 1
    assert counts["notable"] + counts["known"] + counts["unknown"] == counts["files"]
    # The bulk way took every unknown file, the empty one too (bar a rare filter false positive).
    assert counts["unknown"] - 3 <= bulk_rows <= counts["unknown"]
    for path, _, size, _, md5, sha1, sha256, verdict, skip, _ in rows:
        data = contents.get(os.fsdecode(path))
        if data is None:
            assert skip is not None
            continue
        assert (size, md5, sha1, sha256) == (
            len(data),
            hashlib.md5(data).digest(),
            hashlib.sha1(data).digest(),
            hashlib.sha256(data).digest(),
        )
        assert verdict in ("notable", "known", "unknown")


def test_a_filter_false_positive_is_settled_by_the_exact_lookup(
    tmp_path: Path,
    case: tuple[Path, Path, dict[str, bytes]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Files the filter lets through but the store does not hold end unknown, not matched."""
    ev, db, _ = case
    lookups: list[int] = []
    real = scan_mod.match_batch

    def counting(digest_sets, digest_filter, lookup):  # type: ignore[no-untyped-def]
        lookups.append(len(digest_sets))
        return real(digest_sets, digest_filter, lookup)

    monkeypatch.setattr(scan_mod, "match_batch", counting)
    monkeypatch.setattr(DigestFilter, "maybe_stored", lambda self, a, lists: [True] * len(lists))
    counts, records, _ = _scan(tmp_path, ev, db, "fp", 2)
    # Every hashed file went to the exact lookup (but the empty one, never a match), and only
    # the listed ones matched.
    assert sum(lookups) == counts["files"] - counts["empty"]
    monkeypatch.undo()
    assert _scan(tmp_path, ev, db, "plain", 2)[0] == counts


def _store_of_one_notable_entry(tmp_path: Path) -> Path:
    (tmp_path / "n.sha256").write_text(f"{hashlib.sha256(b'x').hexdigest()}  x\n")
    db = tmp_path / "store.db"
    store = HashStore(db)
    import_list(store, tmp_path / "n.sha256", role="notable")
    store.close()
    return db


def test_skipped_entries_are_recorded_as_the_walk_meets_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A symlink, FIFO or excluded name writes no log record, so it waits for nothing.

    Held in walk order behind a file not yet hashed, a tree of a million
    symlinks kept a million outcomes in memory until its walk ended.
    """
    from matcher.hashing import PoolEngine

    ev = tmp_path / "ev"
    ev.mkdir()
    (ev / "a0").write_bytes(b"first file, hashed only once the walk is done")
    for i in range(500):
        os.symlink("/nonexistent", ev / f"b{i:04d}")
    for i in range(10):
        os.mkfifo(ev / f"c{i}")
        (ev / f"d{i}.tmp").write_bytes(b"excluded")
    db = _store_of_one_notable_entry(tmp_path)

    monkeypatch.setattr(scan_mod, "NOT_CANDIDATE_BATCH", 50)
    recorded: list[object] = []
    record = scan_mod._Recorder.record

    def counting(self, outcome, hits):  # type: ignore[no-untyped-def]
        recorded.append(outcome.skip)
        record(self, outcome, hits)

    monkeypatch.setattr(scan_mod._Recorder, "record", counting)
    at_first_unit: list[int] = []
    map_units = PoolEngine.map_units

    def watching(self, tasks):  # type: ignore[no-untyped-def]
        for unit in map_units(self, tasks):
            if not at_first_unit:
                at_first_unit.append(len(recorded))
            yield unit

    monkeypatch.setattr(PoolEngine, "map_units", watching)
    counts, records, rows = _scan(tmp_path, ev, db, "skips", 2, excludes=["*.tmp"])
    # The one file's unit is sent once the walk ends: ten batches of 50 skipped
    # entries were recorded by then (the last 20 at the end).
    assert at_first_unit == [500]
    assert counts["skipped_by_reason"] == {"symlink": 500, "fifo": 10, "excluded": 10}
    assert counts["files"] == 1 and len(rows) == counts["entries"] == 521
    assert [r["type"] for r in records] == ["end"]


def test_an_interrupted_scan_with_recorded_skips_resumes_without_counting_twice(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Skipped entries recorded ahead of files not yet hashed count once, across a resume."""
    import signal
    import subprocess
    import sys

    from conftest import assert_counts_add_up

    ev = tmp_path / "ev"
    for d in range(4):
        folder = ev / f"d{d}"
        folder.mkdir(parents=True)
        for i in range(300):
            (folder / f"f{i:03d}").write_bytes(os.urandom(2000))
            os.symlink("/nonexistent", folder / f"l{i:03d}")
    db = _store_of_one_notable_entry(tmp_path)
    monkeypatch.setattr(scan_mod, "NOT_CANDIDATE_BATCH", 50)
    log = tmp_path / "run.jsonl"

    def stop(counts: scan_mod.Counts) -> None:
        os.kill(os.getpid(), signal.SIGINT)

    summary = run_scan(ScanOptions([ev], "E", "C", db, log, jobs=1), stop)
    assert summary.status == "interrupted" and summary.counts.skipped > 0
    resumed = subprocess.run(
        [sys.executable, "-m", "matcher", "scan", str(ev), "--examiner", "E", "--case", "C",
         "--db", str(db), "--log", str(log), "-q", "--resume"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr
    assert_counts_add_up(log)
    first, last = [r["counts"] for r in read_log(log) if r["type"] == "end"]
    assert first["skipped"] > 0 and first["entries"] < 2400  # cut short, skips recorded
    # The resumed run's end record counts the whole scan: each entry once.
    assert (last["entries"], last["files"], last["skipped"]) == (2400, 1200, 1200)
    with sqlite3.connect(f"{log}.inventory.db") as conn:
        assert conn.execute("SELECT count(*), count(DISTINCT path) FROM entries").fetchone() == (2400, 2400)


def test_an_empty_file_takes_the_bulk_path_even_where_a_list_holds_the_empty_digest(tmp_path: Path) -> None:
    """Empty files went one by one through the ordered path (22 µs each in the main process:
    100,000 empty files took 2.4 x hashdeep's time). An empty file is never a match, so it is
    counted empty and unknown in bulk, whatever the filter says of the empty digest."""
    ev = tmp_path / "ev"
    ev.mkdir()
    for i in range(50):
        (ev / f"e{i}").write_bytes(b"")
    (tmp_path / "n.sha256").write_text(f"{hashlib.sha256(b'').hexdigest()}  empty\n")
    db = tmp_path / "s.db"
    store = HashStore(db)
    import_list(store, tmp_path / "n.sha256", role="notable")
    store.close()
    queued: list[int] = []
    add_digests = Inventory.add_digests

    def spy(self: Inventory, algorithms, tasks, digest_lists, verdict, run) -> None:  # type: ignore[no-untyped-def]
        queued.append(len(tasks))
        add_digests(self, algorithms, tasks, digest_lists, verdict, run)

    import matcher.inventory

    original = matcher.inventory.Inventory.add_digests
    matcher.inventory.Inventory.add_digests = spy  # type: ignore[method-assign]
    try:
        counts, records, rows = _scan(tmp_path, ev, db, "e", 1)
    finally:
        matcher.inventory.Inventory.add_digests = original  # type: ignore[method-assign]
    assert sum(queued) == 50
    assert counts["empty"] == counts["unknown"] == counts["files"] == 50 and counts["notable"] == 0
    assert not [r for r in records if r["type"] == "match"]
    assert all(row[7] == "unknown" for row in rows)


def test_an_interruption_records_the_possible_matches_taken_before_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before: files the filter flagged waited in `pending` for the next settle, and an
    interruption dropped them: the interrupted end record counted notable 0 and the inventory
    had no row for a notable file hashed before it, while files taken after it in bulk had
    theirs (a validator saw it with Ctrl-C). A resume re-hashed them; the interim log under-said."""
    from matcher.hashing import PoolEngine

    ev = tmp_path / "ev"
    ev.mkdir()
    (ev / "a-notable").write_bytes(b"x")
    for i in range(40):
        (ev / f"b{i:02d}").write_bytes(os.urandom(3000))
    db = _store_of_one_notable_entry(tmp_path)
    monkeypatch.setattr(scan_mod, "MATCH_BATCH", 10**9)
    monkeypatch.setattr(scan_mod, "SETTLE_BYTES", 1 << 60)
    monkeypatch.setattr(scan_mod, "SETTLE_SECONDS", 10**9)
    map_units = PoolEngine.map_units

    def interrupted_after_the_first_unit(self, tasks):  # type: ignore[no-untyped-def]
        for unit in map_units(self, tasks):
            yield unit
            raise scan_mod.Interrupted("SIGINT")

    monkeypatch.setattr(PoolEngine, "map_units", interrupted_after_the_first_unit)
    counts, records, rows = _scan(tmp_path, ev, db, "stopped", 2)
    assert records[-1]["status"] == "interrupted"
    assert counts["notable"] == 1, counts
    assert [r["path"] for r in records if r["type"] == "match"] == [str(ev / "a-notable")]
    notable = os.fsencode(ev / "a-notable")
    assert [r[7] for r in rows if bytes(r[0]) == notable] == ["notable"]
    assert len(rows) == counts["entries"] >= 2  # the bulk-recorded files of that unit too


def test_an_interruption_held_in_a_critical_section_still_records_what_waited(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A signal that lands while the inventory is written is held, and raised as that section
    ends: the wind-down's own sections raised it again, and the walk's skips were lost (a
    review; the direct raise above was recorded whole)."""
    ev = tmp_path / "ev"
    ev.mkdir()
    (ev / "a-notable").write_bytes(b"x")
    for i in range(20):
        (ev / f"b{i:02d}").write_bytes(os.urandom(3000))
    for i in range(5):
        os.symlink("/nonexistent", ev / f"c{i}")
    db = _store_of_one_notable_entry(tmp_path)
    monkeypatch.setattr(scan_mod, "MATCH_BATCH", 10**9)
    monkeypatch.setattr(scan_mod, "SETTLE_BYTES", 1 << 60)
    monkeypatch.setattr(scan_mod, "SETTLE_SECONDS", 10**9)
    gates: list[object] = []
    real_gate = scan_mod._SignalGate

    def gate() -> object:
        gates.append(real_gate())
        return gates[-1]

    monkeypatch.setattr(scan_mod, "_SignalGate", gate)
    record_unknown = scan_mod._Recorder.record_unknown

    def signalled(self, *args):  # type: ignore[no-untyped-def]
        gates[-1].arrive("SIGINT")  # type: ignore[attr-defined]  # held: inside gate.critical()
        return record_unknown(self, *args)

    monkeypatch.setattr(scan_mod._Recorder, "record_unknown", signalled)
    counts, records, rows = _scan(tmp_path, ev, db, "held", 2)
    assert records[-1]["status"] == "interrupted"
    assert counts["notable"] == 1 and counts["skipped_by_reason"] == {"symlink": 5}, counts
    assert len(rows) == counts["entries"]
