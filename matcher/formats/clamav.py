"""Reads ClamAV whole-file hash signatures (.hdb/.hsb, also .hdu/.hsu)."""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from matcher.errors import FormatError
from matcher.formats import registry
from matcher.formats.base import ENTRY_AFTER_CR
from matcher.formats.base import SNIFF_BYTES
from matcher.formats.base import OnInvalid
from matcher.formats.base import TextReader
from matcher.formats.base import byte_count
from matcher.formats.base import entry_after_cr
from matcher.formats.base import unended_last_line
from matcher.models import HashRecord

BOM = b"\xef\xbb\xbf"
# A line longer than this is reported as malformed instead of being buffered whole.
MAX_LINE = 64 * 1024
# The algorithm is chosen by the digest's length, as ClamAV does.
_ALGORITHMS = {32: "md5", 40: "sha1", 64: "sha256"}
_HEX = rb"(?:[0-9A-Fa-f]{64}|[0-9A-Fa-f]{40}|[0-9A-Fa-f]{32})"
# HashString:FileSize:MalwareName[:MinFL[:MaxFL]]; "*" (any size) needs MinFL 73 in ClamAV.
_WHOLE_FILE = re.compile(rb"(" + _HEX + rb"):(\d{1,20}|\*):([^:]*)(?::(\d{0,9})(?::\d{0,9})?)?")
# The functionality level from which ClamAV reads a "*" (any size) signature.
_ANY_SIZE_LEVEL = 73
# Note that .mdb/.msb swap the first two fields: PESectionSize:PESectionHash:Name.
# Those hashes cover one PE section, so they can never match a whole file.
_SECTION = re.compile(rb"(?:\d{1,20}|\*):" + _HEX + rb":[^:]*(?::\d{0,9}(?::\d{0,9})?)?")
_SECTION_MESSAGE = (
    "the file holds PE-section hashes (.mdb/.msb), not whole-file hashes; matcher cannot use it"
)
# How many signature lines sniff() looks at.
_SNIFF_LINES = 50
# The names of ClamAV's whole-file hash databases (unsigned .hdu/.hsu included).
_SUFFIXES = frozenset({".hdb", ".hsb", ".hdu", ".hsu"})
# ClamAV's allow lists (false-positive suppression) share the .hdb layout:
# their hashes are of clean files.
_ALLOW_SUFFIXES = frozenset({".fp", ".sfp"})
# Names ClamAV reads as PE-section or import-table hashes, whatever the lines look like.
_SECTION_SUFFIXES = frozenset({".mdb", ".msb", ".mdu", ".msu", ".imp"})


def _head_lines(head: bytes) -> list[bytes]:
    """The complete, meaningful lines of `head`: no blank lines or comments."""
    cut = len(head) >= SNIFF_BYTES
    pieces = head.removeprefix(BOM).split(b"\n")
    # The last piece is cut when the head fills SNIFF_BYTES; it is empty after a final LF.
    if pieces[-1] == b"" or cut:
        pieces.pop()
    lines = [piece.rstrip(b"\r") for piece in pieces]
    return [line for line in lines if line.strip() and not line.startswith(b"#")]


def looks_like_section_hashes(head: bytes) -> bool:
    """True when the first signature line is `size:hash:name` (.mdb/.msb/.mdu/.msu).

    Args:
        head: the first bytes of the file.
    """
    lines = _head_lines(head)
    return bool(lines) and _is_section_line(lines[0])


def _is_section_line(line: bytes) -> bool:
    # Note that a 32-digit MD5 made only of decimal digits also fits the
    # section layout; the whole-file reading wins such a tie.
    return _SECTION.fullmatch(line) is not None and _WHOLE_FILE.fullmatch(line) is None


def _decode_name(raw: bytes) -> str | bytes | None:
    if not raw:
        return None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw


def _excerpt(raw: bytes, limit: int = 60) -> str:
    text = raw[:limit].decode("utf-8", "replace")
    return repr(text + "...") if len(raw) > limit else repr(text)


def _lines(stream: BinaryIO, unended: list[int]) -> Iterator[tuple[int, bytes | None]]:
    """Yield `(number, line)` without its line end; None for a line over MAX_LINE.

    The number of a last line without its line end is put in `unended` first.
    """
    number = 0
    while line := stream.readline(MAX_LINE + 1):
        number += 1
        if len(line) > MAX_LINE and not line.endswith(b"\n"):
            # Skip the rest of the overlong line without holding it.
            while (rest := stream.readline(MAX_LINE)) and not rest.endswith(b"\n"):
                pass
            yield number, None
            continue
        if number == 1 and line.startswith(BOM):
            line = line[len(BOM) :]
        if not line.endswith(b"\n"):
            unended.append(number)
        yield number, line.rstrip(b"\r\n")


class ClamavReader(TextReader):
    """Reads `HashString:FileSize:MalwareName[:MinFL[:MaxFL]]` lines.

    The digest is MD5, SHA-1 or SHA-256 by length, whatever the extension says.
    A size of `*` (any size) gives `size=None`. MalwareName, the signature's
    name, becomes `name`; ClamAV has no label. Section-hash files (.mdb/.msb)
    are refused as a whole.
    """

    NAME = "clamav"
    DESCRIPTION = "ClamAV whole-file hash signatures (.hdb, .hsb, .hdu, .hsu)"
    DEFAULT_ROLE = "notable"

    def sniff(self, head: bytes, path: Path | None = None) -> bool:
        """True when every signature line in `head` is `hash:size:name`.

        A file named .hdb/.hsb/.hdu/.hsu is also taken when one line is, or
        when the head holds no whole line (see the note below).

        Args:
            head: the first bytes of the file.
            path: the file, whose name may say it is a ClamAV database.
        """
        lines = _head_lines(head)
        if lines[:_SNIFF_LINES] and all(_WHOLE_FILE.fullmatch(x) for x in lines[:_SNIFF_LINES]):
            return True
        if path is None or path.suffix.lower() not in _SUFFIXES:
            return False
        # Note: a file named as ClamAV's is read as one when its first bytes
        # hold one signature line, or none whole (64 KiB of comments, or a
        # first line longer than that): its bad lines are then named, and
        # skipped with --skip-invalid, as in any list. (Refused at detection,
        # --skip-invalid alone could not keep the good ones.)
        if not lines:
            return len(head) >= SNIFF_BYTES
        if any(_is_section_line(line) for line in lines):
            return False  # refused, naming the PE-section line (ClamavBadLineRefusal)
        return any(_WHOLE_FILE.fullmatch(line) for line in lines)

    def default_role(self, path: Path) -> str:
        """`known` for an allow list (.fp/.sfp: hashes of clean files), else `notable`."""
        return "known" if path.suffix.lower() in _ALLOW_SUFFIXES else self.DEFAULT_ROLE

    def read(self, path: Path, on_invalid: OnInvalid = None) -> Iterator[HashRecord]:
        """As TextReader.read, but a file named as ClamAV section hashes is refused.

        Raises:
            FormatError: for a .mdb/.msb/.mdu/.msu/.imp name, whatever the lines:
                ClamAV itself would read them as PE-section hashes.
        """
        if path.suffix.lower() in _SECTION_SUFFIXES:
            raise FormatError(
                f"the file is named {path.suffix}, which ClamAV reads as PE-section (or "
                "import-table) hashes, not whole-file hashes; if it really holds whole-file "
                "hashes in the .hdb layout, give it the .hdb or .hsb name it should have",
                str(path),
            )
        return super().read(path, on_invalid)

    def parse(
        self, stream: BinaryIO, source: str = "<input>", on_invalid: OnInvalid = None
    ) -> Iterator[HashRecord]:
        """Yield one record per signature line; `#` comments and blank lines are skipped.

        Note that ClamAV 1.4.6 rejects a database holding a blank line; a blank
        line carries no hash, so matcher skips it instead.

        Raises:
            FormatError: when a line is `size:hash:name` (PE-section hashes), and
                for a malformed line unless `on_invalid` takes it.
        """
        self.read_notes = ()
        unended: list[int] = []
        for number, line in _lines(stream, unended):
            if line is None:
                error = FormatError(f"line longer than {MAX_LINE} bytes", source, number)
            elif entry_after_cr(line):  # a comment too: it would hide the signature
                error = FormatError(ENTRY_AFTER_CR, source, number)
            elif not line.strip() or line.startswith(b"#"):
                continue
            elif match := _WHOLE_FILE.fullmatch(line):
                try:
                    record = _record(match, number)
                except FormatError as exc:
                    error = FormatError(exc.reason, source, number)
                else:
                    if unended:
                        self.read_notes = (unended_last_line(record, unended[0]),)
                    yield record
                    continue
            elif _is_section_line(line):
                # Not a bad line but the wrong kind of file: never skipped.
                raise FormatError(_SECTION_MESSAGE, source, number)
            else:
                shown = _excerpt(line)
                error = FormatError(f"expected hash:size:name, got {shown}", source, number)
            if on_invalid is None:
                raise error
            on_invalid(error)


def _record(match: re.Match[bytes], number: int) -> HashRecord:
    digest, size, name, level = match.group(1, 2, 3, 4)
    if size == b"*" and (not level or int(level) < _ANY_SIZE_LEVEL):
        # Note: ClamAV's documentation requires it, and ClamAV refuses such a
        # line as a malformed database, unless an earlier line of the same
        # file set level 73 (readdb.c keeps the level across lines: an
        # accident of its code). Each line is judged on its own here.
        raise FormatError(
            f"size '*' (any size) needs a functionality level of {_ANY_SIZE_LEVEL} or more "
            f"(hash:*:name:{_ANY_SIZE_LEVEL}), which ClamAV requires; "
            f"got {level.decode() if level else 'none'}"
        )
    algorithm = _ALGORITHMS[len(digest)]
    return HashRecord(
        digests={algorithm: bytes.fromhex(digest.decode("ascii"))},
        size=None if size == b"*" else byte_count(size),
        name=_decode_name(name),
        line=number,
    )


class ClamavSectionRefusal:
    """Refuses PE-section hash files (.mdb/.msb), whatever their name: they can never match."""

    NAME = "clamav-section"
    DESCRIPTION = "ClamAV PE-section hash signatures (.mdb, .msb): refused"

    def refuse(self, head: bytes, path: Path | None = None) -> str | None:
        return _SECTION_MESSAGE if looks_like_section_hashes(head) else None


class ClamavBadLineRefusal:
    """Names the first bad line of a file named as a ClamAV database that detection refused.

    Detection accepts a ClamAV file only when every signature line it looks
    at is well formed; without this, one bad line would be reported as "not
    a hash list" with no line number.
    """

    NAME = "clamav-bad-line"
    DESCRIPTION = "ClamAV signature file (.hdb/.hsb/.hdu/.hsu) with a malformed line: refused"

    def refuse(self, head: bytes, path: Path | None = None) -> str | None:
        if path is None or path.suffix.lower() not in _SUFFIXES:
            return None
        if looks_like_section_hashes(head):
            return _SECTION_MESSAGE
        if len(head) >= SNIFF_BYTES:  # only whole lines: the last one may be cut
            head = head[: head.rfind(b"\n") + 1]
        try:
            for _record in ClamavReader().parse(io.BytesIO(head)):
                pass
        except FormatError as exc:
            named = f"named as a ClamAV {path.suffix.lower()} database, but line {exc.line}"
            if exc.reason == _SECTION_MESSAGE:
                # Note: --skip-invalid never skips these (the wrong kind of
                # file, not a bad line), so it is not offered.
                return (
                    f"{named} holds a PE-section hash (size:hash:name, the .mdb/.msb "
                    "layout), which can never match a whole file; move the section "
                    "signatures out of the file, then import it"
                )
            return (
                f"{named} is not a signature: {exc.reason}; fix the line, or keep the good "
                "ones with --format clamav --skip-invalid"
            )
        return None


registry.register(ClamavReader())
registry.register_refusal(ClamavSectionRefusal())
registry.register_refusal(ClamavBadLineRefusal())
