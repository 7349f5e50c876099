"""The mount table: where a path lies in its filesystem, and what else shows it (bind mounts)."""

from __future__ import annotations

from pathlib import Path

from matcher.mounts import in_filesystem
from matcher.mounts import inside
from matcher.mounts import mounts
from matcher.mounts import shown_inside

TABLE = """\
22 1 254:0 / / rw,relatime - ext4 /dev/vda rw
30 22 0:40 / /tmp rw - tmpfs tmpfs rw
31 22 254:0 /cases/logs /mnt/ev/bound rw - ext4 /dev/vda rw
32 22 254:0 /cases /mnt/above rw - ext4 /dev/vda rw
33 22 254:0 /with\\040space /mnt/sp rw - ext4 /dev/vda rw
34 30 0:41 / /tmp rw - tmpfs tmpfs rw
"""


def _table(tmp_path: Path) -> list[object]:
    info = tmp_path / "mountinfo"
    info.write_text(TABLE)
    return mounts(str(info))  # type: ignore[return-value]


def test_a_path_is_placed_by_the_last_mount_of_the_longest_point(tmp_path: Path) -> None:
    table = _table(tmp_path)
    assert in_filesystem(b"/cases/logs/run.jsonl", table) == (b"254:0", b"/cases/logs/run.jsonl")
    assert in_filesystem(b"/mnt/ev/bound/run.jsonl", table) == (b"254:0", b"/cases/logs/run.jsonl")
    assert in_filesystem(b"/mnt/ev/bound", table) == (b"254:0", b"/cases/logs")
    assert in_filesystem(b"/tmp/x", table) == (b"0:41", b"/x")  # the second /tmp hides the first
    assert in_filesystem(b"/mnt/sp/a", table) == (b"254:0", b"/with space/a")  # octal escapes
    assert inside(b"/a/b", b"/a") and inside(b"/a", b"/a") and inside(b"/a", b"/")
    assert not inside(b"/ab", b"/a")


def test_an_output_is_shown_inside_a_root_by_a_bind_below_it_or_above_it(tmp_path: Path) -> None:
    table = _table(tmp_path)
    log = b"/cases/logs/run.jsonl"
    assert shown_inside(log, b"/mnt/ev", table)  # its folder is bound inside the root
    assert shown_inside(log, b"/mnt/above", table)  # the root is a bind of a folder above it
    assert shown_inside(log, b"/mnt/above/logs", table)
    assert not shown_inside(log, b"/mnt/above/other", table)
    assert not shown_inside(log, b"/srv/ev", table)  # same filesystem, another folder
    assert not shown_inside(b"/tmp/run.jsonl", b"/mnt/ev", table)  # another filesystem
    assert not shown_inside(log, b"/mnt/ev", [])  # no table: paths alone decide (elsewhere)
