"""Property tests: any RDS v3 content imports whole or is refused with FormatError only."""

from __future__ import annotations

import sqlite3
import tempfile
from pathlib import Path

from hypothesis import HealthCheck
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st

from matcher.errors import FormatError
from matcher.formats.nsrl_rds3 import NsrlRds3Reader
from matcher.importing import import_list
from matcher.store import HashStore

READER = NsrlRds3Reader()
DDL = """
CREATE TABLE FILE (sha256 VARCHAR, sha1 VARCHAR, md5 VARCHAR, crc32 VARCHAR,
  file_name VARCHAR, file_size INTEGER, package_id INTEGER);
CREATE TABLE PKG (package_id INTEGER); CREATE TABLE VERSION (version VARCHAR);
"""
HEX = "0123456789ABCDEFabcdef"
# Mostly well-formed digests, with every kind of damage mixed in.
digest = st.one_of(
    st.text(HEX, min_size=32, max_size=32),
    st.text(HEX, min_size=40, max_size=40),
    st.text(HEX, min_size=64, max_size=64),
    st.text(max_size=70),
    st.binary(max_size=70),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.none(),
)
value = st.one_of(
    st.text(max_size=20), st.binary(max_size=20), st.integers(-(2**63), 2**63 - 1), st.none()
)
size = st.one_of(st.integers(min_value=-5, max_value=1 << 40), st.text(max_size=5), st.none())
row = st.tuples(digest, digest, digest, value, value, size, value)


def _store_rows(db: Path) -> list[tuple[object, ...]]:
    conn = sqlite3.connect(db)
    try:
        return conn.execute("SELECT * FROM hashes ORDER BY 1, 2, 3").fetchall()
    finally:
        conn.close()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows=st.lists(row, max_size=8), skip_invalid=st.booleans())
def test_any_file_table_imports_or_raises_format_error(
    rows: list[tuple[object, ...]], skip_invalid: bool
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        source, db = Path(tmp) / "rds.db", Path(tmp) / "store.db"
        conn = sqlite3.connect(source)
        conn.executescript(DDL)
        conn.executemany("INSERT INTO FILE VALUES (?, ?, ?, ?, ?, ?, ?)", rows)
        conn.commit()
        conn.close()
        store = HashStore(db)
        try:
            before = _store_rows(db)
            try:
                result = import_list(store, source, skip_invalid=skip_invalid)
            except FormatError:
                assert _store_rows(db) == before and store.lists() == []
                return
            # What was imported is exactly what the row-by-row reader accepts.
            accepted = list(READER.read(source, on_invalid=lambda e: None))
            assert result.info.entries == len(accepted) > 0
            assert result.skipped_invalid == 0 or skip_invalid
        finally:
            store.close()


@settings(max_examples=150, deadline=None)
@given(data=st.binary(max_size=4096))
def test_any_bytes_are_not_an_rds_or_raise_format_error(data: bytes) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "x.db"
        path.write_bytes(b"SQLite format 3\x00" + data)
        assert READER.sniff(path.read_bytes()[:4096], path) in (True, False)
        try:
            list(READER.read(path))
        except FormatError:
            pass
