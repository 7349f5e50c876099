"""Tests for the EnCase legacy hash-set reader (encase)."""

from __future__ import annotations

import hashlib
import io
import json
import struct
from pathlib import Path
from typing import BinaryIO

import pytest
from click.testing import CliRunner
from conftest import store_rows
from hypothesis import given
from hypothesis import strategies as st

from matcher.cli import cli
from matcher.errors import FormatError
from matcher.formats import encase
from matcher.formats import registry
from matcher.formats.encase import EncaseReader
from matcher.models import HashRecord

SHARED = Path(__file__).resolve().parent / "shared_samples"  # a copy of ../shared/formats/samples
SAMPLE = SHARED / "synthetic" / "encase" / "synthetic.hash"
TRUTH = {e["name"]: e for e in json.loads((SHARED / "synthetic" / "TRUTH.json").read_text())}
READER = EncaseReader()


def encase_bytes(
    md5s: list[bytes],
    name: str = "Set",
    kind: str = "Known",
    *,
    signature: bytes = encase.SIGNATURE,
    version: int = 2,
    flag: int = 1,
    count: int | None = None,
) -> bytes:
    """An EnCase legacy hash set, laid out as FORMATS.md §7.3 describes."""
    head = bytearray(0x480)
    head[0:8] = signature
    struct.pack_into("<III", head, 8, version, flag, len(md5s) if count is None else count)
    head[0x408 : 0x408 + 0x50] = name.encode("utf-16-le")[:0x50].ljust(0x50, b"\0")
    head[0x458 : 0x458 + 0x28] = kind.encode("utf-16-le")[:0x28].ljust(0x28, b"\0")
    return bytes(head) + b"".join(md5 + b"\0\0" for md5 in md5s)


THREE = encase_bytes([b"a" * 16] * 3)


def parse(data: bytes) -> list[HashRecord]:
    return list(READER.parse(io.BytesIO(data), source="set.hash"))


def test_registered_with_the_default_role_of_lists_that_do_not_say() -> None:
    assert isinstance(registry.get("encase"), EncaseReader)
    assert READER.DEFAULT_ROLE == registry.get("plain").DEFAULT_ROLE == "notable"


def test_shared_sample_against_truth() -> None:
    assert READER.sniff(registry.read_head(SAMPLE), SAMPLE)
    records = list(READER.read(SAMPLE))
    assert records == [
        HashRecord(digests={"md5": bytes.fromhex(TRUTH[n]["md5"])})
        for n in ("hello.txt", "world.txt")
    ]
    assert READER.metadata(SAMPLE) == {
        "declared_hashes": "2",
        "set_name": "Synthetic Test Set",
        "set_type": "Known",
        "suggested_role": "known",
    }


def test_generated_set_equals_the_sample_byte_for_byte() -> None:
    md5s = [bytes.fromhex(TRUTH[n]["md5"]) for n in ("hello.txt", "world.txt")]
    assert encase_bytes(md5s, "Synthetic Test Set", "Known") == SAMPLE.read_bytes()


def test_name_of_full_length_and_other_types() -> None:
    data = encase_bytes([b"\x01" * 16], name="N" * 40, kind="Notable")
    header = encase.read_header(io.BytesIO(data), "x")
    assert (header.name, header.type, header.count) == ("N" * 40, "Notable", 1)
    header = encase.read_header(io.BytesIO(encase_bytes([], name="", kind="Evidence")), "x")
    assert (header.name, header.type, header.count) == ("", "Evidence", 0)


def test_metadata_suggests_a_role_only_for_known_types(tmp_path: Path) -> None:
    path = tmp_path / "s.hash"
    path.write_bytes(encase_bytes([b"\x02" * 16], kind="Notable"))
    assert READER.metadata(path)["suggested_role"] == "notable"
    path.write_bytes(encase_bytes([b"\x02" * 16], kind="Evidence"))
    assert READER.metadata(path) == {
        "declared_hashes": "1",
        "set_name": "Set",
        "set_type": "Evidence",
    }


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "the signature at byte offset 0x0 is missing (empty file)"),
        (b"HASH\r\n", "the signature at byte offset 0x0 is 48 41 53 48 0D 0A, expected"),
        (encase_bytes([], signature=b"HASH\n\r\xff\0"), "is 48 41 53 48 0A 0D FF 00, expected"),
        (encase_bytes([])[:0x100], "runs to byte offset 0x480 (1152 bytes), the file has 256"),
        (encase_bytes([], version=3), "unsupported EnCase hash set version 3 at byte offset 0x8"),
        (encase_bytes([], flag=0), "unexpected value 0 at byte offset 0xC"),
        (THREE[:-5], "are 49 bytes, not a whole number of 18-byte records: the file is"),
        (THREE[:-5], "truncated or has extra bytes (the last 13 from byte offset 0x4A4)"),
        (THREE + b"\0", "are 55 bytes, not a whole number of 18-byte records"),
        (
            encase_bytes([b"a" * 16] * 3, count=4),
            "says 4 hashes (byte offset 0x10), but the file holds 3",
        ),
        (
            encase_bytes([b"a" * 16] * 3, count=2),
            "says 2 hashes (byte offset 0x10), but the file holds 3",
        ),
    ],
)
def test_bad_files_name_the_byte_offset_and_are_refused_as_a_whole(
    data: bytes, message: str
) -> None:
    with pytest.raises(FormatError) as caught:
        parse(data)
    assert message in str(caught.value)
    assert str(caught.value).startswith("set.hash: ")
    # No record is ever yielded before the header and size are checked.
    records: list[HashRecord] = []
    with pytest.raises(FormatError):
        records.extend(READER.parse(io.BytesIO(data), "set.hash", on_invalid=lambda e: None))
    assert records == []


def test_file_that_shrinks_while_read() -> None:
    data = encase_bytes([b"a" * 16] * 10)

    class Shrinking(io.BytesIO):
        def read(self, size: int | None = -1) -> bytes:
            chunk = super().read(size)
            return chunk[:-1] if self.tell() > 0x480 else chunk

    with pytest.raises(FormatError, match="the file ended early, at byte offset 0x533"):
        list(READER.parse(Shrinking(data), "set.hash"))


def test_reads_in_bounded_chunks() -> None:
    count = 3 * 4096 + 7
    md5s = [hashlib.md5(str(i).encode()).digest() for i in range(count)]
    sizes: list[int] = []

    class Counting(io.BytesIO):
        def read(self, size: int | None = -1) -> bytes:
            sizes.append(-1 if size is None else size)
            return super().read(size)

    stream: BinaryIO = Counting(encase_bytes(md5s))
    records = READER.parse(stream, "big.hash")
    assert next(records).digests["md5"] == md5s[0]
    assert max(sizes) <= 4096 * 18 and -1 not in sizes
    assert [r.digests["md5"] for r in records] == md5s[1:]


def test_sniff() -> None:
    assert READER.sniff(encase_bytes([], version=9))  # detected, then refused with a reason
    assert not READER.sniff(b"HASH\r\n")
    assert not READER.sniff(b"SQLite format 3\x00")
    assert not READER.sniff(b"")


def test_cli_import_bad_set_leaves_the_store_unchanged_even_when_skipping(tmp_path: Path) -> None:
    runner = CliRunner()
    db = tmp_path / "s.db"
    done = runner.invoke(cli, ["import", str(SAMPLE), "--db", str(db)])
    assert done.exit_code == 0, done.output
    assert "imported 2 entries as notable list 'synthetic.hash' (encase)" in done.stderr
    before = store_rows(db)
    bad = tmp_path / "bad.hash"
    bad.write_bytes(SAMPLE.read_bytes()[:-1])
    for extra in ([], ["--skip-invalid"]):
        result = runner.invoke(cli, ["import", str(bad), "--db", str(db), *extra])
        assert result.exit_code == 2
        assert f"{bad}: the records from byte offset 0x480 are 35 bytes" in result.output
    assert store_rows(db) == before


@given(
    st.lists(st.binary(min_size=16, max_size=16), max_size=40),
    st.text(st.characters(min_codepoint=32, max_codepoint=0xD7FF), max_size=39),
    st.sampled_from(["Known", "Notable", ""]),
)
def test_round_trip(md5s: list[bytes], name: str, kind: str) -> None:
    data = encase_bytes(md5s, name=name, kind=kind)
    assert READER.sniff(data)
    assert [r.digests for r in parse(data)] == [{"md5": m} for m in md5s]
    header = encase.read_header(io.BytesIO(data), "x")
    assert (header.count, header.name, header.type) == (len(md5s), name.strip(), kind)


@given(st.binary(max_size=3000), st.booleans())
def test_any_bytes_raise_only_format_error(data: bytes, signed: bool) -> None:
    if signed:
        data = encase_bytes([], count=len(data) // 18) + data
    try:
        parse(data)
    except FormatError as error:
        assert "byte offset" in str(error)


def test_a_set_of_type_known_imported_by_default_says_so(tmp_path: Path) -> None:
    """Before: a set of type Known was imported as notable, its format's default, in
    silence; the type never sets the role (a mislabelled one must not hide notable files),
    but the import now says so, and how to change it."""
    runner = CliRunner()
    listed = tmp_path / "set.hash"
    listed.write_bytes(encase_bytes([b"\x03" * 16], kind="Known"))
    db = str(tmp_path / "s.db")
    result = runner.invoke(cli, ["import", str(listed), "--db", db])
    assert result.exit_code == 0, result.output
    assert "as notable list 'set.hash' (encase)" in result.stderr
    assert (
        "note: its set description suggests role known (set_type 'Known'), but such a flag never "
        "sets the role: it was imported as notable, its format's default. If the set is known, "
        "import it again with --role known --replace 'set.hash'" in result.stderr
    )
    again = runner.invoke(cli, ["import", str(listed), "--db", db, "--role", "known", "--replace", "set.hash"])
    assert again.exit_code == 0 and "suggests role" not in again.stderr, again.output
    lists = json.loads(runner.invoke(cli, ["lists", "--db", db, "--json"]).stdout)
    assert [(x["name"], x["role"]) for x in lists] == [("set.hash", "known")]
    notable = tmp_path / "notable.hash"
    notable.write_bytes(encase_bytes([b"\x04" * 16], kind="Notable"))
    quiet = runner.invoke(cli, ["import", str(notable), "--db", db])
    assert quiet.exit_code == 0 and "suggests role" not in quiet.stderr, quiet.output
