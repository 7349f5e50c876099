"""`matcher import`, `lists` and `remove`: detection, idempotence, atomic rejection."""

from __future__ import annotations

import json
import sqlite3
import stat
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from conftest import FIXTURES

from matcher.cli import cli

LISTS = FIXTURES / "hashlists"
EXPECTED_FORMATS = {
    "notable.md5": "gnu-sum",
    "notable.sha256.tag": "bsd-tag",
    "notable.txt": "plain",
    "notable.csv": "csv",
    "known.hashdeep": "hashdeep",
}


def lists_json(runner: CliRunner, db: Path) -> list[dict[str, object]]:
    result = runner.invoke(cli, ["lists", "--db", str(db), "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def table_counts(db: Path) -> tuple[int, int, int]:
    conn = sqlite3.connect(db)
    try:
        return tuple(conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in ("lists", "entries", "hashes"))  # type: ignore[return-value]
    finally:
        conn.close()


@pytest.mark.parametrize("name", sorted(EXPECTED_FORMATS))
def test_each_fixture_format_is_detected(runner: CliRunner, tmp_path: Path, name: str) -> None:
    db = tmp_path / "s.db"
    result = runner.invoke(cli, ["import", str(LISTS / name), "--db", str(db)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    [info] = lists_json(runner, db)
    assert info["format"] == EXPECTED_FORMATS[name]
    assert info["entries"] > 0 and len(info["source_sha256"]) == 64
    assert stat.S_IMODE(db.stat().st_mode) == 0o600


def test_second_import_does_nothing_and_says_so(runner: CliRunner, tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    runner.invoke(cli, ["import", str(LISTS / "notable.csv"), "--db", str(db)])
    before = table_counts(db)
    result = runner.invoke(cli, ["import", str(LISTS / "notable.csv"), "--db", str(db)])
    assert result.exit_code == 0
    assert "already imported" in result.stderr
    assert table_counts(db) == before


def test_malformed_line_rejects_list_and_store_is_unchanged(runner: CliRunner, tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    runner.invoke(cli, ["import", str(LISTS / "notable.csv"), "--db", str(db)])
    before = table_counts(db)
    bad = tmp_path / "bad.md5"
    good = "d41d8cd98f00b204e9800998ecf8427e  empty\n"
    bad.write_text(good * 3 + "d41d8cd98f00b204e9800998ecf8427  short\n" + good)
    result = runner.invoke(cli, ["import", str(bad), "--db", str(db)])
    assert result.exit_code == 2
    assert f"{bad}:4" in result.output
    assert table_counts(db) == before
    skipped = runner.invoke(cli, ["import", str(bad), "--db", str(db), "--skip-invalid", "--name", "partial"])
    assert skipped.exit_code == 0, skipped.output
    assert "skipped 1" in skipped.stderr
    partial = [i for i in lists_json(runner, db) if i["name"] == "partial"][0]
    assert partial["entries"] == 4


def test_entries_skipped_as_invalid_stay_counted_with_the_list_and_in_the_run_record(
    runner: CliRunner, tmp_path: Path
) -> None:
    """--skip-invalid's count was said once at import, then lost: a reviewer of the log
    could not tell that the supplier's list held an entry the scan never matched."""
    db, evidence = tmp_path / "s.db", tmp_path / "ev"
    evidence.mkdir()
    (evidence / "x").write_bytes(b"hi\n")
    listed = tmp_path / "l.md5"
    others = "".join(f"{n:032x}  f{n}\n" for n in range(1, 9))
    listed.write_text("764efa883dda1e11db47671c4a3bbd9e  x\n" + others + "not-a-digest  y\nzz  z\n")
    whole = tmp_path / "whole.md5"
    whole.write_text("764efa883dda1e11db47671c4a3bbd9e  x\n")
    for path in (listed, whole):
        args = ["import", str(path), "--db", str(db), "--skip-invalid", "--role", "known"]
        assert runner.invoke(cli, args).exit_code == 0
    shown = {str(i["name"]): i["metadata"] for i in lists_json(runner, db)}
    assert shown == {"l.md5": {"skipped_invalid": "2"}, "whole.md5": {}}
    log = tmp_path / "l.jsonl"
    scan = ["scan", str(evidence), "--db", str(db), "--examiner", "E", "--case", "C", "--log", str(log)]
    assert runner.invoke(cli, scan).exit_code == 0
    named = {i["name"]: i for i in json.loads(log.read_text().splitlines()[0])["lists"]}
    assert named["l.md5"]["skipped_invalid"] == 2
    assert "skipped_invalid" not in named["whole.md5"]


def test_unrecognised_list_names_format_option(runner: CliRunner, tmp_path: Path) -> None:
    junk = tmp_path / "junk.bin"
    junk.write_bytes(b"\x00\x01 not a hash list \xff")
    result = runner.invoke(cli, ["import", str(junk), "--db", str(tmp_path / "s.db")])
    assert result.exit_code == 2 and "--format" in result.output


def test_roles_names_and_per_algorithm_counts(runner: CliRunner, tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    runner.invoke(cli, ["import", str(LISTS / "known.hashdeep"), "--db", str(db), "--role", "known", "--name", "os"])
    [info] = lists_json(runner, db)
    assert info["name"] == "os" and info["role"] == "known"
    assert info["digests"] == {"md5": 6, "sha256": 6}
    text = runner.invoke(cli, ["lists", "--db", str(db)])
    assert "os" in text.output and "known" in text.output


def test_remove_and_replace(runner: CliRunner, tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    runner.invoke(cli, ["import", str(LISTS / "notable.txt"), "--db", str(db), "--name", "v1"])
    result = runner.invoke(cli, ["import", str(LISTS / "notable.csv"), "--db", str(db), "--name", "v2", "--replace", "v1"])
    assert result.exit_code == 0, result.output
    assert [i["name"] for i in lists_json(runner, db)] == ["v2"]
    assert runner.invoke(cli, ["remove", "v2", "--db", str(db)]).exit_code == 0
    assert lists_json(runner, db) == []
    assert table_counts(db) == (0, 0, 0)
    assert runner.invoke(cli, ["remove", "v2", "--db", str(db)]).exit_code == 2


def test_lists_on_missing_store_is_an_error_not_a_new_file(runner: CliRunner, tmp_path: Path) -> None:
    db = tmp_path / "nope.db"
    result = runner.invoke(cli, ["lists", "--db", str(db)])
    assert result.exit_code == 2 and not db.exists()


def test_db_falls_back_to_environment(runner: CliRunner, tmp_path: Path) -> None:
    db = tmp_path / "env.db"
    result = runner.invoke(cli, ["import", str(LISTS / "notable.txt")], env={"MATCHER_DB": str(db)})
    assert result.exit_code == 0 and db.exists()


def test_a_refused_import_into_a_new_store_leaves_no_store(tmp_path: Path) -> None:
    """Refused means unchanged: where there was no store, there is none after."""
    bad = tmp_path / "bad.md5"
    bad.write_text("not a hash list at all\n")
    db = tmp_path / "new.db"
    result = CliRunner().invoke(cli, ["import", str(bad), "--db", str(db)])
    assert result.exit_code == 2
    assert not any(p.name.startswith("new.db") for p in tmp_path.iterdir())
    good = tmp_path / "good.md5"
    good.write_text("5d41402abc4b2a76b9719d911017c592  hello\n")
    result = CliRunner().invoke(cli, ["import", str(good), str(bad), "--db", str(db)])
    assert result.exit_code == 2 and db.exists()  # the first list landed; it stays


def test_the_same_list_asked_for_with_another_role_is_refused(tmp_path: Path) -> None:
    """'Already imported; nothing done' would leave a list meant as notable counted as known."""
    lst = tmp_path / "l.md5"
    lst.write_text("5d41402abc4b2a76b9719d911017c592  hello\n")
    db = tmp_path / "s.db"
    assert CliRunner().invoke(cli, ["import", str(lst), "--db", str(db), "--role", "known"]).exit_code == 0
    before = db.read_bytes()
    again = CliRunner().invoke(cli, ["import", str(lst), "--db", str(db), "--role", "notable", "--name", "l2"])
    assert again.exit_code == 2 and "already imported as the known list" in again.output
    assert db.read_bytes() == before
    same = CliRunner().invoke(cli, ["import", str(lst), "--db", str(db), "--role", "known"])
    assert same.exit_code == 0 and "nothing done" in same.output


def test_a_fifo_or_a_device_given_as_a_list_is_named_as_such(tmp_path: Path) -> None:
    import os

    fifo = tmp_path / "pipe.md5"
    os.mkfifo(fifo)
    device = tmp_path / "zero.md5"
    device.symlink_to("/dev/zero")
    for path in (fifo, device):
        result = CliRunner().invoke(cli, ["import", str(path), "--db", str(tmp_path / "s.db")])
        assert result.exit_code == 2 and "not a regular file" in result.output, result.output


def test_a_replace_that_would_change_the_role_by_default_is_refused(runner: CliRunner, tmp_path: Path) -> None:
    # A known list replaced by a list that defaults to notable (or the other way)
    # would change what its files are, with nothing said.
    db = tmp_path / "s.db"
    args = ["--db", str(db)]
    runner.invoke(cli, ["import", str(LISTS / "known.hashdeep"), *args, "--role", "known", "--name", "os"])
    before = table_counts(db)
    result = runner.invoke(cli, ["import", str(LISTS / "notable.csv"), *args, "--replace", "os"])
    assert result.exit_code == 2
    assert "'os' is a known list" in result.stderr and "--role known" in result.stderr
    assert table_counts(db) == before and [i["name"] for i in lists_json(runner, db)] == ["os"]
    # Told with --role, either way, the replace goes ahead.
    result = runner.invoke(cli, ["import", str(LISTS / "notable.csv"), *args, "--replace", "os", "--role", "known"])
    assert result.exit_code == 0, result.output
    assert "(csv), replacing 'os' (hashdeep)." in result.stderr  # the format changed: both named
    assert [(i["name"], i["role"]) for i in lists_json(runner, db)] == [("notable.csv", "known")]
    result = runner.invoke(cli, ["import", str(LISTS / "notable.txt"), *args, "--replace", "notable.csv", "--role", "notable"])
    assert result.exit_code == 0, result.output
    assert [(i["name"], i["role"]) for i in lists_json(runner, db)] == [("notable.txt", "notable")]


def test_replace_with_several_lists_is_a_usage_error_before_any_import(runner: CliRunner, tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    runner.invoke(cli, ["import", str(LISTS / "notable.txt"), "--db", str(db), "--name", "v1"])
    before = table_counts(db)
    result = runner.invoke(cli, ["import", str(LISTS / "notable.csv"), str(LISTS / "notable.md5"), "--db", str(db), "--replace", "v1"])
    assert result.exit_code == 2 and "--replace applies to one list" in result.output
    assert table_counts(db) == before


def test_an_import_of_several_lists_names_what_it_imported_and_what_it_did_not(runner: CliRunner, tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    bad = tmp_path / "bad.hdb"
    bad.write_text("zz:1:x\n")
    paths = [str(LISTS / "notable.txt"), str(bad), str(LISTS / "notable.csv")]
    result = runner.invoke(cli, ["import", *paths, "--db", str(db)])
    assert result.exit_code == 2
    assert f"import stopped at list 2 of 3 ({bad})" in result.stderr
    assert f"Imported before it: {paths[0]}. Not tried: {paths[2]}." in result.stderr
    assert [i["name"] for i in lists_json(runner, db)] == ["notable.txt"]


def test_import_json_names_the_lists_imported_before_a_rejected_one(runner: CliRunner, tmp_path: Path) -> None:
    """`--json` printed nothing when a later list was rejected, though the earlier ones were committed."""
    db = tmp_path / "s.db"
    bad = tmp_path / "bad.txt"
    bad.write_text("not a hash\n")
    result = runner.invoke(cli, ["import", str(LISTS / "notable.md5"), str(bad), str(LISTS / "notable.csv"), "--db", str(db), "--json"])
    assert result.exit_code == 2, result.output
    # The one not tried is named too (before, only stderr named it).
    imported, rejected, untried = json.loads(result.stdout)
    assert untried == {"file": str(LISTS / "notable.csv"), "not_tried": True}
    assert imported["file"] == str(LISTS / "notable.md5") and imported["list"] == "notable.md5"
    assert imported["already_imported"] is False and imported["entries"] > 0
    assert rejected["file"] == str(bad) and rejected["rejected"] is True
    assert rejected["error"] and rejected["error"] in result.stderr
    assert [i["name"] for i in lists_json(runner, db)] == ["notable.md5"]
    # One list alone, rejected: its error too, and no store left behind.
    result = runner.invoke(cli, ["import", str(bad), "--db", str(tmp_path / "new.db"), "--json"])
    assert result.exit_code == 2
    assert [r["file"] for r in json.loads(result.stdout)] == [str(bad)]
    assert not (tmp_path / "new.db").exists()


def test_lists_columns_stay_aligned_with_a_long_name(runner: CliRunner, tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    long_name = "nsrl-2026.09.1-modern-minimal-with-a-name-longer-than-any-column"
    runner.invoke(cli, ["import", str(LISTS / "known.hashdeep"), "--db", str(db), "--role", "known", "--name", long_name])
    runner.invoke(cli, ["import", str(LISTS / "notable.txt"), "--db", str(db)])
    lines = runner.invoke(cli, ["lists", "--db", str(db)]).stdout.splitlines()
    assert len(lines) == 3
    # Every column starts at the same place on every line.
    starts = {line.index("  known ") + 2 if "  known " in line else line.index("  notable ") + 2 for line in lines[1:]}
    assert starts == {lines[0].index("role")}


def test_remove_on_a_missing_store_creates_none(runner: CliRunner, tmp_path: Path) -> None:
    """It left an empty 45 KB store behind, which then looked like a store with no lists."""
    db = tmp_path / "nope.db"
    result = runner.invoke(cli, ["remove", "x", "--db", str(db)])
    assert result.exit_code == 2 and "does not exist" in result.output
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("error", "hint"),
    [("database is locked", "another matcher process is using the store"),
     ("database or disk is full", "SQLITE_TMPDIR or TMPDIR chooses that folder")],
)  # fmt: skip
def test_a_store_that_refuses_a_write_is_one_line_and_exit_2_never_a_traceback(
    runner: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, error: str, hint: str
) -> None:
    """`remove` on a full disk or a store another process holds ended in a traceback (exit 1,
    the code of a match); an import that SQLite stops names what to do about it."""
    import sqlite3

    from matcher.store import HashStore

    db = tmp_path / "s.db"
    assert runner.invoke(cli, ["import", str(LISTS / "notable.txt"), "--db", str(db), "--name", "v1"]).exit_code == 0
    before = table_counts(db)

    def fails(*args: object, **kwargs: object) -> None:
        raise sqlite3.OperationalError(error)

    with monkeypatch.context() as patch:
        patch.setattr(HashStore, "_delete_list", fails)
        patch.setattr(HashStore, "_finish_staged", fails)
        removed = runner.invoke(cli, ["remove", "v1", "--db", str(db)])
        imported = runner.invoke(cli, ["import", str(LISTS / "notable.csv"), "--db", str(db), "--name", "v2"])
    assert removed.exit_code == 2 and isinstance(removed.exception, SystemExit), removed.output
    assert f"Cannot remove 'v1' from {db}: {error} (" in removed.output and hint in removed.output
    assert removed.output.endswith("The store is unchanged.\n")
    assert imported.exit_code == 2 and isinstance(imported.exception, SystemExit), imported.output
    assert f"failed and was rolled back: {error} (" in imported.output and hint in imported.output
    assert table_counts(db) == before


def test_lists_shows_what_a_list_says_of_itself(runner: CliRunner, tmp_path: Path) -> None:
    """An NSRL's VERSION row (version, build set, release date) was only in `lists --json`."""
    db = tmp_path / "s.db"
    rds = Path(__file__).parent / "formats" / "samples" / "synthetic" / "nsrl_rds3" / "RDS_synthetic_minimal.db"
    assert runner.invoke(cli, ["import", str(rds), "--db", str(db)]).exit_code == 0
    [info] = lists_json(runner, db)
    assert info["metadata"]["version"] == "2099.01.1"
    header, row = runner.invoke(cli, ["lists", "--db", str(db)]).stdout.splitlines()
    assert header.split()[-1] == "metadata"
    assert row.endswith(
        "schema: minimal; version: 2099.01.1; build_set: synthetic; release_date: 2099-01-01 00:00:00"
    )


def test_format_option_alone_lists_every_format_with_its_default_role(runner: CliRunner, tmp_path: Path) -> None:
    """Issue 3: `matcher import --format` lists the names (it was a usage error naming none)."""
    from matcher.formats import registry

    result = runner.invoke(cli, ["import", "--format"])
    assert result.exit_code == 0, result.output
    lines = {line.split()[0]: line.split()[1] for line in result.stdout.splitlines()}
    assert lines == {r.NAME: r.DEFAULT_ROLE for r in registry.readers()}
    assert lines["nsrl-rds3"] == lines["nsrl-rds2"] == "known"
    assert lines["vics"] == lines["clamav"] == "notable"
    assert not (tmp_path / "matcher.db").exists()
    given = runner.invoke(cli, ["import", "--format", "csv", "--db", str(tmp_path / "s.db")])
    assert given.exit_code == 2 and "Missing argument" in given.output
    wrong = runner.invoke(cli, ["import", "x.txt", "--format", "nope"])
    assert wrong.exit_code == 2 and "'nope' is not one of" in wrong.output


def test_format_option_without_a_name_beside_a_list_is_refused_not_a_listing_and_exit_0(
    runner: CliRunner, tmp_path: Path
) -> None:
    """`--format` with no name (`--format $FORMAT`, $FORMAT empty) listed the formats and
    exited 0, the list given never imported: a script took it for imported."""
    db = tmp_path / "s.db"
    for args in (["--format"], ["--format", "--db", str(db)]):
        result = runner.invoke(cli, ["import", str(LISTS / "notable.txt"), "--db", str(db), *args])
        assert result.exit_code == 2, result.output
        assert "--format needs a format's name to import" in result.stderr
        assert not db.exists()


def test_import_list_refuses_an_unknown_format_naming_the_formats(tmp_path: Path) -> None:
    """import_list(format_name="bogus") raised a bare KeyError."""
    from matcher.errors import UsageError
    from matcher.formats import registry
    from matcher.importing import import_list
    from matcher.store import HashStore

    db = tmp_path / "s.db"
    store = HashStore(db)
    try:
        with pytest.raises(UsageError, match=r"Unknown list format 'bogus'; choose from .*gnu-sum"):
            import_list(store, LISTS / "notable.md5", format_name="bogus")
        assert store.lists() == []
    finally:
        store.close()
    with pytest.raises(UsageError, match="Unknown list format 'bogus'"):
        registry.get("bogus")


def test_lists_shows_a_name_with_a_newline_on_one_line(runner: CliRunner, tmp_path: Path) -> None:
    """Before: a list named after a file whose name held a newline broke the table in two."""
    odd = tmp_path / "case\nlist.md5"
    odd.write_text(f"{'ab' * 16}  x\n")
    db = tmp_path / "s.db"
    assert runner.invoke(cli, ["import", str(odd), "--db", str(db)]).exit_code == 0
    table = runner.invoke(cli, ["lists", "--db", str(db)]).output.splitlines()
    assert len(table) == 2 and "case\\nlist.md5" in table[1], table
    assert lists_json(runner, db)[0]["name"] == "case\nlist.md5"


@pytest.mark.parametrize("blank", ["", "   "])
def test_an_empty_list_name_is_refused(runner: CliRunner, tmp_path: Path, blank: str) -> None:
    """Before: --name '' silently took the file name, and '   ' made a list with a blank name."""
    result = runner.invoke(cli, ["import", str(LISTS / "notable.md5"), "--db", str(tmp_path / "s.db"), "--name", blank])
    assert result.exit_code == 2 and "--name is empty" in result.output
    assert not (tmp_path / "s.db").exists()


@pytest.mark.parametrize("lines", [3, 20_000], ids=["3 lines", "20,000 lines"])
def test_an_import_waits_for_another_writer_instead_of_failing_at_once(
    runner: CliRunner, tmp_path: Path, lines: int
) -> None:
    """Two imports into one store: the second read inside its transaction before it wrote,
    and SQLite refuses such a reader the write lock at once (no wait, 'database is
    locked'), whatever the busy timeout. It now takes the write lock first, and waits."""
    import subprocess
    import sys
    import threading

    db = tmp_path / "s.db"
    first = tmp_path / "first.md5"
    first.write_text(f"{'a' * 32}  a\n")
    assert runner.invoke(cli, ["import", str(first), "--db", str(db)]).exit_code == 0
    second = tmp_path / "second.md5"
    second.write_text("".join(f"{n:032x}  f{n}\n" for n in range(1, lines + 1)))
    other = sqlite3.connect(db, isolation_level=None, check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")  # another import, writing
    other.execute("UPDATE meta SET value = value WHERE key = 'schema_version'")
    release = threading.Timer(1.5, other.execute, ["COMMIT"])
    release.start()
    try:
        done = subprocess.run(
            [sys.executable, "-m", "matcher", "import", str(second), "--db", str(db)],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
    finally:
        release.join()
        other.close()
    assert done.returncode == 0, done.stderr
    assert [row["name"] for row in lists_json(runner, db)] == ["first.md5", "second.md5"]


def _import_three_the_second_interrupted(
    runner: CliRunner, db: Path, monkeypatch: pytest.MonkeyPatch, *extra: str
) -> tuple[Any, list[str]]:
    """`matcher import` of three lists, a Ctrl-C landing in the second: (result, paths)."""
    import matcher.importing as importing_mod

    paths = [str(LISTS / "notable.txt"), str(LISTS / "notable.md5"), str(LISTS / "notable.csv")]
    real = importing_mod.import_list

    def second_interrupted(store: object, path: Path, **kwargs: object) -> object:
        if str(path) == paths[1]:
            raise KeyboardInterrupt
        return real(store, path, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(importing_mod, "import_list", second_interrupted)
    return runner.invoke(cli, ["import", *paths, "--db", str(db), *extra]), paths


def test_an_interrupted_import_of_several_lists_names_what_it_imported(
    runner: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A Ctrl-C during the second of three lists printed only "Interrupted."."""
    db = tmp_path / "s.db"
    result, paths = _import_three_the_second_interrupted(runner, db, monkeypatch)
    assert result.exit_code == 8, result.output
    assert f"import stopped at list 2 of 3 ({paths[1]}), which was interrupted" in result.stderr
    assert f"Imported before it: {paths[0]}. Not tried: {paths[2]}." in result.stderr
    assert "run the same command again to import the rest" in result.stderr
    assert [i["name"] for i in lists_json(runner, db)] == ["notable.txt"]


def test_an_interrupted_import_json_names_what_it_imported(
    runner: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`--json` printed nothing when the second of three lists was interrupted, though the first was committed."""
    db = tmp_path / "s.db"
    result, paths = _import_three_the_second_interrupted(runner, db, monkeypatch, "--json")
    assert result.exit_code == 8, result.output
    imported, interrupted, untried = json.loads(result.stdout)
    assert imported["file"] == paths[0] and imported["list"] == "notable.txt"
    assert interrupted == {"file": paths[1], "interrupted": True}
    assert untried == {"file": paths[2], "not_tried": True}
    assert [i["name"] for i in lists_json(runner, db)] == ["notable.txt"]


def test_an_interrupted_import_of_one_list_says_the_store_is_unchanged_and_what_to_do(
    runner: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """It printed "Interrupted." alone: not whether the store changed, nor what to do."""
    import matcher.importing as importing_mod

    db = tmp_path / "s.db"
    runner.invoke(cli, ["import", str(LISTS / "notable.txt"), "--db", str(db)])

    def interrupted(store: object, path: Path, **kwargs: object) -> object:
        raise KeyboardInterrupt

    monkeypatch.setattr(importing_mod, "import_list", interrupted)
    result = runner.invoke(cli, ["import", str(LISTS / "notable.md5"), "--db", str(db)])
    assert result.exit_code == 8, result.output
    assert (
        f"the import of {LISTS / 'notable.md5'} was interrupted and left the store as it was"
        in result.stderr
    )
    assert "run the same command again to import it" in result.stderr
    assert [i["name"] for i in lists_json(runner, db)] == ["notable.txt"]


@pytest.mark.parametrize("command", ["import", "scan --list"])
def test_a_list_that_fails_to_read_midway_is_refused_with_the_store_unchanged(
    runner: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, command: str
) -> None:
    """Before: an OSError while a list was read (EIO from a failing disk; EMFILE under a low
    `ulimit -n` in a scan's --list) ended in a traceback called a fault of matcher."""
    import errno
    import hashlib

    from matcher.formats import base

    db = tmp_path / "s.db"
    assert runner.invoke(cli, ["import", str(LISTS / "notable.md5"), "--db", str(db)]).exit_code == 0
    before = lists_json(runner, db), table_counts(db)
    big = tmp_path / "big.sha256"
    big.write_text("".join(f"{hashlib.sha256(b'%d' % i).hexdigest()}  f{i}\n" for i in range(5000)))
    real = base.TextReader.read

    def failing(self: base.TextReader, path: Path, on_invalid: object = None) -> object:
        for n, record in enumerate(real(self, path, on_invalid)):  # type: ignore[arg-type]
            if n == 4000:
                raise OSError(errno.EIO, "Input/output error")
            yield record

    monkeypatch.setattr(base.TextReader, "read", failing)
    if command == "import":
        args = ["import", str(big), "--db", str(db)]
    else:
        (tmp_path / "ev").mkdir()
        args = ["scan", str(tmp_path / "ev"), "--examiner", "E", "--case", "C", "--db", str(db)]
        args += ["--list", str(big), "--log", str(tmp_path / "l.jsonl")]
    result = runner.invoke(cli, args)
    assert result.exit_code == 2, result.output
    assert f"Cannot read the list {big}: EIO" in result.stderr, result.stderr
    assert "nothing was imported" in result.stderr and "internal error" not in result.stderr
    assert (lists_json(runner, db), table_counts(db)) == before


def _rds_of(path: Path, version: str, build_set: str) -> Path:
    """A one-file NSRL RDS v3 (minimal schema) of this VERSION."""
    conn = sqlite3.connect(path)
    conn.executescript(
        "CREATE TABLE FILE (sha256 TEXT, sha1 TEXT, md5 TEXT, crc32 TEXT, file_name TEXT, "
        "file_size INTEGER, package_id INTEGER);"
        "CREATE TABLE PKG (package_id INTEGER, name TEXT);"
        "CREATE TABLE VERSION (version TEXT, build_set TEXT, build_date TEXT, release_date TEXT, "
        "description TEXT);"
    )
    conn.execute("INSERT INTO VERSION VALUES (?, ?, '2026-01-01', '2026-01-02', 't')", [version, build_set])
    conn.execute(
        "INSERT INTO FILE VALUES (?, ?, ?, '0', ?, 5, 1)",
        ["A" * 64, "B" * 40, ("%032X" % len(version + build_set)), f"{version}.dll"],
    )
    conn.commit()
    conn.close()
    return path


@pytest.mark.parametrize(
    ("version", "build_set", "said"),
    [
        ("2026.09.1", "Modern", []),
        ("2026.3.1", "Modern", ["was version 2026.06.1: newer than this one (2026.3.1)"]),
        ("2026.09.1", "Android", ["was the NSRL build set 'Modern'; this one is 'Android'"]),
    ],
)
def test_a_replacement_by_an_older_release_or_another_build_set_is_said(
    runner: CliRunner, tmp_path: Path, version: str, build_set: str, said: list[str]
) -> None:
    """Before: `--replace` took NSRL 2023 for 2024, or Android for Modern, without a word: the
    known count dropped, files known before counted as unknown."""
    db = tmp_path / "s.db"
    old = _rds_of(tmp_path / "old.db", "2026.06.1", "Modern")
    assert runner.invoke(cli, ["import", str(old), "--db", str(db), "--name", "nsrl"]).exit_code == 0
    new = _rds_of(tmp_path / "new.db", version, build_set)
    result = runner.invoke(cli, ["import", str(new), "--db", str(db), "--name", "nsrl2", "--replace", "nsrl", "--json"])
    assert result.exit_code == 0, result.output
    notes = json.loads(result.stdout)[0]["notes"]
    assert len(notes) == len(said) and all(s in n for s, n in zip(said, notes)), notes
    for note in notes:
        assert f"{new}: note: {note}." in result.stderr


def test_import_messages_show_a_list_name_with_a_line_break_or_control_escaped(
    runner: CliRunner, tmp_path: Path
) -> None:
    """Before: `odd/la n<LF>l<SOH>.db: imported ...` split the message over two lines and sent the
    control byte to the terminal."""
    listing = tmp_path / "la n\nl\x01.sha256"
    listing.write_text(f"{'ab' * 32}  x\n")
    result = runner.invoke(cli, ["import", str(listing), "--db", str(tmp_path / "s.db")])
    assert result.exit_code == 0, result.output
    assert "\x01" not in result.stderr and result.stderr.count("\n") == 1, result.stderr
    assert "la n\\nl\\x01.sha256: imported 1 entry" in result.stderr


def test_every_refusal_of_lists_import_and_batch_answers_json_on_stdout(tmp_path: Path) -> None:
    """`lists --db nope.db --json`, `import nope.md5 --json`, a refused batch manifest: nothing
    on stdout, exit 2; a script doing json.loads(stdout) failed. Each now answers the error
    object scan --json gives; a rejected list still answers import's own list of results."""
    import json
    import subprocess
    import sys

    matcher = [sys.executable, "-m", "matcher"]
    manifest = tmp_path / "dup.csv"
    manifest.write_text("evidence,case,examiner,log\nev,C,E,a.jsonl\nev,C,E,a.jsonl\n")
    bad = tmp_path / "bad.md5"
    bad.write_text("not a digest line\n")
    for args, said in [
        (["lists", "--db", str(tmp_path / "nope.db")], "does not exist"),
        (["import", str(tmp_path / "nope.md5"), "--db", str(tmp_path / "s.db")], "does not exist"),
        (["batch", str(manifest), "--db", str(tmp_path / "s.db")], "share one log path"),
        (["batch", str(tmp_path / "nope.csv"), "--db", str(tmp_path / "s.db")], "does not exist"),
        (["batch", str(manifest), "--db", str(tmp_path / "s.db"), "--max-size", "12QB"], "--max-size"),
    ]:
        done = subprocess.run([*matcher, *args, "--json"], capture_output=True, text=True)
        assert done.returncode == 2, (args, done.stderr)
        answer = json.loads(done.stdout)
        assert answer["status"] == "error" and answer["exit_code"] == 2 and said in answer["error"], answer
    done = subprocess.run([*matcher, "import", str(bad), "--db", str(tmp_path / "s.db"), "--json"],
                          capture_output=True, text=True)  # fmt: skip
    assert done.returncode == 2
    assert json.loads(done.stdout)[0]["rejected"] is True


def test_digests_taken_as_sha256_by_their_length_alone_are_said(runner: CliRunner, tmp_path: Path) -> None:
    """A b3sum list under a name that says nothing (case42_hashes.txt) was imported as SHA-256
    with no word, and then never matched. 64 hex digits are SHA-256, BLAKE3 or SHA3-256: the
    import says it read them as SHA-256, and how to have them read as BLAKE3; a name that says
    which (SHA256SUMS, .b3) or digests of another length need no note. A scan's --list too."""
    digest = "ea8f163db38682925e4491c5e58d4bb3506ef8c14eb78a86e908c5624a67200f"
    generic = tmp_path / "case42_hashes.txt"
    generic.write_text(f"{digest}  hello.txt\n")
    said = runner.invoke(cli, ["import", str(generic), "--db", str(tmp_path / "a.db"), "--json"])
    assert said.exit_code == 0, said.output
    (note,) = json.loads(said.stdout)[0]["notes"]
    assert note.startswith("its 1 digest(s) of 64 hex digits were read as SHA-256") and "hashes.b3" in note
    for name, text in (("SHA256SUMS", f"{digest}  h\n"), ("h.b3", f"{digest}  h\n"), ("m.txt", "0" * 32 + "  h\n")):
        (tmp_path / name).write_text(text)
        quiet = runner.invoke(cli, ["import", str(tmp_path / name), "--db", str(tmp_path / f"{name}.db"), "--json"])
        assert quiet.exit_code == 0 and json.loads(quiet.stdout)[0]["notes"] == [], (name, quiet.output)
    ev = tmp_path / "ev"
    ev.mkdir()
    (ev / "f").write_bytes(b"x")
    scanned = runner.invoke(cli, ["scan", str(ev), "--examiner", "E", "--case", "C", "--db", str(tmp_path / "s.db"),
                                  "--list", str(generic), "--log", str(tmp_path / "l.jsonl"), "-q"])  # fmt: skip
    assert scanned.exit_code == 0, scanned.output
    end = json.loads((tmp_path / "l.jsonl").read_bytes().splitlines()[-1])
    assert any(n.startswith(f"list {generic}: its 1 digest(s) of 64 hex digits") for n in end["notes"])


def test_an_nsrl_named_list_read_as_csv_says_so(runner: CliRunner, tmp_path: Path) -> None:
    """Before: an NSRLFile.txt cut down without ProductCode imported as a notable CSV list in
    silence: every stock file it lists would then be a notable match (a validator)."""
    listed = tmp_path / "NSRLFile.txt"
    listed.write_bytes(
        b'"SHA-1","MD5","CRC32","FileName","FileSize"\r\n'
        b'"86F7E437FAA5A7FCE15D1DDCB9EAEAEA377667B8","0CC175B9C0F1B6A831C399E269772661",'
        b'"00000000","a.txt",1\r\n'
    )
    result = runner.invoke(cli, ["import", str(listed), "--db", str(tmp_path / "s.db")])
    assert result.exit_code == 0, result.output
    assert "imported 1 entry as notable list 'NSRLFile.txt' (csv)" in result.stderr
    assert "note: its name is NSRL's, but it lacks the ProductCode column" in result.stderr
    renamed = tmp_path / "stock.csv"
    renamed.write_bytes(listed.read_bytes())
    quiet = runner.invoke(cli, ["import", str(renamed), "--db", str(tmp_path / "t.db")])
    assert quiet.exit_code == 0 and "ProductCode" not in quiet.stderr, quiet.stderr


def test_a_zip_named_as_a_text_format_is_refused(runner: CliRunner, tmp_path: Path) -> None:
    """Detection gives a zip only to a reader of zips; with --format csv --skip-invalid a
    stored zip of a CSV was still imported as a notable list of its bytes (a review)."""
    import hashlib
    import zipfile

    packed = tmp_path / "u.zip"
    with zipfile.ZipFile(packed, "w") as archive:
        archive.writestr("notable.csv", "name,md5\n" + "".join(
            f"f{i},{hashlib.md5(bytes([i])).hexdigest()}\n" for i in range(5)))  # fmt: skip
    db = tmp_path / "s.db"
    result = runner.invoke(cli, ["import", str(packed), "--format", "csv", "--skip-invalid", "--db", str(db)])
    assert result.exit_code == 2, result.output
    assert "a zip archive: the csv reader does not read zips" in result.stderr
    assert not db.exists()


def test_a_tar_named_as_a_text_format_is_refused(runner: CliRunner, tmp_path: Path) -> None:
    """With --format gnu-sum --skip-invalid a tar of an md5sum list imported 1 entry of 4,
    its header lines skipped (a review); detection alone refuses it too, naming it."""
    import hashlib
    import io
    import tarfile

    text = "".join(f"{hashlib.md5(bytes([i])).hexdigest()}  f{i}\n" for i in range(4)).encode()
    packed = tmp_path / "n.tar"
    with tarfile.open(packed, "w") as archive:
        info = tarfile.TarInfo("notable.md5")
        info.size = len(text)
        archive.addfile(info, io.BytesIO(text))
    db = tmp_path / "s.db"
    for extra in (["--format", "gnu-sum", "--skip-invalid"], []):
        result = runner.invoke(cli, ["import", str(packed), *extra, "--db", str(db)])
        assert result.exit_code == 2, result.output
        assert "a tar archive: matcher reads hash lists unpacked" in result.stderr, result.stderr
    assert not db.exists()


def test_a_text_list_with_ustar_at_byte_257_is_not_taken_for_a_tar(runner: CliRunner, tmp_path: Path) -> None:
    """Only a tar header with its checksum right is a tar: "ustar" fell at byte 257 of an
    md5sum list (a file named mustard.txt), refused with --format (a review)."""
    import hashlib

    names = ["x" * 187, "mustard.txt", *(f"f{i}" for i in range(18))]  # line 1: 222 bytes
    listed = tmp_path / "lists.md5"
    listed.write_text("".join(f"{hashlib.md5(n.encode()).hexdigest()}  {n}\n" for n in names))
    assert listed.read_bytes()[257:262] == b"ustar"
    for extra in (["--format", "gnu-sum"], []):
        result = runner.invoke(cli, ["import", str(listed), *extra, "--db", str(tmp_path / f"s{len(extra)}.db")])
        assert result.exit_code == 0, result.output
        assert "imported 20 entries" in result.stderr


@pytest.mark.parametrize("kind", ["another SQLite database", "not a database"])
@pytest.mark.parametrize("command", ["import", "lists"])
def test_a_store_that_is_no_matcher_store_is_refused_saying_what_to_do(
    runner: CliRunner, tmp_path: Path, kind: str, command: str
) -> None:
    """The refusal said what the file is not ("... not a matcher hash store.", "file is
    not a database"), but not what to do."""
    db = tmp_path / "other.db"
    if kind == "not a database":
        db.write_text("plain text\n")
    else:
        conn = sqlite3.connect(db)
        conn.execute("CREATE TABLE t (x)")
        conn.commit()
        conn.close()
    before = db.read_bytes()
    args = [str(LISTS / "notable.txt")] if command == "import" else []
    result = runner.invoke(cli, [command, *args, "--db", str(db)])
    assert result.exit_code == 2, result.output
    assert "it is left as it is: give matcher's store with --db" in result.stderr, result.stderr
    # `lists` makes no store: a path where no file is "does not exist" there.
    made = "or a path where no file is, to make a new store" in result.stderr
    assert made == (command == "import"), result.stderr
    assert db.read_bytes() == before
