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
    escapes; the third is the device.
    """
    try:
        with open(mountinfo, "rb") as stream:
            lines = stream.read().splitlines()
    except OSError:
        return []
    found = []
    for line in lines:
        fields = line.split(b" ")
        if len(fields) > 4:
            root, point = (
                _OCTAL.sub(lambda m: bytes([int(m.group(1), 8)]), f) for f in fields[3:5]
            )
            found.append(Mount(fields[2], root, point))
    return found


def _unescaped(field: bytes) -> bytes:
    return _OCTAL.sub(lambda m: bytes([int(m.group(1), 8)]), field)


def inside(path: bytes, folder: bytes) -> bool:
    """True when `path` is `folder` or lies below it (both absolute, normalised)."""
    return path == folder or path.startswith(folder.rstrip(b"/") + b"/")


def in_filesystem(real: bytes, table: Sequence[Mount]) -> tuple[bytes, bytes] | None:
    """(device, path within its filesystem) of a resolved path; None when no mount holds it.

    The mount that holds it is the one with the longest mount point above it;
    of mounts on one point, the last (it hides the others).
    """
    best: Mount | None = None
    for mount in table:
        if inside(real, mount.point) and (best is None or len(mount.point) >= len(best.point)):
            best = mount
    if best is None:
        return None
    rest = real[len(best.point.rstrip(b"/")) :]
    return best.device, best.root.rstrip(b"/") + rest if rest else best.root


def shown_inside(real: bytes, root: bytes, table: Sequence[Mount]) -> bool:
    """True when the resolved path `real` is also reached under the resolved folder `root`.

    Either `root` itself is a place of the same filesystem that holds
    `real` (a bind mount of it, or of a folder above it), or a mount at or
    below `root` shows a folder of `real`'s filesystem that holds it.
    """
    target, place = in_filesystem(real, table), in_filesystem(root, table)
    if target is None or place is None:
        return False
    if target[0] == place[0] and inside(target[1], place[1]):
        return True
    return any(
        inside(mount.point, root) and mount.device == target[0] and inside(target[1], mount.root)
        for mount in table
    )
