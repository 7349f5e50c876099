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

import os
import sqlite3
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
