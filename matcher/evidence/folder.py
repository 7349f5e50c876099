"""Evidence folders and single files: a safe, read-only, deterministic walk.

The walk never follows a symlink: every directory is opened with
O_NOFOLLOW | O_DIRECTORY and checked against the device and inode that its
parent's listing showed, so a directory swapped for a symlink mid-walk is an
error, never a way out of the root. Paths stay bytes end to end. A path below
an evidence root, or the root itself, is opened from the root's real path with
no component followed as a symlink: in one openat2 call where Linux has it
(no_symlinks), else one component at a time (openat style).
Every entry ends as a `FileTask` (a regular file to hash) or an
`EntryOutcome` (skipped with a reason, or a failure): nothing is silent.
"""

from __future__ import annotations

import dataclasses
import errno as errno_mod
import fnmatch
import os
import re
import stat
import sys
from collections.abc import Callable
from collections.abc import Iterator
from collections.abc import Sequence
from stat import S_ISREG

from matcher.errors import os_error_detail
from matcher.errors import refuse_own_limit
from matcher.evidence import no_symlinks
from matcher.evidence.roots import absolute
from matcher.models import EntryOutcome
from matcher.models import Failure
from matcher.models import FileTask
from matcher.models import Skip
from matcher.mounts import inside
from matcher.mounts import mounts

_FS_ENCODING = sys.getfilesystemencoding()
_FS_ERRORS = sys.getfilesystemencodeerrors()
_BASE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK
_NOATIME = getattr(os, "O_NOATIME", 0)
# A folder opened only to look names up in (no read permission needed).
_LOOKUP_FLAGS = getattr(os, "O_PATH", os.O_RDONLY) | os.O_DIRECTORY | os.O_CLOEXEC
# Note that Linux refuses paths of PATH_MAX (4096) bytes or more in one call.
_LONG_PATH = 4000


def _open_once(path: bytes, flags: int, dir_fd: int | None = None) -> int:
    """os.open with O_NOATIME when permitted (EPERM for files we do not own)."""
    if not _NOATIME:
        return os.open(path, flags, dir_fd=dir_fd)
    try:
        return os.open(path, flags | _NOATIME, dir_fd=dir_fd)
    except PermissionError as exc:
        if exc.errno != errno_mod.EPERM:
            raise
        # Note that O_NOATIME needs file ownership or CAP_FOWNER; without
        # either, a plain read-only open is the best the kernel allows.
        return os.open(path, flags, dir_fd=dir_fd)


def _atime_keeper() -> int | None:
    """Whose files this process reads without moving their access times.

    None: everyone's (O_NOATIME with CAP_FOWNER, which root has). Otherwise
    the effective uid, the only owner whose files the kernel lets it open
    with O_NOATIME; -1 (no one's) where the system has no O_NOATIME.
    """
    if not _NOATIME:
        return -1
    try:
        with open("/proc/self/status", "rb") as status:
            for line in status:
                if line.startswith(b"CapEff:"):
                    return None if int(line.split()[1], 16) & (1 << _CAP_FOWNER) else os.geteuid()
    except (OSError, ValueError, IndexError):
        pass
    return None if os.geteuid() == 0 else os.geteuid()


# The capability that lets a process open any file with O_NOATIME (capability.h).
_CAP_FOWNER = 3


# What _unmapped_uid gives when it cannot tell (/proc unreadable).
_CANNOT_TELL = -2


def _unmapped_uid() -> int | None:
    """The uid that files of owners this user namespace does not map show; None outside one.

    Note: root of a rootless container has CAP_FOWNER, but only over the
    owners its namespace maps: for the others (shown as the overflow uid,
    65534) the kernel refuses O_NOATIME all the same. _CANNOT_TELL when
    /proc cannot be read.
    """
    try:
        with open("/proc/self/uid_map", "rb") as mapping:
            if mapping.read().split() == [b"0", b"0", b"4294967295"]:
                return None  # the initial namespace: every owner is mapped
        with open("/proc/sys/kernel/overflowuid", "rb") as overflow:
            return int(overflow.read())
    except (OSError, ValueError):
        return _CANNOT_TELL


@dataclasses.dataclass(frozen=True)
class AtimeRule:
    """Whose files and folders this process reads without O_NOATIME (their access times may move).

    `keeper`: the only owner whose files keep theirs (the effective uid,
    without CAP_FOWNER; -1: no one's, no O_NOATIME on this system), or None
    for every mapped owner's; `unmapped`: in a user namespace, the overflow
    uid its unmapped owners show as (see _unmapped_uid), or _CANNOT_TELL.
    A prediction from owners, so it errs towards "may have moved": a file
    shown as the overflow uid may be of a mapped owner of that uid.
    """

    keeper: int | None
    unmapped: int | None = None

    def moves(self, uid: int) -> bool:
        """True when a file or folder of `uid` may be read without O_NOATIME."""
        return (
            (self.keeper is not None and uid != self.keeper)
            or uid == self.unmapped
            or self.unmapped == _CANNOT_TELL
        )

    def why(self) -> str:
        """Why, in words, for the end record's note."""
        if self.unmapped == _CANNOT_TELL:
            return (
                "this process could not read /proc to tell whose files the kernel lets it "
                "open with O_NOATIME"
            )
        if self.keeper is not None and self.keeper < 0:
            return "this system has no O_NOATIME"
        mine = (
            f"they are not owned by this user (uid {self.keeper}), and the kernel grants "
            "O_NOATIME only to a file's owner or a process with CAP_FOWNER (root)"
        )
        theirs = (
            f"their owners may not be mapped in this user namespace (they show as uid "
            f"{self.unmapped}), and the kernel refuses O_NOATIME for files of unmapped owners "
            "even to its root"
        )
        if self.keeper is not None and self.unmapped is not None:
            return f"{mine}, or {theirs}"
        return mine if self.keeper is not None else theirs


def atime_rule() -> AtimeRule | None:
    """This process's AtimeRule; None when it opens every file with O_NOATIME."""
    keeper = _atime_keeper()
    unmapped = _unmapped_uid() if keeper is None or keeper >= 0 else None
    if keeper is None and unmapped is None:
        return None
    return AtimeRule(keeper, unmapped)


# Each evidence root as named (absolute, and as given) and as the kernel
# resolves it: a path under a root is opened from the root's real path. Set
# by FolderWalker, before the hashing workers are forked (they inherit it).
_REAL_ROOTS: dict[bytes, bytes] = {}
# The flags of a file's open (open_file), with O_NOATIME where the system has it.
_FILE_FLAGS = _BASE_FLAGS | _NOATIME
# open_file's openat2 calls, with and without O_NOATIME; None where openat2
# does not work (set by set_roots).
_open_file_fast: Callable[[bytes], int] | None = None
_open_file_plain: Callable[[bytes], int] | None = None
# (named + "/", len(named), real) for each root, the longest name first: a
# root named inside another (`S/ev` and `S/ev/link/x`) has its own real path,
# past the other's symlink.
_BELOW: list[tuple[bytes, int, bytes]] = []


def set_roots(real_roots: dict[bytes, bytes]) -> None:
    """The evidence roots, by name and real path: no component below one is followed."""
    global _open_file_fast, _open_file_plain
    if real_roots and no_symlinks.available():
        _open_file_fast = no_symlinks.opener(_FILE_FLAGS)
        _open_file_plain = no_symlinks.opener(_BASE_FLAGS)
    _REAL_ROOTS.clear()
    _REAL_ROOTS.update(real_roots)
    _BELOW[:] = sorted(
        (
            (named if named.endswith(b"/") else named + b"/", len(named), real)
            for named, real in _REAL_ROOTS.items()
        ),
        key=lambda below: -below[1],
    )


def _real_path(path: bytes) -> bytes | None:
    """`path` from its root's real path; None for a path under no root."""
    real = _REAL_ROOTS.get(path)
    if real is not None:
        return real
    for prefix, length, real in _BELOW:
        if path.startswith(prefix):
            return real + path[length:]
    return None


def _open_components(path: bytes, flags: int) -> int:
    """Open a path of any length one component at a time, never following a symlink.

    Note: a folder on the way moved elsewhere between two of the opens
    would take the rest of the lookup with it (out of the root): a path the
    kernel takes whole is looked up again after, and must lead to the same
    object (else ENOENT when it leads nowhere now, ELOOP when to another).
    """
    parts = [p for p in path.split(b"/") if p]
    start = b"/" if path.startswith(b"/") else b"."
    if not parts:
        return _open_once(start, flags)  # the root "/" itself
    # Note: the folders on the way are opened only to look names up in
    # (O_PATH): that needs no read permission, as a path's resolution needs
    # none (a home folder of mode 711 on the way to a root).
    dir_fd = os.open(start, _LOOKUP_FLAGS)
    try:
        for part in parts[:-1]:
            next_fd = os.open(part, _LOOKUP_FLAGS | os.O_NOFOLLOW, dir_fd=dir_fd)
            os.close(dir_fd)
            dir_fd = next_fd
        fd = _open_once(parts[-1], flags, dir_fd=dir_fd)
    finally:
        os.close(dir_fd)
    if len(path) < _LONG_PATH:
        try:
            now = os.stat(path, follow_symlinks=False)
            opened = os.fstat(fd)
            if (now.st_dev, now.st_ino) != (opened.st_dev, opened.st_ino):
                raise OSError(errno_mod.ELOOP, "a folder on the path changed while it was opened")
        except BaseException:
            os.close(fd)
            raise
    return fd


def _open_no_symlinks(path: bytes, flags: int) -> int:
    """Open `path` with no component followed as a symlink: openat2 where it works."""
    if len(path) >= _LONG_PATH or not no_symlinks.available():
        return _open_components(path, flags)
    if not _NOATIME:
        return no_symlinks.open_no_symlinks(path, flags)
    try:
        return no_symlinks.open_no_symlinks(path, flags | _NOATIME)
    except PermissionError as exc:
        if exc.errno != errno_mod.EPERM:
            raise
        return no_symlinks.open_no_symlinks(path, flags)  # see _open_once


def open_readonly(path: bytes, directory: bool = False) -> int:
    """A read-only, no-follow, non-blocking fd for an evidence path.

    A path under an evidence root, or a root itself, is opened from the
    root's real path as the scan began (a root named through a symlink,
    /home -> /var/home or `latest/`, is followed to it), and no component
    of it is followed as a symlink: a folder below the root, or one above
    it, swapped for a symlink is refused (ELOOP or ENOTDIR: `changed`).
    Note: only the last component had O_NOFOLLOW: a folder swapped for a
    symlink after the walk listed it led the open out of the root (its
    files said `vanished`, an object of the same name elsewhere opened, or
    a root's files read from where its parent's symlink now led).
    """
    flags = _BASE_FLAGS | (os.O_DIRECTORY if directory else 0)
    real = _real_path(path) if _REAL_ROOTS else None
    if real is not None:
        return _open_no_symlinks(real, flags)
    if len(path) >= _LONG_PATH:
        return _open_components(path, flags)
    return _open_once(path, flags)


def open_file(path: bytes) -> int:
    """open_readonly for a file the walk listed (the hashing workers' opener).

    Its common case kept short (a file below a root, openat2 here, a path
    under PATH_MAX): an open costs some 0.6 µs more than os.open's (ctypes),
    about 1% of the CPU of a scan of small files; anything else is
    open_readonly's.
    """
    for prefix, length, real in _BELOW:
        if path.startswith(prefix):
            if path in _REAL_ROOTS:
                break  # a root itself, named inside another (`ev/link/x`)
            full = real + path[length:]
            fast = _open_file_fast
            if fast is None or _open_file_plain is None or len(full) >= _LONG_PATH:
                return _open_components(full, _BASE_FLAGS)
            try:
                return fast(full)
            except PermissionError as exc:
                if exc.errno != errno_mod.EPERM or not _NOATIME:
                    raise
            return _open_file_plain(full)  # O_NOATIME refused: see _open_once
    return open_readonly(path)


def names_in(fd: int) -> list[bytes]:
    """The entry names of the open folder `fd`, as bytes, unsorted.

    Note that scandir(fd) gives str names; encoding them as fsencode does
    restores the exact bytes. Each is encoded as it comes (with listdir, a
    million str names were held at once beside their bytes).
    """
    with os.scandir(fd) as it:
        return [entry.name.encode(_FS_ENCODING, _FS_ERRORS) for entry in it]


def open_listed(path: bytes, dev: int, ino: int) -> int:
    """open_file for the very regular file the walk listed as (dev, ino).

    Raises:
        OSError: ESTALE when the path now names another object.
    """
    fd = open_file(path)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or (st.st_dev, st.st_ino) != (dev, ino):
            raise OSError(errno_mod.ESTALE, "replaced by another object after listing")
    except BaseException:
        os.close(fd)
        raise
    return fd


# The usual names of disk image files: EWF (E01, Ex01, S01, L01, Lx01), raw
# (dd, raw, img, 001) and virtual disks (vmdk, vhd, vhdx), AFF.
_IMAGE_SUFFIXES = rb"\.(?:e01|ex01|s01|l01|lx01|dd|raw|img|001|vmdk|vhdx?|aff4?)"
_IMAGE_IN_LISTING = re.compile(_IMAGE_SUFFIXES + rb"\0", re.IGNORECASE)
_IMAGE_NAME = re.compile(_IMAGE_SUFFIXES + rb"\Z", re.IGNORECASE)


def _image_names(names: list[bytes]) -> set[bytes]:
    """The names of one listing that are named as disk image files are (usually none).

    Note: one search over each run of names first, not a test per name: a
    folder walk meets a hundred thousand files where it meets one image. By
    runs of _IMAGE_SEARCH_NAMES: joined whole, a folder of a million names
    held two copies of all of them at once (some 60 MB).
    """
    found: set[bytes] = set()
    for start in range(0, len(names), _IMAGE_SEARCH_NAMES):
        run = names[start : start + _IMAGE_SEARCH_NAMES]
        if _IMAGE_IN_LISTING.search(b"\0".join(run) + b"\0") is not None:
            found.update(name for name in run if _IMAGE_NAME.search(name))
    return found


_IMAGE_SEARCH_NAMES = 4096


def _skip_for_mode(mode: int) -> Skip | None:
    if stat.S_ISLNK(mode):
        return Skip.SYMLINK
    if stat.S_ISFIFO(mode):
        return Skip.FIFO
    if stat.S_ISSOCK(mode):
        return Skip.SOCKET
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return Skip.DEVICE
    return None


def _kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "dir"
    if stat.S_ISREG(mode):
        return "file"
    skip = _skip_for_mode(mode)
    return skip.value if skip else "other"


def _walk_failure(path: bytes, exc: OSError, kind: str = "dir") -> EntryOutcome:
    """The error entry of what the walk could not list or stat.

    Raises:
        OutOfResources: the error is matcher's own limit (open files, memory).
    """
    refuse_own_limit(exc, path)
    code = exc.errno
    if code == errno_mod.ENOENT:
        failure = Failure.VANISHED
    elif code in (errno_mod.ELOOP, errno_mod.ENOTDIR):
        failure = Failure.CHANGED
    elif code in (errno_mod.EACCES, errno_mod.EPERM):
        failure = Failure.UNREADABLE
    else:
        failure = Failure.WALK
    detail = os_error_detail(exc)
    return EntryOutcome(
        path=path, size=None, mtime_ns=None, failure=failure, errno=code, detail=detail, kind=kind
    )


def mount_points(mountinfo: str = "/proc/self/mountinfo") -> frozenset[bytes]:
    """Every mount point this process sees (empty when the system does not say).

    A bind mount of a folder of the same filesystem keeps its device number,
    so `st_dev` alone cannot see that crossing; the mount table can.
    """
    return frozenset(mount.point for mount in mounts(mountinfo))


def _folder_roots(roots: Sequence[bytes]) -> dict[tuple[int, int], bytes]:
    """The roots that are folders: {(device, inode): real path}."""
    found: dict[tuple[int, int], bytes] = {}
    for root in roots:
        try:
            st = os.lstat(root)
        except OSError:
            continue  # the walk of that root says why
        if stat.S_ISDIR(st.st_mode):
            found[(st.st_dev, st.st_ino)] = os.fsencode(os.path.realpath(root))
    return found


def _one_pattern(patterns: Sequence[bytes]) -> Callable[[bytes], object] | None:
    """One matcher for all the glob `patterns`, as fnmatch.fnmatchcase reads each; None for none.

    fnmatch compiles a bytes pattern by way of its Latin-1 text; the
    alternatives are joined the same way.
    """
    if not patterns:
        return None
    texts = [fnmatch.translate(str(p, "ISO-8859-1")) for p in patterns]
    return re.compile(bytes("|".join(texts), "ISO-8859-1")).match


class FolderWalker:
    """Walks evidence roots (folders or single files) in a fixed, sorted order.

    Args:
        excludes: glob patterns matched against each entry's path relative to
            its root and against its name; a match is skipped as `excluded`.
        one_file_system: skip directories on another device than their root
            (`other-filesystem`); otherwise the crossing is walked and counted.
        roots: every evidence root named (also those dropped as nested):
            never excluded where a walk meets one.
        roots_checked: the roots were checked to be folders or files before
            the walk (a scan refuses any other root): one that is something
            else by the time the walk reaches it was replaced meanwhile.
    """

    def __init__(
        self,
        excludes: Sequence[str] = (),
        one_file_system: bool = False,
        roots: Sequence[str | os.PathLike[str]] = (),
        roots_checked: bool = False,
    ):
        self.roots_checked = roots_checked
        self.excludes = [os.fsencode(p) for p in excludes]
        self._any_exclude = _one_pattern(self.excludes)
        self.matched: set[bytes] = set()  # the patterns that took an entry
        # The patterns that matched an evidence root the examiner named, which no
        # pattern takes (said in the end note: "matched no entry" was said of them).
        self.spared: set[bytes] = set()
        # Every root the examiner named, by its real path: a root is never
        # excluded, also where another root's walk reaches it (README). Not by
        # (device, inode): a hard link to a file root is another entry.
        self.named = {os.fsencode(os.path.realpath(root)) for root in roots}
        real_roots: dict[bytes, bytes] = {}  # this scan's roots only (a batch runs several)
        for root in roots:
            # Note: "/" stays "/" (stripped, a root resolving to / was opened as "").
            real = os.fsencode(os.path.realpath(root)).rstrip(b"/") or b"/"
            # Note: as the scan names the walk's roots (absolute), and as given
            # (`matcher hash` walks `link/ev` as typed): keyed only by the
            # first, a long path under a relative root through a symlink was
            # opened from `.`, the link refused: ENOTDIR, "changed".
            for given in {os.fsencode(absolute(root)), os.fsencode(root)}:
                real_roots[given.rstrip(b"/") or b"/"] = real
        set_roots(real_roots)
        self.one_file_system = one_file_system
        self.crossings: list[bytes] = []
        # Whose folders and files may not keep their access times when read
        # (see AtimeRule), and the folders listed that may not have.
        self.atime_rule = atime_rule()
        self.listed_atime_moved = 0
        # Files named as disk images (see _image_names), hashed as files: noted.
        self.image_files = 0
        self.first_image_file: bytes | None = None
        self._mounts: frozenset[bytes] = frozenset()
        self._mounts_read = False
        self._inner_mounts = False  # the current root holds a mount point
        self._real_root: bytes | None = None
        self._root = b""
        self._roots_apart: dict[tuple[int, int], bytes] = {}

    def _real_path(self, path: bytes) -> bytes | None:
        """The host path of a directory below the current root (None: the root itself)."""
        below = path[len(self._root) :]
        if self._real_root is None or not below.startswith(b"/"):
            return None
        return self._real_root.rstrip(b"/") + below

    def excluded(self, relative: bytes, name: bytes) -> bool:
        """True when an --exclude pattern takes the entry (path relative to its root, name)."""
        pattern = self._pattern_for(relative, name)
        if pattern is not None:
            self.matched.add(pattern)
        return pattern is not None

    def _pattern_for(self, relative: bytes, name: bytes) -> bytes | None:
        """The first --exclude pattern that matches the entry, if any (nothing recorded)."""
        # Note: most entries match none; asked of every pattern in turn, 100
        # patterns made a scan of 200,000 files 3.4 x slower (10 s more).
        either = self._any_exclude
        if either is None or not (either(relative) or either(name)):
            return None
        for pattern in self.excludes:
            if fnmatch.fnmatchcase(relative, pattern) or fnmatch.fnmatchcase(name, pattern):
                return pattern
        return None

    def walk(self, roots: Sequence[bytes]) -> Iterator[FileTask | EntryOutcome]:
        """Yield every entry under every root, files before subfolders, sorted by name.

        A folder that is one of `roots` itself is walked as that root only:
        another root's walk leaves it out (distinct_roots keeps such a root
        where --exclude patterns would read otherwise against the outer one).
        """
        if len(roots) > 1:
            self.walk_apart(roots)
        for root in roots:
            yield from self._walk_root(root)

    def walk_apart(self, roots: Sequence[bytes]) -> None:
        """Walk each folder among `roots` as that root only, where one lies in another.

        For a caller that walks the roots of one run one at a time (walk([root])).
        """
        self._roots_apart = _folder_roots(roots)

    def _walked_apart(self, path: bytes, st: os.stat_result) -> bool:
        """True when the folder `path` is another root of the walk (see walk())."""
        real = self._roots_apart.get((st.st_dev, st.st_ino))
        # Note: the real path too: the same folder mounted again inside a
        # root (a bind mount) is a folder of that root's, walked there.
        return real is not None and os.fsencode(os.path.realpath(path)) == real

    def _classify(
        self,
        path: bytes,
        st: os.stat_result,
        parent_dev: int,
        relative: bytes,
        name: bytes,
        is_root: bool = False,
    ) -> FileTask | EntryOutcome | None:
        """A task or an outcome for one entry; None for a directory to descend into.

        `parent_dev` is the device of the folder holding the entry: a folder
        on another one (or a mount point) is a crossing, noted once there,
        not again for every folder below it. With --one-file-system the walk
        never goes below a crossing, so the parent is always on the root's.
        """
        mode = st.st_mode
        pattern = self._pattern_for(relative, name) if self.excludes else None
        if pattern is not None and (
            is_root
            # Note: never realpath() of a symlink (it reads the link, and its
            # atime moves): a link is never followed, so it is never a root.
            or (self.named and not stat.S_ISLNK(mode) and os.path.realpath(path) in self.named)
        ):
            self.spared.add(pattern)  # an evidence root: never excluded
        elif pattern is not None:
            self.matched.add(pattern)
            return EntryOutcome(
                path=path,
                size=st.st_size,
                mtime_ns=st.st_mtime_ns,
                skip=Skip.EXCLUDED,
                kind=_kind(mode),
            )
        if stat.S_ISREG(mode):
            # Note: a file can be a mount point too (a bind mount of one file):
            # it was read across, with --one-file-system and unnoted without
            # (a validator). The mount table decides, never the file's device
            # (an overlay's files report their layer's: a review). It is asked
            # only below a root that holds a mount point.
            if self._inner_mounts and self._real_path(path) in self._mounts:
                if self.one_file_system:
                    return EntryOutcome(path=path, size=st.st_size, mtime_ns=st.st_mtime_ns,
                                        skip=Skip.OTHER_FILESYSTEM, kind="file")  # fmt: skip
                self.crossings.append(path)
            return FileTask(path, st.st_size, st.st_mtime_ns, st.st_dev, st.st_ino, uid=st.st_uid)
        if stat.S_ISDIR(mode):
            if st.st_dev != parent_dev or self._real_path(path) in self._mounts:
                if self.one_file_system:
                    return EntryOutcome(
                        path=path,
                        size=None,
                        mtime_ns=st.st_mtime_ns,
                        skip=Skip.OTHER_FILESYSTEM,
                        kind="dir",
                    )
                self.crossings.append(path)
            return None
        skip = _skip_for_mode(mode)
        return EntryOutcome(
            path=path,
            size=st.st_size,
            mtime_ns=st.st_mtime_ns,
            skip=skip or Skip.DEVICE,
            kind=_kind(mode),
        )

    def _walk_root(self, root: bytes) -> Iterator[FileTask | EntryOutcome]:
        try:
            st = os.lstat(root)
        except OSError as exc:
            yield _walk_failure(root, exc, kind="root")
            return
        name = os.path.basename(root.rstrip(b"/")) or root
        if self.roots_checked and not (stat.S_ISDIR(st.st_mode) or stat.S_ISREG(st.st_mode)):
            # Note: replaced after the scan's own check (a symlink now): skipped
            # as one, the run was a complete scan of nothing, exit 0.
            yield EntryOutcome(
                path=root,
                size=None,
                mtime_ns=None,
                failure=Failure.CHANGED,
                detail=f"the evidence root was replaced after the scan began (it is now a "
                f"{_kind(st.st_mode)}, not a folder or a file)",
                kind="root",
            )
            return
        self._real_root = os.path.realpath(root) if stat.S_ISDIR(st.st_mode) else None
        if self._real_root is not None and not self._mounts_read:
            self._mounts, self._mounts_read = mount_points(), True
        real = self._real_root
        self._inner_mounts = real is not None and any(
            point != real and inside(point, real) for point in self._mounts
        )
        self._root = root.rstrip(b"/")
        # Note: the root is what the examiner named: no --exclude pattern takes
        # it (a pattern matching its own name made a complete scan of nothing).
        first = self._classify(root, st, st.st_dev, name, name, is_root=True)
        if first is not None:
            yield first
            return
        stack: list[tuple[bytes, int, int, bytes]] = [(root, st.st_dev, st.st_ino, b"")]
        while stack:
            path, dev, ino, relative = stack.pop()
            listing = self._list_dir(path, dev, ino)
            try:
                if isinstance(listing, EntryOutcome):
                    yield listing
                    continue
                fd, names = listing
                subdirs: list[tuple[bytes, int, int, bytes]] = []
                prefix = path.rstrip(b"/") + b"/"
                plain = not self.excludes and not self._inner_mounts
                lstat = os.stat
                imagelike = _image_names(names)
                for name in names:
                    child = prefix + name
                    try:
                        child_st = lstat(name, dir_fd=fd, follow_symlinks=False)
                    except OSError as exc:
                        yield _walk_failure(child, exc, kind="entry")
                        continue
                    if plain and S_ISREG(child_st.st_mode):
                        # The common case, kept short: a regular file, no exclude patterns.
                        if imagelike and name in imagelike:
                            self._image_file(child)
                        yield FileTask(
                            child, child_st.st_size, child_st.st_mtime_ns, child_st.st_dev,
                            child_st.st_ino, uid=child_st.st_uid,
                        )  # fmt: skip
                        continue
                    child_rel = relative + b"/" + name if relative else name
                    result = self._classify(child, child_st, dev, child_rel, name)
                    if imagelike and name in imagelike and isinstance(result, FileTask):
                        self._image_file(child)  # not excluded
                    if result is None:
                        if self._roots_apart and self._walked_apart(child, child_st):
                            continue  # walked as a root of its own
                        subdirs.append((child, child_st.st_dev, child_st.st_ino, child_rel))
                    else:
                        yield result
            finally:
                # Note: also when the consumer stops early (a closed generator).
                if not isinstance(listing, EntryOutcome):
                    os.close(listing[0])
            stack.extend(reversed(subdirs))

    def _image_file(self, path: bytes) -> None:
        """Count a file named as a disk image that the walk hashes as a file (noted by the scan).

        Not one the examiner also named as evidence: walked as an image there.
        """
        if self.named and os.fsencode(os.path.realpath(path)) in self.named:
            return
        self.image_files += 1
        self.first_image_file = self.first_image_file or path

    def _list_dir(self, path: bytes, dev: int, ino: int) -> tuple[int, list[bytes]] | EntryOutcome:
        """The open directory and its entries' names, sorted; the caller closes the fd.

        Note: names only, each entry's lstat taken (relative to the fd) as
        the walk reaches it: a folder is listed whole to be sorted, and a
        full stat kept per entry held 322 MB for 300,000 entries in one folder.
        """
        try:
            fd = open_readonly(path, directory=True)
        except OSError as exc:
            return _walk_failure(path, exc)
        handed_over = False  # the fd is closed here unless returned, exactly once
        try:
            st = os.fstat(fd)
            if (st.st_dev, st.st_ino) != (dev, ino):
                return EntryOutcome(
                    path=path,
                    size=None,
                    mtime_ns=None,
                    failure=Failure.CHANGED,
                    detail="directory replaced after listing",
                    kind="dir",
                )
            if self.atime_rule is not None and self.atime_rule.moves(st.st_uid):
                self.listed_atime_moved += 1  # its listing may move its access time
            names = names_in(fd)
            names.sort()
            handed_over = True
            return fd, names
        except OSError as exc:
            return _walk_failure(path, exc)
        finally:
            if not handed_over:
                os.close(fd)
