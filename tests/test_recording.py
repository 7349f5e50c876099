"""Recording a batch of outcomes: the bulk path for unknown files says what record() says."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from conftest import read_log

from matcher import auditlog
from matcher.inventory import Inventory
from matcher.models import EntryOutcome
from matcher.models import Failure
from matcher.models import ListHit
from matcher.models import Skip
from matcher.scan import Counts
from matcher.scan import _Recorder


def _digests(content: bytes, algorithms: tuple[str, ...] = ("md5", "sha1", "sha256")) -> dict:
    return {a: hashlib.new(a, content).digest() for a in algorithms}


def _outcomes() -> tuple[list[EntryOutcome], dict[int, list[ListHit]]]:
    """A batch mixing every kind of outcome, most of them plain unknown files."""
    outcomes = [
        EntryOutcome.hashed(
            b"/ev/a/%03d.bin" % n, 100 + n, 10**18 + n, _digests(b"content %d" % n), "file"
        )
        for n in range(40)
    ]
    notable = EntryOutcome.hashed(b"/ev/hit.bin", 7, 10**18, _digests(b"notable"), "file")
    known = EntryOutcome.hashed(b"/ev/known.bin", 5, 10**18, _digests(b"known"), "file")
    outcomes[10:10] = [notable]
    outcomes[20:20] = [known]
    outcomes += [
        EntryOutcome.hashed(b"/ev/empty", 0, 10**18, _digests(b""), "file"),
        EntryOutcome.hashed(b"/ev/\xff-not-utf8", 3, 10**18, _digests(b"odd"), "deleted"),
        EntryOutcome(b"/ev/link2", 9, 10**18, _digests(b"x"), errno=None, detail="same as /ev/a"),
        EntryOutcome(b"/ev/gone", 4, 10**18, failure=Failure.VANISHED, errno=2, detail="ENOENT"),
        EntryOutcome.skipped(b"/ev/fifo", 0, 10**18, Skip.FIFO),
        # another digest set than the rest of the batch (e.g. a member read otherwise)
        EntryOutcome.hashed(b"/ev/md5-only", 8, 10**18, _digests(b"m", ("md5",)), "file"),
    ]
    hit = ListHit("vics", "notable", "sha256", 7, "n.jpg", "1", "1")
    good = ListHit("nsrl", "known", "sha1", 5, "k.dll", "2", None)
    return outcomes, {id(notable): [hit], id(known): [good]}


def _record(tmp_path: Path, name: str, bulk: bool) -> tuple[Counts, list[tuple], list[dict]]:
    outcomes, hits_of = _outcomes()
    log = auditlog.create(tmp_path / f"{name}.jsonl")
    log.append("run", {"examiner": "E", "case": "C", "resume": False})
    inventory = Inventory(tmp_path / f"{name}.inventory.db")
    counts = Counts()
    recorder = _Recorder(log, inventory, counts, 0, set())
    if bulk:
        recorder.record_many(outcomes, hits_of)
    else:
        for outcome in outcomes:
            recorder.record(outcome, hits_of.get(id(outcome), []))
    recorder.commit()
    rows = inventory.db.execute("SELECT * FROM entries ORDER BY path").fetchall()
    inventory.close()
    log.close()
    records = [
        {k: v for k, v in r.items() if k not in ("time", "prev", "seq")}
        for r in read_log(tmp_path / f"{name}.jsonl")
    ]
    return counts, rows, records


def test_record_many_gives_the_counts_rows_and_log_of_record_one_by_one(tmp_path: Path) -> None:
    bulk = _record(tmp_path, "bulk", bulk=True)
    single = _record(tmp_path, "single", bulk=False)
    assert bulk == single
    counts, rows, records = bulk
    assert counts.entries == counts.files + counts.skipped + counts.errors == len(rows) == 48
    assert (counts.notable, counts.known, counts.empty, counts.errors) == (1, 1, 1, 1)
    assert [r["type"] for r in records] == ["run", "match", "error"]
    # BLOBs land as BLOBs (the bulk path binds bytearray copies).
    assert all(isinstance(row[0], bytes) and isinstance(row[4], bytes) for row in rows if row[4])


def test_a_failed_log_write_keeps_the_unknown_files_recorded_before_it(tmp_path: Path) -> None:
    """Disk full at a match record: the files before it stay counted, as one by one."""
    outcomes, hits_of = _outcomes()
    log = auditlog.create(tmp_path / "full.jsonl")
    log.append("run", {"examiner": "E", "case": "C", "resume": False})
    inventory = Inventory(tmp_path / "full.inventory.db")
    counts = Counts()
    recorder = _Recorder(log, inventory, counts, 0, set())

    def disk_full(kind: str, fields: dict) -> dict:
        raise OSError(28, "No space left on device")

    log.append = disk_full  # type: ignore[method-assign]
    with pytest.raises(OSError):
        recorder.record_many(outcomes, hits_of)
    # The notable file is the 11th: ten unknown files came before it.
    assert (counts.entries, counts.files, counts.unknown) == (10, 10, 10)
    assert inventory.pending == 10
    inventory.close()


def test_digests_given_in_another_order_land_in_their_own_columns(tmp_path: Path) -> None:
    inventory = Inventory(tmp_path / "order.inventory.db")
    md5, sha1 = hashlib.md5(b"x").digest(), hashlib.sha1(b"x").digest()
    inventory.add_hashed(
        [
            EntryOutcome.hashed(b"/a", 1, 1, {"md5": md5, "sha1": sha1}, "file"),
            EntryOutcome.hashed(b"/b", 1, 1, {"sha1": sha1, "md5": md5}, "file"),
        ],
        "unknown",
        0,
    )
    inventory.flush()
    rows = inventory.db.execute("SELECT path, md5, sha1 FROM entries ORDER BY path").fetchall()
    assert rows == [(b"/a", md5, sha1), (b"/b", md5, sha1)]
    inventory.close()


def test_a_match_record_names_at_most_its_budget_of_entries_and_counts_them_all(
    tmp_path: Path,
) -> None:
    """Before: a digest listed 110,000 times made a match record longer than the longest line
    verify reads (16 MiB): the scan said complete, and its genuine log failed verify."""
    from matcher import scan as scan_mod

    assert scan_mod.MATCH_RECORD_HITS_BYTES * 4 <= auditlog.MAX_LINE_BYTES
    notable = EntryOutcome.hashed(b"/ev/hit.bin", 7, 10**18, _digests(b"notable"), "file")
    long_name = "supplier/path/" + "x" * 200
    hits = [ListHit("dups", "notable", "md5", 7, f"{long_name}-{i}", str(i), "1") for i in range(6000)]
    hits.append(ListHit("nsrl", "known", "sha1", 7, "k.dll", "k", None))
    log = auditlog.create(tmp_path / "big.jsonl")
    log.append("run", {"examiner": "E", "case": "C", "resume": False})
    inventory = Inventory(tmp_path / "big.inventory.db")
    recorder = _Recorder(log, inventory, Counts(), 0, set())
    recorder.record(notable, hits)
    recorder.commit()
    inventory.close()
    log.close()
    raw = (tmp_path / "big.jsonl").read_bytes().split(b"\n")[1]
    assert len(raw) < scan_mod.MATCH_RECORD_HITS_BYTES + 4096
    (match,) = [r for r in read_log(tmp_path / "big.jsonl") if r["type"] == "match"]
    assert match["matches_total"] == 6001
    # Every list is named, with how many of its entries matched: the entries named are
    # all of the first list, which hid that the file was in another list too.
    assert match["lists_matched"] == [
        {"list": "dups", "role": "notable", "entries": 6000},
        {"list": "nsrl", "role": "known", "entries": 1},
    ]
    assert 0 < len(match["matches"]) < 6001
    assert all(m["role"] == "notable" for m in match["matches"])  # notable entries first
    with pytest.raises(auditlog.IncompleteLogError):  # read whole: only its end is missing
        auditlog.verify(tmp_path / "big.jsonl")
