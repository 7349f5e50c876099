"""Tests for the iLook v3/v4 reader (ilook) and the refusal of iLook v1 sets."""

from __future__ import annotations

import csv
import hashlib
import io
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import store_rows
from hypothesis import given
from hypothesis import strategies as st

from matcher.cli import cli
from matcher.errors import FormatError
from matcher.formats import registry
from matcher.formats.ilook import IlookReader
from matcher.formats.ilook import IlookV1Refusal
from matcher.models import HashRecord

SHARED = Path(__file__).resolve().parent / "shared_samples"  # a copy of ../shared/formats/samples
HASHDEEP = SHARED / "upstream" / "hashdeep"
READER = IlookReader()
V3 = b"V3Hash,HashSHA1,FileName,FilePath,FileSize,HashSHA256,HashSHA384,HashSHA512\n"
V4 = (
    b"V4Hash,HashSHA1,FileName,FilePath,FileSize,HashSHA256,HashSHA384,HashSHA512,"
    b"CreateTime,ModTime,LastAccessTime\n"
)
MD5 = hashlib.md5(b"hello").hexdigest().upper().encode()
SHA1 = hashlib.sha1(b"hello").hexdigest().upper().encode()
SHA256 = hashlib.sha256(b"hello").hexdigest().encode()
SHA384 = hashlib.sha384(b"hello").hexdigest().encode()
SHA512 = hashlib.sha512(b"hello").hexdigest().encode()
# The five files hashed in hashdeep's iLook samples (names, sizes, MD5, SHA-1).
UPSTREAM = [
    ("fccu-docprop-0.1.tar.gz", 10429, "B5E254DF3BB37EFCDFD883D69897770A",
     "2CC793143BBE3BB8A2B9949B53583606885241E1"),
    ("fccu.evtreader.1.1.tar.gz", 9559, "044CF1145CEA5B9F2E1F31C5D4D8016C",
     "E463CB8D316498CA7456683DA87B2C7924BCA117"),
    ("tableau-parm-0.1.0.tar.gz", 21638, "E51313050E8F7D9E21C44F5EF13BC2F0",
     "38D93B95BA824B1DA2787C16890F3023C1312107"),
    ("cdfs-2.6.23.tar.bz2", 26197, "0E838E1B10F91F867E9AE2D2FF6B10D6",
     "E5EBC2727D692AE46E39B9E65A5FA797E913CECA"),
    ("md5deep-2.0.1-001.tar.gz", 203211, "C250D966FF3BF6594A16410B63429AF1",
     "25B831E4DB3190D5613B768F50407BC5C7A9D6E1"),
]  # fmt: skip


def parse(data: bytes, errors: list[FormatError] | None = None) -> list[HashRecord]:
    on_invalid = errors.append if errors is not None else None
    return list(READER.parse(io.BytesIO(data), source="set.hsh", on_invalid=on_invalid))


def expected(folder: str) -> list[HashRecord]:
    return [
        HashRecord(
            digests={"md5": bytes.fromhex(md5), "sha1": bytes.fromhex(sha1)},
            size=size,
            name=folder + name,
            line=line,
        )
        for line, (name, size, md5, sha1) in enumerate(UPSTREAM, start=2)
    ]


def test_registered_with_the_default_role_of_lists_that_do_not_say() -> None:
    assert isinstance(registry.get("ilook"), IlookReader)
    assert READER.DEFAULT_ROLE == registry.get("plain").DEFAULT_ROLE == "notable"


def test_v3_sample() -> None:
    path = HASHDEEP / "sample-hashes" / "ilookv3.hsh"
    assert list(READER.read(path)) == expected("\\")
    assert READER.metadata(path) == {"ilook_version": "3"}


def test_v4_sample() -> None:
    path = HASHDEEP / "sample-hashes" / "ilookv4.hsh"
    assert list(READER.read(path)) == expected("D:\\md5deep\\")
    assert READER.metadata(path) == {"ilook_version": "4"}


def test_v4_test_file_with_a_shifted_last_row() -> None:
    # hashdeep's own test file ends with a row of 12 fields under an
    # 11-column header (no final newline): which field moved cannot be told.
    path = HASHDEEP / "tests" / "testfiles" / "ilookv4.hsh"
    with pytest.raises(FormatError) as caught:
        list(READER.read(path))
    assert str(caught.value) == f"{path}:7: expected 11 fields as in the header row, got 12"
    errors: list[FormatError] = []
    assert list(READER.read(path, errors.append)) == expected("D:\\md5deep\\")
    assert [e.line for e in errors] == [7]


def test_every_supported_digest_column_is_read_and_sha384_is_read_past() -> None:
    data = V3 + MD5 + b"," + SHA1 + b",a.txt,C:\\,5," + SHA256 + b"," + SHA384 + b"," + SHA512
    [record] = parse(data)
    assert record.digests == {
        "md5": hashlib.md5(b"hello").digest(),
        "sha1": hashlib.sha1(b"hello").digest(),
        "sha256": hashlib.sha256(b"hello").digest(),
        "sha512": hashlib.sha512(b"hello").digest(),
    }
    assert (record.name, record.size) == ("C:\\a.txt", 5)


def test_empty_cells_quoting_and_names_that_are_not_utf8() -> None:
    data = (
        V3
        + b",," + b'"x,y.txt",' + b'"D:\\a"' + b",," + SHA256 + b",,\r\n"
        + MD5 + b",,caf\xe9,,,,,\r\n"
    )  # fmt: skip
    records = parse(data)
    assert [(list(r.digests), r.name, r.size, r.line) for r in records] == [
        (["sha256"], "D:\\a\\x,y.txt", None, 2),
        (["md5"], b"caf\xe9", None, 3),
    ]


@pytest.mark.parametrize(
    ("bad_row", "message"),
    [
        (MD5[:-1] + b",,a,,5,,,", "expected 32 hex digits for md5"),
        (b"Z" + MD5[1:] + b",,a,,5,,,", "expected 32 hex digits for md5"),
        (MD5 + b"," + SHA1 + b"00,a,,5,,,", "expected 40 hex digits for sha1"),
        (MD5 + b",\xe9,a,,5,,,", "the sha1 field is not hex"),
        (b",,a,,5,," + SHA384 + b",", "the row has no MD5, SHA-1, SHA-256 or SHA-512 digest"),
        (MD5 + b",,a,,5k,,,", "FileSize is not a whole number: '5k'"),
        (MD5 + b",,a,,5,,", "expected 8 fields as in the header row, got 7"),
        (MD5 + b',,"a"b,,5,,,', "unreadable CSV row"),
    ],
)
def test_bad_rows_name_the_line(bad_row: bytes, message: str) -> None:
    good = MD5 + b",,a,,5,,,\n"
    data = V3 + good + bad_row + b"\n" + good
    with pytest.raises(FormatError, match=message) as caught:
        parse(data)
    assert (caught.value.source, caught.value.line) == ("set.hsh", 3)
    errors: list[FormatError] = []
    assert [r.line for r in parse(data, errors)] == [2, 4]
    assert [e.line for e in errors] == [3]


def test_truncated_file() -> None:
    data = (HASHDEEP / "sample-hashes" / "ilookv4.hsh").read_bytes()
    with pytest.raises(FormatError, match="expected 11 fields") as caught:
        parse(data[: data.index(b"cdfs") + 4])
    assert caught.value.line == 5
    with pytest.raises(FormatError, match="unexpected end of data") as caught:
        parse(V3 + MD5 + b',,"a')
    assert caught.value.line == 2


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "the file is empty"),
        (b"\n\n", "the file is empty"),
        (b"Hash,HashSHA1,FileName\n" + MD5 + b",,a\n", "must start with V3Hash or V4Hash"),
        (b"V1Hash,HashType,SetDescription,FileName,FilePath,FileSize\n", "iLook v1 hash set"),
        (b'"V3Hash,x\n', "the header row cannot be read"),
    ],
)
def test_header_errors_are_fatal_even_when_skipping(data: bytes, message: str) -> None:
    with pytest.raises(FormatError, match=message) as caught:
        parse(data, [])
    assert caught.value.line == 1


def test_v1_sets_are_recognised_and_refused(tmp_path: Path) -> None:
    path = tmp_path / "v1.hsh"
    path.write_bytes(
        b"V1Hash,HashType,SetDescription,FileName,FilePath,FileSize\n" + MD5 + b",1,x,a,\\,5\n"
    )
    assert not READER.sniff(path.read_bytes())
    assert IlookV1Refusal().refuse(path.read_bytes()) is not None
    with pytest.raises(FormatError) as caught:
        registry.detect(path)
    assert str(caught.value).startswith(f"{path}: an iLook v1 hash set (V1Hash,HashType,...)")


def test_sniff() -> None:
    assert READER.sniff(V3) and READER.sniff(V4) and READER.sniff(b"\xef\xbb\xbf" + V4)
    assert READER.sniff(b"v3hash,hashsha1\r\n")
    assert not READER.sniff(b"V3Hashes,x\n")
    assert not READER.sniff(b"md5,sha1\n" + MD5 + b"," + SHA1 + b"\n")
    assert not READER.sniff(b"")


def test_cli_import_and_bad_set_leaves_the_store_unchanged(tmp_path: Path) -> None:
    runner = CliRunner()
    db = tmp_path / "s.db"
    done = runner.invoke(
        cli, ["import", str(HASHDEEP / "sample-hashes" / "ilookv3.hsh"), "--db", str(db)]
    )
    assert done.exit_code == 0, done.output
    assert "imported 5 entries as notable list 'ilookv3.hsh' (ilook)" in done.stderr
    before = store_rows(db)
    bad = HASHDEEP / "tests" / "testfiles" / "ilookv4.hsh"
    result = runner.invoke(cli, ["import", str(bad), "--db", str(db)])
    assert result.exit_code == 2
    assert f"{bad}:7: expected 11 fields as in the header row, got 12" in result.output
    assert store_rows(db) == before


names = st.text(st.characters(blacklist_categories=["Cs"]), max_size=12)
digest_cells = st.tuples(
    st.none() | st.binary(min_size=16, max_size=16),
    st.none() | st.binary(min_size=20, max_size=20),
    st.none() | st.binary(min_size=32, max_size=32),
).filter(lambda cells: any(c is not None for c in cells))


@given(
    st.lists(st.tuples(digest_cells, names, names, st.none() | st.integers(0, 2**63 - 1)), max_size=15),
    st.sampled_from(["\r\n", "\n"]),
)
def test_round_trip(
    items: list[tuple[tuple[bytes | None, bytes | None, bytes | None], str, str, int | None]],
    newline: str,
) -> None:
    out = io.StringIO()
    out.write(V4.decode().replace("\n", newline))
    writer = csv.writer(out, lineterminator=newline, quoting=csv.QUOTE_NONNUMERIC)
    for (md5, sha1, sha256), name, folder, size in items:
        hexes = ["" if d is None else d.hex().upper() for d in (md5, sha1, sha256)]
        cells = [hexes[0], hexes[1], name, folder, "" if size is None else size, hexes[2]]
        writer.writerow(cells + ["", "", "1.1.2008", "", ""])
    records = parse(out.getvalue().encode("utf-8"))
    wanted = []
    for (md5, sha1, sha256), name, folder, size in items:
        found = {a: d for a, d in (("md5", md5), ("sha1", sha1), ("sha256", sha256)) if d}
        sep = "\\" if folder and name and folder[-1] not in "\\/" else ""
        wanted.append((found, folder + sep + name or None, size))
    assert [(dict(r.digests), r.name, r.size) for r in records] == wanted


@given(st.binary(max_size=1500))
def test_any_bytes_raise_only_format_error(data: bytes) -> None:
    for prefix in (b"", V3, V4):
        try:
            parse(prefix + data)
        except FormatError:
            pass
        errors: list[FormatError] = []
        try:
            parse(prefix + data, errors)
        except FormatError as error:
            assert any(w in error.reason for w in ("header row", "file is empty", "iLook"))
        assert all(e.line is not None for e in errors)
