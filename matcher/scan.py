"""Job: walk evidence, hash every file once, match, and record (log + inventory).

Wiring only: the walker yields tasks and outcomes, the engine turns tasks into
digests, the filter and store turn digests into verdicts, and the audit log
and inventory record them, all in walk order. Only this thread touches
SQLite, the log and the progress callback.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import errno
import gc
import json
import os
import signal
import sqlite3
import stat
import sys
import time
from collections.abc import Callable
from collections.abc import Generator
from collections.abc import Iterator
from collections.abc import Mapping
from collections.abc import Sequence
from pathlib import Path
from types import FrameType

from matcher import IGNORED_AT_START
from matcher import TOOL_NAME
from matcher import __version__
from matcher import auditlog
from matcher import signing
from matcher.digests import DEFAULT_ALGORITHMS
from matcher.digests import available_algorithms
from matcher.digests import file_sha256
from matcher.digests import parse_algorithms
from matcher.errors import ExitCode
from matcher.errors import FormatError
from matcher.errors import MatcherError
from matcher.errors import UsageError
from matcher.errors import os_error_detail
from matcher.evidence.folder import AtimeRule
from matcher.evidence.folder import FolderWalker
from matcher.evidence.folder import open_file
from matcher.evidence.folder import open_readonly
from matcher.evidence.image import OpenedImage
from matcher.evidence.image import looks_like_image
from matcher.evidence.limits import ArchiveLimits
from matcher.evidence.roots import absolute
from matcher.evidence.roots import distinct_roots
from matcher.evidence.roots import unusable_root
from matcher.evidence.sources import EvidenceWalker
from matcher.evidence.sources import prepare_images
from matcher.evidence.sources import read_chunks
from matcher.evidence.sources import verify_images
from matcher.hashing import Engine
from matcher.hashing import RawResult
from matcher.hashing import make_engine
from matcher.interrupts import held_in_callbacks
from matcher.interrupts import in_foreign_callback
from matcher.inventory import Inventory
from matcher.inventory import default_path as default_inventory_path
from matcher.logged_matches import check_logged_matches
from matcher.lookup_filter import build_filter
from matcher.lookup_filter import check_computed
from matcher.lookup_filter import lists_fingerprint
from matcher.match import DigestFilter
from matcher.match import Lookup
from matcher.match import digests_differ
from matcher.match import held_by_every_entry
from matcher.match import match_batch
from matcher.match import verdict as verdict_of
from matcher.models import SKIPPED_INVALID
from matcher.models import EntryOutcome
from matcher.models import Failure
from matcher.models import FileTask
from matcher.models import ListHit
from matcher.models import ListInfo
from matcher.models import SizeSet
from matcher.models import Skip
from matcher.models import Verdict
from matcher.models import path_fields
from matcher.models import storable
from matcher.models import storable_text
from matcher.mounts import MountView
from matcher.path_set import PathSet
from matcher.selftest import SelftestResult
from matcher.selftest import run_selftest
from matcher.sqlitefiles import temporary_folders
from matcher.store import HashStore
from matcher.store import remove_store_if_empty
from matcher.timestamps import utc_ns
from matcher.timestamps import utc_text
from matcher.workers import usable_cores

MATCH_BATCH = 512
NOT_CANDIDATE_BATCH = 4096
SETTLE_SECONDS = 1.0
SETTLE_BYTES = 64 << 20
INVENTORY_FLUSH_SECONDS = 0.5
CHECKPOINT_SECONDS = 600.0
# The list entries one match record names, at most (as JSON, bytes): a
# digest some supplier lists 100,000 times made a record longer than the
# longest line verify reads (auditlog.MAX_LINE_BYTES), so a genuine log
# failed verify. Beyond it the record says how many entries matched in all
# (`matches_total`); the store names them all.
MATCH_RECORD_HITS_BYTES = 1 << 20


class SelftestFailed(MatcherError):
    """The start-up known-answer test failed: the build cannot be trusted to hash."""


class ScanAborted(MatcherError):
    """A fatal error stopped the scan after its log was opened (the log is closed cleanly)."""


class Interrupted(BaseException):
    """SIGINT or SIGTERM arrived; the scan stops and records status `interrupted`."""


@dataclasses.dataclass
class ScanOptions:
    """Everything a scan needs; the CLI fills it, a batch job can too."""

    evidence: Sequence[Path]
    examiner: str
    case: str
    db: Path
    log: Path
    authority: str | None = None
    lists: Sequence[Path] = ()
    # None: md5, sha1 and sha256, and any other the store's notable lists hold
    # (see resolve_algorithms).
    algorithms: Sequence[str] | None = None
    jobs: int = 0
    engine: str = "auto"
    candidates_only: bool = False
    excludes: Sequence[str] = ()
    max_size: int | None = None
    one_file_system: bool = False
    resume: bool = False
    sign_key: Path | None = None
    inventory: Path | None = None
    argv: Sequence[str] = ()
    deleted: bool = False  # images: hash deleted entries TSK can still read
    verify_image: bool = False  # E01: re-hash the media against its stored hashes
    images_only: bool = False  # every file root must be a disk image
    archives: bool = False  # look inside zip/tar/gz/bz2/xz members
    archive_limits: ArchiveLimits = dataclasses.field(default_factory=ArchiveLimits)
    # A batch's other items' evidence: a --list inside one is noted as inside
    # this item's is (see _read_inside_evidence). Not scanned.
    other_evidence: Sequence[Path] = ()


@dataclasses.dataclass
class Counts:
    """Running totals; entries = files + skipped + errors, always."""

    entries: int = 0
    files: int = 0
    bytes: int = 0
    notable: int = 0
    known: int = 0
    unknown: int = 0
    # Empty files (in `unknown`): no list entry can identify zero bytes.
    empty: int = 0
    errors: int = 0
    skipped: int = 0
    skipped_by_reason: dict[str, int] = dataclasses.field(default_factory=dict)
    errors_by_reason: dict[str, int] = dataclasses.field(default_factory=dict)
    image_mismatches: int = 0  # --verify-image: E01s whose media hash did not match

    def as_dict(self) -> dict[str, object]:
        return dataclasses.asdict(self)

    @classmethod
    def from_record(cls, counted: Mapping[str, object]) -> Counts:
        """The counts an `end` record gives (`as_dict()` as logged; unknown keys left out)."""
        fields = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in counted.items() if k in fields})  # type: ignore[arg-type]


@dataclasses.dataclass
class ScanSummary:
    """The result of a scan, for the terminal, scripts and batch jobs."""

    status: str
    counts: Counts
    seconds: float
    log: Path
    inventory: Path
    notes: list[str]
    exit_code: int
    head: str = ""  # the log's final chain head, to be noted outside the log
    # A SIGINT/SIGTERM that arrived as a complete scan ended (held, as it came
    # after the last entry): a batch stops there, as for an interrupted one.
    signal: str | None = None

    def as_dict(self) -> dict[str, object]:
        return {
            "status": self.status,
            "exit_code": self.exit_code,
            "log": str(self.log),
            "head": self.head,
            "inventory": str(self.inventory),
            "seconds": round(self.seconds, 3),
            **self.counts.as_dict(),
            "notes": self.notes,
        }


def exit_code_for(status: str, counts: Counts) -> int:
    """The scan exit code: NOTABLE | INCOMPLETE | INTERRUPTED flags, 0 when none."""
    code = 0
    if counts.notable:
        code |= ExitCode.NOTABLE
    if counts.errors:
        code |= ExitCode.INCOMPLETE
    if status != "complete":
        code |= ExitCode.INTERRUPTED
    if counts.image_mismatches:
        code |= ExitCode.IMAGE_MISMATCH
    return code


def _within(path: Path, root: Path) -> bool:
    """True when `path` is the evidence root `root` or lies below it."""
    return path == root or (root.is_dir() and _under(path, root))


def _under(path: Path, root: Path) -> bool:
    try:
        path.relative_to(root)
    except ValueError:
        return False
    return True


_SPECIAL_ROOTS = {
    stat.S_IFBLK: "a block device",
    stat.S_IFCHR: "a character device",
    stat.S_IFIFO: "a FIFO (named pipe)",
    stat.S_IFSOCK: "a socket",
}


def refuse_outputs_inside(
    evidence: Sequence[Path],
    outputs: Sequence[Path],
    labels: Sequence[tuple[str, str]] = (),
    view: MountView | None = None,
) -> None:
    """Never write under an evidence root: refuse any output path inside one.

    `labels` gives, for each output in turn, what it is and the option that
    moves it (a path chosen by default is then named with that option).
    `view`: the mount table, read once for many calls (a batch's items).

    Raises:
        UsageError: naming the output and the evidence root it lies in.
    """
    roots = [Path(os.path.realpath(e)) for e in evidence]
    view = MountView() if view is None else view
    for index, out in enumerate(outputs):
        real = Path(os.path.realpath(out))
        label = labels[index] if index < len(labels) else None
        for root, given in zip(roots, evidence, strict=True):
            # Note: a bind mount shows a folder at a second place: a log beside
            # the evidence was written into it through one (found by a validator).
            if _within(real, root):
                how = f"lies inside evidence {given}"
            elif view.shown_inside(
                os.fsencode(_nearest_folder(real)), os.fsencode(root)
            ) or view.bound_inside(os.fsencode(real), os.fsencode(root)):
                how = f"is also reached inside evidence {given} (a mount shows it there)"
            else:
                continue
            what = f"The {label[0]} {out}" if label else f"Output {out}"
            where = f" with {label[1]}" if label else ""
            raise UsageError(
                f"{what} {how}; matcher never writes under an evidence root. "
                f"Choose a path outside it{where}."
            )


def _nearest_folder(path: Path) -> Path:
    """The folder `path` is, or the nearest existing one above it (where it would be made).

    Note: a log in a folder not made yet (a batch makes it) had no folder to
    compare, and the folder was made inside the evidence (a review).
    """
    folder = path if path.is_dir() else path.parent
    while not folder.is_dir() and folder != folder.parent:
        folder = folder.parent
    return folder


def refuse_same_files(files: Sequence[tuple[Path, str, str]]) -> None:
    """Refuse two of a scan's files that are one file (a list may be read twice).

    `files` gives each file with what it is and its option. Two are one
    file when their resolved paths are equal or, for files that exist, their
    device and inode (a hard link, or a symbolic link, to the same file).

    Raises:
        UsageError: naming the two files.
    """
    seen: list[tuple[Path, str, str, str, tuple[int, int] | None]] = []
    for path, what, option in files:
        real = os.path.realpath(path)
        try:
            status = os.stat(path)
            ident: tuple[int, int] | None = (status.st_dev, status.st_ino)
        except OSError:
            ident = None
        for other, other_what, other_option, other_real, other_ident in seen:
            if what == other_what == "list":
                continue
            if real == other_real or (ident is not None and ident == other_ident):
                raise UsageError(
                    f"The {what} {path} and the {other_what} {other} are the same file; "
                    f"each needs its own. Choose another {other_option} or {option}."
                )
        seen.append((path, what, option, real, ident))


def _refuse_unwritable_folder(path: Path, what: str, option: str) -> None:
    """Refuse a file to be created in a folder that is missing or that cannot be written.

    Raises:
        UsageError: naming the file and the option that moves it.
    """
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        exists = os.path.lexists(folder)
        why = "is not a folder; choose" if exists else "does not exist; create it, or choose"
    elif not os.access(folder, os.W_OK | os.X_OK):
        # Note: an existing folder: "create it" said of it misled.
        why = "cannot be written by this user; choose"
    else:
        return
    raise UsageError(f"The folder of the {what} {path} {why} another {option}.")


def _as_the_command_line_gives(options: ScanOptions) -> ScanOptions:
    """The options checked as the command line checks its own; paths as Path, names canonical.

    A library caller may give paths as str (or bytes, or one path for a
    sequence) and digest names as the command line takes them ("SHA-1").

    Raises:
        UsageError: an unknown or unavailable algorithm, or a negative jobs.
    """
    try:
        algorithms = None if options.algorithms is None else parse_algorithms(options.algorithms)
    except ValueError as exc:
        raise UsageError(f"--algorithms: {exc}.") from exc
    jobs = options.jobs or 0  # 0 (or None): one per core
    if not isinstance(jobs, int) or jobs < 0:
        raise UsageError(f"--jobs must be at least 1 (0: one per core), not {options.jobs!r}.")

    def path(value: str | bytes | os.PathLike[str] | os.PathLike[bytes]) -> Path:
        return Path(os.fsdecode(value))

    def paths(value: Sequence[Path] | str | bytes | os.PathLike[str]) -> tuple[Path, ...]:
        if isinstance(value, str | bytes | os.PathLike):
            return (path(value),)
        return tuple(map(path, value))

    return dataclasses.replace(
        options,
        evidence=paths(options.evidence),
        db=path(options.db),
        log=path(options.log),
        lists=paths(options.lists),
        inventory=None if options.inventory is None else path(options.inventory),
        sign_key=None if options.sign_key is None else path(options.sign_key),
        algorithms=algorithms,
        jobs=jobs,
    )


def resolve_algorithms(options: ScanOptions) -> ScanOptions:
    """The options with the algorithms a scan without --algorithms computes.

    md5, sha1 and sha256, and any other algorithm a notable list in the store
    holds digests of: a list mixing SHA-512 lines with MD5 ones had the
    SHA-512 entries left blind by default (a note, "notable 0", exit 0).
    A known list's other algorithms are added too when none of the default
    ones is given by all of its entries (see _beyond_default): a known list
    of SHA-512 digests matched nothing by default, and the files it names
    counted as unknown, the examiner's workload. Read before the hashing
    workers start (they must hold no store file), so a list `--list` imports
    later is checked by check_default_algorithms. Explicit algorithms are
    kept as given.
    """
    if options.algorithms is not None:
        return options
    if options.resume:
        logged = _logged_algorithms(options.log)
        if logged is not None:
            return dataclasses.replace(options, algorithms=logged)
    held: set[str] = set()
    if os.path.isfile(options.db):
        with contextlib.suppress(MatcherError, OSError, sqlite3.Error):
            store = HashStore(options.db, readonly=True, create=False)
            try:
                held = _beyond_default(store.lists(), set(DEFAULT_ALGORITHMS))
            finally:
                store.close()
    extra = (held - set(DEFAULT_ALGORITHMS)) & set(available_algorithms())
    return dataclasses.replace(options, algorithms=parse_algorithms([*DEFAULT_ALGORITHMS, *extra]))


def _algorithms(options: ScanOptions) -> Sequence[str]:
    """The run's algorithms, once resolve_algorithms has given them."""
    if options.algorithms is None:
        raise ValueError("the algorithms are resolved first (resolve_algorithms)")
    return options.algorithms


def _logged_algorithms(log: Path) -> tuple[str, ...] | None:
    """The algorithms of the log's last run record, when it can be read: a resume's own.

    Note: a resume without --algorithms computes what the run it continues
    did, not what the store's lists ask for now (a list imported since would
    have the resume refused as "other algorithms").
    """
    found: tuple[str, ...] | None = None
    with contextlib.suppress(MatcherError, OSError, ValueError):
        for record in auditlog.read_records(log):
            named = record.get("algorithms")
            if record["type"] == "run" and isinstance(named, list):
                found = parse_algorithms([str(a) for a in named])
    return found


def _beyond_default(lists: Sequence[ListInfo], computed: set[str]) -> set[str]:
    """The algorithms of `lists` a default scan computing `computed` must add.

    Every algorithm a notable list holds digests of: a notable entry is never
    left blind, and each digest corroborates the match. Of a known list, its
    algorithms only when none of `computed` is given by every one of its
    entries: otherwise each entry is matched by that one, and hashing every
    file with one more algorithm (SHA-512 costs about what SHA-256 does)
    would change no verdict.
    """
    every = held_by_every_entry(lists)
    return {
        a
        for i in lists
        if i.role == "notable" or not (every[i.name] & computed)
        for a, n in i.counts.items()
        if n and a not in computed
    }


def check_default_algorithms(options: ScanOptions, lists: Sequence[ListInfo]) -> None:
    """Refuse a default-algorithm scan whose lists hold digests it must compute and does not.

    (Only a list --list imported after resolve_algorithms can: its
    algorithms were not known when the workers started. Which lists, and
    which of their algorithms: see _beyond_default.)

    Raises:
        UsageError: naming the lists and the algorithms to add.
    """
    computed = set(_algorithms(options))
    available = set(available_algorithms())
    # Note: a known list's algorithm this installation cannot compute is left
    # out (the run's notes say how many of its entries cannot match), as the
    # workers' default leaves it out: refused, a known BLAKE3 list stopped
    # every default scan of a store shared with a lab without blake3.
    missing = {
        i.name: sorted(
            a for a in _beyond_default([i], computed) if i.role == "notable" or a in available
        )
        for i in lists
    }
    missing = {name: algos for name, algos in missing.items() if algos}
    unable = sorted({a for algos in missing.values() for a in algos} - available)
    if unable:
        # Note: parse_algorithms raised on them here (a traceback); a default
        # scan that cannot compute a notable list's digests is refused as one
        # that does not: the examiner decides (install, or --algorithms).
        named = "; ".join(
            f"{name!r} ({', '.join(a for a in algos if a in unable)})"
            for name, algos in missing.items()
            if set(algos) & set(unable)
        )
        raise UsageError(
            f"The list(s) {named} hold digests this installation cannot compute: "
            f"install the optional package (pip install 'matcher[{unable[0]}]'), or give "
            "--algorithms to scan without them (entries with only those digests then cannot "
            "match; the run's notes say how many)."
        )
    if missing:
        named = "; ".join(f"{name!r} ({', '.join(algos)})" for name, algos in missing.items())
        wanted = sorted(computed | {a for algos in missing.values() for a in algos})
        raise UsageError(
            f"The list(s) {named} hold digests this run does not compute by default: "
            "entries with only those could never match, and the files they name would "
            "count as unknown (or not notable). Run it again (the lists are now in the "
            f"store), or give --algorithms {','.join(parse_algorithms(wanted))}."
        )


# The inventory meta key of the counts behind the end record's notes on matches.
WEIGHED_KEY = "weighed_matches"


def _hit_fields(hit: ListHit, differ: tuple[str, ...] = ()) -> dict[str, object]:
    entry: dict[str, object] = {"size": hit.size}
    if isinstance(hit.name, bytes):
        entry.update(path_fields(hit.name, "name"))
    else:
        entry["name"] = hit.name
    entry["id"] = hit.ident
    entry["label"] = hit.label
    fields: dict[str, object] = {
        "list": hit.list_name,
        "role": hit.role,
        "algorithm": hit.algorithm,
        "entry": entry,
    }
    if differ:
        fields["digests_differ"] = list(differ)
    return fields


def _lists_matched(hits: list[ListHit]) -> list[dict[str, object]]:
    """Every list the hits come from, in their order, with its role and how many entries.

    Note: a match record that stops naming entries (past its budget) still
    names every list matched: a digest one list gives 100,000 times hid that
    the file was also in two other lists, a notable one among them (a review).
    """
    counted = collections.Counter((hit.list_name, hit.role) for hit in hits)
    return [{"list": name, "role": role, "entries": n} for (name, role), n in counted.items()]


def _sizes_differ(size: int | None, hits: list[ListHit], verdict: Verdict) -> bool:
    """True when every hit of the deciding role names a size, and none is `size`."""
    deciding = [h.size for h in hits if h.role == verdict.value]
    return bool(deciding) and all(s is not None and s != size for s in deciding)


class _Recorder:
    """Applies outcomes to the counts, the inventory and the log, in order."""

    def __init__(
        self,
        log: auditlog.LogWriter,
        inventory: Inventory,
        counts: Counts,
        run: int,
        logged: set[bytes],
        held: Mapping[str, frozenset[str]] | None = None,
    ):
        self.log = log
        self.inventory = inventory
        self.counts = counts
        self.run = run
        self.logged = logged
        # Per list, the algorithms every entry gives (see match.digests_differ).
        self.held = held or {}
        self.last_flush = time.monotonic()
        self.last_checkpoint = self.last_flush
        # Files whose deciding hits all name a size other than the file's, by verdict.
        self.other_size = {Verdict.NOTABLE: 0, Verdict.KNOWN: 0}
        # Files that matched entries giving another digest of theirs: notable
        # ones (logged, marked), and files whose known matches were set aside.
        self.differ_notable = 0
        self.differ_known = 0
        self._noted = self._weighed()  # as the inventory notes them (see commit)

    def notes(self) -> list[str]:
        """The `end` record's notes on what the matches themselves showed."""
        return [n for n in (self.size_note(), self.differ_note()) if n is not None]

    def differ_note(self) -> str | None:
        """A note on matches to entries that give another digest of the file than its own."""
        said = []
        if self.differ_known:
            said.append(
                f"{self.differ_known} file(s) matched known list entries that give another "
                "digest of the file than its own: those matches are not counted (the file is "
                "not the one the entry names), and the files count as unknown unless another "
                "entry matches them"
            )
        if self.differ_notable:
            said.append(
                f"{self.differ_notable} notable file(s) matched notable list entries that give "
                "another digest of the file than its own: logged, each such entry marked "
                "`digests_differ`"
            )
        if not said:
            return None
        return "; ".join(said) + (
            " (a collision of the digest that matched, or a wrong entry in the list)"
        )

    def size_note(self) -> str | None:
        """A note on matches to entries of another size (a wrong size in a list, or a collision).

        Note: the digest decides a match, as it does in every tool of the
        field; the sizes are in each match record (`size`, `entry.size`).
        A notable entry of the wrong size is also one --candidates-only
        never reads.
        """
        notable, known = self.other_size[Verdict.NOTABLE], self.other_size[Verdict.KNOWN]
        if not notable and not known:
            return None
        return (
            f"{notable} notable and {known} known file(s) matched only list entries that give "
            "another size than the file's: a wrong size in the list, or a collision of the "
            "digest that matched (weigh an MD5- or SHA-1-only match accordingly); the notable "
            "ones' match records show both sizes"
        )

    def record(self, outcome: EntryOutcome, hits: list[ListHit]) -> None:
        # Note: the log record (if any) is written first and counted after,
        # so a failed write (disk full) leaves no count ahead of the log.
        verdict: Verdict | None = None
        if outcome.digests is not None:
            if outcome.size == 0:
                # Note: an empty file's digest is in many lists by mistake (it
                # is flagged at import); it identifies nothing, so it never
                # makes a match: the file is counted as empty and unknown.
                hits = []
            differ = digests_differ(hits, outcome.digests, self.held) if hits else {}
            counted = hits
            if differ:
                # Note: a known entry that gives another SHA-256 of the file than
                # its own is not this file (an MD5 made to collide with an NSRL
                # file's would otherwise hide it as known-good); a notable one
                # still counts, marked: the examiner looks at it either way.
                counted = [
                    h for h in hits if h.role != "known" or (h.list_name, h.entry_id) not in differ
                ]
                self.differ_known += len(counted) < len(hits)
            verdict = verdict_of(counted)
            if differ and verdict is Verdict.NOTABLE:
                self.differ_notable += any(
                    h.role == "notable" and (h.list_name, h.entry_id) in differ for h in hits
                )
            if verdict in self.other_size and _sizes_differ(outcome.size, counted, verdict):
                self.other_size[verdict] += 1
            # Note: `logged` holds the matches of earlier segments only (a
            # resume never logs one twice); within a run every match is
            # logged, even of a path that names two entries.
            if verdict is Verdict.NOTABLE and outcome.path not in self.logged:
                self.log.append("match", self._match_fields(outcome, hits, differ))
        elif outcome.skip is None:
            assert outcome.failure is not None
            self.log.append(
                "error",
                {
                    **path_fields(outcome.path),
                    "kind": outcome.kind,
                    "reason": outcome.failure.value,
                    "errno": outcome.errno,
                    "detail": storable(outcome.detail),  # free text, from a library at times
                    "size": outcome.size,
                },
            )
        counts = self.counts
        counts.entries += 1
        if verdict is not None:
            counts.files += 1
            counts.bytes += outcome.size or 0
            counts.empty += outcome.size == 0
            if verdict is Verdict.NOTABLE:
                counts.notable += 1
            elif verdict is Verdict.KNOWN:
                counts.known += 1
            else:
                counts.unknown += 1
        elif outcome.skip is not None:
            self._count_skipped(outcome.skip, 1)
        else:
            assert outcome.failure is not None
            counts.errors += 1
            reason = outcome.failure.value
            counts.errors_by_reason[reason] = counts.errors_by_reason.get(reason, 0) + 1
        self.inventory.add(outcome, verdict.value if verdict else None, self.run)

    def record_many(
        self, outcomes: list[EntryOutcome], hits_of: Mapping[int, list[ListHit]]
    ) -> None:
        """Record a batch of outcomes; `hits_of` maps id(outcome) to its hits, if any.

        Note: most files of a scan are hashed, nonempty and in no list. Those
        write no log record, so they are counted and queued for the
        inventory in bulk, without a record() call each (a scan of small
        files spends much of its main process's time per file). Every other
        outcome goes through record(), in order, so the log's order is kept.
        """
        plain: list[EntryOutcome] = []
        try:
            for outcome in outcomes:
                if (
                    outcome.size
                    and outcome.digests is not None
                    and outcome.errno is None
                    and outcome.detail is None
                    and id(outcome) not in hits_of
                ):
                    plain.append(outcome)
                else:
                    self.record(outcome, hits_of.get(id(outcome), []))
        finally:
            # Note: also when a log write fails (disk full): the unknown files
            # before it are recorded, as they were when each went in turn.
            if plain:
                self.inventory.add_hashed(plain, Verdict.UNKNOWN.value, self.run)
                self._count_unknown(len(plain), sum([outcome.size or 0 for outcome in plain]))

    def record_unknown(
        self, algorithms: tuple[str, ...], tasks: list[FileTask], digest_lists: list[list[bytes]]
    ) -> None:
        """Count and queue plain files in no list (hashed whole, each with its digests).

        The bulk path of the files the filter rules out for certain, and of
        empty files (never a match): they write no log record, so neither an
        outcome object nor the walk order is needed for them (see _pump).
        Note: empty files took the ordered path, some 22 µs each in the main
        process (100,000 empty files: 2.4 x hashdeep's time).
        """
        self.inventory.add_digests(algorithms, tasks, digest_lists, Verdict.UNKNOWN.value, self.run)
        sizes = [task.size for task in tasks]
        self._count_unknown(len(tasks), sum(sizes))
        self.counts.empty += sizes.count(0)

    def _count_unknown(self, n: int, size: int) -> None:
        counts = self.counts
        counts.entries += n
        counts.files += n
        counts.unknown += n
        counts.bytes += size

    def record_skipped(self, rows: list[tuple[bytes, str, int, int]], skip: Skip) -> None:
        """Count and queue entries skipped for one reason (path, kind, size, mtime_ns each)."""
        if not rows:
            return
        self.counts.entries += len(rows)
        self._count_skipped(skip, len(rows))
        self.inventory.add_skipped(rows, skip.value, self.run)

    def _count_skipped(self, skip: Skip, n: int) -> None:
        counts = self.counts
        counts.skipped += n
        counts.skipped_by_reason[skip.value] = counts.skipped_by_reason.get(skip.value, 0) + n

    @staticmethod
    def _match_fields(
        outcome: EntryOutcome,
        hits: list[ListHit],
        differ: Mapping[tuple[str, int | None], tuple[str, ...]],
    ) -> dict[str, object]:
        assert outcome.digests is not None
        notable_first = sorted(hits, key=lambda h: h.role != "notable")
        named: list[dict[str, object]] = []
        room = MATCH_RECORD_HITS_BYTES
        for hit in notable_first:
            fields = _hit_fields(hit, differ.get((hit.list_name, hit.entry_id), ()))
            room -= len(json.dumps(fields, ensure_ascii=False).encode())
            if room < 0 and named:
                break
            named.append(fields)
        return {
            **path_fields(outcome.path),
            "size": outcome.size,
            "mtime": utc_text(outcome.mtime_ns),
            **({"kind": outcome.kind} if outcome.kind != "file" else {}),
            "digests": {a: d.hex() for a, d in outcome.digests.items()},
            "matches": named,
            **(
                {"matches_total": len(hits), "lists_matched": _lists_matched(notable_first)}
                if len(named) < len(hits)
                else {}
            ),
        }

    def commit(self) -> None:
        """Make the recorded outcomes durable: the log first, then the inventory.

        The order matters after a power loss. The inventory calls a file
        finished, and --resume never reads a finished file again; so its
        match record must be on disk before the inventory row is. The other
        way round, the worst case is a file hashed again on resume, whose
        match is already logged (and is not logged twice).
        """
        self.log.sync()
        weighed = self._weighed()
        if weighed != self._noted:
            # Note: with the rows it counts, so that a resume (which reads those
            # files no more) still says so in its end record; it said nothing.
            self.inventory.note(WEIGHED_KEY, json.dumps(weighed))
        self.inventory.flush()
        self._noted = weighed

    def _weighed(self) -> dict[str, int]:
        """The counts behind notes(), of the files recorded so far."""
        return {
            "other_size_notable": self.other_size[Verdict.NOTABLE],
            "other_size_known": self.other_size[Verdict.KNOWN],
            "differ_notable": self.differ_notable,
            "differ_known": self.differ_known,
        }

    def restore(self, noted: str | None) -> None:
        """Take up the counts an earlier run noted in the inventory (on resume)."""
        try:
            found = json.loads(noted) if noted else {}
        except ValueError:
            found = {}
        if not isinstance(found, dict):
            return

        def get(key: str) -> int:
            value = found.get(key)
            return value if isinstance(value, int) and value >= 0 else 0

        self.other_size[Verdict.NOTABLE] = get("other_size_notable")
        self.other_size[Verdict.KNOWN] = get("other_size_known")
        self.differ_notable = get("differ_notable")
        self.differ_known = get("differ_known")
        self._noted = self._weighed()

    def maybe_flush(self) -> None:
        now = time.monotonic()
        if now - self.last_flush >= INVENTORY_FLUSH_SECONDS:
            self.commit()
            self.last_flush = now
        if now - self.last_checkpoint >= CHECKPOINT_SECONDS:
            # A long run leaves (signed, with --sign-key) progress marks, so a
            # reviewer can check authorship even of a run cut short later.
            counts = self.counts
            self.log.checkpoint({k: v for k, v in counts.as_dict().items() if isinstance(v, int)})
            self.last_checkpoint = now


class _SignalGate:
    """Keeps SIGINT/SIGTERM out of the sections that write the log and inventory.

    A signal raises `Interrupted` where it lands, so that a scan waiting on a
    large file stops at once; but landing inside a log append (after the line
    is written, before the chain head moves on) would break the chain of the
    `end` record that follows. Inside `critical()` the signal is held and
    raised when the section ends.

    A signal raises only inside `interruptible()` (the work loop); anywhere
    else it is held. So one that lands after the loop ends (in an `except`
    or at the start of a `finally`) can never skip the `end` record or
    escape as a traceback; one that landed before the loop starts stops it
    at once.
    """

    def __init__(self) -> None:
        self.depth = 0
        self.open = False
        self.held: str | None = None

    @contextlib.contextmanager
    def interruptible(self) -> Iterator[None]:
        if self.held is not None:
            raise Interrupted(self.held)
        self.open = True
        try:
            yield
        finally:
            self.open = False

    @contextlib.contextmanager
    def critical(self) -> Iterator[None]:
        self.depth += 1
        try:
            yield
        finally:
            self.depth -= 1
        if self.depth == 0 and self.open and self.held is not None:
            raise Interrupted(self.held)

    def arrive(self, name: str, frame: FrameType | None = None) -> None:
        """A signal landed in `frame`: raise it there, or hold it for later.

        One that lands in a callback from C (TSK reading an image) is held:
        raised there, TSK would report it as a read error (see interrupts).
        """
        if self.depth or not self.open or in_foreign_callback(frame):
            self.held = self.held or name
        else:
            raise Interrupted(name)

    def poll(self) -> None:
        """Raise a held signal, when the work loop is at a point it may stop."""
        if self.held is not None and self.open and not self.depth:
            raise Interrupted(self.held)


def _install_signal_handlers(gate: _SignalGate) -> Callable[[], None]:
    fired = False

    def handler(signum: int, frame: FrameType | None) -> None:
        # Note that a second signal during the wind-down must not break the
        # `end` record: only the first one counts. (Setting SIG_IGN from in
        # here instead races with a signal already pending, and CPython then
        # prints a traceback.)
        nonlocal fired
        if fired:
            return
        fired = True
        gate.arrive(signal.Signals(signum).name, frame)

    # Note: a hangup too (the SSH session of a long remote scan dropping): it
    # killed the scan, the log left with no end record. But a SIGINT or SIGHUP
    # this process was started ignoring stays ignored: `nohup matcher scan`
    # (or a script's `matcher scan &`, whose shell ignores SIGINT for it)
    # asked that a logout or a Ctrl-C in that terminal not stop the scan, and
    # it was stopped ("interrupted by SIGHUP"). SIGTERM is always heard: it
    # is how a supervisor stops a job.
    wanted = [signal.SIGINT, signal.SIGTERM, signal.SIGHUP]
    taken = {sig: signal.signal(sig, handler) for sig in wanted if sig not in IGNORED_AT_START}

    def restore() -> None:
        for sig, old in taken.items():
            signal.signal(sig, old)

    return restore


def run_scan(
    options: ScanOptions,
    progress: Callable[[Counts], None] | None = None,
    on_stage: Callable[[str], None] | None = None,
    on_note: Callable[[str], None] | None = None,
) -> ScanSummary:
    """Run one scan (or resume one) and return its summary.

    `progress` hears the counts as files are done; `on_stage`, a line of text
    on a long step before the first file (building the lookup filter);
    `on_note`, before the first file, a note of the run that changes what it
    does from what was asked (--candidates-only not followed). Every note is
    also in the summary and the end record.

    Raises:
        UsageError: missing examiner/case, evidence missing, outputs inside evidence,
            an unknown algorithm or a negative jobs.
        StoreError, FormatError: the store or an on-the-fly list cannot be used.
        LogWriteError, IntegrityError: the log cannot be written or resumed.
    """
    defaulted = options.algorithms is None
    options = resolve_algorithms(_as_the_command_line_gives(options))
    examiner, case = options.examiner.strip(), options.case.strip()
    if not examiner or not case:
        raise UsageError(
            "A scan needs the authorised examiner (--examiner) and the case reference (--case)."
        )
    for item in options.evidence:
        if (why := unusable_root(item)) is not None:
            raise UsageError(f"Evidence {item} {why}.")
        if os.path.islink(item):
            # Note: walked, a linked root is one skipped entry (no link is
            # ever followed): a complete scan, exit 0, of nothing.
            raise UsageError(
                f"Evidence {item} is a symbolic link (to {_link_target(item)}). matcher "
                "never follows a link, so nothing under it would be read: give the folder or "
                "file it names instead."
            )
        mode = os.lstat(item).st_mode
        if not (stat.S_ISDIR(mode) or stat.S_ISREG(mode)):
            # Note: as a link is, a FIFO, socket or device root is one skipped
            # entry: a complete scan of nothing, exit 0 (a write-blocked disk
            # given as /dev/sdX looked scanned and clean).
            what = _SPECIAL_ROOTS.get(stat.S_IFMT(mode), "neither a folder nor a file")
            raise UsageError(
                f"Evidence {item} is {what}: matcher reads folders, files and disk image "
                "files, never a device or a pipe. Image a disk first (a raw or E01 image) "
                "and give the image file."
            )
    # Note: the walker knows every root named, the nested ones dropped here too.
    folders = FolderWalker(
        options.excludes, options.one_file_system, options.evidence, roots_checked=True
    )
    roots, root_notes = distinct_roots(
        options.evidence,
        folders.excluded if options.excludes else None,
        options.one_file_system,
        walked_inside=lambda root: options.images_only or looks_like_image(root),
    )
    options = dataclasses.replace(options, evidence=roots)
    inventory_path = options.inventory or default_inventory_path(options.log)
    # Note: the temporary folders too: the self-test writes in Python's, and
    # SQLite may spill there (TMPDIR inside the evidence, or /tmp scanned live).
    scratch = temporary_folders()
    refuse_outputs_inside(
        options.evidence,
        [options.log, inventory_path, options.db, *(folder for folder, _, _ in scratch)],
        [
            ("log", "--log"),
            ("inventory", "--inventory"),
            ("hash store", "--db"),
            *((what, variable) for _, what, variable in scratch),
        ],  # fmt: skip
    )
    # Note: before anything is written: an inventory over the log (or the
    # store) would be written over it, or fail on its lock midway.
    refuse_same_files(
        [
            (options.log, "log", "--log"),
            (options.db, "hash store", "--db"),
            *((path, "list", "--list") for path in options.lists),
            (inventory_path, "inventory", "--inventory"),
        ]
    )
    if not options.lists and not os.path.exists(options.db):
        # Note: refused before the store is opened, which would create an empty one.
        raise UsageError(
            f"The hash store {options.db} does not exist. Import a list into it first "
            f"(matcher import LIST --db {options.db}), or pass --list FILE."
        )
    if options.resume and not options.log.exists():
        raise UsageError(f"Cannot resume: log {options.log} does not exist.")
    if not options.resume and options.log.exists():
        foreign = auditlog.foreign_log(options.log)
        if foreign is not None:
            raise UsageError(f"{options.log} already exists, and {foreign}")
        if auditlog.ends_complete(options.log):
            raise UsageError(
                f"Log {options.log} already exists and ends complete (a finished scan or "
                "re-match): there is nothing to continue. Choose another --log (`matcher "
                "rematch` matches a finished scan against the lists as they are now)."
            )
        raise UsageError(
            f"Log {options.log} already exists. Use --resume to continue it, "
            "or choose another --log."
        )
    if not options.resume and inventory_path.exists():
        raise UsageError(
            f"Inventory {inventory_path} already exists. Choose another --log or --inventory."
        )
    # Note: checked before the log is created: an inventory that cannot be
    # created once the log exists leaves a log to be continued, not rerun.
    if not options.resume:
        _refuse_unwritable_folder(options.log, "log", "--log")
    _refuse_unwritable_folder(inventory_path, "inventory", "--inventory")
    if options.sign_key is not None:
        # Note: a --sign-key that is no private key was refused only when the
        # log was to be opened: after the self-test, the lookup filter build
        # (minutes, for a large store) and the --list imports (a new store
        # left behind, the refusal saying nothing of it).
        signing.load_signer(options.sign_key)

    selftest = run_selftest(fast=True)
    if not selftest.passed:
        failed = ", ".join(selftest.as_log_dict()["failed"])  # type: ignore[arg-type]
        raise SelftestFailed(
            f"The start-up self-test failed ({failed}); this build must not scan. "
            "Run `matcher selftest`."
        )
    notes: list[str] = list(root_notes)
    # Note that the workers start before any file is opened here: a forked
    # worker must hold no store, inventory or log descriptor (nor its lock).
    jobs = options.jobs or usable_cores()
    engine = make_engine(
        _algorithms(options), open_file, jobs, options.engine, chunk_reader=read_chunks
    )
    new_store = not os.path.lexists(options.db)  # created here by a --list import
    # Note: a scan without --list only reads the store (its filter cache is
    # best-effort): a shared store on read-only media, or one this user may
    # not write, is opened read-only rather than refused.
    readonly = not options.lists and not new_store and not os.access(options.db, os.W_OK)
    try:
        store = HashStore(options.db, readonly=readonly)
    except BaseException:
        engine.close()
        raise
    images: dict[bytes, OpenedImage] = {}
    scanning = False
    imported: list[tuple[Path, str]] = []  # the --lists this run put in the store
    other_names = store.other_names()
    if other_names:
        notes.append(
            f"the hash store {options.db} has another name (a hard link), which may lie in "
            "the evidence: the scan keeps no cache in it (its lookup filter is built again "
            "at each scan)"
        )
    try:
        known_before = {info.id for info in store.lists()} if options.lists else set()
        with held_in_callbacks():
            images = prepare_images(
                [os.fsencode(absolute(e)) for e in options.evidence], options.images_only
            )
            image_checks = _check_images(options, images, notes)
        notes.extend(warning for image in images.values() for warning in image.warnings)
        notes.extend(
            f"evidence {item} is a single file with no volume system or filesystem "
            "recognised: hashed as one file, not walked as a disk image "
            "(--images-only refuses such a file)"
            for item in options.evidence
            if os.fsencode(absolute(item)) not in images
            and os.path.isfile(item)
            and not os.path.islink(item)
            and _opens(item)  # else its error record says why it was not read
            and not (options.archives and _is_archive(item))  # walked as one
        )
        given_lists: list[ListInfo] = []
        # Note: a log of 0 bytes (killed before its first record) has no run to continue.
        continuing = options.resume and options.log.stat().st_size > 0
        # Note: a store with another name (a hard link that may lie in the
        # evidence) takes no import from a scan: its --lists must be held
        # already, and are taken as they are, never through the import (whose
        # copy writes before it finds a list held: a review).
        for list_path in options.lists:
            if other_names:
                given = _held_list(store, list_path, options.db, notes)
            else:
                given = _import_given(store, list_path, continuing, options.db, notes)
            if given.id not in known_before:
                imported.append((list_path, given.name))
            given_lists.append(given)
            notes.extend(
                _read_inside_evidence(list_path, [*options.evidence, *options.other_evidence])
            )
        lists = store.lists()
        if not lists:
            raise UsageError(
                f"The hash store {options.db} holds no list. Import one, or pass --list FILE."
            )
        if defaulted and not options.resume:
            check_default_algorithms(options, lists)
        # Note: a resume matches against its run's lists only, which it knows once
        # it reads its log: it checks and notes those then (see _scan). Checked
        # here, a list imported since in a digest the run does not compute
        # refused the resume, and the end record noted lists it did not use.
        digest_filter, filter_notes = build_filter(
            store, lists, _algorithms(options), on_stage, checked=[] if options.resume else None
        )
        notes.extend(filter_notes)
        if not options.resume:
            notes.extend(list_notes(lists))
        if options.candidates_only and not options.resume and not _notable(lists):
            # Note: no file can be a candidate: it was a "complete" scan that
            # read nothing, exit 0, its end record saying nothing of it.
            raise UsageError(
                f"--candidates-only hashes the files whose size a notable entry gives, and "
                f"the hash store {options.db} holds no notable list (only known ones): no "
                "file could be read. Import the notable lists, or scan without "
                "--candidates-only."
            )
        sizes_found = None
        if options.candidates_only and not options.resume:
            # Note: the sizes are kept in the store (as the filter is) here,
            # before the hold: a held store takes no cache write, and every
            # run read them again from each notable entry (1M entries: a
            # second of a --candidates-only scan that lasts two). The hold
            # refuses lists changed since, so these are the run's sizes: read
            # again from the store's copy, 1M sizes cost a scan of 40,000
            # files some 20 ms more.
            sizes_found = store.notable_sizes(lists_fingerprint(lists), lists)
        with store.pinned(lists):
            scanning = True
            return _scan(
                options,
                engine,
                jobs,
                store,
                lists,
                given_lists,
                digest_filter,
                inventory_path,
                notes,
                progress,
                selftest,
                images,
                image_checks,
                folders,
                sizes_found,
                on_note,
            )
    except BaseException as exc:
        if imported and not scanning and isinstance(exc, MatcherError):
            # Note: each --list is its own import, as with `matcher import A B`:
            # those before the failure stay, and the error says so (it did not).
            names = ", ".join(f"{path} (as {name!r})" for path, name in imported)
            exc.add_note(f"Imported into {options.db} before it stopped, and kept: {names}.")
        if new_store and not scanning:
            # Note: a refused --list (or any failure before the scan) leaves no
            # store behind where there was none, as a refused import does
            # (unless a --list before it went in: that one is named above).
            store.close()
            remove_store_if_empty(options.db)  # unless another process imported into it
        raise
    finally:
        engine.close()
        store.close()
        for image in images.values():
            image.close()


def _links_on_the_way(path: Path, hops: int = 40) -> list[Path]:
    """The path made absolute, and each symbolic link (its own path) its resolution reads."""
    seen = [Path(os.path.abspath(path))]
    pending = list(seen[0].parts[1:])
    at = Path(seen[0].anchor)
    while pending and hops > 0:
        step = at / pending.pop(0)
        try:
            target = os.readlink(step)
        except OSError:  # not a link (or not there): go on below it
            at = step
            continue
        hops -= 1
        seen.append(step)
        resolved = Path(os.path.normpath(at / target))
        pending = [*resolved.parts[1:], *pending]
        at = Path(resolved.anchor)
    return seen


def _link_target(link: Path) -> str:
    """What a symbolic link names (readlink), and where its chain ends when that differs.

    Note: realpath alone named the end of the chain, and for a loop
    (loop1 -> loop2 -> loop1) the link itself: "loop1 is a link to loop1".
    """
    target = os.readlink(link)
    try:
        end = os.path.realpath(link, strict=True)
    except OSError as exc:
        if exc.errno in (errno.EACCES, errno.EPERM):
            # Note: "leads nowhere" was said of a target that exists.
            return f"{target}, whose end this user may not look up: {os.strerror(exc.errno)}"
        return f"{target}, which leads nowhere: {os.strerror(exc.errno or 0)}"
    named = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(link)), target))
    return target if named == end else f"{target}, leading to {end}"


def _import_given(
    store: HashStore, list_path: Path, continuing: bool, db: Path, notes: list[str]
) -> ListInfo:
    """Import one --list; its stored list."""
    # Note: imported here, so a scan without --list does not load every list reader.
    from matcher.importing import import_list

    # Note: hashed once here and given to the import (a list can be 100 GB).
    source_sha256 = file_sha256(list_path) if continuing else None
    if source_sha256 is not None and store.find_list(source_sha256=source_sha256) is None:
        # Note: refused before the import, so a refused resume leaves the store as it was.
        raise UsageError(
            f"Cannot resume with --list {list_path}: it is not in the store, so it is "
            "not among the lists of the run the log continues. Start a new log; to "
            "match a finished run against new lists, use `matcher rematch`."
        )
    try:
        result = import_list(store, list_path, source_sha256=source_sha256)
    except FormatError as exc:
        if "--format" not in exc.reason:
            raise
        # Note: scan has no --format; `import` has.
        raise FormatError(
            f"{exc.reason}; scan --list detects a list's format: to name it, import the list "
            f"first (`matcher import {list_path} --format NAME --db {db}`), then scan "
            "without --list",
            exc.source,
            exc.line,
        ) from exc
    if result.already_imported:
        notes.append(_held_already(list_path, result.info))
    notes.extend(f"list {list_path}: {note}" for note in result.notes)
    return result.info


def _held_list(store: HashStore, list_path: Path, db: Path, notes: list[str]) -> ListInfo:
    """A --list that a store with another name holds already: its stored list.

    Raises:
        UsageError: the list is not a readable regular file, or not in the store.
    """
    try:
        if not stat.S_ISREG(os.stat(list_path).st_mode):
            raise UsageError(
                f"The list {list_path} is not a regular file (a FIFO, a device or a folder)."
            )
        sha256 = file_sha256(list_path)
    except OSError as exc:
        raise UsageError(f"Cannot read the list {list_path}: {os_error_detail(exc)}.") from exc
    found = store.find_list(source_sha256=sha256)
    if found is None:
        raise UsageError(
            f"The hash store {db} has another name (a hard link), which may lie inside the "
            f"evidence: --list {list_path} would write into it. Give the scan a copy of the "
            "store (`cp STORE COPY`: one name), or import the list into it where no evidence "
            "can hold it."
        )
    notes.append(_held_already(list_path, found))
    return found


def _held_already(list_path: Path, info: ListInfo) -> str:
    """The note on a --list the store holds already: its name, and the role it is used in.

    Note: the role is said: a list held as known (its matches counted, never
    logged) may be given to a scan to be matched as notable, its format's
    default role, which a new store would have imported it as.
    """
    return f"list {list_path} was already imported as the {info.role} list {info.name!r}"


def _read_inside_evidence(list_path: Path, evidence: Sequence[Path]) -> list[str]:
    """The end record's note on a --list that lies inside an evidence root (read where it is).

    Note: a list found on the evidence (a suspect's own) is read as any list
    is, several times and without O_NOATIME: its access time, evidence
    metadata, may move, and the log said nothing of it. It is not copied out
    to be read: some formats read the files beside a list (an RDS's
    write-ahead log, a HashKeeper .hke, an NSRLFile.txt beside hashes.txt),
    and a copy alone was read otherwise (a found review: a false notable).
    """
    # Note: the path as given and every link it passes through too: a symlink
    # inside the evidence to a list outside it is read through (the link's
    # own access time moves), also as a link in the middle of a chain.
    paths = {Path(os.path.realpath(list_path)), *_links_on_the_way(list_path)}
    for root, given in zip((Path(os.path.realpath(e)) for e in evidence), evidence, strict=True):
        named = Path(os.path.abspath(given))
        if any(_within(p, root) or _within(p, named) for p in paths):
            return [
                f"list {list_path} lies inside the evidence ({given}) and was read there, as "
                "any list is (without O_NOATIME): its access time may have moved; copy such "
                "a list out of the evidence to use it"
            ]
    return []


def list_notes(lists: Sequence[ListInfo]) -> list[str]:
    """The end record's notes on the lists used: empty-file digests, invalid lines left out.

    Note: the run record names a list's skipped_invalid count, but no report
    showed it: a list imported with --skip-invalid lacks entries, and a file
    one of them names is never matched; the document filed must say so.
    """
    notes: list[str] = []
    for info in lists:
        if info.zero_length:
            notes.append(
                f"list {info.name!r} holds {info.zero_length} entr"
                f"{'y' if info.zero_length == 1 else 'ies'} with the digest of an empty file: "
                "flagged; an empty file is never a match"
            )
        skipped = info.as_log_dict().get(SKIPPED_INVALID)
        if skipped:
            notes.append(
                f"list {info.name!r} was imported with {skipped} invalid line(s) left out "
                "(--skip-invalid): a file one of them names is never matched"
            )
    return notes


def _opens(path: Path) -> bool:
    """True when the file can be opened for reading (as the scan will)."""
    try:
        os.close(open_readonly(os.fsencode(path)))
    except OSError:
        return False
    return True


def _is_archive(path: Path) -> bool:
    """True when --archives walks the file: an archive by its first bytes, or a zip ending it."""
    # Note: imported here: a scan without --archives loads no archive reader.
    from matcher.evidence import zips
    from matcher.evidence.archive import HEAD as ARCHIVE_HEAD
    from matcher.evidence.archive import archive_format

    try:
        with open(open_readonly(os.fsencode(path)), "rb") as stream:
            if archive_format(stream.read(ARCHIVE_HEAD)) is not None:
                return True
            size = stream.seek(0, os.SEEK_END)
            stream.seek(max(0, size - ARCHIVE_HEAD))
            at = zips.central_directory_at(stream.read(), size)
            return at is not None and zips.directory_starts_at(stream, at)
    except OSError:
        return False


def _check_images(
    options: ScanOptions, images: dict[bytes, OpenedImage], notes: list[str]
) -> dict[bytes, dict[str, object]]:
    """--verify-image: re-hash each E01's media; a mismatch is a warning note."""
    if not options.verify_image:
        return {}
    checks = verify_images(images)
    if not checks:
        notes.append("--verify-image: no E01 among the evidence; nothing to verify")
    for root, result in checks.items():
        name = os.fsdecode(root)
        if result["match"] is None:
            notes.append(f"--verify-image: {name} stores no MD5 or SHA-1 to verify against")
        elif not result["match"]:
            notes.append(
                f"WARNING: {name}: the media does not match the hash stored in the E01 "
                f"(stored {result['stored']}, computed {result['computed'] or result.get('error')}"
                "); libewf reads corrupt chunks as zeros, so digests from this image may be wrong"
            )
    return checks


def _scan(
    options: ScanOptions,
    engine: Engine,
    jobs: int,
    store: HashStore,
    lists: list[ListInfo],
    given_lists: list[ListInfo],
    digest_filter: DigestFilter,
    inventory_path: Path,
    notes: list[str],
    progress: Callable[[Counts], None] | None,
    selftest: SelftestResult,
    images: dict[bytes, OpenedImage],
    image_checks: dict[bytes, dict[str, object]],
    folders: FolderWalker,
    sizes_found: tuple[SizeSet, list[str]] | None = None,
    on_note: Callable[[str], None] | None = None,
) -> ScanSummary:
    signer = signing.load_signer(options.sign_key) if options.sign_key else None
    counts = Counts()
    logged: set[bytes] = set()
    finished = PathSet()
    resume_fields: dict[str, object] = {}
    run_no = 0
    resumed: auditlog.ResumeState | None = None
    candidates_ignored: list[str | None] = []  # why --candidates-only was not followed
    if options.resume:
        chosen: list[tuple[list[ListInfo], SizeSet | None, Inventory]] = []
        # The match records with no inventory row: their details and mtimes read again.
        adopted: dict[bytes, tuple[str, int | None]] = {}

        def same_scan(found: auditlog.ResumeState) -> None:
            """Refuse another scan, or another log's inventory, before the log is touched.

            (A torn last line is set aside once this returns: refused after
            that, a log whose line feeds were lost was left emptied.)
            """
            left_out: list[str] = []
            run_lists = _lists_of_the_run(found.last_run, lists, given_lists, left_out)
            notes.extend(check_computed(run_lists, _algorithms(options)))
            notes.extend(list_notes(run_lists))
            notes.extend(left_out)
            sizes, ignored = _candidate_sizes(options, store, run_lists, notes)
            signed_by = signer.fingerprint if signer is not None else None
            _refuse_another_scan(found.last_run, _identity(options, run_lists, sizes, signed_by))
            opened = Inventory(inventory_path)
            try:
                rows = _refuse_another_inventory(opened, found, options.log)
                unbacked = {p: r for p, r in found.matches.items() if p not in rows}
                if unbacked:
                    roots = [os.fsencode(absolute(e)) for e in options.evidence]
                    # Note: only these hold `ROOT!member` paths (`ev.bin!x`, beside
                    # a plain file root, is another file, outside the evidence).
                    containers = {
                        root
                        for root, given in zip(roots, options.evidence, strict=True)
                        if root in images or (options.archives and _is_archive(given))
                    }
                    lookup = _lookup_in(store, run_lists)
                    details, said = check_logged_matches(
                        unbacked, roots, _algorithms(options), lookup, options.log, containers
                    )
                    adopted.update(details)
                    notes.extend(said)
                if (
                    found.sealed_inventory is not None
                    and opened.origin() is None
                    and opened.last_run() < 0
                ):
                    notes.append(
                        f"the inventory {inventory_path} holds nothing of the run this one "
                        "continues (it was missing, and is made anew): every entry is read again"
                    )
            except BaseException:
                opened.close()
                raise
            chosen.append((run_lists, sizes, opened))
            candidates_ignored.append(ignored)

        try:
            log, state = auditlog.open_for_resume(options.log, signer=signer, check_run=same_scan)
        except BaseException:
            for _, _, opened in chosen:
                opened.close()
            raise
        lists, candidate_sizes, inventory = chosen[0]
        earlier_examiner = (state.last_run or {}).get("examiner")
        examiner = storable_text(options.examiner.strip())
        if earlier_examiner is not None and earlier_examiner != examiner:
            # Note: both named, and as code points where either is not ASCII: a
            # look-alike letter (a Cyrillic "а" in "Jane") read as the same name.
            named = [str(earlier_examiner), examiner]
            shown = [ascii(n) if not n.isascii() else repr(n) for n in named]
            notes.append(
                f"examiner changed on resume: the run this one continues was by {shown[0]}, "
                f"this one is by {shown[1]}"
            )
        logged = set(state.matched_paths)
        resume_fields = state.run_fields()
        if state.torn_tail:
            notes.append(f"a torn last line was set aside in {state.torn_tail['saved_to']}")
        try:
            run_no = inventory.last_run() + 1
        except BaseException:
            _release(inventory, log)
            raise
        resumed = state
    else:
        candidate_sizes, ignored = _candidate_sizes(options, store, lists, notes, sizes_found)
        candidates_ignored.append(ignored)
        log = auditlog.create(options.log, signer=signer)
        try:
            inventory = Inventory(inventory_path, new=True)
        except BaseException:
            # Note: the log holds no record yet: removed, the command can
            # simply be run again (a log left empty asked for --resume).
            with contextlib.suppress(OSError):
                os.unlink(options.log)
            log.close()
            raise
    # Note: the scan's own handling of SIGINT/SIGTERM starts before its run
    # record: a signal from here on is held until the work loop, which it
    # stops at once, and the log always ends with an `interrupted` end record.
    # (Installed after the run record, a Ctrl-C in the ~20 ms between left a
    # log with a run record and no end: incomplete, not interrupted.)
    gate = _SignalGate()
    restore = _install_signal_handlers(gate)
    try:
        _append_run_record(
            options,
            log,
            resume_fields,
            jobs,
            lists,
            candidate_sizes,
            candidates_ignored[0] if candidates_ignored else None,
            inventory_path,
            digest_filter,
            selftest,
            images,
            image_checks,
            signer.fingerprint if signer is not None else None,
        )
        if resumed is not None:
            # Note: the inventory is written only once the run record is in the
            # log (synced): until then it is exactly what the log's last end
            # record sealed, which the next resume checks (a resume stopped
            # before its run record left a changed inventory behind that seal).
            log.sync()
            if inventory.origin() is None and resumed.origin is not None:
                inventory.set_origin(resumed.origin)  # an inventory of an older version
            # Note: failed entries are read again; their old rows go, so that
            # the inventory this run seals says what the end record counts.
            inventory.forget_failures()
            unwritten = inventory.unwritten_rows(engine.algorithms)
            if unwritten:
                raise UsageError(
                    f"Cannot resume: the inventory {inventory.path} holds {unwritten:,} finished "
                    "file row(s) without this run's digests or a verdict, which no scan writes: "
                    "it was changed after the run stopped. Verify the log, and start a new one."
                )
            finished = inventory.finished_paths()
            _finish_logged_matches(inventory, resumed.matches, adopted, finished, run_no)
            _count_finished(inventory, counts)
        if inventory.origin() is None:
            # Note: a new log, or a resumed one that held no line: the run
            # record just written is its first line.
            inventory.set_origin(log.head)
        counts.image_mismatches = sum(1 for c in image_checks.values() if c["match"] is False)
        walker = EvidenceWalker(
            folders,
            images,
            options.deleted,
            options.archive_limits if options.archives else None,
            options.max_size,
        )
        recorder = _Recorder(log, inventory, counts, run_no, logged, held_by_every_entry(lists))
        if resumed is not None:
            recorder.restore(inventory.noted(WEIGHED_KEY))
        lookup = _lookup_in(store, lists)
    except BaseException:
        # Note: a run that could not even be opened still releases its log
        # lock, so that --resume is possible at once.
        restore()
        _release(inventory, log)
        raise
    started = time.monotonic()
    status = "interrupted"
    aborted: BaseException | None = None
    late: str | None = None
    atime = _AtimeMoved(folders.atime_rule) if folders.atime_rule is not None else None
    if atime is not None:
        atime.images = sum(
            _moved_by_reading(segment, atime.rule)
            for image in images.values()
            for segment in image.media.segments
        )
    try:
        if on_note is not None and candidates_ignored and candidates_ignored[0] is not None:
            # Note: said here, as the work begins: the run record holds it, and
            # no refusal can come after (said earlier, a refused resume said it
            # too, and the CLI's retry of a default log name taken meanwhile
            # said it twice); what the callback raises ends the log as a
            # progress callback's does (it left a log without its end record).
            on_note(candidates_ignored[0])
        with _few_collections(), gate.interruptible():
            _pump(
                options,
                walker,
                engine,
                recorder,
                lookup,
                digest_filter,
                candidate_sizes,
                finished,
                progress,
                gate,
                atime,
            )
        status = "complete"
    except Interrupted as exc:
        notes.append(f"interrupted by {exc.args[0] if exc.args else 'a signal'}")
    except (MatcherError, OSError) as exc:  # a dead hashing worker is a MatcherError too
        # Note that the log still closes with an `end` record (status
        # interrupted): the run can be verified, and continued with --resume.
        aborted = exc
        notes.append(f"aborted by a fatal error: {exc}")
    except Exception as exc:
        # Note: a fault in matcher itself. The log still closes, saying so,
        # and the exception goes on to the command line's own message.
        notes.append(f"aborted by an internal error: {type(exc).__name__}: {exc}")
        raise
    finally:
        try:
            engine.close()
            walker.close()
            try:
                recorder.commit()
                inventory.close()
            except (MatcherError, OSError) as exc:
                # Note: no end record then: it would seal an inventory short
                # of what it counts. The log verifies as incomplete.
                raise ScanAborted(
                    f"The scan stopped: {str(exc).rstrip('.')}. The log {options.log} is "
                    "closed without its end record; fix the cause and continue with --resume."
                ) from exc
            for crossing in walker.crossings:
                notes.append(f"crossed into another filesystem at {os.fsdecode(crossing)}")
            if atime is not None and (
                atime.files or atime.cut or atime.images or folders.listed_atime_moved
            ):
                notes.append(atime.note(folders.listed_atime_moved))
            if folders.image_files:
                # Note: a notable file inside such an image is not found by hashing
                # the image; it was left unsaid.
                first = os.fsdecode(folders.first_image_file or b"")
                notes.append(
                    f"{folders.image_files} file(s) in the folders are named as disk images "
                    f"(the first: {first}) and were taken as files (hashed, or skipped as "
                    "any file, by --candidates-only or --max-size), their contents not "
                    "walked: matcher walks a disk image given as evidence itself "
                    "(`matcher scan IMAGE`)"
                )
            if options.excludes and options.archives:
                notes.append(
                    "--exclude is not matched against archive members (a member's name may "
                    "hold the `!` that joins nested paths): they are read whatever their names"
                )
            if status == "complete" and not options.resume:
                # Note: a pattern that took nothing may be misspelt (an absolute
                # path, a trailing '/'): the folder meant to be left out was read.
                notes.extend(
                    f"--exclude {os.fsdecode(p)} matched no entry (patterns match a path "
                    "relative to its root, or a name)"
                    if p not in folders.spared
                    else f"--exclude {os.fsdecode(p)} matched only evidence given as a root, "
                    "which no pattern excludes: it was read"
                    for p in folders.excludes
                    if p not in folders.matched
                )
            not_read = counts.skipped_by_reason.get(Skip.NOT_CANDIDATE.value, 0)
            if not_read:
                # Note: in the end record (and --json), not only on the terminal:
                # a batch job reading the JSON could not tell what its
                # known and unknown counts leave out.
                # Note: with --archives, an archive of no candidate size is
                # still opened (its members are entries of their own): "not
                # read" was said of archives whose members were read.
                archives_opened = walker.archives.opened if walker.archives is not None else 0
                archives_read = (
                    f" (archives are opened whatever their size: {archives_opened:,} were, "
                    "and their members are entries of their own)"
                    if archives_opened
                    else ""
                )
                notes.append(
                    f"--candidates-only: {not_read:,} files not hashed (their size was no "
                    f"notable entry's in the scan's lists){archives_read}; known and unknown count "
                    f"only the {counts.files:,} files hashed"
                )
            notes.extend(recorder.notes())
            seconds = time.monotonic() - started
            if status == "complete" and gate.held is not None:
                notes.append(f"{gate.held} arrived as the scan ended, after its last entry")
            append_end_record(log, status, counts, seconds, inventory_path, notes)
            late = gate.held if status == "complete" else None
            if not log.still_named():
                # Note: written to a file unlinked meanwhile, the records are
                # lost; the scan said complete, with a head for no file.
                raise ScanAborted(
                    f"The log {options.log} was removed or replaced while the scan ran: what it "
                    "recorded is in no file at that path. Run the scan again with a new --log."
                )
        finally:
            # Note: if the end record cannot be written (disk full), the log
            # still closes and releases its lock; verify then calls it
            # incomplete and --resume continues it.
            try:
                _release(inventory, log)
            finally:
                restore()
    if aborted is not None:
        raise ScanAborted(
            f"The scan stopped: {str(aborted).rstrip('.')}. The log {options.log} is closed "
            "and verifiable; fix the cause and continue with --resume."
        ) from aborted
    return ScanSummary(
        status,
        counts,
        seconds,
        options.log,
        inventory_path,
        notes,
        exit_code_for(status, counts),
        log.head,
        late,
    )


def append_end_record(
    log: auditlog.LogWriter,
    status: str,
    counts: Counts,
    seconds: float,
    inventory_path: Path,
    notes: list[str],
) -> None:
    """The `end` record of a scan or re-match (its closed inventory sealed by SHA-256), synced."""
    log.append(
        "end",
        {
            "status": status,
            "counts": counts.as_dict(),
            "duration_s": round(seconds, 3),
            # Note: a path that is not UTF-8 keeps its bytes (path_b64), as
            # evidence paths do: as text it stopped the run's first record.
            "inventory": {
                **path_fields(os.fsencode(os.path.abspath(inventory_path))),
                "sha256": file_sha256(inventory_path),
            },
            "notes": [storable_text(note) for note in notes],
        },
    )
    log.sync()


def _append_run_record(
    options: ScanOptions,
    log: auditlog.LogWriter,
    resume_fields: dict[str, object],
    jobs: int,
    lists: list[ListInfo],
    candidate_sizes: SizeSet | None,
    candidates_ignored: str | None,
    inventory_path: Path,
    digest_filter: DigestFilter,
    selftest: SelftestResult,
    images: dict[bytes, OpenedImage],
    image_checks: dict[bytes, dict[str, object]],
    signed_by: str | None,
) -> None:
    """The run record; `candidates_ignored`: why --candidates-only was not followed, if so.

    Note: that reason is in the run record, not only in the end record's
    notes: a log cut short (kill -9) said `candidates_only: false` of a run
    asked for it, with nothing saying why until a resume had ended it.
    """
    identity = _identity(options, lists, candidate_sizes, signed_by)
    ignored = {} if candidates_ignored is None else {"candidates_only_ignored": candidates_ignored}
    log.append(
        "run",
        {
            **resume_fields,
            # Note: arguments and notes are text given on a command line, which
            # may not be UTF-8 (storable_text escapes it); evidence paths never
            # come through here (path_fields keeps their bytes).
            "examiner": storable_text(options.examiner.strip()),
            "case": storable_text(options.case.strip()),
            "authority": _text_or_none(options.authority),
            "tool": {"name": TOOL_NAME, "version": __version__, "python": sys.version.split()[0]},
            "host": os.uname().nodename,  # what gethostname(2) gives
            "argv": [storable_text(arg) for arg in options.argv],
            **identity,
            "options": {"jobs": jobs, **identity["options"]},  # type: ignore[dict-item]
            "images": [
                {
                    **path_fields(root),
                    **image.as_log_dict(),
                    "verify": image_checks.get(root),
                }
                for root, image in images.items()
            ],
            **path_fields(os.fsencode(os.path.abspath(inventory_path)), "inventory"),
            "filter": {"kind": digest_filter.kind, "bytes": digest_filter.memory_bytes},
            "selftest": selftest.as_log_dict(),
            **ignored,
        },
    )


def _identity(
    options: ScanOptions,
    lists: Sequence[ListInfo],
    candidate_sizes: SizeSet | None,
    signed_by: str | None = None,
) -> dict[str, object]:
    """The run record's fields that a resume must share with the run it continues.

    The case and authority the scan runs under, and everything that decides
    which entries are read and what they match: the evidence, the digests,
    the lists and the options (--jobs aside). The examiner may change (a
    handover): the resume's run record names its own, and a note says so.
    The signing key too (`signed_by`, its fingerprint, or None): a log is
    signed throughout by one key or not at all, or `verify --public-key`
    fails it (a resume without --sign-key wrote an unsigned end record).
    """
    return {
        "case": storable_text(options.case.strip()),
        "authority": _text_or_none(options.authority),
        "evidence": [path_fields(os.fsencode(absolute(e))) for e in options.evidence],
        # (None only where the caller compares no algorithms: authorised_scan_differs.)
        "algorithms": None if options.algorithms is None else list(options.algorithms),
        "lists": [info.as_log_dict() for info in lists],
        "options": {
            "candidates_only": candidate_sizes is not None,
            "excludes": sorted(storable_text(e) for e in options.excludes),  # order means nothing
            "max_size": options.max_size,
            "one_file_system": options.one_file_system,
            "deleted": options.deleted,
            "verify_image": options.verify_image,
            "images_only": options.images_only,
            "archives": options.archive_limits.as_log_dict() if options.archives else None,
            "signed_by": signed_by,
        },
    }


def _text_or_none(text: object) -> object:
    """A case or authority as compared (and an authority as recorded): stripped, None if blank."""
    if isinstance(text, str):
        return storable_text(text.strip()) or None
    return text


def _notable(lists: Sequence[ListInfo]) -> list[ListInfo]:
    return [info for info in lists if info.role == "notable"]


def _candidate_sizes(
    options: ScanOptions,
    store: HashStore,
    lists: Sequence[ListInfo],
    notes: list[str],
    found: tuple[SizeSet, list[str]] | None = None,
) -> tuple[SizeSet | None, str | None]:
    """With --candidates-only, the sizes of the notable entries of `lists`; else None.

    None too (a full scan) when a notable list has unsized entries: then the
    second item says so, as a note of the run (in `notes`), which the run
    record keeps and the run says at once (see _scan). `found`: what
    store.notable_sizes gave for `lists`.
    """
    if not options.candidates_only:
        return None, None
    sizes, unsized = found or store.notable_sizes(lists_fingerprint(lists), lists)
    if unsized:
        ignored = (
            "--candidates-only ignored (full scan): notable list(s) with entries that give "
            "no usable size: " + ", ".join(unsized)
        )
        notes.append(ignored)
        return None, ignored
    return sizes, None


def _lists_of_the_run(
    last_run: Mapping[str, object] | None,
    lists: list[ListInfo],
    given: Sequence[ListInfo],
    notes: list[str],
) -> list[ListInfo]:
    """The store's lists that the run being resumed used, in its order.

    A resume matches against exactly those: a list imported since (a shared
    store gains lists) is left out, or the finished entries would never have
    been matched against it. A list of the run that is gone is refused.

    Raises:
        UsageError: naming a list of the run that is no longer in the store.
    """
    earlier = last_run.get("lists") if last_run is not None else None
    if not isinstance(earlier, list):
        return lists
    by_key = {(info.name, info.source_sha256): info for info in lists}
    used: list[ListInfo] = []
    for entry in earlier:
        key = (entry.get("name"), entry.get("source_sha256")) if isinstance(entry, dict) else None
        info = by_key.get(key) if key is not None else None  # type: ignore[arg-type]
        if info is None:
            raise UsageError(
                f"Cannot resume: the list {key[0] if key else entry!r} that the run matched "
                "against is no longer in the store (removed or replaced). Start a new log."
            )
        used.append(info)
    for info in given:
        if info not in used:
            raise UsageError(
                f"Cannot resume with --list {info.name}: it is not among the lists of the run "
                "the log continues. Start a new log; to match a finished run against other "
                "lists, use `matcher rematch`."
            )
    left_out = [info.name for info in lists if info not in used]
    if left_out:
        notes.append(
            "lists imported after the run began are not used by this resume (the finished "
            f"entries were never matched against them): {', '.join(left_out)}; "
            "`matcher rematch` matches the finished run against them"
        )
    return used


def _lookup_in(store: HashStore, lists: Sequence[ListInfo]) -> Lookup:
    """The store's exact lookup, keeping only the hits of `lists` (a resume's own lists)."""
    if len(lists) == len(store.lists()):
        return store.lookup
    names = {info.name for info in lists}

    def lookup(algorithm: str, digests: Sequence[bytes]) -> Mapping[bytes, list[ListHit]]:
        found = store.lookup(algorithm, digests)
        kept = {d: [h for h in hits if h.list_name in names] for d, hits in found.items()}
        return {d: hits for d, hits in kept.items() if hits}

    return lookup


# The run record's option fields, as a user gives them.
_OPTION_NAMES = {
    "excludes": "--exclude",
    "archives": "--archives (or its limits)",
    "signed_by": "--sign-key (a log is signed throughout by one key, or not at all)",
}
_AUTHORISATION = ("case", "authority")


def _refuse_another_scan(
    last_run: Mapping[str, object] | None, identity: dict[str, object]
) -> None:
    """Refuse a resume that would not continue the same scan.

    A resume skips every finished entry. With other evidence, lists or
    options, those entries would count as read under conditions they were
    never read under (a new list's match missed, a root never walked).

    Raises:
        UsageError: naming what differs.
    """
    if last_run is None:
        return
    if "rematch_of" in last_run:
        # Note: a re-match's run record names no evidence or options to compare
        # (it read no evidence): continued as a scan, it took any options, and
        # read as a re-match of a log it never re-matched.
        raise UsageError(
            "Cannot resume: the log holds a re-match (`matcher rematch`), not a scan; a "
            "re-match has no --resume: run it again with a new --log."
        )
    differs = _differences(last_run, identity)
    if differs:
        raise UsageError(
            f"Cannot resume: this run differs from the one the log continues in: "
            f"{', '.join(differs)}. A resume continues the same authorised scan: the same "
            "case and authority, evidence, algorithms, lists and options (only --jobs and the "
            "examiner may change), or it would count entries as read under other conditions. "
            "Start a new log; to match a finished run against new lists, use `matcher rematch`."
        )


def authorised_scan_differs(last_run: Mapping[str, object], options: ScanOptions) -> list[str]:
    """What of the case, the authority and the evidence differs from a logged run record's.

    For a batch item whose log is already complete: it stands for the item
    only if it is a scan of the item's evidence under its case and authority.
    """
    wanted = ("case", "authority", "evidence")
    identity = {k: v for k, v in _identity(options, [], None).items() if k in wanted}
    return _differences(last_run, identity)


def _differences(last_run: Mapping[str, object], identity: dict[str, object]) -> list[str]:
    """The options (as a user gives them) in which `identity` differs from a run record."""
    now = storable(json.loads(json.dumps(identity)))  # the form the log holds
    assert isinstance(now, dict)
    differs: list[str] = []
    for key, value in now.items():
        if key not in last_run:
            continue  # a log written before the field existed
        earlier = last_run[key]
        if key == "options" and isinstance(earlier, dict):
            differs.extend(
                _with_began(_OPTION_NAMES.get(name, f"--{name.replace('_', '-')}"), earlier[name])
                for name, setting in value.items()
                if name in earlier and earlier[name] != setting
            )
        elif key in _AUTHORISATION:
            if _text_or_none(earlier) != _text_or_none(value):
                began = "none" if earlier is None else f'"{earlier}"'
                differs.append(f"--{key} (the run began under {began})")
        elif earlier != value:
            differs.append(_with_began(key, earlier))
    return differs


def _with_began(what: str, earlier: object) -> str:
    """`what` differs, with what the run began with (its fix may be to give that again).

    Note: "differs in: algorithms" said to start a new log, where repeating
    the run's own --algorithms continues it.
    """
    if isinstance(earlier, dict):
        return what  # the archive limits: named only
    if earlier is None or earlier is False:
        return f"{what} (the run began without it)"
    if earlier is True:
        return f"{what} (the run began with it)"
    if isinstance(earlier, list):
        shown = [_shown_item(item) for item in earlier[:_SHOWN_ITEMS]]
        more = len(earlier) - len(shown)
        items = ", ".join(shown) + (f" and {more:,} more" if more > 0 else "")
        return f"{what} (the run began with {items or 'none'})"
    return f"{what} (the run began with {earlier})"


_SHOWN_ITEMS = 5


def _shown_item(item: object) -> str:
    """An evidence root, a list or a plain value of a run record, as a resume's refusal shows it."""
    if isinstance(item, dict):
        if "name" in item:
            return f"{item['name']!r} ({item.get('role')})"
        return str(item.get("path"))
    return str(item)


def _refuse_another_inventory(
    inventory: Inventory, state: auditlog.ResumeState, log: Path
) -> set[bytes]:
    """Refuse to resume with an inventory that is not the log's own; its notable paths.

    A resume skips every entry its inventory records as finished: an
    inventory of another log (a reused --inventory, a log emptied or replaced
    beside its inventory) would count entries as read that this log never
    matched. An inventory notes the first line of its log (Inventory.origin);
    one made before that was noted is trusted as before (and noted once the
    resume's run record is written). One changed since the log's last end
    record sealed it is refused; one that holds nothing is read again whole.

    Returns:
        The paths the inventory records as notable (read once, for the check
        below and for the match records with no row, see logged_matches).

    Raises:
        UsageError: naming the log and the inventory.
    """
    noted = inventory.origin()
    if state.origin is None:
        rows = inventory.last_run() >= 0
        if noted is None and not rows:
            return set()  # the log was created, then the run stopped before its first line
        raise UsageError(
            f"Cannot resume: the log {log} holds no record, but its inventory "
            f"{inventory.path} records "
            + ("entries of an earlier run" if rows else "the start of a run")
            + ": it is not this log's inventory, or the log was emptied. Restore the log "
            "(or give the inventory of this log with --inventory), or start a new log."
        )
    if noted is not None and noted != state.origin:
        raise UsageError(
            f"Cannot resume: the inventory {inventory.path} belongs to another log (its first "
            f"record is not that of {log}). Give this log's own inventory with --inventory, "
            "or start a new log."
        )
    sealed = state.sealed_inventory
    # Note: one that holds nothing (missing, and made anew empty) has nothing
    # taken as finished: every entry is read again, as before the seal was asked.
    holds_nothing = noted is None and inventory.last_run() < 0
    if sealed is not None and "sha256" in sealed and not holds_nothing:
        # Note: the interrupted run sealed its inventory, and nothing writes it
        # until the resume's own run record (see _scan): an inventory changed
        # since would have its rows taken as finished, those files never read.
        actual = file_sha256(inventory.path)
        if actual != sealed["sha256"]:
            raise UsageError(
                f"Cannot resume: the inventory {inventory.path} has SHA-256 {actual}, but the "
                f"log {log} sealed {sealed['sha256']} when its run stopped: it was changed "
                "since, or it is another run's. Restore the inventory as it was sealed (or "
                "give that one with --inventory), or start a new log."
            )
    # Note: an inventory made before origins were noted gets its origin once the
    # resume's run record is in the log (see _scan), not here: nothing writes
    # the inventory before then.
    # Note: the log is synced before the inventory commits (_Recorder.commit),
    # so a notable row always has its match record. One without was lost from
    # the log (an older copy restored, the log cut back at a line end): resumed,
    # the scan said complete with those files never logged, and its log failed
    # verify.
    notable = list(inventory.notable_paths())  # in row order: "the first" is the first written
    unlogged = [p for p in notable if p not in state.matched_paths]
    if unlogged:
        first = unlogged[0].decode("utf-8", "backslashreplace")
        raise UsageError(
            f"Cannot resume: the inventory {inventory.path} records {len(unlogged)} notable "
            f"file(s) with no match record in {log} (the first: {first}): the log is older "
            "than its inventory (restored from a copy, or cut back?). Restore the log as "
            "it was, or start a new log."
        )
    return set(notable)


def _finish_logged_matches(
    inventory: Inventory,
    matches: Mapping[bytes, Mapping[str, object]],
    details: Mapping[bytes, tuple[str, int | None]],
    finished: PathSet,
    run: int,
) -> None:
    """Record as finished each file an earlier segment logged as a match, but did not commit.

    The log is synced before the inventory (see _Recorder.commit), so a crash
    can leave a match record whose inventory row never landed. That file was
    read and matched: the record says so, with its digests, which the resume
    checked before it touched the log (logged_matches: `details` gives each
    checked one's inventory detail, and the mtime it was read again with). A
    file that could not be read again
    still counts as the match its record gives (a re-read that failed would
    leave a logged match counted as an error); its row is written from the
    record, and it counts as notable.
    """
    for path, record in matches.items():
        if path in finished:
            continue
        digests = record.get("digests")
        if not isinstance(digests, dict) or not digests or path not in details:
            continue  # not from a scan of this version; the file is read again
        detail, mtime_ns = details[path]
        outcome = EntryOutcome(
            path,
            record.get("size"),  # type: ignore[arg-type]
            mtime_ns if mtime_ns is not None else _ns(record.get("mtime")),
            digests={str(a): bytes.fromhex(str(d)) for a, d in digests.items()},
            detail=detail,
            kind=str(record.get("kind", "file")),
        )
        inventory.add(outcome, Verdict.NOTABLE.value, run)
        finished.add(path)
    inventory.flush()


def _ns(stamp: object) -> int | None:
    """Nanoseconds since the epoch of a log's UTC time (microsecond precision)."""
    if not isinstance(stamp, str):
        return None
    return utc_ns(stamp)


def _release(inventory: Inventory, log: auditlog.LogWriter) -> None:
    """Close the inventory and the log (its lock) whatever happens on the way."""
    try:
        inventory.db.close()
    finally:
        log.close()


def _count_finished(inventory: Inventory, counts: Counts) -> None:
    """Start a resumed run's totals from what earlier runs finished."""
    for skip, verdict, entries, nbytes, empty in inventory.finished_totals():
        counts.entries += entries
        if skip is not None:
            counts.skipped += entries
            counts.skipped_by_reason[skip] = counts.skipped_by_reason.get(skip, 0) + entries
            continue
        counts.files += entries
        counts.bytes += nbytes
        counts.empty += empty
        setattr(counts, str(verdict), getattr(counts, str(verdict)) + entries)


def _same_as(task: FileTask, head: EntryOutcome | None) -> EntryOutcome:
    """A hard link's further name: the outcome of its first name, read once."""
    if head is None:
        return EntryOutcome(
            task.path,
            task.size,
            task.mtime_ns,
            failure=Failure.WALK,
            detail="hard link whose first name has no outcome",
            kind=task.kind,
        )
    assert task.link is not None
    detail = f"hard link: read once, as {task.link.decode('utf-8', 'replace')}"
    return EntryOutcome(
        task.path,
        head.size,
        task.mtime_ns,
        digests=head.digests,
        skip=head.skip,
        failure=head.failure,
        errno=head.errno,
        detail=detail if head.digests is not None else head.detail,
        kind=task.kind,
    )


@contextlib.contextmanager
def _few_collections() -> Iterator[None]:
    """Run the scan loop with fewer cyclic garbage collections.

    The loop allocates some objects per file and frees nearly all of them
    by reference counting; with the default thresholds the collector would
    still sweep every 700 allocations, and re-examine the long-lived objects
    (the store's filter, the finished set) at each full sweep: about 15% of
    the main process's time on a tree of small files. The long-lived objects
    are set aside (`gc.freeze`) for the loop, and restored after it.
    """
    thresholds = gc.get_threshold()
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)
    try:
        yield
    finally:
        gc.set_threshold(*thresholds)
        gc.unfreeze()


# The outcomes of a file handed to the workers and never opened (its access time
# cannot have moved): no failure is a file read (digests come as a list).
NOT_OPENED = frozenset({None, Failure.UNREADABLE, Failure.VANISHED})


@dataclasses.dataclass
class _AtimeMoved:
    """The files read that this process may not open with O_NOATIME (see AtimeRule).

    Note: a scan as a user who does not own the evidence (and lacks
    CAP_FOWNER) moved the access time of every file it read, and its log
    said nothing of it: chain of custody needs it said.
    """

    rule: AtimeRule
    files: int = 0
    images: int = 0  # disk image files (E01 segments each) given as evidence
    # Files of such owners handed to the workers, and those whose results came back:
    # the difference is what a scan that stopped left being read.
    handed: int = 0
    returned: int = 0

    def hand(self, task: FileTask) -> None:
        """Count a file handed to the workers whose access time its read may move."""
        if task.uid is not None and self.rule.moves(task.uid):
            self.handed += 1

    def count_read(self, tasks: Sequence[FileTask], results: Sequence[RawResult]) -> None:
        """Count the files of one work unit that were opened and whose access time may move.

        Note: a file whose open failed (unreadable, or gone) was counted as
        read: its access time cannot have moved (found by a validator).
        """
        for task, result in zip(tasks, results, strict=True):
            if task.uid is None or not self.rule.moves(task.uid):
                continue
            self.returned += 1
            if result.__class__ is list or getattr(result, "failure", None) not in NOT_OPENED:
                self.files += 1

    @property
    def cut(self) -> int:
        """The files of such owners handed to the workers whose results never came (a stop)."""
        return self.handed - self.returned

    def note(self, folders: int) -> str:
        images = f", {self.images} disk image file(s) read" if self.images else ""
        # Note: a scan interrupted (or stopped) mid-read has no result for the
        # files its workers were reading: their access times moved, and the
        # note of its log, which a resume does not amend, said "0 file(s) read".
        cut = self.cut
        stopped = f" (and up to {cut} more being read when the scan stopped)" if cut else ""
        return access_time_note(self.rule, f"{self.files} file(s) read{stopped}{images}", folders)


def access_time_note(rule: AtimeRule, read: str, folders: int, by: str = "the scan") -> str:
    """The note on the access times a run may have moved: `read` says the files read.

    `by`: what read them (the scan, or `matcher hash`'s run, whose inventory
    has no log: its note goes to stderr).
    """
    return (
        f"{read} and {folders} folder(s) listed may have had their access times updated by "
        f"{by}: {rule.why()}; unless the file system does not record access times (mounted "
        f"read-only, or noatime), they now show {by}'s time"
    )


def _moved_by_reading(path: bytes, rule: AtimeRule) -> bool:
    """True when reading `path` (an image file) may move its access time (or it cannot tell)."""
    try:
        return rule.moves(os.stat(path).st_uid)
    except OSError:
        return True


def _pump(
    options: ScanOptions,
    walker: EvidenceWalker,
    engine: Engine,
    recorder: _Recorder,
    lookup: Lookup,
    digest_filter: DigestFilter,
    candidate_sizes: SizeSet | None,
    finished: PathSet,
    progress: Callable[[Counts], None] | None,
    gate: _SignalGate,
    atime: _AtimeMoved | None = None,
) -> None:
    roots = [os.fsencode(absolute(e)) for e in options.evidence]
    # Walk order is kept: `order` holds, in walk order, ready outcomes and a
    # None placeholder for each task whose digest the engine will deliver.
    # A FileTask in `order` is a further name of a hard link (in an image):
    # it takes the outcome of its first name, which is always earlier.
    order: collections.deque[EntryOutcome | FileTask | None] = collections.deque()
    heads: dict[bytes, EntryOutcome | None] = {}

    pending: list[EntryOutcome] = []
    not_candidates: list[tuple[bytes, str, int, int]] = []

    # Note: an entry skipped by the walk (a symlink, a FIFO, an excluded
    # name, a file over --max-size or, with --candidates-only, of no
    # candidate size) writes no log record, so it needs no place in the walk
    # order: it is recorded in batches as the walk meets it. Kept in `order`,
    # a tree of a million symlinks held a million outcomes until its end
    # (300,000: 322 MB). Not-candidate files, most files in that mode, are
    # queued as rows, without an outcome object each.
    skipped: list[EntryOutcome] = []

    def record_walk_skips() -> None:
        with gate.critical():
            recorder.record_skipped(not_candidates, Skip.NOT_CANDIDATE)
            not_candidates.clear()
            for outcome in skipped:
                recorder.record(outcome, [])
            skipped.clear()
            recorder.maybe_flush()

    def skip(outcome: EntryOutcome) -> None:
        skipped.append(outcome)
        if len(skipped) >= NOT_CANDIDATE_BATCH:
            record_walk_skips()

    def feed() -> Generator[FileTask, None, None]:
        walking = walker.walk(roots)
        try:
            yield from _feed(walking)
        finally:
            # Note: a walk stopped early (an interruption, a worker's failure
            # held in an exception) lets go of the folder it was listing now,
            # not when the exception's frames are freed.
            close = getattr(walking, "close", None)
            if close is not None:
                close()

    # Note: asked only on a resume; a fresh scan finished nothing (and the
    # keyed digest of each path would cost its main process ~0.8 µs a file).
    resuming = len(finished) > 0

    def _feed(walking: Iterator[FileTask | EntryOutcome]) -> Iterator[FileTask]:
        for item in walking:
            if gate.held is not None:
                gate.poll()  # one that landed where it could not raise (see interrupts)
            if resuming and item.path in finished:
                continue
            if isinstance(item, FileTask):
                if item.link is not None and item.link != item.path and item.link in heads:
                    order.append(item)
                    continue
                if item.link == item.path:
                    heads[item.path] = None
                if options.max_size is not None and item.size > options.max_size:
                    too_large = EntryOutcome.skipped(
                        item.path, item.size, item.mtime_ns, Skip.TOO_LARGE, item.kind
                    )
                    if item.link is None:
                        skip(too_large)
                    else:  # a hard link's first name: its later names take this outcome
                        order.append(too_large)
                    continue
                if candidate_sizes is not None and item.size not in candidate_sizes:
                    if item.link is None:
                        not_candidates.append((item.path, item.kind, item.size, item.mtime_ns))
                        if len(not_candidates) >= NOT_CANDIDATE_BATCH:
                            record_walk_skips()
                        continue
                    # A hard link's first name: its later names take this outcome.
                    order.append(
                        EntryOutcome.skipped(
                            item.path, item.size, item.mtime_ns, Skip.NOT_CANDIDATE, item.kind
                        )
                    )
                    continue
                order.append(None)
                if atime is not None:
                    atime.hand(item)
                yield item
            elif item.skip is not None:
                skip(item)
            else:
                order.append(item)  # a failure: its error record keeps its place

    def take(outcome: EntryOutcome) -> None:
        if outcome.path in heads:
            heads[outcome.path] = outcome
        pending.append(outcome)

    def settle(report: bool = True) -> None:
        hashed = [o for o in pending if o.digests is not None]
        hits = match_batch([o.digests for o in hashed], digest_filter, lookup)  # type: ignore[misc]
        by_id = {id(o): h for o, h in zip(hashed, hits, strict=True) if h}
        with gate.critical():
            recorder.record_many(pending, by_id)
            pending.clear()
            recorder.maybe_flush()
        if progress is not None and report:
            progress(recorder.counts)

    def drain_ready() -> None:
        while order and order[0] is not None:
            item = order.popleft()
            if isinstance(item, FileTask):
                assert item.link is not None
                take(_same_as(item, heads[item.link]))
            else:
                assert item is not None
                take(item)

    algorithms = engine.algorithms
    hashed_ = EntryOutcome.hashed

    def take_unit(tasks: list[FileTask], results: list[RawResult]) -> None:
        """Take one work unit's results, in walk order.

        Note: most files of a scan are plain, nonempty and in no list, and
        the filter says so for certain. Those write no log record, so they
        need no place in `pending` (whose order is the log's): they are
        counted and queued for the inventory in bulk, straight from the
        digests the engine gives, with no outcome object or digest dict
        (on a tree of small files, a fifth of the main process's work).
        Every other result becomes an outcome and is settled in order.
        """
        digest_lists = [r for r in results if r.__class__ is list]
        if atime is not None:
            atime.count_read(tasks, results)
        maybe = iter(digest_filter.maybe_stored(algorithms, digest_lists))
        unknown_tasks: list[FileTask] = []
        unknown_digests: list[list[bytes]] = []
        for task, result in zip(tasks, results, strict=True):
            drain_ready()
            order.popleft()
            if result.__class__ is not list:
                take(result)  # type: ignore[arg-type]
            elif next(maybe) and task.size:
                # (An empty file is never a match, whatever the lists hold: it
                # takes the bulk path too, counted empty and unknown.)
                digests = dict(zip(algorithms, result, strict=True))
                take(hashed_(task.path, task.size, task.mtime_ns, digests, task.kind))
            else:
                unknown_tasks.append(task)
                unknown_digests.append(result)
        if unknown_tasks:
            with gate.critical():
                recorder.record_unknown(algorithms, unknown_tasks, unknown_digests)
                recorder.maybe_flush()

    # Note: outcomes are also settled once SETTLE_BYTES of files are hashed,
    # or at least every SETTLE_SECONDS, so that a run of large files records
    # each one soon after it is hashed: an interruption then loses no
    # finished work, and progress stays current.
    settled = time.monotonic()
    hashed_bytes = 0
    taken = 0  # files taken since the last settle, the bulk ones too (progress)
    fed = feed()
    try:
        for tasks, results in engine.map_units(fed):
            take_unit(tasks, results)
            hashed_bytes += sum([task.size for task in tasks])
            taken += len(tasks)
            if (
                taken >= MATCH_BATCH
                or hashed_bytes >= SETTLE_BYTES
                or time.monotonic() - settled >= SETTLE_SECONDS
            ):
                settle()
                settled = time.monotonic()
                hashed_bytes = taken = 0
    except Interrupted:
        # Note: the outcomes taken and not yet settled (the filter's possible
        # matches, errors) are recorded before the interrupted end record: it
        # counted none of them, files found notable among them too, while the
        # files taken after them in bulk were counted (found by a validator).
        # The gate is shut first: a signal held in a critical section (raised
        # as it ended) would be raised again at the end of the next one.
        gate.open = False
        drain_ready()
        settle(report=False)  # (no progress shown once interrupted)
        record_walk_skips()
        raise
    finally:
        fed.close()
    drain_ready()
    settle()
    record_walk_skips()
