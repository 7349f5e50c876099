"""Every command documents itself with an example; the README lists every command."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from matcher.cli import cli

README = (Path(__file__).resolve().parent.parent / "README.md").read_text()


@pytest.mark.parametrize("name", sorted(cli.commands))
def test_help_has_an_example(runner: CliRunner, name: str) -> None:
    result = runner.invoke(cli, [name, "--help"])
    assert result.exit_code == 0
    assert "Example:" in result.output


@pytest.mark.parametrize("name", sorted(cli.commands))
def test_readme_mentions_command(name: str) -> None:
    assert f"matcher {name}" in README


def test_group_help_lists_exit_codes(runner: CliRunner) -> None:
    result = runner.invoke(cli, ["--help"])
    assert "Exit codes" in result.output and "--resume" in result.output
