"""Tests for the CSV-with-a-header reader (csv)."""

from __future__ import annotations

import csv
import hashlib
import io
import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from matcher.errors import FormatError
from matcher.formats.csv_list import CsvListReader
from matcher.models import HashRecord

SAMPLES = Path(__file__).parent / "samples" / "synthetic"
TRUTH = json.loads((SAMPLES / "TRUTH.json").read_text())
READER = CsvListReader()
HELLO_MD5 = "5d41402abc4b2a76b9719d911017c592"
EMPTY_MD5 = "d41d8cd98f00b204e9800998ecf8427e"
NSRL_HEADER = (
    b'"SHA-1","MD5","CRC32","FileName","FileSize","ProductCode","OpSystemCode","SpecialCode"'
)


def parse(data: bytes, errors: list[FormatError] | None = None) -> list[HashRecord]:
    on_invalid = errors.append if errors is not None else None
    return list(READER.parse(io.BytesIO(data), source="t.csv", on_invalid=on_invalid))


def test_known_answers_against_truth() -> None:
    records = list(READER.read(SAMPLES / "csv" / "hashes_header.csv"))
    assert records == [
        HashRecord(
            digests={alg: bytes.fromhex(entry[alg]) for alg in ("md5", "sha1", "sha256")},
            size=entry["size"],
            name=entry["name"],
            line=number,
        )
        for number, entry in enumerate(TRUTH, start=2)
    ]
    assert records[2].digests["md5"] == hashlib.md5(b"").digest()


def test_quoted_fields_bom_and_empty_hash_cell() -> None:
    records = list(READER.read(SAMPLES / "csv" / "hashes_quoted_bom.csv"))
    assert records[0].name == 'a,b "quoted".txt'
    assert records[0].digests == {
        "sha256": hashlib.sha256(b"hello").digest(),
        "md5": hashlib.md5(b"hello").digest(),  # upper case in the file
    }
    assert records[1].digests == {"sha256": hashlib.sha256(b"world").digest()}
    assert records[1].label is None  # a "notes" column is not a label


def test_semicolon_and_tab_delimiters() -> None:
    (record,) = READER.read(SAMPLES / "csv" / "hashes_semicolon.csv")
    assert record == HashRecord({"sha1": hashlib.sha1(b"hello").digest()}, name="hello.txt", line=2)
    (tabbed,) = parse(
        b"Name\tSHA 256\tBytes\nhello.txt\t"
        + hashlib.sha256(b"hello").hexdigest().encode()
        + b"\t5\n"
    )
    assert (tabbed.name, tabbed.size, list(tabbed.digests)) == ("hello.txt", 5, ["sha256"])


def test_ident_and_label_kept_verbatim_never_invented() -> None:
    data = b"ID,md5,Category,File Name\r\n 007 ," + EMPTY_MD5.encode() + b",Cat \xe9,\xff.bin\r\n"
    data += b"," + HELLO_MD5.encode() + b",,\r\n"
    first, second = parse(data)
    assert (first.ident, first.label, first.name) == (" 007 ", "Cat é", b"\xff.bin")
    assert (second.ident, second.label, second.name) == (None, None, None)
    (bare,) = parse(b"md5,size\n" + EMPTY_MD5.encode() + b",0\n")
    assert (bare.ident, bare.label, bare.size) == (None, None, 0)


def test_multiline_quoted_name_keeps_line_numbers() -> None:
    data = (
        b"md5,filename\n"
        + EMPTY_MD5.encode()
        + b',"new\nline, ""q"".txt"\n\n'
        + HELLO_MD5.encode()
        + b",after.txt\nzz,bad\n"
    )
    errors: list[FormatError] = []
    records = parse(data, errors)
    assert [(r.name, r.line) for r in records] == [('new\nline, "q".txt', 2), ("after.txt", 5)]
    assert [e.line for e in errors] == [6]


SWALLOW = (
    b"md5,name\n"
    b'5d41402abc4b2a76b9719d911017c592,"abc\n'
    b"7d793037a0760186574b0282f2f435e7,x\n"
    b'd41d8cd98f00b204e9800998ecf8427f,y"\n'
    b"0cc175b9c0f1b6a831c399e269772661,z\n"
)


def test_a_quoted_field_that_swallowed_rows_holding_digests_is_refused_naming_them() -> None:
    """A quote left open joined three entries into one name (it imported, exit 0)."""
    with pytest.raises(FormatError, match="a quoted field runs from line 2 across line 3, which reads as an entry of its own") as caught:
        parse(SWALLOW)
    assert caught.value.line == 2
    errors: list[FormatError] = []
    assert [(r.name, r.line) for r in parse(SWALLOW, errors)] == [("z", 5)]
    assert [e.line for e in errors] == [2]


@pytest.mark.parametrize(
    "name",
    [b"abc\n7d793037a0760186574b0282f2f435e7\nx", b"abc\nd,e\nf", b"7d793037a0760186574b0282f2f435e7,\nx"],
    ids=["digest alone", "two fields", "digest on the first line"],
)
def test_a_quoted_name_spanning_lines_that_are_no_entries_still_imports(name: bytes) -> None:
    [record] = parse(b"md5,name\n" + HELLO_MD5.encode() + b',"' + name + b'"\n')
    assert record.name == name.decode()


@pytest.mark.parametrize(
    ("row", "reason"),
    [
        (b"zz," + b"x", "expected 32 hex digits"),
        (HELLO_MD5.encode(), "expected 2 fields"),
        (HELLO_MD5.encode() + b",n,extra", "expected 2 fields"),
        (b",name only", "no digest"),
        (b'"' + HELLO_MD5.encode() + b'"x,n', "unreadable CSV row"),
        (b"\xe9" * 32 + b",n", "not hex"),
    ],
)
def test_malformed_rows_skip_and_count(row: bytes, reason: str) -> None:
    data = b"md5,name\n" + EMPTY_MD5.encode() + b",a\n" + row + b"\n" + HELLO_MD5.encode() + b",b\n"
    with pytest.raises(FormatError) as caught:
        parse(data)
    assert caught.value.line == 3 and reason in caught.value.reason
    errors: list[FormatError] = []
    assert [r.name for r in parse(data, errors)] == ["a", "b"]
    assert [e.line for e in errors] == [3]


def test_size_column_must_be_a_whole_number() -> None:
    errors: list[FormatError] = []
    parse(
        b"md5,size\n"
        + EMPTY_MD5.encode()
        + b",-1\n"
        + EMPTY_MD5.encode()
        + b","
        + b"9" * 5000
        + b"\n",
        errors,
    )
    assert [e.line for e in errors] == [2, 3]
    assert all("9" * 81 not in str(e) for e in errors)


def test_header_without_hash_column_is_fatal() -> None:
    with pytest.raises(FormatError, match="names no hash column") as caught:
        parse(b"\n\nhash,name\nabc,def\n", [])
    assert caught.value.line == 3
    assert parse(b"") == [] and parse(b"\n\r\n") == []


def test_unterminated_quote_at_end() -> None:
    errors: list[FormatError] = []
    assert parse(b"md5,name\n" + EMPTY_MD5.encode() + b',"open\n', errors) == []
    assert len(errors) == 1 and "unreadable CSV row" in errors[0].reason


names = st.text(min_size=1, max_size=60).map(
    lambda t: t.encode("utf-8", "surrogatepass")
) | st.binary(min_size=1, max_size=255)
rows = st.tuples(
    st.binary(min_size=16, max_size=16) | st.none(),
    st.binary(min_size=32, max_size=32),
    st.integers(min_value=0, max_value=2**63 - 1) | st.none(),
    names,
    st.text(max_size=20),
)


@given(st.lists(rows, max_size=15), st.sampled_from([",", ";", "\t"]), st.booleans())
def test_round_trip(
    items: list[tuple[bytes | None, bytes, int | None, bytes, str]], delimiter: str, bom: bool
) -> None:
    out = io.StringIO(newline="")
    writer = csv.writer(out, delimiter=delimiter)
    writer.writerow(["MD5", "sha-256", "FileSize", "Filename", "label"])
    for md5, sha256, size, name, label in items:
        writer.writerow(
            [
                md5.hex().upper() if md5 else "",
                sha256.hex(),
                "" if size is None else str(size),
                name.decode("utf-8", "surrogateescape"),
                label,
            ]
        )
    data = (b"\xef\xbb\xbf" if bom else b"") + out.getvalue().encode("utf-8", "surrogateescape")
    records = parse(data)
    assert len(records) == len(items)
    for record, (md5, sha256, size, name, label) in zip(records, items, strict=True):
        expected = {"sha256": sha256} | ({"md5": md5} if md5 else {})
        assert record.digests == expected
        assert record.size == size
        assert (record.name.encode() if isinstance(record.name, str) else record.name) == name
        assert record.label == (label or None)


@given(st.binary(max_size=2000), st.sampled_from([b"", b"md5,name,size\n", b"sha1;id\r\n"]))
def test_any_bytes_raise_only_format_error(data: bytes, prefix: bytes) -> None:
    skipped: list[FormatError] = []
    for on_invalid in (None, skipped):
        try:
            parse(prefix + data, on_invalid)
        except FormatError:
            pass


def test_sniff() -> None:
    for sample in ("hashes_header.csv", "hashes_quoted_bom.csv", "hashes_semicolon.csv"):
        assert READER.sniff((SAMPLES / "csv" / sample).read_bytes()), sample
    row = (
        b'"DA39A3EE5E6B4B0D3255BFEF95601890AFD80709","D41D8CD98F00B204E9800998ECF8427E",'
        b'"00000000","a",0,1,"WIN",""\r\n'
    )
    assert not READER.sniff(NSRL_HEADER + b"\r\n" + row)
    assert not READER.sniff(b"MD5\r\n" + HELLO_MD5.upper().encode() + b"\r\n")  # X-Ways
    assert not READER.sniff(
        b"%%%% HASHDEEP-1.0\n%%%% size,md5,filename\n5," + HELLO_MD5.encode() + b",a\n"
    )
    assert not READER.sniff(
        b'"file_id","hashset_id","file_name","directory","hash"\n1,2,"a","b","c"\n'
    )
    assert not READER.sniff(HELLO_MD5.encode() + b"  x,md5,y\n" + HELLO_MD5.encode() + b"  z\n")
    assert not READER.sniff(b"md5,name\n")  # a header alone proves nothing
    assert not READER.sniff(b"md5,name\nnot-hex,a\n")
    assert not READER.sniff(b'{"MD5","x"}\n' + HELLO_MD5.encode() + b",x\n")


MD5_HELLO = "5d41402abc4b2a76b9719d911017c592"
SHA1_HELLO = "aaf4c61ddcc5e8a2dabede0f3b482cd9aea9434d"


@pytest.mark.parametrize("title", ["MD5 Hash", "Hash (MD5)", "md5_hash", "MD5 digest", "MD5 Hash Value"])
def test_a_digest_column_titled_with_words_around_the_algorithm_is_read(title: str) -> None:
    # Before, "MD5 Hash" beside a "SHA1" column was ignored: the MD5s were lost, exit 0.
    [record] = parse(f"{title},SHA1,FileName\n{MD5_HELLO},{SHA1_HELLO},hello.txt\n".encode())
    assert record.digests == {"md5": bytes.fromhex(MD5_HELLO), "sha1": bytes.fromhex(SHA1_HELLO)}


@pytest.mark.parametrize("title", ["MD5 of parent", "md5sum", "SHA1 (first 1 MB)"])
def test_a_column_naming_a_computable_digest_that_is_not_read_refuses_the_list(title: str) -> None:
    with pytest.raises(FormatError, match="names a digest column matcher cannot read") as caught:
        parse(f"md5,{title},name\n{MD5_HELLO},{MD5_HELLO},x\n".encode())
    assert caught.value.line == 1 and repr(title) in caught.value.reason


@pytest.mark.parametrize("title", ["md5sum", "MD5 of parent"])
@pytest.mark.parametrize("delimiter", [",", ";", "\t"])
def test_a_list_whose_only_digest_column_cannot_be_read_names_that_column(
    title: str, delimiter: str
) -> None:
    """Before: "the header row names no hash column; name the format with --format", which
    --format csv said again: the column that kept it from reading was never named."""
    with pytest.raises(FormatError, match="names a digest column matcher cannot read") as caught:
        parse(f"File{delimiter}{title}{delimiter}Size\na.bin{delimiter}{MD5_HELLO}{delimiter}1\n".encode())
    assert caught.value.line == 1 and f"({title!r})" in caught.value.reason


@pytest.mark.parametrize("title", ["CRC32", "SHA-384", "ssdeep"])
def test_a_column_of_a_digest_matcher_never_computes_is_left_aside(title: str) -> None:
    [record] = parse(f"md5,{title},name\n{MD5_HELLO},ab,x\n".encode())
    assert record.digests == {"md5": bytes.fromhex(MD5_HELLO)}


def test_a_bare_cr_inside_a_row_is_named_as_a_lost_line_end() -> None:
    # Python's own words ("universal-newline mode?") pointed at the reader, not the file.
    with pytest.raises(FormatError, match="a CR inside an unquoted field, a line end without its LF") as caught:
        parse(f"md5,name\n{MD5_HELLO},a\r{MD5_HELLO},b\n".encode())
    assert caught.value.line == 2


def test_a_quoted_line_break_in_the_first_data_row_is_still_a_csv_list(tmp_path: Path) -> None:
    """RFC 4180 lets a quoted field hold CR LF; detection read the first data row as one line,
    so such a list was "not recognised" (with --format csv it imported, name kept)."""
    from matcher.formats import registry

    data = (
        b'\xef\xbb\xbf"File name","MD5 Hash","File Size"\r\n'
        b'"a, b\r\nc.txt",' + HELLO_MD5.encode() + b",5\r\n"
        b'"x.txt",' + EMPTY_MD5.encode() + b",0\r\n"
    )
    path = tmp_path / "l.csv"
    path.write_bytes(data)
    assert registry.detect(path).NAME == "csv"
    records = list(READER.read(path))
    assert [r.name for r in records] == ["a, b\r\nc.txt", "x.txt"]
