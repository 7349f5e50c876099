"""The scan inventory: every entry seen, with its digests and outcome, in SQLite.

It lives beside the log (`<log>.inventory.db`, mode 0600) and is what makes
resume, reports and re-matching possible without touching the evidence again.
Rows are committed in batches; the log, not the inventory, is the record of
truth for matches, so a crash loses at most the last uncommitted batch of
inventory rows, and resume re-hashes exactly those files.
"""

from __future__ import annotations

import binascii
import contextlib
import dataclasses
import os
import sqlite3
from collections.abc import Iterator
from collections.abc import Mapping
from collections.abc import Sequence
from pathlib import Path

from matcher.digests import DIGEST_SIZES
from matcher.digests import file_sha256
from matcher.errors import StoreError
from matcher.errors import open_files_note
from matcher.models import EntryOutcome
from matcher.models import FileTask
from matcher.models import fields_path
from matcher.path_set import PathSet
from matcher.sqlitefiles import Database
from matcher.sqlitefiles import connect_readonly

SCHEMA_VERSION = 1
_COLUMNS = (
    "path",
    "kind",
    "size",
    "mtime_ns",
    *DIGEST_SIZES,
    "verdict",
    "skip",
    "failure",
    "errno",
    "detail",
    "run",
)
_COLUMN_SET = frozenset(_COLUMNS)
FINISHED_BATCH = 4096  # finished paths' keys fetched at a time on resume (65,536: +21 MB)
_SKIP_SHAPE = ("path", "kind", "size", "mtime_ns", "skip", "errno", "detail")
_FAILURE_SHAPE = ("path", "kind", "size", "mtime_ns", "failure", "errno", "detail")


_INT64 = range(-(1 << 63), 1 << 63)


def _storable_int(value: object) -> object:
    """`value`, or an int SQLite cannot hold as its decimal digits (a BLOB, kept as it is)."""
    if value.__class__ is int and value not in _INT64:
        return str(value).encode("ascii")
    return value


def inventory_int(value: int | bytes | None) -> int | None:
    """An integer column's value as written (see _storable_int); None for NULL."""
    return None if value is None else int(value)


def default_path(log_path: Path) -> Path:
    """Where the inventory of a log lives unless told otherwise."""
    return log_path.with_name(log_path.name + ".inventory.db")


@dataclasses.dataclass(frozen=True)
class SealCheck:
    """What became of the inventory that a log's last `end` record sealed (check_seal).

    `status`: "matches" or "differs" (its SHA-256 against the seal's), "missing",
    "not-a-file" (a FIFO, a device or a folder is there: never read), "unreadable",
    or "unsealed" (the record seals no inventory).
    """

    status: str
    path: Path | None = None  # the file checked (or the first place looked at)
    sealed: str | None = None  # the SHA-256 the log sealed
    actual: str | None = None  # the file's SHA-256, when read
    looked_at: tuple[Path, ...] = ()
    reason: str | None = None  # why it could not be read
    sealed_elsewhere: Path | None = None  # a file looked at later that matches (see problem)

    def problem(self) -> str | None:
        """The trouble in words (after "its inventory"), or None when it matches."""
        if self.status == "matches":
            return None
        if self.status == "differs":
            said = (
                f"{self.path} is not the one the log sealed (SHA-256 {self.actual}, sealed "
                f"{self.sealed}): it changed after the scan, or it belongs to another run"
            )
            if self.sealed_elsewhere is not None:
                # Note: a scan with --inventory elsewhere, beside an older LOG.inventory.db
                # (a review: "FAILED", with no word of the file that matches).
                said += (
                    f"; {self.sealed_elsewhere}, where the log recorded its inventory, is the "
                    "one it sealed, but the file beside the log decides: move that one away "
                    "if it is not this run's"
                )
            return said
        if self.status == "unreadable":
            return f"{self.path} cannot be read ({self.reason})"
        if self.status == "unsealed":
            return "is not sealed by the log (its end record names none)"
        looked = ", ".join(str(p) for p in self.looked_at)
        if self.status == "not-a-file":
            return f"{self.path} is not a regular file (a FIFO, a device or a folder)"
        return f"was not found (looked for {looked})"


def check_seal(log: Path, end: Mapping[str, object] | None, given: Path | None = None) -> SealCheck:
    """Check the inventory the `end` record of `log` sealed, against its SHA-256.

    It is looked for beside the log (named after it), then where the record
    says, or only at `given`; the first found decides.
    """
    sealed = end.get("inventory") if end is not None else None
    if not isinstance(sealed, dict) or not isinstance(sealed.get("sha256"), str):
        return SealCheck("unsealed")
    digest = str(sealed["sha256"])
    if given is not None:
        looked: tuple[Path, ...] = (given,)
    else:
        beside = default_path(log)
        try:
            where = Path(os.fsdecode(fields_path(sealed)))
        except (KeyError, ValueError, binascii.Error):
            where = beside  # no usable path recorded: looked for beside the log
        same = os.path.abspath(where) == os.path.abspath(beside)
        # Note: an inventory named after its log (the default) travels with
        # it: the one beside the log is the one a reviewer holds, and decides
        # (a copied case folder whose inventory was edited verified "as
        # sealed" by the untouched original at the recorded path; the recorded
        # path may also hold another run's now, its log's name reused). So
        # does one beside a renamed copy of the log, renamed alike (the
        # original decided: found by a validator; a check of the log it notes
        # as its own was no help, as that note is not sealed). One named
        # otherwise (--inventory) is looked for where recorded when there is
        # none beside the log; one there that differs fails the log.
        looked = (where,) if same else (beside, where)
    for path in looked:
        if path.is_file():
            try:
                actual = file_sha256(path)
            except OSError as exc:
                why = exc.strerror or str(exc)
                return SealCheck("unreadable", path, digest, None, looked, why)
            if actual == digest:
                return SealCheck("matches", path, digest, actual, looked)
            elsewhere = next(
                (p for p in looked[looked.index(path) + 1 :] if _sealed(p, digest)), None
            )
            return SealCheck("differs", path, digest, actual, looked, sealed_elsewhere=elsewhere)
    there = [p for p in looked if p.exists()]
    if there:
        return SealCheck("not-a-file", there[0], digest, None, looked)
    return SealCheck("missing", looked[0], digest, None, looked)


def _sealed(path: Path, digest: str) -> bool:
    """True when `path` is a regular file whose SHA-256 is `digest`."""
    try:
        return path.is_file() and file_sha256(path) == digest
    except OSError:
        return False


class Inventory:
    """Write side and read side of one scan's inventory.

    Raises:
        StoreError: when the file cannot be created or is not an inventory.
    """

    def __init__(self, path: Path, create: bool = True, new: bool = False, sealed: bool = False):
        """Open (or, with `create`, make) the inventory at `path`.

        `new`: the file must not exist yet (a fresh scan's): made exclusively,
        so that two scans given one --inventory cannot both write into it
        (each checked it did not exist, before minutes of start-up).
        `sealed` (with create False): read its bytes as they are, a journal
        beside it ignored (see connect_readonly): its SHA-256 was checked.
        """
        self.path = path
        self._pending: dict[tuple[str, ...], list[tuple[object, ...]]] = {}
        self._notes: dict[str, str] = {}  # meta values written with the next flush
        made = False  # this call created the file
        conn: sqlite3.Connection | None = None
        try:
            if create:
                flags = os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC | (os.O_EXCL if new else 0)
                try:
                    fd = os.open(path, flags, 0o600)
                except FileExistsError as exc:
                    if os.path.islink(path):
                        raise StoreError(
                            f"Cannot create inventory {path}: a symbolic link is there. Choose "
                            "another --inventory."
                        ) from exc
                    raise StoreError(
                        f"Inventory {path} already exists: another scan made it meanwhile? "
                        "Choose another --log or --inventory."
                    ) from exc
                except OSError as exc:
                    raise StoreError(
                        f"Cannot create inventory {path}: {exc.strerror or exc}."
                    ) from exc
                os.close(fd)
                made = new
                conn = sqlite3.connect(str(path))
            else:
                if not path.is_file():
                    raise StoreError(f"Inventory {path} does not exist.")
                conn = connect_readonly(path, sealed=sealed)
            self.db = Database(conn)
            if create and "entries" not in self.db.table_names():
                self._create()
        except BaseException as exc:
            if made:
                # Note: also on Ctrl-C: a fresh scan's run stops here with its log
                # removed ("run the command again"), which a leftover inventory
                # would refuse ("already exists").
                if conn is not None:
                    conn.close()
                for suffix in ("", "-journal"):
                    with contextlib.suppress(OSError):
                        os.unlink(f"{path}{suffix}")
            if isinstance(exc, sqlite3.DatabaseError):
                limit = open_files_note() if "unable to open" in str(exc) else None
                tail = f" ({limit})" if limit else ""
                raise StoreError(f"Cannot open inventory {path}: {exc}{tail}") from exc
            raise

    def _create(self) -> None:
        digests = "".join(f"{a} BLOB, " for a in DIGEST_SIZES)
        with self.db.atomic():
            self.db.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT)")
            self.db.execute(
                "INSERT INTO meta (key, value) VALUES ('schema_version', ?)", [str(SCHEMA_VERSION)]
            )
            # Note: `path` has no key or index: a second B-tree, half of the
            # inventory's write time on a tree of small files. A run queues
            # each entry once (a resume skips finished paths and first
            # deletes failed rows), and sources name entries uniquely (see
            # evidence/unique.py), so the key only checked that. Readers
            # sort by path when they need to. Inventories made with the key
            # read and resume as before.
            self.db.execute(
                "CREATE TABLE entries (path BLOB NOT NULL, kind TEXT, size INTEGER, "
                f"mtime_ns INTEGER, {digests}verdict TEXT, skip TEXT, failure TEXT, "
                "errno INTEGER, detail TEXT, run INTEGER)"
            )

    def add(self, outcome: EntryOutcome, verdict: str | None, run: int) -> None:
        """Queue one entry's outcome (written on flush()).

        Rows are queued by shape, and each shape is written with only the
        columns it fills (the rest are NULL, as in a full row): a scan of
        small files spends much of its own time binding parameters.
        Note that BLOBs are queued as bytearray: Python's sqlite3 binds a
        bytearray at once, but sends bytes (and None) through its adapter
        lookup first, about 1 µs each. The copy costs less than half of
        that, and an inventory row of a hashed file has four BLOBs.
        """
        digests = outcome.digests
        if digests is not None:
            shape: tuple[str, ...] = ("path", "kind", "size", "mtime_ns", *digests, "verdict")
            row: tuple[object, ...] = (
                bytearray(outcome.path),
                outcome.kind,
                outcome.size,
                outcome.mtime_ns,
                *map(bytearray, digests.values()),
                verdict,
            )
            if outcome.errno is not None or outcome.detail is not None:
                shape += ("errno", "detail")  # e.g. a further name of a hard link
                row += (outcome.errno, outcome.detail)
        elif outcome.skip is not None:
            shape = _SKIP_SHAPE
            row = (outcome.path, outcome.kind, outcome.size, outcome.mtime_ns, outcome.skip.value,
                   outcome.errno, outcome.detail)  # fmt: skip
        else:
            shape = _FAILURE_SHAPE
            failure = outcome.failure.value if outcome.failure else None
            row = (outcome.path, outcome.kind, outcome.size, outcome.mtime_ns, failure,
                   outcome.errno, outcome.detail)  # fmt: skip
        self._pending.setdefault(shape, []).append((*row, run))

    def add_hashed(self, outcomes: list[EntryOutcome], verdict: str, run: int) -> None:
        """Queue hashed entries of one verdict (the scan's bulk path for unknown files).

        An outcome with an errno or a detail, or a batch whose entries do
        not all carry the same digests, is queued by add() instead.
        """
        first = outcomes[0].digests
        assert first is not None
        # Note: a tuple, not keys(): the row takes each outcome's values in its
        # own order, so the order must match too, not just the names.
        algorithms = tuple(first)
        if not all(
            o.digests is not None and tuple(o.digests) == algorithms and o.errno is None
            and o.detail is None
            for o in outcomes
        ):  # fmt: skip
            for outcome in outcomes:
                self.add(outcome, verdict, run)
            return
        shape = ("path", "kind", "size", "mtime_ns", *algorithms, "verdict")
        blob = bytearray
        self._pending.setdefault(shape, []).extend(
            [
                (blob(o.path), o.kind, o.size, o.mtime_ns, *map(blob, o.digests.values()),  # type: ignore[union-attr]
                 verdict, run)
                for o in outcomes
            ]
        )  # fmt: skip

    def add_digests(
        self,
        algorithms: tuple[str, ...],
        tasks: list[FileTask],
        digest_lists: list[list[bytes]],
        verdict: str,
        run: int,
    ) -> None:
        """Queue plain files hashed whole, each with its digests in `algorithms` order.

        The scan's fast path for files in no list: no outcome object per file.
        """
        blob = bytearray
        shape = ("path", "kind", "size", "mtime_ns", *algorithms, "verdict")
        queued = self._pending.setdefault(shape, [])
        queued.extend([(blob(t.path), t.kind, t.size, t.mtime_ns, *map(blob, d), verdict, run)
                       for t, d in zip(tasks, digest_lists, strict=True)])  # fmt: skip

    def add_skipped(self, rows: list[tuple[bytes, str, int, int]], skip: str, run: int) -> None:
        """Queue entries skipped for one reason, as (path, kind, size, mtime_ns) each.

        The scan's fast path for `not-candidate` files: no outcome object per file.
        """
        queued = self._pending.setdefault(("path", "kind", "size", "mtime_ns", "skip"), [])
        queued.extend([(bytearray(path), kind, size, mtime_ns, skip, run)
                       for path, kind, size, mtime_ns in rows])  # fmt: skip

    @property
    def pending(self) -> int:
        """Rows queued and not yet committed."""
        return sum(len(rows) for rows in self._pending.values())

    def flush(self) -> None:
        """Commit the queued rows in one transaction.

        Raises:
            StoreError: when the inventory cannot be written (disk full, read-only).
        """
        if not self._pending and not self._notes:
            return
        try:
            try:
                self._write_pending()
            except OverflowError:
                # Note: an mtime past 2262 or before 1677 (a suspect's touch
                # can set one) does not fit SQLite's 64-bit INTEGER. Rare: the
                # batch was rolled back, and goes again with such numbers
                # as their decimal digits (read back by inventory_int).
                self._pending = {
                    shape: [tuple(map(_storable_int, row)) for row in rows]
                    for shape, rows in self._pending.items()
                }
                self._write_pending()
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"Cannot write inventory {self.path}: {exc}") from exc
        self._pending.clear()
        self._notes.clear()

    def note(self, key: str, value: str) -> None:
        """Queue a meta value, written by the next flush() in the same transaction as its rows.

        Note: what the run knows of the rows flushed (see scan._Recorder): a
        resume, which reads those rows no more, takes it from here.
        """
        self._notes[key] = value

    def noted(self, key: str) -> str | None:
        """A meta value note() wrote (None: none)."""
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", [key]).fetchone()
        return None if row is None else str(row[0])

    def _write_pending(self) -> None:
        with self.db.atomic():
            for key, value in self._notes.items():
                self.db.execute(
                    "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", [key, value]
                )
            for shape, rows in self._pending.items():
                if not _COLUMN_SET.issuperset(shape):
                    raise StoreError(f"Not inventory columns: {', '.join(shape)}")
                # Note: each path is queued once per run, so the shapes'
                # order cannot matter. (REPLACE acts only on an inventory
                # made with a key on path; it never finds a duplicate.)
                columns = ",".join((*shape, "run"))
                marks = ",".join("?" * (len(shape) + 1))
                self.db.conn.executemany(
                    f"INSERT OR REPLACE INTO entries ({columns}) VALUES ({marks})", rows
                )

    def forget_failures(self) -> None:
        """Drop the rows of failed entries (a resume reads them again, or finds them gone).

        Raises:
            StoreError: when the inventory cannot be written.
        """
        try:
            with self.db.atomic():
                self.db.execute("DELETE FROM entries WHERE failure IS NOT NULL")
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"Cannot write inventory {self.path}: {exc}") from exc

    def finished_paths(self) -> PathSet:
        """Paths whose outcome is final (hashed or skipped): resume does not re-read them.

        Failed entries are retried on resume: a transient error may have passed.
        Note that the paths are never held as Python objects: SQLite keys each
        with the set's keyed digest and sorts the keys, and the set keeps 16
        bytes a path (see path_set). Past its cache, SQLite's sorter spills
        the keys (never a path) to temporary files: about 20 bytes a path of
        space in SQLITE_TMPDIR or TMPDIR (some 200 MB at ten million paths).

        Raises:
            StoreError: when the inventory cannot be read.
        """
        finished = PathSet()
        conn = self.db.conn
        # Note that sqlite3 (3.11) cannot unregister a function: this one
        # stays on the connection, holding the set, which the scan keeps anyway.
        conn.create_function("matcher_path_key", 1, finished.key_of, deterministic=True)
        try:
            cursor = conn.execute(
                "SELECT matcher_path_key(path) AS member FROM entries "
                "WHERE failure IS NULL ORDER BY member"
            )
            while batch := cursor.fetchmany(FINISHED_BATCH):
                finished.extend_sorted([row[0] for row in batch])
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"Cannot read inventory {self.path}: {exc}") from exc
        return finished

    def unwritten_rows(self, algorithms: Sequence[str]) -> int:
        """Finished file rows that no scan writes: no digest of `algorithms`, or no verdict.

        Note: after a kill -9 no end record seals the inventory, and a resume
        took every row as a finished file: one inserted by hand, with no
        digest, counted as an unknown file read (a validator).

        Raises:
            StoreError: when the inventory cannot be read.
        """
        missing = " OR ".join(f"{a} IS NULL" for a in algorithms if a in DIGEST_SIZES) or "0"
        try:
            (found,) = self.db.execute(
                f"SELECT count(*) FROM entries WHERE failure IS NULL AND skip IS NULL AND "
                f"({missing} OR verdict IS NULL OR verdict NOT IN ('notable', 'known', 'unknown'))"
            ).fetchone()
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"Cannot read inventory {self.path}: {exc}") from exc
        return int(found)

    def finished_totals(self) -> list[tuple[str | None, str | None, int, int, int]]:
        """Finished entries (hashed or skipped) grouped by (skip, verdict).

        Each group: (skip, verdict, entries, bytes, empty files), bytes and
        empty files counted over the group's sizes (None as 0 bytes).

        Raises:
            StoreError: when the inventory cannot be read.
        """
        try:
            rows = self.db.execute(
                "SELECT skip, verdict, count(*), coalesce(sum(size), 0), "
                "count(CASE WHEN size = 0 THEN 1 END) FROM entries "
                "WHERE failure IS NULL GROUP BY skip, verdict"
            ).fetchall()
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"Cannot read inventory {self.path}: {exc}") from exc
        return [(r[0], r[1], int(r[2]), int(r[3]), int(r[4])) for r in rows]

    def origin(self) -> str | None:
        """The SHA-256 of the first line of the log this inventory belongs to (None: not noted)."""
        row = self.db.execute("SELECT value FROM meta WHERE key = 'log_origin'").fetchone()
        return None if row is None else str(row[0])

    def set_origin(self, origin: str) -> None:
        """Note the log this inventory belongs to: the SHA-256 of its first line (its run record).

        Inventories made before it was noted have none; a resume notes it.
        """
        try:
            with self.db.atomic():
                self.db.execute(
                    "INSERT OR REPLACE INTO meta (key, value) VALUES ('log_origin', ?)", [origin]
                )
        except sqlite3.Error as exc:
            raise StoreError(f"Cannot write inventory {self.path}: {exc}") from exc

    def last_run(self) -> int:
        """The highest run number recorded (-1 for an empty inventory)."""
        row = self.db.execute("SELECT max(run) FROM entries").fetchone()
        return -1 if row is None or row[0] is None else int(row[0])

    def notable_paths(self) -> Iterator[bytes]:
        """The path of every entry recorded as notable (few: one match record each)."""
        cur = self.db.execute("SELECT path FROM entries WHERE verdict = 'notable'")
        while batch := cur.fetchmany(10_000):
            for (path,) in batch:
                yield bytes(path)

    def rows(self) -> Iterator[dict[str, object]]:
        """Every entry, in path order."""
        cur = self.db.execute(f"SELECT {','.join(_COLUMNS)} FROM entries ORDER BY path")
        while batch := cur.fetchmany(10_000):
            for row in batch:
                yield dict(zip(_COLUMNS, row, strict=True))

    def close(self) -> None:
        """Flush and close."""
        self.flush()
        self.db.close()
