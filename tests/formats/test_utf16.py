"""A list saved as UTF-16 is refused as such, naming its format once converted."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st

from matcher.cli import cli
from matcher.errors import FormatError
from matcher.formats import registry
from matcher.formats.utf16 import Utf16Refusal

MD5_A = "d41d8cd98f00b204e9800998ecf8427e"
MD5_B = "0cc175b9c0f1b6a831c399e269772661"
MD5SUM = f"{MD5_A}  a.txt\r\n{MD5_B}  b.txt\r\n"
HASHDEEP = f"%%%% HASHDEEP-1.0\r\n%%%% size,md5,filename\r\n0,{MD5_A},a\r\n1,{MD5_B},b\r\n"


@pytest.mark.parametrize(
    ("encoding", "bom", "shape", "iconv"),
    [
        ("utf-16-le", "\ufeff", "little-endian, with a BOM, as Windows PowerShell 5", "UTF-16"),
        ("utf-16-be", "\ufeff", "big-endian, with a BOM)", "UTF-16"),
        ("utf-16-le", "", "little-endian)", "UTF-16LE"),
        ("utf-16-be", "", "big-endian)", "UTF-16BE"),
    ],
)
@pytest.mark.parametrize(("text", "fmt"), [(MD5SUM, "gnu-sum"), (HASHDEEP, "hashdeep")])
def test_utf16_list_is_refused_naming_its_format_and_the_conversion(
    tmp_path: Path, encoding: str, bom: str, shape: str, iconv: str, text: str, fmt: str
) -> None:
    path = tmp_path / "hashes.txt"
    path.write_bytes((bom + text).encode(encoding))
    with pytest.raises(FormatError) as caught:
        registry.detect(path)
    message = str(caught.value)
    assert message.startswith(f"{path}: a {fmt} list saved as UTF-16 ({shape}")
    assert f"iconv -f {iconv} -t UTF-8" in message
    # Converted as the message says, the same list is read as that format.
    converted = tmp_path / "converted.txt"
    converted.write_bytes(text.encode("utf-8"))
    assert registry.detect(converted).NAME == fmt


def test_import_of_a_utf16_list_exits_2_and_creates_no_store(tmp_path: Path) -> None:
    path = tmp_path / "hashes.txt"
    path.write_bytes(("\ufeff" + MD5SUM).encode("utf-16-le"))
    db = tmp_path / "s.db"
    result = CliRunner().invoke(cli, ["import", str(path), "--db", str(db)])
    assert result.exit_code == 2, result.output
    assert "saved as UTF-16" in result.stderr
    assert not db.exists()


def test_utf16_text_of_no_format_is_named_a_text_file(tmp_path: Path) -> None:
    path = tmp_path / "table.txt"
    path.write_bytes("\ufeffHash\r\n----\r\nnot a digest\r\n".encode("utf-16-le"))
    with pytest.raises(FormatError, match=r": a text file saved as UTF-16 \(little-endian"):
        registry.detect(path)


@pytest.mark.parametrize(
    "data",
    [
        MD5SUM.encode(),
        ("\ufeff" + MD5SUM).encode("utf-8"),
        b"\x00" * 64,  # NUL bytes, no text
        b"A\x00" * 7,  # too short to tell
        "ab€cd€ef€gh€ij€kl€".encode("utf-16-le"),  # not ASCII, and no BOM
    ],
)
def test_utf8_binary_and_short_heads_are_not_claimed(data: bytes) -> None:
    assert Utf16Refusal().refuse(data) is None


@settings(max_examples=200, deadline=None)
@given(st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), min_size=16, max_size=200))
def test_ascii_text_is_claimed_in_utf16_and_never_in_utf8(text: str) -> None:
    refusal = Utf16Refusal()
    assert refusal.refuse(text.encode("utf-16-le")) is not None
    assert refusal.refuse(text.encode("utf-16-be")) is not None
    assert refusal.refuse(text.encode("utf-8")) is None
