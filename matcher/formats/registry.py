"""Registry of hash-list readers: register, look up by name, detect by content.

It also holds refusals: kinds of file that are recognised only to be refused
with a reason of their own (a derived index, a set description).
"""

from __future__ import annotations

import io
from pathlib import Path

from matcher.errors import FormatError
from matcher.errors import registered
from matcher.formats.base import SNIFF_BYTES
from matcher.formats.base import ZIP_MAGIC
from matcher.formats.base import HashListReader
from matcher.formats.base import Refusal

_READERS: dict[str, HashListReader] = {}
_REFUSALS: dict[str, Refusal] = {}


def register(reader: HashListReader) -> None:
    """Add a reader. A duplicate NAME is a programmer error (KeyError)."""
    if reader.NAME in _READERS or reader.NAME in _REFUSALS:
        raise KeyError(f"a reader named {reader.NAME!r} is already registered")
    _READERS[reader.NAME] = reader


def deregister(name: str) -> None:
    """Remove a reader (used by tests)."""
    del _READERS[name]


def register_refusal(refusal: Refusal) -> None:
    """Add a refusal. A NAME already used by a refusal or a reader is a KeyError."""
    if refusal.NAME in _REFUSALS or refusal.NAME in _READERS:
        raise KeyError(f"a reader or refusal named {refusal.NAME!r} is already registered")
    _REFUSALS[refusal.NAME] = refusal


def deregister_refusal(name: str) -> None:
    """Remove a refusal (used by tests)."""
    del _REFUSALS[name]


def refusals() -> list[Refusal]:
    """Every registered refusal, by name."""
    return [_REFUSALS[n] for n in sorted(_REFUSALS)]


def refusal_reason(
    path: Path, head: bytes | None = None, before_readers: bool = False
) -> str | None:
    """Why the file is refused, when a registered refusal recognises it, else None.

    Asks the refusals of one group: those asked before the readers
    (BEFORE_READERS set), or the others.
    """
    if head is None:
        head = read_head(path)
    for refusal in refusals():
        if getattr(refusal, "BEFORE_READERS", False) != before_readers:
            continue
        reason = refusal.refuse(head, path)
        if reason is not None:
            return reason
    return None


def get(name: str) -> HashListReader:
    """The reader called `name`.

    Raises:
        UsageError: there is none (naming the formats there are).
    """
    return registered(_READERS, name, "list format")


def names() -> list[str]:
    """Every registered format name, sorted."""
    return sorted(_READERS)


def readers() -> list[HashListReader]:
    """Every registered reader, by name."""
    return [_READERS[n] for n in names()]


def read_head(path: Path) -> bytes:
    """The first SNIFF_BYTES of a file, for `detect()`."""
    with path.open("rb") as stream:
        return stream.read(SNIFF_BYTES)


def detect(path: Path, head: bytes | None = None) -> HashListReader:
    """Pick the one reader whose sniff() accepts the file's first bytes.

    Note that refusals are asked only when no reader accepts the file; their
    reason (e.g. "a derived hfind index ...") then replaces the generic one.
    A refusal with BEFORE_READERS set is asked first: it knows a file that a
    reader would take, wrongly (an NSRL distribution's hashes.txt).

    Raises:
        FormatError: when no reader, or more than one, accepts it; the message
            names the file and says what it is not.
    """
    if head is None:
        head = read_head(path)
    reason = refusal_reason(path, head, before_readers=True)
    if reason is not None:
        raise FormatError(reason, source=str(path))
    hits = [r for r in readers() if r.sniff(head, path)]
    if head.startswith(ZIP_MAGIC):
        # Note: a stored (uncompressed) zip holds its member's text as it is:
        # the csv reader took one for a list, the zip's header glued to its own.
        hits = [r for r in hits if getattr(r, "READS_ZIP", False)]
    if len(hits) == 1:
        return hits[0]
    if not hits:
        reason = refusal_reason(path, head)
        if reason is not None:
            raise FormatError(reason, source=str(path))
        if not head.removeprefix(b"\xef\xbb\xbf").strip(b" \t\r\n\x00"):
            if not head:
                what = "is empty"
            elif len(head) < SNIFF_BYTES:
                what = "holds only blank lines (or NUL bytes)"
            else:
                what = (
                    f"starts with {SNIFF_BYTES // 1024} KiB of blank lines (or NUL bytes), "
                    "too many to tell its format (name it with --format if a list follows)"
                )
            raise FormatError(
                f"the file {what}: no hash list to import (a list cut short, or the wrong file?)",
                source=str(path),
            )
        bad_line = _bad_line_of_named(path, head)
        if bad_line is not None:
            raise FormatError(bad_line, source=str(path))
        raise FormatError(
            "the list format was not recognised: this is not a hash list in any format "
            "matcher reads; if it is one, name its format with --format "
            f"(one of: {', '.join(names())})",
            source=str(path),
        )
    found = ", ".join(r.NAME for r in hits)
    raise FormatError(
        f"the list could be any of {found}; name the right one with --format",
        source=str(path),
    )


# The format a list's file name gives (a suffix, or a name such as SHA256SUMS):
# read as that format when detection refuses it, so that a bad first entry is
# named by its line, not "not a hash list" (detection sees too few good lines).
_NAMED_SUFFIXES = {
    ".md5": "gnu-sum", ".sha1": "gnu-sum", ".sha256": "gnu-sum", ".sha512": "gnu-sum",
    ".b3": "gnu-sum", ".csv": "csv", ".hashdeep": "hashdeep",
}  # fmt: skip
_NAMED_FILES = {"md5sums": "gnu-sum", "sha1sums": "gnu-sum", "sha256sums": "gnu-sum",
                "sha512sums": "gnu-sum", "b3sums": "gnu-sum"}  # fmt: skip


def _bad_line_of_named(path: Path, head: bytes) -> str | None:
    """The first bad line of a list whose name gives its format, read as that format."""
    name = _NAMED_SUFFIXES.get(path.suffix.lower()) or _NAMED_FILES.get(path.name.lower())
    reader = _READERS.get(name or "")
    parse = getattr(reader, "parse", None)
    if reader is None or parse is None:
        return None
    if len(head) >= SNIFF_BYTES:  # only whole lines: the last one may be cut
        head = head[: head.rfind(b"\n") + 1]
    said = f"the list format was not recognised; its name says {reader.NAME}, and read as one"
    bad: list[FormatError] = []
    try:
        entries = sum(1 for _ in parse(io.BytesIO(head), source=str(path), on_invalid=bad.append))
    except FormatError as exc:
        # Note: the file as a whole is not one (no header, no hash column):
        # --skip-invalid, which skips entries, would not help.
        return None if exc.line is None else f"{said}, line {exc.line}: {exc.reason}"
    if not bad:
        return None
    if not entries:
        # Note: every line read fails alike (MD5 digests under a SHA256 header,
        # sizes written "1,024"): the first is named, and --skip-invalid,
        # which would keep nothing, is not offered.
        return f"{said}, no line of it is an entry; line {bad[0].line}: {bad[0].reason}"
    return (
        f"{said}, line {bad[0].line} is not an entry: {bad[0].reason}; fix the line, or keep "
        f"the good ones with --format {reader.NAME} --skip-invalid"
    )
