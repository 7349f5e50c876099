"""A scan holds the hash store as it was when it began (HashStore.pinned).

Before, `matcher remove` (or an import with --replace) during a scan
succeeded, and the scan's later lookups missed: 225 notable files became 0
(or 99), `complete`, exit 0, while the run record still named the list.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from conftest import read_log

import matcher.scan as scan_mod
import matcher.store as store_mod
from matcher.cli import cli
from matcher.errors import StoreError
from matcher.errors import UsageError
from matcher.store import HashStore


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    ev = tmp_path / "ev"
    ev.mkdir()
    lines = []
    for i in range(6):
        data = b"pinned %d\n" % i
        (ev / f"f{i}").write_bytes(data)
        lines.append(f"{hashlib.sha256(data).hexdigest()}  f{i}\n")
    (tmp_path / "notable.sha256").write_text("".join(lines))
    (tmp_path / "other.sha256").write_text(f"{hashlib.sha256(b'other').hexdigest()}  o\n")
    runner = CliRunner()
    for name in ("notable.sha256",):
        assert runner.invoke(cli, ["import", str(tmp_path / name), "--db", str(tmp_path / "s.db")]).exit_code == 0
    return ev


def scan(tmp_path: Path, ev: Path) -> Any:
    args = ["scan", str(ev), "--examiner", "E", "--case", "P-1", "--db", str(tmp_path / "s.db"),
            "--log", str(tmp_path / "run.jsonl"), "--jobs", "1", "-q"]  # fmt: skip
    return CliRunner().invoke(cli, args)


def test_a_list_cannot_be_removed_or_replaced_while_a_scan_runs(
    tmp_path: Path, tree: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(store_mod, "BUSY_TIMEOUT_MS", 50)
    tried: list[str] = []
    real_pump = scan_mod._pump

    def meddling_pump(*args: Any, **kwargs: Any) -> None:
        # Another process would be refused the same way (SQLite's locks are the file's).
        runner = CliRunner()
        db = str(tmp_path / "s.db")
        for attempt in (
            ["remove", "notable.sha256", "--db", db],
            ["import", str(tmp_path / "other.sha256"), "--db", db, "--replace", "notable.sha256"],
            ["import", str(tmp_path / "other.sha256"), "--db", db],
        ):
            result = runner.invoke(cli, attempt)
            assert result.exit_code == 2, result.output
            assert "another matcher process is using the store" in result.output
            tried.append(attempt[0])
        real_pump(*args, **kwargs)

    monkeypatch.setattr(scan_mod, "_pump", meddling_pump)
    result = scan(tmp_path, tree)
    assert result.exit_code == 1, result.output  # every notable file found, as without meddling
    assert tried == ["remove", "import", "import"]
    assert sum(r["type"] == "match" for r in read_log(tmp_path / "run.jsonl")) == 6
    # Once the scan is over, the store is free again.
    done = CliRunner().invoke(cli, ["remove", "notable.sha256", "--db", str(tmp_path / "s.db")])
    assert done.exit_code == 0, done.output


def test_a_store_changed_as_the_scan_starts_is_refused_before_anything_is_scanned(
    tmp_path: Path, tree: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_build = scan_mod.build_filter

    def build_then_import(*args: Any, **kwargs: Any) -> Any:
        built = real_build(*args, **kwargs)
        other = CliRunner().invoke(cli, ["import", str(tmp_path / "other.sha256"), "--db", str(tmp_path / "s.db")])
        assert other.exit_code == 0, other.output
        return built

    monkeypatch.setattr(scan_mod, "build_filter", build_then_import)
    result = scan(tmp_path, tree)
    assert result.exit_code == 2
    assert "changed while the scan started" in result.output and "nothing was scanned" in result.output


def test_pinned_refuses_lists_that_are_no_longer_the_stores(tmp_path: Path, tree: Path) -> None:
    store = HashStore(tmp_path / "s.db")
    try:
        lists = store.lists()
        with store.pinned(lists):
            pass
        with pytest.raises(UsageError, match="changed while the scan started"):
            with store.pinned(lists[:0]):
                pass
        assert not store.db.conn.in_transaction
    finally:
        store.close()
    other = HashStore(tmp_path / "s.db")
    other.db.execute("PRAGMA busy_timeout=50")
    pinning = HashStore(tmp_path / "s.db")
    try:
        with pinning.pinned(pinning.lists()):
            with pytest.raises(StoreError, match="another matcher process is using the store"):
                other.remove_list("notable.sha256")
        assert other.remove_list("notable.sha256").name == "notable.sha256"
    finally:
        pinning.close()
        other.close()


@pytest.mark.parametrize("variable", ["TMPDIR", "SQLITE_TMPDIR"])
def test_a_temporary_folder_inside_the_evidence_is_refused_before_any_write(
    tmp_path: Path, tree: Path, variable: str
) -> None:
    """Before, the start-up self-test wrote (and removed) its files under the evidence root."""
    import os
    import subprocess
    import sys

    before = {p: p.stat().st_mtime_ns for p in [tree, *tree.rglob("*")]}
    env = {**os.environ, variable: str(tree)}
    args = [sys.executable, "-m", "matcher", "scan", str(tree), "--examiner", "E", "--case", "T-1",
            "--db", str(tmp_path / "s.db"), "--log", str(tmp_path / "t.jsonl")]  # fmt: skip
    done = subprocess.run(args, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stderr
    assert f"lies inside evidence {tree}" in done.stderr and variable in done.stderr
    assert {p: p.stat().st_mtime_ns for p in [tree, *tree.rglob("*")]} == before
    assert not (tmp_path / "t.jsonl").exists()


def test_a_filter_cache_write_never_waits_for_a_running_scan(tmp_path: Path, tree: Path) -> None:
    """A second scan on a store another scan holds builds its filter and goes on at once."""
    import sqlite3
    import time

    pinning = HashStore(tmp_path / "s.db")
    second = HashStore(tmp_path / "s.db")
    try:
        with pinning.pinned(pinning.lists()):
            started = time.monotonic()
            with pytest.raises(sqlite3.OperationalError, match="locked"):
                second.save_filter("sha256", "fp", b"data")
            assert time.monotonic() - started < 2  # not BUSY_TIMEOUT_MS (10 s)
            assert not second.db.conn.in_transaction
        assert second.db.execute("PRAGMA busy_timeout").fetchone()[0] == store_mod.BUSY_TIMEOUT_MS
        second.save_filter("sha256", "fp", b"data")  # once the scan is over
    finally:
        pinning.close()
        second.close()


def test_a_held_store_takes_no_cache_write_and_ends_while_another_scan_holds_it(
    tmp_path: Path, tree: Path
) -> None:
    """A --candidates-only scan wrote its sizes cache inside its held read, kept the store's
    write lock for the run, and its final COMMIT, refused as busy while another scan held the
    store, turned a complete scan into exit 2 ("internal error: database is locked")."""
    first = HashStore(tmp_path / "s.db")
    second = HashStore(tmp_path / "s.db")
    first.db.execute("PRAGMA busy_timeout=50")
    try:
        held = first.pinned(first.lists())
        held.__enter__()
        with second.pinned(second.lists()):
            changes = first.db.conn.total_changes
            first.save_filter("sizes", "fp", b"data")  # a cache: not written inside the hold
            assert first.db.conn.total_changes == changes
            held.__exit__(None, None, None)  # ends while the other holds the store
        assert not first.db.conn.in_transaction
        assert not (tmp_path / "s.db-journal").exists()
    finally:
        first.close()
        second.close()


def test_a_store_that_cannot_be_written_is_said_to_be_so() -> None:
    """Before: a store in a folder this user may not write said only 'attempt to write a readonly
    database' (or 'unable to open database file': the journal cannot be made beside it)."""
    import sqlite3

    from matcher.store import _busy_or_full

    for text in ("attempt to write a readonly database", "unable to open database file"):
        tail = _busy_or_full(sqlite3.OperationalError(text))
        assert "cannot be written by this user" in tail and "journal beside the store" in tail
    assert _busy_or_full(sqlite3.OperationalError("no such table: x")) == ""


def test_a_store_made_by_another_process_meanwhile_is_opened_not_made_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before: two first scans with --list making one new store at once both saw it empty, and
    the second failed on 'table meta already exists'."""
    from matcher.sqlitefiles import Database
    from matcher.store import HashStore

    path = tmp_path / "new.db"
    HashStore(path).close()  # the other process's store, made while this one looked
    real = Database.table_names
    calls = [0]

    def empty_at_first(self: Database) -> list[str]:
        calls[0] += 1
        return [] if calls[0] == 1 else real(self)

    monkeypatch.setattr(Database, "table_names", empty_at_first)
    store = HashStore(path)
    try:
        assert store.lists() == []
    finally:
        store.close()


@pytest.mark.parametrize("folder", ["Case #7", "Case ?7", "p%41"])
def test_a_store_is_read_from_its_own_path_whatever_characters_its_folder_has(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, folder: str
) -> None:
    """A read-only open once took '#' or '?' for the end of the path and '%41' for 'A'."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "wanted.md5").write_text(f"{'a' * 32}  wanted.bin\n")
    (tmp_path / "decoy.md5").write_text(f"{'b' * 32}  decoy.bin\n")
    Path(folder).mkdir()
    runner = CliRunner()
    store = f"{folder}/store.db"
    # What the unencoded URI named instead: the path cut at '#' or '?', or '%41' read as 'A'.
    decoy = "Case " if "%" not in folder else "pA/store.db"
    Path(decoy).parent.mkdir(exist_ok=True)
    for listed, db in (("wanted.md5", store), ("decoy.md5", decoy)):
        assert runner.invoke(cli, ["import", listed, "--db", db]).exit_code == 0
    opened = HashStore(Path(store), readonly=True)
    try:
        assert [info.name for info in opened.lists()] == ["wanted.md5"]
    finally:
        opened.close()
