"""Tests for the hashdeep 1.0 / md5deep -z reader (hashdeep)."""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from matcher.errors import FormatError
from matcher.formats.hashdeep import HashdeepReader
from matcher.models import HashRecord

SAMPLES = Path(__file__).parent / "samples" / "synthetic"
TRUTH = {entry["name"]: entry for entry in json.loads((SAMPLES / "TRUTH.json").read_text())}
READER = HashdeepReader()
HEADER = (
    b"%%%% HASHDEEP-1.0\n%%%% size,md5,sha256,filename\n## Invoked from: /x\n## $ hashdeep\n## \n"
)
HELLO = b"5,5d41402abc4b2a76b9719d911017c592," + hashlib.sha256(b"hello").hexdigest().encode()


def parse(data: bytes, errors: list[FormatError] | None = None) -> list[HashRecord]:
    on_invalid = errors.append if errors is not None else None
    return list(READER.parse(io.BytesIO(data), source="t.hd", on_invalid=on_invalid))


def test_known_answers_against_truth() -> None:
    records = list(
        READER.read(SAMPLES / "hashdeep" / "hashdeep_md5_sha1_sha256.txt", lambda e: None)
    )
    by_name = {r.name: r for r in records}
    for name, truth in TRUTH.items():
        record = by_name["./" + name]
        assert record.size == truth["size"]
        assert record.digests == {
            alg: bytes.fromhex(truth[alg]) for alg in ("md5", "sha1", "sha256")
        }
    assert by_name["./empty.dat"].digests["md5"].hex() == "d41d8cd98f00b204e9800998ecf8427e"


def test_default_output_with_awkward_names() -> None:
    errors: list[FormatError] = []
    records = list(READER.read(SAMPLES / "hashdeep" / "hashdeep_default.txt", errors.append))
    by_line = {r.line: r for r in records}
    assert by_line[6].name == "./a,b.txt"  # commas belong to the name
    assert by_line[9].name == b"./caf\xe9-latin1.txt"
    assert by_line[10].name == "./café-utf8.txt"
    assert by_line[11].name == "./back\\slash.txt"  # hashdeep never escapes
    assert by_line[15].name == "./cr\rname.txt"
    assert by_line[17].name == "./with space.txt"
    # Note that hashdeep writes a newline in a name raw: the hashes survive on
    # line 13 and the rest of the name is a malformed line 14.
    assert by_line[13].name == "./new"
    assert by_line[13].digests["md5"].hex() == "1a13105b7e4eb5fb2e7c9515ac06aa48"
    assert [e.line for e in errors] == [14]
    assert len(records) == 12


def test_bare_and_audit_lists() -> None:
    bare = list(READER.read(SAMPLES / "hashdeep" / "hashdeep_bare.txt"))
    assert [(r.name, r.size, r.line) for r in bare] == [("hello.txt", 5, 6), ("a,b.txt", 5, 7)]
    assert bare[0].digests["sha256"] == hashlib.sha256(b"hello").digest()
    assert len(list(READER.read(SAMPLES / "hashdeep" / "audit_known.hd"))) == 4


def test_md5deep_size_output() -> None:
    records = list(READER.read(SAMPLES / "hashdeep" / "md5deep_size_z.txt"))
    assert records == [
        HashRecord({"md5": hashlib.md5(b"hello").digest()}, size=5, name="hello.txt", line=1),
        HashRecord({"md5": hashlib.md5(b"world").digest()}, size=5, name="a,b.txt", line=2),
    ]
    wide = b"12345678901  " + b"ab" * 20 + b"  big file\n"
    assert parse(wide)[0].size == 12345678901 and "sha1" in parse(wide)[0].digests


def test_column_order_case_tiger_bom_crlf_and_concatenation() -> None:
    data = (
        b"\xef\xbb\xbf%%%% HASHDEEP-1.0\r\n%%%% SIZE,SHA-256,tiger,MD5,FileName\r\n"
        + b"5,"
        + hashlib.sha256(b"hello").hexdigest().upper().encode()
        + b","
        + b"0" * 48
        + b",5d41402abc4b2a76b9719d911017c592,x\r\n"
        + HEADER
        + HELLO
        + b",y"
    )
    records = parse(data)
    assert [(r.name, r.line) for r in records] == [("x", 3), ("y", 9)]
    assert records[0].digests == records[1].digests
    assert set(records[0].digests) == {"md5", "sha256"}


@pytest.mark.parametrize(
    ("data", "line", "reason"),
    [
        (b"5,abc,def,x\n", 1, "first line must be '%%%% HASHDEEP-1.0'"),
        (b"%%%% HASHDEEP-1.0\n5,a,b,c\n", 2, "must name the columns"),
        (b"%%%% HASHDEEP-1.0\n%%%% md5,filename\n", 2, "size,<hashes>,filename"),
        (b"%%%% HASHDEEP-1.0\n%%%% size,crc32,filename\n", 2, "unknown hashdeep column"),
        (b"%%%% HASHDEEP-1.0\n%%%% size,tiger,filename\n", 2, "no md5, sha1 or sha256"),
    ],
)
def test_bad_headers_are_fatal_even_when_skipping(data: bytes, line: int, reason: str) -> None:
    with pytest.raises(FormatError) as caught:
        parse(data, [])
    assert caught.value.line == line and reason in caught.value.reason


@pytest.mark.parametrize(
    ("record", "reason"),
    [
        (b"x" + HELLO[1:] + b",n", "size is not a whole number"),
        (b"5,5d41402abc4b2a76b9719d911017c59," + b"0" * 64 + b",n", "expected 32 hex digits"),
        (b"5,5d41402abc4b2a76b9719d911017c592", "expected 4 comma-separated fields"),
        (b"1" * 30 + HELLO[1:] + b",n", "size is not a whole number"),
    ],
)
def test_malformed_records_skip_and_count(record: bytes, reason: str) -> None:
    data = HEADER + HELLO + b",a\n" + record + b"\n" + HELLO + b",b\n"
    with pytest.raises(FormatError) as caught:
        parse(data)
    assert caught.value.line == 7 and reason in caught.value.reason
    errors: list[FormatError] = []
    assert [r.name for r in parse(data, errors)] == ["a", "b"]
    assert [e.line for e in errors] == [7]
    assert len(str(errors[0])) < 200


names = st.binary(min_size=1, max_size=255).filter(
    lambda name: b"\n" not in name and not name.endswith(b"\r")
)
rows = st.tuples(
    st.integers(min_value=0, max_value=2**63 - 1),
    st.binary(min_size=16, max_size=16),
    st.binary(min_size=20, max_size=20),
    st.binary(min_size=32, max_size=32),
    names,
)


@given(st.lists(rows, max_size=20))
def test_round_trip(items: list[tuple[int, bytes, bytes, bytes, bytes]]) -> None:
    out = [b"%%%% HASHDEEP-1.0", b"%%%% size,md5,sha1,sha256,filename", b"## $ test"]
    for size, md5, sha1, sha256, name in items:
        out.append(
            b",".join(
                [
                    str(size).encode(),
                    md5.hex().encode(),
                    sha1.hex().encode(),
                    sha256.hex().encode(),
                    name,
                ]
            )
        )
    records = parse(b"\n".join(out) + b"\n")
    assert len(records) == len(items)
    for record, (size, md5, sha1, sha256, name) in zip(records, items, strict=True):
        assert record.size == size
        assert record.digests == {"md5": md5, "sha1": sha1, "sha256": sha256}
        assert (record.name.encode() if isinstance(record.name, str) else record.name) == name


@given(st.binary(max_size=2000), st.sampled_from([b"", HEADER, b"         5  "]))
def test_any_bytes_raise_only_format_error(data: bytes, prefix: bytes) -> None:
    skipped: list[FormatError] = []
    for on_invalid in (None, skipped):
        try:
            parse(prefix + data, on_invalid)
        except FormatError:
            pass


def test_sniff() -> None:
    for sample in ("hashdeep_default.txt", "md5deep_size_z.txt", "audit_known.hd"):
        assert READER.sniff((SAMPLES / "hashdeep" / sample).read_bytes()), sample
    assert READER.sniff(b"\xef\xbb\xbf%%%% HASHDEEP-1.0\r\n")
    assert not READER.sniff((SAMPLES / "hashdeep" / "md5deep_plain.txt").read_bytes())
    assert not READER.sniff(b"%%%% size,md5,filename\n")
    assert not READER.sniff(b"## %%%% HASHDEEP-1.0\n")
    assert not READER.sniff(b"5d41402abc4b2a76b9719d911017c592  5  name\n")
