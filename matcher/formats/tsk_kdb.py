"""Reads Autopsy / The Sleuth Kit SQLite hash databases (.kdb)."""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterator
from pathlib import Path

from matcher import digests
from matcher.errors import FormatError
from matcher.formats import registry
from matcher.formats import sqlite_lists
from matcher.formats.base import OnInvalid
from matcher.models import HashRecord

SQLITE_MAGIC = b"SQLite format 3\x00"
# Note that these three tables identify a TSK hash database (FORMATS.md §11);
# an NSRL RDS v3 database has FILE, PKG and VERSION instead.
SIGNATURE = ("hashes", "file_names", "db_properties")
_RDS_SIGNATURE = ("file", "pkg", "version")
# hashes column -> algorithm; TSK fills md5 only, as a 16-byte BLOB.
_COLUMNS = {"md5": "md5", "sha1": "sha1", "sha2_256": "sha256"}
BATCH_ROWS = 10_000
_MAX_PROPERTIES = 100
_CREATE = r"CREATE\s+TABLE\s+(?:IF\s+NOT\s+EXISTS\s+)?[\"`\[]?{}\b"
_HEAD_PATTERNS = [re.compile(_CREATE.format(n).encode(), re.IGNORECASE) for n in SIGNATURE]
_KEY_NOISE = re.compile(r"[^0-9a-z]+")
# Note that the sqlite3 module decodes SQLite's own messages as UTF-8: a damaged
# schema can make that decoding fail instead of raising sqlite3.Error.
_DB_ERRORS = sqlite_lists.DB_ERRORS


def _tables(conn: sqlite3.Connection) -> dict[str, str]:
    """Lower-cased table (and view) names mapped to their spelling in the schema."""
    rows = conn.execute("SELECT name FROM sqlite_master WHERE type IN ('table', 'view')").fetchall()
    return {str(name).lower(): str(name) for (name,) in rows}


def _text(value: object) -> str | None:
    name = sqlite_lists.name(value)
    return name.decode("latin-1") if isinstance(name, bytes) else name


def _excerpt(value: object) -> str:
    if isinstance(value, bytes):
        text = value.hex() if len(value) <= 40 else value[:37].hex() + "..."
        return f"a {len(value)}-byte BLOB {text}"
    text = str(value)
    return repr(text if len(text) <= 60 else text[:57] + "...")


def _digest(value: object, algorithm: str) -> bytes:
    size = digests.DIGEST_SIZES[algorithm]
    if isinstance(value, bytes) and len(value) == size:
        return value
    # Note that TSK writes BLOBs; hex text of the right length is read too.
    if isinstance(value, str) and len(value) == 2 * size and digests.is_hex(value):
        return bytes.fromhex(value)
    raise FormatError(f"{algorithm} is not a {size}-byte BLOB: {_excerpt(value)}")


def _by_hash_id(cursor: sqlite3.Cursor) -> Iterator[tuple[int, object]]:
    for hash_id, value in cursor:
        if isinstance(hash_id, int):
            yield hash_id, value


class TskKdbReader:
    """Reads the `hashes` table of a TSK/Autopsy `.kdb`, with names from `file_names`.

    One entry per `hashes` row: `md5` (a 16-byte BLOB), and `sha1` and
    `sha2_256` when filled (TSK leaves them NULL). The first file name (in
    sort order) that `file_names` gives the row becomes the entry's name, the
    first `comments` text its label, verbatim. The database is opened
    read-only and immutable, and read in batches: names and comments come
    from sorted queries merged with the rows, so memory stays bounded.
    """

    NAME = "tsk-kdb"
    DESCRIPTION = "Autopsy/The Sleuth Kit SQLite hash database (.kdb)"
    DEFAULT_ROLE = "notable"

    def sniff(self, head: bytes, path: Path | None = None) -> bool:
        """True for an SQLite file whose tables include hashes, file_names and db_properties.

        Args:
            head: the first bytes of the file.
            path: the file, opened read-only to list its tables; without it,
                the CREATE statements in `head` are searched instead.
        """
        if not head.startswith(SQLITE_MAGIC):
            return False
        if path is None:
            return all(pattern.search(head) for pattern in _HEAD_PATTERNS)
        try:
            with sqlite_lists.connect(path) as conn:
                tables = _tables(conn)
        except (FormatError, *_DB_ERRORS):
            return False
        return all(name in tables for name in SIGNATURE)

    def read(self, path: Path, on_invalid: OnInvalid = None) -> Iterator[HashRecord]:
        """Yield one record per `hashes` row, in id order.

        Raises:
            FormatError: when the file is not a TSK hash database, cannot be
                read, or (unless `on_invalid` takes it) for a row whose digest
                is not a BLOB of the right size or that has no digest.
        """
        source = str(path)
        with sqlite_lists.connect(path) as conn:
            try:
                yield from _records(conn, source, on_invalid)
            except _DB_ERRORS as exc:
                raise FormatError(f"cannot read the hash database: {exc}", source) from exc

    def metadata(self, path: Path) -> dict[str, str]:
        """The `db_properties` rows (e.g. schema_version), keyed in snake case.

        Raises:
            FormatError: when the file cannot be read as an SQLite database.
        """
        info: dict[str, str] = {}
        with sqlite_lists.connect(path) as conn:
            try:
                tables = _tables(conn)
                if "db_properties" not in tables:
                    return info
                rows = conn.execute(
                    f'SELECT name, value FROM "{tables["db_properties"]}" LIMIT ?',
                    (_MAX_PROPERTIES,),
                ).fetchall()
            except _DB_ERRORS as exc:
                raise FormatError(f"cannot read the hash database: {exc}", str(path)) from exc
        for name, value in rows:
            key = _KEY_NOISE.sub("_", (_text(name) or "").lower()).strip("_")
            text = _text(value)
            if key and text is not None:
                info.setdefault(key, text)
        return info


def _records(conn: sqlite3.Connection, source: str, on_invalid: OnInvalid) -> Iterator[HashRecord]:
    tables = _tables(conn)
    if "hashes" not in tables:
        hint = ""
        if all(name in tables for name in _RDS_SIGNATURE):
            hint = " (it looks like an NSRL RDS v3 database: use --format nsrl-rds3)"
        raise FormatError(f"not a TSK/Autopsy hash database: it has no hashes table{hint}", source)
    hashes = tables["hashes"]
    columns = sqlite_lists.columns(conn, hashes)
    present = [(col, alg) for col, alg in _COLUMNS.items() if col in columns]
    if not present:
        raise FormatError("the hashes table has no md5, sha1 or sha2_256 column", source)
    selected = ", ".join(f'"{columns[col]}"' for col, _ in present)
    # Note that file_names.hash_id points at hashes.id (TSK's INTEGER PRIMARY KEY).
    key = f'"{columns["id"]}"' if "id" in columns else "rowid"
    # Note: in TSK's schema the id is the INTEGER PRIMARY KEY; in a damaged file
    # it may be NULL or text, which names no row: rowid stands in for it then.
    key = f"CASE WHEN typeof({key}) = 'integer' THEN {key} ELSE -rowid END"
    rows = conn.execute(f'SELECT {key} AS k, {selected} FROM "{hashes}" ORDER BY k')
    names = _side_table(conn, tables, "file_names", "name")
    comments = _side_table(conn, tables, "comments", "comment")
    next_name = next(names, None)
    next_comment = next(comments, None)
    while batch := rows.fetchmany(BATCH_ROWS):
        for row_id, *values in batch:
            # Note that both side queries come sorted by hash_id, like the rows.
            while next_name is not None and next_name[0] < row_id:
                next_name = next(names, None)
            while next_comment is not None and next_comment[0] < row_id:
                next_comment = next(comments, None)
            name = next_name[1] if next_name is not None and next_name[0] == row_id else None
            label = (
                next_comment[1] if next_comment is not None and next_comment[0] == row_id else None
            )
            try:
                found = {
                    alg: _digest(value, alg)
                    for (_, alg), value in zip(present, values, strict=True)
                    if value is not None
                }
                if not found:
                    raise FormatError("the row has no digest (md5, sha1 and sha2_256 are NULL)")
            except FormatError as error:
                bad = FormatError(f"hashes row id {row_id}: {error.reason}", source)
                if on_invalid is None:
                    raise bad from error
                on_invalid(bad)
                continue
            yield HashRecord(digests=found, name=sqlite_lists.name(name), label=_text(label))


def _side_table(
    conn: sqlite3.Connection, tables: dict[str, str], table: str, column: str
) -> Iterator[tuple[int, object]]:
    """`(hash_id, first value)` pairs of a side table, sorted by hash_id."""
    if table not in tables:
        return iter(())
    columns = sqlite_lists.columns(conn, tables[table])
    if column not in columns or "hash_id" not in columns:
        return iter(())
    # Note: only integer ids can point at a hashes row (a damaged file may hold others).
    cursor = conn.execute(
        f'SELECT "{columns["hash_id"]}", MIN("{columns[column]}") FROM "{tables[table]}" '
        f"WHERE typeof(\"{columns['hash_id']}\") = 'integer' "
        f'GROUP BY "{columns["hash_id"]}" ORDER BY "{columns["hash_id"]}"'
    )
    return _by_hash_id(cursor)


registry.register(TskKdbReader())
sqlite_lists.SIGNATURES[TskKdbReader.NAME] = ("a TSK hash database (.kdb)", SIGNATURE)
