"""Reads NIST NSRL RDS 2.x and 1.5 NSRLFile.txt lists, plain or inside a .zip."""

from __future__ import annotations

import dataclasses
import os
import re
import zipfile
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from matcher import digests
from matcher.errors import FormatError
from matcher.formats import registry
from matcher.formats.base import SNIFF_BYTES
from matcher.formats.base import ZIP_MAGIC
from matcher.formats.base import OnInvalid
from matcher.formats.base import TextReader
from matcher.formats.base import byte_count
from matcher.models import HashRecord

BOM = b"\xef\xbb\xbf"
MEMBER = "nsrlfile.txt"
# A line longer than this is reported as malformed instead of being buffered whole.
MAX_LINE = 64 * 1024
# Note that these two columns and one digest column are what tells an NSRLFile
# header, or an NSRL-style look-alike's, from any other CSV header (the generic
# CSV reader is told not to claim one naming ProductCode). Titles are compared
# compacted: lower case, without blanks, "-" or "_" ("SHA1" is "SHA-1").
SIGNATURE = ("filename", "productcode")
_SIGNATURE_NAMES = ("FileName", "ProductCode")  # as NIST spells them
_DIGEST_COLUMNS = {"sha1": "sha1", "md5": "md5", "sha256": "sha256"}
_NOISE = re.compile(r"[\s_-]+")
# A `","` that is not part of doubled quotes: the end of one quoted field and
# the start of the next, inside what would otherwise be taken as the FileName.
_FIELD_BOUNDARY = re.compile(rb'(?<!")","(?!")')
_ZIP_ERRORS = (zipfile.BadZipFile, zipfile.LargeZipFile, zlib.error, EOFError, OSError)
# zipfile raises these for an encrypted member (RuntimeError), an unsupported
# compression method (NotImplementedError) and a damaged header (ValueError).
_ZIP_ERRORS_MORE = (RuntimeError, NotImplementedError, ValueError)


@dataclasses.dataclass(frozen=True)
class _Layout:
    """Where each wanted column sits, taken from the header line."""

    width: int
    digests: tuple[tuple[str, int], ...]
    name: int
    size: int | None
    ident: int
    label: int | None


def _header_fields(line: bytes) -> list[str]:
    if line.startswith(BOM):
        line = line[len(BOM) :]
    text = line.rstrip(b"\r\n").decode("latin-1")
    return [field.strip().strip('"').strip().lower() for field in text.split(",")]


def _titles(line: bytes) -> list[str]:
    return [_NOISE.sub("", field) for field in _header_fields(line)]


def _layout(line: bytes) -> _Layout | None:
    """The column layout an NSRLFile header line names, or None for any other line.

    Columns are found by name: FileName, ProductCode and at least one digest
    column (SHA-1, MD5, SHA-256) must be there, anywhere.
    """
    fields = _titles(line)
    found = [(_DIGEST_COLUMNS[col], i) for i, col in enumerate(fields) if col in _DIGEST_COLUMNS]
    if not found or not all(column in fields for column in SIGNATURE):
        return None
    size = fields.index("filesize") if "filesize" in fields else None
    label = fields.index("specialcode") if "specialcode" in fields else None
    return _Layout(
        width=len(fields),
        digests=tuple(found),
        name=fields.index("filename"),
        size=size,
        ident=fields.index("productcode"),
        label=label,
    )


_LEFT_OPEN = "a quoted field is left open"


def _unquote(field: bytes) -> bytes:
    field = field.strip()
    if len(field) >= 2 and field[:1] == b'"' and field[-1:] == b'"':
        field = field[1:-1]
    elif field[:1] == b'"' and b'"' not in field[1:]:
        # Note: a lone quote was kept as the value (a SpecialCode of '"' in a
        # file cut short just after the field's opening quote). A field with
        # text after its closing quote ('"ACME" Tools') is kept as it is.
        raise ValueError(f"{_LEFT_OPEN}: {_excerpt(field)}")
    return field


def _unquote_name(field: bytes) -> bytes:
    # Note that NIST documents no escape for '"' in names: accept RFC 4180
    # doubled quotes, and keep any stray quote as it is.
    if len(field) >= 2 and field[:1] == b'"' and field[-1:] == b'"':
        return field[1:-1].replace(b'""', b'"')
    return field


def _decode_name(raw: bytes) -> str | bytes:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw


def _excerpt(raw: bytes, limit: int = 60) -> str:
    text = raw[:limit].decode("utf-8", "replace")
    return repr(text + "...") if len(raw) > limit else repr(text)


def _lines(stream: BinaryIO) -> Iterator[tuple[int, bytes | None, bytes, bool]]:
    """Yield `(number, line, end, last)`: each line without its CR LF (None for one over
    MAX_LINE), its line end as read (b"\r\n", b"\n", or b"" at the end of the file), and
    whether it is the file's last line.

    A DOS end-of-file mark (Ctrl-Z) at the very end of the file, on a line of its
    own or right after the last record, is no part of a line.
    """
    number = 0
    held: tuple[int, bytes | None, bytes] | None = None
    while line := stream.readline(MAX_LINE + 1):
        number += 1
        if len(line) > MAX_LINE and not line.endswith(b"\n"):
            # Skip the rest of the overlong line without holding it.
            while (rest := stream.readline(MAX_LINE)) and not rest.endswith(b"\n"):
                pass
            item: tuple[int, bytes | None, bytes] = (number, None, b"")
        else:
            stripped = line.rstrip(b"\r\n")
            item = (number, stripped, line[len(stripped) :])
        if held is not None:
            yield (*held, False)
        held = item
    if held is None:
        return
    number, last, end = held
    if last is not None and last.endswith(b"\x1a"):
        last = last[:-1]  # Ctrl-Z after the last record: it ends the file, no line end after
        end = b""
    yield number, last, end, True


class NsrlRds2Reader(TextReader):
    """Reads NSRLFile.txt: quoted CSV, CR LF, one line per (hash, name, product).

    Columns are found by header name, so the 2.x layout, the 1.5 layout and
    NSRL-style look-alikes with columns missing all work. ProductCode becomes
    `ident` and a non-empty SpecialCode (NIST's own "M"/"S" flag) `label`.
    """

    NAME = "nsrl-rds2"
    READS_ZIP = True  # detection gives a zip only to such a reader
    DESCRIPTION = "NIST NSRL RDS 2.x/1.5 NSRLFile.txt (CSV, or a .zip holding it)"
    DEFAULT_ROLE = "known"

    def sniff(self, head: bytes, path: Path | None = None) -> bool:
        """True for an NSRLFile header line, or a zip holding NSRLFile.txt.

        Args:
            head: the first bytes of the file.
            path: the file; for a zip, its member list and header are checked.
        """
        if head.startswith(ZIP_MAGIC):
            return _sniff_zip(head, path)
        first = head.split(b"\n", 1)[0]
        return _layout(first) is not None

    def parse(
        self, stream: BinaryIO, source: str = "<input>", on_invalid: OnInvalid = None
    ) -> Iterator[HashRecord]:
        """Yield one record per NSRLFile line; a zipped list is read from its member.

        Raises:
            FormatError: when the header is not an NSRLFile header, the zip is
                unreadable, or for a malformed line unless `on_invalid` takes it.
        """
        if _starts_with_zip(stream):
            yield from _parse_zip(stream, source, on_invalid)
        else:
            yield from _parse_text(stream, source, on_invalid)


def _starts_with_zip(stream: BinaryIO) -> bool:
    # Note that zipfile needs to seek; a non-seekable zip fails on its header line.
    if not stream.seekable():
        return False
    start = stream.tell()
    magic = stream.read(len(ZIP_MAGIC))
    stream.seek(start)
    return magic == ZIP_MAGIC


def _members(archive: zipfile.ZipFile) -> list[zipfile.ZipInfo]:
    return [
        info
        for info in archive.infolist()
        if info.filename.replace("\\", "/").rsplit("/", 1)[-1].lower() == MEMBER
    ]


def _sniff_zip(head: bytes, path: Path | None) -> bool:
    if path is None:
        # The first local header names its member at offset 30.
        length = int.from_bytes(head[26:28], "little")
        return head[30 : 30 + length].rsplit(b"/", 1)[-1].lower() == MEMBER.encode()
    try:
        first = _first_member_line(path)
    except (*_ZIP_ERRORS, *_ZIP_ERRORS_MORE):
        return False
    return first is not None and _layout(first) is not None


def _first_member_line(path: Path) -> bytes | None:
    """The first line of the zip's NSRLFile.txt (None: it holds none); zipfile's errors raise."""
    with zipfile.ZipFile(path) as archive:
        members = _members(archive)
        if not members:
            return None
        with archive.open(members[0]) as member:
            return member.readline(MAX_LINE)


def _parse_zip(stream: BinaryIO, source: str, on_invalid: OnInvalid) -> Iterator[HashRecord]:
    try:
        with zipfile.ZipFile(stream) as archive:
            members = _members(archive)
            if not members:
                raise FormatError("the zip archive holds no NSRLFile.txt member", source)
            if len(members) > 1:
                # Note: which one is the list is not for matcher to guess.
                names = ", ".join(repr(m.filename[:100]) for m in members[:5])
                raise FormatError(
                    f"the zip archive holds {len(members)} NSRLFile.txt members ({names}"
                    f"{', ...' if len(members) > 5 else ''}); unpack it and import each one",
                    source,
                )
            (info,) = members
            with archive.open(info) as member:
                inner = f"{source}!{info.filename[:200]}"
                yield from _parse_text(member, inner, on_invalid)  # type: ignore[arg-type]
    except (*_ZIP_ERRORS, *_ZIP_ERRORS_MORE) as exc:
        raise FormatError(f"cannot read the zip archive: {_first_line(exc)}", source) from exc


def _parse_text(stream: BinaryIO, source: str, on_invalid: OnInvalid) -> Iterator[HashRecord]:
    lines = _lines(stream)
    first = next(lines, None)
    if first is None:
        raise FormatError("the file is empty; an NSRLFile.txt starts with a header", source)
    header = first[1]
    if header is not None and b"\r" in header:
        # Note: a CR inside the first line: lines that end in CR alone, read as one.
        raise FormatError(
            "the header line holds a CR: lines that end in CR alone (classic Mac OS)? "
            "NSRLFile.txt lines end in CR LF; convert the line ends and import that",
            source,
            1,
        )
    layout = None if header is None else _layout(header)
    if layout is None:
        shown = _excerpt(header or b"")
        named = _titles(header or b"")
        lacking = [c for c in _SIGNATURE_NAMES if c.lower() not in named]
        if not any(column in _DIGEST_COLUMNS for column in named):
            lacking.append("a digest column")  # SHA-1, MD5 or SHA-256
        raise FormatError(
            f"not an NSRLFile header (it lacks {', '.join(lacking)}): {shown}", source, 1
        )
    # Whether the records so far end in a closing quote (NIST quotes SpecialCode,
    # the last column); None before the first.
    quoted: bool | None = None
    for number, line, end, last in lines:
        if line is None:
            error = FormatError(f"line longer than {MAX_LINE} bytes", source, number)
        elif not line.strip() or (last and line == b"\x1a"):
            continue  # a blank line; a DOS end-of-file mark (Ctrl-Z) at the very end
        elif not end and not (line.rstrip().endswith(b'"') and quoted is not False):
            # Note: the last record, with no line end after it, whose last field is
            # no closed quoted field as the records' before it: a copy cut short
            # inside it (after the comma before SpecialCode, "M" lost; inside an
            # unquoted FileSize, a wrong size), which was imported as whole. A
            # whole last record of quoted fields reads without its line end.
            if quoted is False:
                # Note: said of records that end unquoted too, it sent the
                # examiner looking for a quote that no record has.
                why = (
                    "the records before it end in an unquoted field, so a cut inside its "
                    "last field cannot be told from a whole record"
                )
            elif quoted is None:
                why = "its last field is not a closed quoted field, as NIST writes it"
            else:
                why = "its last field is not a closed quoted field as the records' before it are"
            error = FormatError(
                f"the file ends inside this record (no line end after it, and {why}): a copy "
                "cut short? Import the whole file; if it is whole, add its final line end",
                source,
                number,
            )
        else:
            ends_quoted = line.rstrip().endswith(b'"')
            quoted = ends_quoted if quoted is None else quoted and ends_quoted
            try:
                yield _record(line, layout, number)
                continue
            except ValueError as exc:
                # Note: a field left open at the very end: cut just after its quote.
                cut = not end and str(exc).startswith(_LEFT_OPEN)
                hint = "; the file ends inside it: a copy cut short?" if cut else ""
                error = FormatError(f"{exc}{hint}", source, number)
        if on_invalid is None:
            raise error
        on_invalid(error)


def _split(line: bytes, layout: _Layout) -> list[bytes]:
    fields = line.split(b",")
    extra = len(fields) - layout.width
    if extra > 0:
        # Note that commas inside the quoted FileName are the only expected
        # source of extra fields: give all of them back to that column. That
        # holds only when what is given back is one quoted field; anything
        # else is a field too many somewhere, which would shift every column
        # after the name (a ProductCode read as the FileSize).
        at = layout.name
        name = b",".join(fields[at : at + extra + 1])
        quoted = len(name) >= 2 and name[:1] == b'"' and name[-1:] == b'"'
        if not quoted or _FIELD_BOUNDARY.search(name, 1, len(name) - 1):
            rfc = _rfc4180(line, layout.width)
            if rfc is None:
                raise ValueError(
                    f"expected {layout.width} fields as in the header, found {len(fields)}, "
                    "and the extra commas are not inside the quoted FileName, nor is the line "
                    "CSV with them inside other quoted fields (a field too many, or a stray "
                    "quote in a field)"
                )
            return rfc
        fields[at : at + extra + 1] = [name]
    elif extra < 0:
        raise ValueError(f"expected {layout.width} fields, found {len(fields)}")
    return fields


def _rfc4180(line: bytes, width: int) -> list[bytes] | None:
    """The line split at the commas outside quotes, when that gives `width` fields; else None.

    Note: a quoted comma in another column than FileName (a look-alike's
    "Comment" of "x, y") is valid CSV (RFC 4180), which the split on commas
    (the fast path, for the FileName's commas) refused, and with it the
    whole list. Each field comes as the line has it (its quotes and blanks),
    to be read as any field is: parsed by the csv module, unquoted and
    stripped, a " 5 " FileSize was refused where the fast path took it.
    """
    fields: list[bytes] = []
    start = 0
    quoted = False
    for at, byte in enumerate(line):
        if byte == 0x22:  # a doubled quote inside a field toggles twice
            quoted = not quoted
        elif byte == 0x2C and not quoted:
            fields.append(line[start:at])
            start = at + 1
    fields.append(line[start:])
    if quoted or len(fields) != width or not all(map(_well_quoted, fields)):
        return None
    return fields


def _well_quoted(field: bytes) -> bool:
    """True for a field with no quote, or one quoted whole with only doubled quotes inside.

    Note: a stray quote inside a name (NIST writes them unescaped) flipped
    the split's "inside quotes" where it stood, and the name came out wrong.
    """
    field = field.strip()
    if b'"' not in field:
        return True
    inner = field[1:-1]
    return (
        len(field) >= 2
        and field[:1] == b'"'
        and field[-1:] == b'"'
        and b'"' not in inner.replace(b'""', b"")
    )


def _shifted(fields: list[bytes], layout: _Layout) -> bool:
    """True when the FileName looks cut at a comma: a quoted field left open.

    Then the name's own commas made up for a missing field, and every column
    after it is shifted. Note: only a hint for an error message; NIST
    documents no quote escape, so a name may end in a stray quote.
    """
    name = fields[layout.name]
    # A quoted field is closed by an odd run of quotes ("" is a quote inside);
    # the name's rest is then the next field, which ends in its closing quote.
    after = fields[layout.name + 1] if layout.name + 1 < len(fields) else b""
    return (
        name[:1] == b'"'
        and (len(name) - 1 - len(name[1:].rstrip(b'"'))) % 2 == 0
        and after[:1] != b'"'
        and after[-1:] == b'"'
    )


def _record(line: bytes, layout: _Layout, number: int) -> HashRecord:
    """Parse one data line; ValueError says what is wrong with it."""
    fields = _split(line, layout)
    found: dict[str, bytes] = {}
    for algorithm, index in layout.digests:
        value = _unquote(fields[index])
        if value:
            digest = digests.parse_hex(value, algorithm)
            if found.setdefault(algorithm, digest) != digest:
                # Note: a header may name one digest twice (SHA-1 and SHA1);
                # which of two values is the file's is not for matcher to guess.
                raise ValueError(
                    f"two different {algorithm.upper()} values in one line "
                    f"({found[algorithm].hex()} and {digest.hex()})"
                )
    if not found:
        raise ValueError("the line has no SHA-1, MD5 or SHA-256")
    size = None
    if layout.size is not None:
        raw_size = _unquote(fields[layout.size])
        if raw_size:
            if not raw_size.isdigit():
                if _shifted(fields, layout):
                    raise ValueError(
                        f"expected {layout.width} fields as in the header, found fewer: "
                        "the quoted FileName holds commas, and a field is missing"
                    )
                raise ValueError(f"FileSize is not a byte count: {_excerpt(raw_size)}")
            size = byte_count(raw_size)
    ident = _unquote(fields[layout.ident]).decode("utf-8", "replace") or None
    label = None
    if layout.label is not None:
        label = _unquote(fields[layout.label]).decode("utf-8", "replace") or None
    name = _decode_name(_unquote_name(fields[layout.name]))
    return HashRecord(digests=found, size=size, name=name, ident=ident, label=label, line=number)


# The other files of an RDS 2.x distribution, by the first columns of their
# header line. They sit beside NSRLFile.txt and hold no file digests; version.txt
# names one SHA-1 (of the release's own data) and would read as a CSV list.
_SIDE_FILES = {
    ("productcode", "productname", "productversion", "opsystemcode", "mfgcode"): (
        "NSRLProd.txt: the products that NSRLFile.txt's ProductCode refers to"
    ),
    ("opsystemcode", "opsystemname", "opsystemversion", "mfgcode"): (
        "NSRLOS.txt: the operating systems that NSRLFile.txt's OpSystemCode refers to"
    ),
    ("mfgcode", "mfgname"): "NSRLMfg.txt: the manufacturers of the products",
    ("sha-1", "rdsversion"): "version.txt: the release's version and the SHA-1 of its own data",
}
# Names that mark a folder as an unpacked RDS 2.x distribution (lower case).
_DISTRIBUTION_NAMES = frozenset({MEMBER, MEMBER + ".zip", "nsrlprod.txt", "nsrlmfg.txt"})
# The distribution's hashes.txt: bare upper-case SHA-1s, one a line.
_SHA1_LINES = re.compile(rb"(?:[0-9A-F]{40}\r?\n|\r?\n)*(?:[0-9A-F]{40}\r?\n?)?")


class NsrlSideFileRefusal:
    """Refuses the files of an RDS 2.x distribution that are neither NSRLFile.txt nor a list.

    NSRLProd/NSRLOS/NSRLMfg.txt and version.txt, by their header. Asked
    after the readers, as refusals are (none claims them; a joined CSV that
    opens with NSRLProd's columns but names digests is read as a list).
    """

    NAME = "nsrl-rds2-side-file"
    DESCRIPTION = "NSRL RDS 2.x NSRLProd/NSRLOS/NSRLMfg/version.txt: refused"

    def refuse(self, head: bytes, path: Path | None = None) -> str | None:
        fields = _header_fields(head.split(b"\n", 1)[0])
        for columns, what in _SIDE_FILES.items():
            if tuple(fields[: len(columns)]) == columns:
                return (
                    f"an NSRL RDS 2.x distribution file ({what}), not a hash list; "
                    "import NSRLFile.txt (or the zip holding it) instead"
                )
        return None


class NsrlHashesTxtRefusal:
    """Refuses the hashes.txt of an unpacked RDS 2.x distribution.

    Note: that file holds the SHA-1 of each file of the distribution
    (NSRLFile.txt and its siblings). Read as the plain SHA-1 list it looks
    like, and notable by default, `matcher import RDS/*.txt` would make the
    NSRL's own files notable matches in a signed log. Only its place tells
    it from an examiner's list: a file named hashes.txt holding nothing but
    bare upper-case SHA-1 lines, beside a regular file named NSRLFile.txt,
    its zip, NSRLProd.txt or NSRLMfg.txt. Asked before the readers, since
    the plain reader takes it; `matcher import --format plain` still does.
    """

    NAME = "nsrl-rds2-hashes-txt"
    DESCRIPTION = "the hashes.txt of an unpacked NSRL RDS 2.x distribution: refused"
    BEFORE_READERS = True

    def refuse(self, head: bytes, path: Path | None = None) -> str | None:
        if path is None or path.name.lower() != "hashes.txt":
            return None
        if len(head) >= SNIFF_BYTES:  # only whole lines: the last one may be cut
            head = head[: head.rfind(b"\n") + 1]
        if not head.strip() or _SHA1_LINES.fullmatch(head) is None:
            return None
        sibling = _distribution_file(path)
        if sibling is None:
            return None
        return (
            f"hashes.txt beside the NSRL RDS 2.x {sibling} holds the SHA-1 of each file of "
            "that distribution, not of the files it lists: import NSRLFile.txt instead (if "
            "this really is a list of its own, import it with `matcher import --format plain`)"
        )


def _distribution_file(path: Path) -> str | None:
    """The name of a regular file beside `path` that marks an RDS 2.x distribution, if any."""
    try:
        with os.scandir(path.parent) as entries:
            for entry in entries:
                if entry.name.lower() in _DISTRIBUTION_NAMES and entry.is_file():
                    return entry.name
    except OSError:
        return None
    return None


class DamagedZipRefusal:
    """Names a zip that cannot be read, instead of calling it "not a hash list".

    Zips are read for the NSRLFile.txt they hold; a zip cut short (no
    central directory) or whose NSRLFile.txt cannot be decompressed fails
    detection like any unknown file, and the examiner would not learn that
    the file is damaged.
    """

    NAME = "damaged-zip"
    DESCRIPTION = "a zip archive that cannot be read (damaged or cut short): refused"

    def refuse(self, head: bytes, path: Path | None = None) -> str | None:
        if path is None or not head.startswith(ZIP_MAGIC):
            return None
        try:
            _first_member_line(path)
        except (RuntimeError, NotImplementedError) as exc:
            # zipfile: an encrypted member, an unsupported compression method.
            what = "encrypted" if "encrypted" in str(exc) else _first_line(exc)
            return (
                f"a zip archive that matcher cannot read ({what}); unpack its "
                "NSRLFile.txt with another tool and import that"
            )
        except (*_ZIP_ERRORS, *_ZIP_ERRORS_MORE) as exc:
            return (
                f"a zip archive that cannot be read ({_first_line(exc)}): damaged or cut "
                "short? matcher reads zips for the NSRL RDS 2.x NSRLFile.txt they hold"
            )
        return None


def _first_line(exc: BaseException) -> str:
    text = str(exc)
    return text.splitlines()[0][:80] if text else type(exc).__name__


registry.register(NsrlRds2Reader())
registry.register_refusal(NsrlSideFileRefusal())
registry.register_refusal(NsrlHashesTxtRefusal())
registry.register_refusal(DamagedZipRefusal())
