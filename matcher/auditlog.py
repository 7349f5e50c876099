"""The match log: append-only, hash-chained JSON Lines; write, verify, resume.

Format. One JSON object per line, UTF-8, each line ending in "\\n", in the
canonical form of `matcher.signing.canonical_bytes` (no spaces, no ASCII
escaping): `seq` (from 0), `type`, `time` (UTC `YYYY-MM-DDTHH:MM:SS.ffffffZ`)
and `prev` (hex SHA-256 of the previous line's bytes without its newline; 64
zeros on line 1) first, then the record's fields in the order given. `verify`
rejects a non-canonical line, so each record has exactly one byte form.

Grammar. One or more segments `run (match | error | skip | checkpoint)* end`;
`end.status` is `complete` or `interrupted`. A later `run` must carry
`"resume": true` and may follow only an `interrupted` end, or a record other
than `end` (a crash) when it also carries `"crash_recovery": {"after_seq": N,
"torn_tail": ...}`. A log not closed by an `end` is incomplete: `verify`
raises `IncompleteLogError` at its last line.

Seals (made by `matcher.signing.seal`). The chain covers every line but the
last, so an `end` record also carries `self_sha256` (its own digest, last
key): it catches damage to the final line, not a deliberate edit, which only
a signature or a head noted elsewhere reveals. With a signer, `end` and
`checkpoint` records carry `key_fingerprint` and `signature`: base64 Ed25519
over `b"matcher-log-signature-v1\\n"` + the record's canonical bytes without
`signature` and `self_sha256`, so it covers `seq`, `prev` (the chain head
before it) and the counts. A `run` record's `options.signed_by` (a key
fingerprint, or null) says how its `end` and `checkpoint` records are signed,
and every run of a log that names one names the same.

Writing. One `os.write` per record (looped on short writes), no buffering in
the process, fsync after each `end` and `checkpoint`; the file is created 0600
with O_EXCL and held under an exclusive `flock`. When a write fails (ENOSPC,
EROFS, EIO...), a partly written line is truncated away so the log stays
verifiable to its last complete line, and `LogWriteError` names the log and
errno; if even truncation fails, the writer refuses further records.

Torn lines and resume. `open_for_resume` verifies the chain, allowing a
missing `end`. Bytes after the final newline are a torn line, left by a crash
or power loss. They are neither trusted nor deleted: they are copied to a side
file `<log>.torn-<seq>` (0600, `seq` being the number the torn record would
have had) and fsynced, and only then is the log truncated to its last complete
line. The resume `run` record's `crash_recovery.torn_tail` gives the side
file's name and the torn bytes' count and SHA-256, so the chain commits to
what was set aside.
"""

from __future__ import annotations

import codecs
import collections
import dataclasses
import datetime
import errno
import fcntl
import hashlib
import os
import re
import stat
from collections.abc import Callable
from collections.abc import Iterator
from collections.abc import Mapping
from typing import BinaryIO

from matcher import TOOL_NAME
from matcher import signing
from matcher.digests import DIGEST_SIZES
from matcher.errors import IntegrityError
from matcher.errors import LogWriteError
from matcher.errors import UsageError
from matcher.models import fields_path
from matcher.timestamps import utc_ns

StrPath = signing.StrPath
Clock = Callable[[], datetime.datetime]
RECORD_TYPES = frozenset({"run", "match", "error", "skip", "checkpoint", "end"})
END_STATUSES = frozenset({"complete", "interrupted"})
SIGNED_TYPES = frozenset({"end", "checkpoint"})
ENVELOPE = ("seq", "type", "time", "prev")
RESERVED = frozenset({*ENVELOPE, "key_fingerprint", "signature", "self_sha256"})
ZERO_HASH = "0" * 64
MAX_LINE_BYTES = 16 << 20
_HEX64 = re.compile(r"[0-9a-f]{64}", re.ASCII)
_TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", re.ASCII)


class IncompleteLogError(IntegrityError):
    """The log is intact but has no final `end` record (cut short, resumable)."""


class TornLineError(IntegrityError):
    """The last line was cut short mid-write (crash, power cut, disk full).

    `scan --resume` sets the torn bytes aside and continues; nothing else does.
    """


class _Grammar:
    """Which record may come next: (run body* end)+ with the resume rules."""

    def __init__(self) -> None:
        self.phase = "start"  # then "open" (inside a segment) or "ended"
        self.last_type: str | None = None
        self.last_status: str | None = None

    def check(self, rec: Mapping[str, object]) -> str | None:
        kind, status = rec.get("type"), rec.get("status")
        resume, recovery = rec.get("resume", False), rec.get("crash_recovery")
        if not isinstance(kind, str) or kind not in RECORD_TYPES:
            return f"unknown record type {kind!r}; known: {', '.join(sorted(RECORD_TYPES))}"
        if kind != "run":
            if self.phase == "start":
                return f"the first record must be a run record, not {kind}"
            if self.phase == "ended":
                return f"{kind} record after an end record; only a resume run may follow it"
            if kind == "end" and (not isinstance(status, str) or status not in END_STATUSES):
                return f"end status {status!r} is not one of {sorted(END_STATUSES)}"
        elif not isinstance(resume, bool) or not isinstance(recovery, dict | None):
            return "run record: resume must be true/false and crash_recovery an object"
        elif self.phase == "ended" and not resume:
            return "a run after an end record must be a resume (resume: true)"
        elif self.phase == "ended" and self.last_status != "interrupted":
            return f"a run cannot resume after an end with status {self.last_status!r}"
        elif self.phase == "open" and not (resume and recovery is not None):
            return (
                f"run record after an unfinished run (no end after its {self.last_type} "
                "record); only a resume with crash_recovery may follow a crash"
            )
        return None

    def advance(self, rec: Mapping[str, object]) -> None:
        self.last_type = str(rec["type"])
        self.phase = "ended" if self.last_type == "end" else "open"
        if self.last_type == "end":
            self.last_status = str(rec["status"])


@dataclasses.dataclass
class _ScanState:
    lines: int = 0
    head: str = ZERO_HASH
    good_size: int = 0
    torn: bytes | None = None
    grammar: _Grammar = dataclasses.field(default_factory=_Grammar)
    types: collections.Counter[str] = dataclasses.field(default_factory=collections.Counter)
    signed: int = 0
    checked: int = 0
    fingerprints: set[str] = dataclasses.field(default_factory=set)
    expect_head: str | None = None
    head_line: int | None = None
    origin: str | None = None  # the SHA-256 of the first line
    scan_log: bool = False  # the first run record is matcher's own (a scan or re-match)
    matches: int = 0  # match records so far
    run_errors: int = 0  # error records since the last run record
    image_failures: int = 0  # images the last run record says failed --verify-image
    # The signing key the last run record names (options.signed_by: a
    # fingerprint, or None for an unsigned run); `signer_named` is False
    # after a run record that names none (a log written before it did).
    signed_by: str | None = None
    signer_named: bool = False
    log_signer: tuple[str | None] | None = None  # what the first run naming one named
    rematch: bool = False  # the last run record is a re-match's (it has no --resume)
    # The line being checked: its signing key's fingerprint (None: unsigned), and
    # whether the public key checked its signature.
    seal: tuple[str | None, bool] = (None, False)
    last_seal: tuple[str | None, bool] = (None, False)  # the seal of the last line verified
    # A line's prev did not chain: the line before it may be the one changed.
    previous_unsure: bool = False
    latest_time: str = ""  # the latest record time so far (fixed format: compared as text)
    # Records whose time is earlier than an earlier record's, and the first:
    # (its seq, its time, the latest time before it).
    times_back: int = 0
    first_time_back: tuple[int, str, str] | None = None
    # A resume's own key (the public half of --sign-key): every record signed
    # with it is checked, as verify --public-key would (records of no key or
    # another key are left to the resume's own checks of the run).
    own_key: signing.Verifier | None = None
    signed_through: int = 0  # the line of the last record whose signature was checked
    key_given: bool = False  # verify checks signatures with a public key


def _check_line(body: bytes, st: _ScanState, key: signing.Verifier | None) -> dict[str, object]:
    """Check one line against everything before it; raise IntegrityError without line."""
    rec = signing.decode_record(body)
    if tuple(rec)[:4] != ENVELOPE:
        missing = ", ".join(k for k in ENVELOPE if k not in rec) or "none"
        raise IntegrityError(f"record must start with seq, type, time, prev (missing: {missing})")
    if type(rec["seq"]) is not int or rec["seq"] != st.lines:
        raise IntegrityError(
            f"seq is {rec['seq']!r}, expected {st.lines}: a line before it was deleted, "
            "inserted, duplicated or moved"
        )
    if rec["prev"] != st.head:
        st.previous_unsure = True  # the line before may be the one changed
        raise IntegrityError(
            f"prev is not the SHA-256 of line {st.lines}: that line was changed, "
            "or lines were inserted, deleted or moved"
        )
    if (
        not isinstance(rec["time"], str)
        or not _TIME.fullmatch(rec["time"])
        or not _real_time(rec["time"])
    ):
        raise IntegrityError(f"time {rec['time']!r} is not UTC ISO 8601 with microseconds")
    if rec["time"] < st.latest_time:
        # Note: not a failure (a clock set back by NTP, or a resume on another
        # host, is no tampering), but said: on a timeline, a run that "ended"
        # before it started reads as backdating.
        st.times_back += 1
        if st.first_time_back is None:
            st.first_time_back = (rec["seq"], rec["time"], st.latest_time)
    else:
        st.latest_time = rec["time"]
    reason = st.grammar.check(rec)
    if reason is not None:
        raise IntegrityError(reason)
    kind = str(rec["type"])
    verifier = key
    if verifier is None and st.own_key is not None:
        if rec.get("key_fingerprint") == st.own_key.fingerprint:
            verifier = st.own_key
    fp = signing.check_seal(rec, verifier, sign=kind in SIGNED_TYPES, digest=kind == "end")
    if kind == "run":
        _note_signer(rec, st)
    elif kind in SIGNED_TYPES and st.signer_named and fp != st.signed_by:
        signed = f"is signed by key {fp}" if fp else "is not signed"
        raise IntegrityError(
            f"{kind} record {signed}, but its run record names {_key(st.signed_by)}: a log is "
            "signed throughout by one key or not at all (a signature was removed or added)"
        )
    # Note: "checked" only where a signature was (an unsigned line checked by its chain
    # alone, taken as checked, kept a doubtful line before a chain break in the count).
    st.seal = fp, key is not None and fp is not None  # counted once the line passes (_records)
    return rec


def _note_signer(rec: Mapping[str, object], st: _ScanState) -> None:
    """Note the signing key a run record names, for its end and checkpoint records.

    Note: without the public key, only this shows that a signed run's last
    end record lost its signature: that record is sealed by its own digest
    alone, which anyone can compute again after deleting the signature.
    """
    options = rec.get("options")
    st.signer_named = isinstance(options, dict) and "signed_by" in options
    if not st.signer_named:
        return
    assert isinstance(options, dict)
    signed_by = options["signed_by"]
    if signed_by is not None and not isinstance(signed_by, str):
        raise IntegrityError("run record: options.signed_by must be a key fingerprint or null")
    if st.log_signer is not None and st.log_signer != (signed_by,):
        raise IntegrityError(
            f"run record names {_key(signed_by)}, but an earlier run of this log names "
            f"{_key(st.log_signer[0])}: a log is signed throughout by one key or not at all"
        )
    st.signed_by, st.log_signer = signed_by, (signed_by,)


def _key(fingerprint: str | None) -> str:
    return f"signing key {fingerprint}" if fingerprint else "no signing key"


_COUNTED = ("entries", "files", "skipped", "errors", "notable", "known", "unknown")


_HEX = re.compile(r"[0-9a-f]+", re.ASCII)


def _check_match_fields(rec: Mapping[str, object]) -> None:
    """A match record of matcher's own scan gives its fields in the form the log's contract says.

    Note: a forged unsigned log (its chain computed again) with a size of -5,
    an md5 of "ZZ..." or a 99th month verified, and its reports failed their
    own schemas (DFXML, CASE) with exit 0.
    """
    size = rec.get("size")
    if size is not None and (type(size) is not int or size < 0):
        raise IntegrityError(f"match record: size {size!r} is not a byte count")
    mtime = rec.get("mtime")
    if mtime is not None and not (isinstance(mtime, str) and _real_time(mtime)):
        # (Any year: README says a year past 9999 has more digits, one before 1 a minus.)
        raise IntegrityError(f"match record: mtime {mtime!r} is no UTC date and time of day")
    digests = rec.get("digests")
    if not isinstance(digests, dict) or not digests:
        raise IntegrityError("match record: digests must be an object of algorithm: hex digest")
    for algorithm, value in digests.items():
        width = DIGEST_SIZES.get(str(algorithm))
        if not (isinstance(value, str) and _HEX.fullmatch(value)) or (
            width is not None and len(value) != 2 * width
        ):
            raise IntegrityError(
                f"match record: its {algorithm} digest {str(value)[:80]!r} is not lowercase hex"
                + (f" of {2 * width} digits" if width is not None else "")
            )


def _real_time(text: str) -> bool:
    """True for a UTC time as the log writes it (utc_text) that names a real day and time."""
    try:
        utc_ns(text)
    except ValueError:
        return False
    return True


def _check_counts(rec: Mapping[str, object], st: _ScanState) -> None:
    """An end record's counts add up, and agree with the records before it.

    For the logs of matcher's scans and re-matches (their first run record
    names the tool, and changing it changes every line after it): the end
    records of a log written otherwise through this module (a test, a
    library user) are not a scan's.

    The end record is sealed by its own digest, which anyone can compute
    again: without this, one edited end line (notable 0 beside a match
    record) verified. Counts are the scan's whole, over every run of the
    log: its match records are each notable file once. Errors are the last
    run's (a resume reads failed files again), so they equal the error
    records since its run record.
    """
    kind = rec["type"]
    if kind == "run":
        if st.lines == 0:
            tool = rec.get("tool")
            st.scan_log = isinstance(tool, dict) and tool.get("name") == TOOL_NAME
        st.run_errors = 0
        st.rematch = "rematch_of" in rec
        checks = [image.get("verify") for image in _objects(rec.get("images"))]
        st.image_failures = sum(isinstance(c, dict) and c.get("match") is False for c in checks)
    elif kind == "match":
        st.matches += 1
        if st.scan_log:
            _check_match_fields(rec)
    elif kind == "error":
        st.run_errors += 1
    if kind != "end" or not st.scan_log:
        return
    counts = rec.get("counts")
    if not isinstance(counts, dict) or not all(
        type(counts.get(name)) is int and counts[name] >= 0 for name in _COUNTED
    ):
        raise IntegrityError(f"end record: counts must give {', '.join(_COUNTED)} as whole numbers")
    n = {name: int(counts[name]) for name in _COUNTED}
    if n["files"] + n["skipped"] + n["errors"] != n["entries"]:
        raise IntegrityError(
            f"end record counts do not add up: files {n['files']} + skipped {n['skipped']} "
            f"+ errors {n['errors']} is not entries {n['entries']}"
        )
    if n["notable"] + n["known"] + n["unknown"] != n["files"]:
        raise IntegrityError(
            f"end record counts do not add up: notable {n['notable']} + known {n['known']} "
            f"+ unknown {n['unknown']} is not files {n['files']}"
        )
    if n["notable"] != st.matches:
        raise IntegrityError(
            f"end record counts {n['notable']} notable file(s), but the log holds "
            f"{st.matches} match record(s) before it"
        )
    if n["errors"] != st.run_errors:
        raise IntegrityError(
            f"end record counts {n['errors']} error(s), but its run logged "
            f"{st.run_errors} error record(s)"
        )
    _check_details(counts, n, st)


_DETAILS = ("bytes", "empty", "image_mismatches")
_BREAKDOWNS = (("skipped_by_reason", "skipped"), ("errors_by_reason", "errors"))


def _check_details(counts: Mapping[str, object], n: Mapping[str, int], st: _ScanState) -> None:
    """The rest of an end record's counts agree with its totals, as every run's do.

    Each by-reason breakdown sums to its total; no count is negative; an
    empty file is an unknown one (it never matches); bytes are hashed files';
    an image failed --verify-image only as its run record says. A count a
    record lacks is not asked for (a log of an older matcher).
    """
    details: dict[str, int] = {}
    for name in _DETAILS:
        value = counts.get(name, 0)
        if type(value) is not int or value < 0:
            raise IntegrityError(f"end record: counts.{name} must be a whole number, not {value!r}")
        details[name] = value
    for name, total in _BREAKDOWNS:
        if name not in counts:
            continue
        found = counts[name]
        if not isinstance(found, dict) or not all(
            type(v) is int and v >= 0 for v in found.values()
        ):
            raise IntegrityError(
                f"end record: counts.{name} must give each reason's count as a whole number"
            )
        if sum(found.values()) != n[total]:
            raise IntegrityError(
                f"end record counts do not add up: {name} sums to {sum(found.values())}, "
                f"not {total} {n[total]}"
            )
    hashed, empty, mismatches = (details[name] for name in _DETAILS)
    if empty > n["unknown"]:
        raise IntegrityError(
            f"end record counts {empty} empty file(s) but {n['unknown']} unknown: an empty "
            "file is counted unknown (it never matches)"
        )
    if hashed and not n["files"]:
        raise IntegrityError(f"end record counts {hashed} bytes hashed, but no file")
    if mismatches > st.image_failures:
        raise IntegrityError(
            f"end record counts {mismatches} image(s) failing --verify-image, but its run "
            f"record gives {st.image_failures} such check"
        )


def _objects(value: object) -> list[Mapping[str, object]]:
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def _records(
    stream: BinaryIO, st: _ScanState, key: signing.Verifier | None = None
) -> Iterator[dict[str, object]]:
    """Check and yield each complete line; a torn last line is left in st.torn."""
    while raw := stream.readline(MAX_LINE_BYTES + 1):
        line = st.lines + 1
        if not raw.endswith(b"\n"):
            if len(raw) > MAX_LINE_BYTES:
                raise IntegrityError(f"line is longer than {MAX_LINE_BYTES} bytes", line)
            st.torn = raw
            return
        try:
            rec = _check_line(raw[:-1], st, key)
            _check_counts(rec, st)
        except IntegrityError as exc:
            raise IntegrityError(str(exc), line) from exc.__cause__
        # Note: a line's signature counts once the whole line verified: a log
        # that fails is reported with what verified before its bad line.
        fp, checked = st.last_seal = st.seal
        if fp is not None:
            st.signed, st.checked = st.signed + 1, st.checked + checked
            st.fingerprints.add(fp)
            if checked:
                st.signed_through = line
        st.grammar.advance(rec)
        st.lines, st.head = line, hashlib.sha256(raw[:-1]).hexdigest()
        if line == 1:
            st.origin = st.head
        if st.head == st.expect_head:
            st.head_line = line
        st.good_size += len(raw)
        st.types[str(rec["type"])] += 1
        yield rec


def _torn_error(st: _ScanState) -> IntegrityError:
    torn = st.torn or b""
    message = f"torn last line: {len(torn)} bytes after the final newline"
    # Note: a crash tears a record; a copy can also take away line feeds. The
    # latter is named, so that the original log is looked for before a resume
    # sets whole records aside (and a finished log's head is lost from it).
    if b"\r" in torn:
        # Note: --resume refuses such a log (no crash puts a CR in a record): not
        # a torn line then, which batch would try to resume.
        return IntegrityError(
            f"{message}, holding carriage returns: were its line ends converted (a text "
            "tool, a copy)? Verify the original log: --resume refuses this one",
            st.lines + 1,
        )
    if _whole_record(torn):
        lost = " that read as a whole record with no line feed: was it lost in a copy?"
    else:
        return TornLineError(f"{message} (--resume sets them aside)", st.lines + 1)
    return TornLineError(
        f"{message},{lost} Compare with the original log first: --resume would set them aside",
        st.lines + 1,
    )


def _whole_record(raw: bytes) -> bool:
    """True when `raw` is one canonical record (its chain unchecked) with a record type."""
    try:
        value = signing.decode_record(raw)
    except IntegrityError:
        return False
    return value.get("type") in RECORD_TYPES


@dataclasses.dataclass(frozen=True)
class VerifyReport:
    """What `verify` found in an intact log (`signed`: every end/checkpoint is)."""

    lines: int
    runs: int
    matches: int
    errors: int
    ends: int
    last_status: str | None
    signed: bool
    signatures_checked: int
    head: str
    skips: int = 0
    checkpoints: int = 0
    key_fingerprints: tuple[str, ...] = ()
    expected_head_line: int | None = None
    # The bytes verified (the file as it was opened): a report reads exactly these.
    size: int = 0
    sha256: str = ""
    # The first `run` and the last `end` record among those bytes, as checked
    # (a re-match takes its original run from here: no second, unchecked read).
    # Not part of `verify --json`, nor of equality or hashing (a report stays hashable).
    first_run: dict[str, object] | None = dataclasses.field(
        default=None, repr=False, compare=False, metadata={"json": False}
    )
    last_end: dict[str, object] | None = dataclasses.field(
        default=None, repr=False, compare=False, metadata={"json": False}
    )
    signatures: int = 0  # signed records, checked or not
    # The last `run` record (a resume's: what it found of the evidence, such as
    # --verify-image's checks, which each run makes again). As first_run.
    last_run: dict[str, object] | None = dataclasses.field(
        default=None, repr=False, compare=False, metadata={"json": False}
    )
    # Records whose time is earlier than an earlier record's (the clock went
    # back), and the first of them: (seq, its time, the latest time before it).
    times_back: int = 0
    first_time_back: tuple[int, str, str] | None = None


class _Seen:
    """A log's bytes as verify reads them: no further than its size when opened, hashed.

    A log may grow while it is verified (a running resume); what was checked
    is then exactly (`size`, `sha256`), which a report reads again.
    """

    def __init__(self, stream: BinaryIO):
        self._stream = stream
        self._left = os.fstat(stream.fileno()).st_size
        self.size = 0
        self._sha256 = hashlib.sha256()

    def readline(self, limit: int) -> bytes:
        data = self._stream.readline(min(limit, self._left)) if self._left > 0 else b""
        self._left -= len(data)
        self.size += len(data)
        self._sha256.update(data)
        return data

    def finish(self) -> tuple[int, str]:
        """Read the rest (after a bad line), and give (size, SHA-256) of all of it."""
        while self.readline(1 << 20):
            pass
        return self.size, self._sha256.hexdigest()


def open_log(path: str | os.PathLike[str]) -> BinaryIO:
    """A log opened for reading, refused unless it is a regular file.

    Note: opened without blocking first: a FIFO given as a log would
    otherwise wait for a writer forever (verify, report and rematch hung).

    Raises:
        OSError: it cannot be opened, or is not a regular file (EISDIR, EINVAL).
    """
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        mode = os.fstat(fd).st_mode
        if stat.S_ISDIR(mode):
            raise IsADirectoryError(errno.EISDIR, "not a regular file (a folder)", os.fspath(path))
        if not stat.S_ISREG(mode):
            raise OSError(
                errno.EINVAL, "not a regular file (a FIFO, socket or device)", os.fspath(path)
            )
        fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) & ~os.O_NONBLOCK)
        return open(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def verify(
    path: StrPath, public_key_path: StrPath | None = None, expect_head: str | None = None
) -> VerifyReport:
    """Check a whole log: chain, canonical form, grammar, seals and signatures.

    Args:
        path: the log file.
        public_key_path: a PEM public key: every `end` and `checkpoint` must
            then carry a signature that verifies with it (else: not checked).
        expect_head: a chain head noted outside the log (the scan prints it):
            some line must hash to it. A hash chain alone cannot show that
            whole runs were cut off the end, after an earlier `end` record;
            a head kept elsewhere can. Lines after it (a later --resume) are
            allowed and counted in `expected_head_line`.

    Returns:
        Counts and the head (SHA-256 of the last line) of an intact log.

    Raises:
        IntegrityError: at the first bad line (1-based, in `.line`); an empty
            log fails at line 1.
        IncompleteLogError: the log is intact but not closed by an `end`.
        IntegrityError: no line hashes to `expect_head` (truncated or another log).
        UsageError: the public key file is unreadable or not an Ed25519 key.
        OSError: the log itself cannot be opened or read.
    """
    key = signing.load_verifier(public_key_path) if public_key_path is not None else None
    if expect_head is not None:
        if not _HEX64.fullmatch(expect_head.lower()):
            raise UsageError(f"Expected head {expect_head!r} is not 64 hex digits.")
        expect_head = expect_head.lower()
    st = _ScanState(expect_head=expect_head, key_given=key is not None)
    with open_log(path) as stream:
        seen = _Seen(stream)
        first_run: dict[str, object] | None = None
        last_run: dict[str, object] | None = None
        last_end: dict[str, object] | None = None
        try:
            for record in _records(seen, st, key):  # type: ignore[arg-type]
                kind = record["type"]
                if kind == "end":
                    last_end = record
                elif kind == "run":
                    first_run = first_run or record
                    last_run = record
            _check_whole(st, expect_head)
        except IntegrityError as exc:
            exc.seen = seen.finish()
            exc.verified = _verified_before(st)
            if isinstance(exc, (IncompleteLogError, TornLineError)) and _being_written(stream):
                still = IncompleteLogError(
                    "log is still being written: a matcher process holds it (a run under "
                    "way, with no end record yet); verify it once that run has ended",
                    exc.line,
                )
                still.seen, still.verified = exc.seen, exc.verified
                raise still from exc
            if exc.line == 1 and (converted := _converted(stream)) is not None:
                # Note: never a torn log (batch resumes those, which would set
                # the whole file aside and write a new log in its place).
                copy = IntegrityError(f"{converted}? Verify the original file", 1)
                copy.seen, copy.verified = exc.seen, exc.verified
                raise copy from exc
            if exc.line == 1 and _not_a_log(stream):
                # Note: still a failure to verify (exit 1), as for a log that was
                # destroyed: the two cannot be told apart, and a log cut to its
                # first bytes must never read as anything but tampered. Never a
                # torn or incomplete log either: those are resumed (batch), and
                # resuming would set this file's bytes aside and write a log in it.
                hint = IntegrityError(
                    f"{exc.reason}; no line of this file is a log record (each starts "
                    '{"seq":), as far as its first '
                    f"{NOT_A_LOG_SCAN_BYTES >> 20} MiB go: the log was destroyed, or this "
                    "is not a match log (check the file name)",
                    1,
                )
                hint.seen, hint.verified = exc.seen, exc.verified
                raise hint from exc
            raise
        size, sha256 = seen.finish()
    n = st.types
    return VerifyReport(
        st.lines, n["run"], n["match"], n["error"], n["end"], st.grammar.last_status,
        st.signed == n["end"] + n["checkpoint"], st.checked, st.head, n["skip"],
        n["checkpoint"], tuple(sorted(st.fingerprints)), st.head_line, size, sha256,
        first_run, last_end, st.signed, last_run, st.times_back, st.first_time_back,
    )  # fmt: skip


def _verified_before(st: _ScanState) -> tuple[int, int, int, tuple[str, ...], int, bool]:
    """What verified before a failure: (records, signed, signatures checked, key fingerprints,
    the line of the last record whose signature was checked, whether a public key was given).

    Note: a line whose prev does not chain may follow the one that was
    changed: that line is not counted, unless its signature was checked (a
    signature checked shows the line as written).
    """
    records, signed, checked = st.lines, st.signed, st.checked
    fp, was_checked = st.last_seal
    if st.previous_unsure and records and not was_checked:
        records -= 1
        signed -= fp is not None
    fingerprints = tuple(sorted(st.fingerprints))
    return records, signed, checked, fingerprints, st.signed_through, st.key_given


def _being_written(stream: BinaryIO) -> bool:
    """True when a process holds the log's write lock (a scan appending to it); Linux only.

    Note: read from /proc/locks, without taking the lock: even a moment's
    shared lock here would refuse a scan or resume starting at that moment.
    """
    st = os.fstat(stream.fileno())
    key = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}"
    try:
        with open("/proc/locks", encoding="ascii", errors="replace") as locks:
            for line in locks:
                fields = line.split()  # "1: FLOCK ADVISORY WRITE pid maj:min:inode 0 EOF"
                if fields[1:2] == ["FLOCK"] and fields[3:4] == ["WRITE"] and key in fields:
                    return True
    except OSError:
        pass
    return False


# How far `_not_a_log` looks for a record before it concludes there is none.
NOT_A_LOG_SCAN_BYTES = 64 << 20
_RECORD_START = b'{"seq":'


def foreign_log(path: StrPath) -> str | None:
    """Why the existing file at `path` is no log to continue, for a new scan's refusal; else None.

    "Use --resume" is advice for a log, not for case notes given as --log by
    mistake, nor for a log re-encoded by a text tool (which --resume refuses).
    None for a log, or a file that cannot be read (refused as a log is).
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return None
    with open(fd, "rb") as stream:
        converted = _converted(stream)
        if converted is not None:
            return (
                f"{converted}? Choose another --log; to continue that scan, resume the "
                "original log."
            )
        if _not_a_log(stream):
            return (
                "is not a match log (no line of it starts as a log record does): choose "
                "another --log."
            )
    return None


def ends_complete(path: StrPath) -> bool:
    """True when the last line of the log at `path` is a `complete` end record (unverified).

    For advice only (a new scan's refusal of an existing --log): "Use
    --resume to continue it", said of a complete log, led to a resume that
    refuses ("nothing to resume"). Reads the file's tail, never all of it.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return False
    with open(fd, "rb") as stream:
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                return False
            size = stream.seek(0, os.SEEK_END)
            stream.seek(max(0, size - 65536))
            last = stream.read().rstrip(b"\n").rsplit(b"\n", 1)[-1]
            record = signing.decode_record(last)
        except (OSError, IntegrityError):
            return False
    return record.get("type") == "end" and record.get("status") == "complete"


def _not_a_log(stream: BinaryIO) -> bool:
    """True for a regular file with bytes of which no line starts as a record does.

    Note: asked only when the first line fails, to say so in the failure: a
    report, a list or an image given by mistake holds no record at all,
    where a log whose first line was damaged still holds some after it, and
    an empty log (a scan killed before its first record) or one torn in its
    first record is a log cut short. Only the first NOT_A_LOG_SCAN_BYTES are
    read (an image given by mistake is not read whole), from the stream
    verify opened, rewound: a FIFO or device is never opened again or read.
    """
    try:
        if not stat.S_ISREG(os.fstat(stream.fileno()).st_mode):
            return False
        stream.seek(0)
        budget = NOT_A_LOG_SCAN_BYTES
        first = True
        while budget > 0 and (raw := stream.readline(min(budget, MAX_LINE_BYTES + 1))):
            if _looks_like_a_record(raw):
                return False
            first = False
            budget -= len(raw)
        return not first  # an empty file is an empty log
    except OSError:
        return False


def _converted(stream: BinaryIO) -> str | None:
    """What a copy through a text tool did to a log, when its first line shows it; else None.

    Note: asked only when the first line fails. An editor or a text tool can
    re-encode a log (UTF-16), put a byte order mark before it, or turn its
    line feeds into carriage returns: its records are all there, so the
    original file is what to look for (CR LF is named as each line is read:
    see signing.decode_record). Only a regular file is read, from the stream
    verify opened, rewound, as far as its first line goes.
    """
    try:
        if not stat.S_ISREG(os.fstat(stream.fileno()).st_mode):
            return None
        stream.seek(0)
        first = stream.readline(MAX_LINE_BYTES + 1)
    except OSError:
        return None
    start = _RECORD_START.decode("ascii")
    for codec, bom in (("utf-16-le", codecs.BOM_UTF16_LE), ("utf-16-be", codecs.BOM_UTF16_BE)):
        if first.removeprefix(bom).startswith(start.encode(codec)):
            return (
                "the file is in UTF-16, not UTF-8: was the log re-encoded (a text editor or "
                "tool, a copy through Windows)"
            )
    if first.startswith(codecs.BOM_UTF8 + _RECORD_START):
        return (
            "the file starts with a UTF-8 byte order mark (EF BB BF), which a log never has: "
            "was one added (a text editor or tool, a copy through Windows)"
        )
    record, cr, rest = first.partition(b"\r")
    if cr and rest not in (b"", b"\n") and _whole_record(record):
        return (
            "its line ends are CR, not LF (a carriage return, no line feed, ends its first "
            "record): were the log's line ends converted (a text tool, a copy)"
        )
    return None


def _looks_like_a_record(raw: bytes) -> bool:
    """A line that starts as every record does, or a record torn within those bytes."""
    return raw.startswith(_RECORD_START) or _RECORD_START.startswith(raw)


def _check_whole(st: _ScanState, expect_head: str | None) -> None:
    """What only the whole log can show: a torn tail, no line, a missing head or end."""
    if st.torn is not None:
        raise _torn_error(st)
    if st.lines == 0:
        raise IntegrityError("empty log", 1)
    if expect_head is not None and st.head_line is None:
        raise IntegrityError(
            f"no line hashes to the expected head {expect_head}: records were cut off "
            "the end of this log, or it is not the log that head was noted from",
            st.lines + 1,
        )
    if st.grammar.phase != "ended":
        then = (
            "a re-match has no --resume: run it again with a new --log"
            if st.rematch
            else "--resume continues it"
        )
        raise IncompleteLogError(
            f"log is incomplete: no end record after this {st.grammar.last_type} record "
            f"(the run was cut short; {then})",
            st.lines,
        )


def read_records(path: StrPath) -> Iterator[dict[str, object]]:
    """Yield each record of a log, checking the chain as it goes.

    A missing final `end` is accepted (an interrupted run can be reported);
    a torn last line is not.

    Raises:
        IntegrityError: at the first bad line, including a torn last line.
        OSError: the log cannot be opened or read.
    """
    st = _ScanState()
    with open_log(path) as stream:
        yield from _records(stream, st)
    if st.torn is not None:
        raise _torn_error(st)


@dataclasses.dataclass(frozen=True)
class ResumeState:
    """What `open_for_resume` found, and what the resume run must record."""

    path: str
    lines: int
    head: str
    ended: bool
    last_status: str | None
    torn_tail: dict[str, object] | None
    matched_paths: frozenset[bytes]
    last_run: dict[str, object] | None
    # Every match record, by path (the first, should a path repeat).
    matches: dict[bytes, dict[str, object]] = dataclasses.field(default_factory=dict)
    # The SHA-256 of the log's first line (None for a log without a line):
    # what ties an inventory to its log (Inventory.origin).
    origin: str | None = None
    # The inventory the log's last record (an `end`) sealed: {"path", "sha256"};
    # None when the log does not end with an end record (a run cut short
    # after it may have changed the inventory since).
    sealed_inventory: dict[str, object] | None = None

    @property
    def needs_crash_recovery(self) -> bool:
        """True when the previous segment was not cleanly closed by an `end` line."""
        return not self.ended or self.torn_tail is not None

    def run_fields(self) -> dict[str, object]:
        """The fields the resume `run` record must start with (its own follow)."""
        fields: dict[str, object] = {"resume": True}
        if self.needs_crash_recovery:
            after = self.lines - 1 if self.lines else None
            fields["crash_recovery"] = {"after_seq": after, "torn_tail": self.torn_tail}
        return fields


def _code(exc: OSError) -> str:
    return f"{errno.errorcode.get(exc.errno or 0, exc.errno)}: {exc.strerror}"


class LogWriter:
    """Appends records to one locked log (made by `create` or `open_for_resume`)."""

    def __init__(
        self,
        fd: int,
        path: str,
        signer: signing.Signer | None,
        clock: Clock | None,
        resume: ResumeState | None = None,
    ) -> None:
        self._fd: int | None = fd
        self.path, self._signer = path, signer
        self._clock = clock or (lambda: datetime.datetime.now(datetime.UTC))
        self._resume, self._grammar, self._broken = resume, _Grammar(), False
        if resume is not None and resume.lines:
            self._grammar.phase = "ended" if resume.ended else "open"
            self._grammar.last_status = resume.last_status
        self._seq = resume.lines if resume else 0
        self._head = resume.head if resume else ZERO_HASH
        self._size = os.fstat(fd).st_size

    @property
    def head(self) -> str:
        """Hex SHA-256 of the last line written (64 zeros before the first)."""
        return self._head

    @property
    def seq(self) -> int:
        """The seq the next record will get."""
        return self._seq

    def append(self, type: str, fields: Mapping[str, object]) -> dict[str, object]:
        """Write one record as one line, sealing and signing it as its type requires.

        Args:
            type: the record type (one of RECORD_TYPES).
            fields: the record's own fields, in order; no reserved key.

        Returns:
            The record exactly as written.

        Raises:
            LogWriteError: the line could not be written (the log stays
                verifiable up to its last complete line) or synced.
            ValueError: a programmer error: a reserved field, a record the
                grammar forbids here, or values JSON cannot hold.
        """
        if self._fd is None:
            raise ValueError(f"log {self.path} is closed")
        clash = RESERVED & fields.keys()
        if clash:
            raise ValueError(f"reserved field(s) {sorted(clash)} in a {type} record")
        now = self._clock().astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        record: dict[str, object] = {"seq": self._seq, "type": type, "time": now}
        record.update({"prev": self._head}, **fields)
        if self._resume is not None:
            wanted = self._resume.run_fields()
            if type != "run" or any(record.get(k) != v for k, v in wanted.items()):
                raise ValueError(f"the first record of a resume must be a run with {wanted}")
        reason = self._grammar.check(record)
        if reason is not None:
            raise ValueError(reason)
        signing.seal(record, self._signer, sign=type in SIGNED_TYPES, digest=type == "end")
        body = signing.canonical_bytes(record)
        self._write(body + b"\n")
        self._grammar.advance(record)
        self._resume, self._seq = None, self._seq + 1
        self._head = hashlib.sha256(body).hexdigest()
        if type in SIGNED_TYPES:
            self.sync()
        return record

    def checkpoint(self, counts: Mapping[str, int]) -> dict[str, object]:
        """Append a `checkpoint` record with the counts so far (signed with a signer).

        Raises:
            LogWriteError: as for `append`.
        """
        return self.append("checkpoint", {"counts": dict(counts)})

    def sync(self) -> None:
        """Flush the log to stable storage (fsync).

        Raises:
            LogWriteError: the device refused the flush.
        """
        if self._fd is not None:
            try:
                os.fsync(self._fd)
            except OSError as exc:
                raise self._error("could not be synced", exc) from exc

    def still_named(self) -> bool:
        """True while the log's path still names the file written (not removed or replaced)."""
        if self._fd is None:
            return False
        try:
            written, named = os.fstat(self._fd), os.stat(self.path)
        except OSError:
            return False
        return written.st_nlink > 0 and (written.st_dev, written.st_ino) == (
            named.st_dev,
            named.st_ino,
        )

    def close(self) -> None:
        """Sync and close the log, releasing its lock; closing twice is harmless.

        Raises:
            LogWriteError: the final sync failed (the file is closed anyway).
        """
        if self._fd is not None:
            try:
                self.sync()
            finally:
                os.close(self._fd)
                self._fd = None

    def _write(self, data: bytes) -> None:
        assert self._fd is not None
        if self._broken:
            raise LogWriteError(
                f"Log {self.path} has a torn last line from an earlier write failure. "
                "Continue it with --resume."
            )
        view, done = memoryview(data), 0
        try:
            while done < len(data):
                written = os.write(self._fd, view[done:])
                if written <= 0:
                    raise OSError(errno.EIO, "write() wrote nothing")
                done += written
        except BaseException as exc:
            # Note that a KeyboardInterrupt can land between two short writes too.
            if done:
                try:
                    os.ftruncate(self._fd, self._size)
                except OSError:
                    self._broken = True
            if isinstance(exc, OSError):
                raise self._error("could not be written", exc) from exc
            raise
        self._size += done

    def _error(self, what: str, exc: OSError) -> LogWriteError:
        state = "its last line is torn" if self._broken else f"it is intact to line {self._seq}"
        return LogWriteError(
            f"Log {self.path} {what} ({_code(exc)}); {state}. "
            "Fix the device or free space, then continue the run with --resume."
        )


def _open_locked(path: StrPath, flags: int) -> tuple[int, str]:
    name = os.fsdecode(path)
    try:
        fd = os.open(path, flags | os.O_APPEND | os.O_CLOEXEC, 0o600)
    except FileExistsError as exc:
        raise UsageError(
            f"Log {name} already exists. Use --resume to continue it, or choose another --log."
        ) from exc
    except FileNotFoundError as exc:
        if not flags & os.O_CREAT:
            raise UsageError(
                f"Log {name} does not exist. Start a new log without --resume."
            ) from exc
        raise LogWriteError(f"Log {name} could not be created ({_code(exc)}).") from exc
    except OSError as exc:
        raise LogWriteError(f"Log {name} could not be opened ({_code(exc)}).") from exc
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        # Note: a FIFO (opened read-write, which does not block) would hang the resume's read.
        os.close(fd)
        raise UsageError(f"Log {name} is not a regular file (a FIFO, socket or device).")
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError as exc:
        os.close(fd)
        raise UsageError(f"Log {name} is in use by another matcher process. Wait for it.") from exc
    return fd, name


def create(
    path: StrPath, signer: signing.Signer | None = None, *, clock: Clock | None = None
) -> LogWriter:
    """Create a new log file (0600, never over an existing file) and lock it.

    Args:
        path: where to create the log.
        signer: signs `end` and `checkpoint` records when given.
        clock: returns the time to stamp (for tests); the UTC clock by default.

    Returns:
        A writer at seq 0; its first record must be a `run`.

    Raises:
        UsageError: the file already exists, or another process holds it.
        LogWriteError: the file could not be created.
    """
    fd, name = _open_locked(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL)
    # Note that a restrictive umask could otherwise leave the owner unable to --resume.
    os.fchmod(fd, 0o600)
    _sync_directory_of(name)
    return LogWriter(fd, name, signer, clock)


def _sync_directory_of(name: str) -> None:
    """Make a new directory entry durable; best effort (not every filesystem allows it)."""
    try:
        parent = os.open(os.path.dirname(os.path.abspath(name)), os.O_RDONLY | os.O_CLOEXEC)
        try:
            os.fsync(parent)
        finally:
            os.close(parent)
    except OSError:
        pass


def open_for_resume(
    path: StrPath,
    signer: signing.Signer | None = None,
    *,
    clock: Clock | None = None,
    check_run: Callable[[ResumeState], None] | None = None,
) -> tuple[LogWriter, ResumeState]:
    """Verify a log (a missing end allowed), set a torn last line aside, reopen it.

    The writer's first record must be a `run` starting with the fields of
    `ResumeState.run_fields()`.

    Args:
        path: the log to continue.
        signer: signs `end` and `checkpoint` records of the resumed run.
        clock: as for `create`.
        check_run: called with what was found (its `torn_tail` not yet
            known) before the log is changed in any way (a torn line set
            aside): whatever it raises refuses the resume with the log
            untouched.

    Returns:
        The writer, and what was found (paths already logged as matches, ...).

    Raises:
        IntegrityError: the existing chain is broken (at its first bad line).
        UsageError: no such log, another process holds it, its last run is
            complete, a side file with other bytes is in the way, or the
            file is no log at all (bytes that cannot start a record).
        LogWriteError: the log or the side file could not be opened or written.
    """
    fd, name = _open_locked(path, os.O_RDWR)
    try:
        state = _resume_state(fd, name, check_run, signer)
        return LogWriter(fd, name, signer, clock, resume=state), state
    except BaseException:
        os.close(fd)
        raise


def _records_of_a_log(stream: BinaryIO, st: _ScanState, name: str) -> Iterator[dict[str, object]]:
    """_records, refusing a file that is no log at all as such (a UsageError).

    Note: "the log does not verify: line 1: not valid JSON" was said of a
    file given as --log by mistake (case notes), which the refusal of a new
    scan's existing --log had sent to --resume.
    """
    try:
        yield from _records(stream, st)
    except IntegrityError as exc:
        converted = _converted(stream) if exc.line == 1 else None
        if converted is not None:
            # Note: named as verify names it (it was "not a match log").
            raise UsageError(
                f"Cannot resume {name}: {converted}? Nothing was changed. Resume from the "
                "original log."
            ) from exc
        if exc.line == 1 and _not_a_log(stream):
            raise UsageError(
                f"{name} is not a match log (no line of it starts as a log record does); "
                "nothing was changed. Check the --log path."
            ) from exc
        raise


def _resume_state(
    fd: int,
    name: str,
    check_run: Callable[[ResumeState], None] | None,
    signer: signing.Signer | None = None,
) -> ResumeState:
    # Note: with the resume's key, the signatures it made before are checked:
    # a log whose signed record was altered (its chain recomputed) was resumed
    # and signed again, a log that can never verify with that key.
    own_key = signer.verifier() if signer is not None else None
    st, matched, last_run = _ScanState(own_key=own_key), dict[bytes, dict[str, object]](), None
    sealed: dict[str, object] | None = None
    with open(os.dup(fd), "rb") as stream:
        for rec in _records_of_a_log(stream, st, name):
            if rec["type"] == "run":
                last_run, sealed = rec, None
            elif rec["type"] == "end":
                inventory = rec.get("inventory")
                sealed = inventory if isinstance(inventory, dict) else None
            elif rec["type"] == "match":
                try:
                    matched.setdefault(fields_path(rec), rec)
                except (KeyError, ValueError) as exc:
                    # Without its path a match cannot be kept exactly once on resume.
                    raise IntegrityError(
                        "match record without a usable path: this log cannot be resumed",
                        st.lines,
                    ) from exc
    if st.grammar.phase == "ended" and st.grammar.last_status != "interrupted":
        raise UsageError(f"Log {name} ends with a complete run. There is nothing to resume.")
    if st.lines == 0 and st.torn is not None and not _looks_like_a_record(st.torn):
        # Note: setting these bytes aside would empty the file and write a log in it.
        raise UsageError(
            f"{name} is not a match log (its bytes do not start as a log record does); "
            "nothing was changed. Check the --log path."
        )
    if st.torn is not None and b"\r" in st.torn:
        # Note: a record never holds a raw CR (JSON escapes it), so no crash tears
        # one in: these are records whose line ends were converted. Set aside,
        # the whole log (CR-only line ends) went to a side file, a new log in its place.
        raise UsageError(
            f"{name} holds carriage returns after its last line feed: its line ends were "
            "converted (a copy through a text tool), not torn by a crash; nothing was "
            "changed. Resume from the original log."
        )
    found = ResumeState(
        name,
        st.lines,
        st.head,
        st.grammar.phase == "ended",
        st.grammar.last_status,
        None,
        frozenset(matched),
        last_run,
        matched,
        st.origin,
        sealed if st.grammar.phase == "ended" else None,
    )
    if check_run is not None:
        check_run(found)
    if st.torn is None:
        return found
    return dataclasses.replace(found, torn_tail=_set_aside(fd, name, st))


def _set_aside(fd: int, name: str, st: _ScanState) -> dict[str, object]:
    torn, side = st.torn or b"", f"{name}.torn-{st.lines}"
    try:
        try:
            signing.write_private_file(side, torn)
        except FileExistsError:
            # Note that an earlier resume may have died between saving and truncating.
            with open(side, "rb") as old:
                if old.read() != torn:
                    raise UsageError(
                        f"Side file {side} already exists with other bytes. "
                        "Move it away, then run --resume again."
                    ) from None
        # Note: the side file's name is made durable before the log is cut,
        # so that a power loss in between cannot lose the torn bytes.
        _sync_directory_of(side)
        os.ftruncate(fd, st.good_size)
        os.fsync(fd)
    except OSError as exc:
        raise LogWriteError(
            f"Torn tail of log {name} could not be set aside in {side} ({_code(exc)})."
        ) from exc
    digest = hashlib.sha256(torn).hexdigest()
    return {"bytes": len(torn), "sha256": digest, "saved_to": os.path.basename(side)}
