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
37 22 0:43 / /srv/hid/a rw - tmpfs tmpfs rw
38 22 254:0 /srv/ev/sub /srv/hid rw - ext4 /dev/vda rw
39 22 254:0 /cr /mnt/x\ry rw - ext4 /dev/vda rw
"""


def _view(tmp_path: Path) -> MountView:
    info = tmp_path / "mountinfo"
    info.write_bytes(TABLE.encode())
    return MountView(mounts(str(info)))


def test_a_path_is_placed_by_the_visible_mount_of_the_longest_point(tmp_path: Path) -> None:
    view = _view(tmp_path)
    assert view.place(b"/cases/logs/run.jsonl") == (b"254:0", b"/cases/logs/run.jsonl")
    assert view.place(b"/mnt/ev/bound/run.jsonl") == (b"254:0", b"/cases/logs/run.jsonl")
    assert view.place(b"/mnt/ev/bound") == (b"254:0", b"/cases/logs")
    assert view.place(b"/tmp/x") == (b"0:41", b"/x")  # the second /tmp hides the first
    assert view.place(b"/mnt/sp/a") == (b"254:0", b"/with space/a")  # octal escapes
    # A mount covered by a later one shows nothing (a review): /srv/hid/a is the bind's now.
    assert view.place(b"/srv/hid/a/log") == (b"254:0", b"/srv/ev/sub/a/log")
    assert view.place(b"/mnt/hidden/b2/log") == (b"0:42", b"/b2/log")
    # A carriage return in a mount point is not a line end (mountinfo leaves it unescaped).
    assert view.place(b"/mnt/x\ry/f") == (b"254:0", b"/cr/f")
    assert inside(b"/a/b", b"/a") and inside(b"/a", b"/a") and inside(b"/a", b"/")
    assert not inside(b"/ab", b"/a")


def test_an_output_is_shown_inside_a_root_by_a_bind_below_it_or_above_it(tmp_path: Path) -> None:
    view = _view(tmp_path)
    log = b"/cases/logs/run.jsonl"
    assert view.shown_inside(log, b"/mnt/ev")  # its folder is bound inside the root
    assert view.shown_inside(log, b"/mnt/above")  # the root is a bind of a folder above it
    assert view.shown_inside(log, b"/mnt/above/logs")
    assert not view.shown_inside(log, b"/mnt/above/other")
    assert not view.shown_inside(log, b"/srv/ev2")  # same filesystem, another folder
    assert not view.shown_inside(b"/tmp/run.jsonl", b"/mnt/ev")  # another filesystem
    assert not view.shown_inside(log, b"/mnt/hidden")  # its bind there is covered
    assert view.shown_inside(b"/srv/hid/a/log", b"/srv/ev")  # written through the bind over hid
    assert not MountView([]).shown_inside(log, b"/mnt/ev")  # no table: paths alone decide
