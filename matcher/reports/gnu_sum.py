"""GNU coreutils `md5sum`/`sha256sum` inventories, escaped as coreutils 9 escapes them.

`<hex>  <name>` per line. A name containing a backslash, LF or CR is written
with `\\\\`, `\\n`, `\\r` and the line starts with a backslash, so `md5sum -c`
and `sha256sum -c` read every name back exactly. Names that are not UTF-8
are written as their raw bytes, as coreutils does. A file named `-` is
written `./-` (`-` stands for stdin in check mode).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TextIO

from matcher.reports import registry
from matcher.reports.model import FileEntry

_ESCAPE = str.maketrans({"\\": "\\\\", "\n": "\\n", "\r": "\\r"})


def line(digest: str, path: bytes) -> str:
    """One `*sum` line (with its newline) for `path`, escaped when it must be."""
    # Note: `*sum -c` reads a line naming `-` from stdin, so a file named `-`
    # (given as an argument) is written `./-`, as one hashes it with coreutils.
    name = "./-" if path == b"-" else path.decode("utf-8", "surrogateescape")
    if any(c in name for c in "\\\n\r"):
        return f"\\{digest}  {name.translate(_ESCAPE)}\n"
    return f"{digest}  {name}\n"


class _SumSink:
    def __init__(self, stream: TextIO, algorithm: str):
        self.out = stream
        self.algorithm = algorithm

    def add(self, entry: FileEntry) -> str | None:
        self.out.write(line(entry.digests[self.algorithm], entry.path))
        return None

    def finish(self) -> None:
        return None


class GnuSumInventoryWriter:
    """`<algorithm>sum` output for one algorithm."""

    DESCRIPTION = "GNU coreutils *sum lines (checkable with *sum -c)"

    def __init__(self, algorithm: str):
        self.algorithm = algorithm
        self.NAME = f"{algorithm}sum"

    def required(self, algorithms: Sequence[str]) -> str | None:
        """The one digest this format writes must be among those computed."""
        if self.algorithm not in algorithms:
            return f"--format {self.NAME} needs --algorithms to include {self.algorithm}"
        return None

    def open(
        self, stream: TextIO, algorithms: Sequence[str], command: Sequence[str], cwd: str
    ) -> _SumSink:
        """Start the list (no header: *sum files have none)."""
        return _SumSink(stream, self.algorithm)


registry.register_inventory(GnuSumInventoryWriter("md5"))
registry.register_inventory(GnuSumInventoryWriter("sha256"))
