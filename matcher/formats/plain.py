"""Reads plain hash lists: one bare hex digest per line, algorithm from its length."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from matcher.errors import FormatError
from matcher.formats import registry
from matcher.formats.base import OnInvalid
from matcher.formats.base import TextReader
from matcher.formats.gnu_sum import MAX_RECORD
from matcher.formats.gnu_sum import digest_for_length
from matcher.formats.gnu_sum import excerpt
from matcher.formats.gnu_sum import head_lines
from matcher.formats.gnu_sum import meaningful
from matcher.formats.gnu_sum import name_hint
from matcher.formats.gnu_sum import read_records
from matcher.formats.gnu_sum import report
from matcher.models import HashRecord

_DIGEST = re.compile(rb"[0-9A-Fa-f]{32}|[0-9A-Fa-f]{40}|[0-9A-Fa-f]{64}|[0-9A-Fa-f]{128}")
_HEX = re.compile(rb"[0-9A-Fa-f]+")
# Note that a junk line in a plain list is still one token; whitespace or any of
# these separators means another format (md5sum, ClamAV, CSV, tagged, JSON).
_TOKEN = re.compile(rb"[^\s,;:|\"'(){}\[\]<>=*\\%]+")


class PlainReader(TextReader):
    """Reads lists with one digest per line, in upper or lower case.

    Blank lines, surrounding blanks and `#` comment lines are ignored. The
    algorithm comes from the length: 32 hex digits are MD5, 40 SHA-1, 64
    SHA-256 (by convention; BLAKE3 lists need a format that names it) and
    128 SHA-512. Anything else on a line is a malformed line.
    """

    NAME = "plain"
    DESCRIPTION = "one hex digest per line (MD5, SHA-1, SHA-256 or SHA-512 by length)"

    def sniff(self, head: bytes, path: Path | None = None) -> bool:
        # Note that the first entry must be a digest and every entry one token,
        # so a list with the odd junk line (edge_cases.txt) is still detected,
        # while an X-Ways list (first line "MD5") is not.
        lines = [line.strip() for line in meaningful(head_lines(head))]
        if not lines or _DIGEST.fullmatch(lines[0]) is None:
            return False
        if not all(_TOKEN.fullmatch(line) for line in lines):
            return False
        return 2 * sum(1 for line in lines if _DIGEST.fullmatch(line)) >= len(lines)

    def parse(
        self, stream: BinaryIO, source: str = "<input>", on_invalid: OnInvalid = None
    ) -> Iterator[HashRecord]:
        hint = name_hint(source)
        cut: list[int] = []
        lengths: set[int] = set()
        for number, line in read_records(stream, unterminated=cut):
            token = line.strip() if line is not None else None
            if token is not None and (not token or token.startswith(b"#")):
                continue
            try:
                if cut and token is not None and len(lengths) == 1 and len(token) < min(lengths):
                    raise FormatError(_cut_short(token, lengths))
                record = self._record(token, number, hint)
            except FormatError as error:
                report(FormatError(error.reason, source=source, line=number), on_invalid)
                continue
            if token is not None:
                lengths.add(len(token))
            yield record

    def _record(self, token: bytes | None, number: int, hint: str | None) -> HashRecord:
        if token is None:
            raise FormatError(f"the line is longer than {MAX_RECORD} bytes")
        if _HEX.fullmatch(token) is None:
            raise FormatError(f"expected one hex digest, got {excerpt(token)}")
        algorithm, digest = digest_for_length(token, hint)
        return HashRecord(digests={algorithm: digest}, line=number)


def _cut_short(token: bytes, lengths: set[int]) -> str:
    """The error of a last line, with no line end, shorter than every other line's digest.

    Note: a copy cut inside its last digest left a shorter hex string of
    another algorithm's length (32 of a SHA-256's 64 digits: an MD5), and
    the list was imported whole, exit 0, one entry lost and one false. Only
    a list of one digest length is judged so (a mixed list says nothing of
    what its last line should be), and only a shorter last line (a cut
    never lengthens one).
    """
    return (
        f"the last line has no line end, and its {len(token)} characters "
        f"({excerpt(token)}) are shorter than the digest every other line gives "
        f"({min(lengths)} hex digits): the list looks cut short (a partial copy); "
        "check it against its source (a line that is whole: end it with a line end)"
    )


registry.register(PlainReader())
