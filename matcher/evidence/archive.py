"""Archives (zip, tar, tar.gz/bz2/xz, gz/bz2/xz, 7z): members as files, nested, with bomb limits.

An archive is recognised by its content, never by its name: its first
bytes (magic), the checksum of a tar header without one (a V7 tar), or a
zip's end record ending the file (a zip after other data: a
self-extractor); inside an archive, by its first bytes only. Its members
become `FileTask`s named `CONTAINER!member/name` (nested: `a.zip!b.tar!c`),
hashed by any worker through `read_chunks`, which reopens the chain from the
outermost file (a plain file, or a file inside a disk image). Nothing is
ever extracted to disk.

Limits stop archive bombs; a member over one is an `EntryOutcome` skipped
with its reason, never reported as clean or unknown:
  - depth: an archive nested deeper than `max_depth` is not opened (`too-deep`);
  - members: past `max_members` in one archive, the rest is one skipped entry
    `ARCHIVE!` (`too-many-members`, the detail says how many);
  - total expanded bytes per outermost archive, all levels (`expanded-too-large`);
  - ratio: a member (or a compressed stream) that expands more than
    `max_ratio` times its packed size, once past `ratio_floor` bytes
    (`ratio-too-high`).
Declared sizes can lie: a reader never returns more than the listed size
plus one byte, so a lying member ends as an error, not as a bomb.
Encrypted members are skipped (`encrypted`); symlink members, devices and
FIFOs are recorded and never followed. A tar hard-link member holds no data
of its own: it names a member before it, and is read as that member's
content under its own name (as a hard link on disk is a file); one whose
target no member before it holds is skipped (`symlink`, the detail says so).

7z goes through py7zr (the `archives` extra, module `sevenzip`). Without
it, a 7z archive is still hashed as a file, and its `ARCHIVE!` entry is
skipped with a detail naming the extra. In a solid 7z block, reading a
member means expanding the block up to its end: the ratio and total limits
count that, so every member after one over a limit in the same block is
skipped too.
"""

from __future__ import annotations

import _compression
import bz2
import calendar
import contextlib
import dataclasses
import errno as errno_mod
import io
import lzma
import os
import stat
import tarfile
import threading
import zipfile
import zlib
from collections.abc import Callable
from collections.abc import Iterator
from collections.abc import Mapping
from typing import IO
from typing import Any
from typing import cast

from matcher.errors import refuse_own_limit
from matcher.evidence import image as image_mod
from matcher.evidence import sevenzip
from matcher.evidence import zips
from matcher.evidence.folder import open_listed
from matcher.evidence.limits import ArchiveLimits
from matcher.evidence.reasons import OwnMessage
from matcher.evidence.reasons import describe
from matcher.evidence.unique import UniquePaths
from matcher.models import EntryOutcome
from matcher.models import Failure
from matcher.models import FileTask
from matcher.models import Skip

HEAD = 4096
_FORMAT_BYTES = 512  # what archive_format needs of a head (a tar header)
_COMPRESSED = {"gz", "bz2", "xz"}
# What a damaged or unsupported archive raises; zipfile reports an encrypted
# member as RuntimeError and an unknown compression method as NotImplementedError.
_ERRORS = (
    zipfile.BadZipFile,
    zipfile.LargeZipFile,
    tarfile.TarError,
    OSError,
    EOFError,
    zlib.error,
    lzma.LZMAError,
    ValueError,
    NotImplementedError,
    RuntimeError,
)


# Zip compression methods that APPNOTE defines and Python's zipfile cannot
# decode (it reads stored, deflate, bzip2 and LZMA): a member in one is
# skipped as `unsupported`.
_ZIP_METHOD_NAMES = {
    1: "Shrink", 6: "Implode", 9: "Deflate64", 10: "PKWARE DCL Implode", 18: "IBM TERSE",
    19: "IBM LZ77", 93: "Zstandard", 94: "MP3", 95: "XZ", 96: "JPEG", 97: "WavPack",
    98: "PPMd",
}  # fmt: skip


def archive_format(head: bytes) -> str | None:
    """ "zip", "tar", "gz", "bz2", "xz", "7z" by content, or None."""
    if head.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        return "zip"
    if head.startswith(sevenzip.MAGIC):
        return "7z"
    if head.startswith(b"\x1f\x8b"):
        return "gz"
    if head.startswith(b"BZh") and len(head) > 3 and head[3:4].isdigit():
        return "bz2"
    if head.startswith(b"\xfd7zXZ\x00"):
        return "xz"
    if len(head) >= 262 and head[257:262] == b"ustar":
        return "tar"
    if _v7_tar_header(head):
        return "tar"
    return None


_TAR_NUMBERS = ((100, 108), (108, 116), (116, 124), (124, 136), (136, 148))  # mode ... mtime
_V7_TYPES = b"\x0001234567"
_OCTAL_DIGITS = frozenset(b"01234567")


def _v7_tar_header(head: bytes) -> bool:
    """Whether `head` starts with a tar header without magic (V7), known as tar knows one.

    Note: it runs on every file's head, so it gives up at the first field
    that is not as tar writes it: a name ended by a NUL, numbers in octal
    digits ended by a NUL or a space, a V7 type, and a checksum that
    matches (unsigned or signed, both of which tar accepts).
    """
    if len(head) < 512 or head[156] not in _V7_TYPES or not head[0] or 0 not in head[1:100]:
        return False
    checksum = _tar_number(head[148:156])
    if checksum is None or any(_tar_number(head[a:b]) is None for a, b in _TAR_NUMBERS):
        return False
    block = head[:148] + b" " * 8 + head[156:512]
    unsigned = sum(block)
    return checksum in (unsigned, unsigned - 256 * sum(byte > 127 for byte in block))


def _tar_number(field: bytes) -> int | None:
    """A tar header's octal number, read as tarfile reads it (up to a NUL, spaces around)."""
    digits = field.split(b"\x00", 1)[0].strip(b" ")
    if not digits or not _OCTAL_DIGITS.issuperset(digits):
        return None
    return int(digits, 8)


# -- opening a chain ------------------------------------------------------------


class _Window(io.RawIOBase):
    """A read-only, seekable slice [offset, offset + size) of a seekable stream."""

    def __init__(self, parent: IO[bytes], offset: int, size: int):
        super().__init__()
        self.parent = parent
        self.offset = offset
        self.size = size
        self.pos = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, pos: int, whence: int = 0) -> int:
        base = {0: 0, 1: self.pos, 2: self.size}[whence]
        self.pos = max(0, base + pos)
        return self.pos

    def tell(self) -> int:
        return self.pos

    def readinto(self, buffer: Any) -> int:
        want = min(len(buffer), self.size - self.pos)
        if want <= 0:
            return 0
        self.parent.seek(self.offset + self.pos)
        data = self.parent.read(want)
        buffer[: len(data)] = data
        self.pos += len(data)
        return len(data)


class _TskStream(io.RawIOBase):
    """A file inside a disk image as a seekable stream."""

    def __init__(self, locator: tuple[object, ...], size: int):
        super().__init__()
        self.handle = image_mod.open_stream(locator)
        self.size = size
        self.pos = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, pos: int, whence: int = 0) -> int:
        base = {0: 0, 1: self.pos, 2: self.size}[whence]
        self.pos = max(0, base + pos)
        return self.pos

    def tell(self) -> int:
        return self.pos

    def readinto(self, buffer: Any) -> int:
        want = min(len(buffer), self.size - self.pos)
        if want <= 0:
            return 0
        data = image_mod.read_range(self.handle, self.pos, want)
        buffer[: len(data)] = data
        self.pos += len(data)
        return len(data)


class _TarCutShort(OwnMessage, ValueError):
    """A tar's listing stopped before its stream's end: past the ratio limit, or past damage.

    The members listed before it are given out (unchecked, as before a bomb's
    limit), then the archive's error, with this message.
    """


# Zero blocks in a row after which a tar's stream is read to its end in large chunks.
_ZERO_RUN_BLOCKS = 2048  # 1 MiB
_ZEROS = bytes(1 << 20)


class _BlockWatch:
    """A tar stream, watched for header blocks tarfile skipped as not headers (damage).

    Read with `ignore_zeros`, tarfile goes past the zero blocks that end a
    tar (so the members of tars joined end to end are all listed, as `tar
    -i` lists them), and also past any block that is not a valid header,
    without a word. Every block read in one `next()` call below the header
    of the member it returns, or in the call that finds no member, was
    skipped: a zero block is padding, any other is damage (`first_damage`,
    its offset; `reset()` before each call). Reading past `limit` bytes (a
    compressed stream's bomb limit) is an error, as for a member.
    """

    def __init__(self, stream: IO[bytes], limit: int | None):
        self._stream = stream
        self._limit = limit
        self._zero_blocks = 0  # zero blocks read in a row
        self.first_damage: int | None = None

    def reset(self) -> None:
        self.first_damage = None

    def read(self, size: int = -1) -> bytes:
        at = self._stream.tell()
        self._check_limit(at)
        data = self._stream.read(size)
        if size != tarfile.BLOCKSIZE:
            return data
        if data != _ZEROS[: len(data)]:
            self._zero_blocks = 0
            if self.first_damage is None:
                self.first_damage = at
        elif data:
            self._zero_blocks += 1
            if self._zero_blocks >= _ZERO_RUN_BLOCKS:
                return self._rest_is_zeros()
        return data

    def _rest_is_zeros(self) -> bytes:
        """After a long run of zeros: the end of the stream (b""), read in large chunks.

        Note: tarfile skips zeros one block at a time, each one an exception
        it catches: a bomb of zeros after a small tar took 12 times as long
        to reach its limit. Tars joined end to end are padded with a few
        blocks; data after a megabyte of zeros is the archive's error.
        """
        while chunk := self._stream.read(len(_ZEROS)):
            self._check_limit(self._stream.tell())
            if chunk != _ZEROS[: len(chunk)]:  # memcmp: bytes.strip took 1.4 ms a megabyte
                raise _TarCutShort(
                    "data follows a megabyte of zeros after the tar's members: it is not listed"
                )
        return b""

    def _check_limit(self, at: int) -> None:
        if self._limit is not None and at > self._limit:
            raise _TarCutShort(
                "the compressed stream runs on past the tar's last member, beyond the ratio "
                "limit: the rest is not read"
            )

    def seek(self, pos: int, whence: int = 0) -> int:
        return self._stream.seek(pos, whence)

    def tell(self) -> int:
        return self._stream.tell()


# What a member's read says when its archive file is not as listed (ESTALE: see
# hashing.ChunkReader): before it is read, and after.
_CHANGED_AFTER_LISTING = "the archive changed after it was listed"
_CHANGED_WHILE_READ = "the archive changed while the member was read"


def file_base(path: bytes, st: os.stat_result) -> tuple[object, ...]:
    """The base locator of an archive file: its path and identity, as `st` (listed) gives them."""
    return ("file", path, st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def open_base(base: tuple[object, ...]) -> IO[bytes]:
    """The outermost archive file: a `file_base` or ("image", ..., size) locator.

    Raises:
        OSError: ESTALE when the file is not the one listed, or its size,
            mtime or ctime moved since.
    """
    if base[0] == "file":
        path, dev, ino = base[1:4]
        assert isinstance(path, bytes) and isinstance(dev, int) and isinstance(ino, int)
        stream = os.fdopen(open_listed(path, dev, ino), "rb")
        try:
            _check_unchanged(stream, base, _CHANGED_AFTER_LISTING)
        except BaseException:
            stream.close()
            raise
        return stream
    size = base[-1]
    assert isinstance(size, int)
    return io.BufferedReader(_TskStream(base[:-1], size), buffer_size=1 << 16)


def _check_unchanged(outer: IO[bytes], base: tuple[object, ...], moved: str) -> None:
    """Raise OSError ESTALE (`moved`) unless the open file `base` names is still as listed.

    Note: an archive rewritten in place keeps its inode: a member read from
    it then was bytes the listing never saw (a zip with its members swapped
    gave one member's digest under the other's name, its CRC checked against
    the new directory). The outermost file's size, mtime and ctime cover
    every archive nested in it, whose bytes it holds. Only a plain file is
    checked: a disk image is evidence that nothing writes to.
    """
    if base[0] != "file":
        return
    st = os.fstat(outer.fileno())
    if (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns) != base[2:]:
        raise OSError(errno_mod.ESTALE, moved)


class _Junk:
    """Whether bytes after a compressed stream's last member start no member of its format."""

    seen = False


class _NotAMember(ValueError, OwnMessage):
    """What follows a compressed member starts no member of the format (junk after its end)."""


_MAGIC = {"gz": b"\x1f\x8b", "bz2": b"BZh", "xz": b"\xfd7zXZ\x00"}


class _Member:
    """One member (stream) of a gzip, bzip2 or xz file, for _compression.DecompressReader.

    The reader makes a new one for what follows each member's end. Zero bytes
    there are padding (xz's stream padding; gzip and bzip2 skip them too), and
    end the file if nothing else follows. Bytes that start no member of the
    format are junk after the archive's end: `junk.seen` is set and the reader
    ends there (what came before is whole: each member's check matched), as
    `gzip -d` ends ("trailing garbage ignored").

    Note: read by GzipFile and LZMAFile, xz stream padding was an EOFError
    ("ended before the end-of-stream marker") and a gzip file with bytes after
    its member a BadGzipFile: the archive an error, no member of it read.
    """

    def __init__(self, kind: str, junk: _Junk):
        self._kind = kind
        self._junk = junk
        self._inner: Any = None
        self._head = b""  # a member's first bytes, until its magic is whole
        self._tail = b""  # zlib's unconsumed input
        self._padding = False  # nothing but zeros came

    def _start(self, data: bytes) -> bytes:
        """The member's input once its magic is checked; b"" while more is needed."""
        data = (self._head + data).lstrip(b"\0")
        magic = _MAGIC[self._kind]
        if len(data) < len(magic) and magic.startswith(data):
            self._head, self._padding = data, not data
            return b""
        if not data.startswith(magic):
            self._junk.seen = True
            raise _NotAMember(f"bytes after the last {self._kind} member start no member")
        self._head, self._padding = b"", False
        if self._kind == "gz":
            self._inner = zlib.decompressobj(wbits=31)
        elif self._kind == "bz2":
            self._inner = bz2.BZ2Decompressor()
        else:
            self._inner = lzma.LZMADecompressor(format=lzma.FORMAT_XZ)
        return data

    def decompress(self, data: bytes, max_length: int = -1) -> bytes:
        if self._inner is None:
            data = self._start(data)
            if self._inner is None:
                return b""
        if self._kind == "gz":
            out = self._inner.decompress(self._tail + data, max(max_length, 0))
            self._tail = self._inner.unconsumed_tail
            return bytes(out)
        return bytes(self._inner.decompress(data, max_length))

    @property
    def eof(self) -> bool:
        if self._inner is None:
            return self._padding  # zeros only: the next block starts afresh, or the file ends
        return bool(self._inner.eof)

    @property
    def needs_input(self) -> bool:
        if self._inner is None:
            return True
        if self._kind == "gz":
            return not self._tail and not self._inner.eof
        return bool(self._inner.needs_input)

    @property
    def unused_data(self) -> bytes:
        return b"" if self._inner is None else bytes(self._inner.unused_data)


class _Decompressed(io.BufferedReader):
    """A decompressed gzip, bzip2 or xz file (every member); `junk` says what followed."""

    junk: _Junk


def _decompressed(stream: IO[bytes], compression: str) -> IO[bytes]:
    if compression not in _MAGIC:
        return stream
    junk = _Junk()
    raw = _compression.DecompressReader(
        stream,
        _Member,  # type: ignore[arg-type]  # a decompressor as the reader asks one
        trailing_error=_NotAMember,
        kind=compression,
        junk=junk,
    )
    reader = _Decompressed(raw)
    reader.junk = junk
    return reader


def _junk_after(stream: IO[bytes], compression: str) -> str | None:
    """What an archive's error says of junk after its last member, read to its end; else None."""
    junk = getattr(stream, "junk", None)
    if junk is None or not junk.seen:
        return None
    return (
        f"bytes after its last {compression} member start no {compression} member (junk after "
        "the archive's end, or another file appended): not read; the members before them were"
    )


def _apply(stream: IO[bytes], step: tuple[object, ...], stack: contextlib.ExitStack) -> IO[bytes]:
    """The member stream that `step` names inside the archive `stream`."""
    kind = step[0]
    if kind == "zip":
        index = step[1]
        assert isinstance(index, int)
        archive = stack.enter_context(zips.open_zip(stream))
        return archive.open(archive.infolist()[index])
    if kind == "tar":
        compression, offset, size = step[1], step[2], step[3]
        assert isinstance(compression, str) and isinstance(offset, int) and isinstance(size, int)
        return io.BufferedReader(_Window(_decompressed(stream, compression), offset, size))
    if kind == "tar-sparse":
        compression, offset = step[1], step[2]
        assert isinstance(compression, str) and isinstance(offset, int)
        return _sparse_member(stack.enter_context(_decompressed(stream, compression)), offset)
    if kind == "stream":
        compression = step[1]
        assert isinstance(compression, str)
        return _decompressed(stream, compression)
    if kind == "7z":
        index = step[1]
        assert isinstance(index, int)
        seven = stack.enter_context(sevenzip.SevenZipArchive(stream))
        return io.BufferedReader(sevenzip.MemberStream(seven, index), buffer_size=1 << 16)
    raise ValueError(f"unknown archive step {kind!r}")


def open_chain(
    base: tuple[object, ...], steps: tuple[tuple[object, ...], ...], stack: contextlib.ExitStack
) -> IO[bytes]:
    """Open the outermost file and every nested member down to the last step.

    Everything opened on the way is closed with `stack`.
    """
    return _descend(stack.enter_context(open_base(base)), steps, stack)


def _descend(
    stream: IO[bytes], steps: tuple[tuple[object, ...], ...], stack: contextlib.ExitStack
) -> IO[bytes]:
    for step in steps:
        stream = stack.enter_context(_apply(stream, step, stack))
    return stream


_local = threading.local()


def _container(
    base: tuple[object, ...], steps: tuple[tuple[object, ...], ...], last: tuple[object, ...]
) -> tuple[IO[bytes], IO[bytes]]:
    """(the member stream, the outermost file), reusing this thread's open container when it can.

    The outermost file is checked to be as listed (`open_base`), a kept-open
    one again for each member.

    Note that a compressed tar has no index: reading its members in walk
    order through one kept-open decompressor makes each worker inflate an
    archive once, instead of once per member.
    """
    key = (base, steps, last[0], last[1] if last[0] not in ("zip", "7z") else None)
    cached = getattr(_local, "container", None)
    if cached is not None and cached[0] == key:
        try:
            _check_unchanged(cached[3], base, _CHANGED_AFTER_LISTING)
        except OSError:
            close_cached()
            raise
    else:
        close_cached()
        stack = contextlib.ExitStack()
        try:
            first = stack.enter_context(open_base(base))
            outer = _descend(first, steps, stack)
            if last[0] == "zip":
                holder: Any = _LazyZip(outer, stack)
            elif last[0] == "7z":
                holder = stack.enter_context(sevenzip.SevenZipArchive(outer))
            else:
                compression = last[1]
                assert isinstance(compression, str)
                holder = stack.enter_context(_decompressed(outer, compression))
        except BaseException:
            stack.close()
            raise
        _local.container = cached = (key, holder, stack, first)
    holder, first = cached[1], cached[3]
    if last[0] == "zip":
        index = last[1]
        assert isinstance(index, int)
        if len(last) > 2:
            fields = last[2]
            assert isinstance(fields, tuple)
            member = zips.open_listed(holder.stream, fields)
            if member is not None:
                return member, first
        archive = holder.archive()
        return zips.open_member(archive, archive.infolist()[index]), first
    if last[0] == "7z":
        index = last[1]
        assert isinstance(index, int)
        # Note that the archive keeps its folder decoder between members: the
        # next member of a solid block continues where this one ends.
        return sevenzip.MemberStream(holder, index), first  # type: ignore[return-value]
    if last[0] == "tar":
        offset, size = last[2], last[3]
        assert isinstance(offset, int) and isinstance(size, int)
        return io.BufferedReader(_Window(holder, offset, size)), first
    if last[0] == "tar-sparse":
        offset = last[2]
        assert isinstance(offset, int)
        return _sparse_member(holder, offset), first
    holder.seek(0)
    return holder, first


class _LazyZip:
    """A zip kept open by a worker, listed (by zipfile) only if a member needs it.

    Members are read from their locator's fields (zips.open_listed); a zip
    is listed only for a member those cannot read, once.
    """

    def __init__(self, stream: IO[bytes], stack: contextlib.ExitStack):
        self.stream = stream
        self._stack = stack
        self._archive: zipfile.ZipFile | None = None

    def archive(self) -> zipfile.ZipFile:
        if self._archive is None:
            self._archive = self._stack.enter_context(zips.open_zip(self.stream))
        return self._archive


def close_cached() -> None:
    """Close this thread's kept-open container, if any."""
    cached = getattr(_local, "container", None)
    _local.container = None
    if cached is not None:
        cached[2].close()


# What reading a member can raise: a damaged archive's errors, and OSError (a
# change check's ESTALE among them).
_READ_ERRORS = (
    zipfile.BadZipFile,
    tarfile.TarError,
    EOFError,
    zlib.error,
    lzma.LZMAError,
    ValueError,
    RuntimeError,
    OSError,
)


def read_chunks(task: FileTask, buffer: memoryview) -> Iterator[bytes | memoryview]:
    """The content of an archive member, chunk by chunk (a hashing `ChunkReader`).

    Reads at most the listed size plus one byte: a member that expands past
    its declared size ends as a size mismatch, whatever it holds.

    Raises:
        OSError: ESTALE when the archive file is not as listed, before the
            member is read or after (its content is then no digest); EIO
            when the member cannot be read.
    """
    assert task.locator is not None
    _, base, steps = task.locator
    assert isinstance(base, tuple) and isinstance(steps, tuple)
    outer: IO[bytes] | None = None
    try:
        stream, outer = _container(base, steps[:-1], steps[-1])
        with contextlib.ExitStack() as member:
            if steps[-1][0] != "stream":
                member.enter_context(stream)
            left = task.size + 1
            while left > 0:
                n = stream.readinto(buffer[: min(len(buffer), left)])  # type: ignore[attr-defined]
                if not n:
                    break
                left -= n
                yield buffer[:n]
        _check_unchanged(outer, base, _CHANGED_WHILE_READ)
    except _READ_ERRORS as exc:
        changed = isinstance(exc, OSError) and exc.errno == errno_mod.ESTALE
        try:
            if not changed and outer is not None:
                # Note: a read that fails on an archive rewritten meanwhile is its change.
                _check_unchanged(outer, base, _CHANGED_WHILE_READ)
        finally:
            close_cached()
        if changed:
            raise
        raise OSError(errno_mod.EIO, f"archive member unreadable: {describe(exc)}") from exc


# -- listing -----------------------------------------------------------------------


@dataclasses.dataclass
class _Budget:
    """What one top-level archive walk shares across its nested archives."""

    paths: UniquePaths
    expanded: int = 0


class ArchiveWalker:
    """Lists an archive's members (and nested archives) as tasks and outcomes.

    Args:
        limits: the bomb limits.
        max_size: a nested archive larger than this is not opened (--max-size;
            the walk of the folders spares an outer one, see EvidenceWalker).
    """

    def __init__(self, limits: ArchiveLimits, max_size: int | None = None):
        self.limits = limits
        self.max_size = max_size
        self.opened = 0  # archives found and walked (outer ones; nested ones are inside)

    def walk(
        self,
        path: bytes,
        base: tuple[object, ...],
        head: bytes,
        packed_size: int,
        exists: Callable[[bytes], bool] | None = None,
        tail: bytes = b"",
    ) -> Iterator[FileTask | EntryOutcome]:
        """Every member of the archive at `path` (whose first bytes are `head`, last `tail`).

        `exists` tells whether a path names an entry of the archive's own
        source (a file beside it named like a member path): such a path is
        taken, and the member gets another.
        """
        fmt = archive_format(head)
        if fmt is None and self._zip_ends(base, tail, packed_size):
            fmt = "zip"
        if fmt is None:
            return
        self.opened += 1
        budget = _Budget(UniquePaths(exists, path))
        for item in self._walk(path, base, (), fmt, head, packed_size, 1, budget):
            if item.kind == "archive" and isinstance(item, EntryOutcome):
                # Note: an archive's own entry (`ARCHIVE!`: too deep, encrypted,
                # damaged...) takes a path of its own too: a real file named
                # `ARCHIVE!` beside it had the same one, and a resume (which
                # skips a path once finished) then dropped that file.
                item.path = budget.paths.unique(item.path)
            yield item

    def _walk(
        self,
        path: bytes,
        base: tuple[object, ...],
        steps: tuple[tuple[object, ...], ...],
        fmt: str,
        head: bytes,
        packed_size: int,
        depth: int,
        budget: _Budget,
    ) -> Iterator[FileTask | EntryOutcome]:
        here = path + b"!"
        if depth > self.limits.max_depth:
            yield EntryOutcome(
                here,
                None,
                None,
                skip=Skip.TOO_DEEP,
                kind="archive",
                detail=f"nested deeper than --max-depth {self.limits.max_depth}",
            )
            return
        try:
            if fmt == "zip":
                yield from self._zip(path, base, steps, depth, budget)
            elif fmt == "7z":
                yield from self._sevenzip(path, base, steps, depth, budget)
            elif fmt == "tar":
                yield from self._tar(path, base, steps, "", packed_size, depth, budget)
            else:
                with contextlib.ExitStack() as stack:
                    raw = open_chain(base, steps, stack)
                    inner = stack.enter_context(_decompressed(raw, fmt)).read(HEAD)
                if archive_format(inner) == "tar":
                    yield from self._tar(path, base, steps, fmt, packed_size, depth, budget)
                else:
                    yield from self._stream(path, base, steps, fmt, packed_size, depth, budget)
        except _ERRORS as exc:
            refuse_own_limit(exc, path)  # matcher's own limit: the run stops (--resume)
            yield EntryOutcome(
                here,
                None,
                None,
                failure=Failure.WALK,
                kind="archive",
                detail=f"archive cannot be listed: {describe(exc)}",
            )

    def _zip_ends(self, base: tuple[object, ...], tail: bytes, size: int) -> bool:
        """Whether a zip ends the file `base` (whose last bytes are `tail`), after other data.

        Note: its central directory's signature is read where its end record
        says it starts, so that data which only ends like a zip is never
        taken for one (a walk-error on an ordinary file).
        """
        at = zips.central_directory_at(tail, size)
        if at is None:
            return False
        try:
            with contextlib.ExitStack() as stack:
                return zips.directory_starts_at(open_chain(base, (), stack), at)
        except OSError:
            return False  # the file's own read tells why

    def _over(self, size: int, packed: int, budget: _Budget) -> Skip | None:
        limits = self.limits
        if size > limits.ratio_floor and size > limits.max_ratio * max(packed, 1):
            return Skip.RATIO_TOO_HIGH
        if budget.expanded + size > limits.max_total_bytes:
            return Skip.EXPANDED_TOO_LARGE
        budget.expanded += size
        return None

    def _member(
        self,
        mpath: bytes,
        size: int,
        mtime_ns: int,
        base: tuple[object, ...],
        steps: tuple[tuple[object, ...], ...],
        depth: int,
        budget: _Budget,
        head: bytes,
    ) -> Iterator[FileTask | EntryOutcome]:
        yield FileTask(mpath, size, mtime_ns, 0, 0, kind="member", locator=("member", base, steps))
        inner = archive_format(head)
        if inner is not None and (self.max_size is None or size <= self.max_size):
            yield from self._walk(mpath, base, steps, inner, head, size, depth + 1, budget)

    def _zip(
        self,
        path: bytes,
        base: tuple[object, ...],
        steps: tuple[tuple[object, ...], ...],
        depth: int,
        budget: _Budget,
    ) -> Iterator[FileTask | EntryOutcome]:
        with contextlib.ExitStack() as stack:
            archive = stack.enter_context(zips.open_zip(open_chain(base, steps, stack)))
            infos = archive.infolist()
            counted = 0
            for index, info in enumerate(infos):
                # Note: a directory entry that holds data (a name ending in
                # '/', or a folder attribute, with a size) is read as a
                # member: skipped, its bytes were in no record at all.
                if info.is_dir() and not info.file_size:
                    continue
                counted += 1
                if counted > self.limits.max_members:
                    yield _too_many(path, len(infos) - index, self.limits.max_members)
                    return
                name = info.filename.encode("utf-8" if info.flag_bits & 0x800 else "cp437")
                mpath = budget.paths.unique(path + b"!" + name)
                mtime_ns = calendar.timegm((*info.date_time, 0, 0, 0)) * 1_000_000_000
                mode = info.external_attr >> 16
                skip: Skip | None = None
                detail: str | None = None
                if info.flag_bits & 0x1:
                    skip = Skip.ENCRYPTED
                elif info.compress_type in _ZIP_METHOD_NAMES:
                    # Note: read, it failed as an EIO (io-error), which reads as damage.
                    # A method no zip tool defines stays that error (a damaged or
                    # forged header), never a quiet skip.
                    method = _ZIP_METHOD_NAMES[info.compress_type]
                    skip, detail = (
                        Skip.UNSUPPORTED,
                        f"compressed by zip method {info.compress_type} ({method}), which "
                        "Python's zipfile cannot decode: extract it with a tool that can "
                        "(7-Zip) and scan that",
                    )
                elif stat.S_ISLNK(mode):
                    skip, detail = Skip.SYMLINK, "symlink member (not followed)"
                else:
                    skip = self._over(info.file_size, info.compress_size, budget)
                if skip is not None:
                    yield EntryOutcome(
                        mpath, info.file_size, mtime_ns, skip=skip, detail=detail, kind="member"
                    )
                    continue
                step = (*steps, ("zip", index, zips.listed_fields(info)))
                head = b""
                if info.file_size:
                    try:
                        fast = zips.member_head(archive.fp, info, HEAD)  # type: ignore[arg-type]
                        if fast is not None:
                            head = fast
                        else:
                            with archive.open(info) as member:
                                head = member.read(HEAD)
                    except _ERRORS:
                        # Note: a small member is read whole here, so its CRC is
                        # checked here; a bad one failed the whole zip, and the
                        # intact members after it were never listed. The member
                        # goes to be hashed as any other, and fails there, on its
                        # own (as a large member's bad CRC always did).
                        head = b""
                yield from self._member(
                    mpath, info.file_size, mtime_ns, base, step, depth, budget, head
                )

    def _sevenzip(
        self,
        path: bytes,
        base: tuple[object, ...],
        steps: tuple[tuple[object, ...], ...],
        depth: int,
        budget: _Budget,
    ) -> Iterator[FileTask | EntryOutcome]:
        here = path + b"!"
        if not sevenzip.available():
            yield EntryOutcome(
                here,
                None,
                None,
                skip=Skip.UNSUPPORTED,
                kind="archive",
                detail=f"7z archive not opened: py7zr is not installed ({sevenzip.INSTALL})",
            )
            return
        with contextlib.ExitStack() as stack:
            raw = open_chain(base, steps, stack)
            try:
                archive = stack.enter_context(sevenzip.SevenZipArchive(raw))
            except sevenzip.HeaderEncrypted:
                yield EntryOutcome(
                    here,
                    None,
                    None,
                    skip=Skip.ENCRYPTED,
                    kind="archive",
                    detail="the 7z header is encrypted: its members cannot be listed",
                )
                return
            members = [m for m in archive.members if not m.is_dir or m.size]  # see _zip
            charged: dict[int, int] = {}  # per folder: expanded so far and counted
            broken: dict[int, str] = {}  # per folder: why its data cannot be read
            undecodable: dict[int, str] = {}  # per folder: the method no decoder reads
            for counted, member in enumerate(members, 1):
                if counted > self.limits.max_members:
                    yield _too_many(path, len(members) - counted + 1, self.limits.max_members)
                    return
                mpath = budget.paths.unique(here + member.name.encode("utf-8", "surrogatepass"))
                skip, detail = self._sevenzip_skip(archive, member, charged, budget)
                if skip is not None:
                    yield EntryOutcome(
                        mpath, member.size, member.mtime_ns, skip=skip, detail=detail, kind="member"
                    )
                    continue
                if member.folder is not None and member.folder in broken:
                    yield _unreadable(mpath, member, broken[member.folder])
                    continue
                if member.folder is not None and member.folder in undecodable:
                    yield _undecodable(mpath, member, undecodable[member.folder])
                    continue
                head = b""
                try:
                    while len(head) < min(HEAD, member.size):
                        head += archive.read(member.index, len(head), HEAD - len(head))
                except sevenzip.UnsupportedMethod as exc:
                    assert member.folder is not None
                    undecodable[member.folder] = str(exc)
                    yield _undecodable(mpath, member, str(exc))
                    continue
                except sevenzip.SevenZipError as exc:
                    assert member.folder is not None
                    broken[member.folder] = f"7z data unreadable in this solid block: {exc}"
                    yield _unreadable(mpath, member, str(exc))
                    continue
                step = (*steps, ("7z", member.index))
                yield from self._member(
                    mpath, member.size, member.mtime_ns, base, step, depth, budget, head
                )

    def _sevenzip_skip(
        self,
        archive: sevenzip.SevenZipArchive,
        member: sevenzip.Member,
        charged: dict[int, int],
        budget: _Budget,
    ) -> tuple[Skip | None, str | None]:
        special = archive.special(member)
        if special == "symlink":
            return Skip.SYMLINK, "symlink member (not followed)"
        if special is not None:
            return Skip(special), f"special 7z member ({special})"
        if member.folder is None or member.size == 0:
            return None, None
        folder = archive.folders[member.folder]
        if folder.encrypted:
            return Skip.ENCRYPTED, None
        limits = self.limits
        end = member.start + member.size
        if end > limits.ratio_floor and end > limits.max_ratio * max(folder.pack_size, 1):
            if member.start == 0:
                return Skip.RATIO_TOO_HIGH, None
            return Skip.RATIO_TOO_HIGH, (
                f"reading it expands its solid block to {end} bytes, more than "
                f"{limits.max_ratio} times the block's {folder.pack_size} packed bytes"
            )
        cost = end - charged.get(member.folder, 0)
        if budget.expanded + cost > limits.max_total_bytes:
            return Skip.EXPANDED_TOO_LARGE, None
        budget.expanded += cost
        charged[member.folder] = end
        return None, None

    def _tar(
        self,
        path: bytes,
        base: tuple[object, ...],
        steps: tuple[tuple[object, ...], ...],
        compression: str,
        packed_size: int,
        depth: int,
        budget: _Budget,
    ) -> Iterator[FileTask | EntryOutcome]:
        """A tar's members, plain or in a gz/bz2/xz stream.

        Note: a compressed tar's members are listed first and given out only
        once the stream has been read to its end, where its integrity check
        is: gzip has one CRC, after the data, and xz and bz2 check their last
        block there. A tar ends before its stream does, so a walk that stops
        at the tar's end never reaches it, and incompressible content (most
        evidence) is kept in stored blocks that inflate, damaged, without an
        error: such a member was hashed as the wrong bytes, exit 0. A stream
        that fails its check is one error for the archive, no member given
        out (as for a damaged archive that cannot be listed). Members listed
        before a limit stops the walk (a bomb) are given out unchecked: the
        rest of a bomb is not inflated to reach its check. So are those
        listed before a stream ends too soon (cut short, not damaged: its
        bytes up to the cut are its own), followed by the archive's error.
        """
        limits = self.limits
        listed: list[EntryOutcome | tuple[bytes, int, int, tuple[tuple[object, ...], ...], bytes]]
        listed = []
        stopped: EntryOutcome | None = None
        try:
            with contextlib.ExitStack() as stack:
                raw = open_chain(base, steps, stack)
                stream = stack.enter_context(_decompressed(raw, compression))
                cap = max(limits.ratio_floor, limits.max_ratio * max(packed_size, 1))
                watch = _BlockWatch(stream, cap if compression else None)
                archive = tarfile.open(
                    fileobj=cast(IO[bytes], watch),  # read, seek and tell are all tarfile uses
                    mode="r:",
                    encoding="utf-8",
                    errors="surrogateescape",
                    ignore_zeros=True,
                )
                damage: tuple[int, int | None] | None = None
                counted = 0
                # Where each regular member's content is, by normalised name:
                # a later hard-link member is read from there.
                linkable: dict[str, tuple[bytes, int, int, tuple[tuple[object, ...], ...], bytes]]
                linkable = {}
                while True:
                    watch.reset()
                    member = archive.next()
                    skipped = watch.first_damage
                    if skipped is not None and (member is None or skipped < member.offset):
                        damage = damage or (skipped, None if member is None else member.offset)
                    if member is None:
                        break
                    if member.isdir():
                        continue
                    counted += 1
                    if counted > limits.max_members:
                        stopped = _too_many(path, None, limits.max_members)
                        break
                    mpath = budget.paths.unique(
                        path + b"!" + member.name.encode("utf-8", "surrogateescape")
                    )
                    mtime_ns = int(member.mtime) * 1_000_000_000
                    # Note: where the member's data ends in the stream: a sparse
                    # member stores only its chunks (its size counts the holes:
                    # 10 KB of tar declaring 9 MB was stopped as a bomb, and the
                    # members after it never listed).
                    end = member.offset_data + _stored_size(member)
                    if (
                        compression
                        and end > limits.ratio_floor
                        and end > limits.max_ratio * max(packed_size, 1)
                    ):
                        stopped = EntryOutcome(
                            mpath,
                            member.size,
                            mtime_ns,
                            skip=Skip.RATIO_TOO_HIGH,
                            kind="member",
                            detail="the compressed stream expands "
                            f"more than {limits.max_ratio} times; rest not listed",
                        )
                        break
                    given = self._tar_member(archive, member, mpath, mtime_ns, steps,
                                             compression, budget, linkable)  # fmt: skip
                    if isinstance(given, tuple):
                        linkable[os.path.normpath(member.name)] = given
                    listed.append(given)
                    if not compression:  # nothing to check at the end: give it out now
                        yield from self._given_out(listed, base, depth, budget)
                if compression and stopped is None:
                    _read_to_the_end(stream, limits, packed_size)
                    after = _junk_after(stream, compression)
                    if after is not None:
                        stopped = EntryOutcome(
                            path + b"!", None, None, failure=Failure.WALK, kind="archive",
                            detail=after,
                        )  # fmt: skip
        except (EOFError, _TarCutShort):
            # Note: a stream cut short, not damaged (or one that runs on past a
            # limit): what was listed before is the stream's own bytes (given
            # out unchecked, as before a bomb's limit), then the archive's
            # error. A member listed before a bomb of zeros was in no record.
            yield from self._given_out(listed, base, depth, budget)
            raise
        yield from self._given_out(listed, base, depth, budget)
        if damage is not None:
            first, resumed = damage
            where = f"from byte {first} to " + (f"byte {resumed}" if resumed else "its end")
            detail = (
                f"damaged tar: {where} hold no valid member header and were skipped; "
                "a member there is not read"
            )
            if stopped is None:
                stopped = EntryOutcome(
                    path + b"!", None, None, failure=Failure.WALK, kind="archive", detail=detail
                )
            else:
                stopped.detail = f"{stopped.detail}; {detail}"
        if stopped is not None:
            yield stopped

    def _tar_member(
        self,
        archive: tarfile.TarFile,
        member: tarfile.TarInfo,
        mpath: bytes,
        mtime_ns: int,
        steps: tuple[tuple[object, ...], ...],
        compression: str,
        budget: _Budget,
        linkable: Mapping[str, tuple[bytes, int, int, tuple[tuple[object, ...], ...], bytes]],
    ) -> EntryOutcome | tuple[bytes, int, int, tuple[tuple[object, ...], ...], bytes]:
        """A listed tar member: its skip, or what _given_out needs to give it out.

        A hard-link member is given out with the content of the member it
        names (`linkable`: the regular members before it, as this returned
        them), counted again toward the expanded total.
        """
        skip: Skip | None = None
        detail: str | None = None
        size = member.size
        if member.islnk():
            target = linkable.get(os.path.normpath(member.linkname))
            if target is None:
                skip, detail = (
                    Skip.SYMLINK,
                    f"hard-link member to {member.linkname!r}, which no member before it holds",
                )
            else:
                _, size, _, linked_step, linked_head = target
                skip = self._over(size, size, budget)
                if skip is None:
                    return (mpath, size, mtime_ns, linked_step, linked_head)
        elif member.issym():
            skip, detail = Skip.SYMLINK, f"link member to {member.linkname!r} (not followed)"
        elif member.ischr() or member.isblk():
            skip = Skip.DEVICE
        elif member.isfifo():
            skip = Skip.FIFO
        elif not member.isfile():
            skip, detail = Skip.DEVICE, "special tar member"
        else:
            skip = self._over(member.size, member.size, budget)
        if skip is not None:
            return EntryOutcome(mpath, size, mtime_ns, skip=skip, detail=detail, kind="member")
        head = b""
        if member.size:
            extracted = archive.extractfile(member)
            assert extracted is not None
            head = extracted.read(HEAD)
        if member.issparse():
            step = (*steps, ("tar-sparse", compression, member.offset))
        else:
            step = (*steps, ("tar", compression, member.offset_data, member.size))
        # Note: only a nested archive's head is kept (its format is read again).
        kept = head[:_FORMAT_BYTES] if archive_format(head) is not None else b""
        return (mpath, member.size, mtime_ns, step, kept)

    def _given_out(
        self,
        listed: list[EntryOutcome | tuple[bytes, int, int, tuple[tuple[object, ...], ...], bytes]],
        base: tuple[object, ...],
        depth: int,
        budget: _Budget,
    ) -> Iterator[FileTask | EntryOutcome]:
        """The listed members as tasks and outcomes, in order; the list is emptied."""
        items = listed[:]
        listed.clear()
        for item in items:
            if isinstance(item, EntryOutcome):
                yield item
            else:
                mpath, size, mtime_ns, step, head = item
                yield from self._member(mpath, size, mtime_ns, base, step, depth, budget, head)

    def _stream(
        self,
        path: bytes,
        base: tuple[object, ...],
        steps: tuple[tuple[object, ...], ...],
        compression: str,
        packed_size: int,
        depth: int,
        budget: _Budget,
    ) -> Iterator[FileTask | EntryOutcome]:
        limits = self.limits
        name = path.rsplit(b"!", 1)[-1].rsplit(b"/", 1)[-1]
        stem = name.rsplit(b".", 1)[0] if b"." in name else name + b".out"
        mpath = budget.paths.unique(path + b"!" + stem)
        size = 0
        head = b""
        cap = min(
            limits.max_total_bytes - budget.expanded,
            max(limits.ratio_floor, limits.max_ratio * max(packed_size, 1)),
        )
        with contextlib.ExitStack() as stack:
            raw = open_chain(base, steps, stack)
            stream = stack.enter_context(_decompressed(raw, compression))
            while chunk := stream.read(1 << 20):
                if not head:
                    head = chunk[:HEAD]
                size += len(chunk)
                if size > cap:
                    reason = (
                        Skip.EXPANDED_TOO_LARGE
                        if cap == limits.max_total_bytes - budget.expanded
                        else Skip.RATIO_TOO_HIGH
                    )
                    yield EntryOutcome(
                        mpath,
                        None,
                        None,
                        skip=reason,
                        kind="member",
                        detail=f"expands past {cap} bytes",
                    )
                    return
            after = _junk_after(stream, compression)
        budget.expanded += size
        step = (*steps, ("stream", compression))
        yield from self._member(mpath, size, 0, base, step, depth, budget, head)
        if after is not None:
            yield EntryOutcome(
                path + b"!", None, None, failure=Failure.WALK, kind="archive", detail=after
            )


def _stored_size(member: tarfile.TarInfo) -> int:
    """The bytes a tar member's data takes in the archive (a sparse one: its chunks)."""
    chunks: list[tuple[int, int]] | None = getattr(member, "sparse", None)
    if member.issparse() and chunks is not None:
        return sum(size for _offset, size in chunks)
    return member.size


def _sparse_member(tar: IO[bytes], offset: int) -> IO[bytes]:
    """The content of the sparse member whose headers start at `offset` of the tar `tar`.

    Note: its data is its stored chunks, placed by its sparse map (holes
    read as zeros): tarfile reads it so, from the member's own headers.
    """
    tar.seek(offset)
    archive = tarfile.open(fileobj=tar, mode="r:", encoding="utf-8", errors="surrogateescape")
    member = archive.next()  # the first: read when the TarFile opened
    extracted = archive.extractfile(member) if member is not None else None
    if member is None or extracted is None or not member.issparse():
        raise tarfile.TarError(f"no sparse member at offset {offset}")
    return extracted


def _read_to_the_end(stream: IO[bytes], limits: ArchiveLimits, packed_size: int) -> None:
    """Read a decompressed stream to its end, where its integrity check is (see ArchiveWalker._tar).

    Raises:
        OSError, EOFError, zlib.error, lzma.LZMAError: the check fails, or the
            stream is cut short; ValueError: it runs on past the bomb limits
            (its check cannot be reached).
    """
    cap = max(limits.ratio_floor, limits.max_ratio * max(packed_size, 1))
    read = stream.tell() if stream.seekable() else 0
    while chunk := stream.read(1 << 20):
        read += len(chunk)
        if read > cap:
            raise _TarCutShort(
                f"the compressed stream runs on past the tar's end, more than "
                f"{limits.max_ratio} times its size: its integrity check cannot be reached"
            )


def _undecodable(mpath: bytes, member: sevenzip.Member, why: str) -> EntryOutcome:
    """A 7z member whose method no decoder here reads: unsupported, not damaged."""
    return EntryOutcome(
        mpath,
        member.size,
        member.mtime_ns,
        skip=Skip.UNSUPPORTED,
        kind="member",
        detail=f"{why}: extract it with a tool that can (7-Zip) and scan that",
    )


def _unreadable(mpath: bytes, member: sevenzip.Member, why: str) -> EntryOutcome:
    return EntryOutcome(
        mpath,
        member.size,
        member.mtime_ns,
        failure=Failure.IO_ERROR,
        errno=errno_mod.EIO,
        detail=why,
        kind="member",
    )


def _too_many(path: bytes, rest: int | None, limit: int) -> EntryOutcome:
    more = f"{rest} more entries" if rest is not None else "further members"
    return EntryOutcome(
        path + b"!",
        None,
        None,
        skip=Skip.TOO_MANY_MEMBERS,
        kind="archive",
        detail=f"over {limit} members: {more} not listed",
    )
