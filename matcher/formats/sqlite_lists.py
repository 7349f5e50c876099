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
import sqlite3
from collections.abc import Iterator
from pathlib import Path

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
    """Refuse a database whose write-ahead log or rollback journal lies beside it.

    Read as immutable (nothing is ever written beside a list), SQLite reads
    the database file alone: rows still in a `-wal` file would be missed in
    silence, and a `-journal` means a write was cut off midway. The source
    SHA-256 recorded for the list would cover the database file only, too.
    SQLite keeps side files beside the file a symlink resolves to, so that is
    where they are looked for.

    Raises:
        FormatError: naming the side file and what to do.
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
        if size > 0:
            shown = side.name if where == "it" else str(side)
            raise FormatError(
                f"beside {where} is a {what}, {shown} ({size:,} bytes), holding changes that "
                "are not in the database file; matcher reads the database file alone and "
                "never writes beside a list. Open a copy of both with sqlite3 "
                "(PRAGMA wal_checkpoint(TRUNCATE), or any query for a journal), then import "
                "the copy",
                str(path),
            )


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
