"""Tests for the NIST NSRL RDS 2.x / 1.5 NSRLFile.txt reader (nsrl-rds2)."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st

from matcher.errors import FormatError
from matcher.formats import nsrl_rds2
from matcher.formats import registry
from matcher.formats.base import SNIFF_BYTES
from matcher.formats.nsrl_rds2 import NsrlRds2Reader
from matcher.models import HashRecord

SAMPLE = Path(__file__).parent / "samples" / "synthetic" / "nsrl_rds2" / "NSRLFile.txt"
ALL_SAMPLES = Path(__file__).parent / "samples"
READER = NsrlRds2Reader()

# From samples/synthetic/TRUTH.json.
HELLO_MD5 = "5d41402abc4b2a76b9719d911017c592"
HELLO_SHA1 = "aaf4c61ddcc5e8a2dabede0f3b482cd9aea9434d"
HELLO_SHA256 = "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
WORLD_MD5 = "7d793037a0760186574b0282f2f435e7"
WORLD_SHA1 = "7c211433f02071597741e6ff5a8ea34789abbf43"
EMPTY_MD5 = "d41d8cd98f00b204e9800998ecf8427e"
EMPTY_SHA1 = "da39a3ee5e6b4b0d3255bfef95601890afd80709"

HEADER_20 = (
    b'"SHA-1","MD5","CRC32","FileName","FileSize","ProductCode","OpSystemCode","SpecialCode"'
)
HEADER_15 = (
    b'"SHA-1","FileName","FileSize","ProductCode","OpSystemCode","MD4","MD5","CRC32","SpecialCode"'
)


def line20(sha1: str, md5: str, name: bytes, size: bytes = b"5", special: bytes = b"") -> bytes:
    return b'"%s","%s","3610A686","%s",%s,1,"189","%s"\r\n' % (
        sha1.upper().encode(),
        md5.upper().encode(),
        name,
        size,
        special,
    )


def parse(data: bytes, errors: list[FormatError] | None = None) -> list[HashRecord]:
    on_invalid = errors.append if errors is not None else None
    return list(READER.parse(io.BytesIO(data), source="NSRLFile.txt", on_invalid=on_invalid))


def test_registered_with_known_role() -> None:
    assert isinstance(registry.get("nsrl-rds2"), NsrlRds2Reader)
    assert READER.DEFAULT_ROLE == "known"


def test_sample_known_answers() -> None:
    records = list(READER.read(SAMPLE))
    assert [(r.name, r.size, r.ident, r.line) for r in records] == [
        ("hello.txt", 5, "1", 2),
        ("HELLO.TXT", 5, "2", 3),
        ("a,b.txt", 5, "1", 4),  # a comma inside the quoted FileName
        ("empty.dat", 0, "2", 5),
    ]
    assert records[0].digests == {
        "sha1": bytes.fromhex(HELLO_SHA1),
        "md5": bytes.fromhex(HELLO_MD5),
    }
    assert records[2].digests["md5"] == bytes.fromhex(WORLD_MD5)
    assert records[3].digests == {
        "sha1": bytes.fromhex(EMPTY_SHA1),
        "md5": bytes.fromhex(EMPTY_MD5),
    }
    assert all(r.label is None for r in records)


def test_layout_15_by_header_names() -> None:
    data = (
        HEADER_15
        + b"\r\n"
        + b'"%s","hello.txt",5,1,"WIN","00000000000000000000000000000000","%s","3610A686",""\r\n'
        % (HELLO_SHA1.upper().encode(), HELLO_MD5.upper().encode())
    )
    [record] = parse(data)
    # MD4 and CRC32 are not digests matcher stores.
    assert record.digests == {"sha1": bytes.fromhex(HELLO_SHA1), "md5": bytes.fromhex(HELLO_MD5)}
    assert (record.name, record.size, record.ident) == ("hello.txt", 5, "1")


def test_look_alike_with_columns_missing_and_sha256() -> None:
    data = b'"FileName","SHA-256","ProductCode","SHA-1"\n' + b'"x.bin","%s",42,"%s"\n' % (
        HELLO_SHA256.encode(),
        HELLO_SHA1.encode(),
    )
    [record] = parse(data)
    assert record.digests == {
        "sha256": bytes.fromhex(HELLO_SHA256),
        "sha1": bytes.fromhex(HELLO_SHA1),
    }
    assert (record.name, record.size, record.ident, record.line) == ("x.bin", None, "42", 2)


def test_names_encodings_quotes_and_commas() -> None:
    data = (
        HEADER_20
        + b"\r\n"
        + line20(HELLO_SHA1, HELLO_MD5, "caf\u00e9.txt".encode())
        + line20(HELLO_SHA1, HELLO_MD5, b"caf\xe9.txt")  # Latin-1: kept as bytes
        + line20(HELLO_SHA1, HELLO_MD5, b'say ""hi"", ok.txt')  # RFC 4180 doubled quotes
        + line20(HELLO_SHA1, HELLO_MD5, b"a,b,,c.txt")
        + line20(HELLO_SHA1, HELLO_MD5, b"    ___")
    )
    names = [r.name for r in parse(data)]
    assert names == ["caf\u00e9.txt", b"caf\xe9.txt", 'say "hi", ok.txt', "a,b,,c.txt", "    ___"]


def test_special_code_is_kept_verbatim_as_label() -> None:
    data = HEADER_20 + b"\r\n" + line20(HELLO_SHA1, HELLO_MD5, b"x.exe", special=b"M")
    assert parse(data)[0].label == "M"


def test_bom_lf_endings_blank_lines_and_no_final_newline() -> None:
    data = (
        b"\xef\xbb\xbf"
        + HEADER_20
        + b"\n\n"
        + line20(HELLO_SHA1, HELLO_MD5, b"a").rstrip(b"\r\n")
        + b"\n"
        + line20(WORLD_SHA1, WORLD_MD5, b"b").rstrip(b"\r\n")
    )
    records = parse(data)
    assert [(r.name, r.line) for r in records] == [("a", 3), ("b", 4)]


def test_malformed_lines_have_line_numbers() -> None:
    data = (
        HEADER_20
        + b"\r\n"
        + line20(HELLO_SHA1, HELLO_MD5, b"ok")
        + line20("AB" * 19, HELLO_MD5, b"short sha1")
        + line20(HELLO_SHA1, "XY" * 16, b"nonhex md5")
        + line20(HELLO_SHA1, HELLO_MD5, b"size", size=b"five")
        + b'"only","three","fields"\r\n'
        + line20("", "", b"no digest")
        + line20(WORLD_SHA1, WORLD_MD5, b"ok too")
    )
    with pytest.raises(FormatError) as caught:
        parse(data)
    assert (caught.value.source, caught.value.line) == ("NSRLFile.txt", 3)
    assert "expected 40 hex digits for sha1" in caught.value.reason
    errors: list[FormatError] = []
    records = parse(data, errors)
    assert [r.name for r in records] == ["ok", "ok too"]
    assert [e.line for e in errors] == [3, 4, 5, 6, 7]
    assert "FileSize is not a byte count: 'five'" in errors[2].reason
    assert "expected 8 fields, found 3" in errors[3].reason
    assert "no SHA-1, MD5 or SHA-256" in errors[4].reason


def test_overlong_line_is_reported_not_buffered() -> None:
    data = HEADER_20 + b"\r\n" + b"x" * (nsrl_rds2.MAX_LINE * 3) + b"\r\n"
    data += line20(HELLO_SHA1, HELLO_MD5, b"after")
    errors: list[FormatError] = []
    records = parse(data, errors)
    assert [r.name for r in records] == ["after"]
    assert [e.line for e in errors] == [2]
    assert records[0].line == 3


def test_error_messages_quote_little_input() -> None:
    with pytest.raises(FormatError) as caught:
        parse(b'"SHA1x","' + b"y" * 5000 + b'"\r\n')
    assert len(str(caught.value)) < 160
    assert caught.value.line == 1


@pytest.mark.parametrize("data", [b"", b"\xef\xbb\xbf", b'"ProductCode","ProductName"\r\n'])
def test_not_an_nsrlfile_header(data: bytes) -> None:
    with pytest.raises(FormatError):
        parse(data)


def zipped(tmp_path: Path, members: dict[str, bytes]) -> Path:
    path = tmp_path / "NSRLFile.txt.zip"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, content in members.items():
            archive.writestr(name, content)
    return path


def test_zipped_list_is_read_from_its_member(tmp_path: Path) -> None:
    path = zipped(
        tmp_path,
        {"NSRLProd.txt": b'"ProductCode"\r\n', "RDS_2.60/NSRLFile.txt": SAMPLE.read_bytes()},
    )
    head = path.read_bytes()[:SNIFF_BYTES]
    assert head.startswith(b"PK\x03\x04")
    assert READER.sniff(head, path)
    records = list(READER.read(path))
    assert records == list(READER.read(SAMPLE))
    errors_source = zipped(tmp_path, {"NSRLFile.txt": HEADER_20 + b"\r\nbad\r\n"})
    with pytest.raises(FormatError) as caught:
        list(READER.read(errors_source))
    assert caught.value.source == f"{errors_source}!NSRLFile.txt"
    assert caught.value.line == 2


def test_zip_without_nsrlfile_or_broken(tmp_path: Path) -> None:
    path = zipped(tmp_path, {"NSRLProd.txt": b'"ProductCode"\r\n'})
    assert not READER.sniff(path.read_bytes()[:SNIFF_BYTES], path)
    with pytest.raises(FormatError, match="holds no NSRLFile.txt"):
        list(READER.read(path))
    cut = tmp_path / "cut.zip"
    good = zipped(tmp_path, {"NSRLFile.txt": SAMPLE.read_bytes() * 50})
    cut.write_bytes(good.read_bytes()[:300])
    with pytest.raises(FormatError, match="cannot read the zip archive"):
        list(READER.read(cut))


def test_sniff() -> None:
    head = SAMPLE.read_bytes()[:SNIFF_BYTES]
    assert READER.sniff(head, SAMPLE)
    assert READER.sniff(HEADER_15 + b"\r\n")
    assert READER.sniff(b"\xef\xbb\xbf" + HEADER_20 + b"\r\n")
    assert not READER.sniff(b'"ProductCode","ProductName","ProductVersion"\r\n')
    assert not READER.sniff(b"md5,sha1,filename\r\n")
    assert not READER.sniff(b"%%%% HASHDEEP-1.0\n")
    assert not READER.sniff(HELLO_MD5.encode() + b"  hello.txt\n")


@settings(max_examples=300)
@given(st.binary(max_size=600))
def test_any_bytes_raise_only_format_error(data: bytes) -> None:
    for payload in (data, HEADER_20 + b"\r\n" + data, b"PK\x03\x04" + data):
        try:
            parse(payload)
        except FormatError:
            pass
        try:
            parse(payload, [])
        except FormatError:
            pass


@given(
    st.lists(
        st.tuples(
            st.binary(min_size=20, max_size=20),
            st.binary(min_size=16, max_size=16),
            st.binary(max_size=30).filter(lambda b: b"\n" not in b and b"\r" not in b),
            st.integers(min_value=0, max_value=2**40),
        ),
        max_size=8,
    )
)
def test_round_trip(entries: list[tuple[bytes, bytes, bytes, int]]) -> None:
    data = HEADER_20 + b"\r\n"
    for sha1, md5, name, size in entries:
        quoted = name.replace(b'"', b'""')
        data += line20(sha1.hex(), md5.hex(), quoted, size=str(size).encode())
    records = parse(data)
    assert [(r.digests["sha1"], r.digests["md5"], r.size) for r in records] == [
        (sha1, md5, size) for sha1, md5, _name, size in entries
    ]
    for record, (_sha1, _md5, name, _size) in zip(records, entries, strict=True):
        expected = name.decode("utf-8") if _utf8(name) else name
        assert record.name == expected


def _utf8(raw: bytes) -> bool:
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def test_detection_is_exclusive_over_all_samples() -> None:
    # Every registered reader sees every bundled sample: ours must be the only
    # one to claim NSRLFile samples, and must claim nothing else.
    for sample in sorted(ALL_SAMPLES.rglob("*")):
        if not sample.is_file() or sample.name == "TRUTH.json":
            continue
        head = sample.read_bytes()[:SNIFF_BYTES]
        ours = sample.parent.name == "nsrl_rds2"
        assert READER.sniff(head, sample) == ours, sample
        if ours:
            assert registry.detect(sample, head) is registry.get(READER.NAME), sample


@pytest.mark.parametrize(
    "tail",
    [b'"x.dll",5,123,"358","","extra"', b'"x.dll","extra",5,123,"358",""', b"x,y.dll,5,1,\"358\",\"\""],
    ids=["a field too many at the end", "a quoted field too many after the name", "unquoted name with a comma"],
)
def test_a_field_too_many_is_refused_not_shifted_into_the_columns(tail: bytes) -> None:
    """Absorbing it into the FileName would read the ProductCode as the FileSize."""
    header = b'"SHA-1","MD5","CRC32","FileName","FileSize","ProductCode","OpSystemCode","SpecialCode"\r\n'
    line = b'"AAF4C61DDCC5E8A2DABEDE0F3B482CD9AEA9434D","5D41402ABC4B2A76B9719D911017C592","00000000",' + tail
    with pytest.raises(FormatError, match=r"NSRLFile.txt:2: expected 8 fields as in the header, found 9"):
        list(NsrlRds2Reader().parse(io.BytesIO(header + line + b"\r\n"), source="NSRLFile.txt"))
    good = b'"AAF4C61DDCC5E8A2DABEDE0F3B482CD9AEA9434D","5D41402ABC4B2A76B9719D911017C592","00000000","a,b, c.txt",5,1,"358",""'
    (record,) = NsrlRds2Reader().parse(io.BytesIO(header + good + b"\r\n"), source="NSRLFile.txt")
    assert (record.name, record.size, record.ident) == ("a,b, c.txt", 5, "1")


def test_a_quoted_comma_in_another_column_than_the_name_is_read_as_csv_reads_it() -> None:
    """A look-alike with a quoted "x, y" in its Comment column is valid CSV (RFC 4180), but the
    split on commas gave the extra comma to the FileName and refused the whole list."""
    header = b'"SHA-1","MD5","FileName","Comment","FileSize","ProductCode","OpSystemCode","SpecialCode"\r\n'
    line = (b'"AAF4C61DDCC5E8A2DABEDE0F3B482CD9AEA9434D","5D41402ABC4B2A76B9719D911017C592",'
            b'"caf\xe9, ""the"" one.txt","x, y",5,1,"358","M"\r\n')  # fmt: skip
    (record,) = parse(header + line)
    assert (record.name, record.size, record.ident, record.label) == (b'caf\xe9, "the" one.txt', 5, "1", "M")
    assert record.digests == {"sha1": bytes.fromhex(HELLO_SHA1), "md5": bytes.fromhex(HELLO_MD5)}
    shifted = line.replace(b'"x, y"', b'"x, y",7')  # a field too many is still refused
    with pytest.raises(FormatError, match="expected 8 fields as in the header, found 11"):
        parse(header + shifted)


def test_a_zip_with_two_nsrlfile_members_is_refused_naming_both(tmp_path: Path) -> None:
    header = b'"SHA-1","MD5","CRC32","FileName","FileSize","ProductCode","OpSystemCode","SpecialCode"\r\n'
    row = b'"AAF4C61DDCC5E8A2DABEDE0F3B482CD9AEA9434D","5D41402ABC4B2A76B9719D911017C592","00000000","x",5,1,"358",""\r\n'
    path = tmp_path / "rds.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("a/NSRLFile.txt", header + row)
        archive.writestr("b/NSRLFile.txt", header)
    with pytest.raises(FormatError, match=r"holds 2 NSRLFile.txt members \('a/NSRLFile.txt', 'b/NSRLFile.txt'\)"):
        list(NsrlRds2Reader().read(path))


SIDE_FILES = {
    "NSRLProd.txt": b'"ProductCode","ProductName","ProductVersion","OpSystemCode","MfgCode",'
    b'"Language","ApplicationType"\r\n1,"Demo","1.0","189","1","English","Tool"\r\n',
    "NSRLOS.txt": b'"OpSystemCode","OpSystemName","OpSystemVersion","MfgCode"\r\n'
    b'"189","DemoOS","1","1"\r\n',
    "NSRLMfg.txt": b'"MfgCode","MfgName"\r\n"1","Demo Inc"\r\n',
    "version.txt": b'"SHA-1","RDSVersion"\r\n"' + HELLO_SHA1.upper().encode() + b'",""\r\n',
}


@pytest.mark.parametrize("name", sorted(SIDE_FILES))
def test_distribution_side_files_are_refused_with_what_they_are(tmp_path: Path, name: str) -> None:
    # version.txt names one SHA-1 under a "SHA-1" header: without its own refusal
    # the CSV reader took it as a one-entry notable list.
    path = tmp_path / "elsewhere" / name
    path.parent.mkdir()
    path.write_bytes(SIDE_FILES[name])
    with pytest.raises(FormatError, match=f"NSRL RDS 2.x distribution file \\({name}") as caught:
        registry.detect(path)
    assert caught.value.source == str(path)


def test_hashes_txt_is_refused_only_beside_an_rds(tmp_path: Path) -> None:
    # The distribution's hashes.txt holds the SHA-1 of NSRLFile.txt and its
    # siblings: imported as a plain notable list, the NSRL's own files matched.
    data = (HELLO_SHA1.upper() + "\r\n" + WORLD_SHA1.upper() + "\r\n").encode()
    alone = tmp_path / "alone" / "hashes.txt"
    alone.parent.mkdir()
    alone.write_bytes(data)
    assert registry.detect(alone).NAME == "plain"
    for sibling in ("NSRLFile.txt", "nsrlfile.txt.zip", "NSRLProd.txt"):
        folder = tmp_path / sibling.replace(".", "_")
        folder.mkdir()
        (folder / sibling).write_bytes(b"")
        (folder / "hashes.txt").write_bytes(data)
        with pytest.raises(FormatError, match=f"beside the NSRL RDS 2.x {sibling} holds the SHA-1"):
            registry.detect(folder / "hashes.txt")
        # Named by the examiner, it is read as what they say it is.
        assert len(list(registry.get("plain").read(folder / "hashes.txt"))) == 2


def test_an_examiners_own_hashes_txt_beside_an_rds_is_read(tmp_path: Path) -> None:
    # Only bare upper-case SHA-1 lines are the distribution's; a folder named
    # NSRLFile.txt marks nothing.
    (tmp_path / "NSRLFile.txt").write_bytes(SAMPLE.read_bytes())
    listed = tmp_path / "hashes.txt"
    listed.write_bytes(HELLO_MD5.encode() + b"  hello.txt\n")
    assert registry.detect(listed).NAME == "gnu-sum"
    listed.write_bytes(HELLO_SHA1.lower().encode() + b"\n")
    assert registry.detect(listed).NAME == "plain"
    other = tmp_path / "other"
    (other / "NSRLFile.txt").mkdir(parents=True)
    (other / "hashes.txt").write_bytes(HELLO_SHA1.upper().encode() + b"\n")
    assert registry.detect(other / "hashes.txt").NAME == "plain"


def test_a_joined_csv_opening_with_product_columns_is_still_an_rds_list(tmp_path: Path) -> None:
    path = tmp_path / "joined.csv"
    path.write_bytes(
        b'"ProductCode","ProductName","ProductVersion","OpSystemCode","MfgCode","SHA-1","MD5",'
        b'"FileName","FileSize"\r\n1,"P","1","189","1","%s","%s","a.txt",5\r\n'
        % (HELLO_SHA1.upper().encode(), HELLO_MD5.upper().encode())
    )
    assert registry.detect(path).NAME == "nsrl-rds2"


def test_a_damaged_zip_is_named_as_such_by_detection(tmp_path: Path) -> None:
    good = zipped(tmp_path, {"RDS/NSRLFile.txt": SAMPLE.read_bytes() * 50})
    data = good.read_bytes()
    for name, cut in (("head.zip", data[:400]), ("tail.zip", data[:-200])):
        path = tmp_path / name
        path.write_bytes(cut)
        with pytest.raises(FormatError, match="a zip archive that cannot be read") as caught:
            registry.detect(path)
        assert caught.value.source == str(path)
    # An intact zip without an NSRLFile.txt is no NSRL list, and not damaged either.
    other = tmp_path / "other" / "other.zip"
    other.parent.mkdir()
    other.write_bytes(zipped(tmp_path, {"notes.txt": b"text\n"}).read_bytes())
    with pytest.raises(FormatError, match="a zip archive holding 'notes.txt': matcher reads a zip only"):
        registry.detect(other)


def test_a_missing_field_hidden_by_commas_in_the_name_is_named_as_such() -> None:
    # One comma in the name and one field missing: the count fits the header,
    # and the name's tail was read as the FileSize.
    line = b'"%s","%s","00000000","say ""hi"", ok.txt",240,11063,"358"\r\n' % (
        HELLO_SHA1.upper().encode(),
        HELLO_MD5.upper().encode(),
    )
    with pytest.raises(FormatError, match=r":2: expected 8 fields as in the header, found fewer"):
        parse(HEADER_20 + b"\r\n" + line)
    # Names that end in an escaped or a stray quote, or are empty, still read.
    for name, read in ((b'say ""hi""', 'say "hi"'), (b"", ""), (b'""', '"'), (b'x"', 'x"')):
        (record,) = parse(HEADER_20 + b"\r\n" + line20(HELLO_SHA1, HELLO_MD5, name))
        assert record.name == read


def test_the_missing_field_hint_needs_the_names_rest_in_the_next_field() -> None:
    # A name ending in a stray quote and a bad FileSize: the size is named.
    line = b'"%s","%s","00000000","x"","5k",1,"189",""\r\n' % (
        HELLO_SHA1.upper().encode(),
        HELLO_MD5.upper().encode(),
    )
    with pytest.raises(FormatError, match="FileSize is not a byte count"):
        parse(HEADER_20 + b"\r\n" + line)


def test_an_encrypted_zip_is_named_as_unreadable_not_damaged(tmp_path: Path) -> None:
    path = zipped(tmp_path, {"NSRLFile.txt": SAMPLE.read_bytes()})
    data = bytearray(path.read_bytes())
    # Set the "encrypted" flag in the local header and the central directory.
    for signature in (b"PK\x03\x04", b"PK\x01\x02"):
        at = data.index(signature)
        flag = at + (6 if signature == b"PK\x03\x04" else 8)
        data[flag] |= 1
    path.write_bytes(bytes(data))
    with pytest.raises(FormatError, match="a zip archive that matcher cannot read") as caught:
        registry.detect(path)
    assert "(encrypted)" in caught.value.reason and "damaged" not in caught.value.reason


def test_a_header_without_an_nsrl_column_names_the_one_it_lacks(tmp_path: Path) -> None:
    """Before: "expected an NSRLFile header naming SHA-1", of a header that names SHA-1."""
    path = tmp_path / "g.csv"
    path.write_bytes(b'"SHA-1","MD5","FileName","FileSize","SpecialCode"\r\n')
    with pytest.raises(FormatError, match=r"not an NSRLFile header \(it lacks ProductCode\)"):
        list(READER.read(path))


@pytest.mark.parametrize(
    ("header", "line", "found"),
    [
        (
            b'"SHA1","MD5","CRC32","FileName","FileSize","ProductCode","OpSystemCode","SpecialCode"',
            b'"%s","%s","3610A686","hello.txt",5,1,"189",""' % (HELLO_SHA1.upper().encode(), HELLO_MD5.upper().encode()),
            {"sha1": HELLO_SHA1, "md5": HELLO_MD5},
        ),
        (
            b'"MD5","FileName","FileSize","ProductCode","OpSystemCode","SpecialCode"',
            b'"%s","hello.txt",5,1,"189",""' % HELLO_MD5.upper().encode(),
            {"md5": HELLO_MD5},
        ),
        (
            b'"SHA-256","FileName","FileSize","ProductCode"',
            b'"%s","hello.txt",5,1' % HELLO_SHA256.upper().encode(),
            {"sha256": HELLO_SHA256},
        ),
    ],
    ids=["SHA1 spelling", "MD5 only", "SHA-256 only"],
)
def test_nsrl_style_look_alikes_are_read_by_column_name_as_known(
    tmp_path: Path, header: bytes, line: bytes, found: dict[str, str]
) -> None:
    """FORMATS.md 2: NSRL-style CSVs with columns missing. They were "not recognised", and
    `--format nsrl-rds2` refused them ("it lacks SHA-1"); only `--format csv` read them, as notable."""
    from click.testing import CliRunner

    from matcher.cli import cli

    path = tmp_path / "look-alike.csv"
    path.write_bytes(header + b"\r\n" + line + b"\r\n")
    assert registry.detect(path).NAME == "nsrl-rds2"
    [record] = READER.read(path)
    assert record.digests == {alg: bytes.fromhex(value) for alg, value in found.items()}
    assert (record.name, record.size, record.ident) == ("hello.txt", 5, "1")
    result = CliRunner().invoke(cli, ["import", str(path), "--db", str(tmp_path / "s.db")])
    assert result.exit_code == 0, result.output
    assert "imported 1 entry as known list 'look-alike.csv' (nsrl-rds2)" in result.stderr


def test_a_header_naming_no_digest_column_says_so() -> None:
    with pytest.raises(FormatError, match=r"not an NSRLFile header \(it lacks a digest column\)"):
        parse(b'"CRC32","FileName","FileSize","ProductCode"\r\n')


def test_one_digest_under_two_spellings_must_agree() -> None:
    header = b'"SHA-1","SHA1","FileName","ProductCode"\r\n'
    [record] = parse(header + b'"%s","%s","a",1\r\n' % ((HELLO_SHA1.encode(),) * 2))
    assert record.digests == {"sha1": bytes.fromhex(HELLO_SHA1)}
    with pytest.raises(FormatError, match=r":2: two different SHA1 values in one line"):
        parse(header + b'"%s","%s","a",1\r\n' % (HELLO_SHA1.encode(), EMPTY_SHA1.encode()))


def test_entries_nist_flags_malicious_are_said_when_imported_as_known(tmp_path: Path) -> None:
    """SpecialCode "M" (FORMATS.md 2: malicious): imported as known, a file matching one was
    counted known with nothing said at import, in `lists` or in the scan."""
    import json

    from click.testing import CliRunner

    from matcher.cli import cli

    header = b'"SHA-1","MD5","CRC32","FileName","FileSize","ProductCode","OpSystemCode","SpecialCode"'
    rows = [
        b'"%s","%s","00000000","%s",5,1,"358","%s"' % (b"%040X" % n, b"%032X" % n, name, code)
        for n, name, code in ((1, b"a.exe", b"M"), (2, b"b.dll", b""), (3, b"c.sys", b"S"))
    ]
    path = tmp_path / "NSRLFile.txt"
    path.write_bytes(b"\r\n".join([header, *rows]) + b"\r\n")
    runner = CliRunner()
    result = runner.invoke(cli, ["import", str(path), "--db", str(tmp_path / "s.db"), "--json"])
    assert result.exit_code == 0, result.output
    assert 'note: 1 of its entries carry NIST\'s SpecialCode "M" (malicious)' in result.stderr
    assert json.loads(result.stdout)[0]["flagged_malicious"] == 1
    notable = runner.invoke(
        cli, ["import", str(path), "--db", str(tmp_path / "n.db"), "--role", "notable"]
    )
    assert notable.exit_code == 0 and "SpecialCode" not in notable.stderr


@pytest.mark.parametrize("cut", [4, 5, 9])
def test_a_file_cut_short_inside_its_last_record_is_refused_at_that_line(cut: int) -> None:
    """Before: a copy cut just after SpecialCode's opening quote (or after the comma before
    it) was imported whole: the cut entry kept '"' as its label, and NIST's "M" flag was lost."""
    whole = HEADER_20 + b"\r\n" + line20(HELLO_SHA1, HELLO_MD5, b"hello.txt")
    whole += line20(WORLD_SHA1, WORLD_MD5, b"world.txt", special=b"M")
    assert [r.label for r in parse(whole)] == [None, "M"]
    errors: list[FormatError] = []
    assert len(parse(whole[:-cut], errors)) == 1
    assert [(e.line, "a copy cut short" in e.reason) for e in errors] == [(3, True)]


def test_a_quoted_field_left_open_is_an_invalid_line_not_a_quote_kept_as_the_value() -> None:
    line = line20(HELLO_SHA1, HELLO_MD5, b"hello.txt").replace(b',"189",""', b',"189","')
    errors: list[FormatError] = []
    assert parse(HEADER_20 + b"\r\n" + line, errors) == []
    assert [(e.line, "quoted field is left open" in e.reason) for e in errors] == [(2, True)]
    # Text after a closing quote is no open field: kept as it is, as before.
    kept = line20(HELLO_SHA1, HELLO_MD5, b"hello.txt").replace(b',1,"189"', b',"ACME" Tools,"189"')
    assert [r.ident for r in parse(HEADER_20 + b"\r\n" + kept)] == ['"ACME" Tools']


@pytest.mark.parametrize("end", [b"\r\n", b"\n"])
def test_a_whole_last_record_without_its_line_end_still_reads(end: bytes) -> None:
    """A look-alike (or a copy) may lack the final line end: a whole last record of quoted
    fields still reads, and a DOS end-of-file mark (Ctrl-Z) at the very end is no record."""
    body = line20(HELLO_SHA1, HELLO_MD5, b"hello.txt") + line20(WORLD_SHA1, WORLD_MD5, b"w", special=b"M")
    data = (HEADER_20 + b"\r\n" + body).replace(b"\r\n", end)
    for whole in (data[: -len(end)], data + b"\x1a", data[: -len(end)] + b"\x1a", data + b"\x1a" + end):
        assert [r.label for r in parse(whole)] == [None, "M"], whole[-12:]


def test_an_nsrl_style_list_whose_last_column_is_unquoted_is_refused_at_any_cut_of_its_last_record() -> None:
    """Before (with the first fix): a CR LF look-alike ending in an unquoted FileSize, cut
    inside it, imported the cut record with a wrong size (65 for 654321)."""
    header = b'"SHA-1","MD5","FileName","ProductCode","FileSize"\r\n'
    first = b'"%s","%s","a",1,5\r\n' % (HELLO_SHA1.upper().encode(), HELLO_MD5.upper().encode())
    last = b'"%s","%s","n1.txt",1,654321' % (WORLD_SHA1.upper().encode(), WORLD_MD5.upper().encode())
    assert [r.size for r in parse(header + first + last + b"\r\n")] == [5, 654321]
    for cut in range(1, len(last)):
        errors: list[FormatError] = []
        records = parse(header + first + last[:cut], errors)
        assert [r.size for r in records] == [5] and [e.line for e in errors] == [3], cut
    # Whole, but without its final line end: not told from a cut, so refused, saying so, and
    # saying why of records that end unquoted (it said "not a closed quoted field as the
    # records' before it are", of records with no quote at their end either).
    errors = []
    assert len(parse(header + first + last, errors)) == 1
    assert "if it is whole, add its final line end" in errors[0].reason
    assert "the records before it end in an unquoted field" in errors[0].reason
    assert "as the records' before it are" not in errors[0].reason


def test_a_cut_after_the_comma_before_specialcode_is_refused_whatever_the_line_ends() -> None:
    """Before (and with the first fix, in a file of LF line ends): imported whole, "M" lost."""
    body = line20(HELLO_SHA1, HELLO_MD5, b"hello.txt") + line20(WORLD_SHA1, WORLD_MD5, b"w", special=b"M")
    for end in (b"\r\n", b"\n"):
        data = (HEADER_20 + b"\r\n" + body).replace(b"\r\n", end)
        errors: list[FormatError] = []
        assert len(parse(data[: -len(end) - 3], errors)) == 1
        assert [(e.line, "a copy cut short" in e.reason) for e in errors] == [(3, True)]


def test_a_line_read_past_its_quoted_commas_keeps_the_fast_paths_leniency() -> None:
    """Read as RFC 4180 CSV by the csv module, a line with a quoted comma outside its FileName had
    its unquoted FileSize " 5 " refused ("not a byte count") and a blank after a closing quote
    refused ("expected 8 fields"), where the same fields on a line without the comma read."""
    header = b'"SHA-1","MD5","FileName","Comment","FileSize","ProductCode","OpSystemCode","SpecialCode"\r\n'
    line = (b'"AAF4C61DDCC5E8A2DABEDE0F3B482CD9AEA9434D","5D41402ABC4B2A76B9719D911017C592",'
            b'"a.txt","x, y" , 5 ,1,"358" ,""\r\n')  # fmt: skip
    (record,) = parse(header + line)
    assert (record.name, record.size, record.ident, record.label) == ("a.txt", 5, "1", None)
    plain = line.replace(b'"x, y"', b'"x y"')
    (same,) = parse(header + plain)
    assert (same.name, same.size, same.ident, same.label) == (record.name, record.size, record.ident, record.label)


@pytest.mark.parametrize("rest", [b'"5", x","7" x",123,"2, 3","W",""', b'"5" fl","1, 2"",123,"1","W",""'])
def test_a_line_with_stray_quotes_and_a_quoted_comma_is_refused_not_split_wrongly(rest: bytes) -> None:
    """The quote-aware split flipped "inside quotes" at every quote, stray ones (NIST writes names
    with unescaped quotes) too: such a line imported a wrong FileName. A field that is not
    unquoted, or quoted whole with only doubled quotes inside, refuses the line."""
    header = b'"SHA-1","MD5","FileName","Comment","FileSize","ProductCode","OpSystemCode","SpecialCode"\r\n'
    line = b'"AAF4C61DDCC5E8A2DABEDE0F3B482CD9AEA9434D","5D41402ABC4B2A76B9719D911017C592",' + rest + b"\r\n"
    with pytest.raises(FormatError, match="expected 8 fields as in the header"):
        parse(header + line)
