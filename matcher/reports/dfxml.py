"""DFXML: a match report (from a log) and an inventory (from `matcher hash`).

Both validate against the DFXML schema (`dfxml.xsd`, 2.0.0-beta.0, which is
also what `version` says). Layout as FORMATS.md 9.3: `metadata` (dc:type,
and matcher's own elements: the report (`matcher:report`: when, and by which
matcher version, it was made), log verification, runs (each with its tool
version and host; a re-match's with the log and inventory it matched again,
`matcher:rematch_of`), lists, summary (with a `matcher:skipped` per reason
entries were skipped for, and the caveats)), `creator` (the scan's, from its
first run record: its tool version, host and command line, quoted as a shell
takes it), `source` (the evidence roots), then one `fileobject` per match
(filename, filesize, mtime, lowercase `hashdigest`s, then `matcher:match`
elements in matcher's namespace) and one per error (with `error`).

Names XML cannot carry (bytes that are not UTF-8, control characters, U+FFFE)
are written as visible escapes (`\\xE9`, `\\x01`) and the element gets a
`matcher:name_b64` attribute with the exact bytes; the schema allows foreign
attributes on `filename`, and on `image_filename` (an evidence root), which
gets the same twin. A CR is written as `&#13;` so it reads back as CR.
The same holds for a list's own text in `matcher:match` (`entry_name`,
`entry_id`, `entry_label`, `list`): each escaped one gets its `_b64` twin.
"""

from __future__ import annotations

import datetime
import platform
import re
import shlex
from collections.abc import Mapping
from collections.abc import Sequence
from typing import TextIO

from matcher import __version__
from matcher.reports import registry
from matcher.reports.model import ErrorItem
from matcher.reports.model import FileEntry
from matcher.reports.model import MatchItem
from matcher.reports.model import ReportData
from matcher.reports.text import b64
from matcher.reports.text import display_name
from matcher.reports.text import display_text
from matcher.reports.text import is_exact

DFXML_NS = "http://www.forensicswiki.org/wiki/Category:Digital_Forensics_XML"
DC_NS = "http://purl.org/dc/elements/1.1/"
MATCHER_NS = "urn:x-matcher:dfxml:1"
SCHEMA_VERSION = "2.0.0-beta.0"
# The hashdigest types the schema's enumeration allows, among matcher's digests.
HASHDIGEST_TYPES = frozenset({"md5", "sha1", "sha256", "sha512"})
_ESCAPES = {"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&apos;", "\r": "&#13;"}


def esc(value: object) -> str:
    """XML-escape text (controls and non-characters made visible first)."""
    text = display_text(str(value))
    return "".join(_ESCAPES.get(c, c) for c in text)


# The names a count can take as an attribute of matcher:summary (the summary's own aside).
_COUNT_NAME = re.compile(r"(?!xml)[a-z_][a-z0-9_]*")  # (names starting "xml" are XML's)
_SUMMARY_NAMES = frozenset({"status", "counts_source", "superseded_error_records"})


def _attrs(values: Mapping[str, object]) -> str:
    return "".join(f' {k}="{esc(v)}"' for k, v in values.items() if v is not None)


def _filename(path: bytes, tag: str = "filename") -> str:
    extra = "" if is_exact(path) else f' matcher:name_b64="{b64(path)}"'
    text = path.decode("utf-8") if is_exact(path) else display_name(path)
    return f"<{tag}{extra}>{''.join(_ESCAPES.get(c, c) for c in text)}</{tag}>"


def _header(out: TextIO, warning: str | None, dc_type: str) -> None:
    out.write("<?xml version='1.0' encoding='UTF-8'?>\n")
    if warning is not None:
        # Note: a comment may hold no `--`, and the warning quotes the log's
        # own text: each hyphen before another is split off (splitting pairs
        # left one in a run such as `---`, and the report was no XML).
        out.write(f"<!-- {re.sub('-(?=-)', '- ', esc(warning))} -->\n")
    out.write(
        f"<dfxml xmlns='{DFXML_NS}'\n       xmlns:dc='{DC_NS}'\n"
        f"       xmlns:matcher='{MATCHER_NS}'\n       version='{SCHEMA_VERSION}'>\n"
    )
    out.write(f"  <metadata>\n    <dc:type>{esc(dc_type)}</dc:type>\n")
    if warning is not None:
        out.write(f"    <dc:description>{esc(warning)}</dc:description>\n")


def _shell_word(arg: str) -> str:
    """One argument as a POSIX shell takes it back; bash's $'...' where it holds what is not shown.

    Note: a newline or another control in an argument (an examiner name) is
    shown escaped; inside '...' a shell took the escape as it reads, a
    backslash and an `n`. In $'...' it is the character again.
    """
    if display_text(arg) == arg:
        return shlex.quote(arg)
    return "$'" + "".join(_ansi_c(c) for c in arg) + "'"


def _ansi_c(c: str) -> str:
    """One character inside bash's $'...'."""
    if c in "\\'":
        return "\\" + c
    if c in _ANSI_C:
        return _ANSI_C[c]
    if display_text(c) == c:
        return c
    code = ord(c)
    if 0xDC80 <= code <= 0xDCFF:  # a byte that was not UTF-8 (surrogateescape)
        return f"\\x{code - 0xDC00:02x}"
    return f"\\x{code:02x}" if code < 0x80 else f"\\U{code:08x}"


_ANSI_C = {"\n": "\\n", "\t": "\\t", "\r": "\\r"}


def _creator(
    out: TextIO,
    version: str | None,
    command: Sequence[str],
    start: str | None,
    environment: Mapping[str, str | None],
) -> None:
    """The program that made the file's content: its version, where and how it ran.

    `environment` gives `os_sysname` and `host`, each where known. The
    command line is quoted as a POSIX shell would take it (see _shell_word),
    so an argument holding a space is one argument.
    """
    out.write("  <creator>\n    <program>matcher</program>\n")
    if version is not None:
        out.write(f"    <version>{esc(version)}</version>\n")
    out.write("    <execution_environment>\n")
    for tag in ("os_sysname", "host"):
        if environment.get(tag) is not None:
            out.write(f"      <{tag}>{esc(environment[tag])}</{tag}>\n")
    if command:
        line = " ".join(_shell_word(arg) for arg in command)
        out.write(f"      <command_line>{esc(line)}</command_line>\n")
    if start:
        out.write(f"      <start_time>{esc(start)}</start_time>\n")
    out.write("    </execution_environment>\n  </creator>\n")


def _file_body(out: TextIO, entry: FileEntry) -> None:
    if entry.size is not None:
        out.write(f"    <filesize>{entry.size}</filesize>\n")
    if entry.mtime:
        out.write(f"    <mtime>{esc(entry.mtime)}</mtime>\n")
    for algorithm, value in entry.digests.items():
        if algorithm in HASHDIGEST_TYPES:
            out.write(f"    <hashdigest type='{algorithm}'>{esc(value)}</hashdigest>\n")
        else:
            # Note that the schema's type enumeration has no BLAKE3: it goes in our namespace.
            out.write(
                f"    <matcher:digest type='{esc(algorithm)}'>{esc(value)}</matcher:digest>\n"
            )


def _match(out: TextIO, item: MatchItem) -> None:
    out.write(f"  <fileobject>\n    {_filename(item.file.path)}\n")
    _file_body(out, item.file)
    for hit in item.hits:
        entry = hit.entry
        fields = {
            "list": hit.list_name,
            **_exact("list", hit.list_name),
            "role": hit.role,
            "algorithm": hit.algorithm,
            "entry_name": entry.get("name"),
            **({"entry_name_b64": entry["name_b64"]} if entry.get("name_b64") else {}),
            **({} if entry.get("name_b64") else _exact("entry_name", entry.get("name"))),
            "entry_id": entry.get("id"),
            **_exact("entry_id", entry.get("id")),
            "entry_label": entry.get("label"),
            **_exact("entry_label", entry.get("label")),
            "entry_size": entry.get("size"),
            **({"digests_differ": ",".join(hit.differ)} if hit.differ else {}),
            "log_seq": item.seq,
        }
        out.write(f"    <matcher:match{_attrs(fields)}/>\n")
    out.write("  </fileobject>\n")


def _exact(name: str, value: object) -> dict[str, str]:
    """`{name}_b64` with the exact UTF-8 bytes of a text the report shows with escapes.

    A list's names, ids and labels are verbatim text: one holding a newline
    shows as `a\\nb`, as one holding a backslash and an `n` does; the
    attribute tells them apart, as `matcher:name_b64` does for a file name.
    """
    if not isinstance(value, str):
        return {}
    raw = value.encode("utf-8", "surrogateescape")
    return {} if is_exact(raw) else {f"{name}_b64": b64(raw)}


def _error(out: TextIO, item: ErrorItem) -> None:
    out.write(f"  <fileobject>\n    {_filename(item.path)}\n")
    reason = item.reason + (f": {item.detail}" if item.detail else "")
    out.write(f"    <error>{esc(reason)}</error>\n")
    fields = {"reason": item.reason, "errno": item.errno, "kind": item.kind, "log_seq": item.seq}
    out.write(f"    <matcher:read_error{_attrs(fields)}/>\n  </fileobject>\n")


class DfxmlReportWriter:
    """A DFXML match report: one fileobject per notable file and per read error."""

    NAME = "dfxml"
    DESCRIPTION = "DFXML match report (validates against dfxml.xsd)"
    NEWLINE = "\n"

    def write(self, data: ReportData, stream: TextIO) -> None:
        """Write the whole document."""
        v = data.verification
        _header(stream, v.warning(), "Hash Match Report")
        log = {
            "path": data.log,
            "sha256": data.log_sha256,
            "intact": "true" if v.intact else "false",
            "verification": v.message,
            "bad_line": v.line,
            "records": v.records,
            "head": v.head,
            "signatures": v.signatures,
            "signatures_checked": v.signatures_checked,
            "key_fingerprints": " ".join(v.key_fingerprints) or None,
            "signature_note": v.signature_note(),
        }
        # Note: <creator> is the scan's (its run record's tool); this, the report's.
        made = {"generated": data.generated, "generator_version": data.generator_version}
        stream.write(f"    <matcher:report{_attrs(made)}/>\n")
        stream.write(f"    <matcher:log{_attrs(log)}/>\n")
        for run in data.runs:
            fields: dict[str, object] = {
                "seq": run.seq,
                "time": run.time,
                # Note: with their exact bytes where an escape shows: an examiner
                # typed as `A\\x1B` and one holding an ESC showed alike.
                "examiner": run.examiner,
                **_exact("examiner", run.examiner),
                "case": run.case,
                **_exact("case", run.case),
                "authority": run.authority,
                **_exact("authority", run.authority),
                "resume": "true" if run.resume else "false",
                "algorithms": ",".join(run.algorithms),
                "tool_version": run.tool_version,
                "host": run.host,
            }
            stream.write(f"    <matcher:run{_attrs(fields)}>\n")
            if run.rematch_of is not None:
                stream.write(f"      <matcher:rematch_of{_attrs(run.rematch_of.as_dict())}/>\n")
            for used in run.lists:
                stream.write(f"      <matcher:list{_attrs(used.as_dict())}/>\n")
            stream.write("    </matcher:run>\n")
        # Note: only counts whose names XML can carry as attributes (every count a
        # scan writes): a forged end record's key `bad key<"&` made no XML at all.
        counts = {
            k: v
            for k, v in data.counts.items()
            if isinstance(v, int) and _COUNT_NAME.fullmatch(k) and k not in _SUMMARY_NAMES
        }
        summary = {"status": data.status, "counts_source": data.counts_source, **counts}
        if data.superseded_errors:
            summary["superseded_error_records"] = data.superseded_errors
        skipped = [{"reason": reason, "entries": n} for reason, n in data.skipped().items()]
        said = [("caveat", n) for n in data.caveats()] + [("note", n) for n in data.notes]
        if skipped or said:
            stream.write(f"    <matcher:summary{_attrs(summary)}>\n")
            for each in skipped:
                stream.write(f"      <matcher:skipped{_attrs(each)}/>\n")
            for kind, text in said:
                stream.write(f"      <matcher:{kind}>{esc(text)}</matcher:{kind}>\n")
            stream.write("    </matcher:summary>\n  </metadata>\n")
        else:
            stream.write(f"    <matcher:summary{_attrs(summary)}/>\n  </metadata>\n")
        first = data.run
        if first is None:
            _creator(stream, None, (), data.started, {})
        else:
            command = [first.tool_name, *first.argv]
            _creator(stream, first.tool_version, command, data.started, {"host": first.host})
        roots = [root for r in data.runs for root in r.evidence]
        if roots:
            stream.write("  <source>\n")
            for root in dict.fromkeys(roots):
                stream.write(f"    {_filename(root, 'image_filename')}\n")
            stream.write("  </source>\n")
        for item in data.matches:
            _match(stream, item)
        for error in data.errors:
            _error(stream, error)
        stream.write("</dfxml>\n")


class _DfxmlInventory:
    def __init__(self, stream: TextIO, command: Sequence[str], version: str, start: str):
        self.out = stream
        _header(stream, None, "Hash List")
        stream.write("  </metadata>\n")
        _creator(stream, version, command, start, {"os_sysname": platform.system()})

    def add(self, entry: FileEntry) -> str | None:
        self.out.write(f"  <fileobject>\n    {_filename(entry.path)}\n")
        _file_body(self.out, entry)
        self.out.write("  </fileobject>\n")
        return None

    def finish(self) -> None:
        self.out.write("</dfxml>\n")


class DfxmlInventoryWriter:
    """`matcher hash --format dfxml`: one fileobject per file, as `hashdeep -d` writes."""

    NAME = "dfxml"
    DESCRIPTION = "DFXML file list with hashdigests"

    def required(self, algorithms: Sequence[str]) -> str | None:
        """DFXML's hashdigest types cover md5, sha1, sha256 and sha512 only."""
        extra = [a for a in algorithms if a not in HASHDIGEST_TYPES]
        if extra:
            return f"DFXML hashdigest has no type for {', '.join(extra)}"
        return None

    def open(
        self, stream: TextIO, algorithms: Sequence[str], command: Sequence[str], cwd: str
    ) -> _DfxmlInventory:
        """Start the document."""
        now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        return _DfxmlInventory(stream, command, __version__, now)


registry.register(DfxmlReportWriter())
registry.register_inventory(DfxmlInventoryWriter())
