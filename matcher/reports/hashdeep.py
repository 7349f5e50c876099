"""hashdeep file format 1.0 inventory (`matcher hash --format hashdeep`).

Written as hashdeep 4.4 writes it, so `hashdeep -a -k FILE` audits a tree
against it: the `%%%% HASHDEEP-1.0` banner, the column line (size, the
chosen digests in hashdeep's fixed order md5, sha1, sha256, filename), the
three `##` comment lines (the command after `## $ `, or `## # ` when run as
root, as hashdeep writes it), then `size,digest...,name` records, unquoted.

The format has no escaping, so a name containing LF or CR cannot be written
(it would split the record): such an entry is refused and reported, never
written mangled. Names that are not UTF-8 are written as their raw bytes,
as hashdeep itself does (the stream uses surrogateescape).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TextIO

from matcher.reports import registry
from matcher.reports.model import FileEntry
from matcher.reports.text import display_text

BANNER = "%%%% HASHDEEP-1.0"
COLUMNS = ("md5", "sha1", "sha256")


class _HashdeepSink:
    def __init__(self, stream: TextIO, algorithms: Sequence[str]):
        self.out = stream
        self.columns = [a for a in COLUMNS if a in algorithms]

    def add(self, entry: FileEntry) -> str | None:
        if b"\n" in entry.path or b"\r" in entry.path:
            return "the hashdeep format cannot carry a name containing a line break"
        name = entry.path.decode("utf-8", "surrogateescape")
        digests = ",".join(entry.digests[a] for a in self.columns)
        self.out.write(f"{entry.size},{digests},{name}\n")
        return None

    def finish(self) -> None:
        return None


class HashdeepInventoryWriter:
    """hashdeep 1.0 inventory with the digests chosen (md5, sha1, sha256)."""

    NAME = "hashdeep"
    DESCRIPTION = "hashdeep file format 1.0 (hashdeep -a -k audits it)"

    def required(self, algorithms: Sequence[str]) -> str | None:
        """hashdeep has columns for md5, sha1 and sha256 (and tiger/whirlpool) only."""
        extra = [a for a in algorithms if a not in COLUMNS]
        if extra:
            return f"the hashdeep format has no column for {', '.join(extra)}"
        if not algorithms:
            return "the hashdeep format needs at least one of md5, sha1, sha256"
        return None

    def open(
        self, stream: TextIO, algorithms: Sequence[str], command: Sequence[str], cwd: str
    ) -> _HashdeepSink:
        """Write the banner, the column line and the comment lines."""
        sink = _HashdeepSink(stream, algorithms)
        stream.write(f"{BANNER}\n%%%% size,{','.join(sink.columns)},filename\n")
        stream.write(f"## Invoked from: {display_text(cwd)}\n")
        # Note: hashdeep's prompt is a shell's: `#` when run as root, `$` otherwise.
        prompt = "#" if os.geteuid() == 0 else "$"
        stream.write(f"## {prompt} {display_text(' '.join(command))}\n## \n")
        return sink


registry.register_inventory(HashdeepInventoryWriter())
