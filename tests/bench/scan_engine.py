"""Run one `matcher scan` through the library with a chosen engine kind.

The command line has no engine option (auto = forked processes); the benchmark
uses this to time the other choices through the very same scan job.

Usage: python tests/bench/scan_engine.py KIND JOBS DB LOG EVIDENCE [--candidates-only]
       python tests/bench/scan_engine.py KIND JOBS - - EVIDENCE --hash-only
  KIND: auto | process | thread | serial (serial = --jobs 1)
Prints the summary's counts as JSON on stdout. --hash-only runs just the walk
and the engine (no store, no log): the engine's own speed.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))


def main(argv: list[str]) -> int:
    kind, jobs, db, log, evidence = argv[:5]
    candidates_only = "--candidates-only" in argv[5:]
    n = int(jobs)
    if kind == "serial":
        kind, n = "auto", 1
    if "--hash-only" in argv[5:]:
        return hash_only(kind, n, Path(evidence))
    # Note: imported here, so that --hash-only does not pay for the store's imports.
    from matcher.scan import ScanOptions
    from matcher.scan import run_scan

    options = ScanOptions(
        evidence=[Path(evidence)],
        examiner="bench",
        case="bench",
        db=Path(db),
        log=Path(log),
        jobs=n,
        engine=kind,
        candidates_only=candidates_only,
        argv=argv,
    )
    summary = run_scan(options)
    print(json.dumps({**summary.counts.as_dict(), "seconds": summary.seconds}))
    return 1 if summary.counts.notable else 0


def hash_only(kind: str, jobs: int, evidence: Path) -> int:
    import os

    from matcher.evidence.folder import FolderWalker
    from matcher.evidence.folder import open_readonly
    from matcher.hashing import make_engine
    from matcher.models import FileTask

    engine = make_engine(("md5", "sha1", "sha256"), open_readonly, jobs, kind)
    files = size = 0
    try:
        walk = FolderWalker().walk([os.fsencode(evidence)])
        tasks = (t for t in walk if isinstance(t, FileTask))
        for outcome in engine.map(tasks):
            assert outcome.digests is not None, outcome
            files += 1
            size += outcome.size or 0
    finally:
        engine.close()
    print(json.dumps({"files": files, "bytes": size, "notable": 0}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
