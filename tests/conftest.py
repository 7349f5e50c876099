"""Shared fixtures: a CliRunner, paths to the bundled fixtures, and helpers."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

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


def require_tool(name: str) -> str | None:
    """A peer tool's path. Under CI (CI set) a missing peer fails instead of skipping."""
    found = shutil.which(name)
    if found is None and os.environ.get("CI"):
        pytest.fail(f"{name} is required under CI (.ci/run installs it)")
    return found
