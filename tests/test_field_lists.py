"""Issue 3's check end to end: the field's lists, built from their published layouts, over one tree.

NSRL lists (RDS v3 minimal and full, RDS 2.x zipped) are imported with
auto-detection and default to `known`; VICS (2.0 #Media, 1.3 #Cases) and
ClamAV (.hdb, .hsb) default to `notable`. The scan must log exactly the
notable files and count exactly the known-only ones; a truncated VICS file
is refused with the store unchanged. Everything is generated here: random
bytes and made-up names.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import random
import sys
import zipfile
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import end_record
from conftest import read_log
from conftest import store_rows

from matcher.cli import cli
from matcher.models import fields_path

sys.path.insert(0, str(Path(__file__).parent / "formats"))
from test_nsrl_rds3 import make_full  # noqa: E402
from test_nsrl_rds3 import make_minimal  # noqa: E402

VICS_20 = "http://github.com/VICSDATAMODEL/ProjectVic/DataModels/2.0.xml/UK/$metadata#Media"
VICS_13 = "http://github.com/ICMEC/ProjectVic/DataModels/1.3.xml#Cases"
Tree = tuple[Path, dict[str, dict[str, str]], dict[str, int]]  # root, digests and sizes by name


def _digests(data: bytes) -> dict[str, str]:
    return {a: hashlib.new(a, data).hexdigest() for a in ("md5", "sha1", "sha256")}


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Tree:
    """60 files of random bytes in three folders (one name not UTF-8): digests and sizes by name."""
    rng = random.Random(20261129)
    root = tmp_path_factory.mktemp("field") / "evidence"
    digests: dict[str, dict[str, str]] = {}
    sizes: dict[str, int] = {}
    for i in range(60):
        folder = root / f"d{i % 3}"
        folder.mkdir(parents=True, exist_ok=True)
        name = f"f{i:02d}.bin"
        data = rng.randbytes(rng.randrange(1, 70_000))
        path = folder / name
        if i == 58:  # in d1, where it sorts first: notable and known
            path = Path(os.fsdecode(bytes(folder) + b"/caf\xe9.bin"))
        path.write_bytes(data)
        rel = os.path.relpath(path, root)
        digests[rel], sizes[rel] = _digests(data), len(data)
    return root, digests, sizes


def _lists(
    tmp: Path, digests: dict[str, dict[str, str]], sizes: dict[str, int]
) -> tuple[list[Path], set[str], set[str]]:
    """Every list format over the tree; returns (lists, notable names, known names)."""
    names = sorted(digests)
    known, notable = set(names[0:24]), set(names[20:40])  # 20-23: both known and notable
    k = [names[0:8], names[8:16], names[16:24]]
    n = [names[20:25], names[25:30], names[30:35], names[35:40]]
    d, s = digests, sizes
    lists = [
        make_minimal(tmp / "rds-minimal.db", [
            (d[x]["sha256"].upper(), d[x]["sha1"].upper(), d[x]["md5"].upper(), f"{x}.dll", s[x], 7)
            for x in k[0]
        ]),
        make_full(tmp / "rds-full.db", [
            (i, 11, f"file{i}", "exe", s[x], d[x]["md5"].upper(), d[x]["sha1"].upper(),
             d[x]["sha256"].upper())
            for i, x in enumerate(k[1], start=1)
        ]),
    ]
    rds2 = io.BytesIO()
    rds2.write(b'"SHA-1","MD5","CRC32","FileName","FileSize","ProductCode","OpSystemCode",'
               b'"SpecialCode"\r\n')
    for x in k[2]:
        sha1, md5 = (d[x][a].upper().encode() for a in ("sha1", "md5"))
        name = x.encode("ascii", "replace")  # with a Latin-1 byte below: mixed encodings
        line = b'"%s","%s","0000ABCD","caf\xe9 %s",%d,1234,"362",""\r\n'
        rds2.write(line % (sha1, md5, name, s[x]))
    with zipfile.ZipFile(tmp / "rds_modern.zip", "w") as archive:
        archive.writestr("NSRLFile.txt", rds2.getvalue())
    lists.append(tmp / "rds_modern.zip")
    media = [
        {"MediaID": i, "Category": "2", "MD5": d[x]["md5"].upper(), "SHA1": d[x]["sha1"].upper(),
         "MediaSize": str(s[x]), "IsPrecategorized": "false", "Unknown": {"a": [1, 2]},
         "AlternativeHashes": [{"HashName": "SHA-256", "HashValue": d[x]["sha256"].upper()}]}
        for i, x in enumerate(n[0])
    ]
    for key in ("MD5", "SHA1"):  # the last one is found by its SHA-256 alone
        del media[-1][key]
    (tmp / "vics20.json").write_bytes(
        b"\xef\xbb\xbf" + json.dumps({"@odata.context": VICS_20, "value": media}).encode())
    cases = [{"CaseID": 1, "Media": [{"MediaID": 9, "Category": 1, "SHA1": d[x]["sha1"],
                                      "MediaSize": s[x]} for x in n[1]]}]
    (tmp / "vics13.json").write_text(json.dumps({"odata.metadata": VICS_13, "value": cases}))
    lists += [tmp / "vics20.json", tmp / "vics13.json"]
    (tmp / "sigs.hdb").write_text(
        "".join(f"{d[x]['md5']}:{s[x]}:Test.Sig-{i}\n" for i, x in enumerate(n[2])))
    (tmp / "sigs.hsb").write_text("".join(
        f"{d[x]['sha256']}:{s[x]}:Test.Sha256-{i}\n" if i % 2
        else f"{d[x]['sha1']}:*:Test.Sha1-{i}:73\n"
        for i, x in enumerate(n[3])))
    lists += [tmp / "sigs.hdb", tmp / "sigs.hsb"]
    return lists, notable, known


def test_field_lists_log_exactly_the_notable_files_and_count_the_known_only_ones(
    runner: CliRunner, tree: Tree, tmp_path: Path
) -> None:
    root, digests, sizes = tree
    lists, notable, known = _lists(tmp_path, digests, sizes)
    db = tmp_path / "store.db"
    for path in lists:
        result = runner.invoke(cli, ["import", str(path), "--db", str(db)])
        assert result.exit_code == 0, result.output
    shown = json.loads(runner.invoke(cli, ["lists", "--db", str(db), "--json"]).output)
    roles = {item["name"]: (item["format"], item["role"]) for item in shown}
    assert roles == {
        "rds-minimal.db": ("nsrl-rds3", "known"),
        "rds-full.db": ("nsrl-rds3", "known"),
        "rds_modern.zip": ("nsrl-rds2", "known"),
        "vics20.json": ("vics", "notable"),
        "vics13.json": ("vics", "notable"),
        "sigs.hdb": ("clamav", "notable"),
        "sigs.hsb": ("clamav", "notable"),
    }
    log = tmp_path / "run.jsonl"
    result = runner.invoke(cli, ["scan", str(root), "--examiner", "E", "--case", "C",
                                 "--db", str(db), "--log", str(log)])  # fmt: skip
    assert result.exit_code == 1, result.output
    records = read_log(log)
    logged = {os.fsdecode(os.path.relpath(fields_path(r), bytes(root)))
              for r in records if r["type"] == "match"}  # fmt: skip
    assert logged == notable
    assert any("path_b64" in r for r in records)  # the name that is not UTF-8 is among them
    counts = end_record(log)["counts"]
    assert counts["notable"] == len(notable)
    assert counts["known"] == len(known - notable)
    assert counts["unknown"] == len(digests) - len(known | notable)
    assert counts["files"] == len(digests)
    # Every list that gives a size gives the file's own.
    for r in records:
        for m in r.get("matches", []):
            assert m["entry"].get("size") in (None, r["size"]), m
    assert sum(1 for r in records for m in r.get("matches", []) if m["entry"].get("size")) > 15
    # The supplier's labels and names come through verbatim, never mapped to words.
    entries = [m["entry"] for r in records if r["type"] == "match" for m in r["matches"]]
    assert {e.get("label") for e in entries} >= {"2", "1"}
    assert {e.get("name") for e in entries} >= {"Test.Sig-0", "Test.Sha1-0", "Test.Sha256-1"}


def test_a_truncated_vics_file_is_refused_with_the_store_unchanged(
    runner: CliRunner, tree: Tree, tmp_path: Path
) -> None:
    root, digests, sizes = tree
    lists, _, _ = _lists(tmp_path, digests, sizes)
    db = tmp_path / "store.db"
    assert runner.invoke(cli, ["import", str(lists[0]), "--db", str(db)]).exit_code == 0
    before = (store_rows(db), runner.invoke(cli, ["lists", "--db", str(db), "--json"]).output)
    whole = (tmp_path / "vics20.json").read_bytes()
    for cut in (len(whole) // 2, len(whole) - 3):
        truncated = tmp_path / f"cut{cut}.json"
        truncated.write_bytes(whole[:cut])
        result = runner.invoke(cli, ["import", str(truncated), "--db", str(db)])
        assert result.exit_code == 2, result.output
        assert str(truncated) in result.output and "invalid JSON" in result.output
        after = (store_rows(db), runner.invoke(cli, ["lists", "--db", str(db), "--json"]).output)
        assert after == before
