"""The forked worker pool: replies in order, no deadlock, failures named, prompt close."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from matcher.errors import MatcherError
from matcher.evidence.folder import open_readonly
from matcher.hashing import PoolEngine
from matcher.models import FileTask
from matcher.workers import ForkedWorkers
from matcher.workers import WorkerFailed


def _nothing() -> None:
    return None


def _echo(unit: object) -> object:
    return unit


def _boom(unit: object) -> object:
    raise ValueError("bad unit")


def _sleep_then_echo(unit: object) -> object:
    time.sleep(30)
    return unit


def _run_all(pool: ForkedWorkers, payloads: list[bytes], window: int = 0) -> list[object]:
    """Send every payload (picking as the engine does), reading replies in order.

    `window`: at most this many units sent and not yet taken (0: no bound).
    """
    import pickle

    out: list[object] = []
    pending: list[int] = []
    for payload in payloads:
        pool.collect()
        while (index := pool.pick(payload)) is None:
            out.append(pool.receive(pending.pop(0)))
        pool.send(index, payload, 1)
        pending.append(index)
        while window and len(pending) >= window:
            out.append(pool.receive(pending.pop(0)))
    for i in pending:
        out.append(pool.receive(i))
    return [pickle.loads(pickle.dumps(o)) for o in out]


def test_replies_come_back_in_order_even_when_units_exceed_the_pipe() -> None:
    import pickle

    # Units of 200 KB and more, with their replies just as large: the pipes
    # fill both ways, which would deadlock a naive writer.
    units = [bytes([i % 256]) * (200_000 + i * 1000) for i in range(40)]

    def deadlocked(signum: int, frame: object) -> None:
        raise AssertionError("deadlock: no progress in 60 s")

    old = signal.signal(signal.SIGALRM, deadlocked)
    signal.alarm(60)
    pool = ForkedWorkers(2, _nothing, (), _echo)
    try:
        replies = _run_all(pool, [pickle.dumps(u) for u in units])
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)
        pool.close()
    assert replies == units


_SLOW: list[bool] = []


def _first_is_slow(marker: str) -> None:
    """The first worker to start claims `marker` and is the slow one."""
    try:
        os.close(os.open(marker, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        _SLOW.append(True)
    except FileExistsError:
        _SLOW.append(False)


def _pid_after_a_while(unit: object) -> int:
    time.sleep(0.04 if _SLOW[0] else 0.002)
    return os.getpid()


def test_a_faster_worker_is_given_more_units(tmp_path: Path) -> None:
    """Replies are taken in order, so a worker that finished its units kept their weight
    until the slower worker's units before them were taken: both were given as many
    units, and the faster one waited (one worker shares its core with the scan's main
    process). Replies read ahead free its load at once: it is given more units."""
    import pickle

    pool = ForkedWorkers(2, _first_is_slow, (str(tmp_path / "slow"),), _pid_after_a_while)
    try:
        replies = _run_all(pool, [pickle.dumps(i) for i in range(120)], window=8)
    finally:
        pool.close()
    counts = sorted(replies.count(pid) for pid in set(replies))
    assert len(counts) == 2 and sum(counts) == 120
    # Twenty times faster, the fast worker takes about 85 (the window of 8 units
    # taken in order holds it back while the slow one's oldest is hashed); given as
    # many, each took 60.
    assert counts[1] >= 75, counts


def test_a_pool_left_halfway_by_an_interruption_refuses_to_pair_replies(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A signal landing after a reply is read but before it is accounted for lost that reply:
    the next receive would have given the following unit's reply for this one. The pool
    refuses any further exchange instead."""
    import pickle

    from matcher import workers

    pool = ForkedWorkers(1, _nothing, (), _echo)
    try:
        pool.send(0, pickle.dumps("first"), 1)
        pool.send(0, pickle.dumps("second"), 1)
        real = workers._Worker.read_reply

        def interrupted(self: workers._Worker) -> bytes | None:
            workers._receive(self.replies)  # read, then the signal lands
            raise KeyboardInterrupt

        monkeypatch.setattr(workers._Worker, "read_reply", interrupted)
        with pytest.raises(KeyboardInterrupt):
            pool.receive(0)
        monkeypatch.setattr(workers._Worker, "read_reply", real)
        with pytest.raises(WorkerFailed, match="cannot go on"):
            pool.receive(0)
        with pytest.raises(WorkerFailed, match="cannot go on"):
            pool.collect()
    finally:
        pool.close()


def test_a_worker_that_raises_fails_the_run_with_the_error_named() -> None:
    import pickle

    pool = ForkedWorkers(1, _nothing, (), _boom)
    try:
        index = pool.pick(pickle.dumps("x"))
        assert index is not None
        pool.send(index, pickle.dumps("x"), 1)
        with pytest.raises(WorkerFailed, match="ValueError: bad unit"):
            pool.receive(index)
    finally:
        pool.close()


def test_a_killed_worker_fails_the_run_instead_of_hanging() -> None:
    import pickle

    pool = ForkedWorkers(1, _nothing, (), _sleep_then_echo)
    try:
        pool.send(0, pickle.dumps("x"), 1)
        os.kill(pool._workers[0].pid, signal.SIGKILL)
        with pytest.raises(WorkerFailed, match="SIGKILL"):
            pool.receive(0)
    finally:
        pool.close()


def test_close_stops_busy_workers_promptly() -> None:
    import pickle

    pool = ForkedWorkers(2, _nothing, (), _sleep_then_echo)
    pids = [w.pid for w in pool._workers]
    pool.send(0, pickle.dumps("x"), 1)
    pool.send(1, pickle.dumps("y"), 1)
    started = time.monotonic()
    pool.close(timeout=0.5)
    assert time.monotonic() - started < 5
    for pid in pids:
        with pytest.raises(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)  # reaped: no zombie left behind


def test_engine_reports_a_dead_worker_as_a_matcher_error(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"abc")
    st = path.stat()
    task = FileTask(os.fsencode(path), st.st_size, st.st_mtime_ns, st.st_dev, st.st_ino)
    engine = PoolEngine(("md5",), open_readonly, jobs=2, kind="process", batch_files=1)
    try:
        assert engine.workers is not None
        for worker in engine.workers._workers:
            os.kill(worker.pid, signal.SIGKILL)
        with pytest.raises(MatcherError, match="hashing worker"):
            list(engine.map(iter([task] * 10)))
    finally:
        engine.close()


def _die(unit: object) -> object:
    os._exit(9)


def test_a_scan_whose_worker_dies_stops_with_its_log_closed_and_verifiable(
    tmp_path: Path, evidence_copy: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from click.testing import CliRunner
    from conftest import FIXTURES
    from conftest import read_log

    import matcher.hashing as hashing_mod
    import matcher.scan as scan_mod
    from matcher.cli import cli

    db = tmp_path / "store.db"
    imported = CliRunner().invoke(
        cli, ["import", str(FIXTURES / "hashlists" / "notable.csv"), "--db", str(db)]
    )
    assert imported.exit_code == 0, imported.output
    # The workers are forked from this process: they run the patched function.
    monkeypatch.setattr(hashing_mod, "_run_batch_in_worker", _die)
    log = tmp_path / "run.jsonl"
    options = scan_mod.ScanOptions(
        evidence=[evidence_copy], examiner="E", case="C", db=db, log=log, jobs=2
    )
    with pytest.raises(scan_mod.ScanAborted, match=r"hashing worker died \(exit status 9\)"):
        scan_mod.run_scan(options)
    verified = CliRunner().invoke(cli, ["verify", str(log)])
    assert verified.exit_code == 0, verified.output
    end = read_log(log)[-1]
    assert end["type"] == "end" and end["status"] == "interrupted"


_PIPE_SIZES = """
import collections, fcntl, sys
from matcher.workers import ForkedWorkers
pool = ForkedWorkers(int(sys.argv[1]), lambda: None, (), lambda unit: unit)
get = getattr(fcntl, "F_GETPIPE_SZ", 1032)
print(dict(collections.Counter(fcntl.fcntl(w.tasks, get) for w in pool._workers)))
print(dict(collections.Counter(fcntl.fcntl(w.replies, get) for w in pool._workers)))
pool.close()
"""


def _pipe_sizes(jobs: int, as_nobody: bool) -> tuple[dict[int, int], dict[int, int]]:
    """Task and reply pipe sizes (size: workers) of a pool of `jobs` workers."""
    import ast
    import subprocess
    import sys

    prefix = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"] if as_nobody else []
    root = str(Path(__file__).resolve().parents[1])
    done = subprocess.run([*prefix, sys.executable, "-c", _PIPE_SIZES, str(jobs)], cwd="/",
                          env={**os.environ, "PYTHONPATH": root}, capture_output=True,
                          text=True, check=True)  # fmt: skip
    tasks, replies = done.stdout.splitlines()
    return ast.literal_eval(tasks), ast.literal_eval(replies)


def test_reply_pipes_are_grown_so_a_fast_worker_can_run_ahead() -> None:
    with open("/proc/sys/fs/pipe-max-size") as f:
        allowed = min(int(f.read()), 1 << 20)
    assert _pipe_sizes(2, as_nobody=False) == ({allowed: 2}, {256 << 10: 2})


def test_reply_pipes_never_cost_a_task_pipe_its_size_under_the_user_pipe_limit() -> None:
    """An unprivileged user may hold 64 MiB of pipe buffers (pipe-user-pages-soft); past
    that, every new pipe gets 8 KiB. Task pipes come first: with many workers the
    reply pipes stay as they are rather than shrink a task pipe (or a later program's)."""
    if os.geteuid() != 0:
        if os.environ.get("CI"):
            pytest.fail("this case needs root (setpriv); CI runs the suite as root")
        pytest.skip("needs root (setpriv)")
    with open("/proc/sys/fs/pipe-max-size") as f:
        allowed = min(int(f.read()), 1 << 20)
    with open("/proc/sys/fs/pipe-user-pages-soft") as f:
        soft = int(f.read()) * os.sysconf("SC_PAGE_SIZE")
    assert _pipe_sizes(2, as_nobody=True) == ({allowed: 2}, {256 << 10: 2})
    many = soft // (allowed + (64 << 10)) - 4  # still fits with default reply pipes
    tasks, replies = _pipe_sizes(many, as_nobody=True)
    assert tasks == {allowed: many}
    assert set(replies) <= {64 << 10, 256 << 10}
    if replies != {64 << 10: many}:  # grown: then within half of what was left
        assert many * ((256 - 64) << 10) <= (soft - many * (allowed + (64 << 10))) // 2


def test_workers_that_cannot_start_for_want_of_open_files_are_said_so(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Before: `scan -j 12` under `ulimit -n 20` ended in a traceback and 'internal error ... a
    fault in matcher' (EMFILE from a pipe); it names the limit and what to do, and no worker
    started stays behind."""
    import errno

    from matcher.errors import OutOfResources

    real, made = os.pipe2, []

    def pipes(flags: int) -> tuple[int, int]:
        if len(made) >= 4:
            raise OSError(errno.EMFILE, "Too many open files")
        made.append(1)
        return real(flags)

    monkeypatch.setattr(os, "pipe2", pipes)
    with pytest.raises(OutOfResources, match=r"Cannot start 5 hashing workers: Too many open files\. Give fewer --jobs"):
        ForkedWorkers(5, _nothing, (), _echo)
    with pytest.raises(ChildProcessError):
        os.waitpid(-1, os.WNOHANG)  # the two workers started were reaped
