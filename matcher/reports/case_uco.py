"""CASE/UCO 1.x JSON-LD report: files with their hashes, and the lookup as an action.

Shape (checked with `case_validate` from case-utils, CASE 1.5.0):
- one `uco-observable:File` per notable file, with a `FileFacet` (name, path,
  size, modified time) and a `ContentDataFacet` whose `hash` list holds one
  `uco-types:Hash` per digest (method from UCO's HashNameVocab, value as
  `xsd:hexBinary`); a BLAKE3 digest, which that vocabulary has no name for,
  is given in the File's description instead;
- one `uco-core:Annotation` per file saying which list entries it matched,
  one per entry that could not be read (its path and reason), one with the
  log's SHA-256 and what verifying it found (its chain head), and one with
  the scan's status, counts and caveats (signatures not checked, a scan not
  complete, files not read);
- one `uco-identity:Person` per examiner and one `uco-tool:AnalyticTool`
  (matcher and its version);
- one `case-investigation:InvestigativeAction` per run record (scan, resume
  or re-match: a re-match's names the log and inventory it matched again;
  each names the lists with their role, format and source SHA-256):
  performer = the examiner, instrument = matcher, object = the files,
  result = the annotations, start and end times;
- one `case-investigation:Investigation` named after the case reference,
  holding the actions (and the authority as a `case-investigation:Authorization`).

Ids are deterministic (UUIDv5 of the log's SHA-256 and the record), so the
same log always gives the same graph. A name that is not UTF-8 appears with
visible escapes in fileName/filePath, and the File's description carries the
exact bytes in base64. A log that fails verification gets an Annotation
saying so, first in the graph, and the same words in every action's description.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import TextIO

from matcher.reports import registry
from matcher.reports.model import ErrorItem
from matcher.reports.model import MatchItem
from matcher.reports.model import ReportData
from matcher.reports.model import RunInfo
from matcher.reports.output import write_json
from matcher.reports.text import b64
from matcher.reports.text import display_name
from matcher.reports.text import display_text
from matcher.reports.text import is_exact
from matcher.timestamps import in_datetime_range

CONTEXT = {
    "kb": "http://example.org/kb/",
    "case-investigation": "https://ontology.caseontology.org/case/investigation/",
    "uco-action": "https://ontology.unifiedcyberontology.org/uco/action/",
    "uco-core": "https://ontology.unifiedcyberontology.org/uco/core/",
    "uco-identity": "https://ontology.unifiedcyberontology.org/uco/identity/",
    "uco-observable": "https://ontology.unifiedcyberontology.org/uco/observable/",
    "uco-tool": "https://ontology.unifiedcyberontology.org/uco/tool/",
    "uco-types": "https://ontology.unifiedcyberontology.org/uco/types/",
    "xsd": "http://www.w3.org/2001/XMLSchema#",
}
# UCO HashNameVocab spellings of matcher's digests (BLAKE3 is outside the vocabulary).
HASH_METHODS = {
    "md5": "MD5",
    "sha1": "SHA1",
    "sha256": "SHA256",
    "sha512": "SHA512",
}
_NAMESPACE = uuid.UUID("6f1c0b9e-3d1a-5b8e-9c57-0a4d2f7e1b63")

Node = dict[str, object]


def _dt(value: str) -> Node:
    return {"@type": "xsd:dateTime", "@value": value}


class _Ids:
    def __init__(self, seed: str):
        self.seed = seed

    def __call__(self, kind: str, key: object) -> str:
        return f"kb:{kind}-{uuid.uuid5(_NAMESPACE, f'{self.seed}/{kind}/{key}')}"


class _RecordKeys:
    """The id key of each record of one kind, in log order: unique even where seqs repeat.

    An intact log's seqs rise line by line, so a record's seq is its key (its
    ids stay as they were). A log that failed may repeat a seq (lines
    duplicated, two logs joined): keyed on seq alone, two files became one
    File node with two paths and two MD5s, and two runs one action with two
    end times (case_validate: Conforms False). A seq no higher than one before
    it is therefore keyed with its place among the records too.
    """

    def __init__(self) -> None:
        self.highest = -1
        self.count = 0

    def __call__(self, seq: int) -> str:
        """The key of the next record, whose seq is `seq`."""
        self.count += 1
        if seq > self.highest:
            self.highest = seq
            return str(seq)
        return f"{seq}/record {self.count}"


def _file(item: MatchItem, key: str, ids: _Ids) -> Node:
    path = item.file.path
    name = display_name(path)
    base = display_name(path.rstrip(b"/").rsplit(b"/", 1)[-1])
    facet: Node = {
        "@id": ids("FileFacet", key),
        "@type": "uco-observable:FileFacet",
        "uco-observable:fileName": base,
        "uco-observable:filePath": name,
    }
    if item.file.size is not None:
        facet["uco-observable:sizeInBytes"] = item.file.size
    notes: list[str] = []
    if item.file.mtime and in_datetime_range(item.file.mtime):
        facet["uco-observable:modifiedTime"] = _dt(item.file.mtime)
    elif item.file.mtime:
        # Note: such a year is valid xsd:dateTime, but rdflib (case_validate)
        # parses the type with Python's datetime and calls it ill-formed.
        notes.append(f"modification time {item.file.mtime} (a year outside 1 to 9999)")
    hashes: list[Node] = [
        {
            "@id": ids("Hash", f"{key}/{algorithm}"),
            "@type": "uco-types:Hash",
            "uco-types:hashMethod": HASH_METHODS[algorithm],
            "uco-types:hashValue": {"@type": "xsd:hexBinary", "@value": value},
        }
        for algorithm, value in item.file.digests.items()
        if algorithm in HASH_METHODS
    ]
    # Note: UCO checks every Hash's hashMethod against HashNameVocab, which
    # has no BLAKE3 (an sh:Info result: case_validate does not conform), so
    # such a digest is said in the File's description instead.
    notes.extend(
        f"{algorithm.upper()} digest {value} (no Hash: UCO's HashNameVocab has no such method)"
        for algorithm, value in item.file.digests.items()
        if algorithm not in HASH_METHODS
    )
    content: Node = {
        "@id": ids("ContentDataFacet", key),
        "@type": "uco-observable:ContentDataFacet",
        "uco-observable:hash": hashes,
    }
    if item.file.size is not None:
        content["uco-observable:sizeInBytes"] = item.file.size
    node: Node = {
        "@id": ids("File", key),
        "@type": "uco-observable:File",
        "uco-core:hasFacet": [facet, content],
    }
    if not is_exact(path):
        notes.insert(0, f"exact path bytes (base64): {b64(path)}")
    if notes:
        node["uco-core:description"] = "; ".join(notes)
    return node


def _statement(item: MatchItem) -> str:
    parts = []
    for hit in item.hits:
        entry = hit.entry
        meta = ", ".join(
            f"{key} {entry[key]!r}" for key in ("id", "name", "label") if entry.get(key) is not None
        )
        differ = (
            f"; the entry gives another {', '.join(a.upper() for a in hit.differ)}"
            if hit.differ
            else ""
        )
        parts.append(
            f"{hit.algorithm.upper()} matched {hit.role} list {hit.list_name!r}"
            + (f" (entry {meta}{differ})" if meta or differ else "")
        )
    return "; ".join(parts)


def _error_statement(error: ErrorItem) -> str:
    path = error.path
    exact = "" if is_exact(path) else f" (exact path bytes, base64: {b64(path)})"
    errno = f", errno {error.errno}" if error.errno is not None else ""
    detail = f": {error.detail}" if error.detail else ""
    return f"could not be read ({error.reason}{errno}{detail}): {display_name(path)}{exact}"


def _summary(data: ReportData) -> str:
    """The outcome of the scan: its status, its counts and what a reader must know."""
    n = {name: data.count(name) for name in _SUMMARY_COUNTS}
    counts = ", ".join(f"{name} {value}" for name, value in n.items() if value is not None)
    notes = [f"the scan noted: {n}" for n in data.notes]
    return "; ".join([f"scan status {data.status}", counts, *data.caveats(), *notes])


_SUMMARY_COUNTS = ("entries", "files", "notable", "known", "unknown", "skipped", "errors")


def _segment(runs: tuple[RunInfo, ...], seq: int) -> int:
    """Index of the run whose segment holds record `seq` (the last run before it)."""
    index = 0
    for i, run in enumerate(runs):
        if run.seq < seq:
            index = i
    return index


def graph(data: ReportData) -> Iterator[Node]:
    """The JSON-LD @graph of the report, node by node (the matches read once, as they come)."""
    ids = _Ids(data.log_sha256)
    nodes: list[Node] = []
    warning = data.verification.warning()
    if warning is not None:
        nodes.append(
            {
                "@id": ids("Annotation", "verification"),
                "@type": "uco-core:Annotation",
                "uco-core:statement": warning,
                "uco-core:object": [{"@id": ids("Investigation", "case")}],
            }
        )
    tool = ids("Tool", data.generator_version)
    version = data.run.tool_version if data.run else data.generator_version
    nodes.append(
        {
            "@id": tool,
            "@type": "uco-tool:AnalyticTool",
            "uco-core:name": "matcher",
            "uco-tool:version": version,
        }
    )
    people: dict[str, str] = {}
    for run in data.runs:
        if run.examiner not in people:
            people[run.examiner] = ids("Person", run.examiner)
            nodes.append(
                {
                    "@id": people[run.examiner],
                    "@type": "uco-identity:Person",
                    "uco-core:name": run.examiner,
                }
            )
    yield from nodes
    nodes.clear()
    objects: list[list[Node]] = [[] for _ in data.runs]
    results: list[list[Node]] = [[] for _ in data.runs]
    match_key = _RecordKeys()
    for item in data.matches:
        key = match_key(item.seq)
        file_node = _file(item, key, ids)
        yield file_node
        note = ids("Annotation", key)
        yield {
            "@id": note,
            "@type": "uco-core:Annotation",
            "uco-core:object": [{"@id": file_node["@id"]}],
            "uco-core:statement": _statement(item),
        }
        if data.runs:
            segment = _segment(data.runs, item.seq)
            objects[segment].append({"@id": file_node["@id"]})
            results[segment].append({"@id": note})
    case = ids("Investigation", "case")
    error_key = _RecordKeys()
    for error in data.errors:
        note = ids("Annotation", f"error/{error_key(error.seq)}")
        yield {
            "@id": note,
            "@type": "uco-core:Annotation",
            "uco-core:object": [{"@id": case}],
            "uco-core:statement": _error_statement(error),
        }
        if data.runs:
            results[_segment(data.runs, error.seq)].append({"@id": note})
    actions: list[Node] = []
    run_key = _RecordKeys()
    for i, run in enumerate(data.runs):
        lists = "lists: " + (
            ", ".join(
                f"{x.name} ({x.role}, {x.format}, source SHA-256 {x.source_sha256})"
                for x in run.lists
            )
            or "none"
        )
        origin = run.rematch_of
        what = (
            f"matcher rematch of log {origin.log} (head {origin.head}) and its inventory "
            f"{origin.inventory} (SHA-256 {origin.inventory_sha256}), no evidence read; {lists}"
            if origin
            else f"matcher scan; {lists}"
        )
        action: Node = {
            "@id": ids("InvestigativeAction", run_key(run.seq)),
            "@type": "case-investigation:InvestigativeAction",
            "uco-core:name": "hash-set lookup"
            + (" (resumed)" if run.resume else "")
            + (" (re-match)" if origin else ""),
            "uco-core:description": f"{warning}; {what}" if warning else what,
            "uco-action:startTime": _dt(run.time),
            "uco-action:performer": {"@id": people[run.examiner]},
            "uco-action:instrument": {"@id": tool},
        }
        end = data.runs[i + 1].time if i + 1 < len(data.runs) else data.ended
        if end:
            action["uco-action:endTime"] = _dt(end)
        if objects[i]:
            action["uco-action:object"] = objects[i]
        if results[i]:
            action["uco-action:result"] = results[i]
        actions.append(action)
    nodes.extend(actions)
    first = data.run
    investigation: Node = {
        "@id": ids("Investigation", "case"),
        "@type": "case-investigation:Investigation",
        "uco-core:name": first.case if first else "unknown case",
        "case-investigation:investigationForm": "case",
        "uco-core:object": [{"@id": a["@id"]} for a in actions] or [{"@id": tool}],
    }
    if first is not None and first.authority:
        auth = ids("Authorization", first.authority)
        nodes.append(
            {
                "@id": auth,
                "@type": "case-investigation:Authorization",
                "uco-core:name": first.authority,
            }
        )
        investigation["case-investigation:relevantAuthorization"] = [{"@id": auth}]
    nodes.append(investigation)
    nodes.append(
        {
            "@id": ids("Annotation", "log"),
            "@type": "uco-core:Annotation",
            "uco-core:object": [{"@id": case}],
            "uco-core:statement": f"the matcher log {display_text(data.log)} "
            f"(SHA-256 {data.log_sha256}): {data.verification.outcome()}",
        }
    )
    nodes.append(
        {
            "@id": ids("Annotation", "summary"),
            "@type": "uco-core:Annotation",
            "uco-core:object": [{"@id": case}],
            "uco-core:statement": _summary(data),
        }
    )
    yield from nodes


class CaseReportWriter:
    """CASE/UCO 1.x JSON-LD (case_validate conforms)."""

    NAME = "case"
    DESCRIPTION = "CASE/UCO JSON-LD (case_validate)"
    NEWLINE = "\n"

    def write(self, data: ReportData, stream: TextIO) -> None:
        """Write the JSON-LD document, node by node.

        The output is what json.dump({"@context": ..., "@graph": [...]},
        indent=2) writes, without holding the graph.
        """
        write_json(stream, {"@context": CONTEXT, "@graph": []}, {"@graph": graph(data)})


registry.register(CaseReportWriter())
