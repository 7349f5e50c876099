"""Zero-length-file digests: imported but flagged; an empty file is never a match."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import assert_counts_add_up
from conftest import read_log

from matcher.cli import cli
from matcher.digests import DIGEST_SIZES
from matcher.digests import empty_digest

EMPTY_MD5 = hashlib.md5(b"").hexdigest()
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()


@pytest.mark.parametrize("algorithm", sorted(DIGEST_SIZES))
def test_empty_digest_is_the_digest_of_zero_bytes(algorithm: str) -> None:
    if algorithm == "blake3":
        import blake3  # in the test extra
        assert empty_digest("blake3") == blake3.blake3(b"").digest()
    else:
        assert empty_digest(algorithm) == hashlib.new(algorithm, b"").digest()


def _lists(runner: CliRunner, db: Path) -> list[dict[str, object]]:
    result = runner.invoke(cli, ["lists", "--db", str(db), "--json"])
    assert result.exit_code == 0, result.output
    lists: list[dict[str, object]] = json.loads(result.stdout)
    return lists


def test_import_flags_entries_not_digests(runner: CliRunner, tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    csv = tmp_path / "both.csv"
    other = hashlib.md5(b"x").hexdigest(), hashlib.sha256(b"x").hexdigest()
    csv.write_text(
        "md5,sha256,size,name\n"
        f"{EMPTY_MD5},{EMPTY_SHA256},0,empty-both\n"  # one entry, two empty digests
        f"{EMPTY_MD5},,0,empty-md5\n"
        f"{other[0]},{other[1]},1,x\n"
    )
    result = runner.invoke(cli, ["import", str(csv), "--db", str(db), "--json"])
    assert result.exit_code == 0, result.output
    assert "2 entries hold the digest of an empty file: flagged" in result.stderr
    assert json.loads(result.stdout)[0]["zero_length_entries"] == 2
    [info] = _lists(runner, db)
    assert info["zero_length_entries"] == 2 and info["entries"] == 3
    text = runner.invoke(cli, ["lists", "--db", str(db)]).output
    assert "2 empty-file digests, flagged" in text


@pytest.mark.parametrize("role", ["notable", "known"])
def test_an_empty_file_is_never_a_match(runner: CliRunner, tmp_path: Path, role: str) -> None:
    ev = tmp_path / "ev"
    ev.mkdir()
    (ev / "empty-1").write_bytes(b"")
    (ev / "empty-2").write_bytes(b"")
    (ev / "real").write_bytes(b"real content\n")
    listed = tmp_path / "list.md5"
    real_md5 = hashlib.md5(b"real content\n").hexdigest()
    listed.write_text(f"{EMPTY_MD5}  empty\n{real_md5}  real\n")
    db, log = tmp_path / "s.db", tmp_path / "run.jsonl"
    assert (
        runner.invoke(cli, ["import", str(listed), "--db", str(db), "--role", role]).exit_code == 0
    )
    args = ["scan", str(ev), "--examiner", "E", "--case", "C", "--db", str(db), "--log", str(log)]
    result = runner.invoke(cli, args)
    assert result.exit_code == (1 if role == "notable" else 0), result.output
    counts = assert_counts_add_up(log)
    assert (counts["empty"], counts["unknown"], counts[role]) == (2, 2, 1)
    records = read_log(log)
    assert [r["path"] for r in records if r["type"] == "match"] == (
        [str(ev / "real")] if role == "notable" else []
    )
    assert records[0]["lists"][0]["zero_length_entries"] == 1
    assert any("empty file is never a match" in n for n in records[-1]["notes"])
    assert "(of which 2 empty)" in result.stderr


def test_a_rematch_notes_the_lists_holding_the_empty_file_digest_as_a_scan_does(
    runner: CliRunner, tmp_path: Path
) -> None:
    """Before: its end record's notes were empty, though its run record counted the entry."""
    ev = tmp_path / "ev"
    ev.mkdir()
    (ev / "empty").write_bytes(b"")
    listed = tmp_path / "list.md5"
    listed.write_text(f"{EMPTY_MD5}  empty\n")
    db, log = tmp_path / "s.db", tmp_path / "run.jsonl"
    assert runner.invoke(cli, ["import", str(listed), "--db", str(db), "--role", "notable"]).exit_code == 0
    args = ["scan", str(ev), "--examiner", "E", "--case", "C", "--db", str(db), "--log", str(log)]
    assert runner.invoke(cli, args).exit_code == 0
    again = tmp_path / "again.jsonl"
    args = ["rematch", str(log), "--db", str(db), "--examiner", "E", "--case", "C", "--log", str(again)]
    assert runner.invoke(cli, args).exit_code == 0
    notes = read_log(again)[-1]["notes"]
    assert any("list 'list.md5' holds 1 entry with the digest of an empty file" in n for n in notes), notes
