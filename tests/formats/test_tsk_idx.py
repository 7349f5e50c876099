"""Tests for the refusal of TSK hfind indexes (tsk-idx) and for refusals in the registry."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import given
from hypothesis import strategies as st

from matcher.cli import cli
from matcher.errors import FormatError
from matcher.formats import registry
from matcher.formats.tsk_idx import TskIdxRefusal

SHARED = Path(__file__).resolve().parent / "shared_samples"  # a copy of ../shared/formats/samples
REFUSAL = TskIdxRefusal()
TYPE_LINE = b"0" * 41 + b"|md5sum\n"
NAME_LINE = b"0" * 40 + b"1|"
MD5_ENTRY = b"5D41402ABC4B2A76B9719D911017C592|0000000000000000\n"
SHA1_ENTRY = b"A" * 40 + b"|0\r\n"


@pytest.mark.parametrize(
    ("sample", "source"),
    [
        ("synthetic/tsk/list.md5-md5.idx", "list.md5"),
        ("upstream/sleuthkit/testmd5.dat-md5.idx", "testmd5.dat"),
    ],
)
def test_shared_indexes_are_refused_naming_their_source(sample: str, source: str) -> None:
    path = SHARED / sample
    assert not [r.NAME for r in registry.readers() if r.sniff(registry.read_head(path), path)]
    with pytest.raises(FormatError) as caught:
        registry.detect(path)
    assert str(caught.value) == (
        f"{path}: a derived hfind index; import the list it was built from ({source})"
    )


@pytest.mark.parametrize(
    ("data", "built_from"),
    [
        (TYPE_LINE + NAME_LINE + b"C:\\lists\\NSRLFile.txt\r\n", "C:\\lists\\NSRLFile.txt"),
        (b"0" * 41 + b"|nsrl-sha1\r\n" + NAME_LINE + b"nsrl.txt\r\n" + SHA1_ENTRY, "nsrl.txt"),
        (TYPE_LINE, "its name is not in the index"),
        (TYPE_LINE + NAME_LINE + b"\n", "its name is not in the index"),
        (TYPE_LINE + MD5_ENTRY, "its name is not in the index"),
    ],
)
def test_reason_names_the_source_list_when_the_index_has_it(data: bytes, built_from: str) -> None:
    assert REFUSAL.refuse(data) == (
        f"a derived hfind index; import the list it was built from ({built_from})"
    )


def test_idx2_is_refused_by_name_naming_the_source_from_its_idx(tmp_path: Path) -> None:
    (tmp_path / "list.md5-md5.idx").write_bytes(TYPE_LINE + NAME_LINE + b"list.md5\n")
    idx2 = tmp_path / "list.md5-md5.idx2"
    idx2.write_bytes(b"\xff" * 64 + b"\0" * 8)
    with pytest.raises(FormatError) as caught:
        registry.detect(idx2)
    assert str(caught.value) == (
        f"{idx2}: a derived hfind index (the .idx2 bucket table); import the list it was "
        "built from (list.md5)"
    )
    lone = tmp_path / "other-sha1.idx2"
    lone.write_bytes(b"\xff" * 64)
    reason = REFUSAL.refuse(lone.read_bytes(), lone)
    assert reason is not None and "(named on line 2 of other-sha1.idx)" in reason


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"0" * 40 + b"|md5sum\n",  # 40 zeros, not 41
        b"5D41402ABC4B2A76B9719D911017C592|0000000000000000\n",
        b"5d41402abc4b2a76b9719d911017c592  hello.txt\n",
    ],
)
def test_other_files_are_not_refused_as_indexes(data: bytes) -> None:
    assert REFUSAL.refuse(data, None) is None


@given(st.binary(max_size=300))
def test_refuse_never_raises(data: bytes) -> None:
    reason = REFUSAL.refuse(data)
    assert reason is None or reason.startswith("a derived hfind index")


def test_cli_import_of_an_index_exits_2_and_leaves_the_store_unchanged(tmp_path: Path) -> None:
    runner = CliRunner()
    db = tmp_path / "s.db"
    done = runner.invoke(
        cli, ["import", str(SHARED / "synthetic" / "tsk" / "list.md5"), "--db", str(db)]
    )
    assert done.exit_code == 0, done.output
    before = sqlite3.connect(db).execute("SELECT count(*) FROM hashes").fetchone()
    idx = SHARED / "synthetic" / "tsk" / "list.md5-md5.idx"
    result = runner.invoke(cli, ["import", str(idx), "--db", str(db)])
    assert result.exit_code == 2
    assert result.output == (
        f"Error: {idx}: a derived hfind index; import the list it was built from (list.md5)\n"
    )
    assert sqlite3.connect(db).execute("SELECT count(*) FROM hashes").fetchone() == before


class _Dummy:
    NAME = "dummy-refusal"
    DESCRIPTION = "test"

    def refuse(self, head: bytes, path: Path | None = None) -> str | None:
        return "a dummy file, not a hash list" if b"aaaa" in head else None


def test_registry_refusals_duplicates_and_precedence(tmp_path: Path) -> None:
    registry.register_refusal(_Dummy())
    try:
        with pytest.raises(KeyError):
            registry.register_refusal(_Dummy())
        clash = _Dummy()
        clash.NAME = "plain"
        with pytest.raises(KeyError):
            registry.register_refusal(clash)
        path = tmp_path / "x"
        path.write_bytes(b"aaaa\n")
        with pytest.raises(FormatError, match=r": a dummy file, not a hash list$"):
            registry.detect(path)
        # A reader that accepts the file always wins over a refusal.
        path.write_bytes(b"a" * 32 + b"\n")
        assert registry.detect(path).NAME == "plain"
        assert "dummy-refusal" in [r.NAME for r in registry.refusals()]
    finally:
        registry.deregister_refusal("dummy-refusal")
    assert "dummy-refusal" not in [r.NAME for r in registry.refusals()]


def test_unrecognised_file_says_what_it_is_not(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("Some notes about the case.\n")
    with pytest.raises(FormatError) as caught:
        registry.detect(path)
    assert str(caught.value).startswith(
        f"{path}: the list format was not recognised: this is not a hash list in any format "
        "matcher reads; if it is one, name its format with --format (one of: "
    )
