"""The hash store: imported lists and their digests in one SQLite file (sqlite-utils).

Schema (version 1):
  lists    one row per imported list: name, role, format, SHA-256 of the
           source file, entry count, import time, list metadata (JSON), and
           the first and last id of its entries (one contiguous range).
  entries  one row per list entry: size and the supplier's own file name, id
           and label, verbatim (a name that is not UTF-8 is kept as a BLOB).
           A list's entries are found by their id range, not by an index on
           list_id (which cost an import of 10M entries some 3 s and the store
           7% of its size); stores made before keep that index and use it.
  hashes   (algo, digest, entry_id), WITHOUT ROWID, primary key in that
           order: the per-algorithm index *is* the table, digests are raw
           bytes (16/20/32/64), and `algo` is a small integer code.
An import is one transaction: a malformed line, a crash or kill -9 leaves the
store exactly as it was before the import.
"""

from __future__ import annotations

import array
import binascii
import contextlib
import dataclasses
import datetime
import hashlib
import json
import os
import sqlite3
import tempfile
from collections.abc import Callable
from collections.abc import Iterable
from collections.abc import Iterator
from collections.abc import Mapping
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from matcher import sqlite_newer
from matcher.digests import ALGORITHM_CODES
from matcher.digests import DIGEST_SIZES
from matcher.digests import empty_digest
from matcher.errors import FormatError
from matcher.errors import StoreError
from matcher.errors import UsageError
from matcher.errors import open_files_note
from matcher.models import ENTRY_FIELDS
from matcher.models import ROLES
from matcher.models import ListHit
from matcher.models import ListInfo
from matcher.models import NewList
from matcher.models import SizeSet
from matcher.models import SourceDigest
from matcher.models import SqlListSource
from matcher.sqlitefiles import ChildFill
from matcher.sqlitefiles import Database
from matcher.sqlitefiles import QueryInThread
from matcher.sqlitefiles import SyncBehind
from matcher.sqlitefiles import connect_readonly
from matcher.sqlitefiles import scratch_folder
from matcher.workers import usable_cores

if TYPE_CHECKING:
    import sqlite_utils

SCHEMA_VERSION = 1
_CODE_NAMES = {code: name for name, code in ALGORITHM_CODES.items()}
# Note that SQLite allows at most 32766 host parameters per statement (999 before 3.32).
_LOOKUP_CHUNK = 900
# The page cache of a bulk copy by SQL, in KiB; SQLite sizes the sorter's in-memory
# runs by it too, once per sorter thread. The copy inserts in key order, so a larger
# cache buys nothing, and smaller runs sort faster: a 10M-row RDS imported in 39.2 s
# with 2 MiB against 41.1 s with 8 MiB (1M VICS entries: 12.3 against 12.8 s), at a
# peak 25 MiB lower; 32 and 64 MiB were slower still. The copy's peak memory stays
# bounded whatever the list's size.
IMPORT_CACHE_KIB = 2048
# Helper threads for SQLite's sorter during a bulk copy (its ORDER BY sorts runs on
# them): a 2M-row RDS imported 12% faster with 2 than with none, at the same peak
# memory with the cache above halved. Capped, as each thread sorts its own runs.
IMPORT_SORTER_THREADS = 4
# An SQL source of at least this size whose reader splits its walk in two
# (SqlListSource.halves) is walked by two processes, one half each, when
# there are two cores: the walk (reading the source's index, grouping and
# decoding) is about a third of an RDS import, and runs on one core.
PARALLEL_STAGING_MIN_BYTES = 64 << 20
# The store connection's page cache, in KiB (removing a list rewrites pages
# all over the digest B-tree), and that of one pass over many stored rows
# (see HashStore.streaming).
STORE_CACHE_KIB = 262144
STREAMING_CACHE_KIB = 8192
# The page size of a new store (SQLite's default is 4096; a store made before
# keeps its own). Fewer, larger pages cut the B-tree's per-page work of a bulk
# copy: a 10M-row RDS imported in 21.6 and 21.3 s against 22.8 and 22.5 s
# with 4096, interleaved (16384: 23.1 and 22.1 s; 32768 and 65536 slower
# still, as each page's cell array is searched and shifted whole). A lookup
# reads a few pages either way.
STORE_PAGE_SIZE = 8192

Row = tuple[object, ...]


# The filter_cache row that keeps notable entry sizes. Note: "-2" since sizes of 0
# without an empty file's digest stopped counting as sizes (see notable_sizes): a
# row kept before would have passed over that check (a review).
_SIZES_KEY = "notable-sizes-2"
_FILTER_CACHE_DDL = (
    "CREATE TABLE IF NOT EXISTS filter_cache (algo TEXT PRIMARY KEY, fingerprint TEXT NOT NULL, "
    "sha256 TEXT NOT NULL, data BLOB NOT NULL)"
)
_LIST_STATS_DDL = (
    "CREATE TABLE IF NOT EXISTS list_stats (list_id INTEGER PRIMARY KEY REFERENCES lists(id), "
    "counts TEXT NOT NULL, zero_length INTEGER NOT NULL, unsized INTEGER)"
)


# The stores open in this process, counted per file ((st_dev, st_ino), else the
# path): apsw's SQLite is used only by a file's one open store (sqlite_newer).
_OPEN_STORES: dict[object, int] = {}


def _file_key(path: Path) -> object:
    try:
        st = path.stat()
    except OSError:
        return os.path.abspath(path)
    return (st.st_dev, st.st_ino)


class _NeedsRowByRow(Exception):
    """A row the SQL copy cannot take as it is: roll back, import row by row."""


class AlreadyImported(Exception):
    """The source's SHA-256, known only at the end of a copy, is a stored list's: rolled back."""

    def __init__(self, existing: ListInfo):
        super().__init__(existing.name)
        self.existing = existing


def _text(name: object) -> str | bytes | None:
    """A stored name: text, or the exact bytes when they are not UTF-8.

    Lists copied by SQL keep names as BLOBs (their encoding is unknown);
    those that decode as UTF-8 are text like every other list's names.
    """
    if isinstance(name, bytes):
        try:
            return name.decode("utf-8")
        except UnicodeDecodeError:
            return name
    return None if name is None else str(name)


# The decoding function of a copy on the system's SQLite (no unhex() before 3.41).
_UNHEX = "matcher_unhex"


def _staging_select(
    source: SqlListSource, clauses: str | None = None, newer: bool = False, counted: bool = False
) -> str:
    """The one walk of an SQL source: `(raw digests, size, name, ident, label)` per entry.

    Each entry's hex digests are checked for length and decoded together, in
    one call of matcher_unhex (binascii.a2b_hex). A digest of the wrong length
    (or NULL) makes the entry's `raw` NULL, and so does any character that is
    not hex (a GLOB, and instr() for a NUL, where GLOB stops: a2b_hex raising
    stopped the walk before its rows were counted, and the damaged-index check
    with them: reviews): the count of rows taken (_staged_counts) finds it.
    Note: a C function, never one written in Python, whose bytecode a Ctrl-C
    lands in during the walk: sqlite3 turns what a function raises into
    "user-defined function raised exception", and the interruption was lost
    (a review). The length is taken of the digest as a BLOB, which SQLite
    knows without counting characters. The digests go to the function as one
    BLOB: as text, Python would decode them into a str first, which cost 0.5
    µs a row (a third of all the decoding).

    A source that also gives its SELECT in parts (SqlListSource `digests`:
    the hex digest expressions; `columns`: size, name, ident and label;
    `clauses`: FROM onwards) gets the decoding inside its own query; any
    other is wrapped as a subquery, which costs SQLite a copy of every row.
    `clauses` replaces the source's own (one of its `halves`). With
    `counted`, a last column gives the source's `rows_walked` of each entry.
    With `newer` (apsw's SQLite), SQLite's own unhex() decodes instead, with
    no Python call per entry.
    """
    digests, columns = source.digests, source.columns
    clauses = clauses or source.clauses
    if not (digests and columns and clauses):
        digests = tuple(f"d{i}" for i in range(len(source.algorithms)))
        columns = "size, name, ident, label"
        clauses = "FROM s"
        prefix = f"WITH s({', '.join(digests)}, {columns}) AS ({source.select}) "
    else:
        prefix = ""
    lengths = " AND ".join(
        f"length(CAST({d} AS BLOB)) = {DIGEST_SIZES[a] * 2}"
        for d, a in zip(digests, source.algorithms, strict=True)
    )
    hexes = " || ".join(digests)
    if newer:
        raw = f"unhex(CASE WHEN {lengths} THEN CAST({hexes} AS BLOB) END)"
    else:
        raw = (
            f"CASE WHEN {lengths} AND ({hexes}) NOT GLOB '*[^0-9A-Fa-f]*' "
            f"AND instr(CAST({hexes} AS BLOB), x'00') = 0 "
            f"THEN {_UNHEX}(CAST({hexes} AS BLOB)) END"
        )
    walked = f", {source.rows_walked}" if counted else ""
    return f"{prefix}SELECT {raw}, {columns}{walked} {clauses}"


@dataclasses.dataclass
class _Computed:
    """A SourceDigest already computed."""

    sha256: str

    def start(self) -> None:
        """Nothing to start: the digest is known."""

    def result(self) -> str:
        return self.sha256


@dataclasses.dataclass
class _Staged:
    """An SQL source's walk, staged: its tables as (table, offset, rows), in walk order."""

    parts: list[tuple[str, int, int]]
    unsized: int  # entries without a size, in all of them
    unfit: int = 0  # entries the copy cannot take as they are (see _staged_counts)
    walked: int = 0  # source rows the walk read (see SqlListSource.rows_walked)
    # The source's own count of its rows, running meanwhile (see _check_rows_walked).
    held: QueryInThread | None = None


# A staging table's columns: an entry's raw digests, its fields, and how many
# source rows the walk read for it (only where that is checked).
_STAGED = "raw BLOB, size, name, ident, label, walked"


# What the copy takes of an entry as it is: a size that is a byte count (or
# none), and ids and labels that are not BLOBs (their bytes may not be UTF-8)
# and, as text, only printable ASCII. Note: a TEXT id of bytes that are not
# UTF-8 (CAST(x'80ff' AS TEXT)) was stored, where the row-by-row reader
# refuses it, and every lookup of its digest then failed ("Could not decode
# to UTF-8"); other text goes row by row, which checks it. (GLOB stops at a
# NUL, which instr() finds: "A\0\xff" passed as "A".) The types are told by
# SQLite's order of values, NULL < numbers < text < BLOBs (the staging
# columns have no affinity, so nothing is converted): `x < ''` is a number,
# `x < x''` a number or text. Comparisons are opcodes where typeof() is a
# function call: 0.9 s against 1.2 s for a count of 5M entries.
_TAKEN_AS_IS = " AND ".join(
    [
        "(size IS NULL OR (typeof(size) = 'integer' AND size >= 0))",
        *(
            f"({c} IS NULL OR {c} < '' OR ({c} < x'' AND {c} NOT GLOB '*[^ -~]*' "
            f"AND instr(CAST({c} AS BLOB), x'00') = 0))"
            for c in ("ident", "label")
        ),
    ]
)


def _staged_counts(table: str, width: int) -> str:
    """The one pass over a staging table for what the import needs of all its rows.

    Gives (rows, taken, unsized, walked): every row; the rows the copy takes
    as they are (their digests decoded, `width` bytes in all: not NULL, so
    hex of their lengths; their fields as _TAKEN_AS_IS); and of those, the
    entries without a size (list_stats) and the source rows walked (see
    SqlListSource.rows_walked). A table with rows not taken goes row by row,
    before anything is written. Note: the test is a WHERE, which SQLite stops
    at the first term that fails; as a value (total(NOT ...)) it evaluates
    every term of every row, four times as long (1.5 s against 0.4 s for 5M
    entries). The bare count(*) reads no row.
    """
    return (
        f"SELECT (SELECT count(*) FROM {table}), count(*), count(*) - count(size), "
        f"total(walked) FROM {table} WHERE length(raw) = {width} AND {_TAKEN_AS_IS}"
    )


def _staged(counted: bool) -> str:
    """The staging columns an INSERT fills."""
    return "raw, size, name, ident, label" + (", walked" if counted else "")


def _sorter_threads() -> int:
    """Sorter helper threads for a bulk copy: one per usable core, up to the cap."""
    cores = usable_cores()
    return min(cores, IMPORT_SORTER_THREADS) if cores > 1 else 0


def _halves_to_walk(source: SqlListSource) -> tuple[str, str] | None:
    """The source's two halves, when walking them in two processes is worth it."""
    if source.halves is None or usable_cores() < 2:
        return None
    try:
        size = source.path.stat().st_size
    except OSError:
        return None
    return source.halves if size >= PARALLEL_STAGING_MIN_BYTES else None


# How long a write waits for another process's hold on the store (a running
# scan holds it, see HashStore.pinned) before it is refused as busy.
BUSY_TIMEOUT_MS = 10_000


def _empty_file_entries(algorithms: Iterable[str]) -> tuple[str, list[object]]:
    """A SELECT of the entry ids holding an empty file's digest of any of `algorithms`.

    Found by the primary key; its parameters with it ("" for no algorithm).
    """
    union, params = [], []
    for name in algorithms:
        union.append("SELECT entry_id FROM hashes WHERE algo = ? AND digest = ?")
        params += [ALGORITHM_CODES[name], empty_digest(name)]
    return " UNION ".join(union), params


def _identity(info: ListInfo) -> tuple[object, ...]:
    return (info.id, info.name, info.role, info.source_sha256, info.entries)


def _not_a_store(creates: bool) -> str:
    """What to do about a --db that is no matcher store, as a tail for a message.

    Note: the refusal said what the file is not, but not what to do. A path
    where no file is makes a new store only for a command that creates one
    (`lists` answers such a path "does not exist").
    """
    new = ", or a path where no file is, to make a new store" if creates else ""
    return f"it is left as it is: give matcher's store with --db (or $MATCHER_DB){new}"


def _busy_or_full(exc: sqlite3.Error) -> str:
    """What to do about SQLite's messages a user can act on, as a tail for a message."""
    text = str(exc)
    if "locked" in text or "busy" in text:
        return " (another matcher process is using the store: run this once it has ended)"
    if "full" in text:
        return (
            " (no room on the store's disk, or in SQLite's temporary folder: "
            "SQLITE_TMPDIR or TMPDIR chooses that folder)"
        )
    limit = open_files_note() if "unable to open" in text else None
    if limit is not None:
        return f" ({limit})"
    if "readonly" in text or "unable to open" in text:
        return (
            " (the store file, or its folder, cannot be written by this user: SQLite "
            "writes its journal beside the store while it changes it)"
        )
    return ""


def remove_store_files(path: Path) -> None:
    """Delete a store file and its SQLite side files, where they exist.

    For a store that this very command created and that holds nothing (a
    refused import): an empty store left behind would look like a usable one.
    """
    for suffix in ("", "-journal", "-wal", "-shm"):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(f"{path}{suffix}")


def remove_store_if_empty(path: Path) -> bool:
    """Delete a store this command created, unless another process has put a list in it.

    For a refused import into a store that did not exist: another process
    may have opened the new file meanwhile and imported into it (its import
    said so, exit 0), and deleting it lost that list. The check and the
    deletion are made under the store's write lock; a process that opened
    the file before and writes after finds at its own commit that the file
    is gone (see HashStore._check_same_file), and says so.

    Returns:
        True when the store files were deleted.
    """
    try:
        conn = sqlite3.connect(
            path.absolute().as_uri() + "?mode=rw", uri=True, timeout=BUSY_TIMEOUT_MS / 1000
        )
    except sqlite3.Error:
        return False  # gone already, or not ours to judge
    try:
        conn.execute("BEGIN IMMEDIATE")
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master")}
        if "lists" in tables and conn.execute("SELECT count(*) FROM lists").fetchone()[0]:
            return False
        remove_store_files(path)
        return True
    except sqlite3.Error:
        return False
    finally:
        conn.close()


def _utcnow() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


class HashStore:
    """Imported hash lists in an embedded SQLite file.

    Args:
        path: the store file; created (mode 0600) unless `readonly` or not `create`.
        readonly: open an existing store without any write.
        create: False to refuse a store that does not exist (a removal
            must not leave an empty store behind).

    Raises:
        StoreError: when the file cannot be opened or is not a matcher store.
    """

    def __init__(self, path: Path, readonly: bool = False, create: bool = True):
        self.path = path
        self._creates = not readonly and create  # a missing file is made a new store
        self._file: object = None
        self._has_stats = False
        self._has_ranges = False  # lists.first_entry and last_entry exist
        try:
            if readonly or not create:
                if not path.is_file():
                    raise StoreError(f"Hash store {path} does not exist. Import a list first.")
            if readonly:
                conn = connect_readonly(path, timeout=BUSY_TIMEOUT_MS / 1000)
            else:
                # Note that SQLite gives its journal the database file's mode, so
                # creating the file 0600 first keeps every store file private.
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o600)
                os.close(fd)
                conn = sqlite3.connect(str(path))
            self.db = Database(conn)
            self._file = _file_key(path)
            _OPEN_STORES[self._file] = _OPEN_STORES.get(self._file, 0) + 1
            self._settings(readonly)
            if not readonly:
                self._ensure_schema()
            else:
                self._check_schema()
                self._has_stats = "list_stats" in self.db.table_names()
                self._has_ranges = "first_entry" in self.db.column_names("lists")
        except sqlite3.DatabaseError as exc:
            self._forget_open()
            tail = _busy_or_full(exc)
            if "not a database" in str(exc):
                tail = f" ({_not_a_store(self._creates)})"
            raise StoreError(f"Cannot open hash store {path}: {exc}{tail}") from exc
        except OSError as exc:
            self._forget_open()
            raise StoreError(f"Cannot open hash store {path}: {exc.strerror}") from exc

    def _settings(self, readonly: bool) -> None:
        """The connection's settings, on every connection the store opens."""
        # Note: first, as `cache_size` reads the schema; and on a reader too:
        # another process's commit (an import's lasts seconds) made `lists`,
        # `scan` and `batch` fail after sqlite3's own 5 s, "database is locked".
        self.db.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        self.db.execute("PRAGMA foreign_keys=ON")
        # A large page cache keeps bulk inserts into the digest B-tree off the disk.
        self.db.execute(f"PRAGMA cache_size = {-STORE_CACHE_KIB}")

    @contextlib.contextmanager
    def _on_newer_sqlite(self) -> Iterator[bool]:
        """Run the body on apsw's SQLite when that is safe: yields whether it is.

        It is safe when apsw is installed and this store is its file's only
        open one in the process: its own connection is closed first and
        opened again after (see sqlite_newer's note). Otherwise, and when
        the newer connection cannot be opened, the body runs on this one.
        """
        if not sqlite_newer.available() or _OPEN_STORES.get(self._file, 0) != 1:
            yield False
            return
        self.db.close()
        try:
            self.db = Database(sqlite_newer.Connection(self.path.absolute().as_uri()))  # type: ignore[arg-type]
        except sqlite3.Error:
            self._reconnect()
            yield False
            return
        try:
            self._settings(readonly=False)
            yield True
        finally:
            self.db.close()
            self._reconnect()

    def _reconnect(self) -> None:
        """Open the store's own connection again (writable), with its settings."""
        self.db = Database(sqlite3.connect(str(self.path)))
        self._settings(readonly=False)

    # -- schema ---------------------------------------------------------------

    def _ensure_schema(self) -> None:
        tables = set(self.db.table_names())
        if "lists" in tables:
            self._check_schema()
            self.db.execute(_LIST_STATS_DDL)  # added in 0.1: older stores gain it here
            if "unsized" not in self.db.column_names("list_stats"):
                self.db.execute("ALTER TABLE list_stats ADD COLUMN unsized INTEGER")
            self.db.execute(_FILTER_CACHE_DDL)
            self._has_stats = True
            self._backfill_ranges()
            self._backfill_stats()
            return
        if tables:
            raise StoreError(
                f"{self.path} is an SQLite file but not a matcher hash store: "
                f"{_not_a_store(self._creates)}."
            )
        # Note: sqlite-utils builds the schema from Python types, once per
        # store; imported here, it costs nothing to the commands that only read.
        # No sqlite-utils plugins: installed third-party code must not run on it.
        import sqlite_utils

        # Note: before the first write, which fixes a file's page size for good
        # (a no-op on one another process made meanwhile, seen below).
        self.db.execute(f"PRAGMA page_size = {STORE_PAGE_SIZE}")
        schema = sqlite_utils.Database(self.db.conn, execute_plugins=False)
        # Note: with the write lock taken first, and the tables asked again: two
        # scans making one new store with --list at once both saw it empty, and
        # the second failed on "table meta already exists".
        with self.db.atomic(immediate=True):
            made_meanwhile = "lists" in set(self.db.table_names())
            if not made_meanwhile:
                self._create_schema(schema)
        if made_meanwhile:
            self._ensure_schema()
            return
        self._has_stats = True
        self._has_ranges = True

    def _create_schema(self, schema: sqlite_utils.Database) -> None:
        """The tables of a new store (inside _ensure_schema's transaction)."""
        schema["meta"].create({"key": str, "value": str}, pk="key")  # type: ignore[union-attr]
        schema["meta"].insert({"key": "schema_version", "value": str(SCHEMA_VERSION)})  # type: ignore[union-attr]
        schema["lists"].create(  # type: ignore[union-attr]
            {
                "id": int,
                "name": str,
                "role": str,
                "format": str,
                "source_sha256": str,
                "source_path": str,
                "entries": int,
                "imported": str,
                "metadata": str,
                "first_entry": int,
                "last_entry": int,
            },
            pk="id",
            not_null={"name", "role", "format", "source_sha256", "entries", "imported"},
        )
        schema["lists"].create_index(["name"], unique=True)  # type: ignore[union-attr]
        schema["lists"].create_index(["source_sha256"])  # type: ignore[union-attr]
        schema["entries"].create(  # type: ignore[union-attr]
            {"id": int, "list_id": int, "size": int, "name": str, "ident": str, "label": str},
            pk="id",
            foreign_keys=[("list_id", "lists", "id")],
        )
        self.db.execute(
            "CREATE TABLE hashes (algo INTEGER NOT NULL, digest BLOB NOT NULL, "
            "entry_id INTEGER NOT NULL, PRIMARY KEY (algo, digest, entry_id)) WITHOUT ROWID"
        )
        self.db.execute(_LIST_STATS_DDL)
        self.db.execute(_FILTER_CACHE_DDL)

    def _check_schema(self) -> None:
        # Note: an inventory has a `meta` table and a schema version too:
        # given as --db to `lists` or `rematch`, it went on to a traceback.
        if not {"lists", "entries", "hashes"} <= set(self.db.table_names()):
            raise StoreError(
                f"{self.path} is an SQLite file but not a matcher hash store: "
                f"{_not_a_store(self._creates)}."
            )
        try:
            row = self.db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"{self.path} is not a matcher hash store ({exc}).") from exc
        if row is None or row[0] != str(SCHEMA_VERSION):
            raise StoreError(
                f"{self.path} has store schema {row[0] if row else 'unknown'}; "
                f"this matcher reads schema {SCHEMA_VERSION}."
            )

    def close(self) -> None:
        """Close the connection."""
        self.db.close()
        self._forget_open()

    def _forget_open(self) -> None:
        key, self._file = self._file, None
        if key is None:
            return  # closed already
        count = _OPEN_STORES.get(key, 0) - 1
        if count > 0:
            _OPEN_STORES[key] = count
        else:
            _OPEN_STORES.pop(key, None)

    # -- lists ----------------------------------------------------------------

    def _stats(self, list_id: object) -> tuple[dict[str, int], int]:
        """Per-algorithm digest counts and zero-length entries of one list.

        Recorded at import (list_stats), so that `lists` on a store of
        hundreds of millions of digests answers at once; computed (a scan of
        every digest) only for a list imported before list_stats existed.
        """
        if self._has_stats:
            row = self.db.execute(
                "SELECT counts, zero_length FROM list_stats WHERE list_id = ?", [list_id]
            ).fetchone()
            if row is not None:
                return json.loads(row[0]), int(row[1])
        counts = self._counted(list_id)
        return counts, self._zero_length(list_id, counts)

    def _counted(self, list_id: object) -> dict[str, int]:
        """Per-algorithm digest counts of one list, counted (a scan of its digests)."""
        return {
            _CODE_NAMES[code]: n
            for code, n in self.db.execute(
                "SELECT h.algo, count(*) FROM hashes h JOIN entries e ON e.id = h.entry_id "
                "WHERE e.list_id = ? GROUP BY h.algo",
                [list_id],
            ).fetchall()
        }

    def _backfill_stats(self) -> None:
        """Record the statistics of lists imported before list_stats existed, once.

        Without them every open of the store counts those lists' digests
        again: about 7 s for a list of 1M entries, at every scan.
        """
        missing = [
            int(r[0])
            for r in self.db.execute(
                "SELECT id FROM lists WHERE id NOT IN (SELECT list_id FROM list_stats) "
                "OR id IN (SELECT list_id FROM list_stats WHERE unsized IS NULL)"
            )
        ]
        if not missing:
            return
        with self.db.atomic(immediate=True):
            for list_id in missing:
                ids = self._range(list_id) or (0, -1)
                unsized = self.db.execute(
                    "SELECT count(*) FROM entries WHERE id BETWEEN ? AND ? AND list_id = ? "
                    "AND size IS NULL",
                    [*ids, list_id],
                ).fetchone()[0]
                self._record_stats(list_id, self._counted(list_id), int(unsized))

    def _backfill_ranges(self) -> None:
        """Record the entry id range of lists that have none (stores made before ranges were kept).

        Such a store has the index on list_id, which finds each range at
        once; a list imported into a new store by an older matcher (no
        range, no index) costs one scan of the entries, once.
        """
        columns = self.db.column_names("lists")
        missing = [c for c in ("first_entry", "last_entry") if c not in columns]
        if (
            not missing
            and not self.db.execute(
                "SELECT 1 FROM lists WHERE (first_entry IS NULL OR last_entry IS NULL) "
                "AND entries > 0 LIMIT 1"
            ).fetchone()
        ):
            self._has_ranges = True
            return  # the usual case: no write, no lock
        with self.db.atomic(immediate=True):
            for column in missing:
                try:
                    self.db.execute(f"ALTER TABLE lists ADD COLUMN {column} INTEGER")
                except sqlite3.OperationalError as exc:
                    # Another process opening the same old store added it first.
                    if "duplicate column" not in str(exc):
                        raise
            # Note: a list without entries keeps NULL (and is not looked at again).
            self.db.execute(
                "UPDATE lists SET "
                "first_entry = (SELECT min(id) FROM entries WHERE list_id = lists.id), "
                "last_entry = (SELECT max(id) FROM entries WHERE list_id = lists.id) "
                "WHERE (first_entry IS NULL OR last_entry IS NULL) AND entries > 0"
            )
        self._has_ranges = True

    def count_labelled(self, list_id: int, label: str) -> int:
        """How many of a list's entries carry exactly this supplier's label."""
        ids = self._range(list_id)
        if ids is None:
            return 0
        row = self.db.execute(
            "SELECT count(*) FROM entries WHERE id BETWEEN ? AND ? AND label = ?", [*ids, label]
        ).fetchone()
        return int(row[0])

    def _range(self, list_id: int) -> tuple[int, int] | None:
        """The first and last entry id of a list (None: it has no entries).

        A list's entries are one contiguous range of ids, assigned in its
        import transaction. A read-only store made before the ranges were
        recorded finds it through its index on list_id.
        """
        if self._has_ranges:
            row = self.db.execute(
                "SELECT first_entry, last_entry, entries FROM lists WHERE id = ?", [list_id]
            ).fetchone()
            if row is not None and row[0] is not None and row[1] is not None:
                return int(row[0]), int(row[1])
            if row is None or not row[2]:
                return None
        low, high = self.db.execute(
            "SELECT min(id), max(id) FROM entries WHERE list_id = ?", [list_id]
        ).fetchone()
        return None if low is None else (int(low), int(high))

    def _zero_length(self, list_id: object, counts: Mapping[str, int]) -> int:
        """Entries (not digests) holding an empty file's digest, found by the primary key."""
        zero_length = 0
        if counts:
            union, params = _empty_file_entries(counts)
            zero_length = self.db.execute(
                f"SELECT count(*) FROM ({union}) z JOIN entries e ON e.id = z.entry_id "
                "WHERE e.list_id = ?",
                [*params, list_id],
            ).fetchone()[0]
        return int(zero_length)

    def _record_stats(self, list_id: int, counts: Mapping[str, int], unsized: int) -> None:
        kept = {a: n for a, n in counts.items() if n}
        self.db.conn.execute(
            "INSERT OR REPLACE INTO list_stats (list_id, counts, zero_length, unsized) "
            "VALUES (?, ?, ?, ?)",
            [list_id, json.dumps(kept), self._zero_length(list_id, kept), unsized],
        )

    def _list_from_row(self, row: dict[str, object]) -> ListInfo:
        counts, zero_length = self._stats(row["id"])
        return ListInfo(
            id=int(row["id"]),  # type: ignore[call-overload]
            name=str(row["name"]),
            role=str(row["role"]),
            format=str(row["format"]),
            source_sha256=str(row["source_sha256"]),
            entries=int(row["entries"]),  # type: ignore[call-overload]
            imported=str(row["imported"]),
            counts=counts,
            metadata=json.loads(str(row["metadata"] or "{}")),
            zero_length=zero_length,
        )

    @contextlib.contextmanager
    def pinned(self, lists: Sequence[ListInfo]) -> Iterator[None]:
        """Hold the store as it is, with `lists`, until the block ends (a scan's whole run).

        A read transaction: SQLite lets no other process commit a change to
        the store while it is open (a `remove` or an import waits, then is
        refused as the store being in use), so every lookup of one run sees
        the lists its run record names. Before, a list removed or replaced
        during a scan turned its later matches into unknown files, with
        nothing said. `lists` is what the caller chose from and built its
        filter of before the transaction began: a store changed in between
        is refused here (UsageError), as nothing was scanned yet.

        Raises:
            UsageError: the store's lists are no longer `lists`.
        """
        conn = self.db.conn
        conn.execute("BEGIN")
        try:
            now = self.lists()  # the first read takes SQLite's shared lock
            if [_identity(i) for i in now] != [_identity(i) for i in lists]:
                raise UsageError(
                    f"The hash store {self.path} changed while the scan started (a list "
                    "imported, removed or replaced meanwhile): nothing was scanned; run it again."
                )
            yield
        finally:
            if conn.in_transaction:
                # Note: a read only, so nothing to keep; a ROLLBACK, unlike a
                # COMMIT, is never refused as busy (a completed scan failed
                # at its last step while another scan held the store).
                conn.execute("ROLLBACK")

    def lists(self) -> list[ListInfo]:
        """Every imported list, in import order, with per-algorithm digest counts."""
        return [self._list_from_row(r) for r in self.db.query("SELECT * FROM lists ORDER BY id")]

    def find_list(
        self, *, name: str | None = None, source_sha256: str | None = None
    ) -> ListInfo | None:
        """The list with this name or source SHA-256, if imported."""
        if name is not None:
            rows = list(self.db.query("SELECT * FROM lists WHERE name = ?", [name]))
        else:
            rows = list(
                self.db.query(
                    "SELECT * FROM lists WHERE source_sha256 = ? ORDER BY id", [source_sha256]
                )
            )
        return self._list_from_row(rows[0]) if rows else None

    def imported_from(self, source_path: str) -> bool:
        """Whether a stored list was imported from a file of this path."""
        row = self.db.execute("SELECT 1 FROM lists WHERE source_path = ? LIMIT 1", [source_path])
        return row.fetchone() is not None

    def _delete_list(self, list_id: int) -> None:
        # Note that a list's entry ids are one contiguous range (assigned in
        # its import transaction), so hashes need no entry_id index: that
        # index would cost every import far more than it saves a rare removal.
        ids = self._range(list_id)
        deleted = 0
        if ids is not None:
            self.db.execute("DELETE FROM hashes WHERE entry_id BETWEEN ? AND ?", list(ids))
            deleted = self.db.execute(
                "DELETE FROM entries WHERE id BETWEEN ? AND ? AND list_id = ?", [*ids, list_id]
            ).rowcount
        # Note: the check that makes a removal safe without the foreign key's
        # own (a scan of every entry, with no index on list_id): every entry
        # the list was imported with is gone, or nothing is.
        expected = self.db.execute("SELECT entries FROM lists WHERE id = ?", [list_id]).fetchone()
        if expected is not None and deleted != expected[0]:
            raise StoreError(
                f"List {list_id} should hold {expected[0]} entries but {deleted} were found "
                "in its id range; nothing was removed. The store may be damaged: check it "
                "with `sqlite3 STORE 'PRAGMA integrity_check'`."
            )
        self.db.execute("DELETE FROM list_stats WHERE list_id = ?", [list_id])
        self._forget_filters()
        self.db.execute("DELETE FROM lists WHERE id = ?", [list_id])

    def remove_list(self, name: str) -> ListInfo:
        """Remove a list and all its entries, in one transaction.

        Raises:
            StoreError: when no list has that name.
        """
        try:
            info = self.find_list(name=name)
            if info is None:
                raise StoreError(f"No list named {name!r} in {self.path}. See `matcher lists`.")
            with self._foreign_keys_off(), self.db.atomic(immediate=True):
                # Note: again under the write lock: a list replaced meanwhile
                # by another process gave its id to the new one (deleted here).
                self._check_same_file()
                now = self.find_list(name=name)
                if now is None or _identity(now) != _identity(info):
                    raise StoreError(
                        f"The list {name!r} was removed or changed by another matcher process "
                        f"while this command waited for {self.path}; nothing was removed. "
                        "See `matcher lists`."
                    )
                self._delete_list(info.id)
        except sqlite3.DatabaseError as exc:
            raise StoreError(
                f"Cannot remove {name!r} from {self.path}: {exc}{_busy_or_full(exc)}. "
                "The store is unchanged."
            ) from exc
        return info

    @contextlib.contextmanager
    def _foreign_keys_off(self) -> Iterator[None]:
        """Foreign keys off for one transaction (set outside it, as SQLite requires).

        Deleting a list's row would otherwise make SQLite look for entries
        still pointing at it: with no index on list_id, a read of every
        entry of the store. _delete_list checks the count it removed instead.
        """
        conn = self.db.conn
        foreign_keys = conn.execute("PRAGMA foreign_keys").fetchone()[0]
        conn.execute("PRAGMA foreign_keys = OFF")
        try:
            yield
        finally:
            conn.execute(f"PRAGMA foreign_keys = {int(foreign_keys)}")

    def _check_same_file(self) -> None:
        """Inside a write transaction: the store's path still names the file this one opened.

        Raises:
            StoreError: another matcher process deleted the store (a refused
                import's new store; see remove_store_if_empty) or put another
                file in its place meanwhile: nothing written would be found.
        """
        if _file_key(self.path) != self._file:
            raise StoreError(
                f"The store file {self.path} was deleted or replaced by another matcher "
                "process while this one waited for it; nothing was written. Run the "
                "command again."
            )

    def _still_as_checked(self, new: NewList, old: ListInfo | None, replace: str | None) -> None:
        """Inside the import's write transaction: what was checked before it still holds.

        Note: another process may have imported, removed or replaced lists
        between the checks and the write lock: a replace then deleted the
        list that took the old one's id (the other process's new list, with
        no word), and two imports of one file both went in.

        Raises:
            StoreError: the list replaced changed meanwhile, or a name clash.
            AlreadyImported: another process imported the same source meanwhile.
        """
        self._check_same_file()
        if new.source_sha256:
            # Note: first: the same file imported meanwhile under the same name
            # is "already imported", not a clash of names (exit 2).
            found = self.find_list(source_sha256=new.source_sha256)
            if found is not None and (old is None or found.id != old.id):
                raise AlreadyImported(found)
        now = self._check_new_list(new.name, new.role, replace)
        if (now is None) != (old is None) or (
            now is not None and old is not None and _identity(now) != _identity(old)
        ):
            raise StoreError(
                f"The list {replace!r} was changed by another matcher process while this "
                "import waited for the store; nothing was imported. See `matcher lists`, "
                "and import again."
            )

    def _check_new_list(self, name: str, role: str, replace: str | None) -> ListInfo | None:
        """The list to replace (if any); raises StoreError on a bad role or name."""
        if role not in ROLES:
            raise StoreError(f"Role must be one of {', '.join(ROLES)}, not {role!r}.")
        old = self.find_list(name=replace) if replace else None
        if replace and old is None:
            raise StoreError(f"No list named {replace!r} to replace. See `matcher lists`.")
        clash = self.find_list(name=name)
        if clash is not None and (old is None or clash.id != old.id):
            raise StoreError(
                f"A list named {name!r} already exists. Use --name to choose another "
                f"name, or --replace {name} to replace it."
            )
        return old

    def _insert_list_row(self, new: NewList) -> int:
        self._forget_filters()
        cur = self.db.conn.execute(
            "INSERT INTO lists (name, role, format, source_sha256, source_path, entries, "
            "imported, metadata) VALUES (?, ?, ?, ?, ?, 0, ?, ?)",
            [
                new.name,
                new.role,
                new.format,
                new.source_sha256,
                new.source_path,
                _utcnow(),
                json.dumps(dict(new.metadata)),
            ],
        )
        assert cur.lastrowid is not None
        return cur.lastrowid

    def add_list(
        self,
        new: NewList,
        batches: Iterable[tuple[tuple[str, ...], tuple[str, ...], Sequence[Row]]],
        replace: str | None = None,
        metadata_after: Callable[[], Mapping[str, str]] | None = None,
    ) -> ListInfo:
        """Import one list in a single transaction.

        Rows are staged in a temp table as they come, then copied into
        `entries` and, sorted by digest, into `hashes`, so that memory is
        bounded by IMPORT_CACHE_KIB whatever the list's size.

        Args:
            batches: `(algorithms, fields, rows)`; each row is
                `(*digests, *values)`: one digest slot (raw bytes or None) per
                algorithm, then one value per name in `fields` (a subset of
                ENTRY_FIELDS; the fields left out are NULL). Note that a batch
                binds fastest with its digests as bytearray and without
                columns that are None throughout: Python's sqlite3 sends
                bytes and None through its adapter lookup, about 1 µs each.
            replace: the name of an existing list that this import replaces
                (removed in the same transaction).
            metadata_after: called once every batch is read; what it returns
                is added to the list's metadata in the same transaction (what
                the reading found, such as the entries it skipped as invalid).

        Raises:
            StoreError: on a bad role, a name clash, or a database error.
            Whatever the batches iterator raises (e.g. FormatError) after a rollback.
        """
        old = self._check_new_list(new.name, new.role, replace)
        conn = self.db.conn
        stage = ", ".join(f"d_{a} BLOB" for a in ALGORITHM_CODES)
        try:
            with self._bulk_settings(), self.db.atomic(immediate=True):
                self._still_as_checked(new, old, replace)
                if old is not None:
                    self._delete_list(old.id)
                list_id = self._insert_list_row(new)
                base = conn.execute("SELECT coalesce(max(id), 0) FROM entries").fetchone()[0]
                # Note that rows are staged as they come (rowid = arrival order, so
                # entry id = base + rowid) and copied once at the end, each digest
                # column sorted: the B-tree is then written in order, and the
                # page cache and sorter stay bounded however long the list is.
                conn.execute("DROP TABLE IF EXISTS temp.matcher_rows")
                conn.execute(f"CREATE TEMP TABLE matcher_rows ({stage}, size, name, ident, label)")
                seen: set[str] = set()
                for algorithms, fields, rows in batches:
                    if not set(fields) <= set(ENTRY_FIELDS):
                        raise StoreError(f"Not entry fields: {', '.join(fields)}")
                    seen.update(algorithms)
                    columns = [*(f"d_{a}" for a in algorithms), *fields]
                    if not columns:  # entries with nothing at all: kept, as every entry is
                        conn.executemany("INSERT INTO temp.matcher_rows DEFAULT VALUES", rows)
                        continue
                    conn.executemany(
                        f"INSERT INTO temp.matcher_rows ({', '.join(columns)}) "
                        f"VALUES ({', '.join('?' * len(columns))})",
                        rows,
                    )
                found = metadata_after() if metadata_after is not None else {}
                if found:
                    conn.execute(
                        "UPDATE lists SET metadata = ? WHERE id = ?",
                        [json.dumps({**new.metadata, **found}), list_id],
                    )
                total = conn.execute(
                    "INSERT INTO entries (id, list_id, size, name, ident, label) "
                    "SELECT rowid + ?, ?, size, name, ident, label FROM temp.matcher_rows",
                    [base, list_id],
                ).rowcount
                counts: dict[str, int] = {}
                for algorithm in ALGORITHM_CODES:
                    if algorithm not in seen:
                        continue
                    # Note that entry ids are new, so OR IGNORE is only a guard.
                    counts[algorithm] = conn.execute(
                        "INSERT OR IGNORE INTO hashes (algo, digest, entry_id) "
                        f"SELECT ?, d_{algorithm}, rowid + ? FROM temp.matcher_rows "
                        f"WHERE d_{algorithm} IS NOT NULL ORDER BY 2",
                        [ALGORITHM_CODES[algorithm], base],
                    ).rowcount
                unsized = conn.execute(
                    "SELECT count(*) FROM temp.matcher_rows WHERE size IS NULL"
                ).fetchone()[0]
                self._finish_staged(list_id, base, total, counts, unsized)
        except sqlite3.DatabaseError as exc:
            raise self._rolled_back(exc) from exc
        except OverflowError as exc:
            # Note: a safety net only; every reader refuses such a size with
            # its line. An integer SQLite cannot hold must never end in a traceback.
            raise StoreError(
                f"Import into {self.path} failed and was rolled back: a number in the list "
                f"is too large for the store ({exc})"
            ) from exc
        finally:
            with contextlib.suppress(sqlite3.DatabaseError):
                conn.execute("DROP TABLE IF EXISTS temp.matcher_rows")
        info = self.find_list(name=new.name)
        assert info is not None
        return info

    def _finish_staged(
        self, list_id: int, base: int, total: int, counts: Mapping[str, int], unsized: int
    ) -> None:
        """Record a copied list's entry count, id range and statistics.

        Its entries are ids base + 1 to base + total, `unsized` of them without a size.
        """
        first, last = (base + 1, base + total) if total else (None, None)
        self.db.conn.execute(
            "UPDATE lists SET entries = ?, first_entry = ?, last_entry = ? WHERE id = ?",
            [total, first, last, list_id],
        )
        self._record_stats(list_id, counts, unsized)

    @contextlib.contextmanager
    def _bulk_settings(self) -> Iterator[None]:
        """Connection settings for one bulk copy by SQL, restored afterwards.

        Note that SQLite sizes its sorter's in-memory runs by the main page
        cache, so IMPORT_CACHE_KIB (times the sorter threads) bounds both: the
        import's memory stays flat whatever the list's size (ORDER BY spills
        sorted runs to temp files). The sorter's helper threads are on for the
        copy only: a scan's lookups never sort.
        The temp schema keeps SQLite's default 2 MB cache, and its pages are
        not zeroed when the staging table is dropped (secure_delete is a
        compile-time default on some builds; the staging copy is our own).
        Foreign keys are off only for the copy, whose entries reference the
        list row inserted in the same transaction; it cannot change inside one.
        """
        conn = self.db.conn
        cache = conn.execute("PRAGMA main.cache_size").fetchone()[0]
        foreign_keys = conn.execute("PRAGMA foreign_keys").fetchone()[0]
        threads = conn.execute("PRAGMA threads").fetchone()[0]
        conn.execute(f"PRAGMA main.cache_size = {-IMPORT_CACHE_KIB}")
        conn.execute(f"PRAGMA threads = {_sorter_threads()}")
        conn.execute("PRAGMA temp.secure_delete = OFF")
        conn.execute("PRAGMA foreign_keys = OFF")
        try:
            yield
        finally:
            conn.execute(f"PRAGMA foreign_keys = {int(foreign_keys)}")
            conn.execute(f"PRAGMA main.cache_size = {int(cache)}")
            conn.execute(f"PRAGMA threads = {int(threads)}")

    @contextlib.contextmanager
    def _stage(
        self,
        source: SqlListSource,
        halves: tuple[str, str] | None,
        uri: str,
        newer: bool,
    ) -> Iterator[_Staged]:
        """Walk an attached SQL source into staging tables: yields them, in walk order.

        Each part is (table, offset, rows): its rows are entries offset + 1
        to offset + rows of the walk, in rowid order (entry ids are base +
        offset + rowid; rowids run 1 to n in a table filled by one INSERT).
        The first is this connection's own temp.matcher_import, filled
        before the store's transaction. With `halves`, a child process
        stages the second half (see _stage_in_child) into a scratch file
        attached as matcher_stage while this one walks the first; that
        file's table is the second part, read where it is (copying it into
        the first cost an RDS import of 10M rows 1.1 s of 28). The tables
        are dropped, and the scratch file removed, when the body ends.
        """
        conn = self.db.conn
        conn.execute("DROP TABLE IF EXISTS temp.matcher_import")
        conn.execute(f"CREATE TEMP TABLE matcher_import ({_STAGED})")
        # Note: the walk's rows are checked against the source's own count
        # wherever the reader gives one (a walk of an index in order), split
        # between two processes or not: a leaf of the index written over by
        # its neighbour's bytes is still a valid B-tree to one walk, which
        # then reads fewer rows without an error (reviews).
        counted = bool(source.rows_walked and source.source_rows)
        width = sum(DIGEST_SIZES[a] for a in source.algorithms)
        scratch, child = (
            self._stage_in_child(source, halves[1], uri, newer, width, counted)
            if halves
            else (None, None)
        )
        held: QueryInThread | None = None
        try:
            if counted:
                # Note: its connection opens the source now, the file walked
                # (one replaced under its name later is not the one counted).
                held = QueryInThread({"src": uri})
            walk = _staging_select(source, halves[0] if halves and child else None, newer, counted)
            conn.execute(f"INSERT INTO temp.matcher_import ({_staged(counted)}) {walk}")
            # Note: one pass over each table for what the import needs of all
            # its rows (see _staged_counts); the child's half is counted by
            # the child, while this process counts its own.
            counts = [conn.execute(_staged_counts("temp.matcher_import", width)).fetchone()]
            tables = ["temp.matcher_import"]
            if child is not None:
                child.wait()
                tables.append("matcher_stage.matcher_import")
                counts.append(conn.execute("SELECT * FROM matcher_stage.matcher_counts").fetchone())
            staged = _Staged([], 0)
            for table, (rows, taken, unsized, read) in zip(tables, counts, strict=True):
                staged.parts.append((table, sum(n for _, _, n in staged.parts), int(rows)))
                staged.unsized += int(unsized)
                staged.unfit += int(rows) - int(taken)
                staged.walked += int(read)
            if held is not None:
                if staged.unfit:
                    # Note: the counts above are of the rows taken; the damage
                    # check is of every row walked (the row-by-row import
                    # that follows reads the index in one walk, which a seek
                    # elsewhere does not fail: a review).
                    staged.walked = sum(
                        int(conn.execute(f"SELECT total(walked) FROM {t}").fetchone()[0])
                        for t in tables
                    )
                # The source's count runs on a core the copy leaves idle (0.5
                # s of a 10M-row RDS), checked by _check_rows_walked.
                held.start(str(source.source_rows))
                staged.held = held
            yield staged
        finally:
            if child is not None:
                child.cancel()  # nothing to do once it has been waited for
            if scratch is not None:
                # Note: first of all, before any other statement: a child that
                # failed can leave a scratch file SQLite cannot read, and a
                # statement that reloads every attached schema would fail on it.
                with contextlib.suppress(sqlite3.DatabaseError):
                    conn.execute("DETACH DATABASE matcher_stage")
                remove_store_files(scratch)
            conn.execute("DROP TABLE IF EXISTS temp.matcher_import")
            if held is not None:
                held.close()  # last: a second Ctrl-C in its wait skips nothing else

    def _check_rows_walked(self, source: SqlListSource, staged: _Staged) -> None:
        """Refuse a walk of the source's index that read fewer (or more) rows than it holds.

        The source's count (`staged.held`) is waited for here, once; without
        one (a source that gives no `source_rows`) nothing is checked.

        Raises:
            FormatError: naming both counts (see SqlListSource.source_rows).
            sqlite3.DatabaseError: the source's count failed (damage).
        """
        count = staged.held
        if count is None:
            return
        row = count.result()  # Note: an interruption here leaves it to _stage's close()
        staged.held = None
        rows, walked = (int(row[0]) if row else 0), staged.walked
        if walked != rows:
            raise FormatError(
                f"the SQLite database is damaged: its index gives {walked:,} rows, but it "
                f"holds {rows:,} (`sqlite3 FILE 'PRAGMA integrity_check'` says where); "
                "nothing was imported",
                source=str(source.path),
            )

    def _stage_in_child(
        self,
        source: SqlListSource,
        clauses: str,
        uri: str,
        newer: bool,
        width: int,
        counted: bool = False,
    ) -> tuple[Path, ChildFill] | tuple[None, None]:
        """Start a child process that stages the walk of `clauses` into a scratch file.

        It also counts what it staged, into the file's table matcher_counts
        (_staged_counts, `width` its digests' bytes), meanwhile this process
        counts its own half.

        The file is attached here as `matcher_stage` first (ATTACH is refused
        inside a transaction); the child removes its name once it has it
        open. Without a writable temporary folder or a process, (None, None):
        the caller's one walk then does it all.
        """
        folder = scratch_folder()
        if folder is None:
            return None, None
        conn = self.db.conn
        scratch: Path | None = None
        attached = False
        try:
            fd, name = tempfile.mkstemp(prefix="matcher-stage-", suffix=".db", dir=folder)
            scratch = Path(name)
            os.close(fd)
            conn.execute("ATTACH DATABASE ? AS matcher_stage", [name])
            attached = True
            child = ChildFill(
                scratch,
                {"src": uri},
                [
                    f"CREATE TABLE matcher_import ({_STAGED})",
                    f"INSERT INTO matcher_import ({_staged(counted)}) "
                    + _staging_select(source, clauses, newer, counted),
                    f"CREATE TABLE matcher_counts AS {_staged_counts('matcher_import', width)}",
                ],
                {} if newer else {_UNHEX: binascii.a2b_hex},
                newer=newer,
            )
        except BaseException as exc:
            # Note: also on Ctrl-C here: no attachment or scratch file stays.
            if attached:
                with contextlib.suppress(sqlite3.DatabaseError):
                    conn.execute("DETACH DATABASE matcher_stage")
            if scratch is not None:
                remove_store_files(scratch)
            if isinstance(exc, (OSError, sqlite3.OperationalError)):
                return None, None
            raise
        return scratch, child

    def add_list_sql(
        self,
        new: NewList,
        source: SqlListSource,
        replace: str | None = None,
        source_digest: SourceDigest | None = None,
        before_commit: Callable[[], None] | None = None,
    ) -> ListInfo | None:
        """Import a list that is an SQLite database by SQL alone, in one transaction.

        The source is attached read-only and walked once: each entry's hex
        digests are checked for length and decoded in one call per entry,
        into a staging table of raw digests; `entries` and each algorithm's
        digests are then copied from it by INSERT ... SELECT, sorted by
        digest so that they go into the B-tree in order. No Python object
        per row. A source whose rows already come in byte order of one
        digest (an `ordered_by` attribute naming its algorithm) spares that
        algorithm's sort. Memory is bounded by IMPORT_CACHE_KIB, not by the
        list's size.

        A source that splits its walk in two (SqlListSource.halves), of
        PARALLEL_STAGING_MIN_BYTES or more, on two cores or more, is walked
        by two processes: this one stages the first half while a child
        stages the second into a scratch file, appended to the staging table
        after it; from there on the import is that of one walk.

        Any row this path cannot take as it is (a digest that is not hex of
        the right length, a size that is not a byte count) is found in the
        staged rows, before the store is written, and returns None: the
        caller then imports row by row, which names each bad row exactly as
        every other reader does.

        With `source_digest`, the source file's SHA-256 is computed while the
        store writes (`new.source_sha256` is then ignored): it is started
        once the walk is done, when one core is mostly idle (the walk keeps
        two busy), and its result is recorded just before the commit. A
        stored list with that SHA-256 (other than the one replaced) rolls
        the copy back and raises AlreadyImported. `before_commit` is called
        last, inside the transaction: what it raises rolls the copy back (in
        a store with free pages, also before the first write).

        The copy runs on apsw's SQLite when it can (see sqlite_newer and
        _on_newer_sqlite): its native unhex() decodes the digests there, with
        no Python call per entry; a digest it cannot decode gives NULL, which
        the digest counts catch, and the import goes row by row as above.

        Raises:
            StoreError: a bad role, a name clash, or a database error.
            FormatError: the source holds no entries.
            AlreadyImported: see `source_digest`.
            OSError: the source file could not be read for its SHA-256.
        """
        old = self._check_new_list(new.name, new.role, replace)
        with self._on_newer_sqlite() as newer:
            copied = self._copy_sql(new, source, old, source_digest, newer, before_commit)
        if not copied:
            return None
        info = self.find_list(name=new.name)
        assert info is not None
        return info

    def _copy_sql(
        self,
        new: NewList,
        source: SqlListSource,
        old: ListInfo | None,
        source_digest: SourceDigest | None,
        newer: bool,
        before_commit: Callable[[], None] | None = None,
    ) -> bool:
        """add_list_sql's copy on the store's current connection; False: go row by row."""
        conn = self.db.conn
        algorithms = source.algorithms
        ordered_by = source.ordered_by
        halves = _halves_to_walk(source)
        uri = source.path.absolute().as_uri() + "?mode=ro&immutable=1"
        if not newer:
            conn.create_function(_UNHEX, 1, binascii.a2b_hex, deterministic=True)
        try:
            conn.execute("ATTACH DATABASE ? AS src", [uri])
        except sqlite3.DatabaseError as exc:
            if "same text encoding" in str(exc):
                return False  # a UTF-16 database: read through its own connection instead
            raise StoreError(f"Cannot attach {source.path}: {exc}") from exc
        # Note: a store with free pages is written only once the list is known
        # to go in whole (its SHA-256 not stored already; its rows are always
        # checked first, see _staged_counts):
        # SQLite reuses free pages first and never journals them, so a copy
        # rolled back after its pages spilled left its bytes in the file.
        # Elsewhere a rollback cuts the new pages off: nothing to check first.
        free = self._free_pages() > 0
        try:
            staging = self._stage(source, halves, uri, newer)
            with self._bulk_settings(), staging as staged:
                if staged.unfit:
                    self._check_rows_walked(source, staged)  # a damaged index first
                    raise _NeedsRowByRow
                if source_digest is not None:
                    # Note: started here, after the walk's child process (a
                    # fork) has ended: a fork never copies a running thread.
                    source_digest.start()
                    if free:
                        source_digest = self._not_stored_already(source_digest, old)
                if free:
                    self._check_rows_walked(source, staged)
                    if before_commit is not None:
                        # Note: also before the first write here (the source
                        # is read whole by now): refused inside the
                        # transaction, the copy's bytes stayed in the free
                        # pages it had filled (a review).
                        before_commit()
                with self.db.atomic(immediate=True):
                    behind = self._sync_behind()
                    try:
                        if behind is not None:
                            behind.start()
                        self._copy_staged(new, staged, old, source_digest, algorithms, ordered_by)
                        self._check_rows_walked(source, staged)
                        if before_commit is not None:
                            before_commit()
                        if behind is not None:
                            self._synced(behind)
                    finally:
                        # Note: called again until it has run: an interruption
                        # that lands as stop() is entered, before its first
                        # statement, left the thread syncing (a review).
                        held: BaseException | None = None
                        while behind is not None:
                            try:
                                behind.stop()
                                break
                            except BaseException as exc:  # noqa: BLE001 - raised below
                                held = held or exc
                        if held is not None:
                            raise held
        except _NeedsRowByRow:
            return False
        except sqlite3.DatabaseError as exc:
            damage = self._source_damage(exc)
            if damage is not None:
                raise FormatError(
                    f"the SQLite database is damaged ({damage}); nothing was imported",
                    source=str(source.path),
                ) from exc
            raise self._rolled_back(exc) from exc
        finally:
            conn.execute("DETACH DATABASE src")
        return True

    def _sync_behind(self) -> SyncBehind | None:
        """The store's data synced to disk in a thread while a copy writes it (SyncBehind)."""
        key = self._file
        return SyncBehind.of_file(key) if isinstance(key, tuple) else None

    def _synced(self, behind: SyncBehind) -> None:
        """The copy's data synced behind it so far, inside its transaction (see SyncBehind).

        Raises:
            StoreError: a sync failed (the transaction is then rolled back).
        """
        try:
            behind.finish()
        except OSError as exc:
            raise StoreError(
                f"Import into {self.path} failed and was rolled back: cannot write it to "
                f"disk: {exc.strerror or exc}"
            ) from exc

    def _free_pages(self) -> int:
        """Pages of the store file that hold nothing (a removed list's, until reused)."""
        return int(self.db.conn.execute("PRAGMA main.freelist_count").fetchone()[0])

    def _not_stored_already(self, source_digest: SourceDigest, old: ListInfo | None) -> _Computed:
        """The source's SHA-256, awaited before the copy; AlreadyImported if a stored list has it.

        Note: for a store with free pages. SQLite reuses those first and never
        journals them (what they held is free), so a copy rolled back once its
        pages had spilled to the file left its bytes there: "already imported;
        nothing done" changed the file. Waited for, the copy never starts.
        """
        sha256 = source_digest.result()
        found = self.find_list(source_sha256=sha256)
        if found is not None and (old is None or found.id != old.id):
            raise AlreadyImported(found)
        return _Computed(sha256)

    def _source_damage(self, exc: sqlite3.DatabaseError) -> str | None:
        """What SQLite finds wrong with the attached source `src`, when `exc` may be its damage.

        A damaged list stopped the copy with "database disk image is
        malformed", said of the store: the examiner was told the store was
        corrupt. The source's own check tells (on this error path only: it
        reads the whole source).
        """
        if not any(word in str(exc) for word in ("malformed", "not a database", "corrupt")):
            return None
        try:
            rows = self.db.conn.execute("PRAGMA src.quick_check(3)").fetchall()
        except sqlite3.DatabaseError as check:
            return str(check)
        found = [str(row[0]) for row in rows]
        return None if found == ["ok"] else "; ".join(found)

    def _copy_staged(
        self,
        new: NewList,
        staged: _Staged,
        old: ListInfo | None,
        source_digest: SourceDigest | None,
        algorithms: tuple[str, ...],
        ordered_by: str | None,
    ) -> None:
        """The store's side of _copy_sql, inside its transaction: the list from its staged parts.

        Raises:
            _NeedsRowByRow: a row the copy cannot take as it is.
            FormatError: no entries. AlreadyImported: see add_list_sql.
        """
        conn = self.db.conn
        parts = staged.parts
        total = sum(count for _, _, count in parts)
        if total == 0:
            raise FormatError("the list holds no entries", source=new.source_path)
        self._still_as_checked(new, old, old.name if old is not None else None)
        if old is not None:
            self._delete_list(old.id)
        list_id = self._insert_list_row(new)
        base = conn.execute("SELECT coalesce(max(id), 0) FROM entries").fetchone()[0]
        # Note: every staged row is taken as it is (ids and labels made
        # text): _stage counted those it could not take, and any sent the
        # import row by row before this transaction.
        for table, offset, _ in parts:
            conn.execute(
                "INSERT INTO entries (id, list_id, size, name, ident, label) "
                "SELECT rowid + ?, ?, size, name, CAST(ident AS TEXT), "
                f"CAST(label AS TEXT) FROM {table}",
                [base + offset, list_id],
            )
        counts: dict[str, int] = {}
        start = 1
        for algorithm in algorithms:
            width = DIGEST_SIZES[algorithm]
            code = ALGORITHM_CODES[algorithm]
            rows = [
                f"SELECT substr(raw, {start}, {width}) AS digest, rowid + {base + offset} AS id "
                f"FROM {table}"
                for table, offset, _ in parts
            ]
            if algorithm == ordered_by:
                # Note: the parts follow each other in the walk's order, which is this digest's.
                statements = [f"SELECT {code}, digest, id FROM ({one})" for one in rows]
            else:
                statements = [
                    f"SELECT {code}, digest, id FROM ({' UNION ALL '.join(rows)}) ORDER BY 2"
                ]
            counts[algorithm] = sum(
                conn.execute(
                    f"INSERT OR IGNORE INTO hashes (algo, digest, entry_id) {select}"
                ).rowcount
                for select in statements
            )
            start += width
            if counts[algorithm] != total:
                raise _NeedsRowByRow
        if source_digest is not None:
            self._record_source_digest(list_id, source_digest.result())
        self._finish_staged(list_id, base, total, counts, staged.unsized)

    def _rolled_back(self, exc: sqlite3.Error) -> StoreError:
        """The error of an import SQLite stopped (its transaction rolled back)."""
        return StoreError(
            f"Import into {self.path} failed and was rolled back: {exc}{_busy_or_full(exc)}"
        )

    def _record_source_digest(self, list_id: int, sha256: str) -> None:
        """Record a list's source SHA-256, inside its import's transaction.

        Raises:
            AlreadyImported: another stored list has it (as import_list
                decides before a copy when the SHA-256 comes first). The list
                replaced, if any, is gone by now: it is never the one found.
        """
        existing = self.find_list(source_sha256=sha256)
        if existing is not None:
            raise AlreadyImported(existing)
        self.db.execute("UPDATE lists SET source_sha256 = ? WHERE id = ?", [sha256, list_id])

    # -- the saved filter -----------------------------------------------------

    def _forget_filters(self) -> None:
        if "filter_cache" in self.db.table_names():
            self.db.conn.execute("DELETE FROM filter_cache")

    def saved_filter(self, algorithm: str, fingerprint: str) -> bytes | None:
        """The filter saved for exactly these lists (`fingerprint`), if intact."""
        if "filter_cache" not in self.db.table_names():
            return None
        row = self.db.execute(
            "SELECT rowid, sha256 FROM filter_cache WHERE algo = ? AND fingerprint = ?",
            [algorithm, fingerprint],
        ).fetchone()
        if row is None:
            return None
        # Note: read as a BLOB, not as a row: half the time of a row's read
        # of a few MB of overflow pages, a tenth of a scan's start-up.
        try:
            with self.db.conn.blobopen("filter_cache", "data", row[0], readonly=True) as blob:
                data = blob.read()
        except sqlite3.Error:
            return None  # gone or replaced since (another process's import): rebuilt
        if hashlib.sha256(data).hexdigest() != row[1]:
            return None
        return data

    def other_names(self) -> int:
        """How many other names (hard links) the store file has; 0 when it cannot tell.

        Note: another name may lie inside an evidence root, where no write may
        go: a scan's cache write changed such a store there (a validator).
        The caches (filter, notable sizes) are then not kept in it.
        """
        try:
            return max(os.stat(self.path).st_nlink - 1, 0)
        except OSError:
            return 0

    def save_filter(self, algorithm: str, fingerprint: str, data: bytes) -> None:
        """Keep a built filter for the next run (replaced whenever a list changes).

        Note: a cache, so it never waits for the store: while another scan
        holds it (see pinned), the write is refused at once (sqlite3's error,
        which callers pass over), not after BUSY_TIMEOUT_MS; and inside this
        connection's own held read it is not made at all.
        """
        conn = self.db.conn
        if self.other_names():
            return
        if conn.in_transaction:
            # Note: inside a held read (pinned, a scan's whole run) a write
            # would hold the store's write lock to the run's end, and its
            # COMMIT could then be refused as busy: the cache waits for a
            # later run.
            return
        waits = conn.execute("PRAGMA busy_timeout").fetchone()[0]
        conn.execute("PRAGMA busy_timeout = 0")
        try:
            with self.db.atomic():
                conn.execute(
                    "INSERT OR REPLACE INTO filter_cache (algo, fingerprint, sha256, data) "
                    "VALUES (?, ?, ?, ?)",
                    [algorithm, fingerprint, hashlib.sha256(data).hexdigest(), data],
                )
        finally:
            conn.execute(f"PRAGMA busy_timeout = {int(waits)}")

    def sample_digests(self, algorithm: str, count: int) -> list[bytes]:
        """Up to `count` stored digests spread over the key range, to check a filter."""
        code = ALGORITHM_CODES[algorithm]
        rows = self.db.execute(
            "SELECT digest FROM hashes WHERE algo = ? AND digest >= ? ORDER BY digest LIMIT ?",
            [code, os.urandom(DIGEST_SIZES[algorithm]), count],
        ).fetchall()
        rows += self.db.execute(
            "SELECT digest FROM hashes WHERE algo = ? ORDER BY digest DESC LIMIT ?",
            [code, count],
        ).fetchall()
        return [bytes(r[0]) for r in rows]

    # -- lookups --------------------------------------------------------------

    def lookup(self, algorithm: str, digests: Sequence[bytes]) -> dict[bytes, list[ListHit]]:
        """Every list entry matching any of `digests` (batched), keyed by digest."""
        code = ALGORITHM_CODES[algorithm]
        found: dict[bytes, list[ListHit]] = {}
        unique = list(dict.fromkeys(digests))
        for start in range(0, len(unique), _LOOKUP_CHUNK):
            chunk = unique[start : start + _LOOKUP_CHUNK]
            marks = ",".join("?" * len(chunk))
            rows = self.db.execute(
                "SELECT h.digest, l.name, l.role, e.size, e.name, e.ident, e.label, e.id "
                "FROM hashes h JOIN entries e ON e.id = h.entry_id "
                "JOIN lists l ON l.id = e.list_id "
                f"WHERE h.algo = ? AND h.digest IN ({marks}) ORDER BY l.id, e.id",
                [code, *chunk],
            ).fetchall()
            for digest, list_name, role, size, name, ident, label, entry_id in rows:
                found.setdefault(digest, []).append(
                    ListHit(list_name, role, algorithm, size, _text(name), ident, label, entry_id)
                )
        return found

    @contextlib.contextmanager
    def streaming(self) -> Iterator[None]:
        """A small page cache for one pass over many rows (a filter's digests, sizes).

        Note that a cache does not speed a single pass, but fills as it goes:
        with the store's default (256 MB, for the B-tree work of removing a
        list) the first scan after an import grew to the size of the digests
        it read, some 170 MB for a store of 1M entries.
        """
        conn = self.db.conn
        conn.execute(f"PRAGMA main.cache_size = {-STREAMING_CACHE_KIB}")
        try:
            yield
        finally:
            # Note: the store's own size, not the one found on entry: two
            # passes interleaved (two digest generators) must not leave the
            # small one behind. A generator left unfinished ends here when
            # collected, perhaps after the store is closed; the setting then
            # no longer matters.
            with contextlib.suppress(sqlite3.Error):
                conn.execute(f"PRAGMA main.cache_size = {-STORE_CACHE_KIB}")

    def iter_digests(
        self, algorithm: str, role: str | None = None, half: int | None = None
    ) -> Iterator[bytes]:
        """Every stored digest of `algorithm` (optionally of one role), for filters.

        With `half` 0 or 1 (and no role), only the digests below 0x80.. or
        from it up: two processes can read one half each (the key's order).
        Read through a small page cache (see streaming()).
        """
        if role is not None and half is not None:
            raise ValueError("a half of one role's digests is not supported")
        with self.streaming():
            yield from self._iter_digests(algorithm, role, half)

    def _iter_digests(self, algorithm: str, role: str | None, half: int | None) -> Iterator[bytes]:
        code = ALGORITHM_CODES[algorithm]
        if role is None and half is not None:
            where = "digest < x'80'" if half == 0 else "digest >= x'80'"
            cur = self.db.execute(f"SELECT digest FROM hashes WHERE algo = ? AND {where}", [code])
        elif role is None:
            cur = self.db.execute("SELECT digest FROM hashes WHERE algo = ?", [code])
        else:
            cur = self.db.execute(
                "SELECT h.digest FROM hashes h JOIN entries e ON e.id = h.entry_id "
                "JOIN lists l ON l.id = e.list_id WHERE h.algo = ? AND l.role = ?",
                [code, role],
            )
        while rows := cur.fetchmany(50_000):
            for (digest,) in rows:
                yield digest

    def stored_algorithms(self) -> set[str]:
        """Algorithms that at least one stored entry carries (from the lists' counts)."""
        return {a for info in self.lists() for a, n in info.counts.items() if n}

    def notable_sizes(
        self, fingerprint: str | None = None, lists: Sequence[ListInfo] | None = None
    ) -> tuple[SizeSet, list[str]]:
        """Sizes of every notable entry, and the notable lists with entries of no usable size.

        Such a list is named, and for entries of size 0 that hold no empty
        file's digest, with their count (see _misfit_zero_sizes).

        Args:
            fingerprint: names the current set of lists; the sizes are then
                kept in the store (checked by SHA-256) and reused while it holds.
            lists: only these lists' entries (default: every list in the store).
        """
        chosen = self.lists() if lists is None else list(lists)
        unsized = sorted(
            info.name for info in chosen if info.role == "notable" and self._unsized(info.id)
        )
        if unsized:
            return SizeSet.of([]), unsized
        cached = self.saved_filter(_SIZES_KEY, fingerprint) if fingerprint else None
        if cached is not None:
            return SizeSet(array.array("q", cached)), []  # kept only once none had a misfit
        misfits = [
            f"{info.name} ({n:,} {'entry gives' if n == 1 else 'entries give'} size 0 with the "
            "digest of a file that is not empty)"
            for info in chosen
            if info.role == "notable" and (n := self._misfit_zero_sizes(info))
        ]
        if misfits:
            return SizeSet.of([]), misfits
        ranges = [r for info in chosen if info.role == "notable" if (r := self._range(info.id))]
        # Note: sorted and made distinct by SQLite, straight into the array: a
        # Python set of a large list's sizes took some 100 MB at 1M sizes. Each
        # list's entries are read by their id range (a search of the rowid);
        # the ranges go as one JSON parameter, as any number of lists may be
        # notable (chained ORs stop at 999: SQLite's expression depth).
        sorted_sizes = array.array("q")
        if ranges:
            with self.streaming():
                cursor = self.db.execute(
                    "SELECT DISTINCT CAST(e.size AS INTEGER) AS s FROM json_each(?) r "
                    "JOIN entries e ON e.id BETWEEN json_extract(r.value, '$[0]') "
                    "AND json_extract(r.value, '$[1]') WHERE e.size IS NOT NULL ORDER BY s",
                    [json.dumps(ranges)],
                )
                while rows := cursor.fetchmany(50_000):
                    sorted_sizes.extend([s for (s,) in rows])
        sizes = SizeSet(sorted_sizes)
        if fingerprint:
            with contextlib.suppress(sqlite3.DatabaseError):
                self.save_filter(_SIZES_KEY, fingerprint, sizes.tobytes())
        return sizes, []

    def _misfit_zero_sizes(self, info: ListInfo) -> int:
        """Entries of a list that give size 0 but no empty file's digest: no usable size.

        Note: only an empty file has size 0; a supplier that writes 0 for a
        size it does not know would make --candidates-only pass over every
        file of that digest. A scan of the list's entries, for the first
        --candidates-only scan of a set of lists only (see notable_sizes).
        """
        ids = self._range(info.id)
        if ids is None:
            return 0
        union, params = _empty_file_entries(info.counts)
        empty = f"AND id NOT IN ({union})" if union else ""
        (found,) = self.db.execute(
            f"SELECT count(*) FROM entries WHERE id BETWEEN ? AND ? AND size = 0 {empty}",
            [*ids, *params],
        ).fetchone()
        return int(found)

    def _unsized(self, list_id: int) -> bool:
        """True when the list has an entry without a size."""
        if self._has_stats:
            row = self.db.execute(
                "SELECT unsized FROM list_stats WHERE list_id = ?", [list_id]
            ).fetchone()
            if row is not None and row[0] is not None:
                return bool(row[0])
        ids = self._range(list_id) or (0, -1)
        found = self.db.execute(
            "SELECT 1 FROM entries WHERE id BETWEEN ? AND ? AND list_id = ? AND size IS NULL "
            "LIMIT 1",
            [*ids, list_id],
        ).fetchone()
        return found is not None
