"""Base: the mount table, to tell where a path lies in its filesystem and what else shows it.

A bind mount shows a folder of a filesystem at a second place: a log written
to /cases/logs is also under an evidence root that has /cases bound inside
it, which no comparison of the two paths can see. Linux's mount table
(/proc/self/mountinfo) gives, for each mount, its filesystem (device
numbers), the folder of that filesystem it shows (its root) and where (its
mount point): a path's place in its filesystem is then known, and so is
every place that shows it. A mount covered by a later one at or above its
point shows nothing any more, and is left out.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence

_OCTAL = re.compile(rb"\\([0-7]{3})")


@dataclasses.dataclass(frozen=True)
class Mount:
    """One line of the mount table: `point` shows the folder `root` of filesystem `device`."""

    device: bytes  # "major:minor"
    root: bytes
    point: bytes


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
            found.append(Mount(fields[2], _unescaped(fields[3]), _unescaped(fields[4])))
    return found


def _unescaped(field: bytes) -> bytes:
    return _OCTAL.sub(lambda m: bytes([int(m.group(1), 8)]), field)


def inside(path: bytes, folder: bytes) -> bool:
    """True when `path` is `folder` or lies below it (both absolute, normalised)."""
    return path == folder or path.startswith(folder.rstrip(b"/") + b"/")


class MountView:
    """The uncovered mounts of a table, and what a path's place is; asked many times, read once."""

    def __init__(self, table: Sequence[Mount] | None = None):
        table = mounts() if table is None else table
        # Note: a mount with a later one at or above its point is hidden by it
        # (the table lists mounts in the order they were made).
        self.visible = [
            mount
            for index, mount in enumerate(table)
            if not any(inside(mount.point, later.point) for later in table[index + 1 :])
        ]
        self._places: dict[bytes, tuple[bytes, bytes] | None] = {}
        self._below: dict[bytes, list[Mount]] = {}

    def place(self, real: bytes) -> tuple[bytes, bytes] | None:
        """(device, path within its filesystem) of a resolved path; None when no mount holds it."""
        if real not in self._places:
            best: Mount | None = None
            for mount in self.visible:
                if inside(real, mount.point) and (
                    best is None or len(mount.point) > len(best.point)
                ):
                    best = mount
            if best is None:
                self._places[real] = None
            else:
                rest = real[len(best.point.rstrip(b"/")) :]
                self._places[real] = (
                    best.device,
                    best.root.rstrip(b"/") + rest if rest else best.root,
                )
        return self._places[real]

    def shown_inside(self, real: bytes, root: bytes) -> bool:
        """True when the resolved path `real` is also reached under the resolved folder `root`.

        Either `root` itself is a place of the same filesystem that holds
        `real` (a bind mount of it, or of a folder above it), or a mount at or
        below `root` shows a folder of `real`'s filesystem that holds it.
        """
        target, place = self.place(real), self.place(root)
        if target is None or place is None:
            return False
        if target[0] == place[0] and inside(target[1], place[1]):
            return True
        if root not in self._below:
            self._below[root] = [m for m in self.visible if inside(m.point, root)]
        return any(
            mount.device == target[0] and inside(target[1], mount.root)
            for mount in self._below[root]
        )
