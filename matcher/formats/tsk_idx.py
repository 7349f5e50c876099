"""Recognises The Sleuth Kit's hfind index files (.idx, .idx2) and refuses them."""

from __future__ import annotations

import re
from pathlib import Path

from matcher.formats import registry
from matcher.formats.gnu_sum import head_lines

# Note that hfind writes two header lines before the sorted entries
# (tsk/hashdb/binsrch_index.cpp): 41 zeros then "|<database type>", and 40
# zeros and a 1 then "|<database name>", the list it indexed.
_TYPE_LINE = re.compile(rb"0{41}\|(.*)")
_NAME_LINE = re.compile(rb"0{40}1\|(.*)")
# `.idx2` is a binary bucket table over an .idx: 0xFF fill and 8-byte offsets.
_IDX2_SUFFIXES = ("-md5.idx2", "-sha1.idx2")


def _source_name(head: bytes) -> str | None:
    lines = head_lines(head)
    if len(lines) < 2:
        return None
    match = _NAME_LINE.fullmatch(lines[1])
    if match is None or not match.group(1).strip():
        return None
    return match.group(1).strip().decode("utf-8", "replace")


class TskIdxRefusal:
    """Refuses hfind's derived indexes: the list they were built from is what to import.

    An `.idx` holds only the upper-case digest and a byte offset into its
    source list; names, sizes and the other digests stay in that list. The
    second line names it, and the refusal passes that name on.
    """

    NAME = "tsk-idx"
    DESCRIPTION = "The Sleuth Kit hfind index (.idx, .idx2): derived, refused"

    def refuse(self, head: bytes, path: Path | None = None) -> str | None:
        lines = head_lines(head)
        if lines and _TYPE_LINE.fullmatch(lines[0]):
            name = _source_name(head)
            built_from = name if name is not None else "its name is not in the index"
            return f"a derived hfind index; import the list it was built from ({built_from})"
        if path is not None and path.name.lower().endswith(_IDX2_SUFFIXES):
            # Note that an .idx2 carries no name; its .idx beside it does.
            idx = path.with_name(path.name[: -len("2")])
            name = None
            if idx.is_file():
                name = _source_name(registry.read_head(idx))
            built_from = name if name is not None else f"named on line 2 of {idx.name}"
            return (
                "a derived hfind index (the .idx2 bucket table); import the list it was "
                f"built from ({built_from})"
            )
        return None


registry.register_refusal(TskIdxRefusal())
