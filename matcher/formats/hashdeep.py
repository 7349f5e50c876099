"""Reads hashdeep file format 1.0 lists, and md5deep `-z` (size, digest, name) output."""

from __future__ import annotations

import dataclasses
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
from matcher.formats.base import add_digest
from matcher.formats.base import byte_count
from matcher.formats.base import entry_after_cr
from matcher.formats.base import unended_last_line
from matcher.formats.gnu_sum import MAX_RECORD
from matcher.formats.gnu_sum import decode_name
from matcher.formats.gnu_sum import digest_for_length
from matcher.formats.gnu_sum import excerpt
from matcher.formats.gnu_sum import head_lines
from matcher.formats.gnu_sum import meaningful
from matcher.formats.gnu_sum import mostly
from matcher.formats.gnu_sum import read_records
from matcher.formats.gnu_sum import report
from matcher.models import HashRecord

BANNER = b"%%%% HASHDEEP-1.0"
_COLUMNS_PREFIX = b"%%%% "
# Note that hashdeep can write these two, but matcher neither stores nor computes them.
_IGNORED_COLUMNS = ("tiger", "whirlpool")
# md5deep -z: the size right-aligned in 10 columns, two spaces, digest, two spaces, name.
_SIZE_LINE = re.compile(rb" *(\d{1,20})  ([0-9A-Fa-f]+)  (.+)", re.DOTALL)
_SIZE = re.compile(rb"\d{1,20}")


class _Fatal(FormatError):
    """A header error: always raised, never passed to `on_invalid`."""


@dataclasses.dataclass(frozen=True)
class _Layout:
    """The columns a `%%%% size,…,filename` line names: (index, algorithm) pairs."""

    count: int
    digests: tuple[tuple[int, str], ...]


def _layout(line: bytes) -> _Layout:
    names = line[len(_COLUMNS_PREFIX) :].decode("ascii", "replace").strip().split(",")
    if len(names) < 3 or names[0].lower() != "size" or names[-1].lower() != "filename":
        raise _Fatal(f"the column line must be '%%%% size,<hashes>,filename', got {excerpt(line)}")
    columns: list[tuple[int, str]] = []
    for index, name in enumerate(names[1:-1], start=1):
        algorithm = digests.canonical_name(name)
        if algorithm is not None:
            columns.append((index, algorithm))
        elif name.strip().lower() not in _IGNORED_COLUMNS:
            raise _Fatal(f"unknown hashdeep column {name[:20]!r}; the list cannot be read")
    if not columns:
        raise _Fatal("the list has no md5, sha1 or sha256 column, so nothing can be read")
    return _Layout(count=len(names), digests=tuple(columns))


def _is_size_line(line: bytes) -> bool:
    match = _SIZE_LINE.fullmatch(line)
    return match is not None and len(match.group(2)) in (32, 40, 64, 128)


class HashdeepReader(TextReader):
    """Reads hashdeep lists: `%%%% HASHDEEP-1.0`, then `%%%% size,md5,…,filename`.

    Records are `size,hash…,filename`, never quoted: everything after the
    last hash column is the file name, commas included. Lines starting with
    `#` are comments. Tiger and Whirlpool columns are read past and dropped.
    A later banner (concatenated lists) starts a new header. A file whose first
    line is md5deep `-z` output (`<size>  <hex>  <name>`) is read in that layout.
    A missing or bad header is fatal, whatever `on_invalid` says.
    """

    NAME = "hashdeep"
    DESCRIPTION = "hashdeep file format 1.0 (with sizes), and md5deep -z output"

    def sniff(self, head: bytes, path: Path | None = None) -> bool:
        lines = head_lines(head)
        if lines and lines[0].rstrip() == BANNER:
            return True
        return mostly(meaningful(lines), _is_size_line)

    def parse(
        self, stream: BinaryIO, source: str = "<input>", on_invalid: OnInvalid = None
    ) -> Iterator[HashRecord]:
        layout: _Layout | None = None
        md5deep: bool | None = None  # decided by the first line that is not blank
        self.read_notes = ()
        unended: list[int] = []
        for number, line in read_records(stream, unterminated=unended):
            if line is not None and not line.strip():
                continue
            if md5deep is None:
                md5deep = _first_line(line, source, number)
            try:
                if line is None:
                    raise FormatError(f"the line is longer than {MAX_RECORD} bytes")
                if entry_after_cr(line):  # a comment too: it would hide the entry
                    raise FormatError(ENTRY_AFTER_CR)
                if line.startswith(b"#"):
                    continue
                if md5deep:
                    record = _size_record(line, number)
                elif line.rstrip() == BANNER:
                    layout = None
                    continue
                elif line.startswith(_COLUMNS_PREFIX):
                    layout = _layout(line)
                    continue
                elif layout is None:
                    raise _Fatal("the line after the banner must name the columns")
                else:
                    record = _record(line, layout, number)
            except _Fatal as fatal:
                raise FormatError(fatal.reason, source=source, line=number) from fatal
            except FormatError as error:
                report(FormatError(error.reason, source=source, line=number), on_invalid)
                continue
            if unended:
                self.read_notes = (unended_last_line(record, unended[0]),)
            yield record


def _first_line(line: bytes | None, source: str, number: int) -> bool:
    """True for md5deep -z output; raises for a file that is neither layout."""
    if line is not None and line.rstrip() == BANNER:
        return False
    if line is not None and _SIZE_LINE.fullmatch(line):
        return True
    raise FormatError(
        "not a hashdeep list: the first line must be '%%%% HASHDEEP-1.0'",
        source=source,
        line=number,
    )


def _record(line: bytes, layout: _Layout, number: int) -> HashRecord:
    fields = line.split(b",", layout.count - 1)
    if len(fields) != layout.count:
        raise FormatError(
            f"expected {layout.count} comma-separated fields, got {len(fields)}: {excerpt(line)}"
        )
    if _SIZE.fullmatch(fields[0]) is None:
        raise FormatError(f"the size is not a whole number: {excerpt(fields[0])}")
    found: dict[str, bytes] = {}
    for index, algorithm in layout.digests:
        try:
            digest = digests.parse_hex(fields[index], algorithm)
        except ValueError as exc:
            raise FormatError(str(exc)) from exc
        add_digest(found, algorithm, digest)
    name = fields[-1]
    size = byte_count(fields[0])
    name_text = decode_name(name) if name else None
    return HashRecord(digests=found, size=size, name=name_text, line=number)


def _size_record(line: bytes, number: int) -> HashRecord:
    match = _SIZE_LINE.fullmatch(line)
    if match is None:
        raise FormatError(f"expected '<size>  <hex digest>  <file name>', got {excerpt(line)}")
    size, hex_text, name = match.groups()
    algorithm, digest = digest_for_length(hex_text)
    return HashRecord(
        digests={algorithm: digest}, size=byte_count(size), name=decode_name(name), line=number
    )


registry.register(HashdeepReader())
