"""Base: open matcher's own SQLite files (store, inventory) for reading only.

A process killed while it commits leaves a "hot" rollback journal beside the
database. SQLite must roll that journal back before anyone reads the file,
and a `mode=ro` connection cannot, so it fails with "attempt to write a
readonly database". The recovery is SQLite's own: one read-write connection
that reads the schema rolls the journal back, after which the read-only
connection sees the last committed state. These are matcher's files, never
evidence, so that one recovery write is allowed; where even that is
impossible (read-only media), the error says what to do.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import sqlite3
from collections.abc import Iterator
from collections.abc import Sequence
from pathlib import Path


def _hot_journal(path: Path) -> bool:
    journal = Path(f"{path}-journal")
    try:
        return journal.stat().st_size > 0
    except OSError:
        return False


def connect_readonly(path: Path) -> sqlite3.Connection:
    """Connect to `path` for reading, first rolling back a crash's hot journal.

    Raises:
        sqlite3.DatabaseError: the file is unreadable or not a database, or a
            hot journal cannot be rolled back (read-only media).
    """
    if _hot_journal(path):
        if not os.access(path, os.W_OK) or not os.access(path.parent or Path("."), os.W_OK):
            raise sqlite3.OperationalError(
                "an interrupted write left a hot journal that must be rolled back first; "
                "open it once where it can be written (e.g. run `matcher lists` with write access)"
            )
        recovery = sqlite3.connect(str(path))
        try:
            recovery.execute("SELECT count(*) FROM sqlite_master").fetchone()
        finally:
            recovery.close()
    return sqlite3.connect(f"file:{path}?mode=ro", uri=True)


class Database:
    """A connection to one of matcher's SQLite files, with the few conveniences used.

    Every scan opens the store and creates an inventory, and importing
    sqlite-utils costs about 0.1 s of start-up; so those files are used
    through this thin layer over `sqlite3`, and sqlite-utils only builds the
    store's schema (once per store). The connection is in autocommit mode:
    a write outside `atomic()` commits at once, as it does in sqlite-utils.
    """

    def __init__(self, conn: sqlite3.Connection):
        conn.isolation_level = None
        self.conn = conn

    def execute(self, sql: str, parameters: Sequence[object] = ()) -> sqlite3.Cursor:
        """Run one statement (committed at once outside `atomic()`)."""
        return self.conn.execute(sql, parameters)

    def query(self, sql: str, parameters: Sequence[object] = ()) -> Iterator[dict[str, object]]:
        """Rows as dicts keyed by column name."""
        cursor = self.conn.execute(sql, parameters)
        names = [d[0] for d in cursor.description]
        for row in cursor:
            yield dict(zip(names, row, strict=True))

    def table_names(self) -> list[str]:
        """Names of the tables in the main database."""
        rows = self.conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        return [str(r[0]) for r in rows]

    def column_names(self, table: str) -> list[str]:
        """Names of a table's columns, in order."""
        return [str(r[1]) for r in self.conn.execute("SELECT * FROM pragma_table_info(?)", [table])]

    @contextlib.contextmanager
    def atomic(self) -> Iterator[Database]:
        """One transaction (a savepoint when nested): all of it commits, or none."""
        conn = self.conn
        if conn.in_transaction:
            name = f"matcher_{next(_SAVEPOINTS)}"
            conn.execute(f"SAVEPOINT {name}")
            try:
                yield self
            except BaseException:
                if conn.in_transaction:
                    conn.execute(f"ROLLBACK TO SAVEPOINT {name}")
                    conn.execute(f"RELEASE SAVEPOINT {name}")
                raise
            conn.execute(f"RELEASE SAVEPOINT {name}")
            return
        conn.execute("BEGIN")
        try:
            yield self
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    def close(self) -> None:
        """Close the connection."""
        self.conn.close()


_SAVEPOINTS = itertools.count()
