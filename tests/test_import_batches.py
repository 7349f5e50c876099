"""Import batches leave out the fields their entries lack: the store still holds every value."""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path

import pytest

from matcher import importing
from matcher.errors import StoreError
from matcher.importing import _batches_from_records
from matcher.importing import import_list
from matcher.models import HashRecord
from matcher.models import NewList
from matcher.store import HashStore


def _md5(text: str) -> bytes:
    return hashlib.md5(text.encode()).digest()


def _entries(db: Path) -> list[tuple[object, ...]]:
    conn = sqlite3.connect(db)
    try:
        return conn.execute(
            "SELECT e.size, e.name, e.ident, e.label, group_concat(hex(h.digest), '/') "
            "FROM entries e LEFT JOIN hashes h ON h.entry_id = e.id GROUP BY e.id ORDER BY e.id"
        ).fetchall()
    finally:
        conn.close()


def _new(name: str) -> NewList:
    return NewList(name, "notable", "test", "0" * 64, "/nowhere", {})


RECORDS = [
    HashRecord({"md5": _md5("a")}, size=1, name="a.txt", ident="7", label="cat 1"),
    HashRecord({"md5": _md5("b")}),
    HashRecord({"md5": _md5("c"), "sha1": hashlib.sha1(b"c").digest()}, name=b"\xff.bin"),
    HashRecord({"sha1": hashlib.sha1(b"d").digest(), "md5": _md5("d")}, size=0, label=""),
    HashRecord({"md5": _md5("e")}, ident="9"),
    HashRecord({"md5": _md5("f")}, size=1, name="f.txt", ident="8", label="cat 2"),
]


def test_every_record_lands_with_exactly_its_own_values(tmp_path: Path) -> None:
    store = HashStore(tmp_path / "s.db")
    store.add_list(_new("l"), _batches_from_records(iter(RECORDS)))
    store.close()
    got = _entries(tmp_path / "s.db")
    # Entries are stored batch by batch (one shape each); compare as a set of values.
    expected = {
        (
            r.size,
            r.name,
            r.ident,
            r.label,
            "/".join(sorted(d.hex().upper() for d in r.digests.values())),
        )
        for r in RECORDS
    }
    assert {(*row[:4], "/".join(sorted(str(row[4]).split("/")))) for row in got} == expected
    assert len(got) == len(RECORDS)


def test_batches_are_runs_of_records_with_the_same_digests_and_fields() -> None:
    records = [RECORDS[0], RECORDS[5], *RECORDS[1:5], RECORDS[1]]
    batches = list(_batches_from_records(iter(records)))
    shapes = [(algorithms, fields, len(rows)) for algorithms, fields, rows in batches]
    assert shapes == [
        (("md5",), ("size", "name", "ident", "label"), 2),
        (("md5",), (), 1),
        (("md5", "sha1"), ("name",), 1),
        (("sha1", "md5"), ("size", "label"), 1),
        (("md5",), ("ident",), 1),
        (("md5",), (), 1),
    ]
    # Digests go as bytearray: sqlite3 binds them without its adapter lookup.
    assert all(isinstance(row[0], bytearray) for _, _, rows in batches for row in rows)


def test_entry_ids_follow_the_list_even_when_its_rows_differ_in_shape(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A digest listed twice: its hits come in the list's own order (entry id order)."""
    monkeypatch.setattr(importing, "BATCH_ROWS", 3)
    digest = _md5("twice").hex()
    lines = ["md5,name", f"{digest},", f"{digest},second"]
    lines += [f"{_md5(str(n)).hex()},{'' if n % 3 else f'n{n}'}" for n in range(10)]
    path = tmp_path / "l.csv"
    path.write_text("\n".join(lines) + "\n")
    store = HashStore(tmp_path / "s.db")
    import_list(store, path)
    hits = store.lookup("md5", [bytes.fromhex(digest)])[bytes.fromhex(digest)]
    assert [h.name for h in hits] == [None, "second"]
    names = [r[0] for r in store.db.execute("SELECT name FROM entries ORDER BY id")]
    assert names == [None, "second", *[None if n % 3 else f"n{n}" for n in range(10)]]
    store.close()


def test_a_batch_with_nothing_but_entries_keeps_them(tmp_path: Path) -> None:
    store = HashStore(tmp_path / "s.db")
    info = store.add_list(_new("l"), iter([((), (), [(), ()]), (("md5",), (), [(_md5("x"),)])]))
    assert info.entries == 3 and info.counts == {"md5": 1}
    store.close()


def test_a_field_the_store_does_not_know_is_refused_and_rolled_back(tmp_path: Path) -> None:
    store = HashStore(tmp_path / "s.db")
    with pytest.raises(StoreError, match="Not entry fields: size, path"):
        store.add_list(_new("l"), iter([(("md5",), ("size", "path"), [(_md5("x"), 1, "/x")])]))
    assert store.lists() == []
    store.close()


def test_a_csv_with_gaps_imports_each_cell_as_given(tmp_path: Path) -> None:
    """Empty cells are NULL, the others are kept verbatim, whatever the batch's shape."""
    lines = ["md5,size,name,id,category"]
    cells = [("a", "3", "a.txt", "", "1"), ("b", "", "", "5", ""), ("c", "0", "c d", "6", "x")]
    for text, size, name, ident, label in cells:
        lines.append(f"{_md5(text).hex()},{size},{name},{ident},{label}")
    path = tmp_path / "l.csv"
    path.write_text("\n".join(lines) + "\n")
    store = HashStore(tmp_path / "s.db")
    import_list(store, path)
    store.close()
    got = {row[4]: row[:4] for row in _entries(tmp_path / "s.db")}
    assert got == {
        _md5("a").hex().upper(): (3, "a.txt", None, "1"),
        _md5("b").hex().upper(): (None, None, "5", None),
        _md5("c").hex().upper(): (0, "c d", "6", "x"),
    }
