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

    def __init__(self, exists: Callable[[bytes], bool] | None, root: bytes = b"") -> None:
        self._seen: set[bytes] = set()
        self._exists = exists
        self._root = root

    def unique(self, path: bytes) -> bytes:
        exists = self._exists
        chosen, n = path, 1
        while (
            chosen in self._seen
            or (exists is not None and exists(chosen))
            or (n == 1 and self._in_a_sibling(chosen))
        ):
            n += 1
            chosen = path + b" (duplicate %d)" % n
        self._seen.add(chosen)
        return chosen

    def _in_a_sibling(self, path: bytes) -> bool:
        """Whether the part of `path` before a `!` past the archive's own path exists.

        Note: a member `b!c` of `a` has the path `a!b!c`, which is also that of
        the member `c` of a file `a!b` beside `a`, walked after it: the two
        took one path, so a resume (which skips a path once finished) read
        only one of them, and counted them apart from their match records.
        Such a member takes a ` (duplicate N)` path here, which the other's
        members (named within their own archive) do not take. Only a name
        holding `!` costs a look more.
        """
        exists = self._exists
        if exists is None:
            return False
        at = path.find(b"!", len(self._root) + 1)
        while at != -1:
            if exists(path[:at]):
                return True
            at = path.find(b"!", at + 1)
        return False
