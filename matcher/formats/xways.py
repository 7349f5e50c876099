"""Reads X-Ways Forensics hash-set text files: the hash type, then one hash per line."""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from matcher import digests
from matcher.errors import FormatError
from matcher.formats import registry
from matcher.formats.base import OnInvalid
from matcher.formats.base import TextReader
from matcher.formats.gnu_sum import MAX_RECORD
from matcher.formats.gnu_sum import excerpt
from matcher.formats.gnu_sum import head_lines
from matcher.formats.gnu_sum import meaningful
from matcher.formats.gnu_sum import mostly
from matcher.formats.gnu_sum import read_records
from matcher.formats.gnu_sum import report
from matcher.models import HashRecord

# The hash types matcher can use; X-Ways writes "MD5", "SHA-1", "SHA-256".
SUPPORTED = ("md5", "sha1", "sha256", "sha512")
# Note that X-Ways offers more hash types than matcher computes; such a set is
# recognised (so the examiner learns why it is refused) but never read.
_UNSUPPORTED = {
    "crc32": "CRC32",
    "md4": "MD4",
    "ed2k": "ed2k",
    "sha384": "SHA-384",
    "ripemd128": "RIPEMD-128",
    "ripemd160": "RIPEMD-160",
    "tiger128": "Tiger128",
    "tiger160": "Tiger160",
    "tiger192": "Tiger192",
    "photodna": "PhotoDNA",
}
_BASE32 = re.compile(rb"[A-Za-z2-7]{32}")
_HEX = re.compile(rb"[0-9A-Fa-f]+")
_TOKEN = re.compile(rb"[0-9A-Za-z]+")
# Blanks, "-" and "_" are ignored in the first line: "SHA-1", "sha1", "SHA 256".
_NOISE = re.compile(rb"[\s_\-]+")


def hash_type(line: bytes) -> str | None:
    """The compacted type name a first line gives ("md5", "sha1", "ripemd160"...), else None.

    Args:
        line: the first line, without its line end.
    """
    compact = _NOISE.sub(b"", line).lower()
    if not compact.isalnum() or not compact.isascii():
        return None
    name = compact.decode("ascii")
    if name in ("sha2256", "sha2512"):
        name = "sha" + name[4:]
    if name in SUPPORTED or name in _UNSUPPORTED:
        return name
    return None


def _shape(algorithm: str) -> re.Pattern[bytes]:
    hex_length = digests.DIGEST_SIZES.get(algorithm, 0) * 2
    if algorithm == "sha1":
        return re.compile(rb"[0-9A-Fa-f]{40}|[A-Za-z2-7]{32}")
    if hex_length:
        return re.compile(rb"[0-9A-Fa-f]{%d}" % hex_length)
    return _TOKEN


def decode_digest(token: bytes, algorithm: str) -> bytes:
    """The raw digest of one hash line, hex (any case) or, for SHA-1, Base32.

    Raises:
        FormatError: (without source or line) for a wrong length or a bad digit.
    """
    if algorithm == "sha1" and len(token) == 32 and _BASE32.fullmatch(token):
        # Note that 32 Base32 characters are exactly 160 bits: no padding.
        try:
            return base64.b32decode(token, casefold=True)
        except binascii.Error as exc:  # pragma: no cover - the pattern rules it out
            raise FormatError(f"not a Base32 SHA-1: {excerpt(token)}") from exc
    expected = digests.DIGEST_SIZES[algorithm] * 2
    if len(token) != expected or _HEX.fullmatch(token) is None:
        what = "hex digits or 32 Base32 characters" if algorithm == "sha1" else "hex digits"
        raise FormatError(f"expected {expected} {what} for {algorithm}, got {excerpt(token)}")
    return bytes.fromhex(token.decode("ascii"))


class XwaysReader(TextReader):
    """Reads X-Ways hash-set text: line 1 names the hash type, then one hash per line.

    The type line is read liberally (`MD5`, `SHA-1`, `sha1`, `SHA 256`,
    `SHA-256`, `SHA-512`, any case). Hashes are hex in either case; SHA-1 sets
    may also hold X-Ways' Base32 form (32 characters of A-Z and 2-7), decoded
    to the same 20 bytes. CRLF or LF, a UTF-8 BOM, blank lines and surrounding
    blanks are accepted. Types matcher cannot compute (RIPEMD-160, CRC32...)
    are recognised and refused as a whole. The set name X-Ways uses, the file
    name without its extension, is kept as metadata.
    """

    NAME = "xways"
    DESCRIPTION = "X-Ways Forensics hash-set text (first line MD5, SHA-1, SHA-256 or SHA-512)"

    def sniff(self, head: bytes, path: Path | None = None) -> bool:
        # Note that the type line alone decides, with the first hash line (when
        # the head holds one) in that type's shape; a plain list has no type
        # line, and an md5sum list has names after its digests.
        lines = [line.strip() for line in meaningful(head_lines(head))]
        if not lines:
            return False
        algorithm = hash_type(lines[0])
        if algorithm is None:
            return False
        rest = lines[1:]
        shape = _shape(algorithm)
        return not rest or mostly(rest, lambda line: shape.fullmatch(line) is not None)

    def parse(
        self, stream: BinaryIO, source: str = "<input>", on_invalid: OnInvalid = None
    ) -> Iterator[HashRecord]:
        """Yield one record per hash line.

        Raises:
            FormatError: when the first line names no hash type, or one that
                matcher cannot use (always); for a malformed hash line unless
                `on_invalid` takes it.
        """
        algorithm: str | None = None
        for number, line in read_records(stream):
            token = line.strip() if line is not None else None
            if token is not None and not token:
                continue
            if algorithm is None:
                algorithm = _first_line(token, source, number)
                continue
            try:
                if token is None:
                    raise FormatError(f"the line is longer than {MAX_RECORD} bytes")
                digest = decode_digest(token, algorithm)
            except FormatError as error:
                report(FormatError(error.reason, source=source, line=number), on_invalid)
                continue
            yield HashRecord(digests={algorithm: digest}, line=number)
        if algorithm is None:
            raise FormatError(
                "the file is empty: an X-Ways hash set starts with a line naming its hash type",
                source=source,
                line=1,
            )

    def metadata(self, path: Path) -> dict[str, str]:
        """The hash type as written on line 1, and the set name (file name without extension)."""
        with path.open("rb") as stream:
            for _number, line in read_records(stream):
                if line is not None and not line.strip():
                    continue
                if line is None or hash_type(line.strip()) is None:
                    return {}
                return {
                    "hash_type": line.strip().decode("ascii"),
                    "set_name": path.stem,
                }
        return {}


def _first_line(token: bytes | None, source: str, number: int) -> str:
    algorithm = hash_type(token) if token is not None else None
    if algorithm is None:
        shown = "an overlong line" if token is None else excerpt(token)
        raise FormatError(
            "not an X-Ways hash set: the first line must name the hash type "
            f"(MD5, SHA-1, SHA-256 or SHA-512), got {shown}",
            source=source,
            line=number,
        )
    if algorithm not in SUPPORTED:
        raise FormatError(
            f"an X-Ways hash set of {_UNSUPPORTED[algorithm]} hashes: matcher computes only "
            "MD5, SHA-1, SHA-256 and SHA-512, so it cannot use this set",
            source=source,
            line=number,
        )
    return algorithm


registry.register(XwaysReader())
