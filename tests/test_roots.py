"""Evidence roots that repeat or nest are scanned once, with a note in the log."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from click.testing import CliRunner
from conftest import FIXTURES
from conftest import assert_counts_add_up
from conftest import end_record
from conftest import read_log

from matcher.cli import cli
from matcher.evidence.roots import distinct_roots


def test_distinct_roots_drops_repeats_and_nested_roots(tmp_path: Path) -> None:
    (tmp_path / "ev" / "sub").mkdir(parents=True)
    (tmp_path / "other").mkdir()
    ev, sub, other = tmp_path / "ev", tmp_path / "ev" / "sub", tmp_path / "other"
    dotted = Path(str(ev) + "/./")
    kept, notes = distinct_roots([sub, ev, other, dotted, other])
    assert kept == [ev, other]
    assert len(notes) == 3
    assert f"evidence {sub} lies inside evidence {ev}" in notes[0]
    assert "is the same as" in notes[1] and "is the same as" in notes[2]


def test_distinct_roots_sees_one_folder_reached_by_two_paths(tmp_path: Path) -> None:
    (tmp_path / "real").mkdir()
    os.mkdir(tmp_path / "mnt")
    # A bind mount needs privileges; a hard-linked file is the same entry by another name.
    (tmp_path / "real" / "f").write_bytes(b"x")
    os.link(tmp_path / "real" / "f", tmp_path / "mnt" / "g")
    kept, notes = distinct_roots([tmp_path / "real" / "f", tmp_path / "mnt" / "g"])
    assert kept == [tmp_path / "real" / "f"] and "is the same as" in notes[0]


def test_sibling_names_with_a_common_prefix_are_not_nested(tmp_path: Path) -> None:
    (tmp_path / "ev").mkdir()
    (tmp_path / "ev2").mkdir()
    kept, notes = distinct_roots([tmp_path / "ev", tmp_path / "ev2"])
    assert kept == [tmp_path / "ev", tmp_path / "ev2"] and notes == []


def test_scan_of_overlapping_roots_counts_and_logs_each_file_once(
    runner: CliRunner, tmp_path: Path
) -> None:
    ev = tmp_path / "ev"
    shutil.copytree(FIXTURES / "evidence", ev, symlinks=True)
    db = tmp_path / "s.db"
    lists = FIXTURES / "hashlists"
    common = [
        "--examiner",
        "E",
        "--case",
        "C",
        "--db",
        str(db),
        "--list",
        str(lists / "notable.csv"),
    ]
    once, twice = tmp_path / "once.jsonl", tmp_path / "twice.jsonl"
    runner.invoke(cli, ["scan", str(ev), *common, "--log", str(once)], catch_exceptions=False)
    nested = [str(ev), str(ev / "data"), str(ev), f"{ev}/."]
    result = runner.invoke(cli, ["scan", *nested, *common, "--log", str(twice)])
    assert result.exit_code == 1, result.output
    assert assert_counts_add_up(twice) == assert_counts_add_up(once)
    matches = [r["path"] for r in read_log(twice) if r["type"] == "match"]
    assert len(matches) == len(set(matches)) > 0
    notes = end_record(twice)["notes"]
    assert sum("scanned once" in n for n in notes) == 3, notes


def test_an_evidence_root_that_is_a_symlink_is_refused_not_a_clean_scan_of_nothing(
    runner: CliRunner, tmp_path: Path
) -> None:
    """`scan LINK` skipped the root as a symlink and reported `complete`, exit 0: a whole tree
    unread looked like a clean result. The folder it names (or `LINK/`) scans as before."""
    ev = tmp_path / "ev"
    shutil.copytree(FIXTURES / "evidence", ev, symlinks=True)
    link = tmp_path / "mounted"
    link.symlink_to(ev)
    common = ["--examiner", "E", "--case", "C", "--db", str(tmp_path / "s.db"),
              "--list", str(FIXTURES / "hashlists" / "notable.csv")]  # fmt: skip
    log = tmp_path / "l.jsonl"
    result = runner.invoke(cli, ["scan", str(link), *common, "--log", str(log)])
    assert result.exit_code == 2 and "is a symbolic link" in result.output, result.output
    assert str(ev) in result.output and not log.exists()
    ok = runner.invoke(cli, ["scan", str(ev), *common, "--log", str(log)])
    assert ok.exit_code == 1, ok.output
