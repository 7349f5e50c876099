"""Tests for the BSD/tagged "ALG (name) = hex" reader (bsd-tag)."""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from matcher.errors import FormatError
from matcher.formats.bsd_tag import BsdTagReader
from matcher.models import HashRecord

SAMPLES = Path(__file__).parent / "samples" / "synthetic"
TRUTH = {entry["name"]: entry for entry in json.loads((SAMPLES / "TRUTH.json").read_text())}
READER = BsdTagReader()
HELLO_MD5 = "5d41402abc4b2a76b9719d911017c592"
HELLO_BLAKE3 = "ea8f163db38682925e4491c5e58d4bb3506ef8c14eb78a86e908c5624a67200f"
HELLO_BLAKE2B = (
    "e4cfa39a3d37be31c59609e807970799caa68a19bfaa15135f165085e01d41a6"
    "5ba1e1b146aeb6bd0092b49eac214c103ccfa3a365954bbbe52f74a2b3620c94"
)
TAGS = {
    "md5": b"MD5",
    "sha1": b"SHA1",
    "sha256": b"SHA256",
    "sha512": b"SHA512",
    "blake3": b"BLAKE3",
}
SIZES = {"md5": 16, "sha1": 20, "sha256": 32, "sha512": 64, "blake3": 32}


def parse(data: bytes, errors: list[FormatError] | None = None) -> list[HashRecord]:
    on_invalid = errors.append if errors is not None else None
    return list(READER.parse(io.BytesIO(data), source="t.sum", on_invalid=on_invalid))


def tag_line(tag: bytes, name: bytes, digest: bytes) -> bytes:
    """One line as `sha256sum --tag` writes it, escaping included."""
    escaped = b"\\" in name or b"\n" in name or b"\r" in name
    if escaped:
        name = name.replace(b"\\", b"\\\\").replace(b"\n", b"\\n").replace(b"\r", b"\\r")
    return (
        (b"\\" if escaped else b"") + tag + b" (" + name + b") = " + digest.hex().encode() + b"\n"
    )


def test_known_answers_against_truth() -> None:
    records = list(READER.read(SAMPLES / "coreutils" / "sha256sum_tag.txt"))
    assert len(records) == 12
    by_name = {r.name: r for r in records}
    for name, truth in TRUTH.items():
        assert by_name[name].digests == {"sha256": bytes.fromhex(truth["sha256"])}
    assert by_name["back\\slash.txt"].line == 2
    assert by_name["new\nline.txt"].digests["sha256"].hex().startswith("18436534")
    assert by_name["cr\rname.txt"].line == 5
    assert by_name[b"caf\xe9-latin1.txt"].digests["sha256"] == hashlib.sha256(b"").digest()


def test_cksum_default_output() -> None:
    (record,) = READER.read(SAMPLES / "coreutils" / "cksum_sha256_tagged.txt")
    assert record == HashRecord(
        digests={"sha256": hashlib.sha256(b"hello").digest()}, name="hello.txt", line=1
    )


def test_blake3_tag_and_upper_case_hex() -> None:
    data = b"BLAKE3 (hello.txt) = " + HELLO_BLAKE3.encode() + b"\r\n"
    data += b"MD5 (empty) = D41D8CD98F00B204E9800998ECF8427E"
    records = parse(data)
    assert records[0].digests == {"blake3": bytes.fromhex(HELLO_BLAKE3)}
    assert records[1].digests == {"md5": hashlib.md5(b"").digest()}


def test_unsupported_algorithms_are_skippable_errors() -> None:
    data = (
        b"BLAKE2b (hello.txt) = " + HELLO_BLAKE2B.encode() + b"\n"
        b"MD5 (hello.txt) = " + HELLO_MD5.encode() + b"\n"
        b"BLAKE2b-256 (hello.txt) = "
        b"324dcf027dd4a30a932c441f365a25e86b173defa4b8e58948253471b81b72cf\n"
    )
    with pytest.raises(FormatError, match="unsupported algorithm 'BLAKE2b'") as caught:
        parse(data)
    assert caught.value.line == 1
    errors: list[FormatError] = []
    assert [r.line for r in parse(data, errors)] == [2]
    assert [(e.line, "unsupported algorithm" in e.reason) for e in errors] == [(1, True), (3, True)]


def test_name_runs_to_the_last_parenthesis() -> None:
    (record,) = parse(b"MD5 (a) = (b).txt) = " + HELLO_MD5.encode() + b"\n")
    assert record.name == "a) = (b).txt"


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        (b"MD5 (x) = " + b"ab" * 32, "expected 32 hex digits"),
        (b"SHA1 (x) = " + HELLO_MD5.encode(), "expected 40 hex digits"),
        (b"\\MD5 (a\\qb) = " + HELLO_MD5.encode(), "escape other than"),
        (b"MD5(x)= " + HELLO_MD5.encode(), "expected 'ALG (file name) = <hex digest>'"),
        (b"MD5 (x) = zz", "expected 32 hex digits"),
    ],
)
def test_malformed_lines(line: bytes, reason: str) -> None:
    data = (
        b"# c\n"
        + tag_line(b"MD5", b"a", b"\0" * 16)
        + line
        + b"\n"
        + tag_line(b"MD5", b"b", b"\1" * 16)
    )
    with pytest.raises(FormatError) as caught:
        parse(data)
    assert caught.value.line == 3 and reason in caught.value.reason
    errors: list[FormatError] = []
    assert [r.name for r in parse(data, errors)] == ["a", "b"]
    assert [e.line for e in errors] == [3]


def test_awkward_names() -> None:
    names = [b"n" * 251 + b".txt", b"with space, comma.txt", b"x\\y\nz\r", b"\xff\xfe"]
    data = b"".join(tag_line(b"SHA1", name, b"\7" * 20) for name in names)
    got = [r.name for r in parse(data)]
    assert got == ["n" * 251 + ".txt", "with space, comma.txt", "x\\y\nz\r", b"\xff\xfe"]


def test_errors_quote_at_most_80_characters_of_the_line() -> None:
    with pytest.raises(FormatError) as caught:
        parse(b"MD5 (" + b"q" * 5000 + b") = nothex\n")
    assert "q" * 81 not in str(caught.value)


entries = st.tuples(
    st.sampled_from(sorted(TAGS)),
    st.binary(min_size=64, max_size=64),
    st.binary(min_size=1, max_size=255).filter(lambda name: b"\0" not in name),
)


@given(st.lists(entries, max_size=20), st.booleans())
def test_round_trip(items: list[tuple[str, bytes, bytes]], crlf: bool) -> None:
    data = b"".join(tag_line(TAGS[alg], name, raw[: SIZES[alg]]) for alg, raw, name in items)
    if crlf:
        data = data.replace(b"\n", b"\r\n")
    records = parse(data)
    assert len(records) == len(items)
    for record, (alg, raw, name) in zip(records, items, strict=True):
        assert record.digests == {alg: raw[: SIZES[alg]]}
        assert (record.name.encode() if isinstance(record.name, str) else record.name) == name


@given(st.binary(max_size=2000))
def test_any_bytes_raise_only_format_error(data: bytes) -> None:
    try:
        parse(data)
    except FormatError:
        pass
    errors: list[FormatError] = []
    parse(data, errors)
    assert all(e.line is not None for e in errors)


@given(st.lists(st.sampled_from([b"MD5 (", b") = ", b"\\", b"ab", b"\n", b"\r", b" ", b"x"])))
def test_tag_like_bytes_raise_only_format_error(pieces: list[bytes]) -> None:
    try:
        parse(b"".join(pieces))
    except FormatError:
        pass


def test_sniff() -> None:
    assert READER.sniff((SAMPLES / "coreutils" / "sha256sum_tag.txt").read_bytes())
    assert READER.sniff(b"BLAKE2b (a) = " + HELLO_BLAKE2B.encode() + b"\n")
    assert READER.sniff(b"\\MD5 (a\\nb) = " + HELLO_MD5.encode())
    assert not READER.sniff(HELLO_MD5.encode() + b"  MD5 (a) = b\n")
    assert not READER.sniff(b"MD5 (a) = not hex\n")
    assert not READER.sniff(b"MD5\r\n" + HELLO_MD5.encode() + b"\r\n")  # X-Ways
    assert not READER.sniff(b"")
