"""Streams RFC 4180 CSV rows with the line each starts on, for header-driven readers.

The HashKeeper and iLook readers share this; each maps the header row's
column names itself. Rows come one at a time from `read_records`, so memory
stays bounded: a record over MAX_RECORD bytes is reported, never buffered,
and the csv module's field size limit stops an unterminated quote from
swallowing the rest of the file.
"""

from __future__ import annotations

import csv
from collections.abc import Callable
from collections.abc import Iterator
from typing import BinaryIO
from typing import TypeVar

from matcher.errors import FormatError
from matcher.formats.base import OnInvalid
from matcher.formats.gnu_sum import MAX_RECORD
from matcher.formats.gnu_sum import decode_name
from matcher.formats.gnu_sum import head_lines
from matcher.formats.gnu_sum import read_records
from matcher.formats.gnu_sum import report
from matcher.models import HashRecord

Layout = TypeVar("Layout")


class HeaderError(FormatError):
    """A header error: always raised, never passed to `on_invalid`."""


# A row is its cells (text, with undecodable bytes as surrogates), or the
# reason it could not be read.
Row = list[str] | str


def rows(
    stream: BinaryIO, entry: Callable[[list[str]], bool] | None = None
) -> Iterator[tuple[int, Row]]:
    """Yield `(line, cells)` for every CSV row of `stream`, header row included.

    `line` is the line the row starts on (a quoted field may span lines).
    Blank rows are skipped. A row that cannot be read comes as `(line, reason)`
    so the caller decides whether it is fatal (a header) or skippable; so
    does a row whose quoted field swallowed lines that are entries by `entry`
    (see `rows_of`). A UTF-8 BOM is dropped; LF and CRLF line ends are both
    accepted.
    """
    return rows_of(read_records(stream, keepends=True), entry=entry)


_LONE_CR = (
    "unreadable CSV row: a CR inside an unquoted field, a line end without its LF "
    "(two rows joined into one?)"
)


def _joined(start: int, line: int) -> str:
    return (
        f"a quoted field runs from line {start} across line {line}, which reads as an entry "
        "of its own (a digest in a hash column): a quote left open that joined entries? "
        "Close or remove the quote; matcher does not guess where one entry ends"
    )


def rows_of(
    records: Iterator[tuple[int, bytes | None]],
    delimiter: str = ",",
    after: int = 0,
    entry: Callable[[list[str]], bool] | None = None,
) -> Iterator[tuple[int, Row]]:
    """`rows` over records already being read (`read_records(..., keepends=True)`).

    A row whose quoted field spans lines comes as its reason instead when
    one of the lines it took after its first, read alone, is an entry by
    `entry`: a quote left open has swallowed rows that hold digests.

    Args:
        records: the rest of the records; line numbers continue from `after`,
            the last line the caller has already consumed (e.g. its header).
        delimiter: the CSV delimiter.
        entry: whether the cells of one line make a whole entry (a row of
            the header's width with a digest where the header has one).
    """
    overlong: list[int] = []
    taken: list[int] = []  # the lines the current row has taken so far
    swallowed: list[int] = []  # its lines after the first that are entries of their own

    def lines() -> Iterator[str]:
        for number, raw in records:
            if raw is None:
                overlong.append(number)
                taken.append(number)
                yield "\n"
                continue
            line = raw.decode("utf-8", "surrogateescape")
            if taken and entry is not None and not swallowed and _is_entry(line, delimiter, entry):
                swallowed.append(number)
            taken.append(number)
            yield line

    reader = csv.reader(lines(), delimiter=delimiter, strict=True)
    done = after  # the last line of the previous row
    while True:
        taken.clear()
        swallowed.clear()
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            done = after + reader.line_num
            if "new-line character seen in unquoted field" in str(exc):
                # Note: Python's own words ("universal-newline mode?") would point
                # at the reader; the file holds a bare CR, most likely a lost LF.
                yield done, _LONE_CR
            else:
                yield done, f"unreadable CSV row: {exc}"
            continue
        start, done = done + 1, after + reader.line_num
        if overlong:
            for number in overlong:
                yield number, f"the line is longer than {MAX_RECORD} bytes"
            overlong.clear()
            continue
        if swallowed:
            yield start, _joined(start, swallowed[0])
        elif any(cell.strip() for cell in row):
            yield start, row


def _is_entry(line: str, delimiter: str, entry: Callable[[list[str]], bool]) -> bool:
    """Whether the part of a line inside a quoted field, read alone as CSV, is an entry.

    Note that the line a quoted field ends on goes on with the rest of its
    row (`c.txt",<digest>,5`): only what comes before the closing quote was
    taken into the field.
    """
    inside = line.rstrip("\r\n")
    at = 0
    while (at := inside.find('"', at)) >= 0:
        if inside.startswith('""', at):
            at += 2
            continue
        inside = inside[:at]
        break
    try:
        cells = list(csv.reader([inside.replace('""', '"')], delimiter=delimiter, strict=True))
    except csv.Error:
        return False
    return len(cells) == 1 and entry(cells[0])


def header_titles(head: bytes) -> list[str] | None:
    """The first line of `head` as lower-case, stripped CSV titles (None if unreadable)."""
    lines = head_lines(head)
    if not lines:
        return None
    try:
        cells = next(csv.reader([lines[0].decode("utf-8", "surrogateescape")], strict=True))
    except (csv.Error, StopIteration):
        return None
    return titles(cells)


def titles(cells: list[str]) -> list[str]:
    """Header cells as lower-case, stripped titles."""
    return [cell.strip().lower() for cell in cells]


def verbatim(cell: str) -> bytes:
    """The exact bytes of a cell (rows are decoded with surrogateescape)."""
    return cell.encode("utf-8", "surrogateescape")


def text(cell: str) -> str | None:
    """A metadata cell as text: UTF-8, else Latin-1; None when empty."""
    raw = verbatim(cell.strip())
    if not raw:
        return None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def joined_name(directory: str, file_name: str) -> str | bytes | None:
    """`directory\\file_name` as the list gives them, text or (not UTF-8) bytes.

    Note that both formats come from Windows tools: a backslash joins the two
    unless the directory already ends with a separator. Either part may be empty.
    """
    folder, name = verbatim(directory), verbatim(file_name)
    if folder and name and not folder.endswith((b"\\", b"/")):
        folder += b"\\"
    joined = folder + name
    return decode_name(joined) if joined else None


def records(
    stream: BinaryIO,
    source: str,
    on_invalid: OnInvalid,
    layout_of: Callable[[list[str]], Layout],
    record_of: Callable[[list[str], Layout, int], HashRecord],
    empty: str,
) -> Iterator[HashRecord]:
    """The records of a header-driven CSV list, row by row.

    `layout_of` maps the header row (raising HeaderError when it cannot be
    used); `record_of` makes one record from a row, raising FormatError for a
    malformed one, which goes to `on_invalid` (or is raised) with its line.
    So does a row whose quoted field swallowed lines that `record_of` would
    take as records of their own.

    Raises:
        FormatError: for a header that cannot be read or used, or an empty
            file (`empty` says what the file should start with).
    """
    layout: Layout | None = None

    def entry(cells: list[str]) -> bool:
        if layout is None:
            return False
        try:
            record_of(cells, layout, 0)
        except FormatError:
            return False
        return True

    for number, row in rows(stream, entry):
        try:
            if layout is None:
                if isinstance(row, str):
                    raise HeaderError(f"the header row cannot be read: {row}")
                layout = layout_of(row)
                continue
            if isinstance(row, str):
                raise FormatError(row)
            yield record_of(row, layout, number)
        except HeaderError as fatal:
            raise FormatError(fatal.reason, source=source, line=number) from fatal
        except FormatError as error:
            report(FormatError(error.reason, source=source, line=number), on_invalid)
    if layout is None:
        raise FormatError(f"the file is empty: {empty}", source=source, line=1)
