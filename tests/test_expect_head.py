"""`verify --expect-head`: a head noted outside the log reveals runs cut off its end."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from conftest import FIXTURES

from matcher import auditlog
from matcher import scan as scan_module
from matcher.errors import IntegrityError
from matcher.cli import cli


def _scan(runner: CliRunner, tmp_path: Path, log: Path, *extra: str) -> dict[str, Any]:
    args = ["scan", str(tmp_path / "ev"), "--examiner", "E", "--case", "C"]
    args += ["--db", str(tmp_path / "s.db"), "--log", str(log), "--json", *extra]
    args += ["--list", str(FIXTURES / "hashlists" / "notable.csv")]
    result = runner.invoke(cli, args, catch_exceptions=False)
    summary: dict[str, Any] = json.loads(result.stdout)
    assert summary["exit_code"] == result.exit_code
    return summary


@pytest.fixture
def resumed(
    runner: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> tuple[Path, str, str]:
    """A log interrupted once and resumed: (log, head after run 1, final head)."""
    shutil.copytree(FIXTURES / "evidence", tmp_path / "ev", symlinks=True)
    log = tmp_path / "run.jsonl"

    def interrupted(*args: object, **kwargs: object) -> None:
        raise scan_module.Interrupted("SIGTERM")

    with monkeypatch.context() as patch:
        patch.setattr(scan_module, "_pump", interrupted)
        first = _scan(runner, tmp_path, log)
    assert first["status"] == "interrupted"
    second = _scan(runner, tmp_path, log, "--resume")
    assert second["status"] == "complete" and second["exit_code"] == 1
    return log, first["head"], second["head"]


def test_scan_prints_the_head_and_verify_accepts_it(
    runner: CliRunner, resumed: tuple[Path, str, str]
) -> None:
    log, _, head = resumed
    result = runner.invoke(cli, ["verify", str(log), "--expect-head", head])
    assert result.exit_code == 0, result.output
    assert "(the last)" in result.output
    assert head in runner.invoke(cli, ["verify", str(log)]).output


def test_an_earlier_head_is_found_with_the_records_after_it(
    runner: CliRunner, resumed: tuple[Path, str, str]
) -> None:
    log, early, _ = resumed
    result = runner.invoke(cli, ["verify", str(log), "--expect-head", early])
    assert result.exit_code == 0, result.output
    assert "were appended after it" in result.output


def test_runs_cut_off_after_an_end_record_are_caught_only_with_the_head(
    runner: CliRunner, resumed: tuple[Path, str, str], tmp_path: Path
) -> None:
    log, _, head = resumed
    lines = log.read_bytes().splitlines(keepends=True)
    first_end = next(i for i, line in enumerate(lines) if b'"type":"end"' in line)
    cut = tmp_path / "cut.jsonl"
    cut.write_bytes(b"".join(lines[: first_end + 1]))
    # The limitation: the chain alone cannot tell a cut after an end record. The inventory
    # that end sealed can, where it is still there: the resume added its rows since.
    alone = runner.invoke(cli, ["verify", str(cut)])
    assert alone.exit_code == 1 and "chain intact" in alone.output, alone.output
    assert "its inventory" in alone.output and "is not the one the log sealed" in alone.output
    inventory = Path(f"{log}.inventory.db")
    inventory.rename(tmp_path / "elsewhere.db")
    assert runner.invoke(cli, ["verify", str(cut)]).exit_code == 0  # the chain alone
    (tmp_path / "elsewhere.db").rename(inventory)
    result = runner.invoke(cli, ["verify", str(cut), "--expect-head", head])
    assert result.exit_code == 1
    assert f"line {first_end + 2}" in result.output and "cut off" in result.output


@pytest.mark.parametrize("bad", ["xyz", "G" * 64, "0" * 63, "0" * 65])
def test_a_malformed_head_is_a_usage_error(
    runner: CliRunner, resumed: tuple[Path, str, str], bad: str
) -> None:
    log, _, _ = resumed
    result = runner.invoke(cli, ["verify", str(log), "--expect-head", bad])
    assert result.exit_code == 2 and "64 hex digits" in result.output


def test_a_head_copied_in_capitals_or_with_spaces_is_the_same_head(
    runner: CliRunner, resumed: tuple[Path, str, str], tmp_path: Path
) -> None:
    log, _, head = resumed
    for typed in (head.upper(), f"  {head}\n"):
        result = runner.invoke(cli, ["verify", str(log), "--expect-head", typed])
        assert result.exit_code == 0, result.output
        assert "(the last)" in result.output
    # The library takes it as the CLI does; a head of no line is still refused.
    assert auditlog.verify(log, expect_head=head.upper()).head == head
    with pytest.raises(IntegrityError):
        auditlog.verify(log, expect_head=("0" if head[0] != "0" else "1") + head[1:].upper())


def test_expect_head_takes_one_log(runner: CliRunner, resumed: tuple[Path, str, str]) -> None:
    log, _, head = resumed
    result = runner.invoke(cli, ["verify", str(log), str(log), "--expect-head", head])
    assert result.exit_code == 2 and "one log" in result.output
