"""Reads GNU coreutils `*sum` untagged output ("<hex>  <name>"), md5deep and b3sum."""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from matcher import digests
from matcher.errors import FormatError
from matcher.formats import registry
from matcher.formats.base import ENTRY_AFTER_CR
from matcher.formats.base import SNIFF_BYTES
from matcher.formats.base import OnInvalid
from matcher.formats.base import TextReader
from matcher.formats.base import entry_after_cr
from matcher.formats.base import unended_last_line
from matcher.models import HashRecord

BOM = b"\xef\xbb\xbf"
# A record longer than this is reported as malformed instead of being buffered whole.
MAX_RECORD = 1 << 20
_CHUNK = 1 << 16
_DIGEST_LENGTHS = (32, 40, 64, 128)
# Note that coreutils can write these, but matcher has no store column for them.
_UNSUPPORTED_LENGTHS = {56: "SHA-224", 96: "SHA-384"}
_ESCAPES = {ord("\\"): b"\\", ord("n"): b"\n", ord("r"): b"\r"}

# md5deep -t: "<digest> <YYYY:MM:DD:hh:mm:ss>  <name>" (the time is no part of the name).
_MD5DEEP_TIME = re.compile(rb"\d{4}(:\d\d){5}  ")
_MD5DEEP_TIME_LENGTH = len(b"2026:11:28:14:51:09  ")
# Shapes (a) "hex  name" / "hex *name" and (b) coreutils' "BSD reversed" "hex name".
_SUM_LINE = re.compile(rb"[ \t]*(\\)?([0-9A-Fa-f]+)( [ *]|[ \t])(.*)", re.DOTALL)


# Line helpers shared by the text readers of this package (bsd_tag, plain, hashdeep,
# csv_list). Note that they would sit better in base.py, which this change leaves alone.


def read_records(
    stream: BinaryIO,
    sep: bytes = b"\n",
    *,
    prefix: bytes = b"",
    keepends: bool = False,
    unterminated: list[int] | None = None,
) -> Iterator[tuple[int, bytes | None]]:
    """Yield `(number, record)` for every `sep`-terminated record of `stream`.

    Records are numbered from 1. A UTF-8 BOM is dropped from the first one, and
    for LF records one trailing CR too (CRLF files), unless `keepends` keeps
    the terminator. The last record needs no terminator. A record longer than
    MAX_RECORD comes as `None`, so a reader reports it without buffering it.

    Args:
        stream: binary input, read in chunks.
        sep: the record terminator (b"\\n", or b"\\0" for `*sum -z`).
        prefix: bytes already read from the start of `stream`.
        keepends: keep terminators, as the csv module wants them.
        unterminated: given, the number of a last record without its
            terminator is appended to it before that record is yielded (a
            reader can tell a list cut short).
    """
    buffer = bytearray(prefix)
    number = 0
    overlong = False
    while True:
        start = 0
        while (end := buffer.find(sep, start)) != -1:
            number += 1
            stop = end + len(sep) if keepends else end
            yield number, None if overlong else _clean(bytes(buffer[start:stop]), number, sep)
            overlong = False
            start = end + len(sep)
        del buffer[:start]
        if len(buffer) > MAX_RECORD:
            overlong = True
            buffer.clear()
        chunk = stream.read(_CHUNK)
        if not chunk:
            break
        buffer += chunk
    if buffer or overlong:
        if unterminated is not None:
            unterminated.append(number + 1)
        yield number + 1, None if overlong else _clean(bytes(buffer), number + 1, sep)


def _clean(record: bytes, number: int, sep: bytes) -> bytes:
    if number == 1 and record.startswith(BOM):
        record = record[len(BOM) :]
    if sep == b"\n" and record.endswith(b"\r"):
        record = record[:-1]
    return record


def head_lines(head: bytes, sep: bytes = b"\n") -> list[bytes]:
    """The complete records of `head`, cleaned as `read_records` does.

    Note that the last record is dropped when `head` fills SNIFF_BYTES and does
    not end with `sep`: the file goes on and that record may be cut.
    """
    pieces = head.split(sep)
    if pieces[-1] == b"" or len(head) >= SNIFF_BYTES:
        pieces.pop()
    return [_clean(piece, number, sep) for number, piece in enumerate(pieces, start=1)]


def meaningful(lines: list[bytes]) -> list[bytes]:
    """The lines that are neither blank nor `#` comments."""
    return [line for line in lines if line.strip() and not line.lstrip().startswith(b"#")]


def mostly(lines: list[bytes], shape: Callable[[bytes], bool]) -> bool:
    """True when the first line has `shape` and at least half of all lines do.

    Note that sniffers accept a few bad lines (a name with a raw newline splits
    a record), but the first line decides, which keeps formats exclusive.
    """
    if not lines or not shape(lines[0]):
        return False
    return 2 * sum(1 for line in lines if shape(line)) >= len(lines)


def excerpt(raw: bytes, limit: int = 60) -> str:
    """At most `limit` bytes of an offending line, quoted for an error message."""
    text = raw[:limit].decode("utf-8", "replace")
    return repr(text + "...") if len(raw) > limit else repr(text)


def decode_name(raw: bytes) -> str | bytes:
    """A file name as text when it is valid UTF-8, else the exact bytes."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw


def unescape_name(raw: bytes) -> bytes | None:
    """Undo coreutils escaping (`\\\\`, `\\n`, `\\r`); None for any other escape."""
    out = bytearray()
    position = 0
    while (slash := raw.find(b"\\", position)) != -1:
        out += raw[position:slash]
        if slash + 1 >= len(raw) or raw[slash + 1] not in _ESCAPES:
            return None
        out += _ESCAPES[raw[slash + 1]]
        position = slash + 2
    out += raw[position:]
    return bytes(out)


def report(error: FormatError, on_invalid: OnInvalid) -> None:
    """Raise `error`, or hand it to `on_invalid` when the caller skips bad lines."""
    if on_invalid is None:
        raise error
    on_invalid(error)


# What a list's file name says of its 64- and 128-digit digests, which by
# length alone would be SHA-256 and SHA-512 (FORMATS.md 4.4, 8.1): b3sum
# output is BLAKE3; b2sum's BLAKE2b and SHA-3 lists cannot be computed here.
_NAME_HINTS = (
    # Note: the extension first, then the whole name, then words in it: a
    # `blake3-migration-check.md5` holds MD5s, and was refused as BLAKE3's.
    (re.compile(r"\.(b3|b3sums?)$", re.IGNORECASE), "blake3"),
    (re.compile(r"\.(b2|b2sums?)$", re.IGNORECASE), "BLAKE2b"),
    (re.compile(r"\.sha3$|\.sha3-(224|256|384|512)$", re.IGNORECASE), "SHA-3"),
    # Note: the names the *sum tools give their lists: what they say is held
    # to (a SHA256SUMS of 32-digit digests, cut short or MD5, was read as MD5).
    (re.compile(r"\.md5(sums?)?$|^md5sums?$", re.IGNORECASE), "md5"),
    (re.compile(r"\.sha1(sums?)?$|^sha1sums?$", re.IGNORECASE), "sha1"),
    (re.compile(r"\.sha256(sums?)?$|^sha256sums?$", re.IGNORECASE), "sha256"),
    (re.compile(r"\.sha512(sums?)?$|^sha512sums?$", re.IGNORECASE), "sha512"),
    # Note: "blake3" or "blake2" anywhere in the name (BLAKE3SUMS, blake3.txt,
    # blake2b.txt): such a list read as SHA-256 silently matched nothing.
    (re.compile(r"b3sum|blake3", re.IGNORECASE), "blake3"),
    (re.compile(r"b2sum|blake2", re.IGNORECASE), "BLAKE2b"),
    (re.compile(r"sha3[-_]?(224|256|384|512)|sha3sum", re.IGNORECASE), "SHA-3"),
)
# The hints that name an algorithm matcher computes, by its length alone.
_STATED = {"md5", "sha1", "sha256", "sha512"}
_SHOWN = {"md5": "MD5", "sha1": "SHA-1", "sha256": "SHA-256", "sha512": "SHA-512"}


def name_hint(source: str) -> str | None:
    """The algorithm a list's file name gives its ambiguous digests, if it names one."""
    name = os.path.basename(source)
    stem = name.rsplit(".", 1)[0] if name.lower().endswith((".txt", ".lst", ".list")) else name
    for pattern, algorithm in _NAME_HINTS:
        if pattern.search(stem):
            return algorithm
    return None


def digest_for_length(hex_text: bytes, hint: str | None = None) -> tuple[str, bytes]:
    """The algorithm a bare hex digest's length implies, and its raw bytes.

    Args:
        hint: what the list's name says (name_hint): a 64-digit digest of a
            b3sum list is BLAKE3, never SHA-256; BLAKE2b and SHA-3 are refused.

    Raises:
        FormatError: (without source or line) for a length no algorithm has,
            or one that the name says is an algorithm matcher cannot compute.
    """
    if hint in _STATED and digests.guess_algorithm(len(hex_text)) != hint:
        raise FormatError(
            f"the list's name says {hint} digests, but this one has {len(hex_text)} hex digits "
            f"(a {hint} digest has {digests.DIGEST_SIZES[hint] * 2})"
        )
    # Note: whatever the digest's length: `b2sum -l 128` (or b3sum -l 16) gives
    # 32 digits, which were read as MD5, a list that could never match.
    if hint == "blake3":
        if len(hex_text) != 64:
            raise FormatError(
                f"the list's name says blake3 digests, but this one has {len(hex_text)} hex "
                "digits: matcher computes BLAKE3's 64 (`b3sum` without --length)"
            )
        try:
            return "blake3", digests.parse_hex(hex_text, "blake3")
        except ValueError as exc:
            raise FormatError(str(exc)) from exc
    if hint is not None and hint not in _STATED:
        taken = digests.guess_algorithm(len(hex_text))
        otherwise = (
            f" (a {len(hex_text)}-digit digest would otherwise be taken as {_SHOWN[taken]})"
            if taken is not None
            else ""
        )
        raise FormatError(
            f"the list's name says {hint} digests, which matcher does not compute{otherwise}"
        )
    algorithm = digests.guess_algorithm(len(hex_text))
    if algorithm is None:
        unsupported = _UNSUPPORTED_LENGTHS.get(len(hex_text))
        if unsupported is not None:
            raise FormatError(f"{unsupported} digests are not supported; use MD5, SHA-1 or SHA-256")
        raise FormatError(
            f"a {len(hex_text)}-digit digest has no supported length (32, 40, 64 or 128)"
        )
    try:
        return algorithm, digests.parse_hex(hex_text, algorithm)
    except ValueError as exc:
        raise FormatError(str(exc)) from exc


def _sum_parts(line: bytes) -> tuple[bytes, bytes] | None:
    """(separator, name) of a line shaped as a sum line with a digest of a usable length."""
    match = _SUM_LINE.fullmatch(line)
    if match is None or len(match.group(2)) not in _DIGEST_LENGTHS:
        return None
    return match.group(3), match.group(4)


def _is_sum_line(line: bytes) -> bool:
    parts = _sum_parts(line)
    if parts is None or parts[1] == b"":
        return False
    return parts[0] in (b"  ", b" *") or _md5deep_time_name(parts) is not None


def _md5deep_time_name(parts: tuple[bytes, bytes]) -> bytes | None:
    """The name of an md5deep -t line ("<hex> <YYYY:MM:DD:hh:mm:ss>  <name>"), else None.

    Note: read as a sum line, the mtime became part of the name (FORMATS.md 3.2).
    """
    separator, rest = parts
    if separator != b" " or _MD5DEEP_TIME.match(rest) is None:
        return None
    return rest[_MD5DEEP_TIME_LENGTH:]


def _zero_terminated(data: bytes) -> bool:
    # Note that `*sum -z` ends records with NUL and writes names raw, so a name
    # may hold LF; a NUL before the first LF is what tells the two apart. A
    # -z record is never empty (digest, separator, name): a file that starts
    # with NUL is binary (a sparse or zeroed file), and read as -z every NUL
    # byte would be a blank record, some 20 minutes for 1 GB before the
    # refusal; read by lines, its first line is refused at once.
    nul = data.find(b"\0")
    newline = data.find(b"\n")
    return nul > 0 and (newline == -1 or nul < newline)


class GnuSumReader(TextReader):
    """Reads `md5sum`/`sha1sum`/`sha256sum`/`sha512sum` untagged output.

    Each line is "<hex>␠␠<name>" or "<hex>␠*<name>" (binary mode); coreutils'
    single-separator "BSD reversed" form is read too. A line starting with a
    backslash has an escaped name (`\\\\`, `\\n`, `\\r`). `-z` output, with
    NUL-terminated records and raw names, is recognised by its first record.
    The algorithm comes from the digest length, so md5deep and b3sum plain
    output read the same way (64 hex digits are SHA-256 by convention: a
    b3sum list needs the tagged form to be read as BLAKE3).
    """

    NAME = "gnu-sum"
    DESCRIPTION = "GNU coreutils md5sum/sha*sum untagged output, md5deep and b3sum plain output"

    def sniff(self, head: bytes, path: Path | None = None) -> bool:
        sep = b"\0" if _zero_terminated(head) else b"\n"
        return mostly(meaningful(head_lines(head, sep)), _is_sum_line)

    def parse(
        self, stream: BinaryIO, source: str = "<input>", on_invalid: OnInvalid = None
    ) -> Iterator[HashRecord]:
        first = stream.read(_CHUNK)
        sep = b"\0" if _zero_terminated(first) else b"\n"
        hint = name_hint(source)
        self.read_notes = ()
        unended: list[int] = []
        for number, line in read_records(stream, sep, prefix=first, unterminated=unended):
            if line is not None and (not line.strip() or line.lstrip().startswith(b"#")):
                continue
            try:
                record = self._record(line, number, hint)
            except FormatError as error:
                report(FormatError(error.reason, source=source, line=number), on_invalid)
                continue
            if unended:
                self.read_notes = (unended_last_line(record, unended[0], nul=sep == b"\0"),)
            yield record

    def _record(self, line: bytes | None, number: int, hint: str | None) -> HashRecord:
        if line is None:
            raise FormatError(f"the line is longer than {MAX_RECORD} bytes")
        if entry_after_cr(line):
            raise FormatError(ENTRY_AFTER_CR)
        match = _SUM_LINE.fullmatch(line)
        if match is None:
            raise FormatError(f"expected '<hex digest>  <file name>', got {excerpt(line)}")
        escaped, hex_text, separator, name = match.groups()
        timed = _md5deep_time_name((separator, name))
        if timed is not None:
            name = timed
        algorithm, digest = digest_for_length(hex_text, hint)
        if not name:
            raise FormatError(f"the line has no file name after the digest: {excerpt(line)}")
        if escaped:
            unescaped = unescape_name(name)
            if unescaped is None:
                raise FormatError(
                    f"the file name has an escape other than \\\\, \\n or \\r: {excerpt(name)}"
                )
            name = unescaped
        return HashRecord(digests={algorithm: digest}, name=decode_name(name), line=number)


def _is_single_separator_line(line: bytes) -> bool:
    """A digest, one space or tab, then a name: coreutils' other form of a sum line."""
    parts = _sum_parts(line)
    return (
        parts is not None
        and parts[0] in (b" ", b"\t")
        and parts[1].strip() != b""
        and _MD5DEEP_TIME.match(parts[1]) is None
    )


class SingleSeparatorRefusal:
    """Names, when no reader takes it, a list of "<digest> <name>" lines (one separator).

    Note: coreutils' sum tools read this form too (FORMATS.md), but other text
    shares it (`git log --format='%H %s'`), so detection does not take it:
    the refusal says what the file looks like and how to import it. It is
    asked only when no reader accepts the file, and only when every line has
    that shape (an md5sum list with two spaces is the reader's).
    """

    NAME = "single-separator-sums"
    DESCRIPTION = (
        "lines of '<digest> <name>' with one space or tab: named, --format gnu-sum reads them"
    )
    BEFORE_READERS = False

    def refuse(self, head: bytes, path: Path | None = None) -> str | None:
        lines = meaningful(head_lines(head))
        if len(lines) < 1 or not all(_is_single_separator_line(line) for line in lines):
            return None
        return (
            "every line is a digest, one space or tab, then a name: a form coreutils' "
            "md5sum/sha*sum also read, but one other text shares (a git log), so it is not "
            "taken by guess; if this is a hash list, import it with --format gnu-sum"
        )


registry.register(GnuSumReader())
registry.register_refusal(SingleSeparatorRefusal())
