"""Reads BSD-style tagged digest lists: "ALG (name) = hex" (coreutils --tag, cksum, b3sum)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from matcher import digests
from matcher.errors import FormatError
from matcher.formats import registry
from matcher.formats.base import ENTRY_AFTER_CR
from matcher.formats.base import OnInvalid
from matcher.formats.base import TextReader
from matcher.formats.base import entry_near_cr
from matcher.formats.gnu_sum import MAX_RECORD
from matcher.formats.gnu_sum import decode_name
from matcher.formats.gnu_sum import excerpt
from matcher.formats.gnu_sum import head_lines
from matcher.formats.gnu_sum import meaningful
from matcher.formats.gnu_sum import mostly
from matcher.formats.gnu_sum import read_records
from matcher.formats.gnu_sum import report
from matcher.formats.gnu_sum import unescape_name
from matcher.models import HashRecord

# Note that the name runs up to the *last* ")" followed by " = <digest>", as in
# coreutils' bsd_split_3, so names holding ")" or " = " read back whole.
_TAG_LINE = re.compile(
    rb"[ \t]*(\\)?([A-Za-z][A-Za-z0-9_-]*) \((.*)\)[ \t]*=[ \t]*(\S*)[ \t]*", re.DOTALL
)
_HEX = re.compile(rb"[0-9A-Fa-f]+")


def is_tag_line(line: bytes) -> bool:
    """True for one `ALG (name) = <hex>` line."""
    match = _TAG_LINE.fullmatch(line)
    return match is not None and _HEX.fullmatch(match.group(4)) is not None


class BsdTagReader(TextReader):
    """Reads tagged lines such as `SHA256 (hello.txt) = 2cf2…`.

    This is what `sha256sum --tag`, `cksum -a ALG` (coreutils ≥ 9.0) and
    `b3sum --tag` write; `BLAKE3 (…)` lines give blake3 digests. As in
    coreutils, a leading backslash (before the tag) means the name is escaped
    (`\\\\`, `\\n`, `\\r`). Lines for algorithms matcher does not store
    (BLAKE2b, SHA-224, SM3, …) are malformed lines that say so, which
    `--skip-invalid` can skip.
    """

    NAME = "bsd-tag"
    DESCRIPTION = "BSD-style tagged lines 'ALG (name) = hex' (coreutils --tag, cksum, b3sum --tag)"

    def sniff(self, head: bytes, path: Path | None = None) -> bool:
        return mostly(meaningful(head_lines(head)), is_tag_line)

    def parse(
        self, stream: BinaryIO, source: str = "<input>", on_invalid: OnInvalid = None
    ) -> Iterator[HashRecord]:
        for number, line in read_records(stream):
            if line is not None and (not line.strip() or line.lstrip().startswith(b"#")):
                continue
            try:
                yield self._record(line, number)
            except FormatError as error:
                report(FormatError(error.reason, source=source, line=number), on_invalid)

    def _record(self, line: bytes | None, number: int) -> HashRecord:
        if line is None:
            raise FormatError(f"the line is longer than {MAX_RECORD} bytes")
        match = _TAG_LINE.fullmatch(line)
        if match is None:
            raise FormatError(f"expected 'ALG (file name) = <hex digest>', got {excerpt(line)}")
        escaped, tag, name, hex_text = match.groups()
        if entry_near_cr(name):
            raise FormatError(ENTRY_AFTER_CR)
        # The tag matched [A-Za-z0-9_-], so it is ASCII.
        algorithm = digests.canonical_name(tag.decode("ascii"))
        if algorithm is None:
            raise FormatError(
                f"unsupported algorithm {tag.decode('ascii')[:20]!r}; "
                "matcher reads MD5, SHA1, SHA256, SHA512 and BLAKE3 lines"
            )
        try:
            digest = digests.parse_hex(hex_text, algorithm)
        except ValueError as exc:
            raise FormatError(str(exc)) from exc
        if escaped:
            unescaped = unescape_name(name)
            if unescaped is None:
                raise FormatError(
                    f"the file name has an escape other than \\\\, \\n or \\r: {excerpt(name)}"
                )
            name = unescaped
        return HashRecord(
            digests={algorithm: digest}, name=decode_name(name) if name else None, line=number
        )


registry.register(BsdTagReader())
