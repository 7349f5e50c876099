"""`run_validation`: the record a lab files, and proof that its checks can fail."""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import platform
import shutil
import ssl
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from matcher import sqlite_newer
from matcher import validate
from matcher.errors import UsageError
from matcher.validate import build_corpus
from matcher.validate import run_validation

HEADINGS = ("## Scope", "## Re-running", "## Environment", "## Summary", "### Requirement",
            "### Method", "### Acceptance criteria", "### Result: ")  # fmt: skip


def statuses(result: validate.ValidationResult) -> dict[str, str]:
    return {case.ident: case.status for case in result.results}


def test_validation_passes_and_writes_a_fileable_record(tmp_path: Path) -> None:
    out = tmp_path / "record"
    result = run_validation(out, seed=7)
    assert result.passed, statuses(result)
    assert result.report == out.resolve() / "validation.md"
    assert [c.ident for c in result.results] == [f"VAL-0{i}" for i in range(1, 8)]
    # Note that a peer tool that is missing is recorded as not run (under CI it must exist).
    peers_missing = sum(
        shutil.which(t) is None for t in ("md5sum", "sha1sum", "sha256sum", "hashdeep")
    )
    wanted = {f"VAL-0{i}": "PASS" for i in range(1, 8)}
    if peers_missing:
        wanted["VAL-03"] = f"PASS ({peers_missing} not run)"
    assert statuses(result) == wanted
    text = result.report.read_text()
    for heading in HEADINGS:
        assert heading in text, heading
    assert text.count("### Requirement") == 7
    assert "**Result: PASSED**" in text
    assert "matcher validate --output NEW_FOLDER --seed 7" in text
    assert f"matcher validate --output {out.resolve()} --seed 7" in text
    for fact in (ssl.OPENSSL_VERSION, platform.python_version(), os.uname().release,
                 f"click {importlib.metadata.version('click')}",
                 f"sqlite-utils {importlib.metadata.version('sqlite-utils')}",
                 f"cryptography {importlib.metadata.version('cryptography')}",
                 "pytsk3 ", "hashdeep ", "setpriv ", "sha256sum (GNU coreutils)"):  # fmt: skip
        assert fact in text, fact
    record = json.loads(result.record.read_text())
    assert record["passed"] is True and record["seed"] == 7
    assert {r["ident"]: r["status"] for r in record["results"]} == statuses(result)
    assert record["environment"]["openssl"] == ssl.OPENSSL_VERSION
    assert record["environment"]["packages"]["rbloom"] == importlib.metadata.version("rbloom")
    # The SQLite that copies an RDS into the store is named beside Python's own.
    assert record["environment"]["packages"]["apsw"] == importlib.metadata.version("apsw")
    assert record["environment"]["sqlite_list_copy"] == sqlite_newer.version() is not None
    assert f"| sqlite_list_copy | {sqlite_newer.version()} |" in text
    # The corpus stays for the lab to inspect; the scan's outputs lie beside it.
    assert (out / "corpus" / "tree" / "names" / os.fsdecode(validate.ODD_NAME)).exists()
    assert (out / "scan" / "scan.jsonl").exists()


def test_same_seed_same_corpus(tmp_path: Path) -> None:
    first = build_corpus(tmp_path / "a", 11)
    again = build_corpus(tmp_path / "b", 11)
    other = build_corpus(tmp_path / "c", 12)
    assert first.fingerprint == again.fingerprint != other.fingerprint
    assert (tmp_path / "a/lists/known.csv").read_bytes() == (
        tmp_path / "b/lists/known.csv"
    ).read_bytes()
    sizes = {p.stat().st_size for p in (tmp_path / "a/tree/sizes").iterdir()}
    assert {0, validate.CHUNK_SIZE - 1, validate.CHUNK_SIZE, validate.CHUNK_SIZE + 1} <= sizes


def test_a_record_is_never_overwritten(tmp_path: Path) -> None:
    (tmp_path / "old.md").write_text("a filed record")
    with pytest.raises(UsageError, match="not empty"):
        run_validation(tmp_path)
    assert (tmp_path / "old.md").read_text() == "a filed record"


@pytest.mark.parametrize("existed", [False, True])
def test_an_interrupted_validation_leaves_the_folder_as_it_found_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, existed: bool
) -> None:
    """A Ctrl-C left the corpus and the scan there, and the same command was then refused
    ("not empty"): the examiner had to find and delete them."""
    from click.testing import CliRunner

    from matcher import cli as cli_module

    out = tmp_path / "record"
    if existed:
        out.mkdir()

    def interrupted(*args: object, **kwargs: object) -> object:
        raise KeyboardInterrupt

    monkeypatch.setattr(validate, "_scanner", interrupted)
    result = CliRunner().invoke(cli_module.cli, ["validate", "--output", str(out)])
    assert result.exit_code == 8, result.output
    assert "run the same command again" in result.stderr
    assert (list(out.iterdir()) == []) if existed else not out.exists()


class _WrongMd5:
    """An MD5 object that is off by one byte: a corrupted digest implementation."""

    def __init__(self, data: bytes = b"", **_: Any) -> None:
        self._h = hashlib.new("md5", b"\0" + data)

    def update(self, data: bytes) -> None:
        self._h.update(data)

    def digest(self) -> bytes:
        return self._h.digest()

    def hexdigest(self) -> str:
        return self._h.hexdigest()


def test_corrupted_digest_function_fails_the_validation(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(hashlib, "md5", _WrongMd5)
    result = run_validation(tmp_path / "record", seed=3, jobs=1)
    assert not result.passed
    failed = {k for k, v in statuses(result).items() if v == "FAIL"}
    assert "VAL-01" in failed  # the engine's md5 no longer agrees with the reference
    text = result.report.read_text()
    assert "**Result: FAILED**" in text and "| VAL-01 | Known-answer self-test | FAIL |" in text
    assert json.loads(result.record.read_text())["passed"] is False


def test_a_verifier_that_accepts_anything_is_caught(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = validate.auditlog.verify
    monkeypatch.setattr(
        validate.auditlog,
        "verify",
        lambda path, key=None: None if "tampered" in str(path) else real(path),
    )
    result = run_validation(tmp_path / "record")
    [case] = [c for c in result.results if c.ident == "VAL-05"]
    assert [c.passed for c in case.criteria] == [True, False, False]
    assert "verify accepted it" in case.criteria[1].evidence and not result.passed


def test_a_scanner_that_moves_atime_is_caught(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = validate._scanner

    def noisy(
        corpus: validate.Corpus, work: Path, jobs: int | None
    ) -> tuple[Callable[[], int], str]:
        run, how = real(corpus, work, jobs)

        def run_and_read() -> int:
            code = run()
            (corpus.tree / "deep" / "a" / "b" / "c" / "leaf.txt").read_bytes()  # no O_NOATIME
            return code

        return run_and_read, how

    monkeypatch.setattr(validate, "_scanner", noisy)
    result = run_validation(tmp_path / "record")
    assert statuses(result)["VAL-07"] == "FAIL" and not result.passed
    [case] = [c for c in result.results if c.ident == "VAL-07"]
    assert "leaf.txt" in case.criteria[0].evidence


@pytest.mark.slow
def test_not_root_branch_runs_the_scan_in_process(tmp_path: Path) -> None:
    """The branch for an unprivileged user: chmod 000 and run_scan in-process.

    Under root, the child keeps uid 0 but loses the capabilities that bypass
    permission checks, so the mode-000 file is as unreadable as for a user.
    """
    script = (
        "import os, sys; from pathlib import Path; from matcher import validate\n"
        "validate.os.geteuid = lambda: 1000  # take the not-root branch\n"
        "r = validate.run_validation(Path(sys.argv[1]), seed=5)\n"
        "print([c.status for c in r.results]); sys.exit(0 if r.passed else 1)\n"
    )
    prefix: list[str] = []
    if os.geteuid() == 0:
        prefix = ["setpriv", "--inh-caps=-all", "--ambient-caps=-all",
                  "--bounding-set=-dac_override,-dac_read_search"]  # fmt: skip
    out = tmp_path / "record"
    proc = subprocess.run(
        [*prefix, sys.executable, "-c", script, str(out)], capture_output=True, timeout=300
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "run_scan in this process (not root)" in (out / "validation.md").read_text()


def test_validate_command_files_a_record_and_never_overwrites_one(tmp_path: Path) -> None:
    out = tmp_path / "record"
    cmd = [sys.executable, "-m", "matcher", "validate", "--output", str(out), "--seed", "3"]
    first = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert first.returncode == 0, first.stdout + first.stderr
    assert "Validation passed." in first.stdout and "VAL-07" in first.stdout
    record = json.loads((out / "validation.json").read_text())
    assert record["seed"] == 3
    before = (out / "validation.md").read_bytes()
    again = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert again.returncode == 2 and "not empty" in again.stderr
    assert (out / "validation.md").read_bytes() == before


def test_validate_command_exits_1_when_a_check_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from click.testing import CliRunner

    from matcher import cli as cli_module

    def failing(output: Path, seed: int, jobs: int | None) -> validate.ValidationResult:
        case = validate.CaseResult(
            "VAL-99", "Forced failure", "r", "m", [validate.Criterion("c", False, "e")]
        )
        return validate.ValidationResult(False, output / "v.md", output / "v.json", [case])

    monkeypatch.setattr(validate, "run_validation", failing)  # the CLI imports it when it runs
    result = CliRunner().invoke(cli_module.cli, ["validate", "--output", str(tmp_path / "o")])
    assert result.exit_code == 1
    assert "FAIL" in result.output and "VAL-99" in result.output
