"""Plain data the report writers take: a verified log's runs, matches, errors, summary.

Writers never read the log, the store or the evidence themselves: the job
`matcher.reporting` builds a `ReportData` and hands it over. Paths are bytes
end to end; each writer decides how its format carries names that are not
UTF-8 (and says so in its docstring).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection
from collections.abc import Mapping

from matcher.digests import DIGEST_SIZES
from matcher.errors import IntegrityError
from matcher.models import path_fields
from matcher.reports.text import display_name

# Note: the records a report holds one of per match are slotted (no
# __dict__ each): a report keeps every match of its log in memory.
# The digest columns every tabular report has, in canonical order.
DIGEST_COLUMNS: tuple[str, ...] = tuple(DIGEST_SIZES)
# The option behind a reason the scan skips an entry for, where one is.
_SKIP_OPTIONS = {"excluded": "--exclude", "too-large": "--max-size"}


@dataclasses.dataclass(frozen=True, slots=True)
class FileEntry:
    """One hashed file: exact path bytes, size, mtime (UTC ISO 8601), hex digests."""

    path: bytes
    size: int | None
    digests: Mapping[str, str]
    mtime: str | None = None

    def as_dict(self) -> dict[str, object]:
        """The log's JSON form: path (+ path_b64), size, mtime, digests."""
        return {
            **path_fields(self.path),
            "size": self.size,
            "mtime": self.mtime,
            "digests": dict(self.digests),
        }


@dataclasses.dataclass(frozen=True, slots=True)
class Hit:
    """One list entry a file matched; `entry` is the log's verbatim entry metadata."""

    list_name: str
    role: str
    algorithm: str
    entry: Mapping[str, object]
    # Digests the entry gives otherwise than the file has them (the log's `digests_differ`).
    differ: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, object]:
        """The log's JSON form of one matching entry."""
        fields: dict[str, object] = {
            "list": self.list_name,
            "role": self.role,
            "algorithm": self.algorithm,
            "entry": dict(self.entry),
        }
        if self.differ:
            fields["digests_differ"] = list(self.differ)
        return fields


@dataclasses.dataclass(frozen=True, slots=True)
class MatchItem:
    """A `match` record of the log (`seq` is its line number less one)."""

    seq: int
    file: FileEntry
    hits: tuple[Hit, ...]
    # A record that stops naming entries (past 1 MiB of them): how many matched in
    # all, and every list they come from as (list, role, entries).
    matches_total: int | None = None
    lists_matched: tuple[tuple[str, str, int], ...] = ()

    def as_dict(self) -> dict[str, object]:
        """The match as the log has it, without the chain envelope."""
        fields = {
            "seq": self.seq,
            **self.file.as_dict(),
            "matches": [h.as_dict() for h in self.hits],
        }
        if self.matches_total is not None:
            fields["matches_total"] = self.matches_total
        if self.lists_matched:
            fields["lists_matched"] = [
                {"list": name, "role": role, "entries": n} for name, role, n in self.lists_matched
            ]
        return fields

    def unnamed_note(self) -> str | None:
        """What a report must say of a record that does not name every entry matched; else None."""
        total = self.matches_total
        if total is None or total <= len(self.hits):
            return None
        if self.lists_matched:
            by_list = "; by list: " + ", ".join(
                f"{name!r} ({role}) {n:,}" for name, role, n in self.lists_matched
            )
        else:
            by_list = (
                "; the log does not say which lists the others are in (an earlier matcher "
                "wrote it): the store names them"
            )
        return (
            f"the match record of {display_name(self.file.path)} (seq {self.seq}) names "
            f"{len(self.hits):,} of the {total:,} list entries its digests matched (a record "
            f"stops naming entries past 1 MiB of them; the hash store holds every one){by_list}"
        )


@dataclasses.dataclass(frozen=True, slots=True)
class ErrorItem:
    """An `error` record: an entry that could not be read."""

    seq: int
    path: bytes
    reason: str
    kind: str | None = None
    errno: int | None = None
    detail: str | None = None

    def as_dict(self) -> dict[str, object]:
        """The error as the log has it, without the chain envelope."""
        return {
            "seq": self.seq,
            **path_fields(self.path),
            "kind": self.kind,
            "reason": self.reason,
            "errno": self.errno,
            "detail": self.detail,
        }


@dataclasses.dataclass(frozen=True)
class ListUsed:
    """A hash list a run used, with the SHA-256 of its source file."""

    name: str
    role: str
    format: str
    source_sha256: str
    entries: int | None

    def as_dict(self) -> dict[str, object]:
        """The run record's form of a list."""
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class RematchOf:
    """What a re-match run matched again: a scan's log (its head) and that scan's inventory."""

    log: str
    head: str
    inventory: str
    inventory_sha256: str
    examiner: str | None
    case: str | None

    def as_dict(self) -> dict[str, object]:
        """The run record's `rematch_of`."""
        return dataclasses.asdict(self)

    def describe(self) -> str:
        """One sentence: which log and inventory, and that no evidence was read."""
        return (
            f"a re-match of log {self.log} (head {self.head}): the files of its inventory "
            f"{self.inventory} (SHA-256 {self.inventory_sha256}) matched against the lists "
            "as they are now; the evidence was not read again"
        )


@dataclasses.dataclass(frozen=True)
class RunInfo:
    """A `run` record (the first of a log, or a resume; `rematch_of` for a re-match)."""

    seq: int
    time: str
    examiner: str
    case: str
    authority: str | None
    tool_name: str
    tool_version: str
    host: str | None
    evidence: tuple[bytes, ...]
    algorithms: tuple[str, ...]
    lists: tuple[ListUsed, ...]
    resume: bool
    argv: tuple[str, ...]
    rematch_of: RematchOf | None = None
    # Why the run did not follow --candidates-only (a full scan instead), if so.
    candidates_only_ignored: str | None = None

    def as_dict(self) -> dict[str, object]:
        """The run's fields as JSON (evidence roots lossless; `rematch_of` for a re-match)."""
        return {
            "seq": self.seq,
            "time": self.time,
            "examiner": self.examiner,
            "case": self.case,
            "authority": self.authority,
            "tool": {"name": self.tool_name, "version": self.tool_version},
            "host": self.host,
            "evidence": [path_fields(e) for e in self.evidence],
            "algorithms": list(self.algorithms),
            "lists": [x.as_dict() for x in self.lists],
            "resume": self.resume,
            "argv": list(self.argv),
            **({"rematch_of": self.rematch_of.as_dict()} if self.rematch_of else {}),
            **(
                {"candidates_only_ignored": self.candidates_only_ignored}
                if self.candidates_only_ignored is not None
                else {}
            ),
        }


@dataclasses.dataclass(frozen=True)
class Verification:
    """What checking the log found. `intact` is False for a tampered or incomplete log.

    The figures (records, signatures, keys) are of the records that verified:
    for a log that failed, those before its first bad line (`line`).
    """

    intact: bool
    message: str
    line: int | None
    records: int
    head: str | None
    signatures_checked: int = 0
    signatures: int = 0  # signed records in the log, checked or not
    key_fingerprints: tuple[str, ...] = ()
    signed_through: int = 0  # the line of the last record whose signature verified
    key_given: bool = False  # signatures were checked with a public key

    @classmethod
    def failed(cls, exc: IntegrityError) -> Verification:
        """A log that failed, with what verified before its bad line (auditlog.verify says)."""
        records, signed, checked, keys, through, key = exc.verified or (0, 0, 0, (), 0, False)
        return cls(False, str(exc), exc.line, records, None, checked, signed, keys, through, key)

    def warning(self) -> str | None:
        """The one-line warning a report must open with, or None for an intact log."""
        if self.intact:
            return None
        return (
            f"WARNING: this log FAILED verification ({self.message}); do not rely on it"
            f"{self.verified_before()}"
        )

    def outcome(self) -> str:
        """What checking the log found, in a phrase: the chain and its head, or the failure."""
        if not self.intact:
            # Note: a chain that verified whole has its head, though the inventory it
            # sealed differs: "no head" was said of it too (a review).
            head = f"its chain's head {self.head}" if self.head else "no head"
            return f"FAILED verification ({self.message}): {head}{self.verified_before()}"
        return f"chain intact, {self.records} records{self.signatures_verified()}, head {self.head}"

    def verified_before(self) -> str:
        """For a log that failed: '; N records before it verified' and its signatures; else ''.

        Note: a log cut short is signed at checkpoints so that its authorship
        can still be checked: every report says what verified, not only JSON.
        """
        if self.intact or not self.records:
            return ""
        keys = ", ".join(self.key_fingerprints)
        if self.signatures_checked:
            signed = f", {self.signatures_checked} signature(s) verified with key {keys}"
            if self.signed_through < self.records:
                # Note: a chain anyone who can write the log can compute again:
                # "verified" alone invited trust in the very records a forger
                # changed after the last signature.
                signed += (
                    f", the last at line {self.signed_through}: the records after it are "
                    "held by their chain alone, not by a signature"
                )
        elif self.signatures:
            signed = f", {self.signatures} signed by key {keys} (signatures NOT checked)"
        elif self.key_given:
            signed = ", by their chain alone: no signature verified before it"
        else:
            signed = ""
        # Note: an incomplete log fails at its last line, which verified too;
        # a log whose sealed inventory changed (no line) verified whole.
        held = self.line is None or self.line <= self.records
        where = "it holds" if held else "before it"
        return f"; the {self.records} record(s) {where} verified{signed}"

    def signatures_verified(self) -> str:
        """', N signature(s) verified with key FP' when the public key checked them, else ''."""
        if not self.signatures_checked:
            return ""
        keys = ", ".join(self.key_fingerprints) or "unnamed"
        return f", {self.signatures_checked} signature(s) verified with key {keys}"

    def signature_note(self) -> str | None:
        """What a report of a signed log, made without the public key, must say; else None.

        The chain shows that no line changed after the head; anyone can
        write a new chain, though: only the signatures show whose it is.
        """
        if not self.intact or not self.signatures or self.signatures_checked:
            return None
        keys = ", ".join(self.key_fingerprints)
        return (
            f"signed ({self.signatures} signature(s), key {keys}), but the signatures were "
            "NOT checked: the report was made without --public-key, and an intact chain "
            "does not show who wrote the log"
        )


@dataclasses.dataclass(frozen=True)
class ReportData:
    """Everything a report shows: where it came from, the runs, matches, errors, summary.

    `summary` holds the last `end` record's status and counts (or what could
    be counted without one, with `status` "incomplete"); `counts_source`
    says where the counts came from. `matches` and `errors` may be read from
    the log again at each iteration: a writer goes through each as few times
    as it can. `errors` are the last run's error records, those the counts
    count: a resume reads the entries of earlier ones again.
    """

    log: str
    log_sha256: str
    generated: str
    generator_version: str
    verification: Verification
    runs: tuple[RunInfo, ...]
    matches: Collection[MatchItem]
    errors: Collection[ErrorItem]
    status: str
    counts: Mapping[str, object]
    counts_source: str
    started: str | None = None
    ended: str | None = None
    unreadable_lines: tuple[int, ...] = ()
    notes: tuple[str, ...] = ()  # the last end record's notes, as the scan wrote them
    superseded_errors: int = 0  # error records of earlier runs (a resume read them again)
    # What reading the log found that a reader must know: each match record that
    # does not name every entry matched (unnamed_note); a cut log's missing records.
    read_caveats: tuple[str, ...] = ()

    @property
    def run(self) -> RunInfo | None:
        """The first run record (the original scan), if the log has one."""
        return self.runs[0] if self.runs else None

    def per_run(self, field: str) -> str:
        """A run field's value; when a resume changed it (a handover), each run's, by seq."""
        values = [(run.seq, getattr(run, field) or "(none given)") for run in self.runs]
        if len({value for _, value in values}) <= 1:
            return str(values[0][1]) if values else "?"
        return "; ".join(f"{value} (run at seq {seq})" for seq, value in values)

    def superseded_note(self) -> str | None:
        """What a report listing errors says of the earlier runs' error records; else None."""
        n = self.superseded_errors
        if not n:
            return None
        return (
            f"{n} error record(s) of earlier runs not listed: the run after them (a resume) "
            "read those entries again; the errors listed are those the counts count"
        )

    def rematches(self) -> list[RematchOf]:
        """What the log's runs matched again, if it is a re-match's."""
        return [run.rematch_of for run in self.runs if run.rematch_of is not None]

    def count(self, name: str) -> int | None:
        """One integer count from the summary, or None."""
        value = self.counts.get(name)
        return value if isinstance(value, int) and not isinstance(value, bool) else None

    def caveats(self) -> list[str]:
        """What a reader must know beyond the matches: a report that lists only
        matches (CSV) opens with these, so that a file not read (an error, or
        skipped: each reason's count), a scan not finished or a signature not
        checked is never read as "nothing else"."""
        notes = [f"the log is {r.describe()}" for r in dict.fromkeys(self.rematches())]
        if (signature := self.verification.signature_note()) is not None:
            notes.append(f"the log is {signature}")
        # Note: from the run record, which a log cut short has (not its end
        # record's notes): --candidates-only showed as asked for in argv alone.
        notes.extend(
            dict.fromkeys(
                run.candidates_only_ignored
                for run in self.runs
                if run.candidates_only_ignored is not None
                and run.candidates_only_ignored not in self.notes
            )
        )
        if self.status != "complete":
            notes.append(
                f"the scan is not complete (status {self.status}): entries it had not "
                "reached yet are in no count"
            )
        notes.extend(self.read_caveats)
        errors = self.count("errors")
        if errors:
            notes.append(
                f"{errors} entr{'y' if errors == 1 else 'ies'} could not be read (errors): "
                "neither matched nor known nor unknown"
            )
        mismatched = self.count("image_mismatches")
        if mismatched:
            notes.append(
                f"{mismatched} E01 image(s) did not match the hash stored in them "
                "(--verify-image): digests read from them may be wrong (see the notes)"
            )
        skipped = self.skipped()
        not_read = skipped.pop("not-candidate", 0)
        if not_read:
            notes.append(
                f"{not_read} file(s) not read (--candidates-only: no notable entry of their "
                "size): never matched against any list"
            )
        if skipped:
            total = sum(skipped.values())
            reasons = ", ".join(
                f"{n} {reason}" + (f" ({_SKIP_OPTIONS[reason]})" if reason in _SKIP_OPTIONS else "")
                for reason, n in skipped.items()
            )
            notes.append(
                f"{total} entr{'y' if total == 1 else 'ies'} skipped (never read, so matched "
                f"against no list): {reasons}"
            )
        return notes

    def skipped(self) -> dict[str, int]:
        """The entries the scan skipped, by reason, as the summary counts them (none: {})."""
        found = self.counts.get("skipped_by_reason")
        if not isinstance(found, Mapping):
            return {}
        return {
            str(reason): n
            for reason, n in found.items()
            if isinstance(n, int) and not isinstance(n, bool) and n > 0
        }
