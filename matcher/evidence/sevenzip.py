"""7z archives through py7zr (the `archives` extra): the member table and a pull decoder.

py7zr parses the archive's header (member names, sizes, CRCs, which
"folder" (compressed block) holds each member). Reading is ours: its public
extraction API pushes whole decompression chunks of up to 128 MB into a
writer and names members only by file name (duplicates are renamed), while
the hashing engine pulls at most one buffer at a time and finds a member
again by its index. So `SevenZipArchive` drives each folder's decompressor
itself (`Folder.get_decompressor`, the object py7zr's own extraction uses),
asks it for at most the caller's buffer size, and hands it packed input only
when it has run dry: memory stays at about one packed block plus one output
buffer, whatever the member's size or the block's ratio.

A solid folder is one compressed stream holding many members back to back.
Reading member k means decompressing the folder from its start up to k; the
decoder only moves forward, so members read in order (the walk's order,
which is the folder's) cost one pass per folder, and a read behind the
decoder restarts the folder.
"""

from __future__ import annotations

import dataclasses
import io
import stat
import zlib
from typing import IO
from typing import Any

from matcher.evidence.reasons import OwnMessage
from matcher.evidence.reasons import describe

INSTALL = "pip install 'matcher[archives]'"
MAGIC = b"7z\xbc\xaf\x27\x1c"
# The 7z coder id of 7zAES (AES-256, SHA-256 key derivation): an encrypted folder.
_AES = b"\x06\xf1\x07\x01"
# Seconds between 1601-01-01 (Windows FILETIME) and 1970-01-01, in 100 ns units.
_FILETIME_EPOCH = 116_444_736_000_000_000
_FEED = 1 << 18  # packed bytes handed to a decompressor at a time
_SKIP = 1 << 20  # output bytes decompressed and dropped at a time when seeking forward


class SevenZipError(ValueError, OwnMessage):
    """A 7z archive or member that cannot be read (damaged, truncated, unsupported)."""


class HeaderEncrypted(SevenZipError):
    """The archive's header is encrypted: its member list needs the password."""


class UnsupportedMethod(SevenZipError):
    """A member's data is compressed (or filtered) by a method py7zr cannot decode."""


class SevenZipUnavailable(RuntimeError):
    """py7zr (the `archives` extra) is not installed."""


def available() -> bool:
    """Whether py7zr can be imported."""
    return _py7zr() is not None


def _py7zr() -> Any:
    try:
        import py7zr
    except ImportError:
        return None
    return py7zr


@dataclasses.dataclass(frozen=True)
class Member:
    """One entry of the archive's header, in header order."""

    index: int
    name: str
    size: int
    mtime_ns: int
    folder: int | None  # None for an empty stream (no data)
    start: int  # offset of its bytes in the folder's decompressed stream
    crc: int | None
    fmt: int | None  # the POSIX file type bits, when the archive stores them
    is_dir: bool
    is_link: bool


@dataclasses.dataclass(frozen=True)
class Folder:
    """A compressed block: where its packed bytes are and what it expands to."""

    coder: Any  # py7zr's Folder
    pack_start: int
    pack_size: int
    unpack_size: int
    encrypted: bool


class _Feed:
    """The packed bytes of one folder, handed out only when the decoder is hungry.

    Note that an LZMA decompressor asked for at most N output bytes keeps the
    input it has not used; fed a block at every call, it would end up holding
    the whole packed folder. It is fed again only after it made less than it
    was asked for, that is after it ran out of input.
    """

    def __init__(self, stream: IO[bytes], start: int, size: int):
        self.stream = stream
        self.pos = start
        self.left = size
        self.hungry = True

    def read(self, n: int = -1) -> bytes:
        if not self.hungry or self.left <= 0:
            return b""
        self.hungry = False
        want = min(self.left, _FEED if n < 0 else min(n, _FEED))
        self.stream.seek(self.pos)
        data = self.stream.read(want)
        if not data:
            self.left = 0
            return b""
        self.pos += len(data)
        self.left -= len(data)
        return data


class SevenZipArchive:
    """An open 7z archive: its members, and one folder decoder that moves forward only.

    Args:
        stream: the archive, seekable, positioned at its start.

    Raises:
        SevenZipUnavailable: py7zr is not installed.
        HeaderEncrypted: the member list is encrypted.
        SevenZipError: the archive cannot be listed.
    """

    def __init__(self, stream: IO[bytes]):
        py7zr = _py7zr()
        if py7zr is None:
            raise SevenZipUnavailable(f"7z needs py7zr: {INSTALL}")
        self.stream = stream
        try:
            self._archive: Any = py7zr.SevenZipFile(stream)
        except py7zr.exceptions.PasswordRequired as exc:
            raise HeaderEncrypted("the 7z header is encrypted") from exc
        except MemoryError:
            raise
        except Exception as exc:
            # Note that a damaged header can make py7zr raise almost anything
            # (struct.error, IndexError, KeyError...): all mean "cannot list".
            raise SevenZipError(f"7z header unreadable: {describe(exc)}") from exc
        try:
            self.folders, self.members = self._table()
        except Exception as exc:
            raise SevenZipError(f"7z header unreadable: {describe(exc)}") from exc
        self._current: int | None = None
        self._decoder: Any = None
        self._feed: _Feed | None = None
        self._pos = 0  # position of the decoder in the current folder's output

    def __enter__(self) -> SevenZipArchive:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Drop py7zr's state (the stream is the caller's to close)."""
        self._decoder = None
        archive, self._archive = self._archive, None
        if archive is not None:
            archive.close()

    def _table(self) -> tuple[list[Folder], list[Member]]:
        archive = self._archive
        header = archive.header
        main = getattr(header, "main_streams", None)
        folders: list[Folder] = []
        ids: dict[int, int] = {}
        if main is not None:
            packinfo = main.packinfo
            # Note that PackPos counts from the end of the 32-byte signature header.
            base = archive.afterheader + (packinfo.packpos or 0)
            stream_index = 0
            for number, coder in enumerate(main.unpackinfo.folders):
                inputs = sum(c.get("numinstreams", 1) for c in coder.coders)
                packed = max(1, inputs - len(coder.bindpairs or ()))
                folders.append(
                    Folder(
                        coder,
                        base + packinfo.packpositions[stream_index],
                        sum(packinfo.packsizes[stream_index : stream_index + packed]),
                        coder.get_unpack_size(),
                        any(c["method"] == _AES for c in coder.coders),
                    )
                )
                ids[id(coder)] = number
                stream_index += packed
        members: list[Member] = []
        offsets = [0] * len(folders)
        for index, entry in enumerate(archive.files):
            folder = None if entry.folder is None else ids[id(entry.folder)]
            size = 0 if entry.emptystream else int(entry.uncompressed or 0)
            start = 0
            if folder is not None:
                start = offsets[folder]
                offsets[folder] += size
            written = entry.lastwritetime
            members.append(
                Member(
                    index=index,
                    name=str(entry.filename),
                    size=size,
                    mtime_ns=max(0, (int(written) - _FILETIME_EPOCH) * 100) if written else 0,
                    folder=folder,
                    start=start,
                    crc=entry.crc32,
                    fmt=entry.st_fmt,
                    is_dir=bool(entry.is_directory),
                    is_link=bool(entry.is_symlink or entry.is_junction),
                )
            )
        for number, folder_info in enumerate(folders):
            if offsets[number] > folder_info.unpack_size:
                raise SevenZipError(
                    f"folder {number}: members declare {offsets[number]} bytes, "
                    f"the folder expands to {folder_info.unpack_size}"
                )
        return folders, members

    def special(self, member: Member) -> str | None:
        """Why a member is not a regular file ("symlink", "socket", "fifo", "device"), or None."""
        if member.is_link or (member.fmt is not None and stat.S_ISLNK(member.fmt)):
            return "symlink"
        if member.fmt is None or member.fmt == 0 or stat.S_ISREG(member.fmt):
            return None
        if stat.S_ISDIR(member.fmt):
            return None  # a folder entry listed as a member holds data: read it (see archive)
        if stat.S_ISSOCK(member.fmt):
            return "socket"
        if stat.S_ISFIFO(member.fmt):
            return "fifo"
        return "device"

    def read(self, index: int, pos: int, n: int) -> bytes:
        """Up to `n` bytes (at least one, unless at the end) of member `index` from `pos`.

        Raises:
            SevenZipError: the member's data cannot be decompressed.
        """
        member = self.members[index]
        n = min(n, member.size - pos)
        if n <= 0 or member.folder is None:
            return b""
        try:
            self._seek(member.folder, member.start + pos)
            return self._decode(n)
        except SevenZipError:
            self._current = None
            raise
        except MemoryError:
            raise
        except Exception as exc:
            # Note that py7zr's decompressors raise their own and their
            # libraries' errors (EOFError, lzma.LZMAError, CrcError...).
            self._current = None
            if type(exc).__name__ == "UnsupportedCompressionMethodError":
                # Note: no damage (it read as an EIO, an io-error): a method
                # (BCJ2, ARM64, ...) py7zr has no decoder for.
                raise UnsupportedMethod(
                    f"compressed by a method py7zr cannot decode: {describe(exc)}"
                ) from exc
            raise SevenZipError(f"7z data unreadable: {describe(exc)}") from exc

    def _seek(self, folder: int, offset: int) -> None:
        if self._current != folder or self._pos > offset:
            info = self.folders[folder]
            self._feed = _Feed(self.stream, info.pack_start, info.pack_size)
            self._decoder = info.coder.get_decompressor(info.pack_size, reset=True)
            self._current, self._pos = folder, 0
        while self._pos < offset:
            self._decode(min(_SKIP, offset - self._pos))

    def _decode(self, want: int) -> bytes:
        feed = self._feed
        assert feed is not None
        stalls = 0
        while True:
            out = self._decoder.decompress(feed, want)
            if out:
                if len(out) < want:
                    feed.hungry = True
                self._pos += len(out)
                return bytes(out)
            if feed.left <= 0:
                stalls += 1
                if stalls > 2:
                    raise SevenZipError("the packed data ends before the declared size")
            feed.hungry = True


class MemberStream(io.RawIOBase):
    """One member as a read-only, seekable stream; checks its CRC when read straight through.

    A seek backwards within a solid folder restarts its decompression.
    """

    def __init__(self, archive: SevenZipArchive, index: int):
        super().__init__()
        self.archive = archive
        self.member = archive.members[index]
        self.pos = 0
        self.crc: int | None = 0  # None once the member is not read in order

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, pos: int, whence: int = 0) -> int:
        base = {0: 0, 1: self.pos, 2: self.member.size}[whence]
        target = max(0, base + pos)
        if target != self.pos:
            self.crc = None
        self.pos = target
        return self.pos

    def tell(self) -> int:
        return self.pos

    def readinto(self, buffer: Any) -> int:
        data = self.archive.read(self.member.index, self.pos, len(buffer))
        n = len(data)
        if not n:
            return 0
        buffer[:n] = data
        self.pos += n
        if self.crc is not None:
            self.crc = zlib.crc32(data, self.crc)
            if self.pos == self.member.size and self.member.crc is not None:
                if self.crc != self.member.crc:
                    raise SevenZipError(
                        f"CRC mismatch: stored {self.member.crc:08x}, read {self.crc:08x}"
                    )
        return n
