"""The one-pass digest engine: known answers, chunk boundaries, change detection, pools."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st

from matcher.evidence.folder import open_readonly
from matcher.hashing import Hasher
from matcher.hashing import PoolEngine
from matcher.hashing import SerialEngine
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
        b"": ("d41d8cd98f00b204e9800998ecf8427e", "da39a3ee5e6b4b0d3255bfef95601890afd80709",
              "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"),
        b"abc": ("900150983cd24fb0d6963f7d28e17f72", "a9993e364706816aba3e25717850c26c9cd0d89d",
                 "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"),
    }
    hasher = Hasher(("md5", "sha1", "sha256"), open_readonly)
    for data, (md5, sha1, sha256) in cases.items():
        path = tmp_path / "f"
        path.write_bytes(data)
        out = hasher.run(task_for(path))
        assert out.digests is not None
        assert (out.digests["md5"].hex(), out.digests["sha1"].hex(), out.digests["sha256"].hex()) == (md5, sha1, sha256)
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
def test_property_chunking_never_changes_a_digest(data: bytes, chunk: int, tmp_path_factory: pytest.TempPathFactory) -> None:
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
