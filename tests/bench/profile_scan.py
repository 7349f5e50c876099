"""Where a scan's time goes: py-spy samples of the main process and of the workers.

Runs one real `matcher scan` under `py-spy record --subprocesses` and splits
the samples by process role: a stack that passes through the worker loop
(`matcher.workers._serve`) is a worker's, every other one the main process's.
It prints each role's share of the samples and the functions that hold the
most samples themselves (self time) and in their callees (inclusive time).
py-spy samples only running threads, so a share is a share of CPU, not of wall
time spent waiting.

    pip install py-spy
    python tests/bench/profile_scan.py EVIDENCE --db STORE [--candidates-only] [--top 20]

Use it on a corpus that bench_scan.py kept (`--keep --workdir DIR`): the
small files are in DIR/small and the store in DIR/store.db. Numbers from a
sampling profiler are estimates: compare shares, and run it twice.
"""

from __future__ import annotations

import argparse
import collections
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

WORKER_FRAME = "_serve (matcher/workers.py"
_LINE_NUMBER = re.compile(r":\d+\)$")


def parse_raw(lines: list[str]) -> dict[str, dict[str, collections.Counter[str]]]:
    """Self and inclusive sample counts per function, per role ('main', 'worker').

    Each line of py-spy's raw format is `frame;frame;...;frame count`, outermost
    first; the first frame names the process (and thread), the rest functions.
    """
    out: dict[str, dict[str, collections.Counter[str]]] = {
        role: {"self": collections.Counter(), "inclusive": collections.Counter()}
        for role in ("main", "worker")
    }
    for line in lines:
        line = line.rstrip("\n")
        if not line:
            continue
        stack, _, count = line.rpartition(" ")
        frames = [_LINE_NUMBER.sub(")", f) for f in stack.split(";")[1:]]
        if not frames or not count.isdigit():
            continue
        role = "worker" if any(f.startswith(WORKER_FRAME) for f in frames) else "main"
        out[role]["self"][frames[-1]] += int(count)
        for frame in set(frames):
            out[role]["inclusive"][frame] += int(count)
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("evidence", type=Path)
    p.add_argument("--db", type=Path, required=True, help="the hash store to scan against")
    p.add_argument("--candidates-only", action="store_true")
    p.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    p.add_argument("--rate", type=int, default=500, help="samples a second (default 500)")
    p.add_argument("--top", type=int, default=20)
    args = p.parse_args()
    spy = shutil.which("py-spy")
    if spy is None:
        print("py-spy is not installed: pip install py-spy", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "scan.raw"
        scan = [sys.executable, "-m", "matcher", "scan", str(args.evidence), "--db", str(args.db),
                "--examiner", "profile", "--case", "profile", "--log", str(Path(tmp) / "scan.log"),
                "--jobs", str(args.jobs), "--quiet"]  # fmt: skip
        if args.candidates_only:
            scan.append("--candidates-only")
        cmd = [spy, "record", "--subprocesses", "--rate", str(args.rate), "--format", "raw",
               "--output", str(raw), "--", *scan]  # fmt: skip
        start = time.perf_counter()
        done = subprocess.run(cmd, capture_output=True, check=False)
        wall = time.perf_counter() - start
        if done.returncode not in (0, 1) or not raw.exists():
            sys.stderr.write(done.stderr.decode(errors="replace"))
            return 2
        profile = parse_raw(raw.read_text(errors="replace").splitlines())
    total = sum(sum(p["self"].values()) for p in profile.values()) or 1
    mode = ", --candidates-only" if args.candidates_only else ""
    print(f"scan of {args.evidence} under py-spy: {wall:.2f} s wall, {total:,} samples "
          f"at {args.rate}/s (--jobs {args.jobs}{mode})")  # fmt: skip
    for role, counts in profile.items():
        samples = sum(counts["self"].values())
        if not samples:
            continue
        print(f"\n== {role}: {samples:,} samples, {100 * samples / total:.0f}% of all")
        for kind in ("self", "inclusive"):
            print(f"   -- {kind} (share of this role's samples)")
            shown = 0
            for frame, n in counts[kind].most_common():
                # Note: inclusive lists leave out frames outside matcher and the
                # frames every sample passes through (the CLI and start-up chain).
                if kind == "inclusive" and ("matcher/" not in frame or n >= 0.95 * samples):
                    continue
                print(f"   {100 * n / samples:5.1f}%  {frame}")
                shown += 1
                if shown == args.top:
                    break
    return 0


if __name__ == "__main__":
    sys.exit(main())
