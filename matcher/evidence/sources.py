"""One walk over every kind of evidence root: folders, single files, disk images, archives.

`prepare_images` decides, before a scan opens its log, which file roots are
disk images (by content) and opens them, so that a broken image is a fatal
error with nothing scanned. `EvidenceWalker` then yields, in a fixed order,
every entry of every root; with `archives`, each regular file that is an
archive is followed by its members. `read_chunks` is the hashing engine's
chunk reader for everything that is not a plain file.
"""

from __future__ import annotations

import functools
import os
import re
import stat
import sys
from collections.abc import Callable
from collections.abc import Iterator
from collections.abc import Mapping
from collections.abc import Sequence
from typing import Any

from matcher.errors import EvidenceError
from matcher.evidence import image as image_mod
from matcher.evidence.folder import FolderWalker
from matcher.evidence.folder import open_listed
from matcher.evidence.folder import set_roots
from matcher.evidence.limits import ArchiveLimits
from matcher.models import EntryOutcome
from matcher.models import FileTask
from matcher.models import Skip


def prepare_images(
    roots: Sequence[bytes], require: bool = False
) -> dict[bytes, image_mod.OpenedImage]:
    """Open every root that is a disk image; {root: opened image}.

    Args:
        require: every regular-file root must be an image (refuse the rest).

    Raises:
        EvidenceError: an image that cannot be opened, is incomplete, or holds
            no volume system or filesystem; an image without the extra.
    """
    opened: dict[bytes, image_mod.OpenedImage] = {}
    try:
        for root in roots:
            try:
                st = os.lstat(root)
            except OSError:
                continue  # the folder walker records it
            if not stat.S_ISREG(st.st_mode):
                continue
            kind = image_mod.detect(root, require=require)
            if kind is not None:
                opened[root] = image_mod.OpenedImage(root, kind)
    except BaseException:
        for image in opened.values():
            image.close()
        raise
    return opened


class EvidenceWalker:
    """Walks roots of every kind, in the order given, each in its fixed order.

    Args:
        folder: the folder walker (excludes, one-file-system).
        images: the opened images, by root (from `prepare_images`).
        deleted: hash deleted image entries whose content TSK can read.
        archives: the archive limits, or None not to look inside archives.
        max_size: an archive larger than this is not opened (--max-size: the
            file itself is skipped as too large, never read).
    """

    def __init__(
        self,
        folder: FolderWalker,
        images: dict[bytes, image_mod.OpenedImage],
        deleted: bool = False,
        archives: ArchiveLimits | None = None,
        max_size: int | None = None,
    ):
        self.folder = folder
        self.max_size = max_size
        self.images = images
        self.deleted = deleted
        self.archives = None
        if archives is not None:
            # Note: the archive readers (tarfile, zipfile, lzma, ...) load only
            # for a scan that looks inside archives: a tenth of every start-up.
            from matcher.evidence import archive as archive_mod

            self.archives = archive_mod.ArchiveWalker(archives, max_size)

    @property
    def crossings(self) -> list[bytes]:
        return self.folder.crossings

    def walk(self, roots: Sequence[bytes]) -> Iterator[FileTask | EntryOutcome]:
        """Every entry under every root (archive members right after their archive)."""
        self.folder.walk_apart(roots)
        for root in roots:
            image = self.images.get(root)
            walker: image_mod.ImageWalker | None = None
            if image is not None:
                walker = image_mod.ImageWalker(self.deleted)
                items = walker.walk(image)
                if self.folder.excludes:
                    items = self._excluding(items, root)
            else:
                items = self.folder.walk([root])
            if self.archives is None:
                yield from items  # no per-entry step when archives stay closed
                continue
            for item in items:
                yield item
                if self.archives is not None and isinstance(item, FileTask):
                    yield from self._inside(item, walker)

    def _excluding(
        self, items: Iterator[FileTask | EntryOutcome], root: bytes
    ) -> Iterator[FileTask | EntryOutcome]:
        """A disk image's entries, each one `--exclude` takes made a skip.

        A pattern is matched as in a folder (FolderWalker.excluded), against
        the entry's path inside the image (its volume label left out) and its
        name, and against each folder above it: a folder excluded inside an
        image takes what lies below it, and an archive excluded there is not
        opened. Before, the patterns were matched in folders only, though the
        run record listed them. (Archive members are not matched: a member's
        name may hold the `!` that joins nested paths, so its place in the
        archive cannot be told from its path; the end record says so.)
        """
        for item in items:
            if self._excluded_inside(item.path[len(root) :]):
                item = EntryOutcome.skipped(
                    item.path, item.size, item.mtime_ns, Skip.EXCLUDED, item.kind
                )
            yield item

    def _excluded_inside(self, below_root: bytes) -> bool:
        """`below_root`: an image entry's path after the image's own, `!LABEL/path`."""
        inner = _VOLUME_LABEL.sub(b"", below_root.removeprefix(b"!"), count=1)
        parts = inner.split(b"/")
        return any(
            self.folder.excluded(b"/".join(parts[: depth + 1]), part)
            for depth, part in enumerate(parts)
            if part
        )

    def _inside(
        self, task: FileTask, walker: image_mod.ImageWalker | None
    ) -> Iterator[FileTask | EntryOutcome]:
        from matcher.evidence import archive as archive_mod

        assert self.archives is not None
        if task.size < 4 or task.link not in (None, task.path):
            return  # too small for any archive, or a hard link already walked
        if self.max_size is not None and task.size > self.max_size:
            # Note: skipped as too large, the file was still read for its
            # members (--max-size is there to spare the reading of big files).
            return
        # Note: a file whose first or last bytes cannot be read is the file's own
        # error, when it is hashed (the same open, the same listed identity,
        # the same bytes): nothing shows it is an archive, so it gets no
        # `FILE!` entry too (it was two errors for one unreadable file).
        exists: Callable[[bytes], bool]
        if task.locator is None:
            exists = _ExistsBeside(task.path)
            try:
                fd = open_listed(task.path, task.dev, task.ino)
                try:
                    st = os.fstat(fd)
                    head = os.pread(fd, archive_mod.HEAD, 0)
                    tail = head
                    if task.size > archive_mod.HEAD:
                        tail = os.pread(fd, archive_mod.HEAD, task.size - archive_mod.HEAD)
                finally:
                    os.close(fd)
            except OSError:
                return
            if (st.st_size, st.st_mtime_ns) != (task.size, task.mtime_ns):
                return  # changed since the walk: the file's own read says so
            # Note: its members are read only from the file as listed here (open_base).
            base: tuple[object, ...] = archive_mod.file_base(task.path, st)
        elif task.locator[0] == "image":
            assert walker is not None
            base = (*task.locator, task.size)
            exists = functools.partial(_names_a_sibling, task.path, walker.entries, walker.fs)
            try:
                handle = image_mod.open_stream(task.locator)
                head = image_mod.read_range(handle, 0, min(archive_mod.HEAD, task.size))
                tail = head
                if task.size > archive_mod.HEAD:
                    tail = image_mod.read_range(
                        handle, task.size - archive_mod.HEAD, archive_mod.HEAD
                    )
            except OSError:
                return
        else:
            return  # members are walked by the archive walker itself
        yield from self.archives.walk(task.path, base, head, task.size, exists, tail)

    def close(self) -> None:
        """Close what the walk and this thread's readers opened (not the images given).

        The walk's roots are forgotten too: a later open in this process (the
        next scan's self-test) is not of this walk's evidence.
        """
        close_readers()
        set_roots({})


# An image entry's volume label, as ImageWalker makes it: `p1@1048576:ntfs/`.
_VOLUME_LABEL = re.compile(rb"^p\d+@\d+:[^/]*/")


class _ExistsBeside:
    """os.path.lexists for the member paths of one archive in a folder, one look per subfolder.

    A member path `a.zip!d/x` names a file only if `a.zip!d` (its first
    component, beside the archive) does: a first component found missing
    is remembered for the archive's walk, so that a zip of many members in
    few folders costs a few looks, not one `lstat` per member.
    """

    def __init__(self, archive: bytes):
        self._start = len(archive) + 1
        self._missing: set[bytes] = set()

    def __call__(self, path: bytes) -> bool:
        cut = path.find(b"/", self._start)
        if cut != -1:
            first = path[:cut]
            if first in self._missing:
                return False
            if not os.path.lexists(first):
                self._missing.add(first)
                return False
        return os.path.lexists(path)


def _names_a_sibling(archive: bytes, entries: Mapping[bytes, Any], fs: Any, path: bytes) -> bool:
    """Whether a member path of `archive` (in an image) names an entry of the image.

    The image walker is still in the archive's folder, whose entries it gives
    by name (`entries`, in the filesystem `fs`): a file `a.zip!x` beside
    `a.zip` has the path of member `x`, and a folder `a.zip!d` may hold the
    path of member `d/y`. Names are compared as bytes (any encoding, NUL
    included), exactly, and the folder is listed once: no lookup per member
    but for one under such a folder, looked up in it.
    """
    folder = archive[: archive.rfind(b"/") + 1]
    if not path.startswith(folder):
        return False
    first, _, rest = path[len(folder) :].partition(b"/")
    if first not in entries:
        return False
    # Note: "under a folder `a.zip!d`" held for `d/y (duplicate 2)` too, so
    # the search for a free path never ended: the scan hung, at full CPU.
    return not rest or image_mod.folder_holds(fs, entries[first], rest.split(b"/"))


def read_chunks(task: FileTask, buffer: memoryview) -> Iterator[bytes | memoryview]:
    """The chunk reader for located tasks: files in images, archive members."""
    assert task.locator is not None
    if task.locator[0] == "image":
        return image_mod.read_chunks(task, buffer)
    if task.locator[0] == "member":
        from matcher.evidence import archive as archive_mod

        return archive_mod.read_chunks(task, buffer)
    raise EvidenceError(f"unknown locator kind {task.locator[0]!r}")


def close_readers() -> None:
    """Close what this thread's chunk readers keep open (images, archive containers)."""
    archive_mod = sys.modules.get("matcher.evidence.archive")
    if archive_mod is not None:  # else no archive was ever opened
        archive_mod.close_cached()
    image_mod.close_cached()


def verify_images(images: dict[bytes, image_mod.OpenedImage]) -> dict[bytes, dict[str, object]]:
    """Re-hash each E01's media against its stored hashes; {root: result}."""
    return {
        root: image_mod.verify_media(image) for root, image in images.items() if image.kind == "e01"
    }
