"""Lists whose lines end in CR alone are refused at detection, never read as one line."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st

from matcher.cli import cli
from matcher.errors import FormatError
from matcher.formats import registry
from matcher.formats.line_ends import CrLineEndsRefusal
from matcher.formats.nsrl_rds2 import NsrlRds2Reader

MD5_A = "d41d8cd98f00b204e9800998ecf8427e"
MD5_B = "0cc175b9c0f1b6a831c399e269772661"
SHA1_B = "86F7E437FAA5A7FCE15D1DDCB9EAEAEA377667B8"
# The lines of one list per text format, each detected as that format with LF line ends.
LISTS = {
    "gnu-sum": [f"{MD5_A}  a.txt", f"{MD5_B}  b.txt"],
    "bsd-tag": [f"MD5 (a.txt) = {MD5_A}", f"MD5 (b.txt) = {MD5_B}"],
    "plain": [MD5_A, MD5_B],
    "hashdeep": ["%%%% HASHDEEP-1.0", "%%%% size,md5,filename", f"0,{MD5_A},a", f"1,{MD5_B},b"],
    "clamav": [f"{MD5_A}:0:a", f"{MD5_B}:1:b"],
    "csv": ["md5,size,name", f"{MD5_A},0,a", f"{MD5_B},1,b"],
    "xways": ["MD5", MD5_A, MD5_B],
    "nsrl-rds2": [
        '"SHA-1","MD5","CRC32","FileName","FileSize","ProductCode","OpSystemCode","SpecialCode"',
        f'"{SHA1_B}","{MD5_B.upper()}","E8B7BE43","b.txt",1,1,"Unknown",""',
    ],
}
SUFFIX = {"clamav": ".hdb", "nsrl-rds2": ".txt"}


def write(tmp_path: Path, fmt: str, end: str) -> Path:
    path = tmp_path / ("NSRLFile.txt" if fmt == "nsrl-rds2" else f"list{SUFFIX.get(fmt, '.txt')}")
    path.write_bytes(end.join(LISTS[fmt]).encode() + end.encode())
    return path


@pytest.mark.parametrize("end", ["\n", "\r\n"])
@pytest.mark.parametrize("fmt", sorted(LISTS))
def test_lf_and_crlf_lists_are_detected_as_their_format(tmp_path: Path, fmt: str, end: str) -> None:
    # Guards the refusal against claiming the line ends every format reads.
    assert registry.detect(write(tmp_path, fmt, end)).NAME == fmt


@pytest.mark.parametrize("fmt", sorted(LISTS))
def test_cr_only_lists_are_refused_before_any_reader(tmp_path: Path, fmt: str) -> None:
    path = write(tmp_path, fmt, "\r")
    with pytest.raises(FormatError, match="lines end in CR alone") as caught:
        registry.detect(path)
    assert str(caught.value).startswith(f"{path}: ")
    assert "--format" in str(caught.value)


def test_an_md5sum_list_with_cr_line_ends_loses_no_digest_silently(tmp_path: Path) -> None:
    # Read as one line, its second digest would be part of the first file name.
    path = write(tmp_path, "gnu-sum", "\r")
    db = tmp_path / "s.db"
    result = CliRunner().invoke(cli, ["import", str(path), "--db", str(db)])
    assert result.exit_code == 2, result.output
    assert "lines end in CR alone" in result.stderr
    assert not db.exists()


def test_named_format_still_reads_a_name_holding_a_cr(tmp_path: Path) -> None:
    # md5sum writes a CR in a name raw; --format skips detection and takes it.
    path = tmp_path / "one.md5"
    path.write_bytes(f"{MD5_B}  a\rb.txt".encode())
    with pytest.raises(FormatError, match="CR alone"):
        registry.detect(path)
    [record] = registry.get("gnu-sum").read(path)
    assert record.name == "a\rb.txt"


@pytest.mark.parametrize(
    "data",
    [
        f"{MD5_A}  a.txt\r".encode(),  # one line, a CR at its end
        f"\r\r{MD5_A}  a.txt\r\r".encode(),  # blank lines around one line
        b"\x00\r\x01\r\x02",  # binary
        json.dumps({"odata.metadata": "x/$metadata#Media", "value": []}, indent=1)
        .replace("\n", "\r")
        .encode(),
    ],
)
def test_one_line_binary_and_json_are_left_to_the_readers(data: bytes) -> None:
    assert CrLineEndsRefusal().refuse(data) is None


def test_a_vics_list_with_cr_line_ends_is_read_as_vics(tmp_path: Path) -> None:
    # In JSON a CR is whitespace: the list is valid as it is.
    doc = {
        "@odata.context": "http://github.com/ICMEC/ProjectVic/DataModels/2.0.xml/US/$metadata#Media",
        "value": [{"MediaID": 1, "MD5": MD5_B, "Category": 1}],
    }
    path = tmp_path / "vics.json"
    path.write_bytes(json.dumps(doc, indent=2).replace("\n", "\r").encode())
    reader = registry.detect(path)
    assert reader.NAME == "vics"
    assert [r.digests["md5"].hex() for r in reader.read(path)] == [MD5_B]


def test_nsrlfile_with_cr_line_ends_named_or_zipped_names_line_one(tmp_path: Path) -> None:
    data = b"\r".join(line.encode() for line in LISTS["nsrl-rds2"]) + b"\r"
    with pytest.raises(FormatError, match="CR alone") as caught:
        list(NsrlRds2Reader().parse(io.BytesIO(data), "NSRLFile.txt"))
    assert caught.value.line == 1
    zipped = tmp_path / "rds.zip"
    with zipfile.ZipFile(zipped, "w") as archive:
        archive.writestr("NSRLFile.txt", data)
    with pytest.raises(FormatError, match="CR alone"):
        list(registry.detect(zipped).read(zipped))


_TEXT_LINE = st.text(
    st.characters(min_codepoint=0x20, max_codepoint=0x7E), min_size=1, max_size=40
).filter(lambda s: s.strip() and not s.lstrip().startswith(("{", "[")))


@settings(max_examples=200, deadline=None)
@given(st.lists(_TEXT_LINE, min_size=2, max_size=20))
def test_refusal_claims_cr_joined_lines_and_never_lf_joined(lines: list[str]) -> None:
    refusal = CrLineEndsRefusal()
    assert refusal.refuse("\r".join(lines).encode()) is not None
    assert refusal.refuse("\n".join(lines).encode()) is None
    assert refusal.refuse("\r\n".join(lines).encode()) is None


MD5_C = "7d793037a0760186574b0282f2f435e7"


@pytest.mark.parametrize(
    ("fmt", "data", "line"),
    [
        ("gnu-sum", f"{MD5_A}  a\r{MD5_B}  b\n{MD5_C}  c\n", 1),
        ("hashdeep", f"%%%% HASHDEEP-1.0\n%%%% size,md5,filename\n0,{MD5_A},a\r1,{MD5_B},b\n", 3),
        ("clamav", f"# a comment\r{MD5_A}:0:Sig.A\n{MD5_B}:1:Sig.B\n", 1),
        ("bsd-tag", f"MD5 (a) = {MD5_A}\rMD5 (b) = {MD5_B}\nMD5 (c) = {MD5_C}\n", 1),
    ],
)
def test_a_lone_cr_before_another_entry_in_an_lf_list_is_refused_at_its_line(
    tmp_path: Path, fmt: str, data: str, line: int
) -> None:
    # One lost LF joined two entries: the second's digest was read as part of the
    # first's name (or of a comment) and dropped, exit 0. Found by fuzzing.
    path = tmp_path / ("list.hdb" if fmt == "clamav" else "list.txt")
    path.write_bytes(data.encode())
    with pytest.raises(FormatError, match="CR inside it, next to what looks like another entry's digest") as caught:
        list(registry.get(fmt).read(path))
    assert caught.value.line == line


def test_a_cr_in_a_name_with_no_digest_after_it_is_still_a_name(tmp_path: Path) -> None:
    path = tmp_path / "list.md5"
    path.write_bytes(f"{MD5_A}  a\rb.txt\n{MD5_B}  c\n".encode())
    assert [r.name for r in registry.get("gnu-sum").read(path)] == ["a\rb.txt", "c"]
    tagged = tmp_path / "tagged.md5"
    tagged.write_bytes(f"MD5 (a\rb.txt) = {MD5_A}\n".encode())
    assert [r.name for r in registry.get("bsd-tag").read(tagged)] == ["a\rb.txt"]
