"""Base: a current SQLite (apsw's own copy) for the bulk copy of a list, behind sqlite3's API.

Python's `sqlite3` uses the system's SQLite: 3.40 on Debian 12, which has no
`unhex()`, so an RDS copy decoded every entry's digests with a Python call
per row. apsw bundles a current SQLite (3.5x), whose native `unhex()` needs
no such call and whose sorter and B-tree inserts are faster too: on a
1M-row RDS, the whole copy took 3.0 s on it against 4.6-5.4 s on 3.40 (the
walk 0.85 s against 1.9 s), measured side by side on 2 cores.

`Connection` offers the few parts of `sqlite3.Connection` that the store's
copy uses, and turns apsw's errors into sqlite3's classes (with SQLite's own
message), so that the store's handlers are the same for both.

Note: one process must never have one database file open through two copies
of SQLite at once. POSIX locks belong to the process: closing one copy's file
descriptor drops the locks the other copy holds on that file
(https://sqlite.org/howtocorrupt.html, 2.2.1). The store closes its own
connection before it opens this one and opens it again after, and uses this
one only when it is the file's one open store in the process.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from collections.abc import Iterator
from collections.abc import Sequence
from typing import Any

try:
    import apsw
except ImportError:  # an install without it: the system's SQLite does all
    apsw = None  # type: ignore[assignment]

# unhex() came with SQLite 3.41.0.
MIN_VERSION = (3, 41, 0)


def available() -> bool:
    """Whether apsw is installed with an SQLite of MIN_VERSION or later."""
    if apsw is None:
        return False
    version = tuple(int(part) for part in apsw.sqlite_lib_version().split(".")[:3])
    return version >= MIN_VERSION


def version() -> str | None:
    """The version of apsw's SQLite, if installed."""
    return None if apsw is None else str(apsw.sqlite_lib_version())


# Python runs a signal handler (Ctrl-C: KeyboardInterrupt) only between its own
# bytecodes, so a statement that runs for a minute on a large list would delay
# it as long. SQLite calls the progress handler every this many VM steps (some
# milliseconds): that Python call lets the signal in, and apsw passes the
# exception on, ending the statement (its transaction then rolls back).
SIGNAL_CHECK_STEPS = 1 << 20


def _let_signals_in() -> bool:
    """The progress handler: go on (False); a pending signal raises from here."""
    return False


def _translated(exc: BaseException) -> sqlite3.Error:
    """apsw's error as the sqlite3 class a handler of the store expects."""
    message = str(exc)
    name = type(exc).__name__
    # Note: apsw prefixes SQLite's message with its class ("SQLError: ...").
    if message.startswith(f"{name}: "):
        message = message[len(name) + 2 :]
    if apsw is not None and isinstance(exc, apsw.ConstraintError):
        return sqlite3.IntegrityError(message)
    if apsw is not None and isinstance(exc, (apsw.NotADBError, apsw.CorruptError)):
        return sqlite3.DatabaseError(message)
    return sqlite3.OperationalError(message)


class Cursor:
    """The result of one statement: its rows (if any) and its counts."""

    def __init__(self, cursor: Any, rowcount: int, lastrowid: int):
        self._cursor = cursor
        self.rowcount = rowcount
        self.lastrowid = lastrowid
        # Note: apsw describes the columns only while the statement is
        # running; a statement that gave no row has none to name.
        try:
            columns = cursor.get_description()
        except apsw.ExecutionCompleteError:
            columns = ()
        self.description = [(str(name), str(kind)) for name, kind in columns]

    def __iter__(self) -> Iterator[tuple[Any, ...]]:
        try:
            yield from self._cursor
        except apsw.Error as exc:
            raise _translated(exc) from exc

    def fetchone(self) -> tuple[Any, ...] | None:
        try:
            row = self._cursor.fetchone()
        except apsw.Error as exc:
            raise _translated(exc) from exc
        return None if row is None else tuple(row)

    def fetchall(self) -> list[tuple[Any, ...]]:
        return list(self)


class Connection:
    """A connection to one database file through apsw's SQLite (see the module's note).

    Autocommit, as sqlite3's with isolation_level None: a transaction is
    begun and ended by BEGIN and COMMIT statements.
    """

    def __init__(self, uri: str):
        """Open `uri` (a file: URI, so that no path is ever read as one by mistake).

        Raises:
            sqlite3.OperationalError: apsw is missing, or the file cannot be opened.
        """
        if not available():
            raise sqlite3.OperationalError(f"apsw with SQLite {MIN_VERSION} or later is needed")
        flags = apsw.SQLITE_OPEN_READWRITE | apsw.SQLITE_OPEN_CREATE | apsw.SQLITE_OPEN_URI
        try:
            self._conn = apsw.Connection(uri, flags=flags)
        except apsw.Error as exc:
            raise _translated(exc) from exc
        self._conn.set_progress_handler(_let_signals_in, SIGNAL_CHECK_STEPS)
        self.isolation_level: str | None = None

    @property
    def in_transaction(self) -> bool:
        return bool(self._conn.in_transaction)

    def execute(self, sql: str, parameters: Sequence[object] = ()) -> Cursor:
        """Run one statement; a statement that returns rows gives them through the cursor.

        Note: apsw runs a statement up to its first row (all of an INSERT) here.
        """
        conn = self._conn
        try:
            cursor = conn.execute(sql, tuple(parameters))
            return Cursor(cursor, conn.changes(), conn.last_insert_rowid())
        except apsw.Error as exc:
            raise _translated(exc) from exc

    def create_function(
        self, name: str, narg: int, function: Callable[..., object], *, deterministic: bool = False
    ) -> None:
        """A scalar SQL function, as sqlite3's create_function."""
        self._conn.create_scalar_function(name, function, narg, deterministic=deterministic)

    def close(self) -> None:
        """Close the connection (its file descriptors included)."""
        self._conn.close()


__all__ = ["Connection", "Cursor", "available", "version"]
