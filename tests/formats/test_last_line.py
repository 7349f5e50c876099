"""A list whose last line has no line end: imported, with a note that its last name may be cut.

Before: a partial copy of a ClamAV, md5sum or hashdeep list, cut inside the name
that ends its last line, imported with exit 0 and nothing said; the match records
then gave "Win.Rans" as the supplier's name. A cut name cannot be told from a whole
one (a hand-made list may just lack its last line end), so it is said, not refused.
"""

from __future__ import annotations

import hashlib
import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

from matcher.formats.clamav import ClamavReader
from matcher.formats.csv_list import CsvListReader
from matcher.formats.gnu_sum import GnuSumReader
from matcher.formats.hashdeep import HashdeepReader
from matcher.models import HashRecord

A, B = b"first file\n", b"second file\n"
MD5_A, MD5_B = hashlib.md5(A).hexdigest(), hashlib.md5(B).hexdigest()
SHA_B = hashlib.sha256(B).hexdigest()

WHOLE = {
    "clamav": (ClamavReader(), f"{MD5_A}:11:Win.Trojan.Agent-1\n{MD5_B}:12:Win.Ransom.Locker-77\n"),
    "gnu-sum": (GnuSumReader(), f"{MD5_A}  r1.bin\n{MD5_B}  documents/r2-final.bin\n"),
    "hashdeep": (
        HashdeepReader(),
        "%%%% HASHDEEP-1.0\n%%%% size,md5,sha256,filename\n"
        f"11,{MD5_A},{hashlib.sha256(A).hexdigest()},/ev/a.bin\n12,{MD5_B},{SHA_B},/ev/b-final.bin\n",
    ),
}


def names_and_notes(name: str, text: str) -> tuple[list[object], list[str]]:
    reader, _ = WHOLE[name]
    records = list(reader.parse(io.BytesIO(text.encode()), source="list"))
    return [r.name for r in records], reader.import_notes()


@pytest.mark.parametrize("name", sorted(WHOLE))
def test_a_list_cut_inside_its_last_name_is_read_and_said(name: str) -> None:
    whole = WHOLE[name][1]
    names, notes = names_and_notes(name, whole)
    assert notes == [] and len(names) == 2
    cut = whole[:-7]  # inside the last name, its line end gone
    cut_names, notes = names_and_notes(name, cut)
    last = str(cut_names[-1])
    assert cut_names[:-1] == names[:-1] and str(names[-1]).startswith(last) and last != names[-1]
    lines = cut.count("\n") + 1
    assert len(notes) == 1 and notes[0].startswith(f"line {lines}, the last, has no line end")
    assert repr(last) in notes[0] and "compare the list with its source" in notes[0]
    # the same reader, given a whole list next, says nothing of the one before
    assert names_and_notes(name, whole)[1] == []


@pytest.mark.parametrize("name", ["clamav", "gnu-sum"])
def test_a_last_line_without_an_entry_says_nothing(name: str) -> None:
    """A comment (or blank line) last, without a line end, cuts no entry."""
    whole = WHOLE[name][1]
    assert names_and_notes(name, whole + "# end of list")[1] == []
    assert names_and_notes(name, whole + "   ")[1] == []


def test_a_clamav_line_cut_after_its_size_says_its_name_may_be_lost() -> None:
    names, notes = names_and_notes("clamav", f"{MD5_A}:11:Win.Trojan.Agent-1\n{MD5_B}:12:")
    assert names[-1] is None and len(notes) == 1
    assert "line 2, the last, has no line end" in notes[0] and "name may be lost" in notes[0]


def test_the_import_command_prints_the_note_and_imports_the_list(tmp_path: Path) -> None:
    listed = tmp_path / "cut.hdb"
    cut = WHOLE["clamav"][1][:-12]
    listed.write_text(cut)
    done = subprocess.run(
        [sys.executable, "-m", "matcher", "import", str(listed), "--db", str(tmp_path / "s.db")],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "imported 2 entries" in done.stdout + done.stderr
    assert "note: line 2, the last, has no line end" in done.stdout + done.stderr
    assert repr(cut.rsplit(":", 1)[1]) in done.stdout + done.stderr  # the name as cut
    # kept in the store, for whoever looks at it later (it was printed once, then lost)
    shown = subprocess.run(
        [sys.executable, "-m", "matcher", "lists", "--db", str(tmp_path / "s.db"), "--json"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    kept = json.loads(shown.stdout)[0]["metadata"]["import_notes"]
    assert kept.startswith("line 2, the last, has no line end") and repr(cut.rsplit(":", 1)[1]) in kept


def csv_notes(text: str) -> tuple[list[HashRecord], list[str]]:
    reader = CsvListReader()
    records = list(reader.parse(io.BytesIO(text.encode()), source="list.csv"))
    return records, reader.import_notes()


def test_a_csv_list_cut_inside_its_last_field_says_which_column() -> None:
    """A size column last, cut from 12 to 1: a --candidates-only scan would pass over the file."""
    whole = f"name,md5,size\na.bin,{MD5_A},11\nb.bin,{MD5_B},12\n"
    assert csv_notes(whole)[1] == []
    records, notes = csv_notes(whole[:-2])
    assert records[-1].size == 1 and len(notes) == 1
    assert notes[0].startswith("line 3, the last, has no line end")
    assert "its last field, '1' (column 'size'), may be cut too" in notes[0]


@pytest.mark.parametrize(
    "text",
    [
        f"name,md5\na.bin,{MD5_A}\nb.bin,{MD5_B}",  # a digest last: a cut one is refused
        f"md5,name,Comment\n{MD5_A},a.bin,x\n{MD5_B},b.bin,ok",  # a column not taken: no entry cut
        f"md5,name,Comment\n{MD5_A},a.bin,x\n{MD5_B},b.bin,",  # ... empty
        f"MD5,File Name,\n{MD5_A},a.bin,\n{MD5_B},b.bin,",  # a trailing delimiter on every line
    ],
)
def test_a_csv_list_whose_last_field_cannot_be_cut_unseen_says_nothing(text: str) -> None:
    records, notes = csv_notes(text)
    assert len(records) == 2 and notes == []


def test_a_csv_row_over_two_lines_is_noted_at_the_last_line_not_where_the_row_starts() -> None:
    records, notes = csv_notes(f'md5,name,size\n{MD5_A},a.bin,11\n{MD5_B},"multi\nline name",1')
    assert [r.line for r in records] == [2, 3] and len(notes) == 1
    assert notes[0].startswith("line 4, the last, has no line end")


def test_a_csv_row_cut_on_the_delimiter_before_a_digest_it_can_do_without_is_noted() -> None:
    """The row gives an MD5, so it is whole without its SHA-256: a cut lost it, unsaid."""
    whole = f"name,size,md5,sha256\na.bin,11,{MD5_A},{hashlib.sha256(A).hexdigest()}\nb.bin,12,{MD5_B},{SHA_B}"
    records, notes = csv_notes(whole[: -len(SHA_B)])
    assert set(records[-1].digests) == {"md5"} and len(notes) == 1
    assert "its last field, '' (column 'sha256'), may be cut too" in notes[0]


@pytest.mark.parametrize(
    ("field", "read"),
    [('"say ""hi"', 'say "hi'), ('"He said "', "He said "), ('"plain"', "plain")],
)
def test_a_quoted_last_field_read_as_closed_is_noted_all_the_same(field: str, read: str) -> None:
    """A doubled quote (He said ""hi"") cut just after its first half reads as a closed field
    (`He said `, no quote left in it): a closed quote proves nothing (a review)."""
    records, notes = csv_notes(f'md5,name\n{MD5_A},"a.bin"\n{MD5_B},{field}')
    assert records[-1].name == read and len(notes) == 1
    assert "line 3, the last, has no line end" in notes[0] and "(column 'name')" in notes[0]


def test_the_csv_note_names_the_column_as_its_header_gives_it() -> None:
    records, notes = csv_notes(f"Name,MD5,File Size\na.bin,{MD5_A},11\nb.bin,{MD5_B},1")
    assert records[-1].size == 1 and len(notes) == 1
    assert "its last field, '1' (column 'File Size'), may be cut too" in notes[0]


def test_a_nul_terminated_list_says_its_last_record_has_no_nul() -> None:
    reader = GnuSumReader()
    data = f"{MD5_A}  a.bin\0{MD5_B}  b.bin".encode()
    records = list(reader.parse(io.BytesIO(data), source="z.md5"))
    notes = reader.import_notes()
    assert [r.name for r in records] == ["a.bin", "b.bin"] and len(notes) == 1
    assert notes[0].startswith("record 2, the last, has no NUL") and "end it with a NUL" in notes[0]
    list(reader.parse(io.BytesIO(data + b"\0"), source="z.md5"))
    assert reader.import_notes() == []
