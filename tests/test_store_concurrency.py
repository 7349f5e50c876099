"""Several matcher processes on one store: what one checked before its write lock still holds.

Each test makes "another process" (a second connection) act in the gap between
a command's checks and its write transaction, where a lab running batch jobs
side by side met it: a replace deleted the other process's new list (its id
reused), two imports of one file both went in, and a refused import into a
new store deleted the store another process had just filled; all said success.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
import time
from collections.abc import Callable
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from matcher.cli import cli
from matcher.errors import StoreError
from matcher.importing import import_list
from matcher.store import HashStore
from matcher.store import remove_store_if_empty


def _md5_list(path: Path, seed: int, lines: int = 30) -> Path:
    path.write_text("".join(f"{seed:08x}{n:024x}  f{n}\n" for n in range(lines)))
    return path


def _names(db: Path) -> list[str]:
    store = HashStore(db, readonly=True)
    try:
        return [info.name for info in store.lists()]
    finally:
        store.close()


def _meanwhile(
    monkeypatch: pytest.MonkeyPatch, store: HashStore, method: str, action: Callable[[], None]
) -> None:
    """Run `action` (another process's work) when `store` next enters `method`."""
    original = getattr(store, method)

    @contextlib.contextmanager
    def wrapped() -> Iterator[None]:
        monkeypatch.setattr(store, method, original)  # once
        action()
        with original():
            yield

    monkeypatch.setattr(store, method, wrapped)


def _import_elsewhere(db: Path, path: Path, **options: str) -> Callable[[], None]:
    def act() -> None:
        other = HashStore(db)
        try:
            import_list(other, path, **options)  # type: ignore[arg-type]
        finally:
            other.close()

    return act


def test_a_remove_never_deletes_the_list_that_replaced_its_list_meanwhile(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`import new --replace old` meanwhile gave its list old's id: `remove old` deleted it."""
    db = tmp_path / "s.db"
    store = HashStore(db)
    import_list(store, _md5_list(tmp_path / "old.md5", 1), name="old")
    new = _md5_list(tmp_path / "new.md5", 2)
    _meanwhile(
        monkeypatch, store, "_foreign_keys_off", _import_elsewhere(db, new, name="new", replace="old")
    )
    with pytest.raises(StoreError, match="removed or changed by another matcher process"):
        store.remove_list("old")
    store.close()
    assert _names(db) == ["new"]


def test_a_replace_never_deletes_a_list_imported_meanwhile_under_the_old_id(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two `--replace old` at once: both said "replacing 'old'", the first's list was lost."""
    db = tmp_path / "s.db"
    store = HashStore(db)
    import_list(store, _md5_list(tmp_path / "old.md5", 1), name="old")
    other = _md5_list(tmp_path / "a.md5", 2)
    _meanwhile(
        monkeypatch, store, "_bulk_settings", _import_elsewhere(db, other, name="a", replace="old")
    )
    with pytest.raises(StoreError, match="No list named 'old' to replace"):
        import_list(store, _md5_list(tmp_path / "b.md5", 3), name="b", replace="old")
    store.close()
    assert _names(db) == ["a"]


def test_an_import_of_a_file_imported_meanwhile_is_already_imported_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same file imported twice at once went in twice (or under both roles)."""
    db = tmp_path / "s.db"
    store = HashStore(db)
    listed = _md5_list(tmp_path / "list.md5", 4)
    copy = tmp_path / "copy.md5"
    copy.write_bytes(listed.read_bytes())
    _meanwhile(monkeypatch, store, "_bulk_settings", _import_elsewhere(db, listed))
    result = import_list(store, copy, role="notable")
    store.close()
    assert result.already_imported and result.info.name == "list.md5"
    assert _names(db) == ["list.md5"]


def test_a_new_store_another_process_filled_is_not_deleted_by_a_refused_import(
    tmp_path: Path,
) -> None:
    db = tmp_path / "s.db"
    HashStore(db).close()  # made by the refused import
    other = HashStore(db)
    import_list(other, _md5_list(tmp_path / "l.md5", 5))
    other.close()
    assert not remove_store_if_empty(db)
    assert _names(db) == ["l.md5"]
    empty = tmp_path / "e.db"
    HashStore(empty).close()
    assert remove_store_if_empty(empty) and not empty.exists()


def test_a_store_deleted_meanwhile_is_said_at_the_write_not_written_into_the_void(
    tmp_path: Path,
) -> None:
    """A process that opened the new store before a refused import deleted it."""
    db = tmp_path / "s.db"
    store = HashStore(db)
    assert remove_store_if_empty(db)
    with pytest.raises(StoreError, match="deleted or replaced by another matcher process"):
        import_list(store, _md5_list(tmp_path / "l.md5", 6))
    store.close()


def test_a_refused_import_into_a_new_store_cli_leaves_a_store_filled_meanwhile(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The CLI path: the refused import's clean-up found another process's list there."""
    import matcher.importing as importing_mod

    db = tmp_path / "s.db"
    good = _md5_list(tmp_path / "good.md5", 7)
    real = importing_mod.file_sha256

    def refused(path: Path) -> str:
        if path.name == "bad.txt":  # once the refused import has made the new store
            _import_elsewhere(db, good)()
        return real(path)

    monkeypatch.setattr(importing_mod, "file_sha256", refused)
    bad = tmp_path / "bad.txt"
    bad.write_text("this is not a hash list\n")
    result = CliRunner().invoke(cli, ["import", str(bad), "--db", str(db)])
    assert result.exit_code == 2, result.output
    assert _names(db) == ["good.md5"]


def test_a_reader_waits_for_an_import_commit_instead_of_failing_after_5_s(tmp_path: Path) -> None:
    """`lists`, `scan` and `batch` opened the store read-only with sqlite3's 5 s timeout, and
    failed with a bare "database is locked" while an import committed."""
    db = tmp_path / "s.db"
    store = HashStore(db)
    import_list(store, _md5_list(tmp_path / "l.md5", 8))
    store.close()
    holder = sqlite3.connect(db, isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN EXCLUSIVE")
    release = threading.Timer(5.6, holder.rollback)
    release.start()
    try:
        started = time.monotonic()
        assert _names(db) == ["l.md5"]
        assert time.monotonic() - started >= 5.0
    finally:
        release.join()
        holder.close()


def test_lists_given_an_inventory_says_it_is_not_a_store(tmp_path: Path) -> None:
    """An inventory has `meta` and a schema version: `lists --db INVENTORY` went on to a
    traceback, "internal error (no such table: lists)"."""
    inventory = tmp_path / "l.jsonl.inventory.db"
    conn = sqlite3.connect(inventory)
    conn.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT)")
    conn.execute("INSERT INTO meta VALUES ('schema_version', '1')")
    conn.execute("CREATE TABLE entries (path BLOB NOT NULL)")
    conn.commit()
    conn.close()
    result = CliRunner().invoke(cli, ["lists", "--db", str(inventory)])
    assert result.exit_code == 2, result.output
    assert "not a matcher hash store" in result.output and "internal error" not in result.output


def test_the_same_file_imported_meanwhile_under_the_same_name_is_already_imported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two `import big.md5` at once: the second was refused as a clash of names, exit 2."""
    db = tmp_path / "s.db"
    store = HashStore(db)
    listed = _md5_list(tmp_path / "big.md5", 9)
    _meanwhile(monkeypatch, store, "_bulk_settings", _import_elsewhere(db, listed))
    result = import_list(store, listed)
    store.close()
    assert result.already_imported and result.info.name == "big.md5"
    assert _names(db) == ["big.md5"]
