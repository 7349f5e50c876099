"""Job: a validation record a lab can file (environment, generated corpus, tests, results).

`run_validation(output, seed)` generates a benign corpus from the seed under
`output/corpus/` (seeded random bytes and text, awkward names, a FIFO, symlink
loops and symlinks out of the root, a mode-000 file), runs the full
self-test and one real scan of it, checks the scan against independent
evidence (an lstat enumeration, hashlib, coreutils *sum and hashdeep when
installed, the log verifier, tampered copies, the exit code, the evidence
timestamps), and writes `validation.md` and `validation.json` with
FSR-G-201 style headings per test. The same seed always gives the same corpus.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import functools
import hashlib
import importlib.metadata
import json
import os
import platform
import random
import shutil
import socket
import sqlite3
import ssl
import stat
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from matcher import VALIDATION_SEED
from matcher import __version__
from matcher import auditlog
from matcher import sqlite_newer
from matcher.errors import ExitCode
from matcher.errors import IntegrityError
from matcher.errors import MatcherError
from matcher.errors import UsageError
from matcher.hashing import CHUNK_SIZE
from matcher.importing import import_list
from matcher.inventory import Inventory
from matcher.models import fields_path
from matcher.scan import ScanOptions
from matcher.scan import run_scan
from matcher.selftest import run_selftest
from matcher.store import HashStore

DEFAULT_SEED = VALIDATION_SEED
ALGORITHMS = ("md5", "sha1", "sha256")
PACKAGES = "matcher click sqlite-utils apsw cryptography ijson rbloom blake3 pytsk3 libewf-python"
DIGEST_PEERS = ("md5sum", "sha1sum", "sha256sum", "hashdeep")
PEER_TOOLS = {**{t: "--version" for t in DIGEST_PEERS}, "hashdeep": "-V", "setpriv": "--version"}
NOBODY = 65534
# Sizes at every boundary the engine has (its one-read fast path, its read
# chunk, small powers of two), and the empty file.
SIZES = sorted(
    {0, 1, 2, 63, 64, 65, 4095, 4096, 4097, 65535, 65536, 65537, 3 * CHUNK_SIZE + 12345}
    | {n * CHUNK_SIZE + d for n in (1, 2) for d in (-1, 0, 1)}
)
WORDS = "alpha bravo charlie delta echo foxtrot golf hotel india juliet kilo lima mike".split()
ODD_NAME = b"caf\xe9-\xff.bin"  # not UTF-8: must survive as bytes
LONG_NAME = b"n" * 251 + b".txt"  # 255 bytes, the usual NAME_MAX
LINKS = {"loop": "loop", "ping": "pong", "pong": "ping", "to-root": "/", "to-etc": "/etc"}
LINKS |= {
    "to-passwd": "/etc/passwd",
    "to-parent": "../../..",
    "dangling": "no",
    "to-deep": "../deep",
}
EXAMINER = "matcher validate"
NOATIME = getattr(os, "O_NOATIME", 0)
Check = Callable[[], tuple[bool | None, str]]


@dataclasses.dataclass
class Criterion:
    """One acceptance criterion and what was observed (`passed` None: not run)."""

    text: str
    passed: bool | None
    evidence: str


@dataclasses.dataclass
class CaseResult:
    """One validation test: its requirement, method, criteria and outcome."""

    ident: str
    title: str
    requirement: str
    method: str
    criteria: list[Criterion]

    @property
    def passed(self) -> bool:
        return all(c.passed is not False for c in self.criteria)

    @property
    def status(self) -> str:
        not_run = sum(c.passed is None for c in self.criteria)
        return "FAIL" if not self.passed else f"PASS ({not_run} not run)" if not_run else "PASS"


@dataclasses.dataclass
class ValidationResult:
    """The outcome: `passed` only when no criterion failed; `report` is validation.md."""

    passed: bool
    report: Path
    record: Path
    results: list[CaseResult]


@dataclasses.dataclass
class Corpus:
    """The generated evidence tree and lists, and what a correct scan finds in them."""

    tree: Path
    lists: tuple[Path, Path]  # notable (sha256, gnu-sum), known (md5 and size, csv)
    notable: set[bytes]
    known: set[bytes]
    locked: bytes
    fingerprint: str


def build_corpus(root: Path, seed: int) -> Corpus:
    """Generate the corpus under `root` (new) from `seed`: same seed, same corpus."""
    rng, tree = random.Random(seed), root / "tree"
    for sub in ("sizes", "text", "names", "specials", "locked", "deep/a/b/c"):
        (tree / sub).mkdir(parents=True)
    data: dict[bytes, bytes] = {}
    named = [(b"sizes/size-%08d.bin" % n, rng.randbytes(n)) for n in SIZES]
    named += [
        (b"sizes/random-%02d.bin" % i, rng.randbytes(rng.randrange(1, 3 * CHUNK_SIZE)))
        for i in range(6)
    ]
    for i in range(10):
        text = "\n".join(" ".join(rng.choices(WORDS, k=12)) for _ in range(rng.randrange(1, 60)))
        named.append((b"text/note-%02d.txt" % i, f"note {i}\n{text}\n".encode()))
    named += [(b"names/" + ODD_NAME, rng.randbytes(3000)), (b"names/" + LONG_NAME, b"255\n")]
    named += [
        ("names/ünïcødé, comma.txt".encode(), b"unicode\n"),
        (b"deep/a/b/c/leaf.txt", b"leaf\n"),
    ]
    named += [(b"locked/unreadable.bin", rng.randbytes(5000))]
    for rel, content in named:
        path = os.fsencode(tree) + b"/" + rel
        with open(path, "wb") as stream:
            stream.write(content)
        data[path] = content
    os.mkfifo(tree / "specials" / "fifo")
    for name, target in LINKS.items():
        (tree / "specials" / name).symlink_to(target)
    paths = sorted(data)
    notable = {p for p in paths if p.endswith((ODD_NAME, b"leaf.txt", b"note-03.txt"))}
    notable.add(os.fsencode(tree) + b"/sizes/size-%08d.bin" % (CHUNK_SIZE + 1))
    known = {p for p in paths if b"/sizes/" in p and p not in notable and rng.random() < 0.5}
    known.add(os.fsencode(tree) + b"/sizes/size-00000000.bin")
    (root / "lists").mkdir()
    lists = (root / "lists" / "notable.sha256", root / "lists" / "known.csv")
    sums = [
        f"{hashlib.sha256(data[p]).hexdigest()}  notable-{i}\n"
        for i, p in enumerate(sorted(notable))
    ]
    lists[0].write_text("".join(sums))
    rows = [
        f"{hashlib.md5(data[p]).hexdigest()},{len(data[p])},known-{i}\n"
        for i, p in enumerate(sorted(known))
    ]
    lists[1].write_text("md5,size,filename\n" + "".join(rows))
    manifest = hashlib.sha256(repr(sorted(LINKS.items())).encode())
    for path in paths:
        manifest.update(
            os.path.relpath(path, os.fsencode(tree)) + hashlib.sha256(data[path]).digest()
        )
    locked = os.fsencode(tree) + b"/locked/unreadable.bin"
    os.chmod(locked, 0)
    # Note that old, fixed timestamps make any atime update visible (relatime).
    stamp = (1_500_000_000 + seed % 100_000_000) * 10**9
    for folder, dirnames, filenames in os.walk(os.fsencode(tree), topdown=False):
        for entry in filenames + dirnames:
            os.utime(os.path.join(folder, entry), ns=(stamp, stamp), follow_symlinks=False)
    os.utime(tree, ns=(stamp, stamp))
    return Corpus(tree, lists, notable, known, locked, manifest.hexdigest())


def _first_line(cmd: list[str]) -> str | None:
    try:
        out = subprocess.run(cmd, capture_output=True, timeout=10, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    lines = (out.stdout or out.stderr).decode("utf-8", "replace").strip().splitlines()
    return lines[0] if lines else None


def environment(corpus: Path) -> dict[str, object]:
    """What ran: OS, Python, OpenSSL, SQLite, packages, peer tools, user, filesystem, sources."""
    packages = {}
    for name in PACKAGES.split():
        try:
            packages[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            packages[name] = "not installed"
    tools = {}
    for name, flag in PEER_TOOLS.items():
        exe = shutil.which(name)
        tools[name] = f"{_first_line([exe, flag])} ({exe})" if exe else "not installed"
    sources = hashlib.sha256()
    package = Path(__file__).resolve().parent
    for path in sorted(package.rglob("*.py")):
        sources.update(str(path.relative_to(package)).encode() + b"\0" + path.read_bytes())
    findmnt = ["findmnt", "-no", "FSTYPE,OPTIONS,TARGET", "-T", str(corpus)]
    return {
        "os": platform.platform(),
        "uname": " ".join(os.uname()),
        "hostname": socket.gethostname(),
        "python": f"{platform.python_implementation()} {sys.version.split()[0]} ({sys.executable})",
        "openssl": ssl.OPENSSL_VERSION,
        "sqlite": sqlite3.sqlite_version,
        # The SQLite that copies an SQL list (an RDS) into the store, when installed.
        "sqlite_list_copy": sqlite_newer.version() if sqlite_newer.available() else None,
        "packages": packages,
        "peer_tools": tools,
        "uid": os.getuid(),
        "cpus": os.cpu_count(),
        # Note that whether a read moves atime depends on the mount options.
        "corpus_filesystem": _first_line(findmnt) or "unknown",
        "matcher_sources_sha256": sources.hexdigest(),
    }


def _listing(tree: bytes) -> dict[bytes, os.stat_result]:
    """Every entry under `tree` (folders too) by lstat, listing folders with O_NOATIME.

    Note that a plain os.walk would itself move the folders' atimes, and so
    hide a scanner that does.
    """
    found, stack = {tree: os.lstat(tree)}, [tree]
    while stack:
        folder = stack.pop()
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | NOATIME)
        try:
            names = sorted(os.fsencode(entry.name) for entry in os.scandir(fd))
        finally:
            os.close(fd)
        for name in names:
            found[folder + b"/" + name] = st = os.lstat(folder + b"/" + name)
            if stat.S_ISDIR(st.st_mode):
                stack.append(folder + b"/" + name)
    return found


def _kind(mode: int) -> str:
    kinds = {stat.S_IFREG: "file", stat.S_IFLNK: "symlink", stat.S_IFIFO: "fifo"}
    return kinds.get(stat.S_IFMT(mode), "other")


def _hashlib(path: bytes) -> dict[str, str]:
    hashers = {name: hashlib.new(name) for name in ALGORITHMS}
    with open(os.open(path, os.O_RDONLY | os.O_NOFOLLOW | NOATIME), "rb") as stream:
        while chunk := stream.read(1 << 20):
            for h in hashers.values():
                h.update(chunk)
    return {name: h.hexdigest() for name, h in hashers.items()}


def _peer(tool: str, tree: Path, rels: list[bytes]) -> dict[bytes, dict[str, str]]:
    """Digests by a peer tool, keyed by the relative names given to it."""
    cmd: list[str | bytes]
    if tool == "hashdeep":
        cmd = [tool, "-c", ",".join(ALGORITHMS), "-l", "--", *rels]
    else:
        cmd = [tool, "-z", "--", *rels]  # -z: names raw, NUL-terminated
    out = subprocess.run(cmd, cwd=tree, capture_output=True, timeout=600, check=True).stdout
    found = {}
    if tool == "hashdeep":
        for line in out.splitlines():
            if line and not line.startswith((b"%", b"#")):
                _size, *digests, name = line.split(b",", len(ALGORITHMS) + 1)
                found[name] = dict(zip(ALGORITHMS, (d.decode() for d in digests), strict=True))
    else:
        for item in filter(None, out.split(b"\0")):
            digest, name = item.split(b"  ", 1)
            found[name] = {tool.removesuffix("sum"): digest.decode()}
    return found


def unprivileged_prefix(readable: list[Path], writable: Path) -> tuple[list[str], str]:
    """A command prefix under which file permission bits apply even though we are root.

    Prefers `setpriv --reuid=65534 --regid=65534 --clear-groups`, handing
    `writable` (and what is in it) to uid 65534. When uid 65534 cannot run
    this interpreter or reach the paths (a virtualenv under a 0700 home), it
    keeps uid 0 but drops the two capabilities that bypass permission checks:
    a mode-000 file is then just as unreadable.

    Raises:
        UsageError: not root, or no setpriv (util-linux).
    """
    setpriv = shutil.which("setpriv")
    if os.geteuid() != 0 or setpriv is None:
        raise UsageError("An unprivileged child needs root and setpriv (util-linux).")
    nobody = [setpriv, f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups"]
    probe = "import os, sys, matcher.cli; sys.exit(any(not os.access(p, 5) for p in sys.argv[1:]))"
    paths = [str(p) for p in (*readable, writable)]
    check = [*nobody, sys.executable, "-c", probe, *paths]
    if subprocess.run(check, capture_output=True, cwd="/", timeout=60).returncode == 0:
        for dirpath, _dirs, files in os.walk(writable):
            for name in (dirpath, *(os.path.join(dirpath, f) for f in files)):
                os.chown(name, NOBODY, NOBODY)
        return nobody, f"uid/gid {NOBODY}, no supplementary groups"
    drop = "--bounding-set=-dac_override,-dac_read_search"
    return [setpriv, "--inh-caps=-all", "--ambient-caps=-all", drop], (
        f"uid 0 without CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH: uid {NOBODY} cannot run "
        "this Python or reach the output folder"
    )


def _scanner(corpus: Corpus, work: Path, jobs: int | None) -> tuple[Callable[[], int], str]:
    """Import the lists; return the scan to run (it gives the exit code) and how it runs."""
    db, log = work / "store.db", work / "scan.jsonl"
    store = HashStore(db)
    try:
        import_list(store, corpus.lists[0], role="notable")
        import_list(store, corpus.lists[1], role="known")
    finally:
        store.close()
    case = f"VALIDATION-{corpus.fingerprint[:12]}"
    if os.geteuid() != 0:
        options = ScanOptions([corpus.tree], EXAMINER, case, db, log, jobs=jobs or 0)
        return lambda: run_scan(options).exit_code, "run_scan in this process (not root)"
    prefix, how = unprivileged_prefix([corpus.tree], work)
    if "--clear-groups" in prefix:
        # Note that O_NOATIME is only permitted to a file's owner.
        for path in _listing(os.fsencode(corpus.tree)):
            os.chown(path, NOBODY, NOBODY, follow_symlinks=False)
    scan = ["scan", str(corpus.tree), "--examiner", EXAMINER, "--case", case, "--db", str(db)]
    scan += ["--log", str(log), "-q", *(["-j", str(jobs)] if jobs else [])]
    cmd = [*prefix, sys.executable, "-m", "matcher", *scan]

    def run() -> int:
        proc = subprocess.run(cmd, capture_output=True, cwd=work, timeout=3600, check=False)
        if proc.returncode == ExitCode.FATAL:
            raise UsageError(proc.stderr.decode("utf-8", "replace").strip())
        return proc.returncode

    return run, f"a subprocess, `{' '.join(cmd)}` ({how})"


def _criterion(text: str, check: Check) -> Criterion:
    try:
        passed, evidence = check()
    except Exception as exc:  # a criterion that cannot be evaluated has failed
        passed, evidence = False, f"could not be evaluated: {type(exc).__name__}: {exc}"
    return Criterion(text, passed, evidence)


def _case(
    ident: str, title: str, requirement: str, method: str, *checks: tuple[str, Check]
) -> CaseResult:
    return CaseResult(ident, title, requirement, method, [_criterion(t, c) for t, c in checks])


def _agree(
    ours: dict[bytes, dict[str, str]], theirs: dict[bytes, dict[str, str]]
) -> tuple[bool, str]:
    bad = sorted(
        os.fsdecode(p) for p in ours.keys() | theirs.keys() if ours.get(p) != theirs.get(p)
    )
    return not bad, f"{len(ours)} files compared; differing: {bad[:3] or 'none'}"


def _scan_cases(corpus: Corpus, work: Path, code: int, before: dict[bytes, os.stat_result],
                after: dict[bytes, os.stat_result], how: str) -> list[CaseResult]:  # fmt: skip
    log, tree = work / "scan.jsonl", os.fsencode(corpus.tree)
    records = list(auditlog.read_records(log))
    counts: dict[str, int] = records[-1].get("counts", {})  # type: ignore[assignment]
    inventory = Inventory(work / "scan.jsonl.inventory.db", create=False)
    rows = {bytes(r["path"]): r for r in inventory.rows()}  # type: ignore[call-overload]
    inventory.close()
    expected = {p: _kind(s.st_mode) for p, s in before.items() if not stat.S_ISDIR(s.st_mode)}
    regular = sorted(p for p, kind in expected.items() if kind == "file" and p != corpus.locked)
    ours = {p: {a: bytes(r[a]).hex() for a in ALGORITHMS} for p, r in rows.items() if r["sha256"]}  # type: ignore[call-overload]
    rels = {b"./" + os.path.relpath(p, tree): p for p in regular}
    matched = {fields_path(r) for r in records if r["type"] == "match"}
    errors = [(fields_path(r), r["reason"], r["errno"]) for r in records if r["type"] == "error"]

    def outcome(path: bytes, kind: str) -> bool:
        row = rows.get(path, {})
        if path == corpus.locked:
            return row.get("failure") == "unreadable" and row.get("errno") == 13
        return bool(row.get("sha256")) if kind == "file" else row.get("skip") == kind

    def accounted() -> tuple[bool, str]:
        wrong = sorted(os.fsdecode(p) for p, kind in expected.items() if not outcome(p, kind))
        extra = sorted(os.fsdecode(p) for p in rows.keys() - expected.keys())
        kinds = {k: list(expected.values()).count(k) for k in sorted(set(expected.values()))}
        return not wrong and not extra, (
            f"enumeration: {len(expected)} entries {kinds}; inventory: {len(rows)} rows; wrong or "
            f"missing outcome: {wrong[:3] or 'none'}; not in the enumeration: {extra[:3] or 'none'}"
        )

    def add_up() -> tuple[bool, str]:
        c, n = counts, len(expected)
        ok = c["files"] + c["skipped"] + c["errors"] == c["entries"] == n
        return ok and c["notable"] + c["known"] + c["unknown"] == c["files"], f"end counts {c}"

    def peer(tool: str) -> tuple[bool | None, str]:
        if shutil.which(tool) is None:
            return None, f"{tool} is not installed: not compared"
        theirs = {rels[name]: d for name, d in _peer(tool, corpus.tree, list(rels)).items()}
        return _agree(
            {p: {a: d[a] for a in next(iter(theirs.values()))} for p, d in ours.items()}, theirs
        )

    def tampered(kind: str) -> tuple[bool, str]:
        lines = log.read_bytes().splitlines(keepends=True)
        if kind == "edit":
            i = next(i for i, r in enumerate(records) if r["type"] == "match")
            digest = str(records[i]["digests"]["sha256"])  # type: ignore[index]
            forged = digest[:-1] + ("1" if digest.endswith("0") else "0")
            lines[i] = lines[i].replace(digest.encode(), forged.encode())
            want, what = i + 2, f"a hex digit of the sha256 on line {i + 1} changed"
        else:
            lines, want, what = lines[:-1], len(lines) - 1, "the end record removed"
        copy = work / f"tampered-{kind}.jsonl"
        copy.write_bytes(b"".join(lines))
        try:
            auditlog.verify(copy)
        except IntegrityError as exc:
            return exc.line == want, f"{copy.name}, {what}: verify says: {exc}"
        return False, f"{copy.name}, {what}: verify accepted it"

    def untouched() -> tuple[bool, str]:
        def times(s: os.stat_result) -> tuple[int, int, int]:
            return s.st_atime_ns, s.st_mtime_ns, s.st_ctime_ns

        moved = sorted(
            os.fsdecode(p) for p in before if p not in after or times(before[p]) != times(after[p])
        )
        new = sorted(os.fsdecode(p) for p in after.keys() - before.keys())
        return not moved and not new, (
            f"{len(before)} entries (folders too) by lstat before and after; atime, mtime or "
            f"ctime moved: {moved[:3] or 'none'}; entries created: {new[:3] or 'none'}"
        )

    def matches() -> tuple[bool, str]:
        return matched == corpus.notable, f"{len(matched)} matches of {len(corpus.notable)}"

    def verdicts() -> tuple[bool, str]:
        # The known list names the empty file too: an empty file is never a match.
        empty = sum(1 for p in regular if os.lstat(p).st_size == 0)
        known = len(corpus.known) - empty
        unknown = len(regular) - len(corpus.notable) - known
        got = counts["known"], counts["unknown"], counts["empty"]
        want = (known, unknown, empty)
        return got == want, f"known, unknown, empty: {got}, expected {want}"

    want = ExitCode.NOTABLE | ExitCode.INCOMPLETE
    return [
        _case("VAL-02", "Every entry accounted for",
              "Every entry under an evidence root ends as exactly one of hashed, skipped with a "
              "reason, or an error: nothing is silent, nothing outside the root is read.",
              f"One scan of the generated tree, run as {how}. Its inventory and end record are "
              "compared with an independent O_NOATIME scandir + lstat enumeration.",
              ("Each regular file hashed, except the mode-000 file: an `unreadable` error (errno "
               "13); each symlink and FIFO skipped with that reason; nothing else", accounted),
              ("End counts add up and equal the enumeration's entries", add_up)),
        _case("VAL-03", "Digests agree with independent implementations",
              "Digests are those of the file's bytes, at every size and read-chunk boundary.",
              "MD5, SHA-1 and SHA-256 of each hashed file (from the inventory) compared with "
              "Python hashlib and, when installed, md5sum, sha1sum, sha256sum and hashdeep.",
              ("Equal to hashlib", lambda: _agree(ours, {p: _hashlib(p) for p in regular})),
              *((f"Equal to {tool}", functools.partial(peer, tool)) for tool in DIGEST_PEERS)),
        _case("VAL-04", "Verdicts and match records",
              "A notable file is logged as a match with its exact path; known files are counted "
              "and filtered out; every other hashed file is unknown. The digest of an empty "
              "file identifies nothing: an empty file is never a match (counted as empty).",
              "The generated lists name some files notable (by SHA-256) and some known (by MD5), "
              "the empty file among the known.",
              ("Matches name exactly the notable files, the non-UTF-8 name included", matches),
              ("Known, unknown and empty counts as expected", verdicts)),
        _case("VAL-05", "Tamper-evident log",
              "The log verifies; an edit or a truncation is caught at a named line.",
              "`verify` on the log and on two altered copies.",
              ("The log verifies", lambda: (True, str(auditlog.verify(log)))),
              ("An edited copy fails at the line after the edit", lambda: tampered("edit")),
              ("A copy without its end record is incomplete at its last line",
               lambda: tampered("cut"))),
        _case("VAL-06", "Exit code",
              "A scan that could not read an entry never exits 0; the code is the documented one.",
              "The scan's exit code compared with NOTABLE | INCOMPLETE; its error records read.",
              (f"Exit code {int(want)}: notable matches and an unreadable entry",
               lambda: (code == want, f"exit code {code}")),
              ("One error record: the mode-000 file, unreadable, errno 13",
               lambda: (errors == [(corpus.locked, "unreadable", 13)], repr(errors)))),
        _case("VAL-07", "Evidence untouched",
              "A scan writes nothing under the evidence root and moves no timestamp.",
              "Timestamps of every entry (generated old and fixed, so that a relatime read would "
              "move atime) compared before and after the scan.",
              ("No timestamp moved, no entry created", untouched)),
    ]  # fmt: skip


def _selftest_case() -> CaseResult:
    checks = run_selftest(fast=False).checks
    criteria = []
    for area in dict.fromkeys(c.area for c in checks):
        failed = [f"{c.name}: {c.detail}" for c in checks if c.area == area and not c.passed]
        total = sum(c.area == area for c in checks)
        evidence = f"{total - len(failed)} of {total} passed; failed: {failed or 'none'}"
        criteria.append(Criterion(f"Every {area} check passes", not failed, evidence))
    return CaseResult(
        "VAL-01", "Known-answer self-test",
        "The installed build computes correct digests, reads every list format and keeps a "
        "verifiable log chain.",
        "`run_selftest(fast=False)` (`matcher selftest`): FIPS 180-4 and RFC 1321 known answers, "
        "files across read-chunk boundaries, every list parser on a sample, the log chain.",
        criteria,
    )  # fmt: skip


def run_validation(
    output: Path, seed: int = DEFAULT_SEED, jobs: int | None = None
) -> ValidationResult:
    """Generate the corpus, run every validation test, and write the record.

    Args:
        output: a new or empty folder; receives `validation.md`, `validation.json`,
            `corpus/` (evidence tree and lists) and `scan/` (store, log, inventory).
        seed: the corpus seed; the same seed gives the same corpus.
        jobs: hashing workers for the scan (default: one per core).

    Returns:
        The results; `passed` is False when any acceptance criterion failed.

    Raises:
        UsageError: `output` exists and is not empty (a record is never overwritten).
    """
    if output.exists() and any(output.iterdir()):
        raise UsageError(f"Output folder {output} is not empty. Choose a new folder.")
    made = not output.exists()
    try:
        return _validate(output, seed, jobs)
    except BaseException:
        # Note: a Ctrl-C, or a failure before the record was written, left the
        # corpus and scan there: the same command was then refused ("not empty").
        _remove_unfinished(output, made)
        raise


def _remove_unfinished(output: Path, made: bool) -> None:
    """Remove what an unfinished validation wrote in `output`, and `output` if it made it.

    Best effort: what cannot be removed stays, and the error that stopped the
    validation is the one said.
    """
    for name in ("corpus", "scan", "validation.json", "validation.md"):
        path = output / name
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            with contextlib.suppress(OSError):
                path.unlink(missing_ok=True)
    if made:
        with contextlib.suppress(OSError):
            output.rmdir()


def _validate(output: Path, seed: int, jobs: int | None) -> ValidationResult:
    """`run_validation` in `output`, new or empty."""
    started, clock = datetime.datetime.now(datetime.UTC), time.monotonic()
    (output / "scan").mkdir(parents=True)
    output = output.resolve()
    corpus = build_corpus(output / "corpus", seed)
    results, how = [_selftest_case()], "(not started)"
    try:
        scan, how = _scanner(corpus, output / "scan", jobs)
        before = _listing(os.fsencode(corpus.tree))
        code = scan()
        after = _listing(os.fsencode(corpus.tree))
        results += _scan_cases(corpus, output / "scan", code, before, after, how)
    except (MatcherError, OSError, subprocess.SubprocessError, LookupError) as exc:
        failed = Criterion("The scan runs to its end", False, f"{type(exc).__name__}: {exc}")
        results.append(CaseResult("VAL-02", "Scan of the generated tree", "-", how, [failed]))
    record = {
        "tool": "matcher", "version": __version__, "passed": all(r.passed for r in results),
        "seed": seed, "command": f"matcher validate --output {output} --seed {seed}",
        "rerun": f"matcher validate --output NEW_FOLDER --seed {seed}",
        "started": started.isoformat(timespec="seconds").replace("+00:00", "Z"),
        "seconds": round(time.monotonic() - clock, 2), "corpus_fingerprint": corpus.fingerprint,
        "environment": environment(corpus.tree),
        "results": [{**dataclasses.asdict(r), "status": r.status} for r in results],
    }  # fmt: skip
    (output / "validation.json").write_text(json.dumps(record, indent=2, ensure_ascii=False) + "\n")
    (output / "validation.md").write_text(_markdown(record, results))
    passed = bool(record["passed"])
    return ValidationResult(passed, output / "validation.md", output / "validation.json", results)


def _markdown(record: dict[str, object], results: list[CaseResult]) -> str:
    env = record["environment"]
    assert isinstance(env, dict)
    out = [
        f"# Validation record: matcher {record['version']}", "",
        f"**Result: {'PASSED' if record['passed'] else 'FAILED'}**: "
        f"{sum(r.passed for r in results)} of {len(results)} tests passed. "
        f"Started {record['started']}, took {record['seconds']} s.", "",
        "## Scope", "",
        "Hash-only matching of an evidence folder: enumeration, digests, verdicts, the match log, "
        "exit codes and evidence handling, on a corpus generated for this run from the seed "
        f"{record['seed']} (benign random bytes and text, in `corpus/`; outputs in `scan/`).", "",
        "## Re-running", "",
        f"Made by `{record['command']}`. Repeat it with `{record['rerun']}`: the same seed "
        f"generates the same corpus (fingerprint `{record['corpus_fingerprint']}`).", "",
        "## Environment", "", "| item | value |", "|---|---|",
    ]  # fmt: skip
    for key, value in env.items():
        if isinstance(value, dict):
            value = "; ".join(f"{k} {v}" for k, v in value.items())
        out.append(f"| {key} | {str(value).replace('|', '/')} |")
    out += ["", "## Summary", "", "| test | title | result |", "|---|---|---|"]
    out += [f"| {r.ident} | {r.title} | {r.status} |" for r in results]
    for r in results:
        out += ["", f"## {r.ident}: {r.title}", "", "### Requirement", "", r.requirement, ""]
        out += ["### Method", "", r.method, "", "### Acceptance criteria", ""]
        out += [f"{i}. {c.text}" for i, c in enumerate(r.criteria, 1)]
        out += ["", f"### Result: {r.status}", "", "Evidence:", ""]
        marks = {True: "PASS", False: "FAIL", None: "NOT RUN"}
        out += [f"{i}. {marks[c.passed]}: {c.evidence}" for i, c in enumerate(r.criteria, 1)]
    return "\n".join(out) + "\n"


__all__ = ["CaseResult", "Criterion", "ValidationResult", "build_corpus", "run_validation"]
