"""Job: hash every file under some paths (no store, no log): the `matcher hash` inventory.

Same walk and engine as `scan`, in walk order. Paths stay as the user gave
them, so a relative argument gives relative paths in the inventory. Entries
that are skipped or fail are returned too: `write_inventory` reports them
through a callback, and its result says the inventory is incomplete.
"""

from __future__ import annotations

import collections
import dataclasses
import os
from collections.abc import Callable
from collections.abc import Iterator
from collections.abc import Sequence
from pathlib import Path

from matcher import reports
from matcher.errors import UsageError
from matcher.evidence.folder import FolderWalker
from matcher.evidence.folder import open_file
from matcher.evidence.roots import distinct_roots
from matcher.hashing import make_engine
from matcher.models import EntryOutcome
from matcher.models import FileTask
from matcher.models import Skip
from matcher.reports.model import FileEntry
from matcher.reports.output import atomic_text
from matcher.reports.output import is_stdout
from matcher.scan import NOT_OPENED
from matcher.scan import access_time_note
from matcher.scan import refuse_outputs_inside
from matcher.timestamps import utc_text
from matcher.workers import usable_cores


@dataclasses.dataclass
class HashTotals:
    """What a `hash` run saw."""

    files: int = 0
    bytes: int = 0
    skipped: int = 0
    errors: int = 0
    excluded: int = 0
    not_written: int = 0  # hashed (in files and bytes), but a name the format cannot carry
    not_written_bytes: int = 0
    # Roots given twice or inside another root, each walked once (see evidence.roots).
    notes: list[str] = dataclasses.field(default_factory=list)

    @property
    def written(self) -> tuple[int, int]:
        """The files and bytes in the inventory."""
        return self.files - self.not_written, self.bytes - self.not_written_bytes

    @property
    def complete(self) -> bool:
        """True when every entry found (bar --exclude) is in the inventory."""
        return self.skipped == self.excluded and not self.errors and not self.not_written


def hash_paths(
    paths: Sequence[str | bytes],
    algorithms: Sequence[str],
    jobs: int = 0,
    excludes: Sequence[str] = (),
    totals: HashTotals | None = None,
) -> Iterator[EntryOutcome]:
    """Yield the outcome of every entry under `paths`, in walk order.

    Args:
        paths: files or folders, as given (relative ones give relative paths).
        algorithms: canonical digest names, computed in one read pass.
        jobs: hashing workers (0: one per core).
        excludes: globs of entries to skip (recorded as excluded).
        totals: counts updated as outcomes are yielded.
    """
    totals = totals if totals is not None else HashTotals()
    given = [os.fsdecode(p) for p in paths]
    walker = FolderWalker(excludes, roots=given)
    # Note: as scan does: `hash ev ev/sub` listed the files under ev/sub twice.
    # Each root is kept as given (Path() would make `./docs/` `docs`). A root
    # that is a symlink is walked as itself (skipped: never followed), so it
    # never stands for the folder it points to: `hash latest case` (latest ->
    # case) dropped case as "the same" and hashed nothing.
    # Note: the link test is of the path as given: `latest/` follows the link
    # (the walk lists the folder), where Path() makes it `latest`, a link.
    as_paths = [Path(p) for p in given]
    links = {id(p) for g, p in zip(given, as_paths, strict=True) if os.path.islink(g)}
    kept, notes = distinct_roots(
        [p for p in as_paths if id(p) not in links], walker.excluded if excludes else None
    )
    totals.notes.extend(notes)
    kept_ids = {id(p) for p in kept} | links
    roots = [os.fsencode(g) for g, p in zip(given, as_paths, strict=True) if id(p) in kept_ids]
    engine = make_engine(algorithms, open_file, jobs or usable_cores())
    order: collections.deque[EntryOutcome | None] = collections.deque()
    # Note: as scan counts them (its end record's note): read as a user who
    # does not own the files, `hash` moved the access time of every file and
    # folder, and said nothing. Whether each file handed to the workers may
    # move its access time, in the order the results come back.
    rule = walker.atime_rule
    moves: collections.deque[bool] = collections.deque()
    moved = 0

    def feed() -> Iterator[FileTask]:
        for item in walker.walk(roots):
            if isinstance(item, FileTask):
                order.append(None)
                moves.append(rule is not None and item.uid is not None and rule.moves(item.uid))
                yield item
            else:
                order.append(item)

    def account(outcome: EntryOutcome) -> EntryOutcome:
        if outcome.digests is not None:
            totals.files += 1
            totals.bytes += outcome.size or 0
        elif outcome.skip is not None:
            totals.skipped += 1
            totals.excluded += outcome.skip is Skip.EXCLUDED
        else:
            totals.errors += 1
        return outcome

    try:
        for result in engine.map(feed()):
            while order and order[0] is not None:
                yield account(order.popleft())  # type: ignore[arg-type]
            order.popleft()
            if moves.popleft() and (result.digests is not None or result.failure not in NOT_OPENED):
                moved += 1
            yield account(result)
        while order:
            yield account(order.popleft())  # type: ignore[arg-type]
    finally:
        engine.close()
        folders = walker.listed_atime_moved
        if rule is not None and (moved or folders):
            read = f"{moved} file(s) read"
            totals.notes.append(access_time_note(rule, read, folders, "this run"))


def write_inventory(
    paths: Sequence[str],
    algorithms: Sequence[str],
    format_name: str,
    output: Path | None = None,
    jobs: int = 0,
    excludes: Sequence[str] = (),
    command: Sequence[str] = (),
    on_problem: Callable[[EntryOutcome, str], None] | None = None,
    overwrite: bool = False,
) -> HashTotals:
    """Hash every file under `paths` and write the inventory in `format_name`.

    The output appears under its name only when complete (temp file, fsync,
    rename, mode 0600); None means stdout. An existing output is refused,
    before anything is hashed, unless `overwrite`. Entries that are skipped, fail,
    or that the format cannot carry are not written: each is passed to
    `on_problem` with a reason, and the totals count it.

    Returns:
        The totals (`complete` is False when anything is missing).

    Raises:
        UsageError: the format cannot carry the algorithms, the output lies
            inside one of `paths`, or it cannot be written; the current folder
            no longer exists.
    """
    writer = reports.registry.get_inventory(format_name)
    refusal = writer.required(algorithms)
    if refusal is not None:
        raise UsageError(f"{refusal}; choose --algorithms or --format accordingly.")
    try:
        here = os.getcwd()
    except FileNotFoundError as exc:
        # Note: before any path is resolved; the try below would blame the output.
        raise UsageError(
            "The current folder no longer exists (deleted or moved); cd to another folder."
        ) from exc
    if output is not None and str(output) != "-":
        refuse_outputs_inside([Path(p) for p in paths if os.path.lexists(p)], [output])
    totals = HashTotals()
    report = on_problem or (lambda outcome, reason: None)
    try:
        with atomic_text(output, errors="surrogateescape", overwrite=overwrite) as stream:
            sink = writer.open(stream, algorithms, command, here)
            for outcome in hash_paths(paths, algorithms, jobs, excludes, totals):
                if outcome.digests is None:
                    what = outcome.skip or outcome.failure
                    detail = f": {outcome.detail}" if outcome.detail else ""
                    kind = "skipped" if outcome.skip else "error"
                    report(outcome, f"{kind} ({what}){detail}")
                    continue
                entry = FileEntry(
                    path=outcome.path,
                    size=outcome.size,
                    digests={a: outcome.digests[a].hex() for a in algorithms},
                    mtime=utc_text(outcome.mtime_ns),
                )
                reason = sink.add(entry)
                if reason is not None:
                    totals.not_written += 1
                    totals.not_written_bytes += outcome.size or 0
                    report(outcome, f"not written: {reason}")
            sink.finish()
    except OSError as exc:
        where = "to stdout" if is_stdout(output) else str(output)
        raise UsageError(f"Cannot write inventory {where}: {exc.strerror or exc}.") from exc
    return totals
