"""Tests for matcher.auditlog: chain, grammar, tamper detection, failures and resume."""

from __future__ import annotations

import codecs
import dataclasses
import datetime
import errno
import hashlib
import itertools
import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import HealthCheck
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st

from matcher import auditlog
from matcher import signing
from matcher.errors import IntegrityError
from matcher.errors import LogWriteError
from matcher.errors import UsageError
from matcher.models import path_fields

T0 = datetime.datetime(2024, 1, 2, 3, 4, 5, 6, tzinfo=datetime.UTC)
ZERO = "0" * 64


def clock() -> Callable[[], datetime.datetime]:
    ticks = itertools.count()
    return lambda: T0 + datetime.timedelta(seconds=next(ticks))


def write_log(
    path: Path, signer: signing.Signer | None = None, *, end: str | None = "complete"
) -> list[bytes]:
    """Lines: 1 run, 2 match, 3 error, 4 checkpoint, 5 match, 6 end."""
    log = auditlog.create(path, signer, clock=clock())
    log.append("run", {"examiner": "Ann", "case": "C-1"})
    log.append("match", {**path_fields(b"ev/a.bin"), "size": 3})
    log.append("error", {**path_fields(b"ev/\xff.bin"), "reason": "unreadable"})
    log.checkpoint({"files": 2})
    log.append("match", {**path_fields(b"ev/b.bin"), "size": 5})
    if end is not None:
        log.append("end", {"status": end, "counts": {"files": 3, "notable": 2}})
    log.close()
    return path.read_bytes().splitlines(keepends=True)


def chained(records: list[dict[str, object]]) -> bytes:
    """Serialise records with correct seq/prev (and end seals): grammar-only faults."""
    out, prev = [], ZERO
    for seq, fields in enumerate(records):
        rec: dict[str, object] = {"seq": seq, "type": fields["type"]}
        rec.update(time="2024-01-02T03:04:05.000006Z", prev=prev)
        rec.update({k: v for k, v in fields.items() if k != "type"})
        if rec["type"] == "end":
            body = json.dumps(rec, ensure_ascii=False, separators=(",", ":")).encode()
            rec["self_sha256"] = hashlib.sha256(body).hexdigest()
        line = json.dumps(rec, ensure_ascii=False, separators=(",", ":")).encode()
        prev = hashlib.sha256(line).hexdigest()
        out.append(line + b"\n")
    return b"".join(out)


def first_bad_line(path: Path, data: bytes, key: Path | None = None) -> IntegrityError:
    path.write_bytes(data)
    with pytest.raises(IntegrityError) as caught:
        auditlog.verify(path, key)
    return caught.value


@pytest.fixture
def keys(tmp_path: Path) -> tuple[Path, Path]:
    signing.generate_keypair(tmp_path / "k.pem", tmp_path / "k.pub")
    return tmp_path / "k.pem", tmp_path / "k.pub"


# Chain and file ----------------------------------------------------------------


def test_chain_known_answer(tmp_path: Path) -> None:
    lines = write_log(tmp_path / "log.jsonl")
    assert lines[0] == (
        b'{"seq":0,"type":"run","time":"2024-01-02T03:04:05.000006Z","prev":"' + ZERO.encode()
        + b'","examiner":"Ann","case":"C-1"}\n'
    )  # fmt: skip
    # Note that this value comes from `sha256sum` over the line above, not from matcher.
    line1_sha = "06a7db1b81cfe857d19b9b38d824187f7902fd5815f4d9079d6dd44e2e8edce4"
    assert hashlib.sha256(lines[0][:-1]).hexdigest() == line1_sha
    second = json.loads(lines[1])
    assert list(second)[:4] == ["seq", "type", "time", "prev"]
    assert second["prev"] == line1_sha
    for before, after in itertools.pairwise(lines):
        assert json.loads(after)["prev"] == hashlib.sha256(before[:-1]).hexdigest()
    assert [json.loads(x)["seq"] for x in lines] == list(range(6))
    assert all(x.endswith(b"\n") and x.count(b"\n") == 1 for x in lines)
    report = auditlog.verify(tmp_path / "log.jsonl")
    assert report.head == hashlib.sha256(lines[-1][:-1]).hexdigest()


def test_time_is_utc_with_microseconds(tmp_path: Path) -> None:
    plus2 = datetime.timezone(datetime.timedelta(hours=2))
    log = auditlog.create(
        tmp_path / "l", clock=lambda: datetime.datetime(2024, 5, 6, 7, 8, 9, tzinfo=plus2)
    )
    assert log.append("run", {})["time"] == "2024-05-06T05:08:09.000000Z"
    log.close()


def test_verify_report_counts(tmp_path: Path) -> None:
    lines = write_log(tmp_path / "log.jsonl")
    report = auditlog.verify(tmp_path / "log.jsonl")
    assert report == auditlog.VerifyReport(
        lines=6, runs=1, matches=2, errors=1, ends=1, last_status="complete", signed=False,
        signatures_checked=0, head=hashlib.sha256(lines[-1][:-1]).hexdigest(), skips=0,
        checkpoints=1, key_fingerprints=(), size=len(b"".join(lines)),
        sha256=hashlib.sha256(b"".join(lines)).hexdigest(),
    )  # fmt: skip
    assert (report.first_run, report.last_end) == (json.loads(lines[0]), json.loads(lines[-1]))
    assert hash(report) == hash(dataclasses.replace(report, first_run=None))  # still hashable
    assert (tmp_path / "log.jsonl").read_bytes() == b"".join(lines)


def test_writer_head_and_seq_follow_the_file(tmp_path: Path) -> None:
    log = auditlog.create(tmp_path / "l")
    assert (log.seq, log.head) == (0, ZERO)
    log.append("run", {"a": 1})
    assert log.seq == 1
    assert log.head == hashlib.sha256((tmp_path / "l").read_bytes()[:-1]).hexdigest()
    log.close()
    log.close()


def test_log_is_0600_even_with_umask_0(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        auditlog.create(tmp_path / "log.jsonl").close()
    finally:
        os.umask(old)
    assert (tmp_path / "log.jsonl").stat().st_mode & 0o777 == 0o600


def test_create_refuses_existing_log(tmp_path: Path) -> None:
    target = tmp_path / "log.jsonl"
    target.write_bytes(b"keep")
    with pytest.raises(UsageError) as caught:
        auditlog.create(target)
    assert str(caught.value) == (
        f"Log {target} already exists. Use --resume to continue it, or choose another --log."
    )
    assert target.read_bytes() == b"keep"


def test_second_writer_is_refused_while_log_is_open(tmp_path: Path) -> None:
    write_log(tmp_path / "log.jsonl", end="interrupted")
    first, _ = auditlog.open_for_resume(tmp_path / "log.jsonl")
    with pytest.raises(UsageError, match="in use by another matcher process"):
        auditlog.open_for_resume(tmp_path / "log.jsonl")
    first.close()


def test_writer_refuses_reserved_fields_bad_grammar_and_unencodable_text(tmp_path: Path) -> None:
    log = auditlog.create(tmp_path / "l")
    with pytest.raises(ValueError, match="first record must be a run"):
        log.append("match", {"path": "x"})
    with pytest.raises(ValueError, match="reserved"):
        log.append("run", {"seq": 5})
    log.append("run", {})
    with pytest.raises(ValueError, match="unknown record type"):
        log.append("note", {})
    with pytest.raises(ValueError):
        log.append("match", {"path": "\udcff"})
    with pytest.raises(ValueError, match="end status"):
        log.append("end", {"status": "done"})
    log.append("end", {"status": "complete"})
    with pytest.raises(ValueError, match="after an end record"):
        log.append("match", {})
    log.close()
    with pytest.raises(ValueError, match="closed"):
        log.append("run", {})
    assert auditlog.verify(tmp_path / "l").lines == 2


def test_read_records_yields_dicts_and_accepts_missing_end(tmp_path: Path) -> None:
    write_log(tmp_path / "log.jsonl", end=None)
    records = list(auditlog.read_records(tmp_path / "log.jsonl"))
    assert [r["type"] for r in records] == ["run", "match", "error", "checkpoint", "match"]
    (tmp_path / "bad.jsonl").write_bytes((tmp_path / "log.jsonl").read_bytes() + b"{")
    with pytest.raises(IntegrityError, match="torn"):
        list(auditlog.read_records(tmp_path / "bad.jsonl"))


# Tampering ---------------------------------------------------------------------


def _edit(lines: list[bytes], index: int, old: bytes, new: bytes) -> list[bytes]:
    assert old in lines[index]
    return lines[:index] + [lines[index].replace(old, new)] + lines[index + 1 :]


TAMPER: dict[str, tuple[Callable[[list[bytes]], list[bytes]], int, str]] = {
    "edit a field": (lambda x: _edit(x, 1, b'"size":3', b'"size":4'), 3, "prev is not"),
    "edit the end record": (lambda x: _edit(x, 5, b'"files":3', b'"files":4'), 6, "self_sha256"),
    "edit the first prev": (lambda x: _edit(x, 0, b'"prev":"0', b'"prev":"1'), 1, "prev is not"),
    "insert a copy": (lambda x: x[:2] + [x[1]] + x[2:], 3, "seq is 1, expected 2"),
    "delete a line": (lambda x: x[:2] + x[3:], 3, "seq is 3, expected 2"),
    "reorder two lines": (lambda x: [x[0], x[2], x[1], *x[3:]], 2, "seq is 2, expected 1"),
    "duplicate last line": (lambda x: [*x, x[-1]], 7, "seq is 5, expected 6"),
    "append a garbage line": (lambda x: [*x, b"garbage\n"], 7, "not valid JSON"),
    "append torn garbage": (lambda x: [*x, b'{"seq":6'], 7, "torn last line: 8 bytes"),
    "tear the last line": (lambda x: [*x[:-1], x[-1][:40]], 6, "torn last line: 40 bytes"),
    "drop the final newline": (
        lambda x: [*x[:-1], x[-1][:-1]],
        6,
        "read as a whole record with no line feed: was it lost in a copy? Compare with the "
        "original log first",
    ),
    "every line feed a CR": (
        lambda x: [b"".join(x).replace(b"\n", b"\r")],
        1,
        "its line ends are CR, not LF",
    ),
    # Not "torn" (which batch resumes): --resume refuses such a log.
    "the last line feed a CR": (
        lambda x: [*x[:-1], x[-1].replace(b"\n", b"\r")],
        6,
        "holding carriage returns: were its line ends converted (a text tool, a copy)? "
        "Verify the original log: --resume refuses this one",
    ),
    "re-serialise a line": (
        lambda x: [x[0], json.dumps(json.loads(x[1])).encode() + b"\n", *x[2:]],
        2,
        "canonical",
    ),
    # Before: "not in canonical form (the line was re-serialised or edited)": a reviewer
    # given a copy made CRLF by a text tool was told it was edited.
    "CRLF line ending": (
        lambda x: [x[0].replace(b"\n", b"\r\n"), *x[1:]],
        1,
        "ends in CR LF, not LF: were the log's line ends converted",
    ),
    "every line CRLF": (
        lambda x: [line.replace(b"\n", b"\r\n") for line in x],
        1,
        "ends in CR LF, not LF: were the log's line ends converted",
    ),
    "CR inside a record, then CRLF": (
        lambda x: [x[0][:-2] + b"\r" + x[0][-2:-1] + b"\r\n", *x[1:]],
        1,
        "canonical",
    ),
}


REENCODED: dict[str, tuple[Callable[[bytes], bytes], str]] = {
    "UTF-16 with its BOM": (lambda x: x.decode().encode("utf-16"), "the file is in UTF-16, not UTF-8"),
    "UTF-16 big-endian": (lambda x: x.decode().encode("utf-16-be"), "the file is in UTF-16, not UTF-8"),
    "a UTF-8 BOM added": (lambda x: codecs.BOM_UTF8 + x, "the file starts with a UTF-8 byte order mark (EF BB BF)"),
    "a UTF-8 BOM, CR LF": (lambda x: codecs.BOM_UTF8 + x.replace(b"\n", b"\r\n"), "the file starts with a UTF-8 byte"),
    "line feeds made CR": (lambda x: x.replace(b"\n", b"\r"), "its line ends are CR, not LF"),
    "CR, one LF at the end": (lambda x: x.replace(b"\n", b"\r") + b"\n", "its line ends are CR, not LF"),
}


@pytest.mark.parametrize("case", sorted(REENCODED))
def test_a_log_a_text_tool_re_encoded_is_named_as_such_not_destroyed_nor_torn(
    tmp_path: Path, case: str
) -> None:
    """Before: UTF-16 was "not valid UTF-8 at byte 0; ... the log was destroyed, or this is not
    a match log", a BOM Python's "Unexpected UTF-8 BOM (decode using utf-8-sig)", CR line ends
    "torn last line: N bytes after the final newline" (in a file with no line feed at all)."""
    change, message = REENCODED[case]
    error = first_bad_line(tmp_path / "t.jsonl", change(b"".join(write_log(tmp_path / "log.jsonl"))))
    assert str(error).startswith(f"line 1: {message}") and str(error).endswith("Verify the original file")
    assert not isinstance(error, (auditlog.TornLineError, auditlog.IncompleteLogError))
    assert "torn" not in str(error) and "not a match log" not in str(error)


@pytest.mark.parametrize("case", sorted(TAMPER))
def test_tampering_is_named_at_the_first_bad_line(tmp_path: Path, case: str) -> None:
    change, line, message = TAMPER[case]
    lines = write_log(tmp_path / "log.jsonl")
    error = first_bad_line(tmp_path / "t.jsonl", b"".join(change(lines)))
    assert error.line == line, str(error)
    assert message in str(error)
    assert str(error).startswith(f"line {line}: ")
    assert not isinstance(error, auditlog.IncompleteLogError)


def test_missing_end_is_incomplete_at_last_line(tmp_path: Path) -> None:
    lines = write_log(tmp_path / "log.jsonl")
    error = first_bad_line(tmp_path / "t.jsonl", b"".join(lines[:-1]))
    assert isinstance(error, auditlog.IncompleteLogError)
    assert error.line == 5
    assert "incomplete" in str(error)


def test_empty_log_fails_at_line_1(tmp_path: Path) -> None:
    error = first_bad_line(tmp_path / "t.jsonl", b"")
    assert (error.line, str(error)) == (1, "line 1: empty log")


RUN = {"type": "run", "case": "C"}
END = {"type": "end", "status": "complete"}
STOP = {"type": "end", "status": "interrupted"}
RESUME = {"type": "run", "resume": True}
RECOVER = {"type": "run", "resume": True, "crash_recovery": {"after_seq": 1, "torn_tail": None}}
MATCH = {"type": "match", "path": "a"}
GRAMMAR_FAULTS = {
    "first record not run": ([MATCH, END], 1, "first record must be a run"),
    "unknown type": ([RUN, {"type": "note"}, END], 2, "unknown record type 'note'"),
    "record after end": ([RUN, END, MATCH], 3, "after an end record"),
    "second run without resume": ([RUN, STOP, RUN, END], 3, "must be a resume"),
    "resume after complete": ([RUN, END, RESUME, END], 3, "status 'complete'"),
    "resume after crash lacks recovery": ([RUN, MATCH, RESUME, END], 3, "crash_recovery"),
    "end after end": ([RUN, END, END], 3, "after an end record"),
    "unknown end status": ([RUN, {"type": "end", "status": "ok"}], 2, "end status 'ok'"),
    "resume not boolean": ([RUN, STOP, {"type": "run", "resume": "yes"}, END], 3, "true/false"),
    "unhashable type": ([RUN, {"type": ["end"]}], 2, "unknown record type"),
    "stray signature": ([RUN, {**MATCH, "signature": "AA=="}, END], 2, "cannot carry"),
    "self_sha256 on match": ([RUN, {**MATCH, "self_sha256": "0"}, END], 2, "cannot carry"),
}


@pytest.mark.parametrize("case", sorted(GRAMMAR_FAULTS))
def test_grammar_faults(tmp_path: Path, case: str) -> None:
    records, line, message = GRAMMAR_FAULTS[case]
    error = first_bad_line(tmp_path / "t.jsonl", chained(records))  # type: ignore[arg-type]
    assert error.line == line, str(error)
    assert message in str(error)


KEY_A, KEY_B = "ab" * 32, "cd" * 32
SIGNED = {"key_fingerprint": KEY_A, "signature": "AA=="}
RUN_A = {**RUN, "options": {"signed_by": KEY_A}}
RUN_UNSIGNED = {**RUN, "options": {"signed_by": None}}
SIGNER_FAULTS = {
    "end unsigned in a signed run": ([RUN_A, END], 2, "end record is not signed, but its run record names signing key abab"),
    "end by another key": ([RUN_A, {**END, **SIGNED, "key_fingerprint": KEY_B}], 2, "signed by key cdcd"),
    "checkpoint unsigned": ([RUN_A, {"type": "checkpoint"}, {**END, **SIGNED}], 2, "checkpoint record is not signed"),
    "end signed in an unsigned run": ([RUN_UNSIGNED, {**END, **SIGNED}], 2, "run record names no signing key"),
    "resume adds a key": ([RUN_UNSIGNED, STOP, {**RESUME, "options": {"signed_by": KEY_A}}, {**END, **SIGNED}], 3,
                          "run record names signing key abab"),  # fmt: skip
    "signed_by not text": ([{**RUN, "options": {"signed_by": 1}}, END], 1, "options.signed_by must be"),
}  # fmt: skip


@pytest.mark.parametrize("case", sorted(SIGNER_FAULTS))
def test_end_and_checkpoint_records_are_signed_as_their_run_record_says_without_a_key(
    tmp_path: Path, case: str
) -> None:
    """A signed run's end record with its signature deleted (and self_sha256 computed
    again) verified "chain intact" without --public-key: the run record names the key."""
    records, line, message = SIGNER_FAULTS[case]
    error = first_bad_line(tmp_path / "t.jsonl", chained(records))  # type: ignore[arg-type]
    assert error.line == line, str(error)
    assert message in str(error)


@pytest.mark.parametrize(
    "records",
    [
        [RUN_A, {"type": "checkpoint", **SIGNED}, {**STOP, **SIGNED}, {**RESUME, "options": {"signed_by": KEY_A}}, {**END, **SIGNED}],
        [RUN_UNSIGNED, STOP, {**RESUME, "options": {"signed_by": None}}, END],
        [RUN, {**END, **SIGNED}],  # a run record that names no key (a log from before it did)
    ],
)  # fmt: skip
def test_runs_signed_as_they_say_verify_without_a_key(tmp_path: Path, records: list[dict[str, object]]) -> None:
    (tmp_path / "l").write_bytes(chained(records))
    assert auditlog.verify(tmp_path / "l").lines == len(records)


@pytest.mark.parametrize(
    "records",
    [
        [RUN, END],
        [RUN, MATCH, STOP, RESUME, MATCH, END],
        [RUN, MATCH, RECOVER, END],
        [RECOVER, END],
    ],
)
def test_grammar_accepts_resumed_segments(tmp_path: Path, records: list[dict[str, object]]) -> None:
    (tmp_path / "l").write_bytes(chained(records))
    report = auditlog.verify(tmp_path / "l")
    assert report.lines == len(records)
    assert report.runs == sum(r["type"] == "run" for r in records)


@pytest.mark.parametrize(
    ("line", "message"),
    [
        (b'{"type":"run","seq":0,"time":"2024-01-02T03:04:05.000006Z","prev":"%s"}', "start with"),
        (b'{"seq":0,"type":"run","prev":"%s"}', "missing: time"),
        (b'{"seq":true,"type":"run","time":"2024-01-02T03:04:05.000006Z","prev":"%s"}', "seq is"),
        (b'{"seq":0,"type":"run","time":"2024-01-02 03:04:05","prev":"%s"}', "not UTC ISO 8601"),
        (
            '{"seq":0,"type":"run","time":"٢٠٢٤-01-02T03:04:05.000006Z","prev":"%s"}'.encode(),
            "8601",
        ),
    ],
)
def test_envelope_faults(tmp_path: Path, line: bytes, message: str) -> None:
    error = first_bad_line(tmp_path / "t", (line % ZERO.encode()) + b"\n")
    assert error.line == 1
    assert message in str(error)


def _valid_log_bytes(signed: bool) -> tuple[bytes, bytes | None]:
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        signer = None
        if signed:
            signing.generate_keypair(base / "k.pem", base / "k.pub")
            signer = signing.load_signer(base / "k.pem")
        write_log(base / "log.jsonl", signer)
        public = (base / "k.pub").read_bytes() if signed else None
        return (base / "log.jsonl").read_bytes(), public


UNSIGNED, _ = _valid_log_bytes(False)
SIGNED, SIGNED_PUB = _valid_log_bytes(True)


def _verify_bytes(data: bytes, public: bytes | None = None) -> auditlog.VerifyReport:
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "log").write_bytes(data)
        key = None
        if public is not None:
            key = Path(tmp) / "k.pub"
            key.write_bytes(public)
        return auditlog.verify(Path(tmp) / "log", key)


def test_fixtures_for_properties_verify() -> None:
    assert _verify_bytes(UNSIGNED).lines == 6
    assert _verify_bytes(SIGNED, SIGNED_PUB).signatures_checked == 2


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(data=st.data(), signed=st.booleans(), with_key=st.booleans())
def test_flipping_any_byte_fails_with_integrity_error(
    data: st.DataObject, signed: bool, with_key: bool
) -> None:
    log = SIGNED if signed else UNSIGNED
    index = data.draw(st.integers(0, len(log) - 1), label="index")
    mask = data.draw(st.integers(1, 255), label="xor")
    flipped = bytearray(log)
    flipped[index] ^= mask
    with pytest.raises(IntegrityError):
        _verify_bytes(bytes(flipped), SIGNED_PUB if signed and with_key else None)


@settings(max_examples=200, deadline=None)
@given(blob=st.binary(max_size=2048), after_valid_log=st.booleans())
def test_random_bytes_fail_only_with_integrity_error(blob: bytes, after_valid_log: bool) -> None:
    with pytest.raises(IntegrityError):
        _verify_bytes((UNSIGNED if after_valid_log and blob else b"") + blob)


@settings(max_examples=100, deadline=None)
@given(lines=st.lists(st.binary(max_size=200).map(lambda b: b.replace(b"\n", b"") + b"\n")))
def test_random_lines_fail_only_with_integrity_error(lines: list[bytes]) -> None:
    with pytest.raises(IntegrityError):
        _verify_bytes(b"".join(lines))


def test_unreadable_log_raises_oserror(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        auditlog.verify(tmp_path / "missing.jsonl")
    with pytest.raises(IsADirectoryError):
        auditlog.verify(tmp_path)


# Signatures --------------------------------------------------------------------


def test_signed_log_verifies_with_its_key(tmp_path: Path, keys: tuple[Path, Path]) -> None:
    signer = signing.load_signer(keys[0])
    lines = write_log(tmp_path / "log.jsonl", signer)
    for index in (3, 5):
        record = json.loads(lines[index])
        assert record["key_fingerprint"] == signer.fingerprint
        assert "signature" in record
    report = auditlog.verify(tmp_path / "log.jsonl", keys[1])
    assert (report.signed, report.signatures_checked) == (True, 2)
    assert report.key_fingerprints == (signer.fingerprint,)
    unchecked = auditlog.verify(tmp_path / "log.jsonl")
    assert (unchecked.signed, unchecked.signatures_checked) == (True, 0)


def test_wrong_key_fails_at_first_signed_line(tmp_path: Path, keys: tuple[Path, Path]) -> None:
    write_log(tmp_path / "log.jsonl", signing.load_signer(keys[0]))
    signing.generate_keypair(tmp_path / "other.pem", tmp_path / "other.pub")
    with pytest.raises(IntegrityError) as caught:
        auditlog.verify(tmp_path / "log.jsonl", tmp_path / "other.pub")
    assert caught.value.line == 4
    assert "not by the given public key" in str(caught.value)


def test_altered_counts_in_signed_end_fail(tmp_path: Path, keys: tuple[Path, Path]) -> None:
    lines = write_log(tmp_path / "log.jsonl", signing.load_signer(keys[0]))
    end = json.loads(lines[-1])
    end["counts"]["notable"] = 0
    del end["self_sha256"]
    body = signing.canonical_bytes(end)
    end["self_sha256"] = hashlib.sha256(body).hexdigest()  # a careful forger reseals
    forged = b"".join(lines[:-1]) + signing.canonical_bytes(end) + b"\n"
    # Note that without the key only the (recomputable) self digest is checked.
    assert _verify_bytes(forged).lines == 6
    error = first_bad_line(tmp_path / "t.jsonl", forged, keys[1])
    assert error.line == 6
    assert "signature does not verify" in str(error)


def test_unsigned_log_fails_when_key_is_given(tmp_path: Path, keys: tuple[Path, Path]) -> None:
    write_log(tmp_path / "log.jsonl")
    with pytest.raises(IntegrityError) as caught:
        auditlog.verify(tmp_path / "log.jsonl", keys[1])
    assert caught.value.line == 4
    assert "not signed" in str(caught.value)


def test_bad_public_key_file_is_a_usage_error(tmp_path: Path) -> None:
    write_log(tmp_path / "log.jsonl")
    (tmp_path / "bad.pub").write_bytes(b"nope")
    with pytest.raises(UsageError):
        auditlog.verify(tmp_path / "log.jsonl", tmp_path / "bad.pub")


# Write failures ----------------------------------------------------------------


def _failing_write(monkeypatch: pytest.MonkeyPatch, after: int, code: int, partial: bool) -> None:
    """Let `after` writes through; then write half of one (if partial) and fail."""
    real, calls = os.write, itertools.count()

    def fake(fd: int, data: bytes) -> int:
        n = next(calls)
        if n < after:
            return real(fd, data)
        if partial and n == after:
            return real(fd, bytes(data[: len(data) // 2]))
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(os, "write", fake)


def _start(path: Path) -> auditlog.LogWriter:
    log = auditlog.create(path, clock=clock())
    log.append("run", {"case": "C"})
    log.append("match", {"path": "a"})
    return log


@pytest.mark.parametrize("partial", [True, False])
def test_disk_full_leaves_verifiable_prefix(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, partial: bool
) -> None:
    path = tmp_path / "log.jsonl"
    log = _start(path)
    _failing_write(monkeypatch, after=0, code=errno.ENOSPC, partial=partial)
    with pytest.raises(LogWriteError) as caught:
        log.append("match", {"path": "b" * 5000})
    assert str(path) in str(caught.value)
    assert "ENOSPC" in str(caught.value)
    assert "intact to line 2" in str(caught.value)
    assert path.read_bytes().endswith(b"\n")
    with pytest.raises(auditlog.IncompleteLogError) as incomplete:
        auditlog.verify(path)
    assert incomplete.value.line == 2
    assert (log.seq, log.head) == (
        2,
        hashlib.sha256(path.read_bytes().splitlines()[-1]).hexdigest(),
    )
    monkeypatch.undo()
    log.append("end", {"status": "interrupted"})
    log.close()
    assert auditlog.verify(path).last_status == "interrupted"


def test_read_only_filesystem_is_a_log_write_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = _start(tmp_path / "log.jsonl")
    _failing_write(monkeypatch, after=0, code=errno.EROFS, partial=False)
    with pytest.raises(LogWriteError, match="EROFS"):
        log.append("end", {"status": "interrupted"})


def test_failed_truncation_leaves_torn_line_for_resume(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "log.jsonl"
    log = _start(path)
    _failing_write(monkeypatch, after=0, code=errno.EIO, partial=True)

    def no_truncate(fd: int, size: int) -> None:
        raise OSError(errno.EIO, "I/O error")

    monkeypatch.setattr(os, "ftruncate", no_truncate)
    with pytest.raises(LogWriteError, match="its last line is torn"):
        log.append("match", {"path": "b"})
    monkeypatch.undo()
    with pytest.raises(LogWriteError, match="torn last line"):
        log.append("end", {"status": "interrupted"})
    log.close()
    assert first_bad_line(tmp_path / "copy", path.read_bytes()).line == 3
    resumed, state = auditlog.open_for_resume(path)
    assert state.torn_tail is not None and state.torn_tail["bytes"] != 0
    resumed.append("run", state.run_fields())
    resumed.append("end", {"status": "complete"})
    resumed.close()
    assert auditlog.verify(path).runs == 2


def test_interrupt_between_short_writes_truncates(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "log.jsonl"
    log = _start(path)
    before = path.read_bytes()
    real, calls = os.write, itertools.count()

    def fake(fd: int, data: bytes) -> int:
        if next(calls) == 0:
            return real(fd, bytes(data[:10]))
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "write", fake)
    with pytest.raises(KeyboardInterrupt):
        log.append("match", {"path": "b"})
    monkeypatch.undo()
    assert path.read_bytes() == before
    log.append("end", {"status": "interrupted"})
    log.close()
    assert auditlog.verify(path).lines == 3


def test_short_writes_are_completed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = os.write
    monkeypatch.setattr(os, "write", lambda fd, data: real(fd, bytes(data[:7])))
    log = _start(tmp_path / "log.jsonl")
    log.append("end", {"status": "complete"})
    log.close()
    monkeypatch.undo()
    assert auditlog.verify(tmp_path / "log.jsonl").lines == 3


# Resume ------------------------------------------------------------------------


def test_resume_sets_torn_tail_aside_and_continues_chain(tmp_path: Path) -> None:
    path = tmp_path / "log.jsonl"
    lines = write_log(path, end=None)
    torn = b'{"seq":5,"type":"mat'
    path.write_bytes(b"".join(lines) + torn)
    log, state = auditlog.open_for_resume(path, clock=clock())
    side = tmp_path / "log.jsonl.torn-5"
    assert state.torn_tail == {
        "bytes": len(torn),
        "sha256": hashlib.sha256(torn).hexdigest(),
        "saved_to": "log.jsonl.torn-5",
    }
    assert side.read_bytes() == torn
    assert side.stat().st_mode & 0o777 == 0o600
    assert path.read_bytes() == b"".join(lines)
    assert (state.lines, state.ended, state.last_status) == (5, False, None)
    assert state.head == hashlib.sha256(lines[-1][:-1]).hexdigest() == log.head
    assert state.matched_paths == {b"ev/a.bin", b"ev/b.bin"}
    assert state.last_run is not None and state.last_run["case"] == "C-1"
    assert state.run_fields() == {
        "resume": True,
        "crash_recovery": {"after_seq": 4, "torn_tail": state.torn_tail},
    }
    run = log.append("run", {**state.run_fields(), "case": "C-1"})
    assert (run["seq"], run["prev"]) == (5, state.head)
    log.append("end", {"status": "complete"})
    log.close()
    report = auditlog.verify(path)
    assert (report.lines, report.runs, report.ends) == (7, 2, 1)


def test_resume_after_interrupted_end(tmp_path: Path) -> None:
    path = tmp_path / "log.jsonl"
    write_log(path, end="interrupted")
    log, state = auditlog.open_for_resume(path)
    assert (state.ended, state.torn_tail, state.run_fields()) == (True, None, {"resume": True})
    with pytest.raises(ValueError, match="first record of a resume"):
        log.append("match", {"path": "x"})
    with pytest.raises(ValueError, match="first record of a resume"):
        log.append("run", {"case": "C-1"})
    log.append("run", {"resume": True, "case": "C-1"})
    log.append("match", {**path_fields(b"ev/c.bin")})
    log.append("end", {"status": "complete"})
    log.close()
    report = auditlog.verify(path)
    assert (report.runs, report.matches, report.ends, report.last_status) == (2, 3, 2, "complete")


def test_resume_of_a_log_lost_before_its_first_line(tmp_path: Path) -> None:
    path = tmp_path / "log.jsonl"
    path.write_bytes(b'{"seq":0,"ty')
    log, state = auditlog.open_for_resume(path)
    assert state.lines == 0 and state.torn_tail is not None
    assert state.run_fields()["crash_recovery"] == {"after_seq": None, "torn_tail": state.torn_tail}
    log.append("run", state.run_fields())
    log.append("end", {"status": "complete"})
    log.close()
    assert auditlog.verify(path).lines == 2


def test_resume_refuses_complete_missing_or_corrupt_logs(tmp_path: Path) -> None:
    path = tmp_path / "log.jsonl"
    write_log(path)
    before = path.read_bytes()
    with pytest.raises(UsageError, match="nothing to resume"):
        auditlog.open_for_resume(path)
    with pytest.raises(UsageError, match="does not exist"):
        auditlog.open_for_resume(tmp_path / "missing.jsonl")
    corrupt = before.replace(b'"size":3', b'"size":4') + b"torn"
    path.write_bytes(corrupt)
    with pytest.raises(IntegrityError) as caught:
        auditlog.open_for_resume(path)
    assert caught.value.line == 3
    assert path.read_bytes() == corrupt
    assert not (tmp_path / "log.jsonl.torn-6").exists()


def test_resume_reuses_identical_side_file_and_refuses_a_different_one(tmp_path: Path) -> None:
    path = tmp_path / "log.jsonl"
    lines = write_log(path, end=None)
    path.write_bytes(b"".join(lines) + b"{torn")
    side = tmp_path / "log.jsonl.torn-5"
    side.write_bytes(b"{other")
    with pytest.raises(UsageError, match="already exists with other bytes"):
        auditlog.open_for_resume(path)
    assert path.read_bytes() == b"".join(lines) + b"{torn"
    side.write_bytes(b"{torn")
    log, state = auditlog.open_for_resume(path)
    assert state.torn_tail is not None and state.torn_tail["saved_to"] == side.name
    log.close()
    assert path.read_bytes() == b"".join(lines)


def test_resumed_signed_log_verifies(tmp_path: Path, keys: tuple[Path, Path]) -> None:
    path, signer = tmp_path / "log.jsonl", signing.load_signer(keys[0])
    write_log(path, signer, end="interrupted")
    log, state = auditlog.open_for_resume(path, signer)
    log.append("run", state.run_fields())
    log.checkpoint({"files": 0})
    log.append("end", {"status": "complete"})
    log.close()
    report = auditlog.verify(path, keys[1])
    assert (report.signatures_checked, report.signed) == (4, True)


def test_resume_refuses_a_match_it_cannot_keep_exactly_once(tmp_path: Path) -> None:
    path = tmp_path / "l.jsonl"
    log = auditlog.create(path)
    log.append("run", {"examiner": "E", "case": "C"})
    log.append("match", {"size": 1})  # no path: resume could not tell it was logged
    log.close()
    with pytest.raises(IntegrityError, match="without a usable path"):
        auditlog.open_for_resume(path)


def test_a_log_a_run_is_still_writing_is_said_to_be_so_not_cut_short(tmp_path: Path) -> None:
    """verify during a scan said "the run was cut short; --resume continues it", and a resume
    then was refused (the log in use): it now says the log is still being written."""
    path = tmp_path / "l.jsonl"
    log = auditlog.create(path)
    log.append("run", {"a": 1})
    with pytest.raises(auditlog.IncompleteLogError, match="still being written") as caught:
        auditlog.verify(path)
    assert "--resume" not in str(caught.value)
    log.close()
    with pytest.raises(auditlog.IncompleteLogError, match="--resume continues it"):
        auditlog.verify(path)


def test_verify_counts_records_whose_time_went_back_and_still_passes(tmp_path: Path) -> None:
    """Before: a resume whose host clock stood 400 days behind ended "before" its log began, and
    verify said OK with no word of it (on a timeline it reads as backdating)."""
    path = tmp_path / "log.jsonl"
    write_log(path, end="interrupted")
    assert auditlog.verify(path).first_time_back is None
    behind = T0 - datetime.timedelta(days=400)
    log, _ = auditlog.open_for_resume(path, clock=lambda: behind)
    log.append("run", {"examiner": "Ann", "case": "C-1", "resume": True})
    log.append("end", {"status": "complete", "counts": {"files": 3, "notable": 2}})
    log.close()
    report = auditlog.verify(path)  # the chain holds: no failure
    assert report.times_back == 2
    assert report.first_time_back == (6, "2022-11-28T03:04:05.000006Z", "2024-01-02T03:04:10.000006Z")
    from click.testing import CliRunner

    from matcher.cli import cli

    said = CliRunner().invoke(cli, ["verify", str(path)])
    assert said.exit_code == 0 and said.output.startswith("OK: ")
    assert "note: 2 record(s) carry a time earlier than a record before them (the first: " in said.output
