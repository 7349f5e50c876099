"""Digest algorithm names, lengths and hex normalisation; the SHA-256 of one of our files."""

from __future__ import annotations

import hashlib
import importlib.util
import re
from collections.abc import Callable
from collections.abc import Iterable
from pathlib import Path
from typing import Any

# Note that the order is the canonical output order (hashdeep's md5,sha1,sha256).
DIGEST_SIZES: dict[str, int] = {
    "md5": 16,
    "sha1": 20,
    "sha256": 32,
    "sha512": 64,
    "blake3": 32,
}
# Small integer codes keep the store's per-algorithm index compact.
ALGORITHM_CODES: dict[str, int] = {"md5": 1, "sha1": 2, "sha256": 3, "sha512": 4, "blake3": 5}
DEFAULT_ALGORITHMS: tuple[str, ...] = ("md5", "sha1", "sha256")

# Names with case, spaces, hyphens and underscores removed ("SHA-2 256" -> "sha2256").
_ALIASES = {
    "md5": "md5",
    "sha1": "sha1",
    "sha256": "sha256",
    "sha2256": "sha256",
    "sha512": "sha512",
    "sha2512": "sha512",
    "blake3": "blake3",
    "blake3256": "blake3",
}
_NAME_NOISE = re.compile(r"[\s_\-]+")
_HEX = re.compile(rb"[0-9a-fA-F]+")
_HEX_STR = re.compile(r"[0-9a-fA-F]+")


def canonical_name(name: str) -> str | None:
    """Return the canonical algorithm name for a user or list spelling, or None.

    Case, spaces, hyphens and underscores do not matter: "SHA-256", "sha_256",
    "SHA 256", "SHA2-256" and "SHA-2 256" all name sha256.
    """
    return _ALIASES.get(_NAME_NOISE.sub("", name.lower()))


def blake3_available() -> bool:
    """True when the optional `blake3` package is importable."""
    return importlib.util.find_spec("blake3") is not None


def available_algorithms() -> tuple[str, ...]:
    """Algorithms this installation can compute."""
    return tuple(a for a in DIGEST_SIZES if a != "blake3" or blake3_available())


def parse_algorithms(spec: str | Iterable[str]) -> tuple[str, ...]:
    """Parse "md5,sha256" (or an iterable) into canonical names, in canonical order.

    Raises:
        ValueError: for an unknown or unavailable algorithm, or an empty set.
    """
    items = spec.split(",") if isinstance(spec, str) else list(spec)
    chosen: set[str] = set()
    for item in items:
        if not item.strip():
            continue
        name = canonical_name(item)
        if name is None:
            known = ", ".join(DIGEST_SIZES)
            raise ValueError(f"unknown algorithm {item.strip()!r}; choose from {known}")
        if name == "blake3" and not blake3_available():
            raise ValueError("blake3 needs the optional package: pip install 'matcher[blake3]'")
        chosen.add(name)
    if not chosen:
        raise ValueError("no algorithm given")
    return tuple(a for a in DIGEST_SIZES if a in chosen)


def new_hasher(name: str) -> Any:
    """Return a fresh hash object with `update()` and `digest()` for `name`."""
    if name == "blake3":
        import blake3  # optional dependency, checked by parse_algorithms

        return blake3.blake3()
    return hashlib.new(name)


def hasher_factory(name: str) -> Callable[[], Any]:
    """Return a zero-argument constructor for `name` (faster than hashlib.new per file)."""
    if name == "blake3":
        import blake3

        return blake3.blake3  # type: ignore[no-any-return,unused-ignore]
    return getattr(hashlib, name)  # type: ignore[no-any-return]


def empty_digest(name: str) -> bytes:
    """The digest of zero bytes under `name`.

    A list entry with this digest says nothing about content: every empty
    file has it. Such entries are imported but flagged, and never make a match.
    """
    if name == "blake3":  # known without the optional package
        return bytes.fromhex(_BLAKE3_EMPTY)
    return bytes(new_hasher(name).digest())


_BLAKE3_EMPTY = "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262"


def algorithms_for_length(hex_length: int) -> tuple[str, ...]:
    """Algorithms whose hex digest has this length (64 is ambiguous: sha256/blake3)."""
    return tuple(a for a, n in DIGEST_SIZES.items() if n * 2 == hex_length)


def guess_algorithm(hex_length: int) -> str | None:
    """The conventional algorithm for an unlabelled hex digest of this length.

    Note that 64 hex digits are read as SHA-256, as every list format without a
    header does (FORMATS.md §0.1 rule 2); BLAKE3 needs a header that says so.
    """
    return {32: "md5", 40: "sha1", 64: "sha256", 128: "sha512"}.get(hex_length)


def is_hex(text: str | bytes) -> bool:
    """True when `text` is non-empty and only hex digits."""
    if isinstance(text, bytes):
        return _HEX.fullmatch(text) is not None
    return _HEX_STR.fullmatch(text) is not None


def parse_hex(text: str | bytes, algorithm: str) -> bytes:
    """Decode a hex digest of `algorithm` (either case) to raw bytes.

    Raises:
        ValueError: when `text` is not exactly the right number of hex digits.
    """
    raw = text.strip()
    expected = DIGEST_SIZES[algorithm] * 2
    if len(raw) != expected or not is_hex(raw):
        shown = raw.decode("ascii", "replace") if isinstance(raw, bytes) else raw
        if len(shown) > 80:
            shown = shown[:77] + "..."
        raise ValueError(f"expected {expected} hex digits for {algorithm}, got {shown!r}")
    return bytes.fromhex(raw.decode("ascii") if isinstance(raw, bytes) else raw)


def to_hex(digest: bytes) -> str:
    """Lower-case hex, the only form matcher prints or stores as text."""
    return digest.hex()


def file_sha256(path: Path, stopping: Callable[[], bool] | None = None) -> str:
    """The hex SHA-256 of a file matcher reads or writes itself (a list, a log, an inventory).

    Read in 1 MiB chunks (hashlib lets go of the GIL for each). `stopping`,
    asked before each chunk, ends the read early when it says so: the value
    returned then is not the file's, and the caller must not use it.
    """
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        while not (stopping is not None and stopping()) and (chunk := stream.read(1 << 20)):
            digest.update(chunk)
    return digest.hexdigest()
