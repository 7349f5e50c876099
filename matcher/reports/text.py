"""Text forms of names for formats that cannot carry every byte (XML, HTML).

`display_name` keeps every valid, printable UTF-8 character and writes
anything else as a visible escape: an undecodable byte as `\\xE9`, a control
character as `\\x01`/`\\n`, a code point XML forbids (U+FFFE) as `\\uFFFE`,
a bidirectional control (U+202E before `txt.exe` makes it show as `exe.txt`)
as `\\u202E`, an invisible character (U+200B, a soft hyphen U+00AD, U+FEFF,
U+2060: `a\\u200Bb` would show as `ab`; one past U+FFFF as `\\U000E0041`) and
a line separator alike. Callers that must be lossless also carry the exact
bytes (base64) whenever `is_exact` is False: that also tells a file named
`caf\\xE9.txt` from one whose name holds the byte 0xE9. The HTML report marks
escapes instead (`display_pieces`).
"""

from __future__ import annotations

import base64

from matcher.models import path_fields

_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
# Bidirectional controls: they reorder the text shown around them (Unicode
# UAX #9), so a name can display as another; shown as escapes.
_BIDI = frozenset({0x061C, 0x200E, 0x200F, *range(0x202A, 0x202F), *range(0x2066, 0x206A)})
# Invisible characters (Unicode's Default_Ignorable_Code_Point: U+200B, U+00AD,
# U+FEFF, U+2060, variation selectors...) and the line and paragraph
# separators: a name holding one shows as the name without it (or with a
# space); shown as escapes too.
_INVISIBLE = frozenset(
    {
        0x00AD, 0x034F, 0x115F, 0x1160, 0x17B4, 0x17B5, *range(0x180B, 0x1810),
        *range(0x200B, 0x200E), 0x2028, 0x2029, *range(0x2060, 0x2066), *range(0x206A, 0x2070),
        0x3164, *range(0xFE00, 0xFE10), 0xFEFF, 0xFFA0, *range(0xFFF0, 0xFFF9),
        *range(0x1BCA0, 0x1BCA4), *range(0x1D173, 0x1D17B), *range(0xE0000, 0xE1000),
    }
)  # fmt: skip
_ESCAPED = _BIDI | _INVISIBLE


def _xml_char(code: int) -> bool:
    """True for a character XML 1.0 can carry and that prints (no C0/C1 controls)."""
    if code < 0x20 or 0x7F <= code <= 0x9F:
        return False
    return code <= 0xD7FF or 0xE000 <= code <= 0xFFFD or 0x10000 <= code <= 0x10FFFF


def display_pieces(text: str) -> list[tuple[str, bool]]:
    """`text` as runs of characters shown as they are (False) and escapes (True)."""
    pieces: list[tuple[str, bool]] = []
    plain: list[str] = []
    for char in text:
        code = ord(char)
        if _xml_char(code) and code not in _ESCAPED:
            plain.append(char)
            continue
        if plain:
            pieces.append(("".join(plain), False))
            plain = []
        if char in _NAMED:
            pieces.append((_NAMED[char], True))
        elif 0xDC80 <= code <= 0xDCFF:
            pieces.append((f"\\x{code - 0xDC00:02X}", True))  # a surrogate-escaped raw byte
        elif code < 0xA0:  # a control (a soft hyphen, U+00AD, is no byte: \u00AD)
            pieces.append((f"\\x{code:02X}", True))
        elif code <= 0xFFFF:
            pieces.append((f"\\u{code:04X}", True))
        else:
            pieces.append((f"\\U{code:08X}", True))
    if plain:
        pieces.append(("".join(plain), False))
    return pieces


def display_text(text: str) -> str:
    """`text` with controls, lone surrogates, non-characters, bidi controls and invisible
    characters as escapes."""
    return "".join(piece for piece, _ in display_pieces(text))


def display_name(path: bytes) -> str:
    """A readable, XML-safe text form of a path; see `is_exact`."""
    return display_text(path.decode("utf-8", "surrogateescape"))


def is_exact(path: bytes) -> bool:
    """True when `display_name(path)` is the path itself (UTF-8, nothing escaped)."""
    try:
        text = path.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return display_text(text) == text


def b64(path: bytes) -> str:
    """The exact bytes, base64 (RFC 4648, with padding)."""
    return base64.b64encode(path).decode("ascii")


def json_path(path: bytes, key: str = "path") -> dict[str, str]:
    """The log's lossless JSON form of a path (`path`, plus `path_b64` if not UTF-8)."""
    return path_fields(path, key)
