"""A large SQL list's SHA-256 computed while the store writes: same store, same refusals.

DIGEST_ALONGSIDE_MIN_BYTES is lowered to 0 here so that small generated RDS
files take that path; `spy` records which path each import took.
"""

from __future__ import annotations

import hashlib
import shutil
import sqlite3
from pathlib import Path

import pytest

import matcher.importing as importing
from matcher.errors import UsageError
from matcher.importing import BackgroundSha256
from matcher.importing import import_list
from matcher.store import HashStore
from tests.test_import_sql import make_rds
from tests.test_import_sql import rows_for
from tests.test_import_sql import store_content
from tests.test_import_sql import triple


@pytest.fixture
def spy(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """Lowers the threshold; lists the sources whose SHA-256 was computed alongside."""
    monkeypatch.setattr(importing, "DIGEST_ALONGSIDE_MIN_BYTES", 0)
    started: list[Path] = []
    original = BackgroundSha256.start

    def start(self: BackgroundSha256) -> None:
        if self._thread is None:
            started.append(self.path)
        original(self)

    monkeypatch.setattr(BackgroundSha256, "start", start)
    return started


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _rows(db: Path) -> list[tuple[object, ...]]:
    conn = sqlite3.connect(db)
    try:
        return conn.execute("SELECT id, name, source_sha256, entries FROM lists").fetchall()
    finally:
        conn.close()


def test_the_source_sha256_is_recorded_and_the_store_is_that_of_a_plain_import(
    tmp_path: Path, spy: list[Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    source = make_rds(tmp_path / "rds.db", rows_for(200))
    alongside = HashStore(tmp_path / "alongside.db")
    try:
        result = import_list(alongside, source)
    finally:
        alongside.close()
    assert spy == [source]
    assert result.info.source_sha256 == _sha256(source)
    monkeypatch.setattr(importing, "DIGEST_ALONGSIDE_MIN_BYTES", 1 << 60)
    first = HashStore(tmp_path / "first.db")
    try:
        import_list(first, source)
    finally:
        first.close()
    assert spy == [source]  # the second import hashed first
    assert store_content(tmp_path / "alongside.db") == store_content(tmp_path / "first.db")
    assert _rows(tmp_path / "alongside.db") == _rows(tmp_path / "first.db")


def test_a_copy_of_a_stored_list_is_already_imported_and_changes_nothing(
    tmp_path: Path, spy: list[Path]
) -> None:
    source = make_rds(tmp_path / "rds.db", rows_for(50))
    copy = tmp_path / "elsewhere" / "renamed.db"
    copy.parent.mkdir()
    shutil.copyfile(source, copy)
    db = tmp_path / "s.db"
    store = HashStore(db)
    try:
        first = import_list(store, source)
        before = (store_content(db), _rows(db))
        again = import_list(store, copy)
        assert spy == [source, copy]  # a path no list came from: hashed alongside
        assert again.already_imported and again.info == first.info
        assert (store_content(db), _rows(db)) == before
        # Under another role it is refused, and the store is unchanged.
        with pytest.raises(UsageError, match="already imported as the known list"):
            import_list(store, copy, role="notable")
        assert (store_content(db), _rows(db)) == before
    finally:
        store.close()


def test_a_path_a_stored_list_came_from_is_hashed_first(tmp_path: Path, spy: list[Path]) -> None:
    source = make_rds(tmp_path / "rds.db", rows_for(20))
    store = HashStore(tmp_path / "s.db")
    try:
        import_list(store, source)
        again = import_list(store, source)
        assert again.already_imported
        assert spy == [source]  # the second time, before any copy
    finally:
        store.close()


def test_a_replacement_with_the_same_content_is_made(tmp_path: Path, spy: list[Path]) -> None:
    source = make_rds(tmp_path / "rds.db", rows_for(20))
    copy = tmp_path / "copy.db"
    shutil.copyfile(source, copy)
    store = HashStore(tmp_path / "s.db")
    try:
        import_list(store, source, name="nsrl-a")
        result = import_list(store, copy, name="nsrl-b", replace="nsrl-a")
        assert not result.already_imported and result.replaced == "nsrl-a"
        assert [(i.name, i.source_sha256) for i in store.lists()] == [("nsrl-b", _sha256(copy))]
    finally:
        store.close()


def test_a_list_sent_row_by_row_is_checked_before_its_import(
    tmp_path: Path, spy: list[Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    # A package id given as bytes: the SQL copy gives way to a read row by row.
    sha256, sha1, md5 = triple(b"blob id")
    source = make_rds(tmp_path / "rds.db", [*rows_for(10), (sha256, sha1, md5, "b.dll", 3, b"42")])
    copy = tmp_path / "copy.db"
    shutil.copyfile(source, copy)
    copies: list[object] = []
    real = HashStore.add_list_sql

    def add_list_sql(self: HashStore, *args: object, **kwargs: object) -> object:
        copies.append(real(self, *args, **kwargs))  # type: ignore[arg-type]
        return copies[-1]

    monkeypatch.setattr(HashStore, "add_list_sql", add_list_sql)
    db = tmp_path / "s.db"
    store = HashStore(db)
    try:
        first = import_list(store, source)
        assert copies == [None] and spy == [source]
        assert first.info.source_sha256 == _sha256(source) and first.info.entries == 12
        before = (store_content(db), _rows(db))
        again = import_list(store, copy)
        assert copies == [None, None] and spy == [source, copy]
        assert again.already_imported and again.info.name == first.info.name
        assert (store_content(db), _rows(db)) == before
    finally:
        store.close()


def test_a_source_that_cannot_be_hashed_leaves_the_store_unchanged(
    tmp_path: Path, spy: list[Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    def unreadable(self: BackgroundSha256) -> None:
        self._error = OSError(5, "Input/output error", str(self.path))

    monkeypatch.setattr(BackgroundSha256, "_run", unreadable)
    source = make_rds(tmp_path / "rds.db", rows_for(20))
    db = tmp_path / "s.db"
    store = HashStore(db)
    try:
        # A UsageError naming the list (it was the bare OSError: a traceback at the CLI).
        with pytest.raises(UsageError, match=r"Cannot read the list .*rds\.db: EIO: Input/output error"):
            import_list(store, source)
        assert store.lists() == []
        assert store.db.execute("SELECT count(*) FROM hashes").fetchone()[0] == 0
    finally:
        store.close()


def test_stop_ends_the_hash_early_and_result_then_refuses(tmp_path: Path) -> None:
    big = tmp_path / "big.bin"
    big.write_bytes(b"\0" * (8 << 20))
    pending = BackgroundSha256(big)
    pending.stop()  # before start: the thread stops at its first chunk
    pending.start()
    with pytest.raises(RuntimeError, match="stopped before its end"):
        pending.result()
    done = BackgroundSha256(big)
    assert done.result() == hashlib.sha256(big.read_bytes()).hexdigest()


def test_a_copy_under_a_stored_lists_name_is_already_imported_not_a_name_clash(
    tmp_path: Path, spy: list[Path]
) -> None:
    source = make_rds(tmp_path / "RDS.db", rows_for(20))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    copy = elsewhere / "RDS.db"
    shutil.copyfile(source, copy)
    store = HashStore(tmp_path / "s.db")
    try:
        first = import_list(store, source)
        again = import_list(store, copy)  # the same default name, "RDS.db"
        assert again.already_imported and again.info == first.info
        assert spy == [source]  # the copy was hashed first
    finally:
        store.close()


def test_a_replacement_under_the_same_name_is_hashed_alongside(
    tmp_path: Path, spy: list[Path]
) -> None:
    store = HashStore(tmp_path / "s.db")
    try:
        import_list(store, make_rds(tmp_path / "old.db", rows_for(10)), name="nsrl")
        new = make_rds(tmp_path / "new.db", rows_for(30))
        result = import_list(store, new, name="nsrl", replace="nsrl")
        assert spy[-1] == new and result.replaced == "nsrl"
        assert [(i.name, i.entries, i.source_sha256) for i in store.lists()] == [
            ("nsrl", 31, _sha256(new))
        ]
    finally:
        store.close()


@pytest.mark.parametrize("alongside", [True, False])
def test_a_replace_by_the_file_of_another_stored_list_is_refused(
    tmp_path: Path, spy: list[Path], monkeypatch: pytest.MonkeyPatch, alongside: bool
) -> None:
    """`import A.csv --replace B --role known`, A.csv stored already as a notable list: the store
    held the same file twice, once notable, once known, exit 0. Now refused, store unchanged;
    replacing a list by its own file again still works."""
    from matcher.errors import UsageError

    if not alongside:
        monkeypatch.setattr(importing, "DIGEST_ALONGSIDE_MIN_BYTES", 1 << 60)
    first = make_rds(tmp_path / "first.db", rows_for(20))
    other = make_rds(tmp_path / "other.db", [(*triple(b"other"), "o.dll", 1, 1)])
    db = tmp_path / "s.db"
    store = HashStore(db)
    try:
        import_list(store, first, name="first")
        import_list(store, other, name="other")
        before = (_rows(db), store_content(db))
        with pytest.raises(UsageError, match="already imported as the known list 'first'"):
            import_list(store, first, name="again", replace="other", role="notable")
        assert (_rows(db), store_content(db)) == before
        again = import_list(store, first, name="first", replace="first")
        assert again.replaced == "first" and again.info.source_sha256 == _sha256(first)
    finally:
        store.close()
    assert [r[1] for r in _rows(db)] == ["other", "first"]
