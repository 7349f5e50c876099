"""Base: matcher's own SQLite files: opening them to read, and scratch files a child fills.

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
import errno
import gc
import itertools
import json
import os
import signal
import sqlite3
import stat
import sys
import tempfile
import threading
from collections.abc import Callable
from collections.abc import Iterator
from collections.abc import Mapping
from collections.abc import Sequence
from pathlib import Path
from typing import Any


def _hot_journal(path: Path) -> bool:
    journal = Path(f"{path}-journal")
    try:
        return journal.stat().st_size > 0
    except OSError:
        return False


def connect_readonly(path: Path, sealed: bool = False, timeout: float = 5.0) -> sqlite3.Connection:
    """Connect to `path` for reading, first rolling back a crash's hot journal.

    With `sealed`, the file is read as its bytes are (SQLite's immutable
    mode): a journal beside it is neither rolled back nor read. For a file
    whose SHA-256 was just checked against a seal: rolled back, a journal
    planted beside it changed both the file and what was read after the check.
    `timeout`: how long, in seconds, a read waits for another process's
    commit (sqlite3's own 5 s unless the caller waits longer).

    Raises:
        sqlite3.DatabaseError: the file is unreadable or not a database, or a
            hot journal cannot be rolled back (read-only media).
    """
    if sealed:
        return sqlite3.connect(path.absolute().as_uri() + "?mode=ro&immutable=1", uri=True)
    # Note: a URI, so its path is percent-encoded (as_uri): written as it is,
    # a '#' or '?' in a folder's name ended the path there (SQLite opened
    # another file, and `mode=ro` was lost), and '%41' read as 'A'.
    uri = path.absolute().as_uri() + "?mode=ro"
    if not _hot_journal(path):
        return sqlite3.connect(uri, uri=True, timeout=timeout)
    if os.access(path, os.W_OK) and os.access(path.parent or Path("."), os.W_OK):
        recovery = sqlite3.connect(str(path), timeout=timeout)
        try:
            recovery.execute("SELECT count(*) FROM sqlite_master").fetchone()
        finally:
            recovery.close()
        return sqlite3.connect(uri, uri=True, timeout=timeout)
    # Note: SQLite decides whether the journal is hot, as it reads: a journal
    # is also there while another process's write is under way (it holds
    # the file's RESERVED lock), or left with a zeroed header, and neither
    # needs rolling back. Judged by its size alone, a user who may not write
    # the store was refused it during every import, said to be "interrupted".
    conn = sqlite3.connect(uri, uri=True, timeout=timeout)
    try:
        conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
    except sqlite3.OperationalError as exc:
        conn.close()
        if getattr(exc, "sqlite_errorcode", None) != _READONLY_ROLLBACK:
            raise
        raise sqlite3.OperationalError(
            "an interrupted write left a hot journal that must be rolled back first; "
            "open it once where it can be written (e.g. run `matcher lists` with write access)"
        ) from exc
    return conn


# SQLite's extended result code for a hot journal a read-only connection cannot roll back.
_READONLY_ROLLBACK = 776


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
    def atomic(self, immediate: bool = False) -> Iterator[Database]:
        """One transaction (a savepoint when nested): all of it commits, or none.

        `immediate`: take the write lock at once (BEGIN IMMEDIATE), so that what
        is read inside cannot change before the transaction writes.
        """
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
        conn.execute("BEGIN IMMEDIATE" if immediate else "BEGIN")
        try:
            yield self
            # Note: inside the try: a COMMIT that fails (SQLITE_BUSY while another
            # process holds the file, a full disk) leaves the transaction open,
            # and a later statement's commit would apply what was reported
            # as not done; it is rolled back here.
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise

    def close(self) -> None:
        """Close the connection."""
        self.conn.close()


_SAVEPOINTS = itertools.count()


def scratch_folder() -> Path | None:
    """The folder SQLite itself puts temporary files in (SQLITE_TMPDIR, TMPDIR, ...).

    None when there is no writable one. Note that SQLite would then fall back
    to the current folder, which may be an evidence folder (a scan's --list):
    matcher's own scratch files never go there.
    """
    here = os.path.realpath(os.getcwd())
    for candidate in (os.environ.get("SQLITE_TMPDIR"), os.environ.get("TMPDIR"),
                      "/var/tmp", "/usr/tmp", "/tmp"):  # fmt: skip
        if not candidate or os.path.realpath(candidate) == here:
            continue  # TMPDIR=. or the like: the current folder after all
        if os.path.isdir(candidate) and os.access(candidate, os.W_OK | os.X_OK):
            return Path(os.path.abspath(candidate))
    return None


def temporary_folders() -> list[tuple[Path, str, str]]:
    """Where Python and SQLite would put temporary files: (folder, what, variable) each.

    Found the way each looks, without writing there (Python's tempfile tries
    a candidate by writing a file in it: so does a scan's self-test, which
    must not do so under an evidence root).
    """
    found: list[tuple[Path, str, str]] = []
    python = tempfile.tempdir
    if python is None:
        for candidate in (os.environ.get("TMPDIR"), os.environ.get("TEMP"),
                          os.environ.get("TMP"), "/tmp", "/var/tmp", "/usr/tmp"):  # fmt: skip
            if candidate and os.path.isdir(candidate) and os.access(candidate, os.W_OK | os.X_OK):
                python = candidate
                break
    if python is not None:
        found.append((Path(os.path.abspath(python)), "temporary folder", "TMPDIR"))
    sqlite = scratch_folder()
    if sqlite is not None:
        found.append((sqlite, "temporary folder of SQLite", "SQLITE_TMPDIR"))
    return found


class ChildFill:
    """One `INSERT ... SELECT` into a scratch SQLite file, run by a forked child process.

    The parent goes on with its own work meanwhile, on another core, and
    `wait()` gives the number of rows the last statement of `script` changed.
    The child opens its own connection to `path` (journal off: the file is
    scratch; with `newer`, through apsw's SQLite, see sqlite_newer), attaches
    each of `attach` (name -> URI) and runs `script` (the insert, and what
    else the parent wants done there, e.g. counting what it inserted) in one
    transaction; it touches nothing of the parent's and ends with os._exit,
    so no object inherited from the parent is finalised there.

    The parent opens `path` first (e.g. ATTACH). The child removes the name
    once its own connection has the file open: the scratch data then lives
    only as long as the two processes keep it open, and a kill -9 of either
    (the child dies with its parent) leaves nothing behind.

    An SQLite error in the child comes back from `wait()` as the same class
    (`sqlite3.OperationalError` or `sqlite3.DatabaseError`) with its message;
    a child that dies raises OperationalError. Start it before any thread.
    """

    def __init__(
        self,
        path: Path,
        attach: Mapping[str, str],
        script: Sequence[str],
        functions: Mapping[str, Callable[..., bytes]],
        newer: bool = False,
    ):
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        reply_r, reply_w = os.pipe2(os.O_CLOEXEC)
        # Note: SIGINT and SIGTERM wait until each process is in its own code:
        # raised in the child before its try, they would run the parent's.
        from matcher.workers import fork_holding_signals

        parent = os.getpid()
        try:
            pid, held = fork_holding_signals()
        except OSError:
            os.close(reply_r)
            os.close(reply_w)
            raise
        if pid == 0:  # the child
            try:
                # Note: no collection here of the parent's garbage (a
                # connection closed in this process could roll back its files).
                gc.disable()
                os.close(reply_r)
                from matcher.workers import die_with_parent

                die_with_parent()
                if os.getppid() != parent:  # the parent died before prctl took effect
                    os._exit(1)
                signal.pthread_sigmask(signal.SIG_SETMASK, held)
                reply = _fill(path, attach, script, functions, newer)
                with open(reply_w, "w", encoding="utf-8", closefd=False) as out:
                    out.write(json.dumps(reply))
            finally:
                os._exit(0)
        os.close(reply_w)
        self._pid: int | None = pid
        self._replies: int | None = reply_r
        try:
            signal.pthread_sigmask(signal.SIG_SETMASK, held)
        except BaseException:  # a signal held across fork lands here: stop the child too
            self.cancel()
            raise

    def wait(self) -> int:
        """The rows the script's last statement changed, once the child is done.

        Raises:
            sqlite3.OperationalError, sqlite3.DatabaseError: the child's statement failed.
        """
        pid, replies = self._pid, self._replies
        assert pid is not None and replies is not None, "wait() or cancel() already called"
        chunks = []
        while chunk := os.read(replies, 1 << 16):
            chunks.append(chunk)
        text = b"".join(chunks)
        self._replies = None
        os.close(replies)
        # Note: an interruption before this point leaves the child to cancel().
        _, status = os.waitpid(pid, 0)
        self._pid = None
        if not text:
            raise sqlite3.OperationalError(
                f"the staging process ended without a result ({_describe_status(status)})"
            )
        kind, value = json.loads(text)
        if kind == "rows":
            return int(value)
        if kind == "OperationalError":
            raise sqlite3.OperationalError(value)
        raise sqlite3.DatabaseError(value)

    def cancel(self) -> None:
        """Stop the child, if it still runs, and reap it."""
        pid, self._pid = self._pid, None
        replies, self._replies = self._replies, None
        if replies is not None:
            os.close(replies)
        if pid is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)


def _fill(
    path: Path,
    attach: Mapping[str, str],
    script: Sequence[str],
    functions: Mapping[str, Callable[..., bytes]],
    newer: bool,
) -> list[object]:
    try:
        if newer:
            from matcher import sqlite_newer

            conn: sqlite3.Connection = sqlite_newer.Connection(path.absolute().as_uri())  # type: ignore[assignment]
        else:
            conn = sqlite3.connect(str(path), isolation_level=None)
        for name, function in functions.items():
            conn.create_function(name, 1, function, deterministic=True)
        conn.execute("PRAGMA journal_mode = OFF")  # reads the file: it is open from here on
        conn.execute("PRAGMA synchronous = OFF")
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        for name, uri in attach.items():
            conn.execute(f"ATTACH DATABASE ? AS {name}", [uri])
        conn.execute("BEGIN")
        rows = 0
        for statement in script:
            rows = conn.execute(statement).rowcount
        conn.execute("COMMIT")
        conn.close()
        return ["rows", rows]
    except sqlite3.OperationalError as exc:
        return ["OperationalError", str(exc)]
    except sqlite3.Error as exc:
        return ["DatabaseError", str(exc)]
    except BaseException as exc:  # noqa: BLE001 - the child reports, never raises
        return ["DatabaseError", f"the staging process failed: {exc!r}"]


class QueryInThread:
    """One read-only SELECT run on a connection of its own in a thread; `result()` waits for it.

    SQLite runs a statement without Python's lock, so the query takes a core
    that the caller's own statements leave idle (a bulk copy runs on one).
    The connection attaches each of `attach` (name -> URI) when made, so it
    holds the files open from then on (a file replaced later under its name
    is not the one read); `start(sql)` runs the query. The caller must end
    it: `result()`, or `close()` on every path (a `finally`).

    Note: the thread's end is told by an Event the thread sets, never by
    Thread.join() or is_alive(): on Python 3.11 a join interrupted by Ctrl-C
    marks a thread that still runs as stopped.
    """

    def __init__(self, attach: Mapping[str, str]):
        self._conn = sqlite3.connect(":memory:", uri=True, check_same_thread=False)
        try:
            for name, uri in attach.items():
                self._conn.execute(f"ATTACH DATABASE ? AS {name}", [uri])
        except BaseException:
            self._conn.close()
            raise
        self._row: tuple[Any, ...] | None = None
        self._error: BaseException | None = None
        self._done = threading.Event()
        self._lock = threading.Lock()
        self._began = False  # the thread uses the connection (until _done)
        self._closing = False  # no thread may begin from now on
        self._closed = False

    def start(self, sql: str) -> None:
        """Run `sql` in a thread, on this connection."""
        threading.Thread(target=self._run, args=(sql,), name="matcher-query", daemon=True).start()

    def _run(self, sql: str) -> None:
        with self._lock:
            if self._closing:
                self._done.set()
                return  # closed before it began: the connection is not ours
            self._began = True
        try:
            self._row = self._conn.execute(sql).fetchone()
        except BaseException as exc:  # noqa: BLE001 - raised again by result()
            self._error = exc
        finally:
            self._done.set()

    def result(self) -> tuple[Any, ...] | None:
        """The query's first row (None: it gave none), once it ends; the connection is closed.

        Raises:
            sqlite3.Error: what the query raised.
        """
        self._done.wait()
        self.close()
        if self._error is not None:
            raise self._error
        return self._row

    def close(self) -> None:
        """Stop the query if it runs (sqlite3_interrupt), wait for it, and close the connection.

        Note: interrupted again until the query ends: an interrupt that comes
        before the statement starts is forgotten when it starts (a race).
        """
        with self._lock:
            self._closing = True
            began = self._began
        if began:
            while not self._done.wait(0.05):
                self._conn.interrupt()
        if not self._closed:
            self._closed = True
            self._conn.close()


class SyncBehind:
    """Writes a file's data to disk in a thread, every `interval` s, while a long write goes on.

    A bulk copy fills the page cache with the new pages of the store (1.4 GB
    for a 10M-row RDS), and the fsync of its COMMIT then waited for all of
    them to reach the disk: 0.8 s of a 22 s import, with a core idle. Synced
    behind as they are written, the commit finds little left. Only what the
    writer has written already is synced, which the kernel may write back at
    any moment anyway: SQLite's own order of journal and database syncs is
    untouched.

    The descriptor synced is the writer's own (`of_file` finds it), never
    one opened here: closing any descriptor of a file drops every POSIX lock
    this process holds on it, SQLite's included, and one opened by the name
    may be another file by now (a review). It is checked to be the same
    file before each sync. `finish()` raises what a sync met, before the
    writer's transaction ends: an error the thread's fsync reported is not
    reported again to the writer's own (the same open file), and the write
    must fail.
    """

    def __init__(self, fd: int, interval: float = 1.0):
        st = os.fstat(fd)
        self._fd, self._key = fd, (st.st_dev, st.st_ino)
        self._interval = interval
        self._error: OSError | None = None
        self._stop = threading.Event()
        self._began = threading.Event()  # set by the thread before it reads the stop flag
        self._done = threading.Event()
        self._thread: threading.Thread | None = None

    @classmethod
    def of_file(cls, key: tuple[int, int], interval: float = 1.0) -> SyncBehind | None:
        """One for the file (st_dev, st_ino) `key`, through a descriptor of it this process has.

        Not started (see start()). None without one, or without /proc.
        """
        try:
            names = os.listdir("/proc/self/fd")
        except OSError:
            return None  # no /proc: the commit syncs it all
        for name in names:
            try:
                st = os.stat(f"/proc/self/fd/{name}")
                if stat.S_ISREG(st.st_mode) and (st.st_dev, st.st_ino) == key:
                    behind = cls(int(name), interval)
                    if behind._key == key:  # not closed and taken by another file meanwhile
                        return behind
            except OSError:
                continue  # closed meanwhile, or the listing's own
        return None

    def start(self) -> None:
        """Start syncing; without a thread to be had, nothing is synced behind.

        Note: the caller's `finally` calls stop() (a thread started, also by a
        start() that a Ctrl-C interrupted, must never outlive the transaction).
        """
        self._thread = threading.Thread(target=self._run, name="matcher-sync-behind", daemon=True)
        try:
            self._thread.start()
        except RuntimeError:
            self._thread = None  # the commit syncs it all

    def _run(self) -> None:
        self._began.set()
        try:
            while not self._stop.wait(self._interval):
                st = os.fstat(self._fd)
                if (st.st_dev, st.st_ino) != self._key:
                    break  # the writer closed it: nothing of ours to sync
                os.fdatasync(self._fd)
        except OSError as exc:
            self._error = exc
        finally:
            self._done.set()

    def stop(self) -> None:
        """Stop syncing, once a sync under way has ended.

        Note: an interruption meanwhile (a second Ctrl-C) is held until then
        and raised after (the first of them): a sync that outlived the
        transaction overlapped its rollback on the same open file, and took
        the error SQLite's own fsync needed to see (a review, on a failing
        disk). The thread's end is told by its own Events, never by
        is_alive(), which a Ctrl-C landing inside it on Python 3.11 makes
        say False of a thread that still runs (a review). A thread that had
        not begun when the flag was set ends before its first sync.
        """
        held: BaseException | None = None
        while True:
            try:
                self._stop.set()
                if not self._began.is_set() or self._done.wait(0.05):
                    break
            except BaseException as exc:  # noqa: BLE001 - raised below, once it has ended
                held = held or exc
        if held is not None:
            raise held

    def finish(self) -> None:
        """Stop syncing; raise what a sync met (OSError)."""
        self.stop()
        if self._error is not None and self._error.errno != errno.EBADF:
            raise self._error


def _describe_status(status: int) -> str:
    if os.WIFSIGNALED(status):
        return f"killed by signal {os.WTERMSIG(status)}"
    return f"exit status {os.waitstatus_to_exitcode(status)}"
