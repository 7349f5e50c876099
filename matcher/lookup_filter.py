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
import gc
import hashlib
import os
import signal
import sqlite3
import struct
from collections.abc import Callable
from collections.abc import Mapping
from collections.abc import Sequence

from matcher.digests import available_algorithms
from matcher.errors import StoreError
from matcher.errors import UsageError
from matcher.match import BLOOM_FALSE_POSITIVE_RATE
from matcher.match import DigestFilter
from matcher.models import ListInfo
from matcher.store import HashStore
from matcher.workers import die_with_parent
from matcher.workers import fork_holding_signals
from matcher.workers import usable_cores

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


def _held(info: ListInfo) -> set[str]:
    """The algorithms a list holds digests of."""
    return {a for a, n in info.counts.items() if n}


def _uncomputed_note(info: ListInfo, computed: set[str]) -> str | None:
    """What a list's entries that hold no digest the run computes cannot do; None if none.

    Note: counted per list from its per-algorithm counts (an entry holds at
    most one digest of each): exact when the run computes one of the list's
    algorithms, else a range. It said "entries with only md5 digests cannot
    match" where every entry held md5 and sha1, so all of them were blind.
    """
    held = _held(info)
    if not held - computed:
        return None
    usable = [info.counts[a] for a in held & computed]
    least = info.entries - min(info.entries, sum(usable))
    most = info.entries - max(usable, default=0)
    if not most:
        return None
    how_many = f"{most:,}" if least == most else f"between {least:,} and {most:,}"
    # Note: a default scan leaves out an algorithm this installation lacks
    # (a known BLAKE3 list): the note said the entries could not match, not why.
    lacking = sorted((held - computed) - set(available_algorithms()))
    why = (
        f"; {', '.join(lacking)} is not installed here (pip install 'matcher[{lacking[0]}]')"
        if lacking
        else ""
    )
    return (
        f"list {info.name!r} ({info.role}): {how_many} of its {info.entries:,} entries hold "
        f"no digest this run computes ({', '.join(sorted(computed))}; the list also holds "
        f"{', '.join(sorted(held - computed))}{why}): they cannot match, and files they "
        "would match count as unknown"
    )


def check_computed(lists: Sequence[ListInfo], algorithms: Sequence[str]) -> list[str]:
    """Refuse a notable list of which the run computes no digest; notes on lists partly so.

    Raises:
        UsageError: naming each notable list none of whose entries could match.
    """
    computed = set(algorithms)
    # Note: a notable list none of whose digests the run computes could never
    # match: the run would say "notable 0", exit 0, with the list named as used.
    blind = [i for i in lists if i.role == "notable" and not computed & _held(i)]
    if blind:
        named = "; ".join(f"'{i.name}' ({', '.join(sorted(_held(i)))})" for i in blind)
        raise UsageError(
            f"The notable list(s) {named} hold no digest this run computes "
            f"({', '.join(algorithms)}): none of their entries could match. Add their "
            "algorithm to --algorithms (a rematch cannot: its digests are the scan's)."
        )
    return [note for info in lists if (note := _uncomputed_note(info, computed)) is not None]


def build_filter(
    store: HashStore,
    lists: list[ListInfo],
    algorithms: Sequence[str],
    on_stage: Callable[[str], None] | None = None,
    *,
    checked: Sequence[ListInfo] | None = None,
) -> tuple[DigestFilter, list[str]]:
    """The in-memory filter over every stored digest this run computes, and notes.

    `on_stage` hears how a build goes, when the filter is not saved in the
    store (the first run after the lists changed): at NSRL's size it takes
    minutes, which must not look like a hang. `checked`: the lists the run
    matches against, checked and noted by check_computed (default: `lists`;
    a resume knows its run's lists only once it reads its log, and checks
    them then: a list imported since, which it does not use, must neither
    refuse it nor be noted).

    Raises:
        UsageError: when the lists and the computed algorithms share none, so
            that nothing could ever match (a silent all-unknown run), or as
            check_computed.
    """
    stored = store.stored_algorithms()
    computed = set(algorithms)
    if not stored & computed:
        usable = sorted(stored & set(available_algorithms()))
        # Note: "Fix --algorithms" was said where none was given, and where no
        # --algorithms could help (the algorithm not installed, or a rematch,
        # whose digests are its scan's).
        fix = (
            f"a scan needs --algorithms naming one of {', '.join(usable)}"
            if usable
            else f"a scan needs what computes them installed (pip install 'matcher[{max(stored)}]')"
        )
        raise UsageError(
            f"The lists hold {', '.join(sorted(stored))} digests but the run computes only "
            f"{', '.join(algorithms)}: nothing could ever match; {fix} (a rematch cannot "
            "add digests: its inventory holds its scan's)."
        )
    notes = check_computed(lists if checked is None else checked, algorithms)
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
    if total >= SPLIT_MIN_DIGESTS and usable_cores() > 1:
        built = _build_in_two(store, usable, counts_by_algorithm, fingerprint, building)
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
    fingerprint: str,
    building: Callable[[int], None],
) -> DigestFilter:
    """The filter of every stored digest, its upper half read by a forked child.

    The child opens the store on its own connection (never this one) and
    first sends the fingerprint of the lists it finds there: a store put at
    the same path meanwhile (a sync job's swap) is not the one this scan
    reads, and its half is then read here. It then sends one algorithm's
    filter at a time, which is ORed in at once: this process never holds
    more than one filter besides its own. A child that fails, or dies,
    costs only time: the halves it did not deliver are read here.
    """
    try:
        readable, writable = os.pipe2(os.O_CLOEXEC)
    except OSError:
        return DigestFilter({a: store.iter_digests(a) for a in usable}, counts, building)
    parent = os.getpid()
    try:
        pid, held = fork_holding_signals()
    except OSError:  # no process to spare (a limit): one build, here
        os.close(readable)
        os.close(writable)
        return DigestFilter({a: store.iter_digests(a) for a in usable}, counts, building)
    if pid == 0:  # the child: the digests from 0x80.. up
        code = 1
        try:
            # Note: no collection here of the parent's garbage (a store
            # connection closed in this process could touch its files).
            gc.disable()
            signal.signal(signal.SIGINT, signal.SIG_IGN)  # the scan owns interruption
            os.close(readable)
            die_with_parent()
            if os.getppid() != parent:  # the parent died before prctl took effect
                os._exit(1)
            signal.pthread_sigmask(signal.SIG_SETMASK, held)
            child_store = HashStore(store.path, readonly=True)
            _send(writable, lists_fingerprint(child_store.lists()).encode())
            # Note: every filter is built before the first is sent: the
            # parent reads only once its own half is built, and a child that
            # waited on the pipe meanwhile would build the rest after it.
            upper = DigestFilter({a: child_store.iter_digests(a, half=1) for a in usable}, counts)
            for algorithm in usable:
                _send(writable, algorithm.encode())
                _send(writable, upper.saved_one(algorithm))
            code = 0
        finally:
            os._exit(code)
    os.close(writable)
    done_here = 0

    def lower(done: int) -> None:
        nonlocal done_here
        done_here = done
        building(2 * done)  # the child reads about as many meanwhile

    missing = list(usable)
    try:
        signal.pthread_sigmask(signal.SIG_SETMASK, held)  # a Ctrl-C held back lands here
        built = DigestFilter(
            {a: store.iter_digests(a, half=0) for a in usable}, counts, on_progress=lower
        )
        # Note: a filter takes about 1.8 bytes a digest; a message larger
        # than this bound can only be a fault, never a reason to allocate.
        limit = 4 * max(counts.get(a, 0) for a in usable) + (1 << 20)
        if _receive(readable, 256) == fingerprint.encode():
            while missing and (name := _receive(readable, 256)) is not None:
                data = _receive(readable, limit)
                if data is None or name.decode("ascii", "replace") != missing[0]:
                    break
                built.union_saved({missing.pop(0): data})
    finally:
        os.close(readable)
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)  # done already, unless this side failed
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, 0)
    if missing:
        upper = DigestFilter(
            {a: store.iter_digests(a, half=1) for a in missing},
            counts,
            on_progress=lambda done: building(done_here + done),
        )
        built.union_saved(upper.saved())
    return built


def _send(fd: int, data: bytes) -> None:
    for part in (_SIZE.pack(len(data)), data):
        view = memoryview(part)
        while view:
            view = view[os.write(fd, view) :]


def _receive(fd: int, limit: int) -> bytes | None:
    """One message `_send` wrote, or None when the pipe ends first (or it exceeds `limit`)."""
    header = _read(fd, _SIZE.size)
    if header is None or _SIZE.unpack(header)[0] > limit:
        return None
    return _read(fd, _SIZE.unpack(header)[0])


def _read(fd: int, size: int) -> bytes | None:
    buffer = bytearray(size)
    view = memoryview(buffer)
    got = 0
    while got < size:
        n = os.readv(fd, [view[got:]])
        if not n:
            return None
        got += n
    return bytes(buffer)
