"""Disk images (raw/dd, E01 and split E01): volumes, filesystems and their files, via TSK.

This module and `archive.py` are the only ones that import pytsk3 and pyewf
(the `images` extra). An evidence file is an image by its content, never by
its name: an EWF signature, or an MBR/GPT partition table or a filesystem
boot block that TSK then confirms. Every allocated partition is opened, each
regular file's every data stream (NTFS alternate data streams included)
becomes a `FileTask` whose locator lets `read_chunks` find the content again
in any worker; everything else becomes an `EntryOutcome` with a reason.

Paths name the image, the partition and the inner path (README, "Disk
images and archives"): `IMAGE!p<N>@<offset>:<fstype>/<inner/path>[:<stream>]`,
with `p0` for a filesystem that fills the whole image. Inner names are the
filesystem's bytes, unchanged.
"""

from __future__ import annotations

import errno as errno_mod
import os
import re
import stat
import threading
import weakref
from collections.abc import Iterator
from typing import Any

from matcher.digests import hasher_factory
from matcher.errors import EvidenceError
from matcher.errors import os_error_detail
from matcher.errors import refuse_own_limit
from matcher.evidence.folder import names_in
from matcher.evidence.folder import open_readonly
from matcher.evidence.unique import UniqueNames
from matcher.interrupts import foreign_callback
from matcher.models import EntryOutcome
from matcher.models import Failure
from matcher.models import FileTask
from matcher.models import Skip

EXTRA_HINT = "Install the images extra: pip install 'matcher[images]'"
EWF_SIGNATURE = b"EVF\x09\x0d\x0a\xff\x00"
_GPT_SIGNATURE = b"EFI PART"
_READ = 1 << 20
_EXFAT_SPECIAL = frozenset(
    {b"$ALLOC_BITMAP", b"$UPCASE_TABLE", b"$VOLUME_LABEL", b"$VOLUME_GUID", b"$TEX_FAT"}
)
_NTFS_SYSTEM_RECORDS = 16  # MFT records 0-15 are the filesystem's own ($MFT ... $Extend)
_NTFS_RESERVED_RECORDS = range(16, 24)  # reserved, in no use: TSK lists them as orphans
_LABEL_SUFFIX = b"(Volume Label Entry)"
# A reparse tag with this bit is a name surrogate: a link to another name
# (symlink, junction). Other tags mark files that hold data (OneDrive, WOF, dedup).
_NAME_SURROGATE = 0x20000000
# Reparse tags of special files, without that bit: a Unix socket, and WSL's
# FIFOs and devices; an app execution alias (a 0-byte stand-in for a program).
# As on a folder walk, such a file is skipped by its kind, never hashed as empty.
_SPECIAL_TAGS = {
    0x80000023: (Skip.SOCKET, "a Unix socket (IO_REPARSE_TAG_AF_UNIX)"),
    0x80000024: (Skip.FIFO, "a WSL FIFO (IO_REPARSE_TAG_LX_FIFO)"),
    0x80000025: (Skip.DEVICE, "a WSL character device (IO_REPARSE_TAG_LX_CHR)"),
    0x80000026: (Skip.DEVICE, "a WSL block device (IO_REPARSE_TAG_LX_BLK)"),
    0x8000001B: (Skip.SYMLINK, "an app execution alias (IO_REPARSE_TAG_APPEXECLINK)"),
}


def _modules() -> tuple[Any, Any]:
    """pytsk3 and pyewf, or an EvidenceError naming the extra."""
    try:
        import pyewf
        import pytsk3
    except ImportError as exc:
        raise EvidenceError(
            f"Reading disk images needs pytsk3 and libewf-python, which are not installed. "
            f"{EXTRA_HINT}"
        ) from exc
    return pytsk3, pyewf


def sniff(head: bytes) -> str | None:
    """ "e01", "raw" (a partition table or filesystem boot block is likely), or None.

    Needs no library: this only decides whether a file must be opened as an
    image. TSK then has the last word (`open_image`).
    """
    if head.startswith(EWF_SIGNATURE):
        return "e01"
    if len(head) >= 512 and head[510:512] == b"\x55\xaa":
        if (
            head[3:11] in (b"NTFS    ", b"EXFAT   ")
            or b"FAT" in head[54:62]
            or b"FAT" in head[82:90]
        ):
            return "raw"
        entries = [head[446 + 16 * i : 462 + 16 * i] for i in range(4)]
        if any(e[4] != 0 for e in entries) and all(e[0] in (0, 0x80) for e in entries):
            return "raw"
    if head[512:520] == _GPT_SIGNATURE:
        return "raw"
    if len(head) >= 1082 and head[1080:1082] == b"\x53\xef":
        return "raw"  # ext2/3/4 superblock magic
    return None


def read_head(path: bytes, size: int = 4096) -> bytes:
    """The first bytes of a regular file, opened read-only without following links."""
    fd = open_readonly(path)
    try:
        return os.pread(fd, size, 0)
    finally:
        os.close(fd)


# -- opening -------------------------------------------------------------------


def _fs_type_names(pytsk3: Any) -> dict[int, str]:
    names: dict[int, str] = {}
    for attr in dir(pytsk3):
        value = getattr(pytsk3, attr)
        if attr.startswith("TSK_FS_TYPE_") and isinstance(value, int) and "DETECT" not in attr:
            names.setdefault(int(value), attr[len("TSK_FS_TYPE_") :].lower())
    return names


# A name libewf lists segments from: .E01, .e01, .Ex01, .s01, .L01, .Lx01 (EWF, EWF2).
_SEGMENT_NAME = re.compile(rb"\.(?:[EeLlSs]|[EeLl][Xx])[0-9]{2}\Z")


def e01_segments(path: bytes) -> list[bytes]:
    """The segment files of an E01 (given its first), checked to be complete.

    Raises:
        EvidenceError: a segment is missing or is not a regular file.
    """
    _, pyewf = _modules()
    directory, name = os.path.split(path)
    try:
        found = [os.fsencode(s) for s in pyewf.glob(os.fsdecode(path))]
    except (OSError, UnicodeError) as exc:
        if _SEGMENT_NAME.search(name) is None:
            # Note: detection is by content: an E01 renamed (evidence.img) is
            # read as one segment; libewf finds further ones by name only, and
            # refuses to open a first segment whose set is incomplete.
            return [path]
        raise EvidenceError(f"E01 {os.fsdecode(path)}: cannot list its segments ({exc}).") from exc
    stem = name[:-2] if len(name) > 2 else name
    pattern = re.compile(re.escape(stem) + rb"[0-9A-Za-z]{2}\Z")
    siblings = {e for e in _listing(directory or b".") if pattern.match(e)}
    listed = {os.path.basename(s) for s in found}
    stray = sorted(siblings - listed)
    if stray:
        raise EvidenceError(
            f"E01 {os.fsdecode(path)}: segment files do not follow on "
            f"({', '.join(os.fsdecode(s) for s in stray)} present, but an earlier segment is "
            "missing). Supply every segment."
        )
    for segment in found:
        if not stat.S_ISREG(os.lstat(segment).st_mode):
            raise EvidenceError(f"E01 segment {os.fsdecode(segment)} is not a regular file.")
    return found


def _listing(directory: bytes) -> list[bytes]:
    """The entry names of a folder, listed as the folder walk lists one (O_NOATIME)."""
    fd = open_readonly(directory, directory=True)
    try:
        return names_in(fd)
    finally:
        os.close(fd)


class _Segment:
    """One E01 segment file as libewf reads it: a file object over matcher's own fd.

    Note: libewf opened segments by their paths, without O_NOATIME, so a scan
    set each segment's access time (evidence modified). Here each is opened as
    the folder walk opens a file, and read with pread: the position is this
    object's own, never the fd's.
    """

    def __init__(self, path: bytes):
        fd = open_readonly(path)
        self._closer = weakref.finalize(self, os.close, fd)
        self.fd = fd
        self.size = os.fstat(fd).st_size
        self.offset = 0

    @foreign_callback
    def read(self, size: int = -1) -> bytes:
        if size < 0:
            size = max(self.size - self.offset, 0)
        data = os.pread(self.fd, size, self.offset)
        self.offset += len(data)
        return data

    @foreign_callback
    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        base = {os.SEEK_SET: 0, os.SEEK_CUR: self.offset, os.SEEK_END: self.size}[whence]
        if base + offset < 0:
            raise OSError(errno_mod.EINVAL, "seek before the start of a segment")
        self.offset = base + offset
        return self.offset

    @foreign_callback
    def tell(self) -> int:
        return self.offset

    @foreign_callback
    def get_size(self) -> int:
        return self.size

    def close(self) -> None:
        self._closer()


def _open_segments(segments: list[bytes]) -> list[_Segment]:
    """Every segment opened (all or none).

    Raises:
        EvidenceError: a segment cannot be opened.
    """
    opened: list[_Segment] = []
    try:
        for segment in segments:
            opened.append(_Segment(segment))
    except OSError as exc:
        for done in opened:
            done.close()
        refuse_own_limit(exc, segment)
        raise EvidenceError(
            f"E01 segment {os.fsdecode(segment)} cannot be opened: {os_error_detail(exc)}"
        ) from exc
    return opened


class _Media:
    """A read-only byte source for TSK: a raw image fd, or an opened EWF handle."""

    def __init__(self, path: bytes, kind: str):
        self.path = path
        self.kind = kind
        self.fd: int | None = None
        self.handle: Any = None
        self.files: list[_Segment] = []  # an E01's segments, closed with its handle
        if kind == "e01":
            _, pyewf = _modules()
            segments = e01_segments(path)
            self.segments = segments
            self.files = _open_segments(segments)
            handle = pyewf.handle()
            try:
                handle.open_file_objects(self.files)
            except OSError as exc:
                self.close()
                raise EvidenceError(
                    f"E01 {os.fsdecode(path)} cannot be opened (truncated or damaged?): {exc}"
                ) from exc
            self.handle = handle
            self.size = int(self.handle.get_media_size())
        else:
            self.segments = [path]
            self.fd = open_readonly(path)
            self.size = os.fstat(self.fd).st_size

    def read(self, offset: int, size: int) -> bytes:
        if self.handle is not None:
            data: bytes = self.handle.read_buffer_at_offset(size, offset)
            return data
        assert self.fd is not None
        return os.pread(self.fd, size, offset)

    def close(self) -> None:
        files, self.files = self.files, []
        try:
            if self.handle is not None:
                handle, self.handle = self.handle, None
                handle.close()
        finally:
            for file in files:
                file.close()
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


def _img_info(media: _Media) -> Any:
    pytsk3, _ = _modules()

    class _Img(pytsk3.Img_Info):  # type: ignore[misc,name-defined]
        def __init__(self, source: _Media):
            self._source = source
            super().__init__(url="", type=pytsk3.TSK_IMG_TYPE_EXTERNAL)

        def close(self) -> None:
            pass

        @foreign_callback
        def read(self, offset: int, size: int) -> bytes:
            return self._source.read(offset, size)

        @foreign_callback
        def get_size(self) -> int:
            return self._source.size

    return _Img(media)


class Volume:
    """One filesystem in an image: its partition index, byte offset and type."""

    def __init__(self, index: int, offset: int, fs_type: str | None, fs: Any, desc: str):
        self.index = index
        self.offset = offset
        self.fs_type = fs_type
        self.fs = fs
        self.desc = desc

    @property
    def label(self) -> bytes:
        """The partition part of entry paths: p<N>@<offset>:<fstype>."""
        return f"p{self.index}@{self.offset}:{self.fs_type or 'unknown'}".encode()

    def as_log_dict(self) -> dict[str, object]:
        return {
            "index": self.index,
            "offset": self.offset,
            "type": self.fs_type,
            "description": self.desc,
        }


class OpenedImage:
    """An image with its media opened and its volume system and filesystems found.

    Raises:
        EvidenceError: when the image cannot be opened, is incomplete, or holds
            no recognisable volume system or filesystem.
    """

    def __init__(self, path: bytes, kind: str):
        pytsk3, _ = _modules()
        self.path = path
        self.kind = kind
        self.media = _Media(path, kind)
        name = os.fsdecode(path)
        try:
            if self.media.size:
                # Note that libewf opens a truncated E01 or one missing a segment
                # without complaint; reading the last sector finds it.
                self.media.read(self.media.size - min(512, self.media.size), 512)
        except OSError as exc:
            self.media.close()
            raise EvidenceError(
                f"Image {name} is incomplete: its last sector cannot be read (a segment is "
                f"missing or truncated): {exc}"
            ) from exc
        self.img = _img_info(self.media)
        self.volume_system: str | None = None
        self.volumes: list[Volume] = []
        # (index, offset, description, why) of each partition not walked.
        self.unrecognised: list[tuple[int, int, str, str]] = []
        # (index, offset, description, why) of each partition that should hold
        # partitions or files and cannot be read: an error, never a skip.
        self.unreadable: list[tuple[int, int, str, str]] = []
        # What the scan notes about the image (a partition cut short by its end).
        self.warnings: list[str] = []
        names = _fs_type_names(pytsk3)
        try:
            vs = pytsk3.Volume_Info(self.img)
        except OSError:
            vs = None
        if vs is not None:
            self.volume_system = _vs_name(pytsk3, int(vs.info.vstype))
            block = int(vs.info.block_size)
            index = 0
            parts = list(vs)
            tables = {int(p.start) for p in parts if bytes(p.desc).startswith(b"Extended Table")}
            for part in parts:
                if self.volume_system == "dos" and _unread_extended(pytsk3, part, tables):
                    # Note: an extended partition whose table (EBR) TSK cannot
                    # read (its signature damaged, or past the image's end)
                    # lists no logical partition, and TSK says nothing: every
                    # file in them went unread in a complete scan, exit 0.
                    offset = int(part.start) * block
                    desc = part.desc.decode("utf-8", "replace")
                    self.warnings.append(
                        f"{name}: the extended partition table at byte {offset} ({desc}) cannot "
                        "be read: none of the logical partitions it holds is walked"
                    )
                    why = (
                        f"its extended partition table (EBR) at byte {offset} cannot be read "
                        "(damaged, or the image is cut short): none of the logical partitions "
                        "it holds is walked"
                    )
                    # Note: numbered as a partition of its own: labelled index + 1,
                    # the next partition (a primary after it) was labelled so too.
                    index += 1
                    self.unreadable.append((index, offset, desc, why))
                    continue
                if not int(part.flags) & int(pytsk3.TSK_VS_PART_FLAG_ALLOC):
                    continue
                index += 1
                offset = int(part.start) * block
                end = offset + int(part.len) * block
                desc = part.desc.decode("utf-8", "replace")
                size = self.media.size
                if offset >= size:
                    # Note: an error, as a partition cut by the end is: skipped as
                    # "no filesystem", a whole partition's files went unread in a
                    # complete scan, exit 0, with no note.
                    why = (
                        f"the partition table puts it at bytes {offset}-{end}, past the image's "
                        f"end ({size} bytes): the image is cut short, or the table is wrong"
                    )
                    self.warnings.append(
                        f"{name}: partition {index} ({desc}) starts at byte {offset}, past the "
                        f"image's end ({size} bytes): the image is cut short (or its table is "
                        "wrong); none of its files is read"
                    )
                    self.unreadable.append((index, offset, desc, why))
                    continue
                first = next((v for v in self.volumes if v.offset == offset), None)
                if first is not None:
                    # Note: a second table entry at the same start walked the
                    # same filesystem again, every file counted twice.
                    self.warnings.append(
                        f"{name}: partition {index} ({desc}) starts at byte {offset}, as "
                        f"partition {first.index} does: its filesystem is walked once, as "
                        f"partition {first.index}"
                    )
                    continue
                if end > size:
                    self.warnings.append(
                        f"{name}: partition {index} ({desc}) runs to byte {end}, past the "
                        f"image's end ({size} bytes): the image is cut short (or its table is "
                        "wrong); files in the missing part are read errors"
                    )
                if self.volume_system == "dos" and _protective(desc):
                    # Note: a GPT disk's protective MBR entry: TSK read the MBR
                    # because the GPT itself failed (its header damaged, or the
                    # image cut short). Skipped as "no filesystem", the scan was
                    # complete, exit 0, with none of the disk's partitions read.
                    self.unreadable.append(
                        (
                            index,
                            offset,
                            desc,
                            "the disk's GPT cannot be read (its header is "
                            "damaged, or the image is cut short): TSK fell back to the protective "
                            "MBR, so none of the GPT's partitions is walked",
                        )  # fmt: skip
                    )
                    continue
                try:
                    fs = pytsk3.FS_Info(self.img, offset=offset)
                except OSError:
                    if end > size:
                        # Note: its filesystem may be in the missing part (a
                        # skip as "no filesystem" made the scan complete, exit
                        # 0, with none of its files read).
                        why = (
                            f"its filesystem cannot be opened, and it runs to byte {end}, past "
                            f"the image's end ({size} bytes): the image is cut short"
                        )
                        self.unreadable.append((index, offset, desc, why))
                        continue
                    why = "no filesystem that TSK reads"
                    self.unrecognised.append((index, offset, desc, why))
                    continue
                if end <= size:  # else noted above
                    self._note_cut_short(
                        fs, offset, f"the filesystem of partition {index} ({desc})"
                    )
                self.volumes.append(Volume(index, offset, names.get(int(fs.info.ftype)), fs, desc))
            if not self.volumes:
                # Note: a disk none of whose partitions TSK reads (encrypted
                # with BitLocker or LUKS, a boot sector damaged) was skipped
                # partition by partition: complete, exit 0, a scan of nothing.
                # Beside a filesystem read, one without any stays a skip.
                self.unreadable = sorted(
                    [
                        (i, o, d, f"{why}; no partition of the disk has a filesystem that TSK "
                         "reads, so none of its files is read (an encrypted or damaged disk?)")
                        for i, o, d, why in self.unrecognised
                    ]
                    + self.unreadable
                )  # fmt: skip
                self.unrecognised = []
        if vs is None:
            try:
                fs = pytsk3.FS_Info(self.img, offset=0)
            except OSError as exc:
                self.media.close()
                raise EvidenceError(
                    f"Image {name}: no volume system or filesystem recognised ({exc}). "
                    "It is not scanned, neither as an image nor as a folder."
                ) from exc
            self._note_cut_short(fs, 0, "its filesystem")
            self.volumes.append(Volume(0, 0, names.get(int(fs.info.ftype)), fs, "whole image"))

    def _note_cut_short(self, fs: Any, offset: int, what: str) -> None:
        """A warning when the filesystem at `offset` says it runs past the image's end."""
        # Note: as a partition cut short gets its note, so does a filesystem
        # whose own size (its block count) the image cannot hold.
        end = offset + (int(fs.info.last_block) + 1) * int(fs.info.block_size)
        if end > self.media.size:
            self.warnings.append(
                f"{os.fsdecode(self.path)}: {what} runs to byte {end}, past the image's end "
                f"({self.media.size} bytes): the image is cut short; files in the missing part "
                "are read errors"
            )

    def as_log_dict(self) -> dict[str, object]:
        """What the `run` record says about this image."""
        return {
            "kind": self.kind,
            "segments": len(self.media.segments),
            "media_size": self.media.size,
            "volume_system": self.volume_system,
            "filesystems": [v.as_log_dict() for v in self.volumes],
            "unrecognised_partitions": [
                {"index": i, "offset": o, "description": d} for i, o, d, _ in self.unrecognised
            ],
        }

    def close(self) -> None:
        self.volumes = []
        self.media.close()


def _unread_extended(pytsk3: Any, part: Any, tables: set[int]) -> bool:
    """True for a DOS extended partition entry with no table TSK read at its start.

    TSK lists an extended partition (types 0x05, 0x0F, 0x85) as a metadata
    entry, then the table it read there ("Extended Table (#N)") and the logical
    partitions that table names. An extended partition with no logical one
    still has a table (an EBR with its signature): a missing one was not read.
    """
    if not int(part.flags) & int(pytsk3.TSK_VS_PART_FLAG_META):
        return False
    return b"Extended (0x" in bytes(part.desc) and int(part.start) not in tables


def _protective(desc: str) -> bool:
    """True for TSK's name of a GPT protective MBR entry (type 0xEE)."""
    return "(0xee)" in desc.lower()


def _vs_name(pytsk3: Any, value: int) -> str:
    for attr in dir(pytsk3):
        found = getattr(pytsk3, attr)
        if attr.startswith("TSK_VS_TYPE_") and isinstance(found, int) and int(found) == value:
            return attr[len("TSK_VS_TYPE_") :].lower()
    return str(value)


def looks_like_image(path: str | bytes | os.PathLike[str]) -> bool:
    """True when the file at `path` starts as a disk image does (detect() would walk it)."""
    try:
        return sniff(read_head(os.fsencode(path))) is not None
    except OSError:
        return False


def detect(path: bytes, require: bool = False) -> str | None:
    """The image kind of an evidence file ("e01" or "raw"), or None for a plain file.

    Args:
        require: the caller says this must be an image (refuse anything else).

    Raises:
        EvidenceError: an image without the `images` extra, or `require` and
            nothing recognisable.
    """
    try:
        head = read_head(path)
    except OSError as exc:
        if not require:
            return None  # the folder walker records it as an unreadable entry
        raise EvidenceError(f"Evidence {os.fsdecode(path)} cannot be read: {exc}") from exc
    kind = sniff(head)
    if kind is None and require:
        kind = "raw"  # TSK has the last word; an unrecognisable file is refused there
    if kind is not None:
        _modules()
    return kind


# -- walking -------------------------------------------------------------------


class ImageWalker:
    """Yields every entry of every filesystem of an image, in a fixed order.

    Partitions in table order; in each, files before subfolders, sorted by
    name bytes (as the folder walker), and TSK's $OrphanFiles last. Hard
    links: the first name is hashed; each further name is a task with `link`
    set to the first name's path, so the scan reuses that outcome (read once,
    reported under every name).

    Args:
        deleted: also hash deleted entries whose content TSK can still read.
    """

    def __init__(self, deleted: bool = False):
        self.deleted = deleted
        self.pytsk3, _ = _modules()
        # The entries of the folder whose entries are being yielded, by name (as
        # made unique), and the filesystem they are in: an archive's members are
        # named against them, and a member path under a sibling folder is
        # looked up in it (see folder_holds).
        self.entries: dict[bytes, Any] = {}
        self.fs: Any = None

    def walk(self, image: OpenedImage) -> Iterator[FileTask | EntryOutcome]:
        """Every entry of `image`, tasks and outcomes, in walk order."""
        # Partitions not walked: skipped (no filesystem), or errors (unreadable).
        not_walked: list[tuple[tuple[int, int, str, str], Skip | None, Failure | None]]
        not_walked = [(p, Skip.NO_FILESYSTEM, None) for p in image.unrecognised]
        not_walked += [(p, None, Failure.WALK) for p in image.unreadable]
        for (index, offset, desc, why), skip, failure in not_walked:
            yield EntryOutcome(
                path=image.path + f"!p{index}@{offset}:unknown".encode(),
                size=None,
                mtime_ns=None,
                skip=skip,
                failure=failure,
                detail=f"partition {desc!r}: {why}",
                kind="partition",
            )
        for volume in image.volumes:
            yield from self._walk_volume(image, volume)

    def _walk_volume(self, image: OpenedImage, volume: Volume) -> Iterator[FileTask | EntryOutcome]:
        t = self.pytsk3
        prefix = image.path + b"!" + volume.label
        is_ntfs = volume.fs_type == "ntfs"
        is_fat = bool(volume.fs_type and ("fat" in volume.fs_type))
        links: dict[tuple[int, int, int], bytes] = {}
        root_inum = int(volume.fs.info.root_inum)
        visited: set[int] = {root_inum}
        first_names: dict[int, bytes] = {root_inum: b"/"}  # a folder's first name, by address
        stack: list[tuple[bytes, int, bool]] = [(b"", root_inum, False)]
        # Deleted files read through a name, by address: TSK may list one among
        # its orphans too (an NTFS record whose index entry is left), read once.
        read_deleted: dict[int, bytes] = {}
        orphans: bytes | None = None  # $OrphanFiles' inner path, once met (walked last)
        while stack:
            inner, inum, in_deleted = stack.pop()
            in_orphans = orphans is not None and (
                inner == orphans or inner.startswith(orphans + b"/")
            )
            try:
                directory = volume.fs.open_dir(inode=inum)
                listing = [(bytes(f.info.name.name), f) for f in directory]
            except (OSError, RuntimeError) as exc:
                refuse_own_limit(exc, prefix + (inner or b"/"))
                yield _folder_error(prefix + (inner or b"/"), f"directory cannot be listed: {exc}")
                continue
            listing.sort(key=lambda item: item[0])
            if (
                not in_deleted
                and _lacks_dot(volume.fs_type, inum == root_inum, listing)
                and _in_blocks(t, volume.fs, inum)
            ):
                # Note: TSK lists a folder whose first block is damaged as
                # empty (or with what the later blocks hold), without any
                # error: its files went missing from a complete scan, exit 0.
                yield _folder_error(
                    prefix + (inner or b"/"),
                    "directory is damaged: its listing lacks the '.' entry that every folder of "
                    "this filesystem holds, so entries in it may be lost",
                )
            subdirs: list[tuple[bytes, int, bool]] = []
            names = UniqueNames()
            chosen = [(n, names.unique(n), e) for n, e in listing if n not in (b".", b"..")]
            # Note: the entries as they are, no metadata read per entry: only an
            # archive member's path that meets a sibling's name looks further.
            self.entries = {unique: e for _, unique, e in chosen}
            self.fs = volume.fs
            if is_ntfs and not inner:  # the root's own named streams: no listing names it
                yield from self._root_streams(image, volume, prefix + b"/", links)
            for name, unique, entry in chosen:
                child = inner + b"/" + unique
                path = prefix + child
                info = entry.info
                meta = info.meta
                name_alloc = bool(int(info.name.flags) & int(t.TSK_FS_NAME_FLAG_ALLOC))
                deleted = in_deleted or not name_alloc
                if meta is None:
                    entry, meta = self._unallocated_meta(volume, info.name)
                    deleted = deleted or meta is not None
                if meta is None and is_ntfs and in_orphans and self._reserved(volume, info.name):
                    detail = "an NTFS MFT record reserved (16-23), in no use, holding no data"
                    yield _skip(path, 0, None, Skip.FS_METADATA, detail, "other")
                    continue
                if meta is None:
                    yield _skip(
                        path,
                        None,
                        None,
                        Skip.DELETED if deleted else Skip.FS_METADATA,
                        "no metadata left" if deleted else "name without metadata",
                        "deleted" if deleted else "other",
                    )
                    continue
                meta_type = int(meta.type)
                mtime_ns = _mtime_ns(meta)
                meta_alloc = bool(int(meta.flags) & int(t.TSK_FS_META_FLAG_ALLOC))
                if not meta_alloc:
                    deleted = True
                elif deleted:
                    # Note that an unallocated name whose metadata is allocated
                    # points at a reused inode: that content belongs to another file.
                    # So too for every name in a deleted folder (all are deleted).
                    yield _skip(
                        path,
                        None,
                        mtime_ns,
                        Skip.DELETED,
                        "deleted; its metadata was reused by another file",
                        "deleted",
                    )
                    continue
                kind_word = _meta_kind(t, meta_type)
                if self._is_fs_metadata(t, inner, name, meta, meta_type, is_ntfs, is_fat):
                    yield _skip(path, int(meta.size), mtime_ns, Skip.FS_METADATA, None, kind_word)
                    if meta_type == int(t.TSK_FS_META_TYPE_VIRT_DIR) and self.deleted:
                        # $OrphanFiles: deleted files without a name left.
                        addr = int(meta.addr)
                        if addr not in visited:
                            visited.add(addr)
                            first_names[addr] = child
                            orphans = child
                            stack.insert(0, (child, addr, True))
                    continue
                if deleted and not self.deleted:
                    yield _skip(
                        path,
                        int(meta.size),
                        mtime_ns,
                        Skip.DELETED,
                        "deleted (hashed only with --deleted)",
                        "deleted-" + kind_word,
                    )
                    continue
                if meta_type == int(t.TSK_FS_META_TYPE_DIR):
                    addr = int(meta.addr)
                    if addr not in visited:
                        visited.add(addr)
                        first_names[addr] = child
                        subdirs.append((child, addr, deleted))
                    elif addr in first_names:
                        # Note: a second name of a folder (a directory hard link
                        # or a loop, which debugfs can make): not walked again,
                        # and it left no trace at all.
                        walked = first_names[addr].decode("utf-8", "replace")
                        yield _skip(
                            path,
                            None,
                            mtime_ns,
                            Skip.FS_METADATA,
                            f"another name of the folder {walked}, walked there (a directory "
                            "hard link, or a loop): its entries are listed once, under that name",
                            "dir",
                        )
                    if is_ntfs:  # a folder's named $DATA streams (a hiding place) are data
                        yield from self._file_streams(
                            entry, volume, image, path, meta, mtime_ns, deleted, is_ntfs, links,
                            folder=True,
                        )  # fmt: skip
                    continue
                if meta_type != int(t.TSK_FS_META_TYPE_REG):
                    yield _skip(
                        path,
                        int(meta.size),
                        mtime_ns,
                        _skip_for(t, meta_type),
                        None,
                        ("deleted-" if deleted else "") + kind_word,
                    )
                    continue
                if deleted:
                    first = read_deleted.setdefault(int(meta.addr), path)
                    if in_orphans and first != path:
                        named = first.decode("utf-8", "replace")
                        detail = f"listed again among TSK's orphans: read as {named}"
                        yield _skip(
                            path, int(meta.size), mtime_ns, Skip.DELETED, detail, "deleted-file"
                        )
                        continue
                yield from self._file_streams(
                    entry, volume, image, path, meta, mtime_ns, deleted, is_ntfs, links
                )
            stack.extend(reversed(subdirs))

    def _root_streams(
        self,
        image: OpenedImage,
        volume: Volume,
        path: bytes,
        links: dict[tuple[int, int, int], bytes],
    ) -> Iterator[FileTask | EntryOutcome]:
        """The named streams of an NTFS volume's root folder, as `FOLDER:STREAM` (`/:NAME`)."""
        try:
            entry = volume.fs.open_meta(inode=int(volume.fs.info.root_inum))
        except (OSError, RuntimeError) as exc:
            yield _folder_error(path, f"root folder cannot be opened for its streams: {exc}")
            return
        meta = entry.info.meta
        yield from self._file_streams(
            entry, volume, image, path, meta, _mtime_ns(meta), False, True, links, folder=True
        )

    def _unallocated_meta(self, volume: Volume, name: Any) -> tuple[Any, Any]:
        """(file, meta) of a name TSK listed without metadata, when that is a deleted file.

        Note that TSK hides the metadata of an allocated name whose record is
        not in use (an NTFS index entry left behind when the MFT record was
        freed), and gives none with the orphans it lists (a FAT file of a
        deleted folder whose own entry was reused), though it reads them
        by address. Opened by its address, a record that is not in use and whose
        sequence number still matches the name's is that deleted file; any
        other case stays a name without metadata.
        """
        t = self.pytsk3
        addr = int(getattr(name, "meta_addr", 0) or 0)
        if not addr:
            return None, None
        try:
            opened = volume.fs.open_meta(inode=addr)
        except (OSError, RuntimeError):
            return None, None
        meta = opened.info.meta
        if meta is None or not int(meta.flags) & int(t.TSK_FS_META_FLAG_UNALLOC):
            return None, None
        seq = getattr(name, "meta_seq", None)
        if seq and getattr(meta, "seq", None) and int(seq) != int(meta.seq):
            return None, None
        return opened, meta

    def _reserved(self, volume: Volume, name: Any) -> bool:
        """Whether a name points at a reserved NTFS MFT record not in use, with no data."""
        t = self.pytsk3
        addr = int(getattr(name, "meta_addr", 0) or 0)
        if addr not in _NTFS_RESERVED_RECORDS:
            return False
        try:
            opened = volume.fs.open_meta(inode=addr)
            meta = opened.info.meta
            if meta is None or int(meta.flags) & int(t.TSK_FS_META_FLAG_ALLOC):
                return False
            data = (int(t.TSK_FS_ATTR_TYPE_DEFAULT), int(t.TSK_FS_ATTR_TYPE_NTFS_DATA))
            return not any(int(a.info.type) in data and int(a.info.size) for a in opened)
        except (OSError, RuntimeError):
            return False

    def _is_fs_metadata(
        self, t: Any, inner: bytes, name: bytes, meta: Any, meta_type: int, ntfs: bool, fat: bool
    ) -> bool:
        if meta_type in (int(t.TSK_FS_META_TYPE_VIRT), int(t.TSK_FS_META_TYPE_VIRT_DIR)):
            return True  # $OrphanFiles, FAT's $MBR/$FAT1/$FAT2, exFAT's tables
        if ntfs and inner == b"" and name.startswith(b"$"):
            return int(meta.addr) < _NTFS_SYSTEM_RECORDS
        if fat and inner == b"" and name.endswith(_LABEL_SUFFIX):
            # Note: a label entry holds no data; a file of that name that does
            # (a long name may end so) is a file, never passed over unread.
            return int(meta.size) == 0
        if fat and inner == b"" and name in _EXFAT_SPECIAL:
            # Note: TSK shows exFAT's allocation bitmap, up-case table and
            # volume entries as regular root files. They carry no timestamps,
            # which no real exFAT file can lack (its epoch is 1980).
            return not (int(meta.crtime) or int(meta.mtime) or int(meta.atime))
        return False

    def _file_streams(
        self,
        entry: Any,
        volume: Volume,
        image: OpenedImage,
        path: bytes,
        meta: Any,
        mtime_ns: int,
        deleted: bool,
        is_ntfs: bool,
        links: dict[tuple[int, int, int], bytes],
        folder: bool = False,
    ) -> Iterator[FileTask | EntryOutcome]:
        """A file's data streams as tasks (a folder's: its named ones only).

        Only NTFS names streams: elsewhere a lone data attribute is the file's
        own content whatever TSK calls it (ext4's inline data is "DATA"; it
        was reported as a stream `FILE:DATA` that no ext4 file has).
        """
        t = self.pytsk3
        data_types = (int(t.TSK_FS_ATTR_TYPE_DEFAULT), int(t.TSK_FS_ATTR_TYPE_NTFS_DATA))
        streams: list[tuple[bytes, int, int, int]] = []
        seen: set[tuple[int, int]] = set()
        reparse = False
        tag: int | None = None  # the reparse point's tag, when it has one that can be read
        unnamed: Any = None  # the unnamed data stream's attribute
        try:
            for attr in entry:
                ai = attr.info
                atype = int(ai.type)
                if atype == int(t.TSK_FS_ATTR_TYPE_NTFS_REPARSE):
                    reparse = True
                    head = entry.read_random(0, 4, atype, int(ai.id))
                    tag = int.from_bytes(head, "little") if len(head) == 4 else None
                if atype not in data_types or (atype, int(ai.id)) in seen:
                    continue
                seen.add((atype, int(ai.id)))
                streams.append((bytes(ai.name or b""), atype, int(ai.id), int(ai.size)))
                if not ai.name and unnamed is None:
                    unnamed = attr
            # Note: the unnamed stream of a WOF-compressed, deduplicated or cloud
            # file is all hole; its data is kept elsewhere, and reads as zeros.
            elsewhere = reparse and unnamed is not None and _stores_nothing(t, unnamed)
        except (OSError, RuntimeError) as exc:
            yield EntryOutcome(
                path,
                int(meta.size),
                mtime_ns,
                failure=Failure.IO_ERROR,
                errno=errno_mod.EIO,
                detail=f"attributes unreadable: {exc}",
                kind=("deleted-" if deleted else "") + ("dir" if folder else "file"),
            )
            return
        kind = "deleted-file" if deleted else "file"
        if folder:
            streams = [s for s in streams if s[0]]
            if not streams:
                return
        elif reparse and tag in _SPECIAL_TAGS:
            skip, what = _SPECIAL_TAGS[tag]
            yield _skip(path, int(meta.size), mtime_ns, skip, f"NTFS reparse point: {what}", kind)
            return
        elif reparse and (tag is None or tag & _NAME_SURROGATE):
            # Note that NTFS symlinks and junctions (reparse points) show as
            # 0-byte regular files in TSK: never hash them as empty files.
            why = "its tag cannot be read" if tag is None else f"a link, tag 0x{tag:08X}"
            yield _skip(
                path, int(meta.size), mtime_ns, Skip.SYMLINK, f"NTFS reparse point ({why})", kind
            )
            return
        if not streams:
            streams = [(b"", int(t.TSK_FS_ATTR_TYPE_DEFAULT), 0, int(meta.size))]
        elif not is_ntfs and len(streams) == 1:
            streams = [(b"", *streams[0][1:])]
        streams.sort(key=lambda s: (s[0] != b"", s[0]))
        nlink = int(getattr(meta, "nlink", 1) or 1)
        for stream_name, atype, aid, size in streams:
            stream_path = path + (b":" + stream_name if stream_name else b"")
            if elsewhere and not stream_name and size:
                detail = (
                    f"NTFS reparse point (tag 0x{tag or 0:08X}): this stream stores no data (it is "
                    "all hole); the file's content is kept elsewhere (WOF compression, "
                    "deduplication, a cloud placeholder)"
                )
                yield _skip(stream_path, size, mtime_ns, Skip.UNSUPPORTED, detail, kind)
                continue
            link: bytes | None = None
            if nlink > 1 and not deleted:
                key = (int(meta.addr), atype, aid)
                link = links.setdefault(key, stream_path)
            yield FileTask(
                path=stream_path,
                size=size,
                mtime_ns=mtime_ns,
                dev=volume.index,
                ino=int(meta.addr),
                kind=("deleted-" if deleted else "") + ("stream" if stream_name else "file"),
                locator=(
                    "image",
                    image.path,
                    image.kind,
                    volume.offset,
                    int(meta.addr),
                    atype,
                    aid,
                ),
                link=link,
            )


def folder_holds(fs: Any, entry: Any, parts: list[bytes]) -> bool:
    """Whether the path `parts` (names, as the walk makes them unique) lies in a folder.

    Args:
        fs: the filesystem of `entry`.
        entry: a TSK entry of the image (a file of a folder listing), or None.
    """
    dir_type = int(_modules()[0].TSK_FS_META_TYPE_DIR)
    for part in parts:
        meta = None if entry is None else entry.info.meta
        if meta is None or int(meta.type) != dir_type:
            return False
        try:
            listing = sorted(
                ((bytes(f.info.name.name), f) for f in fs.open_dir(inode=int(meta.addr))),
                key=lambda item: item[0],
            )
        except (OSError, RuntimeError):
            return False  # the walk makes the folder an error: nothing below it is a path
        names = UniqueNames()
        entry = {names.unique(n): e for n, e in listing if n not in (b".", b"..")}.get(part)
    return entry is not None


def _folder_error(path: bytes, detail: str) -> EntryOutcome:
    """A folder of the image that TSK cannot list or open (a walk-error)."""
    return EntryOutcome(
        path=path,
        size=None,
        mtime_ns=None,
        failure=Failure.WALK,
        errno=errno_mod.EIO,
        detail=detail,
        kind="dir",
    )


def _lacks_dot(fs_type: str | None, root: bool, listing: list[tuple[bytes, Any]]) -> bool:
    """True when a folder that must hold a '.' entry on disk is listed without one.

    Every ext2/3/4 folder starts with '.' and '..' in its first block, as
    does every FAT12/16/32 folder but the root; exFAT and NTFS have no such
    entries on disk, so nothing is concluded there.
    """
    if fs_type in ("ext2", "ext3", "ext4") or (fs_type in ("fat12", "fat16", "fat32") and not root):
        return not any(name == b"." for name, _ in listing)
    return False


def _in_blocks(t: Any, fs: Any, inum: int) -> bool:
    """True when a folder's entries are stored in blocks of their own (not inline).

    An ext4 folder with inline data keeps its entries in its inode, where
    '.' and '..' are implied, not stored: TSK lists it without them.
    """
    try:
        attrs = list(fs.open_meta(inode=inum))
    except (OSError, RuntimeError):
        return True
    return any(int(a.info.flags) & int(t.TSK_FS_ATTR_NONRES) for a in attrs)


def _mtime_ns(meta: Any) -> int:
    return int(meta.mtime) * 1_000_000_000 + int(getattr(meta, "mtime_nano", 0) or 0)


def _stores_nothing(t: Any, attr: Any) -> bool:
    """True for a non-resident attribute none of whose runs is on the disk (all sparse)."""
    if not int(attr.info.flags) & int(t.TSK_FS_ATTR_NONRES):
        return False
    off_disk = int(t.TSK_FS_ATTR_RUN_FLAG_SPARSE) | int(t.TSK_FS_ATTR_RUN_FLAG_FILLER)
    return all(int(run.flags) & off_disk for run in attr)


def _meta_kind(t: Any, meta_type: int) -> str:
    if meta_type in (int(t.TSK_FS_META_TYPE_DIR), int(t.TSK_FS_META_TYPE_VIRT_DIR)):
        return "dir"
    if meta_type == int(t.TSK_FS_META_TYPE_REG):
        return "file"
    if meta_type == int(t.TSK_FS_META_TYPE_LNK):
        return "symlink"
    if meta_type == int(t.TSK_FS_META_TYPE_FIFO):
        return "fifo"
    if meta_type == int(t.TSK_FS_META_TYPE_SOCK):
        return "socket"
    if meta_type in (int(t.TSK_FS_META_TYPE_CHR), int(t.TSK_FS_META_TYPE_BLK)):
        return "device"
    return "other"


def _skip_for(t: Any, meta_type: int) -> Skip:
    return {
        "symlink": Skip.SYMLINK,
        "fifo": Skip.FIFO,
        "socket": Skip.SOCKET,
        "device": Skip.DEVICE,
    }.get(_meta_kind(t, meta_type), Skip.FS_METADATA)


def _skip(
    path: bytes, size: int | None, mtime_ns: int | None, skip: Skip, detail: str | None, kind: str
) -> EntryOutcome:
    return EntryOutcome(
        path=path, size=size, mtime_ns=mtime_ns, skip=skip, detail=detail, kind=kind
    )


# -- reading (in any worker) ------------------------------------------------------

_local = threading.local()


def _cached_volume(image_path: bytes, kind: str, offset: int) -> Any:
    """This thread's opened filesystem of an image (opened once per worker)."""
    cache: dict[bytes, OpenedImage] | None = getattr(_local, "images", None)
    if cache is None:
        cache = _local.images = {}
    image = cache.get(image_path)
    if image is None:
        image = cache[image_path] = OpenedImage(image_path, kind)
    for volume in image.volumes:
        if volume.offset == offset:
            return volume.fs
    raise OSError(errno_mod.ENOENT, f"no filesystem at offset {offset}")


def close_cached() -> None:
    """Close this thread's opened images (the reader's cache)."""
    cache: dict[bytes, OpenedImage] | None = getattr(_local, "images", None)
    _local.images = {}
    for image in (cache or {}).values():
        image.close()


def open_stream(locator: tuple[object, ...]) -> tuple[Any, int, int]:
    """(TSK file, attribute type, attribute id) for an image task's locator."""
    _, image_path, kind, offset, inode, atype, aid = locator
    assert isinstance(image_path, bytes) and isinstance(kind, str)
    assert isinstance(offset, int) and isinstance(inode, int)
    assert isinstance(atype, int) and isinstance(aid, int)
    try:
        fs = _cached_volume(image_path, kind, offset)
        return fs.open_meta(inode=inode), atype, aid
    except EvidenceError as exc:
        raise OSError(errno_mod.EIO, str(exc)) from exc
    except RuntimeError as exc:
        raise OSError(errno_mod.EIO, str(exc)) from exc


def read_range(handle: tuple[Any, int, int], offset: int, size: int) -> bytes:
    """Up to `size` bytes of a stream at `offset` (OSError when unreadable)."""
    tsk_file, atype, aid = handle
    try:
        data: bytes = tsk_file.read_random(offset, size, atype, aid)
    except RuntimeError as exc:
        raise OSError(errno_mod.EIO, str(exc)) from exc
    return data


def read_chunks(task: FileTask, buffer: memoryview) -> Iterator[bytes | memoryview]:
    """The content of an image task, chunk by chunk (a hashing `ChunkReader`)."""
    assert task.locator is not None
    handle = open_stream(task.locator)
    step = max(len(buffer), 1)
    offset = 0
    while offset < task.size:
        data = read_range(handle, offset, min(step, task.size - offset))
        if not data:
            raise OSError(errno_mod.EIO, f"short read at offset {offset}")
        offset += len(data)
        yield data


def verify_media(image: OpenedImage) -> dict[str, object]:
    """Re-hash an E01's media and compare with the MD5/SHA-1 stored in it.

    Note that libewf returns a corrupt chunk as zeros without any error:
    this full re-read is the only check that the image is intact.

    Returns:
        {"stored": {...}, "computed": {...}, "match": bool | None} (None: the
        E01 stores no hash to compare with).
    """
    handle = image.media.handle
    if handle is None:
        return {"stored": {}, "computed": {}, "match": None}
    stored: dict[str, str] = {}
    for name, key in (("md5", "MD5"), ("sha1", "SHA1")):
        value = handle.get_hash_value(key)
        if value:
            stored[name] = str(value).lower()
    hashers = {name: hasher_factory(name)() for name in stored}
    offset = 0
    error: str | None = None
    while offset < image.media.size and hashers:
        try:
            data = image.media.read(offset, min(_READ, image.media.size - offset))
        except OSError as exc:
            error = str(exc)
            break
        if not data:
            error = f"short read at offset {offset}"
            break
        for h in hashers.values():
            h.update(data)
        offset += len(data)
    computed = {name: h.hexdigest() for name, h in hashers.items()} if error is None else {}
    match = None if not stored else (error is None and computed == stored)
    result: dict[str, object] = {"stored": stored, "computed": computed, "match": match}
    if error is not None:
        result["error"] = error
    return result
