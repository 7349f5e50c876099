"""NSRL RDS v3 imports by SQL (ATTACH + INSERT ... SELECT) equal the row-by-row import."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from collections.abc import Iterator
from pathlib import Path

import pytest

import matcher.store as store_mod
from matcher import sqlite_newer
from matcher.errors import FormatError
from matcher.errors import StoreError
from matcher.errors import UsageError
from matcher.formats import registry
from matcher.importing import import_list
from matcher.models import NewList
from matcher.models import SqlListSource
from matcher.store import HashStore


@pytest.fixture(autouse=True, params=["apsw", "system"])
def engine(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Every copy by SQL here runs on apsw's SQLite and on the system's (Python's sqlite3).

    A test that runs `matcher import` in a child process takes the default
    (apsw), and one whose mechanism is the system's decoding function (a
    Python call per row) takes "system"; each says so with an indirect
    parametrization.
    """
    if request.param == "system":
        monkeypatch.setattr(sqlite_newer, "available", lambda: False)
    else:
        assert sqlite_newer.available(), "apsw (a dependency) is not installed"
    return str(request.param)


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


_PRIMARY_KEY = ",\n  PRIMARY KEY (sha256, sha1, md5, crc32, file_name, file_size, package_id)"


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
        ("AB" * 32, "12" * 20, "C" * 32, "x", "12 bytes", 1),  # a size stored as text
        ("AB" * 32, "12" * 20, "C" * 32, "x", 1.5, 1),  # a size stored as a REAL
        ("AB" * 32, "12" * 20, "C" * 32, "x", b"\x05", 1),  # a size stored as a BLOB
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


@pytest.mark.parametrize(
    "bad",
    [
        ("AB" * 32, "12" * 20, "G" * 32, "x", 1, 1),  # a digest that is not hex
        ("AB" * 32, "12" * 20, "C" * 32, "x", -5, 1),  # a size that is no byte count
    ],
)
def test_a_refused_or_already_imported_copy_leaves_a_store_with_free_pages_byte_for_byte(
    tmp_path: Path, bad: tuple[object, ...]
) -> None:
    """SQLite reuses free pages first and never journals them: a copy rolled back once its
    pages spilled (past the 2 MiB import cache) left its rows' bytes in the store file's free
    pages, so a refused import, or an 'already imported; nothing done', changed the file."""
    rows = rows_for(45_000)  # some 60,000 rows: the copy spills
    good = make_rds(tmp_path / "good.db", rows)
    store = HashStore(tmp_path / "s.db")
    try:
        import_list(store, good)
        import_list(store, make_rds(tmp_path / "other.db", rows[:40_000]), role="notable")
        store.remove_list("other.db")  # leaves free pages
        assert store.db.conn.execute("PRAGMA freelist_count").fetchone()[0] > 100
        before = (tmp_path / "s.db").read_bytes()
        bad_rds = make_rds(tmp_path / "bad.db", [*rows, bad])
        with pytest.raises(FormatError):
            import_list(store, bad_rds)
        assert (tmp_path / "s.db").read_bytes() == before
        copy = tmp_path / "copy-of-good.db"
        copy.write_bytes(good.read_bytes())
        assert import_list(store, copy).already_imported
        assert (tmp_path / "s.db").read_bytes() == before
    finally:
        store.close()
    # Without free pages (the check is skipped there), the rollback cuts the new pages off.
    fresh = HashStore(tmp_path / "fresh.db")
    try:
        import_list(fresh, good)
        assert fresh.db.conn.execute("PRAGMA freelist_count").fetchone()[0] == 0
        before = (tmp_path / "fresh.db").read_bytes()
        with pytest.raises(FormatError):
            import_list(fresh, bad_rds)
        assert (tmp_path / "fresh.db").read_bytes() == before
    finally:
        fresh.close()


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
    reopened = HashStore(db)  # a writable open adds the table back, and fills it once
    try:
        assert "list_stats" in reopened.db.table_names()
        assert [i.entries for i in reopened.lists()] == [11]
        rows = reopened.db.execute("SELECT counts, zero_length, unsized FROM list_stats").fetchall()
        assert [(json.loads(c), z, u) for c, z, u in rows] == [(recorded[0][1], 0, 0)]
    finally:
        reopened.close()


@pytest.mark.parametrize(
    "bad",
    [
        # Each digest is hex and the three together are 136 hex digits, so only
        # a check of each digest's own length can tell that they are misplaced.
        ("AB" * 32, "1" * 41, "C" * 31, "x", 1, 1),
        ("A" * 63, "1" * 41, "C" * 32, "x", 1, 1),
        ("AB" * 32, "1" * 42, "C" * 30, "x", 1, 1),
    ],
)
def test_digests_of_the_wrong_lengths_are_refused_even_when_their_total_fits(
    tmp_path: Path, bad: tuple[object, ...]
) -> None:
    source = make_rds(tmp_path / "rds.db", [*rows_for(20), bad])
    store = HashStore(tmp_path / "s.db")
    try:
        with pytest.raises(FormatError, match="hex digits") as caught:
            import_list(store, source)
        assert "package_id '1'" in str(caught.value) and store.lists() == []
        assert store_content(tmp_path / "s.db") == []
    finally:
        store.close()


def test_lower_and_mixed_case_digests_copy_as_row_by_row(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Rows out of byte order (mixed-case hex) still land right, only slower."""
    rows = rows_for(300)
    mixed = [
        (
            (r[0].lower() if i % 2 else r[0][:10].lower() + r[0][10:]),  # type: ignore[union-attr]
            (r[1].lower() if i % 3 else r[1]),  # type: ignore[union-attr]
            r[2],
            *r[3:],
        )
        for i, r in enumerate(rows)
    ]
    source = make_rds(tmp_path / "rds.db", mixed)
    fast, slow = import_both(tmp_path, source, monkeypatch)
    try:
        assert store_content(tmp_path / "fast.db") == store_content(tmp_path / "slow.db")
        # Note that grouping is by the text, as NSRL gives it: one entry per spelling.
        entries = len({r[:3] for r in mixed})
        assert fast.lists()[0].counts == {"md5": entries, "sha1": entries, "sha256": entries}
        sha256 = bytes.fromhex(triple(b"file 7")[0])
        [hit] = fast.lookup("sha256", [sha256])[sha256]
        assert (hit.name, hit.size) == ("name-7.dll", 7)
    finally:
        fast.close()
        slow.close()


def test_a_plain_select_is_copied_like_one_given_in_parts(tmp_path: Path) -> None:
    """The store wraps a source's SELECT when it is not given in parts: same store."""
    source = make_rds(tmp_path / "rds.db", rows_for(200))
    reader = registry.get("nsrl-rds3")
    parts = reader.sql_source(source)  # type: ignore[attr-defined]
    plain = SqlListSource(path=source, select=parts.select, algorithms=parts.algorithms)
    assert not plain.digests and plain.ordered_by is None
    contents = []
    for name, sql_source in (("parts", parts), ("plain", plain)):
        store = HashStore(tmp_path / f"{name}.db")
        try:
            new = NewList(name, "known", "nsrl-rds3", "0" * 64, str(source), {})
            info = store.add_list_sql(new, sql_source)
            assert info is not None and info.entries == 201
        finally:
            store.close()
        contents.append(store_content(tmp_path / f"{name}.db"))
    assert contents[0] == contents[1] and len(contents[0]) == 201 * 3


@pytest.mark.parametrize("engine", ["system"], indirect=True)
def test_the_copy_bounds_the_page_cache_and_restores_the_settings(tmp_path: Path) -> None:
    store = HashStore(tmp_path / "s.db")
    seen: list[str] = []
    try:
        before = [
            store.db.execute(f"PRAGMA {p}").fetchone()[0]
            for p in ("cache_size", "foreign_keys", "threads")
        ]
        assert before == [-262144, 1, 0]
        store.db.conn.set_trace_callback(seen.append)
        import_list(store, make_rds(tmp_path / "a.db", rows_for(30)), name="good")
        bad = make_rds(
            tmp_path / "b.db", [*rows_for(5), ("AB" * 32, "1" * 40, "G" * 32, "x", 1, 1)]
        )
        with pytest.raises(FormatError):
            import_list(store, bad, name="bad")  # rolled back, then refused row by row
        store.db.conn.set_trace_callback(None)
        after = [
            store.db.execute(f"PRAGMA {p}").fetchone()[0]
            for p in ("cache_size", "foreign_keys", "threads")
        ]
        assert after == before
        bounded = f"PRAGMA main.cache_size = {-store_mod.IMPORT_CACHE_KIB}"
        # Two copies by SQL, and the row-by-row import that named the bad row.
        assert seen.count(bounded) == 3 and [i.name for i in store.lists()] == ["good"]
        # The sorter's helper threads were on for each copy (none on one core).
        threads = f"PRAGMA threads = {store_mod._sorter_threads()}"
        assert seen.count(threads) == 3
        # The bulk copy ran with foreign keys off; what it wrote still satisfies them.
        assert store.db.execute("PRAGMA foreign_key_check").fetchall() == []
    finally:
        store.close()


@pytest.mark.parametrize("engine", ["apsw"], indirect=True)
def test_a_copy_on_apsw_bounds_its_cache_and_leaves_the_store_connection_as_it_was(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The copy runs on its own connection, bounded, and decodes with SQLite's unhex()."""
    store = HashStore(tmp_path / "s.db")
    seen: list[str] = []
    real = sqlite_newer.Connection.execute

    def execute(self: sqlite_newer.Connection, sql: str, *args: object) -> object:
        seen.append(sql)
        return real(self, sql, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(sqlite_newer.Connection, "execute", execute)
    try:
        before = [
            store.db.execute(f"PRAGMA {p}").fetchone()[0]
            for p in ("cache_size", "foreign_keys", "threads", "busy_timeout")
        ]
        import_list(store, make_rds(tmp_path / "a.db", rows_for(30)), name="good")
        after = [
            store.db.execute(f"PRAGMA {p}").fetchone()[0]
            for p in ("cache_size", "foreign_keys", "threads", "busy_timeout")
        ]
        assert after == before == [-262144, 1, 0, 10000]
        assert f"PRAGMA main.cache_size = {-store_mod.IMPORT_CACHE_KIB}" in seen
        walk = [sql for sql in seen if sql.startswith("INSERT INTO temp.matcher_import")]
        assert walk and all("unhex(CASE" in sql and "matcher_unhex" not in sql for sql in walk)
        assert [i.name for i in store.lists()] == ["good"]
        assert store.db.execute("PRAGMA foreign_key_check").fetchall() == []
    finally:
        store.close()


def test_a_second_open_store_of_the_file_keeps_the_copy_on_the_system_sqlite(
    tmp_path: Path, engine: str
) -> None:
    """Two copies of SQLite never hold one file at once in a process (POSIX locks)."""
    used: list[bool] = []
    real = HashStore._copy_sql

    def copy(self: HashStore, *args: object) -> object:
        used.append(bool(args[4]))  # newer: (new, source, old, source_digest, newer, ...)
        return real(self, *args)  # type: ignore[arg-type]

    store = HashStore(tmp_path / "s.db")
    other = HashStore(tmp_path / "s.db", readonly=True)
    try:
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(HashStore, "_copy_sql", copy)
            import_list(store, make_rds(tmp_path / "a.db", rows_for(10)), name="a")
            other.close()
            import_list(store, make_rds(tmp_path / "b.db", rows_for(12)), name="b")
        assert used == [False, engine == "apsw"]
        assert [(i.name, i.entries) for i in store.lists()] == [("a", 11), ("b", 13)]
    finally:
        other.close()
        store.close()


# Memory and crashes at a larger size (SQL generates the RDS in seconds) ----------------------

_GENERATE = """
WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i + 1 < {rows})
INSERT INTO FILE SELECT * FROM (SELECT hex(randomblob(32)), hex(randomblob(20)),
  hex(randomblob(16)), '00000000', 'file-' || i || '.dll', abs(random() % 16777216), i % 5000
  FROM n) ORDER BY 1
"""


def make_big_rds(path: Path, rows: int) -> Path:
    conn = sqlite3.connect(path)
    conn.executescript(DDL)
    conn.execute(_GENERATE.format(rows=rows))
    conn.commit()
    conn.close()
    return path


def _peak_rss_kib(source: Path, db: Path) -> int:
    def two_cores() -> None:  # the sorter's threads follow the usable cores: fix them
        os.sched_setaffinity(0, sorted(os.sched_getaffinity(0))[:2])

    proc = subprocess.Popen(
        [sys.executable, "-m", "matcher", "import", str(source), "--db", str(db)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        preexec_fn=two_cores,
    )
    assert proc.stderr is not None
    with proc.stderr:
        err = proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    assert proc.returncode == 0, err
    return usage.ru_maxrss


@pytest.mark.slow
@pytest.mark.parametrize("engine", ["apsw"], indirect=True)
def test_memory_stays_flat_as_the_rds_grows(tmp_path: Path) -> None:
    """Twice the rows, the same peak: the page cache and the sorter are bounded.

    Both sizes are past the bound (IMPORT_CACHE_KIB per sorter thread, and
    the cache): on 2 cores (the child is pinned to them) the peak still grows up to 500,000
    rows. Before the bound, the peak grew with the store: about +60 MiB
    between 200,000 and 600,000 rows.
    """
    medium = _peak_rss_kib(make_big_rds(tmp_path / "m.db", 600_000), tmp_path / "s1.db")
    large = _peak_rss_kib(make_big_rds(tmp_path / "l.db", 1_200_000), tmp_path / "s2.db")
    assert large - medium < 4096, (medium, large)


@pytest.mark.slow
@pytest.mark.parametrize("engine", ["apsw"], indirect=True)
def test_kill_9_during_an_rds_copy_leaves_the_store_as_it_was(tmp_path: Path) -> None:
    """Killed once the copy has spilled pages into the store file (a hot journal)."""
    db = tmp_path / "s.db"
    seed = make_rds(tmp_path / "seed.db", rows_for(10))
    store = HashStore(db)
    import_list(store, seed, name="seed")
    store.close()
    before = _state(db)
    size = db.stat().st_size
    source = make_big_rds(tmp_path / "big.db", 600_000)
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    proc = subprocess.Popen(
        [sys.executable, "-m", "matcher", "import", str(source), "--db", str(db)],
        stderr=subprocess.PIPE,
        env={**os.environ, "SQLITE_TMPDIR": str(scratch)},
    )
    try:
        deadline = time.monotonic() + 120
        while db.stat().st_size <= size and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.001)
        assert proc.poll() is None, "the import finished before it could be killed"
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.communicate(timeout=60)
    assert Path(f"{db}-journal").exists(), "killed before the copy wrote into the store"
    # The second half's staging process died with it, and its scratch file with both.
    assert list(scratch.iterdir()) == []
    listed = subprocess.run(
        [sys.executable, "-m", "matcher", "lists", "--db", str(db), "--json"],
        capture_output=True,
        timeout=60,
    )
    assert listed.returncode == 0 and [i["name"] for i in json.loads(listed.stdout)] == ["seed"]
    assert _state(db) == before


def _state(db: Path) -> dict[str, object]:
    conn = sqlite3.connect(db)
    try:
        return {
            "integrity": conn.execute("PRAGMA integrity_check").fetchall(),
            **{
                t: conn.execute(f"SELECT * FROM {t} ORDER BY 1").fetchall()
                for t in ("lists", "entries", "hashes", "list_stats")
            },
        }
    finally:
        conn.close()


def test_a_package_id_that_is_not_text_is_named_and_a_utf8_blob_one_is_text(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """package_id as bytes: UTF-8 ones are its text; others are refused, naming the row.

    The copy by SQL takes only text ids (it cannot check bytes for UTF-8), so
    such a list goes row by row.
    """
    sha256, sha1, md5 = triple(b"blob id")
    fine = make_rds(tmp_path / "fine.db", [*rows_for(10), (sha256, sha1, md5, "b.dll", 3, b"42")])
    store = HashStore(tmp_path / "fine-store.db")
    try:
        with monkeypatch.context() as patch:
            copies: list[object] = []
            real = HashStore.add_list_sql

            def spy(self: HashStore, *args: object, **kwargs: object) -> object:
                copies.append(real(self, *args, **kwargs))  # type: ignore[arg-type]
                return copies[-1]

            patch.setattr(HashStore, "add_list_sql", spy)
            result = import_list(store, fine)
        assert copies == [None] and result.info.entries == 12
        [hit] = store.lookup("md5", [bytes.fromhex(md5)])[bytes.fromhex(md5)]
        assert hit.ident == "42"
        assert store.db.execute(
            "SELECT count(*) FROM entries WHERE typeof(ident) != 'text'"
        ).fetchone() == (0,)
    finally:
        store.close()
    bad = make_rds(tmp_path / "bad.db", [*rows_for(10), (sha256, sha1, md5, "b.dll", 3, b"\x80")])
    store = HashStore(tmp_path / "s.db")
    try:
        with pytest.raises(FormatError, match="package_id is not text: x'80'"):
            import_list(store, bad)
        assert store.lists() == [] and store_content(tmp_path / "s.db") == []
        result = import_list(store, bad, skip_invalid=True)
        assert result.skipped_invalid == 1 and result.info.entries == 11
    finally:
        store.close()


# Two processes walking the two halves of an RDS ----------------------------------------------


def _whole_store(db: Path) -> dict[str, object]:
    """Every row that an import writes, ids included (the import time aside)."""
    conn = sqlite3.connect(db)
    try:
        return {
            "lists": conn.execute(
                "SELECT id, name, role, format, source_sha256, entries, metadata FROM lists"
            ).fetchall(),
            **{
                t: conn.execute(f"SELECT * FROM {t} ORDER BY 1, 2, 3").fetchall()
                for t in ("entries", "hashes", "list_stats")
            },
        }
    finally:
        conn.close()


def _split(
    patch: pytest.MonkeyPatch, tmp_path: Path, split: bool = True, child_fill: object = None
) -> None:
    """Make the store split every RDS walk it can (or none), with its scratch files in tmp_path."""
    patch.setattr(store_mod, "PARALLEL_STAGING_MIN_BYTES", 0 if split else 1 << 62)
    patch.setattr(store_mod, "usable_cores", lambda: 2)  # the same on a one-core machine
    if child_fill is not None:
        patch.setattr(store_mod, "ChildFill", child_fill)
    patch.setenv("SQLITE_TMPDIR", str(tmp_path / "scratch"))


def _import_with_halves(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    source: Path,
    db: Path,
    halves: bool,
    children: list[object] | None = None,
) -> tuple[list[object], int]:
    """Import `source` into `db`: the staging children started, and the scratch files left."""
    children = [] if children is None else children
    real = store_mod.ChildFill

    def spy(*args: object, **kwargs: object) -> object:
        children.append(args)
        return real(*args, **kwargs)  # type: ignore[arg-type]

    with monkeypatch.context() as patch:
        _split(patch, tmp_path, halves, spy)
        store = HashStore(db)
        try:
            import_list(store, source)
            attached = [r[1] for r in store.db.execute("PRAGMA database_list")]
            assert attached in (["main"], ["main", "temp"]), attached
        finally:
            store.close()
    return children, len(list((tmp_path / "scratch").iterdir()))


def test_two_processes_on_the_two_halves_write_exactly_what_one_walk_writes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Same entries with the same ids, same digests, same counts; no scratch file left.

    The entry ids follow the walk's order, so the second half's rows must come
    after the first's: a seed list first makes the ids start past 1.
    """
    (tmp_path / "scratch").mkdir()
    source = make_rds(tmp_path / "rds.db", rows_for(400))
    conn = sqlite3.connect(source)
    low, rows = conn.execute("SELECT sum(sha256 < '8'), count(*) FROM FILE").fetchone()
    conn.close()
    assert 0 < low < rows, "both halves must hold rows"
    seed = make_rds(tmp_path / "seed.db", [(*triple(b"seed"), "seed.dll", 1, 1)])
    stores = {}
    for halves in (False, True):
        db = tmp_path / f"store-{halves}.db"
        store = HashStore(db)
        import_list(store, seed, name="seed")
        store.close()
        children, left = _import_with_halves(tmp_path, monkeypatch, source, db, halves)
        assert len(children) == int(halves) and left == 0
        stores[halves] = _whole_store(db)
    assert stores[True] == stores[False]
    assert stores[True]["lists"][1][5] == 401  # type: ignore[index]


def _big_with(tmp_path: Path, extra: list[tuple[object, ...]]) -> Path:
    """A 60,000-row RDS (enough for the child's page cache to spill) and `extra` rows."""
    source = make_big_rds(tmp_path / "rds.db", 60_000)
    conn = sqlite3.connect(source)
    conn.executemany("INSERT INTO FILE VALUES (?, ?, ?, '00000000', ?, ?, ?)", extra)
    conn.commit()
    conn.close()
    return source


def _still_usable(store: HashStore, tmp_path: Path) -> None:
    """The connection took no harm: nothing left attached, and a further import on it works."""
    assert [r[1] for r in store.db.execute("PRAGMA database_list")] in (["main"], ["main", "temp"])
    result = import_list(store, make_rds(tmp_path / "good.db", rows_for(5)), name="good")
    assert result.info.entries == 6


@pytest.mark.parametrize("fault", ["digest", "size"])
@pytest.mark.parametrize("key", ["00" * 32, "FF" * 32])
def test_a_bad_row_in_either_half_is_named_and_the_store_is_unchanged(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, key: str, fault: str
) -> None:
    """A bad row stops the half that meets it (this process's or the child's): row by row names it.

    FF... is the child's last row: it has written pages of its scratch file by
    then, which SQLite cannot read after it stopped; the store must not try.
    The same connection goes on working, with nothing left attached.
    """
    (tmp_path / "scratch").mkdir()
    bad = (key, "12" * 20, "G" * 32, "x.dll", 1, 1) if fault == "digest" else (key, "12" * 20, "C" * 32, "x.dll", -5, 1)
    source = _big_with(tmp_path, [bad])
    db = tmp_path / "s.db"
    store = HashStore(db)
    children: list[object] = []
    real = store_mod.ChildFill

    def spy(*args: object, **kwargs: object) -> object:
        children.append(args)
        return real(*args, **kwargs)  # type: ignore[arg-type]

    try:
        with monkeypatch.context() as patch:
            _split(patch, tmp_path, child_fill=spy)
            with pytest.raises(FormatError) as caught:
                import_list(store, source)
        assert len(children) == 1
        said = "md5 is not 32 hex digits" if fault == "digest" else "file_size is not a byte count"
        assert "'x.dll'" in str(caught.value) and said in str(caught.value)
        assert str(source) in str(caught.value)
        assert list((tmp_path / "scratch").iterdir()) == []
        assert store.lists() == [] and store_content(db) == []
        _still_usable(store, tmp_path)
    finally:
        store.close()


@pytest.mark.parametrize("engine", ["system"], indirect=True)
def test_a_staging_child_killed_mid_walk_fails_the_import_cleanly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Killed (as by the OOM killer) after it has spilled pages: StoreError, store unchanged.

    The connection stays usable afterwards, and no scratch file is left.
    """
    (tmp_path / "scratch").mkdir()
    source = _big_with(tmp_path, [])
    store = HashStore(tmp_path / "s.db")
    parent, real, calls = os.getpid(), store_mod.binascii.a2b_hex, [0]

    def unhex(data: bytes) -> bytes:
        if os.getpid() != parent:
            calls[0] += 1
            if calls[0] == 25_000:
                os.kill(os.getpid(), signal.SIGKILL)
        return real(data)

    try:
        with monkeypatch.context() as patch:
            _split(patch, tmp_path)
            patch.setattr(store_mod.binascii, "a2b_hex", unhex)
            with pytest.raises(StoreError, match="killed by signal 9"):
                import_list(store, source)
        assert list((tmp_path / "scratch").iterdir()) == []
        assert store.lists() == [] and store_content(tmp_path / "s.db") == []
        _still_usable(store, tmp_path)
    finally:
        store.close()


def test_only_an_index_walk_without_null_digests_is_split(tmp_path: Path) -> None:
    """A walk SQLite sorts (FILE a view, or no index) picks tied rows its own way: one walk."""
    reader = registry.get("nsrl-rds3")
    samples = Path(__file__).parent / "formats" / "samples" / "synthetic" / "nsrl_rds3"
    assert reader.sql_source(samples / "RDS_synthetic_minimal.db").halves is not None
    assert reader.sql_source(samples / "RDS_synthetic_full.db").halves is None
    unindexed = tmp_path / "noindex.db"
    conn = sqlite3.connect(unindexed)
    conn.executescript(DDL.replace(_PRIMARY_KEY, ""))
    [sql] = conn.execute("SELECT sql FROM sqlite_master WHERE name = 'FILE'").fetchone()
    conn.close()
    assert "PRIMARY KEY" not in sql
    assert reader.sql_source(unindexed).halves is None
    nullable = tmp_path / "null.db"
    conn = sqlite3.connect(nullable)
    conn.executescript(DDL.replace("sha256 VARCHAR NOT NULL", "sha256 VARCHAR"))
    row = (None, *triple(b"n")[1:], "00000000", "n.dll", 1, 1)
    conn.execute("INSERT INTO FILE VALUES (?, ?, ?, ?, ?, ?, ?)", row)
    conn.commit()
    conn.close()
    assert reader.sql_source(nullable).halves is None


def test_a_child_fill_counts_its_rows_reports_sql_errors_and_its_death(tmp_path: Path) -> None:
    def fresh(name: str) -> Path:
        path = tmp_path / name
        sqlite3.connect(path).close()
        return path

    # The parent holds the file open (as the store's ATTACH does); the child
    # removes the name once it has its own connection, and the data stays readable.
    path = fresh("ok.db")
    holder = sqlite3.connect(path)
    script = ["CREATE TABLE t (x)", "INSERT INTO t SELECT value FROM json_each('[1,2,3]')"]
    assert store_mod.ChildFill(path, {}, script, {}).wait() == 3
    assert not path.exists()
    assert holder.execute("SELECT sum(x) FROM t").fetchone() == (6,)
    holder.close()
    with pytest.raises(sqlite3.OperationalError, match="no such table: missing"):
        store_mod.ChildFill(fresh("e.db"), {}, ["INSERT INTO missing VALUES (1)"], {}).wait()

    def die(value: object) -> bytes:
        os._exit(3)

    with pytest.raises(sqlite3.OperationalError, match="without a result .exit status 3"):
        store_mod.ChildFill(fresh("d.db"), {}, ["SELECT die(1)"], {"die": die}).wait()
    endless = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT max(x) FROM c"
    child = store_mod.ChildFill(fresh("k.db"), {}, [endless], {})
    started = time.monotonic()
    child.cancel()
    assert time.monotonic() - started < 10
    child.cancel()  # a second cancel does nothing
    # Interrupted while it waits (Ctrl-C): the child is left to cancel(), which stops it.
    child = store_mod.ChildFill(fresh("i.db"), {}, [endless], {})

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGALRM, interrupt)
    try:
        signal.setitimer(signal.ITIMER_REAL, 0.3)
        with pytest.raises(KeyboardInterrupt):
            child.wait()
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    child.cancel()


def test_the_copy_takes_ids_and_labels_by_their_type_as_typeof_tells_it() -> None:
    """_TAKEN_AS_IS tells types by SQLite's order of values (NULL < numbers < text < BLOBs),
    cheaper than typeof(): it must take exactly NULL, numbers and printable ASCII text."""
    values: list[object] = [None, 0, -7, 5.0, 2.5, 2**63 - 1, "", " ", "~", "A-1", "5",
                            "caf\u00e9", "a\x00b", "\x7f", "tab\t", b"", b"abc"]  # fmt: skip
    conn = sqlite3.connect(":memory:")
    conn.execute("CREATE TABLE t (raw BLOB, size, name, ident, label, walked)")
    conn.executemany(
        "INSERT INTO t (size, ident, label) VALUES (1, ?, ?)",
        [(ident, label) for ident in values for label in values],
    )
    taken = conn.execute(
        f"SELECT ident, label, typeof(ident), typeof(label) FROM t WHERE {store_mod._TAKEN_AS_IS}"
    ).fetchall()
    conn.close()

    def plain(value: object) -> bool:
        return value is None or isinstance(value, (int, float)) or (
            isinstance(value, str) and all(" " <= ch <= "~" for ch in value)
        )

    expected = [(i, lab) for i in values for lab in values if plain(i) and plain(lab)]
    assert [(row[0], row[1]) for row in taken] == expected
    assert {row[2] for row in taken} == {"null", "integer", "real", "text"}


def _query_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "matcher-query"]


def _no_query_thread_left() -> bool:
    """Whether every QueryInThread thread has ended (waited for up to 5 s)."""
    deadline = time.monotonic() + 5
    while _query_threads() and time.monotonic() < deadline:
        time.sleep(0.01)
    return not _query_threads()


def _interrupted_after(seconds: float, action: Callable[[], object]) -> None:
    """Run `action` with a Ctrl-C (KeyboardInterrupt) landing `seconds` into it."""

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGALRM, interrupt)
    try:
        signal.setitimer(signal.ITIMER_REAL, seconds)
        with pytest.raises(KeyboardInterrupt):
            action()
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


_ENDLESS = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT max(x) FROM c"


def test_a_query_in_a_thread_gives_its_row_or_its_error_and_stops_when_closed(
    tmp_path: Path,
) -> None:
    """The source's own row count runs on its own connection in a thread (QueryInThread)."""
    source = make_rds(tmp_path / "rds.db", rows_for(30))
    uri = source.absolute().as_uri() + "?mode=ro&immutable=1"
    query = store_mod.QueryInThread({"src": uri})
    query.start("SELECT count(*) FROM src.FILE")
    assert query.result() == (41,) and query.result() == (41,)
    failing = store_mod.QueryInThread({"src": uri})
    failing.start("SELECT count(*) FROM src.MISSING")
    with pytest.raises(sqlite3.OperationalError, match="no such table"):
        failing.result()
    started = time.monotonic()
    running = store_mod.QueryInThread({})
    running.start(_ENDLESS)
    running.close()
    assert time.monotonic() - started < 10 and _no_query_thread_left()
    with pytest.raises(sqlite3.OperationalError, match="interrupted"):
        running.result()
    running.close()  # a second close does nothing
    never = store_mod.QueryInThread({})
    never.close()  # never started: nothing to wait for
    # A Ctrl-C while result() waits leaves the query to close(), which stops it (a review:
    # the thread was dropped before the wait, and kept running with its connection open).
    interrupted = store_mod.QueryInThread({})
    interrupted.start(_ENDLESS)
    _interrupted_after(0.2, interrupted.result)
    interrupted.close()
    assert _no_query_thread_left()


def test_ctrl_c_while_the_import_waits_for_the_sources_count_stops_the_count(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The import waits for the source's count before its commit; a Ctrl-C there ends it all."""
    source = make_rds(tmp_path / "rds.db", rows_for(50))
    store = HashStore(tmp_path / "s.db")
    real = store_mod.QueryInThread

    class Endless(real):  # type: ignore[misc,valid-type]
        def start(self, sql: str) -> None:
            super().start(_ENDLESS)

    try:
        with monkeypatch.context() as patch:
            _split(patch, tmp_path)
            (tmp_path / "scratch").mkdir()
            patch.setattr(store_mod, "QueryInThread", Endless)
            _interrupted_after(0.5, lambda: import_list(store, source))
        assert _no_query_thread_left()
        assert store.lists() == [] and store_content(tmp_path / "s.db") == []
        assert list((tmp_path / "scratch").iterdir()) == []
    finally:
        store.close()


def test_a_sorted_walk_picks_the_same_row_of_equal_names_on_any_machine(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A sorted walk (no index, or a view): an entry takes its row of least (name, size, package).

    Where SQLite sorts to group, rows of one entry with equal names came in
    the sorter's order, which its threads and memory change: a store then
    depended on the machine's cores. Both paths (SQL, row by row) and any
    number of sorter threads now give that one row.
    """
    source = tmp_path / "sorted.db"
    conn = sqlite3.connect(source)
    conn.executescript(DDL.replace(_PRIMARY_KEY, ""))
    conn.executescript(
        "WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i + 1 < 20000), "
        "g AS MATERIALIZED (SELECT i, hex(randomblob(32)) AS a, hex(randomblob(20)) AS b, "
        "hex(randomblob(16)) AS c FROM n) "
        "INSERT INTO FILE SELECT a, b, c, '00000000', 'same.dll', abs(random() % 1000), "
        "abs(random() % 1000) FROM g, (SELECT 1 UNION ALL SELECT 2 UNION ALL SELECT 3);"
    )
    expected = {
        bytes.fromhex(sha256): (size, str(package))
        for sha256, size, package in conn.execute(
            "SELECT sha256, file_size, package_id FROM (SELECT *, row_number() OVER "
            "(PARTITION BY sha256 ORDER BY file_size, package_id) AS r FROM FILE) WHERE r = 1"
        )
    }
    conn.close()
    assert registry.get("nsrl-rds3").sql_source(source).halves is None
    stores = []
    for threads in (0, 4):
        (tmp_path / f"t{threads}").mkdir()
        with monkeypatch.context() as patch:
            patch.setattr(store_mod, "_sorter_threads", lambda threads=threads: threads)
            fast, slow = import_both(tmp_path / f"t{threads}", source, monkeypatch)
        for store in (fast, slow):
            got = {
                bytes(d): (size, ident)
                for d, size, ident in store.db.execute(
                    "SELECT h.digest, e.size, e.ident FROM hashes h "
                    "JOIN entries e ON e.id = h.entry_id WHERE h.algo = 3"
                )
            }
            assert got == expected
            store.close()
        stores.append(store_content(tmp_path / f"t{threads}" / "fast.db"))
    assert stores[0] == stores[1]


def test_ctrl_c_while_the_staging_child_starts_leaves_nothing_behind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Interrupted between the scratch file's creation and the child's start: all undone."""
    (tmp_path / "scratch").mkdir()
    source = make_rds(tmp_path / "rds.db", rows_for(50))
    store = HashStore(tmp_path / "s.db")

    def interrupted(*args: object, **kwargs: object) -> object:
        raise KeyboardInterrupt

    try:
        with monkeypatch.context() as patch:
            _split(patch, tmp_path, child_fill=interrupted)
            with pytest.raises(KeyboardInterrupt):
                import_list(store, source)
        assert list((tmp_path / "scratch").iterdir()) == []
        assert store.lists() == []
        _still_usable(store, tmp_path)
    finally:
        store.close()


@pytest.mark.parametrize("indexed", [True, False])
def test_a_null_name_never_wins_an_entry(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, indexed: bool
) -> None:
    """An entry's row has the least name that is not NULL, by an index walk or a sorted one."""
    ddl = DDL.replace("file_name VARCHAR NOT NULL", "file_name VARCHAR")
    source = tmp_path / "rds.db"
    conn = sqlite3.connect(source)
    conn.executescript(ddl if indexed else ddl.replace(_PRIMARY_KEY, ""))
    sha256, sha1, md5 = triple(b"setup")
    conn.executemany(
        "INSERT INTO FILE VALUES (?, ?, ?, '00000000', ?, ?, ?)",
        [(sha256, sha1, md5, "setup.exe", 100, 1), (sha256, sha1, md5, None, 999, 2)],
    )
    conn.commit()
    conn.close()
    fast, slow = import_both(tmp_path, source, monkeypatch)
    try:
        for store in (fast, slow):
            [hit] = store.lookup("md5", [bytes.fromhex(md5)])[bytes.fromhex(md5)]
            assert (hit.name, hit.size, hit.ident) == ("setup.exe", 100, "1")
    finally:
        fast.close()
        slow.close()


@pytest.mark.parametrize("engine", ["apsw"], indirect=True)
def test_ctrl_c_inside_a_long_statement_ends_it_and_the_store_is_unchanged(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A signal lands between Python bytecodes: the progress handler gives it one, mid-statement.

    The KeyboardInterrupt raised there ends the copy (never a fallback to a
    read row by row), the import is rolled back, and the store still works.
    """
    source = make_big_rds(tmp_path / "big.db", 60_000)
    store = HashStore(tmp_path / "s.db")
    calls = [0]

    def handler() -> bool:
        calls[0] += 1
        if calls[0] == 3:
            raise KeyboardInterrupt
        return False

    monkeypatch.setattr(sqlite_newer, "SIGNAL_CHECK_STEPS", 1000)
    monkeypatch.setattr(sqlite_newer, "_let_signals_in", handler)
    monkeypatch.setattr(HashStore, "add_list", lambda *a, **k: pytest.fail("row by row"))
    try:
        with pytest.raises(KeyboardInterrupt):
            import_list(store, source)
        assert calls[0] == 3
        assert store.lists() == [] and store_content(tmp_path / "s.db") == []
        _still_usable(store, tmp_path)
    finally:
        store.close()


@pytest.mark.parametrize("engine", ["apsw"], indirect=True)
def test_a_newer_connection_that_cannot_open_leaves_the_copy_on_the_system_sqlite(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refused(uri: str) -> None:
        raise sqlite3.OperationalError("unable to open database file")

    monkeypatch.setattr(sqlite_newer, "Connection", refused)
    source = make_rds(tmp_path / "rds.db", rows_for(40))
    store = HashStore(tmp_path / "s.db")
    try:
        result = import_list(store, source)
        assert result.info.entries == 41
        assert store.db.execute("PRAGMA cache_size").fetchone()[0] == -262144
        assert store_content(tmp_path / "s.db") != []
    finally:
        store.close()


def test_a_damaged_rds_is_named_not_the_store(tmp_path: Path) -> None:
    """A damaged list stopped the copy with "Import into s.db failed and was rolled back:
    database disk image is malformed": the examiner was told the store was corrupt."""
    source = make_rds(tmp_path / "rds.db", rows_for(3000))
    page = sqlite3.connect(source).execute("PRAGMA page_size").fetchone()[0]
    with open(source, "r+b") as damaged:
        damaged.seek(page * 10 + 100)
        damaged.write(b"\xa5" * 200)
    store = HashStore(tmp_path / "s.db")
    try:
        before = store_content(tmp_path / "s.db")
        with pytest.raises(FormatError) as caught:
            import_list(store, source)
        assert str(source) in str(caught.value) and "is damaged" in str(caught.value)
        assert store_content(tmp_path / "s.db") == before and store.lists() == []
    finally:
        store.close()


def test_a_damaged_rds_walked_in_two_halves_is_refused_not_imported_in_part(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each half starts by a seek on the index; damaged pages sent a seek elsewhere in
    silence: 5,907 of 9,003 digests imported, exit 0 (one walk from the start failed)."""
    import random

    monkeypatch.setattr(store_mod, "PARALLEL_STAGING_MIN_BYTES", 0)
    monkeypatch.setattr(store_mod, "usable_cores", lambda: 2)
    source = make_rds(tmp_path / "rds.db", rows_for(3000))
    size = source.stat().st_size
    with open(source, "r+b") as damaged:
        for offset in (size // 3, size // 2, 2 * size // 3):
            damaged.seek(offset - offset % 4096 + 100)
            damaged.write(random.Random(offset).randbytes(1500))
    store = HashStore(tmp_path / "s.db")
    try:
        with pytest.raises(FormatError) as caught:
            import_list(store, source)
        assert str(source) in str(caught.value) and "damaged" in str(caught.value)
        assert store.lists() == [] and store_content(tmp_path / "s.db") == []
    finally:
        store.close()


@pytest.mark.parametrize("free", [True, False])
def test_a_split_walk_short_of_the_sources_own_count_is_refused_with_the_store_byte_for_byte(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, free: bool
) -> None:
    """The source's own count runs in a thread while the copy writes, and is checked before
    the commit; with free pages in the store (which SQLite fills first and never journals:
    a rolled-back copy left its bytes there), before the copy writes anything."""
    rows = rows_for(45_000)  # some 60,000 rows: the copy spills past its cache
    good = make_rds(tmp_path / "good.db", rows)
    store = HashStore(tmp_path / "s.db")
    try:
        import_list(store, good)
        if free:
            import_list(store, make_rds(tmp_path / "other.db", rows[:40_000]), role="notable")
            store.remove_list("other.db")
        assert (store.db.conn.execute("PRAGMA freelist_count").fetchone()[0] > 100) is free
        before = (tmp_path / "s.db").read_bytes()
        real = store_mod.QueryInThread

        class OneMore(real):  # type: ignore[misc,valid-type]
            def start(self, sql: str) -> None:
                assert sql == "SELECT count(*) FROM src.FILE NOT INDEXED"
                super().start("SELECT count(*) + 1 FROM src.FILE NOT INDEXED")

        with monkeypatch.context() as patch:
            _split(patch, tmp_path)
            (tmp_path / "scratch").mkdir()
            patch.setattr(store_mod, "QueryInThread", OneMore)
            fresh_rows = [(*triple(b"next %d" % i), f"n-{i}.dll", i, 1) for i in range(60_000)]
            source = make_rds(tmp_path / "next.db", fresh_rows)
            with pytest.raises(FormatError) as caught:
                import_list(store, source)
        assert "its index gives 60,000 rows, but it holds 60,001" in str(caught.value)
        assert (tmp_path / "s.db").read_bytes() == before
        assert [info.name for info in store.lists()] == ["good.db"]
    finally:
        store.close()


@pytest.mark.parametrize(("split", "bad_row", "skip_invalid"),
                         [(True, "size", False), (True, "size", True), (True, "hex", True),
                          (True, "short", False), (True, "nul", True), (False, "nul", False),
                          (False, "hex", True), (False, None, False), (True, "null", True),
                          (False, "null", True)])  # fmt: skip
def test_a_damaged_index_is_refused_split_or_not_even_with_a_row_to_take_row_by_row(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, split: bool, bad_row: str | None,
    skip_invalid: bool,
) -> None:  # fmt: skip
    """Reviews: a row the copy cannot take (a negative size; on the system's SQLite, a digest
    that is not hex, which stopped the walk) switched the damage check off, and the row-by-row
    import that followed read the damaged index in silence: the bad row was named, and
    --skip-invalid imported the list in part, exit 0. A walk in one process (a list under
    64 MB, or one core) was never checked: imported in part, exit 0."""
    sha256, sha1, md5 = triple(b"bad")
    bad = {
        "size": [(sha256, sha1, md5, "b.dll", -5, 1)],
        "hex": [(sha256, sha1, "Z" * 32, "b.dll", 5, 1)],
        "short": [(sha256, sha1[:-2], md5, "b.dll", 5, 1)],
        "nul": [(sha256, sha1, md5[:-1] + "\0", "b.dll", 5, 1)],  # where GLOB stops
        # A schema without NOT NULL: the reader splits no walk, which still reads the index.
        "null": [(None, sha1, md5, "b.dll", 5, 1)],
        None: [],
    }[bad_row]
    source = tmp_path / "rds.db"
    conn = sqlite3.connect(source)
    conn.executescript(DDL.replace("sha256 VARCHAR NOT NULL", "sha256 VARCHAR"))
    conn.executemany("INSERT INTO FILE VALUES (?, ?, ?, '00000000', ?, ?, ?)", [*rows_for(3000), *bad])
    conn.commit()
    conn.close()
    conn = sqlite3.connect(source)
    leaves = conn.execute(
        "SELECT pageno, ncell FROM dbstat WHERE name = 'sqlite_autoindex_FILE_1' "
        "AND pagetype = 'leaf' ORDER BY path"
    ).fetchall()
    page = conn.execute("PRAGMA page_size").fetchone()[0]
    conn.close()
    # One leaf's bytes written over its neighbour's (a stray write): the index is still a
    # valid B-tree to a walk, with fewer rows than the table holds.
    (target, _), (copied, _) = next(
        (a, b) for a, b in zip(leaves[1:], leaves[2:], strict=False) if a[1] != b[1]
    )
    with open(source, "r+b") as damaged:
        damaged.seek((copied - 1) * page)
        content = damaged.read(page)
        damaged.seek((target - 1) * page)
        damaged.write(content)
    store = HashStore(tmp_path / "s.db")
    try:
        with monkeypatch.context() as patch:
            _split(patch, tmp_path, split)
            (tmp_path / "scratch").mkdir()
            with pytest.raises(FormatError, match="the SQLite database is damaged: its index"):
                import_list(store, source, skip_invalid=skip_invalid)
        assert store.lists() == [] and store_content(tmp_path / "s.db") == []
    finally:
        store.close()


@pytest.mark.parametrize("replacement", ["another list", "not a database", "none"])
def test_a_source_replaced_once_walked_is_counted_as_the_file_walked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, replacement: str
) -> None:
    """A review: the source's count opened the file again by its name, after the walk: a file
    put in its place was counted ("damaged", or the store blamed). The walked one is counted:
    the change is then found as every change of a list during its import is."""
    source = make_rds(tmp_path / "rds.db", rows_for(300))
    other = tmp_path / "other.db"
    if replacement == "another list":
        make_rds(other, rows_for(200))
    elif replacement == "not a database":
        other.write_bytes(b"not a database\n" * 500)
    real = store_mod.ChildFill

    class Replacing(real):  # type: ignore[misc,valid-type]
        def wait(self) -> int:
            rows = int(super().wait())
            if replacement == "none":
                source.unlink()
            else:
                os.replace(other, source)
            return rows

    store = HashStore(tmp_path / "s.db")
    try:
        with monkeypatch.context() as patch:
            _split(patch, tmp_path, child_fill=Replacing)
            (tmp_path / "scratch").mkdir()
            with pytest.raises((FormatError, UsageError)) as caught:
                import_list(store, source)
        said = str(caught.value)
        assert "damaged" not in said and "Import into" not in said, said
        assert store.lists() == [] and store_content(tmp_path / "s.db") == []
    finally:
        store.close()


@pytest.mark.parametrize("engine", ["system"], indirect=True)
@pytest.mark.parametrize("split", [False, True])
def test_a_ctrl_c_during_the_walk_on_the_systems_sqlite_interrupts_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, engine: str, split: bool
) -> None:
    """A review: a decoding function written in Python took the Ctrl-C (or the CLI's SIGTERM)
    that came during the walk; sqlite3 made it "user-defined function raised exception", and
    the examiner read that the store's import failed (exit 2, not 8): the interruption was lost."""
    source = make_big_rds(tmp_path / "big.db", 300_000)
    (tmp_path / "scratch").mkdir()
    store = HashStore(tmp_path / "s.db")
    walk = store_mod._staging_select

    def walk_interrupted(*args: object, **kwargs: object) -> str:
        signal.setitimer(signal.ITIMER_REAL, 0.05)  # lands while the walk of 300k rows runs
        return walk(*args, **kwargs)  # type: ignore[arg-type]

    try:
        with monkeypatch.context() as patch:
            _split(patch, tmp_path, split)
            patch.setattr(store_mod, "_staging_select", walk_interrupted)
            patch.setattr(HashStore, "add_list", lambda *a, **k: pytest.fail("went row by row"))
            _interrupted_after(0, lambda: import_list(store, source))
        assert store.lists() == [] and store_content(tmp_path / "s.db") == []
    finally:
        store.close()


def _touch_later(path: Path) -> None:
    """The file's content written again (as a copy still under way does): mtime and ctime move."""
    later = time.time_ns() + 2 * 10**9
    with open(path, "r+b") as f:
        head = f.read(16)
        f.seek(0)
        f.write(head)
    os.utime(path, ns=(later, later))


def test_an_rds_changed_while_it_is_copied_is_refused_and_the_store_unchanged(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before: a list written to during its import was imported, recorded with the SHA-256 of
    bytes that never held the entries imported (the SHA-256 and the entries come from two reads)."""
    source = make_rds(tmp_path / "RDS.db", rows_for(50))
    store = HashStore(tmp_path / "s.db")
    import_list(store, make_rds(tmp_path / "other.db", rows_for(3)), name="first")
    before = store_content(tmp_path / "s.db")
    original = HashStore._copy_staged

    def written_meanwhile(self: HashStore, *args: object, **kwargs: object) -> None:
        _touch_later(source)
        original(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(HashStore, "_copy_staged", written_meanwhile)
    with pytest.raises(FormatError, match="changed while it was imported"):
        import_list(store, source)
    assert [i.name for i in store.lists()] == ["first"]
    assert store_content(tmp_path / "s.db") == before
    monkeypatch.setattr(HashStore, "_copy_staged", original)
    assert import_list(store, source).info.entries == 51  # untouched now: imported


def test_an_rds_changed_while_it_is_read_leaves_a_store_with_free_pages_byte_for_byte(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A review: the change was found inside the transaction, after the copy had written; in a
    store with free pages (which SQLite fills first and never journals) its bytes stayed."""
    rows = rows_for(45_000)  # some 60,000 rows: the copy spills past its cache
    store = HashStore(tmp_path / "s.db")
    try:
        import_list(store, make_rds(tmp_path / "good.db", rows))
        import_list(store, make_rds(tmp_path / "other.db", rows[:40_000]), role="notable")
        store.remove_list("other.db")
        assert store.db.conn.execute("PRAGMA freelist_count").fetchone()[0] > 100
        before = (tmp_path / "s.db").read_bytes()
        source = make_rds(tmp_path / "next.db", [(*triple(b"n %d" % i), "n.dll", i, 1) for i in range(60_000)])  # fmt: skip
        stage = HashStore._stage

        @contextlib.contextmanager
        def written_meanwhile(self: HashStore, *args: object, **kwargs: object) -> Iterator[object]:
            with stage(self, *args, **kwargs) as staged:  # type: ignore[arg-type]
                _touch_later(source)  # once read, before the copy
                yield staged

        monkeypatch.setattr(HashStore, "_stage", written_meanwhile)
        with pytest.raises(FormatError, match="changed while it was imported"):
            import_list(store, source)
        assert (tmp_path / "s.db").read_bytes() == before
    finally:
        store.close()


@pytest.mark.parametrize("engine", ["system"], indirect=True)
def test_a_text_list_changed_while_it_is_read_is_refused_and_the_store_unchanged(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, engine: str
) -> None:
    from matcher.formats import gnu_sum

    listing = tmp_path / "n.sha256"
    listing.write_text("".join(f"{hashlib.sha256(b'%d' % i).hexdigest()}  f{i}\n" for i in range(20)))
    store = HashStore(tmp_path / "s.db")
    original = gnu_sum.GnuSumReader.read

    def appended_meanwhile(self: object, path: Path, on_invalid: object = None) -> object:
        for n, record in enumerate(original(self, path, on_invalid)):  # type: ignore[arg-type]
            if n == 5:
                with open(path, "a") as f:  # the rest of a copy arriving
                    f.write(f"{hashlib.sha256(b'late').hexdigest()}  late\n")
            yield record

    monkeypatch.setattr(gnu_sum.GnuSumReader, "read", appended_meanwhile)
    with pytest.raises(FormatError, match="changed while it was imported"):
        import_list(store, listing)
    assert store.lists() == []


@pytest.mark.parametrize("ident", ["80ff", "4100ff"], ids=["not UTF-8", "a NUL, where GLOB stops"])
def test_a_text_package_id_that_is_not_utf8_is_refused_as_row_by_row_refuses_it(tmp_path: Path, ident: str) -> None:
    """A package_id stored as TEXT whose bytes are not UTF-8 was stored by the SQL copy (the row-
    by-row reader refuses it), and every lookup of its digest then failed ("Could not decode to
    UTF-8"); so was "A\0\xff", GLOB reading up to the NUL (a second review). The copy takes
    text ids of printable ASCII with no NUL only; other text goes row by row, which refuses
    these, naming them, and keeps a UTF-8 one."""
    sha256, sha1, md5 = triple(b"bad ident")
    bad = make_rds(tmp_path / "bad.db", rows_for(10))
    conn = sqlite3.connect(bad)
    conn.execute(f"INSERT INTO FILE VALUES ('{sha256}','{sha1}','{md5}','0','b.dll',3,CAST(x'{ident}' AS TEXT))")
    conn.commit()
    conn.close()
    store = HashStore(tmp_path / "s.db")
    try:
        with pytest.raises(FormatError, match="package_id is not text"):
            import_list(store, bad)
        assert store.lists() == []
    finally:
        store.close()
    fine = make_rds(tmp_path / "fine.db", [*rows_for(10), (sha256, sha1, md5, "b.dll", 3, "pkg-\u00e9")])
    store = HashStore(tmp_path / "f.db")
    try:
        import_list(store, fine)
        [hit] = store.lookup("md5", [bytes.fromhex(md5)])[bytes.fromhex(md5)]
        assert hit.ident == "pkg-\u00e9"
    finally:
        store.close()


def _quick_sync_behind(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, int]]:
    """Syncs behind every millisecond, and a copy that lasts long enough for some; what they synced."""
    from matcher import sqlitefiles

    synced: list[tuple[int, int]] = []
    real_sync = os.fdatasync

    def fdatasync(fd: int) -> None:
        st = os.fstat(fd)
        synced.append((st.st_dev, st.st_ino))
        real_sync(fd)

    monkeypatch.setattr(sqlitefiles.os, "fdatasync", fdatasync)
    of_file = sqlitefiles.SyncBehind.of_file.__func__  # type: ignore[attr-defined]
    monkeypatch.setattr(
        sqlitefiles.SyncBehind, "of_file", classmethod(lambda cls, key, interval=1.0: of_file(cls, key, 0.001))
    )
    synced_then = HashStore._synced

    def slow(self: HashStore, behind: sqlitefiles.SyncBehind) -> None:
        time.sleep(0.05)
        synced_then(self, behind)

    monkeypatch.setattr(HashStore, "_synced", slow)
    return synced


def test_the_copy_is_synced_behind_through_the_stores_own_descriptor_inside_its_transaction(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The store's data is written to disk while the copy goes on (its COMMIT
    # then waits for little), through the descriptor the store's connection
    # has: no descriptor of the store is opened (its close would drop the
    # process's POSIX locks on the file, SQLite's too); the syncing stops
    # inside the transaction.
    from matcher import sqlitefiles

    synced = _quick_sync_behind(monkeypatch)
    stopped: list[bool] = []
    stop = sqlitefiles.SyncBehind.stop
    monkeypatch.setattr(sqlitefiles.SyncBehind, "stop", lambda self: stopped.append(store.db.conn.in_transaction) or stop(self))
    store = HashStore(tmp_path / "store.db")
    opened: list[str] = []  # (from here on: the store made its file first)
    real_open = os.open
    monkeypatch.setattr(sqlitefiles.os, "open", lambda path, *a, **k: opened.append(str(path)) or real_open(path, *a, **k))
    try:
        import_list(store, make_rds(tmp_path / "rds.db", rows_for(50)))
        assert len(store.lists()) == 1
    finally:
        store.close()
    st = os.stat(tmp_path / "store.db")
    assert synced and set(synced) == {(st.st_dev, st.st_ino)}
    assert stopped and all(stopped)
    assert not [p for p in opened if p.startswith(str(tmp_path / "store.db"))]


def test_a_failed_sync_behind_the_copy_fails_the_import_with_the_store_unchanged(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The thread's fsync takes the error of the open file it reports (the
    # same as the connection's): the commit's own would not report it again.
    from matcher import sqlitefiles

    _quick_sync_behind(monkeypatch)

    def failing(fd: int) -> None:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(sqlitefiles.os, "fdatasync", failing)
    store = HashStore(tmp_path / "store.db")
    try:
        with pytest.raises(StoreError, match="rolled back: cannot write it to disk: Input/output error"):
            import_list(store, make_rds(tmp_path / "rds.db", rows_for(50)))
        assert store.lists() == []
    finally:
        store.close()


def test_sync_behind_finds_a_descriptor_of_the_file_or_none(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from matcher import sqlitefiles

    path = tmp_path / "f"
    path.write_bytes(b"x" * 100)
    st = path.stat()
    assert sqlitefiles.SyncBehind.of_file((st.st_dev, st.st_ino)) is None  # no descriptor of it here
    fd = os.open(path, os.O_RDONLY)
    try:
        behind = sqlitefiles.SyncBehind.of_file((st.st_dev, st.st_ino), interval=0.001)
        assert behind is not None and os.fstat(behind._fd).st_ino == st.st_ino
        behind.start()
        time.sleep(0.01)
        behind.finish()
        assert behind._done.is_set()
        # No thread to be had: nothing synced behind, and the import goes on.
        monkeypatch.setattr(sqlitefiles.threading.Thread, "start", lambda self: (_ for _ in ()).throw(RuntimeError("can't start new thread")))
        behind = sqlitefiles.SyncBehind.of_file((st.st_dev, st.st_ino))
        assert behind is not None
        behind.start()
        behind.finish()
    finally:
        os.close(fd)


@contextlib.contextmanager
def _syncing_slowly(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, seconds: float) -> Iterator[object]:
    """A SyncBehind started on a file whose every sync lasts `seconds`, once its first sync is under way."""
    from matcher import sqlitefiles

    path = tmp_path / "f"
    path.write_bytes(b"x")
    fd = os.open(path, os.O_RDONLY)
    in_sync = threading.Event()

    def slow_sync(fd: int) -> None:
        in_sync.set()
        time.sleep(seconds)

    monkeypatch.setattr(sqlitefiles.os, "fdatasync", slow_sync)
    try:
        behind = sqlitefiles.SyncBehind(fd, interval=0.001)
        behind.start()
        assert in_sync.wait(5)
        yield behind
    finally:
        time.sleep(seconds + 0.05)  # the thread's last sync, on a descriptor still open
        os.close(fd)


def test_sync_behind_holds_a_second_interruption_until_the_sync_under_way_has_ended(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A sync that outlived the transaction overlapped its rollback on the same
    # open file, and took the error SQLite's own fsync needed (a review).
    with _syncing_slowly(tmp_path, monkeypatch, 0.2) as behind:
        waits: list[int] = []
        wait = behind._done.wait  # type: ignore[attr-defined]

        def interrupted(timeout: float | None = None) -> bool:
            waits.append(1)
            if len(waits) == 1:
                raise KeyboardInterrupt  # a second Ctrl-C, in stop()'s wait
            return bool(wait(timeout))

        behind._done.wait = interrupted  # type: ignore[attr-defined]
        with pytest.raises(KeyboardInterrupt):
            behind.stop()  # type: ignore[attr-defined]
        assert behind._done.is_set()  # type: ignore[attr-defined]  # raised once the sync had ended


def test_an_interruption_as_the_sync_behind_starts_leaves_no_thread_syncing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from matcher import sqlitefiles

    synced = _quick_sync_behind(monkeypatch)
    started: list[sqlitefiles.SyncBehind] = []
    start = sqlitefiles.SyncBehind.start

    def start_interrupted(self: sqlitefiles.SyncBehind) -> None:
        start(self)
        started.append(self)
        raise KeyboardInterrupt  # as if it landed in Thread.start()'s own wait

    monkeypatch.setattr(sqlitefiles.SyncBehind, "start", start_interrupted)
    store = HashStore(tmp_path / "store.db")
    try:
        with pytest.raises(KeyboardInterrupt):
            import_list(store, make_rds(tmp_path / "rds.db", rows_for(50)))
        assert store.lists() == []
        assert started and started[0]._done.is_set()
        count = len(synced)
        time.sleep(0.05)
        assert len(synced) == count
    finally:
        store.close()


class _InterruptingLock:
    """A thread's state lock whose first acquire() is followed by a real SIGINT (Python 3.11's is_alive())."""

    def __init__(self, real: object) -> None:
        self.real = real
        self.fired = False

    def acquire(self, *args: object) -> bool:
        got = bool(self.real.acquire(*args))  # type: ignore[attr-defined]
        if not self.fired:
            self.fired = True
            signal.pthread_kill(threading.main_thread().ident or 0, signal.SIGINT)
        return got

    def release(self) -> None:
        self.real.release()  # type: ignore[attr-defined]

    def locked(self) -> bool:
        return bool(self.real.locked())  # type: ignore[attr-defined]


def test_sync_behind_stop_waits_for_the_sync_under_way_whatever_interrupts_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A Ctrl-C landing inside Thread.is_alive() on Python 3.11 makes it say
    # False of a thread that still runs (a review): stop() must not ask it.
    before = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with _syncing_slowly(tmp_path, monkeypatch, 0.3) as behind:
            thread = behind._thread  # type: ignore[attr-defined]
            thread._tstate_lock = _InterruptingLock(thread._tstate_lock)
            with contextlib.suppress(KeyboardInterrupt):
                behind.stop()  # type: ignore[attr-defined]
            assert behind._done.is_set()  # type: ignore[attr-defined]
    finally:
        signal.signal(signal.SIGINT, before)


def test_a_second_interruption_as_the_sync_behind_is_stopped_leaves_no_thread_syncing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A first Ctrl-C ends the copy; a second lands as stop() is entered, before
    # its first statement (Python runs a pending handler as a function starts).
    from matcher import sqlitefiles

    synced = _quick_sync_behind(monkeypatch)
    copy = HashStore._copy_staged

    def copy_then_interrupted(self: HashStore, *args: object, **kwargs: object) -> None:
        copy(self, *args, **kwargs)  # type: ignore[arg-type]
        time.sleep(0.02)
        raise KeyboardInterrupt

    monkeypatch.setattr(HashStore, "_copy_staged", copy_then_interrupted)
    stop = sqlitefiles.SyncBehind.stop
    calls: list[int] = []

    def interrupted_as_entered(self: sqlitefiles.SyncBehind) -> None:
        calls.append(1)
        if len(calls) == 1:
            raise KeyboardInterrupt
        stop(self)

    monkeypatch.setattr(sqlitefiles.SyncBehind, "stop", interrupted_as_entered)
    store = HashStore(tmp_path / "store.db")
    try:
        with pytest.raises(KeyboardInterrupt):
            import_list(store, make_rds(tmp_path / "rds.db", rows_for(50)))
        assert store.lists() == [] and len(calls) >= 2
        count = len(synced)
        time.sleep(0.05)
        assert len(synced) == count
    finally:
        store.close()
