"""A set of paths held in 16 bytes each, for a resume's finished entries.

A resume must skip every entry an earlier segment finished; a set of a
million paths as Python bytes took about 100 MB (and a list of the rows read
to build it as much again). This set keeps, per path, a 128-bit BLAKE2b of
the path keyed with 16 random bytes drawn for this set: two sorted arrays of
64-bit halves, searched by bisection.

Note on exactness: two different paths share a member only if their keyed
128-bit digests collide. The key is drawn afresh for each set and never
leaves the process, so no one can build colliding names on purpose; by
chance, the probability that any path not finished is taken for a finished
one is at most (paths looked up) * (paths finished) / 2**128: below 3 * 10**-25
with ten million of each.
"""

from __future__ import annotations

import hashlib
import os
import sys
from array import array
from bisect import bisect_left
from collections.abc import Sequence

KEY_BYTES = 16
MEMBER_BYTES = 16
BUCKET_BITS = 16  # 65,537 bucket starts: 512 KiB, a few members a bucket at 10M paths
_BUCKET_SHIFT = 64 - BUCKET_BITS
_LOW_64 = (1 << 64) - 1


class PathSet:
    """Membership of paths (bytes) by keyed 128-bit digest, about 16 bytes a path.

    Fill it with `extend_sorted()`, members that come sorted (bytewise),
    e.g. from an SQL `ORDER BY` over `key_of(path)`, so that the paths are
    never all held as Python objects. `add()` takes a few more paths
    afterwards (kept exactly, as bytes).
    """

    def __init__(self, key: bytes | None = None):
        self.key = key if key is not None else os.urandom(KEY_BYTES)
        if len(self.key) != KEY_BYTES:
            raise ValueError(f"a PathSet key has {KEY_BYTES} bytes")
        self._keyed = hashlib.blake2b(digest_size=MEMBER_BYTES, key=self.key)
        self._hi = array("Q")
        self._lo = array("Q")
        # Where each bucket (the top BUCKET_BITS of hi) starts in the arrays,
        # so that a lookup bisects a few members, not all (built on first use).
        self._starts: array[int] | None = None
        self._extra: set[bytes] = set()

    def key_of(self, path: bytes) -> bytes:
        """The 16-byte member of `path` (its keyed BLAKE2b-128)."""
        keyed = self._keyed.copy()  # the key's block is hashed once, in the template
        keyed.update(path)
        return keyed.digest()

    def extend_sorted(self, members: Sequence[bytes]) -> None:
        """Append members (from key_of) that sort at or after every member held.

        Raises:
            ValueError: a member of the wrong length, or out of order.
        """
        if any(len(member) != MEMBER_BYTES for member in members):
            raise ValueError(f"PathSet members have {MEMBER_BYTES} bytes")
        blob = b"".join(members)
        halves = array("Q")
        halves.frombytes(blob)
        if sys.byteorder == "little":
            halves.byteswap()  # big-endian numbers: the numeric order is the bytes' order
        hi, lo = halves[0::2], halves[1::2]
        previous = (self._hi[-1], self._lo[-1]) if self._hi else None
        for index in range(len(hi)):
            pair = (hi[index], lo[index])
            if previous is not None and pair < previous:
                raise ValueError("PathSet members must come sorted")
            previous = pair
        self._hi.extend(hi)
        self._lo.extend(lo)
        self._starts = None

    def add(self, path: bytes) -> None:
        """Add one path after the sorted build (kept as bytes: meant for a few)."""
        self._extra.add(path)

    def __contains__(self, path: object) -> bool:
        if not isinstance(path, bytes):
            raise TypeError(f"a PathSet holds paths as bytes, not {type(path).__name__}")
        if path in self._extra:
            return True
        return bool(self._hi) and self.has_member(self.key_of(path))

    def has_member(self, member: bytes) -> bool:
        """Whether a 16-byte member (see key_of) was built into the set.

        Raises:
            ValueError: a member of the wrong length.
        """
        if len(member) != MEMBER_BYTES:
            raise ValueError(f"PathSet members have {MEMBER_BYTES} bytes")
        starts = self._starts if self._starts is not None else self._index()
        number = int.from_bytes(member, "big")
        hi, lo = number >> 64, number & _LOW_64
        highs = self._hi
        bucket = hi >> _BUCKET_SHIFT
        index = bisect_left(highs, hi, starts[bucket], starts[bucket + 1])
        end = len(highs)
        while index < end and highs[index] == hi:
            if self._lo[index] == lo:
                return True
            index += 1
        return False

    def _index(self) -> array[int]:
        highs = self._hi
        starts = array(
            "Q", (bisect_left(highs, b << _BUCKET_SHIFT) for b in range(1 << BUCKET_BITS))
        )
        starts.append(len(highs))
        self._starts = starts
        return starts

    def __len__(self) -> int:
        """Members held: built from digests, plus paths added (one in both counts twice)."""
        return len(self._hi) + len(self._extra)

    @property
    def nbytes(self) -> int:
        """Bytes held by the sorted members (the arrays' buffers)."""
        return (len(self._hi) + len(self._lo)) * self._hi.itemsize
