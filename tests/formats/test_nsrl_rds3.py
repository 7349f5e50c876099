"""Tests for the NIST NSRL RDS v3 SQLite reader (nsrl-rds3)."""

from __future__ import annotations

import hashlib
import os
import sqlite3
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path

import pytest

from matcher.errors import FormatError
from matcher.formats import nsrl_rds3
from matcher.formats import registry
from matcher.formats.base import SNIFF_BYTES
from matcher.formats.nsrl_rds3 import NsrlRds3Reader

SAMPLES = Path(__file__).parent / "samples" / "synthetic" / "nsrl_rds3"
ALL_SAMPLES = Path(__file__).parent / "samples"
READER = NsrlRds3Reader()

# From samples/synthetic/TRUTH.json.
HELLO = (
    "5d41402abc4b2a76b9719d911017c592",
    "aaf4c61ddcc5e8a2dabede0f3b482cd9aea9434d",
    "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824",
)
WORLD = (
    "7d793037a0760186574b0282f2f435e7",
    "7c211433f02071597741e6ff5a8ea34789abbf43",
    "486ea46224d1bb4fb680f34f7c9ad96a8f24ec88be73ea8e5a6c65260e9cb8a7",
)
EMPTY = (
    "d41d8cd98f00b204e9800998ecf8427e",
    "da39a3ee5e6b4b0d3255bfef95601890afd80709",
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
)

MINIMAL_DDL = """
CREATE TABLE FILE (sha256 VARCHAR, sha1 VARCHAR, md5 VARCHAR, crc32 VARCHAR,
  file_name VARCHAR, file_size INTEGER, package_id INTEGER);
CREATE TABLE MFG (manufacturer_id INTEGER, name VARCHAR);
CREATE TABLE OS (operating_system_id INTEGER, name VARCHAR, version VARCHAR,
  manufacturer_id INTEGER);
CREATE TABLE PKG (package_id INTEGER, name VARCHAR, version VARCHAR, operating_system_id INTEGER,
  manufacturer_id INTEGER, language VARCHAR, application_type VARCHAR);
CREATE TABLE VERSION (version VARCHAR, build_set VARCHAR, build_date TIMESTAMP,
  release_date TIMESTAMP, description VARCHAR);
CREATE VIEW DISTINCT_HASH AS SELECT DISTINCT sha256, sha1, md5, crc32 FROM FILE;
INSERT INTO VERSION VALUES ('2024.03.1', 'Modern', '2024-03-01', '2024-03-05', 'test');
"""

# The full shape: FILE is a view over METADATA joined to PACKAGE_OBJECT, as NIST builds it.
FULL_DDL = """
CREATE TABLE METADATA (metadata_id INTEGER PRIMARY KEY, object_id INTEGER, file_name VARCHAR,
  extension VARCHAR DEFAULT '', bytes INTEGER, crc32 VARCHAR, md5 VARCHAR, sha1 VARCHAR,
  sha256 VARCHAR);
CREATE TABLE PACKAGE_OBJECT (package_object_id INTEGER PRIMARY KEY, package_id INTEGER,
  object_id INTEGER UNIQUE);
CREATE TABLE APPLICATION (application_id INTEGER, package_id INTEGER, name VARCHAR);
CREATE TABLE VERSION (version VARCHAR, build_set VARCHAR, build_date TIMESTAMP,
  release_date TIMESTAMP, description VARCHAR);
CREATE VIEW FILE AS SELECT UPPER(md.sha256) AS sha256, UPPER(md.sha1) AS sha1,
  UPPER(md.md5) AS md5,
  CASE md.extension WHEN '' THEN md.file_name ELSE md.file_name||'.'||md.extension END AS file_name,
  md.bytes AS file_size, po.package_id
  FROM METADATA AS md, PACKAGE_OBJECT AS po WHERE md.object_id = po.object_id;
CREATE VIEW PKG AS SELECT package_id, name FROM APPLICATION;
INSERT INTO VERSION VALUES ('2023.12.1', 'Legacy', '2023-12-01', '2023-12-04', 'old');
INSERT INTO VERSION VALUES ('2024.03.1', 'Legacy', '2024-03-01', '2024-03-05', 'new');
"""


def make_minimal(path: Path, rows: Iterable[tuple[object, ...]]) -> Path:
    """rows: (sha256, sha1, md5, file_name, file_size, package_id)."""
    with sqlite3.connect(path) as conn:
        conn.executescript(MINIMAL_DDL)
        conn.executemany(
            "INSERT INTO FILE VALUES (?, ?, ?, '00000000', ?, ?, ?)",
            rows,
        )
    conn.close()
    return path


def make_full(path: Path, rows: Iterable[tuple[object, ...]]) -> Path:
    """rows: (object_id, package_id, stem, extension, size, md5, sha1, sha256)."""
    with sqlite3.connect(path) as conn:
        conn.executescript(FULL_DDL)
        for object_id, package_id, stem, extension, size, md5, sha1, sha256 in rows:
            conn.execute(
                "INSERT INTO METADATA (object_id, file_name, extension, bytes, crc32, md5, sha1,"
                " sha256) VALUES (?, ?, ?, ?, '0', ?, ?, ?)",
                (object_id, stem, extension, size, md5, sha1, sha256),
            )
            conn.execute(
                "INSERT INTO PACKAGE_OBJECT (package_id, object_id) VALUES (?, ?)",
                (package_id, object_id),
            )
    conn.close()
    return path


def digests(triple: tuple[str, str, str]) -> dict[str, bytes]:
    return {alg: bytes.fromhex(h) for alg, h in zip(("md5", "sha1", "sha256"), triple, strict=True)}


def upper(triple: tuple[str, str, str]) -> tuple[str, str, str]:
    md5, sha1, sha256 = (h.upper() for h in triple)
    return sha256, sha1, md5  # the column order of FILE


def test_registered_with_known_role() -> None:
    assert registry.get("nsrl-rds3") is not None
    assert READER.DEFAULT_ROLE == "known"


def test_minimal_sample_known_answers() -> None:
    records = list(READER.read(SAMPLES / "RDS_synthetic_minimal.db"))
    by_md5 = {r.digests["md5"].hex(): r for r in records}
    # Four FILE rows, three distinct hashes: hello.txt is listed in two packages.
    assert len(records) == 3
    assert by_md5[HELLO[0]].digests == digests(HELLO)
    assert by_md5[WORLD[0]].digests == digests(WORLD)
    assert by_md5[EMPTY[0]].digests == digests(EMPTY)
    assert by_md5[EMPTY[0]].digests["md5"] == hashlib.md5(b"").digest()
    # The representative row is the first name in sort order, with its own package.
    assert (by_md5[HELLO[0]].name, by_md5[HELLO[0]].ident) == ("HELLO.TXT", "2")
    assert (by_md5[WORLD[0]].name, by_md5[WORLD[0]].size) == ("a,b.txt", 5)
    assert all(r.label is None for r in records)


def test_full_sample_known_answers() -> None:
    records = {r.digests["sha256"].hex(): r for r in READER.read(SAMPLES / "RDS_synthetic_full.db")}
    assert set(records) == {HELLO[2], WORLD[2], EMPTY[2]}
    assert records[HELLO[2]].digests == digests(HELLO)
    assert (records[HELLO[2]].name, records[HELLO[2]].size, records[HELLO[2]].ident) == (
        "hello.txt",
        5,
        "1",
    )
    assert (records[EMPTY[2]].name, records[EMPTY[2]].size) == ("empty", 0)


def test_samples_metadata() -> None:
    assert READER.metadata(SAMPLES / "RDS_synthetic_minimal.db") == {
        "schema": "minimal",
        "version": "2099.01.1",
        "build_set": "synthetic",
        "release_date": "2099-01-01 00:00:00",
    }
    assert READER.metadata(SAMPLES / "RDS_synthetic_full.db")["schema"] == "full"


def test_both_shapes_built_here(tmp_path: Path) -> None:
    minimal = make_minimal(
        tmp_path / "minimal.db",
        [
            (*upper(HELLO), "hello.txt", 5, 7),
            (*upper(HELLO), "Hello.txt", 5, 3),
            (*upper(WORLD), "world.txt", 5, 7),
        ],
    )
    full = make_full(
        tmp_path / "full.db",
        [
            (101, 7, "hello", "txt", 5, *HELLO),  # lower case: the view upper-cases it
            (102, 3, "Hello", "txt", 5, *HELLO),
            (103, 7, "world", "txt", 5, *WORLD),
        ],
    )
    for path, shape in ((minimal, "minimal"), (full, "full")):
        assert READER.sniff(path.read_bytes()[:SNIFF_BYTES], path)
        assert READER.metadata(path)["schema"] == shape
        records = sorted(READER.read(path), key=lambda r: r.digests["md5"])
        assert [r.digests for r in records] == [digests(HELLO), digests(WORLD)]
        assert [(r.name, r.size, r.ident) for r in records] == [
            ("Hello.txt", 5, "3"),
            ("world.txt", 5, "7"),
        ]
    # The latest of several VERSION rows describes the content.
    assert READER.metadata(full) == {
        "schema": "full",
        "version": "2024.03.1",
        "build_set": "Legacy",
        "release_date": "2024-03-05",
    }


@pytest.mark.parametrize(
    ("versions", "highest"),
    [(["2024.9.1", "2024.12.1"], "2024.12.1"), (["2024.12.1", "2024.9.1"], "2024.12.1"),
     (["2024.03.10", "2024.03.9"], "2024.03.10"), ([None, "2024.12.1"], "2024.12.1")],
)  # fmt: skip
def test_the_highest_version_is_found_by_its_numbers_not_its_text(
    tmp_path: Path, versions: list[str | None], highest: str
) -> None:
    """Before: "2024.9.1" was taken as higher than "2024.12.1" (text order)."""
    path = make_minimal(tmp_path / "rds.db", [upper(HELLO) + ("Hello.txt", 5, 3)])
    conn = sqlite3.connect(path)
    conn.execute("DELETE FROM VERSION")
    for n, version in enumerate(versions):
        conn.execute("INSERT INTO VERSION (version, build_set, release_date) VALUES (?, 'M', ?)",
                     [version, f"day-{n}"])  # fmt: skip
    conn.commit()
    conn.close()
    found = READER.metadata(path)
    assert (found["version"], found["release_date"]) == (highest, f"day-{versions.index(highest)}")


def test_columns_are_found_by_name(tmp_path: Path) -> None:
    path = tmp_path / "reordered.db"
    with sqlite3.connect(path) as conn:
        conn.executescript(
            "CREATE TABLE FILE (package_id INTEGER, extra TEXT, file_size INTEGER,"
            " MD5 TEXT, file_name TEXT, SHA1 TEXT, SHA256 TEXT);"
            "CREATE TABLE PKG (package_id INTEGER); CREATE TABLE VERSION (version TEXT);"
        )
        conn.execute(
            "INSERT INTO FILE VALUES (9, 'x', 0, ?, 'empty.dat', ?, ?)",
            (EMPTY[0], EMPTY[1].upper(), EMPTY[2]),
        )
    conn.close()
    [record] = READER.read(path)
    assert record.digests == digests(EMPTY)
    assert (record.name, record.size, record.ident) == ("empty.dat", 0, "9")
    assert READER.metadata(path) == {"schema": "minimal"}


def test_read_batches_equals_read_across_batch_boundaries(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rows = []
    for n in range(23):
        data = str(n).encode()
        triple = (
            hashlib.md5(data).hexdigest(),
            hashlib.sha1(data).hexdigest(),
            hashlib.sha256(data).hexdigest(),
        )
        rows.append((*upper(triple), f"f{n}.bin", len(data), n % 4))
    path = make_minimal(tmp_path / "many.db", rows)
    monkeypatch.setattr(nsrl_rds3, "BATCH_ROWS", 5)
    batches = list(READER.read_batches(path))
    assert [len(b.rows) for b in batches] == [5, 5, 5, 5, 3]
    assert all(b.algorithms == ("md5", "sha1", "sha256") for b in batches)
    flat = [row for batch in batches for row in batch.rows]
    records = list(READER.read(path))
    assert flat == [
        (r.digests["md5"], r.digests["sha1"], r.digests["sha256"], r.size, r.name, r.ident, None)
        for r in records
    ]
    assert {r.digests["md5"] for r in records} == {bytes.fromhex(t[2]) for t in rows}


def test_malformed_rows_raise_or_go_to_on_invalid(tmp_path: Path) -> None:
    path = make_minimal(
        tmp_path / "bad.db",
        [
            (*upper(HELLO), "hello.txt", 5, 1),
            (upper(WORLD)[0], upper(WORLD)[1], "7D79", "short.txt", 5, 2),
            (upper(EMPTY)[0], "ZZ" * 20, upper(EMPTY)[2], "nonhex.txt", 0, 3),
            (upper(WORLD)[0], upper(WORLD)[1], upper(WORLD)[2][:-1] + " ", "space.txt", 5, 4),
            ("A" * 64, "B" * 40, "C" * 32, "size.txt", "big", 5),
        ],
    )
    with pytest.raises(FormatError) as caught:
        list(READER.read(path))
    assert caught.value.source == str(path)
    errors: list[FormatError] = []
    records = list(READER.read(path, on_invalid=errors.append))
    assert [r.name for r in records] == ["hello.txt"]
    reasons = sorted(e.reason for e in errors)
    assert len(reasons) == 4
    assert any("md5 is not 32 hex digits: '7D79'" in r for r in reasons)
    assert any("sha1 is not 40 hex digits" in r for r in reasons)
    assert any("file_size is not a byte count: 'big'" in r for r in reasons)
    assert all(len(r) < 420 for r in reasons)  # bounded, a digest given whole


def test_a_bad_entry_is_named_by_its_number_in_walk_order_its_name_and_package(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """FILE has no lines: the number counts entries in (sha256, sha1, md5) order, across batches."""
    monkeypatch.setattr(nsrl_rds3, "BATCH_ROWS", 2)
    rows = [(f"{n:064X}", f"{n:040X}", f"{n:032X}", f"f{n}.dll", n, 7) for n in range(1, 6)]
    rows[3] = (rows[3][0], rows[3][1], "Z" * 32, "bad.dll", 4, 9)  # the 4th in sha256 order
    path = make_minimal(tmp_path / "bad.db", reversed(rows))
    with pytest.raises(FormatError) as caught:
        list(READER.read(path))
    assert caught.value.reason == (
        f"FILE entry number 4 (sha256 '{4:064X}', file_name 'bad.dll', package_id '9'): "
        f"md5 is not 32 hex digits: '{'Z' * 32}'"
    )


def test_undecodable_name_comes_back_as_bytes(tmp_path: Path) -> None:
    path = make_minimal(tmp_path / "latin1.db", [])
    with sqlite3.connect(path) as conn:
        conn.execute(
            "INSERT INTO FILE VALUES (?, ?, ?, '0', CAST(x'636166e92e747874' AS TEXT), 5, 1)",
            upper(HELLO),
        )
        conn.execute("INSERT INTO FILE VALUES (?, ?, ?, '0', 'caf\u00e9.txt', 5, 2)", upper(WORLD))
    conn.close()
    names = {r.digests["md5"].hex(): r.name for r in READER.read(path)}
    assert names == {HELLO[0]: b"caf\xe9.txt", WORLD[0]: "caf\u00e9.txt"}


def test_opened_read_only_and_left_untouched(tmp_path: Path) -> None:
    path = make_minimal(tmp_path / "ro.db", [(*upper(HELLO), "hello.txt", 5, 1)])
    before = (path.read_bytes(), os.stat(path).st_mtime_ns)
    path.chmod(0o444)
    assert len(list(READER.read(path))) == 1
    READER.metadata(path)
    assert (path.read_bytes(), os.stat(path).st_mtime_ns) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ro.db"]


def test_sniff() -> None:
    minimal = (SAMPLES / "RDS_synthetic_minimal.db").read_bytes()[:SNIFF_BYTES]
    assert READER.sniff(minimal, SAMPLES / "RDS_synthetic_minimal.db")
    # Without a path, the CREATE statements on the first pages are searched.
    assert READER.sniff(minimal)
    assert not READER.sniff(b"SQLite format 3\x00" + bytes(100))
    assert not READER.sniff(b'"SHA-1","MD5","CRC32","FileName"\r\n')


def test_sniff_refuses_other_sqlite_databases(tmp_path: Path) -> None:
    path = tmp_path / "other.kdb"
    with sqlite3.connect(path) as conn:
        conn.executescript("CREATE TABLE hashes (md5 BLOB); CREATE TABLE FILE (x);")
    conn.close()
    assert not READER.sniff(path.read_bytes()[:SNIFF_BYTES], path)
    with pytest.raises(FormatError, match="lacks md5, sha1, sha256"):
        list(READER.read(path))


@pytest.mark.parametrize(
    "content",
    [b"", b"not a database at all\n", b"SQLite format 3\x00" + b"\xff" * 200],
)
def test_non_databases_raise_format_error(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "x.db"
    path.write_bytes(content)
    with pytest.raises(FormatError):
        list(READER.read(path))
    assert not READER.sniff(content[:SNIFF_BYTES], path)


def test_truncated_database_raises_format_error(tmp_path: Path) -> None:
    path = tmp_path / "cut.db"
    path.write_bytes((SAMPLES / "RDS_synthetic_full.db").read_bytes()[:8192])
    with pytest.raises(FormatError):
        list(READER.read(path))
    with pytest.raises(FormatError):
        READER.metadata(path)


def test_database_without_file_table(tmp_path: Path) -> None:
    path = tmp_path / "nofile.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE VERSION (version TEXT)")
    conn.close()
    with pytest.raises(FormatError, match="no FILE table or view"):
        list(READER.read(path))


def test_detection_is_exclusive_over_all_samples() -> None:
    # Every registered reader sees every bundled sample: ours must be the only
    # one to claim RDS v3 samples, and must claim nothing else.
    for sample in sorted(ALL_SAMPLES.rglob("*")):
        if not sample.is_file() or sample.name == "TRUTH.json":
            continue
        head = sample.read_bytes()[:SNIFF_BYTES]
        ours = sample.parent.name == "nsrl_rds3"
        assert READER.sniff(head, sample) == ours, sample
        if ours:
            assert registry.detect(sample, head) is registry.get(READER.NAME), sample


def _import(tmp_path: Path, path: Path, *extra: str) -> tuple[int, str]:
    from click.testing import CliRunner

    from matcher.cli import cli

    result = CliRunner().invoke(cli, ["import", str(path), "--db", str(tmp_path / "store.db"), *extra])
    return result.exit_code, result.output


@pytest.mark.parametrize("named", [False, True], ids=["detected", "--format nsrl-rds3"])
def test_rows_still_in_a_wal_side_file_refuse_the_database(tmp_path: Path, named: bool) -> None:
    """Read as immutable, SQLite never sees a -wal file: its rows would be missed in silence."""
    live = tmp_path / "live.db"
    make_minimal(live, [(*upper(HELLO), "hello.txt", 5, 1)])
    writer = sqlite3.connect(live)
    writer.execute("PRAGMA journal_mode=WAL")
    writer.execute("PRAGMA wal_autocheckpoint=0")
    writer.execute("INSERT INTO FILE VALUES (?, ?, ?, '00000000', 'world.txt', 5, 1)", upper(WORLD))
    writer.commit()
    copy = tmp_path / "rds.db"  # the database and its -wal, as a supplier might ship them
    copy.write_bytes(live.read_bytes())
    (tmp_path / "rds.db-wal").write_bytes((tmp_path / "live.db-wal").read_bytes())
    writer.close()
    code, output = _import(tmp_path, copy, *(["--format", "nsrl-rds3"] if named else []))
    assert code == 2 and "beside it is a write-ahead log, rds.db-wal" in output, output
    assert not (tmp_path / "store.db").exists() or "Traceback" not in output


def _with_pending_wal(folder: Path, *, checkpoint: bool = False, then: str = "") -> Path:
    """An RDS v3 database in `folder` holding one row, with a second in its -wal.

    With `checkpoint`, the -wal is checkpointed (the row is in the database
    file too) but not truncated, and `then` is run after it.
    """
    folder.mkdir()
    live = make_minimal(folder / "live.db", [(*upper(HELLO), "hello.txt", 5, 1)])
    writer = sqlite3.connect(live)
    writer.execute("PRAGMA journal_mode=WAL")
    writer.execute("PRAGMA wal_autocheckpoint=0")
    writer.execute("INSERT INTO FILE VALUES (?, ?, ?, '00000000', 'world.txt', 5, 1)", upper(WORLD))
    writer.commit()
    if checkpoint:
        assert writer.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()[0] == 0
        if then:
            writer.execute(then)
            writer.commit()
    path = folder / "RDS.db"
    path.write_bytes(live.read_bytes())
    (folder / "RDS.db-wal").write_bytes((folder / "live.db-wal").read_bytes())
    writer.close()
    live.unlink()
    return path


def _entries(tmp_path: Path) -> int:
    store = sqlite3.connect(tmp_path / "store.db")
    try:
        return int(store.execute("SELECT count(*) FROM entries").fetchone()[0])
    finally:
        store.close()


def _read_with_its_side_files(path: Path) -> int:
    """The FILE rows SQLite itself reads from a copy of the database and its side files."""
    copy = path.with_name("copy.db")
    for suffix in ("", "-wal", "-journal"):
        if Path(f"{path}{suffix}").exists():
            Path(f"{copy}{suffix}").write_bytes(Path(f"{path}{suffix}").read_bytes())
    conn = sqlite3.connect(copy)
    try:
        return int(conn.execute("SELECT count(*) FROM FILE").fetchone()[0])
    finally:
        conn.close()
        for suffix in ("", "-wal", "-journal", "-shm"):
            Path(f"{copy}{suffix}").unlink(missing_ok=True)


def test_a_wal_holding_only_pages_already_in_the_database_is_no_reason_to_refuse(
    tmp_path: Path,
) -> None:
    """Checkpointed but not truncated: it was refused as "holding changes" it did not hold."""
    path = _with_pending_wal(tmp_path / "nsrl", checkpoint=True)
    assert Path(f"{path}-wal").stat().st_size > 0
    code, output = _import(tmp_path, path)
    assert code == 0, output
    assert _entries(tmp_path) == _read_with_its_side_files(path) == 2


def test_a_wal_reset_after_a_checkpoint_with_a_row_pending_is_refused(tmp_path: Path) -> None:
    """The frames after a reset (new salts) that SQLite reads hold a row the file lacks."""
    path = _with_pending_wal(
        tmp_path / "nsrl", checkpoint=True, then="UPDATE FILE SET file_name = 'moved.txt'"
    )
    code, output = _import(tmp_path, path)
    assert code == 2, output
    assert "a write-ahead log, RDS.db-wal" in output
    assert "holding changes that are not in the database file" in output


def test_a_wal_whose_commit_frame_is_torn_holds_nothing_sqlite_reads(tmp_path: Path) -> None:
    """A frame whose checksum fails ends the log for SQLite: its transaction never committed."""
    path = _with_pending_wal(tmp_path / "nsrl")
    wal = Path(f"{path}-wal")
    data = bytearray(wal.read_bytes())
    data[-1] ^= 0xFF  # the last frame (the commit) no longer checks
    wal.write_bytes(bytes(data))
    assert _read_with_its_side_files(path) == 1
    code, output = _import(tmp_path, path)
    assert code == 0, output
    assert _entries(tmp_path) == 1


def test_a_wal_that_cannot_be_checked_may_hold_changes(tmp_path: Path) -> None:
    path = make_minimal(tmp_path / "rds.db", [(*upper(HELLO), "hello.txt", 5, 1)])
    Path(f"{path}-wal").write_bytes(b"\x37\x7f\x06\x82" + bytes(60))
    code, output = _import(tmp_path, path)
    assert code == 2, output
    assert "that may hold changes not in the database file (its header is not one SQLite" in output


def test_a_journal_zeroed_by_journal_mode_persist_is_no_reason_to_refuse(tmp_path: Path) -> None:
    """Nothing is pending in it (SQLite's test for a hot journal); it was refused."""
    path = make_minimal(tmp_path / "rds.db", [(*upper(HELLO), "hello.txt", 5, 1)])
    writer = sqlite3.connect(path)
    writer.execute("PRAGMA journal_mode=PERSIST")
    writer.execute("UPDATE VERSION SET description = 'y'")
    writer.commit()
    writer.close()
    assert Path(f"{path}-journal").stat().st_size > 0
    code, output = _import(tmp_path, path)
    assert code == 0, output
    assert _entries(tmp_path) == 1


def test_a_hot_journal_is_refused_as_a_write_cut_off(tmp_path: Path) -> None:
    path = make_minimal(tmp_path / "rds.db", [(*upper(HELLO), "hello.txt", 5, 1)])
    script = (
        "import os, sqlite3, sys\n"
        "c = sqlite3.connect(sys.argv[1], isolation_level=None)\n"
        "c.execute('PRAGMA journal_mode=PERSIST'); c.execute('PRAGMA cache_size=1')\n"
        "c.execute('BEGIN')\n"
        "c.execute(\"INSERT INTO FILE (file_name) SELECT zeroblob(900) FROM FILE\")\n"
        "for _ in range(6): c.execute('INSERT INTO FILE SELECT * FROM FILE')\n"
        "os._exit(0)\n"
    )
    subprocess.run([sys.executable, "-c", script, str(path)], check=True)
    assert Path(f"{path}-journal").read_bytes()[:1] != b"\0"
    code, output = _import(tmp_path, path)
    assert code == 2, output
    assert "a rollback journal, rds.db-journal" in output
    assert "of a write cut off midway: the database file may hold part of it" in output


@pytest.mark.parametrize("named", [False, True], ids=["detected", "--format nsrl-rds3"])
def test_a_symlink_to_a_database_with_rows_in_its_wal_is_refused(tmp_path: Path, named: bool) -> None:
    """SQLite keeps side files beside the file a link resolves to, not beside the link."""
    path = _with_pending_wal(tmp_path / "nsrl")
    link = tmp_path / "RDS-link.db"
    link.symlink_to(Path("nsrl") / "RDS.db")
    code, output = _import(tmp_path, link, *(["--format", "nsrl-rds3"] if named else []))
    assert code == 2 and f"a write-ahead log, {path}-wal" in output, output
    assert "Traceback" not in output


def test_a_truncated_database_is_named_as_such_by_detection(tmp_path: Path) -> None:
    path = tmp_path / "cut.db"
    path.write_bytes((SAMPLES / "RDS_synthetic_full.db").read_bytes()[:8192])
    code, output = _import(tmp_path, path)
    assert code == 2 and "an SQLite database that cannot be read" in output, output


@pytest.mark.parametrize("encoding", ["UTF-16le", "UTF-16be"])
def test_a_utf16_database_imports_as_its_utf8_twin(tmp_path: Path, encoding: str) -> None:
    rows = [(*upper(HELLO), "héllo.txt", 5, 1), (*upper(WORLD), "world.txt", 5, 2)]
    twin = make_minimal(tmp_path / "utf8.db", rows)
    path = tmp_path / "utf16.db"
    with sqlite3.connect(path) as conn:
        conn.execute(f'PRAGMA encoding="{encoding}"')
        conn.executescript(MINIMAL_DDL)
        conn.executemany("INSERT INTO FILE VALUES (?, ?, ?, '00000000', ?, ?, ?)", rows)
    conn.close()
    assert _import(tmp_path, twin)[0] == 0
    code, output = _import(tmp_path, path)
    assert code == 0, output
    store = sqlite3.connect(tmp_path / "store.db")
    try:
        by_list = store.execute(
            "SELECT l.name, count(*), group_concat(e.name, '|') FROM entries e JOIN lists l ON l.id = e.list_id "
            "GROUP BY l.name ORDER BY l.name"
        ).fetchall()
    finally:
        store.close()
    assert [row[1:] for row in by_list] == [(2, by_list[0][2])] * 2 and len(by_list) == 2


@pytest.mark.parametrize(
    ("tables", "lacks", "shown"),
    [
        (("FILE", "VERSION"), "(this one lacks PKG)", "Its tables and views: FILE, VERSION"),
        ((), "(this one lacks FILE, PKG, VERSION)", "Its tables and views: none"),
        (("hashes", "notes"), "(this one lacks file_names, db_properties)", "hashes, notes"),
    ],
)
def test_a_database_that_is_no_list_names_the_tables_it_lacks(
    tmp_path: Path, tables: tuple[str, ...], lacks: str, shown: str
) -> None:
    # An RDS built without its PKG table, or another tool's database, is not
    # "a format not recognised": the examiner learns what is missing.
    path = tmp_path / "other.db"
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA user_version = 1")  # a valid database even with no table
    for table in tables:
        conn.execute(f'CREATE TABLE "{table}" (x)')
    conn.commit()
    conn.close()
    with pytest.raises(FormatError) as caught:
        registry.detect(path)
    message = str(caught.value)
    assert message.startswith(f"{path}: an SQLite database, but not a hash list matcher reads")
    assert lacks in message and shown in message


def test_a_schema_damaged_into_bytes_that_are_not_utf8_is_refused_not_a_traceback(tmp_path: Path) -> None:
    # SQLite's error message then quotes the damaged bytes, and Python fails to
    # decode it (UnicodeDecodeError, not sqlite3.Error): found by fuzzing.
    path = tmp_path / "r.db"
    conn = sqlite3.connect(path)
    for table in ("FILE", "PKG", "VERSION"):
        conn.execute(f"CREATE TABLE {table} (x)")
    conn.commit()
    conn.close()
    data = bytearray(path.read_bytes())
    data[data.find(b"tablePKGPKG") + 5] = 0xBC
    path.write_bytes(bytes(data))
    with pytest.raises(FormatError, match="cannot be read"):
        registry.detect(path)
    with pytest.raises(FormatError, match="cannot read the NSRL database"):
        READER.metadata(path)
    assert READER.sniff(path.read_bytes()[:SNIFF_BYTES], path) is False


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        (None, "sha1 is not 40 hex digits: NULL"),  # was 'None', the text
        ("\uff19" * 40, "sha1 is not 40 hex digits: x'efbc99"),  # was replacement characters
        ("A" * 39 + "G", f"sha1 is not 40 hex digits: '{'A' * 39}G'"),  # whole: where the fault is
    ],
)
def test_a_bad_digest_is_shown_as_sql_would_find_it(tmp_path: Path, value: object, shown: str) -> None:
    """A faulty FILE entry is named by its sha256 as stored, its name and package, and the value whole."""
    sha256 = "AB" * 32
    conn = sqlite3.connect(tmp_path / "bad.db")
    conn.executescript(MINIMAL_DDL)
    conn.execute("INSERT INTO FILE VALUES (?, ?, ?, '00000000', 'x.dll', 5, 3)", (sha256, value, "C" * 32))
    conn.commit()
    conn.close()
    with pytest.raises(FormatError) as caught:
        list(READER.read(tmp_path / "bad.db"))
    assert caught.value.reason.startswith(
        f"FILE entry number 1 (sha256 '{sha256}', file_name 'x.dll', package_id '3'): {shown}"
    ), caught.value.reason
