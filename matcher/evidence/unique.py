"""Names made unique within one listing, so that every entry has a path of its own."""

from __future__ import annotations


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
