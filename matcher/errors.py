"""Errors that matcher explains to a user, and the exit codes of every command."""

from __future__ import annotations

import enum
import errno
import os
import resource
from collections.abc import Mapping
from collections.abc import Sequence
from typing import TypeVar


class ExitCode(enum.IntEnum):
    """Process exit codes (the contract in DESIGN.md and the README).

    `scan`, `rematch` and `batch` combine the flags NOTABLE, INCOMPLETE and
    INTERRUPTED bitwise, so a run that found a match *and* could not read a
    file exits 1 | 4 = 5: no code ever hides trouble. 2 always stands alone.
    """

    OK = 0
    NOTABLE = 1  # scan: at least one notable match; verify: log tampered/incomplete
    FATAL = 2  # usage error or fatal error; verify: log unreadable; import: rejected
    INCOMPLETE = 4  # scan finished, but at least one entry could not be read
    INTERRUPTED = 8  # scan stopped by SIGINT/SIGTERM; resumable with --resume
    IMAGE_MISMATCH = 16  # scan --verify-image: an E01's media differs from its stored hash


class MatcherError(Exception):
    """Base for errors that matcher can explain to a user."""


T = TypeVar("T")


def described(exc: BaseException) -> str:
    """An error's message with its notes (exc.add_note: e.g. what a failed scan kept)."""
    return " ".join([str(exc), *getattr(exc, "__notes__", ())])


class UsageError(MatcherError):
    """The command was asked to do something it refuses to do."""


def registered(
    table: Mapping[str, T], name: str, what: str, choices: Sequence[str] | None = None
) -> T:
    """`table[name]`: the registered thing called `name`.

    Raises:
        UsageError: there is none (naming `what` and the `choices`, by default
            every name there is, sorted).
    """
    try:
        return table[name]
    except KeyError:
        shown = ", ".join(sorted(table) if choices is None else choices)
        raise UsageError(f"Unknown {what} {name!r}; choose from {shown}.") from None


class FormatError(MatcherError):
    """A hash list is malformed or not in the expected format."""

    def __init__(self, message: str, source: str | None = None, line: int | None = None):
        self.reason = message
        self.source = source
        self.line = line
        where = source or "<input>"
        if line is not None:
            where = f"{where}:{line}"
        super().__init__(
            f"{where}: {message}" if source is not None or line is not None else message
        )


class StoreError(MatcherError):
    """The hash store is missing, locked, or has an unexpected schema."""


class EvidenceError(MatcherError):
    """An evidence item could not be opened or read."""


class IntegrityError(MatcherError):
    """An audit log chain, a signature or a store checksum does not verify."""

    def __init__(self, message: str, line: int | None = None):
        self.line = line
        self.reason = message  # without the line number
        # For a log: (size, SHA-256) of the bytes the verification read, when it read them.
        self.seen: tuple[int, str] | None = None
        # For a log: what verified before the failure, when it read that far:
        # (records, signed records, signatures checked, signing keys' fingerprints).
        self.verified: tuple[int, int, int, tuple[str, ...], int, bool] | None = None
        super().__init__(f"line {line}: {message}" if line is not None else message)


class LogWriteError(MatcherError):
    """The audit log could not be written (disk full, read-only, ...)."""


class OutOfResources(MatcherError):
    """matcher itself ran out of open files or memory: a limit of the machine, not the evidence's.

    Recorded as an evidence error, it made a scan of nothing 'complete' (a
    walk-error at its root, the log never to be resumed): it stops the run
    instead, which --resume continues once the limit is raised.
    """


# errno values that are matcher's own limits, whatever the path they came with.
_OWN_LIMITS = {
    errno.EMFILE: ("open files", "raise the limit (`ulimit -n`)"),
    errno.ENFILE: ("the system's open files", "close other programs"),
    errno.ENOMEM: ("memory", "free some, or give fewer --jobs"),
}


def is_own_limit(code: int | None) -> bool:
    """True for an errno that is matcher's own limit (open files, memory)."""
    return code in _OWN_LIMITS


def refuse_own_limit(exc: BaseException, path: bytes) -> None:
    """Raise OutOfResources when `exc` is matcher's own limit, not a fault of `path`'s entry."""
    if not isinstance(exc, OSError):
        return
    limit = _OWN_LIMITS.get(exc.errno or 0)
    if limit is not None:
        what, advice = limit
        raise OutOfResources(
            f"matcher ran out of {what} ({errno.errorcode.get(exc.errno or 0)}) at "
            f"{path.decode('utf-8', 'backslashreplace')}: a limit of this machine, not a fault "
            f"of the evidence; {advice}"
        ) from exc


def open_files_note(spare: int = 4) -> str | None:
    """Why SQLite's bare "unable to open database file" may be this process's open-file limit.

    Note: SQLite gives no errno: a database, its journal or a temporary
    file it could not open for want of a file descriptor was said as
    "unable to open", which read as a permission problem. None unless this
    process is within `spare` descriptors of its limit (or cannot count them).
    """
    try:
        soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
        in_use = len(os.listdir("/proc/self/fd")) - 1  # less the listing's own
    except OSError as exc:
        if exc.errno not in (errno.EMFILE, errno.ENFILE):
            return None
        return "this process has no file descriptor left: raise the limit (`ulimit -n`)"
    if soft == resource.RLIM_INFINITY or in_use + spare < soft:
        return None
    return (
        f"this process has {in_use} files open, and may open at most {soft}: "
        "raise the limit (`ulimit -n`)"
    )


def os_error_detail(exc: OSError) -> str:
    """`ECODE: strerror` for an OSError; its own message when it has no errno.

    Note: libraries (pytsk3, a decompressor) raise OSError with a message and
    no errno ("Offset missing in partial image: 27264000"), which the errno
    form printed as `E?: None`.
    """
    if exc.errno is None:
        return str(exc) or type(exc).__name__
    return f"{errno.errorcode.get(exc.errno, 'E?')}: {exc.strerror}"
