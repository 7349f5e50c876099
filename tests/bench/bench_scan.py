"""Speed benchmark for issue 4: matcher against hashdeep, cat and a C limit.

Not a test: run it by hand, on a calm machine, and read the medians.

    python tests/bench/bench_scan.py            # the issue's sizes (about 30 min)
    python tests/bench/bench_scan.py --quick    # small sizes, a smoke run (about 1 min)
    python tests/bench/bench_scan.py --rounds 3 --skip walk,lookup   # corpora only

It generates, in a temporary folder (removed at the end unless --keep):
- a large corpus (12 x 128 MiB) and a small one (40,000 files, log-uniform
  1 B..256 KiB, mean about 21 KB), seeded random bytes, read once so that
  every run finds them in the page cache;
- one hashdeep-format list: 1M random decoys (sized far above any corpus
  file) and the true MD5/SHA-1/SHA-256 and size of 500 corpus files (4 large,
  496 small files whose size no other file has, so 1.24% of the small files
  are size candidates), imported
  into a matcher store as a notable list, and given to hashdeep's matching
  mode (`-m -k`);
- a mixed corpus for `--candidates-only` (5,000 files, log-uniform 1 B..8 MiB,
  mean about 0.5 MB, 2.5 GB: closer to a phone's pictures and videos than the
  small corpus), 1% of whose files (50, of sizes no other file has) are also
  in the list: the size prefilter's gain depends on how much of a full scan
  is hashing, so it is measured on both (skip it with --skip mixed);
- the C yardstick (tests/bench/yardstick.c, gcc -O2 -pthread -lcrypto).

Then, per corpus and round, every contender runs once in a rotating order
(interleaved, so a slow spell of the host hits all of them alike):
  cat            find | xargs cat > /dev/null (the plain read limit)
  C 2 threads    the yardstick: one pass, MD5+SHA-1+SHA-256, OpenSSL EVP
  hashdeep -m    hashdeep -r -c md5,sha1,sha256 -m -k LIST (matching mode:
                 loads the 1M-entry list each run, as matcher builds its filter)
  hashdeep       the same without a list (plain hashing)
  matcher scan   the CLI, default engine and --jobs, a fresh log each run
  matcher scan, thread        the same scan job with the thread engine
  matcher --candidates-only   (small and mixed corpora; hashdeep -m is left
                 out on the mixed corpus, at some 50 MB/s it would take minutes)
  engine only, process/thread/serial   the walk and the engine alone (no
                 store, no log): the engine against the C yardstick
It prints medians of wall time, MB/s, files/s, CPU seconds (user+sys of the
child and its children), the CPU-s the rest of the machine used meanwhile
(a busy host shows there), peak RSS, ratios, and matcher's scan phase (its
duration_s, which starts after the store is opened and the filter built).
Then: peak RSS of `matcher scan` over trees of 100,000 and 1,000,000 real
tiny files (flat memory; the largest also as one folder, and its scan also
interrupted halfway and resumed), and the lookup rate through DigestFilter + store
with a filter of 10M digests per algorithm (the SQLite side holds the bench
store's 1M entries: settling false positives and the 1,000 real hits).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from dataclasses import field
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(REPO))

import corpus  # noqa: E402

PY = sys.executable
MATCHER = [PY, "-m", "matcher"]


@dataclass
class Run:
    wall: float
    cpu: float  # user + sys of the child and every child it waited for
    others: float  # CPU-s the rest of the machine used meanwhile (/proc/stat)
    rss_mb: float
    scan_s: float = float("nan")  # matcher: its own scan phase (after store and filter setup)


@dataclass
class Contender:
    name: str
    argv: list[str]
    ok_codes: tuple[int, ...] = (0,)
    runs: list[Run] = field(default_factory=list)
    fresh_log: bool = False
    stdout_check: str | None = None


def _busy_seconds() -> float:
    with open("/proc/stat") as f:
        ticks = [int(x) for x in f.readline().split()[1:]]
    idle = ticks[3] + ticks[4]  # idle + iowait
    return (sum(ticks[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def run_measured(argv: list[str], ok_codes: tuple[int, ...]) -> tuple[Run, str]:
    """Run a child to its end: wall time, its CPU-s (wait4 via RUSAGE_CHILDREN), others' CPU-s."""
    before, busy0 = resource.getrusage(resource.RUSAGE_CHILDREN), _busy_seconds()
    t0 = time.perf_counter()
    proc = subprocess.run(argv, capture_output=True, cwd="/")
    wall = time.perf_counter() - t0
    after, busy1 = resource.getrusage(resource.RUSAGE_CHILDREN), _busy_seconds()
    if proc.returncode not in ok_codes:
        raise SystemExit(f"{argv[:6]} exited {proc.returncode}: {proc.stderr.decode()[-2000:]}")
    cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    others = max(0.0, busy1 - busy0 - cpu)
    return Run(wall, cpu, others, float("nan")), proc.stdout.decode(errors="replace")


def warm(folder: Path) -> None:
    subprocess.run(
        ["/bin/sh", "-c", f"find '{folder}' -type f -print0 | xargs -0 cat > /dev/null"],
        check=True,
    )


def peak_rss_of(argv: list[str], ok_codes: tuple[int, ...]) -> tuple[Run, str]:
    """`run_measured` under /usr/bin/time -f %M: the peak RSS of this child alone.

    (RUSAGE_CHILDREN's maxrss is the largest over every child so far.)
    """
    if not Path("/usr/bin/time").exists():
        return run_measured(argv, ok_codes)
    fd, name = tempfile.mkstemp(prefix="rss-")
    os.close(fd)
    try:
        run, out = run_measured(["/usr/bin/time", "-q", "-o", name, "-f", "%M", *argv], ok_codes)
        text = Path(name).read_text().strip().splitlines()
        run.rss_mb = int(text[-1]) / 1024 if text and text[-1].isdigit() else float("nan")
    finally:
        os.unlink(name)
    return run, out


def fmt(v: float, digits: int = 2) -> str:
    return "-" if v != v else f"{v:.{digits}f}"


def bench_corpus(
    label: str,
    folder: Path,
    files: int,
    size: int,
    contenders: list[Contender],
    rounds: int,
    work: Path,
    expect_notable: int,
) -> dict[str, dict[str, float]]:
    warm(folder)
    for r in range(rounds):
        shift = r % len(contenders)
        order = contenders[shift:] + contenders[:shift]
        if r % 2:
            order = order[::-1]
        for c in order:
            argv = list(c.argv)
            if c.fresh_log:
                log = work / f"log-{label}-{c.name.replace(' ', '_')}-{r}.jsonl"
                argv = [a.replace("{LOG}", str(log)) for a in argv]
            run, out = peak_rss_of(argv, c.ok_codes)
            if c.stdout_check == "matcher":
                summary = json.loads(out.strip().splitlines()[-1])
                run.scan_s = float(summary.get("seconds", float("nan")))
                got = int(summary.get("counts", summary)["notable"])
                if "candidates" not in c.name and got != expect_notable:
                    raise SystemExit(f"{c.name}: {got} notable, expected {expect_notable}")
            elif c.stdout_check == "hashdeep":
                got = len([line for line in out.splitlines() if line.strip()])
                if got != expect_notable:
                    raise SystemExit(f"{c.name}: {got} matched, expected {expect_notable}")
            if c.fresh_log:
                for p in work.glob(f"log-{label}-*"):
                    p.unlink()
            c.runs.append(run)
            print(f"  [{label} r{r + 1}] {c.name:<26} {run.wall:7.2f} s", file=sys.stderr)
    table: dict[str, dict[str, float]] = {}
    for c in contenders:
        wall = statistics.median(x.wall for x in c.runs)
        table[c.name] = {
            "wall": wall,
            "min": min(x.wall for x in c.runs),
            "max": max(x.wall for x in c.runs),
            "mbps": size / wall / 1e6,
            "files_s": files / wall,
            "cpu": statistics.median(x.cpu for x in c.runs),
            "others": statistics.median(x.others for x in c.runs),
            "rss": max(x.rss_mb for x in c.runs),
            "scan_mbps": size / statistics.median(x.scan_s for x in c.runs) / 1e6,
        }
    ref = {
        "hashdeep -m": table.get("hashdeep -m", {}).get("wall", float("nan")),
        "hashdeep": table.get("hashdeep", {}).get("wall", float("nan")),
        "C 2 threads": table["C 2 threads"]["wall"],
        "cat": table["cat"]["wall"],
    }
    print(
        f"\n## {label}: {files:,} files, {size / 1e6:,.0f} MB, {rounds} rounds interleaved, "
        "medians (ratios are speed ratios: >1 = faster than the reference)"
    )
    head = (
        f"| {'contender':<26} | wall s (min-max) | MB/s | files/s | CPU-s | others CPU-s "
        "| peak RSS MB | vs hashdeep -m | vs hashdeep | vs C | vs cat | scan phase MB/s |"
    )
    print(head)
    print("|" + "|".join("---" for _ in range(12)) + "|")
    for name, row in table.items():
        ratios = [ref[k] / row["wall"] for k in ("hashdeep -m", "hashdeep", "C 2 threads", "cat")]
        print(
            f"| {name:<26} | {row['wall']:.2f} ({row['min']:.2f}-{row['max']:.2f}) "
            f"| {row['mbps']:,.0f} | {row['files_s']:,.0f} | {row['cpu']:.2f} "
            f"| {row['others']:.2f} | {fmt(row['rss'], 0)} | "
            + " | ".join(fmt(x) for x in ratios)
            + f" | {fmt(row['scan_mbps'], 0)} |"
        )
    print(
        "(CPU-s: user+sys of the contender and its children; others CPU-s: what the rest of "
        "the machine used meanwhile; peak RSS: the largest single process; scan phase: "
        "matcher's own duration_s, after opening the store and building its filter)"
    )
    return table


def scan_argv(root: Path, store: Path, log: Path, jobs: int) -> list[str]:
    return [*MATCHER, "scan", str(root), "--examiner", "bench", "--case", "bench", "--db",
            str(store), "--log", str(log), "-q", "--json", "--jobs", str(jobs)]  # fmt: skip


def resumed_memory(
    argv: list[str], full_wall: float, n: int, log: Path
) -> tuple[str, float, float, int]:
    """Peak RSS of a `--resume` of a scan interrupted (SIGINT) halfway through.

    A resume holds the paths its earlier segment finished, to skip them.
    """
    # Note: a bench started in the background by a shell without job control
    # has SIGINT ignored, and its children inherit that: the scan ran to its
    # end. The scan is given SIGINT's default back.
    proc = subprocess.Popen(
        argv,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        cwd="/",
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    time.sleep(full_wall / 2)
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate()
    if proc.returncode != 8:
        raise SystemExit(f"the scan to interrupt exited {proc.returncode}, not 8 (interrupted)")
    summary = json.loads(out.decode().strip().splitlines()[-1])
    finished = int(summary.get("counts", summary)["entries"])
    run, _ = peak_rss_of([*argv, "--resume"], (0, 1))
    for p in log.parent.glob(f"{log.name}*"):
        p.unlink()
    return f"{n:,} files, resumed after {finished:,}", run.rss_mb, run.wall, n - finished


def walk_memory(work: Path, sizes: list[int], jobs: int) -> list[tuple[str, float, float, int]]:
    """Peak RSS of `matcher scan` over trees of tiny files of growing size.

    The trees have 1,000 files to a folder; the largest is also made as one
    folder of that many files (a folder is listed whole, to be sorted), and
    its scan is also interrupted halfway and resumed (see resumed_memory).
    """
    store = work / "tiny-store.db"
    lst = work / "tiny.hashdeep"
    corpus.write_hashdeep_list(lst, [], 1000, 9)
    subprocess.run(
        [*MATCHER, "import", str(lst), "--db", str(store), "--name", "tiny"],
        check=True,
        capture_output=True,
    )
    results = []
    made = 0
    tree = work / "tiny"
    flat = work / "tiny-flat"
    largest = max(sizes)
    for n, root in [(n, tree) for n in sorted(sizes)] + [(largest, flat)]:
        t0 = time.perf_counter()
        if root is flat:
            corpus.make_tiny_tree(flat, largest, per_folder=largest)
        else:
            corpus.make_tiny_tree(tree / f"part{made}", n - made)
            made = n
        label = f"{n:,} files" + (" in one folder" if root is flat else "")
        print(f"  made a tree of {label} in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
        log = work / f"tiny-{n}.jsonl"
        run, _ = peak_rss_of(scan_argv(root, store, log, jobs), (0, 1))
        results.append((label, run.rss_mb, run.wall, n))
        for p in work.glob(f"tiny-{n}.jsonl*"):
            p.unlink()
        if root is tree and n == largest:
            results.append(resumed_memory(scan_argv(root, store, log, jobs), run.wall, n, log))
    shutil.rmtree(tree)
    shutil.rmtree(flat)
    return results


def lookup_rate(store: Path, entries: int, probes: int) -> dict[str, float]:
    """Lookups per second through DigestFilter + store, nearly all misses.

    The filter holds `entries` random digests per algorithm plus every digest
    of the bench store; the exact lookups go to the bench store (SQLite). The
    probes are random file digest sets (misses) plus 1,000 stored ones (hits).

    Two paths are timed on the same batches, alternately:
    - the scan's: each unit's digest lists (as a worker gives them, in
      algorithm order) through `maybe_stored`, then the files it lets
      through, as digest dicts, through `match_batch` (exact lookups), as
      `scan._pump` does (take_unit, then settle);
    - rematch's: every file's digest dict through `match_batch`.
    """
    import itertools

    from matcher.match import DigestFilter
    from matcher.match import match_batch
    from matcher.store import HashStore

    rng = random.Random(11)
    lengths = {"md5": 16, "sha1": 20, "sha256": 32}
    algorithms = tuple(lengths)
    db = HashStore(store, readonly=True)
    t0 = time.perf_counter()
    filt = DigestFilter(
        {
            a: itertools.chain(db.iter_digests(a), (rng.randbytes(n) for _ in range(entries)))
            for a, n in lengths.items()
        },
        # Note: sized for everything it holds, the store's digests included,
        # or the false-positive rate (and the exact lookups) would grow.
        {a: entries + sum(i.counts.get(a, 0) for i in db.lists()) for a in lengths},
    )
    build = time.perf_counter() - t0
    stored = list(itertools.islice(db.iter_digests("sha256"), 1000))
    hit_at = {(i * 7919) % probes: digest for i, digest in enumerate(stored)}
    exact = {"queries": 0, "digests": 0}

    def lookup(algorithm: str, digests: object) -> object:
        exact["queries"] += 1
        exact["digests"] += len(digests)  # type: ignore[arg-type]
        return db.lookup(algorithm, digests)  # type: ignore[arg-type]

    def scan_path(lists: list[list[bytes]]) -> list[list[object]]:
        maybe = filt.maybe_stored(algorithms, lists)
        passed = [
            dict(zip(algorithms, d, strict=True)) for d, m in zip(lists, maybe, strict=True) if m
        ]
        return match_batch(passed, filt, lookup)  # type: ignore[arg-type,return-value]

    def rematch_path(lists: list[list[bytes]]) -> list[list[object]]:
        sets = [dict(zip(algorithms, d, strict=True)) for d in lists]
        return match_batch(sets, filt, lookup)  # type: ignore[arg-type,return-value]

    # Note: each batch's digests are made just before it is timed, as a
    # scan's arrive fresh from a worker; made all at once (3M digests, some
    # 400 MB) they left the cache, and the loop timed the memory, not the filter.
    batch = 1000
    took = {"scan": 0.0, "rematch": 0.0}
    matched = {"scan": 0, "rematch": 0}
    for i in range(0, probes, batch):
        size = min(batch, probes - i)
        lists = [[rng.randbytes(n) for n in lengths.values()] for _ in range(size)]
        for j in range(size):
            if i + j in hit_at:
                lists[j][2] = hit_at[i + j]
        order = [("scan", scan_path), ("rematch", rematch_path)]
        for name, path in order if i % (2 * batch) else order[::-1]:
            t0 = time.perf_counter()
            hits = path(lists)
            took[name] += time.perf_counter() - t0
            matched[name] += sum(1 for h in hits if h)
    db.close()
    return {
        "entries": entries,
        "probes": probes,
        "build_s": build,
        "rate": probes / took["scan"],
        "rematch_rate": probes / took["rematch"],
        "hits_expected": len(stored),
        "filter_mb": filt.memory_bytes / 1e6,
        "exact_queries": exact["queries"],
        "false_positive_digests": exact["digests"],
        "matched": matched["scan"],
        "rematch_matched": matched["rematch"],
    }


def compile_package() -> None:
    """Write matcher's bytecode, as `pip install .` does.

    An editable install under PYTHONDONTWRITEBYTECODE=1 (this machine sets
    it) would compile every module at every run: some 60 ms of start-up
    that no installed copy pays.
    """
    import compileall

    import matcher

    sys.dont_write_bytecode = False
    compileall.compile_dir(Path(matcher.__file__).parent, quiet=1)


def main() -> None:
    p = argparse.ArgumentParser(description="matcher speed benchmark (issue 4)")
    p.add_argument("--quick", action="store_true", help="small sizes: a smoke run")
    p.add_argument(
        "--rounds", type=int, default=None, help="rounds per corpus (default 5, quick 3)"
    )
    p.add_argument("--large-count", type=int)
    p.add_argument("--large-mib", type=int)
    p.add_argument("--small-count", type=int)
    p.add_argument("--small-max-kib", type=int, default=256)
    p.add_argument("--mixed-count", type=int)
    p.add_argument("--mixed-max-mib", type=int, default=8)
    p.add_argument("--decoys", type=int)
    p.add_argument(
        "--walk-files", type=str, help="comma-separated tree sizes (default 100000,1000000)"
    )
    p.add_argument(
        "--lookup-entries", type=int, help="filter size for the lookup rate (default 10M)"
    )
    p.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    p.add_argument(
        "--engines",
        default="process,thread,serial",
        help="engine kinds to time alone: walk + hash, no store ('' for none)",
    )
    p.add_argument(
        "--scan-engines",
        default="thread",
        help="engine kinds to time through the whole scan job, besides the CLI's default",
    )
    p.add_argument("--skip", default="", help="comma list of: large,small,mixed,walk,lookup")
    p.add_argument("--workdir", type=Path, help="where to generate (default: a temp folder)")
    p.add_argument("--keep", action="store_true", help="keep the generated files")
    a = p.parse_args()
    q = a.quick
    rounds = a.rounds or (3 if q else 5)
    large_count = a.large_count or (4 if q else 12)
    large_mib = a.large_mib or (32 if q else 128)
    small_count = a.small_count or (4000 if q else 40_000)
    mixed_count = a.mixed_count or (500 if q else 5_000)
    decoys = a.decoys if a.decoys is not None else (100_000 if q else 1_000_000)
    walk = [int(x) for x in (a.walk_files or ("10000,50000" if q else "100000,1000000")).split(",")]
    lookup_entries = a.lookup_entries or (1_000_000 if q else 10_000_000)
    skip = set(filter(None, a.skip.split(",")))

    compile_package()
    work = a.workdir or Path(tempfile.mkdtemp(prefix="matcher-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    print(f"# matcher speed benchmark, work folder {work}", file=sys.stderr)
    try:
        t0 = time.perf_counter()
        large = corpus.make_large(work / "large", large_count, large_mib << 20, seed=1)
        small = corpus.make_small(work / "small", small_count, a.small_max_kib << 10, seed=2)
        mixed: list[Path] = []
        if "mixed" not in skip:
            mixed = corpus.make_small(work / "mixed", mixed_count, a.mixed_max_mib << 20, seed=5)
        rng = random.Random(3)
        n_large = min(4, len(large))
        # Note: files under 8 bytes can be equal to others (the stamp is cut
        # short), so real entries come from larger ones and match exactly once.
        # Real small entries come from files whose size no other file has:
        # each then makes exactly one size candidate and one match.
        by_size: dict[int, list[Path]] = {}
        for path in small:
            by_size.setdefault(path.stat().st_size, []).append(path)
        unique = [ps[0] for ps in by_size.values() if len(ps) == 1]
        real = sorted(rng.sample(large, n_large)) + sorted(
            rng.sample(unique, min(496, len(unique)))
        )
        n_small = len(real) - n_large
        mixed_sizes: dict[int, list[Path]] = {}
        for path in mixed:
            mixed_sizes.setdefault(path.stat().st_size, []).append(path)
        mixed_unique = [ps[0] for ps in mixed_sizes.values() if len(ps) == 1]
        real += sorted(rng.sample(mixed_unique, min(len(mixed) // 100, len(mixed_unique))))
        n_mixed = len(real) - n_large - n_small
        lst = work / "list.hashdeep"
        corpus.write_hashdeep_list(lst, real, decoys, seed=4)
        print(f"  generated corpora and list in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
        store = work / "store.db"
        for leftover in (store, work / "store.db-journal"):
            leftover.unlink(missing_ok=True)  # a kept --workdir is generated anew
        t0 = time.perf_counter()
        subprocess.run(
            [
                *MATCHER,
                "import",
                str(lst),
                "--db",
                str(store),
                "--name",
                "bench",
                "--role",
                "notable",
            ],
            check=True,
            capture_output=True,
        )
        import_s = time.perf_counter() - t0
        ys = work / "yardstick"
        subprocess.run(
            ["gcc", "-O2", "-pthread", str(HERE / "yardstick.c"), "-o", str(ys), "-lcrypto"],
            check=True,
        )
        hashdeep = shutil.which("hashdeep")
        print(f"  imported {decoys + len(real):,} entries in {import_s:.0f} s", file=sys.stderr)
        # Note: the lookup filter and the notable sizes are built once per set of
        # lists and kept in the store; a scan that builds them (the first after
        # the import) is not the steady state the contenders are compared in.
        empty = work / "empty"
        empty.mkdir(exist_ok=True)
        for extra in ([], ["--candidates-only"]):
            warm_log = work / f"warm-up{len(extra)}.jsonl"
            for leftover in (warm_log, Path(f"{warm_log}.inventory.db")):
                leftover.unlink(missing_ok=True)
            subprocess.run([*MATCHER, "scan", str(empty), "--examiner", "bench", "--case", "bench",
                            "--db", str(store), "--log", str(warm_log), "-q", *extra],
                           check=True, capture_output=True)  # fmt: skip

        def contenders(
            folder: Path, with_candidates: bool, with_matching_hashdeep: bool = True
        ) -> list[Contender]:
            scan = ["scan", str(folder), "--examiner", "bench", "--case", "bench"]
            scan += ["--db", str(store), "--log", "{LOG}", "-q", "--json"]
            by_kind = [PY, str(HERE / "scan_engine.py")]
            cat = f"find '{folder}' -type f -print0 | xargs -0 cat > /dev/null"
            triple = [str(hashdeep), "-r", "-c", "md5,sha1,sha256"]
            cs = [
                Contender("cat", ["/bin/sh", "-c", cat]),
                Contender("C 2 threads", [str(ys), "-j", "2", str(folder)]),
            ]
            if hashdeep and with_matching_hashdeep:
                cs.append(
                    Contender(
                        "hashdeep -m",
                        [*triple, "-m", "-k", str(lst), str(folder)],
                        (0, 1),
                        stdout_check="hashdeep",
                    )
                )
            if hashdeep:
                cs.append(Contender("hashdeep", [*triple, str(folder)]))
            mine = {"ok_codes": (0, 1), "fresh_log": True, "stdout_check": "matcher"}
            cs.append(Contender("matcher scan", [*MATCHER, *scan], **mine))  # type: ignore[arg-type]
            for kind in filter(None, a.scan_engines.split(",")):
                argv = [*by_kind, kind, str(a.jobs), str(store), "{LOG}", str(folder)]
                cs.append(Contender(f"matcher scan, {kind}", argv, **mine))  # type: ignore[arg-type]
            if with_candidates:
                argv = [*MATCHER, *scan, "--candidates-only"]
                cs.append(Contender("matcher --candidates-only", argv, **mine))  # type: ignore[arg-type]
            for kind in filter(None, a.engines.split(",")):
                argv = [*by_kind, kind, str(a.jobs), "-", "-", str(folder), "--hash-only"]
                cs.append(Contender(f"engine only, {kind}", argv))
            return cs

        results: dict[str, object] = {"import_s": import_s}
        for label, folder, paths, n_notable in (
            ("large", work / "large", large, n_large),
            ("small", work / "small", small, n_small),
            ("mixed", work / "mixed", mixed, n_mixed),
        ):
            if label in skip:
                continue
            cs = contenders(folder, label != "large", label != "mixed")
            total = sum(path.stat().st_size for path in paths)
            results[label] = bench_corpus(
                label, folder, len(paths), total, cs, rounds, work, n_notable
            )
        sizes = {path.stat().st_size for path in real}
        for label, paths in (("small", small), ("mixed", mixed)):
            table = results.get(label)
            if not isinstance(table, dict) or "matcher --candidates-only" not in table:
                continue
            cands = sum(1 for path in paths if path.stat().st_size in sizes)
            full = table["matcher scan"]["wall"]
            cand = table["matcher --candidates-only"]["wall"]
            print(
                f"\n--candidates-only, {label} corpus: {cands:,} of {len(paths):,} files are "
                f"size candidates ({100 * cands / len(paths):.2f}%): {cand:.2f} s vs full "
                f"{full:.2f} s = {full / cand:.1f}x faster"
            )
        if "walk" not in skip:
            print("\n## peak RSS of `matcher scan` over trees of tiny (1-byte) files")
            for label, rss, wall, n in walk_memory(work, walk, a.jobs):
                print(
                    f"  {label:>26}: peak RSS {rss:6.1f} MB, {wall:6.1f} s "
                    f"({n / wall:,.0f} files/s)"
                )
        if "lookup" not in skip:
            r = lookup_rate(store, lookup_entries, 1_000_000 if not q else 200_000)
            print(
                f"\n## lookups: filter of {r['entries']:,} digests per algorithm (md5, sha1, "
                f"sha256; built in {r['build_s']:.1f} s, {r['filter_mb']:.1f} MB), exact lookups "
                f"in the bench store ({decoys + len(real):,} entries)\n"
                f"  {r['probes']:,} files (3 digests each; all misses but "
                f"{r['hits_expected']:,} stored), the scan's path (filter, then exact "
                f"lookups of what it lets through): {r['rate']:,.0f} files/s = "
                f"{3 * r['rate']:,.0f} digest lookups/s; {r['matched']:,} matches\n"
                f"  the same files, each through match_batch (rematch's path): "
                f"{r['rematch_rate']:,.0f} files/s = {3 * r['rematch_rate']:,.0f} digest "
                f"lookups/s; {r['rematch_matched']:,} matches\n"
                f"  both paths: {r['false_positive_digests']} digests passed the filter, "
                f"settled by {r['exact_queries']} SQLite queries"
            )
    finally:
        if not a.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
