"""Tests for the X-Ways Forensics hash-set text reader (xways)."""

from __future__ import annotations

import base64
import hashlib
import io
import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import store_rows
from hypothesis import given
from hypothesis import strategies as st

from matcher.cli import cli
from matcher.errors import FormatError
from matcher.formats import registry
from matcher.formats.gnu_sum import MAX_RECORD
from matcher.formats.xways import XwaysReader
from matcher.models import HashRecord

SHARED = Path(__file__).resolve().parent / "shared_samples"  # a copy of ../shared/formats/samples
SAMPLES = SHARED / "synthetic" / "xways"
TRUTH = json.loads((SHARED / "synthetic" / "TRUTH.json").read_text())
READER = XwaysReader()
SIZES = {"md5": 16, "sha1": 20, "sha256": 32, "sha512": 64}
TYPE_LINES = {"md5": b"MD5", "sha1": b"SHA-1", "sha256": b"SHA-256", "sha512": b"SHA-512"}
HELLO_SHA1 = hashlib.sha1(b"hello").digest()


def parse(data: bytes, errors: list[FormatError] | None = None) -> list[HashRecord]:
    on_invalid = errors.append if errors is not None else None
    return list(READER.parse(io.BytesIO(data), source="set.txt", on_invalid=on_invalid))


def test_registered_with_the_default_role_of_lists_that_do_not_say() -> None:
    assert isinstance(registry.get("xways"), XwaysReader)
    assert READER.DEFAULT_ROLE == registry.get("plain").DEFAULT_ROLE == "notable"


@pytest.mark.parametrize(("sample", "algorithm"), [("md5.txt", "md5"), ("sha1.txt", "sha1")])
def test_shared_samples_against_truth(sample: str, algorithm: str) -> None:
    path = SAMPLES / sample
    assert READER.sniff(registry.read_head(path), path)
    records = list(READER.read(path))
    assert [dict(r.digests) for r in records] == [
        {algorithm: bytes.fromhex(entry[algorithm])} for entry in TRUTH
    ]
    assert [r.line for r in records] == [2, 3, 4, 5, 6]
    assert all(r.name is None and r.size is None and r.ident is None for r in records)


def test_metadata_keeps_the_type_line_and_the_set_name() -> None:
    assert READER.metadata(SAMPLES / "sha1.txt") == {"hash_type": "SHA-1", "set_name": "sha1"}


@pytest.mark.parametrize(
    ("first", "algorithm"),
    [
        (b"MD5", "md5"),
        (b"md5", "md5"),
        (b"  Md5  ", "md5"),
        (b"SHA-1", "sha1"),
        (b"SHA1", "sha1"),
        (b"sha_1", "sha1"),
        (b"SHA 1", "sha1"),
        (b"SHA-256", "sha256"),
        (b"sha256", "sha256"),
        (b"SHA2-256", "sha256"),
        (b"SHA-512", "sha512"),
    ],
)
def test_type_line_is_read_liberally(first: bytes, algorithm: str) -> None:
    digest = hashlib.new(algorithm, b"hello").digest()
    data = b"\xef\xbb\xbf" + first + b"\n" + digest.hex().encode() + b"\n"
    assert READER.sniff(data)
    assert parse(data) == [HashRecord(digests={algorithm: digest}, line=2)]


def test_base32_sha1_upper_and_lower_case() -> None:
    encoded = base64.b32encode(HELLO_SHA1)
    assert len(encoded) == 32
    data = b"SHA-1\r\n" + encoded + b"\r\n" + encoded.lower() + b"\r\n" + HELLO_SHA1.hex().encode()
    assert READER.sniff(data)
    assert [r.digests for r in parse(data)] == [{"sha1": HELLO_SHA1}] * 3


def test_base32_is_not_accepted_for_md5() -> None:
    data = b"MD5\n" + base64.b32encode(hashlib.md5(b"x").digest() + b"\0\0\0\0")[:32] + b"\n"
    with pytest.raises(FormatError, match="expected 32 hex digits for md5") as caught:
        parse(data)
    assert caught.value.line == 2


def test_blank_lines_surrounding_blanks_and_no_final_newline() -> None:
    hello = hashlib.md5(b"hello").hexdigest().upper().encode()
    records = parse(b"\r\nMD5\r\n\r\n  " + hello + b"\t\r\n\r\n" + hello.lower())
    assert [(r.line, r.digests["md5"].hex()) for r in records] == [
        (4, hello.lower().decode()),
        (6, hello.lower().decode()),
    ]


@pytest.mark.parametrize(
    ("data", "line", "message"),
    [
        (b"MD5\n" + b"g" * 32 + b"\n", 2, "expected 32 hex digits for md5"),
        (b"MD5\n" + b"a" * 31 + b"\n", 2, "expected 32 hex digits for md5, got 'aaa"),
        (b"MD5\n" + b"a" * 32 + b"\n" + b"a" * 40 + b"\n", 3, "expected 32 hex digits"),
        (b"SHA-1\n" + b"a" * 32 + b"\n" + b"8" * 32 + b"\n", 3, "or 32 Base32 characters"),
        (b"SHA-256\n" + b"a" * 64 + b"\n" + b"a" * 63, 3, "expected 64 hex digits"),
        (b"MD5\n" + b"a" * 32 + b"  name.txt\n", 2, "expected 32 hex digits"),
        (b"MD5\n" + b"\xff" * 32 + b"\n", 2, "expected 32 hex digits"),
    ],
)
def test_bad_hash_lines_name_the_line(data: bytes, line: int, message: str) -> None:
    with pytest.raises(FormatError, match=message) as caught:
        parse(data)
    assert (caught.value.source, caught.value.line) == ("set.txt", line)
    assert str(caught.value).startswith(f"set.txt:{line}: ")


def test_truncated_file_reports_its_cut_last_line() -> None:
    whole = (SAMPLES / "md5.txt").read_bytes()
    with pytest.raises(FormatError, match="expected 32 hex digits") as caught:
        parse(whole[:-10])
    assert caught.value.line == 6


def test_skip_invalid_keeps_the_good_lines() -> None:
    errors: list[FormatError] = []
    records = parse(b"MD5\n" + b"a" * 32 + b"\nnope\n" + b"b" * 32 + b"\n", errors)
    assert [r.line for r in records] == [2, 4]
    assert [(e.line, e.source) for e in errors] == [(3, "set.txt")]


def test_overlong_line_is_reported_not_buffered() -> None:
    errors: list[FormatError] = []
    records = parse(b"MD5\n" + b"a" * (3 * MAX_RECORD) + b"\n" + b"b" * 32 + b"\n", errors)
    assert [r.line for r in records] == [3]
    assert errors[0].line == 2 and "longer than" in errors[0].reason


@pytest.mark.parametrize("data", [b"", b"\n\r\n  \n", b"\xef\xbb\xbf"])
def test_empty_file_is_refused(data: bytes) -> None:
    with pytest.raises(FormatError, match="the file is empty") as caught:
        parse(data)
    assert caught.value.line == 1


@pytest.mark.parametrize(
    "first", [b"5d41402abc4b2a76b9719d911017c592", b"MD-4 hashes", b"# MD5", b"CRC"]
)
def test_wrong_first_line_is_fatal_even_when_skipping(first: bytes) -> None:
    with pytest.raises(FormatError, match="must name the hash type") as caught:
        parse(first + b"\n" + b"a" * 32 + b"\n", [])
    assert caught.value.line == 1


@pytest.mark.parametrize(("first", "shown"), [(b"RIPEMD-160", "RIPEMD-160"), (b"crc32", "CRC32")])
def test_types_matcher_cannot_use_are_recognised_and_refused(first: bytes, shown: str) -> None:
    data = first + b"\r\n" + b"a" * 40 + b"\r\n"
    assert READER.sniff(data)
    with pytest.raises(FormatError, match=f"an X-Ways hash set of {shown} hashes") as caught:
        parse(data, [])
    assert caught.value.line == 1


@pytest.mark.parametrize(
    "head",
    [
        b"5d41402abc4b2a76b9719d911017c592\n",  # a plain list
        b"MD5 (a) = 5d41402abc4b2a76b9719d911017c592\n",  # tagged
        b"MD5\n5d41402abc4b2a76b9719d911017c592  hello.txt\n",  # md5sum after a title
        b"MD5\n" + b"a" * 40 + b"\n" + b"b" * 40 + b"\n",  # SHA-1s under MD5
        b"md5,sha1\n" + b"a" * 32 + b"," + b"b" * 40 + b"\n",  # CSV
        b"",
    ],
)
def test_sniff_refuses_other_shapes(head: bytes) -> None:
    assert not READER.sniff(head)


def test_cli_import_and_bad_set_leaves_the_store_unchanged(tmp_path: Path) -> None:
    runner = CliRunner()
    db = tmp_path / "s.db"
    done = runner.invoke(cli, ["import", str(SAMPLES / "sha1.txt"), "--db", str(db)])
    assert done.exit_code == 0, done.output
    assert "as notable list 'sha1.txt' (xways)" in done.stderr
    before = store_rows(db)
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"SHA-256\r\n" + b"a" * 64 + b"\r\n" + b"a" * 65 + b"\r\n")
    result = runner.invoke(cli, ["import", str(bad), "--db", str(db)])
    assert result.exit_code == 2
    assert f"{bad}:3: expected 64 hex digits for sha256" in result.output
    assert store_rows(db) == before


digests = st.sampled_from(sorted(SIZES)).flatmap(
    lambda alg: st.tuples(
        st.just(alg), st.lists(st.binary(min_size=SIZES[alg], max_size=SIZES[alg]), max_size=20)
    )
)


@given(
    digests,
    st.lists(st.sampled_from(["upper", "lower", "base32"]), min_size=20, max_size=20),
    st.sampled_from([b"\r\n", b"\n"]),
    st.booleans(),
)
def test_round_trip(
    content: tuple[str, list[bytes]], forms: list[str], newline: bytes, final: bool
) -> None:
    algorithm, raws = content
    lines = [TYPE_LINES[algorithm]]
    for raw, form in zip(raws, forms, strict=False):
        if form == "base32" and algorithm == "sha1":
            lines.append(base64.b32encode(raw))
        else:
            lines.append(raw.hex().upper().encode() if form == "upper" else raw.hex().encode())
    data = newline.join(lines) + (newline if final else b"")
    assert READER.sniff(data)
    records = parse(data)
    assert [dict(r.digests) for r in records] == [{algorithm: raw} for raw in raws]
    assert [r.line for r in records] == list(range(2, len(raws) + 2))


@given(st.binary(max_size=2000))
def test_any_bytes_raise_only_format_error(data: bytes) -> None:
    for prefix in (b"", b"MD5\n", b"SHA-1\r\n"):
        try:
            parse(prefix + data)
        except FormatError:
            pass
        errors: list[FormatError] = []
        try:
            parse(prefix + data, errors)
        except FormatError as error:
            # Only the first line (or an empty file) is fatal when skipping.
            assert "hash type" in error.reason or "the file is empty" in error.reason
        assert all(e.line is not None for e in errors)
