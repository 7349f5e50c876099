"""What the readers of lists that are SQLite databases share (NSRL RDS v3, TSK .kdb).

The database is opened read-only and immutable: no lock, no journal, nothing
written, even on read-only media. Names keep whatever bytes the list had: a
strict UTF-8 text factory would abort the whole read on one name in a vendor's
own encoding, so undecodable bytes come through as surrogates and `name()`
turns them back into the exact bytes.
"""

from __future__ import annotations

import contextlib
import functools
import io
import sqlite3
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from matcher.errors import FormatError
from matcher.formats import registry

SQLITE_MAGIC = b"SQLite format 3\x00"

_TEXT = functools.partial(str, encoding="utf-8", errors="surrogateescape")
# What reading a damaged database can raise: SQLite's errors, and Python's
# when an error message quotes schema bytes that are not UTF-8.
DB_ERRORS = (sqlite3.Error, UnicodeDecodeError)

# The tables (or views) each reader of an SQLite list recognises it by, as
# (what the list is, its table names), filled by those readers' modules: a
# database that no reader takes is refused naming what it lacks.
SIGNATURES: dict[str, tuple[str, tuple[str, ...]]] = {}
_SHOWN_TABLES = 8


@contextlib.contextmanager
def connect(path: Path) -> Iterator[sqlite3.Connection]:
    """The database at `path`, read-only and immutable, closed on exit.

    Raises:
        FormatError: it cannot be opened.
    """
    _refuse_pending_changes(path)
    uri = path.absolute().as_uri() + "?mode=ro&immutable=1"
    try:
        conn = sqlite3.connect(uri, uri=True)
    except sqlite3.Error as exc:
        raise FormatError(f"cannot open the database read-only: {exc}", str(path)) from exc
    try:
        conn.text_factory = _TEXT
        yield conn
    finally:
        conn.close()


def _refuse_pending_changes(path: Path) -> None:
    """Refuse a database with changes pending in a write-ahead log or rollback journal.

    Read as immutable (nothing is ever written beside a list), SQLite reads
    the database file alone: rows still in a `-wal` file would be missed in
    silence, and a hot `-journal` means a write was cut off midway. The
    source SHA-256 recorded for the list would cover the database file only,
    too. A side file with nothing pending is no reason to refuse: a journal
    whose header is zeroed (as journal_mode=PERSIST leaves it), or a log whose
    committed pages are all in the database file already (checkpointed, not
    truncated). SQLite keeps side files beside the file a symlink resolves
    to, so that is where they are looked for.

    Raises:
        FormatError: naming the side file, what it holds and what to do.
    """
    try:
        real = path.resolve()
        beside = path.parent.resolve() / path.name
    except (OSError, RuntimeError):  # a symlink loop: opening the database fails
        return
    where = "it" if real == beside else "the file it links to"
    for suffix, what in (("-wal", "write-ahead log"), ("-journal", "rollback journal")):
        side = real.with_name(real.name + suffix)
        try:
            size = side.stat().st_size
        except OSError:
            continue
        if size == 0:
            continue
        pending = _wal_changes(side, real) if suffix == "-wal" else _journal_changes(side)
        if pending is None:
            continue
        shown = side.name if where == "it" else str(side)
        advice = (
            "PRAGMA wal_checkpoint(TRUNCATE)"
            if suffix == "-wal"
            else "any query, which rolls the cut-off write back"
        )
        raise FormatError(
            f"beside {where} is a {what}, {shown} ({size:,} bytes), {pending}; matcher reads "
            "the database file alone and never writes beside a list. Open a copy of both "
            f"with sqlite3 ({advice}), then import the copy",
            str(path),
        )


def _journal_changes(journal: Path) -> str | None:
    """What a rollback journal holds that the database file lacks; None for nothing.

    Note that SQLite plays back (a hot journal) only a journal whose first
    byte is not zero; to end a transaction, journal_mode=PERSIST zeroes the
    header and leaves the file. A zeroed header is taken as nothing pending.
    """
    try:
        with journal.open("rb") as stream:
            header = stream.read(_JOURNAL_HEADER)
    except OSError as exc:
        return f"that cannot be read ({exc.strerror}), of a write that may be cut off midway"
    if len(header) == _JOURNAL_HEADER and not any(header):
        return None
    return "of a write cut off midway: the database file may hold part of it"


# The header SQLite zeroes in journal_mode=PERSIST: magic, page count, nonce, sizes.
_JOURNAL_HEADER = 28
# WAL file format (sqlite.org/fileformat2.html, 4): the magic says the byte
# order of the checksums' 32-bit words.
_WAL_ORDER = {0x377F0682: "<", 0x377F0683: ">"}
_WAL_VERSION = 3007000
_WAL_HEADER = 32
_FRAME_HEADER = 24
# Note: checksums are summed in Python (about 25 MB/s); a larger log is
# refused as one that may hold changes, never read at length.
MAX_CHECKED_WAL = 64 << 20
_MAY_HOLD = "that may hold changes not in the database file"
_HOLDS = "holding changes that are not in the database file"


def _wal_changes(wal: Path, db: Path) -> str | None:
    """What a write-ahead log holds that the database file lacks; None for nothing.

    As SQLite reads it: its valid frames (the header's salts, checksums
    that chain) up to the last commit. Nothing is pending when each page
    those frames give is the same in the database file, and the file has
    the committed page count: a log checkpointed but not truncated, or one
    whose frames are all from before a reset (stale salts).
    """
    try:
        if wal.stat().st_size > MAX_CHECKED_WAL:
            return f"{_MAY_HOLD} (matcher checks no log over {MAX_CHECKED_WAL >> 20} MiB)"
        with wal.open("rb") as log, db.open("rb") as base:
            return _wal_pages_differ(log, base)
    except OSError as exc:
        return f"{_MAY_HOLD} (it cannot be read: {exc.strerror})"


def _wal_pages_differ(log: BinaryIO, base: BinaryIO) -> str | None:
    header = log.read(_WAL_HEADER)
    if len(header) < _WAL_HEADER:
        return f"{_MAY_HOLD} (its header is cut short)"
    magic, version, size, _sequence, *salts, check0, check1 = struct.unpack(">8I", header)
    order = _WAL_ORDER.get(magic)
    if (
        order is None
        or version != _WAL_VERSION
        or not 512 <= size <= 65536
        or size & (size - 1)
        or _wal_checksum(order, header[:24], (0, 0)) != (check0, check1)
    ):
        return f"{_MAY_HOLD} (its header is not one SQLite writes)"
    checksum = check0, check1
    committed: dict[int, int] = {}  # page number: where its last committed copy is
    frames: dict[int, int] = {}  # the same, for the frames since the last commit
    pages = 0  # the database's size in pages at the last commit
    at = _WAL_HEADER
    while len(frame := log.read(_FRAME_HEADER + size)) == _FRAME_HEADER + size:
        number, after, salt0, salt1, check0, check1 = struct.unpack(">6I", frame[:24])
        if [salt0, salt1] != salts or number == 0:
            break
        checksum = _wal_checksum(order, frame[:8], checksum)
        checksum = _wal_checksum(order, frame[_FRAME_HEADER:], checksum)
        if checksum != (check0, check1):
            break
        frames[number] = at + _FRAME_HEADER
        if after:
            committed.update(frames)
            frames.clear()
            pages = after
        at += len(frame)
    if not committed:
        return None
    base_size = _page_size(base.read(100))
    if base_size != size:
        return f"{_MAY_HOLD} (its pages are not the database file's size)"
    for number, where in sorted(committed.items()):
        log.seek(where)
        base.seek((number - 1) * size)
        if log.read(size) != base.read(size):
            return _HOLDS
    if base.seek(0, io.SEEK_END) != pages * size:
        return f"{_MAY_HOLD} (the database file is not the size the log gives it)"
    return None


def _page_size(header: bytes) -> int | None:
    """The page size a database header gives (1 stands for 65536)."""
    if len(header) < 18:
        return None
    size = int.from_bytes(header[16:18], "big")
    return 65536 if size == 1 else size


def _wal_checksum(order: str, data: bytes, start: tuple[int, int]) -> tuple[int, int]:
    """SQLite's WAL checksum of `data`, chained from `start`."""
    first, second = start
    words = iter(struct.unpack(f"{order}{len(data) // 4}I", data))
    for even, odd in zip(words, words, strict=False):
        first = (first + even + second) & 0xFFFFFFFF
        second = (second + odd + first) & 0xFFFFFFFF
    return first, second


def columns(conn: sqlite3.Connection, table: str) -> dict[str, str]:
    """Lower-cased column names of `table` mapped to their spelling in the schema."""
    rows = conn.execute(f'PRAGMA table_info("{table}")').fetchall()
    return {str(row[1]).lower(): str(row[1]) for row in rows}


def name(value: object) -> str | bytes | None:
    """A stored name: text, or the exact bytes when they are not UTF-8."""
    if value is None:
        return None
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            return value
    text = str(value)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "surrogateescape")
    return text


class UnreadableSqliteRefusal:
    """Says why an SQLite file no reader accepted is not a list matcher reads.

    Detection opens an SQLite list to see its tables; when that fails (a
    truncated or damaged file, changes pending in a side file), the reason is
    the one to give, not "not a hash list". A database that opens is named
    as one, with the tables each SQLite list format needs and that it lacks
    (an RDS built without its PKG table, another tool's database).
    """

    NAME = "sqlite-unreadable"
    DESCRIPTION = "SQLite database that cannot be read, or holds no list matcher reads"

    def refuse(self, head: bytes, path: Path | None = None) -> str | None:
        if path is None or not head.startswith(SQLITE_MAGIC):
            return None
        try:
            with connect(path) as conn:
                rows = conn.execute(
                    "SELECT name FROM sqlite_master WHERE type IN ('table', 'view') ORDER BY name"
                ).fetchall()
        except FormatError as exc:
            return exc.reason
        except DB_ERRORS as exc:
            return f"an SQLite database that cannot be read ({exc}): is it damaged or truncated?"
        return _not_a_list(sorted(str(name) for (name,) in rows))


def _not_a_list(tables: list[str]) -> str | None:
    """Why a readable database is no list: what each format needs and it lacks.

    None when it has every table of one format: that format's reader takes it.
    """
    have = {t.lower() for t in tables}
    needs = []
    for what, signature in SIGNATURES.values():
        missing = [name for name in signature if name.lower() not in have]
        if not missing:
            return None
        needs.append(
            f"{what} needs the tables {', '.join(signature)} (this one lacks {', '.join(missing)})"
        )
    shown = ", ".join(tables[:_SHOWN_TABLES]) + (", ..." if len(tables) > _SHOWN_TABLES else "")
    return (
        f"an SQLite database, but not a hash list matcher reads: {'; '.join(needs)}. "
        f"Its tables and views: {shown or 'none'}"
    )


registry.register_refusal(UnreadableSqliteRefusal())
