"""The scan's lookup filter: loaded from the store, or built from every stored digest.

A Bloom filter per algorithm answers "certainly not stored" for most
digests (see match.DigestFilter). Building one reads every stored digest,
about 0.65 µs a digest on one core: minutes at NSRL's size. So a built
filter is saved in the store and reused while the lists stay the same, and
a large build is split in two by digest value, one half read by a forked
child on another core: a Bloom filter is the union (OR) of its digests'
bits, so the two halves' filters, made with the same size, OR together to
exactly the filter of one build (a test compares them bit for bit).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import pickle
import signal
import sqlite3
import struct
from collections.abc import Callable
from collections.abc import Mapping
from collections.abc import Sequence

from matcher.errors import StoreError
from matcher.errors import UsageError
from matcher.match import BLOOM_FALSE_POSITIVE_RATE
from matcher.match import DigestFilter
from matcher.models import ListInfo
from matcher.store import HashStore
from matcher.workers import die_with_parent

# A build of at least this many digests is split between two processes
# (when there are two cores): below it, forking costs more than it saves.
SPLIT_MIN_DIGESTS = 2_000_000
_SIZE = struct.Struct("<Q")


def lists_fingerprint(lists: Sequence[ListInfo]) -> str:
    """Names exactly this set of imported lists (ids, sources, times, counts)."""
    key: list[object] = [
        (i.id, i.source_sha256, i.imported, i.entries, sorted(i.counts.items())) for i in lists
    ]
    key.append(("bloom", BLOOM_FALSE_POSITIVE_RATE))
    return hashlib.sha256(repr(key).encode()).hexdigest()


def build_filter(
    store: HashStore,
    lists: list[ListInfo],
    algorithms: Sequence[str],
    on_stage: Callable[[str], None] | None = None,
) -> tuple[DigestFilter, list[str]]:
    """The in-memory filter over every stored digest this run computes, and notes.

    `on_stage` hears how a build goes, when the filter is not saved in the
    store (the first run after the lists changed): at NSRL's size it takes
    minutes, which must not look like a hang.

    Raises:
        UsageError: when the lists and the computed algorithms share none, so
            that nothing could ever match (a silent all-unknown run).
    """
    stored = store.stored_algorithms()
    computed = set(algorithms)
    if not stored & computed:
        raise UsageError(
            f"The lists hold {', '.join(sorted(stored))} digests but the run computes only "
            f"{', '.join(algorithms)}: nothing could ever match. Fix --algorithms."
        )
    notes = [
        f"lists also hold {missing} digests, which this run does not compute"
        for missing in sorted(stored - computed)
    ]
    counts_by_algorithm: dict[str, int] = {}
    for info in lists:
        for algorithm, n in info.counts.items():
            counts_by_algorithm[algorithm] = counts_by_algorithm.get(algorithm, 0) + n
    usable = sorted(stored & computed)
    # Note: a saved filter is used only if its SHA-256 checks and it holds a
    # sample of stored digests; anything else rebuilds it (a missed digest
    # would be a silent miss, the one failure a filter must never have).
    fingerprint = lists_fingerprint(lists)
    saved = {a: store.saved_filter(a, fingerprint) for a in usable}
    if all(saved.values()):
        loaded = DigestFilter.from_saved(saved)  # type: ignore[arg-type]
        if all(loaded.holds_all(a, store.sample_digests(a, 256)) for a in usable):
            return loaded, notes
    total = sum(counts_by_algorithm.get(a, 0) for a in usable)

    shown = [-1]

    def building(done: int) -> None:
        done = min(done, total)
        if on_stage is not None and done != shown[0]:
            shown[0] = done
            on_stage(f"Building the lookup filter: {done:,} of {total:,} digests")

    building(0)
    if total >= SPLIT_MIN_DIGESTS and (os.cpu_count() or 1) > 1:
        built = _build_in_two(store, usable, counts_by_algorithm, building)
    else:
        built = DigestFilter(
            {a: store.iter_digests(a) for a in usable}, counts_by_algorithm, on_progress=building
        )
    building(total)
    with contextlib.suppress(StoreError, sqlite3.DatabaseError):
        for algorithm, data in built.saved().items():
            store.save_filter(algorithm, fingerprint, data)
    return built, notes


def _build_in_two(
    store: HashStore,
    usable: list[str],
    counts: Mapping[str, int],
    building: Callable[[int], None],
) -> DigestFilter:
    """The filter of every stored digest, its upper half read by a forked child.

    The child opens the store on its own connection (never this one) and
    sends its filters back through a pipe; this process reads the lower
    half meanwhile, then ORs the two. A child that fails, or dies, costs
    only time: its half is then read here.
    """
    try:
        readable, writable = os.pipe2(os.O_CLOEXEC)
    except OSError:
        return DigestFilter({a: store.iter_digests(a) for a in usable}, counts, building)
    try:
        pid = os.fork()
    except OSError:  # no process to spare (a limit): one build, here
        os.close(readable)
        os.close(writable)
        return DigestFilter({a: store.iter_digests(a) for a in usable}, counts, building)
    if pid == 0:  # the child: the digests from 0x80.. up
        code = 1
        try:
            os.close(readable)
            die_with_parent()
            signal.signal(signal.SIGINT, signal.SIG_IGN)  # the scan owns interruption
            child_store = HashStore(store.path, readonly=True)
            upper = DigestFilter({a: child_store.iter_digests(a, half=1) for a in usable}, counts)
            payload = pickle.dumps(upper.saved(), protocol=pickle.HIGHEST_PROTOCOL)
            view = memoryview(_SIZE.pack(len(payload)) + payload)
            while view:
                view = view[os.write(writable, view) :]
            code = 0
        finally:
            os._exit(code)
    os.close(writable)
    received = b""
    try:
        # Note: progress counts this half twice; the child reads as many.
        built = DigestFilter(
            {a: store.iter_digests(a, half=0) for a in usable},
            counts,
            on_progress=lambda done: building(2 * done),
        )
        chunks = []
        while chunk := os.read(readable, 1 << 20):
            chunks.append(chunk)
        received = b"".join(chunks)
    finally:
        os.close(readable)
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)  # done already, unless this side failed
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, 0)
    upper_half: dict[str, bytes] | None = None
    if len(received) >= _SIZE.size and _SIZE.unpack_from(received)[0] == len(received) - _SIZE.size:
        # Note: this pipe joins this process and the child it forked itself;
        # nothing else can write to it (as for the hash workers' pipes).
        upper_half = pickle.loads(received[_SIZE.size :])
    if upper_half is None or set(upper_half) != set(usable):
        upper = DigestFilter({a: store.iter_digests(a, half=1) for a in usable}, counts)
        upper_half = upper.saved()
    built.union_saved(upper_half)
    return built
