"""A size no file can have (2^63 bytes or more) is refused with its place, in every reader.

SQLite's INTEGER holds at most 2^63 - 1; such a size used to escape as an
OverflowError traceback (exit 1) instead of a named refusal (exit 2).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner

from matcher.cli import cli

MD5 = hashlib.md5(b"hello").hexdigest()
SHA1 = hashlib.sha1(b"hello").hexdigest()
SHA256 = hashlib.sha256(b"hello").hexdigest()
LARGEST = str((1 << 63) - 1)
# Sizes of up to 20 digits pass every reader's digit check, so they must
# meet the range check; longer runs are refused earlier, still with their place.
IN_DIGIT_RANGE = [str(1 << 63), "9" * 20]
LONG_RUNS = ["9" * 30, "1" * 5000]
VICS = '{"@odata.context":"http://github.com/VICSDATAMODEL/ProjectVic/DataModels/2.0.xml/Default/$metadata#Media","value":[%s]}'

# name -> (file name, --format, content for a size, where the error must point)
LISTS: dict[str, tuple[str, str, Callable[[str], str], str]] = {
    "clamav": ("l.hdb", "clamav", lambda s: f"# c\n{MD5}:{s}:X\n", "l.hdb:2:"),
    "hashdeep": (
        "l.txt", "hashdeep",
        lambda s: f"%%%% HASHDEEP-1.0\n%%%% size,md5,filename\n## \n{s},{MD5},/x\n", "l.txt:4:",
    ),
    "md5deep -z": ("l.txt", "hashdeep", lambda s: f"{s}  {MD5}  /x\n", "l.txt:1:"),
    "csv": ("l.csv", "csv", lambda s: f"md5,size,name\n{MD5},{s},x\n", "l.csv:2:"),
    "nsrl-rds2": (
        "NSRLFile.txt", "nsrl-rds2",
        lambda s: '"SHA-1","MD5","CRC32","FileName","FileSize","ProductCode","OpSystemCode","SpecialCode"\r\n'
        f'"{SHA1.upper()}","{MD5.upper()}","00000000","x",{s},1,"358",""\r\n',
        "NSRLFile.txt:2:",
    ),
    "vics number": ("l.json", "vics", lambda s: VICS % f'{{"MD5":"{MD5}","MediaSize":{s}}}', "media number 1 (value[0])"),
    "vics string": ("l.json", "vics", lambda s: VICS % f'{{"MD5":"{MD5}","MediaSize":"{s}"}}', "media number 1 (value[0])"),
    "hashkeeper": (
        "l.hsh", "hashkeeper",
        lambda s: '"file_id","hashset_id","file_name","directory","hash","file_size","date_modified",'
        '"time_modified","time_zone","comments","date_accessed","time_accessed"\r\n'
        f'1,900,"hello.txt","C:\\test","{MD5.upper()}",{s},,,,,,\r\n',
        "l.hsh:2:",
    ),
}


def _import(tmp_path: Path, name: str, fmt: str, text: str) -> tuple[int, str, bytes | None]:
    lst = tmp_path / name
    lst.write_text(text)
    db = tmp_path / "s.db"
    result = CliRunner().invoke(cli, ["import", str(lst), "--db", str(db), "--format", fmt])
    return result.exit_code, result.output, db.read_bytes() if db.exists() else None


@pytest.mark.parametrize("kind", sorted(LISTS))
@pytest.mark.parametrize("size", IN_DIGIT_RANGE + LONG_RUNS)
def test_a_size_past_2_63_minus_1_is_refused_with_its_place(tmp_path: Path, kind: str, size: str) -> None:
    name, fmt, content, where = LISTS[kind]
    seed = tmp_path / "seed.md5"
    seed.write_text(f"{MD5}  seed\n")
    assert CliRunner().invoke(cli, ["import", str(seed), "--db", str(tmp_path / "s.db")]).exit_code == 0
    before = (tmp_path / "s.db").read_bytes()
    code, output, after = _import(tmp_path, name, fmt, content(size))
    assert code == 2 and "Traceback" not in output and after == before, output
    if size in IN_DIGIT_RANGE:
        assert where in output and "larger than any file can be" in output, output
    elif kind.startswith("vics") and len(size) > 4300:
        assert "a run of more than 4,300 digits starts at byte" in output, output
    elif kind == "md5deep -z":
        assert "l.txt:1: not a hashdeep list" in output, output  # no -z line at all
    else:
        assert where in output, output


@pytest.mark.parametrize("kind", sorted(LISTS))
def test_the_largest_possible_size_is_kept(tmp_path: Path, kind: str) -> None:
    name, fmt, content, _ = LISTS[kind]
    code, output, _ = _import(tmp_path, name, fmt, content(LARGEST))
    assert code == 0, output
    listed = CliRunner().invoke(cli, ["lists", "--db", str(tmp_path / "s.db"), "--json"])
    assert listed.exit_code == 0 and '"entries": 1' in listed.output.replace(" ", "").replace('"entries":1', '"entries": 1')


@pytest.mark.parametrize(
    ("name", "fmt", "text", "where"),
    [
        ("l.csv", "csv", f"md5,MD5,name\n{MD5},{'0' * 32},x\n", "l.csv:2:"),
        ("l.txt", "hashdeep", f"%%%% HASHDEEP-1.0\n%%%% size,md5,md5,filename\n## \n5,{MD5},{'0' * 32},/x\n", "l.txt:4:"),
    ],
)
def test_two_values_of_one_digest_in_an_entry_are_refused(tmp_path: Path, name: str, fmt: str, text: str, where: str) -> None:
    """One file has one MD5: keeping either value would silently miss the other."""
    code, output, _ = _import(tmp_path, name, fmt, text)
    assert code == 2 and where in output and "two different MD5 values in one entry" in output, output
    same = text.replace("0" * 32, MD5)
    assert _import(tmp_path, "same-" + name, fmt, same)[0] == 0
