"""The folder walk: every entry accounted for, symlinks never followed, bytes names kept."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st

from matcher.evidence.folder import FolderWalker
from matcher.evidence.folder import open_readonly
from matcher.models import EntryOutcome
from matcher.models import Failure
from matcher.models import FileTask
from matcher.models import Skip


def walk(root: Path, **kw: object) -> list[FileTask | EntryOutcome]:
    return list(FolderWalker(**kw).walk([os.fsencode(root)]))  # type: ignore[arg-type]


def by_name(items: list[FileTask | EntryOutcome]) -> dict[bytes, FileTask | EntryOutcome]:
    return {os.path.basename(i.path): i for i in items}


def test_regular_files_sorted_files_before_subfolders(tmp_path: Path) -> None:
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "x").write_bytes(b"1")
    (tmp_path / "a").write_bytes(b"2")
    (tmp_path / "c").write_bytes(b"3")
    paths = [os.path.relpath(i.path, os.fsencode(tmp_path)) for i in walk(tmp_path)]
    assert paths == [b"a", b"c", b"b/x"]


def test_specials_are_skipped_with_reasons_and_never_block(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "fifo")
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(tmp_path / "sock"))
    (tmp_path / "target").write_bytes(b"t")
    (tmp_path / "link").symlink_to(tmp_path / "target")
    (tmp_path / "out").symlink_to("/etc")
    (tmp_path / "loop").symlink_to(tmp_path / "loop")
    try:
        items = by_name(walk(tmp_path))
    finally:
        sock.close()
    assert items[b"fifo"].skip is Skip.FIFO  # type: ignore[union-attr]
    assert items[b"sock"].skip is Skip.SOCKET  # type: ignore[union-attr]
    for name in (b"link", b"out", b"loop"):
        assert items[name].skip is Skip.SYMLINK  # type: ignore[union-attr]
    assert isinstance(items[b"target"], FileTask)
    assert len(items) == 6


def test_device_node_is_skipped(tmp_path: Path) -> None:
    dev = Path("/dev/null")
    items = list(FolderWalker().walk([os.fsencode(dev)]))
    assert len(items) == 1 and items[0].skip is Skip.DEVICE  # type: ignore[union-attr]


def test_root_symlink_is_not_followed(tmp_path: Path) -> None:
    (tmp_path / "real").mkdir()
    (tmp_path / "real" / "f").write_bytes(b"x")
    (tmp_path / "alias").symlink_to(tmp_path / "real")
    items = walk(tmp_path / "alias")
    assert len(items) == 1 and items[0].skip is Skip.SYMLINK  # type: ignore[union-attr]


def test_non_utf8_and_255_byte_names_kept_as_bytes(tmp_path: Path) -> None:
    odd = b"caf\xe9-\xff.bin"
    long = b"n" * 255
    root = os.fsencode(tmp_path)
    for name in (odd, long, b"new\nline", b"back\\slash"):
        with open(root + b"/" + name, "wb") as f:
            f.write(name)
    items = by_name(walk(tmp_path))
    assert set(items) == {odd, long, b"new\nline", b"back\\slash"}
    assert all(isinstance(i, FileTask) for i in items.values())


def test_paths_longer_than_path_max(tmp_path: Path) -> None:
    root = os.fsencode(tmp_path)
    fd = os.open(root, os.O_RDONLY)
    depth = 0
    try:
        while depth * 200 < 5000:
            os.mkdir(b"d" * 199, dir_fd=fd)
            nfd = os.open(b"d" * 199, os.O_RDONLY, dir_fd=fd)
            os.close(fd)
            fd = nfd
            depth += 1
        leaf = os.open(b"leaf", os.O_WRONLY | os.O_CREAT, 0o600, dir_fd=fd)
        os.write(leaf, b"deep")
        os.close(leaf)
    finally:
        os.close(fd)
    items = walk(tmp_path)
    assert len(items) == 1
    task = items[0]
    assert isinstance(task, FileTask) and len(task.path) > 4096
    fd = open_readonly(task.path)
    try:
        assert os.read(fd, 10) == b"deep"
    finally:
        os.close(fd)


def test_hundred_thousand_files_in_one_folder(tmp_path: Path) -> None:
    big = tmp_path / "big"
    big.mkdir()
    dfd = os.open(big, os.O_RDONLY)
    try:
        for i in range(100_000):
            os.close(os.open(f"{i:06d}", os.O_WRONLY | os.O_CREAT, 0o600, dir_fd=dfd))
    finally:
        os.close(dfd)
    items = walk(big)
    assert len(items) == 100_000
    assert all(isinstance(i, FileTask) for i in items)


def test_unreadable_directory_is_an_error_not_silence(tmp_path: Path, monkeypatch: object) -> None:
    import matcher.evidence.folder as folder

    (tmp_path / "locked").mkdir()
    (tmp_path / "locked" / "f").write_bytes(b"x")
    real = folder.open_readonly

    def deny(path: bytes, directory: bool = False) -> int:
        if path.endswith(b"/locked"):
            raise PermissionError(13, "Permission denied")
        return real(path, directory)

    monkeypatch.setattr(folder, "open_readonly", deny)  # type: ignore[attr-defined]
    items = walk(tmp_path)
    assert len(items) == 1
    assert items[0].failure is Failure.UNREADABLE and items[0].errno == 13  # type: ignore[union-attr]


def test_directory_replaced_by_symlink_mid_walk(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "f").write_bytes(b"x")
    (tmp_path / "z").mkdir()
    outside = tmp_path.parent / (tmp_path.name + "-outside")
    outside.mkdir()
    (outside / "secret").write_bytes(b"s")
    walker = FolderWalker()
    seen = []
    for item in walker.walk([os.fsencode(tmp_path)]):
        seen.append(item)
        if item.path.endswith(b"/a/f"):
            # z was listed (as a directory) but is not yet opened: swap it.
            os.rmdir(tmp_path / "z")
            (tmp_path / "z").symlink_to(outside)
    names = [os.path.basename(i.path) for i in seen]
    assert b"secret" not in names
    z = [i for i in seen if i.path.endswith(b"/z")]
    assert len(z) == 1 and isinstance(z[0], EntryOutcome) and z[0].failure is Failure.CHANGED


def test_excludes_are_skipped_and_recorded(tmp_path: Path) -> None:
    (tmp_path / "keep.txt").write_bytes(b"k")
    (tmp_path / "drop.tmp").write_bytes(b"d")
    (tmp_path / "cache").mkdir()
    (tmp_path / "cache" / "x").write_bytes(b"x")
    items = by_name(walk(tmp_path, excludes=["*.tmp", "cache"]))
    assert items[b"drop.tmp"].skip is Skip.EXCLUDED  # type: ignore[union-attr]
    assert items[b"cache"].skip is Skip.EXCLUDED  # type: ignore[union-attr]
    assert isinstance(items[b"keep.txt"], FileTask)
    assert b"x" not in items


def test_an_entry_gone_between_listing_and_its_lstat_is_an_error(tmp_path: Path) -> None:
    """A folder's names are listed first, each entry's lstat taken as the walk reaches it."""
    for name in ("f1", "f2", "f3"):
        (tmp_path / name).write_bytes(b"x")
    seen = []
    for item in FolderWalker().walk([os.fsencode(tmp_path)]):
        seen.append(item)
        if item.path.endswith(b"/f1"):
            (tmp_path / "f3").unlink()
    f3 = by_name(seen)[b"f3"]
    assert isinstance(f3, EntryOutcome) and f3.failure is Failure.VANISHED and f3.errno == 2
    assert isinstance(by_name(seen)[b"f2"], FileTask) and len(seen) == 3


def test_a_walk_stopped_early_closes_the_folder_it_was_listing(tmp_path: Path) -> None:
    for i in range(10):
        (tmp_path / f"f{i}").write_bytes(b"x")
    before = len(os.listdir("/proc/self/fd"))
    walking = FolderWalker().walk([os.fsencode(tmp_path)])
    next(walking)
    assert len(os.listdir("/proc/self/fd")) == before + 1  # the folder, open while listed
    walking.close()
    assert len(os.listdir("/proc/self/fd")) == before


def test_a_folder_replaced_after_listing_leaves_no_fd_open(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "f").write_bytes(b"x")
    (tmp_path / "z").mkdir()
    (tmp_path / "z" / "g").write_bytes(b"y")
    before = len(os.listdir("/proc/self/fd"))
    seen = []
    for item in FolderWalker().walk([os.fsencode(tmp_path)]):
        seen.append(item)
        if item.path.endswith(b"/a/f"):
            os.rename(tmp_path / "z", tmp_path / "z-old")  # z was listed: another z comes
            (tmp_path / "z").mkdir()
    z = by_name(seen)[b"z"]
    assert isinstance(z, EntryOutcome) and z.failure is Failure.CHANGED
    assert len(os.listdir("/proc/self/fd")) == before


@pytest.mark.parametrize("run", [1, 2, 3, 4096])
def test_names_of_disk_images_are_found_in_every_run_of_a_listing(
    monkeypatch: pytest.MonkeyPatch, run: int
) -> None:
    """A folder's names are searched in runs (joined whole, a folder of a million names held
    two copies of all of them, some 60 MB): an image name is found in any run, at any edge."""
    from matcher.evidence import folder

    monkeypatch.setattr(folder, "_IMAGE_SEARCH_NAMES", run)
    names = [b"a.txt", b"disk.E01", b"b.txt", b"c", b"x.img", b"notes.raw.txt", b"z.dd"]
    assert folder._image_names(names) == {b"disk.E01", b"x.img", b"z.dd"}
    assert folder._image_names([b"a.txt", b"b.e01.bak"]) == set()
    assert folder._image_names([]) == set()


@settings(max_examples=400, deadline=None)
@given(
    st.lists(st.binary(min_size=1, max_size=8).map(lambda b: b.replace(b"\x00", b"")).filter(bool)
             | st.sampled_from([b"*", b"?", b"[a-c]*", b"*.tmp", b"d?/*", b"[!x]", b"[", b"\\*", b"*/*.bin"]),
             min_size=1, max_size=6),
    st.binary(max_size=12),
)  # fmt: skip
def test_the_excludes_joined_match_what_each_pattern_matches(patterns: list[bytes], name: bytes) -> None:
    """The --exclude patterns are asked first as one expression (100 patterns asked in turn cost
    a scan of 200,000 files 10 s): it must take exactly the names one of them takes."""
    import fnmatch

    from matcher.evidence.folder import _one_pattern

    joined = _one_pattern(patterns)
    assert joined is not None
    assert bool(joined(name)) == any(fnmatch.fnmatchcase(name, p) for p in patterns)


def test_each_name_of_a_hard_linked_file_in_a_folder_is_read_for_itself(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A folder's hard links were once read once and their outcome given to every name: a
    file rewritten between its names, or its first name removed, then gave the later names a
    stale digest or its "vanished" (a notable file missed). Each name is read for itself."""
    import hashlib

    from matcher.evidence import folder as folder_mod
    from matcher.scan import ScanOptions
    from matcher.scan import run_scan

    ev = tmp_path / "ev"
    (ev / "a").mkdir(parents=True)
    (ev / "b").mkdir()
    (ev / "a" / "n").write_bytes(b"\0" * (9 << 20))  # a unit of its own, hashed before the walk goes on
    os.link(ev / "a" / "n", ev / "b" / "n2")
    new = b"N" * (9 << 20)
    listed = tmp_path / "n.sha256"
    listed.write_text(f"{hashlib.sha256(new).hexdigest()}  new\n")
    real_walk = folder_mod.FolderWalker.walk

    def walk(self: object, roots: object) -> object:
        for item in real_walk(self, roots):  # type: ignore[arg-type]
            yield item
            if item.path.endswith(b"/a/n"):
                with open(ev / "a" / "n", "r+b") as f:  # rewritten in place, after its first name
                    f.write(new)

    monkeypatch.setattr(folder_mod.FolderWalker, "walk", walk)
    summary = run_scan(ScanOptions([ev], "E", "C", tmp_path / "s.db", tmp_path / "l.jsonl", lists=[listed], jobs=1))
    assert summary.counts.notable >= 1, summary.counts


@pytest.mark.parametrize("outside_holds_the_name", [True, False])
def test_a_folder_swapped_for_a_symlink_after_listing_is_never_followed(
    tmp_path: Path, outside_holds_the_name: bool
) -> None:
    """Only a path's last component had O_NOFOLLOW: a folder replaced by a symlink after the
    walk listed it led the file's open out of the root (an object of that name elsewhere was
    opened, or the file said `vanished`). Now the open is refused there: `changed`."""
    import errno

    from matcher.hashing import Hasher
    from matcher.evidence.folder import open_file

    root = tmp_path / "ev"
    (root / "d").mkdir(parents=True)
    (root / "d" / "f.bin").write_bytes(b"listed content\n")
    outside = tmp_path / "outside"
    outside.mkdir()
    if outside_holds_the_name:
        (outside / "f.bin").write_bytes(b"another file, outside the root\n")
    (task,) = [t for t in FolderWalker(roots=[str(root)]).walk([os.fsencode(root)])
               if isinstance(t, FileTask)]  # fmt: skip
    os.rename(root / "d", root / "d-moved")
    os.symlink(outside, root / "d")
    opened: list[bytes] = []

    def watched(path: bytes) -> int:
        opened.append(path)
        return open_file(path)

    result = Hasher(("sha256",), watched).hash_file(
        task.path, task.size, task.mtime_ns, task.dev, task.ino
    )
    assert not isinstance(result, list)
    failure, code, detail = result
    assert failure == Failure.CHANGED and code in (errno.ELOOP, errno.ENOTDIR), result
    assert opened == [task.path]
    # Outside the swap, files open as before, and a folder once open serves its next file.
    os.unlink(root / "d")
    os.rename(root / "d-moved", root / "d")
    (root / "d" / "g.bin").write_bytes(b"more\n")
    tasks = [t for t in FolderWalker(roots=[str(root)]).walk([os.fsencode(root)])
             if isinstance(t, FileTask)]  # fmt: skip
    hasher = Hasher(("sha256",), open_file)
    assert all(isinstance(hasher.hash_file(t.path, t.size, t.mtime_ns, t.dev, t.ino), list)
               for t in tasks)  # fmt: skip


def test_opening_files_in_threads_leaves_no_descriptor_open(tmp_path: Path) -> None:
    """A thread kept its last folder open for its next file: a batch of scans on the thread
    engine left one open folder per thread of every scan, until the process ran out of fds."""
    import threading

    from matcher.evidence.folder import open_file

    root = tmp_path / "ev"
    (root / "d").mkdir(parents=True)
    (root / "d" / "f").write_bytes(b"x")
    list(FolderWalker(roots=[str(root)]).walk([os.fsencode(root)]))  # the scan's roots

    def open_fds() -> int:
        return len(os.listdir("/proc/self/fd"))

    before = open_fds()
    left: list[int] = []

    def read_one() -> None:
        os.close(open_file(os.fsencode(root / "d" / "f")))
        left.append(open_fds() - before)

    for _ in range(20):
        thread = threading.Thread(target=read_one)
        thread.start()
        thread.join()
    assert left == [0] * 20 and open_fds() == before


@pytest.mark.parametrize("root_is_a_file", [False, True])
def test_a_roots_parent_swapped_for_a_symlink_is_never_followed(
    tmp_path: Path, root_is_a_file: bool
) -> None:
    """Found by a validator: a root's own parent swapped for a symlink while the scan ran led
    its files' opens to where the link pointed: read, hashed and logged as the evidence."""
    from matcher.evidence.folder import open_file
    from matcher.hashing import Hasher

    root = tmp_path / "p" / "q" / "ev"
    root.mkdir(parents=True)
    (root / "doc.txt").write_bytes(b"the evidence\n")
    (tmp_path / "outside" / "ev").mkdir(parents=True)
    (tmp_path / "outside" / "ev" / "doc.txt").write_bytes(b"not the evidence\n")
    named = root / "doc.txt" if root_is_a_file else root
    (task,) = [t for t in FolderWalker(roots=[str(named)]).walk([os.fsencode(named)])
               if isinstance(t, FileTask)]  # fmt: skip
    os.rename(tmp_path / "p" / "q", tmp_path / "p" / "q.old")
    os.symlink(tmp_path / "outside", tmp_path / "p" / "q")
    hasher = Hasher(("sha256",), open_file)
    result = hasher.hash_file(task.path, task.size, task.mtime_ns, task.dev, task.ino)
    assert not isinstance(result, list) and result[0] == Failure.CHANGED, result
    # Swapped after the scan began, before its walk reached the root: nothing of the
    # outside is read either (the walk lists the root where it was, or fails).
    os.unlink(tmp_path / "p" / "q")
    os.rename(tmp_path / "p" / "q.old", tmp_path / "p" / "q")
    walker = FolderWalker(roots=[str(named)])
    os.rename(tmp_path / "p" / "q", tmp_path / "p" / "q.old")
    os.symlink(tmp_path / "outside", tmp_path / "p" / "q")
    items = list(walker.walk([os.fsencode(named)]))
    for item in items:
        if isinstance(item, FileTask):
            done = hasher.hash_file(item.path, item.size, item.mtime_ns, item.dev, item.ino)
            assert not isinstance(done, list) and done[0] == Failure.CHANGED, done
        else:
            assert item.failure is not None, item
    assert items


def test_files_of_a_folder_moved_out_of_the_root_are_not_read_where_it_went(
    tmp_path: Path,
) -> None:
    """Found by a validator: a worker kept each folder open for its next file, and went on
    reading a folder moved out of the root (the files listed, hashed from outside it)."""
    from matcher.evidence.folder import open_file
    from matcher.hashing import Hasher

    root = tmp_path / "ev"
    (root / "d").mkdir(parents=True)
    for i in range(3):
        (root / "d" / f"f{i}").write_bytes(b"file %d\n" % i)
    tasks = [t for t in FolderWalker(roots=[str(root)]).walk([os.fsencode(root)])
             if isinstance(t, FileTask)]  # fmt: skip
    hasher = Hasher(("sha256",), open_file)
    first = hasher.hash_file(tasks[0].path, tasks[0].size, tasks[0].mtime_ns, tasks[0].dev, tasks[0].ino)
    assert isinstance(first, list)
    (tmp_path / "moved").mkdir()
    os.rename(root / "d", tmp_path / "moved" / "d")
    for task in tasks[1:]:
        result = hasher.hash_file(task.path, task.size, task.mtime_ns, task.dev, task.ino)
        assert not isinstance(result, list) and result[0] == Failure.VANISHED, result


def test_a_deep_folder_is_opened_in_one_call_where_openat2_works(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Found by a validator: each folder was opened one component at a time from /, twice (the
    walk and a worker): a tree 30 folders deep took 1.7 times as long to scan."""
    from matcher.evidence import folder as folder_mod
    from matcher.evidence import no_symlinks

    deep = tmp_path / "ev"
    path = deep
    for level in range(30):
        path = path / f"l{level:02d}"
    path.mkdir(parents=True)
    (path / "f").write_bytes(b"x")
    list(FolderWalker(roots=[str(deep)]).walk([os.fsencode(deep)]))  # the scan's roots
    opens: list[object] = []
    real_open = os.open

    def counted(*args: object, **kwargs: object) -> int:
        opens.append(args[0])
        return real_open(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(folder_mod.os, "open", counted)
    os.close(folder_mod.open_readonly(os.fsencode(path), directory=True))
    os.close(folder_mod.open_file(os.fsencode(path / "f")))
    if no_symlinks.available():
        assert opens == []  # one openat2 each
    else:  # one open per component of the real path, then the last one
        assert len(opens) == 2 * (len(os.fsencode(os.path.realpath(path)).split(b"/")) + 1)


@pytest.mark.parametrize("named", ["/", "/tmp/.."])
def test_a_root_that_is_or_resolves_to_slash_is_opened_there(named: str) -> None:
    """Found by a reviewer: a root's real path stripped of its "/" was empty: `/tmp/..` was
    opened as "" (vanished), and `/` itself was never registered as a root."""
    from matcher.evidence import folder as folder_mod

    FolderWalker(roots=[named])
    try:
        assert folder_mod._REAL_ROOTS.get(named.rstrip("/").encode() or b"/") == b"/"
        os.close(folder_mod.open_readonly(named.encode(), directory=True))
        os.close(folder_mod.open_readonly(b"/proc/version"))
        with pytest.raises(OSError):  # a symlink on the way, below the root /
            folder_mod.open_readonly(b"/proc/self/status")
    finally:
        folder_mod.set_roots({})


def _without_openat2(monkeypatch: pytest.MonkeyPatch) -> None:
    """Open as where Linux has no openat2 (an old kernel, a seccomp filter): one component at
    a time."""
    from matcher.evidence import folder as folder_mod
    from matcher.evidence import no_symlinks

    monkeypatch.setattr(no_symlinks, "_checked", True)
    monkeypatch.setattr(no_symlinks, "_call", None)
    monkeypatch.setattr(folder_mod, "_open_file_fast", None, raising=False)
    monkeypatch.setattr(folder_mod, "_open_file_plain", None, raising=False)


def test_without_openat2_the_root_slash_opens(monkeypatch: pytest.MonkeyPatch) -> None:
    """Found by a validator: one component at a time, "/" has none: IndexError, exit 2."""
    from matcher.evidence import folder as folder_mod

    FolderWalker(roots=["/"])
    _without_openat2(monkeypatch)
    try:
        os.close(folder_mod.open_readonly(b"/", directory=True))
        os.close(folder_mod.open_file(b"/proc/version"))
    finally:
        folder_mod.set_roots({})


def test_without_openat2_a_folder_moved_out_during_the_open_is_not_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Found by a validator: one component at a time, a folder moved out of the root between
    two opens took the rest of the lookup with it: the file was opened (and hashed) outside."""
    from matcher.evidence import folder as folder_mod

    root = tmp_path / "ev"
    (root / "d").mkdir(parents=True)
    (root / "d" / "f").write_bytes(b"listed\n")
    (tmp_path / "moved").mkdir()
    FolderWalker(roots=[str(root)])
    _without_openat2(monkeypatch)
    real_open = os.open

    def move_then_open(path: object, flags: int, *args: object, **kwargs: object) -> int:
        if path == b"f" and (root / "d").exists():
            os.rename(root / "d", tmp_path / "moved" / "d")  # after `d` was opened
        return real_open(path, flags, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(folder_mod.os, "open", move_then_open)
    try:
        with pytest.raises(FileNotFoundError):
            folder_mod.open_file(os.fsencode(root / "d" / "f"))
    finally:
        folder_mod.set_roots({})
