"""`matcher batch`: one log per item, failures recorded, finished items skipped on rerun."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import FIXTURES

from matcher.cli import cli
from matcher.cli import main  # noqa: F401  (entry point exists)


def test_manifest_of_three_with_one_unreadable(runner: CliRunner, tmp_path: Path) -> None:
    shutil.copytree(FIXTURES / "evidence", tmp_path / "a")
    shutil.copytree(FIXTURES / "evidence" / "system", tmp_path / "b")
    manifest = tmp_path / "items.csv"
    manifest.write_text(
        "evidence,case,examiner,authority,log\n"
        "a,C-1,E. One,Warrant 1,logs/a.jsonl\n"
        "missing-item,C-2,E. Two,,logs/missing.jsonl\n"
        "b,C-3,E. Three,,\n"
    )
    db = tmp_path / "s.db"
    args = ["batch", str(manifest), "--db", str(db), "--list", str(FIXTURES / "hashlists" / "notable.csv"), "--json"]
    result = runner.invoke(cli, args, catch_exceptions=False)
    items = json.loads(result.stdout)
    assert [i["status"] for i in items] == ["complete", "failed", "complete"]
    assert result.exit_code == 2  # the worst item's code
    assert items[0]["exit_code"] == 1 and items[2]["exit_code"] == 0
    assert "does not exist" in items[1]["message"]
    assert (tmp_path / "logs" / "a.jsonl").exists()
    assert Path(items[2]["log"]).exists() and Path(items[2]["log"] + ".inventory.db").exists()
    for i in (0, 2):
        assert runner.invoke(cli, ["verify", items[i]["log"]]).exit_code == 0
    first = json.loads((tmp_path / "logs" / "a.jsonl").read_text().splitlines()[0])
    assert first["examiner"] == "E. One" and first["authority"] == "Warrant 1"
    before = (tmp_path / "logs" / "a.jsonl").read_bytes()
    rerun = runner.invoke(cli, args, catch_exceptions=False)
    again = json.loads(rerun.stdout)
    assert [i["status"] for i in again] == ["done-before", "failed", "done-before"]
    assert (tmp_path / "logs" / "a.jsonl").read_bytes() == before
    assert again[0]["counts"]["notable"] == items[0]["counts"]["notable"]


def test_manifest_without_required_columns_runs_nothing(runner: CliRunner, tmp_path: Path) -> None:
    manifest = tmp_path / "bad.csv"
    manifest.write_text("evidence,case\nx,y\n")
    result = runner.invoke(cli, ["batch", str(manifest), "--db", str(tmp_path / "s.db")])
    assert result.exit_code == 2 and "examiner" in result.output


def test_the_batch_code_hides_no_item_trouble() -> None:
    from matcher.batch import worst_exit_code

    assert worst_exit_code([]) == 0
    assert worst_exit_code([0, 1, 4]) == 5  # a match in one item, unreadable files in another
    assert worst_exit_code([8, 1]) == 9
    assert worst_exit_code([1, 2, 4]) == 2  # a failed item stands alone
    assert worst_exit_code([16, 0]) == 16


def test_batch_passes_the_archive_options_to_every_item(
    runner: CliRunner, tmp_path: Path
) -> None:
    import hashlib
    import zipfile

    (tmp_path / "ev").mkdir()
    secret = b"a benign synthetic notable member\n"
    with zipfile.ZipFile(tmp_path / "ev" / "outer.zip", "w") as zf:
        zf.writestr("inner/member.txt", secret)
    (tmp_path / "n.sha256").write_text(f"{hashlib.sha256(secret).hexdigest()}  member\n")
    manifest = tmp_path / "items.csv"
    manifest.write_text("evidence,case,examiner,log\nev,C-1,E. One,logs/ev.jsonl\n")
    common = ["batch", str(manifest), "--db", str(tmp_path / "s.db")]
    common += ["--list", str(tmp_path / "n.sha256"), "--json"]
    result = runner.invoke(cli, [*common, "--archives", "--max-depth", "2"])
    [item] = json.loads(result.stdout)
    assert item["exit_code"] == 1 and result.exit_code == 1, result.output
    records = [json.loads(x) for x in (tmp_path / "logs" / "ev.jsonl").read_text().splitlines()]
    [match] = [r for r in records if r["type"] == "match"]
    assert match["path"].endswith("outer.zip!inner/member.txt")


def test_an_item_killed_before_its_first_log_record_is_resumed(runner: CliRunner, tmp_path: Path) -> None:
    """kill -9 between creating an item's log and writing its run record leaves 0 bytes:
    the rerun resumes it (it used to fail on every rerun as an empty log)."""
    shutil.copytree(FIXTURES / "evidence", tmp_path / "a")
    manifest = tmp_path / "items.csv"
    manifest.write_text("evidence,case,examiner,log\na,C-1,E. One,logs/a.jsonl\n")
    (tmp_path / "logs").mkdir()
    (tmp_path / "logs" / "a.jsonl").write_bytes(b"")
    db = tmp_path / "s.db"
    args = ["batch", str(manifest), "--db", str(db), "--list", str(FIXTURES / "hashlists" / "notable.csv"), "--json"]
    items = json.loads(runner.invoke(cli, args, catch_exceptions=False).stdout)
    assert [i["status"] for i in items] == ["complete"], items
    assert runner.invoke(cli, ["verify", items[0]["log"]]).exit_code == 0


def run_one_item(runner: CliRunner, tmp_path: Path, log_column: str) -> dict[str, object]:
    """A batch of one item (a copy of the fixture evidence as `a`) with the given log column."""
    shutil.copytree(FIXTURES / "evidence", tmp_path / "a", dirs_exist_ok=True)
    manifest = tmp_path / "items.csv"
    manifest.write_text(f"evidence,case,examiner,log\na,C-1,E. One,{log_column}\n")
    args = ["batch", str(manifest), "--db", str(tmp_path / "s.db"), "--list", str(FIXTURES / "hashlists" / "notable.csv"),
            "--json"]  # fmt: skip
    (item,) = json.loads(runner.invoke(cli, args, catch_exceptions=False).stdout)
    return item  # type: ignore[no-any-return]


def test_an_item_whose_log_lies_in_its_evidence_fails_before_any_folder_is_made(runner: CliRunner, tmp_path: Path) -> None:
    shutil.copytree(FIXTURES / "evidence", tmp_path / "a")
    before = sorted((tmp_path / "a").rglob("*"))
    item = run_one_item(runner, tmp_path, "a/items-logs/a.jsonl")
    assert item["status"] == "failed"
    assert "lies inside evidence" in str(item["message"])
    assert "Choose a path outside it with the manifest's log column." in str(item["message"])
    assert sorted((tmp_path / "a").rglob("*")) == before  # no items-logs/ folder made


def test_an_item_whose_log_column_names_a_file_that_is_no_log_fails_untouched(runner: CliRunner, tmp_path: Path) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_bytes(b"case notes, no line end")
    assert run_one_item(runner, tmp_path, "notes.txt")["status"] == "failed"
    assert notes.read_bytes() == b"case notes, no line end" and not list(tmp_path.glob("notes.txt.*"))


def test_a_complete_log_of_other_evidence_or_another_case_is_never_taken_as_done(runner: CliRunner, tmp_path: Path) -> None:
    """An item whose log column names a finished scan of something else used to read as
    `done-before`, exit 0 with that scan's counts: the item was never scanned (its notable files
    unread). The scan of the same evidence under the same case and authority is still taken."""
    shutil.copytree(FIXTURES / "evidence", tmp_path / "a")
    shutil.copytree(FIXTURES / "evidence" / "system", tmp_path / "b")
    manifest = tmp_path / "items.csv"
    manifest.write_text("evidence,case,examiner,authority,log\nb,C-1,E. One,W 1,logs/b.jsonl\n")
    db = tmp_path / "s.db"
    args = ["batch", str(manifest), "--db", str(db), "--list", str(FIXTURES / "hashlists" / "notable.csv"), "--json"]
    (first,) = json.loads(runner.invoke(cli, args, catch_exceptions=False).stdout)
    assert first["status"] == "complete"
    log_b = (tmp_path / "logs" / "b.jsonl").read_bytes()
    rows = {
        "evidence": "a,C-1,E. One,W 1,logs/b.jsonl",
        "case": "b,C-2,E. One,W 1,logs/b.jsonl",
        "authority": "b,C-1,E. One,W 2,logs/b.jsonl",
    }
    for what, row in rows.items():
        manifest.write_text(f"evidence,case,examiner,authority,log\n{row}\n")
        result = runner.invoke(cli, args, catch_exceptions=False)
        (item,) = json.loads(result.stdout)
        assert item["status"] == "failed" and result.exit_code == 2, (what, item)
        assert "is not this item's" in item["message"] and what in item["message"], item["message"]
        assert (tmp_path / "logs" / "b.jsonl").read_bytes() == log_b
    # Another examiner (a handover) with the same case, authority and evidence: done before.
    manifest.write_text("evidence,case,examiner,authority,log\nb,C-1,E. Two,W 1,logs/b.jsonl\n")
    (item,) = json.loads(runner.invoke(cli, args, catch_exceptions=False).stdout)
    assert item["status"] == "done-before" and item["counts"] == first["counts"]


def test_a_done_item_whose_inventory_is_gone_or_changed_says_so(
    runner: CliRunner, tmp_path: Path
) -> None:
    """Before: reported done-before with its inventory's path and no word: a report or a
    rematch of it then failed."""
    shutil.copytree(FIXTURES / "evidence", tmp_path / "a")
    manifest = tmp_path / "items.csv"
    manifest.write_text("evidence,case,examiner,log\na,C-1,E. One,logs/a.jsonl\n")
    args = ["batch", str(manifest), "--db", str(tmp_path / "s.db"), "--json",
            "--list", str(FIXTURES / "hashlists" / "notable.csv")]  # fmt: skip
    (first,) = json.loads(runner.invoke(cli, args, catch_exceptions=False).stdout)
    inventory = Path(first["inventory"])
    (again,) = json.loads(runner.invoke(cli, args, catch_exceptions=False).stdout)
    assert again["status"] == "done-before" and not any("inventory" in n for n in again["notes"])
    # A case folder moved: the inventory beside its log is the one found (as rematch does).
    moved = tmp_path / "moved"
    (tmp_path / "logs").rename(moved)
    manifest.write_text("evidence,case,examiner,log\na,C-1,E. One,moved/a.jsonl\n")
    (there,) = json.loads(runner.invoke(cli, args, catch_exceptions=False).stdout)
    assert there["status"] == "done-before" and not any("inventory" in n for n in there["notes"])
    assert there["inventory"] == str(moved / inventory.name)
    moved.rename(tmp_path / "logs")
    manifest.write_text("evidence,case,examiner,log\na,C-1,E. One,logs/a.jsonl\n")
    with inventory.open("ab") as stream:
        stream.write(b"\0")
    done = runner.invoke(cli, args, catch_exceptions=False)
    (changed,) = json.loads(done.stdout)
    # (It was done-before, exit 0, the change a note, where verify and report fail the log.)
    assert changed["status"] == "failed" and changed["exit_code"] == 2 and done.exit_code == 2
    assert "does not verify: its inventory" in changed["message"], changed
    assert "is not the one the log sealed" in changed["message"], changed
    inventory.unlink()
    (gone,) = json.loads(runner.invoke(cli, args, catch_exceptions=False).stdout)
    assert any(f"its inventory {inventory} is missing" in n for n in gone["notes"]), gone
    assert "is missing" in gone["message"]


def test_each_item_gives_its_log_head_as_scan_does(runner: CliRunner, tmp_path: Path) -> None:
    """The README's tamper check needs the head noted outside the log; batch gave none."""
    import hashlib

    shutil.copytree(FIXTURES / "evidence", tmp_path / "a")
    manifest = tmp_path / "items.csv"
    manifest.write_text("evidence,case,examiner,log\na,C-1,E. One,logs/a.jsonl\nmissing,C-2,E,logs/m.jsonl\n")
    args = ["batch", str(manifest), "--db", str(tmp_path / "s.db"), "--list", str(FIXTURES / "hashlists" / "notable.csv"),
            "--json"]  # fmt: skip
    for _ in ("ran", "done before"):
        result = runner.invoke(cli, args, catch_exceptions=False)
        items = json.loads(result.stdout)
        last_line = (tmp_path / "logs" / "a.jsonl").read_bytes().splitlines()[-1]
        head = hashlib.sha256(last_line).hexdigest()
        assert items[0]["head"] == head and items[1]["head"] is None
        assert f"head: {head}" in result.stderr
        assert runner.invoke(cli, ["verify", items[0]["log"], "--expect-head", head]).exit_code == 0


def test_candidates_only_reaches_every_item(runner: CliRunner, tmp_path: Path) -> None:
    """The README's synopsis offers scan options to batch; --candidates-only was refused."""
    shutil.copytree(FIXTURES / "evidence", tmp_path / "a")
    manifest = tmp_path / "items.csv"
    manifest.write_text("evidence,case,examiner,log\na,C-1,E. One,logs/a.jsonl\n")
    args = ["batch", str(manifest), "--db", str(tmp_path / "s.db"), "--list", str(FIXTURES / "hashlists" / "notable.csv"),
            "--candidates-only", "--json"]  # fmt: skip
    result = runner.invoke(cli, args, catch_exceptions=False)
    (item,) = json.loads(result.stdout)
    assert item["status"] == "complete", item
    records = [json.loads(line) for line in (tmp_path / "logs" / "a.jsonl").read_text().splitlines()]
    assert records[0]["options"]["candidates_only"] is True
    assert item["counts"]["skipped_by_reason"].get("not-candidate", 0) > 0


def test_a_candidates_only_fallback_is_said_as_each_item_begins(runner: CliRunner, tmp_path: Path) -> None:
    """Before: a batch said it in each item's row only, once that item's full scan was done."""
    for name in ("a", "b"):
        shutil.copytree(FIXTURES / "evidence", tmp_path / name)
    manifest = tmp_path / "items.csv"
    manifest.write_text("evidence,case,examiner,log\na,C-1,E. One,logs/a.jsonl\nb,C-1,E. One,logs/b.jsonl\n")
    args = ["batch", str(manifest), "--db", str(tmp_path / "s.db"), "--list", str(FIXTURES / "hashlists" / "notable.md5"),
            "--candidates-only"]  # fmt: skip
    result = runner.invoke(cli, args, catch_exceptions=False)
    lines = result.stderr.splitlines()
    said = "note: --candidates-only ignored (full scan): notable list(s) with entries that give no usable size"
    for row in (1, 2):
        early = [i for i, line in enumerate(lines) if line.startswith(f"[{row}] {said}")]
        done = [i for i, line in enumerate(lines) if line.startswith(f"[{row}] ") and ": complete" in line]
        assert len(early) == 1 and len(done) == 1 and early[0] < done[0], result.stderr


def _refused_manifest(runner: CliRunner, tmp_path: Path, text: str) -> str:
    (tmp_path / "a").mkdir(exist_ok=True)
    (tmp_path / "b").mkdir(exist_ok=True)
    manifest = tmp_path / "m.csv"
    manifest.write_text(text)
    result = runner.invoke(cli, ["batch", str(manifest), "--db", str(tmp_path / "s.db")])
    assert result.exit_code == 2, result.output
    assert not (tmp_path / "m-logs").exists()  # nothing ran
    return result.output


def test_a_row_with_an_unquoted_comma_is_refused_not_shifted(runner: CliRunner, tmp_path: Path) -> None:
    """Before: examiner `Doe`, authority `Jane` recorded, `warrant 77` dropped, exit 0."""
    out = _refused_manifest(
        runner, tmp_path, "evidence,case,examiner,authority\na,C-1,Doe, Jane,warrant 77\n"
    )
    assert "m.csv:2:" in out and "more fields than the header's 4" in out and "quote" in out
    out = _refused_manifest(runner, tmp_path, "evidence,case,examiner,authority\na,C-1,Doe\n")
    assert "m.csv:2:" in out and "fewer fields than the header's 4" in out


# Manifests a strict CSV read refuses, each named at the line where its fault starts.
_BAD_QUOTING = [
    ('evidence,case,examiner\na,C-7,"Doe, Jane\nb,C-7,J. Roe\n', 2, "a quote is left open"),
    ('evidence,case,examiner\na,C-7,J. Roe\nb,C-7,"Doe, Jane\nmore\n"\n', 3,
     "examiner value holds a line break"),
    ('evidence,case,examiner\na,C-7,"Doe, Jane', 2, "a quote is left open"),
    ('evidence,case,examiner\n\n\nb,C-7,"Doe\nJane"\n', 4, "examiner value holds a line break"),
    ("evidence,case,examiner\n\n\na,C-1,\n", 4, "empty examiner"),
    ('evidence,case,examiner\na,C1,A\n\n\nb,C1,"x\n', 5, "a quote is left open"),
    ('evidence,case,examiner\na,C1,A\n\n\nb,C1,"x"y\n', 5, "not a readable CSV"),
    ('evidence,case,examiner\r\na,C1,"A ""B"" C"\r\n\r\nb,C1,"x\r\n', 4, "a quote is left open"),
]  # fmt: skip


@pytest.mark.parametrize(("text", "line", "said"), _BAD_QUOTING)
def test_a_quote_left_open_is_refused_not_taken_as_one_value(
    runner: CliRunner, tmp_path: Path, text: str, line: int, said: str
) -> None:
    """Before: exit 0, one item run, examiner 'Doe, Jane\\nb,C-7,J. Roe'; item b never run."""
    out = _refused_manifest(runner, tmp_path, text)
    assert f"m.csv:{line}:" in out and said in out, out


def test_a_column_the_manifest_does_not_know_is_refused(runner: CliRunner, tmp_path: Path) -> None:
    """Before, `authorty` was ignored and the log recorded no authority."""
    out = _refused_manifest(runner, tmp_path, "evidence,case,examiner,authorty\na,C-1,E,W-1\n")
    assert "'authorty'" in out and "authority" in out
    out = _refused_manifest(runner, tmp_path, "evidence,case,examiner,case\na,C-1,E,C-2\n")
    assert "names case twice" in out


def test_the_same_evidence_for_the_same_case_twice_is_refused(runner: CliRunner, tmp_path: Path) -> None:
    """Before, each row was scanned into its own log: the case's matches counted twice."""
    out = _refused_manifest(runner, tmp_path, "evidence,case,examiner\na,C-1,E\nb,C-1,E\n./a,C-1,F\n")
    assert "rows 2 and 4 scan the same evidence for the same case" in out


def test_each_item_shows_its_notes_and_inventory(runner: CliRunner, tmp_path: Path) -> None:
    """An item's end-record notes were shown only when it failed (in its message), and --json
    had no `notes` array or `inventory` key, unlike scan --json."""
    shutil.copytree(FIXTURES / "evidence" / "system", tmp_path / "a")
    shutil.copytree(FIXTURES / "evidence" / "system", tmp_path / "b")
    manifest = tmp_path / "items.csv"
    manifest.write_text("evidence,case,examiner,log\na,C-1,E,a.jsonl\nb,C-2,E,b.jsonl\n")
    listed = FIXTURES / "hashlists" / "notable.csv"
    args = ["batch", str(manifest), "--db", str(tmp_path / "s.db"), "--list", str(listed), "--json"]
    for rerun in (False, True):
        result = runner.invoke(cli, args, catch_exceptions=False)
        assert result.exit_code == 0, result.output
        first, second = json.loads(result.stdout)
        assert first["notes"] == []
        note = f"list {listed} was already imported as the notable list 'notable.csv'"
        assert second["notes"] == [note]
        assert f"      note: {note}\n" in result.stderr
        for item, name in ((first, "a"), (second, "b")):
            assert item["inventory"] == str(tmp_path / f"{name}.jsonl.inventory.db")
            assert {"row", "status", "message", "counts", "head", "log"} <= set(item)
        assert [first["status"], second["status"]] == (["done-before"] * 2 if rerun else ["complete"] * 2)


def test_a_signal_as_an_item_ends_stops_the_batch(runner: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Before: a Ctrl-C landing after an item's last entry (in its final flush) was held, then
    dropped with the scan's handlers: the batch ran every remaining item, complete, exit 1."""
    import matcher.scan as scan_mod

    shutil.copytree(FIXTURES / "evidence", tmp_path / "a")
    shutil.copytree(FIXTURES / "evidence" / "system", tmp_path / "b")
    manifest = tmp_path / "items.csv"
    manifest.write_text("evidence,case,examiner\na,C-1,E\nb,C-2,E\n")
    original = scan_mod.append_end_record

    def end_after_a_signal(*args: object, **kwargs: object) -> None:
        os.kill(os.getpid(), signal.SIGINT)  # lands after the work loop: held
        original(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(scan_mod, "append_end_record", end_after_a_signal)
    db = tmp_path / "s.db"
    args = ["batch", str(manifest), "--db", str(db), "--list", str(FIXTURES / "hashlists" / "notable.csv"), "--json"]
    result = runner.invoke(cli, args, catch_exceptions=False)
    items = json.loads(result.stdout)
    assert [i["status"] for i in items] == ["complete", "pending"], items
    assert items[0]["exit_code"] & 8 and result.exit_code & 8, result.output
    # An item never run has no exit code (0 was a clean item's, which a script took it for).
    assert items[1]["exit_code"] is None and items[1]["counts"] == {}
    assert re.search(r"\n +2  pending +- +- +- +- ", result.stderr), result.stderr  # no counts
    # As scan says how to continue (--resume), the batch does.
    assert "1 item(s) not finished: run the same batch command again to continue them" in result.stderr
    assert any("SIGINT arrived as this item ended" in n for n in items[0]["notes"])
    monkeypatch.setattr(scan_mod, "append_end_record", original)
    rerun = json.loads(runner.invoke(cli, args, catch_exceptions=False).stdout)
    assert [i["status"] for i in rerun] == ["done-before", "complete"]


def test_a_failed_item_shows_what_its_log_ended_with(runner: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Before: an item whose scan failed after its log had ended (its workers killed: an
    `interrupted` end with matches) showed 0 files, 0 notable and no head."""
    import matcher.batch as batch_mod
    from matcher.scan import ScanAborted

    shutil.copytree(FIXTURES / "evidence", tmp_path / "a")
    manifest = tmp_path / "items.csv"
    manifest.write_text("evidence,case,examiner\na,C-1,E\n")
    real = batch_mod.run_scan

    def ended_then_failed(options: object, **kwargs: object) -> object:
        real(options, **kwargs)  # type: ignore[arg-type]
        raise ScanAborted("A hashing worker stopped (killed by signal 9)")

    monkeypatch.setattr(batch_mod, "run_scan", ended_then_failed)
    db = tmp_path / "s.db"
    args = ["batch", str(manifest), "--db", str(db), "--list", str(FIXTURES / "hashlists" / "notable.csv"), "--json"]
    items = json.loads(runner.invoke(cli, args, catch_exceptions=False).stdout)
    assert items[0]["status"] == "failed" and items[0]["counts"]["notable"] > 0, items
    assert items[0]["head"], items


def test_an_item_whose_log_does_not_verify_is_said_to_be_refused_for_its_log(runner: CliRunner, tmp_path: Path) -> None:
    """Before, the item's message was the bare verify reason (`line 3: end record's
    self_sha256 ...`), which did not say that it was the item's log that failed."""
    first = run_one_item(runner, tmp_path, "logs/a.jsonl")
    assert first["status"] == "complete"
    log = tmp_path / "logs" / "a.jsonl"
    tampered = log.read_bytes().replace(b'"E. One"', b'"E. Two"', 1)
    log.write_bytes(tampered)
    item = run_one_item(runner, tmp_path, "logs/a.jsonl")
    assert item["status"] == "failed" and item["exit_code"] == 2
    assert str(item["message"]).startswith(f"refused: the log {log} does not verify: line 2: prev "), item
    assert log.read_bytes() == tampered


def test_nested_evidence_for_the_same_case_is_refused(runner: CliRunner, tmp_path: Path) -> None:
    """Before, `share` and `share/disk1` of one case were both scanned: the files of disk1 (and
    the case's matches) counted twice. Nesting is found by real paths; other cases may nest."""
    from matcher.batch import read_manifest

    (tmp_path / "a" / "disk1").mkdir(parents=True)
    out = _refused_manifest(runner, tmp_path, "evidence,case,examiner\nb,C-1,E\na/disk1,C-1,E\na,C-1,F\n")
    assert f"row 3's evidence {tmp_path / 'a' / 'disk1'} lies inside row 4's evidence {tmp_path / 'a'}" in out
    assert "counted twice" in out
    (tmp_path / "link").symlink_to(tmp_path / "a")
    out = _refused_manifest(runner, tmp_path, "evidence,case,examiner\na,C-1,E\nlink/disk1,C-1,E\n")
    assert "row 3's evidence" in out and "lies inside row 2's evidence" in out
    manifest = tmp_path / "m.csv"
    manifest.write_text("evidence,case,examiner\na,C-1,E\na/disk1,C-2,E\n")
    assert [item.case for item in read_manifest(manifest)] == ["C-1", "C-2"]


def test_an_item_whose_log_lies_in_another_items_evidence_fails_before_writing(runner: CliRunner, tmp_path: Path) -> None:
    """Before, item 1's log and inventory were written into item 2's evidence, which item 2 then
    scanned (and hashed) as evidence: only an item's own evidence was checked."""
    shutil.copytree(FIXTURES / "evidence", tmp_path / "itemA")
    shutil.copytree(FIXTURES / "evidence" / "system", tmp_path / "itemB")
    before = sorted((tmp_path / "itemB").rglob("*"))
    manifest = tmp_path / "items.csv"
    manifest.write_text(
        "evidence,case,examiner,log\nitemA,CASE-1,J. Doe,itemB/A.jsonl\nitemB,CASE-1,J. Doe,logs/B.jsonl\n"
    )
    args = ["batch", str(manifest), "--db", str(tmp_path / "s.db"), "--list", str(FIXTURES / "hashlists" / "notable.csv"),
            "--json"]  # fmt: skip
    result = runner.invoke(cli, args, catch_exceptions=False)
    first, second = json.loads(result.stdout)
    assert first["status"] == "failed" and result.exit_code == 2
    assert f"The log {tmp_path / 'itemB' / 'A.jsonl'} lies inside evidence {tmp_path / 'itemB'}" in first["message"]
    assert "Choose a path outside it with the manifest's log column." in first["message"]
    assert second["status"] == "complete"
    assert sorted((tmp_path / "itemB").rglob("*")) == before
    assert second["counts"]["files"] == len([p for p in before if p.is_file()])


def test_a_complete_log_made_with_other_options_or_lists_is_not_taken_as_done(runner: CliRunner, tmp_path: Path) -> None:
    """Before, a rerun with --archives, --verify-image or a new --list reported the item
    `done-before`, exit 0, notes [], though a scan with those would find a notable file: the
    log was made without them. Failed as a resume with them is refused; lists imported into
    the store since are noted (as a resume notes them); --jobs may change, and a full scan
    stands for --candidates-only."""
    import hashlib
    import zipfile

    (tmp_path / "ev").mkdir()
    secret = b"a benign synthetic notable member\n"
    with zipfile.ZipFile(tmp_path / "ev" / "outer.zip", "w") as zf:
        zf.writestr("inner/member.txt", secret)
    (tmp_path / "new.sha256").write_text(f"{hashlib.sha256(secret).hexdigest()}  member\n")
    (tmp_path / "outer.sha256").write_text(
        f"{hashlib.sha256((tmp_path / 'ev' / 'outer.zip').read_bytes()).hexdigest()}  outer\n"
    )
    manifest = tmp_path / "items.csv"
    manifest.write_text("evidence,case,examiner,log\nev,C-1,E. One,logs/ev.jsonl\n")
    db = tmp_path / "s.db"
    log = tmp_path / "logs" / "ev.jsonl"
    common = ["batch", str(manifest), "--db", str(db), "--json"]
    notable = ["--list", str(FIXTURES / "hashlists" / "notable.csv")]
    (first,) = json.loads(runner.invoke(cli, [*common, *notable], catch_exceptions=False).stdout)
    assert first["status"] == "complete" and first["exit_code"] == 0
    done = log.read_bytes()
    for extra, named in (
        (["--archives"], "--archives"),
        (["--verify-image"], "--verify-image"),
        (["--algorithms", "sha256"], "algorithms"),
        (["--list", str(tmp_path / "new.sha256")], f"--list {tmp_path / 'new.sha256'}"),
    ):
        result = runner.invoke(cli, [*common, *extra], catch_exceptions=False)
        (item,) = json.loads(result.stdout)
        assert item["status"] == "failed" and result.exit_code == 2, (extra, item)
        assert "made with other options or lists" in item["message"] and named in item["message"], item
        assert f"matcher rematch {log}" in item["message"]
        assert log.read_bytes() == done
    for extra in (["--jobs", "1"], ["--candidates-only"], notable):
        result = runner.invoke(cli, [*common, *extra], catch_exceptions=False)
        (item,) = json.loads(result.stdout)
        assert item["status"] == "done-before" and result.exit_code == 0, (extra, item)
    assert runner.invoke(cli, ["import", str(tmp_path / "outer.sha256"), "--db", str(db)]).exit_code == 0
    result = runner.invoke(cli, common, catch_exceptions=False)
    (item,) = json.loads(result.stdout)
    assert item["status"] == "done-before" and result.exit_code == 0, item
    note = (
        "lists imported into the store after this log's run are not in it (it was never "
        f"matched against them): outer.sha256; `matcher rematch {log}` matches it against them"
    )
    assert item["notes"][-1] == note and f"      note: {note}\n" in result.stderr
    assert log.read_bytes() == done


def test_a_manifest_value_holding_a_nul_byte_is_refused_at_its_line(runner: CliRunner, tmp_path: Path) -> None:
    """Before: an evidence path holding a NUL ended in an internal error (ValueError: embedded
    null byte) from the realpath of the item's roots."""
    manifest = tmp_path / "items.csv"
    manifest.write_bytes(b"evidence,case,examiner\nev\x00il,C-1,E\n")
    result = runner.invoke(cli, ["batch", str(manifest), "--db", str(tmp_path / "s.db")])
    assert result.exit_code == 2, result.output
    assert "items.csv:2: the evidence value holds a NUL byte" in result.output
    assert "internal error" not in result.output


def test_a_list_inside_another_items_evidence_is_noted_in_each_item_that_reads_it(
    runner: CliRunner, tmp_path: Path
) -> None:
    """`batch --list B/own.md5`: scanning item A read B's list (its access time may move), and
    A's end record said nothing, only B's (a review). Every item that reads it says so."""
    shutil.copytree(FIXTURES / "evidence" / "system", tmp_path / "a")
    shutil.copytree(FIXTURES / "evidence" / "system", tmp_path / "b")
    own = tmp_path / "b" / "own.md5"
    own.write_text("0" * 32 + "  x\n")
    manifest = tmp_path / "items.csv"
    manifest.write_text("evidence,case,examiner,log\na,C-1,E. One,logs/a.jsonl\nb,C-2,E. Two,logs/b.jsonl\n")
    result = runner.invoke(cli, ["batch", str(manifest), "--db", str(tmp_path / "s.db"), "--list", str(own), "--json"],
                           catch_exceptions=False)  # fmt: skip
    assert [i["status"] for i in json.loads(result.stdout)] == ["complete", "complete"], result.output
    for log in ("a", "b"):
        notes = json.loads((tmp_path / "logs" / f"{log}.jsonl").read_text().splitlines()[-1])["notes"]
        assert any(n.startswith(f"list {own} lies inside the evidence") for n in notes), (log, notes)


def test_an_item_refused_after_a_list_went_in_says_which_stayed(runner: CliRunner, tmp_path: Path) -> None:
    """A batch item's failure message dropped the error's notes: --list A --list B with B bad
    left A in the store, and the item said only what was wrong with B (a review)."""
    shutil.copytree(FIXTURES / "evidence", tmp_path / "a")
    bad = tmp_path / "bad.md5"
    bad.write_text("0" * 31 + "  cut.bin\n")
    manifest = tmp_path / "items.csv"
    manifest.write_text("evidence,case,examiner,log\na,C-1,E. One,logs/a.jsonl\n")
    good = FIXTURES / "hashlists" / "notable.md5"
    done = runner.invoke(cli, ["batch", str(manifest), "--db", str(tmp_path / "new.db"), "--json",
                               "--list", str(good), "--list", str(bad)])  # fmt: skip
    (item,) = json.loads(done.stdout)
    assert item["status"] == "failed", item
    assert f"before it stopped, and kept: {good} (as 'notable.md5')" in item["message"], item


def _two_items(tmp_path: Path) -> Path:
    """A manifest of two items: `a` (the fixtures' evidence, 5 notable) and `b` (none)."""
    shutil.copytree(FIXTURES / "evidence", tmp_path / "a")
    shutil.copytree(FIXTURES / "evidence" / "system", tmp_path / "b")
    manifest = tmp_path / "items.csv"
    manifest.write_text("evidence,case,examiner\na,C-1,J. Doe\nb,C-2,J. Doe\n")
    return manifest


def _batch_json(manifest: Path, tmp_path: Path) -> list[str]:
    """`matcher batch MANIFEST --json` with a store in tmp_path and the fixtures' notable list."""
    return ["batch", str(manifest), "--db", str(tmp_path / "s.db"), "--list",
            str(FIXTURES / "hashlists" / "notable.csv"), "--json"]  # fmt: skip


def test_a_manifest_path_is_taken_exactly_as_written(runner: CliRunner, tmp_path: Path) -> None:
    """Before: `"ev/item1 "` (quoted, with its space) was trimmed to ev/item1, another folder,
    which was scanned clean (exit 0) in place of the one named (a review). A path is taken as
    written; one that names nothing so is refused with the fix."""
    shutil.copytree(FIXTURES / "evidence", tmp_path / "ev" / "item1 ")
    shutil.copytree(FIXTURES / "evidence" / "system", tmp_path / "ev" / "item1")
    manifest = tmp_path / "items.csv"
    manifest.write_text('evidence,case,examiner\n"ev/item1 ",C-1,J. Doe\n')
    args = _batch_json(manifest, tmp_path)
    result = runner.invoke(cli, args, catch_exceptions=False)
    (item,) = json.loads(result.stdout)
    assert item["status"] == "complete" and item["exit_code"] == 1 and item["counts"]["notable"] > 0
    run = json.loads(Path(item["log"]).read_text().splitlines()[0])
    assert run["evidence"] == [{"path": str(tmp_path / "ev" / "item1 ")}]
    manifest.write_text("evidence,case,examiner\nev/item2 ,C-1,J. Doe\n")
    shutil.copytree(FIXTURES / "evidence" / "system", tmp_path / "ev" / "item2")
    refused = runner.invoke(cli, args)
    assert refused.exit_code == 2
    assert "the evidence value 'ev/item2 ' has spaces at its start or end, and no path is named so" in refused.output


def test_a_store_or_temporary_folder_inside_any_items_evidence_refuses_the_batch(
    runner: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before: each scan checked the store and the temporary folders against its own evidence
    only, so item 1 made the store (and its temporary files) inside item 2's evidence, which
    was refused only then (a review). Nothing runs, and nothing is written there."""
    shutil.copytree(FIXTURES / "evidence", tmp_path / "ev" / "one")
    shutil.copytree(FIXTURES / "evidence" / "system", tmp_path / "ev" / "two")
    before = sorted((tmp_path / "ev").rglob("*"))
    manifest = tmp_path / "items.csv"
    manifest.write_text("evidence,case,examiner\nev/one,C-1,J. Doe\nev/two,C-1,J. Doe\n")
    listing = str(FIXTURES / "hashlists" / "notable.csv")
    result = runner.invoke(cli, ["batch", str(manifest), "--db", str(tmp_path / "ev" / "two" / "s.db"), "--list", listing])
    assert result.exit_code == 2
    assert f"The hash store {tmp_path / 'ev' / 'two' / 's.db'} lies inside evidence" in result.output
    (tmp_path / "ev" / "two" / "tmp").mkdir()
    before.append(tmp_path / "ev" / "two" / "tmp")
    monkeypatch.setenv("TMPDIR", str(tmp_path / "ev" / "two" / "tmp"))
    monkeypatch.setattr("tempfile.tempdir", None)
    result = runner.invoke(cli, ["batch", str(manifest), "--db", str(tmp_path / "s.db"), "--list", listing])
    assert result.exit_code == 2 and "lies inside evidence" in result.output and "TMPDIR" in result.output
    assert sorted((tmp_path / "ev").rglob("*")) == sorted(before)
    assert not (tmp_path / "items-logs").exists()


def test_a_signal_between_items_still_gives_the_table_and_the_json(
    runner: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before: a Ctrl-C or SIGTERM outside an item's scan (between items, while a log was
    read) ended the batch with "Interrupted." alone: no table, and --json gave nothing for the
    items already done (a review). The batch stops as for a signal inside a scan."""
    from matcher import batch

    manifest = _two_items(tmp_path)
    real = batch._previous_state
    seen: list[Path] = []

    def interrupted_at_the_second(log: Path) -> tuple[str, str | None]:
        seen.append(log)
        if len(seen) == 2:
            raise KeyboardInterrupt
        return real(log)

    monkeypatch.setattr(batch, "_previous_state", interrupted_at_the_second)
    args = _batch_json(manifest, tmp_path)
    result = runner.invoke(cli, args)
    first, second = json.loads(result.stdout)
    assert first["status"] == "complete" and first["exit_code"] == 1
    assert second["status"] == "pending" and second["exit_code"] == 8
    assert "stopped the batch at this item" in second["notes"][0]
    assert result.exit_code == 9  # a notable match, and interrupted
    assert "1 item(s) not finished: run the same batch command again" in result.stderr


def test_a_failed_item_names_no_log_it_never_made_and_shows_no_counts(
    runner: CliRunner, tmp_path: Path
) -> None:
    """Before: an item that failed before its scan (its evidence missing) was given, in
    --json, the log it would have had, which was never made (now said: log_exists), and the table showed it with
    files 0, notable 0, errors 0, as a clean item; an evidence name's escape sequence reached
    the terminal raw in the table (a review)."""
    shutil.copytree(FIXTURES / "evidence" / "system", tmp_path / "esc\x1b[31mRED")
    manifest = tmp_path / "items.csv"
    manifest.write_text('evidence,case,examiner\nmissing,C-1,J. Doe\n"esc\x1b[31mRED",C-2,J. Doe\n')
    args = _batch_json(manifest, tmp_path)
    result = runner.invoke(cli, args)
    failed, done = json.loads(result.stdout)
    assert failed["status"] == "failed" and failed["log_exists"] is False
    assert not Path(failed["log"]).exists()  # still named: where a rerun writes it
    assert done["status"] == "complete" and done["log_exists"] is True and Path(done["log"]).is_file()
    rows = [line.split() for line in result.stderr.splitlines() if re.match(r"\s+[12]\s+(failed|complete)\s", line)]
    assert rows[0][:6] == ["1", "failed", "2", "-", "-", "-"]
    assert "\x1b" not in result.stderr and rows[1][-1].endswith("esc\\x1B[31mRED")


def test_an_items_log_where_another_items_inventory_goes_refuses_the_manifest(
    runner: CliRunner, tmp_path: Path
) -> None:
    """Before: item 2's log named item 1's inventory (`a.jsonl.inventory.db`): item 2 failed at
    every run, "this is not a match log" (a review). The manifest is refused whole."""
    shutil.copytree(FIXTURES / "evidence" / "system", tmp_path / "a")
    shutil.copytree(FIXTURES / "evidence" / "system", tmp_path / "b")
    manifest = tmp_path / "items.csv"
    manifest.write_text("evidence,case,examiner,log\na,C-1,J. Doe,a.jsonl\nb,C-2,J. Doe,a.jsonl.inventory.db\n")
    result = runner.invoke(cli, ["batch", str(manifest), "--db", str(tmp_path / "s.db"), "--list", str(FIXTURES / "hashlists" / "notable.csv")])
    assert result.exit_code == 2
    assert "is where another item's inventory goes" in result.output
    assert not (tmp_path / "a.jsonl").exists() and not (tmp_path / "s.db").exists()


def test_a_failed_item_keeps_its_code_2_when_a_signal_stops_the_batch(
    runner: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A signal while a failed item's counts were read from its log gave it 2|8 = 10, and the
    batch exited 10, not the 2 that says an item failed (a review); and any further signal
    is ignored once the batch stops (a burst of them lost the table and --json)."""
    from matcher import batch
    from matcher import cli as cli_mod

    shutil.copytree(FIXTURES / "evidence" / "system", tmp_path / "b")
    manifest = tmp_path / "items.csv"
    manifest.write_text("evidence,case,examiner\nmissing,C-1,J. Doe\nb,C-2,J. Doe\n")

    def interrupted(item: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(batch, "_counts_from_its_log", interrupted)
    args = _batch_json(manifest, tmp_path)
    before = signal.getsignal(signal.SIGINT)
    result = runner.invoke(cli, args)
    failed, pending = json.loads(result.stdout)
    assert failed["status"] == "failed" and failed["exit_code"] == 2
    assert "stopped the batch as this item ended" in failed["notes"][-1]
    assert pending["status"] == "pending" and result.exit_code == 2
    assert "[1] " in result.stderr and "failed (exit 2)" in result.stderr  # its line was said
    # The command's handlers are put back as they were (not left ignoring Ctrl-C).
    assert signal.getsignal(signal.SIGINT) is before
    stopped: list[bool] = []
    items = batch.run_batch(manifest, _template(tmp_path), on_stop=lambda: stopped.append(True))
    assert stopped == [True] and items[0].exit_code == 2


def _template(tmp_path: Path) -> object:
    from matcher.scan import ScanOptions

    return ScanOptions([], "", "", tmp_path / "s.db", tmp_path / "unused.jsonl",
                       lists=[FIXTURES / "hashlists" / "notable.csv"])  # fmt: skip


def test_signals_while_the_batch_says_its_table_are_dropped(
    runner: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before: a SIGTERM while the final table was printed ended the command ("Terminated.",
    exit 8) with the table cut and --json never given, though every item was done (a review).
    The batch has ended: its table and --json are said, and its code is the items'."""
    from matcher import cli as cli_mod

    shutil.copytree(FIXTURES / "evidence" / "system", tmp_path / "b")
    manifest = tmp_path / "items.csv"
    manifest.write_text("evidence,case,examiner\nb,C-2,J. Doe\n")
    real = cli_mod._terminal_safe
    sent: list[int] = []

    def signalled(text: str) -> str:
        if sys._getframe(1).f_code.co_name == "batch_cmd" and not sent:  # the table's, not show()'s
            sent.append(1)
            os.kill(os.getpid(), signal.SIGTERM)
            os.kill(os.getpid(), signal.SIGINT)
        return real(text)

    args = _batch_json(manifest, tmp_path)
    first = json.loads(runner.invoke(cli, args).stdout)  # the item done, without signals
    monkeypatch.setattr(cli_mod, "_terminal_safe", signalled)
    before = signal.getsignal(signal.SIGINT)
    result = runner.invoke(cli, args)
    assert sent == [1]
    (item,) = json.loads(result.stdout)
    assert item["status"] == "done-before" and item["counts"] == first[0]["counts"]
    assert result.exit_code == 0 and "Terminated" not in result.stderr
    assert signal.getsignal(signal.SIGINT) is before


def test_an_item_whose_scan_ended_as_a_signal_came_keeps_its_outcome(
    runner: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before: a signal landing as an item's scan returned (its handlers already put back)
    left the item "pending", with no counts and no head, though its log was complete, and the
    batch exited 8 where its notable match made it 9 (a review)."""
    from matcher import batch

    manifest = _two_items(tmp_path)
    real = batch.run_scan

    def ended_then_signalled(*args: object, **kwargs: object) -> object:
        real(*args, **kwargs)  # type: ignore[arg-type]
        raise KeyboardInterrupt

    monkeypatch.setattr(batch, "run_scan", ended_then_signalled)
    result = runner.invoke(cli, _batch_json(manifest, tmp_path))
    first, second = json.loads(result.stdout)
    assert first["status"] == "complete" and first["exit_code"] == 9
    assert first["counts"]["notable"] == 5 and first["head"]
    assert second["status"] == "pending" and result.exit_code == 9


def test_a_terminal_gone_costs_the_batch_neither_its_json_nor_its_code(
    runner: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before: with the terminal closed (a hangup), every write to stderr failed with EIO; the
    first, an item's line, ended the batch as an internal error, exit 2, and its --json to a
    file never came (a review)."""
    import errno

    import click as click_mod

    from matcher import cli as cli_mod

    shutil.copytree(FIXTURES / "evidence", tmp_path / "a")
    manifest = tmp_path / "items.csv"
    manifest.write_text("evidence,case,examiner\na,C-1,J. Doe\n")
    real = click_mod.echo

    def no_terminal(message: object = None, file: object = None, nl: bool = True, err: bool = False, color: object = None) -> None:
        if err:
            raise OSError(errno.EIO, "Input/output error")
        real(message, file=file, nl=nl, err=err, color=color)  # type: ignore[arg-type]

    monkeypatch.setattr(cli_mod.click, "echo", no_terminal)
    result = runner.invoke(cli, _batch_json(manifest, tmp_path))
    (item,) = json.loads(result.stdout)
    assert item["status"] == "complete" and result.exit_code == 1
