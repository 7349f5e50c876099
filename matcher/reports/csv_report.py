"""CSV report: one row per `match` record of the log (one row per notable file).

Columns, in order (documented in the README):

    seq          the match record's seq in the log
    path         the path as text (bytes that are not UTF-8 shown as U+FFFD)
    path_b64     the exact path bytes, base64, only when `path` is not exact
    size         bytes
    mtime        modification time, UTC ISO 8601
    md5 sha1 sha256 sha512 blake3
                 lowercase hex digests computed by the scan (empty if not computed)
    list         the lists the file matched, notable lists first, joined by "; "
    role         each list's role, same order
    algorithm    for each list, the digests that matched, joined by "+" (and, where
                 the list's entry gives another digest of the file, "(its entry
                 gives another sha1+...)")
    entry_name   for each list, the matching entry's file name (verbatim)
    entry_id     for each list, the entry's id (verbatim)
    entry_label  for each list, the entry's label (verbatim; matcher invents none)
    entry_size   for each list, the entry's size
    hits_json    every matching entry exactly as logged, as a JSON array

A report from a log that fails verification starts with one extra line,
`# WARNING: ...`. Then `# CASE: ...` (case, examiner, authority) and
`# LOG: ...` (the log's path and SHA-256, and its chain head or failed
verification), so that a CSV kept alone can be traced to its log; then a
`# NOTE: ...` line for each thing a table of matches cannot show: signatures
not checked, a scan not complete, entries that could not be read (listed in
the other reports), files not read by --candidates-only, entries skipped (by
reason: --exclude, --max-size...).
Each of these lines is one line that no reader takes for a row: what it
quotes from the log has its line breaks and controls escaped (`\\n`), and a
comma's next character escaped where it would open a quoted cell or a
formula (`\\x3D` for `=`). Cells are written verbatim: a
spreadsheet may treat a cell starting with "=" as a formula, so open the
file as text/CSV import, not by double-clicking, when names are hostile.
"""

from __future__ import annotations

import csv
import json
import re
from typing import TextIO

from matcher.reports import registry
from matcher.reports.model import DIGEST_COLUMNS
from matcher.reports.model import Hit
from matcher.reports.model import MatchItem
from matcher.reports.model import ReportData
from matcher.reports.text import b64
from matcher.reports.text import display_text

COLUMNS: tuple[str, ...] = (
    "seq",
    "path",
    "path_b64",
    "size",
    "mtime",
    *DIGEST_COLUMNS,
    "list",
    "role",
    "algorithm",
    "entry_name",
    "entry_id",
    "entry_label",
    "entry_size",
    "hits_json",
)
SEPARATOR = "; "


# A comma then a character a spreadsheet or CSV reader takes as the start of a
# quoted cell or of a formula (spaces between ignored).
_CELL_START = re.compile(r'(,[ ]*)([="+\-@])')


def _one_line(text: str) -> str:
    """A note on one comment line, which no reader can take for a row.

    Backslashes doubled, then controls (CR, LF and every other line break,
    U+2028 and U+2029 too), bidi controls and invisible characters escaped as
    `display_text` does; a character that would start a cell as a quoted
    field or a formula is written as its escape (`,\\x3DHYPERLINK`). The
    notes quote the log's text (a path, an end record's status), which may
    hold any of them.
    """
    text = display_text(text.replace("\\", "\\\\"))
    return _CELL_START.sub(lambda m: f"{m[1]}\\x{ord(m[2]):02X}", text)


def _cell(value: object) -> str:
    return "" if value is None else str(value)


def _by_list(hits: tuple[Hit, ...]) -> list[tuple[Hit, list[str]]]:
    """The first hit of each list, in order, with every algorithm that matched in it."""
    groups: dict[str, tuple[Hit, list[str]]] = {}
    for hit in hits:
        if hit.list_name not in groups:
            groups[hit.list_name] = (hit, [])
        if hit.algorithm not in groups[hit.list_name][1]:
            groups[hit.list_name][1].append(hit.algorithm)
    return list(groups.values())


def _differ_said(hits: tuple[Hit, ...], list_name: str) -> str:
    """What an `algorithm` cell adds for a list whose entry gives another digest of the file.

    Note: a known entry set aside (see the log's `digests_differ`) was shown in
    the list and role columns as any match; only hits_json carried the mark.
    """
    differ = sorted({a for h in hits if h.list_name == list_name for a in h.differ})
    return f" (its entry gives another {'+'.join(differ)})" if differ else ""


def row(item: MatchItem) -> dict[str, str]:
    """The CSV row of one match."""
    path = item.file.path
    try:
        text, exact = path.decode("utf-8"), ""
    except UnicodeDecodeError:
        text, exact = path.decode("utf-8", "replace"), b64(path)
    groups = _by_list(item.hits)

    def joined(key: str) -> str:
        return SEPARATOR.join(_cell(hit.entry.get(key)) for hit, _ in groups)

    out = {
        "seq": str(item.seq),
        "path": text,
        "path_b64": exact,
        "size": _cell(item.file.size),
        "mtime": _cell(item.file.mtime),
        **{a: item.file.digests.get(a, "") for a in DIGEST_COLUMNS},
        "list": SEPARATOR.join(hit.list_name for hit, _ in groups),
        "role": SEPARATOR.join(hit.role for hit, _ in groups),
        "algorithm": SEPARATOR.join(
            "+".join(algos) + _differ_said(item.hits, hit.list_name) for hit, algos in groups
        ),
        "entry_name": joined("name"),
        "entry_id": joined("id"),
        "entry_label": joined("label"),
        "entry_size": joined("size"),
        "hits_json": json.dumps([h.as_dict() for h in item.hits], ensure_ascii=False),
    }
    return out


class CsvReportWriter:
    """One row per notable file, RFC 4180 (CRLF, quoted where needed), UTF-8."""

    NAME = "csv"
    DESCRIPTION = "CSV, one row per notable match (spreadsheets)"
    NEWLINE = ""

    def write(self, data: ReportData, stream: TextIO) -> None:
        """Write the warning line (if any), the header and one row per match."""
        warning = data.verification.warning()
        if warning is not None:
            stream.write(f"# {_one_line(warning)}\r\n")
        # Note: so that a CSV kept alone can be traced to its case and its log.
        case = f"{data.per_run('case')}; examiner {data.per_run('examiner')}"
        if any(run.authority for run in data.runs):
            case += f"; authority {data.per_run('authority')}"
        stream.write(f"# CASE: {_one_line(case)}\r\n")
        log = f"{data.log}; SHA-256 {data.log_sha256}; {data.verification.outcome()}"
        stream.write(f"# LOG: {_one_line(log)}\r\n")
        for note in data.caveats():
            stream.write(f"# NOTE: {_one_line(note)}\r\n")
        for note in data.notes:
            stream.write(f"# NOTE (end record): {_one_line(note)}\r\n")
        if data.count("errors"):
            stream.write(
                "# NOTE: the rows below are matches only: the entries that could not be read "
                "are the log's error records (and in the json, dfxml and html reports)\r\n"
            )
        writer = csv.DictWriter(stream, fieldnames=COLUMNS)
        writer.writeheader()
        for item in data.matches:
            writer.writerow(row(item))


registry.register(CsvReportWriter())
