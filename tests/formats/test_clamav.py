"""Tests for the ClamAV .hdb/.hsb whole-file hash reader (clamav)."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st

from matcher.errors import FormatError
from matcher.formats import clamav
from matcher.formats import registry
from matcher.formats.base import SNIFF_BYTES
from matcher.formats.clamav import ClamavReader
from matcher.formats.clamav import looks_like_section_hashes
from matcher.models import HashRecord

SAMPLES = Path(__file__).parent / "samples" / "synthetic" / "clamav"
ALL_SAMPLES = Path(__file__).parent / "samples"
READER = ClamavReader()

# pattern2048.bin from samples/synthetic/TRUTH.json: bytes(range(256)) * 8.
PATTERN_MD5 = "1576a94d6cb334dd126cb1c27f19e0f2"
PATTERN_SHA1 = "f10ccfde60c17db26e7d85d35665c7661dbbeb2c"
PATTERN_SHA256 = "10fc3c51a152e90e5b90319b601d92ccf37290ef53c35ff92507687d8a911a08"
HELLO_MD5 = "5d41402abc4b2a76b9719d911017c592"


def parse(data: bytes, errors: list[FormatError] | None = None) -> list[HashRecord]:
    on_invalid = errors.append if errors is not None else None
    return list(READER.parse(io.BytesIO(data), source="sigs.hdb", on_invalid=on_invalid))


def test_registered_with_notable_role() -> None:
    assert isinstance(registry.get("clamav"), ClamavReader)
    assert READER.DEFAULT_ROLE == "notable"


def test_truth_literals_match_the_pattern() -> None:
    pattern = bytes(range(256)) * 8
    assert hashlib.md5(pattern).hexdigest() == PATTERN_MD5
    assert hashlib.sha256(pattern).hexdigest() == PATTERN_SHA256


def test_sigtool_md5_sample() -> None:
    [record] = READER.read(SAMPLES / "sigtool_md5.hdb")
    assert record == HashRecord(
        digests={"md5": bytes.fromhex(PATTERN_MD5)}, size=2048, name="pattern2048.bin", line=1
    )


def test_sigtool_sha_sample_picks_the_algorithm_by_length() -> None:
    records = list(READER.read(SAMPLES / "sigtool_sha.hsb"))
    assert [r.digests for r in records] == [
        {"sha1": bytes.fromhex(PATTERN_SHA1)},
        {"sha256": bytes.fromhex(PATTERN_SHA256)},
    ]
    assert [(r.size, r.name, r.ident, r.label, r.line) for r in records] == [
        (2048, "pattern2048.bin", None, None, 1),
        (2048, "pattern2048.bin", None, None, 2),
    ]


def test_wildcard_size_with_flevel() -> None:
    [record] = READER.read(SAMPLES / "wildcard_size.hsb")
    assert record.digests == {"sha256": bytes.fromhex(PATTERN_SHA256)}
    assert (record.size, record.name) == (None, "Synthetic.Test.Wildcard")


def test_comment_and_flevels() -> None:
    [record] = READER.read(SAMPLES / "with_flevel_and_comment.hdb")
    assert (record.name, record.size, record.line) == ("Synthetic.Test.Flevel", 2048, 2)


def test_crlf_bom_upper_case_blank_lines_and_odd_names() -> None:
    data = (
        b"\xef\xbb\xbf# header comment\r\n"
        + HELLO_MD5.upper().encode()
        + b":5:Name With Space\r\n"
        + b"\r\n"
        + HELLO_MD5.encode()
        + b":5:caf\xe9\r\n"
        + HELLO_MD5.encode()
        + b":5:"
    )
    records = parse(data)
    assert [(r.name, r.line) for r in records] == [
        ("Name With Space", 2),
        (b"caf\xe9", 4),
        (None, 5),
    ]
    assert records[0].digests == {"md5": bytes.fromhex(HELLO_MD5)}


def test_malformed_lines_have_line_numbers() -> None:
    data = (
        HELLO_MD5.encode()
        + b":5:ok\n"
        + HELLO_MD5[:-1].encode()
        + b":5:short\n"
        + HELLO_MD5.encode()
        + b":five:badsize\n"
        + HELLO_MD5.encode()
        + b"  gnu-sum-style\n"
        + HELLO_MD5.encode()
        + b":5:name:notanumber\n"
        + HELLO_MD5.encode()
        + b":5:ok2\n"
    )
    with pytest.raises(FormatError) as caught:
        parse(data)
    assert (caught.value.source, caught.value.line) == ("sigs.hdb", 2)
    assert "expected hash:size:name" in caught.value.reason
    errors: list[FormatError] = []
    assert [r.name for r in parse(data, errors)] == ["ok", "ok2"]
    assert [e.line for e in errors] == [2, 3, 4, 5]


def test_overlong_line_is_reported_with_a_short_message() -> None:
    data = b"a" * (clamav.MAX_LINE * 2) + b"\n" + HELLO_MD5.encode() + b":5:after\n"
    errors: list[FormatError] = []
    assert [r.line for r in parse(data, errors)] == [2]
    assert [e.line for e in errors] == [1]
    with pytest.raises(FormatError) as caught:
        parse(b"z" * 5000 + b"\n")
    assert len(str(caught.value)) < 120


def test_section_hash_files_are_refused() -> None:
    mdb = b"# PE sections\n45056:" + PATTERN_MD5.encode() + b":Win.Trojan.Test\n"
    msb = b"*:" + PATTERN_SHA256.encode() + b":Win.Test:73\n"
    for data in (mdb, msb):
        assert looks_like_section_hashes(data)
        assert not READER.sniff(data)
        with pytest.raises(FormatError, match=r"PE-section hashes \(\.mdb/\.msb\)"):
            parse(data)
        # Not a malformed line that --skip-invalid could pass over: the file is refused.
        with pytest.raises(FormatError, match="matcher cannot use it"):
            parse(data, [])


@pytest.mark.parametrize("name", ["sec.mdb", "sec.msb", "sec.hdb", "sec.txt"])
def test_detection_refuses_section_hashes_with_the_reason_whatever_the_name(
    tmp_path: Path, name: str
) -> None:
    path = tmp_path / name
    path.write_bytes(b"45056:" + PATTERN_MD5.encode() + b":Win.Trojan.Test\n")
    with pytest.raises(FormatError, match=r"PE-section hashes \(\.mdb/\.msb\)"):
        registry.detect(path)


@pytest.mark.parametrize("suffix", [".hdb", ".HSB", ".hdu", ".hsu"])
def test_a_file_named_as_clamav_with_a_bad_line_is_read_naming_it_and_skip_invalid_keeps_the_rest(
    tmp_path: Path, suffix: str
) -> None:
    """Refused at detection, a bad line in the first 64 KiB asked for --format clamav even
    with --skip-invalid given (a bad line further on was skipped): now the list is read as
    ClamAV's, its bad line named by number, and --skip-invalid alone keeps the good ones."""
    from click.testing import CliRunner

    from matcher.cli import cli

    path = tmp_path / f"sigs{suffix}"
    good = PATTERN_MD5.encode() + b":2048:Good\n"
    path.write_bytes(good * 3 + b"# comment\n" + HELLO_MD5[:-1].encode() + b"g:5:Bad\n" + good)
    assert registry.detect(path).NAME == "clamav"
    with pytest.raises(FormatError) as caught:
        list(READER.read(path))
    assert caught.value.line == 5 and "expected hash:size:name" in str(caught.value)
    db = tmp_path / "store.db"
    refused = CliRunner().invoke(cli, ["import", str(path), "--db", str(db)])
    assert refused.exit_code == 2 and f"{path}:5: expected hash:size:name" in refused.output
    kept = CliRunner().invoke(cli, ["import", str(path), "--db", str(db), "--skip-invalid"])
    assert kept.exit_code == 0, kept.output
    assert "imported 4 entries" in kept.output and "skipped 1 invalid line" in kept.output
    # The same bytes under another name are simply not recognised.
    other = tmp_path / "sigs.txt"
    other.write_bytes(path.read_bytes())
    with pytest.raises(FormatError, match="format was not recognised"):
        registry.detect(other)
    # A well-formed one, longer than the head, is still detected.
    path.write_bytes(good * (SNIFF_BYTES // len(good) + 10))
    assert registry.detect(path).NAME == "clamav"


def test_a_file_named_as_clamav_whose_head_holds_no_whole_line_is_read_as_one(
    tmp_path: Path,
) -> None:
    """64 KiB of comments before the first signature (which ClamAV reads): not recognised
    before; a first line longer than 64 KiB: refused naming no line."""
    comments = b"".join(b"# comment line %d, padding padding\n" % i for i in range(3000))
    padded = tmp_path / "padded.hdb"
    padded.write_bytes(comments + HELLO_MD5.encode() + b":5:Hello\n")
    assert registry.detect(padded).NAME == "clamav"
    assert [r.line for r in READER.read(padded)] == [3001]
    long = tmp_path / "long.hdb"
    long.write_bytes(HELLO_MD5.encode() + b":5:" + b"a" * 200_000 + b"\n")
    assert registry.detect(long).NAME == "clamav"
    with pytest.raises(FormatError) as caught:
        list(READER.read(long))
    assert caught.value.line == 1 and "longer than" in str(caught.value)
    # Comments alone, or a misnamed list of another format, stay what they are.
    (tmp_path / "comments.hdb").write_bytes(b"# only\n" * 30)
    with pytest.raises(FormatError, match="not recognised"):
        registry.detect(tmp_path / "comments.hdb")
    (tmp_path / "sums.hdb").write_bytes(HELLO_MD5.encode() + b"  hello.txt\n")
    assert registry.detect(tmp_path / "sums.hdb").NAME == "gnu-sum"


def test_section_line_after_good_lines_still_refuses() -> None:
    data = PATTERN_MD5.encode() + b":2048:a\n" + b"2048:" + PATTERN_MD5.encode() + b":b\n"
    records: list[HashRecord] = []
    with pytest.raises(FormatError) as caught:
        for record in READER.parse(io.BytesIO(data), source="x.hdb"):
            records.append(record)
    assert caught.value.line == 2
    assert len(records) == 1


def test_looks_like_section_hashes_on_whole_file_lists() -> None:
    assert not looks_like_section_hashes((SAMPLES / "sigtool_md5.hdb").read_bytes())
    assert not looks_like_section_hashes(b"")
    assert not looks_like_section_hashes(b"# only a comment\n")


def test_sniff() -> None:
    for sample in SAMPLES.iterdir():
        assert READER.sniff(sample.read_bytes()[:SNIFF_BYTES], sample), sample.name
    assert not READER.sniff(b"")
    assert not READER.sniff(b"# comment only\n")
    assert not READER.sniff(HELLO_MD5.encode() + b"  hello.txt\n")
    assert not READER.sniff(b"MD5 (hello.txt) = " + HELLO_MD5.encode() + b"\n")
    assert not READER.sniff(HELLO_MD5.encode() + b"\n")
    assert not READER.sniff(b"%%%% HASHDEEP-1.0\n%%%% size,md5,filename\n")
    assert not READER.sniff(b"md5,name\n" + HELLO_MD5.encode() + b",a\n")
    # One bad line among the first lines is enough to refuse.
    assert not READER.sniff(HELLO_MD5.encode() + b":5:a\nnot a signature\n")


def test_sniff_ignores_a_line_cut_at_the_end_of_the_head() -> None:
    line = HELLO_MD5.encode() + b":5:Name\n"
    head = (line * (SNIFF_BYTES // len(line) + 1))[:SNIFF_BYTES]
    assert not head.endswith(b"\n")
    assert READER.sniff(head)


@settings(max_examples=300)
@given(st.binary(max_size=300))
def test_any_bytes_raise_only_format_error(data: bytes) -> None:
    for payload in (data, HELLO_MD5.encode() + b":5:x\n" + data):
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
            st.sampled_from([16, 20, 32]).flatmap(lambda n: st.binary(min_size=n, max_size=n)),
            st.none() | st.integers(min_value=0, max_value=2**63 - 1),
            st.text(
                st.characters(blacklist_characters=":\r\n", blacklist_categories=["Cs"]),
                min_size=1,
                max_size=20,
            ).filter(lambda s: not s.startswith("#") and s.strip() == s),
        ),
        max_size=10,
    )
)
def test_round_trip(entries: list[tuple[bytes, int | None, str]]) -> None:
    data = b"".join(
        b"%s:%s:%s\n"
        % (digest.hex().encode(), b"*" if size is None else str(size).encode(), name.encode())
        if size is not None
        else b"%s:*:%s:73\n" % (digest.hex().encode(), name.encode())
        for digest, size, name in entries
    )
    records = parse(data)
    algorithms = {16: "md5", 20: "sha1", 32: "sha256"}
    assert [(r.digests, r.size, r.name) for r in records] == [
        ({algorithms[len(digest)]: digest}, size, name) for digest, size, name in entries
    ]


def test_detection_is_exclusive_over_all_samples() -> None:
    # Every registered reader sees every bundled sample: ours must be the only
    # one to claim ClamAV samples, and must claim nothing else.
    for sample in sorted(ALL_SAMPLES.rglob("*")):
        if not sample.is_file() or sample.name == "TRUTH.json":
            continue
        head = sample.read_bytes()[:SNIFF_BYTES]
        ours = sample.parent.name == "clamav"
        assert READER.sniff(head, sample) == ours, sample
        if ours:
            assert registry.detect(sample, head) is registry.get(READER.NAME), sample


@pytest.mark.parametrize("suffix", [".fp", ".sfp", ".FP"])
def test_an_allow_list_imports_as_known(tmp_path: Path, suffix: str) -> None:
    """ClamAV .fp/.sfp files list clean files (false-positive suppression): never notable."""
    from click.testing import CliRunner

    from matcher.cli import cli

    path = tmp_path / f"allow{suffix}"
    path.write_text(f"{HELLO_MD5}:5:Clean.Hello\n")
    db = tmp_path / "s.db"
    result = CliRunner().invoke(cli, ["import", str(path), "--db", str(db)])
    assert result.exit_code == 0 and "as known list" in result.output, result.output
    overridden = tmp_path / f"other{suffix}"
    overridden.write_text(f"{PATTERN_MD5}:2048:X\n")
    result = CliRunner().invoke(cli, ["import", str(overridden), "--db", str(db), "--role", "notable"])
    assert result.exit_code == 0 and "as notable list" in result.output, result.output


@pytest.mark.parametrize("suffix", [".mdb", ".msb", ".mdu", ".msu", ".imp"])
def test_a_file_named_as_section_hashes_is_refused_whatever_its_lines(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"sigs{suffix}"
    path.write_text(f"{HELLO_MD5}:5:Looks.Like.Hdb\n")
    with pytest.raises(FormatError, match=f"named {suffix}, which ClamAV reads as PE-section"):
        list(READER.read(path))


@pytest.mark.parametrize(
    ("level", "refused"),
    [(b"", True), (b":", True), (b":51", True), (b":72:255", True), (b":73", False),
     (b":73:255", False), (b":120", False)],
)  # fmt: skip
def test_any_size_needs_functionality_level_73(level: bytes, refused: bool) -> None:
    # ClamAV refuses "hash:*:name" below level 73 ("Malformed database"); a
    # database it would not load is refused here too, naming the line.
    data = b"# any size\n" + PATTERN_SHA256.encode() + b":*:Win.Test" + level + b"\n"
    if not refused:
        (record,) = parse(data)
        assert record.size is None
        return
    with pytest.raises(FormatError, match=r":2: size '\*' \(any size\) needs a functionality level"):
        parse(data)
    skipped: list[FormatError] = []
    assert parse(data, skipped) == [] and skipped[0].line == 2


def test_a_section_line_in_an_hdb_is_refused_without_offering_skip_invalid(tmp_path: Path) -> None:
    # --skip-invalid never passes over a section line, so the reason must not suggest it.
    path = tmp_path / "mixed.hdb"
    good = b"".join(b"%s:5:Good.%d\n" % (PATTERN_MD5.encode(), n) for n in range(3))
    path.write_bytes(good + b"45056:" + PATTERN_MD5.encode() + b":Win.Section\n")
    with pytest.raises(FormatError, match="line 4 holds a PE-section hash") as caught:
        registry.detect(path)
    assert "--skip-invalid" not in str(caught.value)
