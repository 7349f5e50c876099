"""Tests for the one-digest-per-line reader (plain)."""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from matcher.errors import FormatError
from matcher.formats.plain import PlainReader
from matcher.models import HashRecord

SAMPLES = Path(__file__).parent / "samples" / "synthetic"
TRUTH = json.loads((SAMPLES / "TRUTH.json").read_text())
READER = PlainReader()
SIZES = {"md5": 16, "sha1": 20, "sha256": 32, "sha512": 64}


def parse(data: bytes, errors: list[FormatError] | None = None) -> list[HashRecord]:
    on_invalid = errors.append if errors is not None else None
    return list(READER.parse(io.BytesIO(data), source="t.txt", on_invalid=on_invalid))


@pytest.mark.parametrize(
    ("sample", "algorithm"),
    [
        ("md5_lower.txt", "md5"),
        ("md5_upper_crlf.txt", "md5"),
        ("sha1.txt", "sha1"),
        ("sha256.txt", "sha256"),
    ],
)
def test_known_answers_against_truth(sample: str, algorithm: str) -> None:
    records = list(READER.read(SAMPLES / "plain" / sample))
    assert [r.digests for r in records] == [
        {algorithm: bytes.fromhex(entry[algorithm])} for entry in TRUTH
    ]
    assert [r.line for r in records] == [1, 2, 3, 4, 5]
    assert all(r.name is None and r.size is None and r.label is None for r in records)


def test_empty_md5_literal_and_sha512_by_length() -> None:
    data = b"d41d8cd98f00b204e9800998ecf8427e\n" + hashlib.sha512(b"").hexdigest().encode()
    records = parse(data)
    assert records[0].digests == {"md5": bytes.fromhex("d41d8cd98f00b204e9800998ecf8427e")}
    assert records[1].digests == {"sha512": hashlib.sha512(b"").digest()}


def test_edge_cases_sample() -> None:
    path = SAMPLES / "plain" / "edge_cases.txt"
    errors: list[FormatError] = []
    records = list(READER.read(path, on_invalid=errors.append))
    assert [(r.line, *r.digests) for r in records] == [
        (3, "md5"),
        (4, "sha1"),
        (5, "md5"),
        (8, "sha256"),
    ]
    assert records[1].digests["sha1"] == hashlib.sha1(b"world").digest()  # upper case, CRLF
    assert records[3].digests["sha256"] == hashlib.sha256(b"").digest()  # no final newline
    assert [(e.line, e.source) for e in errors] == [(6, str(path)), (7, str(path))]
    assert "no supported length" in errors[1].reason
    with pytest.raises(FormatError) as caught:
        list(READER.read(path))
    assert caught.value.line == 6


def test_a_list_cut_inside_its_last_digest_is_refused_naming_the_line() -> None:
    """A SHA-256 list cut 32 digits into its last line was imported whole (exit 0): the stub
    became an MD5 entry, the last one was lost. A last line without its line end, shorter than
    the one digest length of every other line, is refused (or skipped, counted, with
    --skip-invalid). A terminated line, a mixed list, or a longer last line are not judged so."""
    lines = b"".join(hashlib.sha256(b"%d" % i).hexdigest().encode() + b"\n" for i in range(5))
    stub = hashlib.sha256(b"last").hexdigest()[:32].encode()
    with pytest.raises(FormatError, match="cut short") as caught:
        parse(lines + stub)
    assert caught.value.line == 6
    errors: list[FormatError] = []
    assert len(parse(lines + stub, errors)) == 5 and [e.line for e in errors] == [6]
    sha512s = b"".join(hashlib.sha512(b"%d" % i).hexdigest().encode() + b"\n" for i in range(3))
    with pytest.raises(FormatError, match="cut short"):
        parse(sha512s + hashlib.sha512(b"x").hexdigest()[:64].encode())
    assert [*parse(lines + stub + b"\n")[-1].digests] == ["md5"]  # a whole line: an MD5
    mixed = lines + hashlib.sha1(b"a").hexdigest().encode() + b"\n"
    assert [*parse(mixed + stub)[-1].digests] == ["md5"]


def test_a_digest_followed_by_a_name_is_not_plain() -> None:
    with pytest.raises(FormatError, match="expected one hex digest") as caught:
        parse(b"# c\n" + b"ab" * 16 + b"  name.txt\n")
    assert caught.value.line == 2


def test_errors_quote_at_most_80_characters_of_the_line() -> None:
    with pytest.raises(FormatError) as caught:
        parse(b"g" * 4000)
    assert "g" * 81 not in str(caught.value)


digests = st.sampled_from(sorted(SIZES)).flatmap(
    lambda alg: st.tuples(st.just(alg), st.binary(min_size=SIZES[alg], max_size=SIZES[alg]))
)
noise = st.sampled_from([b"", b"# comment", b"   ", b"#", b"\t# indented comment"])


@given(
    st.lists(st.tuples(digests, st.booleans(), noise), max_size=30),
    st.sampled_from([b"\n", b"\r\n"]),
    st.booleans(),
    st.booleans(),
)
def test_round_trip(
    items: list[tuple[tuple[str, bytes], bool, bytes]], newline: bytes, bom: bool, ended: bool
) -> None:
    lines = []
    for (_, raw), upper, extra in items:
        hex_text = raw.hex().upper() if upper else raw.hex()
        lines += [extra, b" " + hex_text.encode() + b" "]
    data = (b"\xef\xbb\xbf" if bom else b"") + newline.join(lines) + (newline if ended else b"")
    earlier = {len(raw) for (_, raw), _, _ in items[:-1]}
    if items and not ended and len(earlier) == 1 and len(items[-1][0][1]) < min(earlier):
        # A last line without its end, shorter than the one length of all others: cut short.
        with pytest.raises(FormatError, match="cut short") as caught:
            parse(data)
        assert caught.value.line == 2 * len(items)
        return
    records = parse(data)
    assert [dict(r.digests) for r in records] == [{alg: raw} for (alg, raw), _, _ in items]
    assert [r.line for r in records] == [2 * i + 2 for i in range(len(items))]


@given(st.binary(max_size=2000))
def test_any_bytes_raise_only_format_error(data: bytes) -> None:
    try:
        parse(data)
    except FormatError:
        pass
    errors: list[FormatError] = []
    parse(data, errors)
    assert all(e.line is not None for e in errors)


def test_sniff() -> None:
    for sample in ("md5_lower.txt", "md5_upper_crlf.txt", "sha256.txt", "edge_cases.txt"):
        assert READER.sniff((SAMPLES / "plain" / sample).read_bytes()), sample
    assert READER.sniff(b"d41d8cd98f00b204e9800998ecf8427e")
    assert not READER.sniff(b"MD5\r\n5D41402ABC4B2A76B9719D911017C592\r\n")  # X-Ways
    assert not READER.sniff(b"d41d8cd98f00b204e9800998ecf8427e  a\n")  # md5sum
    assert not READER.sniff(b"d41d8cd98f00b204e9800998ecf8427e:0:a\n")  # ClamAV
    assert not READER.sniff(b"d41d8cd98f00b204e9800998ecf8427e\nnot,hex\n")
    assert not READER.sniff(b"d41d8cd98f00b204e9800998ecf8427e\nword\nword\nword\n")
    assert not READER.sniff(b"# only a comment\n")
