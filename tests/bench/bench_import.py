"""Benchmark: importing field-scale hash lists (NSRL RDS v3 minimal, VICS 2.0 JSON).

Generates synthetic lists (seeded random digests, never real hash sets), then
imports each with the real `matcher import` in a child process and reports
rows/s, the child's peak RSS and CPU time, and the final store size. Memory
must stay flat as the input grows, so each list is also imported at a tenth
of its size and the two peaks are compared. For the full size of the RDS it
also prints where the time and memory go: each stretch from the start of one
SQL statement to the start of the next that took more than 1% of the import,
with the child's peak RSS at its end. A stretch includes the Python work after
its statement: the one after the store's first COMMIT (its schema) is mostly
the SHA-256 of the source file and the format detection.

    python tests/bench/bench_import.py                 # 10M RDS rows, 1M VICS entries
    python tests/bench/bench_import.py --rds 1000000 --vics 100000   # quicker

The machine is shared: run it twice and compare; the peak RSS and the ratio
of the two sizes' peaks matter more than one absolute rate.
"""

from __future__ import annotations

import argparse
import os
import random
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

MINIMAL_RDS_DDL = """
CREATE TABLE FILE (sha256 VARCHAR NOT NULL, sha1 VARCHAR NOT NULL, md5 VARCHAR NOT NULL,
  crc32 VARCHAR NOT NULL, file_name VARCHAR NOT NULL, file_size INTEGER NOT NULL,
  package_id INTEGER NOT NULL,
  CONSTRAINT PK_FILE__FILE PRIMARY KEY
    (sha256, sha1, md5, crc32, file_name, file_size, package_id));
CREATE TABLE PKG (package_id INTEGER, name VARCHAR, version VARCHAR, operating_system_id INTEGER,
  manufacturer_id INTEGER, language VARCHAR, application_type VARCHAR);
CREATE TABLE VERSION (version VARCHAR, build_set VARCHAR, build_date TIMESTAMP,
  release_date TIMESTAMP, description VARCHAR);
CREATE VIEW DISTINCT_HASH AS SELECT DISTINCT sha256, sha1, md5, crc32 FROM FILE;
INSERT INTO VERSION VALUES ('2026.09.1', 'Modern', '2026-09-01', '2026-09-05', 'synthetic');
"""
VICS_CONTEXT = (
    "http://github.com/VICSDATAMODEL/ProjectVic/DataModels/2.0.xml/Default/$metadata#Media"
)


def rds_rows(count: int, seed: int) -> Iterator[tuple[str, str, str, str, int, int]]:
    """Rows of a synthetic RDS: one in ten repeats a digest triple (NSRL repeats files).

    The DDL is NIST's minimal schema (FORMATS.md), primary key included: the
    importer's GROUP BY walks that index, as it does on a real RDS.
    """
    rng = random.Random(seed)
    previous: tuple[str, str, str] | None = None
    for n in range(count):
        if previous is not None and n % 10 == 9:
            triple = previous
        else:
            raw = rng.randbytes(32 + 20 + 16).hex().upper()
            triple = (raw[:64], raw[64:104], raw[104:])
        previous = triple
        yield (*triple, f"file-{n}.dll", rng.randrange(1, 1 << 24), n % 5000)


def make_rds(path: Path, count: int, seed: int) -> None:
    conn = sqlite3.connect(path)
    conn.executescript(MINIMAL_RDS_DDL)
    conn.executemany(
        "INSERT INTO FILE VALUES (?, ?, ?, '00000000', ?, ?, ?)", rds_rows(count, seed)
    )
    conn.commit()
    conn.close()


def make_vics(path: Path, count: int, seed: int) -> None:
    rng = random.Random(seed)
    with path.open("wb") as out:
        out.write(b'{"@odata.context": "%s", "value": [\n' % VICS_CONTEXT.encode())
        for n in range(count):
            md5, sha1, sha256 = (rng.randbytes(k).hex().upper() for k in (16, 20, 32))
            out.write(
                b'{"MediaID": %d, "Category": %d, "MD5": "%s", "SHA1": "%s", "MediaSize": "%d", '
                b'"IsPrecategorized": "false", "AlternativeHashes": [{"HashName": "SHA256", '
                b'"HashValue": "%s"}]}%s'
                % (n, n % 4, md5.encode(), sha1.encode(), rng.randrange(1, 1 << 22),
                   sha256.encode(), b",\n" if n + 1 < count else b"\n")
            )  # fmt: skip
        out.write(b"]}\n")


# The child: `matcher import`, with every SQL statement's start traced (sqlite3's
# trace callback, apsw's exec_trace on the copy's connection), so that each
# statement's share is known without touching matcher.
_CHILD = """
import resource, sqlite3, sys, time
marks = [(time.perf_counter(), "(start-up, source SHA-256, format detection)", 0)]
def trace(sql):
    marks.append((time.perf_counter(), " ".join(sql.split())[:90],
                  resource.getrusage(resource.RUSAGE_SELF).ru_maxrss))
connect = sqlite3.connect
def traced(*args, **kwargs):
    conn = connect(*args, **kwargs)
    conn.set_trace_callback(trace)
    return conn
sqlite3.connect = traced
from matcher import sqlite_newer
newer_init = sqlite_newer.Connection.__init__
def traced_newer(self, *args, **kwargs):
    newer_init(self, *args, **kwargs)
    def exec_trace(cursor, sql, bindings):
        trace(sql)
        return True
    self._conn.exec_trace = exec_trace
sqlite_newer.Connection.__init__ = traced_newer
from matcher.cli import cli
try:
    cli(sys.argv[1:], prog_name="matcher")
finally:
    marks.append((time.perf_counter(), "end", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss))
    total = marks[-1][0] - marks[0][0]
    for (t0, sql, _), (t1, _, rss) in zip(marks, marks[1:]):
        if t1 - t0 > total / 100:
            print(f"phase {t1 - t0:8.2f} s  peak {rss / 1024:6.1f} MiB  {sql}", file=sys.stderr)
"""


def timed_import(source: Path, db: Path, phases: bool) -> tuple[float, int, float, str]:
    """Seconds, peak RSS (KiB), CPU seconds and phases of `matcher import source --db db`.

    Note that the trace runs once per row of an executemany(), so only a copy
    by SQL (RDS) is traced: tracing a row-by-row import would slow it down.
    """
    child = ["-c", _CHILD] if phases else ["-m", "matcher"]
    cmd = [sys.executable, *child, "import", str(source), "--db", str(db)]
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    assert proc.stderr is not None
    err = proc.stderr.read().decode()
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"import failed: {err}")
    lines = "\n".join(f"     {line}" for line in err.splitlines() if line.startswith("phase"))
    return seconds, usage.ru_maxrss, usage.ru_utime + usage.ru_stime, lines


def run(kind: str, count: int, work: Path, seed: int) -> None:
    results = []
    for size in (max(count // 10, 1), count):
        source = work / f"{kind}-{size}.{'db' if kind == 'rds' else 'json'}"
        started = time.perf_counter()
        (make_rds if kind == "rds" else make_vics)(source, size, seed)
        # Note: on disk before the import is timed, so that the kernel's
        # writing back of the source just generated (4 GB at 10M rows) is
        # not counted as the import's.
        fd = os.open(source, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        made = time.perf_counter() - started
        db = work / f"store-{kind}-{size}.db"
        seconds, peak, cpu, phases = timed_import(source, db, phases=kind == "rds")
        results.append((size, seconds, peak))
        print(
            f"{kind:4} {size:>11,} rows  source {source.stat().st_size / 1e6:8.1f} MB "
            f"(made in {made:5.1f} s)  import {seconds:7.2f} s (cpu {cpu:6.1f} s)  "
            f"{size / seconds:>10,.0f} rows/s  peak RSS {peak / 1024:7.1f} MiB  "
            f"store {db.stat().st_size / 1e6:8.1f} MB ({db.stat().st_size / size:5.1f} B/row)",
            flush=True,
        )
        if size == count and phases:
            print(phases, flush=True)
        source.unlink()
        db.unlink()
    (small, _, small_peak), (large, _, large_peak) = results
    print(
        f"{kind:4} memory: peak RSS {small_peak / 1024:.1f} MiB at {small:,} rows, "
        f"{large_peak / 1024:.1f} MiB at {large:,} rows (ratio {large_peak / small_peak:.2f} "
        f"for {large / small:.0f}x the rows)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rds", type=int, default=10_000_000, help="RDS v3 rows (0: skip)")
    parser.add_argument("--vics", type=int, default=1_000_000, help="VICS entries (0: skip)")
    parser.add_argument("--seed", type=int, default=20261129)
    parser.add_argument("--work", type=Path, help="scratch folder (default: a temp dir)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.work) as tmp:
        work = Path(tmp)
        from matcher import sqlite_newer

        newer = sqlite_newer.version() if sqlite_newer.available() else "not installed"
        print(
            f"python {sys.version.split()[0]}, sqlite {sqlite3.sqlite_version}, "
            f"apsw's sqlite (the RDS copy) {newer}, cores {os.cpu_count()}"
        )
        if args.rds:
            run("rds", args.rds, work, args.seed)
        if args.vics:
            run("vics", args.vics, work, args.seed)


if __name__ == "__main__":
    main()
