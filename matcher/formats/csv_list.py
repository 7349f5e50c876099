"""Reads CSV hash lists whose header row names the hash columns (MD5, SHA-1, SHA-256...)."""

from __future__ import annotations

import csv
import dataclasses
import io
import re
from collections.abc import Callable
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from matcher import digests
from matcher.errors import FormatError
from matcher.formats import csv_rows
from matcher.formats import registry
from matcher.formats.base import OnInvalid
from matcher.formats.base import TextReader
from matcher.formats.base import add_digest
from matcher.formats.base import byte_count
from matcher.formats.base import unended_last_line
from matcher.formats.bsd_tag import is_tag_line
from matcher.formats.gnu_sum import decode_name
from matcher.formats.gnu_sum import excerpt
from matcher.formats.gnu_sum import head_lines
from matcher.formats.gnu_sum import read_records
from matcher.formats.gnu_sum import report
from matcher.models import HashRecord

# Note that "," is first: a header that splits as well on another delimiter
# (one column either way) is read as comma-separated.
_DELIMITERS = (",", ";", "\t")
_SIZE_COLUMNS = ("size", "filesize", "bytes")
_NAME_COLUMNS = ("filename", "name", "filepath", "path")
_IDENT_COLUMNS = ("id", "ident", "identifier")
_LABEL_COLUMNS = ("label", "category")
# NSRL RDS 2.x and 1.5 NSRLFile headers name SHA-1 and MD5 columns too; those
# lists have a reader of their own, so this one must not claim them; nor the
# distribution's version.txt ("SHA-1","RDSVersion"), which is refused.
_NSRL_COLUMNS = frozenset({"productcode", "opsystemcode", "specialcode", "rdsversion"})
# A first line that opens with a digest is a row of data (e.g. md5sum output), not a header.
_LEADING_DIGEST = re.compile(rb"\s*\\?[0-9A-Fa-f]{32,}(?![0-9A-Za-z_-])")
_SIZE = re.compile(r"\d{1,20}")
_NOISE = re.compile(r"[\s_\-\ufeff]+")
# Words around an algorithm's name in a digest column's title ("MD5 Hash",
# "Hash (SHA-1)", "SHA256 digest"), dropped to find the algorithm; only as
# words of their own: iLook's "HashSHA1" is its own reader's.
_TITLE_WORDS = re.compile(r"\b(?:hash|digest|checksum|value)\b|[()\[\]:.#]")
# A title that still mentions an algorithm matcher computes, for a column that
# is not read: its digests would be lost with nothing said. (Others, such as
# CRC32 or SHA-384, matcher could never match on; their columns are left.)
_MENTIONS_DIGEST = re.compile(r"md5|sha1(?!\d)|sha2?256|sha2?512|blake3")


@dataclasses.dataclass(frozen=True)
class _Header:
    """Where each field is in a row, from the header row."""

    delimiter: str
    titles: tuple[str, ...]  # compacted: lower case, no blanks, "-" or "_"
    digests: tuple[tuple[int, str], ...]
    size: int | None
    name: int | None
    ident: int | None
    label: int | None
    unread: tuple[str, ...] = ()  # titles that name a digest matcher cannot read
    shown: tuple[str, ...] = ()  # the titles as the header row gives them

    def is_entry(self, cells: list[str]) -> bool:
        """Whether `cells` make an entry: the header's width, a digest in a hash column."""
        try:
            _record(cells, self, 0)
        except FormatError:
            return False
        return True


def _algorithm(cell: str, title: str) -> str | None:
    """The algorithm a column title names, words such as "hash" aside; None if none."""
    return (
        digests.canonical_name(cell)
        or digests.canonical_name(title)
        or digests.canonical_name(_TITLE_WORDS.sub(" ", cell.lower().replace("_", " ")))
    )


def _compact(title: str) -> str:
    return _NOISE.sub("", title).lower()


def _first(titles: tuple[str, ...], wanted: tuple[str, ...]) -> int | None:
    for title in wanted:
        if title in titles:
            return titles.index(title)
    return None


def _columns(cells: list[str], delimiter: str) -> _Header:
    titles = tuple(_compact(cell) for cell in cells)
    # Note: every column of an algorithm is kept (a header may name md5 twice);
    # each row's values must then agree (add_digest).
    found: list[tuple[int, str]] = []
    unread: list[str] = []
    for index, cell in enumerate(cells):
        algorithm = _algorithm(cell, titles[index])
        if algorithm is not None:
            found.append((index, algorithm))
        elif _MENTIONS_DIGEST.search(titles[index]):
            unread.append(cell)
    return _Header(
        delimiter=delimiter,
        titles=titles,
        digests=tuple(found),
        size=_first(titles, _SIZE_COLUMNS),
        name=_first(titles, _NAME_COLUMNS),
        ident=_first(titles, _IDENT_COLUMNS),
        label=_first(titles, _LABEL_COLUMNS),
        unread=tuple(unread),
        shown=tuple(cell.strip() for cell in cells),
    )


def _header(text: str) -> _Header | None:
    """The reading of a header line with the most columns and a hash column."""
    return _widest_reading(text, lambda header: bool(header.digests))


def _unread_only(text: str) -> _Header | None:
    """A header row whose only digest columns are ones matcher cannot read (`md5sum`).

    Note: said as such (see CsvListReader.parse); it was "names no hash
    column; name the format with --format", and --format csv said it again.
    """
    return _widest_reading(text, lambda header: bool(header.unread))


def _widest_reading(text: str, wanted: Callable[[_Header], bool]) -> _Header | None:
    """The reading of a header line (by each delimiter) with the most columns that is `wanted`.

    Note: the most columns: read by commas, 'Name;MD5 of parent;Size' is one column.
    """
    best: _Header | None = None
    for delimiter in _DELIMITERS:
        try:
            cells = next(csv.reader([text], delimiter=delimiter, strict=True))
        except (csv.Error, StopIteration):
            continue
        header = _columns(cells, delimiter)
        if wanted(header) and (best is None or len(header.titles) > len(best.titles)):
            best = header
    return best


def _verbatim(cell: str) -> bytes:
    # Note that rows are decoded with surrogateescape, so this gives back the
    # exact bytes of the list, whatever their encoding.
    return cell.encode("utf-8", "surrogateescape")


def _text(cell: str) -> str | None:
    if not cell:
        return None
    raw = _verbatim(cell)
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def _digest(cell: str, algorithm: str) -> bytes:
    if not cell.isascii():
        raise FormatError(f"the {algorithm} field is not hex: {excerpt(_verbatim(cell))}")
    try:
        return digests.parse_hex(cell, algorithm)
    except ValueError as exc:
        raise FormatError(str(exc)) from exc


def _record(row: list[str], header: _Header, number: int) -> HashRecord:
    if len(row) != len(header.titles):
        raise FormatError(
            f"expected {len(header.titles)} fields as in the header row, got {len(row)}"
        )
    found: dict[str, bytes] = {}
    for i, alg in header.digests:
        if row[i].strip():
            add_digest(found, alg, _digest(row[i].strip(), alg))
    if not found:
        raise FormatError("the row has no digest in any hash column")
    size: int | None = None
    if header.size is not None and row[header.size].strip():
        cell = row[header.size].strip()
        if not cell.isascii() or _SIZE.fullmatch(cell) is None:
            raise FormatError(f"the size is not a whole number: {excerpt(_verbatim(cell))}")
        size = byte_count(cell)
    name = _verbatim(row[header.name]) if header.name is not None else b""
    return HashRecord(
        digests=found,
        size=size,
        name=decode_name(name) if name else None,
        ident=_text(row[header.ident]) if header.ident is not None else None,
        label=_text(row[header.label]) if header.label is not None else None,
        line=number,
    )


class CsvListReader(TextReader):
    """Reads CSV lists with a header row naming at least one hash column.

    Hash columns are recognised case-insensitively, ignoring blanks, "-" and
    "_" (`MD5`, `sha-1`, `SHA 256`, `sha512`...). Optional size, file name,
    id and label columns are kept verbatim; other columns are ignored. The
    delimiter (comma, semicolon or tab) is chosen from the header row. Fields
    may be quoted (RFC 4180, also across lines); an empty hash cell is fine
    when another hash column of the row has a digest.
    """

    NAME = "csv"
    DESCRIPTION = "CSV with a header row naming md5/sha1/sha256/sha512 columns"

    def sniff(self, head: bytes, path: Path | None = None) -> bool:
        lines = [line for line in head_lines(head) if line.strip()]
        if len(lines) < 2 or lines[0].lstrip()[:1] in (b"{", b"[", b"%", b"#"):
            return False
        if _LEADING_DIGEST.match(lines[0]) or is_tag_line(lines[0]):
            # A header names columns; a line opening with a digest is data, and
            # so is a tagged line, even one whose name reads like a header.
            return False
        header = _header(lines[0].decode("utf-8", "surrogateescape"))
        if header is None or len(header.titles) < 2 or _NSRL_COLUMNS & set(header.titles):
            return False
        # Note that the first data row must fit the header too, which keeps a
        # md5sum or tagged line whose name happens to contain ",md5," out. It
        # is read as CSV reads it: a quoted field may hold a line break.
        text = b"\n".join(lines[1:]).decode("utf-8", "surrogateescape")
        try:
            row = next(csv.reader(io.StringIO(text), delimiter=header.delimiter, strict=True))
            _record(row, header, 2)
        except (csv.Error, StopIteration, FormatError):
            return False
        return True

    def parse(
        self, stream: BinaryIO, source: str = "<input>", on_invalid: OnInvalid = None
    ) -> Iterator[HashRecord]:
        self.read_notes = ()
        unended: list[int] = []
        records = read_records(stream, keepends=True, unterminated=unended)
        header: _Header | None = None
        first = 0
        for first, raw in records:
            if raw is None or raw.strip():
                text = "" if raw is None else raw.decode("utf-8", "surrogateescape")
                header = _header(text.rstrip("\r\n"))
                if header is None:
                    header = _unread_only(text.rstrip("\r\n"))
                if header is None:
                    raise FormatError(
                        "the header row names no hash column (md5, sha1, sha256 or sha512); "
                        "name the format with --format",
                        source=source,
                        line=first,
                    )
                if header.unread:
                    # Note: read, the other columns' digests would be imported and
                    # these left out with nothing said (a "MD5 of parent" column).
                    shown = ", ".join(repr(title) for title in header.unread)
                    raise FormatError(
                        f"the header row names a digest column matcher cannot read ({shown}): "
                        "its digests would be left out; rename it to md5, sha1, sha256 or "
                        "sha512 if it is one of those, or remove the column",
                        source=source,
                        line=first,
                    )
                break
        if header is None:
            return
        for start, row in csv_rows.rows_of(records, header.delimiter, first, header.is_entry):
            if isinstance(row, str):
                report(FormatError(row, source=source, line=start), on_invalid)
                continue
            try:
                record = _record(row, header, start)
            except FormatError as error:
                report(FormatError(error.reason, source=source, line=start), on_invalid)
                continue
            if unended and _may_be_cut(header, row[-1]):
                last = (header.shown[-1], row[-1])
                self.read_notes = (unended_last_line(record, unended[0], last),)
            yield record


def _may_be_cut(header: _Header, cell: str) -> bool:
    """Whether `cell`, the last field of a last line with no line end, may have lost its end.

    An empty field may be a cut on the delimiter before it, even in a digest
    column (a row that gives another digest is whole without it). Else a
    digest is whole (one cut short is refused by its length), and a column
    the reader does not take changes no entry; a size, name, id or label may
    be cut, quoted or not (a cut just after the first quote of a doubled
    pair leaves a field that reads as closed: a review).
    """
    last = len(header.titles) - 1
    taken = last in (header.size, header.name, header.ident, header.label)
    digest = any(i == last for i, _ in header.digests)
    if not cell.strip():
        return taken or digest  # (a trailing delimiter after every row: no column taken)
    return taken and not digest


registry.register(CsvListReader())
