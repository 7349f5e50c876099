"""Names made unique within one listing, so that every entry has a path of its own."""

from __future__ import annotations

from collections.abc import Callable


class UniqueNames:
    """The names of one listing (an archive, an image directory), made unique.

    A zip may hold two members of one name, `tar -r` appends a newer copy
    under the old name, and a filesystem image keeps deleted entries beside a
    live one of the same name; each is read. The second gets
    ` (duplicate 2)` (then 3, ...), a name not otherwise seen in the listing
    so far: one path never stands for two entries, whose outcomes (and
    matches) would otherwise overwrite each other.
    """

    def __init__(self) -> None:
        self._seen: set[bytes] = set()

    def unique(self, name: bytes) -> bytes:
        chosen, n = name, 1
        while chosen in self._seen:
            n += 1
            chosen = name + b" (duplicate %d)" % n
        self._seen.add(chosen)
        return chosen


class UniquePaths:
    """The member paths of one archive walk (nested archives included), made unique.

    Names alone are not enough: a member literally named `inner.zip!x` and
    the member `x` of a nested `inner.zip` both give `a.zip!inner.zip!x`, and
    a real file named `b.zip!y.bin` beside `b.zip` (in a folder, or in a
    disk image) has the path of its member `y.bin`. Every path handed out is
    remembered for the walk; with `exists`, a path that names an entry of
    the archive's own source (a file or folder, an image's entry) is taken
    too. A path already taken gets ` (duplicate 2)` (then 3, ...).
    """

    def __init__(self, exists: Callable[[bytes], bool] | None) -> None:
        self._seen: set[bytes] = set()
        self._exists = exists

    def unique(self, path: bytes) -> bytes:
        chosen, n = path, 1
        exists = self._exists
        while chosen in self._seen or (exists is not None and exists(chosen)):
            n += 1
            chosen = path + b" (duplicate %d)" % n
        self._seen.add(chosen)
        return chosen
