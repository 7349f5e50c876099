"""Text forms of names for formats that cannot carry every byte (XML, HTML).

`display_name` keeps every valid, printable UTF-8 character and writes
anything else as a visible escape: an undecodable byte as `\\xE9`, a control
character as `\\x01`/`\\n`, a code point XML forbids (U+FFFE) as `\\uFFFE`.
Callers that must be lossless also carry the exact bytes (base64) whenever
`is_exact` is False.
"""

from __future__ import annotations

import base64

from matcher.models import path_fields

_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _xml_char(code: int) -> bool:
    """True for a character XML 1.0 can carry and that prints (no C0/C1 controls)."""
    if code < 0x20 or 0x7F <= code <= 0x9F:
        return False
    return code <= 0xD7FF or 0xE000 <= code <= 0xFFFD or 0x10000 <= code <= 0x10FFFF


def display_text(text: str) -> str:
    """`text` with controls, lone surrogates and non-characters written as escapes."""
    out: list[str] = []
    for char in text:
        code = ord(char)
        if _xml_char(code):
            out.append(char)
        elif char in _NAMED:
            out.append(_NAMED[char])
        elif 0xDC80 <= code <= 0xDCFF:
            out.append(f"\\x{code - 0xDC00:02X}")  # a surrogate-escaped raw byte
        elif code <= 0xFF:
            out.append(f"\\x{code:02X}")
        else:
            out.append(f"\\u{code:04X}")
    return "".join(out)


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
