"""HTML summary: one self-contained page a supervisor can read (no scripts, no assets).

The page has the run (examiner, case, authority, lists with their source
SHA-256; for a re-match, the log and inventory it matched again), the chain
status as verify found it, the notes (what the matches cannot show: entries
skipped, by reason...), the counts (skipped and errors also by reason) with a
CSS bar of notable / known / unknown, the table of matches (paths, sizes,
digests and list names only: never a thumbnail, never content) and the errors. A
Content-Security-Policy forbids every external load. A log that failed
verification puts a warning in the title and as the page's first line.
"""

from __future__ import annotations

import html
from collections.abc import Iterable
from collections.abc import Iterator
from typing import TextIO

from matcher.reports import registry
from matcher.reports.model import DIGEST_COLUMNS
from matcher.reports.model import Hit
from matcher.reports.model import ReportData
from matcher.reports.text import display_name
from matcher.reports.text import display_pieces
from matcher.reports.text import display_text

STYLE = """
body{font-family:sans-serif;margin:2em;color:#111}
table{border-collapse:collapse;margin:.5em 0 1.5em}
td,th{border:1px solid #999;padding:.2em .5em;text-align:left;vertical-align:top}
.hex,.path{font-family:monospace;word-break:break-all}
.warning{background:#fdd;border:2px solid #c00;padding:.5em;font-weight:bold}
.ok{color:#060;font-weight:bold}.bad{color:#c00;font-weight:bold}
.bar{display:flex;width:40em;max-width:100%;height:1.4em;border:1px solid #333}
.bar div{height:100%}.notable{background:#c00}.known{background:#6a6}.unknown{background:#bbb}
.key span{display:inline-block;width:1em;height:1em;margin:0 .3em 0 1em;vertical-align:middle}
.esc{background:#fe9;outline:1px dotted #960}
"""
CSP = "default-src 'none'; style-src 'unsafe-inline'"


def e(value: object) -> str:
    """HTML-escaped text, controls made visible, each escape marked (see _marked)."""
    return _marked("" if value is None else str(value))


def _plain(text: str) -> str:
    """HTML-escaped text, controls as escapes, unmarked (for the page's <title>)."""
    return html.escape(display_text(text), quote=True)


def path_html(path: bytes) -> str:
    """A path for a table cell: each escape marked, so none looks like the name's own text."""
    return _marked(path.decode("utf-8", "surrogateescape"))


def _marked(text: str) -> str:
    """`text` escaped for HTML, each escape of a character it holds highlighted and titled.

    Note: a file named `caf\\xE9.txt` and one whose name holds the byte 0xE9
    would otherwise show alike; so would an examiner typed as `A\\x1B` and one
    holding an ESC (examiner, case, authority and list names were not marked).
    """
    return "".join(
        f'<span class="esc" title="{_ESCAPE_TITLE}">{html.escape(piece)}</span>'
        if escaped
        else html.escape(piece, quote=True)
        for piece, escaped in display_pieces(text)
    )


_ESCAPE_TITLE = "an escape: a byte or character of the name that is not shown as itself"


def _rows(pairs: Iterable[tuple[str, object]]) -> str:
    return "".join(f"<tr><th>{e(k)}</th><td>{e(v)}</td></tr>" for k, v in pairs)


def _table(header: Iterable[str], rows: Iterable[Iterable[str]]) -> str:
    head = "".join(f"<th>{e(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _bar(data: ReportData) -> str:
    parts = [(k, data.count(k)) for k in ("notable", "known", "unknown")]
    missing = [k for k, n in parts if n is None]
    if missing:
        # Note: drawn with the missing counts as 0, a log cut short with no
        # inventory beside it showed a bar all notable, titled "known None".
        named = " and ".join([", ".join(missing[:-1]), missing[-1]] if missing[:-1] else missing)
        counts = "counts are" if len(missing) > 1 else "count is"
        return (
            f"<p>No bar: the {named} {counts} not known (the log has no end record, and its "
            "inventory was not found).</p>"
        )
    total = sum(n or 0 for _, n in parts)
    if not total:
        return "<p>No hashed files were counted.</p>"
    divs = "".join(
        f'<div class="{k}" style="width:{100 * (n or 0) / total:.3f}%" title="{k} {n}"></div>'
        for k, n in parts
    )
    key = "".join(f'<span class="{k}"></span>{k} {n or 0:,}' for k, n in parts)
    return f'<div class="bar">{divs}</div><p class="key">{key}</p>'


# Where the table of matches goes among the page's parts: it is written row by
# row from the report's matches (which may be read from the log as they go).
_MATCHES = object()
_ERRORS = object()


def _match_rows(data: ReportData) -> Iterator[str]:
    """The table of matches, in pieces: one pass for its digest columns, one for its rows."""
    present: set[str] = set()
    for m in data.matches:
        present.update(m.file.digests)
    digests = [a for a in DIGEST_COLUMNS if a in present]
    head = "".join(f"<th>{e(h)}</th>" for h in ["seq", "path", "size", *digests, "lists"])
    yield f"<table><thead><tr>{head}</tr></thead><tbody>"
    for m in data.matches:
        cells = [
            f"<td>{m.seq}</td>",
            f'<td class="path">{path_html(m.file.path)}</td>',
            f"<td>{e(m.file.size)}</td>",
            *(f'<td class="hex">{e(m.file.digests.get(a, ""))}</td>' for a in digests),
            f"<td>{e('; '.join(dict.fromkeys(_list_cell(h) for h in m.hits)))}</td>",
        ]
        yield "<tr>" + "".join(cells) + "</tr>"
    yield "</tbody></table>"


def _list_cell(hit: Hit) -> str:
    """A matching list's name, with the digests its entry gives otherwise than the file."""
    if not hit.differ:
        return hit.list_name
    return f"{hit.list_name} (its entry gives another {', '.join(hit.differ)})"


def _error_rows(data: ReportData) -> Iterator[str]:
    """The table of errors, in pieces: one row each."""
    head = "".join(f"<th>{e(h)}</th>" for h in ["seq", "path", "reason", "detail"])
    yield f"<table><thead><tr>{head}</tr></thead><tbody>"
    for x in data.errors:
        yield (
            f"<tr><td>{x.seq}</td>"
            f'<td class="path">{path_html(x.path)}</td>'
            f"<td>{e(x.reason)}</td>"
            f"<td>{e(x.detail or '')}</td></tr>"
        )
    yield "</tbody></table>"


def _pieces(data: ReportData) -> Iterator[str]:
    """The whole HTML document, in pieces."""
    for number, part in enumerate(_parts(data)):
        if number:
            yield "\n"
        if part is _MATCHES:
            yield from _match_rows(data)
        elif part is _ERRORS:
            yield from _error_rows(data)
        else:
            assert isinstance(part, str)
            yield part


def page(data: ReportData) -> str:
    """The whole HTML document."""
    return "".join(_pieces(data))


def _rematch_rows(data: ReportData) -> list[tuple[str, object]]:
    """For a re-match's log: the log and inventory it matched again."""
    return [
        ("Re-match of", f"log {r.log} (head {r.head}); inventory {r.inventory} "
         f"(SHA-256 {r.inventory_sha256}); its examiner {r.examiner}, case {r.case}")
        for r in dict.fromkeys(data.rematches())
    ]  # fmt: skip


def _count_rows(data: ReportData) -> Iterator[tuple[str, object]]:
    """The summary's counts; one by reason (skipped, errors) as a row per reason."""
    for name, value in data.counts.items():
        if isinstance(value, dict):
            what = name.removesuffix("_by_reason")
            yield from ((f"{what}: {reason}", _number(n)) for reason, n in value.items())
        else:
            yield name, _number(value)


def _number(value: object) -> object:
    return f"{value:,}" if isinstance(value, int) else value


def _parts(data: ReportData) -> list[str | object]:
    """The document's parts, joined by newlines; _MATCHES and _ERRORS where those tables go."""
    v = data.verification
    warning = v.warning()
    run = data.run
    title = f"matcher report: case {run.case if run else '?'}"
    out: list[str | object] = [
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">',
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">',
        # Note: a title holds text only (a browser shows tags there as text).
        f"<title>{_plain((warning + ' - ') if warning else '')}{_plain(title)}</title>",
        f"<style>{STYLE}</style></head><body>",
    ]
    if warning:
        out.append(f'<p class="warning" id="warning">{e(warning)}</p>')
    out.append(f"<h1>{e(title)}</h1>")
    out.append("<h2>Run</h2><table>")
    if run is not None:
        read = " (the original scan's: not read by this re-match)" if data.rematches() else ""
        out.append(
            _rows(
                [
                    ("Examiner", data.per_run("examiner")),
                    ("Case", data.per_run("case")),
                    ("Authority", data.per_run("authority")),
                    ("Host", data.per_run("host")),
                    ("Tool", f"{run.tool_name} {run.tool_version}"),
                    ("Algorithms", ", ".join(run.algorithms)),
                    *_rematch_rows(data),
                    ("Evidence", "; ".join(display_name(p) for p in run.evidence) + read),
                    ("Started", data.started),
                    ("Ended", data.ended or "(no end record)"),
                    ("Status", data.status),
                    ("Runs in log", f"{len(data.runs)} ({len(data.runs) - 1} resumed)"),
                ]
            )
        )
    out.append(_rows([("Log", data.log), ("Log SHA-256", data.log_sha256)]))
    out.append("</table>")
    out.append("<h2>Hash lists</h2>")
    lists = {(x.name, x.source_sha256): x for r in data.runs for x in r.lists}
    out.append(
        _table(
            ["name", "role", "format", "entries", "source SHA-256"],
            (
                [
                    f"<td>{e(x.name)}</td>",
                    f"<td>{e(x.role)}</td>",
                    f"<td>{e(x.format)}</td>",
                    f"<td>{e(x.entries)}</td>",
                    f'<td class="hex">{e(x.source_sha256)}</td>',
                ]
                for x in lists.values()
            ),
        )
    )
    out.append("<h2>Chain of custody (log verification)</h2>")
    if v.intact:
        signed = v.signatures_verified()
        out.append(
            f'<p><span class="ok">Chain intact</span>: {v.records:,} records{e(signed)}; '
            f'head <span class="hex">{e(v.head)}</span></p>'
        )
        if (note := v.signature_note()) is not None:
            out.append(f'<p><span class="bad">Signatures not checked</span>: {e(note)}</p>')
    else:
        out.append(f'<p><span class="bad">FAILED</span>: {e(v.message)}</p>')
    if data.caveats() or data.notes:
        out.append("<h2>Notes</h2><ul>")
        out.extend(f'<li class="bad">{e(n)}</li>' for n in data.caveats())
        out.extend(f"<li>{e(n)}</li>" for n in data.notes)
        out.append("</ul>")
    out.append("<h2>Counts</h2>")
    out.append(_bar(data))
    out.append(
        "<table>"
        + _rows(_count_rows(data))
        + _rows([("counted from", data.counts_source)])
        + "</table>"
    )
    out.append(f"<h2>Matches ({len(data.matches):,})</h2>")
    out.append(_MATCHES)
    out.append(f"<h2>Errors ({len(data.errors):,})</h2>")
    if (superseded := data.superseded_note()) is not None:
        out.append(f"<p>{e(superseded)}</p>")
    out.append(_ERRORS)
    out.append(
        f"<p>Generated {e(data.generated)} by matcher {e(data.generator_version)}. "
        "This page shows names and digests only, never file content. In paths, a "
        '<span class="esc">highlighted</span> sequence such as \\xE9 stands for a byte '
        "or character that is not shown as itself (not UTF-8, a control, a bidirectional "
        "control, an invisible character); the JSON and CSV reports carry the exact names."
        "</p></body></html>\n"
    )
    return out


class HtmlReportWriter:
    """A single self-contained HTML page."""

    NAME = "html"
    DESCRIPTION = "one self-contained HTML page for people"
    NEWLINE = "\n"

    def write(self, data: ReportData, stream: TextIO) -> None:
        """Write the page, piece by piece."""
        for piece in _pieces(data):
            stream.write(piece)


registry.register(HtmlReportWriter())
