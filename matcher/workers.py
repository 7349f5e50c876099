"""Forked hashing workers with one pipe each way, driven from the calling thread.

Why not `concurrent.futures.ProcessPoolExecutor`: on a tree of small files the
scan's main process is the bottleneck (it walks, matches and records every
file while the workers hash), and the executor spends that process's time on
its own machinery: a feeder thread and a manager thread contending for the
GIL, a future, a work item and a wake-up pipe write per unit. Measured on
40,000 small files, that was about a fifth of the main process's CPU. Here
the calling thread pickles a unit, writes it to one worker's pipe, and later
reads that worker's reply: no thread, no future.

A deadlock is impossible by construction. The parent never writes more to a
worker's task pipe than the pipe holds unread (it tracks the bytes of every
unit not yet answered, an upper bound of what is unread), so a write never
waits on a worker; the only exception is a unit larger than the pipe, which
is written only to a worker with nothing outstanding, and so is reading.
A worker may wait to write its reply, but the parent reads every reply, in
the order it sent the units. It also reads ahead whatever replies are
already written (collect), without waiting, and keeps them until they are
taken: a worker's load is then the work it has not done, so the faster
worker is given more.
"""

from __future__ import annotations

import collections
import contextlib
import errno
import fcntl
import os
import pickle
import select
import signal
import struct
import sys
from collections.abc import Callable
from typing import Any

from matcher.errors import MatcherError
from matcher.errors import OutOfResources
from matcher.errors import is_own_limit

# Note on pickle: units and replies travel only through anonymous pipes made
# here, between the scan and the workers it forked itself; nothing outside
# that process tree can write to them. Evidence paths and digests inside a
# unit are pickled as data (bytes, ints); no list or evidence byte is ever
# unpickled.
_HEADER = struct.Struct("<Q")
# Linux lets an unprivileged process grow a pipe to /proc/sys/fs/pipe-max-size
# (1 MiB by default); a larger pipe lets more small units wait in it.
_PIPE_WANTED = 1 << 20
_F_SETPIPE_SZ = getattr(fcntl, "F_SETPIPE_SZ", 1031)
_F_GETPIPE_SZ = getattr(fcntl, "F_GETPIPE_SZ", 1032)
_DEFAULT_PIPE = 65536
# A reply pipe's wanted size: the replies of the units a worker may have in
# flight (a reply of 64 small files is about 6 KB), see _grow_reply_pipes.
_REPLY_PIPE_WANTED = 256 << 10


def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity), at least 1."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on every platform
        return os.cpu_count() or 1


def fork_holding_signals() -> tuple[int, set[int | signal.Signals]]:
    """os.fork() with SIGINT, SIGTERM and SIGHUP held back: (pid, the signal mask to put back).

    Raised in the child before it is in its own code, either signal would
    run the caller's handlers there (unwind a copy of the scan). Each side
    lets them through again when it is ready (`signal.pthread_sigmask(
    signal.SIG_SETMASK, mask)`): the child inside the try that ends in its
    exit, the parent once it can clean the child up. A fork that fails
    raises OSError, with the mask put back.
    """
    held = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM, signal.SIGHUP})
    try:
        return os.fork(), held
    except OSError:
        signal.pthread_sigmask(signal.SIG_SETMASK, held)
        raise


def die_with_parent() -> None:
    """Ask Linux to kill this process when its parent dies (even by kill -9).

    For forked helpers (hash workers, a staging child). Without prctl (not
    Linux), an orphaned worker still ends when its pipe closes; this only
    makes that immediate.
    """
    import ctypes

    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, int(signal.SIGKILL), 0, 0, 0)


class WorkerFailed(MatcherError):
    """A hashing worker died or failed outside any file's own error: the run stops."""


def _grow_pipe(fd: int) -> int:
    """Make the pipe as large as allowed; return its capacity in bytes."""
    with contextlib.suppress(OSError):
        fcntl.fcntl(fd, _F_SETPIPE_SZ, _PIPE_WANTED)
    return _pipe_size(fd)


def _pipe_size(fd: int) -> int:
    try:
        return int(fcntl.fcntl(fd, _F_GETPIPE_SZ))
    except OSError:
        return _DEFAULT_PIPE


def _pipe_budget() -> int | None:
    """Bytes of pipe buffers this user may hold (None: no limit applies).

    Linux caps an unprivileged user's pipe buffers at pipe-user-pages-soft
    pages (64 MiB by default); past it, every new pipe of the user gets 8
    KiB, and growing one fails. A process with CAP_SYS_RESOURCE or
    CAP_SYS_ADMIN is exempt (a capability, not uid 0: root in a container
    without them has the budget too).
    """
    try:
        with open("/proc/self/status") as f:
            effective = next(int(line.split()[1], 16) for line in f if line.startswith("CapEff:"))
        with open("/proc/sys/fs/pipe-user-pages-soft") as f:
            pages = int(f.read())
    except (OSError, ValueError, StopIteration, IndexError):
        return 0  # unknown: assume there is none to spare
    if effective & ((1 << 24) | (1 << 21)):  # CAP_SYS_RESOURCE, CAP_SYS_ADMIN
        return None
    return None if pages == 0 else pages * os.sysconf("SC_PAGE_SIZE")


def _grow_reply_pipes(workers: list[_Worker]) -> None:
    """Grow the reply pipes, when the user's pipe budget leaves room for it.

    The parent reads replies in the order it sent the units, so a worker
    that runs ahead of the other would stop at a full 64 KiB reply pipe
    (about a dozen replies of 64 small files) while the parent waits on its
    sibling: one core idle (40,000 small files: 3% more wall time). Task
    pipes come first: they are grown as each worker starts, and the replies
    take at most half of what the budget leaves, so that many workers (a
    64-thread workstation) or the user's other programs never get the 8 KiB
    pipes of an exhausted budget on their account.
    """
    sizes = {w.replies: _pipe_size(w.replies) for w in workers}
    # Note: a pipe is never shrunk (a kernel of 64 KiB pages starts at 1 MiB).
    wanted = {fd: _REPLY_PIPE_WANTED - n for fd, n in sizes.items() if n < _REPLY_PIPE_WANTED}
    budget = _pipe_budget()
    if budget is not None:
        spare = budget - sum(w.capacity for w in workers) - sum(sizes.values())
        if sum(wanted.values()) > spare // 2:
            return
    for fd in wanted:
        with contextlib.suppress(OSError):
            fcntl.fcntl(fd, _F_SETPIPE_SZ, _REPLY_PIPE_WANTED)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _read_exact(fd: int, n: int) -> bytes | None:
    """`n` bytes, or None at end of file before the first byte."""
    first = os.read(fd, n)
    if len(first) == n or not first:
        return first or None
    parts = [first]
    got = len(first)
    while got < n:
        more = os.read(fd, n - got)
        if not more:
            raise EOFError(f"pipe closed after {got} of {n} bytes")
        parts.append(more)
        got += len(more)
    return b"".join(parts)


def _send(fd: int, payload: bytes) -> None:
    _write_all(fd, _HEADER.pack(len(payload)) + payload)


def _receive(fd: int) -> bytes | None:
    header = _read_exact(fd, _HEADER.size)
    if header is None:
        return None
    (size,) = _HEADER.unpack(header)
    body = _read_exact(fd, size) if size else b""
    if body is None:
        raise EOFError("pipe closed before the message body")
    return body


def message_size(payload: bytes) -> int:
    """Bytes a payload occupies in a pipe (header included)."""
    return _HEADER.size + len(payload)


def _serve(
    tasks: int,
    replies: int,
    initializer: Callable[..., None],
    initargs: tuple[Any, ...],
    run: Callable[[Any], Any],
) -> None:
    """A worker's life: run each unit read from `tasks`, reply on `replies`, until EOF."""
    initializer(*initargs)
    while True:
        payload = _receive(tasks)
        if payload is None:
            return
        try:
            reply: tuple[bool, Any] = (True, run(pickle.loads(payload)))
        except Exception as exc:  # a bug, not a file's error (those are outcomes)
            reply = (False, f"{type(exc).__name__}: {exc}")
        _send(replies, pickle.dumps(reply, protocol=pickle.HIGHEST_PROTOCOL))


class _Worker:
    __slots__ = ("pid", "tasks", "replies", "capacity", "unread", "load", "sent", "answered")

    def __init__(self, pid: int, tasks: int, replies: int):
        self.pid = pid
        self.tasks = tasks  # our write end of its task pipe
        self.replies = replies  # our read end of its reply pipe
        self.capacity = _grow_pipe(tasks)
        self.unread = 0  # pipe bytes of units sent and not yet answered
        self.load = 0  # the scheduling weight of those units
        # (pipe bytes, weight) of each unit sent and not yet answered, oldest first.
        self.sent: collections.deque[tuple[int, int]] = collections.deque()
        # Replies read ahead (see ForkedWorkers.collect), oldest first, not yet taken.
        self.answered: collections.deque[bytes] = collections.deque()

    def read_reply(self) -> bytes | None:
        """Read its oldest reply not yet read (waiting for it); None: it died."""
        data = _receive(self.replies)
        if data is not None:
            size, load = self.sent.popleft()
            self.unread -= size
            self.load -= load
        return data


class ForkedWorkers:
    """`jobs` forked processes, each running `run(unit)` for every unit it is sent.

    Args:
        jobs: number of workers.
        initializer, initargs: run once in each worker before its first unit.
        run: the function a worker applies to each unpickled unit.

    Every worker is forked here, before the caller opens anything it must
    not share with them. The pool sets no signal disposition of its own: the
    initializer does (the scan's workers ignore SIGINT; the scan owns it).

    The caller bounds the units it has sent and not taken (the engine's
    window): replies read ahead (collect) are held here until taken. A
    worker's death is raised as soon as it is seen, by collect too, not when
    the caller reaches its unit. An exception that leaves a send, collect
    or receive halfway (an interruption landing inside one) leaves the pool
    unusable: any later call raises WorkerFailed rather than pair a reply
    with another unit.
    """

    def __init__(
        self,
        jobs: int,
        initializer: Callable[..., None],
        initargs: tuple[Any, ...],
        run: Callable[[Any], Any],
    ):
        self._workers: list[_Worker] = []
        self._halfway: str | None = None  # the exchange an exception left halfway
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        try:
            for _ in range(jobs):
                self._fork(initializer, initargs, run)
            _grow_reply_pipes(self._workers)
        except BaseException as exc:
            self.close()
            # A fork or a pipe refused for want of processes (EAGAIN), open files or memory.
            if isinstance(exc, OSError) and (is_own_limit(exc.errno) or exc.errno == errno.EAGAIN):
                # Note: before anything is written; it was a traceback and
                # "internal error ... a fault in matcher".
                raise OutOfResources(
                    f"Cannot start {jobs} hashing workers: {exc.strerror or exc}. Give fewer "
                    "--jobs, or raise the limit (`ulimit -n` for open files, `ulimit -u` for "
                    "processes)."
                ) from exc
            raise

    def _fork(
        self,
        initializer: Callable[..., None],
        initargs: tuple[Any, ...],
        run: Callable[[Any], Any],
    ) -> _Worker:
        task_r, task_w = os.pipe2(os.O_CLOEXEC)
        reply_r, reply_w = os.pipe2(os.O_CLOEXEC)
        try:
            pid, held = fork_holding_signals()
        except OSError:
            for fd in (task_r, task_w, reply_r, reply_w):
                os.close(fd)
            raise
        if pid == 0:  # the worker
            code = 0
            try:
                signal.pthread_sigmask(signal.SIG_SETMASK, held)
                # Note that every earlier worker's pipe ends must go too: a
                # copy kept here would hide that worker's end of file.
                os.close(task_w)
                os.close(reply_r)
                for other in self._workers:
                    os.close(other.tasks)
                    os.close(other.replies)
                _serve(task_r, reply_w, initializer, initargs, run)
            except (BrokenPipeError, EOFError, KeyboardInterrupt):
                code = 0  # the parent went away or stopped the run: nothing to report
            except BaseException:  # noqa: BLE001 - the worker must exit, never return
                code = 1
                with contextlib.suppress(Exception):
                    import traceback

                    traceback.print_exc()
            finally:
                os._exit(code)
        os.close(task_r)
        os.close(reply_w)
        worker = _Worker(pid, task_w, reply_r)
        self._workers.append(worker)  # before a Ctrl-C held back lands: close() ends it
        signal.pthread_sigmask(signal.SIG_SETMASK, held)
        return worker

    def __len__(self) -> int:
        return len(self._workers)

    def pick(self, payload: bytes) -> int | None:
        """The least loaded worker that can take `payload` without blocking, if any.

        Its load is of the units it has not answered: call collect() first,
        so that a worker that runs faster (the other shares its core with
        the caller) is seen to have done its units, and is given more.
        """
        size = message_size(payload)
        best: int | None = None
        for index, worker in enumerate(self._workers):
            if worker.sent and worker.unread + size > worker.capacity:
                continue
            if best is None or worker.load < self._workers[best].load:
                best = index
        return best

    def send(self, index: int, payload: bytes, load: int) -> None:
        """Send one unit to worker `index` (which `pick` chose), of scheduling weight `load`."""
        self._begin("sending a unit")
        worker = self._workers[index]
        try:
            _send(worker.tasks, payload)
        except BrokenPipeError as exc:
            raise self._failed(worker, "stopped reading its work") from exc
        size = message_size(payload)
        worker.unread += size
        worker.load += load
        worker.sent.append((size, load))
        self._halfway = None

    def collect(self) -> None:
        """Read ahead every reply already written, without waiting for any.

        The caller takes replies in the order it sent the units (receive);
        a reply read ahead frees its worker's load at once. Without it, a
        worker that finished its units kept their weight until the caller
        reached them, in order, behind the slower worker's: both were given
        as many units, and the faster one waited (40,000 small files: a
        fifth of a second idle of a two-second scan).
        """
        self._begin("reading replies ahead")
        waiting = {w.replies: w for w in self._workers if w.sent}
        while waiting:
            poller = select.poll()
            for fd in waiting:
                poller.register(fd, select.POLLIN)
            ready = poller.poll(0)
            if not ready:
                break
            for fd, _ in ready:
                worker = waiting[fd]
                worker.answered.append(self._read(worker))
                if not worker.sent:
                    del waiting[fd]
        self._halfway = None

    def _begin(self, what: str) -> None:
        if self._halfway is not None:
            raise WorkerFailed(
                f"The hashing workers cannot go on: an earlier error stopped the parent while "
                f"{self._halfway}, and a reply could be taken for another unit."
            )
        self._halfway = what

    def _read(self, worker: _Worker) -> bytes:
        try:
            data = worker.read_reply()
        except EOFError as exc:
            raise self._failed(worker, "died mid-reply") from exc
        if data is None:
            raise self._failed(worker, "died")
        return data

    def receive(self, index: int) -> Any:
        """The reply to the oldest unit sent to worker `index` and not yet taken.

        Raises:
            WorkerFailed: the worker died, or raised outside any file's error.
        """
        self._begin("taking a reply")
        worker = self._workers[index]
        data = worker.answered.popleft() if worker.answered else self._read(worker)
        self._halfway = None
        ok, value = pickle.loads(data)
        if not ok:
            raise WorkerFailed(f"A hashing worker failed: {value}")
        return value

    def _failed(self, worker: _Worker, what: str) -> WorkerFailed:
        import time

        status = ""
        with contextlib.suppress(ChildProcessError, OSError):
            # A worker whose pipe closed is exiting: give it a moment to be
            # reaped, so that the error can say how it ended.
            deadline = time.monotonic() + 1.0
            while not (found := os.waitpid(worker.pid, os.WNOHANG))[0]:
                if time.monotonic() >= deadline:
                    break
                time.sleep(0.01)
            pid, code = found
            if pid:
                worker.pid = 0
                if os.WIFSIGNALED(code):
                    status = f" (killed by {signal.Signals(os.WTERMSIG(code)).name})"
                else:
                    status = f" (exit status {os.WEXITSTATUS(code)})"
        return WorkerFailed(f"A hashing worker {what}{status}; the run cannot continue.")

    def close(self, timeout: float = 2.0) -> None:
        """End every worker: close its pipes, wait briefly, then stop it.

        A worker still hashing (an interrupted run) is stopped with SIGKILL
        after `timeout`: it only ever reads evidence, so nothing is lost.
        """
        import time

        workers, self._workers = self._workers, []
        for worker in workers:
            for fd in (worker.tasks, worker.replies):
                with contextlib.suppress(OSError):
                    os.close(fd)
        deadline = time.monotonic() + timeout
        for worker in workers:
            while worker.pid:
                try:
                    pid, _ = os.waitpid(worker.pid, os.WNOHANG)
                except ChildProcessError:
                    break
                if pid:
                    break
                if time.monotonic() >= deadline:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(worker.pid, signal.SIGKILL)
                    with contextlib.suppress(ChildProcessError):
                        os.waitpid(worker.pid, 0)
                    break
                time.sleep(0.005)
