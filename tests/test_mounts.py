"""The mount table: where a path lies in its filesystem, and what else shows it (bind mounts)."""

from __future__ import annotations

from pathlib import Path

from matcher.mounts import MountView
from matcher.mounts import inside
from matcher.mounts import mounts

TABLE = """\
22 1 254:0 / / rw,relatime - ext4 /dev/vda rw
30 22 0:40 / /tmp rw - tmpfs tmpfs rw
31 22 254:0 /cases/logs /mnt/ev/bound rw - ext4 /dev/vda rw
32 22 254:0 /cases /mnt/above rw - ext4 /dev/vda rw
33 22 254:0 /with\\040space /mnt/sp rw - ext4 /dev/vda rw
34 30 0:41 / /tmp rw - tmpfs tmpfs rw
35 22 254:0 /cases/logs /mnt/hidden/b2 rw - ext4 /dev/vda rw
36 22 0:42 / /mnt/hidden rw - tmpfs tmpfs rw
39 22 254:0 /cr /mnt/x\ry rw - ext4 /dev/vda rw
"""
# What stat() finds at each path (device, inode): /mnt/hidden/b2 is on the tmpfs
# mounted over /mnt/hidden, not the bind of /cases/logs made there before it.
FOLDERS = {
    b"/cases/logs": (1, 10), b"/mnt/ev/bound": (1, 10), b"/mnt/above/logs": (1, 10),
    b"/mnt/hidden/b2": (42, 2), b"/srv/ev2": (1, 20), b"/tmp": (41, 1),
}  # fmt: skip


def _view(tmp_path: Path) -> MountView:
    info = tmp_path / "mountinfo"
    info.write_bytes(TABLE.encode())
    return MountView(mounts(str(info)), identity=FOLDERS.get)


def test_a_path_is_placed_by_the_last_mount_of_the_longest_point(tmp_path: Path) -> None:
    view = _view(tmp_path)
    assert view.place(b"/cases/logs/run.jsonl") == (b"254:0", b"/cases/logs/run.jsonl")
    assert view.place(b"/mnt/ev/bound/run.jsonl") == (b"254:0", b"/cases/logs/run.jsonl")
    assert view.place(b"/mnt/ev/bound") == (b"254:0", b"/cases/logs")
    assert view.place(b"/tmp/x") == (b"0:41", b"/x")  # the second /tmp hides the first
    assert view.place(b"/mnt/sp/a") == (b"254:0", b"/with space/a")  # octal escapes
    # A carriage return in a mount point is not a line end (mountinfo leaves it unescaped).
    assert view.place(b"/mnt/x\ry/f") == (b"254:0", b"/cr/f")
    assert inside(b"/a/b", b"/a") and inside(b"/a", b"/a") and inside(b"/a", b"/")
    assert not inside(b"/ab", b"/a")


def test_a_folder_is_shown_inside_a_root_where_the_same_folder_is_found(tmp_path: Path) -> None:
    view = _view(tmp_path)
    logs = b"/cases/logs"
    assert view.shown_inside(logs, b"/mnt/ev")  # its bind inside the root
    assert view.shown_inside(logs, b"/mnt/above")  # the root is a bind of a folder above it
    assert view.shown_inside(logs, b"/mnt/above/logs")
    assert not view.shown_inside(logs, b"/mnt/above/other")
    assert not view.shown_inside(logs, b"/srv/ev2")  # same filesystem, another folder
    assert not view.shown_inside(b"/tmp", b"/mnt/ev")  # another filesystem
    # The table says /mnt/hidden/b2 shows it, but another folder is found there (a review:
    # which mount covers which is not in the table's order).
    assert not view.shown_inside(logs, b"/mnt/hidden")
    assert not MountView([]).shown_inside(logs, b"/mnt/ev")  # no table: paths alone decide
