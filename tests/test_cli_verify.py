"""`matcher verify` and `keygen` at the command line: intact, tampered, signed, unreadable."""

from __future__ import annotations

import hashlib
import json
import stat
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import FIXTURES
from conftest import rechain

from matcher.cli import cli


@pytest.fixture
def scanned(tmp_path: Path, runner: CliRunner) -> tuple[Path, Path, Path]:
    db = tmp_path / "s.db"
    key = tmp_path / "key.pem"
    assert runner.invoke(cli, ["keygen", str(key)]).exit_code == 0
    log = tmp_path / "run.jsonl"
    result = runner.invoke(cli, ["scan", str(FIXTURES / "evidence"), "--examiner", "E", "--case", "C",
                                 "--db", str(db), "--list", str(FIXTURES / "hashlists" / "notable.csv"),
                                 "--log", str(log), "--sign-key", str(key)], catch_exceptions=False)
    assert result.exit_code == 1, result.output
    return log, key, Path(str(key) + ".pub")


def write_lines(path: Path, lines: list[bytes]) -> Path:
    path.write_bytes(b"".join(line + b"\n" for line in lines))
    return path


def test_intact_log_verifies_with_its_key(runner: CliRunner, scanned: tuple[Path, Path, Path]) -> None:
    log, _, pub = scanned
    result = runner.invoke(cli, ["verify", str(log), "--public-key", str(pub), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["intact"] and report["signatures_checked"] >= 1
    # The bytes verified, as a reviewer can check them with stat and sha256sum.
    assert report["size"] == log.stat().st_size
    assert report["sha256"] == hashlib.sha256(log.read_bytes()).hexdigest()


def test_key_files_are_private(scanned: tuple[Path, Path, Path]) -> None:
    _, key, _ = scanned
    assert stat.S_IMODE(key.stat().st_mode) == 0o600


def test_keygen_never_overwrites(runner: CliRunner, scanned: tuple[Path, Path, Path]) -> None:
    _, key, _ = scanned
    before = key.read_bytes()
    assert runner.invoke(cli, ["keygen", str(key)]).exit_code == 2
    assert key.read_bytes() == before


def test_wrong_key_fails(runner: CliRunner, scanned: tuple[Path, Path, Path], tmp_path: Path) -> None:
    log, _, _ = scanned
    other = tmp_path / "other.pem"
    runner.invoke(cli, ["keygen", str(other)])
    result = runner.invoke(cli, ["verify", str(log), "--public-key", str(other) + ".pub"])
    assert result.exit_code == 1
    assert "FAILED" in result.stderr and "line" in result.stderr


@pytest.mark.parametrize("case", ["edit", "insert", "delete", "reorder", "drop_end", "duplicate", "torn"])
def test_every_tamper_is_caught_with_a_line_number(runner: CliRunner, scanned: tuple[Path, Path, Path], tmp_path: Path, case: str) -> None:
    log, _, _ = scanned
    lines = log.read_bytes().splitlines()
    assert len(lines) >= 4
    if case == "edit":
        lines[1] = lines[1].replace(b'"size":', b'"size":1', 1)
        # The chain breaks where the next line's prev no longer matches.
        bad_line = 3
    elif case == "insert":
        lines.insert(2, lines[1])
        bad_line = 3
    elif case == "delete":
        del lines[1]
        bad_line = 2
    elif case == "reorder":
        lines[1], lines[2] = lines[2], lines[1]
        bad_line = 2
    elif case == "drop_end":
        lines = lines[:-1]
        bad_line = len(lines)
    elif case == "duplicate":
        lines.append(lines[-1])
        bad_line = len(lines)
    tampered = tmp_path / f"{case}.jsonl"
    if case == "torn":
        tampered.write_bytes(log.read_bytes() + b'{"seq":99,"ty')
        bad_line = len(lines) + 1
    else:
        write_lines(tampered, lines)
    result = runner.invoke(cli, ["verify", str(tampered), "--json"])
    assert result.exit_code == 1, result.output
    assert json.loads(result.stdout)["line"] == bad_line, result.stdout


def test_unreadable_log_exits_2(runner: CliRunner, tmp_path: Path) -> None:
    assert runner.invoke(cli, ["verify", str(tmp_path / "missing.jsonl")]).exit_code == 2
    assert runner.invoke(cli, ["verify", str(tmp_path)]).exit_code == 2


@pytest.mark.parametrize(
    "content",
    [b"hi", b"path,sha256\n/a,00\n", b"# matcher\n\nA README.\n", b"\x00" * 5000, b"[1, 2]\n{}\n"],
    ids=["a word", "a csv", "a text", "zeros", "json that is no record"],
)
def test_a_file_with_no_record_fails_and_says_it_may_not_be_a_log(runner: CliRunner, tmp_path: Path, content: bytes) -> None:
    """A file given by mistake fails as a destroyed log does (exit 1: the two look alike), and says why."""
    other = tmp_path / "other.jsonl"
    other.write_bytes(content)
    result = runner.invoke(cli, ["verify", str(other), "--json"])
    assert result.exit_code == 1, result.output
    assert "no line of this file is a log record" in result.stderr
    assert "this is not a match log (check the file name)" in result.stderr
    assert json.loads(result.stdout)["line"] == 1


@pytest.mark.parametrize("damage", ["first line garbled", "first line torn", "cut to 4 bytes", "empty", "first line blank"])
def test_a_log_damaged_at_its_first_line_is_still_tampered_or_incomplete(runner: CliRunner, scanned: tuple[Path, Path, Path], tmp_path: Path, damage: str) -> None:
    """Records after a destroyed first line, a torn first record or no byte at all: a log, not a stranger."""
    log, _, _ = scanned
    lines = log.read_bytes().splitlines()
    damaged = tmp_path / "damaged.jsonl"
    if damage == "first line garbled":
        write_lines(damaged, [b"x" * len(lines[0]), *lines[1:]])
    elif damage == "first line torn":
        damaged.write_bytes(lines[0][:40])
    elif damage == "cut to 4 bytes":
        damaged.write_bytes(lines[0][:4])
    elif damage == "first line blank":
        write_lines(damaged, [b"", *lines[1:]])
    else:
        damaged.write_bytes(b"")
    result = runner.invoke(cli, ["verify", str(damaged), "--json"])
    assert result.exit_code == 1, result.output
    assert json.loads(result.stdout)["line"] == 1
    assert "no line of this file is a log record" not in result.stderr


def test_the_no_record_check_reads_only_a_regular_file_it_already_has_open(tmp_path: Path) -> None:
    """A FIFO (or device) is never read again or reopened: a second open of a FIFO waits for a writer."""
    import os

    from matcher.auditlog import _not_a_log

    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    with open(os.open(fifo, os.O_RDWR), "rb") as stream:  # Linux: opens at once
        assert _not_a_log(stream) is False  # returns at once: nothing read
    text = tmp_path / "notes.txt"
    text.write_bytes(b"line one\nline two\n")
    with open(text, "rb") as stream:
        stream.read()  # at its end, as verify leaves it
        assert _not_a_log(stream) is True
    text.write_bytes(b"garbled\n" + b'{"seq":1,"type":"match"}\n')
    with open(text, "rb") as stream:
        assert _not_a_log(stream) is False


def test_a_file_with_no_record_is_never_taken_for_a_torn_log(tmp_path: Path) -> None:
    """batch resumes a torn log (setting its bytes aside): a notes file must fail, untouched."""
    from matcher import auditlog
    from matcher.batch import _previous_state
    from matcher.errors import IntegrityError

    notes = tmp_path / "notes.txt"
    notes.write_bytes(b"no line end")
    with pytest.raises(IntegrityError) as failed:
        _previous_state(notes)
    assert not isinstance(failed.value, (auditlog.TornLineError, auditlog.IncompleteLogError))
    assert notes.read_bytes() == b"no line end"
    torn = tmp_path / "torn.jsonl"
    torn.write_bytes(b'{"seq":0,"ty')  # a log torn in its first record: resumed
    assert _previous_state(torn) == ("resume", None)


def test_messages_name_the_thing_at_fault_and_the_command_to_use(tmp_path: Path) -> None:
    """From a new user's walkthrough: each message blamed the wrong thing or named no command."""
    import subprocess
    import sys

    matcher = [sys.executable, "-m", "matcher"]
    junk = tmp_path / "afile.txt"
    junk.write_text("no key, no list\n")
    ev = tmp_path / "ev"
    ev.mkdir()
    (ev / "f.bin").write_bytes(b"synthetic")
    common = ["--examiner", "E", "--case", "C", "--db", str(tmp_path / "s.db")]
    # scan has no --format: the hint names `matcher import ... --format`.
    scan = subprocess.run([*matcher, "scan", str(ev), *common, "--list", str(junk), "--log", str(tmp_path / "a.jsonl")],
                          capture_output=True, text=True)  # fmt: skip
    assert scan.returncode == 2 and f"matcher import {junk} --format NAME" in scan.stderr, scan.stderr
    # A public key that is not one is the key's fault, not the log's.
    good = tmp_path / "good.jsonl"
    listing = tmp_path / "l.md5"
    listing.write_text("0" * 32 + "  x\n")
    ran = subprocess.run([*matcher, "scan", str(ev), *common, "--list", str(listing), "--log", str(good), "-q"],
                         capture_output=True, text=True)  # fmt: skip
    assert ran.returncode == 0, ran.stderr
    # A signing key that is not one names `matcher keygen`, not a function.
    signed = subprocess.run([*matcher, "scan", str(ev), *common, "--sign-key", str(junk), "--log", str(tmp_path / "b.jsonl")],
                            capture_output=True, text=True)  # fmt: skip
    assert signed.returncode == 2 and "`matcher keygen` wrote" in signed.stderr, signed.stderr
    assert "generate_keypair" not in signed.stderr
    verify = subprocess.run([*matcher, "verify", str(good), "--public-key", str(junk)], capture_output=True, text=True)
    assert verify.returncode == 2 and "cannot read log" not in verify.stderr, verify.stderr
    assert str(junk) in verify.stderr
    # hash -o into a missing folder: not a "report".
    out = tmp_path / "nodir" / "x.txt"
    hashed = subprocess.run([*matcher, "hash", str(ev), "-o", str(out)], capture_output=True, text=True)
    assert hashed.returncode == 2 and f"Cannot write {out}" in hashed.stderr, hashed.stderr
    assert "report" not in hashed.stderr


def _reseal_last(log: Path, edit: Callable[[dict[str, object]], None]) -> Path:
    """Edit the last (end) record and compute its self_sha256 again, as a forger can."""
    from matcher import signing

    lines = log.read_bytes().splitlines()
    rec = json.loads(lines[-1])
    del rec["self_sha256"]
    edit(rec)
    rec["self_sha256"] = hashlib.sha256(signing.canonical_bytes(rec)).hexdigest()
    lines[-1] = signing.canonical_bytes(rec)
    return write_lines(log, lines)


def _unsign(rec: dict[str, object]) -> None:
    del rec["signature"], rec["key_fingerprint"]


def _other_key(rec: dict[str, object]) -> None:
    rec["key_fingerprint"] = "0" * 64


def _sign(rec: dict[str, object]) -> None:
    rec["key_fingerprint"], rec["signature"] = "0" * 64, "AAAA"


@pytest.mark.parametrize("edit", [_unsign, _other_key])
def test_a_signed_run_whose_end_lost_its_signature_fails_without_the_key(
    runner: CliRunner, scanned: tuple[Path, Path, Path], edit: Callable[[dict[str, object]], None]
) -> None:
    """The run record names the signing key (options.signed_by); the end record's signature
    and fingerprint deleted and its self_sha256 computed again verified "chain intact",
    with no word of signing (the genuine log said "signed, signatures NOT checked")."""
    log, _, _ = scanned
    signed_by = json.loads(log.read_bytes().splitlines()[0])["options"]["signed_by"]
    assert signed_by
    result = runner.invoke(cli, ["verify", str(_reseal_last(log, edit))])
    assert result.exit_code == 1, result.output
    lines = len(log.read_bytes().splitlines())
    assert f"line {lines}: end record is " in result.stderr and signed_by in result.stderr


def test_an_unsigned_run_with_a_signed_end_fails_without_the_key(
    runner: CliRunner, scanned: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    log = tmp_path / "unsigned.jsonl"
    result = runner.invoke(cli, ["scan", str(FIXTURES / "evidence"), "--examiner", "E", "--case", "C",
                                 "--db", str(tmp_path / "s.db"), "--log", str(log), "-q"])  # fmt: skip
    assert result.exit_code == 1, result.output
    assert runner.invoke(cli, ["verify", str(log)]).exit_code == 0
    result = runner.invoke(cli, ["verify", str(_reseal_last(log, _sign))])
    assert result.exit_code == 1, result.output
    assert "end record is signed by key 0000" in result.stderr and "names no signing key" in result.stderr


def test_a_signed_rematch_whose_end_lost_its_signature_fails_without_the_key(
    runner: CliRunner, scanned: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    """A re-match's run record names its signing key too (it named none: nothing to check against)."""
    log, key, _ = scanned
    new = tmp_path / "re.jsonl"
    result = runner.invoke(cli, ["rematch", str(log), "--db", str(tmp_path / "s.db"), "--examiner", "R",
                                 "--case", "C", "--log", str(new), "--sign-key", str(key)])  # fmt: skip
    assert result.exit_code == 1, result.output
    assert "signatures NOT checked" in runner.invoke(cli, ["verify", str(new)]).output
    result = runner.invoke(cli, ["verify", str(_reseal_last(new, _unsign))])
    assert result.exit_code == 1 and "end record is not signed, but its run record names" in result.stderr


def test_a_rematch_checks_the_original_logs_signatures_with_its_key_or_says_it_did_not(
    runner: CliRunner, scanned: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    """A re-match of a signed log went ahead whatever its signatures were (another key, a
    forged one) and its new log said nothing of them."""
    log, _, pub = scanned
    other = tmp_path / "other.pem"
    assert runner.invoke(cli, ["keygen", str(other)]).exit_code == 0
    common = ["--db", str(tmp_path / "s.db"), "--examiner", "R", "--case", "C"]

    def rematch(name: str, *extra: str) -> tuple[int, str, list[str]]:
        new = tmp_path / name
        done = runner.invoke(cli, ["rematch", str(log), *common, "--log", str(new), *extra])
        if not new.exists():
            return done.exit_code, done.output, []
        end = json.loads(new.read_bytes().splitlines()[-1])
        return done.exit_code, done.output, list(end["notes"])

    code, _, notes = rematch("unchecked.jsonl")
    assert code == 1 and any("signature(s)" in n and "were not checked" in n for n in notes)
    code, _, notes = rematch("checked.jsonl", "--public-key", str(pub))
    assert code == 1 and any("verified with the public key given" in n for n in notes), notes
    code, output, _ = rematch("refused.jsonl", "--public-key", f"{other}.pub")
    assert code == 2 and "not by the given public key" in output, output
    assert not (tmp_path / "refused.jsonl").exists()


def test_the_figures_of_a_failed_log_never_count_its_bad_line(
    runner: CliRunner, scanned: tuple[Path, Path, Path]
) -> None:
    """A signed end record whose counts fail was counted among the signatures 'before it'."""
    log, _, _ = scanned

    def bad_counts(rec: dict[str, object]) -> None:
        rec["counts"]["files"] = -1  # type: ignore[index]

    result = runner.invoke(cli, ["verify", str(_reseal_last(log, bad_counts)), "--json"])
    assert result.exit_code == 1, result.output
    found = json.loads(result.stdout)
    lines = len(log.read_bytes().splitlines())
    assert found["line"] == lines and "counts" in found["error"], found
    assert found["records"] == lines - 1
    signed_before = sum(b'"signature"' in line for line in log.read_bytes().splitlines()[:-1])
    assert found["signatures"] == signed_before


def test_an_edited_line_is_never_counted_among_those_that_verified(
    runner: CliRunner, scanned: tuple[Path, Path, Path]
) -> None:
    """An edited line shows where the next line's prev fails: 'line N+1: prev is not the
    SHA-256 of line N ... N record(s) before it verified' counted the edited line N."""
    log, _, _ = scanned
    lines = log.read_bytes().splitlines()
    edited = next(i for i, line in enumerate(lines) if b'"type":"match"' in line)  # 0-based
    lines[edited] = lines[edited].replace(b'"size":', b'"size":1', 1)
    write_lines(log, lines)
    result = runner.invoke(cli, ["verify", str(log), "--json"])
    found = json.loads(result.stdout)
    assert found["line"] == edited + 2 and "prev is not the SHA-256" in found["error"], found
    assert found["records"] == edited  # the lines before the edited one


@pytest.mark.parametrize(
    "change", ["swapped", "edited", "missing", "moved beside the log", "name reused", "copied, the copy edited"]
)
def test_verify_checks_the_inventory_the_log_sealed(
    runner: CliRunner, scanned: tuple[Path, Path, Path], tmp_path: Path, change: str
) -> None:
    """Before: the end record seals the inventory's SHA-256 (reports and rematch read it), yet
    verify said OK, exit 0, of a log whose inventory was swapped for another run's or edited."""
    import shutil
    import sqlite3

    log, _, _ = scanned
    inventory = Path(f"{log}.inventory.db")
    sealed = hashlib.sha256(inventory.read_bytes()).hexdigest()
    intact = runner.invoke(cli, ["verify", str(log)])
    assert intact.exit_code == 0 and f"inventory {inventory}: as sealed (SHA-256 {sealed})" in intact.output
    if change == "swapped":
        other = tmp_path / "other.jsonl"
        assert runner.invoke(cli, ["scan", str(FIXTURES / "evidence"), "--examiner", "E", "--case", "C2",
                                   "--db", str(tmp_path / "s.db"), "--log", str(other), "-q"]).exit_code == 1  # fmt: skip
        shutil.copyfile(f"{other}.inventory.db", inventory)
    elif change == "edited":
        conn = sqlite3.connect(inventory)
        conn.execute("UPDATE entries SET verdict = 'known' WHERE rowid = 1")
        conn.commit()
        conn.close()
    elif change == "missing":
        inventory.unlink()
    else:  # the case folder moved: the log and its inventory, to another folder
        moved = tmp_path / "moved"
        moved.mkdir()
        original = log
        log = Path(shutil.move(log, moved / log.name))
        shutil.move(inventory, moved / inventory.name)
        if change == "name reused":  # another scan's log and inventory now at the sealed path
            assert runner.invoke(cli, ["scan", str(FIXTURES / "evidence"), "--examiner", "E", "--case", "C3",
                                       "--db", str(tmp_path / "s.db"), "--log", str(original), "-q"]).exit_code == 1  # fmt: skip
        if change == "copied, the copy edited":  # the originals stay where the record says
            shutil.copyfile(log, original)
            shutil.copyfile(moved / inventory.name, inventory)
            conn = sqlite3.connect(moved / inventory.name)
            conn.execute("UPDATE entries SET verdict = 'known' WHERE rowid = 1")
            conn.commit()
            conn.close()
    result = runner.invoke(cli, ["verify", str(log), "--json"])
    found = json.loads(result.stdout)["inventory"]
    assert found["sealed_sha256"] == sealed
    if change in ("swapped", "edited", "copied, the copy edited"):
        # (A copy of a case folder whose inventory was edited verified "as sealed" by the
        # untouched original at the recorded path: the one beside the log decides.)
        assert result.exit_code == 1, result.output
        assert found["status"] == "differs" and found["sha256"] != sealed
        text = runner.invoke(cli, ["verify", str(log)]).output
        assert text.startswith(f"FAILED: {log}: ") and "chain intact" in text
        held = log.parent / inventory.name
        assert f"its inventory {held} is not the one the log sealed" in text
    elif change == "missing":
        assert result.exit_code == 0 and found["status"] == "missing", result.output
        text = runner.invoke(cli, ["verify", str(log)]).output
        assert text.startswith("OK: ") and f"inventory not checked: it was not found (looked for {inventory})" in text
    else:
        assert result.exit_code == 0 and found["status"] == "matches", result.output
        assert found["path"] == str(log.parent / inventory.name)


@pytest.mark.parametrize("change", ["copy edited", "copy edited, its log note too", "original's name reused"])
def test_a_renamed_copy_of_a_log_is_checked_with_the_inventory_renamed_beside_it(
    runner: CliRunner, scanned: tuple[Path, Path, Path], tmp_path: Path, change: str
) -> None:
    """Before: for an archived copy renamed (case42-run.jsonl and its inventory renamed alike),
    the inventory at the recorded path decided: an edit of the copy's verdicts verified "as
    sealed" by the untouched original, and an intact copy FAILED once a new scan reused the
    original's name. The one beside the copy is what the reviewer holds (a validator)."""
    import shutil
    import sqlite3

    log, _, _ = scanned
    inventory = Path(f"{log}.inventory.db")
    archive = tmp_path / "arch"
    archive.mkdir()
    copy = Path(shutil.copyfile(log, archive / f"case42-{log.name}"))
    held = Path(shutil.copyfile(inventory, archive / f"case42-{inventory.name}"))
    if change.startswith("copy edited"):
        conn = sqlite3.connect(held)
        conn.execute("UPDATE entries SET verdict = 'unknown' WHERE verdict = 'notable'")
        if change.endswith("too"):  # (a review: the note of its log is not sealed)
            conn.execute("UPDATE meta SET value = ? WHERE key = 'log_origin'", ["0" * 64])
        conn.commit()
        conn.close()
    else:
        log.unlink()
        inventory.unlink()
        again = runner.invoke(cli, ["scan", str(FIXTURES / "evidence"), "--examiner", "E", "--case", "C9",
                                    "--db", str(tmp_path / "s.db"), "--log", str(log), "-q"])  # fmt: skip
        assert again.exit_code == 1, again.output
    result = runner.invoke(cli, ["verify", str(copy), "--json"])
    found = json.loads(result.stdout)["inventory"]
    assert found["path"] == str(held), found
    if change.startswith("copy edited"):
        assert result.exit_code == 1 and found["status"] == "differs", result.output
    else:
        assert result.exit_code == 0 and found["status"] == "matches", result.output


def test_verify_json_of_a_tampered_log_gives_the_bytes_that_failed(
    runner: CliRunner, scanned: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    """Before: an intact log's JSON gave its size and SHA-256, a tampered one's did not: a
    reviewer could not tie the failure to the very file examined."""
    log, _, _ = scanned
    lines = log.read_bytes().splitlines(keepends=True)
    lines[1] = lines[1].replace(b'"size":', b'"size":1', 1)
    tampered = write_lines(tmp_path / "t.jsonl", [line.rstrip(b"\n") for line in lines])
    result = runner.invoke(cli, ["verify", str(tampered), "--json"])
    assert result.exit_code == 1
    said = json.loads(result.stdout)
    assert said["intact"] is False and said["line"] == 3
    assert said["size"] == tampered.stat().st_size
    assert said["sha256"] == hashlib.sha256(tampered.read_bytes()).hexdigest()


def test_a_failed_signature_says_which_records_no_signature_covers(
    runner: CliRunner, scanned: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    """A forger edits a match record and computes the chain again: the end record's signature
    fails, and verify went on "the 13 record(s) before it verified", which invited trust in
    the very record changed. It now says which line the last good signature covers, and that
    the records after it are held by their chain alone."""
    log, _, pub = scanned
    records = [json.loads(line) for line in log.read_bytes().splitlines()]
    at = next(i for i, r in enumerate(records) if r["type"] == "match")
    records[at]["size"] += 1
    forged = tmp_path / "forged.jsonl"
    forged.write_bytes(rechain(records, at + 1))
    result = runner.invoke(cli, ["verify", str(forged), "--public-key", str(pub)])
    assert result.exit_code == 1
    assert "signature does not verify" in result.output
    assert f"the {len(records) - 1} record(s) before it verified, 0 signature(s)" not in result.output
    assert "by their chain alone: no signature verified before it" in result.output, result.output


def test_an_incomplete_log_counts_the_records_it_holds_not_those_before_its_last(
    runner: CliRunner, scanned: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    """"line 13: log is incomplete ...; the 13 record(s) before it verified": 12 came before."""
    log, _, _ = scanned
    lines = log.read_bytes().splitlines()[:-1]
    cut = write_lines(tmp_path / "cut.jsonl", lines)
    result = runner.invoke(cli, ["verify", str(cut)])
    assert result.exit_code == 1
    assert f"line {len(lines)}: log is incomplete" in result.output
    assert f"the {len(lines)} record(s) it holds verified" in result.output, result.output


@pytest.mark.parametrize(
    ("field", "value", "said"),
    [("size", -5, "is not a byte count"), ("mtime", "2026-99-99T99:99:99.000000Z", "no UTC date and time of day"),
     ("md5", "ZZ" + "0" * 30, "is not lowercase hex"), ("time", "2026-02-31T25:61:61.000000Z", "is not UTC ISO 8601")],
)  # fmt: skip
def test_a_match_record_whose_fields_break_the_contract_fails_even_rechained(
    runner: CliRunner, tmp_path: Path, field: str, value: object, said: str
) -> None:
    """An unsigned log forged with a size of -5, a 99th month or an md5 of 'ZZ...' (its chain
    computed again) verified OK, and its DFXML and CASE reports failed their own schemas."""
    log = tmp_path / "run.jsonl"
    result = runner.invoke(cli, ["scan", str(FIXTURES / "evidence"), "--examiner", "E", "--case", "C",
                                 "--db", str(tmp_path / "s.db"), "--list", str(FIXTURES / "hashlists" / "notable.csv"),
                                 "--log", str(log), "-q"])  # fmt: skip
    assert result.exit_code == 1, result.output
    records = [json.loads(line) for line in log.read_bytes().splitlines()]
    at = next(i for i, r in enumerate(records) if r["type"] == "match")
    if field == "md5":
        records[at]["digests"]["md5"] = value
    else:
        records[at][field] = value
    forged = tmp_path / "forged.jsonl"
    forged.write_bytes(rechain(records, at))
    checked = runner.invoke(cli, ["verify", str(forged)])
    assert checked.exit_code == 1, checked.output
    assert f"line {at + 1}: " in checked.output and said in checked.output, checked.output


def test_a_chain_break_is_counted_alike_with_the_key_and_without(
    runner: CliRunner, scanned: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    """A line edited in place breaks the chain at the next line; the edited line is not counted
    as verified. With --public-key it was (each unsigned line taken as 'checked'): one more."""
    log, _, pub = scanned
    lines = log.read_bytes().splitlines()
    at = next(i for i, line in enumerate(lines) if b'"type":"match"' in line)
    lines[at] = lines[at].replace(b'"size":', b'"size":1', 1)
    edited = write_lines(tmp_path / "e.jsonl", lines)
    plain = json.loads(runner.invoke(cli, ["verify", str(edited), "--json"]).stdout)
    keyed = json.loads(runner.invoke(cli, ["verify", str(edited), "--json", "--public-key", str(pub)]).stdout)
    assert plain["line"] == keyed["line"] == at + 2
    assert plain["records"] == keyed["records"] == at, (plain, keyed)


def test_a_stale_inventory_beside_a_log_whose_own_is_elsewhere_is_named_with_the_one_that_matches(
    runner: CliRunner, tmp_path: Path
) -> None:
    """The inventory beside a log decides; when the log recorded another (--inventory) that is
    the sealed one, the failure now names it and what to do (a review: it said only FAILED)."""
    db = tmp_path / "s.db"
    log = tmp_path / "l.jsonl"
    base = ["scan", str(FIXTURES / "evidence"), "--examiner", "E", "--case", "C", "--db", str(db), "-q",
            "--list", str(FIXTURES / "hashlists" / "notable.csv"), "--log", str(log)]  # fmt: skip
    assert runner.invoke(cli, base).exit_code == 1
    log.unlink()  # its inventory l.jsonl.inventory.db stays
    custom = tmp_path / "custom.db"
    assert runner.invoke(cli, [*base, "--inventory", str(custom)]).exit_code == 1
    result = runner.invoke(cli, ["verify", str(log)])
    assert result.exit_code == 1, result.output
    said = " ".join(result.output.split())
    assert f"{custom}, where the log recorded its inventory, is the one it sealed" in said, said
    assert "move that one away if it is not this run's" in said
    found = json.loads(runner.invoke(cli, ["verify", str(log), "--json"]).stdout)["inventory"]
    assert found["status"] == "differs" and found["sealed_elsewhere"] == str(custom)
