"""Evidence roots that repeat or nest are scanned once, with a note in the log."""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import FIXTURES
from conftest import assert_counts_add_up
from conftest import end_record
from conftest import read_log

from matcher.cli import cli
from matcher.evidence.roots import distinct_roots


def test_distinct_roots_drops_repeats_and_nested_roots(tmp_path: Path) -> None:
    (tmp_path / "ev" / "sub").mkdir(parents=True)
    (tmp_path / "other").mkdir()
    ev, sub, other = tmp_path / "ev", tmp_path / "ev" / "sub", tmp_path / "other"
    dotted = Path(str(ev) + "/./")
    kept, notes = distinct_roots([sub, ev, other, dotted, other])
    assert kept == [ev, other]
    assert len(notes) == 3
    assert f"evidence {sub} lies inside evidence {ev}" in notes[0]
    # `ev/./` is `ev` once made a Path: the note cannot tell them apart, and says "twice".
    assert notes[1] == f"evidence {ev} is named twice: scanned once"
    assert notes[2] == f"evidence {other} is named twice: scanned once"


def test_distinct_roots_sees_one_folder_reached_by_two_paths(tmp_path: Path) -> None:
    """A folder bind-mounted elsewhere is one folder (a hard-linked file is two entries:
    see test_two_hard_links_given_as_roots_are_both_scanned)."""
    import subprocess

    from test_hostile import require_root

    require_root()
    (tmp_path / "real").mkdir()
    (tmp_path / "mnt").mkdir()
    (tmp_path / "real" / "f").write_bytes(b"x")
    subprocess.run(["mount", "--bind", str(tmp_path / "real"), str(tmp_path / "mnt")], check=True)
    try:
        kept, notes = distinct_roots([tmp_path / "real", tmp_path / "mnt"])
    finally:
        subprocess.run(["umount", str(tmp_path / "mnt")], check=True)
    assert kept == [tmp_path / "real"] and "is the same as" in notes[0]


def test_sibling_names_with_a_common_prefix_are_not_nested(tmp_path: Path) -> None:
    (tmp_path / "ev").mkdir()
    (tmp_path / "ev2").mkdir()
    kept, notes = distinct_roots([tmp_path / "ev", tmp_path / "ev2"])
    assert kept == [tmp_path / "ev", tmp_path / "ev2"] and notes == []


def test_scan_of_overlapping_roots_counts_and_logs_each_file_once(
    runner: CliRunner, tmp_path: Path
) -> None:
    ev = tmp_path / "ev"
    shutil.copytree(FIXTURES / "evidence", ev, symlinks=True)
    db = tmp_path / "s.db"
    lists = FIXTURES / "hashlists"
    common = [
        "--examiner",
        "E",
        "--case",
        "C",
        "--db",
        str(db),
        "--list",
        str(lists / "notable.csv"),
    ]
    once, twice = tmp_path / "once.jsonl", tmp_path / "twice.jsonl"
    runner.invoke(cli, ["scan", str(ev), *common, "--log", str(once)], catch_exceptions=False)
    nested = [str(ev), str(ev / "data"), str(ev), f"{ev}/."]
    result = runner.invoke(cli, ["scan", *nested, *common, "--log", str(twice)])
    assert result.exit_code == 1, result.output
    assert assert_counts_add_up(twice) == assert_counts_add_up(once)
    matches = [r["path"] for r in read_log(twice) if r["type"] == "match"]
    assert len(matches) == len(set(matches)) > 0
    notes = end_record(twice)["notes"]
    assert sum("scanned once" in n for n in notes) == 3, notes


def test_an_evidence_root_that_is_a_symlink_is_refused_not_a_clean_scan_of_nothing(
    runner: CliRunner, tmp_path: Path
) -> None:
    """`scan LINK` skipped the root as a symlink and reported `complete`, exit 0: a whole tree
    unread looked like a clean result. The folder it names (or `LINK/`) scans as before."""
    ev = tmp_path / "ev"
    shutil.copytree(FIXTURES / "evidence", ev, symlinks=True)
    link = tmp_path / "mounted"
    link.symlink_to(ev)
    common = ["--examiner", "E", "--case", "C", "--db", str(tmp_path / "s.db"),
              "--list", str(FIXTURES / "hashlists" / "notable.csv")]  # fmt: skip
    log = tmp_path / "l.jsonl"
    result = runner.invoke(cli, ["scan", str(link), *common, "--log", str(log)])
    assert result.exit_code == 2 and "is a symbolic link" in result.output, result.output
    assert str(ev) in result.output and not log.exists()
    ok = runner.invoke(cli, ["scan", str(ev), *common, "--log", str(log)])
    assert ok.exit_code == 1, ok.output


def test_a_symlinked_roots_refusal_names_what_the_link_itself_names(runner: CliRunner, tmp_path: Path) -> None:
    """The refusal named where the chain of links ends (realpath): for a loop, loop1 -> loop2
    -> loop1, "loop1 is a symbolic link (to .../loop1)". It names the link's own target, and
    where the chain ends, or that it leads nowhere."""
    (tmp_path / "real").mkdir()
    (tmp_path / "loop1").symlink_to("loop2")
    (tmp_path / "loop2").symlink_to("loop1")
    (tmp_path / "l1").symlink_to("real")
    (tmp_path / "l2").symlink_to("l1")
    common = ["--examiner", "E", "--case", "C", "--db", str(tmp_path / "s.db"),
              "--list", str(FIXTURES / "hashlists" / "notable.csv"), "--log", str(tmp_path / "l.jsonl")]  # fmt: skip
    said = {name: runner.invoke(cli, ["scan", str(tmp_path / name), *common]) for name in ("loop1", "l1", "l2")}
    assert all(r.exit_code == 2 for r in said.values())
    assert "symbolic link (to loop2, which leads nowhere: Too many levels" in said["loop1"].output
    assert "symbolic link (to real)." in said["l1"].output
    assert f"symbolic link (to l1, leading to {os.path.realpath(tmp_path / 'real')})." in said["l2"].output


def _scan(runner: CliRunner, tmp_path: Path, *args: str) -> tuple[object, Path]:
    """A scan with a store whose notable list holds b'secret\\n', its log in tmp_path/out."""
    out = tmp_path / "out"
    out.mkdir(exist_ok=True)
    db = out / "s.db"
    if not db.exists():
        listing = out / "n.sha256"
        listing.write_text(f"{hashlib.sha256(b'secret' + bytes([10])).hexdigest()}  x\n")
        assert runner.invoke(cli, ["import", str(listing), "--db", str(db), "--role", "notable"]).exit_code == 0
    log = out / f"r{len(list(out.glob('*.jsonl')))}.jsonl"
    result = runner.invoke(cli, ["scan", *args, "--examiner", "E", "--case", "C", "--db", str(db),
                                 "--log", str(log), "-q"])  # fmt: skip
    return result, log


def test_a_root_through_a_link_and_dot_dot_is_the_folder_the_kernel_names(
    runner: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before: `Lsub/..` (Lsub a link to ev/sub) was collapsed lexically to the folder holding
    Lsub: the scan walked the case folder above the evidence, a file outside it matched."""
    case = tmp_path / "case"
    (case / "ev" / "sub").mkdir(parents=True)
    (case / "ev" / "a").write_bytes(b"e1\n")
    (case / "notes.txt").write_bytes(b"secret\n")  # outside the evidence named
    os.symlink("ev/sub", case / "Lsub")
    monkeypatch.chdir(case)
    result, log = _scan(runner, tmp_path, "Lsub/..")
    assert result.exit_code == 0, result.output  # type: ignore[attr-defined]
    records = read_log(log)
    assert records[0]["evidence"][0]["path"] == str(case / "ev")
    assert assert_counts_add_up(log)["files"] == 1
    assert not [r for r in records if r["type"] == "match"]


def test_a_nested_root_reached_through_a_symlinked_parent_is_scanned_once(
    runner: CliRunner, tmp_path: Path
) -> None:
    """Before: `ev` and `L/sub` (L a link to ev) were compared as strings: the files under
    ev/sub were hashed twice, and each notable one logged twice."""
    ev = tmp_path / "ev"
    (ev / "sub").mkdir(parents=True)
    (ev / "sub" / "x").write_bytes(b"secret\n")
    os.symlink(ev, tmp_path / "L")
    result, log = _scan(runner, tmp_path, str(ev), str(tmp_path / "L" / "sub"))
    assert result.exit_code == 1, result.output  # type: ignore[attr-defined]
    counts = assert_counts_add_up(log)
    assert counts["files"] == 1 and counts["notable"] == 1, counts
    assert any("lies inside" in n for n in end_record(log)["notes"])  # type: ignore[attr-defined]


def test_a_nested_root_below_a_symlink_out_of_the_outer_root_is_walked(
    runner: CliRunner, tmp_path: Path
) -> None:
    """`ev/link/x` with `link` pointing out of ev: ev's walk never follows the link, so the
    root named inside it must be walked on its own (lexically it lay inside ev: dropped)."""
    ev, elsewhere = tmp_path / "ev", tmp_path / "elsewhere"
    ev.mkdir()
    elsewhere.mkdir()
    (elsewhere / "x").write_bytes(b"secret\n")
    os.symlink(elsewhere, ev / "link")
    result, log = _scan(runner, tmp_path, str(ev), str(ev / "link" / "x"))
    assert result.exit_code == 1, result.output  # type: ignore[attr-defined]
    counts = assert_counts_add_up(log)
    assert counts["notable"] == 1 and counts["skipped_by_reason"] == {"symlink": 1}, counts


@pytest.mark.parametrize("pattern", ["x", "sub"])
def test_a_named_root_is_read_though_a_pattern_excludes_it_inside_another_root(
    runner: CliRunner, tmp_path: Path, pattern: str
) -> None:
    """Before: `scan ev ev/sub/x --exclude x` dropped ev/sub/x as "scanned once" and ev's walk
    then excluded it: the notable file named on the command line was never read, exit 0."""
    ev = tmp_path / "ev"
    (ev / "sub").mkdir(parents=True)
    (ev / "sub" / "x").write_bytes(b"secret\n")
    (ev / "y").write_bytes(b"other\n")
    result, log = _scan(runner, tmp_path, str(ev), str(ev / "sub" / "x"), "--exclude", pattern)
    assert result.exit_code == 1, result.output  # type: ignore[attr-defined]
    counts = assert_counts_add_up(log)
    assert counts["notable"] == 1, counts
    matches = [r["path"] for r in read_log(log) if r["type"] == "match"]
    assert matches == [str(ev / "sub" / "x")]


@pytest.mark.parametrize("order", ["outer first", "nested first"])
def test_a_nested_root_meets_the_exclude_patterns_as_they_read_against_it(
    runner: CliRunner, tmp_path: Path, order: str
) -> None:
    """Before: `scan ev ev/d0/s0 --exclude 'd0/*'` folded ev/d0/s0 into ev's walk, where
    `d0/s0/x` matches `d0/*`: every file of the root the examiner named was excluded, noted
    "scanned once", exit 0. Given alone, the same root read them all."""
    ev = tmp_path / "ev"
    (ev / "d0" / "s0" / "deeper").mkdir(parents=True)
    (ev / "d0" / "s0" / "x").write_bytes(b"secret\n")
    (ev / "d0" / "s0" / "deeper" / "y").write_bytes(b"secret\n")
    (ev / "d0" / "other").write_bytes(b"secret\n")  # excluded: under d0, outside the nested root
    (ev / "top").write_bytes(b"plain\n")
    nested = ev / "d0" / "s0"
    roots = [str(ev), str(nested)] if order == "outer first" else [str(nested), str(ev)]
    result, log = _scan(runner, tmp_path, *roots, "--exclude", "d0/*")
    assert result.exit_code == 1, result.output  # type: ignore[attr-defined]
    counts = assert_counts_add_up(log)
    matches = sorted(r["path"] for r in read_log(log) if r["type"] == "match")
    assert matches == [str(nested / "deeper" / "y"), str(nested / "x")]  # each once
    assert counts["skipped_by_reason"] == {"excluded": 1} and counts["files"] == 3, counts
    notes = end_record(log)["notes"]
    said = f"evidence {nested} lies inside evidence {ev}: walked as a root of its own"
    assert any(n.startswith(said) for n in notes), notes  # type: ignore[attr-defined]
    assert not any("scanned once" in n for n in notes), notes  # type: ignore[attr-defined]
    alone, alone_log = _scan(runner, tmp_path, str(nested), "--exclude", "d0/*")
    assert assert_counts_add_up(alone_log)["notable"] == 2, alone.output  # type: ignore[attr-defined]


def test_without_exclude_patterns_a_nested_root_is_still_scanned_once(
    runner: CliRunner, tmp_path: Path
) -> None:
    ev = tmp_path / "ev"
    (ev / "d0" / "s0").mkdir(parents=True)
    (ev / "d0" / "s0" / "x").write_bytes(b"secret\n")
    result, log = _scan(runner, tmp_path, str(ev), str(ev / "d0" / "s0"))
    assert result.exit_code == 1, result.output  # type: ignore[attr-defined]
    assert assert_counts_add_up(log)["files"] == 1
    assert f"evidence {ev / 'd0' / 's0'} lies inside evidence {ev}: scanned once" in end_record(log)["notes"]  # type: ignore[operator]


def test_an_exclude_pattern_that_matched_nothing_is_noted(runner: CliRunner, tmp_path: Path) -> None:
    """Before: `--exclude /abs/ev/sub` (or `sub/`) excluded nothing and said nothing: the
    examiner believed a folder left out that was read."""
    ev = tmp_path / "ev"
    (ev / "sub").mkdir(parents=True)
    (ev / "sub" / "x").write_bytes(b"private\n")
    result, log = _scan(runner, tmp_path, str(ev), "--exclude", str(ev / "sub"), "--exclude", "x")
    assert result.exit_code == 0, result.output  # type: ignore[attr-defined]
    notes = end_record(log)["notes"]
    assert any(f"--exclude {ev / 'sub'} matched no entry" in n for n in notes), notes  # type: ignore[attr-defined]
    assert not any("--exclude x " in n for n in notes)  # type: ignore[attr-defined]


@pytest.mark.parametrize("nested", [False, True])
def test_a_pattern_that_matched_only_a_named_root_says_so(
    runner: CliRunner, tmp_path: Path, nested: bool
) -> None:
    """Before: `scan ev/a.bin --exclude '*.bin'` read a.bin (a root is never excluded) and
    noted that the pattern "matched no entry"."""
    ev = tmp_path / "ev"
    ev.mkdir()
    (ev / "a.bin").write_bytes(b"secret\n")
    (ev / "b.txt").write_bytes(b"other\n")
    roots = [str(ev), str(ev / "a.bin")] if nested else [str(ev / "a.bin")]
    result, log = _scan(runner, tmp_path, *roots, "--exclude", "*.bin")
    assert result.exit_code == 1, result.output  # type: ignore[attr-defined]
    notes = end_record(log)["notes"]
    said = "--exclude *.bin matched only evidence given as a root, which no pattern excludes"
    assert any(said in n for n in notes), notes  # type: ignore[attr-defined]
    assert not any("matched no entry" in n for n in notes), notes  # type: ignore[attr-defined]


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_a_long_path_under_a_root_named_through_a_symlink_is_read(
    runner: CliRunner, tmp_path: Path, jobs: str
) -> None:
    """Before: a file deeper than 4,000 bytes under `link/ev` (link a symlink the examiner named,
    as /home -> /var/home) was an error, `changed` (ENOTDIR): the long-path open refused the
    root's own symlink."""
    real = tmp_path / "real" / "ev"
    real.mkdir(parents=True)
    names = [f"d{i:02d}_" + "x" * 90 for i in range(45)]
    _deep_file(real, names, "deepfile")
    os.symlink(tmp_path / "real", tmp_path / "link")
    root = tmp_path / "link" / "ev"
    assert len(str(root)) + sum(len(n) + 1 for n in names) > 4000
    result, log = _scan(runner, tmp_path, str(root), "--jobs", jobs)
    assert result.exit_code == 1, result.output  # type: ignore[attr-defined]
    counts = assert_counts_add_up(log)
    assert counts["errors"] == 0 and counts["notable"] == 1, counts


@pytest.mark.parametrize("given", ["link/ev", "link/ev/", "./link/ev"])
def test_hash_reads_a_long_path_under_a_relative_root_named_through_a_symlink(
    runner: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, given: str
) -> None:
    """Before: `matcher hash link/ev` (relative, as typed) lost every file deeper than 4,000
    bytes, reported `changed` (ENOTDIR): the long-path open knew the root's real path only by
    its absolute name, and opened from `.`, refusing the examiner's own link."""
    real = tmp_path / "real" / "ev"
    real.mkdir(parents=True)
    names = [f"d{i:02d}_" + "x" * 90 for i in range(45)]
    _deep_file(real, names, "deepfile")
    (real / "top").write_bytes(b"top\n")
    os.symlink(tmp_path / "real", tmp_path / "link")
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(cli, ["hash", given, "--format", "md5sum", "--algorithms", "md5"])
    assert result.exit_code == 0, result.output
    assert b"/deepfile" in result.stdout_bytes and b"/top" in result.stdout_bytes
    assert "2 files" in result.stderr and "changed" not in result.stderr


def test_a_long_path_under_the_inner_of_two_symlinked_roots_takes_the_inner_roots_path(
    runner: CliRunner, tmp_path: Path
) -> None:
    """`S/ev` and `S/ev/lnk/x`, lnk a link out of ev: a long path under the second was opened
    from the first's real path (the first prefix that matched), refusing `lnk`: ENOTDIR."""
    (tmp_path / "realp" / "ev").mkdir(parents=True)
    outside = tmp_path / "outside" / "x"
    outside.mkdir(parents=True)
    os.symlink(tmp_path / "realp", tmp_path / "S")
    os.symlink(tmp_path / "outside", tmp_path / "realp" / "ev" / "lnk")
    _deep_file(outside, [f"d{i:02d}" + "x" * 240 for i in range(20)], "deep.bin")
    result, log = _scan(runner, tmp_path, str(tmp_path / "S" / "ev"), str(tmp_path / "S" / "ev" / "lnk" / "x"))
    assert result.exit_code == 1, result.output  # type: ignore[attr-defined]
    counts = assert_counts_add_up(log)
    assert counts["errors"] == 0 and counts["notable"] == 1, counts


def test_a_hard_link_to_a_file_root_is_still_excluded(runner: CliRunner, tmp_path: Path) -> None:
    """Roots were told apart by (device, inode): every hard link of a file root counted as the
    root, and escaped --exclude (read and logged though excluded)."""
    ev = tmp_path / "ev"
    (ev / "a").mkdir(parents=True)
    (ev / "b").mkdir()
    (ev / "a" / "x.bin").write_bytes(b"secret\n")
    os.link(ev / "a" / "x.bin", ev / "b" / "y.bin")
    result, log = _scan(runner, tmp_path, str(ev), str(ev / "a" / "x.bin"), "--exclude", "*.bin")
    matches = [r["path"] for r in read_log(log) if r["type"] == "match"]
    assert matches == [str(ev / "a" / "x.bin")], matches
    assert assert_counts_add_up(log)["skipped_by_reason"] == {"excluded": 1}


def _deep_file(top: Path, names: list[str], leaf: str) -> None:
    """top/names[0]/.../names[-1]/leaf holding b'secret\\n', made one level at a time (the
    whole path may pass PATH_MAX)."""
    fd = os.open(top, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for name in names:
            os.mkdir(name, dir_fd=fd)
            fd, old = os.open(name, os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd), fd
            os.close(old)
        out = os.open(leaf, os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=fd)
        os.write(out, b"secret\n")
        os.close(out)
    finally:
        os.close(fd)


def test_two_hard_links_given_as_roots_are_both_scanned(runner: CliRunner, tmp_path: Path) -> None:
    """The second of two hard-linked file roots was dropped as "the same" (by device and
    inode): in neither the run record's evidence nor the inventory; a walk lists both names."""
    (tmp_path / "hl1").mkdir()
    (tmp_path / "hl2").mkdir()
    (tmp_path / "hl1" / "a").write_bytes(b"secret\n")
    os.link(tmp_path / "hl1" / "a", tmp_path / "hl2" / "b")
    kept, notes = distinct_roots([tmp_path / "hl1" / "a", tmp_path / "hl2" / "b"])
    assert kept == [tmp_path / "hl1" / "a", tmp_path / "hl2" / "b"] and not notes
    result, log = _scan(runner, tmp_path, str(tmp_path / "hl1" / "a"), str(tmp_path / "hl2" / "b"))
    assert result.exit_code == 1, result.output  # type: ignore[attr-defined]
    matches = sorted(r["path"] for r in read_log(log) if r["type"] == "match")
    assert matches == [str(tmp_path / "hl1" / "a"), str(tmp_path / "hl2" / "b")]


def test_a_root_replaced_by_a_symlink_after_the_check_is_an_error_not_a_clean_scan(
    runner: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A root swapped for a symlink between the scan's check and its walk was skipped as one:
    `complete`, files 0, exit 0."""
    import matcher.scan as scan_mod

    ev = tmp_path / "ev"
    ev.mkdir()
    (ev / "f").write_bytes(b"secret\n")
    real_walker = scan_mod.FolderWalker

    class Swapping(real_walker):  # type: ignore[misc,valid-type]
        def walk(self, roots):  # type: ignore[no-untyped-def]
            ev.rename(tmp_path / "ev.real")
            ev.symlink_to(tmp_path / "ev.real")
            return super().walk(roots)

    monkeypatch.setattr(scan_mod, "FolderWalker", Swapping)
    result, log = _scan(runner, tmp_path, str(ev))
    assert result.exit_code == 4, result.output  # type: ignore[attr-defined]
    counts = assert_counts_add_up(log)
    assert counts["errors"] == 1 and counts["skipped"] == 0, counts
    [error] = [r for r in read_log(log) if r["type"] == "error"]
    assert error["reason"] == "changed" and "replaced after the scan began" in error["detail"]


def test_an_excluded_symlink_is_never_read(runner: CliRunner, tmp_path: Path) -> None:
    """--exclude resolved each excluded entry's real path: a symlink's target was read, and its
    access time (evidence metadata) moved."""
    ev = tmp_path / "ev"
    (ev / "s").mkdir(parents=True)
    (ev / "t").write_bytes(b"a\n")
    link = ev / "s" / "l1"
    link.symlink_to("../t")
    os.utime(link, ns=(1_577_836_800 * 10**9, 1_609_459_200 * 10**9), follow_symlinks=False)
    before = os.lstat(link).st_atime_ns
    result, log = _scan(runner, tmp_path, str(ev), "--exclude", "s/*")
    assert os.lstat(link).st_atime_ns == before
    assert assert_counts_add_up(log)["skipped_by_reason"] == {"excluded": 1}


def test_a_root_below_a_folder_that_cannot_be_searched_is_not_said_not_to_exist(
    tmp_path: Path,
) -> None:
    """Before: `scan locked/in.txt`, run by a user who cannot search `locked`, said "Evidence
    locked/in.txt does not exist": the examiner looked for a typo in a path that is there."""
    import subprocess
    import sys

    from test_hostile import require_root

    require_root()
    tmp_path.chmod(0o755)
    (tmp_path / "locked").mkdir(mode=0o744)  # readable, not searchable, by others
    (tmp_path / "locked" / "in.txt").write_bytes(b"x")
    code = "import sys; from matcher.evidence.roots import unusable_root as u; print(u(sys.argv[1]))"
    root = str(Path(__file__).resolve().parents[1])
    done = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                           sys.executable, "-c", code, str(tmp_path / "locked" / "in.txt")],
                          cwd="/", env={**os.environ, "PYTHONPATH": root}, capture_output=True,
                          text=True, check=True)  # fmt: skip
    assert done.stdout.startswith("cannot be reached (Permission denied)"), done.stdout
    assert "does not exist" not in done.stdout


@pytest.mark.parametrize("command", ["scan", "hash"])
def test_a_root_that_cannot_be_reached_says_why(
    runner: CliRunner, tmp_path: Path, command: str
) -> None:
    os.symlink("loop", tmp_path / "loop")
    target = str(tmp_path / "loop" / "x")
    if command == "scan":
        result, _ = _scan(runner, tmp_path, target)
    else:
        result = runner.invoke(cli, ["hash", target])
    assert result.exit_code == 2, result.output  # type: ignore[attr-defined]
    assert "cannot be reached (Too many levels of symbolic links)" in result.output  # type: ignore[attr-defined]
    assert "does not exist" not in result.output  # type: ignore[attr-defined]
    assert runner.invoke(cli, ["hash", str(tmp_path / "nothing")]).output.count("does not exist") == 1


def test_a_root_this_user_may_not_read_is_refused_alike_by_the_command_line_and_the_library(
    tmp_path: Path,
) -> None:
    """The command line refused an unlistable root (click's own check, no --json answer), while
    `run_scan` (and so `batch`) scanned it as one walk error: "complete", exit 4. Both refuse it
    now, naming why, and scan --json answers with its error object."""
    import json
    import subprocess
    import sys

    from test_hostile import require_root

    require_root()
    import shutil
    import tempfile

    tmp_path = Path(tempfile.mkdtemp(prefix="matcher-unreadable-", dir="/tmp"))  # its parents searchable
    try:
        _refused_alike(tmp_path)
    finally:
        shutil.rmtree(tmp_path)


def _refused_alike(tmp_path: Path) -> None:
    import json
    import subprocess
    import sys

    tmp_path.chmod(0o755)
    (tmp_path / "r").mkdir(mode=0o700)
    (tmp_path / "r" / "a").write_bytes(b"x")
    (tmp_path / "out").mkdir()
    (tmp_path / "out").chmod(0o777)
    root = str(Path(__file__).resolve().parents[1])
    nobody = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", sys.executable]
    env = {**os.environ, "PYTHONPATH": root}
    code = (
        "import sys\n"
        "from matcher.scan import ScanOptions, run_scan\n"
        "from matcher.errors import UsageError\n"
        "try:\n"
        "    run_scan(ScanOptions([sys.argv[1]], 'E', 'C', sys.argv[2] + '/s.db', sys.argv[2] + '/l.jsonl',\n"
        "                         lists=[sys.argv[2] + '/n.md5']))\n"
        "except UsageError as exc:\n"
        "    print(exc)\n"
    )
    (tmp_path / "out" / "n.md5").write_text("0" * 32 + "  x\n")
    (tmp_path / "out" / "n.md5").chmod(0o644)
    done = subprocess.run([*nobody, "-c", code, str(tmp_path / "r"), str(tmp_path / "out")], cwd="/", env=env,
                          capture_output=True, text=True, check=True)  # fmt: skip
    assert "cannot be read (Permission denied)" in done.stdout, done.stdout + done.stderr
    cli = subprocess.run([*nobody, "-m", "matcher", "scan", str(tmp_path / "r"), "--examiner", "E", "--case", "C",
                          "--db", str(tmp_path / "out" / "s.db"), "--log", str(tmp_path / "out" / "c.jsonl"), "--json"],
                         cwd="/", env=env, capture_output=True, text=True)  # fmt: skip
    assert cli.returncode == 2
    said = json.loads(cli.stdout)
    assert said["status"] == "error" and "cannot be read (Permission denied)" in said["error"]


def test_a_scan_by_a_user_who_does_not_own_the_evidence_says_access_times_may_have_moved(
    tmp_path: Path,
) -> None:
    """As a user who does not own the files (no CAP_FOWNER), the kernel refuses O_NOATIME: every
    file read and folder listed had its access time moved, and the log said nothing of it. The
    end record now counts them (the user's own files keep theirs, and are not counted); a scan
    as root, which keeps every access time, says nothing."""
    import tempfile

    from test_hostile import require_root

    require_root()
    # (Not under tmp_path: pytest's base folder is the owner's only, and nobody could not reach it.)
    with tempfile.TemporaryDirectory(dir="/tmp") as scratch:
        _scan_as_nobody_and_root(Path(scratch))


def _scan_as_nobody_and_root(tmp_path: Path) -> None:
    import json
    import subprocess
    import sys

    tmp_path.chmod(0o755)
    ev = tmp_path / "ev"
    (ev / "sub").mkdir(parents=True)
    for name in ("a", "sub/b", "own"):
        (ev / name).write_bytes(name.encode())
    os.chown(ev / "own", 65534, 65534)
    for path in (ev, ev / "sub", ev / "a", ev / "sub" / "b", ev / "own"):
        path.chmod(0o755 if path.is_dir() else 0o644)
    out = tmp_path / "out"
    out.mkdir()
    out.chmod(0o777)
    (out / "n.md5").write_text("0" * 32 + "  x\n")
    (out / "n.md5").chmod(0o644)
    root = str(Path(__file__).resolve().parents[1])
    nobody = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
    notes = {}
    for who, prefix in (("nobody", nobody), ("root", [])):
        log = out / f"{who}.jsonl"
        done = subprocess.run([*prefix, sys.executable, "-m", "matcher", "scan", str(ev), "--examiner", "E", "--case", "C",
                               "--db", str(out / f"{who}.db"), "--list", str(out / "n.md5"), "--log", str(log), "-q"],
                              cwd="/", env={**os.environ, "PYTHONPATH": root}, capture_output=True, text=True)  # fmt: skip
        assert done.returncode == 0, done.stderr
        notes[who] = [n for n in json.loads(log.read_bytes().splitlines()[-1])["notes"] if "access time" in n]
    (said,) = notes["nobody"]
    assert said.startswith("2 file(s) read and 2 folder(s) listed may have had their access times updated")
    assert "uid 65534" in said
    assert notes["root"] == []
    # A disk image given as evidence is read whole by the scan itself (a review: left out).
    from conftest import peer_tool

    images = tmp_path / "images"
    images.mkdir(mode=0o755)
    disk = images / "disk.img"
    subprocess.run([peer_tool("mkfs.vfat"), "-C", str(disk), "2048"], check=True, capture_output=True)
    disk.chmod(0o644)
    log = out / "image.jsonl"
    done = subprocess.run([*nobody, sys.executable, "-m", "matcher", "scan", str(disk), "--examiner", "E", "--case", "C",
                           "--db", str(out / "image.db"), "--list", str(out / "n.md5"), "--log", str(log), "-q"],
                          cwd="/", env={**os.environ, "PYTHONPATH": root}, capture_output=True, text=True)  # fmt: skip
    assert done.returncode == 0, done.stderr
    (said,) = [n for n in json.loads(log.read_bytes().splitlines()[-1])["notes"] if "access time" in n]
    assert said.startswith("0 file(s) read, 1 disk image file(s) read and 0 folder(s) listed"), said


def test_a_file_whose_open_failed_is_not_counted_as_read_in_the_access_time_note() -> None:
    """Before: the note counted a file as read when it was handed to the workers, and a file
    this user could not open (an error) was "1 file(s) read ... may have had their access
    times updated": a failed open moves no access time (two validators)."""
    import json
    import subprocess
    import sys
    import tempfile

    from test_hostile import require_root

    require_root()
    with tempfile.TemporaryDirectory(dir="/tmp") as scratch:
        top = Path(scratch)
        top.chmod(0o755)
        ev = top / "ev"
        ev.mkdir(mode=0o755)
        for name, mode in (("a", 0o644), ("b", 0o644), ("locked", 0o000)):
            (ev / name).write_bytes(name.encode())
            (ev / name).chmod(mode)
        out = top / "out"
        out.mkdir()
        out.chmod(0o777)
        (out / "n.md5").write_text("0" * 32 + "  x\n")
        (out / "n.md5").chmod(0o644)
        log = out / "run.jsonl"
        root = str(Path(__file__).resolve().parents[1])
        done = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", sys.executable,
                               "-m", "matcher", "scan", str(ev), "--examiner", "E", "--case", "C", "--db",
                               str(out / "s.db"), "--list", str(out / "n.md5"), "--log", str(log), "-q"],
                              cwd="/", env={**os.environ, "PYTHONPATH": root}, capture_output=True, text=True)  # fmt: skip
        assert done.returncode == 4, done.stderr  # the locked file is an error
        end = json.loads(log.read_bytes().splitlines()[-1])
        (said,) = [n for n in end["notes"] if "access time" in n]
        assert said.startswith("2 file(s) read and 1 folder(s) listed may have had"), said


def test_a_file_being_read_when_the_scan_stops_is_in_the_access_time_note() -> None:
    """Before: the note counted a file once its digests came back, so a scan stopped (SIGTERM)
    while it read a file of another owner said nothing of it, that file's access time moved:
    the interrupted log's note is the only word of it when the run is not resumed."""
    import json
    import signal
    import subprocess
    import sys
    import tempfile
    import time

    from test_hostile import require_root

    require_root()
    with tempfile.TemporaryDirectory(dir="/tmp") as scratch:
        top = Path(scratch)
        (top / "ev").mkdir()
        big = top / "ev" / "big.bin"
        with big.open("wb") as sparse:
            sparse.truncate(64 << 30)  # read for minutes, and stored in no block
        os.chown(big, 1234, 1234)
        os.utime(big, (0, big.stat().st_mtime))
        (top / "n.md5").write_text("0" * 32 + "  x\n")
        log = top / "run.jsonl"
        root = str(Path(__file__).resolve().parents[1])
        # (Root without CAP_FOWNER: the kernel refuses it O_NOATIME for a file it does not own.)
        scan = subprocess.Popen(["setpriv", "--bounding-set=-fowner", sys.executable, "-m", "matcher", "scan",
                                 str(top / "ev"), "--examiner", "E", "--case", "C", "--db", str(top / "s.db"),
                                 "--list", str(top / "n.md5"), "--log", str(log), "-q"],
                                env={**os.environ, "PYTHONPATH": root}, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE)  # fmt: skip
        deadline = time.monotonic() + 60
        while big.stat().st_atime == 0 and scan.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        scan.send_signal(signal.SIGTERM)
        _out, err = scan.communicate(timeout=60)
        assert scan.returncode == 8, err
        assert big.stat().st_atime != 0, "the read had not begun"
        end = json.loads(log.read_bytes().splitlines()[-1])
        assert end["status"] == "interrupted" and end["counts"]["files"] == 0
        (said,) = [n for n in end["notes"] if "access time" in n]
        assert said.startswith("0 file(s) read (and up to 1 more being read when the scan stopped) and "
                               "0 folder(s) listed may have had their access times updated"), said  # fmt: skip


def test_a_link_whose_end_this_user_may_not_look_up_is_not_said_to_lead_nowhere(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A link into a folder the user may not search was "to locked/in, which leads nowhere:
    Permission denied": its target exists."""
    import errno

    import matcher.scan as scan_mod

    link = tmp_path / "tolocked"
    link.symlink_to("locked/in")

    def denied(path: object, strict: bool = False) -> str:
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(scan_mod.os.path, "realpath", denied)
    said = scan_mod._link_target(link)
    assert said == "locked/in, whose end this user may not look up: Permission denied"


@pytest.mark.parametrize("mapped", [True, False], ids=["root of the namespace", "an unmapped user"])
def test_root_of_a_user_namespace_says_the_access_times_of_unmapped_owners_may_have_moved(mapped: bool) -> None:
    """Root of a rootless container has CAP_FOWNER, but the kernel refuses O_NOATIME for files
    whose owners its namespace does not map (they show as the overflow uid): their access times
    moved, and no note said so (a review). The end record counts them too; and when this
    process is itself unmapped (it shows as the overflow uid too), files shown as that uid are
    counted (a second review: none were)."""
    import json
    import shutil
    import subprocess
    import sys
    import tempfile

    from test_hostile import require_root

    require_root()
    unshare = shutil.which("unshare") or pytest.fail("unshare is needed: install util-linux")
    with tempfile.TemporaryDirectory(dir="/tmp") as scratch:
        work = Path(scratch)
        work.chmod(0o755)
        (work / "ev").mkdir()
        (work / "ev" / "a").write_bytes(b"hello\n")
        for path in (work / "ev", work / "ev" / "a"):
            os.chown(path, 1234, 1234)
        (work / "n.md5").write_text("0" * 32 + "  x\n")
        root = str(Path(__file__).resolve().parents[1])
        mapping = ["--map-root-user"] if mapped else []
        done = subprocess.run([unshare, "--user", *mapping, sys.executable, "-m", "matcher", "scan",
                               str(work / "ev"), "--examiner", "E", "--case", "C", "--db", str(work / "s.db"),
                               "--list", str(work / "n.md5"), "--log", str(work / "l.jsonl"), "-q"],
                              env={**os.environ, "PYTHONPATH": root}, capture_output=True, text=True)  # fmt: skip
        assert done.returncode == 0, done.stderr
        notes = json.loads((work / "l.jsonl").read_bytes().splitlines()[-1])["notes"]
        (said,) = [n for n in notes if "access time" in n]
        assert said.startswith("1 file(s) read and 1 folder(s) listed may have had their access times updated")
        assert "may not be mapped in this user namespace" in said
