"""Reads EnCase legacy hash sets (.hash): a binary header, then 18-byte MD5 records."""

from __future__ import annotations

import dataclasses
import io
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from matcher.errors import FormatError
from matcher.formats import registry
from matcher.formats.base import OnInvalid
from matcher.models import HashRecord

# The layout Autopsy (EncaseHashSetParser.java), md5deep (files.cpp) and TSK
# (tsk/hashdb/encase.cpp) read; see FORMATS.md §7.3.
SIGNATURE = b"HASH\r\n\xff\x00"
VERSION = 2
FLAG = 1  # the uint32 at 0x0C: Autopsy requires 1, md5deep calls it padding
NAME_AT, NAME_SIZE = 0x408, 0x50
TYPE_AT, TYPE_SIZE = 0x458, 0x28
RECORDS_AT = 0x480
RECORD_SIZE = 18  # 16-byte raw MD5, then 2 bytes (zero in every known file)
# Records read per chunk: bounded memory whatever the count.
_CHUNK_RECORDS = 4096
_HEAD = struct.Struct("<8sIII")
_TYPE_ROLES = {"known": "known", "notable": "notable"}


@dataclasses.dataclass(frozen=True)
class EncaseHeader:
    """What the 0x480-byte header says."""

    count: int
    name: str
    type: str


def _utf16(field: bytes) -> str:
    # Note that the strings are NUL-padded UTF-16LE: cut at the first NUL
    # code unit, not the first zero byte (ASCII text has one in every unit).
    for end in range(0, len(field) - 1, 2):
        if field[end : end + 2] == b"\x00\x00":
            field = field[:end]
            break
    return field.decode("utf-16-le", "replace").strip()


def _offset(value: int) -> str:
    return f"byte offset 0x{value:X}"


def read_header(stream: BinaryIO, source: str) -> EncaseHeader:
    """Check the header against the file's size; leave `stream` at the first record.

    Raises:
        FormatError: for a wrong signature, version or flag, a file shorter
            than the header, or a record area that does not hold exactly the
            number of 18-byte records the header gives. Each names the byte
            offset.
    """
    size = stream.seek(0, io.SEEK_END)
    stream.seek(0)
    head = stream.read(RECORDS_AT)
    if len(head) < len(SIGNATURE) or head[: len(SIGNATURE)] != SIGNATURE:
        shown = " ".join(f"{b:02X}" for b in head[: len(SIGNATURE)]) or "missing (empty file)"
        raise FormatError(
            f"not an EnCase hash set: the signature at {_offset(0)} is {shown}, "
            "expected 48 41 53 48 0D 0A FF 00",
            source,
        )
    if len(head) < RECORDS_AT:
        raise FormatError(
            f"truncated EnCase hash set: the header runs to {_offset(RECORDS_AT)} "
            f"({RECORDS_AT} bytes), the file has {size} bytes",
            source,
        )
    _, version, flag, count = _HEAD.unpack_from(head)
    if version != VERSION:
        raise FormatError(
            f"unsupported EnCase hash set version {version} at {_offset(8)} "
            f"(only version {VERSION} is documented)",
            source,
        )
    if flag != FLAG:
        raise FormatError(
            f"unexpected value {flag} at {_offset(0xC)} (EnCase writes {FLAG}); "
            "the header is damaged or of another kind",
            source,
        )
    body = size - RECORDS_AT
    held, extra = divmod(body, RECORD_SIZE)
    if extra:
        raise FormatError(
            f"the records from {_offset(RECORDS_AT)} are {body} bytes, not a whole number of "
            f"{RECORD_SIZE}-byte records: the file is truncated or has extra bytes "
            f"(the last {extra} from {_offset(size - extra)})",
            source,
        )
    if held != count:
        raise FormatError(
            f"the header says {count} hashes ({_offset(0x10)}), but the file holds {held} "
            f"records: it is truncated or damaged",
            source,
        )
    return EncaseHeader(
        count=count,
        name=_utf16(head[NAME_AT : NAME_AT + NAME_SIZE]),
        type=_utf16(head[TYPE_AT : TYPE_AT + TYPE_SIZE]),
    )


class EncaseReader:
    """Reads EnCase legacy `.hash` sets: MD5 only, no names or sizes.

    The header is checked before any entry is read: signature, version 2,
    the flag Autopsy requires, and the hash count against the file's size.
    Each of these is fatal, with or without --skip-invalid: a damaged header
    leaves no trustworthy record boundary. The set's name (UTF-16LE at 0x408)
    and type (at 0x458, e.g. "Known") are kept as list metadata; the type may
    suggest a role but never sets it (the default is notable, as for every
    list that does not say what it is, and --role decides).
    """

    NAME = "encase"
    DESCRIPTION = "EnCase legacy hash set (.hash: binary, MD5 records)"
    DEFAULT_ROLE = "notable"

    def sniff(self, head: bytes, path: Path | None = None) -> bool:
        """True when the file starts with the signature `HASH\\r\\n\\xff\\0`."""
        return head.startswith(SIGNATURE)

    def read(self, path: Path, on_invalid: OnInvalid = None) -> Iterator[HashRecord]:
        """Yield one record per MD5 of the set at `path`.

        Raises:
            FormatError: as `parse`.
        """
        with path.open("rb") as stream:
            yield from self.parse(stream, source=str(path), on_invalid=on_invalid)

    def parse(
        self, stream: BinaryIO, source: str = "<input>", on_invalid: OnInvalid = None
    ) -> Iterator[HashRecord]:
        """Yield one record per MD5 in `stream` (seekable), in file order.

        `on_invalid` is accepted for the common interface; no single record
        can be malformed (any 16 bytes are an MD5), only the file as a whole.

        Raises:
            FormatError: for a bad header or size (see `read_header`), or a
                file that shrinks while it is read.
        """
        header = read_header(stream, source)
        left = header.count
        offset = RECORDS_AT
        while left:
            want = min(left, _CHUNK_RECORDS)
            chunk = stream.read(want * RECORD_SIZE)
            if len(chunk) != want * RECORD_SIZE:
                raise FormatError(
                    f"the file ended early, at {_offset(offset + len(chunk))}", source
                )
            for start in range(0, len(chunk), RECORD_SIZE):
                yield HashRecord(digests={"md5": chunk[start : start + 16]})
            left -= want
            offset += len(chunk)

    def metadata(self, path: Path) -> dict[str, str]:
        """The set's name and type from the header, and the role the type suggests.

        Raises:
            FormatError: for a bad header (see `read_header`).
        """
        with path.open("rb") as stream:
            header = read_header(stream, str(path))
        info = {"declared_hashes": str(header.count)}
        if header.name:
            info["set_name"] = header.name
        if header.type:
            info["set_type"] = header.type
            suggested = _TYPE_ROLES.get(header.type.lower())
            if suggested is not None:
                info["suggested_role"] = suggested
        return info


registry.register(EncaseReader())
