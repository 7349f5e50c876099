"""Detection over every file of the shared samples (../shared/formats/samples).

Each file is listed with its expected outcome: the one reader that claims it,
or a refusal whose message names the file and says what it is (not). The
table must cover the folder exactly, so a new sample fails this test until
someone decides what it is.

The samples are kept in the repository (tests/formats/shared_samples, a
byte-for-byte copy; its README.md gives every file's source and licence), so
that a fresh clone tests them; their MANIFEST.tsv (size and SHA-256 prefix of
each file) proves the copy unchanged. To take a newer sample set, copy the
folder again and update the table.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from matcher.errors import FormatError
from matcher.formats import registry
from matcher.formats.base import SNIFF_BYTES

SHARED = Path(__file__).resolve().parent / "shared_samples"

# What a refusal must say, by kind.
NOT_A_LIST = "not a hash list in any format matcher reads"
RDS_SIDE = "an NSRL RDS 2.x distribution file"
IDX = "a derived hfind index; import the list it was built from"
HKE = "a HashKeeper set description (.hke), not a hash list: import the set's .hsh"

# Every file of the shared samples: ("read", format) or ("refused", message part).
EXPECTED: dict[str, tuple[str, str]] = {
    "MANIFEST.tsv": ("refused", NOT_A_LIST),
    "README.md": ("refused", NOT_A_LIST),
    "synthetic/TRUTH.json": ("refused", NOT_A_LIST),
    "synthetic/b3sum/b3sum.txt": ("read", "gnu-sum"),
    "synthetic/case/case_file_output_hello.json": ("refused", NOT_A_LIST),
    "synthetic/case/match_investigative_action.json": ("refused", NOT_A_LIST),
    "synthetic/clamav/sigtool_md5.hdb": ("read", "clamav"),
    "synthetic/clamav/sigtool_sha.hsb": ("read", "clamav"),
    "synthetic/clamav/wildcard_size.hsb": ("read", "clamav"),
    "synthetic/clamav/with_flevel_and_comment.hdb": ("read", "clamav"),
    "synthetic/coreutils/b2sum.txt": ("read", "gnu-sum"),
    "synthetic/coreutils/cksum_sha256_tagged.txt": ("read", "bsd-tag"),
    "synthetic/coreutils/md5sum.txt": ("read", "gnu-sum"),
    "synthetic/coreutils/md5sum_binary_flag.txt": ("read", "gnu-sum"),
    "synthetic/coreutils/md5sum_zero.bin": ("read", "gnu-sum"),
    "synthetic/coreutils/sha1sum.txt": ("read", "gnu-sum"),
    "synthetic/coreutils/sha256sum.txt": ("read", "gnu-sum"),
    "synthetic/coreutils/sha256sum_tag.txt": ("read", "bsd-tag"),
    "synthetic/coreutils/sha512sum.txt": ("read", "gnu-sum"),
    "synthetic/csv/hashes_header.csv": ("read", "csv"),
    "synthetic/csv/hashes_quoted_bom.csv": ("read", "csv"),
    "synthetic/csv/hashes_semicolon.csv": ("read", "csv"),
    "synthetic/dfxml/fiwalk_x.xml": ("refused", NOT_A_LIST),
    "synthetic/dfxml/hashdeep_d.xml": ("refused", NOT_A_LIST),
    "synthetic/dfxml/match_report_example.xml": ("refused", NOT_A_LIST),
    "synthetic/dfxml/md5deep_d.xml": ("refused", NOT_A_LIST),
    "synthetic/encase/synthetic.hash": ("read", "encase"),
    "synthetic/hashdeep/audit_known.hd": ("read", "hashdeep"),
    "synthetic/hashdeep/audit_v.txt": ("refused", NOT_A_LIST),
    "synthetic/hashdeep/audit_vv.txt": ("refused", NOT_A_LIST),
    "synthetic/hashdeep/audit_vvv.txt": ("refused", NOT_A_LIST),
    "synthetic/hashdeep/hashdeep_bare.txt": ("read", "hashdeep"),
    "synthetic/hashdeep/hashdeep_default.txt": ("read", "hashdeep"),
    "synthetic/hashdeep/hashdeep_md5_sha1_sha256.txt": ("read", "hashdeep"),
    "synthetic/hashdeep/match_m.txt": ("refused", NOT_A_LIST),
    "synthetic/hashdeep/match_w_m.txt": ("refused", NOT_A_LIST),
    "synthetic/hashdeep/md5deep_plain.txt": ("read", "gnu-sum"),
    "synthetic/hashdeep/md5deep_size_z.txt": ("read", "hashdeep"),
    "synthetic/hashdeep/negative_x.txt": ("refused", NOT_A_LIST),
    "synthetic/hashkeeper/synthetic.hke": ("refused", HKE + " (synthetic.hsh)"),
    "synthetic/hashkeeper/synthetic.hsh": ("read", "hashkeeper"),
    "synthetic/nsrl_rds2/NSRLFile.txt": ("read", "nsrl-rds2"),
    "synthetic/nsrl_rds2/NSRLMfg.txt": ("refused", RDS_SIDE + " (NSRLMfg.txt:"),
    "synthetic/nsrl_rds2/NSRLOS.txt": ("refused", RDS_SIDE + " (NSRLOS.txt:"),
    "synthetic/nsrl_rds2/NSRLProd.txt": ("refused", RDS_SIDE + " (NSRLProd.txt:"),
    "synthetic/nsrl_rds3/RDS_synthetic_full.db": ("read", "nsrl-rds3"),
    "synthetic/nsrl_rds3/RDS_synthetic_minimal.db": ("read", "nsrl-rds3"),
    "synthetic/nsrl_rds3/RDS_synthetic_minimal.schema.sql": ("refused", NOT_A_LIST),
    "synthetic/plain/edge_cases.txt": ("read", "plain"),
    "synthetic/plain/md5_lower.txt": ("read", "plain"),
    "synthetic/plain/md5_upper_crlf.txt": ("read", "plain"),
    "synthetic/plain/sha1.txt": ("read", "plain"),
    "synthetic/plain/sha256.txt": ("read", "plain"),
    "synthetic/tsk/list.md5": ("read", "gnu-sum"),
    "synthetic/tsk/list.md5-md5.idx": ("refused", IDX + " (list.md5)"),
    "synthetic/tsk/synthetic.kdb": ("read", "tsk-kdb"),
    "synthetic/vics/vics_1.2_caid_style.json": ("read", "vics"),
    "synthetic/vics/vics_1.3_media.json": ("read", "vics"),
    "synthetic/vics/vics_2.0_cases.json": ("read", "vics"),
    "synthetic/vics/vics_2.0_default_media.json": ("read", "vics"),
    "synthetic/xways/md5.txt": ("read", "xways"),
    "synthetic/xways/sha1.txt": ("read", "xways"),
    "upstream/blake3/test_vectors.json": ("refused", NOT_A_LIST),
    "upstream/case/CASE-Examples_file.json": ("refused", NOT_A_LIST),
    "upstream/case/CASE_investigative_action_PASS.json": ("refused", NOT_A_LIST),
    "upstream/dfxml_schema/LICENSE.md": ("refused", NOT_A_LIST),
    "upstream/dfxml_schema/dfxml.xsd": ("refused", NOT_A_LIST),
    "upstream/dfxml_schema/ref/dc.xsd": ("refused", NOT_A_LIST),
    "upstream/dfxml_schema/ref/xml.xsd": ("refused", NOT_A_LIST),
    "upstream/dfxml_schema/tests/minimal.dfxml": ("refused", NOT_A_LIST),
    "upstream/griffeyeps/LICENSE": ("refused", NOT_A_LIST),
    "upstream/griffeyeps/ProjectVicDataModel.2.0.xml": ("refused", NOT_A_LIST),
    "upstream/hashdeep/FILEFORMAT": ("refused", NOT_A_LIST),
    "upstream/hashdeep/sample-hashes/hashdeep.txt": ("read", "hashdeep"),
    "upstream/hashdeep/sample-hashes/hashkeeper/Z00236.hke": ("refused", HKE + " (Z00236.hsh)"),
    "upstream/hashdeep/sample-hashes/hashkeeper/Z00236.hsh": ("read", "hashkeeper"),
    "upstream/hashdeep/sample-hashes/ilookv3.hsh": ("read", "ilook"),
    "upstream/hashdeep/sample-hashes/ilookv4.hsh": ("read", "ilook"),
    "upstream/hashdeep/sample-hashes/md5deep-size.txt": ("read", "hashdeep"),
    "upstream/hashdeep/sample-hashes/md5deep.txt": ("read", "gnu-sum"),
    "upstream/hashdeep/sample-hashes/nsrl/Data-Formats-of-the-NSRL-Reference-Data-Set-12.pdf": (
        "refused",
        NOT_A_LIST,
    ),
    "upstream/hashdeep/sample-hashes/nsrl/NSRL-1.5.txt": ("read", "nsrl-rds2"),
    "upstream/hashdeep/sample-hashes/nsrl/NSRL-2.0.txt": ("read", "nsrl-rds2"),
    "upstream/hashdeep/sample-hashes/nsrl/RDS-000001-15.zip": ("read", "nsrl-rds2"),
    "upstream/hashdeep/sample-hashes/nsrl/RDS-000001-20.zip": ("read", "nsrl-rds2"),
    "upstream/hashdeep/tests/testfiles/bsd-hashes.txt": ("read", "bsd-tag"),
    "upstream/hashdeep/tests/testfiles/ilookv4.hsh": ("read", "ilook"),
    "upstream/hashdeep/tests/testfiles/known.txt": ("read", "gnu-sum"),
    "upstream/hashdeep/tests/testfiles/nsrlfile.txt": ("read", "nsrl-rds2"),
    "upstream/rds4xways/RDSv3.pdf": ("refused", NOT_A_LIST),
    "upstream/rds4xways/RDSv3_2021.12.2_curated.schema.sql": ("refused", NOT_A_LIST),
    "upstream/rds4xways/data-formats-of-the-nsrl-reference-data-set-16.pdf": (
        "refused",
        NOT_A_LIST,
    ),
    "upstream/simsong-dfxml/LICENSE.md": ("refused", NOT_A_LIST),
    "upstream/simsong-dfxml/difference_test_0.xml": ("refused", NOT_A_LIST),
    "upstream/simsong-dfxml/difference_test_1.xml": ("refused", NOT_A_LIST),
    "upstream/simsong-dfxml/difference_test_2.xml": ("refused", NOT_A_LIST),
    "upstream/simsong-dfxml/difference_test_3.xml": ("refused", NOT_A_LIST),
    "upstream/simsong-dfxml/simple.xml": ("refused", NOT_A_LIST),
    "upstream/sleuthkit/testmd5.dat": ("read", "gnu-sum"),
    "upstream/sleuthkit/testmd5.dat-md5.idx": ("refused", IDX + " (testmd5.dat)"),
}


def test_the_samples_are_the_published_ones() -> None:
    # Note: a missing folder must fail the run, never skip it.
    assert SHARED.is_dir(), f"the shared samples are missing: {SHARED}"
    manifest = {}
    for line in (SHARED / "MANIFEST.tsv").read_text().splitlines():
        size, prefix, name = line.split("\t")
        manifest[name.removeprefix("./")] = (int(size), prefix)
    for name, (size, prefix) in manifest.items():
        data = (SHARED / name).read_bytes()
        assert (len(data), hashlib.sha256(data).hexdigest()[:16]) == (size, prefix), name
    listed = {str(p.relative_to(SHARED)) for p in SHARED.rglob("*") if p.is_file()}
    assert listed - set(manifest) == {"MANIFEST.tsv"}


def test_the_table_lists_every_sample_exactly() -> None:
    found = {str(p.relative_to(SHARED)) for p in SHARED.rglob("*") if p.is_file()}
    assert found, f"no samples under {SHARED}"
    assert sorted(found - set(EXPECTED)) == [], "samples with no expected outcome"
    assert sorted(set(EXPECTED) - found) == [], "expected samples that are gone"


@pytest.mark.parametrize(("sample", "expected"), sorted(EXPECTED.items()))
def test_detection(sample: str, expected: tuple[str, str]) -> None:
    path = SHARED / sample
    outcome, detail = expected
    head = registry.read_head(path)
    claimed = [reader.NAME for reader in registry.readers() if reader.sniff(head, path)]
    if outcome == "read":
        assert claimed == [detail]
        reader = registry.detect(path)
        assert reader.NAME == detail
        # The reader really reads it: at least one entry (bad lines aside);
        # b2sum output is recognised, and its BLAKE2b digests refused.
        errors: list[FormatError] = []
        first = next(iter(reader.read(path, errors.append)), None)
        if sample == "synthetic/coreutils/b2sum.txt":
            assert first is None and errors and "BLAKE2b" in errors[0].reason
        else:
            assert first is not None
        return
    assert claimed == []
    with pytest.raises(FormatError) as caught:
        registry.detect(path)
    message = str(caught.value)
    # The message names the file, then says what it is not (or what it is).
    assert message.startswith(f"{path}: "), message
    assert detail in message, message


def test_refusals_see_every_sample_once_at_most() -> None:
    # A file is claimed by one reader or one refusal, never by both kinds.
    for sample in sorted(EXPECTED):
        path = SHARED / sample
        head = path.read_bytes()[:SNIFF_BYTES]
        readers = [r.NAME for r in registry.readers() if r.sniff(head, path)]
        refusals = [r.NAME for r in registry.refusals() if r.refuse(head, path) is not None]
        assert len(readers) + len(refusals) <= 1, (sample, readers, refusals)


MD5 = b"5d41402abc4b2a76b9719d911017c592"
SHA1 = b"aaf4c61ddcc5e8a2dabede0f3b482cd9aea9434d"
# First lines and entries of every format; no mix of them may be claimed twice.
LINES = [
    b"MD5",
    b"SHA-1",
    b"sha256",
    b"RIPEMD-160",
    MD5,
    MD5.upper(),
    SHA1,
    b"AAF4C61DDCC5E8A2DABEDE0F3B482CD9",  # Base32-shaped
    MD5 + b"  name.txt",
    b"MD5 (a) = " + MD5,
    b"%%%% HASHDEEP-1.0",
    b"%%%% size,md5,filename",
    b"5," + MD5 + b",f",
    MD5 + b":5:name",
    b"md5,sha1,name",
    MD5 + b"," + SHA1 + b",n",
    b'"file_id","hashset_id","file_name","directory","hash","file_size"',
    b'1,900,"hello.txt","C:\\test","' + MD5.upper() + b'",5',
    b'"hashset_id","name","vendor","package","version","authenicated_flag"',
    b"V3Hash,HashSHA1,FileName,FilePath,FileSize,HashSHA256,HashSHA384,HashSHA512",
    b"V1Hash,HashType,SetDescription,FileName,FilePath,FileSize",
    MD5.upper() + b"," + SHA1.upper() + b",a,\\,5,,,",
    b"0" * 41 + b"|md5sum",
    b"0" * 40 + b"1|list.md5",
    MD5.upper() + b"|0000000000000000",
    b'"SHA-1","MD5","CRC32","FileName","FileSize","ProductCode","OpSystemCode","SpecialCode"',
    b"# comment",
    b"",
    b"junk",
]


@given(
    st.sampled_from([b"", b"HASH\r\n\xff\x00", b"SQLite format 3\x00", b"\xef\xbb\xbf"]),
    st.lists(st.sampled_from(LINES), max_size=8),
    st.sampled_from([b"\n", b"\r\n"]),
)
def test_sniffers_never_overlap(prefix: bytes, lines: list[bytes], newline: bytes) -> None:
    head = prefix + newline.join(lines)
    claimed = [reader.NAME for reader in registry.readers() if reader.sniff(head, None)]
    assert len(claimed) <= 1, claimed
