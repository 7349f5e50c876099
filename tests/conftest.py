"""Shared fixtures: a CliRunner, paths to the bundled fixtures, and helpers."""

from __future__ import annotations

import hashlib
import json
import shutil
import signal
import sqlite3
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import settings

# Note: no per-example deadline for the property tests. Hypothesis fails an
# example that takes over 200 ms by default, and on a loaded machine (CI, a
# benchmark beside the suite) a parser's example can: the VICS structure test
# failed so, once each in two runs, and passed again when replayed. What the
# tests guard is the outcome, never the time; speed is measured in tests/bench/.
settings.register_profile("matcher", deadline=None)
settings.load_profile("matcher")

# Note: a suite started in the background by a script (`pytest &`) or under
# nohup inherits SIGINT or SIGHUP ignored, and so would every matcher it
# starts; matcher keeps an inherited SIG_IGN (as nohup asks). The tests that
# interrupt a scan with those signals, in this process or a child, expect
# them heard, as in a terminal: the dispositions are set as a terminal's.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)
if signal.getsignal(signal.SIGHUP) is signal.SIG_IGN:
    signal.signal(signal.SIGHUP, signal.SIG_DFL)

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "fixtures"


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


@pytest.fixture
def fixtures_dir() -> Path:
    return FIXTURES


@pytest.fixture
def evidence_copy(tmp_path: Path) -> Path:
    """A private copy of the bundled evidence tree (tests may add hostile entries)."""
    target = tmp_path / "evidence"
    shutil.copytree(FIXTURES / "evidence", target)
    return target


def read_log(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_bytes().splitlines()]


def rechain(records: list[dict[str, object]], start: int) -> bytes:
    """A forger's log: the records from `start` on get `prev` (and an end its `self_sha256`)
    computed again over the records as they are now; signatures are kept as they were."""
    from matcher.signing import canonical_bytes

    for i in range(start, len(records)):
        if i:
            records[i]["prev"] = hashlib.sha256(canonical_bytes(records[i - 1])).hexdigest()
        if "self_sha256" in records[i]:
            records[i].pop("self_sha256")
            records[i]["self_sha256"] = hashlib.sha256(canonical_bytes(records[i])).hexdigest()
    return b"".join(canonical_bytes(r) + b"\n" for r in records)


def end_record(path: Path) -> dict[str, object]:
    records = read_log(path)
    assert records[-1]["type"] == "end", records[-1]
    return records[-1]


def assert_counts_add_up(log_path: Path) -> dict[str, object]:
    """Every scan's end record: files + skipped + errors = entries; verdicts = files."""
    counts = end_record(log_path)["counts"]
    assert isinstance(counts, dict)
    assert counts["files"] + counts["skipped"] + counts["errors"] == counts["entries"], counts
    assert counts["notable"] + counts["known"] + counts["unknown"] == counts["files"], counts
    assert sum(counts["skipped_by_reason"].values()) == counts["skipped"], counts
    assert sum(counts["errors_by_reason"].values()) == counts["errors"], counts
    return counts


# The package that brings each peer tool or validator (.ci/run installs them all).
PEER_PACKAGES = {
    "hashdeep": "Debian hashdeep",
    "xmllint": "Debian libxml2-utils",
    "chromium": "Debian chromium",
    "case_validate": "PyPI case-utils",
    "zip": "Debian zip",
    "mkfs.exfat": "Debian exfatprogs",
    "7zz": "Debian 7zip",
    "fsck.exfat": "Debian exfatprogs",
}


def store_rows(db: Path) -> list[tuple[object, ...]]:
    """Every row of a hash store's lists, entries and hashes: equal before and after
    a rejected import when the store is unchanged."""
    conn = sqlite3.connect(db)
    try:
        return [
            row
            for table in ("lists", "entries", "hashes")
            for row in conn.execute(f"SELECT * FROM {table}")
        ]
    finally:
        conn.close()


def peer_tool(name: str) -> str:
    """A peer tool's path. A missing one fails the test, never skips it.

    The checks against peer tools and validators are the point of these tests:
    a run without them would prove nothing, so it must not pass quietly.
    """
    found = shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin")
    if found is None:
        package = PEER_PACKAGES.get(name, "coreutils")
        pytest.fail(f"{name} is needed by this test: install {package} (.ci/run does)")
    return found
