"""Refuses a text list whose lines end in CR alone (classic Mac OS line ends).

No hash-list format uses them, and every reader splits lines at LF (a CR
before it is dropped), so such a file reads as one long line. Some readers
then refuse it with a misleading reason ("holds no entries"); worse, an
md5sum list is valid as one line whose file name holds every later line
(GNU md5sum reads it the same way), and the digests on those lines would be
lost with nothing said. So detection refuses the file first, by its first
bytes: no LF anywhere in them, and a CR with text after it. A file whose
CRs do belong to one line (a name holding a CR) can still be imported by
naming its format with `--format`, which skips detection.
"""

from __future__ import annotations

from pathlib import Path

from matcher.formats import registry

_BOM = b"\xef\xbb\xbf"


def _cr_lines(head: bytes) -> int:
    """How many nonblank lines `head` holds when split at CR alone (0: not such a file)."""
    if b"\n" in head or b"\x00" in head:
        return 0  # LF line ends (or none needed), or a binary file
    body = head.removeprefix(_BOM)
    if body.lstrip(b" \t\r\f\v")[:1] in (b"{", b"["):
        return 0  # JSON, where a CR is whitespace like any other
    lines = [line for line in body.split(b"\r") if line.strip()]
    return len(lines) if len(lines) > 1 else 0


class CrLineEndsRefusal:
    """Refuses, before any reader sees it, a text file with CR-only line ends."""

    NAME = "cr-line-ends"
    DESCRIPTION = "a text list whose lines end in CR alone (classic Mac OS): refused"
    BEFORE_READERS = True

    def refuse(self, head: bytes, path: Path | None = None) -> str | None:
        lines = _cr_lines(head)
        if not lines:
            return None
        return (
            f"its lines end in CR alone (classic Mac OS line ends: {lines} lines in its "
            "first bytes, no LF), which every hash-list format reads as one line, so "
            "entries would be lost or misread; convert the line ends to LF or CR LF "
            "(e.g. `tr '\\r' '\\n' < LIST > LIST.txt`) and import that (if the CRs "
            "really are part of file names, name the format with --format)"
        )


registry.register_refusal(CrLineEndsRefusal())
