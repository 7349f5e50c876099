"""Tests for the HashKeeper reader (hashkeeper): .hsh sets, .hke set descriptions."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import store_rows
from hypothesis import given
from hypothesis import strategies as st

from matcher.cli import cli
from matcher.errors import FormatError
from matcher.formats import registry
from matcher.formats.hashkeeper import HashkeeperReader
from matcher.formats.hashkeeper import HkeRefusal
from matcher.models import HashRecord

SHARED = Path(__file__).resolve().parent / "shared_samples"  # a copy of ../shared/formats/samples
SYNTHETIC = SHARED / "synthetic" / "hashkeeper"
Z00236 = SHARED / "upstream" / "hashdeep" / "sample-hashes" / "hashkeeper"
TRUTH = {e["name"]: e for e in json.loads((SHARED / "synthetic" / "TRUTH.json").read_text())}
READER = HashkeeperReader()
HEADER = (
    b'"file_id","hashset_id","file_name","directory","hash","file_size","date_modified",'
    b'"time_modified","time_zone","comments","date_accessed","time_accessed"\r\n'
)
HKE_HEADER = (
    b'"hashset_id","name","vendor","package","version","authenicated_flag","notable_flag",'
    b'"initials","num_of_files","description","date_loaded"\r\n'
)
HELLO = hashlib.md5(b"hello").hexdigest().upper().encode()


def parse(data: bytes, errors: list[FormatError] | None = None) -> list[HashRecord]:
    on_invalid = errors.append if errors is not None else None
    return list(READER.parse(io.BytesIO(data), source="set.hsh", on_invalid=on_invalid))


def row(md5: bytes = HELLO, name: bytes = b'"hello.txt"', size: bytes = b"5") -> bytes:
    return b"1,900," + name + b',"C:\\test","' + md5 + b'",' + size + b",,,,,,\r\n"


def md5(name: str) -> bytes:
    return bytes.fromhex(TRUTH[name]["md5"])


def test_registered_with_the_default_role_of_lists_that_do_not_say() -> None:
    assert isinstance(registry.get("hashkeeper"), HashkeeperReader)
    assert READER.DEFAULT_ROLE == registry.get("plain").DEFAULT_ROLE == "notable"


def test_synthetic_sample_against_truth() -> None:
    records = list(READER.read(SYNTHETIC / "synthetic.hsh"))
    assert records == [
        HashRecord({"md5": md5("hello.txt")}, 5, "C:\\test\\hello.txt", "1", None, 2),
        HashRecord({"md5": md5("world.txt")}, 5, "C:\\test\\a,b.txt", "2", None, 3),
        HashRecord({"md5": md5("empty.dat")}, 0, "empty.dat", "3", None, 4),
    ]


def test_real_set_z00236() -> None:
    path = Z00236 / "Z00236.hsh"
    records = list(READER.read(path))
    assert len(records) == 6994
    assert records[0] == HashRecord(
        digests={"md5": bytes.fromhex("9497ACF3CF8A2E90AE82DAE37B6373E4")},
        size=91136,
        name="acsetups.pdb",
        ident="4151044",
        line=2,
    )
    # The last row's hash is in lower case; the file ends with a blank line.
    assert records[-1].digests["md5"].hex() == "b24defa2e80aa94c5e27012d9624218b"
    assert records[-1].line == 6995
    assert all(list(r.digests) == ["md5"] for r in records)


def test_set_description_beside_the_list_becomes_metadata() -> None:
    assert READER.metadata(Z00236 / "Z00236.hsh") == {
        "hashset_id": "671",
        "set_name": "Z00236 Microsoft Windows 2000 Server",
        "vendor": "Microsoft",
        "package": "Windows 2000 Server",
        "version": "2000 Server",
        "authenticated_flag": "1",
        "notable_flag": "0",
        "initials": "ndic",
        "num_of_files": "0",
        "description": "Microsoft Windows 2000 Server",
        "date_loaded": "2/22/02 13:41:29",
        "set_description_file": "Z00236.hke",
        "suggested_role": "known",
    }
    assert READER.metadata(SYNTHETIC / "synthetic.hsh")["suggested_role"] == "known"


def test_a_description_of_another_set_is_not_used(tmp_path: Path) -> None:
    shutil.copy(SYNTHETIC / "synthetic.hsh", tmp_path / "set.hsh")
    (tmp_path / "set.HKE").write_bytes(HKE_HEADER + b'901,"Other",,,,1,1,,1,,\r\n')
    info = READER.metadata(tmp_path / "set.hsh")
    assert info == {
        "hashset_id": "900",
        "set_description_ignored": "set.HKE describes no set with this list's hashset_id 900",
    }


def test_an_unreadable_description_is_not_used_and_says_why(tmp_path: Path) -> None:
    shutil.copy(SYNTHETIC / "synthetic.hsh", tmp_path / "set.hsh")
    (tmp_path / "set.hke").write_bytes(HKE_HEADER + b'900,"Short"\r\n')
    info = READER.metadata(tmp_path / "set.hsh")
    assert info["set_description_ignored"].startswith("set.hke: ")
    assert "expected 11 fields" in info["set_description_ignored"]
    assert "set_name" not in info and "suggested_role" not in info


def test_without_a_description_only_the_hashset_id_is_kept(tmp_path: Path) -> None:
    shutil.copy(SYNTHETIC / "synthetic.hsh", tmp_path / "set.hsh")
    assert READER.metadata(tmp_path / "set.hsh") == {"hashset_id": "900"}


@pytest.mark.parametrize("folder", [SYNTHETIC, Z00236])
def test_set_description_is_refused_naming_the_hsh(folder: Path) -> None:
    hke = next(folder.glob("*.hke"))
    with pytest.raises(FormatError) as caught:
        registry.detect(hke)
    message = str(caught.value)
    assert message.startswith(
        f"{hke}: a HashKeeper set description (.hke), not a hash list: import the set's .hsh "
        f"({hke.stem}.hsh) instead;"
    )
    assert "notable_flag 0: known-good" in message
    assert "the role is what --role says (notable by default)" in message
    # Named with --format, it is refused the same way.
    with pytest.raises(FormatError, match=r"a HashKeeper set description \(\.hke\)"):
        list(READER.read(hke))
    with pytest.raises(FormatError, match=r"a HashKeeper set description \(\.hke\)"):
        parse(hke.read_bytes())


def test_lone_set_description_is_refused_without_a_name(tmp_path: Path) -> None:
    hke = tmp_path / "lone.hke"
    hke.write_bytes(HKE_HEADER + b'5,"Lone",,,,1,1,,1,,\r\n')
    reason = HkeRefusal().refuse(hke.read_bytes(), hke)
    assert reason is not None
    assert "import the set's .hsh instead" in reason and "notable_flag 1: notable" in reason


def test_names_and_sizes() -> None:
    data = (
        HEADER
        + b'7,1,"x.bin","D:\\dir\\",' + b'"' + HELLO + b'",,,,,,,\r\n'
        + b'8,1,,"D:\\only-dir","' + HELLO + b'",1,,,,,,\r\n'
        + b'9,1,"caf\xe9.txt",,"' + HELLO.lower() + b'",2,,,,,,\n'
        + b'10,1,"two\nlines",,"' + HELLO + b'",3,,,,,,\n'
    )  # fmt: skip
    records = parse(data)
    assert [(r.name, r.size, r.ident, r.line) for r in records] == [
        ("D:\\dir\\x.bin", None, "7", 2),
        ("D:\\only-dir", 1, "8", 3),
        (b"caf\xe9.txt", 2, "9", 4),  # not UTF-8: kept as bytes
        ("two\nlines", 3, "10", 5),
    ]


def test_columns_are_found_by_name_in_any_order() -> None:
    data = b"hash,file_name,directory,file_size\n" + HELLO + b",a.txt,,5\n"
    assert parse(data) == [HashRecord({"md5": md5("hello.txt")}, 5, "a.txt", None, None, 2)]


@pytest.mark.parametrize(
    ("bad_row", "message"),
    [
        (row(md5=HELLO[:-1]), "expected 32 hex digits for md5"),
        (row(md5=HELLO + b"00000000"), "expected 32 hex digits for md5"),
        (row(md5=b"Z" + HELLO[1:]), "expected 32 hex digits for md5"),
        (row(md5=b"\xe9" + HELLO[1:]), "the hash is not hex"),
        (row(md5=b""), "the hash field is empty"),
        (row(size=b"-5"), "file_size is not a whole number: '-5'"),
        (row(size=b"5,6"), "expected 12 fields as in the header row, got 13"),
        (b'1,900,"a"b",,"' + HELLO + b'",5,,,,,,\r\n', "unreadable CSV row"),
    ],
)
def test_bad_rows_name_the_line(bad_row: bytes, message: str) -> None:
    data = HEADER + row() + bad_row + row()
    with pytest.raises(FormatError, match=message) as caught:
        parse(data)
    assert (caught.value.source, caught.value.line) == ("set.hsh", 3)
    errors: list[FormatError] = []
    assert [r.line for r in parse(data, errors)] == [2, 4]
    assert [e.line for e in errors] == [3]


def test_a_quoted_field_that_swallowed_rows_holding_digests_is_refused() -> None:
    """A quote left open joined two entries into one name (it imported, exit 0)."""
    world = md5("world.txt").hex().encode()
    data = HEADER + b'1,900,"a.txt\r\n1,900,b.txt,C:\\test,' + world + b',5,,,,,,\r\n2,900,c.txt",C:\\test,' + HELLO + b",5,,,,,,\r\n"
    with pytest.raises(FormatError, match="runs from line 2 across line 3, which reads as an entry") as caught:
        parse(data)
    assert caught.value.line == 2
    [record] = parse(HEADER + row(name=b'"a\r\nb.txt"'))
    assert record.name == "C:\\test\\a\r\nb.txt"


def test_truncated_file() -> None:
    data = (SYNTHETIC / "synthetic.hsh").read_bytes()
    cut = data[: data.index(b"a,b.txt") + 3]  # inside a quoted name
    with pytest.raises(FormatError, match="unexpected end of data") as caught:
        parse(cut)
    assert caught.value.line == 3
    cut = data[: data.index(b"7D793037") + 10]  # inside the quoted hash
    with pytest.raises(FormatError) as caught:
        parse(cut)
    assert caught.value.line == 3


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "the file is empty"),
        (b"\r\n\r\n", "the file is empty"),
        (b'"file_id","hashset_id","file_name","directory","md5"\r\n1,2,"a",,"x"\r\n', 'no "hash"'),
        (b'"a","b\r\n', "the header row cannot be read"),
    ],
)
def test_header_errors_are_fatal_even_when_skipping(data: bytes, message: str) -> None:
    with pytest.raises(FormatError, match=message) as caught:
        parse(data, [])
    assert caught.value.line == 1


def test_sniff() -> None:
    assert READER.sniff(HEADER)
    assert READER.sniff(b"\xef\xbb\xbf" + HEADER.replace(b"\r\n", b"\n"))
    assert READER.sniff(b"file_id,hashset_id,file_name,directory,hash\n")
    assert not READER.sniff(HKE_HEADER)
    assert not READER.sniff(b'"file_id","file_name","hash"\r\n')
    assert not READER.sniff(b"md5,sha1\n" + b"a" * 32 + b"," + b"b" * 40 + b"\n")
    assert not READER.sniff(b"")


def test_cli_role_defaults_to_notable_and_explicit_role_wins(tmp_path: Path) -> None:
    runner = CliRunner()
    db = tmp_path / "s.db"
    result = runner.invoke(cli, ["import", str(SYNTHETIC / "synthetic.hsh"), "--db", str(db)])
    assert result.exit_code == 0, result.output
    assert "as notable list 'synthetic.hsh' (hashkeeper)" in result.stderr
    listed = json.loads(runner.invoke(cli, ["lists", "--db", str(db), "--json"]).stdout)
    assert listed[0]["metadata"]["notable_flag"] == "0"
    assert listed[0]["metadata"]["suggested_role"] == "known"
    assert listed[0]["role"] == "notable"
    other = tmp_path / "o.db"
    result = runner.invoke(
        cli, ["import", str(Z00236 / "Z00236.hsh"), "--db", str(other), "--role", "known"]
    )
    assert result.exit_code == 0, result.output
    assert "imported 6,994 entries as known list" in result.stderr


def test_cli_bad_set_leaves_the_store_unchanged(tmp_path: Path) -> None:
    runner = CliRunner()
    db = tmp_path / "s.db"
    assert (
        runner.invoke(cli, ["import", str(SYNTHETIC / "synthetic.hsh"), "--db", str(db)]).exit_code
        == 0
    )
    before = store_rows(db)
    bad = tmp_path / "bad.hsh"
    bad.write_bytes(HEADER + row() + row(md5=HELLO[:30]))
    result = runner.invoke(cli, ["import", str(bad), "--db", str(db)])
    assert result.exit_code == 2
    assert f"{bad}:3: expected 32 hex digits for md5" in result.output
    hke = runner.invoke(cli, ["import", str(SYNTHETIC / "synthetic.hke"), "--db", str(db)])
    assert hke.exit_code == 2 and "HashKeeper set description" in hke.output
    assert store_rows(db) == before


names = st.text(st.characters(blacklist_categories=["Cs"]), max_size=12)
entries = st.tuples(
    st.integers(min_value=0, max_value=2**40),
    st.binary(min_size=16, max_size=16),
    names,
    names,
    st.none() | st.integers(min_value=0, max_value=2**63 - 1),
)


@given(st.lists(entries, max_size=15), st.sampled_from(["\r\n", "\n"]), st.booleans())
def test_round_trip(
    items: list[tuple[int, bytes, str, str, int | None]], newline: str, upper: bool
) -> None:
    out = io.StringIO()
    # Note that HashKeeper quotes every string and no number, as QUOTE_NONNUMERIC does.
    writer = csv.writer(out, lineterminator=newline, quoting=csv.QUOTE_NONNUMERIC)
    out.write(HEADER.decode().replace("\r\n", newline))
    for file_id, digest, directory, name, size in items:
        hex_text = digest.hex().upper() if upper else digest.hex()
        writer.writerow(
            [file_id, 900, name, directory, hex_text, "" if size is None else size] + [""] * 6
        )
    records = parse(out.getvalue().encode("utf-8"))
    expected = []
    for file_id, digest, directory, name, size in items:
        joined = (
            directory + ("\\" if directory and name and directory[-1] not in "\\/" else "") + name
        )
        expected.append(({"md5": digest}, size, joined or None, str(file_id)))
    assert [(dict(r.digests), r.size, r.name, r.ident) for r in records] == expected


@given(st.binary(max_size=1500))
def test_any_bytes_raise_only_format_error(data: bytes) -> None:
    for prefix in (b"", HEADER):
        try:
            parse(prefix + data)
        except FormatError:
            pass
        errors: list[FormatError] = []
        try:
            parse(prefix + data, errors)
        except FormatError as error:
            # Only the header row (or its absence) is fatal.
            assert any(w in error.reason for w in ("header row", "file is empty", "(.hke)"))
        assert all(e.line is not None for e in errors)
