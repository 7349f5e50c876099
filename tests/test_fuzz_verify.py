"""Fuzzing the log verifier with mutations of real scan logs, signed and unsigned.

Any change to a complete log (byte flips, swapped, deleted or duplicated
lines, truncation, inserted JSON lines that look valid, even correctly
chained ones) must make `verify` raise IntegrityError, never another
exception, and never pass. The logs come from real scans with matches, an
error record and checkpoints.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from unittest import mock

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck
from hypothesis import assume
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st

import matcher.scan as scan_mod
from matcher import auditlog
from matcher import signing
from matcher.cli import cli
from matcher.errors import IntegrityError
from matcher.scan import ScanOptions
from matcher.scan import run_scan


@functools.cache
def real_logs() -> tuple[bytes, bytes, bytes]:
    """(unsigned log, signed log, public key PEM) from two real scans of one tree."""
    with tempfile.TemporaryDirectory(prefix="matcher-fuzz-") as tmp:
        base = Path(tmp)
        ev = base / "ev"
        ev.mkdir()
        lines = []
        for i in range(6):
            data = b"fuzz %d\n" % i
            name = b"f%d-\xff.bin" % i if i == 2 else b"f%d.bin" % i  # one name not UTF-8
            with open(os.fsencode(ev) + b"/" + name, "wb") as out:
                out.write(data)
            lines.append(f"{hashlib.sha256(data).hexdigest()}  f{i}\n")
        (ev / "unreadable.bin").write_bytes(b"x")
        (base / "list.sha256").write_text("".join(lines))
        signing.generate_keypair(base / "k.pem", base / "k.pub")
        logs = []
        for signed in (False, True):
            log = base / f"log-{signed}.jsonl"
            options = ScanOptions([ev], "Fuzz Examiner", "FUZZ-1", base / "s.db", log,
                                  lists=[base / "list.sha256"], jobs=1,
                                  sign_key=base / "k.pem" if signed else None)  # fmt: skip
            with _denied(b"unreadable.bin"), mock.patch.object(scan_mod, "CHECKPOINT_SECONDS", 0.0):
                with mock.patch.object(scan_mod, "MATCH_BATCH", 2):
                    run_scan(options)
            auditlog.verify(log, base / "k.pub" if signed else None)
            logs.append(log.read_bytes())
        return logs[0], logs[1], (base / "k.pub").read_bytes()


@contextmanager
def _denied(suffix: bytes) -> Iterator[None]:
    """Make one file unreadable to the scan (an `error` record), whoever runs the tests."""
    real = scan_mod.open_file

    def deny(path: bytes) -> int:
        if path.endswith(suffix):
            raise PermissionError(13, "Permission denied")
        return real(path)

    with mock.patch.object(scan_mod, "open_file", deny):
        yield


def test_the_real_logs_are_rich_and_verify() -> None:
    unsigned, signed, public = real_logs()
    types = [line.split(b'"type":"')[1].split(b'"')[0] for line in signed.splitlines()]
    assert {b"run", b"match", b"error", b"checkpoint", b"end"} <= set(types)
    assert b'"path_b64"' in unsigned and b'"signature"' in signed
    assert verify_bytes(signed, public).signatures_checked == types.count(b"checkpoint") + 1


def verify_bytes(data: bytes, public: bytes | None = None) -> auditlog.VerifyReport:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "log.jsonl"
        path.write_bytes(data)
        key = None
        if public is not None:
            key = Path(tmp) / "k.pub"
            key.write_bytes(public)
        return auditlog.verify(path, key)


# Mutations ---------------------------------------------------------------------------

JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63) | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)
TIME = st.just("2026-11-28T12:00:00.000000Z") | st.text(max_size=30)


@st.composite
def record_line(draw: st.DrawFn, lines: list[bytes], at: int, forge: bool) -> bytes:
    """A line that looks like a record; often exactly chained to fit at `at`.

    An `end` record gets a correct self digest only when `forge`: a chained,
    correctly resealed final record is a deliberate forgery that only a
    signature reveals (see the test at the end), not a random mutation.
    """
    chained = draw(st.booleans())
    head = hashlib.sha256(lines[at - 1][:-1]).hexdigest() if at else "0" * 64
    kind = draw(st.sampled_from(sorted(auditlog.RECORD_TYPES)) | st.text(max_size=6))
    record: dict[str, object] = {
        "seq": at if chained else draw(st.integers(-1, len(lines) + 1)),
        "type": kind,
        "time": draw(TIME),
        "prev": head if chained else draw(st.sampled_from([head[::-1], "0" * 64, head.upper()])),
    }
    if kind == "run":
        record["resume"] = draw(st.booleans())
        if draw(st.booleans()):
            record["crash_recovery"] = {"after_seq": at - 1, "torn_tail": None}
    if kind == "end":
        record["status"] = draw(st.sampled_from(["complete", "interrupted", "done"]))
    record.update(
        draw(st.dictionaries(st.sampled_from(["path", "counts", "size", "x"]), JSON, max_size=3))
    )
    if draw(st.booleans()):
        signing.seal(record, None, sign=False, digest=kind == "end")
        if kind == "end" and not forge:
            record["self_sha256"] = hashlib.sha256(b"a wrong seal").hexdigest()
    return signing.canonical_bytes(record) + b"\n"


@st.composite
def mutated(draw: st.DrawFn, data: bytes, forge: bool = False) -> bytes:
    """`data` after one to three random mutations (which may cancel out)."""
    for _ in range(draw(st.integers(1, 3))):
        lines = data.splitlines(keepends=True)
        kind = draw(st.sampled_from(["flip", "swap", "truncate", "delete", "duplicate", "insert"]))
        if kind == "flip" or not lines:
            # Note that a line is chosen first, so the last (sealed) line is hit as often as
            # any, and single-bit masks often keep the line valid JSON: only the chain or a
            # seal can then tell.
            line = draw(st.integers(0, max(len(lines) - 1, 0)))
            start = sum(map(len, lines[:line]))
            index = start + draw(st.integers(0, max(len(lines[line]) - 1, 0))) if lines else 0
            mask = draw(st.sampled_from([1 << b for b in range(8)]) | st.integers(1, 255))
            flipped = bytearray(data or b"\0")
            flipped[min(index, len(flipped) - 1)] ^= mask
            data = bytes(flipped)
        elif kind == "truncate":
            data = data[: draw(st.integers(0, len(data) - 1))]
        else:
            i = draw(st.integers(0, len(lines) - 1))
            if kind == "swap":
                j = draw(st.integers(0, len(lines) - 1))
                lines[i], lines[j] = lines[j], lines[i]
            elif kind == "delete":
                del lines[i]
            elif kind == "duplicate":
                lines.insert(draw(st.integers(0, len(lines))), lines[i])
            else:
                at = draw(st.integers(0, len(lines)))
                lines.insert(at, draw(record_line(lines, at, forge)))
            data = b"".join(lines)
    return data


@settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), signed=st.booleans(), with_key=st.booleans())
def test_any_mutation_of_a_real_log_fails_with_integrity_error(
    data: st.DataObject, signed: bool, with_key: bool
) -> None:
    unsigned_log, signed_log, public = real_logs()
    original = signed_log if signed else unsigned_log
    key = public if signed and with_key else None
    changed = data.draw(mutated(original, forge=key is not None), label="mutated log")
    assume(changed != original)
    with pytest.raises(IntegrityError):
        verify_bytes(changed, key)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_matcher_verify_exits_1_on_any_mutation(data: st.DataObject) -> None:
    """The command line: exit 1 with the line number, never 0, 2 or a traceback."""
    _unsigned, original, public = real_logs()
    changed = data.draw(mutated(original, forge=True), label="mutated log")
    assume(changed != original)
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "log.jsonl").write_bytes(changed)
        (Path(tmp) / "k.pub").write_bytes(public)
        result = CliRunner().invoke(
            cli, ["verify", str(Path(tmp) / "log.jsonl"), "--public-key", str(Path(tmp) / "k.pub")]
        )
    assert result.exit_code == 1, result.output
    assert result.stderr.startswith("FAILED: ") and " line " in result.stderr
    assert "Traceback" not in result.output


def test_correctly_chained_insertion_after_the_end_is_refused() -> None:
    """The strongest insertion: a sealed, chained record appended after a complete end."""
    for original in real_logs()[:2]:
        lines = original.splitlines(keepends=True)
        head = hashlib.sha256(lines[-1][:-1]).hexdigest()
        for kind, extra in (
            ("match", {"path": "/x"}),
            ("run", {"resume": True}),
            ("end", {"status": "complete"}),
        ):
            record: dict[str, object] = {
                "seq": len(lines),
                "type": kind,
                "time": "2026-11-28T12:00:00.000000Z",
                "prev": head,
                **extra,
            }
            signing.seal(record, None, sign=False, digest=kind == "end")
            with pytest.raises(IntegrityError) as caught:
                verify_bytes(original + signing.canonical_bytes(record) + b"\n")
            assert caught.value.line == len(lines) + 1


def test_a_resealed_forged_end_is_caught_by_the_key() -> None:
    """The end record replaced by a chained, correctly sealed forgery with other counts.

    Note that the self digest is recomputable by design (it catches damage, not
    intent); a signed log shows it: with the key the forgery fails, and without
    it too, since its run record names the key (options.signed_by).
    """
    _unsigned, original, public = real_logs()
    lines = original.splitlines(keepends=True)
    end = json.loads(lines[-1])
    forged = {
        k: v for k, v in end.items() if k not in ("key_fingerprint", "signature", "self_sha256")
    }
    # Note: counts that still add up and agree with the records (bytes are
    # not counted by any record); see the next test for the others.
    forged["counts"] = {**end["counts"], "bytes": end["counts"]["bytes"] + 1}
    signing.seal(forged, None, sign=False, digest=True)
    data = b"".join(lines[:-1]) + signing.canonical_bytes(forged) + b"\n"
    with pytest.raises(IntegrityError) as caught:
        verify_bytes(data, public)
    assert caught.value.line == len(lines) and "not signed" in str(caught.value)
    assert verify_bytes(original).signed
    with pytest.raises(IntegrityError) as unkeyed:
        verify_bytes(data)
    assert unkeyed.value.line == len(lines) and "its run record names signing key" in str(unkeyed.value)


def _more(counts: dict[str, int], **added: int) -> dict[str, int]:
    return {**counts, **{k: counts[k] + n for k, n in added.items()}}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda c: {**c, "notable": 0}, "is not files"),
        (lambda c: _more(c, errors=7, files=99), "is not entries"),
        (lambda c: _more(c, entries=7, files=7), "is not files"),
        # each sum kept, against the records
        (lambda c: _more(c, notable=-c["notable"], unknown=c["notable"]), "0 notable file(s), but the log holds"),
        (lambda c: _more(c, errors=1, entries=1), "error(s), but its run logged 1 error record(s)"),
        (lambda c: {**c, "files": -1}, "counts must give entries, files"),
        (lambda c: {**c, "files": str(c["files"])}, "counts must give entries, files"),
        (lambda c: {k: v for k, v in c.items() if k != "known"}, "counts must give entries, files"),
    ],
)
def test_a_resealed_end_whose_counts_contradict_the_log_fails_without_the_key(
    change: Any, message: str
) -> None:
    """One edited end line, its self digest computed again: before, verify said OK (exit 0).

    The counts must add up (files + skipped + errors = entries, notable +
    known + unknown = files), and agree with the log: one match record per
    notable file, one error record per error of the last run.
    """
    original, _signed, _public = real_logs()
    lines = original.splitlines(keepends=True)
    end = json.loads(lines[-1])
    assert end["counts"]["notable"] > 0 and end["counts"]["errors"] == 1
    forged = {k: v for k, v in end.items() if k != "self_sha256"}
    forged["counts"] = change(end["counts"])
    signing.seal(forged, None, sign=False, digest=True)
    data = b"".join(lines[:-1]) + signing.canonical_bytes(forged) + b"\n"
    with pytest.raises(IntegrityError) as caught:
        verify_bytes(data)
    assert caught.value.line == len(lines) and message in str(caught.value), str(caught.value)


def _resealed_end(original: bytes, change: Any) -> tuple[bytes, int]:
    lines = original.splitlines(keepends=True)
    end = json.loads(lines[-1])
    forged = {k: v for k, v in end.items() if k != "self_sha256"}
    forged["counts"] = change(end["counts"])
    signing.seal(forged, None, sign=False, digest=True)
    return b"".join(lines[:-1]) + signing.canonical_bytes(forged) + b"\n", len(lines)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda c: {**c, "skipped_by_reason": {"fifo": 7}}, "skipped_by_reason sums to 7, not skipped 0"),
        (lambda c: {**c, "errors_by_reason": {}}, "errors_by_reason sums to 0, not errors 1"),
        (lambda c: {**c, "errors_by_reason": {"unreadable": 2, "io-error": -1}}, "counts.errors_by_reason must give"),
        (lambda c: {**c, "skipped_by_reason": [0]}, "counts.skipped_by_reason must give"),
        (lambda c: {**c, "bytes": -5}, "counts.bytes must be a whole number, not -5"),
        (lambda c: {**c, "empty": "0"}, "counts.empty must be a whole number"),
        (lambda c: {**c, "empty": 3}, "3 empty file(s) but 0 unknown"),
        (lambda c: {**c, "image_mismatches": 3}, "3 image(s) failing --verify-image, but its run record gives 0"),
    ],
)
def test_a_resealed_end_whose_details_contradict_its_totals_fails_without_the_key(
    change: Any, message: str
) -> None:
    """Before, verify said OK (exit 0) of these: a by-reason breakdown not summing to its total,
    a negative byte count, more empty files than unknown ones, image mismatches in a scan of
    no image. No run of matcher writes them."""
    original, _signed, _public = real_logs()
    data, lines = _resealed_end(original, change)
    with pytest.raises(IntegrityError) as caught:
        verify_bytes(data)
    assert caught.value.line == lines and message in str(caught.value), str(caught.value)


def test_an_end_without_the_detailed_counts_still_verifies() -> None:
    """A log of an older matcher, whose end record gave the totals only."""
    original, _signed, _public = real_logs()
    details = ("bytes", "empty", "image_mismatches", "skipped_by_reason", "errors_by_reason")
    data, _ = _resealed_end(original, lambda c: {k: v for k, v in c.items() if k not in details})
    assert verify_bytes(data).last_status == "complete"
