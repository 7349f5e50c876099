"""Reads NIST NSRL RDS v3 SQLite databases, in the minimal and the full schema."""

from __future__ import annotations

import binascii
import re
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from typing import cast

from matcher.errors import FormatError
from matcher.formats import registry
from matcher.formats import sqlite_lists
from matcher.formats.base import OnInvalid
from matcher.formats.base import RecordBatch
from matcher.models import HashRecord
from matcher.models import SqlListSource

SQLITE_MAGIC = sqlite_lists.SQLITE_MAGIC
ALGORITHMS: tuple[str, ...] = ("md5", "sha1", "sha256")
BATCH_ROWS = 50_000

# Note that only these three tables/views identify an RDS; the rest varies by release.
_SIGNATURE = ("FILE", "PKG", "VERSION")
_HEX_LENGTHS = {"md5": 32, "sha1": 40, "sha256": 64}
_VERSION_FIELDS = ("version", "build_set", "release_date")
# The VERSION rows compared (one per release and delta applied: a handful).
_VERSION_ROWS = 10_000


def version_key(value: object) -> tuple[tuple[int, int, str], ...]:
    """A version's sort key by its numbers: 2024.12.1 above 2024.9.1 (NULL lowest)."""
    if value is None:
        return ()
    parts = re.split(r"(\d+)", str(value))
    return tuple((1, int(p), "") if p.isdigit() else (0, 0, p) for p in parts if p)


# Without a path, sniff() can only look for the CREATE statements stored on page 1.
_CREATE = r"CREATE\s+(?:TABLE|VIEW)\s+(?:IF\s+NOT\s+EXISTS\s+)?[\"`\[]?{}\b"
_HEAD_PATTERNS = [re.compile(_CREATE.format(n).encode(), re.IGNORECASE) for n in _SIGNATURE]

_ROW = tuple[bytes, bytes, bytes, int | None, str | bytes | None, str | None, None]


def _objects(conn: sqlite3.Connection) -> dict[str, str]:
    """Upper-cased table and view names mapped to their type."""
    rows = conn.execute(
        "SELECT name, type FROM sqlite_master WHERE type IN ('table', 'view')"
    ).fetchall()
    return {str(name).upper(): str(kind) for name, kind in rows}


def _excerpt(value: object, limit: int = 140) -> str:
    """A FILE value for a message: whole up to `limit` characters (a digest always is).

    NULL as NULL; bytes that are not ASCII as an SQL BLOB literal (x'...'),
    which a SELECT can use as it is, never as replacement characters.
    """
    if value is None:
        return "NULL"
    if isinstance(value, bytes) and not value.isascii():
        text = f"x'{value.hex()}'"
        return text if len(text) <= limit else f"{text[: limit - 4]}...' ({len(value)} bytes)"
    text = value.decode("ascii") if isinstance(value, bytes) else str(value)
    return (
        repr(text) if len(text) <= limit else f"{text[: limit - 3]!r}... ({len(text)} characters)"
    )


class NsrlRds3Reader:
    """Reads the FILE table (minimal schema) or FILE view (full schema) of an RDS v3 DB.

    One entry per distinct (md5, sha1, sha256). NSRL lists the same file under
    many names and packages; the entry keeps the first file name in sort order
    with the size and package_id of that same FILE row. The full provenance
    stays in the NSRL database itself.
    """

    NAME = "nsrl-rds3"
    DESCRIPTION = "NIST NSRL RDS v3 SQLite database (minimal or full schema)"
    DEFAULT_ROLE = "known"

    def sniff(self, head: bytes, path: Path | None = None) -> bool:
        """True for an SQLite file whose schema has FILE, PKG and VERSION.

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
                names = _objects(conn)
        except (FormatError, *sqlite_lists.DB_ERRORS):
            return False
        return all(name in names for name in _SIGNATURE)

    def read(self, path: Path, on_invalid: OnInvalid = None) -> Iterator[HashRecord]:
        """Yield one record per distinct hash triple (see read_batches).

        Raises:
            FormatError: when the file is not an RDS v3 database, or for a
                malformed entry unless `on_invalid` takes it.
        """
        for rows in _row_batches(path, on_invalid):
            for md5, sha1, sha256, size, name, ident, _label in rows:
                digests = {"md5": md5, "sha1": sha1, "sha256": sha256}
                yield HashRecord(digests=digests, size=size, name=name, ident=ident)

    def read_batches(self, path: Path, on_invalid: OnInvalid = None) -> Iterator[RecordBatch]:
        """Yield the FILE entries in batches of about BATCH_ROWS rows.

        Each row is `(md5, sha1, sha256, size, name, ident, label)`: raw digest
        bytes, file_size, file_name (text, or bytes when not UTF-8), package_id
        as text, and None, since NSRL has no labels.

        Raises:
            FormatError: when the file is not an RDS v3 database, or for a
                malformed entry unless `on_invalid` takes it.
        """
        for rows in _row_batches(path, on_invalid):
            yield RecordBatch(algorithms=ALGORITHMS, rows=cast(list[tuple[object, ...]], rows))

    def sql_source(self, path: Path) -> SqlListSource:
        """The same entries as read_batches, as a SELECT the store runs itself.

        The store attaches the database as `src` and copies the rows by SQL,
        which spares one Python object per row. Hex digests come out as the
        database holds them (the store decodes and checks them); names as
        BLOBs, since RDS names keep the vendor's encoding.

        Raises:
            FormatError: when the file is not an RDS v3 database.
        """
        with sqlite_lists.connect(path) as conn:
            try:
                digests, columns, clauses = _query_parts(conn, str(path), "src", hex_text=True)
                in_order = _walks_index(conn, digests, columns, clauses)
                halves = _halves(conn, digests, clauses) if in_order else None
            except sqlite_lists.DB_ERRORS as exc:
                raise FormatError(f"cannot read the NSRL database: {exc}", str(path)) from exc
        return SqlListSource(
            path=path,
            select=f"SELECT {', '.join(digests)}, {columns} {clauses}",
            algorithms=ALGORITHMS,
            digests=digests,
            columns=columns,
            clauses=clauses,
            ordered_by="sha256",
            halves=halves,
            # Note: where the walk reads an index in order (split or not: with
            # a NULL SHA-256 it is not split), FILE's own count reads the
            # table's B-tree, not that index (see SqlListSource.source_rows).
            source_rows="SELECT count(*) FROM src.FILE NOT INDEXED" if in_order else None,
            rows_walked="count(*)" if in_order else None,
        )

    def metadata(self, path: Path) -> dict[str, str]:
        """The VERSION row (version, build_set, release_date) and the schema shape.

        Note that a database updated with delta files may hold several VERSION
        rows; the highest version is the one that describes the content.

        Raises:
            FormatError: when the file cannot be read as an SQLite database.
        """
        with sqlite_lists.connect(path) as conn:
            try:
                objects = _objects(conn)
                info: dict[str, str] = {}
                if "FILE" in objects:
                    info["schema"] = "minimal" if objects["FILE"] == "table" else "full"
                if "VERSION" not in objects:
                    return info
                columns = sqlite_lists.columns(conn, "VERSION")
                wanted = [columns[f] for f in _VERSION_FIELDS if f in columns]
                if not wanted:
                    return info
                select = ", ".join(f'"{c}"' for c in wanted)
                if "version" in columns:
                    # Note: by the version's numbers, not its text: "2024.9.1" sorted
                    # above "2024.12.1". A VERSION table holds a row per delta.
                    at = wanted.index(columns["version"])
                    rows = conn.execute(
                        f"SELECT {select} FROM VERSION LIMIT {_VERSION_ROWS}"
                    ).fetchall()
                    row = max(rows, key=lambda r: version_key(r[at]), default=None)
                else:
                    row = conn.execute(f"SELECT {select} FROM VERSION LIMIT 1").fetchone()
            except sqlite_lists.DB_ERRORS as exc:
                raise FormatError(f"cannot read the NSRL database: {exc}", str(path)) from exc
        if row is not None:
            for column, value in zip(wanted, row, strict=True):
                if value is not None:
                    info[column.lower()] = str(value)
        return info


def _row_batches(path: Path, on_invalid: OnInvalid) -> Iterator[list[_ROW]]:
    source = str(path)
    with sqlite_lists.connect(path) as conn:
        try:
            cursor = conn.execute(_query(conn, source))
            done = 0
            while fetched := cursor.fetchmany(BATCH_ROWS):
                rows = _fast_rows(fetched)
                if rows is None:
                    rows = _checked_rows(fetched, source, on_invalid, done)
                done += len(fetched)
                if rows:
                    yield rows
        except sqlite_lists.DB_ERRORS as exc:
            raise FormatError(f"cannot read the NSRL database: {exc}", source) from exc


def _query(conn: sqlite3.Connection, source: str) -> str:
    """The SELECT over FILE for reading in Python: digests as BLOBs for a2b_hex."""
    digests, columns, clauses = _query_parts(conn, source, "main", hex_text=False)
    return f"SELECT {', '.join(digests)}, {columns} {clauses}"


def _walks_index(
    conn: sqlite3.Connection, digests: tuple[str, str, str], columns: str, clauses: str
) -> bool:
    """True when the walk groups by reading an index in order (no sort), each half too.

    Note: _query_parts groups only a walk that needs no sort (else it ranks
    rows instead), so the whole walk is one; each half is checked here.
    """
    if " GROUP BY " not in clauses:
        return False
    return not any(
        _sorts(conn, f"SELECT {', '.join(digests)}, {columns} {half}", "src")
        for half in _split_at_8(digests, clauses)
    )


def _split_at_8(digests: tuple[str, str, str], clauses: str) -> tuple[str, str]:
    sha256 = digests[2]
    table, _, tail = clauses.partition(" GROUP BY ")
    return (
        f"{table} WHERE {sha256} < '8' GROUP BY {tail}",
        f"{table} WHERE {sha256} >= '8' GROUP BY {tail}",
    )


def _halves(
    conn: sqlite3.Connection, digests: tuple[str, str, str], clauses: str
) -> tuple[str, str] | None:
    """The walk split in two at SHA-256 hex '8', when both halves are one walk's exact parts.

    For a walk that reads an index in order (_walks_index): the walk is in
    SHA-256 order, and hex text below '8' sorts before the rest: each half,
    in the walk's order, follows the other, and for uniform digests they
    hold half the rows each. Only a walk that reads an index in order (no
    sort) is split: where SQLite sorts to group, which of the rows of one
    entry gives its size and package (equal names) is up to the sorter, so
    two processes could choose otherwise than one. A NULL SHA-256 (refused
    by the store) would be in neither half: then there is no split, and the
    one walk stops at it.
    """
    if conn.execute(f"SELECT 1 FROM main.FILE WHERE {digests[2]} IS NULL LIMIT 1").fetchone():
        return None
    return _split_at_8(digests, clauses)


def _query_parts(
    conn: sqlite3.Connection, source: str, schema: str, hex_text: bool
) -> tuple[tuple[str, str, str], str, str]:
    """The SELECT over FILE in parts, built from the columns this database actually has.

    Returns:
        The md5, sha1 and sha256 expressions; size, name, ident and label;
        and the clauses from FROM onwards.

    Args:
        schema: the name the database is attached under.
        hex_text: digests as stored (text) and names as BLOBs, for a copy
            by SQL; otherwise digests as BLOBs for a2b_hex in Python.
    """
    objects = _objects(conn)
    if "FILE" not in objects:
        raise FormatError("not an NSRL RDS v3 database: it has no FILE table or view", source)
    columns = sqlite_lists.columns(conn, "FILE")
    missing = [alg for alg in ALGORITHMS if alg not in columns]
    if missing:
        raise FormatError(f"the NSRL FILE {objects['FILE']} lacks {', '.join(missing)}", source)
    md5, sha1, sha256 = (f'"{columns[alg]}"' for alg in ALGORITHMS)
    size = f'"{columns["file_size"]}"' if "file_size" in columns else "NULL"
    # Note that CAST would make text of a BLOB's bytes, UTF-8 or not. Read in
    # Python, a BLOB package_id stays bytes for _ident() to check; copied by
    # SQL, the column goes as it is: the store makes ids text and sends a list
    # with a BLOB id row by row.
    package = f'"{columns["package_id"]}"' if "package_id" in columns else "NULL"
    if hex_text:
        ident = package
    else:
        ident = (
            f"CASE WHEN typeof({package}) = 'blob' THEN {package} ELSE CAST({package} AS TEXT) END"
        )
    file_name = f'"{columns["file_name"]}"' if "file_name" in columns else "NULL"
    # Note that with exactly one MIN() SQLite takes the bare columns (size,
    # package) from the row that holds the minimum, so they belong together;
    # of several such rows, from the first it meets. In the minimal schema the
    # primary key starts (sha256, sha1, md5), then crc32 (one per file), name,
    # size and package id: the GROUP BY walks that covering index instead of
    # sorting 100M+ rows, the rows come out in sha256 order (the ORDER BY
    # costs nothing more), and an entry takes the row of the least (name,
    # size, package id). Where SQLite must sort to group (FILE a view, as in
    # the full schema, or no such index), rows of equal names come in the
    # sorter's order, which its settings change (threads, memory): the walk
    # then picks that same row explicitly (row_number() over the entry's rows
    # in that order), so an import gives the same store on any machine. Its
    # rows come out in the window's order, by the entry's digests (SQLite
    # sorts, then streams each partition); an ORDER BY would sort them again
    # (on a 70 MB full-schema list: 16 MB more peak memory, and slower).
    grouped = (
        f"FROM {schema}.FILE GROUP BY {sha256}, {sha1}, {md5} ORDER BY {sha256}, {sha1}, {md5}"
    )
    if _sorts(conn, f"SELECT {sha256}, {size}, MIN({file_name}), {package} {grouped}", schema):
        kept = [c for c in (sha256, sha1, md5, file_name, size, package) if c != "NULL"]
        # Note: NULL names last, as MIN() passes them over.
        names = [f"{file_name} IS NULL", file_name] if file_name != "NULL" else []
        tie_break = ", ".join(c for c in (*names, size, package) if c != "NULL") or "1"
        clauses = (
            f"FROM (SELECT {', '.join(dict.fromkeys(kept))}, row_number() OVER "
            f"(PARTITION BY {sha256}, {sha1}, {md5} ORDER BY {tie_break}) AS matcher_rank "
            f"FROM {schema}.FILE) WHERE matcher_rank = 1"
        )
        name = file_name
    else:
        clauses = grouped
        name = f"MIN({file_name})" if file_name != "NULL" else "NULL"
    # Hashes come out as BLOBs: no text decoding, and a2b_hex rejects spaces.
    if hex_text:
        digests = (md5, sha1, sha256)
        name = f"CAST({name} AS BLOB)"
    elif conn.execute("PRAGMA encoding").fetchone()[0] != "UTF-8":
        # Note: in a UTF-16 database a CAST to BLOB gives UTF-16 bytes; the
        # hex comes as text instead (a2b_hex takes ASCII text as well).
        digests = (md5, sha1, sha256)
    else:
        digests = (f"CAST({md5} AS BLOB)", f"CAST({sha1} AS BLOB)", f"CAST({sha256} AS BLOB)")
    return digests, f"{size}, {name}, {ident}, NULL", clauses


def _sorts(conn: sqlite3.Connection, select: str, schema: str) -> bool:
    """True when SQLite sorts to run `select` (a temporary B-tree in its plan)."""
    local = select.replace(f" {schema}.FILE ", " main.FILE ")
    plan = conn.execute(f"EXPLAIN QUERY PLAN {local}").fetchall()
    return any("TEMP B-TREE" in str(row[-1]) for row in plan)


def _fast_rows(fetched: list[Any]) -> list[_ROW] | None:
    """Convert a batch in one comprehension; None when any row needs a closer look."""
    unhex = binascii.a2b_hex
    try:
        rows: list[_ROW] = [
            (
                unhex(md5),
                unhex(sha1),
                unhex(sha256),
                size,
                name if name.__class__ is str and name.isascii() else sqlite_lists.name(name),
                ident,
                None,
            )
            for md5, sha1, sha256, size, name, ident, _label in fetched
            if len(md5) == 32
            and len(sha1) == 40
            and len(sha256) == 64
            and (size is None or (size.__class__ is int and size >= 0))
            and (ident is None or (ident.__class__ is str and ident.isascii()))
        ]
    except (ValueError, TypeError):  # binascii.Error, or text that is not ASCII
        return None
    return rows if len(rows) == len(fetched) else None


def _checked_rows(
    fetched: list[Any], source: str, on_invalid: OnInvalid, done: int = 0
) -> list[_ROW]:
    """Convert a batch row by row, reporting each malformed row.

    Note that FILE has no line numbers: a bad entry is named by its number in
    the walk's order (sha256, sha1, md5: the same on every read), its sha256
    as stored, file name and package_id, which locate it with one SELECT.
    """
    rows: list[_ROW] = []
    for number, (md5, sha1, sha256, size, name, ident, _label) in enumerate(fetched, done + 1):
        try:
            raw = [
                _digest(value, alg)
                for value, alg in zip((md5, sha1, sha256), ALGORITHMS, strict=True)
            ]
            if size is not None and (not isinstance(size, int) or size < 0):
                stored = "text" if isinstance(size, str) else type(size).__name__
                raise ValueError(
                    f"file_size is not a byte count: {_excerpt(size)} (stored as {stored}; "
                    "an NSRL file_size is an INTEGER)"
                )
            package = _ident(ident)
        except ValueError as exc:
            where = (
                f"FILE entry number {number} (sha256 {_excerpt(sha256)}, file_name "
                f"{_excerpt(name, 60)}, package_id {_excerpt(ident, 60)})"
            )
            error = FormatError(f"{where}: {exc}", source)
            if on_invalid is None:
                raise error from exc
            on_invalid(error)
            continue
        rows.append((raw[0], raw[1], raw[2], size, sqlite_lists.name(name), package, None))
    return rows


def _digest(value: object, algorithm: str) -> bytes:
    expected = _HEX_LENGTHS[algorithm]
    if isinstance(value, str) and value.isascii():  # from a UTF-16 database
        value = value.encode("ascii")
    if not isinstance(value, bytes) or len(value) != expected:
        raise ValueError(f"{algorithm} is not {expected} hex digits: {_excerpt(value)}")
    try:
        return binascii.a2b_hex(value)
    except binascii.Error as exc:
        raise ValueError(f"{algorithm} is not {expected} hex digits: {_excerpt(value)}") from exc


def _ident(value: object) -> str | None:
    """package_id as text; ValueError for bytes that are not UTF-8 (no package id)."""
    if value is None:
        return None
    try:
        text = value.decode("utf-8") if isinstance(value, bytes) else str(value)
        text.encode("utf-8")  # a TEXT value that is not UTF-8 comes with surrogates
    except UnicodeError as exc:
        raise ValueError(f"package_id is not text: {_excerpt(value)}") from exc
    return text


registry.register(NsrlRds3Reader())
sqlite_lists.SIGNATURES[NsrlRds3Reader.NAME] = ("an NSRL RDS v3 database", _SIGNATURE)
