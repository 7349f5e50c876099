"""A resume's check of the match records its log holds with no inventory row behind them.

The log is synced before the inventory commits, so a crash can leave match
records whose rows never landed: the resume counts those files from their
records. But records after the last signed one are authenticated by nothing:
anyone who can write the log between the crash and the resume could add one
(a "match" for a file that is not there), and the resume would count it and
sign the end record over it. So before the log is touched, each such record
must be one this scan could have written:
- its path lies under a root of the run (`ROOT!member` only in a root the
  scan walks inside: a disk image, or an archive with --archives);
- each list entry it names holds the digest it names (the run's own lists);
- a plain file still at its path reads with the record's size and digests.
A record that fails one of these refuses the resume. A file that cannot be
read again (gone, unreadable, or inside a disk image or archive, which is
not re-read here) is counted from its record, and the end record says so.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Collection
from collections.abc import Iterable
from collections.abc import Mapping
from collections.abc import Sequence
from pathlib import Path

from matcher.errors import UsageError
from matcher.evidence.folder import open_readonly
from matcher.hashing import Hasher
from matcher.match import Lookup
from matcher.timestamps import utc_ns

# The inventory detail of a file counted from its match record.
READ_AGAIN = "matched in an earlier segment, whose row the crash lost: read again, the same digests"
NOT_READ_AGAIN = (
    "matched in an earlier segment, whose row the crash lost: recorded from its match "
    "record, not read again"
)


def _shown(path: bytes) -> str:
    return repr(path.decode("utf-8", "backslashreplace"))


def _under_a_root(path: bytes, roots: Iterable[bytes], containers: Collection[bytes]) -> bool:
    """True when `path` lies under one of `roots`, or in one of `containers` (`ROOT!member`).

    Note: `ROOT!member` only of a root the scan walks inside: beside a folder
    root `ev`, or a plain file root `ev.bin`, `ev!x` and `ev.bin!x` are other
    files, outside the evidence (a record planted for one, holding a notable
    file's content, was read again and adopted).
    """
    for root in roots:
        base = root.rstrip(b"/") or b"/"
        if path == base or path.startswith(base if base.endswith(b"/") else base + b"/"):
            return True
        if path.startswith(base + b"!") and root in containers:
            return True  # inside an image or archive named as a root
    return False


def _named_entries(record: Mapping[str, object]) -> list[tuple[str, str]]:
    """The (list, algorithm) pairs the record's `matches` name."""
    named = record.get("matches")
    pairs: list[tuple[str, str]] = []
    for hit in named if isinstance(named, list) else []:
        if isinstance(hit, dict):
            pairs.append((str(hit.get("list")), str(hit.get("algorithm"))))
    return pairs


def _refused(path: bytes, log: Path, why: str) -> UsageError:
    return UsageError(
        f"Cannot resume {log}: it holds a match record for {_shown(path)} that this scan "
        f"cannot have written: {why}. The record follows the run's last committed files, "
        "where a crash leaves only records of files the scan read; it may have been added "
        "to the log after the run stopped. Nothing was changed: keep the log as it is, "
        "verify it (with --public-key for a signed one), and scan again to a new log."
    )


def check_logged_matches(
    records: Mapping[bytes, Mapping[str, object]],
    roots: Sequence[bytes],
    algorithms: Sequence[str],
    lookup: Lookup,
    log: Path,
    containers: Collection[bytes] = frozenset(),
) -> tuple[dict[bytes, tuple[str, int | None]], list[str]]:
    """Check the match records that have no inventory row; see the module's note.

    Args:
        records: the match records to check, by path.
        roots: the run's evidence roots, as its paths begin.
        algorithms: the run's algorithms.
        lookup: the exact lookup in the run's own lists.
        log: the log, for messages.
        containers: the roots the scan walks inside (disk images, and archives
            with --archives), as `roots` gives them: only these hold `ROOT!member`.

    Returns:
        Each path's inventory detail and the mtime (ns) of the file read again
        (None: not read again), and the notes for the end record.

    Raises:
        UsageError: a record this scan cannot have written (see the module's note).
    """
    details: dict[bytes, tuple[str, int | None]] = {}
    unread: list[bytes] = []
    hasher = Hasher(algorithms, open_readonly)
    for path, record in records.items():
        digests = record.get("digests")
        if not isinstance(digests, dict) or not digests:
            continue  # not from a scan of this version: the file is read again
        if not _under_a_root(path, roots, containers):
            raise _refused(path, log, "its path lies under no evidence root of the run")
        try:
            raw = {str(a): bytes.fromhex(str(d)) for a, d in digests.items()}
        except ValueError as exc:
            raise _refused(path, log, "its digests are not hex") from exc
        for list_name, algorithm in _named_entries(record) or [("", "")]:
            digest = raw.get(algorithm)
            hits = lookup(algorithm, [digest]).get(digest, []) if digest else []
            if not any(h.list_name == list_name for h in hits):
                raise _refused(
                    path,
                    log,
                    f"list {list_name!r} holds no entry with its {algorithm or 'digest'} "
                    "(none of the run's lists does)"
                    if not hits
                    else f"list {list_name!r} holds no entry with its {algorithm}",
                )
        read = _read_again(hasher, path, algorithms)
        if read is None:
            details[path] = (NOT_READ_AGAIN, None)
            unread.append(path)
            continue
        size, mtime_ns, now = read
        if size != record.get("size") or any(now.get(a) != d for a, d in raw.items()):
            raise _refused(
                path,
                log,
                "the file at that path now reads with another size or other digests than "
                "the record gives",
            )
        # Note: the file's own mtime, to the nanosecond, as an uninterrupted
        # run's row has it (the record gives it to the microsecond only); an
        # mtime that moved since the record (the file touched or copied back)
        # is not the one the run saw: the record's is kept.
        same = _recorded_ns(record) == mtime_ns // 1000 * 1000
        details[path] = (READ_AGAIN, mtime_ns if same else None)
    notes = []
    if unread:
        shown = ", ".join(_shown(p) for p in unread[:3]) + (", ..." if len(unread) > 3 else "")
        notes.append(
            f"{len(unread)} match record(s) of the run this one continues had no inventory "
            "row (the crash lost it) and could not be read again (no file at that path now, "
            f"unreadable, or inside a disk image or archive): counted from the record alone: "
            f"{shown}"
        )
    return details, notes


def _recorded_ns(record: Mapping[str, object]) -> int | None:
    """The record's mtime in nanoseconds (to its microsecond); None without a readable one."""
    text = record.get("mtime")
    if not isinstance(text, str):
        return None
    try:
        return utc_ns(text)
    except ValueError:
        return None


def _read_again(
    hasher: Hasher, path: bytes, algorithms: Sequence[str]
) -> tuple[int, int, dict[str, bytes]] | None:
    """The size, mtime (ns) and digests of the plain file at `path`; None when it cannot be read."""
    # Note: opened as the walk opens (no link followed, a path past PATH_MAX
    # component by component): os.lstat failed on a long path, and its record
    # went unchecked, said to be of a file not there.
    try:
        fd = open_readonly(path)
    except OSError:
        return None
    try:
        st = os.fstat(fd)
    except OSError:
        return None
    finally:
        os.close(fd)
    if not stat.S_ISREG(st.st_mode):
        return None
    result = hasher.hash_file(path, st.st_size, st.st_mtime_ns, st.st_dev, st.st_ino)
    if not isinstance(result, list):
        return None
    return st.st_size, st.st_mtime_ns, dict(zip(algorithms, result, strict=True))
