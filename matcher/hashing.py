"""One read pass, every digest: hash one opened file, with change detection.

A work unit is a `FileTask` (a path and what the walk saw of it). `hash_task`
opens it through the source's opener, checks that the opened object is the
very file the walk saw (same device and inode, still a regular file), reads
it once into a reused buffer, feeds every requested digest, and checks that
neither the byte count, the size nor the mtime moved while it was read. The
outcome is exactly one of: digests, or a failure with a reason. No byte of
content ever leaves this module: only digests do.
"""

from __future__ import annotations

import errno as errno_mod
import os
import stat
import time
from collections.abc import Callable
from collections.abc import Iterable
from collections.abc import Iterator
from collections.abc import Sequence
from typing import TYPE_CHECKING
from typing import Any
from typing import Protocol

from matcher.digests import hasher_factory
from matcher.errors import os_error_detail
from matcher.errors import refuse_own_limit
from matcher.models import EntryOutcome
from matcher.models import Failure
from matcher.models import FileTask

if TYPE_CHECKING:
    import concurrent.futures as cf

    from matcher.workers import ForkedWorkers

CHUNK_SIZE = 1 << 20

# An opener returns a read-only file descriptor for a task's path.
Opener = Callable[[bytes], int]
# A chunk reader yields the content of a task with a locator (a file inside a
# disk image or an archive), using the buffer it is given where it can. It
# raises OSError for unreadable content, with ESTALE for content that is no
# longer as listed (a `changed` failure, its message the detail). It must be
# a module-level function (process workers receive it by reference).
ChunkReader = Callable[[FileTask, memoryview], Iterator[bytes | memoryview]]


# A plain file whose ctime is this recent (or in the future) when its read
# starts may be under a write still: it is read twice (see Hasher.hash_file).
SETTLING_NS = 2_000_000_000


class Hasher:
    """Reusable per-worker state: the read buffer and the digest constructors.

    Args:
        algorithms: canonical digest names, computed together in one pass.
        opener: returns a read-only fd for a path (the evidence source's own).
        chunk_size: the read buffer size; files up to it take the one-read path.
    """

    def __init__(
        self,
        algorithms: Sequence[str],
        opener: Opener,
        chunk_size: int = CHUNK_SIZE,
        chunk_reader: ChunkReader | None = None,
    ):
        self.chunk_reader = chunk_reader
        self.algorithms = tuple(algorithms)
        self.factories = [hasher_factory(a) for a in self.algorithms]
        self.opener = opener
        self.chunk_size = chunk_size
        # Note that one spare byte lets a single read both fill and prove EOF.
        self.buffer = bytearray(chunk_size + 1)
        self.view = memoryview(self.buffer)

    def digest_fd(self, fd: int, expected_size: int) -> tuple[list[bytes], int]:
        """Digest everything readable from `fd`; return (digests, bytes read).

        The digests come in the order of `algorithms` (none when the file
        grew past its expected size: it is read to the end only to count).
        """
        hashers: list[Any] = [f() for f in self.factories]
        view = self.view
        if expected_size < self.chunk_size:
            # Fast path: one read syscall returns the whole file and shows EOF.
            n = os.readv(fd, [view])
            total = n
            if n > expected_size:  # grew; keep reading so the count is honest
                while n:
                    n = os.readv(fd, [view])
                    total += n
            else:
                data = view[:n]
                for h in hashers:
                    h.update(data)
                return [h.digest() for h in hashers], total
            return [], total
        total = 0
        chunk = view[: self.chunk_size]
        while True:
            n = os.readv(fd, [chunk])
            if not n:
                break
            total += n
            data = chunk[:n]
            for h in hashers:
                h.update(data)
        return [h.digest() for h in hashers], total

    def run_located(self, task: FileTask) -> EntryOutcome:
        """Hash a task whose content comes from a chunk reader (image, archive)."""
        if self.chunk_reader is None:
            raise ValueError("this engine has no chunk reader for located tasks")
        hashers: list[Any] = [f() for f in self.factories]
        total = 0
        try:
            for data in self.chunk_reader(task, self.view[: self.chunk_size]):
                total += len(data)
                for h in hashers:
                    h.update(data)
        except OSError as exc:
            refuse_own_limit(exc, task.path)  # the run stops: --resume continues it
            if exc.errno == errno_mod.ESTALE:
                return _failure(task, Failure.CHANGED, None, exc.strerror)
            return _failure(task, Failure.IO_ERROR, exc)
        if total != task.size:
            return _failure(task, Failure.CHANGED, None, f"listed {task.size} bytes, read {total}")
        digests = {a: h.digest() for a, h in zip(self.algorithms, hashers, strict=True)}
        return EntryOutcome(
            path=task.path, size=task.size, mtime_ns=task.mtime_ns, digests=digests, kind=task.kind
        )

    def run(self, task: FileTask) -> EntryOutcome:
        """Hash one task; never raises for a problem with the file itself."""
        if task.locator is not None:
            return self.run_located(task)
        result = self.hash_file(task.path, task.size, task.mtime_ns, task.dev, task.ino)
        if isinstance(result, list):
            digests = dict(zip(self.algorithms, result, strict=True))
            return EntryOutcome.hashed(task.path, task.size, task.mtime_ns, digests, task.kind)
        failure, code, detail = result
        return EntryOutcome(
            path=task.path,
            size=task.size,
            mtime_ns=task.mtime_ns,
            failure=failure,
            errno=code,
            detail=detail,
            kind=task.kind,
        )

    def hash_file(
        self, path: bytes, size: int, mtime_ns: int, dev: int, ino: int
    ) -> list[bytes] | tuple[Failure, int | None, str | None]:
        """Digests of one plain file (as `algorithms` orders them), or (failure, errno, detail).

        The file must be the very one the walk saw (`dev`, `ino`), still a
        regular file, and neither its size nor its mtime may move while read.
        """
        try:
            fd = self.opener(path)
        except OSError as exc:
            refuse_own_limit(exc, path)  # the run stops: --resume continues it
            return _failure_of(_open_failure(exc.errno), exc)
        try:
            before = os.fstat(fd)
            if not stat.S_ISREG(before.st_mode) or (before.st_dev, before.st_ino) != (dev, ino):
                return Failure.CHANGED, None, "replaced by another object after listing"
            if before.st_size != size or before.st_mtime_ns != mtime_ns:
                # Note: not read: it is no longer what the walk listed (rewritten,
                # or replaced by a file that took its inode number). Said to
                # have "moved while read", the examiner suspected the read.
                mtime = "its mtime moved" if before.st_mtime_ns != mtime_ns else "the same mtime"
                return (
                    Failure.CHANGED,
                    None,
                    f"changed after it was listed, before it was read (listed {size} bytes, "
                    f"found {before.st_size}, {mtime})",
                )
            try:
                digests, total = self.digest_fd(fd, before.st_size)
                if digests and time.time_ns() - before.st_ctime_ns < SETTLING_NS:
                    # Note: write(2) stamps the times before it copies its data:
                    # a read overlapping that copy sees one ctime before and
                    # after, and its digest is of bytes half old, half new. A
                    # file written that recently is read twice, to agree.
                    os.lseek(fd, 0, os.SEEK_SET)
                    if self.digest_fd(fd, before.st_size) != (digests, total):
                        return (
                            Failure.CHANGED,
                            None,
                            "being written: two reads of it differ (it changed within "
                            f"{SETTLING_NS // 1_000_000_000} s before it was read)",
                        )
            except OSError as exc:
                return _failure_of(Failure.IO_ERROR, exc)
            after = os.fstat(fd)
        except OSError as exc:
            return _failure_of(Failure.IO_ERROR, exc)
        finally:
            os.close(fd)
        # Note: the ctime too, which no user can set back: a writer that
        # restores the mtime after changing the content still moves it.
        moved = (
            total != size
            or after.st_size != size
            or after.st_mtime_ns != mtime_ns
            or after.st_ctime_ns != before.st_ctime_ns
        )
        if moved or not digests:
            return (
                Failure.CHANGED,
                None,
                f"size, mtime or ctime moved while read (listed {size} bytes, read {total})",
            )
        return digests


def _open_failure(code: int | None) -> Failure:
    if code == errno_mod.ENOENT:
        return Failure.VANISHED
    if code in (errno_mod.ELOOP, errno_mod.ENOTDIR):
        return Failure.CHANGED  # a component became a symlink or a non-directory
    if code == errno_mod.EIO:
        return Failure.IO_ERROR
    return Failure.UNREADABLE


def _failure_of(failure: Failure, exc: OSError) -> tuple[Failure, int | None, str | None]:
    code = exc.errno
    return failure, code, os_error_detail(exc)


def _failure(
    task: FileTask, failure: Failure, exc: OSError | None, detail: str | None = None
) -> EntryOutcome:
    code = exc.errno if exc is not None else None
    if exc is not None and detail is None:
        detail = os_error_detail(exc)
    return EntryOutcome(
        path=task.path,
        size=task.size,
        mtime_ns=task.mtime_ns,
        failure=failure,
        errno=code,
        detail=detail,
        kind=task.kind,
    )


# -- executor seam ------------------------------------------------------------
#
# The main thread groups tasks into work units sized by bytes (a large file
# alone; small files together, up to BATCH_FILES or BATCH_BYTES), hands them
# to an executor, and yields outcomes in submission order, so the log's order
# is the walk's whatever --jobs is. At most IN_FLIGHT units per worker are
# submitted and not yet consumed: memory stays flat however many files exist,
# and no read buffer is shared (each worker owns one Hasher).

# Files of at least this size travel alone: a worker that takes one never
# holds small files behind it, and the other workers keep going.
LARGE_FILE = 8 << 20
BATCH_BYTES = 8 << 20
BATCH_FILES = 64
# The in-flight bound, per worker: at most IN_FLIGHT units, and no more
# units once IN_FLIGHT_BYTES of file content is submitted and not yet
# consumed. Outcomes are yielded in order, so a worker hashing a large file
# holds back the results of every later unit; the byte budget lets the other
# workers run ahead through small files meanwhile instead of going idle,
# while the unit cap bounds memory (an outcome is a few hundred bytes: no
# content is ever held, only paths and digests).
IN_FLIGHT = 32
IN_FLIGHT_BYTES = 256 << 20

_worker_hasher: Hasher | None = None


def _init_worker(
    algorithms: tuple[str, ...],
    opener: Opener,
    chunk_size: int,
    chunk_reader: ChunkReader | None,
    ignore_sigint: bool,
) -> None:
    global _worker_hasher
    from matcher.workers import die_with_parent

    die_with_parent()
    if ignore_sigint:
        import signal

        # Note that the parent owns interruption: it stops submitting work and
        # writes the `end` record; a worker killed mid-batch would lose results.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGHUP, signal.SIG_IGN)  # a hangup reaches the whole group
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
    _worker_hasher = Hasher(algorithms, opener, chunk_size, chunk_reader)


# Between processes, a plain file (no locator, no link) travels as a tuple
# (path, size, mtime_ns, dev, ino) and comes back as the tuple of its digests
# in the engine's algorithm order; the parent rebuilds the outcome from the
# task it kept. Pickling dataclasses both ways cost about 9 µs of CPU per
# file, a tenth of all the work on a tree of small files. Anything else (a
# failure, a located or linked task) travels as the object itself.
_WireTask = FileTask | tuple[bytes, int, int, int, int]
_WireResult = EntryOutcome | list[bytes]
# What `map_units` gives for each task: its outcome, or a list of digests in
# the engine's algorithm order. A list is given only for a plain file (a task
# with no locator and no link, kind "file") that was read whole with the size
# and mtime the task names, unchanged: the caller may record it from the task
# alone (what `_from_wire` does). A caller that handles most files in bulk
# (the scan: files in no list) then builds no outcome object for them. An
# engine of another kind (a cluster) may give outcomes only.
RawResult = _WireResult


def _to_wire(task: FileTask) -> _WireTask:
    if task.locator is None and task.link is None and task.kind == "file":
        return (task.path, task.size, task.mtime_ns, task.dev, task.ino)
    return task


def _run_batch_in_worker(batch: list[_WireTask]) -> list[_WireResult]:
    hasher = _worker_hasher
    assert hasher is not None
    return _run_batch_with(hasher, batch)


def _run_batch_with(hasher: Hasher, batch: list[_WireTask]) -> list[_WireResult]:
    out: list[_WireResult] = []
    for item in batch:
        if isinstance(item, tuple):
            result = hasher.hash_file(*item)
            if isinstance(result, list):
                out.append(result)
            else:
                path, size, mtime_ns = item[:3]
                failure, code, detail = result
                out.append(
                    EntryOutcome(path, size, mtime_ns, failure=failure, errno=code, detail=detail)
                )
        else:
            out.append(hasher.run(item))
    return out


def _run_batch_here(hasher: Hasher, batch: list[FileTask]) -> list[RawResult]:
    """A unit's raw results, hashed in this process (see RawResult)."""
    return _run_batch_with(hasher, [_to_wire(task) for task in batch])


def _from_wire(
    algorithms: tuple[str, ...], batch: list[FileTask], results: list[_WireResult]
) -> Iterator[EntryOutcome]:
    for task, result in zip(batch, results, strict=True):
        if isinstance(result, list):
            digests = dict(zip(algorithms, result, strict=True))
            yield EntryOutcome.hashed(task.path, task.size, task.mtime_ns, digests, task.kind)
        else:
            yield result


def batches(
    tasks: Iterable[FileTask],
    batch_bytes: int = BATCH_BYTES,
    batch_files: int = BATCH_FILES,
    large_file: int = LARGE_FILE,
) -> Iterator[list[FileTask]]:
    """Group tasks, in order, into work units of about `batch_bytes` or `batch_files`.

    A task of `large_file` bytes or more is a unit of its own. Concatenating
    the units gives back the tasks in their order.
    """
    batch: list[FileTask] = []
    size = 0
    for task in tasks:
        if task.size >= large_file:
            if batch:
                yield batch
                batch, size = [], 0
            yield [task]
            continue
        batch.append(task)
        size += task.size
        if size >= batch_bytes or len(batch) >= batch_files:
            yield batch
            batch, size = [], 0
    if batch:
        yield batch


class Engine(Protocol):
    """Runs hashing work units; a cluster engine can implement the same seam."""

    algorithms: tuple[str, ...]

    def map(self, tasks: Iterator[FileTask]) -> Iterator[EntryOutcome]:
        """Hash every task; yield outcomes in the order the tasks came."""
        ...

    def map_units(
        self, tasks: Iterator[FileTask]
    ) -> Iterator[tuple[list[FileTask], list[RawResult]]]:
        """Hash every task; yield each work unit's tasks and raw results, in order.

        Concatenated, the units give back the tasks in the order they came;
        `_from_wire` turns a unit's raw results into the outcomes of map().
        """
        ...

    def close(self) -> None:
        """Stop the workers (also on interruption)."""
        ...


class SerialEngine:
    """Hashes in the calling thread (--jobs 1, and the self-test)."""

    def __init__(
        self,
        algorithms: Sequence[str],
        opener: Opener,
        chunk_size: int = CHUNK_SIZE,
        chunk_reader: ChunkReader | None = None,
    ):
        self.hasher = Hasher(algorithms, opener, chunk_size, chunk_reader)
        self.algorithms = self.hasher.algorithms

    def map(self, tasks: Iterator[FileTask]) -> Iterator[EntryOutcome]:
        for task in tasks:
            yield self.hasher.run(task)

    def map_units(
        self, tasks: Iterator[FileTask]
    ) -> Iterator[tuple[list[FileTask], list[RawResult]]]:
        # Note: one task a unit: the walk never runs ahead of the hashing.
        for task in tasks:
            yield [task], _run_batch_here(self.hasher, [task])

    def close(self) -> None:
        pass


class PoolEngine:
    """Work units over a pool of threads or processes, ordered, bounded.

    Args:
        kind: "process" (forked workers, the default) or "thread".
        jobs: number of workers.
        in_flight: work units per worker submitted and not yet consumed (the
            memory bound: at most `jobs * in_flight` units exist at once).
        in_flight_bytes: file bytes per worker submitted and not yet consumed;
            no further unit is submitted beyond it (at least one always is).
        batch_bytes, batch_files, large_file: the work-unit sizes (`batches`).
    """

    def __init__(
        self,
        algorithms: Sequence[str],
        opener: Opener,
        jobs: int,
        kind: str = "process",
        chunk_size: int = CHUNK_SIZE,
        in_flight: int = IN_FLIGHT,
        in_flight_bytes: int = IN_FLIGHT_BYTES,
        chunk_reader: ChunkReader | None = None,
        batch_bytes: int = BATCH_BYTES,
        batch_files: int = BATCH_FILES,
        large_file: int = LARGE_FILE,
    ):
        self.jobs = jobs
        self.window = max(2, in_flight * jobs)
        self.window_bytes = max(1, in_flight_bytes * jobs)
        # Note: a unit weighs at most one worker's share of the bytes window: a
        # file of jobs x 256 MiB or more filled the window alone, and nothing
        # more was sent until it was hashed: two 2 GiB files took one core.
        self.unit_bytes = max(1, in_flight_bytes)
        self.batch_bytes = batch_bytes
        self.batch_files = batch_files
        self.large_file = large_file
        # The most units ever submitted and not yet consumed (for tests).
        self.peak_in_flight = 0
        args = (tuple(algorithms), opener, chunk_size, chunk_reader)
        self.algorithms = tuple(algorithms)
        self.executor: cf.Executor | None = None
        self.workers: ForkedWorkers | None = None
        if kind == "thread":
            import threading

            local = threading.local()

            def run_batch(batch: list[FileTask]) -> list[RawResult]:
                hasher = getattr(local, "hasher", None)
                if hasher is None:
                    hasher = local.hasher = Hasher(*args)
                return _run_batch_here(hasher, batch)

            import concurrent.futures as cf

            self._submit_fn: Callable[[list[Any]], list[Any]] = run_batch
            self.executor = cf.ThreadPoolExecutor(
                max_workers=jobs, thread_name_prefix="matcher-hash"
            )
        elif kind == "process":
            from matcher.workers import ForkedWorkers

            # Note that the workers are forked here, before the caller opens
            # its log, store and inventory: no worker holds any of them.
            self.workers = ForkedWorkers(jobs, _init_worker, (*args, True), _run_batch_in_worker)
        else:
            raise ValueError(f"unknown engine kind {kind!r}")

    def map(self, tasks: Iterator[FileTask]) -> Iterator[EntryOutcome]:
        algorithms = self.algorithms
        for batch, results in self.map_units(tasks):
            yield from _from_wire(algorithms, batch, results)

    def map_units(
        self, tasks: Iterator[FileTask]
    ) -> Iterator[tuple[list[FileTask], list[RawResult]]]:
        if self.workers is not None:
            return self._map_forked(self.workers, tasks)
        return self._map_executor(tasks)

    def _map_executor(
        self, tasks: Iterator[FileTask]
    ) -> Iterator[tuple[list[FileTask], list[RawResult]]]:
        import collections

        assert self.executor is not None
        pending: collections.deque[tuple[Any, int, list[FileTask]]] = collections.deque()
        pending_bytes = 0
        units = batches(tasks, self.batch_bytes, self.batch_files, self.large_file)
        for batch in units:
            size = min(sum(t.size for t in batch), self.unit_bytes)
            pending.append((self.executor.submit(self._submit_fn, batch), size, batch))
            pending_bytes += size
            self.peak_in_flight = max(self.peak_in_flight, len(pending))
            while pending and (len(pending) >= self.window or pending_bytes >= self.window_bytes):
                future, size, sent = pending.popleft()
                pending_bytes -= size
                yield sent, future.result()
        while pending:
            future, _, sent = pending.popleft()
            yield sent, future.result()

    def _map_forked(
        self, workers: ForkedWorkers, tasks: Iterator[FileTask]
    ) -> Iterator[tuple[list[FileTask], list[RawResult]]]:
        import collections
        import pickle

        # Each entry: (worker, file bytes, the tasks sent).
        pending: collections.deque[tuple[int, int, list[FileTask]]] = collections.deque()
        pending_bytes = 0

        def oldest() -> tuple[list[FileTask], list[RawResult]]:
            nonlocal pending_bytes
            index, size, sent = pending.popleft()
            pending_bytes -= size
            return sent, workers.receive(index)

        units = batches(tasks, self.batch_bytes, self.batch_files, self.large_file)
        for batch in units:
            size = sum(t.size for t in batch)
            payload = pickle.dumps([_to_wire(t) for t in batch], protocol=pickle.HIGHEST_PROTOCOL)
            workers.collect()
            while (index := workers.pick(payload)) is None:
                yield oldest()
            # A unit's weight for choosing a worker: its bytes, plus a per-file
            # cost (opening, two fstat calls, the digests' set-up) of about
            # what hashing 16 KiB costs.
            workers.send(index, payload, size + (len(batch) << 14))
            size = min(size, self.unit_bytes)  # its weight in the bytes window
            pending.append((index, size, batch))
            pending_bytes += size
            self.peak_in_flight = max(self.peak_in_flight, len(pending))
            while pending and (len(pending) >= self.window or pending_bytes >= self.window_bytes):
                yield oldest()
        while pending:
            yield oldest()

    def close(self) -> None:
        if self.workers is not None:
            self.workers.close()
        if self.executor is not None:
            self.executor.shutdown(wait=True, cancel_futures=True)


def make_engine(
    algorithms: Sequence[str],
    opener: Opener,
    jobs: int,
    kind: str = "auto",
    chunk_reader: ChunkReader | None = None,
) -> Engine:
    """The engine for `jobs` workers: serial for 1, else a pool of `kind`."""
    if jobs <= 1:
        return SerialEngine(algorithms, opener, chunk_reader=chunk_reader)
    pool_kind = "process" if kind == "auto" else kind
    return PoolEngine(algorithms, opener, jobs, pool_kind, chunk_reader=chunk_reader)
