"""The one-pass digest engine: known answers, chunk boundaries, change detection, pools."""

from __future__ import annotations

import hashlib
import os
import random
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import peer_tool
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st

from matcher.evidence.folder import open_readonly
from matcher.hashing import Hasher
from matcher.hashing import PoolEngine
from matcher.hashing import SerialEngine
from matcher.hashing import batches
from matcher.models import Failure
from matcher.models import FileTask

ALGOS = ("md5", "sha1", "sha256", "sha512")


def task_for(path: Path) -> FileTask:
    st_ = os.lstat(path)
    return FileTask(os.fsencode(path), st_.st_size, st_.st_mtime_ns, st_.st_dev, st_.st_ino)


def expected(data: bytes) -> dict[str, bytes]:
    return {a: hashlib.new(a, data).digest() for a in ALGOS}


def test_known_answers_fips_rfc(tmp_path: Path) -> None:
    cases = {
        b"": (
            "d41d8cd98f00b204e9800998ecf8427e",
            "da39a3ee5e6b4b0d3255bfef95601890afd80709",
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        ),
        b"abc": (
            "900150983cd24fb0d6963f7d28e17f72",
            "a9993e364706816aba3e25717850c26c9cd0d89d",
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
        ),
    }
    hasher = Hasher(("md5", "sha1", "sha256"), open_readonly)
    for data, (md5, sha1, sha256) in cases.items():
        path = tmp_path / "f"
        path.write_bytes(data)
        out = hasher.run(task_for(path))
        assert out.digests is not None
        assert (
            out.digests["md5"].hex(),
            out.digests["sha1"].hex(),
            out.digests["sha256"].hex(),
        ) == (md5, sha1, sha256)
        path.unlink()


@pytest.mark.parametrize("chunk", [1, 7, 4096, 1 << 16])
def test_chunk_boundaries(tmp_path: Path, chunk: int) -> None:
    hasher = Hasher(ALGOS, open_readonly, chunk_size=chunk)
    for size in sorted({0, 1, chunk - 1, chunk, chunk + 1, 3 * chunk + 5}):
        data = os.urandom(max(size, 0))
        path = tmp_path / f"f{size}"
        path.write_bytes(data)
        out = hasher.run(task_for(path))
        assert out.digests == expected(data), size


@settings(max_examples=60, deadline=None)
@given(data=st.binary(max_size=5000), chunk=st.integers(min_value=1, max_value=2048))
def test_property_chunking_never_changes_a_digest(
    data: bytes, chunk: int, tmp_path_factory: pytest.TempPathFactory
) -> None:
    path = tmp_path_factory.mktemp("p") / "f"
    path.write_bytes(data)
    out = Hasher(ALGOS, open_readonly, chunk_size=chunk).run(task_for(path))
    assert out.digests == expected(data)


def test_vanished_file_is_a_failure(tmp_path: Path) -> None:
    path = tmp_path / "gone"
    path.write_bytes(b"x")
    task = task_for(path)
    path.unlink()
    out = Hasher(ALGOS, open_readonly).run(task)
    assert out.failure is Failure.VANISHED and out.digests is None


def test_file_changed_after_listing_is_a_failure(tmp_path: Path) -> None:
    path = tmp_path / "grows"
    path.write_bytes(b"x" * 100)
    task = task_for(path)
    with path.open("ab") as f:
        f.write(b"more")
    out = Hasher(ALGOS, open_readonly).run(task)
    assert out.failure is Failure.CHANGED


def test_a_file_replaced_before_its_read_is_not_said_to_have_moved_while_read(
    tmp_path: Path,
) -> None:
    """Before: a file rewritten (or replaced by one taking its inode number) between the
    walk and the open was read whole, then called "size, mtime or ctime moved while read
    (listed 100 bytes, read 100)": the examiner suspected the read, not the file."""
    path = tmp_path / "replaced"
    path.write_bytes(b"x" * 100)
    task = task_for(path)
    path.write_bytes(b"y" * 100)  # same inode, same size, another mtime
    os.utime(path, ns=(task.mtime_ns + 10**9, task.mtime_ns + 10**9))
    hasher = Hasher(ALGOS, open_readonly)
    reads: list[int] = []
    real_digest_fd = hasher.digest_fd

    def counted(fd: int, expected_size: int) -> tuple[list[bytes], int]:
        reads.append(fd)
        return real_digest_fd(fd, expected_size)

    hasher.digest_fd = counted  # type: ignore[method-assign]
    out = hasher.run(task)
    assert out.failure is Failure.CHANGED and out.digests is None
    assert out.detail == (
        "changed after it was listed, before it was read (listed 100 bytes, found 100, "
        "its mtime moved)"
    )
    assert reads == []  # not read at all


class _Later:
    """Stands in for hashing's `time`: the clock a minute on, every file long settled."""

    @staticmethod
    def time_ns() -> int:
        import time

        return time.time_ns() + 60 * 10**9


def test_content_rewritten_mid_read_with_its_mtime_restored_is_a_failure(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Same size, same mtime (set back with utime), other bytes: only the ctime tells."""
    import matcher.hashing as hashing_mod

    monkeypatch.setattr(hashing_mod, "time", _Later)  # read once: the ctime alone tells
    path = tmp_path / "rewritten"
    path.write_bytes(b"a" * 5000)
    task = task_for(path)
    hasher = Hasher(ALGOS, open_readonly, chunk_size=1024)  # the chunk loop: a read "in the middle"
    real_digest_fd = hasher.digest_fd

    def rewrite_during_read(fd: int, expected_size: int) -> tuple[list[bytes], int]:
        result = real_digest_fd(fd, expected_size)
        with path.open("r+b") as f:
            f.write(b"b" * 5000)
        os.utime(path, ns=(task.mtime_ns, task.mtime_ns))
        return result

    hasher.digest_fd = rewrite_during_read  # type: ignore[method-assign]
    out = hasher.run(task)
    assert out.failure is Failure.CHANGED and out.digests is None
    assert out.detail is not None and "ctime" in out.detail


def test_a_file_written_just_before_its_read_is_read_twice_and_must_agree(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """write(2) stamps the times before it copies its data: a read overlapping that copy saw
    one ctime before and after, and gave the digest of bytes half old, half new (a validator
    saw ~1,000 of 2,600 reads of a file rewritten in place so). A file whose ctime is that
    recent is read twice; reads that differ are `changed`, never a digest."""
    import matcher.hashing as hashing_mod

    path = tmp_path / "being-written"
    path.write_bytes(b"A" * 70_000)
    task = task_for(path)
    hasher = Hasher(ALGOS, open_readonly)
    real_digest_fd, reads = hasher.digest_fd, []

    def torn_first(fd: int, expected_size: int) -> tuple[list[bytes], int]:
        reads.append(1)
        digests, total = real_digest_fd(fd, expected_size)
        if len(reads) == 1:  # the first read met the write halfway: its bytes never existed
            digests = [hashlib.new(a, b"B" * 35_000 + b"A" * 35_000).digest() for a in ALGOS]
        return digests, total

    hasher.digest_fd = torn_first  # type: ignore[method-assign]
    out = hasher.run(task)
    assert len(reads) == 2 and out.failure is Failure.CHANGED and out.digests is None
    assert out.detail is not None and "two reads of it differ" in out.detail
    # Reads that agree give the digest; a file settled long ago is read once.
    reads.clear()
    hasher.digest_fd = real_digest_fd  # type: ignore[method-assign]
    out = hasher.run(task)
    assert out.digests == {a: hashlib.new(a, b"A" * 70_000).digest() for a in ALGOS}
    monkeypatch.setattr(hashing_mod, "time", _Later)
    hasher.digest_fd = torn_first  # type: ignore[method-assign]
    out = hasher.run(task)
    assert len(reads) == 1 and out.failure is None


def test_file_replaced_by_symlink_is_not_followed(tmp_path: Path) -> None:
    path = tmp_path / "victim"
    path.write_bytes(b"x")
    task = task_for(path)
    path.unlink()
    (tmp_path / "outside").write_bytes(b"secret")
    path.symlink_to(tmp_path / "outside")
    out = Hasher(ALGOS, open_readonly).run(task)
    assert out.failure is Failure.CHANGED and out.digests is None


def test_io_error_mid_file_is_reported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "bad"
    path.write_bytes(b"y" * (3 << 20))
    calls = {"n": 0}
    real = os.readv

    def failing(fd: int, buffers: list[memoryview]) -> int:
        calls["n"] += 1
        if calls["n"] == 2:
            raise OSError(5, "Input/output error")
        return real(fd, buffers)

    monkeypatch.setattr(os, "readv", failing)
    out = Hasher(ALGOS, open_readonly).run(task_for(path))
    assert out.failure is Failure.IO_ERROR and out.errno == 5


@pytest.mark.parametrize("kind", ["thread", "process"])
def test_pools_give_identical_ordered_results(tmp_path: Path, kind: str) -> None:
    tasks = []
    for i in range(300):
        path = tmp_path / f"{i:04d}"
        path.write_bytes(os.urandom(i * 37 % 20000))
        tasks.append(task_for(path))
    serial = list(SerialEngine(ALGOS, open_readonly).map(iter(tasks)))
    engine = PoolEngine(ALGOS, open_readonly, jobs=2, kind=kind)
    try:
        pooled = list(engine.map(iter(tasks)))
    finally:
        engine.close()
    assert pooled == serial
    assert [o.path for o in pooled] == [t.path for t in tasks]


def test_batches_keep_order_and_send_large_files_alone() -> None:
    sizes = [10, 20, 5000, 30, 40, 50, 6000, 7000, 1, 2, 3, 4, 5]
    tasks = [FileTask(b"%d" % i, s, 0, 0, i) for i, s in enumerate(sizes)]
    units = list(batches(iter(tasks), batch_bytes=100, batch_files=3, large_file=5000))
    assert [t for u in units for t in u] == tasks
    for unit in units:
        if any(t.size >= 5000 for t in unit):
            assert len(unit) == 1
        else:
            assert len(unit) <= 3 and sum(t.size for t in unit[:-1]) < 100
    assert [len(u) for u in units] == [2, 1, 3, 1, 1, 3, 2]


def _mixed_tree(root: Path) -> list[FileTask]:
    """Files on both sides of every size boundary the engine has (chunk, batch, large)."""
    rng = random.Random(7)
    sizes = [0, 1, 4095, 4096, 4097, 65535, 65536, 65537, 300_000] + [
        rng.randrange(0, 9000) for _ in range(150)
    ]
    rng.shuffle(sizes)
    tasks = []
    for i, size in enumerate(sizes):
        folder = root / f"d{i % 7}"
        folder.mkdir(exist_ok=True)
        path = folder / f"{i:04d}"
        path.write_bytes(rng.randbytes(size))
        tasks.append(task_for(path))
    return tasks


@pytest.mark.parametrize("kind", ["thread", "process"])
@pytest.mark.parametrize("jobs", [1, 2, 3, 5])
def test_results_identical_whatever_jobs_and_engine(tmp_path: Path, kind: str, jobs: int) -> None:
    tasks = _mixed_tree(tmp_path)
    serial = list(SerialEngine(ALGOS, open_readonly, chunk_size=4096).map(iter(tasks)))
    engine = PoolEngine(
        ALGOS, open_readonly, jobs=jobs, kind=kind, chunk_size=4096,
        batch_bytes=20_000, batch_files=5, large_file=65536, in_flight=2, in_flight_bytes=100_000,
    )  # fmt: skip
    try:
        pooled = list(engine.map(iter(tasks)))
    finally:
        engine.close()
    assert pooled == serial
    assert [o.path for o in pooled] == [t.path for t in tasks]
    for task, outcome in zip(tasks, pooled, strict=True):
        assert outcome.digests == expected(Path(os.fsdecode(task.path)).read_bytes())


@pytest.mark.parametrize("kind", ["thread", "process"])
def test_work_in_flight_is_bounded(tmp_path: Path, kind: str) -> None:
    # Many tasks naming one small file: the engine must never pull far ahead
    # of what it has yielded, however long the stream is.
    path = tmp_path / "f"
    path.write_bytes(b"abc")
    one = task_for(path)
    pulled = {"n": 0}

    def stream() -> Iterator[FileTask]:
        for _ in range(5000):
            pulled["n"] += 1
            yield one

    engine = PoolEngine(ALGOS, open_readonly, jobs=2, kind=kind, batch_files=10, in_flight=3)
    yielded = 0
    ahead = 0
    try:
        for outcome in engine.map(stream()):
            assert outcome.digests == expected(b"abc")
            yielded += 1
            ahead = max(ahead, pulled["n"] - yielded)
    finally:
        engine.close()
    assert yielded == 5000
    assert engine.peak_in_flight <= engine.window == 6
    # At most `window` units of 10 tasks, plus the unit being formed.
    assert ahead <= (engine.window + 1) * 10


def test_byte_budget_bounds_work_in_flight(tmp_path: Path) -> None:
    path = tmp_path / "big"
    path.write_bytes(os.urandom(50_000))
    big = task_for(path)
    engine = PoolEngine(
        ALGOS, open_readonly, jobs=2, kind="thread", large_file=10_000, in_flight=100,
        in_flight_bytes=60_000,
    )  # fmt: skip
    try:
        outcomes = list(engine.map(iter([big] * 40)))
    finally:
        engine.close()
    assert len(outcomes) == 40 and all(o.digests == outcomes[0].digests for o in outcomes)
    # 120,000 budget bytes over 50,000-byte units: never more than 3 at once.
    assert engine.peak_in_flight <= 3


@pytest.mark.parametrize("chunk", [4096, 1 << 20])
@pytest.mark.parametrize("jobs", [1, 2, 3])
def test_engine_agrees_with_hashdeep(tmp_path: Path, jobs: int, chunk: int) -> None:
    hashdeep = peer_tool("hashdeep")
    tasks = _mixed_tree(tmp_path)
    out = subprocess.run(
        [hashdeep, "-r", "-l", "-c", "md5,sha1,sha256", "."],
        cwd=tmp_path, capture_output=True, check=True, text=True,
    ).stdout  # fmt: skip
    theirs = {}
    for line in out.splitlines():
        if line and line[0] not in "%#":
            size, md5, sha1, sha256, name = line.split(",", 4)
            theirs[os.path.normpath(name)] = (int(size), md5, sha1, sha256)
    triple = ("md5", "sha1", "sha256")
    engine: SerialEngine | PoolEngine
    if jobs == 1:
        engine = SerialEngine(triple, open_readonly, chunk_size=chunk)
    else:
        engine = PoolEngine(triple, open_readonly, jobs, chunk_size=chunk, large_file=65536)
    try:
        ours = {
            os.path.relpath(os.fsdecode(o.path), tmp_path): (
                o.size,
                *(o.digests[a].hex() for a in ("md5", "sha1", "sha256")),
            )
            for o in engine.map(iter(tasks))
            if o.digests is not None
        }
    finally:
        engine.close()
    assert len(ours) == len(tasks)
    assert ours == theirs


@pytest.mark.parametrize("engine_kind", ["serial", "thread", "process"])
def test_units_give_the_tasks_in_order_with_digests_or_outcomes(
    tmp_path: Path, engine_kind: str
) -> None:
    """map_units: the units concatenated are the tasks; each result turns into map()'s outcome."""
    tasks = _mixed_tree(tmp_path)
    gone = tmp_path / "gone"
    gone.write_bytes(b"soon gone")
    tasks.insert(40, task_for(gone))
    gone.unlink()
    engine: SerialEngine | PoolEngine
    if engine_kind == "serial":
        engine = SerialEngine(ALGOS, open_readonly, chunk_size=4096)
    else:
        engine = PoolEngine(
            ALGOS, open_readonly, jobs=2, kind=engine_kind, chunk_size=4096,
            batch_bytes=20_000, batch_files=5, large_file=65536,
        )  # fmt: skip
    try:
        units = list(engine.map_units(iter(tasks)))
    finally:
        engine.close()
    assert engine.algorithms == ALGOS
    assert [t for unit_tasks, _ in units for t in unit_tasks] == tasks
    for unit_tasks, results in units:
        assert len(results) == len(unit_tasks)
        for task, result in zip(unit_tasks, results, strict=True):
            if task.path == os.fsencode(gone):
                assert result.failure is Failure.VANISHED  # type: ignore[union-attr]
                continue
            # A plain file read whole comes as its digests, in the engine's order.
            data = Path(os.fsdecode(task.path)).read_bytes()
            assert result == [hashlib.new(a, data).digest() for a in ALGOS]


def test_an_os_error_without_errno_keeps_its_own_message() -> None:
    """pytsk3 raises OSError with a message only (a truncated image): it read `E?: None`."""
    from matcher.errors import os_error_detail

    assert os_error_detail(OSError("Offset missing in partial image: 27264000")) == (
        "Offset missing in partial image: 27264000"
    )
    assert os_error_detail(OSError(5, "Input/output error")) == "EIO: Input/output error"


@pytest.mark.parametrize("kind", ["thread", "process"])
def test_a_file_larger_than_a_workers_byte_budget_leaves_the_other_workers_busy(tmp_path: Path, kind: str) -> None:
    """A file of jobs x in_flight_bytes or more (512 MiB on 2 cores) filled the bytes window
    alone: nothing more was sent until it was hashed, and two 2 GiB files took one core. A unit
    now weighs at most one worker's share, so each worker gets one."""
    path = tmp_path / "big"
    path.write_bytes(os.urandom(50_000))
    big = task_for(path)
    engine = PoolEngine(
        ALGOS, open_readonly, jobs=2, kind=kind, large_file=10_000, in_flight=100, in_flight_bytes=10_000,
    )  # fmt: skip
    try:
        outcomes = list(engine.map(iter([big] * 6)))
    finally:
        engine.close()
    assert [o.digests for o in outcomes] == [expected(path.read_bytes())] * 6
    assert engine.peak_in_flight == 2
