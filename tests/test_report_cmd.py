"""`matcher report`: every format against its own validator, tampered logs, atomic output."""

from __future__ import annotations

import base64
import csv
import hashlib
import html
import io
import json
import os
import random
import re
import stat
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections.abc import Callable
from typing import Any
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import peer_tool
from conftest import read_log

from matcher.cli import cli
from matcher.reports import registry
from matcher.reports.csv_report import COLUMNS

SCHEMA = Path(__file__).resolve().parent / "data" / "dfxml_schema" / "dfxml.xsd"
DFXML_NS = "{http://www.forensicswiki.org/wiki/Category:Digital_Forensics_XML}"
MATCHER_NS = "{urn:x-matcher:dfxml:1}"
LATIN1_NAME = b"caf\xe9.bin"  # not UTF-8
ODD_NAMES = [
    LATIN1_NAME,
    b"a & b <odd>.bin",
    b"ctl\x01name.bin",
    b"new\nline.bin",
    b"back\\slash.bin",
]


def make_tree(root: Path, seed: int = 7) -> list[bytes]:
    """Benign synthetic files (seeded random bytes); returns the notable ones' paths."""
    rng = random.Random(seed)
    notable = []
    for i in range(12):
        folder = root / f"dir{i % 3}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"file-{i:02}.bin").write_bytes(rng.randbytes(rng.randrange(1, 5000)))
        if i % 4 == 0:
            notable.append(os.fsencode(folder / f"file-{i:02}.bin"))
    for name in ODD_NAMES:
        path = os.path.join(os.fsencode(root), name)
        with open(path, "wb") as stream:
            stream.write(b"synthetic " + name)
        notable.append(path)
    return notable


@pytest.fixture
def scanned(tmp_path: Path, runner: CliRunner) -> Path:
    evidence = tmp_path / "evidence"
    notable = make_tree(evidence)
    listing = tmp_path / "notable.md5"
    with open(listing, "wb") as stream:
        for path in notable:
            with open(path, "rb") as f:
                digest = hashlib.md5(f.read()).hexdigest()
            stream.write(
                f"{digest}  ".encode() + os.path.basename(path).replace(b"\n", b"_") + b"\n"
            )
    log = tmp_path / "out" / "run.jsonl"
    log.parent.mkdir()
    result = runner.invoke(
        cli,
        [
            "scan", str(evidence), "--examiner", "Examiner 0001", "--case", "CASE-2099-7",
            "--authority", "Warrant W-42", "--db", str(tmp_path / "s.db"), "--list", str(listing),
            "--log", str(log), "--jobs", "1", "--quiet",
        ],
        catch_exceptions=False,
    )  # fmt: skip
    assert result.exit_code == 1, result.output
    return log


def report(runner: CliRunner, log: Path, fmt: str, out: Path, code: int = 0) -> Path:
    result = runner.invoke(cli, ["report", str(log), "--format", fmt, "-o", str(out)])
    assert result.exit_code == code, result.output
    return out


def match_records(log: Path) -> list[dict[str, object]]:
    return [r for r in read_log(log) if r["type"] == "match"]


def tamper(log: Path) -> None:
    """Change one digest in the second match record (a plausible forgery)."""
    lines = log.read_bytes().split(b"\n")
    index = next(i for i, line in enumerate(lines) if b'"type":"match"' in line)
    lines[index] = re.sub(rb'"md5":"(.)', lambda m: b'"md5":"' + (b"0" if m[1] != b"0" else b"1"),
                          lines[index], count=1)  # fmt: skip
    log.write_bytes(b"\n".join(lines))


# --- csv ---------------------------------------------------------------------------------


def test_csv_has_one_row_per_logged_match(runner: CliRunner, scanned: Path) -> None:
    out = report(runner, scanned, "csv", scanned.parent / "r.csv")
    text = out.read_text("utf-8")
    assert text.startswith("# CASE: CASE-2099-7; ")  # then # LOG:, then the header
    rows = list(csv.DictReader(io.StringIO(text.split("\n", 2)[2], newline="")))
    matches = match_records(scanned)
    assert len(rows) == len(matches) == 8
    assert tuple(rows[0]) == COLUMNS
    assert [int(r["seq"]) for r in rows] == [m["seq"] for m in matches]
    for row, rec in zip(rows, matches, strict=True):
        exact = base64.b64decode(row["path_b64"]) if row["path_b64"] else row["path"].encode()
        assert exact == (
            base64.b64decode(rec["path_b64"]) if "path_b64" in rec else rec["path"].encode()
        )
        assert row["md5"] == rec["digests"]["md5"] and row["role"] == "notable"
        assert row["list"] == "notable.md5" and row["algorithm"] == "md5"
        assert json.loads(row["hits_json"]) == rec["matches"]
    assert sum(r["path_b64"] != "" for r in rows) == 1  # the Latin-1 name
    assert stat.S_IMODE(out.stat().st_mode) == 0o600


HOSTILE = '1,=HYPERLINK("http:x"),0'


def _reseal_last(log: Path, **fields: object) -> None:
    """Change fields of the end record and compute its self_sha256 again, as a forger can."""
    from matcher import signing

    lines = log.read_bytes().splitlines()
    rec = json.loads(lines[-1])
    del rec["self_sha256"]
    rec.update(fields)
    rec["self_sha256"] = hashlib.sha256(signing.canonical_bytes(rec)).hexdigest()
    lines[-1] = signing.canonical_bytes(rec)
    log.write_bytes(b"\n".join(lines) + b"\n")


def assert_comment_lines_start_no_row(text: str, matches: int) -> list[str]:
    """The lines before the header are one line each, and no cell of them can open a
    quoted field or a formula; the header and one row per match follow. Returns them."""
    lines = text.split("\r\n")
    head = lines[: next(i for i, line in enumerate(lines) if line.startswith("seq,path,"))]
    for line in head:
        assert line.startswith("# ") and line.splitlines() == [line], line
        assert not re.search(r',\s*["=+\-@]', line), line
    rows = list(csv.reader(io.StringIO(text, newline="")))
    assert [r[0] for r in rows[: len(head)]] == [line.split(",")[0] for line in head]
    assert rows[len(head)] == list(COLUMNS) and len(rows) == len(head) + 1 + matches
    return head


def test_csv_comment_lines_never_start_a_row_whatever_they_quote(
    runner: CliRunner, tmp_path: Path
) -> None:
    """A re-match's note names its original log, and a forged end record's status is quoted:
    both were written raw, a newline in them starting rows (with a formula) before the header."""
    evidence, folder = tmp_path / "ev", tmp_path / f"case\n{HOSTILE}"
    evidence.mkdir()
    folder.mkdir()
    (evidence / "hit.bin").write_bytes(b"synthetic hit\n")
    (evidence / "other.bin").write_bytes(b"synthetic other\n")
    (tmp_path / "l.md5").write_text(f"{hashlib.md5(b'synthetic hit' + bytes([10])).hexdigest()}  hit\n")
    db, log, again = str(tmp_path / "s.db"), folder / "run.jsonl", tmp_path / "re.jsonl"
    scan = ["scan", str(evidence), "--examiner", "E", "--case", "C", "--db", db,
            "--list", str(tmp_path / "l.md5"), "--log", str(log), "-q"]  # fmt: skip
    assert runner.invoke(cli, scan).exit_code == 1
    rematch = ["rematch", str(log), "--db", db, "--examiner", "E", "--case", "C", "--log", str(again)]
    assert runner.invoke(cli, rematch).exit_code == 1
    text = report(runner, again, "csv", tmp_path / "re.csv").read_bytes().decode()
    head = assert_comment_lines_start_no_row(text, 1)
    assert any("re-match of log" in line and "case\\n1" in line for line in head)
    _reseal_last(log, status=f"complete\r\n{HOSTILE}\u2028{HOSTILE}")
    text = report(runner, log, "csv", tmp_path / "forged.csv", code=1).read_bytes().decode()
    head = assert_comment_lines_start_no_row(text, 1)
    assert head[0].startswith("# WARNING: this log FAILED verification")
    assert any("(status complete\\r\\n1,\\x3DHYPERLINK" in line for line in head)


def test_a_csv_and_a_case_graph_kept_alone_name_their_log_its_sha256_head_and_lists(
    runner: CliRunner, scanned: Path
) -> None:
    """The CSV named no case, examiner, log or head; the CASE graph no log SHA-256, head,
    verification or list SHA-256 (its action named the lists only)."""
    doc = json.loads(report(runner, scanned, "json", scanned.parent / "r.json").read_text())
    sha256, head = doc["log"]["sha256"], doc["log"]["verification"]["head"]
    assert sha256 == hashlib.sha256(scanned.read_bytes()).hexdigest() and head
    records = doc["log"]["verification"]["records"]
    lines = report(runner, scanned, "csv", scanned.parent / "r.csv").read_text().splitlines()
    assert lines[:2] == [
        "# CASE: CASE-2099-7; examiner Examiner 0001; authority Warrant W-42",
        f"# LOG: {scanned}; SHA-256 {sha256}; chain intact, {records} records, head {head}",
    ]
    assert lines[2].startswith("seq,path,")
    out = report(runner, scanned, "case", scanned.parent / "r.jsonld")
    done = subprocess.run([peer_tool("case_validate"), str(out)], capture_output=True, text=True)
    assert done.returncode == 0 and "Conforms: True" in done.stdout, done.stdout + done.stderr
    graph = json.loads(out.read_text())["@graph"]
    (action,) = [n for n in graph if n["@type"] == "case-investigation:InvestigativeAction"]
    (used,) = doc["runs"][0]["lists"]
    assert (f"lists: notable.md5 (notable, {used['format']}, source SHA-256 {used['source_sha256']})"
            in action["uco-core:description"])  # fmt: skip
    statements = [n.get("uco-core:statement") or "" for n in graph]
    said = f"the matcher log {scanned} (SHA-256 {sha256}): chain intact, {records} records, head {head}"
    assert said in statements
    tamper(scanned)
    lines = report(runner, scanned, "csv", scanned.parent / "t.csv", code=1).read_text().splitlines()
    assert lines[0].startswith("# WARNING: this log FAILED verification")
    assert lines[2].startswith(f"# LOG: {scanned}; SHA-256 ") and lines[2].endswith(": no head; the 1 record(s) before it verified")
    graph = json.loads(report(runner, scanned, "case", scanned.parent / "t.jsonld", code=1).read_text())["@graph"]
    (action,) = [n for n in graph if n["@type"] == "case-investigation:InvestigativeAction"]
    assert action["uco-core:description"].startswith("WARNING: this log FAILED verification")
    assert f"source SHA-256 {used['source_sha256']}" in action["uco-core:description"]


# --- json --------------------------------------------------------------------------------


def test_json_is_one_document_with_run_matches_errors_summary(
    runner: CliRunner, scanned: Path
) -> None:
    doc = json.loads(report(runner, scanned, "json", scanned.parent / "r.json").read_text())
    assert list(doc)[0] == "warning" and doc["warning"] is None
    assert doc["log"]["verification"]["intact"] is True
    assert doc["runs"][0]["examiner"] == "Examiner 0001"
    assert doc["runs"][0]["authority"] == "Warrant W-42"
    assert len(doc["matches"]) == len(match_records(scanned))
    assert doc["errors"] == []
    assert doc["summary"]["status"] == "complete"
    assert doc["summary"]["counts"]["notable"] == 8 and doc["summary"]["counts"]["files"] == 17


# --- dfxml -------------------------------------------------------------------------------


def test_dfxml_validates_against_the_schema_and_keeps_every_name(
    runner: CliRunner, scanned: Path
) -> None:
    xmllint = peer_tool("xmllint")
    out = report(runner, scanned, "dfxml", scanned.parent / "r.xml")
    done = subprocess.run([xmllint, "--noout", "--schema", str(SCHEMA), str(out)],
                          capture_output=True, text=True)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "validates" in done.stderr
    root = ET.parse(out).getroot()
    names = []
    for obj in root.iter(f"{DFXML_NS}fileobject"):
        element = obj.find(f"{DFXML_NS}filename")
        assert element is not None and element.text
        exact = element.get(f"{MATCHER_NS}name_b64")
        names.append(base64.b64decode(exact) if exact else element.text.encode())
        assert obj.find(f"{MATCHER_NS}match") is not None
    wanted = {os.path.basename(n) for n in ODD_NAMES}
    assert wanted <= {os.path.basename(n) for n in names}
    assert len(names) == len(match_records(scanned))


def test_dfxml_command_line_words_read_back_in_bash_as_the_arguments_were() -> None:
    """Before: an argument holding a newline (an examiner name) was written '...\\n...' once
    its control was shown escaped: a shell read a backslash and an `n`."""
    from matcher.reports.dfxml import _shell_word

    args = ["plain", "a b", "it's", "Ev\nsecond", "x\x1bya", "bidi\u202e", "tab\there", "back\\slash"]
    line = " ".join(_shell_word(a) for a in args)
    assert "\n" not in line and "\x1b" not in line  # nothing shown raw
    script = f'for a in {line}; do printf "%s\\n--\\n" "$a"; done'
    out = subprocess.run(["bash", "-c", script], capture_output=True, check=True).stdout
    assert out.split(b"\n--\n")[:-1] == [a.encode() for a in args]


def test_dfxml_credits_the_scan_to_its_own_tool_version_and_quotes_its_command_line(
    runner: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """<creator> gave the report machine's matcher version and OS as the scan's, the scan's
    own version nowhere; its command_line was argv joined with spaces, unquoted."""
    import shlex

    from matcher import reporting

    evidence, log = tmp_path / "my evidence", tmp_path / "s.jsonl"
    evidence.mkdir()
    (evidence / "a.bin").write_bytes(b"synthetic\n")
    (tmp_path / "l.md5").write_text(f"{hashlib.md5(b'synthetic' + bytes([10])).hexdigest()}  a\n")
    args = ["scan", str(evidence), "--examiner", "Examiner 0001", "--case", "C 1", "--db",
            str(tmp_path / "s.db"), "--list", str(tmp_path / "l.md5"), "--log", str(log), "-q"]  # fmt: skip
    monkeypatch.setattr(sys, "argv", ["matcher", *args])
    assert runner.invoke(cli, args).exit_code == 1
    monkeypatch.setattr(reporting, "__version__", "9.9.9-report")
    (run,) = [r for r in read_log(log) if r["type"] == "run"]
    assert run["argv"] == args
    out = report(runner, log, "dfxml", tmp_path / "r.xml")
    done = subprocess.run([peer_tool("xmllint"), "--noout", "--schema", str(SCHEMA), str(out)],
                          capture_output=True, text=True)  # fmt: skip
    assert done.returncode == 0, done.stderr
    root = ET.parse(out).getroot()
    creator = root.find(f"{DFXML_NS}creator")
    assert creator is not None
    assert creator.findtext(f"{DFXML_NS}version") == run["tool"]["version"] != "9.9.9-report"
    environment = creator.find(f"{DFXML_NS}execution_environment")
    assert environment is not None
    assert environment.find(f"{DFXML_NS}os_sysname") is None  # the run record names no OS
    assert environment.findtext(f"{DFXML_NS}host") == run["host"]
    command = environment.findtext(f"{DFXML_NS}command_line") or ""
    assert "'Examiner 0001'" in command and shlex.split(command) == ["matcher", *run["argv"]]
    (element,) = root.iter(f"{MATCHER_NS}run")
    assert element.get("tool_version") == run["tool"]["version"]
    (made,) = root.iter(f"{MATCHER_NS}report")
    assert made.get("generator_version") == "9.9.9-report" and made.get("generated")


def test_dfxml_tells_apart_list_texts_that_only_their_escapes_would_show_alike(
    runner: CliRunner, tmp_path: Path
) -> None:
    """A list entry named `a<newline>b.txt` and one named `a\\nb.txt` (backslash, n) both
    showed as entry_name="a\\nb.txt" with nothing else: the escaped one now carries its bytes."""
    evidence = tmp_path / "ev"
    evidence.mkdir()
    names = {"nl.bin": "a\nb.txt", "bs.bin": "a\\nb.txt", "tab.bin": "t\tx", "id.bin": "plain"}
    rows = ["sha256,name,id"]
    for file, name in names.items():
        (evidence / file).write_bytes(b"synthetic " + file.encode())
        digest = hashlib.sha256(b"synthetic " + file.encode()).hexdigest()
        ident = "line\nbreak" if file == "id.bin" else file
        rows.append(f'{digest},"{name}","{ident}"')
    listing = tmp_path / "l.csv"
    listing.write_text("\n".join(rows) + "\n")
    log, db = tmp_path / "run.jsonl", str(tmp_path / "s.db")
    imported = runner.invoke(cli, ["import", str(listing), "--format", "csv", "--role", "notable",
                                   "--db", db])  # fmt: skip
    assert imported.exit_code == 0, imported.output
    result = runner.invoke(
        cli,
        ["scan", str(evidence), "--examiner", "E", "--case", "C", "--db", db, "--log", str(log),
         "--quiet"],
        catch_exceptions=False,
    )  # fmt: skip
    assert result.exit_code == 1, result.output
    root = ET.parse(report(runner, log, "dfxml", tmp_path / "r.xml")).getroot()
    seen = {}
    for element in root.iter(f"{MATCHER_NS}match"):
        exact = element.get("entry_name_b64")
        name = base64.b64decode(exact).decode() if exact else element.get("entry_name")
        ident = element.get("entry_id_b64")
        seen[name] = base64.b64decode(ident).decode() if ident else element.get("entry_id")
    assert seen == {
        "a\nb.txt": "nl.bin", "a\\nb.txt": "bs.bin", "t\tx": "tab.bin", "plain": "line\nbreak",
    }  # fmt: skip


@pytest.mark.parametrize("kind", ["---", "----", "a--b-", "-->"])
def test_dfxml_of_a_tampered_log_is_well_formed_whatever_its_warning_holds(
    runner: CliRunner, scanned: Path, kind: str
) -> None:
    """The warning went into an XML comment with `--` made `- -`: a run `---` still left `--`
    there, and the report was no XML at all ("Double hyphen within comment")."""
    lines = scanned.read_bytes().splitlines(keepends=True)
    lines[-1] = lines[-1].replace(b'"type":"end"', b'"type":' + json.dumps(kind).encode())
    scanned.write_bytes(b"".join(lines))
    out = report(runner, scanned, "dfxml", scanned.parent / "t.xml", code=1)
    done = subprocess.run([peer_tool("xmllint"), "--noout", str(out)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert out.read_text().splitlines()[1].startswith("<!-- WARNING: this log FAILED verification")
    description = ET.parse(out).getroot().find(f"{DFXML_NS}metadata/{{http://purl.org/dc/elements/1.1/}}description")
    assert description is not None and description.text is not None
    assert description.text.startswith("WARNING: this log FAILED") and repr(kind)[1:-1] in description.text


def test_dfxml_evidence_roots_keep_their_exact_bytes(runner: CliRunner, tmp_path: Path) -> None:
    """A root named with the byte 0xE9 and one whose own text is `\\xE9` were both
    `<image_filename>.../evr\\xE9</image_filename>`, with nothing to tell them apart."""
    from matcher.scan import ScanOptions
    from matcher.scan import run_scan

    roots = [os.path.join(os.fsencode(tmp_path), b"evr\xe9"), os.path.join(os.fsencode(tmp_path), b"evr\\xE9")]
    for root in roots:
        os.mkdir(root)
        with open(os.path.join(root, b"f.bin"), "wb") as stream:
            stream.write(b"synthetic")
    log = tmp_path / "two.jsonl"
    (tmp_path / "l.md5").write_text("0" * 32 + "  none\n")
    options = ScanOptions([Path(os.fsdecode(r)) for r in roots], "E", "D-6", tmp_path / "s.db", log,
                          lists=[tmp_path / "l.md5"], jobs=1)  # fmt: skip
    assert run_scan(options).status == "complete"
    out = report(runner, log, "dfxml", tmp_path / "r.xml")
    done = subprocess.run([peer_tool("xmllint"), "--noout", "--schema", str(SCHEMA), str(out)],
                          capture_output=True, text=True)  # fmt: skip
    assert done.returncode == 0, done.stderr
    shown = []
    for element in ET.parse(out).getroot().iter(f"{DFXML_NS}image_filename"):
        exact = element.get(f"{MATCHER_NS}name_b64")
        assert element.text is not None
        shown.append(base64.b64decode(exact) if exact else element.text.encode())
    assert shown == roots


# --- CASE/UCO ----------------------------------------------------------------------------


def test_case_passes_case_validate(runner: CliRunner, scanned: Path) -> None:
    case_validate = peer_tool("case_validate")
    out = report(runner, scanned, "case", scanned.parent / "r.jsonld")
    done = subprocess.run([case_validate, str(out)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Conforms: True" in done.stdout
    nodes = {n["@id"]: n for n in json.loads(out.read_text())["@graph"]}
    files = [n for n in nodes.values() if n["@type"] == "uco-observable:File"]
    assert len(files) == len(match_records(scanned))
    for node in files:
        content = [f for f in node["uco-core:hasFacet"] if f["@type"].endswith("ContentDataFacet")]
        methods = {h["uco-types:hashMethod"] for h in content[0]["uco-observable:hash"]}
        assert methods == {"MD5", "SHA1", "SHA256"}
    (action,) = [
        n for n in nodes.values() if n["@type"] == "case-investigation:InvestigativeAction"
    ]
    assert nodes[action["uco-action:performer"]["@id"]]["uco-core:name"] == "Examiner 0001"
    tool = nodes[action["uco-action:instrument"]["@id"]]
    assert tool["uco-core:name"] == "matcher" and tool["uco-tool:version"]
    (case,) = [n for n in nodes.values() if n["@type"] == "case-investigation:Investigation"]
    assert case["uco-core:name"] == "CASE-2099-7"
    assert {"@id": action["@id"]} in case["uco-core:object"]


def test_a_case_report_of_two_logs_joined_keeps_every_record_apart_and_conforms(
    runner: CliRunner, scanned: Path, tmp_path: Path
) -> None:
    """Joined logs repeat seqs. Ids keyed on seq alone made two files one File node (two
    paths, two MD5s) and two runs one action with two end times: Conforms False."""
    joined = tmp_path / "joined.jsonl"
    joined.write_bytes(scanned.read_bytes() * 2)
    out = report(runner, joined, "case", tmp_path / "j.jsonld", code=1)
    done = subprocess.run([peer_tool("case_validate"), str(out)], capture_output=True, text=True)
    assert done.returncode == 0 and "Conforms: True" in done.stdout, done.stdout + done.stderr
    graph = json.loads(out.read_text())["@graph"]
    files = [n for n in graph if n["@type"] == "uco-observable:File"]
    assert len({n["@id"] for n in files}) == len(files) == 2 * len(match_records(scanned))
    actions = [n for n in graph if n["@type"] == "case-investigation:InvestigativeAction"]
    assert len({a["@id"] for a in actions}) == len(actions) == 2


def test_a_case_report_of_a_blake3_scan_passes_case_validate_and_keeps_the_digest(
    runner: CliRunner, tmp_path: Path
) -> None:
    """hashMethod "BLAKE3" is no member of UCO's HashNameVocab: case_validate gave an
    sh:Info result per file (Conforms: False)."""
    evidence = tmp_path / "ev"
    evidence.mkdir()
    data = b"a synthetic notable file\n"
    (evidence / "n.bin").write_bytes(data)
    (tmp_path / "l.md5").write_text(f"{hashlib.md5(data).hexdigest()}  n\n")
    log = tmp_path / "b.jsonl"
    result = runner.invoke(cli, ["scan", str(evidence), "--examiner", "E", "--case", "B-3", "--db",
                                 str(tmp_path / "s.db"), "--list", str(tmp_path / "l.md5"), "--log", str(log),
                                 "--algorithms", "md5,sha512,blake3", "-q"])  # fmt: skip
    assert result.exit_code == 1, result.output
    blake3 = match_records(log)[0]["digests"]["blake3"]
    out = report(runner, log, "case", tmp_path / "r.jsonld")
    done = subprocess.run([peer_tool("case_validate"), str(out)], capture_output=True, text=True)
    assert done.returncode == 0 and "Conforms: True" in done.stdout, done.stdout + done.stderr
    (node,) = [n for n in json.loads(out.read_text())["@graph"] if n["@type"] == "uco-observable:File"]
    content = [f for f in node["uco-core:hasFacet"] if f["@type"].endswith("ContentDataFacet")]
    assert {h["uco-types:hashMethod"] for h in content[0]["uco-observable:hash"]} == {"MD5", "SHA512"}
    assert f"BLAKE3 digest {blake3}" in node["uco-core:description"]


# --- html --------------------------------------------------------------------------------


def chromium_text(page: Path) -> str:
    chromium = peer_tool("chromium")
    done = subprocess.run(
        [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--dump-dom", page.as_uri()],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    body = done.stdout.split("<body>", 1)[1]
    body = re.sub(r"</?span\b[^>]*>", "", body)  # inline marks, such as an escape's
    return " ".join(re.sub(r"<[^>]+>", " ", body).split())


def test_html_renders_in_chromium_with_run_lists_chain_counts_matches(
    runner: CliRunner, scanned: Path
) -> None:
    out = report(runner, scanned, "html", scanned.parent / "r.html")
    source = out.read_text()
    assert not re.search(r"<(script|img|link|iframe|object)\b", source, re.I)
    assert not re.search(r"(src|href)\s*=", source, re.I)
    text = chromium_text(out)
    expected_text = ["Examiner 0001", "CASE-2099-7", "Warrant W-42", "notable.md5", "Chain intact"]
    expected_text += ["notable 8", "unknown 9", "Matches (8)", "Errors (0)", "caf\\xE9.bin"]
    for expected in expected_text:
        assert expected in text, expected
    # The escape in a path is marked, so that no name's own text looks like it.
    assert 'caf<span class="esc" title="an escape: ' in source
    lists = [r for r in read_log(scanned) if r["type"] == "run"][0]["lists"]
    assert lists[0]["source_sha256"] in text
    for rec in match_records(scanned):
        assert rec["digests"]["sha256"] in text
    assert not text.startswith("WARNING")


def test_every_report_of_a_rematch_says_which_log_and_inventory_it_matched_again(
    runner: CliRunner, scanned: Path
) -> None:
    """RunInfo dropped the run record's rematch_of: no format said the log was a re-match
    (HTML showed the evidence as if scanned; CASE's action said "matcher scan")."""
    xmllint = peer_tool("xmllint")
    log = scanned.parent / "re.jsonl"
    result = runner.invoke(cli, ["rematch", str(scanned), "--db", str(scanned.parent.parent / "s.db"),
                                 "--examiner", "Reviewer 2", "--case", "CASE-2099-7", "--log", str(log)])  # fmt: skip
    assert result.exit_code == 1, result.output
    origin = read_log(log)[0]["rematch_of"]
    head, inventory_sha256 = origin["head"], origin["inventory_sha256"]
    said = [str(scanned), head, inventory_sha256]
    doc = json.loads(report(runner, log, "json", scanned.parent / "r.json").read_text())
    assert doc["runs"][0]["rematch_of"] == origin
    assert any("re-match" in c and all(s in c for s in said) for c in doc["summary"]["caveats"])
    head_lines = report(runner, log, "csv", scanned.parent / "r.csv").read_text().splitlines()
    assert any(line.startswith("# NOTE: the log is a re-match") and all(s in line for s in said)
               for line in head_lines)  # fmt: skip
    out = report(runner, log, "dfxml", scanned.parent / "r.xml")
    done = subprocess.run([xmllint, "--noout", "--schema", str(SCHEMA), str(out)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    (element,) = ET.parse(out).getroot().iter(f"{MATCHER_NS}rematch_of")
    assert element.attrib == {k: str(v) for k, v in origin.items()}
    page = report(runner, log, "html", scanned.parent / "r.html").read_text()
    assert "<th>Re-match of</th>" in page and all(html.escape(s) in page for s in said)
    assert "not read by this re-match" in page
    graph = json.loads(report(runner, log, "case", scanned.parent / "r.jsonld").read_text())["@graph"]
    (action,) = [n for n in graph if n["@type"] == "case-investigation:InvestigativeAction"]
    assert action["uco-core:name"] == "hash-set lookup (re-match)"
    assert action["uco-core:description"].startswith("matcher rematch of ")
    assert all(s in action["uco-core:description"] for s in said)


# --- a log that fails verification -------------------------------------------------------


@pytest.mark.parametrize("fmt", ["csv", "json", "dfxml", "case", "html"])
def test_tampered_log_report_says_so_first_and_exits_1(
    runner: CliRunner, scanned: Path, fmt: str
) -> None:
    tamper(scanned)
    out = report(runner, scanned, fmt, scanned.parent / f"r.{fmt}", code=1)
    lines = out.read_text().splitlines()
    if fmt == "csv":
        assert lines[0].startswith("# WARNING: this log FAILED verification (line ")
        assert [line[:7] for line in lines[1:3]] == ["# CASE:", "# LOG: "]
        assert len(list(csv.DictReader(lines[3:]))) == len(match_records(scanned))
    elif fmt == "json":
        assert json.loads(out.read_text())["warning"].startswith("WARNING: this log FAILED")
        assert lines[1].startswith('  "warning": "WARNING')
    elif fmt == "dfxml":
        assert lines[1].startswith("<!-- WARNING: this log FAILED verification")
    elif fmt == "case":
        first = json.loads(out.read_text())["@graph"][0]
        assert first["uco-core:statement"].startswith("WARNING: this log FAILED")
    else:
        assert "<title>WARNING: this log FAILED" in out.read_text()
        if fmt == "html":
            assert chromium_text(out).startswith("WARNING: this log FAILED verification")


def test_incomplete_log_report_exits_1_and_counts_from_inventory(
    runner: CliRunner, scanned: Path
) -> None:
    lines = scanned.read_bytes().splitlines(keepends=True)
    scanned.write_bytes(b"".join(lines[:-1]))  # drop the end record
    result = runner.invoke(cli, ["report", str(scanned), "--format", "json"])
    assert result.exit_code == 1
    assert "incomplete" in result.stderr
    doc = json.loads(result.stdout)
    assert "incomplete" in doc["warning"]
    assert doc["summary"]["status"] == "incomplete"
    assert doc["summary"]["counts"]["files"] == 17
    assert doc["summary"]["counts_source"].startswith("inventory ")


def _interrupted_then_resumed(tmp_path: Path, still_unreadable: bool) -> Path:
    """A scan that cannot read bad.bin, interrupted after its walk, then resumed."""
    import dataclasses
    import errno

    import matcher.hashing as hashing_mod
    import matcher.scan as scan_mod
    from matcher.models import Failure
    from matcher.scan import ScanOptions
    from matcher.scan import run_scan

    evidence = tmp_path / "ev"
    evidence.mkdir()
    for name in ("hit.bin", "bad.bin", "other.bin"):
        (evidence / name).write_bytes(b"synthetic " + name.encode())
    (tmp_path / "l.md5").write_text(f"{hashlib.md5(b'synthetic hit.bin').hexdigest()}  hit\n")
    log = tmp_path / "r.jsonl"
    options = ScanOptions([evidence], "E", "R-5", tmp_path / "s.db", log, lists=[tmp_path / "l.md5"], jobs=1)
    real_hash, real_pump = hashing_mod.Hasher.hash_file, scan_mod._pump

    def unreadable(self: Any, path: bytes, *args: Any) -> Any:
        if path.endswith(b"bad.bin"):
            return Failure.UNREADABLE, errno.EACCES, "EACCES: Permission denied"
        return real_hash(self, path, *args)

    def then_interrupted(*args: Any, **kwargs: Any) -> None:
        real_pump(*args, **kwargs)
        raise scan_mod.Interrupted("SIGINT")

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(hashing_mod.Hasher, "hash_file", unreadable)
        patch.setattr(scan_mod, "_pump", then_interrupted)
        assert run_scan(options).status == "interrupted"
    with pytest.MonkeyPatch.context() as patch:
        if still_unreadable:
            patch.setattr(hashing_mod.Hasher, "hash_file", unreadable)
        assert run_scan(dataclasses.replace(options, lists=(), resume=True)).status == "complete"
    return log


@pytest.mark.parametrize("still_unreadable", [False, True])
def test_reports_list_only_the_errors_a_resume_left_standing(
    runner: CliRunner, tmp_path: Path, still_unreadable: bool
) -> None:
    """Every run's error records were listed, though a resume reads failed entries again and
    the end record counts the last run's: a file read at last was still "Errors (1)" (its
    CASE Annotation said it could not be read), one still unreadable was listed twice."""
    log = _interrupted_then_resumed(tmp_path, still_unreadable)
    standing = int(still_unreadable)
    assert sum(r["type"] == "error" for r in read_log(log)) == 1 + standing
    doc = json.loads(report(runner, log, "json", tmp_path / "r.json").read_text())
    assert doc["summary"]["counts"]["errors"] == len(doc["errors"]) == standing
    assert doc["summary"]["error_records"] == standing and doc["summary"]["superseded_error_records"] == 1
    assert f"<h2>Errors ({standing})</h2>" in report(runner, log, "html", tmp_path / "r.html").read_text()
    root = ET.parse(report(runner, log, "dfxml", tmp_path / "r.xml")).getroot()
    assert len(list(root.iter(f"{DFXML_NS}error"))) == standing
    graph = json.loads(report(runner, log, "case", tmp_path / "r.jsonld").read_text())["@graph"]
    statements = [n.get("uco-core:statement", "") for n in graph]
    assert sum(s.startswith("could not be read") for s in statements) == standing


def _resumed_after_an_interruption(tmp_path: Path, name: str) -> Path:
    """A scan of one notable file interrupted before it read any, then resumed to its end."""
    import dataclasses

    import matcher.scan as scan_mod
    from matcher.scan import ScanOptions
    from matcher.scan import run_scan

    evidence = tmp_path / f"{name}-ev"
    evidence.mkdir()
    for i in range(3):
        (evidence / f"f{i}").write_bytes(b"%d" % i)
    (tmp_path / "l.md5").write_text(f"{hashlib.md5(b'0').hexdigest()}  f0\n")
    log = tmp_path / f"{name}.jsonl"
    options = ScanOptions([evidence], "E", "I-2", tmp_path / f"{name}.db", log, lists=[tmp_path / "l.md5"], jobs=1)

    def interrupted(*args: object, **kwargs: object) -> None:
        raise scan_mod.Interrupted("SIGINT")

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(scan_mod, "_pump", interrupted)
        assert run_scan(options).status == "interrupted"
    assert run_scan(dataclasses.replace(options, lists=(), resume=True)).status == "complete"
    return log


def test_a_resumed_log_cut_before_its_end_is_counted_as_a_log_with_no_end_record(
    runner: CliRunner, tmp_path: Path
) -> None:
    """Before: the report took the status, counts and notes of the interrupted run's end record
    (interrupted, notable 0, "interrupted by SIGINT") beside the resumed run's match record."""
    log = _resumed_after_an_interruption(tmp_path, "r")
    assert [r["status"] for r in read_log(log) if r["type"] == "end"] == ["interrupted", "complete"]
    lines = log.read_bytes().splitlines(keepends=True)
    log.write_bytes(b"".join(lines[:-1]))  # the resumed run's end record cut off
    result = runner.invoke(cli, ["report", str(log), "--format", "json"])
    assert result.exit_code == 1
    summary = json.loads(result.stdout)["summary"]
    assert summary["status"] == "incomplete" and summary["ended"] is None
    assert summary["counts_source"].startswith("inventory ")
    assert summary["counts"]["notable"] == summary["match_records"] == 1
    assert summary["counts"]["files"] == 3 and summary["notes"] == []
    csv_text = runner.invoke(cli, ["report", str(log), "--format", "csv"]).stdout
    # The earlier run's end is said as that run's only (see the test below), never as this one's.
    said = [line for line in csv_text.splitlines() if "interrupted" in line]
    assert said and all(line.startswith("# NOTE: an earlier run of this log") for line in said)


def test_a_cut_log_whose_inventory_is_behind_its_match_records_counts_them(
    runner: CliRunner, tmp_path: Path
) -> None:
    """Before: a run killed between a match record and the inventory's next commit (every half
    second) was reported "notable 0" above "Matches (1)": the counts came from the inventory alone."""
    import sqlite3

    log = _resumed_after_an_interruption(tmp_path, "r")
    lines = log.read_bytes().splitlines(keepends=True)
    log.write_bytes(b"".join(lines[:-1]))
    conn = sqlite3.connect(f"{log}.inventory.db")
    conn.execute("DELETE FROM entries WHERE verdict = 'notable'")  # not committed yet when killed
    conn.commit()
    conn.close()
    summary = json.loads(runner.invoke(cli, ["report", str(log), "--format", "json"]).stdout)["summary"]
    assert summary["counts"]["notable"] == summary["match_records"] == 1
    assert summary["counts"]["files"] == 3
    assert summary["counts_source"].endswith("and the match records of 1 notable file(s) logged after its last commit")


def test_a_cut_log_is_never_counted_from_the_inventory_of_another_log(
    runner: CliRunner, tmp_path: Path
) -> None:
    """Before: a log with no end record took its counts from whatever LOG.inventory.db lay beside
    it (another scan's: its counts were reported as this log's)."""
    log = _resumed_after_an_interruption(tmp_path, "r")
    other = _resumed_after_an_interruption(tmp_path, "other")
    lines = log.read_bytes().splitlines(keepends=True)
    log.write_bytes(b"".join(lines[:-1]))
    own = Path(f"{log}.inventory.db")
    own.replace(tmp_path / "kept.db")
    Path(f"{other}.inventory.db").replace(own)
    summary = json.loads(runner.invoke(cli, ["report", str(log), "--format", "json"]).stdout)["summary"]
    assert summary["counts"] == {"notable": 1, "errors": 0}
    assert summary["counts_source"] == (
        f"match and error records (no end record; inventory {own} not used: it notes another "
        "log's first record)"
    )
    (tmp_path / "kept.db").replace(own)  # its own again
    summary = json.loads(runner.invoke(cli, ["report", str(log), "--format", "json"]).stdout)["summary"]
    assert summary["counts_source"].startswith("inventory ") and summary["counts"]["files"] == 3
    log.write_bytes(b"")  # a log holding no record beside an inventory recording a run
    summary = json.loads(runner.invoke(cli, ["report", str(log), "--format", "json"]).stdout)["summary"]
    assert summary["counts_source"].endswith("it records a run, and this log holds no record)")


# --- output handling ---------------------------------------------------------------------


def test_failed_write_leaves_no_partial_file(
    runner: CliRunner, scanned: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = scanned.parent / "r.csv"
    target.write_text("previous report\n")
    writer = registry.get("csv")

    def half_then_disk_full(data: object, stream: io.TextIOBase) -> None:
        stream.write("seq,path\n1,half")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(writer, "write", half_then_disk_full)
    result = runner.invoke(cli, ["report", str(scanned), "--format", "csv", "-o", str(target), "--force"])
    assert result.exit_code == 2
    assert "No space left on device" in result.stderr
    assert target.read_text() == "previous report\n"
    assert sorted(p.name for p in scanned.parent.iterdir() if p.name.startswith(".")) == []


def test_a_dash_as_output_is_stdout(
    runner: CliRunner, scanned: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    plain = runner.invoke(cli, ["report", str(scanned), "--format", "json"])
    dashed = runner.invoke(cli, ["report", str(scanned), "--format", "json", "-o", "-"])
    assert dashed.exit_code == plain.exit_code == 0, dashed.output
    assert json.loads(dashed.stdout) == json.loads(plain.stdout)
    assert not (tmp_path / "-").exists()
    assert "written to stdout" in dashed.stderr and "written to -" not in dashed.stderr
    assert "- is stdout" in runner.invoke(cli, ["report", "--help"]).output


def test_missing_folder_is_refused_and_nothing_written(runner: CliRunner, scanned: Path) -> None:
    target = scanned.parent / "no-such-dir" / "r.csv"
    result = runner.invoke(cli, ["report", str(scanned), "--format", "csv", "-o", str(target)])
    assert result.exit_code == 2
    assert result.stderr.startswith(f"Error: Cannot write {target}: No such file or directory")
    assert not target.parent.exists()


def test_output_inside_evidence_or_over_the_log_is_refused(
    runner: CliRunner, scanned: Path
) -> None:
    evidence = scanned.parent.parent / "evidence"
    inside = evidence / "dir0" / "r.csv"
    result = runner.invoke(cli, ["report", str(scanned), "--format", "csv", "-o", str(inside)])
    assert result.exit_code == 2
    assert "inside evidence" in result.stderr
    assert not inside.exists()
    before = scanned.read_bytes()
    result = runner.invoke(cli, ["report", str(scanned), "--format", "csv", "-o", str(scanned)])
    assert result.exit_code == 2 and scanned.read_bytes() == before


def test_an_existing_output_over_the_log_or_in_the_evidence_is_refused_for_what_it_is(
    runner: CliRunner, scanned: Path
) -> None:
    """Without --force it was refused with "give --force to replace it", and with --force
    refused again, for what it is: the advice led nowhere."""
    inside = scanned.parent.parent / "evidence" / "dir0" / "file-00.bin"
    for target, said in [(scanned, "is the log or its inventory"), (inside, "inside evidence")]:
        before = target.read_bytes()
        result = runner.invoke(cli, ["report", str(scanned), "--format", "csv", "-o", str(target)])
        assert result.exit_code == 2 and said in result.stderr, result.stderr
        assert "--force" not in result.stderr and target.read_bytes() == before


def test_unreadable_log_exits_2(runner: CliRunner, tmp_path: Path) -> None:
    folder = tmp_path / "a-folder.jsonl"
    folder.mkdir()
    result = runner.invoke(cli, ["report", str(folder), "--format", "json"])
    assert result.exit_code == 2


# --- reports stream their matches ----------------------------------------------------------


@pytest.mark.parametrize("tampered", [False, True])
def test_each_format_streamed_is_what_the_whole_document_dumps(
    scanned: Path, tampered: bool
) -> None:
    # json and case write their matches one by one; the result must be the
    # bytes json.dump gives for the whole document (and html its joined page).
    from matcher.reporting import build_report
    from matcher.reports.case_uco import CONTEXT
    from matcher.reports.case_uco import graph
    from matcher.reports.html_report import page
    from matcher.reports.json_report import document

    if tampered:
        tamper(scanned)
    data = build_report(scanned)
    assert len(data.matches) == len(match_records(scanned)) > 0
    whole = {
        "json": json.dumps(document(data), indent=2, ensure_ascii=False) + "\n",
        "case": json.dumps({"@context": CONTEXT, "@graph": list(graph(data))}, indent=2) + "\n",
        "html": page(data),
    }
    for fmt, expected in whole.items():
        stream = io.StringIO()
        registry.get(fmt).write(data, stream)
        assert stream.getvalue() == expected, fmt


def _rewrite_one_byte(log: Path) -> None:
    """Change one digit of the first match record's size, in place (same length)."""
    raw = bytearray(log.read_bytes())
    at = raw.index(b'"size":', raw.index(b'"type":"match"')) + len(b'"size":')
    raw[at] = ord("1") if raw[at] != ord("1") else ord("2")
    log.write_bytes(bytes(raw))


def test_a_log_that_changes_while_its_report_is_written_gives_no_report(scanned: Path) -> None:
    from matcher.errors import UsageError
    from matcher.reporting import build_report
    from matcher.reports.output import atomic_text

    data = build_report(scanned)
    _rewrite_one_byte(scanned)
    target = scanned.parent / "r.csv"
    for fmt in registry.names():
        with pytest.raises(UsageError, match="changed while its report was written"):
            with atomic_text(target) as out:
                registry.get(fmt).write(data, out)
        assert not target.exists()
        assert [p.name for p in scanned.parent.iterdir() if p.name.startswith(".")] == []


def test_lines_appended_meanwhile_are_left_out_of_the_report(scanned: Path) -> None:
    # A resume may append to a log while its report is written: the report
    # shows the bytes that were verified, as if it had been written at once.
    from matcher.reporting import build_report

    before = io.StringIO()
    registry.get("json").write(build_report(scanned), before)
    data = build_report(scanned)
    with scanned.open("ab") as stream:
        stream.write(b'{"seq":99,"type":"match"}\n')
    after = io.StringIO()
    registry.get("json").write(data, after)
    generated = re.compile(r'"generated": "[^"]*"')
    assert generated.sub("", after.getvalue()) == generated.sub("", before.getvalue())


def test_a_void_report_to_stdout_writes_nothing_there(
    runner: CliRunner, scanned: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for fmt in registry.names():
        writer = registry.get(fmt)
        original = writer.write

        def change_then_write(data: object, stream: io.TextIOBase, write=original) -> None:
            _rewrite_one_byte(scanned)
            write(data, stream)

        monkeypatch.setattr(writer, "write", change_then_write)
        result = runner.invoke(cli, ["report", str(scanned), "--format", fmt])
        assert result.exit_code == 2, (fmt, result.output)
        assert "changed while its report was written" in result.stderr
        assert result.stdout == "", fmt
        monkeypatch.undo()


def _after_verify(monkeypatch: pytest.MonkeyPatch, action: Callable[[], None]) -> None:
    """Make `action` happen to the log just after each verification of it."""
    from matcher import auditlog

    verify = auditlog.verify

    def verify_then_act(*args: object, **kwargs: object) -> object:
        try:
            return verify(*args, **kwargs)  # type: ignore[arg-type]
        finally:
            action()

    monkeypatch.setattr(auditlog, "verify", verify_then_act)


@pytest.mark.parametrize("tampered", [False, True])
def test_a_log_changed_after_its_verification_is_not_reported(
    scanned: Path, monkeypatch: pytest.MonkeyPatch, tampered: bool
) -> None:
    # An intact log rewritten in place, or a failing one cut short: either way
    # the bytes reported would not be those verified.
    from matcher.errors import UsageError
    from matcher.reporting import build_report

    if tampered:
        tamper(scanned)
        _after_verify(monkeypatch, lambda: scanned.write_bytes(scanned.read_bytes()[:-300]))
    else:
        _after_verify(monkeypatch, lambda: _rewrite_one_byte(scanned))
    with pytest.raises(UsageError, match="changed between its verification and its report"):
        build_report(scanned)


def test_a_match_line_in_another_encoding_is_a_tampered_line_not_a_changed_log(
    runner: CliRunner, scanned: Path
) -> None:
    # json.loads reads UTF-16 bytes too; the line's newline must not change that.
    lines = scanned.read_bytes().split(b"\n")
    index = next(i for i, line in enumerate(lines) if b'"type":"match"' in line)
    lines[index] = lines[index].decode().encode("utf-16-le")
    scanned.write_bytes(b"\n".join(lines))
    result = runner.invoke(cli, ["report", str(scanned), "--format", "csv"])
    assert result.exit_code == 1, result.output
    assert result.stdout.startswith("# WARNING: this log FAILED verification")


GOLDEN = Path(__file__).resolve().parent / "data" / "reports"


@pytest.mark.parametrize("log", ["golden.jsonl", "golden-tampered.jsonl"])
def test_reports_are_byte_for_byte_those_of_the_golden_files(
    log: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Written by e305fc3, before reports streamed their matches (see the folder's README).
    import datetime

    from matcher import reporting

    class Fixed(datetime.datetime):
        @classmethod
        def now(cls, tz: datetime.tzinfo | None = None) -> Fixed:  # type: ignore[override]
            return cls(2026, 11, 29, 12, 0, 0, tzinfo=tz)

    utc = datetime.UTC

    class Clock:  # what reporting uses of the datetime module
        UTC = utc
        datetime = Fixed

    monkeypatch.setattr(reporting, "datetime", Clock)
    (tmp_path / log).write_bytes((GOLDEN / log).read_bytes())
    monkeypatch.chdir(tmp_path)
    stem = log.removesuffix(".jsonl")
    for fmt in registry.names():
        reporting.write_report(Path(log), fmt, Path(f"{stem}.{fmt}"))
        written = (tmp_path / f"{stem}.{fmt}").read_bytes()
        assert written == (GOLDEN / f"{stem}.{fmt}").read_bytes(), fmt


def test_a_report_stdout_cannot_take_is_named_as_such(
    runner: CliRunner, scanned: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from matcher.reports import output

    def broken_pipe(source: object, target: object) -> None:
        raise BrokenPipeError(32, "Broken pipe")

    monkeypatch.setattr(output.shutil, "copyfileobj", broken_pipe)
    result = runner.invoke(cli, ["report", str(scanned), "--format", "csv"])
    assert result.exit_code == 2
    assert "Cannot write report to stdout: Broken pipe." in result.stderr
    assert result.stdout == ""


def test_a_stdout_report_is_not_kept_aside_inside_evidence(
    runner: CliRunner, scanned: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    evidence = scanned.parent.parent / "evidence"
    monkeypatch.setenv("SQLITE_TMPDIR", str(evidence / "dir0"))
    result = runner.invoke(cli, ["report", str(scanned), "--format", "csv"])
    assert result.exit_code == 2
    assert "lies inside evidence: point TMPDIR elsewhere" in result.stderr
    assert result.stdout == ""


def test_the_temp_folder_is_never_the_current_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from matcher.sqlitefiles import scratch_folder

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("SQLITE_TMPDIR", raising=False)
    for here in (".", str(tmp_path)):
        monkeypatch.setenv("TMPDIR", here)
        folder = scratch_folder()
        assert folder is None or (folder.is_absolute() and folder.resolve() != tmp_path.resolve())


def test_a_report_that_cannot_be_kept_aside_says_where(
    runner: CliRunner, scanned: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from matcher.reports import output

    class Full(io.BytesIO):
        def write(self, data: object) -> int:
            raise OSError(28, "No space left on device")

    monkeypatch.setattr(output.tempfile, "SpooledTemporaryFile", lambda **kwargs: Full())
    result = runner.invoke(cli, ["report", str(scanned), "--format", "csv"])
    assert result.exit_code == 2
    assert "Cannot keep the report aside in " in result.stderr
    assert "No space left on device" in result.stderr and result.stdout == ""


def test_an_incomplete_log_is_reported_as_verified_though_it_ends_meanwhile(
    scanned: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # verify reads the log as it was opened; the report shows those bytes, not later ones.
    from matcher.reporting import build_report

    lines = scanned.read_bytes().splitlines(keepends=True)
    cut = b"".join(lines[:-1])
    scanned.write_bytes(cut)

    def end_it() -> None:
        with scanned.open("ab") as stream:
            stream.write(lines[-1])

    _after_verify(monkeypatch, end_it)
    data = build_report(scanned)
    assert "incomplete" in data.verification.message
    assert data.status == "incomplete"
    assert data.log_sha256 == hashlib.sha256(cut).hexdigest()


def test_a_line_nested_past_pythons_limit_is_an_unreadable_line(
    runner: CliRunner, scanned: Path
) -> None:
    lines = scanned.read_bytes().split(b"\n")
    lines[2] = b"[" * 100_000
    scanned.write_bytes(b"\n".join(lines))
    result = runner.invoke(cli, ["report", str(scanned), "--format", "json"])
    assert result.exit_code == 1, result.output
    assert json.loads(result.stdout)["log"]["unreadable_lines"] == [3]


def test_a_report_to_a_closed_stdout_says_so(scanned: Path) -> None:
    command = [sys.executable, "-m", "matcher", "report", str(scanned), "--format", "csv"]
    result = subprocess.run(command, preexec_fn=lambda: os.close(1), stderr=subprocess.PIPE,
                            text=True)  # fmt: skip
    assert result.returncode == 2
    assert "Standard output is closed: give an output file (-o FILE)." in result.stderr


def _log_of_errors(path: Path, n: int) -> Path:
    """A verifiable log of one run whose `n` files could not be read (a failing disk)."""
    from matcher import auditlog
    from matcher.models import path_fields

    log = auditlog.create(path)
    log.append("run", {"examiner": "E", "case": "C"})
    for i in range(n):
        log.append("error", {**path_fields(b"ev/f%06d.bin" % i), "kind": "file",
                             "reason": "io-error", "errno": 5,
                             "detail": "EIO: Input/output error " + "x" * 150,
                             "size": i})  # fmt: skip
    log.append("end", {"status": "complete", "counts": {"errors": n}})
    log.close()
    return path


def test_error_records_are_read_from_the_log_as_they_are_written_never_held(
    tmp_path: Path,
) -> None:
    """A failing disk can leave a million error records: a report reads them from the log
    as it writes them (as it does matches), so its memory does not grow with their number."""
    import tracemalloc

    from matcher.reporting import build_report

    small = build_report(_log_of_errors(tmp_path / "small.jsonl", 200))
    shown = io.StringIO()
    registry.get("json").write(small, shown)
    errors = json.loads(shown.getvalue())["errors"]
    assert [e["path"] for e in errors] == ["ev/f%06d.bin" % i for i in range(200)]
    assert errors[7]["detail"].startswith("EIO") and errors[7]["errno"] == 5
    peaks: dict[str, list[int]] = {}
    for n in (200, 20_000):
        data = build_report(_log_of_errors(tmp_path / f"e{n}.jsonl", n))
        assert len(data.errors) == n and not isinstance(data.errors, (list, tuple))
        for fmt in ("json", "html", "dfxml"):
            with open(os.devnull, "w", encoding="utf-8") as sink:
                tracemalloc.start()
                try:
                    registry.get(fmt).write(data, sink)
                    peaks.setdefault(fmt, []).append(tracemalloc.get_traced_memory()[1])
                finally:
                    tracemalloc.stop()
    for fmt, (few, many) in peaks.items():
        # Held, 20,000 errors would take several MB; read as written, the peak stays put.
        assert many < few + (1 << 20), (fmt, few, many)


def test_format_and_role_names_are_taken_in_any_case(runner: CliRunner, scanned: Path, tmp_path: Path) -> None:
    """`--format CSV` is csv, as an examiner would type it; the names stay one set."""
    result = runner.invoke(cli, ["report", str(scanned), "--format", "JSON"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["summary"]["status"] == "complete"
    listed = tmp_path / "known.md5"
    listed.write_text("d41d8cd98f00b204e9800998ecf8427e  empty\n")
    result = runner.invoke(cli, ["import", str(listed), "--db", str(tmp_path / "s.db"), "--format", "Gnu-Sum",
                                 "--role", "KNOWN", "--json"])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)[0]["role"] == "known"
    assert runner.invoke(cli, ["report", str(scanned), "--format", "xlsx"]).exit_code == 2


def test_an_existing_output_is_refused_before_the_log_is_read_unless_forced(
    runner: CliRunner, scanned: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A report given by mistake the name of a key, a store or another log must
    # not replace it; --force says the replacement is meant.
    from matcher import reporting

    target = scanned.parent / "k.pem"
    target.write_bytes(b"-----BEGIN PRIVATE KEY-----\nnot really\n")
    read: list[Path] = []
    real_build = reporting.build_report
    monkeypatch.setattr(reporting, "build_report", lambda log, key=None: read.append(log) or real_build(log, key))
    result = runner.invoke(cli, ["report", str(scanned), "--format", "csv", "-o", str(target)])
    assert result.exit_code == 2
    assert "already exists" in result.stderr and "--force" in result.stderr
    assert target.read_bytes().startswith(b"-----BEGIN PRIVATE KEY") and read == []
    result = runner.invoke(cli, ["report", str(scanned), "--format", "csv", "-o", str(target), "--force"])
    assert result.exit_code == 0, result.stderr
    assert target.read_text().startswith("# CASE: ") and read == [scanned]


def test_an_output_that_is_no_regular_file_is_refused_even_forced(runner: CliRunner, scanned: Path) -> None:
    fifo = scanned.parent / "pipe"
    os.mkfifo(fifo)
    result = runner.invoke(cli, ["report", str(scanned), "--format", "csv", "-o", str(fifo), "--force"])
    assert result.exit_code == 2 and "not a regular file" in result.stderr
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)


@pytest.mark.parametrize("command", ["verify", "report", "rematch"])
def test_a_fifo_given_as_the_log_is_refused_not_waited_on(tmp_path: Path, command: str) -> None:
    fifo = tmp_path / "log.jsonl"
    os.mkfifo(fifo)
    extra = {
        "verify": [],
        "report": ["--format", "csv"],
        "rematch": ["--db", str(tmp_path / "s.db"), "--examiner", "E", "--case", "C", "--log", str(tmp_path / "r.jsonl")],
    }[command]
    result = subprocess.run([sys.executable, "-m", "matcher", command, str(fifo), *extra],
                            capture_output=True, timeout=60)
    assert result.returncode == 2, result.stderr
    assert b"not a regular file" in result.stderr and b"Traceback" not in result.stderr


def test_html_marks_escapes_so_a_name_never_looks_like_another() -> None:
    # A file named `caf\\xE9.bin` and one whose name holds the byte 0xE9 show the
    # same characters; only the second's are an escape, and marked as one.
    from matcher.reports.html_report import path_html

    literal, raw = path_html(b"caf\\xE9.bin"), path_html(b"caf\xe9.bin")
    assert literal == "caf\\xE9.bin" and raw != literal
    assert raw.startswith('caf<span class="esc"') and raw.endswith(">\\xE9</span>.bin")
    # A bidirectional override is an escape too (it would show `exe.txt` for `txt.exe`).
    assert '<span class="esc"' in path_html("a\u202etxt.exe".encode()) and "\u202e" not in path_html("a\u202etxt.exe".encode())
    # DFXML and CASE then carry the exact bytes beside the escaped text.
    from matcher.reports.text import is_exact

    assert not is_exact("a\u202etxt.exe".encode()) and is_exact(b"caf\\xE9.bin")


@pytest.mark.parametrize("invisible", ["\u200b", "\u00ad", "\ufeff", "\u2060", "\u2028"])
def test_html_and_dfxml_escape_an_invisible_character_so_two_names_never_show_alike(
    runner: CliRunner, tmp_path: Path, invisible: str
) -> None:
    """Only bidi controls were escaped: `ab.bin` and `a<U+200B>b.bin` showed alike."""
    evidence = tmp_path / "ev"
    evidence.mkdir()
    names = ["ab.bin", f"a{invisible}b.bin"]
    lines = []
    for name in names:
        (evidence / name).write_bytes(b"synthetic " + name.encode())
        lines.append(f"{hashlib.md5(b'synthetic ' + name.encode()).hexdigest()}  {name}")
    (tmp_path / "l.md5").write_text("\n".join(lines) + "\n", encoding="utf-8")
    log = tmp_path / "i.jsonl"
    args = ["scan", str(evidence), "--examiner", "E", "--case", "Z-1", "--db", str(tmp_path / "s.db"),
            "--list", str(tmp_path / "l.md5"), "--log", str(log), "-q"]  # fmt: skip
    assert runner.invoke(cli, args).exit_code == 1
    shown = f"a\\u{ord(invisible):04X}b.bin"
    page = report(runner, log, "html", tmp_path / "r.html").read_text()
    assert invisible not in page.split("<h2>Matches", 1)[1]
    assert f'">\\u{ord(invisible):04X}</span>b.bin' in page
    root = ET.parse(report(runner, log, "dfxml", tmp_path / "r.xml")).getroot()
    seen = {}
    for element in root.iter(f"{DFXML_NS}filename"):
        assert element.text is not None and invisible not in element.text
        exact = element.get(f"{MATCHER_NS}name_b64")
        seen[os.path.basename(element.text)] = base64.b64decode(exact) if exact else None
    assert seen == {"ab.bin": None, shown: os.path.join(os.fsencode(evidence), names[1].encode())}
    (hit,) = [m for m in root.iter(f"{MATCHER_NS}match") if m.get("entry_name") != "ab.bin"]
    assert hit.get("entry_name") == shown and hit.get("entry_name_b64")


def test_a_report_of_a_signed_log_made_without_the_key_says_the_signatures_went_unchecked(
    tmp_path: Path, runner: CliRunner
) -> None:
    """Before, every format said only "chain intact": a chain anyone can write again."""
    evidence = tmp_path / "ev"
    evidence.mkdir()
    data = b"signed notable\n"
    (evidence / "a.bin").write_bytes(data)
    (tmp_path / "l.md5").write_text(f"{hashlib.md5(data).hexdigest()}  a\n")
    assert runner.invoke(cli, ["keygen", str(tmp_path / "k.pem"), str(tmp_path / "k.pub")]).exit_code == 0
    log = tmp_path / "signed.jsonl"
    args = ["scan", str(evidence), "--examiner", "E", "--case", "S-1", "--db", str(tmp_path / "s.db"),
            "--list", str(tmp_path / "l.md5"), "--log", str(log), "--sign-key", str(tmp_path / "k.pem"), "-q"]  # fmt: skip
    assert runner.invoke(cli, args).exit_code == 1
    fingerprint = json.loads(log.read_bytes().splitlines()[-1])["key_fingerprint"]
    unchecked = runner.invoke(cli, ["report", str(log), "--format", "json", "-o", str(tmp_path / "r.json")])
    assert unchecked.exit_code == 0
    assert "signatures were NOT checked" in unchecked.output and fingerprint in unchecked.output
    verification = json.loads((tmp_path / "r.json").read_text())["log"]["verification"]
    assert verification["signatures"] >= 1 and verification["signatures_checked"] == 0
    assert verification["key_fingerprints"] == [fingerprint]
    assert "NOT checked" in verification["signature_note"]
    for fmt in ("html", "dfxml", "case"):
        out = report(runner, log, fmt, tmp_path / f"r.{fmt}")
        assert "signatures were NOT checked" in out.read_text(), fmt
    checked = runner.invoke(cli, ["report", str(log), "--format", "json", "--public-key",
                                  str(tmp_path / "k.pub"), "-o", str(tmp_path / "k.json")])  # fmt: skip
    assert checked.exit_code == 0 and "NOT checked" not in checked.output
    verification = json.loads((tmp_path / "k.json").read_text())["log"]["verification"]
    assert verification["signature_note"] is None and verification["signatures_checked"] >= 1
    # Which key verified them is said (it said only "N signature(s) verified").
    html = runner.invoke(cli, ["report", str(log), "--format", "html", "--public-key",
                               str(tmp_path / "k.pub"), "-o", str(tmp_path / "k.html")])  # fmt: skip
    assert html.exit_code == 0
    assert f"signature(s) verified with key {fingerprint}" in (tmp_path / "k.html").read_text()


def test_verify_and_report_say_when_the_last_run_was_interrupted(tmp_path: Path, runner: CliRunner) -> None:
    import matcher.scan as scan_mod
    from matcher.scan import ScanOptions
    from matcher.scan import run_scan

    evidence = tmp_path / "ev"
    evidence.mkdir()
    for i in range(3):
        (evidence / f"f{i}").write_bytes(b"%d" % i)
    log = tmp_path / "cut.jsonl"
    (tmp_path / "l.md5").write_text(f"{hashlib.md5(b'0').hexdigest()}  f0\n")
    options = ScanOptions([evidence], "E", "I-1", tmp_path / "s.db", log, lists=[tmp_path / "l.md5"], jobs=1)
    real = scan_mod._pump

    def interrupted(*args: object, **kwargs: object) -> None:
        raise scan_mod.Interrupted("SIGINT")

    scan_mod._pump = interrupted  # type: ignore[assignment]
    try:
        assert run_scan(options).status == "interrupted"
    finally:
        scan_mod._pump = real
    verified = runner.invoke(cli, ["verify", str(log)])
    assert verified.exit_code == 0
    assert "its last run was interrupted: the scan is not complete" in verified.output
    reported = runner.invoke(cli, ["report", str(log), "--format", "json", "-o", str(tmp_path / "r.json")])
    assert reported.exit_code == 0 and "last run was interrupted" in reported.output


def test_csv_and_case_reports_say_what_their_matches_cannot(tmp_path: Path, runner: CliRunner) -> None:
    """Before, the CSV and the CASE graph had no word of an unreadable file (nor of status or counts)."""
    evidence = tmp_path / "ev"
    evidence.mkdir()
    (evidence / "hit.bin").write_bytes(b"a notable one\n")
    (evidence / "other.bin").write_bytes(b"x" * 7)
    (evidence / "gone.bin").write_bytes(b"y")
    (tmp_path / "l.md5").write_text(f"{hashlib.md5(b'a notable one' + bytes([10])).hexdigest()}  hit\n")
    log = tmp_path / "e.jsonl"
    import matcher.hashing as hashing_mod

    real_open = hashing_mod.Hasher.hash_file

    def vanish(self: Any, path: bytes, *args: Any) -> Any:
        if path.endswith(b"gone.bin"):
            os.unlink(path)
        return real_open(self, path, *args)

    args = ["scan", str(evidence), "--examiner", "E", "--case", "R-1", "--db", str(tmp_path / "s.db"),
            "--list", str(tmp_path / "l.md5"), "--log", str(log), "--jobs", "1", "-q"]  # fmt: skip
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(hashing_mod.Hasher, "hash_file", vanish)
        assert runner.invoke(cli, args).exit_code == 5  # a match, and an entry not read
    csv_out = runner.invoke(cli, ["report", str(log), "--format", "csv", "-o", str(tmp_path / "r.csv")])
    assert csv_out.exit_code == 0 and "counted in its first lines" in csv_out.output
    head = (tmp_path / "r.csv").read_text().splitlines()[2:5]
    assert head[0] == "# NOTE: 1 entry could not be read (errors): neither matched nor known nor unknown"
    assert head[1].startswith("# NOTE: the rows below are matches only")
    assert head[2].startswith("seq,path,")
    case = report(runner, log, "case", tmp_path / "r.jsonld")
    statements = [n.get("uco-core:statement") for n in json.loads(case.read_text())["@graph"]]
    assert any(s and s.startswith("could not be read (vanished") and s.endswith("gone.bin") for s in statements)
    assert ("scan status complete; entries 3, files 2, notable 1, known 0, unknown 1, skipped 0, "
            "errors 1; 1 entry could not be read (errors): neither matched nor known nor unknown") in statements  # fmt: skip
    done = subprocess.run([peer_tool("case_validate"), str(case)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_every_report_says_per_reason_which_entries_were_skipped_so_never_matched(
    tmp_path: Path, runner: CliRunner
) -> None:
    """Entries --exclude and --max-size kept from the scan were in no report but as a bare
    "skipped 2" (CSV: no word; HTML "Status complete"), though they were never matched."""
    evidence = tmp_path / "ev"
    (evidence / "private").mkdir(parents=True)
    (evidence / "hit.bin").write_bytes(b"synthetic hit\n")
    (evidence / "big.bin").write_bytes(b"synthetic large file\n" * 100)
    (evidence / "private" / "x.bin").write_bytes(b"synthetic excluded\n")
    (tmp_path / "l.md5").write_text(f"{hashlib.md5(b'synthetic hit' + bytes([10])).hexdigest()}  hit\n")
    log = tmp_path / "s.jsonl"
    args = ["scan", str(evidence), "--examiner", "E", "--case", "K-1", "--db", str(tmp_path / "s.db"),
            "--list", str(tmp_path / "l.md5"), "--log", str(log), "--max-size", "1K",
            "--exclude", "private", "-q"]  # fmt: skip
    assert runner.invoke(cli, args).exit_code == 1
    assert read_log(log)[-1]["counts"]["skipped_by_reason"] == {"too-large": 1, "excluded": 1}
    said = ("2 entries skipped (never read, so matched against no list): 1 too-large (--max-size), "
            "1 excluded (--exclude)")  # fmt: skip
    head = report(runner, log, "csv", tmp_path / "r.csv").read_text().splitlines()
    assert f"# NOTE: {said}" in head[: head.index(",".join(COLUMNS))]
    assert said in json.loads(report(runner, log, "json", tmp_path / "r.json").read_text())["summary"]["caveats"]
    page = report(runner, log, "html", tmp_path / "r.html").read_text()
    assert f'<li class="bad">{html.escape(said)}</li>' in page
    assert "<tr><th>skipped: too-large</th><td>1</td></tr>" in page
    assert "<tr><th>skipped: excluded</th><td>1</td></tr>" in page
    case = report(runner, log, "case", tmp_path / "r.jsonld")
    statements = [n.get("uco-core:statement") or "" for n in json.loads(case.read_text())["@graph"]]
    assert any(s.startswith("scan status complete;") and said in s for s in statements)
    done = subprocess.run([peer_tool("case_validate"), str(case)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    xml = report(runner, log, "dfxml", tmp_path / "r.xml")
    done = subprocess.run([peer_tool("xmllint"), "--noout", "--schema", str(SCHEMA), str(xml)],
                          capture_output=True, text=True)  # fmt: skip
    assert done.returncode == 0, done.stderr
    summary = ET.parse(xml).getroot().find(f"{DFXML_NS}metadata/{MATCHER_NS}summary")
    assert summary is not None
    assert [(x.get("reason"), x.get("entries")) for x in summary.iter(f"{MATCHER_NS}skipped")] == [
        ("too-large", "1"), ("excluded", "1")]  # fmt: skip
    assert said in [x.text for x in summary.iter(f"{MATCHER_NS}caveat")]


def test_an_output_that_is_a_symlink_is_refused_even_with_force(
    tmp_path: Path, runner: CliRunner, scanned: Path
) -> None:
    """With --force, a link to /dev/null (or /dev/stdout) was replaced by a regular file."""
    link = tmp_path / "out.csv"
    link.symlink_to("/dev/null")
    result = runner.invoke(cli, ["report", str(scanned), "--format", "csv", "-o", str(link), "--force"])
    assert result.exit_code == 2 and "is a symbolic link (to /dev/null)" in result.output
    assert link.is_symlink()


def test_an_unknown_format_asked_of_the_library_is_a_usage_error_naming_the_formats(scanned: Path, tmp_path: Path) -> None:
    """write_report(..., "xml") and registry.get("xml") raised a bare KeyError."""
    from matcher.errors import UsageError
    from matcher.reporting import write_report

    out = tmp_path / "r.xml"
    with pytest.raises(UsageError, match=r"Unknown report format 'xml'; choose from case, csv, dfxml, html, json\.$"):
        write_report(scanned, "xml", out)
    assert not out.exists()
    with pytest.raises(UsageError, match=r"Unknown inventory format 'bogus'; choose from .*hashdeep"):
        registry.get_inventory("bogus")


def test_an_html_report_of_a_cut_log_without_inventory_draws_no_bar_of_unknown_counts(
    runner: CliRunner, scanned: Path
) -> None:
    """Before: with known and unknown not known (no end record, no inventory), the bar was all
    notable, its parts titled 'known None'."""
    lines = scanned.read_bytes().splitlines(keepends=True)
    scanned.write_bytes(b"".join(lines[:-1]))  # the end record cut off
    Path(f"{scanned}.inventory.db").unlink()
    out = report(runner, scanned, "html", scanned.with_suffix(".html"), code=1)
    page = out.read_text()
    assert "None" not in page and 'class="bar"' not in page
    assert "No bar: the known and unknown counts are not known" in page


def test_html_marks_escapes_in_examiner_case_and_list_names_too() -> None:
    """An examiner typed as `Lit\\x1B\\u202E` and one holding an ESC and U+202E showed alike in
    the run table: escapes were marked in paths only."""
    from matcher.reports.html_report import e

    typed, held = e("Lit\\x1B\\u202E"), e("Lit\x1b\u202e")
    assert typed == "Lit\\x1B\\u202E" and held != typed
    assert held.count('<span class="esc"') == 2 and "\x1b" not in held and "\u202e" not in held
    assert e('<b> & "q"') == "&lt;b&gt; &amp; &quot;q&quot;"


def test_the_html_title_holds_text_not_markup(runner: CliRunner, tmp_path: Path) -> None:
    """Escapes marked with <span> in the <title> showed as markup in the browser's tab."""
    ev = tmp_path / "ev"
    ev.mkdir()
    (ev / "f").write_bytes(b"x\n")
    listing = tmp_path / "n.md5"
    listing.write_text(f"{hashlib.md5(b'x' + bytes([10])).hexdigest()}  f\n")
    log = tmp_path / "l.jsonl"
    args = ["scan", str(ev), "--examiner", "E", "--case", "CASE\u200b7", "--list", str(listing),
            "--db", str(tmp_path / "s.db"), "--log", str(log), "-q"]  # fmt: skip
    assert runner.invoke(cli, args).exit_code == 1
    page = report(runner, log, "html", tmp_path / "r.html").read_text()
    title = page[page.index("<title>") : page.index("</title>")]
    assert "CASE\\u200B7" in title and "<span" not in title, title


def test_dfxml_gives_the_exact_examiner_and_case_where_an_escape_shows(
    runner: CliRunner, tmp_path: Path
) -> None:
    """An examiner typed as `Lit\\x1B` and one holding an ESC both showed as
    examiner="Lit\\x1B": the escaped one now carries its exact bytes, and the file validates."""
    ev = tmp_path / "ev"
    ev.mkdir()
    (ev / "f").write_bytes(b"x\n")
    listing = tmp_path / "n.md5"
    listing.write_text(f"{hashlib.md5(b'x' + bytes([10])).hexdigest()}  f\n")
    seen = {}
    for name, examiner in (("held", "Lit\x1b"), ("typed", "Lit\\x1B")):
        log = tmp_path / f"{name}.jsonl"
        args = ["scan", str(ev), "--examiner", examiner, "--case", "C\u202e1", "--list", str(listing),
                "--db", str(tmp_path / "s.db"), "--log", str(log), "-q"]  # fmt: skip
        assert runner.invoke(cli, args).exit_code == 1
        out = report(runner, log, "dfxml", tmp_path / f"{name}.xml")
        xmllint = peer_tool("xmllint")
        done = subprocess.run([xmllint, "--noout", "--schema", str(SCHEMA), str(out)],
                              capture_output=True, text=True)  # fmt: skip
        assert done.returncode == 0, done.stderr
        [run] = ET.parse(out).getroot().iter(f"{MATCHER_NS}run")
        exact = run.get("examiner_b64")
        seen[name] = base64.b64decode(exact).decode() if exact else run.get("examiner")
        assert base64.b64decode(run.get("case_b64") or "").decode() == "C\u202e1"
    assert seen == {"held": "Lit\x1b", "typed": "Lit\\x1B"}


@pytest.mark.parametrize("fmt", ["csv", "json"])
def test_a_log_whose_sealed_inventory_changed_is_reported_as_verify_fails_it(
    scanned: Path, runner: CliRunner, tmp_path: Path, fmt: str
) -> None:
    """`verify` failed a log whose inventory was edited after the scan, while `report` of the
    same log said "chain intact", exit 0, and `verify --json` said "intact": true with exit 1
    (a validator). Both now say the inventory is not the one the log sealed."""
    import sqlite3

    conn = sqlite3.connect(f"{scanned}.inventory.db")
    conn.execute("UPDATE entries SET verdict = 'known' WHERE verdict = 'unknown'")
    conn.commit()
    conn.close()
    out = tmp_path / f"r.{fmt}"
    result = runner.invoke(cli, ["report", str(scanned), "--format", fmt, "-o", str(out)])
    assert result.exit_code == 1, result.output
    text = out.read_text()
    assert "FAILED verification (its chain is intact, but its inventory" in text
    assert "the 0 record" not in text and "record(s) it holds verified" in text
    checked = runner.invoke(cli, ["verify", str(scanned), "--json"])
    assert checked.exit_code == 1 and json.loads(checked.stdout)["intact"] is False


def test_a_log_cut_short_says_why_candidates_only_was_not_followed(tmp_path: Path, runner: CliRunner) -> None:
    """Before: a fallback run's reason was in its end record only; of a log cut short
    (kill -9), every report showed --candidates-only as asked for in argv, and no word."""
    evidence = tmp_path / "evidence"
    make_tree(evidence)
    listing = tmp_path / "unsized.md5"  # an md5sum list gives no sizes
    first = sorted(p for p in evidence.rglob("*.bin") if p.is_file())[0]
    listing.write_text(f"{hashlib.md5(first.read_bytes()).hexdigest()}  {first.name}\n")
    log = tmp_path / "run.jsonl"
    args = ["scan", str(evidence), "--examiner", "E", "--case", "C", "--db", str(tmp_path / "s.db"),
            "--list", str(listing), "--log", str(log), "--candidates-only"]  # fmt: skip
    assert runner.invoke(cli, args).exit_code == 1
    cut = tmp_path / "cut.jsonl"
    cut.write_bytes(b"".join(log.read_bytes().splitlines(keepends=True)[:-1]))  # no end record
    reason = "--candidates-only ignored (full scan): notable list(s) with entries that give no usable size: unsized.md5"
    report = runner.invoke(cli, ["report", str(cut), "--format", "json"])
    document = json.loads(report.stdout)
    assert reason in document["summary"]["caveats"] and document["runs"][0]["candidates_only_ignored"] == reason
    shown = runner.invoke(cli, ["report", str(cut), "--format", "csv"]).stdout
    assert f"# NOTE: {reason}" in shown
    # a complete log says it once, as its end record's note
    whole = runner.invoke(cli, ["report", str(log), "--format", "csv"]).stdout
    assert whole.count(reason) == 1 and f"# NOTE (end record): {reason}" in whole


def test_every_report_says_what_a_match_record_no_longer_names(
    runner: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before: a digest one notable list gives thousands of times filled the match record's
    budget with that list's entries; every report then showed the file matching that list
    alone, though it was in another notable list and a known one too, and `matches_total`
    was in none of them (a review). The record names every list, and every report says so."""
    from matcher import scan as scan_mod

    monkeypatch.setattr(scan_mod, "MATCH_RECORD_HITS_BYTES", 2000)
    evidence = tmp_path / "evidence"
    evidence.mkdir()
    content = b"synthetic file listed many times"
    (evidence / "t.bin").write_bytes(content)
    (evidence / "other.bin").write_bytes(b"in no list")
    digest = hashlib.md5(content).hexdigest()
    (tmp_path / "A.md5").write_text("".join(f"{digest}  dir/copy-{i:03}.bin\n" for i in range(60)))
    (tmp_path / "B.md5").write_text(f"{digest}  b.bin\n")
    (tmp_path / "C.md5").write_text(f"{digest}  c.bin\n")
    db = str(tmp_path / "s.db")
    for listing, role in (("A.md5", "notable"), ("B.md5", "notable"), ("C.md5", "known")):
        done = runner.invoke(cli, ["import", str(tmp_path / listing), "--db", db, "--role", role])
        assert done.exit_code == 0, done.output
    log = tmp_path / "run.jsonl"
    done = runner.invoke(cli, ["scan", str(evidence), "--examiner", "E", "--case", "C",
                               "--db", db, "--log", str(log), "-q"])  # fmt: skip
    assert done.exit_code == 1, done.output
    (match,) = [r for r in read_log(log) if r["type"] == "match"]
    assert match["matches_total"] == 62 and len(match["matches"]) < 62
    assert {m["list"] for m in match["matches"]} == {"A.md5"}  # the budget: A's entries only
    said = r"names \d+ of the 62 list entries .*'A\.md5' \(notable\) 60, 'B\.md5' \(notable\) 1, 'C\.md5' \(known\) 1"
    for name in registry.names():
        out = runner.invoke(cli, ["report", str(log), "--format", name])
        assert out.exit_code == 0, (name, out.output)
        text = html.unescape(out.output) if name in ("html", "dfxml") else out.output
        assert re.search(said, text.replace("\\'", "'").replace("&apos;", "'")), name
    document = json.loads(runner.invoke(cli, ["report", str(log), "--format", "json"]).stdout)
    (reported,) = document["matches"]
    assert reported["matches_total"] == 62
    assert reported["lists_matched"] == [
        {"list": "A.md5", "role": "notable", "entries": 60},
        {"list": "B.md5", "role": "notable", "entries": 1},
        {"list": "C.md5", "role": "known", "entries": 1},
    ]


def test_a_cut_log_whose_inventory_counts_more_notable_files_says_where_they_are(
    runner: CliRunner, scanned: Path
) -> None:
    """Before: a log cut after some of its match records (a partial copy) beside its whole
    inventory was reported "notable 8" above two matches, with nothing said of the six others
    (a review)."""
    lines = scanned.read_bytes().splitlines(keepends=True)
    assert [json.loads(x)["type"] for x in lines[:3]] == ["run", "match", "match"]
    scanned.write_bytes(b"".join(lines[:3]))
    out = runner.invoke(cli, ["report", str(scanned), "--format", "json"])
    document = json.loads(out.stdout)
    assert document["summary"]["counts"]["notable"] == 8 and len(document["matches"]) == 2
    said = ("the inventory counts 6 notable file(s) more than this log has match records (2): "
            "the log was cut after they were logged, and the inventory names them")  # fmt: skip
    assert said in document["summary"]["caveats"]
    assert said in runner.invoke(cli, ["report", str(scanned), "--format", "csv"]).stdout


def test_a_report_says_when_the_inventory_the_log_sealed_was_not_found(
    runner: CliRunner, scanned: Path
) -> None:
    """Before: with the sealed inventory moved away, the report said "intact" and nothing
    more, where `verify` says the inventory was not checked (a review)."""
    inventory = Path(f"{scanned}.inventory.db")
    inventory.rename(scanned.parent / "elsewhere.db")
    out = runner.invoke(cli, ["report", str(scanned), "--format", "json"])
    assert out.exit_code == 0, out.output
    caveats = json.loads(out.stdout)["summary"]["caveats"]
    assert any(c.startswith("the inventory the log sealed was not checked: it was not found")
               for c in caveats), caveats  # fmt: skip
    verify = runner.invoke(cli, ["verify", str(scanned)])
    assert "inventory not checked: it was not found" in verify.output
    assert "`rematch` needs the inventory" in verify.output


def test_dfxml_of_a_forged_end_record_with_odd_count_names_is_still_xml(
    runner: CliRunner, scanned: Path
) -> None:
    """Before: a count name from the end record became an attribute name as it was, and a
    forged one (`bad key<"&`) made a DFXML report that was no XML at all (a review)."""
    end = json.loads(scanned.read_bytes().splitlines()[-1])
    _reseal_last(scanned, counts={**end["counts"], 'bad key<"&': 7, "status": 3, "xmlns": 1})
    out = runner.invoke(cli, ["report", str(scanned), "--format", "dfxml"])
    root = ET.fromstring(out.stdout.encode())
    summary = root.find(f"{DFXML_NS}metadata/{MATCHER_NS}summary")
    assert summary is not None
    assert summary.get("notable") == str(end["counts"]["notable"])
    assert summary.get("status") == "complete" and 'bad key<"&' not in summary.attrib
    assert "xmlns" not in out.stdout.split("<matcher:summary", 1)[1].split(">", 1)[0]


def test_a_log_whose_inventory_changed_is_reported_with_its_chain_head(
    runner: CliRunner, scanned: Path
) -> None:
    """Before: a log whose chain verified but whose sealed inventory was edited afterwards was
    said to have "no head" in the CSV and the HTML, while the JSON gave its head (a review)."""
    import sqlite3

    conn = sqlite3.connect(f"{scanned}.inventory.db")
    conn.execute("UPDATE entries SET verdict = 'known' WHERE rowid = (SELECT min(rowid) FROM entries)")
    conn.commit()
    conn.close()
    head = json.loads(runner.invoke(cli, ["report", str(scanned), "--format", "json"]).stdout)[
        "log"]["verification"]["head"]  # fmt: skip
    assert head
    out = runner.invoke(cli, ["report", str(scanned), "--format", "csv"])
    assert out.exit_code == 1
    (line,) = [x for x in out.stdout.splitlines() if x.startswith("# LOG:")]
    assert "its chain is intact" in line and f": its chain's head {head}; " in line


def test_a_resumed_log_reports_what_its_earlier_runs_noted(runner: CliRunner, tmp_path: Path) -> None:
    """Before: only the last end record's notes reached a report: a resumed scan's first run,
    stopped by a signal after reading files as another user (their access times may have
    moved), was reported with the resume's own count only (a review)."""
    log = _resumed_after_an_interruption(tmp_path, "r")
    ends = [r for r in read_log(log) if r["type"] == "end"]
    assert len(ends) == 2 and "interrupted by SIGINT" in ends[0]["notes"]
    said = f"an earlier run of this log (its end record at seq {ends[0]['seq']}, interrupted) noted: interrupted by SIGINT"
    document = json.loads(runner.invoke(cli, ["report", str(log), "--format", "json"]).stdout)
    assert said in document["summary"]["caveats"]
    assert document["summary"]["notes"] == ends[1]["notes"]  # the last end record's, as before
    assert said in runner.invoke(cli, ["report", str(log), "--format", "csv"]).stdout


def test_a_forged_evidence_root_holding_a_nul_is_no_fault_of_matcher(
    runner: CliRunner, scanned: Path, tmp_path: Path
) -> None:
    """Before: a run record whose evidence path holds a NUL (only a forged log can) made the
    output check fail inside realpath: exit 2 as an internal error, and no report."""
    lines = scanned.read_bytes().split(b"\n")
    run = json.loads(lines[0])
    run["evidence"][0]["path"] += "\u0000x"
    lines[0] = json.dumps(run, separators=(",", ":")).encode()
    scanned.write_bytes(b"\n".join(lines))
    out = tmp_path / "out.csv"
    codes = []
    for _ in range(2):  # written (the log fails: 1), then refused as existing (no --force: 2)
        result = runner.invoke(cli, ["report", str(scanned), "--format", "csv", "-o", str(out)])
        assert "internal error" not in result.output.lower(), result.output
        codes.append(result.exit_code)
    assert codes == [1, 2] and "already exists" in result.output, result.output
    assert out.is_file()
