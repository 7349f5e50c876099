"""Job: a report from a match log (verified first) and its inventory, in any report format.

The log is verified before anything is written. A log that fails (tampered,
truncated, no end record) still gets a report, built from whatever lines
still parse, and the report says so first (`Verification.warning`); the
caller exits 1. Only an unreadable log file stops the report.
"""

from __future__ import annotations

import array
import collections
import dataclasses
import datetime
import hashlib
import json
import os
from collections.abc import Callable
from collections.abc import Collection
from collections.abc import Iterable
from collections.abc import Iterator
from collections.abc import Mapping
from pathlib import Path
from typing import BinaryIO
from typing import TypeVar

from matcher import __version__
from matcher import auditlog
from matcher import reports
from matcher.errors import IntegrityError
from matcher.errors import MatcherError
from matcher.errors import UsageError
from matcher.inventory import Inventory
from matcher.inventory import check_seal
from matcher.inventory import default_path
from matcher.models import fields_path
from matcher.reports.model import ErrorItem
from matcher.reports.model import FileEntry
from matcher.reports.model import Hit
from matcher.reports.model import ListUsed
from matcher.reports.model import MatchItem
from matcher.reports.model import RematchOf
from matcher.reports.model import ReportData
from matcher.reports.model import RunInfo
from matcher.reports.model import Verification
from matcher.reports.output import atomic_text
from matcher.reports.output import check_target
from matcher.reports.output import is_stdout
from matcher.scan import refuse_outputs_inside
from matcher.sqlitefiles import scratch_folder

FORMATS = reports.registry.names()


def _verify(
    log: Path, public_key: Path | None
) -> tuple[Verification, tuple[int, str] | None, str | None]:
    """The verification, (size, SHA-256) of the bytes it read (None if it read none), and
    what a report must say of an inventory the end record sealed that was not checked."""
    try:
        found = auditlog.verify(log, public_key_path=public_key)
    except IntegrityError as exc:
        # Note: with what verified before the failure (a cut log's checkpoints
        # are signed so that its authorship can be checked): not zeros.
        return Verification.failed(exc), exc.seen, None
    # Note: as `verify` does, the inventory the end record sealed is checked:
    # one edited after the scan failed `verify` while the report of the same
    # log said "chain intact" (a validator).
    seal = check_seal(log, found.last_end)
    intact = seal.status != "differs"
    # Note: as `verify` says it; the report said "intact" and nothing more of
    # a sealed inventory that was missing (a review).
    unchecked = (
        f"the inventory the log sealed was not checked: it {seal.problem()}"
        if seal.status not in ("matches", "differs", "unsealed")
        else None
    )
    verification = Verification(
        intact,
        "intact" if intact else f"its chain is intact, but its inventory {seal.problem()}",
        None,
        found.lines,
        found.head,
        found.signatures_checked,
        found.signatures,
        found.key_fingerprints,
    )
    return verification, (found.size, found.sha256), unchecked


def _prefix(stream: BinaryIO, size: int | None) -> Iterator[bytes]:
    """The lines of `stream`, up to `size` bytes if given (what a log holds may grow)."""
    for line in stream:
        if size is not None:
            if len(line) >= size:
                yield line[:size]
                return
            size -= len(line)
        yield line


def _record(line: bytes) -> dict[str, object]:
    """One log line (its newline included or not) as a record; ValueError if it is none."""
    try:
        rec = json.loads(line.rstrip(b"\n"))
    except RecursionError as exc:  # JSON nested past Python's limit: not a record
        raise ValueError("nested too deeply") from exc
    if not isinstance(rec, dict):
        raise ValueError("not an object")
    return rec


def _text(rec: Mapping[str, object], key: str, default: str = "") -> str:
    value = rec.get(key)
    return value if isinstance(value, str) else default


def _int(rec: Mapping[str, object], key: str) -> int | None:
    value = rec.get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _dicts(value: object) -> list[Mapping[str, object]]:
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def _run(rec: Mapping[str, object]) -> RunInfo:
    tool = rec.get("tool")
    tool = tool if isinstance(tool, dict) else {}
    algorithms = rec.get("algorithms")
    argv = rec.get("argv")
    return RunInfo(
        seq=_int(rec, "seq") or 0,
        time=_text(rec, "time"),
        examiner=_text(rec, "examiner", "(unknown)"),
        case=_text(rec, "case", "(unknown)"),
        authority=rec["authority"] if isinstance(rec.get("authority"), str) else None,  # type: ignore[arg-type]
        tool_name=_text(tool, "name", "matcher"),
        tool_version=_text(tool, "version", "?"),
        host=rec["host"] if isinstance(rec.get("host"), str) else None,  # type: ignore[arg-type]
        evidence=tuple(fields_path(e) for e in _dicts(rec.get("evidence"))),
        algorithms=tuple(a for a in algorithms if isinstance(a, str))
        if isinstance(algorithms, list)
        else (),
        lists=tuple(
            ListUsed(
                _text(x, "name"),
                _text(x, "role"),
                _text(x, "format"),
                _text(x, "source_sha256"),
                _int(x, "entries"),
            )
            for x in _dicts(rec.get("lists"))
        ),  # fmt: skip
        resume=rec.get("resume") is True,
        argv=tuple(a for a in argv if isinstance(a, str)) if isinstance(argv, list) else (),
        rematch_of=_rematch_of(rec.get("rematch_of")),
        candidates_only_ignored=_text(rec, "candidates_only_ignored") or None,
    )


def _rematch_of(value: object) -> RematchOf | None:
    if not isinstance(value, dict):
        return None
    return RematchOf(
        _text(value, "log", "?"),
        _text(value, "head", "?"),
        _text(value, "inventory", "?"),
        _text(value, "inventory_sha256", "?"),
        _text(value, "examiner") or None,
        _text(value, "case") or None,
    )


def _match(rec: Mapping[str, object]) -> MatchItem:
    digests = rec.get("digests")
    digests = digests if isinstance(digests, dict) else {}
    entry = FileEntry(
        path=fields_path(rec),
        size=_int(rec, "size"),
        digests={str(k): str(v) for k, v in digests.items()},
        mtime=_text(rec, "mtime") or None,
    )
    hits = tuple(
        Hit(
            _text(h, "list"), _text(h, "role"), _text(h, "algorithm"),
            h["entry"] if isinstance(h.get("entry"), dict) else {},  # type: ignore[arg-type]
            _differ(h.get("digests_differ")),
        )
        for h in _dicts(rec.get("matches"))
    )  # fmt: skip
    lists = tuple(
        (_text(x, "list"), _text(x, "role"), _int(x, "entries") or 0)
        for x in _dicts(rec.get("lists_matched"))
    )
    return MatchItem(_int(rec, "seq") or 0, entry, hits, _int(rec, "matches_total"), lists)


def _differ(value: object) -> tuple[str, ...]:
    """A hit's `digests_differ`: the algorithms named, as text."""
    return tuple(str(a) for a in value) if isinstance(value, list) else ()


def _error(rec: Mapping[str, object]) -> ErrorItem:
    return ErrorItem(
        seq=_int(rec, "seq") or 0,
        path=fields_path(rec),
        reason=_text(rec, "reason", "error"),
        kind=_text(rec, "kind") or None,
        errno=_int(rec, "errno"),
        detail=_text(rec, "detail") or None,
    )


def _counts_without_end(
    log: Path, origin: str | None, matches: int, errors: int
) -> tuple[dict[str, object], str, str | None]:
    """The counts of a log whose last run has no end record, where they come from, and
    what a report must say of notable files they count that have no match record.

    Its inventory's tally when the inventory beside it is this log's (it
    notes the SHA-256 of the log's first line, as a resume checks; one
    written before that was noted is trusted, as a resume trusts it); else
    the match and error records.
    """
    inventory = default_path(log)
    records: dict[str, object] = {"notable": matches, "errors": errors}
    if not inventory.is_file():
        return records, "match and error records (no end record and no inventory)", None
    found = _inventory_counts(inventory, origin)
    if found is None:
        said = f"match and error records (no end record; inventory {inventory} unreadable)"
        return records, said, None
    if isinstance(found, str):
        return (
            records,
            (f"match and error records (no end record; inventory {inventory} not used: {found})"),
            None,
        )
    # Note: the log is written first, the inventory committed after it (every
    # half second or so): a run killed in between has match records of files
    # that have no row yet. The report said "notable 0" above "Matches (60)".
    # Each notable file has one match record, so those beyond the inventory's
    # notable rows are its latest files (a resume adds them the same way).
    unrecorded = matches - int(found["notable"])  # type: ignore[call-overload]
    if unrecorded > 0:
        found["notable"] = int(found["notable"]) + unrecorded  # type: ignore[call-overload]
        found["files"] = int(found["files"]) + unrecorded  # type: ignore[call-overload]
        return (
            found,
            (
                f"inventory {inventory} (the log has no end record), and the match records of "
                f"{unrecorded} notable file(s) logged after its last commit"
            ),
            None,
        )
    # Note: the other way round, a log cut after match records the inventory
    # counts (a partial copy) showed "notable 5" above "Matches (2)" with
    # nothing said (a review).
    missing = (
        f"the inventory counts {-unrecorded:,} notable file(s) more than this log has match "
        f"records ({matches:,}): the log was cut after they were logged, and the inventory "
        "names them"
        if unrecorded < 0
        else None
    )
    return found, f"inventory {inventory} (the log has no end record)", missing


def _inventory_counts(path: Path, origin: str | None) -> dict[str, object] | str | None:
    """Verdict counts from the inventory of a log cut short before its end record.

    None for an unreadable inventory; for another log's, why it is not this one's.
    """
    try:
        inventory = Inventory(path, create=False)
    except MatcherError:
        return None
    try:
        noted = inventory.origin()
        if origin is None and (noted is not None or inventory.last_run() >= 0):
            return "it records a run, and this log holds no record"
        if noted is not None and noted != origin:
            return "it notes another log's first record"
        tally: collections.Counter[str] = collections.Counter()
        for row in inventory.rows():
            if row["verdict"] is not None:
                tally[str(row["verdict"])] += 1
                tally["files"] += 1
            elif row["skip"] is not None:
                tally["skipped"] += 1
            else:
                tally["errors"] += 1
    finally:
        inventory.db.close()
    keys = ("files", "notable", "known", "unknown", "skipped", "errors")
    return {k: tally[k] for k in keys}


_Item = TypeVar("_Item", MatchItem, ErrorItem)


class _LoggedRecords(Collection[_Item]):
    """Match (or error) records of a log, read from it again at each iteration.

    A log of a million matches is about a gigabyte, and its records as
    Python objects several; a writer goes through them once or twice, so a
    report's memory does not grow with the log. Each pass checks the log's
    SHA-256 against the bytes the first pass read (those verify read): lines
    appended meanwhile (a resume) are left out, as from the first pass, and a
    log whose reported part changes stops the report, which is then never put
    in place (a file, or stdout: both are kept aside until complete).
    """

    def __init__(
        self,
        log: Path,
        lines: array.array[int],
        size: int,
        sha256: str,
        parse: Callable[[Mapping[str, object]], _Item],
    ):
        self._log = log
        self._lines = lines
        self._parse: Callable[[Mapping[str, object]], _Item] = parse
        self._size = size
        self._sha256 = sha256

    def __len__(self) -> int:
        return len(self._lines)

    def __contains__(self, item: object) -> bool:
        return any(match == item for match in self)

    def __iter__(self) -> Iterator[_Item]:
        changed = UsageError(
            f"The log {self._log} changed while its report was written; no report was made. "
            "Write it again."
        )
        sha256 = hashlib.sha256()
        wanted = iter(self._lines)
        following = next(wanted, None)
        try:
            with auditlog.open_log(self._log) as stream:
                for number, line in enumerate(_prefix(stream, self._size), start=1):
                    sha256.update(line)
                    if number == following:
                        try:
                            item = self._parse(_record(line))
                        except (ValueError, KeyError, TypeError) as exc:
                            raise changed from exc
                        yield item
                        following = next(wanted, None)
        except OSError as exc:
            raise UsageError(f"Cannot read log {self._log}: {exc.strerror or exc}.") from exc
        if following is not None or sha256.hexdigest() != self._sha256:
            raise changed


@dataclasses.dataclass
class _Records:
    """A log's records by kind, gathered line by line; unreadable line numbers noted.

    Match and error records are noted by line number only: `_LoggedRecords`
    reads them again for the writer, so a report never holds them all (a
    failing disk can leave a million error records). Error records are the
    last run's only, as the end record counts them: a resume reads every
    entry that failed again, so an earlier run's errors are superseded
    (counted in `superseded_errors`), whether the entry was read or failed
    again (then it has a record of the last run). `end` is the end record
    closing the last run, None when that run has none (a resume cut short).
    """

    runs: list[RunInfo] = dataclasses.field(default_factory=list)
    match_lines: array.array[int] = dataclasses.field(default_factory=lambda: array.array("q"))
    error_lines: array.array[int] = dataclasses.field(default_factory=lambda: array.array("q"))
    unreadable: list[int] = dataclasses.field(default_factory=list)
    end: Mapping[str, object] | None = None
    superseded_errors: int = 0
    origin: str | None = None  # the SHA-256 of the first line (Inventory.origin)
    unnamed: list[str] = dataclasses.field(default_factory=list)  # MatchItem.unnamed_note
    earlier: list[str] = dataclasses.field(default_factory=list)  # _earlier_notes of each run

    def add(self, line: bytes, number: int) -> None:
        """Sort one line (without its newline) into its kind."""
        if not line:
            return
        if number == 1:
            self.origin = hashlib.sha256(line).hexdigest()
        try:
            rec = _record(line)
            kind = rec.get("type")
            if kind == "run":
                # Note: an end record counts the run it closes: a resume's run
                # left without one is counted as a log with no end record.
                if self.end is not None:
                    self.earlier.extend(_earlier_notes(self.end))
                self.end = None
                self.runs.append(_run(rec))
                self.superseded_errors += len(self.error_lines)
                self.error_lines = array.array("q")
            elif kind == "match":
                match = _match(rec)  # a match record that does not parse is an unreadable line
                self.match_lines.append(number)
                if (note := match.unnamed_note()) is not None:
                    self.unnamed.append(note)
            elif kind == "error":
                _error(rec)  # likewise
                self.error_lines.append(number)
            elif kind == "end":
                self.end = rec
        except (ValueError, KeyError, TypeError):
            self.unreadable.append(number)


def build_report(log: Path, public_key: Path | None = None) -> ReportData:
    """Verify `log` and gather what every report shows.

    Args:
        log: the match log.
        public_key: an Ed25519 public key every signature must verify with.

    Returns:
        The report data; `verification.intact` is False for a log that fails.

    Raises:
        UsageError: the log cannot be read, or the key is not a public key.
    """
    records = _Records()
    # Note: the log is read line by line, never whole (see _LoggedRecords),
    # and only as far as verify read it: a report shows the bytes verified,
    # intact or not (a log may grow meanwhile: a resume).
    sha256 = hashlib.sha256()
    size = 0
    try:
        verification, verified, unchecked = _verify(log, public_key)
        with auditlog.open_log(log) as stream:
            lines = _prefix(stream, verified[0] if verified else None)
            for number, line in enumerate(lines, start=1):
                sha256.update(line)
                size += len(line)
                records.add(line.rstrip(b"\n"), number)
    except OSError as exc:
        raise UsageError(f"Cannot read log {log}: {exc.strerror or exc}.") from exc
    if verified is not None and (size, sha256.hexdigest()) != verified:
        raise UsageError(
            f"The log {log} changed between its verification and its report; write it again."
        )
    runs, end = records.runs, records.end
    matches = _LoggedRecords(log, records.match_lines, size, sha256.hexdigest(), _match)
    errors = _LoggedRecords(log, records.error_lines, size, sha256.hexdigest(), _error)
    status, counts, source = "incomplete", {}, ""
    found_caveats: list[str] = [unchecked] if unchecked is not None else []
    if end is not None:
        status = _text(end, "status", "?")
        found = end.get("counts")
        counts = dict(found) if isinstance(found, dict) else {}
        source = f"end record (seq {_int(end, 'seq')})"
    else:
        counts, source, missing = _counts_without_end(
            log, records.origin, len(matches), len(errors)
        )
        if missing is not None:
            found_caveats.append(missing)
    now = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
    return ReportData(
        log=str(log),
        log_sha256=sha256.hexdigest(),
        generated=now,
        generator_version=__version__,
        verification=verification,
        runs=tuple(runs),
        matches=matches,
        errors=errors,
        status=status,
        counts=counts,
        counts_source=source,
        started=runs[0].time if runs else None,
        ended=_text(end, "time") or None if end is not None else None,
        unreadable_lines=tuple(records.unreadable),
        notes=_notes(end),
        superseded_errors=records.superseded_errors,
        read_caveats=(*found_caveats, *records.unnamed, *records.earlier),
    )


def _earlier_notes(end: Mapping[str, object]) -> list[str]:
    """The notes of an end record a later run (a resume) follows, each said as that run's.

    Note: a report gave the last end record's notes only: a resumed scan's first
    run, stopped by SIGTERM after reading 1,428 files as another user (their
    access times may have moved), was reported as having read 572 (a review).
    """
    ended = f"an earlier run of this log (its end record at seq {_int(end, 'seq')}, "
    ended += f"{_text(end, 'status', '?')}) noted"
    return [f"{ended}: {note}" for note in _notes(end)]


def _notes(end: Mapping[str, object] | None) -> tuple[str, ...]:
    """The end record's notes (what the scan had to say: image checks, crossings...)."""
    found = end.get("notes") if end is not None else None
    return tuple(str(n) for n in found) if isinstance(found, list) else ()


def refuse_output(data: ReportData, output: Path | None) -> None:
    """Refuse a report path inside an evidence root, or over the log or its inventory.

    A report to stdout is kept aside in the temp folder until it is complete,
    so that folder is refused inside an evidence root instead.

    Raises:
        UsageError: naming the output and what it would overwrite or lie in.
    """
    roots = _real_roots(os.fsdecode(r) for run in data.runs for r in run.evidence)
    if is_stdout(output):
        spool = scratch_folder()
        if spool is None:
            return
        try:
            refuse_outputs_inside(roots, [spool])
        except UsageError as exc:
            raise UsageError(
                f"A report to stdout is kept aside in the temp folder until it is complete, "
                f"and {spool} lies inside evidence: point TMPDIR elsewhere. ({exc})"
            ) from exc
        return
    assert output is not None
    _refuse_own_files(Path(data.log), output)
    refuse_outputs_inside(roots, [output])


def _refuse_own_files(log: Path, output: Path) -> None:
    """Refuse a report path that is `log` or its inventory.

    Raises:
        UsageError: naming the output.
    """
    for own in (log, default_path(log)):
        if os.path.realpath(output) == os.path.realpath(own):
            raise UsageError(f"Output {output} is the log or its inventory; choose another path.")


def _first_run_roots(log: Path) -> list[Path]:
    """The evidence roots the first line of `log` names, read alone and unverified.

    Only to refuse an output early: none when that line is no run record.
    """
    try:
        with open(log, "rb") as stream:
            rec = json.loads(stream.readline(1 << 20))
        return _real_roots(os.fsdecode(fields_path(e)) for e in _dicts(rec.get("evidence")))
    except (OSError, ValueError, KeyError, AttributeError):
        return []


def _real_roots(paths: Iterable[str]) -> list[Path]:
    """Evidence roots a log names, once each, leaving out any no path can be (a NUL in it).

    Note: a forged run record's root holding a NUL made the output check
    fail inside os.path.realpath, said as a fault of matcher itself; no file
    lies inside such a root.
    """
    return [Path(p) for p in dict.fromkeys(paths) if "\0" not in p]


def write_report(
    log: Path,
    format_name: str,
    output: Path | None = None,
    public_key: Path | None = None,
    overwrite: bool = False,
) -> ReportData:
    """Verify `log`, then write its report in `format_name` to `output` (stdout if None).

    The file appears under its name only when complete (temp file, fsync,
    rename), mode 0600. An existing `output` is refused unless `overwrite`.

    Returns:
        The report data (check `verification.intact`).

    Raises:
        UsageError: unreadable log, output path refused, or the output cannot be written.
    """
    writer = reports.registry.get(format_name)
    if not is_stdout(output):
        assert output is not None
        if not overwrite and os.path.lexists(output):
            # Note: an existing file that is the log, or lies in the evidence, was
            # refused with "give --force to replace it", and then again, with
            # --force, for what it is.
            _refuse_own_files(log, output)
            refuse_outputs_inside(_first_run_roots(log), [output])
        check_target(output, overwrite)  # before the log is read: it may take long
    data = build_report(log, public_key)
    refuse_output(data, output)
    try:
        with atomic_text(
            output,
            newline=writer.NEWLINE,
            errors="backslashreplace",
            spool=True,
            overwrite=overwrite,
        ) as stream:
            writer.write(data, stream)
    except OSError as exc:
        where = "to stdout" if is_stdout(output) else output
        raise UsageError(f"Cannot write report {where}: {exc.strerror or exc}.") from exc
    return data
