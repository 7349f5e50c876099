"""Job: check a finished scan's inventory against the lists as they are now.

The evidence is not touched (it may be offline or returned): the digests come
from the original run's inventory, whose SHA-256 must equal the one the
original log's last `end` record sealed. The result is a new, verifiable log
whose `run` record cites the original log's final chain hash, and a new
inventory beside it. Entries the original run skipped or could not read stay
skipped or in error: a re-match never turns them into known or unknown. What
the original said of its digests' trustworthiness holds of the re-match too:
its image mismatches (counted, and in the exit code) and its notes on the
files it hashed (marked as the original scan's).
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import re
import socket
import sys
import time
from collections.abc import Callable
from collections.abc import Mapping
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from matcher import TOOL_NAME
from matcher import __version__
from matcher import auditlog
from matcher import signing
from matcher.digests import DIGEST_SIZES
from matcher.errors import UsageError
from matcher.inventory import Inventory
from matcher.inventory import check_seal
from matcher.inventory import default_path as default_inventory_path
from matcher.inventory import inventory_int
from matcher.lookup_filter import build_filter
from matcher.match import held_by_every_entry
from matcher.match import match_batch
from matcher.models import EntryOutcome
from matcher.models import Failure
from matcher.models import ListInfo
from matcher.models import Skip
from matcher.models import fields_path
from matcher.models import path_fields
from matcher.models import storable
from matcher.models import storable_text
from matcher.scan import MATCH_BATCH
from matcher.scan import Counts
from matcher.scan import Interrupted
from matcher.scan import ScanSummary
from matcher.scan import _install_signal_handlers
from matcher.scan import _Recorder
from matcher.scan import _SignalGate
from matcher.scan import append_end_record
from matcher.scan import exit_code_for
from matcher.scan import list_notes
from matcher.scan import refuse_outputs_inside
from matcher.store import HashStore


@dataclasses.dataclass
class RematchOptions:
    """What a re-match needs."""

    original_log: Path
    examiner: str
    case: str
    db: Path
    log: Path
    authority: str | None = None
    inventory: Path | None = None
    original_inventory: Path | None = None
    sign_key: Path | None = None
    argv: Sequence[str] = ()
    # The original log's signer's public key: its signatures are then checked.
    public_key: Path | None = None


def _original(
    options: RematchOptions,
) -> tuple[dict[str, Any], dict[str, Any], str, Path, auditlog.VerifyReport]:
    """The original run's first `run`, last `end`, chain head, checked inventory path, report."""
    # Note: the records come from the one verified read of the log, not from
    # a second read, which would cost as long again and could see other bytes.
    try:
        report = auditlog.verify(options.original_log, public_key_path=options.public_key)
    except OSError as exc:
        raise UsageError(
            f"Cannot read the original log {options.original_log}: {exc.strerror or exc}."
        ) from exc
    first_run, last_end = report.first_run, report.last_end
    assert first_run is not None and last_end is not None  # verify() guarantees both
    if last_end.get("status") != "complete":
        raise UsageError(
            f"{options.original_log} ends with an interrupted run; finish it with "
            "`matcher scan --resume` before re-matching."
        )
    seal = check_seal(options.original_log, last_end, options.original_inventory)
    if seal.status == "unsealed":
        raise UsageError(f"{options.original_log} names no inventory; it cannot be re-matched.")
    if seal.status == "matches":
        assert seal.path is not None
        return first_run, last_end, report.head, seal.path, report
    if seal.status == "differs":
        # Note: the log verified; its inventory is what fails (exit 2).
        raise UsageError(
            f"Refused: the inventory {seal.path} has SHA-256 {seal.actual}, but the log "
            f"{options.original_log} sealed {seal.sealed}: it was changed after "
            "the scan, or it belongs to another run. Nothing was re-matched."
        )
    if seal.status == "unreadable":
        raise UsageError(f"The inventory {seal.path} cannot be read ({seal.reason}).")
    # Note: a FIFO, a device or a folder is there, but no inventory (and is
    # never read: a FIFO would be waited on); "not found" sent the user to the
    # very option already given.
    if options.original_inventory is not None and seal.status == "not-a-file":
        raise UsageError(
            f"The inventory {options.original_inventory} given with --original-inventory is "
            "not a regular file (a FIFO, a device or a folder); give the original run's "
            "inventory file."
        )
    odd = "".join(f"; {p} is not a regular file" for p in seal.looked_at if p.exists())
    raise UsageError(
        f"The inventory of {options.original_log} was not found (looked for "
        f"{', '.join(str(p) for p in seal.looked_at)}{odd}); pass --original-inventory."
    )


def _lists_gone(run: Mapping[str, object], lists: Sequence[ListInfo]) -> list[str]:
    """A note for each list the original run matched against that the store no longer holds.

    Note: a re-match after the original's notable list was removed said
    notable 0, with no word of the list gone: it read as the files being
    cleared, where nothing matched them against that list.
    """
    held = {info.source_sha256 for info in lists}
    used = run.get("lists")
    return [
        f"list {str(old.get('name'))!r} ({old.get('role')}), which the original scan matched "
        "against, is no longer in the store: its entries are not matched here"
        for old in (used if isinstance(used, list) else [])
        if isinstance(old, dict) and old.get("source_sha256") not in held
    ]


# Marks a note of the original scan carried into a re-match's end record.
_FROM_ORIGINAL = "the original scan noted: "
# The original scan's notes that still hold of its inventory's files, and so
# of the digests a re-match matches: what its evidence gave (an E01 whose media
# did not match its stored hash, an image cut short, a file named as a disk
# image hashed as a file, roots scanned once, --exclude as it applied...). Its
# notes on its lists, its matches and its run itself (a list already imported,
# the empty-file digests, the filter, signals, a resume) are not carried: they
# are of lists and a run the re-match does not use, and it makes its own. A
# new scan note on the evidence belongs here.
_CARRIED = re.compile(
    r"WARNING: "
    r"|--verify-image: "
    r"|--exclude "
    r"|crossed into another filesystem at "
    r"|evidence .* (is the same as|lies inside) evidence "
    r"|evidence .* is named twice: scanned once"
    r"|evidence .* is a single file with no volume system or filesystem recognised"
    r"|.*: partition \d+ \(.*\) starts at byte \d+, (as partition \d+ does|past the image's end)"
    r"|.* runs to byte \d+, past the image's end"
    r"|\d+ file\(s\) in the folders are named as disk images",
    re.DOTALL,
)


def _carried_notes(last_end: dict[str, Any]) -> list[str]:
    """The original end record's notes that still hold of its inventory's files, marked as its.

    A re-match's own carried notes (it may be re-matched in turn) are carried as they are.
    """
    notes = last_end.get("notes")
    if not isinstance(notes, list):
        return []
    return [
        note if note.startswith(_FROM_ORIGINAL) else _FROM_ORIGINAL + note
        for note in notes
        if isinstance(note, str) and (note.startswith(_FROM_ORIGINAL) or _CARRIED.match(note))
    ]


def _case_note(first_run: dict[str, Any], case: str) -> list[str]:
    """A note naming the case and examiner of the original scan, if it was for another case.

    Note: a new case may re-use an old scan (not refused, as a resume for
    another case is), but the log is read for the case it names: whose scan
    it matched is said, not left in `rematch_of` alone.
    """
    # Note: a re-match of a re-match names the scan the first one matched.
    scan = first_run.get("rematch_of")
    scan = scan if isinstance(scan, dict) else first_run
    original = scan.get("case")
    if original is None or original == storable_text(case):
        return []
    return [
        f"the original scan was made for case {original} by examiner "
        f"{scan.get('examiner')}; this re-match is for case {case}"
    ]


def _original_counts(last_end: dict[str, Any]) -> Counts:
    """A re-match's counts before its first entry: the original's image mismatches.

    Note: the digests re-matched are those read from such an image, which
    may be wrong: the count, and so exit flag 16, stays (as its note does).
    """
    counted = last_end.get("counts")
    found = counted.get("image_mismatches") if isinstance(counted, dict) else None
    if isinstance(found, int) and not isinstance(found, bool) and found > 0:
        return Counts(image_mismatches=found)
    return Counts()


def _signature_note(report: auditlog.VerifyReport) -> list[str]:
    """What was checked of the original log's signatures, if it has any.

    Note: a re-match of a signed log cites it; whether its signatures were
    checked, and with which key, is said rather than left to be assumed.
    """
    if not report.signatures:
        return []
    keys = ", ".join(report.key_fingerprints) or "unnamed"
    if report.signatures_checked:
        return [
            f"the original log's {report.signatures_checked} signature(s) verified with the "
            f"public key given (fingerprint {keys})"
        ]
    return [
        f"the original log carries {report.signatures} signature(s) (key {keys}) that were "
        "not checked: give --public-key to check them"
    ]


def _outcome(row: dict[str, Any]) -> EntryOutcome:
    path, size, mtime_ns, kind = (
        bytes(row["path"]),
        row["size"],
        inventory_int(row["mtime_ns"]),
        str(row["kind"] or "file"),
    )
    if row["failure"] is not None:
        return EntryOutcome(
            path,
            size,
            mtime_ns,
            kind=kind,
            failure=Failure(str(row["failure"])),
            errno=row["errno"],
            detail=f"from the original scan: {row['detail']}",
        )
    if row["skip"] is not None:
        return EntryOutcome(path, size, mtime_ns, kind=kind, skip=Skip(str(row["skip"])))
    digests = {a: bytes(row[a]) for a in DIGEST_SIZES if row[a] is not None}
    return EntryOutcome(path, size, mtime_ns, kind=kind, digests=digests)


def run_rematch(
    options: RematchOptions,
    progress: Callable[[Counts], None] | None = None,
    on_stage: Callable[[str], None] | None = None,
) -> ScanSummary:
    """Re-match a finished run's inventory against the current store.

    Raises:
        UsageError: missing examiner/case, an unfinished original run, or a missing inventory
            (or one that is not a regular file).
        IntegrityError: the original log does not verify.
        UsageError: its inventory is not the one the log sealed (among others).
        StoreError, LogWriteError: the store or the new log cannot be used.
    """
    examiner, case = options.examiner.strip(), options.case.strip()
    if not examiner or not case:
        raise UsageError(
            "A re-match needs the authorised examiner (--examiner) and the case reference (--case)."
        )
    if options.log.exists():
        raise UsageError(f"Log {options.log} already exists. Choose another --log.")
    inventory_path = options.inventory or default_inventory_path(options.log)
    if inventory_path.exists():
        raise UsageError(f"Inventory {inventory_path} already exists. Choose another --log.")
    first_run, last_end, head, original_inventory, verified = _original(options)
    evidence = [Path(os.fsdecode(fields_path(e))) for e in first_run.get("evidence", [])]
    refuse_outputs_inside(
        [e for e in evidence if e.exists()],
        [options.log, inventory_path],
        [("log", "--log"), ("inventory (beside the log)", "--log")],
    )
    algorithms = [str(a) for a in first_run.get("algorithms", [])]
    store = HashStore(options.db, readonly=True)
    held = contextlib.ExitStack()
    try:
        lists = store.lists()
        if not lists:
            raise UsageError(f"The hash store {options.db} holds no list.")
        notes = _case_note(first_run, case) + _carried_notes(last_end)
        digest_filter, filter_notes = build_filter(store, lists, algorithms, on_stage)
        notes.extend(filter_notes)
        notes.extend(list_notes(lists))  # as a scan's end record names them
        notes.extend(_lists_gone(verified.last_run or first_run, lists))
        notes.extend(_signature_note(verified))
        held.enter_context(store.pinned(lists))  # the lists of the run record, to its end
        signer = signing.load_signer(options.sign_key) if options.sign_key else None
        # Note: as in scan, the run's own SIGINT/SIGTERM handling starts before
        # its run record, so that a signal just after it still ends the log
        # with an `interrupted` end record (held until the work loop).
        gate = _SignalGate()
        restore = _install_signal_handlers(gate)
        held.callback(restore)
        log = auditlog.create(options.log, signer=signer)
        inventory = Inventory(inventory_path)
        log.append(
            "run",
            {
                "rematch_of": {
                    **path_fields(os.fsencode(os.path.abspath(options.original_log)), "log"),
                    "head": head,
                    **path_fields(os.fsencode(os.path.abspath(original_inventory)), "inventory"),
                    "inventory_sha256": last_end["inventory"]["sha256"],
                    "examiner": first_run.get("examiner"),
                    "case": first_run.get("case"),
                },
                "examiner": storable_text(examiner),
                "case": storable_text(case),
                "authority": storable(options.authority),
                "tool": {
                    "name": TOOL_NAME,
                    "version": __version__,
                    "python": sys.version.split()[0],
                },
                "host": socket.gethostname(),
                "argv": [storable_text(arg) for arg in options.argv],
                "evidence": first_run.get("evidence"),
                # Note: the images the digests were read from, with what
                # --verify-image found of them, as the original's last run (a
                # resume checks them again) recorded: its end counts those.
                "images": (verified.last_run or first_run).get("images", []),
                "algorithms": algorithms,
                "lists": [info.as_log_dict() for info in lists],
                **path_fields(os.fsencode(os.path.abspath(inventory_path)), "inventory"),
                "filter": {"kind": digest_filter.kind, "bytes": digest_filter.memory_bytes},
                # Note: as a scan's, so that verify without the key sees an
                # end record that lost its signature (see auditlog).
                "options": {"signed_by": signer.fingerprint if signer is not None else None},
            },
        )
        counts = _original_counts(last_end)
        recorder = _Recorder(log, inventory, counts, 0, set(), held_by_every_entry(lists))
        started = time.monotonic()
        # Note: read as the bytes whose SHA-256 matched the seal: a journal
        # planted beside it was rolled back into it (the sealed file changed,
        # and a match its files never gave was logged, the log verifying).
        source = Inventory(original_inventory, create=False, sealed=True)
        pending: list[EntryOutcome] = []

        def settle() -> None:
            hashed = [o for o in pending if o.digests is not None]
            hits = match_batch([o.digests for o in hashed], digest_filter, store.lookup)  # type: ignore[misc]
            by_id = {id(o): h for o, h in zip(hashed, hits, strict=True)}
            with gate.critical():
                for outcome in pending:
                    recorder.record(outcome, by_id.get(id(outcome), []))
                pending.clear()
            if progress is not None:
                progress(counts)

        # Note: as in scan, SIGINT/SIGTERM never land inside a log append; the
        # log then ends with an `interrupted` end record and verifies.
        status = "complete"
        try:
            with gate.interruptible():
                for row in source.rows():
                    pending.append(_outcome(row))
                    if len(pending) >= MATCH_BATCH:
                        settle()
                settle()
        except Interrupted as exc:
            status = "interrupted"
            notes.append(f"interrupted by {exc.args[0] if exc.args else 'a signal'}")
        finally:
            source.db.close()
            inventory.close()
        unread = counts.skipped_by_reason.get(Skip.NOT_CANDIDATE.value, 0)
        if unread:
            notes.append(
                f"the original scan ran with --candidates-only: {unread} files were never read "
                "(their size was no notable entry's in its lists), so no list is matched "
                "against them here; to match them against the lists as they are now, scan "
                "the evidence again"
            )
        notes.extend(recorder.notes())
        seconds = time.monotonic() - started
        try:
            append_end_record(log, status, counts, seconds, inventory_path, notes)
        finally:
            # Note: the log is closed (its lock released) even if the end record
            # cannot be written; verify then names it incomplete.
            try:
                log.close()
            finally:
                restore()
    finally:
        held.close()
        store.close()
    return ScanSummary(
        status,
        counts,
        seconds,
        options.log,
        inventory_path,
        notes,
        exit_code_for(status, counts),
        log.head,
    )
