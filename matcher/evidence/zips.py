"""Zip structure read directly, where Python's zipfile is stricter than the format.

zipfile decodes a member name flagged UTF-8 (general-purpose bit 11)
strictly: one name whose bytes are not UTF-8 made the whole zip unlistable,
while unzip and 7zz list every member. `open_zip` reads such a zip through a
view that clears that flag for those names only, in the central and local
headers both, so that zipfile decodes them as CP437: that keeps every byte,
and the walk gives the name as the archive's bytes, unchanged.

zipfile reads a zip that follows other data (a self-extractor, a zip
appended to a picture), as unzip does; `central_directory_at` tells, from a
file's last bytes, whether a zip ends it.

`member_head` and `open_member` check a member's local header themselves and
read it with zipfile's own member reader, at a fraction of the cost of
zipfile's open; `open_listed` does so from the fields of the listing, so that
a hashing worker never lists a zip itself.
"""

from __future__ import annotations

import bisect
import io
import struct
import zipfile
from typing import IO
from typing import Any
from typing import NamedTuple
from typing import cast

_END = struct.Struct("<4s4H2LH")  # end of central directory record (22 bytes)
_END_SIGNATURE = b"PK\x05\x06"
_END64_LOCATOR = struct.Struct("<4sLQL")  # zip64 end record locator (20 bytes)
_END64 = struct.Struct("<4sQ2H2L4Q")  # zip64 end of central directory record (56 bytes)
_CENTRAL = struct.Struct("<4s4B4HL2L5H2L")  # central directory file header (46 bytes)
_CENTRAL_SIGNATURE = b"PK\x01\x02"
_LOCAL_SIGNATURE = b"PK\x03\x04"
_LOCAL = struct.Struct("<4s2B4HL2L2H")  # local file header (30 bytes)
# Flag bits with which zipfile's own open decides: encrypted (0), compressed
# patched data (5), strong encryption (6).
_OWN_OPEN_FLAGS = 0x1 | 0x20 | 0x40
# The methods zipfile reads.
_READABLE = frozenset(
    {zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA}
)
_UTF8_FLAG = 0x800
_LONGEST_COMMENT = 0xFFFF
_UTF8_HIGH_BYTE = 0x08  # bit 11 of the little-endian flags, in their second byte


def open_zip(stream: IO[bytes]) -> zipfile.ZipFile:
    """The zip in the seekable `stream`, listed; names flagged UTF-8 that are not are kept as bytes.

    Raises:
        zipfile.BadZipFile, OSError, ValueError, ...: as zipfile.ZipFile does.
    """
    try:
        return zipfile.ZipFile(stream)
    except UnicodeDecodeError:
        pass
    view = _Patched(stream)
    cleared = _clear_bad_central_flags(view)
    archive = zipfile.ZipFile(view)
    infos = archive.infolist()
    for index in cleared:
        # Note: zipfile decodes the local header's name by the local flag,
        # and refuses the member if it differs from the central one.
        if index < len(infos):
            _clear_local_flag(view, infos[index].header_offset)
    return archive


def member_head(stream: IO[bytes], info: zipfile.ZipInfo, n: int) -> bytes | None:
    """The first `n` bytes of a member, as zipfile's `open(info).read(n)` gives them; or None.

    Read from `stream` (the zip's own, `ZipFile.fp`: zipfile seeks before
    each of its reads) by zipfile's own member reader, once the local header
    is checked here (see `_at_data`): what it gives or raises is zipfile's.
    None when the header is not one this module checks: zipfile's open then
    decides, and says why.

    Note: zipfile's open builds a shared file, a lock and a header check per
    member: some 10 µs, a third of the walk's time on a zip of many small
    members (a phone extraction's).
    """
    if not _at_data(stream, info):
        return None
    with zipfile.ZipExtFile(stream, "r", info) as member:
        return member.read(n)


def open_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> IO[bytes]:
    """`archive.open(info)`: zipfile's member reader, its local header checked here where it can.

    The content and the errors are zipfile's (the reader is its own); a
    member whose local header `_at_data` does not take is opened by
    zipfile, which says why.
    """
    stream = archive.fp
    if stream is not None and _at_data(stream, info):
        return cast(IO[bytes], zipfile.ZipExtFile(stream, "r", info))
    return archive.open(info)


class Listed(NamedTuple):
    """What reading a member needs of its central directory entry (`listed_fields`).

    It travels in the member's locator, so that a hashing worker reads the
    member without listing the zip itself: a zip of 1,000,000 members took
    each process some 13 s and 580 MB to list.
    """

    header_offset: int
    compress_type: int
    flag_bits: int
    compress_size: int
    file_size: int
    CRC: int  # noqa: N815 (zipfile's name)
    orig_filename: str
    # Where the member's data must end (the next entry's start), as zipfile
    # 3.12 and later note it to refuse overlapping entries; None before.
    end_offset: int | None = None

    @property
    def filename(self) -> str:
        """The name as zipfile gives it (cut at a NUL), for its CRC error message."""
        return self.orig_filename.split("\0", 1)[0]


def listed_fields(info: zipfile.ZipInfo) -> tuple[int, int, int, int, int, int, str, int | None]:
    """The fields of `info` a worker needs to read the member (see Listed), as a plain tuple."""
    return (
        info.header_offset,
        info.compress_type,
        info.flag_bits,
        info.compress_size,
        info.file_size,
        info.CRC,
        info.orig_filename,
        _end_offset(info),
    )


def _end_offset(info: zipfile.ZipInfo | Listed) -> int | None:
    if isinstance(info, Listed):
        return info.end_offset
    end = getattr(info, "_end_offset", None)
    return end if isinstance(end, int) else None


def open_listed(stream: IO[bytes], fields: tuple[object, ...]) -> IO[bytes] | None:
    """The member `fields` (listed_fields) describes, read from the zip `stream` unlisted.

    Read by zipfile's own member reader. None when `_at_data` does not take
    its local header: the caller then lists the zip and opens the member
    with zipfile, which decides.
    """
    info = Listed(*fields)  # type: ignore[arg-type]
    if _at_data(stream, info):
        # Note: the reader asks of its ZipInfo only what Listed gives.
        member = zipfile.ZipExtFile(stream, "r", cast(zipfile.ZipInfo, info))
        return cast(IO[bytes], member)
    return None


def _at_data(stream: IO[bytes], info: zipfile.ZipInfo | Listed) -> bool:
    """Whether zipfile's open would take the member's local header; if so, `stream` is at its data.

    Taken only when certain: a method zipfile reads, no encryption or
    patch flag, a whole local header with its signature, and a name of the
    very bytes the central entry gives, read the same way (the same UTF-8
    flag, or ASCII). Note: zipfile compares the names as decoded, each by
    its own flag, and a listing that needed zips.open_zip's patched view
    decodes both otherwise than the bytes say: whatever is not certain is
    left to zipfile's own open, on the listing it made.
    """
    if info.compress_type not in _READABLE or info.flag_bits & _OWN_OPEN_FLAGS:
        return False
    utf8 = bool(info.flag_bits & _UTF8_FLAG)
    try:
        central = info.orig_filename.encode("utf-8" if utf8 else "cp437")
    except UnicodeEncodeError:
        return False
    stream.seek(info.header_offset)
    header = stream.read(_LOCAL.size)
    if len(header) != _LOCAL.size:
        return False
    fields = _LOCAL.unpack(header)
    if fields[0] != _LOCAL_SIGNATURE or fields[10] != len(central):
        return False
    if stream.read(fields[10]) != central:
        return False
    if bool(fields[3] & _UTF8_FLAG) != utf8 and not central.isascii():
        return False
    if fields[11]:
        stream.seek(fields[11], io.SEEK_CUR)
    end = _end_offset(info)
    if end is not None and stream.tell() + info.compress_size > end:
        return False  # overlapping entries, which zipfile's open refuses (3.12 and later)
    return True


def central_directory_at(tail: bytes, size: int) -> int | None:
    """Where the central directory of a zip that ends a file starts, or None.

    `tail` is the file's last bytes, `size` its size. The end record is
    found as zipfile finds it, and taken only if it ends the file exactly
    (its comment included), is of a single-disk zip, and counts entries a
    directory of its size can hold before it. Only the caller can check the
    directory's own signature, where it starts.
    """
    at = _end_record(tail)
    if at is None:
        return None
    _, disk, cd_disk, here, entries, cd_size, cd_offset, comment = _END.unpack_from(tail, at)
    if at + _END.size + comment != len(tail) or disk or cd_disk or here != entries:
        return None
    where = size - len(tail) + at
    record = _zip64_record(tail, at)
    if record is not None:
        disk, cd_disk, here, entries, cd_size, cd_offset = _END64.unpack_from(tail, record)[4:]
        if disk or cd_disk or here != entries:
            return None
        where -= _END64_LOCATOR.size + _END64.size
    elif 0xFFFF in (here, entries) or 0xFFFFFFFF in (cd_size, cd_offset):
        return None  # overflow markers with no zip64 record behind them
    if not entries or cd_size < entries * _CENTRAL.size or cd_size > where:
        return None
    if cd_offset > where - cd_size:  # the zip would start before the file
        return None
    return where - int(cd_size)


def _end_record(tail: bytes) -> int | None:
    """Where in `tail` (a zip's last bytes) its end record starts, found as zipfile finds it."""
    at = len(tail) - _END.size
    if not (tail[at : at + 4] == _END_SIGNATURE and tail.endswith(b"\x00\x00")):
        at = tail.rfind(_END_SIGNATURE)  # the record is followed by a comment
    return None if at < 0 or len(tail) - at < _END.size else at


def _zip64_record(tail: bytes, at: int) -> int | None:
    """Where in `tail` the zip64 end record behind the end record at `at` starts, if any.

    Note: looked for behind every end record, as zipfile does, not only one
    with overflow markers: past 2 GiB, zipfile writes a zip64 record while
    the plain one holds real values.
    """
    locator = at - _END64_LOCATOR.size
    record = locator - _END64.size
    if record < 0 or tail[locator : locator + 4] != b"PK\x06\x07":
        return None
    return record if tail[record : record + 4] == b"PK\x06\x06" else None


def directory_starts_at(stream: IO[bytes], at: int) -> bool:
    """Whether a central directory entry starts at `at` of `stream`."""
    stream.seek(at)
    return stream.read(len(_CENTRAL_SIGNATURE)) == _CENTRAL_SIGNATURE


def _is_utf8(name: bytes) -> bool:
    try:
        name.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _central_directory(view: _Patched) -> tuple[int, int]:
    """(offset, size) of the central directory, found from the end record as zipfile finds it."""
    size = view.seek(0, io.SEEK_END)
    start = max(0, size - _END.size - _LONGEST_COMMENT - _END64_LOCATOR.size - _END64.size)
    tail = view.read_at(start, size - start)
    at = _end_record(tail)
    if at is None:
        raise zipfile.BadZipFile("no end of central directory record")
    where, cd_size = start + at, _END.unpack_from(tail, at)[5]
    record = _zip64_record(tail, at)
    if record is not None:
        where, cd_size = start + record, _END64.unpack_from(tail, record)[8]
    if cd_size > where:
        raise zipfile.BadZipFile("central directory larger than the zip")
    # Note: the directory ends where the end record starts, whatever data
    # the zip follows (zipfile's "concat"), as zipfile reads it.
    return where - cd_size, cd_size


def _clear_bad_central_flags(view: _Patched) -> list[int]:
    """Clear the UTF-8 flag of the central entries whose names are not UTF-8; their indexes."""
    offset, size = _central_directory(view)
    directory = view.read_at(offset, size)
    cleared = []
    at = index = 0
    while at + _CENTRAL.size <= len(directory):
        header = _CENTRAL.unpack_from(directory, at)
        if header[0] != _CENTRAL_SIGNATURE:
            break
        name_length, extra_length, comment_length = header[12:15]
        name = directory[at + _CENTRAL.size : at + _CENTRAL.size + name_length]
        if directory[at + 9] & _UTF8_HIGH_BYTE and not _is_utf8(name):
            view.clear(offset + at + 9, _UTF8_HIGH_BYTE)
            cleared.append(index)
        at += _CENTRAL.size + name_length + extra_length + comment_length
        index += 1
    return cleared


def _clear_local_flag(view: _Patched, offset: int) -> None:
    header = view.read_at(offset, 30)
    if header[:4] == _LOCAL_SIGNATURE and len(header) == 30 and header[7] & _UTF8_HIGH_BYTE:
        view.clear(offset + 7, _UTF8_HIGH_BYTE)


class _Patched(io.RawIOBase):
    """A seekable stream read with some bits cleared at given offsets (never written back)."""

    def __init__(self, parent: IO[bytes]):
        super().__init__()
        self.parent = parent
        self.pos = 0
        self.offsets: list[int] = []  # sorted
        self.masks: dict[int, int] = {}

    def clear(self, offset: int, bits: int) -> None:
        if offset not in self.masks:
            bisect.insort(self.offsets, offset)
        self.masks[offset] = self.masks.get(offset, 0) | bits

    def read_at(self, offset: int, size: int) -> bytes:
        """The parent's bytes at `offset` (up to `size` of them), as they are."""
        self.parent.seek(offset)
        return self.parent.read(size)

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, pos: int, whence: int = 0) -> int:
        if whence == io.SEEK_END:
            pos += self.parent.seek(0, io.SEEK_END)
        elif whence == io.SEEK_CUR:
            pos += self.pos
        self.pos = max(0, pos)
        return self.pos

    def tell(self) -> int:
        return self.pos

    def readinto(self, buffer: Any) -> int:
        self.parent.seek(self.pos)
        data = self.parent.read(len(buffer))
        n = len(data)
        buffer[:n] = data
        first = bisect.bisect_left(self.offsets, self.pos)
        for offset in self.offsets[first : bisect.bisect_left(self.offsets, self.pos + n)]:
            buffer[offset - self.pos] &= ~self.masks[offset] & 0xFF
        self.pos += n
        return n
