"""`matcher hash`: inventories that hashdeep's audit, md5sum -c and sha256sum -c accept."""

from __future__ import annotations

import hashlib
import io
import os
import random
import stat
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import peer_tool

from matcher.cli import cli
from matcher.formats import registry as readers
from matcher.reports.gnu_sum import line

SCHEMA = Path(__file__).resolve().parent / "data" / "dfxml_schema" / "dfxml.xsd"
# Names hashdeep can carry (no line breaks); a non-UTF-8 one among them.
NAMES = [b"plain.txt", b"with space, comma.txt", b"back\\slash.bin", b"caf\xe9.bin", b"a&b<c>.bin"]


def make_tree(root: Path, seed: int = 3) -> dict[bytes, bytes]:
    """Benign seeded random files in nested folders; returns {relative path: content}."""
    rng = random.Random(seed)
    files: dict[bytes, bytes] = {}
    for depth, name in enumerate(NAMES * 2):
        folder = os.path.join(*[b"d%d" % i for i in range(depth % 4)]) if depth % 4 else b""
        relative = os.path.join(folder, b"%d-" % depth + name) if folder else b"%d-" % depth + name
        full = os.path.join(os.fsencode(root), relative)
        os.makedirs(os.path.dirname(full), exist_ok=True)
        content = rng.randbytes(rng.choice([0, 1, 4095, 4096, 70_000]))
        with open(full, "wb") as stream:
            stream.write(content)
        files[relative] = content
    return files


@pytest.fixture
def tree(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, dict[bytes, bytes]]:
    root = tmp_path / "tree"
    files = make_tree(root)
    monkeypatch.chdir(root)
    return root, files


def hash_cmd(runner: CliRunner, *args: str, code: int = 0) -> str:
    result = runner.invoke(cli, ["hash", *args])
    assert result.exit_code == code, result.output
    return result.stderr


def test_hashdeep_audit_passes_on_the_same_tree(
    runner: CliRunner, tree: tuple[Path, dict[bytes, bytes]], tmp_path: Path
) -> None:
    hashdeep = peer_tool("hashdeep")
    root, files = tree
    inventory = tmp_path / "tree.hashdeep"
    hash_cmd(runner, ".", "-o", str(inventory), "--jobs", "2")
    raw = inventory.read_bytes()
    assert raw.startswith(b"%%%% HASHDEEP-1.0\n%%%% size,md5,sha256,filename\n## Invoked from: ")
    assert stat.S_IMODE(inventory.stat().st_mode) == 0o600
    done = subprocess.run([hashdeep, "-r", "-l", "-a", "-k", str(inventory), "."],
                          cwd=root, capture_output=True)  # fmt: skip
    assert b"hashdeep: Audit passed" in done.stdout, done.stdout + done.stderr
    # and a changed file fails the same audit
    (root / "0-plain.txt").write_bytes(b"changed")
    done = subprocess.run([hashdeep, "-r", "-l", "-a", "-k", str(inventory), "."],
                          cwd=root, capture_output=True)  # fmt: skip
    assert b"hashdeep: Audit failed" in done.stdout


@pytest.mark.parametrize("uid,prompt", [(0, b"#"), (1000, b"$")])
def test_hashdeep_header_is_hashdeeps_own_for_root_and_others(
    runner: CliRunner,
    tree: tuple[Path, dict[bytes, bytes]],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    uid: int,
    prompt: bytes,
) -> None:
    """hashdeep writes `## # <command>` when run as root: matcher wrote `## $ ` always."""
    hashdeep = peer_tool("hashdeep")
    root, _ = tree
    own = subprocess.run([hashdeep, "-l", "0-plain.txt"], cwd=root, capture_output=True).stdout
    ours = tmp_path / "h.hashdeep"
    hash_cmd(runner, "0-plain.txt", "-o", str(ours))
    # hashdeep's own header, under this test's user, line by line (bar the command).
    want = own.split(b"\n")[:5]
    got = ours.read_bytes().split(b"\n")[:5]
    assert got[:3] + [got[3][:5], got[4]] == want[:3] + [want[3][:5], want[4]]
    monkeypatch.setattr(os, "geteuid", lambda: uid)
    hash_cmd(runner, "0-plain.txt", "-o", str(ours), "--force")
    # (The command line is pytest's own arguments after "matcher": none under CI.)
    assert ours.read_bytes().split(b"\n")[3].startswith(b"## " + prompt + b" matcher")


def test_hashdeep_inventory_reads_back_with_the_hashdeep_reader(
    runner: CliRunner, tree: tuple[Path, dict[bytes, bytes]], tmp_path: Path
) -> None:
    _, files = tree
    inventory = tmp_path / "tree.hashdeep"
    hash_cmd(runner, ".", "-o", str(inventory), "--algorithms", "md5,sha1,sha256")
    records = list(readers.get("hashdeep").parse(io.BytesIO(inventory.read_bytes())))
    got = {}
    for r in records:
        name = r.name if isinstance(r.name, bytes) else str(r.name).encode()
        got[name] = (r.size, dict(r.digests))
    want = {
        b"./" + path: (
            len(data),
            {a: hashlib.new(a, data).digest() for a in ("md5", "sha1", "sha256")},
        )
        for path, data in files.items()
    }
    assert got == want


@pytest.mark.parametrize("fmt,tool", [("md5sum", "md5sum"), ("sha256sum", "sha256sum")])
def test_sum_formats_check_with_coreutils_even_for_escaped_names(
    runner: CliRunner, tree: tuple[Path, dict[bytes, bytes]], tmp_path: Path, fmt: str, tool: str
) -> None:
    root, files = tree
    with open(os.path.join(os.fsencode(root), b"new\nline.bin"), "wb") as stream:
        stream.write(b"synthetic newline name")
    files[b"new\nline.bin"] = b"synthetic newline name"
    out = tmp_path / f"tree.{fmt}"
    hash_cmd(runner, ".", "--format", fmt, "--algorithms", "md5,sha256", "-o", str(out))
    raw = out.read_bytes()
    assert b"\\" + hashlib.new(fmt[:-3], b"synthetic newline name").hexdigest().encode() in raw
    assert raw.count(b"\n") == len(files)
    checker = peer_tool(tool)
    done = subprocess.run([checker, "--strict", "-c", str(out)], cwd=root, capture_output=True)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count(b": OK") == len(files)
    records = list(readers.get("gnu-sum").parse(io.BytesIO(raw), source=f"x.{fmt[:-3]}"))
    names = {r.name if isinstance(r.name, bytes) else str(r.name).encode() for r in records}
    assert names == {b"./" + p for p in files}


@pytest.mark.parametrize("fmt", ["md5sum", "sha256sum"])
def test_a_file_named_dash_checks_with_coreutils_not_as_stdin(
    runner: CliRunner, tree: tuple[Path, dict[bytes, bytes]], tmp_path: Path, fmt: str
) -> None:
    """A line naming `-` makes `*sum -c` hash its stdin: the file `-` failed the check."""
    root, _ = tree
    (root / "-").write_bytes(b"synthetic file named dash")
    out = tmp_path / f"dash.{fmt}"
    hash_cmd(runner, "--format", fmt, "-o", str(out), "--", "-")
    assert out.read_bytes().endswith(b"  ./-\n")
    done = subprocess.run([peer_tool(fmt), "--strict", "-c", str(out)], cwd=root,
                          stdin=subprocess.DEVNULL, capture_output=True)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr


def test_gnu_escaping_matches_coreutils() -> None:
    assert line("ab", b"plain") == "ab  plain\n"
    assert line("ab", b"back\\slash") == "\\ab  back\\\\slash\n"
    assert line("ab", b"new\nline\rcr") == "\\ab  new\\nline\\rcr\n"


def test_absolute_argument_gives_absolute_paths(
    runner: CliRunner, tree: tuple[Path, dict[bytes, bytes]], tmp_path: Path
) -> None:
    root, files = tree
    out = tmp_path / "abs.md5"
    hash_cmd(runner, str(root), "--format", "md5sum", "-o", str(out))
    assert all(os.fsencode(root) in row for row in out.read_bytes().splitlines())
    out = tmp_path / "rel.md5"
    hash_cmd(runner, "d0", "--format", "md5sum", "-o", str(out))
    rows = out.read_bytes().replace(b"\\\\", b"/").splitlines()
    assert len(rows) == 7
    assert all(row.split(b"  ", 1)[1].startswith(b"d0/") for row in rows)


def test_dfxml_inventory_validates(
    runner: CliRunner, tree: tuple[Path, dict[bytes, bytes]], tmp_path: Path
) -> None:
    xmllint = peer_tool("xmllint")
    _, files = tree
    out = tmp_path / "tree.xml"
    hash_cmd(
        runner, ".", "--format", "dfxml", "--algorithms", "md5,sha1,sha256,sha512", "-o", str(out)
    )
    done = subprocess.run([xmllint, "--noout", "--schema", str(SCHEMA), str(out)],
                          capture_output=True, text=True)  # fmt: skip
    assert done.returncode == 0, done.stderr
    text = out.read_text("utf-8")
    assert text.count("<fileobject>") == len(files)
    assert "matcher:name_b64=" in text  # the Latin-1 name, kept exactly


def test_skipped_and_uncarryable_entries_are_reported_and_exit_4(
    runner: CliRunner, tree: tuple[Path, dict[bytes, bytes]], tmp_path: Path
) -> None:
    root, files = tree
    os.symlink("0-plain.txt", root / "link")
    with open(os.path.join(os.fsencode(root), b"new\nline.bin"), "wb") as stream:
        stream.write(b"x")
    out = tmp_path / "tree.hashdeep"
    stderr = hash_cmd(runner, ".", "-o", str(out), code=4)
    assert "'./link': skipped (symlink)" in stderr
    assert "'./new\\nline.bin': not written: the hashdeep format cannot carry" in stderr
    assert ("left out, each named above: 1 skipped (symlinks, FIFOs, devices, sockets); "
            "1 with a name the format cannot carry.") in stderr  # fmt: skip
    assert out.read_bytes().count(b"\n") == 5 + len(files)
    assert b"new" not in out.read_bytes().split(b"\n## \n", 1)[1]


def test_excluded_entries_do_not_make_it_incomplete(
    runner: CliRunner, tree: tuple[Path, dict[bytes, bytes]], tmp_path: Path
) -> None:
    out = tmp_path / "tree.md5"
    stderr = hash_cmd(runner, ".", "--format", "md5sum", "--exclude", "d1", "-o", str(out))
    assert "excluded (--exclude); nothing else left out." in stderr
    assert b"d1/" not in out.read_bytes()


def test_refusals(runner: CliRunner, tree: tuple[Path, dict[bytes, bytes]], tmp_path: Path) -> None:
    root, _ = tree
    stderr = hash_cmd(runner, ".", "--algorithms", "sha512", code=2)
    assert "the hashdeep format has no column for sha512" in stderr
    stderr = hash_cmd(runner, ".", "--format", "sha256sum", "--algorithms", "md5", code=2)
    assert "--format sha256sum needs --algorithms to include sha256" in stderr
    stderr = hash_cmd(runner, ".", "-o", str(root / "inside.hashdeep"), code=2)
    assert "inside evidence" in stderr
    assert not (root / "inside.hashdeep").exists()


@pytest.mark.parametrize("output", [[], ["-o", "-"]])
def test_stdout_when_no_output_or_a_dash(
    runner: CliRunner, tree: tuple[Path, dict[bytes, bytes]], output: list[str]
) -> None:
    result = runner.invoke(cli, ["hash", "d0/d1", "--format", "sha256sum", *output])
    assert result.exit_code == 0, result.output
    assert result.stdout_bytes.count(b"  d0/d1/") == 4
    assert not Path("-").exists()  # the help says "- is stdout": no file of that name
    assert "written to stdout;" in result.stderr


def test_an_existing_output_is_refused_before_hashing_unless_forced(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from matcher import hashjob

    tree = tmp_path / "tree"
    make_tree(tree)
    out = tmp_path / "out.hashdeep"
    out.write_text("an earlier inventory\n")
    walked: list[object] = []
    real = hashjob.hash_paths
    monkeypatch.setattr(hashjob, "hash_paths", lambda *a, **k: walked.append(a) or real(*a, **k))
    result = CliRunner().invoke(cli, ["hash", str(tree), "-o", str(out)])
    assert result.exit_code == 2 and "already exists" in result.stderr and "--force" in result.stderr
    assert out.read_text() == "an earlier inventory\n" and walked == []
    result = CliRunner().invoke(cli, ["hash", str(tree), "-o", str(out), "--force"])
    assert result.exit_code == 0, result.stderr
    assert out.read_bytes().startswith(b"%%%% HASHDEEP-1.0") and len(walked) == 1


def test_write_inventory_from_a_deleted_folder_does_not_blame_its_output(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """os.getcwd() failing was reported as 'Cannot write inventory OUT: No such file or directory'."""
    from matcher.errors import UsageError
    from matcher.hashjob import write_inventory

    (tmp_path / "ev").mkdir()
    (tmp_path / "ev" / "a").write_bytes(b"abc")
    gone = tmp_path / "gone"
    gone.mkdir()
    monkeypatch.chdir(gone)
    gone.rmdir()
    out = tmp_path / "x.hd"
    with pytest.raises(UsageError, match="current folder no longer exists") as caught:
        write_inventory([str(tmp_path / "ev")], ["md5", "sha256"], "hashdeep", out)
    assert "Cannot write" not in str(caught.value) and not out.exists()


def test_write_inventory_refuses_an_unknown_format_naming_the_formats(tmp_path: Path) -> None:
    """write_inventory(..., "bogus") raised a bare KeyError."""
    from matcher.errors import UsageError
    from matcher.hashjob import write_inventory

    (tmp_path / "ev").mkdir()
    out = tmp_path / "x.hd"
    with pytest.raises(UsageError, match=r"Unknown inventory format 'bogus'; choose from dfxml, md5sum, sha256sum, hashdeep\."):
        write_inventory([str(tmp_path / "ev")], ["md5"], "bogus", out)
    assert not out.exists()


def test_hash_counts_only_the_bytes_it_wrote_and_names_every_entry_distinctly(
    runner: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A file left out (a name hashdeep cannot carry) was counted in 'N files (B bytes) written';
    a name holding the byte 0xFF and one holding the four characters '\\xff' printed alike."""
    monkeypatch.chdir(tmp_path)
    ev = os.fsencode(tmp_path / "ev")
    os.mkdir(ev)
    for name, content in [(b"ok", b"abc"), (b"n\nl", b"0123456789")]:
        with open(os.path.join(ev, name), "wb") as stream:
            stream.write(content)
    for name in (b"a\xffb", b"a\\xffb", b"q'uote"):
        os.symlink(b"ok", os.path.join(ev, name))
    result = runner.invoke(cli, ["hash", "ev", "-o", str(tmp_path / "h.hd")])
    assert result.exit_code == 4, result.output
    assert "1 files (3 bytes) written" in result.stderr
    assert "'ev/a\\xFFb': skipped (symlink)" in result.stderr
    assert "'ev/a\\\\xffb': skipped (symlink)" in result.stderr
    assert "'ev/q\\'uote': skipped (symlink)" in result.stderr
    assert "'ev/n\\nl': not written: the hashdeep format cannot carry" in result.stderr


def test_hash_to_a_closed_pipe_names_stdout(tmp_path: Path) -> None:
    """`matcher hash ... | head` said 'Cannot write inventory None: Broken pipe.'"""
    import sys

    make_tree(tmp_path / "tree")
    proc = subprocess.Popen([sys.executable, "-m", "matcher", "hash", str(tmp_path / "tree")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
    assert proc.stdout is not None
    proc.stdout.close()
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 2
    assert b"None" not in stderr and b"Cannot write inventory to stdout: Broken pipe" in stderr, stderr


def test_roots_given_twice_or_nested_list_each_file_once_as_scan_walks_them(
    runner: CliRunner, tree: tuple[Path, dict[bytes, bytes]]
) -> None:
    _, files = tree
    under_d1 = sorted(p for p in files if p.startswith(b"d0/d1/"))
    result = runner.invoke(cli, ["hash", "./d0/", "d0/d1", "d0", "--format", "sha256sum"])
    assert result.exit_code == 0, result.output
    lines = result.stdout_bytes.splitlines()
    named = sorted(line.split(b"  ", 1)[1] for line in lines)
    # Each file once, named as the first root given names it ("./d0/...").
    assert len(named) == len(set(named))
    assert len([n for n in named if n.startswith(b"./d0/d1/")]) == len(under_d1) > 0
    assert not any(n.startswith((b"d0/", b"d0/d1/")) for n in named)
    assert "note: evidence d0/d1 lies inside evidence d0: scanned once" in result.stderr
    assert f"{len(named):,} files" in result.stderr


def test_a_nested_root_meets_the_exclude_patterns_as_they_read_against_it(
    runner: CliRunner, tree: tuple[Path, dict[bytes, bytes]]
) -> None:
    """Before: `hash d0 d0/d1 --exclude 'd1/*'` folded d0/d1 into d0's walk, which excluded
    every file below d0/d1, the root named: "scanned once", none listed."""
    _, files = tree
    under_d1 = sorted(p for p in files if p.startswith(b"d0/d1/"))
    alone = runner.invoke(cli, ["hash", "d0/d1", "--exclude", "d1/*", "--format", "sha256sum"])
    both = runner.invoke(cli, ["hash", "d0", "d0/d1", "--exclude", "d1/*", "--format", "sha256sum"])
    assert alone.exit_code == 0 and both.exit_code == 0, both.output
    # (Lines as sha256sum writes them: a name with a backslash is escaped, in both runs.)
    listed = both.stdout_bytes.splitlines()
    assert len(listed) == len(set(listed))
    in_d1 = sorted(line for line in listed if b"  d0/d1/" in line)
    assert in_d1 == sorted(alone.stdout_bytes.splitlines()) and len(in_d1) == len(under_d1) > 0
    assert "evidence d0/d1 lies inside evidence d0: walked as a root of its own" in both.stderr


@pytest.mark.parametrize("order", ["link first", "link last"])
def test_a_symlink_root_never_stands_for_the_folder_it_points_to(
    runner: CliRunner, tree: tuple[Path, dict[bytes, bytes]], order: str
) -> None:
    """Before: `hash latest d0` (latest -> d0) dropped d0 as "the same as" latest, whose walk
    skips the link: an inventory of nothing, the note saying d0 was scanned once."""
    _, files = tree
    os.symlink("d0", "latest")
    roots = ["latest", "d0"] if order == "link first" else ["d0", "latest"]
    result = runner.invoke(cli, ["hash", *roots, "--format", "sha256sum"])
    assert result.exit_code == 4, result.output  # the link itself is skipped, and said so
    listed = result.stdout_bytes.count(b"  d0/")
    assert listed == len([p for p in files if p.startswith(b"d0/")]) > 0
    assert "'latest': skipped (symlink)" in result.stderr
    assert "scanned once" not in result.stderr


@pytest.mark.parametrize("given", ["latest/", "latest/."])
def test_a_symlink_root_given_with_a_slash_is_the_folder_it_reaches(
    runner: CliRunner, tree: tuple[Path, dict[bytes, bytes]], given: str
) -> None:
    """`latest/` follows the link (the walk lists the folder): it is d0 given twice, each file
    listed once. With the first fix it was kept aside as a link, every file listed twice."""
    _, files = tree
    os.symlink("d0", "latest")
    result = runner.invoke(cli, ["hash", given, "d0", "--format", "sha256sum"])
    assert result.exit_code == 0, result.output
    names = [line.split(b"  ", 1)[1] for line in result.stdout_bytes.splitlines()]
    assert len(names) == len([p for p in files if p.startswith(b"d0/")]) > 0
    assert all(n.startswith(given.encode()) for n in names)
    assert "evidence d0 is the same as evidence latest" in result.stderr


@pytest.mark.parametrize("to_file", [False, True])
def test_an_interrupted_inventory_says_what_was_written(
    runner: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, to_file: bool
) -> None:
    """It said "Interrupted." alone: an inventory to stdout, cut there (`> inv.txt`), still
    reads as a whole one."""
    import matcher.hashjob as hashjob

    def interrupted(*args: object, **kwargs: object) -> object:
        raise KeyboardInterrupt

    monkeypatch.setattr(hashjob, "write_inventory", interrupted)
    (tmp_path / "ev").mkdir()
    out = tmp_path / "inv.hashdeep"
    result = runner.invoke(
        cli, ["hash", str(tmp_path / "ev"), *(["-o", str(out)] if to_file else [])]
    )
    assert result.exit_code == 8, result.output
    said = f"nothing was written to {out}" if to_file else "stdout is incomplete: do not use it"
    assert said in result.stderr and "Run the command again" in result.stderr
    assert not out.exists()


def test_access_times_the_run_may_have_moved_are_noted_as_scan_notes_them(
    runner: CliRunner, tree: tuple[Path, dict[bytes, bytes]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Run by a user who does not own the files (no CAP_FOWNER: no O_NOATIME), `hash` moved the
    access time of every file read and folder listed, and said nothing, where a scan's end
    record counts them."""
    import matcher.evidence.folder as folder_mod

    stderr = hash_cmd(runner, ".", "-o", str(tree[0].parent / "plain.hashdeep"))
    assert "access times" not in stderr  # this user's own files (or root's run) keep theirs
    other = folder_mod.AtimeRule(keeper=os.geteuid() + 1)  # as a user who owns none of them
    monkeypatch.setattr(folder_mod, "atime_rule", lambda: other)
    stderr = hash_cmd(runner, ".", "-o", str(tree[0].parent / "other.hashdeep"))
    assert ("note: 10 file(s) read and 4 folder(s) listed may have had their access times updated "
            f"by this run: they are not owned by this user (uid {os.geteuid() + 1})") in stderr  # fmt: skip
