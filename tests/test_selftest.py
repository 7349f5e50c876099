"""`matcher selftest`: passes on this build, and a failing check stops every scan."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import FIXTURES

import matcher.selftest as selftest
from matcher.cli import cli
from matcher.formats import registry


def test_selftest_passes_and_covers_every_area(runner: CliRunner) -> None:
    result = runner.invoke(cli, ["selftest", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    areas = {c["area"] for c in report["checks"]}
    assert areas == {"digest", "engine", "parser", "log"}
    parsers = {c["name"].split()[0] for c in report["checks"] if c["area"] == "parser"}
    assert parsers == set(registry.names())
    assert all(c["passed"] for c in report["checks"])


def test_a_wrong_known_answer_fails_selftest_and_blocks_scan(runner: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    broken = list(selftest.KNOWN_ANSWERS)
    broken[0] = ("md5", b"", "0" * 32)
    monkeypatch.setattr(selftest, "KNOWN_ANSWERS", broken)
    result = runner.invoke(cli, ["selftest"])
    assert result.exit_code == 1 and "FAIL" in result.output
    log = tmp_path / "r.jsonl"
    scan = runner.invoke(cli, ["scan", str(FIXTURES / "evidence"), "--examiner", "E", "--case", "C",
                               "--db", str(tmp_path / "s.db"), "--list", str(FIXTURES / "hashlists" / "notable.csv"),
                               "--log", str(log)])
    assert scan.exit_code == 2 and "self-test failed" in scan.output
    assert not log.exists()


def test_scan_records_the_selftest_in_its_run_record(runner: CliRunner, tmp_path: Path) -> None:
    log = tmp_path / "r.jsonl"
    runner.invoke(cli, ["scan", str(FIXTURES / "evidence"), "--examiner", "E", "--case", "C",
                        "--db", str(tmp_path / "s.db"), "--list", str(FIXTURES / "hashlists" / "notable.csv"),
                        "--log", str(log)])
    run = json.loads(log.read_text().splitlines()[0])
    assert run["selftest"]["passed"] is True and run["selftest"]["checks"] >= 10
