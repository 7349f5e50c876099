"""Why did 2 threads not beat 1 on large files? Measure, don't guess.

Runs the same triple hash (MD5 + SHA-1 + SHA-256, matcher's own `Hasher`)
over the same large files as: 1 thread, 2 threads, 2 forked processes, and
the C yardstick with 1 and 2 threads, interleaved over several rounds. Each
worker reports, for its own thread only: CPU seconds (RUSAGE_THREAD),
voluntary and involuntary context switches, and /proc/thread-self/schedstat
(time on a CPU, time runnable but waiting for one). The host-wide /proc/stat
steal column is read around each run.

What each cause would look like:
- GIL contention: thread CPU-s about half of wall per thread, many voluntary
  switches (a thread waiting for the GIL sleeps), no run-queue wait.
- Too few CPUs (another load: the `others` column, CPU-s the rest of the
  machine used during the run; or the hypervisor giving less than 2 cores):
  run-queue wait, or, when the steal is invisible, the same work taking more
  CPU-s per byte (a "slower" CPU); the GIL-free C yardstick loses just as much.

Usage: python tests/bench/scaling.py DIR [--rounds 5] [--files 6] [--yardstick PATH]
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import multiprocessing
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from matcher.evidence.folder import open_readonly  # noqa: E402
from matcher.hashing import Hasher  # noqa: E402
from matcher.models import FileTask  # noqa: E402

ALGOS = ("md5", "sha1", "sha256")


def _schedstat() -> tuple[int, int, int]:
    with open("/proc/thread-self/schedstat") as f:
        run, wait, slices = (int(x) for x in f.read().split())
    return run, wait, slices


def _steal_ticks() -> int:
    with open("/proc/stat") as f:
        return int(f.readline().split()[8])


def hash_files(paths: list[bytes]) -> dict[str, float]:
    """Hash `paths` in this thread; report this thread's own costs."""
    hasher = Hasher(ALGOS, open_readonly)
    ru0, ss0, t0 = resource.getrusage(resource.RUSAGE_THREAD), _schedstat(), time.perf_counter()
    total = 0
    for path in paths:
        st = os.stat(path)
        out = hasher.run(FileTask(path, st.st_size, st.st_mtime_ns, st.st_dev, st.st_ino))
        assert out.digests is not None
        total += st.st_size
    ru1, ss1, t1 = resource.getrusage(resource.RUSAGE_THREAD), _schedstat(), time.perf_counter()
    return {
        "bytes": total,
        "wall": t1 - t0,
        "cpu": (ru1.ru_utime + ru1.ru_stime) - (ru0.ru_utime + ru0.ru_stime),
        "vcsw": ru1.ru_nvcsw - ru0.ru_nvcsw,
        "ivcsw": ru1.ru_nivcsw - ru0.ru_nivcsw,
        "on_cpu": (ss1[0] - ss0[0]) / 1e9,
        "runq_wait": (ss1[1] - ss0[1]) / 1e9,
    }


def _busy_seconds() -> float:
    with open("/proc/stat") as f:
        ticks = [int(x) for x in f.readline().split()[1:]]
    return (sum(ticks[:8]) - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK")


def run_mode(
    mode: str, paths: list[bytes], yardstick: str | None, folder: Path
) -> dict[str, float]:
    busy0, steal0, t0 = _busy_seconds(), _steal_ticks(), time.perf_counter()
    workers: list[dict[str, float]] = []
    if mode.startswith("C "):
        # The C yardstick over a folder holding only these files.
        threads = mode.split()[1].rstrip("t")
        r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        subprocess.run(
            [str(yardstick), "-j", threads, str(folder)], check=True, capture_output=True
        )
        r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = (r1.ru_utime + r1.ru_stime) - (r0.ru_utime + r0.ru_stime)
        workers = [
            {
                "cpu": cpu,
                "vcsw": r1.ru_nvcsw - r0.ru_nvcsw,
                "ivcsw": r1.ru_nivcsw - r0.ru_nivcsw,
                "on_cpu": cpu,
                "runq_wait": float("nan"),
            }
        ]
    else:
        n = 1 if mode == "1 thread" else 2
        shards = [paths[i::n] for i in range(n)]
        if mode == "1 thread":
            workers = [hash_files(paths)]
        elif mode == "2 threads":
            with cf.ThreadPoolExecutor(2) as ex:
                workers = list(ex.map(hash_files, shards))
        else:
            ctx = multiprocessing.get_context("fork")
            with cf.ProcessPoolExecutor(2, mp_context=ctx) as ex:
                ex.submit(len, []).result()  # start both workers before the clock
                busy0, steal0, t0 = _busy_seconds(), _steal_ticks(), time.perf_counter()
                workers = list(ex.map(hash_files, shards))
    wall = time.perf_counter() - t0
    busy = _busy_seconds() - busy0
    steal = (_steal_ticks() - steal0) / os.sysconf("SC_CLK_TCK")
    size = sum(os.stat(p).st_size for p in paths)
    cpu = sum(w["cpu"] for w in workers)
    return {
        "wall": wall,
        "mbps": size / wall / 1e6,
        "cpu": cpu,
        "mb_per_cpu_s": size / cpu / 1e6,
        "vcsw": sum(w["vcsw"] for w in workers),
        "ivcsw": sum(w["ivcsw"] for w in workers),
        "runq_wait": sum(w["runq_wait"] for w in workers),
        "steal": steal,
        "others": max(0.0, busy - cpu),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path, help="a folder of large files (page-cache warm)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--yardstick", help="compiled tests/bench/yardstick.c")
    args = parser.parse_args()
    paths = sorted(os.fsencode(p) for p in args.folder.iterdir() if p.is_file())
    modes = ["1 thread", "2 threads", "2 processes"]
    if args.yardstick:
        modes += ["C 1t", "C 2t"]
    for p in paths:  # warm the page cache
        with open(p, "rb") as f:
            while f.read(1 << 24):
                pass
    results: dict[str, list[dict[str, float]]] = {m: [] for m in modes}
    for r in range(args.rounds):
        order = modes if r % 2 == 0 else modes[::-1]
        for mode in order:
            results[mode].append(run_mode(mode, paths, args.yardstick, args.folder))
    cols = ["mbps", "wall", "cpu", "mb_per_cpu_s", "vcsw", "ivcsw", "runq_wait", "steal", "others"]
    print(f"{len(paths)} files, {args.rounds} rounds (alternating order), medians:")
    print(f"{'mode':<12}" + "".join(f"{c:>13}" for c in cols))
    for mode in modes:
        row = [statistics.median(x[c] for x in results[mode]) for c in cols]
        print(f"{mode:<12}" + "".join(f"{v:>13.2f}" for v in row))
    print("per-round MB/s:")
    for mode in modes:
        print(f"{mode:<12}" + " ".join(f"{x['mbps']:7.0f}" for x in results[mode]))


if __name__ == "__main__":
    main()
