"""A list's entries are one contiguous id range, kept in `lists`: no index on entries(list_id).

Removal, replacement, notable sizes and the unsized check find a list's entries
by that range. Stores made before the ranges were kept (with the index, without
the columns) gain the ranges on their first writable open, and read as before
when opened read-only.
"""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path

import pytest

from matcher.importing import import_list
from matcher.store import HashStore


def _write_list(path: Path, tag: str, n: int, sized: bool = True, first_size: int = 1000) -> Path:
    lines = ["sha256,size,name"] if sized else []
    for i in range(n):
        digest = hashlib.sha256(f"{tag}{i}".encode()).hexdigest()
        lines.append(f"{digest},{first_size + i},{tag}{i}" if sized else f"{digest}  {tag}{i}")
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture
def store_with_three(tmp_path: Path) -> Path:
    db = tmp_path / "store.db"
    store = HashStore(db)
    import_list(store, _write_list(tmp_path / "a.csv", "a", 30), role="notable")
    import_list(store, _write_list(tmp_path / "b.csv", "b", 20, first_size=5000), role="notable")
    import_list(store, _write_list(tmp_path / "c.sha256", "c", 10, sized=False), role="known")
    store.close()
    return db


def _ranges(db: Path) -> dict[str, tuple[int, int]]:
    with sqlite3.connect(db) as conn:
        return {n: (f, l) for n, f, l in conn.execute("SELECT name, first_entry, last_entry FROM lists")}


def _by_list(db: Path) -> dict[str, tuple[int, int, int]]:
    with sqlite3.connect(db) as conn:
        rows = conn.execute(
            "SELECT l.name, count(*), min(e.id), max(e.id) FROM entries e "
            "JOIN lists l ON l.id = e.list_id GROUP BY l.name"
        ).fetchall()
    return {name: (count, low, high) for name, count, low, high in rows}


def test_a_new_store_keeps_ranges_and_has_no_list_id_index(store_with_three: Path) -> None:
    db = store_with_three
    with sqlite3.connect(db) as conn:
        indexes = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE tbl_name = 'entries' AND type = 'index'")]
    assert indexes == []
    ranges = _ranges(db)
    assert ranges == {"a.csv": (1, 30), "b.csv": (31, 50), "c.sha256": (51, 60)}
    assert {n: (lo, hi) for n, (_, lo, hi) in _by_list(db).items()} == ranges
    sizes, unsized = HashStore(db, readonly=True).notable_sizes()
    assert unsized == [] and list(sizes) == [*range(1000, 1030), *range(5000, 5020)]


def test_a_new_store_has_larger_pages_and_one_made_with_smaller_ones_keeps_them(tmp_path: Path) -> None:
    # The page size is fixed by a file's first write: a new store takes
    # STORE_PAGE_SIZE (a bulk import's B-tree work is per page); a store made
    # with SQLite's default keeps it, and imports and looks up as before.
    from matcher.store import STORE_PAGE_SIZE

    new = tmp_path / "new.db"
    import_list(HashStore(new), _write_list(tmp_path / "a.csv", "a", 30), role="notable")
    old = tmp_path / "old.db"
    with sqlite3.connect(old) as conn:
        conn.execute("PRAGMA page_size = 4096")
        conn.execute("VACUUM")
    store = HashStore(old)
    import_list(store, _write_list(tmp_path / "b.csv", "b", 20), role="notable")
    store.close()
    for db, pages in ((new, STORE_PAGE_SIZE), (old, 4096)):
        with sqlite3.connect(db) as conn:
            assert conn.execute("PRAGMA page_size").fetchone()[0] == pages
    assert STORE_PAGE_SIZE != 4096
    digest = bytes.fromhex(hashlib.sha256(b"b3").hexdigest())
    hits = HashStore(old, readonly=True).lookup("sha256", [digest])
    assert [h.entry_id for h in hits[digest]] == [4]


def test_removing_a_list_between_others_removes_exactly_its_entries(store_with_three: Path, tmp_path: Path) -> None:
    db = store_with_three
    store = HashStore(db)
    store.remove_list("b.csv")
    assert _by_list(db) == {"a.csv": (30, 1, 30), "c.sha256": (10, 51, 60)}
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT count(*) FROM hashes").fetchone() == (40,)
        assert conn.execute("SELECT count(*) FROM hashes WHERE entry_id BETWEEN 31 AND 50").fetchone() == (0,)
    # A newer version replaces the first list: the others keep their entries.
    import_list(store, _write_list(tmp_path / "a2.csv", "A", 5), name="a.csv v2", role="notable", replace="a.csv")
    sizes, unsized = store.notable_sizes()
    store.close()
    assert unsized == [] and list(sizes) == list(range(1000, 1005))
    assert _by_list(db) == {"a.csv v2": (5, 61, 65), "c.sha256": (10, 51, 60)}
    assert _ranges(db)["a.csv v2"] == (61, 65)


def _make_old(db: Path) -> None:
    """What a store made before the ranges were kept looks like: no columns, an index."""
    with sqlite3.connect(db) as conn:
        conn.execute("ALTER TABLE lists DROP COLUMN first_entry")
        conn.execute("ALTER TABLE lists DROP COLUMN last_entry")
        conn.execute("CREATE INDEX idx_entries_list_id ON entries (list_id)")


def test_an_older_store_reads_read_only_and_gains_ranges_when_opened_for_writing(store_with_three: Path) -> None:
    db = store_with_three
    expected = HashStore(db, readonly=True).notable_sizes()
    _make_old(db)
    old = HashStore(db, readonly=True)
    assert old.notable_sizes() == expected
    assert [(i.name, i.entries) for i in old.lists()] == [("a.csv", 30), ("b.csv", 20), ("c.sha256", 10)]
    old.close()
    store = HashStore(db)  # writable: the ranges are recorded, the old index stays
    assert store.notable_sizes() == expected
    store.remove_list("a.csv")
    store.close()
    assert _ranges(db) == {"b.csv": (31, 50), "c.sha256": (51, 60)}
    assert _by_list(db) == {"b.csv": (20, 31, 50), "c.sha256": (10, 51, 60)}


def test_a_list_without_a_recorded_range_is_found_by_its_entries(store_with_three: Path) -> None:
    """As an older matcher would leave a list it imported into a new store."""
    db = store_with_three
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE lists SET first_entry = NULL, last_entry = NULL WHERE name = 'b.csv'")
    readonly = HashStore(db, readonly=True)
    sizes, _ = readonly.notable_sizes()
    readonly.close()
    assert list(sizes) == [*range(1000, 1030), *range(5000, 5020)]
    store = HashStore(db)
    store.close()
    assert _ranges(db)["b.csv"] == (31, 50)


def test_ranges_of_sql_copies_in_one_or_two_processes_and_of_the_row_by_row_fallback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from test_import_sql import make_rds
    from test_import_sql import rows_for

    from matcher import store as store_mod

    db = tmp_path / "store.db"
    store = HashStore(db)
    import_list(store, _write_list(tmp_path / "a.csv", "a", 7), role="notable")
    import_list(store, make_rds(tmp_path / "one.db", rows_for(40)), name="one")
    monkeypatch.setattr(store_mod, "PARALLEL_STAGING_MIN_BYTES", 0)  # a child walks half
    import_list(store, make_rds(tmp_path / "two.db", rows_for(60)), name="two")
    # A package id stored as a BLOB sends the SQL copy back, row by row.
    blob = [(*row[:5], b"77") if i == 3 else row for i, row in enumerate(rows_for(20))]
    row_by_row = []
    add_list = HashStore.add_list
    monkeypatch.setattr(
        HashStore, "add_list", lambda *a, **k: row_by_row.append(1) or add_list(*a, **k)
    )
    import_list(store, make_rds(tmp_path / "fallback.db", blob), name="fallback")
    assert row_by_row == [1]
    counts = {info.name: info.entries for info in store.lists()}
    store.close()
    assert counts == {"a.csv": 7, "one": 41, "two": 61, "fallback": 21}
    assert {n: (lo, hi) for n, (_, lo, hi) in _by_list(db).items()} == _ranges(db) == {
        "a.csv": (1, 7), "one": (8, 48), "two": (49, 109), "fallback": (110, 130),
    }


def test_a_thousand_notable_lists_give_their_sizes(tmp_path: Path) -> None:
    """One range per list: any number of lists (a chain of 999 ORs was too deep for SQLite)."""
    db = tmp_path / "store.db"
    store = HashStore(db)
    for i in range(1000):
        path = tmp_path / f"l{i}.csv"
        path.write_text(f"sha256,size\n{hashlib.sha256(b'%d' % i).hexdigest()},{10 + i}\n")
        import_list(store, path, role="notable")
    sizes, unsized = store.notable_sizes()
    store.close()
    assert unsized == [] and list(sizes) == list(range(10, 1010))


def test_a_removal_whose_range_does_not_hold_the_list_changes_nothing(store_with_three: Path) -> None:
    from conftest import store_rows

    from matcher.errors import StoreError

    db = store_with_three
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE lists SET first_entry = 35 WHERE name = 'b.csv'")  # damaged
    before = store_rows(db)
    store = HashStore(db)
    with pytest.raises(StoreError, match="should hold 20 entries but 16 were found"):
        store.remove_list("b.csv")
    store.close()
    assert store_rows(db) == before
