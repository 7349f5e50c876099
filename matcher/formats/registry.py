"""Registry of hash-list readers: register, look up by name, detect by content."""

from __future__ import annotations

from pathlib import Path

from matcher.errors import FormatError
from matcher.formats.base import SNIFF_BYTES
from matcher.formats.base import HashListReader

_READERS: dict[str, HashListReader] = {}


def register(reader: HashListReader) -> None:
    """Add a reader. A duplicate NAME is a programmer error (KeyError)."""
    if reader.NAME in _READERS:
        raise KeyError(f"a reader named {reader.NAME!r} is already registered")
    _READERS[reader.NAME] = reader


def deregister(name: str) -> None:
    """Remove a reader (used by tests)."""
    del _READERS[name]


def get(name: str) -> HashListReader:
    """The reader called `name` (KeyError when there is none)."""
    return _READERS[name]


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

    Raises:
        FormatError: when no reader, or more than one, accepts it.
    """
    if head is None:
        head = read_head(path)
    hits = [r for r in readers() if r.sniff(head, path)]
    if len(hits) == 1:
        return hits[0]
    if not hits:
        raise FormatError(
            "the list format was not recognised; name it with --format "
            f"(one of: {', '.join(names())})",
            source=str(path),
        )
    found = ", ".join(r.NAME for r in hits)
    raise FormatError(
        f"the list could be any of {found}; name the right one with --format",
        source=str(path),
    )
