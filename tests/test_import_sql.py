"""NSRL RDS v3 imports by SQL (ATTACH + INSERT ... SELECT) equal the row-by-row import."""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path

import pytest

from matcher.errors import FormatError
from matcher.formats import registry
from matcher.importing import import_list
from matcher.store import HashStore

DDL = """
CREATE TABLE FILE (sha256 VARCHAR NOT NULL, sha1 VARCHAR NOT NULL, md5 VARCHAR NOT NULL,
  crc32 VARCHAR NOT NULL, file_name VARCHAR NOT NULL, file_size INTEGER NOT NULL,
  package_id INTEGER NOT NULL,
  PRIMARY KEY (sha256, sha1, md5, crc32, file_name, file_size, package_id));
CREATE TABLE PKG (package_id INTEGER, name VARCHAR);
CREATE TABLE VERSION (version VARCHAR, build_set VARCHAR, build_date TIMESTAMP,
  release_date TIMESTAMP, description VARCHAR);
INSERT INTO VERSION VALUES ('2026.09.1', 'Modern', '2026-09-01', '2026-09-05', 'test');
"""


def triple(content: bytes) -> tuple[str, str, str]:
    return tuple(  # type: ignore[return-value]
        hashlib.new(a, content).hexdigest().upper() for a in ("sha256", "sha1", "md5")
    )


def make_rds(path: Path, rows: list[tuple[object, ...]]) -> Path:
    conn = sqlite3.connect(path)
    conn.executescript(DDL)
    conn.executemany("INSERT INTO FILE VALUES (?, ?, ?, '00000000', ?, ?, ?)", rows)
    conn.commit()
    conn.close()
    return path


def rows_for(n: int) -> list[tuple[object, ...]]:
    rows: list[tuple[object, ...]] = []
    for i in range(n):
        sha256, sha1, md5 = triple(b"file %d" % i)
        rows.append((sha256, sha1, md5, f"name-{i}.dll", i, i % 7))
        if i % 3 == 0:  # the same file under another name and package
            rows.append((sha256, sha1, md5, f"z-other-{i}.dll", i, 99))
    # A name in the vendor's legacy encoding (not UTF-8).
    sha256, sha1, md5 = triple(b"latin-1")
    rows.append((sha256, sha1, md5, "caf\xe9.txt".encode("latin-1"), 7, 1))
    return rows


def store_content(db: Path) -> list[tuple[object, ...]]:
    conn = sqlite3.connect(db)
    try:
        return sorted(
            conn.execute(
                "SELECT h.algo, h.digest, e.size, CAST(e.name AS BLOB), e.ident, e.label "
                "FROM hashes h JOIN entries e ON e.id = h.entry_id"
            ).fetchall()
        )
    finally:
        conn.close()


def import_both(
    tmp_path: Path, source: Path, monkeypatch: pytest.MonkeyPatch
) -> tuple[HashStore, HashStore]:
    fast, slow = HashStore(tmp_path / "fast.db"), HashStore(tmp_path / "slow.db")
    with monkeypatch.context() as patch:

        def row_by_row(*args: object, **kwargs: object) -> None:
            raise AssertionError("a valid RDS must be copied by SQL, not row by row")

        patch.setattr(HashStore, "add_list", row_by_row)
        import_list(fast, source)
    reader = registry.get("nsrl-rds3")
    # The row-by-row path, as taken when the SQL copy cannot be used.
    sql_source = type(reader).sql_source
    try:
        del type(reader).sql_source  # type: ignore[attr-defined]
        import_list(slow, source)
    finally:
        type(reader).sql_source = sql_source  # type: ignore[attr-defined]
    return fast, slow


def test_sql_copy_equals_row_by_row(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    source = make_rds(tmp_path / "rds.db", rows_for(500))
    fast, slow = import_both(tmp_path, source, monkeypatch)
    try:
        assert store_content(tmp_path / "fast.db") == store_content(tmp_path / "slow.db")
        [a], [b] = fast.lists(), slow.lists()
        assert (a.entries, a.counts, a.metadata) == (b.entries, b.counts, b.metadata)
        assert a.entries == 501 and a.role == "known"
        md5 = bytes.fromhex(triple(b"latin-1")[2])
        [hit] = fast.lookup("md5", [md5])[md5]
        assert hit.name == "caf\xe9.txt".encode("latin-1")  # kept as the exact bytes
        md5 = bytes.fromhex(triple(b"file 3")[2])
        [hit] = fast.lookup("md5", [md5])[md5]
        assert (hit.name, hit.size, hit.ident) == ("name-3.dll", 3, "3")
    finally:
        fast.close()
        slow.close()


@pytest.mark.parametrize(
    "bad",
    [
        ("AB" * 32, "12" * 20, "G" * 32, "x", 1, 1),  # non-hex md5 of the right length
        ("AB" * 32, "12" * 20, "C" * 31, "x", 1, 1),  # md5 too short
        ("AB" * 32, "12" * 20, "C" * 32, "x", -5, 1),  # negative size
    ],
)
def test_a_bad_row_is_named_and_the_store_is_unchanged(
    tmp_path: Path, bad: tuple[object, ...]
) -> None:
    source = make_rds(tmp_path / "rds.db", [*rows_for(20), bad])
    store = HashStore(tmp_path / "s.db")
    try:
        before = store_content(tmp_path / "s.db")
        with pytest.raises(FormatError) as caught:
            import_list(store, source)
        assert "package_id" in str(caught.value) and str(source) in str(caught.value)
        assert store_content(tmp_path / "s.db") == before and store.lists() == []
        result = import_list(store, source, skip_invalid=True)
        assert result.skipped_invalid == 1 and result.info.entries == 21
    finally:
        store.close()


def test_replace_by_sql_in_one_transaction(tmp_path: Path) -> None:
    store = HashStore(tmp_path / "s.db")
    try:
        import_list(store, make_rds(tmp_path / "old.db", rows_for(10)), name="nsrl-2026.06")
        new = make_rds(tmp_path / "new.db", rows_for(30))
        result = import_list(store, new, name="nsrl-2026.09", replace="nsrl-2026.06")
        assert [i.name for i in store.lists()] == ["nsrl-2026.09"]
        assert result.info.entries == 31 and result.replaced == "nsrl-2026.06"
        count = store.db.execute("SELECT count(*) FROM hashes").fetchone()[0]
        assert count == 31 * 3
    finally:
        store.close()


def test_an_empty_rds_is_refused(tmp_path: Path) -> None:
    store = HashStore(tmp_path / "s.db")
    try:
        with pytest.raises(FormatError, match="no entries"):
            import_list(store, make_rds(tmp_path / "empty.db", []))
        assert store.lists() == []
    finally:
        store.close()


def test_list_counts_are_recorded_at_import_and_survive_an_older_store(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    store = HashStore(db)
    try:
        import_list(store, make_rds(tmp_path / "a.db", rows_for(10)), name="rds")
        plain = tmp_path / "b.md5"
        plain.write_text(f"{hashlib.md5(b'').hexdigest()}  empty\n{'ab' * 16}  x\n")
        import_list(store, plain, name="plain")
        recorded = [(i.name, dict(i.counts), i.zero_length) for i in store.lists()]
        assert recorded == [
            ("rds", {"md5": 11, "sha1": 11, "sha256": 11}, 0),
            ("plain", {"md5": 2}, 1),
        ]
        stats = store.db.execute("SELECT count(*) FROM list_stats").fetchone()[0]
        assert stats == 2
        store.remove_list("plain")
        assert store.db.execute("SELECT count(*) FROM list_stats").fetchone()[0] == 1
        # A store written before list_stats existed: counted the slow way, same answer.
        store.db.execute("DROP TABLE list_stats")
        store.db.conn.commit()
    finally:
        store.close()
    older = HashStore(db, readonly=True)
    try:
        assert [(i.name, dict(i.counts)) for i in older.lists()] == [
            (n, c) for n, c, _ in recorded[:1]
        ]
    finally:
        older.close()
    reopened = HashStore(db)  # a writable open adds the table back
    try:
        assert "list_stats" in reopened.db.table_names()
        assert [i.entries for i in reopened.lists()] == [11]
    finally:
        reopened.close()
