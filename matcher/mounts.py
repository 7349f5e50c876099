"""Base: the mount table, to tell where a path lies in its filesystem and what else shows it.

A bind mount shows a folder of a filesystem at a second place: a log written
to /cases/logs is also under an evidence root that has /cases bound inside
it, which no comparison of the two paths can see. Linux's mount table
(/proc/self/mountinfo) gives, for each mount, its filesystem (device
numbers), the folder of that filesystem it shows (its root) and where (its
mount point): a path's place in its filesystem is then known, and so is
every place that shows it.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Callable
from collections.abc import Sequence

_OCTAL = re.compile(rb"\\([0-7]{3})")


@dataclasses.dataclass(frozen=True)
class Mount:
    """One line of the mount table: `point` shows the folder `root` of filesystem `device`."""

    device: bytes  # "major:minor"
    root: bytes
    point: bytes
    ident: bytes = b""  # the kernel's mount ID (first field)


def mounts(mountinfo: str = "/proc/self/mountinfo") -> list[Mount]:
    """The mounts this process sees, in the table's order (empty when the system does not say).

    The fourth and fifth fields of a mountinfo line are the root and the
    mount point, with space, tab, newline and backslash written as octal
    escapes (a carriage return is not: lines end at a newline only); the
    third is the device.
    """
    try:
        with open(mountinfo, "rb") as stream:
            lines = stream.read().split(b"\n")
    except OSError:
        return []
    found = []
    for line in lines:
        fields = line.split(b" ")
        if len(fields) > 4:
            found.append(Mount(fields[2], _unescaped(fields[3]), _unescaped(fields[4]), fields[0]))
    return found


def _unescaped(field: bytes) -> bytes:
    return _OCTAL.sub(lambda m: bytes([int(m.group(1), 8)]), field)


def inside(path: bytes, folder: bytes) -> bool:
    """True when `path` is `folder` or lies below it (both absolute, normalised)."""
    return path == folder or path.startswith(folder.rstrip(b"/") + b"/")


class MountView:
    """A mount table and what each path's place is; asked many times, read once.

    Note: which mount hides which cannot be told from the table's order (a
    moved mount keeps its place in it): a path's mount is the one the kernel
    names for it, and a place the table suggests under a root is confirmed
    by the folder found there, compared by device and inode.
    """

    def __init__(
        self,
        table: Sequence[Mount] | None = None,
        identity: Callable[[bytes], tuple[int, int] | None] | None = None,
    ):
        self._identity = identity or _identity
        # (A table given, as a test's, is not this process's: the kernel is not asked.)
        self._mount_id = mount_id if table is None else _unknown_mount
        self._fresh = table is None  # may read the table again once (see place)
        self._take(mounts() if table is None else table)

    def _take(self, table: Sequence[Mount]) -> None:
        """Use `table`, forgetting what was worked out from another."""
        self.table = list(table)
        self._by_ident = {m.ident: m for m in self.table if m.ident}
        self._places: dict[bytes, tuple[bytes, bytes] | None] = {}
        self._below: dict[bytes, list[Mount]] = {}

    def _mounts_below(self, root: bytes) -> list[Mount]:
        """The mounts at or below the resolved folder `root`."""
        if root not in self._below:
            self._below[root] = [m for m in self.table if inside(m.point, root)]
        return self._below[root]

    def place(self, real: bytes) -> tuple[bytes, bytes] | None:
        """(device, path within its filesystem) of a resolved path; None when no mount holds it.

        The mount that holds it is the one the kernel names for it (its mount
        ID in /proc/self/fdinfo); failing that (no such path, no /proc), the
        one with the longest mount point above it, of mounts on one point the
        last listed (which a moved mount, or one covered from above, defeats).
        """
        if real in self._places:
            return self._places[real]
        ident = self._mount_id(real)
        if ident is not None and ident not in self._by_ident and self._fresh:
            # Note: a mount made since the table was read (an automount, or
            # a batch's later item) is read again, once (a review).
            self._fresh = False
            self._take(mounts())
        best = self._by_ident.get(ident or b"")
        if best is None or not inside(real, best.point):
            best = None
            for mount in self.table:
                if inside(real, mount.point) and (
                    best is None or len(mount.point) >= len(best.point)
                ):
                    best = mount
        found = None
        if best is not None:
            rest = real[len(best.point.rstrip(b"/")) :]
            found = (best.device, best.root.rstrip(b"/") + rest if rest else best.root)
        self._places[real] = found
        return found

    def shown_inside(self, folder: bytes, root: bytes) -> bool:
        """True when the resolved folder `folder` is also reached under the resolved folder `root`.

        Either `root` itself is a place of the filesystem that holds `folder`
        (a bind mount of it, or of a folder above it), or a mount at or below
        `root` shows a folder of that filesystem that holds it; and the
        folder found at that place is `folder` itself.
        """
        target, place = self.place(folder), self.place(root)
        if target is None or place is None:
            return False
        device, path = target
        candidates = []
        if device == place[0] and inside(path, place[1]):
            candidates.append(root.rstrip(b"/") + path[len(place[1].rstrip(b"/")) :])
        candidates += [
            mount.point.rstrip(b"/") + path[len(mount.root.rstrip(b"/")) :]
            for mount in self._mounts_below(root)
            if mount.device == device and inside(path, mount.root)
        ]
        wanted = self._identity(folder) if candidates else None
        return wanted is not None and any(self._identity(c or b"/") == wanted for c in candidates)

    def bound_inside(self, file: bytes, root: bytes) -> bool:
        """True when a mount at or below the resolved folder `root` is the file `file` itself.

        Note: a file bind-mounted into the evidence (a store, say) has one
        name: no hard link tells of it, and its folder is not shown there.
        """
        wanted, target = self._identity(file), self.place(file)
        if wanted is None or target is None:
            return False
        return any(
            self._identity(m.point) == wanted
            for m in self._mounts_below(root)
            if m.device == target[0]  # (a bind mount keeps its filesystem's device)
        )


def mount_id(path: bytes) -> bytes | None:
    """The kernel's ID of the mount through which `path` is reached; None when it cannot say."""
    try:
        fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        with open(f"/proc/self/fdinfo/{fd}", "rb") as info:
            for line in info:
                if line.startswith(b"mnt_id:"):
                    return line.split(b":", 1)[1].strip()
    except OSError:
        return None
    finally:
        os.close(fd)
    return None


def _unknown_mount(path: bytes) -> bytes | None:
    return None


def _identity(path: bytes) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino
