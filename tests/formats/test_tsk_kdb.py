"""Tests for the Autopsy/TSK SQLite hash database reader (tsk-kdb)."""

from __future__ import annotations

import hashlib
import json
import os
import random
import sqlite3
import tempfile
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import store_rows
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st

from matcher.cli import cli
from matcher.errors import FormatError
from matcher.formats import registry
from matcher.formats import tsk_kdb
from matcher.formats.tsk_kdb import TskKdbReader
from matcher.models import HashRecord

SHARED = Path(__file__).resolve().parent / "shared_samples"  # a copy of ../shared/formats/samples
SAMPLE = SHARED / "synthetic" / "tsk" / "synthetic.kdb"
RDS = SHARED / "synthetic" / "nsrl_rds3"
TRUTH = {e["name"]: e for e in json.loads((SHARED / "synthetic" / "TRUTH.json").read_text())}
READER = TskKdbReader()
# TSK's schema (tsk/hashdb/sqlite_hdb.cpp), as `hfind -c` creates it.
SCHEMA = """
CREATE TABLE db_properties (name TEXT NOT NULL, value TEXT);
CREATE TABLE hashes (id INTEGER PRIMARY KEY AUTOINCREMENT, md5 BINARY(16) UNIQUE,
                     sha1 BINARY(20), sha2_256 BINARY(32));
CREATE TABLE file_names (name TEXT NOT NULL, hash_id INTEGER NOT NULL,
                         PRIMARY KEY(name, hash_id));
CREATE TABLE comments (comment TEXT NOT NULL, hash_id INTEGER NOT NULL,
                       PRIMARY KEY(comment, hash_id));
CREATE INDEX md5_index ON hashes(md5);
INSERT INTO db_properties VALUES ('Schema Version', '1');
"""

Row = tuple[object, object, object, list[object], list[str]]


def make_kdb(path: Path, rows: list[Row]) -> Path:
    """A TSK hash database holding (md5, sha1, sha256, names, comments) rows."""
    conn = sqlite3.connect(path)
    conn.executescript(SCHEMA)
    for md5, sha1, sha256, names, comments in rows:
        cursor = conn.execute(
            "INSERT INTO hashes (md5, sha1, sha2_256) VALUES (?, ?, ?)", (md5, sha1, sha256)
        )
        conn.executemany(
            "INSERT INTO file_names VALUES (?, ?)", [(n, cursor.lastrowid) for n in names]
        )
        conn.executemany(
            "INSERT INTO comments VALUES (?, ?)", [(c, cursor.lastrowid) for c in comments]
        )
    conn.commit()
    conn.close()
    return path


def md5(name: str) -> bytes:
    return bytes.fromhex(TRUTH[name]["md5"])


def test_registered_with_the_default_role_of_lists_that_do_not_say() -> None:
    assert isinstance(registry.get("tsk-kdb"), TskKdbReader)
    assert READER.DEFAULT_ROLE == registry.get("plain").DEFAULT_ROLE == "notable"


def test_shared_sample_made_by_hfind() -> None:
    assert READER.sniff(registry.read_head(SAMPLE), SAMPLE)
    assert READER.sniff(registry.read_head(SAMPLE), None)  # from the CREATE statements alone
    assert list(READER.read(SAMPLE)) == [HashRecord(digests={"md5": md5("hello.txt")})]
    assert READER.metadata(SAMPLE) == {"schema_version": "1"}


def test_names_comments_and_every_digest_column(tmp_path: Path) -> None:
    hello, world = md5("hello.txt"), md5("world.txt")
    sha1 = bytes.fromhex(TRUTH["world.txt"]["sha1"])
    sha256 = bytes.fromhex(TRUTH["world.txt"]["sha256"])
    path = make_kdb(
        tmp_path / "x.kdb",
        [
            (hello, None, None, ["b.txt", "a.txt"], ["first set", "another"]),
            (world, sha1, sha256, [b"caf\xe9.txt"], []),
            (None, sha1, None, [], ["only sha1"]),
            (md5("empty.dat").hex().upper(), None, None, ["hex-text.dat"], []),
        ],
    )
    assert list(READER.read(path)) == [
        HashRecord(digests={"md5": hello}, name="a.txt", label="another"),
        HashRecord(digests={"md5": world, "sha1": sha1, "sha256": sha256}, name=b"caf\xe9.txt"),
        HashRecord(digests={"sha1": sha1}, label="only sha1"),
        HashRecord(digests={"md5": md5("empty.dat")}, name="hex-text.dat"),
    ]


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (b"\x01" * 15, "md5 is not a 16-byte BLOB: a 15-byte BLOB 0101"),
        (b"\x01" * 17, "md5 is not a 16-byte BLOB: a 17-byte BLOB"),
        ("z" * 32, "md5 is not a 16-byte BLOB: 'zzzz"),
        ("ab" * 15, "md5 is not a 16-byte BLOB: 'abab"),
        (12345, "md5 is not a 16-byte BLOB: '12345'"),
    ],
)
def test_bad_digest_names_the_row(tmp_path: Path, value: object, message: str) -> None:
    path = make_kdb(
        tmp_path / "x.kdb",
        [(md5("hello.txt"), None, None, [], []), (value, None, None, [], []),
         (md5("world.txt"), None, None, [], [])],
    )  # fmt: skip
    with pytest.raises(FormatError) as caught:
        list(READER.read(path))
    assert str(caught.value).startswith(f"{path}: hashes row id 2: {message}")
    errors: list[FormatError] = []
    assert [r.digests["md5"] for r in READER.read(path, errors.append)] == [
        md5("hello.txt"),
        md5("world.txt"),
    ]
    assert [e.reason.split(":")[0] for e in errors] == ["hashes row id 2"]


def test_row_without_any_digest(tmp_path: Path) -> None:
    path = make_kdb(tmp_path / "x.kdb", [(None, None, None, ["n"], [])])
    with pytest.raises(FormatError, match="hashes row id 1: the row has no digest"):
        list(READER.read(path))


def test_names_are_merged_in_bounded_memory_over_many_batches(tmp_path: Path) -> None:
    count = 2 * tsk_kdb.BATCH_ROWS + 17
    digests = [hashlib.md5(str(i).encode()).digest() for i in range(count)]
    rows: list[Row] = [
        (d, None, None, [f"n{i}"] if i % 3 else [], [f"c{i}"] if i % 5 == 0 else [])
        for i, d in enumerate(digests)
    ]
    path = tmp_path / "big.kdb"
    conn = sqlite3.connect(path)
    conn.executescript(SCHEMA)
    conn.executemany(
        "INSERT INTO hashes (id, md5) VALUES (?, ?)", [(i + 1, d) for i, d in enumerate(digests)]
    )
    pairs = [(name, i + 1) for i, (_, _, _, names, _) in enumerate(rows) for name in names]
    random.Random(7).shuffle(pairs)  # stored in no particular order
    conn.executemany("INSERT INTO file_names VALUES (?, ?)", pairs)
    conn.executemany(
        "INSERT INTO comments VALUES (?, ?)",
        [(c, i + 1) for i, (_, _, _, _, cs) in enumerate(rows) for c in cs],
    )
    conn.execute("INSERT INTO file_names VALUES ('orphan', 999999999)")
    conn.commit()
    conn.close()
    records = list(READER.read(path))
    assert [(r.digests["md5"], r.name, r.label) for r in records] == [
        (d, f"n{i}" if i % 3 else None, f"c{i}" if i % 5 == 0 else None)
        for i, d in enumerate(digests)
    ]


def test_opened_read_only_and_left_untouched(tmp_path: Path) -> None:
    folder = tmp_path / "ro"
    folder.mkdir()
    path = make_kdb(folder / "x.kdb", [(md5("hello.txt"), None, None, ["a"], [])])
    before = hashlib.sha256(path.read_bytes()).hexdigest()
    path.chmod(0o444)
    folder.chmod(0o555)
    try:
        assert len(list(READER.read(path))) == 1
        assert READER.metadata(path) == {"schema_version": "1"}
        assert sorted(p.name for p in folder.iterdir()) == ["x.kdb"]
    finally:
        folder.chmod(0o755)
    assert hashlib.sha256(path.read_bytes()).hexdigest() == before


def test_kdb_and_nsrl_rds3_are_never_taken_for_each_other() -> None:
    rds3 = registry.get("nsrl-rds3")
    for rds in sorted(RDS.glob("*.db")):
        head = registry.read_head(rds)
        assert not READER.sniff(head, rds) and not READER.sniff(head, None)
        assert registry.detect(rds).NAME == "nsrl-rds3"
        with pytest.raises(FormatError) as caught:
            list(READER.read(rds))
        assert "it has no hashes table (it looks like an NSRL RDS v3 database" in str(caught.value)
    head = registry.read_head(SAMPLE)
    assert not rds3.sniff(head, SAMPLE) and not rds3.sniff(head, None)
    assert registry.detect(SAMPLE).NAME == "tsk-kdb"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "it has no hashes table"),
        (b"not a database at all, just text\n" * 10, "cannot"),
    ],
)
def test_empty_and_non_database_files(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "x.kdb"
    path.write_bytes(content)
    assert not READER.sniff(content, path)
    with pytest.raises(FormatError, match=message) as caught:
        list(READER.read(path))
    assert str(caught.value).startswith(f"{path}: ")


def test_truncated_database(tmp_path: Path) -> None:
    whole = make_kdb(
        tmp_path / "whole.kdb",
        [(hashlib.md5(str(i).encode()).digest(), None, None, [f"name-{i}" * 20], [])
         for i in range(3000)],
    )  # fmt: skip
    cut = tmp_path / "cut.kdb"
    data = whole.read_bytes()
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(FormatError) as caught:
        list(READER.read(cut))
    assert str(caught.value).startswith(f"{cut}: cannot read the hash database: ")


def test_a_symlink_to_a_database_with_a_hot_journal_is_refused(tmp_path: Path) -> None:
    """SQLite keeps side files beside the file a link resolves to, not beside the link."""
    folder = tmp_path / "lists"
    folder.mkdir()
    path = make_kdb(folder / "x.kdb", [(md5("hello.txt"), None, None, ["a"], [])])
    # A rollback journal a cut-off write left: its header is not zeroed.
    Path(f"{path}-journal").write_bytes(b"\xd9\xd5\x05\xf9\x20\xa1\x63\xd7" + bytes(504))
    link = tmp_path / "link.kdb"
    link.symlink_to(path)
    result = CliRunner().invoke(cli, ["import", str(link), "--db", str(tmp_path / "s.db")])
    assert result.exit_code == 2, result.output
    assert f"a rollback journal, {path}-journal" in result.output


def test_database_without_hash_columns(tmp_path: Path) -> None:
    path = tmp_path / "x.kdb"
    conn = sqlite3.connect(path)
    conn.executescript(
        "CREATE TABLE hashes (id INTEGER PRIMARY KEY, crc TEXT);"
        "CREATE TABLE file_names (name TEXT, hash_id INTEGER);"
        "CREATE TABLE db_properties (name TEXT, value TEXT);"
    )
    conn.close()
    assert READER.sniff(registry.read_head(path), path)
    with pytest.raises(FormatError, match="the hashes table has no md5, sha1 or sha2_256 column"):
        list(READER.read(path))


def test_cli_import_and_bad_database_leaves_the_store_unchanged(tmp_path: Path) -> None:
    runner = CliRunner()
    db = tmp_path / "s.db"
    done = runner.invoke(cli, ["import", str(SAMPLE), "--db", str(db)])
    assert done.exit_code == 0, done.output
    assert "imported 1 entry as notable list 'synthetic.kdb' (tsk-kdb)" in done.stderr
    before = store_rows(db)
    bad = make_kdb(
        tmp_path / "bad.kdb",
        [(md5("world.txt"), None, None, [], []), (b"short", None, None, [], [])],
    )
    result = runner.invoke(cli, ["import", str(bad), "--db", str(db)])
    assert result.exit_code == 2
    assert f"{bad}: hashes row id 2: md5 is not a 16-byte BLOB" in result.output
    assert store_rows(db) == before
    skipped = runner.invoke(cli, ["import", str(bad), "--db", str(db), "--skip-invalid"])
    assert skipped.exit_code == 0 and "skipped 1" in skipped.stderr


names = st.text(st.characters(blacklist_categories=["Cs"]), min_size=1, max_size=10)


@settings(max_examples=50, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.binary(min_size=16, max_size=16),
            st.none() | st.binary(min_size=20, max_size=20),
            st.lists(names, max_size=3, unique=True),
            st.lists(names, max_size=2, unique=True),
        ),
        max_size=12,
        unique_by=lambda item: item[0],
    )
)
def test_round_trip(items: list[tuple[bytes, bytes | None, list[str], list[str]]]) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = make_kdb(
            Path(folder) / "t.kdb",
            [(m, s, None, list(ns), list(cs)) for m, s, ns, cs in items],
        )
        records = list(READER.read(path))
        os.chmod(path, 0o600)
    assert records == [
        HashRecord(
            digests={"md5": m, **({"sha1": s} if s is not None else {})},
            name=min(ns) if ns else None,
            label=min(cs) if cs else None,
        )
        for m, s, ns, cs in items
    ]


@settings(max_examples=40, deadline=None)
@given(st.integers(min_value=0, max_value=4095), st.binary(min_size=1, max_size=8))
def test_damaged_database_raises_only_format_error(offset: int, junk: bytes) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = make_kdb(
            Path(folder) / "t.kdb",
            [(hashlib.md5(bytes([i])).digest(), None, None, [f"n{i}"], []) for i in range(40)],
        )
        data = bytearray(path.read_bytes())
        data[offset : offset + len(junk)] = junk
        path.write_bytes(bytes(data))
        try:
            READER.metadata(path)
            list(READER.read(path))
        except FormatError:
            pass
