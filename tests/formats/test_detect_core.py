"""Detection among the core text readers: gnu-sum, bsd-tag, plain, hashdeep and csv.

Detection across every registered format is tested elsewhere; here only these
five readers are registered, and each sample must pick exactly one of them.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import example
from hypothesis import given
from hypothesis import strategies as st

from matcher.errors import FormatError
from matcher.formats import registry
from matcher.formats.base import HashListReader
from matcher.formats.bsd_tag import BsdTagReader
from matcher.formats.csv_list import CsvListReader
from matcher.formats.gnu_sum import GnuSumReader
from matcher.formats.hashdeep import HashdeepReader
from matcher.formats.plain import PlainReader

SAMPLES = Path(__file__).parent / "samples" / "synthetic"
CORE: list[HashListReader] = [
    GnuSumReader(),
    BsdTagReader(),
    PlainReader(),
    HashdeepReader(),
    CsvListReader(),
]
EXPECTED = {
    "b3sum/b3sum.txt": "gnu-sum",
    "coreutils/b2sum.txt": "gnu-sum",
    "coreutils/md5sum.txt": "gnu-sum",
    "coreutils/md5sum_binary_flag.txt": "gnu-sum",
    "coreutils/md5sum_zero.bin": "gnu-sum",
    "coreutils/sha1sum.txt": "gnu-sum",
    "coreutils/sha256sum.txt": "gnu-sum",
    "coreutils/sha512sum.txt": "gnu-sum",
    "hashdeep/md5deep_plain.txt": "gnu-sum",
    "coreutils/cksum_sha256_tagged.txt": "bsd-tag",
    "coreutils/sha256sum_tag.txt": "bsd-tag",
    "plain/edge_cases.txt": "plain",
    "plain/md5_lower.txt": "plain",
    "plain/md5_upper_crlf.txt": "plain",
    "plain/sha1.txt": "plain",
    "plain/sha256.txt": "plain",
    "hashdeep/audit_known.hd": "hashdeep",
    "hashdeep/hashdeep_bare.txt": "hashdeep",
    "hashdeep/hashdeep_default.txt": "hashdeep",
    "hashdeep/hashdeep_md5_sha1_sha256.txt": "hashdeep",
    "hashdeep/md5deep_size_z.txt": "hashdeep",
    "csv/hashes_header.csv": "csv",
    "csv/hashes_quoted_bom.csv": "csv",
    "csv/hashes_semicolon.csv": "csv",
}
MD5 = b"5d41402abc4b2a76b9719d911017c592"
SHA1 = b"aaf4c61ddcc5e8a2dabede0f3b482cd9aea9434d"
# First bytes of formats other readers own; none of the core five may claim them.
FOREIGN = {
    "nsrl-rds2": b'"SHA-1","MD5","CRC32","FileName","FileSize","ProductCode","OpSystemCode",'
    b'"SpecialCode"\r\n"'
    + SHA1.upper()
    + b'","'
    + MD5.upper()
    + b'","3610A686","a",5,1,"WIN",""\r\n',
    "nsrl-1.5": b'"SHA-1","FileName","FileSize","ProductCode","OpSystemCode","MD4","MD5",'
    b'"CRC32","SpecialCode"\r\n"' + SHA1.upper() + b'","a",5,1,"WIN","","' + MD5 + b'","",""\r\n',
    "nsrl-rds3": b"SQLite format 3\x00\x10\x00\x01\x01\x00@  \x00\x00\x00\x02",
    "clamav-hdb": b"# comment\n" + MD5 + b":2048:pattern2048.bin\n",
    "clamav-hsb": SHA1 + b":*:Synthetic.Test.Wildcard:73\n",
    "vics": b'{"@odata.context":"http://github.com/ICMEC/ProjectVic/DataModels/2.0.xml/Default/'
    b'$metadata#Media","value":[{"MD5":"' + MD5 + b'","Category":1}]}',
    "vics-pretty": b'{\n  "odata.metadata": "x",\n  "value": [\n    {\n      "MD5": "'
    + MD5
    + b'"\n',
    "xways": b"MD5\r\n" + MD5.upper() + b"\r\n",
    "hashkeeper": b'"file_id","hashset_id","file_name","directory","hash","file_size"\r\n'
    b'1,900,"hello.txt","C:\\test","' + MD5.upper() + b'",5\r\n',
    "ilook": b"V3Hash,HashSHA1,FileName,FilePath,FileSize\n" + MD5 + b"," + SHA1 + b",a,\\,5\n",
    "encase": b"HASH\r\n\xff\x00" + b"\x00" * 32,
}


@pytest.fixture
def core_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(registry, "_READERS", {reader.NAME: reader for reader in CORE})
    # Note: and no refusal that speaks for a reader left out (VICS without its envelope).
    refusals = {n: r for n, r in registry._REFUSALS.items() if n != "vics-without-envelope"}
    monkeypatch.setattr(registry, "_REFUSALS", refusals)


@pytest.mark.usefixtures("core_only")
@pytest.mark.parametrize(("sample", "name"), sorted(EXPECTED.items()))
def test_detect_picks_exactly_one_core_reader(sample: str, name: str) -> None:
    assert registry.detect(SAMPLES / sample).NAME == name


def test_every_core_sample_is_covered() -> None:
    # Note that other readers' samples live beside these, in their own folders.
    core = {p for d in ("b3sum", "coreutils", "csv", "plain") for p in (SAMPLES / d).iterdir()}
    assert {str(p.relative_to(SAMPLES)) for p in core} <= set(EXPECTED)
    assert all((SAMPLES / sample).is_file() for sample in EXPECTED)


@pytest.mark.usefixtures("core_only")
@pytest.mark.parametrize("kind", sorted(FOREIGN))
def test_other_formats_are_left_alone(kind: str, tmp_path: Path) -> None:
    path = tmp_path / kind
    path.write_bytes(FOREIGN[kind])
    # A bare SQLite header is a database that cannot be read; detection says so.
    expected = "SQLite database that cannot be read" if kind == "nsrl-rds3" else "not recognised"
    with pytest.raises(FormatError, match=expected):
        registry.detect(path)


LINES = [
    MD5 + b"  name.txt",
    b"\\" + MD5 + b"  back\\\\slash",
    MD5 + b" *bin,md5,x",
    b"MD5 (a,md5,b) = " + MD5,
    b"BLAKE3 (x) = " + MD5 + MD5,
    MD5,
    SHA1.upper(),
    b"md5,sha1,name",
    b"md5;name",
    MD5 + b",n",
    b"%%%% HASHDEEP-1.0",
    b"%%%% size,md5,filename",
    b"5," + MD5 + b",f",
    b"         5  " + MD5 + b"  f",
    MD5 + b":5:name",
    b"# comment",
    b"",
    b"junk",
    b"\xef\xbb\xbf",
]


@given(st.lists(st.sampled_from(LINES), max_size=8), st.sampled_from([b"\n", b"\r\n", b"\0"]))
# A tagged line whose name reads as a CSV header, then a CSV row: both once claimed it.
@example(lines=[b"MD5 (a,md5,b) = " + MD5, b"5," + MD5 + b",f"], newline=b"\n")
def test_sniffers_never_overlap(lines: list[bytes], newline: bytes) -> None:
    head = newline.join(lines)
    claimed = [reader.NAME for reader in CORE if reader.sniff(head, None)]
    assert len(claimed) <= 1, claimed


@given(st.binary(max_size=500))
def test_sniffers_never_overlap_on_any_bytes(head: bytes) -> None:
    claimed = [reader.NAME for reader in CORE if reader.sniff(head, None)]
    assert len(claimed) <= 1, claimed


@pytest.mark.parametrize(
    ("content", "says"),
    [
        (b"", "the file is empty"),
        (b"\n\r\n  \n", "holds only blank lines"),
        (b"\x00" * 100, "holds only blank lines"),
        (b"\xef\xbb\xbf", "holds only blank lines"),  # a UTF-8 BOM, which readers drop
        (b"\xef\xbb\xbf\r\n\r\n", "holds only blank lines"),
        (b"\n" * (70 * 1024) + b"d41d8cd98f00b204e9800998ecf8427e  x\n", "starts with 64 KiB of blank lines"),
    ],
)
def test_an_empty_or_blank_file_is_called_so_not_an_unknown_format(tmp_path: Path, content: bytes, says: str) -> None:
    path = tmp_path / "list.txt"
    path.write_bytes(content)
    with pytest.raises(FormatError, match=says) as refused:
        registry.detect(path)
    assert "not recognised" not in str(refused.value) and "list.txt" in str(refused.value)


def test_a_packed_list_is_refused_saying_what_it_holds(tmp_path: Path) -> None:
    """Before: "not a hash list in any format matcher reads", for NIST's own zipped RDS v3."""
    import gzip
    import zipfile

    from matcher.errors import FormatError
    from matcher.formats import registry

    rds = tmp_path / "rds3.zip"
    with zipfile.ZipFile(rds, "w") as archive:
        archive.writestr("RDS_2026.09.1_modern_minimal/RDS_2026.09.1_modern_minimal.db", b"SQLite format 3\x00")
    with pytest.raises(FormatError, match=r"a zip archive holding 'RDS_2026.09.1_modern_minimal/RDS_2026.09.1_"
                       r"modern_minimal.db': matcher reads a zip only as an NSRL RDS 2.x distribution"):  # fmt: skip
        registry.detect(rds)
    many = tmp_path / "many.zip"
    with zipfile.ZipFile(many, "w") as archive:
        for i in range(7):
            archive.writestr(f"l{i}.json", b"{}")
    with pytest.raises(FormatError, match=r"holding 'l0.json', .*'l4.json' and 2 more"):
        registry.detect(many)
    packed = tmp_path / "list.md5.gz"
    packed.write_bytes(gzip.compress(b"d41d8cd98f00b204e9800998ecf8427e  empty\n"))
    with pytest.raises(FormatError, match=r"a gzip-compressed file: .*\(`gunzip`\)"):
        registry.detect(packed)
    # An NSRL RDS 2.x zip is still read.
    rds2 = tmp_path / "rds2.zip"
    with zipfile.ZipFile(rds2, "w") as archive:
        archive.writestr(
            "NSRLFile.txt",
            '"SHA-1","MD5","CRC32","FileName","FileSize","ProductCode","OpSystemCode","SpecialCode"\r\n'
            '"DA39A3EE5E6B4B0D3255BFEF95601890AFD80709","D41D8CD98F00B204E9800998ECF8427E",'
            '"00000000","e",0,1,"358",""\r\n',
        )
    assert registry.detect(rds2).NAME == "nsrl-rds2"


@pytest.mark.parametrize("method", ["stored", "deflated"])
def test_a_zip_holding_a_text_list_is_refused_never_read_as_that_text(tmp_path: Path, method: str) -> None:
    """Before: a stored zip (Python's zipfile default) of a CSV was taken by the csv reader,
    the zip's header glued onto the CSV header: "line 7: expected 2 fields", and with
    --skip-invalid a notable list imported from the zip's bytes. A zip holding an
    NSRLFile.txt whose header is not NSRL's was read so too, or "not a hash list"."""
    import hashlib
    import zipfile

    compression = zipfile.ZIP_STORED if method == "stored" else zipfile.ZIP_DEFLATED
    text = "name,md5\n" + "".join(f"f{i},{hashlib.md5(bytes([i])).hexdigest()}\n" for i in range(5))
    packed = tmp_path / "u.zip"
    with zipfile.ZipFile(packed, "w", compression=compression) as archive:
        archive.writestr("notable.csv", text)
    with pytest.raises(FormatError, match=r"a zip archive holding 'notable.csv': .*unpack"):
        registry.detect(packed)
    nsrl = tmp_path / "NSRLFile.txt.zip"
    with zipfile.ZipFile(nsrl, "w", compression=compression) as archive:
        archive.writestr("NSRLFile.txt", '"FileName","MD5"\r\n"a.txt","0CC175B9C0F1B6A831C399E269772661"\r\n')
    with pytest.raises(FormatError) as caught:
        registry.detect(nsrl)
    said = str(caught.value)
    assert "a zip holding NSRLFile.txt that is not an NSRL RDS 2.x list" in said, said
    assert "line 1" in said and "ProductCode" in said and "PK" not in said


@pytest.mark.parametrize(
    ("name", "first", "line"),
    [
        ("evidence.md5", "0" * 31 + "  bad.bin\n", 1),
        ("SHA256SUMS", "z" * 64 + "  bad.bin\n", 1),
        ("list.csv", "md5,size,name\n" + "0" * 32 + ",-1,bad.bin\n", 2),
    ],
)
def test_a_bad_first_entry_of_a_list_named_for_its_format_is_named_by_line(
    tmp_path: Path, name: str, first: str, line: int
) -> None:
    """Detection needs most of the head's lines good: a bad first entry (of 20) made the
    file "not a hash list in any format", where the same fault on line 2 is named."""
    path = tmp_path / name
    good = "".join(f"{n:064x}"[: 64 if "SHA256" in name else 32] + f"  f{n}\n" for n in range(1, 20))
    if name.endswith(".csv"):
        good = "".join(f"{n:032x},{n},f{n}\n" for n in range(1, 20))
    path.write_text(first + good)
    with pytest.raises(FormatError) as caught:
        registry.detect(path)
    assert f"read as one, line {line} is not an entry" in str(caught.value), str(caught.value)
    assert "--skip-invalid" in str(caught.value)


@pytest.mark.parametrize(
    ("name", "text", "says"),
    [
        (
            "case.csv",
            "SHA256,FileName\n" + "".join(f"{n:032x},f{n}.jpg\n" for n in range(20)),
            "line 2: expected 64 hex digits for sha256",
        ),
        ("one.md5", "0123456789\n", "line 1: "),
    ],
)
def test_a_named_list_whose_every_line_is_bad_names_the_first(
    tmp_path: Path, name: str, text: str, says: str
) -> None:
    """Every row with one fault (MD5 digests under a SHA256 header) was "not a hash
    list in any format", without a line; a single bad line too."""
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(FormatError) as caught:
        registry.detect(path)
    assert "no line of it is an entry" in str(caught.value), str(caught.value)
    assert says in str(caught.value), str(caught.value)
    assert "--skip-invalid" not in str(caught.value)


def test_a_named_list_that_is_not_one_at_all_gets_no_skip_invalid_advice(tmp_path: Path) -> None:
    """A header with no hash column is the whole file's fault: --skip-invalid cannot help."""
    path = tmp_path / "nohash.csv"
    path.write_text("name,size\nfoo,1\n")
    with pytest.raises(FormatError) as caught:
        registry.detect(path)
    assert "read as one, line 1: the header row names no hash column" in str(caught.value)
    assert "--skip-invalid" not in str(caught.value)
