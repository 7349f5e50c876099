"""Turning digests into verdicts: an in-memory filter for misses, exact lookups for the rest.

Most lookups miss. A `DigestFilter` built once per run from the store answers
"certainly not stored" from memory; only digests it lets through go to the
exact (SQLite) lookup, batched. A filter false positive is therefore always
settled by the exact lookup and can never become a match.
"""

from __future__ import annotations

import itertools
import operator
from collections.abc import Callable
from collections.abc import Iterable
from collections.abc import Mapping
from collections.abc import Sequence

import rbloom

from matcher.models import ListHit
from matcher.models import ListInfo
from matcher.models import Verdict

# An exact lookup: (algorithm, digests) -> {digest: [hits]}.
Lookup = Callable[[str, Sequence[bytes]], Mapping[bytes, list[ListHit]]]

BLOOM_FALSE_POSITIVE_RATE = 0.001
# Digests added to a filter between two progress reports while it is built
# (their keys, some 45 bytes each, exist at once).
BUILD_CHUNK = 1 << 18


def digest_hash(digest: bytes) -> int:
    """The filter's hash of a digest: its first 128 bits, as a signed integer.

    A cryptographic digest is already uniform, and unlike Python's own
    `hash()` (salted per process) this is the same in every process, so a
    filter saved by one run is valid in the next.
    """
    return int.from_bytes(digest[:16], "little", signed=True)


# Note: the Bloom filters hold these integers, and their hash function is
# `operator.index`, which returns an integer as it is. The filter's bits are
# therefore exactly those of hashing each digest with `digest_hash` (filters
# saved before stay valid), but the per-digest call from rbloom goes to a C
# builtin instead of a Python function: misses run about 40% faster.
_KEY_HASH = operator.index


class DigestFilter:
    """Per-algorithm Bloom filter (rbloom) over every stored digest.

    About 1.8 bytes per digest at a 0.1% false-positive rate: a 10M-entry
    store costs some 18 MB, where a Python set would cost about 1 GB.
    """

    def __init__(
        self,
        digests_by_algorithm: Mapping[str, Iterable[bytes]],
        counts: Mapping[str, int],
        on_progress: Callable[[int], None] | None = None,
    ):
        """Build from every stored digest; `on_progress(n)` hears of each BUILD_CHUNK added."""
        self.kind = "bloom"
        self.loaded = False
        self._members: dict[str, rbloom.Bloom] = {}
        from_bytes = int.from_bytes
        done = 0
        for algorithm, digests in digests_by_algorithm.items():
            expected = max(counts.get(algorithm, 0), 1)
            bloom = rbloom.Bloom(expected, BLOOM_FALSE_POSITIVE_RATE, _KEY_HASH)
            # Note: in chunks, so that a long build (a store of NSRL's size
            # takes minutes) can be shown; a chunk's keys are a list, which
            # is faster to make than the generator it replaces.
            stream = iter(digests)
            while keys := [
                from_bytes(d[:16], "little", signed=True)
                for d in itertools.islice(stream, BUILD_CHUNK)
            ]:
                bloom.update(keys)
                done += len(keys)
                if on_progress is not None:
                    on_progress(done)
            self._members[algorithm] = bloom

    @classmethod
    def from_saved(cls, saved: Mapping[str, bytes]) -> DigestFilter:
        """A filter from `saved()` bytes (of any earlier process)."""
        self = cls({}, {})
        self.loaded = True
        for algorithm, data in saved.items():
            self._members[algorithm] = rbloom.Bloom.load_bytes(data, _KEY_HASH)
        return self

    def union_saved(self, saved: Mapping[str, bytes]) -> None:
        """Add the digests of other filters of the same sizes (`saved()` bytes), by OR."""
        for algorithm, data in saved.items():
            other = rbloom.Bloom.load_bytes(data, _KEY_HASH)
            mine = self._members[algorithm]
            if other.size_in_bits != mine.size_in_bits:
                raise ValueError(f"{algorithm} filters of different sizes cannot be joined")
            mine.update(other)

    def saved(self) -> dict[str, bytes]:
        """Each algorithm's filter as bytes, for `from_saved`."""
        return {a: self.saved_one(a) for a in self._members}

    def saved_one(self, algorithm: str) -> bytes:
        """One algorithm's filter as bytes (see saved())."""
        return bytes(self._members[algorithm].save_bytes())

    def holds_all(self, algorithm: str, digests: Iterable[bytes]) -> bool:
        """True when every one of `digests` passes (a check of a loaded filter)."""
        members = self._members.get(algorithm)
        return members is not None and all(digest_hash(d) in members for d in digests)

    @property
    def memory_bytes(self) -> int:
        return sum(b.size_in_bits // 8 for b in self._members.values())

    @property
    def algorithms(self) -> set[str]:
        """Algorithms the store holds digests for."""
        return set(self._members)

    def candidates(self, algorithm: str, digests: Iterable[bytes]) -> list[bytes]:
        """The digests that may be stored (all stored ones, plus rare false positives)."""
        members = self._members.get(algorithm)
        if members is None:
            return []
        holds = members.__contains__
        from_bytes = int.from_bytes
        return [d for d in digests if holds(from_bytes(d[:16], "little", signed=True))]

    def maybe_stored(
        self, algorithms: Sequence[str], digest_lists: Sequence[Sequence[bytes]]
    ) -> list[bool]:
        """For each file's digests (in `algorithms` order): may any of them be stored?

        A False is certain (a Bloom filter has no false negatives): that file
        is in no list, and needs no exact lookup. A True needs one
        (match_batch), as it may be a false positive.
        """
        passed = [False] * len(digest_lists)
        from_bytes = int.from_bytes
        for k, algorithm in enumerate(algorithms):
            members = self._members.get(algorithm)
            if members is None:
                continue
            holds = members.__contains__
            passed = [
                p or holds(from_bytes(d[k][:16], "little", signed=True))
                for p, d in zip(passed, digest_lists, strict=True)
            ]
        return passed


def held_by_every_entry(lists: Iterable[ListInfo]) -> dict[str, frozenset[str]]:
    """For each list (by name), the algorithms of which every one of its entries gives a digest."""
    return {
        info.name: frozenset(a for a, n in info.counts.items() if n and n == info.entries)
        for info in lists
    }


def digests_differ(
    hits: Sequence[ListHit], computed: Iterable[str], held: Mapping[str, frozenset[str]]
) -> dict[tuple[str, int | None], tuple[str, ...]]:
    """The entries a file matched that give another digest of it: {(list, entry id): algorithms}.

    A file matches an entry by each digest they share (one hit each). An
    entry that gives a digest of an algorithm the run computed, which the
    file did not match it by, gives that digest otherwise than the file
    has it: the digest that matched collided, or the entry is wrong. Which
    entries give which digests is known per list (`held`, from
    held_by_every_entry): an algorithm only some entries of a list give is
    not checked.
    """
    computed = frozenset(computed)
    matched: dict[tuple[str, int | None], set[str]] = {}
    for hit in hits:
        matched.setdefault((hit.list_name, hit.entry_id), set()).add(hit.algorithm)
    differ: dict[tuple[str, int | None], tuple[str, ...]] = {}
    for key, algorithms in matched.items():
        others = (held.get(key[0], frozenset()) & computed) - algorithms
        if others:
            differ[key] = tuple(sorted(others))
    return differ


def verdict(hits: Sequence[ListHit]) -> Verdict:
    """notable if any hit is from a notable list; known if only known lists; else unknown."""
    if any(h.role == "notable" for h in hits):
        return Verdict.NOTABLE
    if hits:
        return Verdict.KNOWN
    return Verdict.UNKNOWN


def match_batch(
    digest_sets: Sequence[Mapping[str, bytes]],
    digest_filter: DigestFilter,
    lookup: Lookup,
) -> list[list[ListHit]]:
    """Hits for each digest set of a batch of files (one exact query per algorithm)."""
    results: list[list[ListHit]] = [[] for _ in digest_sets]
    for algorithm in sorted(digest_filter.algorithms):
        wanted = digest_filter.candidates(
            algorithm, [d for s in digest_sets if (d := s.get(algorithm)) is not None]
        )
        if not wanted:
            continue
        found = lookup(algorithm, wanted)
        if not found:
            continue
        for index, digests in enumerate(digest_sets):
            digest = digests.get(algorithm)
            if digest is not None and digest in found:
                results[index].extend(found[digest])
    return results
