"""Registry of report writers (from a log) and inventory writers (from `matcher hash`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol
from typing import TextIO

from matcher.errors import registered
from matcher.reports.model import FileEntry
from matcher.reports.model import ReportData


class ReportWriter(Protocol):
    """Writes one report format from a `ReportData`."""

    NAME: str
    DESCRIPTION: str
    # The newline translation the output stream needs ("" for csv, which writes CRLF itself).
    NEWLINE: str

    def write(self, data: ReportData, stream: TextIO) -> None:
        """Write the whole report to `stream`."""
        ...


class InventorySink(Protocol):
    """One inventory being written, entry by entry."""

    def add(self, entry: FileEntry) -> str | None:
        """Write one entry; return why it cannot be written (and write nothing), or None."""
        ...

    def finish(self) -> None:
        """Write whatever closes the document."""
        ...


class InventoryWriter(Protocol):
    """Writes an inventory (every file and its digests) in one format."""

    NAME: str
    DESCRIPTION: str

    def required(self, algorithms: Sequence[str]) -> str | None:
        """Why `algorithms` cannot be written in this format, or None when they can."""
        ...

    def open(
        self, stream: TextIO, algorithms: Sequence[str], command: Sequence[str], cwd: str
    ) -> InventorySink:
        """Start an inventory on `stream` (header lines first)."""
        ...


_REPORTS: dict[str, ReportWriter] = {}
_INVENTORIES: dict[str, InventoryWriter] = {}


def register(writer: ReportWriter) -> None:
    """Add a report writer. A duplicate NAME is a programmer error (KeyError)."""
    if writer.NAME in _REPORTS:
        raise KeyError(f"a report writer named {writer.NAME!r} is already registered")
    _REPORTS[writer.NAME] = writer


def register_inventory(writer: InventoryWriter) -> None:
    """Add an inventory writer. A duplicate NAME is a programmer error (KeyError)."""
    if writer.NAME in _INVENTORIES:
        raise KeyError(f"an inventory writer named {writer.NAME!r} is already registered")
    _INVENTORIES[writer.NAME] = writer


def get(name: str) -> ReportWriter:
    """The report writer called `name`.

    Raises:
        UsageError: there is none (naming the formats there are).
    """
    return registered(_REPORTS, name, "report format")


def get_inventory(name: str) -> InventoryWriter:
    """The inventory writer called `name`.

    Raises:
        UsageError: there is none (naming the formats there are).
    """
    return registered(_INVENTORIES, name, "inventory format", inventory_names())


def names() -> list[str]:
    """Report format names, in the order they were registered."""
    return list(_REPORTS)


def inventory_names() -> list[str]:
    """Inventory format names, in the order they were registered."""
    return list(_INVENTORIES)
