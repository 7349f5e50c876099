"""Job: scan many evidence items from a CSV manifest, each with its own log and inventory.

Manifest: CSV with a header naming `evidence`, `case`, `examiner`, and
optionally `authority` and `log` (a relative evidence or log path is taken
relative to the manifest's folder). An item without a log path gets
`<manifest stem>-logs/<row>-<evidence name>.jsonl` beside the manifest, so a
rerun finds it again. On a rerun, an item whose log verifies and ends
`complete` is skipped (if it was made with the batch's options and lists; else
it fails, as a resume with others would), one that was interrupted or crashed
is resumed, and a failing item is recorded and the batch goes on. The batch's
exit code is the worst item's.
"""

from __future__ import annotations

import csv
import dataclasses
import functools
import os
import re
from collections.abc import Callable
from collections.abc import Mapping
from collections.abc import Sequence
from pathlib import Path

from matcher import auditlog
from matcher import signing
from matcher.digests import file_sha256
from matcher.errors import ExitCode
from matcher.errors import FormatError
from matcher.errors import IntegrityError
from matcher.errors import MatcherError
from matcher.errors import UsageError
from matcher.errors import described
from matcher.inventory import check_seal
from matcher.inventory import default_path as default_inventory_path
from matcher.mounts import MountView
from matcher.scan import Counts
from matcher.scan import ScanOptions
from matcher.scan import _as_the_command_line_gives
from matcher.scan import _differences
from matcher.scan import _identity
from matcher.scan import authorised_scan_differs
from matcher.scan import exit_code_for
from matcher.scan import refuse_outputs_inside
from matcher.scan import resolve_algorithms
from matcher.scan import run_scan
from matcher.sqlitefiles import temporary_folders
from matcher.store import HashStore

REQUIRED = ("evidence", "case", "examiner")
OPTIONAL = ("authority", "log")
# Columns naming a path: taken exactly as written (see read_manifest).
PATH_COLUMNS = ("evidence", "log")


@dataclasses.dataclass
class BatchItem:
    """One manifest row and what became of it."""

    row: int
    evidence: Path
    case: str
    examiner: str
    authority: str | None
    log: Path
    status: str = "pending"  # done-before, complete, interrupted, failed
    # None while pending (never run: a batch stopped before it). It was 0, the
    # code of a clean item, which a lab script could take for one.
    exit_code: int | None = None
    counts: dict[str, object] = dataclasses.field(default_factory=dict)
    message: str = ""
    head: str | None = None  # the log's chain head once it ran (or was done before)
    notes: list[str] = dataclasses.field(default_factory=list)  # its end record's notes
    inventory: Path | None = None  # once it ran (or was done before)

    def as_dict(self) -> dict[str, object]:
        return {
            "row": self.row,
            "evidence": str(self.evidence),
            "case": self.case,
            "examiner": self.examiner,
            "log": str(self.log),
            # Note: a failed item was given the log it would have had, which a
            # script then ran `verify` on (a review): this says if it is there.
            "log_exists": os.path.isfile(self.log),
            "status": self.status,
            "exit_code": self.exit_code,
            "counts": self.counts,
            "message": self.message,
            "head": self.head,
            "notes": self.notes,
            "inventory": None if self.inventory is None else str(self.inventory),
        }


def read_manifest(path: Path) -> list[BatchItem]:
    """Parse a manifest.

    Raises:
        FormatError: a missing, unknown or repeated column, a row of another field count
            than the header, an empty required field, a duplicate log path, or the
            same evidence twice for one case (or one item's inside another's).
    """
    base = path.resolve().parent
    reader: csv.DictReader[str] | None = None
    try:
        with path.open(newline="", encoding="utf-8-sig") as stream:
            # Note: strict, so that a quote left open at the end of the file
            # is an error (the csv module otherwise ends the value there).
            reader = csv.DictReader(stream, strict=True)
            header = [h.strip().lower() for h in reader.fieldnames or []]
            missing = [c for c in REQUIRED if c not in header]
            if missing:
                raise FormatError(
                    f"the manifest header lacks {', '.join(missing)}", source=str(path), line=1
                )
            # Note: a misspelt column (`authorty`) would leave its values
            # unread, and the log would record no authority: refused, as is
            # a column named twice.
            unknown = [h for h in header if h not in REQUIRED + OPTIONAL]
            if unknown:
                raise FormatError(
                    f"the manifest header names {', '.join(map(repr, unknown))}: the columns "
                    f"are {', '.join(REQUIRED)} and optionally {', '.join(OPTIONAL)}",
                    source=str(path),
                    line=1,
                )
            twice = sorted({h for h in header if header.count(h) > 1})
            if twice:
                raise FormatError(
                    f"the manifest header names {', '.join(twice)} twice", source=str(path), line=1
                )
            reader.fieldnames = header
            items = []
            for number, row in enumerate(reader, start=2):
                # Note: the row's first line, counted back from its last over the
                # line breaks in its values (blank lines before it are skipped).
                breaks = sum(
                    v.count("\n") + v.count("\r") - v.count("\r\n")
                    for v in row.values()
                    if isinstance(v, str)
                )
                start = reader.line_num - breaks
                if None in row or None in row.values():
                    # Note: an unquoted comma in a value (`Doe, Jane`) shifts
                    # every later field: the examiner would be recorded as
                    # `Doe` and the authority as `Jane`.
                    more = "more" if None in row else "fewer"
                    raise FormatError(
                        f"the row has {more} fields than the header's {len(header)} "
                        "(quote a value that holds a comma)",
                        source=str(path),
                        line=reader.line_num,
                    )
                broken = [
                    k for k, v in row.items() if k is not None and v and ("\n" in v or "\r" in v)
                ]
                if broken:
                    # Note: a quote left open (`"Doe, Jane` with no closing
                    # quote) takes every later line into one value: the items
                    # on them were never run, and the log named that examiner.
                    raise FormatError(
                        f"the {broken[0]} value holds a line break: is a quote left open? "
                        "(a quoted value runs to its closing quote, across lines)",
                        source=str(path),
                        line=start,
                    )
                values = {k: (v or "").strip() for k, v in row.items() if k is not None}
                nul = next((k for k, v in values.items() if "\0" in v), None)
                if nul is not None:
                    # Note: no path, name or case holds a NUL byte; it ended in an
                    # internal error (ValueError: embedded null byte).
                    raise FormatError(
                        f"the {nul} value holds a NUL byte: a binary file, or a value cut "
                        "short by a tool? No path, name or case reference holds one",
                        source=str(path),
                        line=start,
                    )
                for column in REQUIRED:
                    if not values.get(column):
                        raise FormatError(f"empty {column}", source=str(path), line=start)
                for column in PATH_COLUMNS:
                    exact = row.get(column) or ""
                    if not values.get(column) or exact == values[column]:
                        continue  # (a log value of spaces only: none given)
                    # Note: a path is taken as written, never trimmed: `"ev/item1 "`
                    # was read as ev/item1, another folder, which was scanned
                    # clean (exit 0) in its place (a review). A value that names
                    # nothing as written is refused, with the fix: spaces around
                    # a comma are the usual cause.
                    if not os.path.lexists(base / exact):
                        raise FormatError(
                            f"the {column} value {exact!r} has spaces at its start or end, "
                            "and no path is named so: remove them (a path is taken exactly "
                            "as written)",
                            source=str(path),
                            line=start,
                        )
                    values[column] = exact
                evidence = base / values["evidence"]
                safe = re.sub(r"[^A-Za-z0-9._-]+", "_", evidence.name)[:64] or "item"
                log = (
                    base / values["log"]
                    if values.get("log")
                    else (base / f"{path.stem}-logs" / f"{number - 1:03d}-{safe}.jsonl")
                )
                items.append(
                    BatchItem(
                        number,
                        evidence,
                        values["case"],
                        values["examiner"],
                        values.get("authority") or None,
                        log,
                    )
                )
    except csv.Error as exc:
        # Note: strict: a quote left open reaches the end of the file (a
        # stray quote inside a value stops at once).
        left_open = "end of data" in str(exc)
        # Note: another strict error (a stray quote) is on the line read last.
        read_last = reader.reader.line_num if reader else None
        raise FormatError(
            "a quote is left open: it takes in every line after it"
            if left_open
            else f"the manifest is not a readable CSV ({exc})",
            source=str(path),
            line=_open_quote_line(path) if left_open else read_last,
        ) from exc
    except UnicodeDecodeError as exc:
        raise FormatError(f"the manifest is not a readable CSV ({exc})", source=str(path)) from exc
    logs = [i.log.resolve() for i in items]
    if len(set(logs)) != len(logs):
        raise FormatError("two items share one log path", source=str(path))
    # Note: an item's log named as another's inventory (`a.jsonl.inventory.db`)
    # failed that item at every run, "this is not a match log" (a review).
    taken = set(logs) & {default_inventory_path(log) for log in logs}
    if taken:
        raise FormatError(
            f"an item's log {min(taken)} is where another item's inventory goes "
            "(LOG.inventory.db beside its log): choose another log path",
            source=str(path),
        )
    _refuse_evidence_twice(items, path)
    if not items:
        raise FormatError("the manifest lists no item", source=str(path))
    return items


def _open_quote_line(path: Path) -> int | None:
    """The line of the quote a manifest leaves open to its end (None if none is found).

    Note: blank lines are skipped inside the csv reader, so the line its
    row starts on cannot be counted from the rows read.
    """
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError):
        return None
    quoted, line, opened = False, 1, None
    for char in text:
        if char == '"':
            quoted = not quoted  # a doubled quote inside a value toggles twice
            opened = line if quoted else opened
        elif char == "\n":
            line += 1
    return opened if quoted else None


def _refuse_evidence_twice(items: Sequence[BatchItem], manifest: Path) -> None:
    """Refuse two items of one case whose evidence is one, or one inside the other.

    Paths are compared real (links resolved), as `share`, `share/./` and a
    link to `share` are one evidence.

    Raises:
        FormatError: naming both rows.
    """
    seen: dict[str, list[tuple[Path, BatchItem]]] = {}
    for item in items:
        # Note: each would be scanned into its own log, and the files they
        # share (and the case's matches among them) counted twice.
        real = Path(os.path.realpath(item.evidence))
        for other_real, other in seen.setdefault(item.case, []):
            if real == other_real:
                raise FormatError(
                    f"rows {other.row} and {item.row} scan the same evidence for the same case",
                    source=str(manifest),
                )
            if real.is_relative_to(other_real) or other_real.is_relative_to(real):
                inner, outer = (item, other) if real.is_relative_to(other_real) else (other, item)
                raise FormatError(
                    f"row {inner.row}'s evidence {inner.evidence} lies inside row {outer.row}'s "
                    f"evidence {outer.evidence} for the same case: its files would be scanned "
                    f"twice and the case's matches counted twice; keep row {outer.row} only "
                    f"(it reads row {inner.row}'s files)",
                    source=str(manifest),
                )
        seen[item.case].append((real, item))


def worst_exit_code(codes: Sequence[int | None]) -> int:
    """The batch's exit code: 2 if any item failed, else every item's flags combined.

    Taking one item's code would hide the others' trouble: an item with a
    notable match (1) and another with an unreadable file (4) give 5. An
    item never run (None) adds nothing: the item that stopped the batch
    carries its flag (8, or 2).
    """
    if any(code == ExitCode.FATAL for code in codes):
        return int(ExitCode.FATAL)
    combined = 0
    for code in codes:
        combined |= code or 0
    return combined


def _previous_state(log: Path) -> tuple[str, str | None]:
    """ "new", "complete" or "resume" for an item's log, and the head of a complete one.

    Raises:
        IntegrityError: the log is tampered (the item fails; nothing is appended).
    """
    if not log.exists():
        return "new", None
    if log.stat().st_size == 0:
        return "resume", None  # killed between creating the log and writing its first record
    try:
        report = auditlog.verify(log)
    except (auditlog.IncompleteLogError, auditlog.TornLineError):
        return "resume", None  # resume sets torn bytes aside, documented in README
    if report.last_status == "complete":
        return "complete", report.head
    return "resume", None


def _counts_from_its_log(item: BatchItem) -> Mapping[str, object] | None:
    """An item's counts and head from its log's last end record, when the log verifies.

    Returns that end record (None: no log that verifies with one).
    Note: a scan that failed after its run began (its workers killed) still
    ends its log, `interrupted`, with what it found; the table showed 0 files
    and 0 notable for it, and no head.
    """
    try:
        report = auditlog.verify(item.log)
    except (MatcherError, OSError):
        return None
    end = report.last_end or {}
    counts = end.get("counts")
    if not isinstance(counts, dict):
        return None
    item.counts = dict(counts)
    item.head = report.head
    return end


def _ended_in_its_log(item: BatchItem) -> None:
    """Take an item's outcome from its log's end record, when the log verifies and has one.

    For an item a signal stopped the batch at: its scan may have ended just before.
    """
    end = _counts_from_its_log(item) if os.path.isfile(item.log) else None
    status = end.get("status") if end is not None else None
    if status in ("complete", "interrupted"):
        item.status = str(status)
        item.exit_code = exit_code_for(item.status, Counts.from_record(item.counts))


def run_batch(
    manifest: Path,
    template: ScanOptions,
    on_item: Callable[[BatchItem], None] | None = None,
    on_note: Callable[[BatchItem, str], None] | None = None,
    on_stop: Callable[[], None] | None = None,
) -> list[BatchItem]:
    """Run every item of `manifest`, with `template`'s settings for the rest.

    `on_item` hears of each item once it is done; `on_note`, of an item's note
    said before its first file (see run_scan's `on_note`), as it begins;
    `on_stop`, at once, that a signal stops the batch (the command line then
    ignores any more: a burst of them lost its table and --json).

    Raises:
        FormatError: the manifest itself is unusable (nothing runs).
    """
    items = read_manifest(manifest)
    list_digests: dict[Path, str] = {}  # each --list's SHA-256, read once (a list can be 100 GB)
    # Note: the mount table read once, not per item (each item's outputs are
    # checked against every item's evidence: items x mounts, not items² x mounts).
    view = MountView()
    # Note: what every item writes, checked against every item's evidence before
    # the first runs: each scan checks them against its own evidence only, and
    # item 1 made the store (and its temporary files) inside item 2's evidence,
    # which was then refused (a review).
    scratch = temporary_folders()
    refuse_outputs_inside(
        [item.evidence for item in items],
        [template.db, *(folder for folder, _, _ in scratch)],
        [("hash store", "--db"), *((what, variable) for _, what, variable in scratch)],
        view,
    )
    stopping = _once(on_stop)
    try:
        _run_items(items, template, view, list_digests, on_item, on_note, stopping)
    except KeyboardInterrupt:
        # Note: a signal between two items (the loop's own steps): the next
        # item not run carries the flag, as one stopped before it ran (a review).
        stopping()
        waiting = next((i for i in items if i.status == "pending"), None)
        if waiting is not None and not waiting.notes:
            waiting.exit_code = int(ExitCode.INTERRUPTED)
            waiting.notes.append(_STOPPED_BEFORE)
    return items


_STOPPED_BEFORE = (
    "a signal (SIGINT or SIGTERM) stopped the batch at this item: run the same batch command "
    "again to go on (a log it completed is then taken as done)"
)


def _run_items(
    items: Sequence[BatchItem],
    template: ScanOptions,
    view: MountView,
    list_digests: dict[Path, str],
    on_item: Callable[[BatchItem], None] | None,
    on_note: Callable[[BatchItem, str], None] | None,
    on_stop: Callable[[], None],
) -> None:
    """run_batch's loop: each item in turn, until the last or a signal stops the batch."""
    for item in items:
        reported = False
        try:
            stop = _run_item(item, items, template, view, list_digests, on_note)
            stop = stop or item.status == "interrupted"
            if stop:
                on_stop()
            if on_item is not None:
                reported = True  # (a signal inside it: its line is not said twice)
                on_item(item)
        except KeyboardInterrupt:
            # Note: a signal outside an item's scan (which handles its own):
            # between items, reading a log, before a scan's log is open. It
            # ended the command with "Interrupted." and nothing more: no table,
            # no --json of the items done (a review). The batch stops as for a
            # signal inside a scan; the item carries the flag (a failed one
            # keeps its 2: the batch's code says an item failed).
            on_stop()
            if item.status == "pending":
                # Note: its scan may have ended as the signal came (after it had
                # put the handlers back): the item read "pending", no counts,
                # no head, the batch's notable flag lost (a review).
                _ended_in_its_log(item)
            if item.exit_code != ExitCode.FATAL:
                item.exit_code = (item.exit_code or 0) | int(ExitCode.INTERRUPTED)
            # Note: "before this item ran" was said of one whose scan had ended, its
            # log complete, when the signal came as the scan returned (a review).
            item.notes.append(
                _STOPPED_BEFORE
                if item.status == "pending"
                else "a signal (SIGINT or SIGTERM) stopped the batch as this item ended: run "
                "the same batch command again to go on"
            )
            stop = True
            if not reported and on_item is not None:
                on_item(item)
        if stop:
            break  # a signal stops the whole batch; a rerun resumes this item


def _once(call: Callable[[], None] | None) -> Callable[[], None]:
    """`call` (if any), made to run once at most (a signal stops a batch once)."""
    done: list[bool] = []

    def first() -> None:
        if not done:
            done.append(True)
            if call is not None:
                call()

    return first


def _run_item(
    item: BatchItem,
    items: Sequence[BatchItem],
    template: ScanOptions,
    view: MountView,
    list_digests: dict[Path, str],
    on_note: Callable[[BatchItem, str], None] | None,
) -> bool:
    """Run (or take as done) one item, recording its outcome on it; True: stop the batch."""
    stop = False
    options = dataclasses.replace(
        template,
        evidence=[item.evidence],
        # Note: a --list inside another item's evidence moved that item's
        # access time unsaid (its own log may be complete already).
        other_evidence=[other.evidence for other in items if other is not item],
        examiner=item.examiner,
        case=item.case,
        authority=item.authority,
        log=item.log,
        inventory=None,
    )
    try:
        # Note: refused before the log's folder is made, which could lie
        # in the evidence (run_scan checks again, once it exists). Every
        # item's evidence, not only its own: a log written into another
        # item's evidence would be hashed as that item's evidence.
        column = "the manifest's log column"
        refuse_outputs_inside(
            [item.evidence, *(other.evidence for other in items if other is not item)],
            [item.log, default_inventory_path(item.log)],
            [("log", column), ("inventory (beside the log)", column)],
            view,
        )
        state, head = _previous_state(item.log)
        if state == "complete":
            _take_finished(item, options, list_digests)
            item.head = head
        else:
            item.log.parent.mkdir(parents=True, exist_ok=True)
            summary = run_scan(
                dataclasses.replace(options, resume=state == "resume"),
                on_note=functools.partial(on_note, item) if on_note is not None else None,
            )
            item.status = summary.status
            item.exit_code = summary.exit_code
            item.counts = summary.counts.as_dict()
            item.head = summary.head or None
            item.message = "; ".join(summary.notes)
            item.notes = list(summary.notes)
            item.inventory = summary.inventory
            if summary.signal is not None:
                # Note: held, as it came after the item's last entry: the
                # item is complete, and the batch stops here all the same.
                item.exit_code = summary.exit_code | int(ExitCode.INTERRUPTED)
                item.notes.append(
                    f"{summary.signal} arrived as this item ended: it is complete; the "
                    "batch stops here (run it again to go on with the next item)"
                )
                stop = True
    except IntegrityError as exc:
        # Note: said as scan --resume says it, naming the log: the bare
        # reason (`line 3: ...`) did not say what failed to verify.
        item.status = "failed"
        item.exit_code = int(ExitCode.FATAL)
        item.message = f"refused: the log {item.log} does not verify: {described(exc)}"
    except MatcherError as exc:
        item.status = "failed"
        item.exit_code = int(ExitCode.FATAL)
        item.message = described(exc)  # its notes too (the --lists it kept)
        _counts_from_its_log(item)
    except OSError as exc:
        item.status = "failed"
        item.exit_code = int(ExitCode.FATAL)
        item.message = f"{exc.strerror or exc}: {exc.filename or item.evidence}"
        _counts_from_its_log(item)
    return stop


def _take_finished(item: BatchItem, options: ScanOptions, list_digests: dict[Path, str]) -> None:
    """Report an item whose log holds a complete scan of it, which is not run again.

    Lists imported into the store since the log's run are noted, as a resume
    notes them.

    Raises:
        UsageError: the log's scan is of other evidence, or under another
            case or authority (the item would read as scanned, unread), or
            made with other algorithms, options or lists (as a resume
            refuses them), or the signing key cannot be read.
        IntegrityError: its inventory is not the one the log sealed.
        StoreError: the store cannot be read.
    """
    last_run: dict[str, object] | None = None
    end: dict[str, object] | None = None
    for record in auditlog.read_records(item.log):
        if record["type"] == "run":
            last_run = record
        elif record["type"] == "end":
            end = record
    differs = authorised_scan_differs(last_run or {}, options)
    if differs:
        raise UsageError(
            f"The log {item.log} holds a complete scan that is not this item's: it differs in "
            f"{', '.join(differs)}. Nothing was scanned; give this item a log of its own "
            "(the manifest's log column)."
        )
    # Note: a scan with the batch's options could find what the log's could
    # not (an archive member, a new list's match): never reported done.
    otherwise = _made_otherwise(last_run or {}, options, list_digests)
    if otherwise:
        raise UsageError(
            f"The log {item.log} holds a complete scan of this item made with other options or "
            f"lists: it differs in {', '.join(otherwise)}. Nothing was scanned; rerun the batch "
            "with the options and lists the log was made with, give this item a new log (the "
            "manifest's log column) to scan it with these, or match it against new lists with "
            f"`matcher rematch {item.log}`."
        )
    item.status = "done-before"
    item.message = "log verifies and is complete; not scanned again"
    if end is not None:
        item.counts = dict(end.get("counts") or {})  # type: ignore[call-overload]
        item.exit_code = exit_code_for("complete", Counts.from_record(item.counts))
        notes = end.get("notes")
        item.notes = [str(note) for note in notes] if isinstance(notes, list) else []
        # Note: the log stays the record of its scan, but `report` and
        # `rematch` need the inventory it sealed: one deleted or changed since
        # was reported done, its path given, with no word.
        seal = check_seal(item.log, end)
        if seal.status == "differs":
            # Note: verify fails such a log (exit 1), report too; the item read
            # done-before, exit 0, its inventory's change a note (a validator).
            raise IntegrityError(f"its inventory {seal.problem()}")
        if seal.status != "unsealed":
            item.inventory = seal.path  # where it was found (beside a log that moved)
        if seal.status == "missing":
            note: str | None = (
                f"its inventory {seal.path} is missing: `matcher report` and `rematch` need it"
            )
        else:
            problem = seal.problem() if seal.status != "unsealed" else None
            note = f"its inventory {problem}" if problem is not None else None
        if note is not None:
            item.notes.append(note)
            item.message += f" ({note})"
    item.notes.extend(_lists_since(last_run or {}, options.db, item.log))


def _made_otherwise(
    last_run: Mapping[str, object], options: ScanOptions, list_digests: dict[Path, str]
) -> list[str]:
    """What of the algorithms, the options and the given lists differs from a logged run's.

    As a resume compares them (--jobs aside), except that a full scan stands
    for --candidates-only: it read every candidate, and a --candidates-only
    scan whose lists lack sizes logs a full scan.
    """
    # Note: without --algorithms, a logged run made with the defaults of its day.
    options = resolve_algorithms(
        dataclasses.replace(_as_the_command_line_gives(options), resume=True)
    )
    signer = signing.load_signer(options.sign_key) if options.sign_key else None
    identity = _identity(options, [], None, signer.fingerprint if signer is not None else None)
    asked = identity["options"]
    assert isinstance(asked, dict)
    wanted = {
        "algorithms": identity["algorithms"],
        "options": {k: v for k, v in asked.items() if k != "candidates_only"},
    }
    differs = _differences(last_run, wanted)
    earlier = last_run.get("options")
    if isinstance(earlier, dict) and earlier.get("candidates_only") and not options.candidates_only:
        differs.append("--candidates-only")
    used = last_run.get("lists")
    if isinstance(used, list):
        digests = {entry.get("source_sha256") for entry in used if isinstance(entry, dict)}
        for path in options.lists:
            if path not in list_digests:
                list_digests[path] = file_sha256(path)
            if list_digests[path] not in digests:
                differs.append(f"--list {path} (not among the lists the log's run matched against)")
    return differs


def _lists_since(last_run: Mapping[str, object], db: Path, log: Path) -> list[str]:
    """A note naming the store's lists that a logged run was not matched against, if any.

    Raises:
        StoreError: the store cannot be read.
    """
    used = last_run.get("lists")
    if not isinstance(used, list) or not os.path.isfile(db):
        return []
    store = HashStore(db, readonly=True)
    try:
        lists = store.lists()
    finally:
        store.close()
    keys = {(e.get("name"), e.get("source_sha256")) for e in used if isinstance(e, dict)}
    since = [info.name for info in lists if (info.name, info.source_sha256) not in keys]
    if not since:
        return []
    return [
        "lists imported into the store after this log's run are not in it (it was never "
        f"matched against them): {', '.join(since)}; `matcher rematch {log}` matches it "
        "against them"
    ]
