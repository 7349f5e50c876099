"""JSON report: the run(s), the matches, the errors and the summary as one document.

The first key is `warning`: null for a log that verified, else the reason it
did not. Paths are lossless as in the log (`path`, plus `path_b64` when the
name is not UTF-8).
"""

from __future__ import annotations

from typing import TextIO

from matcher.reports import registry
from matcher.reports.model import ReportData
from matcher.reports.output import write_json

FORMAT_VERSION = 1


def document(data: ReportData, lists: bool = True) -> dict[str, object]:
    """The report as one JSON-ready object (`lists` False: empty matches and errors lists)."""
    v = data.verification
    return {
        "warning": v.warning(),
        "report": {
            "format": "matcher-report",
            "format_version": FORMAT_VERSION,
            "generated": data.generated,
            "generator": {"name": "matcher", "version": data.generator_version},
        },
        "log": {
            "path": data.log,
            "sha256": data.log_sha256,
            "verification": {
                "intact": v.intact,
                "message": v.message,
                "line": v.line,
                "records": v.records,
                "head": v.head,
                "signatures_checked": v.signatures_checked,
                "signatures": v.signatures,
                "key_fingerprints": list(v.key_fingerprints),
                "signature_note": v.signature_note(),
            },
            "unreadable_lines": list(data.unreadable_lines),
        },
        "runs": [r.as_dict() for r in data.runs],
        "matches": [m.as_dict() for m in data.matches] if lists else [],
        "errors": [e.as_dict() for e in data.errors] if lists else [],
        "summary": {
            "status": data.status,
            "started": data.started,
            "ended": data.ended,
            "counts": dict(data.counts),
            "counts_source": data.counts_source,
            "match_records": len(data.matches),
            "error_records": len(data.errors),
            "superseded_error_records": data.superseded_errors,
            "notes": list(data.notes),
            "caveats": data.caveats(),
        },
    }


class JsonReportWriter:
    """The whole report as one indented UTF-8 JSON document."""

    NAME = "json"
    DESCRIPTION = "one JSON document: run, matches, errors, summary"
    NEWLINE = "\n"

    def write(self, data: ReportData, stream: TextIO) -> None:
        """Write the document and a final newline, the matches and errors one by one.

        The output is what json.dump(document(data), indent=2) writes.
        """
        write_json(
            stream,
            document(data, lists=False),
            {
                "matches": (m.as_dict() for m in data.matches),
                "errors": (x.as_dict() for x in data.errors),
            },
            ensure_ascii=False,
        )


registry.register(JsonReportWriter())
