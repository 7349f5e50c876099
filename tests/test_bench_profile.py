"""The profile script's split of py-spy samples into the main process and the workers."""

from __future__ import annotations

import importlib.util
from pathlib import Path

_PATH = Path(__file__).parent / "bench" / "profile_scan.py"
_SPEC = importlib.util.spec_from_file_location("profile_scan", _PATH)
assert _SPEC is not None and _SPEC.loader is not None
profile_scan = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(profile_scan)


def test_samples_under_the_worker_loop_are_the_workers_and_line_numbers_merge() -> None:
    main = 'process 10:"python -m matcher scan";<module> (matcher/__main__.py:1);'
    worker = 'process 11:"python -m matcher scan";_fork (matcher/workers.py:190);'
    raw = [
        f"{main}_pump (matcher/scan.py:1200);_list_dir (matcher/evidence/folder.py:300) 7\n",
        f"{main}_pump (matcher/scan.py:1210);_list_dir (matcher/evidence/folder.py:305) 3\n",
        f"{worker}_serve (matcher/workers.py:120);digest_fd (matcher/hashing.py:90) 20\n",
        "\n",
        "garbage-without-count\n",
    ]
    profile = profile_scan.parse_raw(raw)
    assert profile["main"]["self"] == {"_list_dir (matcher/evidence/folder.py)": 10}
    assert profile["main"]["inclusive"]["_pump (matcher/scan.py)"] == 10
    assert profile["worker"]["self"] == {"digest_fd (matcher/hashing.py)": 20}
    assert profile["worker"]["inclusive"]["_serve (matcher/workers.py)"] == 20
    assert "_serve (matcher/workers.py)" not in profile["main"]["inclusive"]
