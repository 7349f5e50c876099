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

_TEXT = functools.partial(str, encoding="utf-8", errors="surrogateescape")


@contextlib.contextmanager
def connect(path: Path) -> Iterator[sqlite3.Connection]:
    """The database at `path`, read-only and immutable, closed on exit.

    Raises:
        FormatError: it cannot be opened.
    """
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
