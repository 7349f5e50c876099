"""Names a list saved as UTF-16 text, instead of calling it "not a hash list".

Windows PowerShell 5 writes UTF-16 (little-endian, with a BOM) by default
(`Get-FileHash ... > hashes.txt`, `Out-File`), so an examiner may well be
handed a list in it. matcher's readers read UTF-8 (and ASCII) text; a UTF-16
list fails every reader's sniff, and the examiner would learn only that the
format was not recognised. This refusal says what the file is, which format
it reads as once converted, and how to convert it.
"""

from __future__ import annotations

from pathlib import Path

from matcher.formats import registry

_BOMS = {b"\xff\xfe": "utf-16-le", b"\xfe\xff": "utf-16-be"}
# Bytes of text a UTF-16 file without BOM must start with to be taken for one.
_NO_BOM_MIN = 16


def _encoding(head: bytes) -> tuple[str, bool] | None:
    """The UTF-16 encoding of `head` and whether it has a BOM, or None."""
    for bom, name in _BOMS.items():
        if head.startswith(bom):
            return name, True
    # Note: without a BOM only ASCII text is recognised, one NUL per character.
    sample = head[: 4 * _NO_BOM_MIN]
    if len(sample) < _NO_BOM_MIN or len(sample) % 2:
        return None
    for name, text, zeros in (("utf-16-le", sample[0::2], sample[1::2]),
                              ("utf-16-be", sample[1::2], sample[0::2])):  # fmt: skip
        if not zeros.strip(b"\x00") and all(0x20 <= c < 0x7F or c in b"\t\r\n" for c in text):
            return name, False
    return None


class Utf16Refusal:
    """Refuses a text file in UTF-16, naming the format it holds once converted."""

    NAME = "utf16-text"
    DESCRIPTION = "a list saved as UTF-16 text (e.g. by Windows PowerShell): refused"

    def refuse(self, head: bytes, path: Path | None = None) -> str | None:
        found = _encoding(head)
        if found is None:
            return None
        encoding, bom = found
        # Note: the head may end inside a character; its last line is dropped.
        text = head.decode(encoding, "replace").removeprefix("\ufeff")
        if len(head) >= 1024 and "\n" in text:
            text = text[: text.rindex("\n") + 1]
        converted = text.encode("utf-8")
        names = [r.NAME for r in registry.readers() if r.sniff(converted)]
        what = f"a {names[0]} list" if len(names) == 1 else "a text file"
        little = encoding.endswith("le")
        shape = f"{'little' if little else 'big'}-endian{', with a BOM' if bom else ''}"
        if little and bom:
            shape += ", as Windows PowerShell 5 writes by default"
        # Note: iconv's UTF-16 reads the BOM and drops it; without one, the order is named.
        source = "UTF-16" if bom else ("UTF-16LE" if little else "UTF-16BE")
        return (
            f"{what} saved as UTF-16 ({shape}); matcher reads hash lists in UTF-8 or "
            f"ASCII: convert it (e.g. `iconv -f {source} -t UTF-8 LIST > LIST.txt`, or in "
            "PowerShell `Get-Content LIST | Out-File -Encoding utf8 LIST.txt`) and import that"
        )


registry.register_refusal(Utf16Refusal())
