"""The interface every hash-list reader implements."""

from __future__ import annotations

import abc
import dataclasses
import re
from collections.abc import Callable
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO
from typing import Protocol

from matcher.errors import FormatError
from matcher.models import ENTRY_FIELDS
from matcher.models import HashRecord

# Called with each malformed line under --skip-invalid; when None, readers raise.
OnInvalid = Callable[[FormatError], None] | None

SNIFF_BYTES = 64 * 1024
# The first bytes of a zip (a local file header): read only by a reader of zips.
ZIP_MAGIC = b"PK\x03\x04"

# The largest size any file can have (a signed 64-bit off_t), and the largest
# integer SQLite stores as such.
MAX_FILE_SIZE = (1 << 63) - 1


# A CR inside a line (its line end, CR LF, is gone already) before a run of hex
# as long as a digest: most likely a line end without its LF, which joined two
# entries into one, the second's digest taken for part of the first's name.
_ENTRY_AFTER_CR = re.compile(rb"\r[^\r]*?(?<![0-9A-Fa-f])[0-9A-Fa-f]{32,128}(?![0-9A-Fa-f])")
ENTRY_AFTER_CR = (
    "the line holds a CR inside it, next to what looks like another entry's digest: a line end "
    "without its LF (an old Mac line end, or a changed byte) that joined two entries? "
    "Fix the line ends; matcher does not guess where one entry ends"
)


def entry_after_cr(line: bytes) -> bool:
    """True when a CR inside `line` comes before a digest-like run of hex (ENTRY_AFTER_CR)."""
    return b"\r" in line and _ENTRY_AFTER_CR.search(line) is not None


_ENTRY_BEFORE_CR = re.compile(rb"(?<![0-9A-Fa-f])[0-9A-Fa-f]{32,128}(?![0-9A-Fa-f])[^\r]*?\r")


def entry_near_cr(field: bytes) -> bool:
    """True when one field (a name) holds a CR and a digest-like run of hex on either side.

    For a line whose own digest comes last (`MD5 (name) = digest`): there the
    first entry's digest of two joined ones ends up before the CR, in the name.
    """
    return b"\r" in field and (
        _ENTRY_AFTER_CR.search(field) is not None or _ENTRY_BEFORE_CR.search(field) is not None
    )


class SizeOutOfRange(FormatError, ValueError):
    """A list's file size past MAX_FILE_SIZE (a ValueError too, for readers that wrap those)."""


def add_digest(found: dict[str, bytes], algorithm: str, digest: bytes) -> None:
    """Put one digest of an entry in `found`; one file has one digest per algorithm.

    Raises:
        FormatError: (without source or line) when the entry already gave
            another value: which one is the file's is not for matcher to guess.
    """
    known = found.setdefault(algorithm, digest)
    if known != digest:
        raise FormatError(
            f"two different {algorithm.upper()} values in one entry "
            f"({known.hex()} and {digest.hex()})"
        )


def byte_count(digits: str | bytes | int) -> int:
    """A list's file size from its decimal digits (checked by the caller), or an int.

    Raises:
        SizeOutOfRange: past MAX_FILE_SIZE: no file is that large, and the
            store could not hold it.
    """
    # Note: a long run of digits is never converted (Python refuses past
    # 4,300 digits, with a message about itself, not the list).
    if isinstance(digits, int):
        size, shown = digits, "given"
    else:
        shown = digits if isinstance(digits, str) else digits.decode("ascii", "replace")
        significant = shown.lstrip("0")
        size = int(significant or "0") if len(significant) <= 19 else MAX_FILE_SIZE + 1
    if size > MAX_FILE_SIZE:
        raise SizeOutOfRange(
            f"the size {shown[:40]}{'...' if len(shown) > 40 else ''} is larger than any file "
            "can be (2^63 - 1 bytes)"
        )
    return size


class HashListReader(Protocol):
    """A hash-list format: detection by content, and a streaming parse.

    `read()` is a generator: it never loads a whole list. A malformed line
    raises `FormatError(message, source, line)`, unless `on_invalid` is given,
    in which case the reader passes the error to it and goes on with the next
    line. Readers never touch the store or click.
    """

    NAME: str
    DESCRIPTION: str
    DEFAULT_ROLE: str  # "notable" or "known"

    def sniff(self, head: bytes, path: Path | None = None) -> bool:
        """True when `head` (the first SNIFF_BYTES of the file) is this format."""
        ...

    def read(self, path: Path, on_invalid: OnInvalid = None) -> Iterator[HashRecord]:
        """Yield every entry of the list at `path`."""
        ...

    def metadata(self, path: Path) -> dict[str, str]:
        """List-level metadata worth keeping (e.g. an NSRL VERSION), else {}."""
        ...


class Refusal(Protocol):
    """A kind of file that is recognised only to be refused with a precise reason.

    Some files sit beside hash lists and look like them, but must not be
    imported: a derived index (TSK hfind `.idx`), a set description (HashKeeper
    `.hke`). `registry.detect()` asks these when no reader accepts a file, so
    the examiner learns what the file is and what to import instead. A
    refusal may set `BEFORE_READERS = True` to be asked first, for a file
    that a reader would take wrongly.
    """

    NAME: str
    DESCRIPTION: str

    def refuse(self, head: bytes, path: Path | None = None) -> str | None:
        """Why this file is refused (one sentence), or None when it is not this kind."""
        ...


@dataclasses.dataclass
class RecordBatch:
    """Many entries in columns, for readers of very large lists (NSRL, VICS).

    Each row is `(*digests, *values)`: one digest slot per name in
    `algorithms` (raw bytes or bytearray, or None when the entry lacks it),
    then one value per name in `fields`, a subset of ENTRY_FIELDS in that
    order (a field left out is None for every row of the batch).
    Readers that can produce these directly implement `read_batches()`;
    the import job batches `read()` output itself for the others.
    """

    algorithms: tuple[str, ...]
    rows: list[tuple[object, ...]]
    fields: tuple[str, ...] = ENTRY_FIELDS


def unended_last_line(
    record: HashRecord, line: int, last: tuple[str, str] | None = None, nul: bool = False
) -> str:
    """The note of an entry read from a list's last line, which has no line end.

    Note: a partial copy of a list cut inside its last line imported whole,
    exit 0, where the cut fell in the name after the digest (a ClamAV
    signature name, a file name): its digest, of fixed length, is checked,
    and a name has none, so the match records showed "Win.Rans" as the
    supplier's name (a review). Nothing tells a cut name from a whole one,
    and a list made by hand may just lack its last line end: so it is
    imported, and said. `line`: the last line's number (a CSV row may start
    on an earlier one). `last`: the (column title, text) of the line's last
    field, where that is not always the name (a CSV list: a size cut short
    there would pass over the file, in a --candidates-only scan). `nul`: the
    list's records end in NUL, not a line end (`md5sum -z`).
    """
    name = record.name
    if isinstance(name, bytes):
        name = name.decode("utf-8", "backslashreplace")
    if last is not None:
        cut = f"its last field, {last[1]!r} (column {last[0]!r}), may be cut too"
    elif name:
        cut = f"the name its entry gives, {name!r}, may be cut too (its matches show that name)"
    else:
        cut = "its entry's name may be lost (it gives none)"
    what, end = ("record", "NUL") if nul else ("line", "line end")
    return (
        f"{what} {line}, the last, has no {end}: if the list was cut short there (a "
        f"partial copy), {cut}; compare the list with its source (a list that is whole: end "
        f"it with a {end})"
    )


class TextReader(abc.ABC):
    """Base for line-oriented text formats: `read()` opens and calls `parse()`.

    A reader whose last field may be cut unseen (a name or size, see
    unended_last_line) puts in `read_notes` what its last parse() found to
    say, which import_notes() gives.
    """

    NAME = ""
    DESCRIPTION = ""
    DEFAULT_ROLE = "notable"
    read_notes: tuple[str, ...] = ()

    def import_notes(self) -> list[str]:
        """What the last parse() said of its list beyond its entries."""
        return list(self.read_notes)

    def read(self, path: Path, on_invalid: OnInvalid = None) -> Iterator[HashRecord]:
        with path.open("rb") as stream:
            yield from self.parse(stream, source=str(path), on_invalid=on_invalid)

    @abc.abstractmethod
    def parse(
        self, stream: BinaryIO, source: str = "<input>", on_invalid: OnInvalid = None
    ) -> Iterator[HashRecord]:
        """Yield every entry read from `stream`; `source` names it in errors."""

    def metadata(self, path: Path) -> dict[str, str]:
        return {}
