"""Tests for the GNU coreutils *sum reader (gnu-sum)."""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from matcher.errors import FormatError
from matcher.formats import gnu_sum
from matcher.formats.base import SNIFF_BYTES
from matcher.formats.gnu_sum import GnuSumReader
from matcher.models import HashRecord

SAMPLES = Path(__file__).parent / "samples" / "synthetic"
TRUTH = {entry["name"]: entry for entry in json.loads((SAMPLES / "TRUTH.json").read_text())}
READER = GnuSumReader()
HELLO_MD5 = "5d41402abc4b2a76b9719d911017c592"
EMPTY_MD5 = "d41d8cd98f00b204e9800998ecf8427e"
SIZES = {"md5": 16, "sha1": 20, "sha256": 32, "sha512": 64}


def parse(data: bytes, errors: list[FormatError] | None = None) -> list[HashRecord]:
    on_invalid = errors.append if errors is not None else None
    # Note: a name that names no algorithm: these lists mix lengths (md5deep output).
    return list(READER.parse(io.BytesIO(data), source="t.txt", on_invalid=on_invalid))


def sum_line(digest: bytes, name: bytes, binary: bool = False) -> bytes:
    """One line as coreutils writes it, escaping included."""
    escaped = b"\\" in name or b"\n" in name or b"\r" in name
    if escaped:
        name = name.replace(b"\\", b"\\\\").replace(b"\n", b"\\n").replace(b"\r", b"\\r")
    mode = b" *" if binary else b"  "
    return (b"\\" if escaped else b"") + digest.hex().encode() + mode + name + b"\n"


@pytest.mark.parametrize("algorithm", ["md5", "sha1", "sha256"])
def test_known_answers_against_truth(algorithm: str) -> None:
    records = list(READER.read(SAMPLES / "coreutils" / f"{algorithm}sum.txt"))
    assert len(records) == 12
    by_name = {r.name: r for r in records}
    for name, truth in TRUTH.items():
        assert by_name[name].digests == {algorithm: bytes.fromhex(truth[algorithm])}
        assert by_name[name].size is None


def test_sha512_by_length_and_empty_md5_literal() -> None:
    records = {r.name: r for r in READER.read(SAMPLES / "coreutils" / "sha512sum.txt")}
    assert records["hello.txt"].digests == {"sha512": hashlib.sha512(b"hello").digest()}
    md5 = {r.name: r for r in READER.read(SAMPLES / "coreutils" / "md5sum.txt")}
    assert md5["empty.dat"].digests["md5"] == bytes.fromhex(EMPTY_MD5)
    assert md5["empty.dat"].digests["md5"] == hashlib.md5(b"").digest()


def test_awkward_names_from_coreutils() -> None:
    records = list(READER.read(SAMPLES / "coreutils" / "md5sum.txt"))
    names = [r.name for r in records]
    assert names[:5] == [
        "a,b.txt",
        "back\\slash.txt",
        "café-utf8.txt",
        b"caf\xe9-latin1.txt",
        "cr\rname.txt",
    ]
    assert "new\nline.txt" in names and "with space.txt" in names
    assert [r.line for r in records] == list(range(1, 13))


def test_binary_marker_and_zero_terminated_output() -> None:
    marked = list(READER.read(SAMPLES / "coreutils" / "md5sum_binary_flag.txt"))
    assert [(r.name, r.digests["md5"].hex()) for r in marked] == [
        ("hello.txt", HELLO_MD5),
        ("a,b.txt", TRUTH["world.txt"]["md5"]),
    ]
    zero = list(READER.read(SAMPLES / "coreutils" / "md5sum_zero.bin"))
    # Note that -z writes the newline raw: no escaping in that mode.
    assert [(r.name, r.line) for r in zero] == [("hello.txt", 1), ("new\nline.txt", 2)]
    # ... nor is a CR before the NUL a line ending.
    assert [r.name for r in parse(HELLO_MD5.encode() + b"  a\r\0")] == ["a\r"]


def test_b3sum_output_reads_as_blake3_by_its_name(tmp_path: Path) -> None:
    """64 hex digits are SHA-256 by length, BLAKE3 when the list's name says b3sum (FORMATS 4.4)."""
    records = list(READER.read(SAMPLES / "b3sum" / "b3sum.txt"))
    assert len(records) == 12
    hello = next(r for r in records if r.name == "hello.txt")
    b3 = bytes.fromhex("ea8f163db38682925e4491c5e58d4bb3506ef8c14eb78a86e908c5624a67200f")
    assert hello.digests == {"blake3": b3}
    # BLAKE3SUMS and blake3.txt were read as SHA-256 lists: their matches silently missed.
    for name in ("hashes.b3", "list.BLAKE3", "evidence.b3.txt", "b3sums", "BLAKE3SUMS", "blake3.txt"):
        (tmp_path / name).write_bytes((SAMPLES / "b3sum" / "b3sum.txt").read_bytes())
        assert {alg for r in READER.read(tmp_path / name) for alg in r.digests} == {"blake3"}, name
    (tmp_path / "plain.txt").write_bytes((SAMPLES / "b3sum" / "b3sum.txt").read_bytes())
    assert {alg for r in READER.read(tmp_path / "plain.txt") for alg in r.digests} == {"sha256"}
    names = {r.name for r in records}
    assert "caf\ufffd-latin1.txt" in names  # b3sum converted it lossily
    assert "cr\rname.txt" in names  # b3sum 1.2.0 writes a raw CR


def test_md5deep_plain_newline_name_splits_a_record() -> None:
    errors: list[FormatError] = []
    records = list(
        READER.read(SAMPLES / "hashdeep" / "md5deep_plain.txt", on_invalid=errors.append)
    )
    assert len(records) == 12
    assert [e.line for e in errors] == [9]
    assert next(r for r in records if r.line == 8).name == "./new"
    assert next(r for r in records if r.line == 6).name == "./back\\slash.txt"  # not escaped


def test_crlf_bom_comments_blank_and_no_final_newline() -> None:
    data = b"\xef\xbb\xbf# made by hand\r\n\r\n" + HELLO_MD5.upper().encode() + b"  a b\r\n"
    data += b"  " + EMPTY_MD5.encode() + b" *c"
    records = parse(data)
    assert [(r.name, r.line) for r in records] == [("a b", 3), ("c", 4)]
    assert records[0].digests == {"md5": bytes.fromhex(HELLO_MD5)}


def test_names_keep_surrounding_blanks_and_bsd_reversed_form() -> None:
    records = parse(HELLO_MD5.encode() + b"   two  spaces \n" + EMPTY_MD5.encode() + b"\tx\n")
    assert [r.name for r in records] == [" two  spaces ", "x"]


def test_255_byte_names() -> None:
    ascii_name = b"n" * 251 + b".txt"
    utf8_name = "é".encode() * 127 + b"x"
    assert len(ascii_name) == len(utf8_name) == 255
    data = sum_line(b"\x01" * 16, ascii_name) + sum_line(b"\x02" * 20, utf8_name)
    assert [r.name for r in parse(data)] == [ascii_name.decode(), utf8_name.decode()]


def test_malformed_lines_raise_with_line_number() -> None:
    data = sum_line(b"\0" * 16, b"ok") + b"\n# comment\nnot a sum line\n"
    with pytest.raises(FormatError) as caught:
        parse(data)
    assert caught.value.line == 4
    assert caught.value.source == "t.txt"


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        (b"\\" + HELLO_MD5.encode() + b"  a\\tb", "escape other than"),
        (b"\\" + HELLO_MD5.encode() + b"  trailing\\", "escape other than"),
        (b"ab" * 28 + b"  sha224.txt", "SHA-224"),
        (b"abc  short.txt", "no supported length"),
        (HELLO_MD5.encode() + b"  ", "no file name"),
        (b"zz" * 16 + b"  notes.txt", "expected '<hex digest>  <file name>'"),
    ],
)
def test_on_invalid_skips_and_counts(line: bytes, reason: str) -> None:
    errors: list[FormatError] = []
    data = sum_line(b"\0" * 16, b"first") + line + b"\n" + sum_line(b"\1" * 16, b"last")
    records = parse(data, errors)
    assert [r.name for r in records] == ["first", "last"]
    assert len(errors) == 1 and errors[0].line == 2
    assert reason in errors[0].reason


def test_errors_quote_at_most_80_characters_of_the_line() -> None:
    with pytest.raises(FormatError) as caught:
        parse(b"q" * 10_000 + b"\n")
    assert "q" * 81 not in str(caught.value)
    assert len(str(caught.value)) < 200


def test_overlong_line_is_reported_and_reading_goes_on(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(gnu_sum, "MAX_RECORD", 100)
    monkeypatch.setattr(gnu_sum, "_CHUNK", 7)
    errors: list[FormatError] = []
    data = (
        sum_line(b"\0" * 16, b"a") + sum_line(b"\1" * 16, b"b" * 500) + sum_line(b"\2" * 16, b"c")
    )
    records = parse(data, errors)
    assert [(r.name, r.line) for r in records] == [("a", 1), ("c", 3)]
    assert [e.line for e in errors] == [2] and "longer than 100 bytes" in errors[0].reason


@given(data=st.binary(max_size=300), chunk=st.integers(min_value=1, max_value=16))
def test_read_records_matches_split_for_any_chunking(data: bytes, chunk: int) -> None:
    stream = io.BytesIO(data)
    original = gnu_sum._CHUNK
    gnu_sum._CHUNK = chunk
    try:
        got = [record for _, record in gnu_sum.read_records(stream)]
    finally:
        gnu_sum._CHUNK = original
    expected = data.split(b"\n")
    if expected[-1] == b"":
        expected.pop()
    if expected and expected[0].startswith(gnu_sum.BOM):
        expected[0] = expected[0][3:]
    assert got == [piece[:-1] if piece.endswith(b"\r") else piece for piece in expected]


entries = st.tuples(
    st.sampled_from(sorted(SIZES)),
    st.binary(min_size=64, max_size=64),
    st.binary(min_size=1, max_size=255).filter(lambda name: b"\0" not in name),
    st.booleans(),
)


@given(st.lists(entries, max_size=20), st.booleans())
def test_round_trip(items: list[tuple[str, bytes, bytes, bool]], crlf: bool) -> None:
    data = b"".join(sum_line(raw[: SIZES[alg]], name, binary) for alg, raw, name, binary in items)
    if crlf:
        data = data.replace(b"\n", b"\r\n")
    records = parse(data)
    assert len(records) == len(items)
    for record, (alg, raw, name, _) in zip(records, items, strict=True):
        assert record.digests == {alg: raw[: SIZES[alg]]}
        expected = record.name.encode() if isinstance(record.name, str) else record.name
        assert expected == name


@given(st.binary(max_size=2000))
def test_any_bytes_raise_only_format_error(data: bytes) -> None:
    try:
        parse(data)
    except FormatError:
        pass
    errors: list[FormatError] = []
    parse(data, errors)  # with on_invalid nothing is fatal
    assert all(isinstance(e, FormatError) and e.line is not None for e in errors)


def test_sniff() -> None:
    assert READER.sniff((SAMPLES / "coreutils" / "sha256sum.txt").read_bytes())
    assert READER.sniff((SAMPLES / "coreutils" / "md5sum_zero.bin").read_bytes())
    assert READER.sniff(b"#c\n" + HELLO_MD5.encode() + b" *a\n")
    assert not READER.sniff(HELLO_MD5.encode() + b":5:hello.txt\n")  # ClamAV
    assert not READER.sniff(HELLO_MD5.encode() + b"\n")  # plain
    assert READER.sniff(HELLO_MD5.encode() + b" 2026:11:28:14:51:09  t/a\n")  # md5deep -t
    assert not READER.sniff(b"         5  " + HELLO_MD5.encode() + b"  a\n")  # md5deep -z
    assert not READER.sniff(b"MD5 (a) = " + HELLO_MD5.encode() + b"\n")
    assert not READER.sniff(b"")


def test_sniff_ignores_a_cut_last_line() -> None:
    line = HELLO_MD5.encode() + b"  name\n"
    head = (line * (SNIFF_BYTES // len(line) + 1))[:SNIFF_BYTES]
    assert not head.endswith(b"\n")
    lines = gnu_sum.head_lines(head)
    assert lines == [line.rstrip(b"\n")] * (SNIFF_BYTES // len(line))
    assert READER.sniff(head)
    # A short head is the whole file: its last line counts even without LF.
    assert gnu_sum.head_lines(b"a\r\nb") == [b"a", b"b"]
    assert READER.sniff(line.rstrip(b"\n"))


@pytest.mark.parametrize(
    "name", ["b2sum.txt", "list.b2", "x.sha3-256", "sha3sums", "blake2b.txt", "BLAKE2SUMS", "checksums.blake2"]
)
def test_a_list_named_for_an_algorithm_matcher_cannot_compute_is_refused(tmp_path: Path, name: str) -> None:
    """b2sum's 128 digits would pass as SHA-512, SHA3-256's 64 as SHA-256: never a match."""
    path = tmp_path / name
    path.write_text(("ab" * 64 if "b2" in name.lower() else "cd" * 32) + "  file\n")
    with pytest.raises(FormatError, match="which matcher does not compute"):
        list(READER.read(path))


@pytest.mark.parametrize("digits", [32, 40, 56, 64, 96, 128])
@pytest.mark.parametrize("name", ["l128.b2", "b2sums.txt", "x.sha3-256", "blake2b.txt"])
def test_a_list_named_for_blake2_or_sha3_is_refused_whatever_its_digest_length(
    tmp_path: Path, name: str, digits: int
) -> None:
    """Before: `b2sum -l 128` (32 digits) was imported as MD5 and `-l 160` as SHA-1: a notable
    list named in every run record whose entries could never match."""
    path = tmp_path / name
    path.write_text("ab" * (digits // 2) + "  file\n")
    with pytest.raises(FormatError, match="which matcher does not compute"):
        list(READER.read(path))


@pytest.mark.parametrize("digits", [32, 40, 128])
def test_a_b3sum_list_of_another_length_is_refused_not_read_by_length(
    tmp_path: Path, digits: int
) -> None:
    """`b3sum -l 16` gives 32 digits: read as MD5 they could never match."""
    path = tmp_path / "list.b3"
    path.write_text("ab" * (digits // 2) + "  file\n")
    with pytest.raises(FormatError, match="matcher computes BLAKE3's 64"):
        list(READER.read(path))


def test_a_file_of_nul_bytes_is_refused_at_its_first_line() -> None:
    """A zeroed or sparse file given as a sum list: refused at line 1, not read as -z records.

    Read as `-z` output, every NUL byte was a blank record: 1 GB took some
    20 minutes to end in "the list holds no entries".
    """
    errors: list[FormatError] = []
    assert parse(b"\0" * (gnu_sum.MAX_RECORD + 10), errors) == []
    assert [(e.line, "longer than" in e.reason) for e in errors] == [(1, True)]
    # A -z list still reads as one: its first record is never empty.
    assert [r.name for r in parse(HELLO_MD5.encode() + b"  a\0" + HELLO_MD5.encode() + b"  b\0")] == ["a", "b"]


def test_sum_lines_with_one_separator_are_named_not_guessed(tmp_path: Path) -> None:
    """Coreutils reads "<digest> <name>" too, but a git log has the same shape: detection does
    not take it (it said only "not recognised"); the refusal names it and --format gnu-sum."""
    from matcher.formats import registry

    path = tmp_path / "r.md5"
    path.write_bytes(HELLO_MD5.encode() + b" a.txt\n" + HELLO_MD5.encode() + b"\tb c.txt\n")
    with pytest.raises(FormatError, match="import it with --format gnu-sum"):
        registry.detect(path)
    records = list(gnu_sum.GnuSumReader().read(path))
    assert [r.name for r in records] == ["a.txt", "b c.txt"]
    # md5deep -t (a time before the name) is not such a list, and two spaces are the reader's.
    path.write_bytes(HELLO_MD5.encode() + b"  a.txt\n")
    assert registry.detect(path).NAME == "gnu-sum"


def test_md5deep_t_output_is_read_with_its_time_out_of_the_name(tmp_path: Path) -> None:
    """md5deep -t (FORMATS.md 3.2: digest, space, mtime, two spaces, name) was not recognised,
    and read with --format gnu-sum its name began with the time."""
    from matcher.formats import registry

    path = tmp_path / "t.txt"
    sha1 = hashlib.sha1(b"hello").hexdigest().encode()
    path.write_bytes(HELLO_MD5.encode() + b" 2026:11:28:14:51:09  t1/hello.txt\n"
                     + sha1 + b" 2025:01:02:03:04:05  t1/two  spaces.txt\n")  # fmt: skip
    assert registry.detect(path).NAME == "gnu-sum"
    records = list(gnu_sum.GnuSumReader().read(path))
    assert [r.name for r in records] == ["t1/hello.txt", "t1/two  spaces.txt"]
    assert records[0].digests == {"md5": bytes.fromhex(HELLO_MD5)}
    # Two spaces after the digest are a sum line whatever the name holds.
    path.write_bytes(HELLO_MD5.encode() + b"  2026:11:28:14:51:09  x\n")
    assert [r.name for r in gnu_sum.GnuSumReader().read(path)] == ["2026:11:28:14:51:09  x"]


@pytest.mark.parametrize(
    ("name", "digits"),
    [("SHA256SUMS", 32), ("list.sha256", 40), ("evidence.md5", 64), ("sha1sums", 32), ("x.sha512", 64)],
)
def test_a_digest_of_another_length_than_the_name_says_is_refused(name: str, digits: int) -> None:
    """A SHA256SUMS of 32-digit digests (SHA-256s cut short, or MD5s) was read as MD5 by
    length: digests of another algorithm than the supplier named, with no word."""
    line = b"a" * digits + b"  f.bin\n"
    with pytest.raises(FormatError, match=f"name says .* this one has {digits} hex digits") as caught:
        list(READER.parse(io.BytesIO(line), source=name))
    assert caught.value.line == 1
    right = {"md5": 32, "sha1": 40, "sha256": 64, "sha512": 128}
    algorithm = next(a for a in right if a in name.lower())
    [record] = READER.parse(io.BytesIO(b"a" * right[algorithm] + b"  f.bin\n"), source=name)
    assert set(record.digests) == {algorithm}


@pytest.mark.parametrize(
    ("name", "digits"),
    [("blake3-migration-check.md5", 32), ("from_blake2_host.sha1", 40), ("sha3_256-vs-md5.md5", 32),
     ("blake3-migration-check.md5sum", 32), ("blake2-host.sha256sum", 64), ("sha3_512-vs.sha512sums", 128)],
)
def test_an_algorithm_extension_outweighs_another_algorithm_named_in_the_words(
    tmp_path: Path, name: str, digits: int
) -> None:
    """Before: a `blake3-migration-check.md5` of MD5 sums was refused as a BLAKE3 list."""
    path = tmp_path / name
    path.write_text("ab" * (digits // 2) + "  file\n")
    [record] = list(READER.read(path))
    assert list(record.digests) == [{32: "md5", 40: "sha1", 64: "sha256", 128: "sha512"}[digits]]
