"""Reads iLook v3/v4 hash sets (header-driven CSV); refuses the undocumented v1 layout."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from matcher import digests
from matcher.errors import FormatError
from matcher.formats import csv_rows
from matcher.formats import registry
from matcher.formats.base import OnInvalid
from matcher.formats.base import TextReader
from matcher.formats.base import byte_count
from matcher.formats.gnu_sum import excerpt
from matcher.models import HashRecord

# Note that md5deep (src/files.cpp) reads iLook v3/v4 by position: MD5 is
# column 1 (V3Hash/V4Hash), SHA-1 column 2, SHA-256 column 6, the name column 3.
# Here the same columns are found by name.
_DIGEST_COLUMNS = {
    "v3hash": "md5",
    "v4hash": "md5",
    "hashsha1": "sha1",
    "hashsha256": "sha256",
    "hashsha512": "sha512",
}
# Note that HashSHA384 is not among them: matcher neither stores nor computes
# SHA-384, so that column is read past like the time columns.
_FIRST_COLUMNS = ("v3hash", "v4hash")
_SIZE = re.compile(r"\d{1,20}")
_V1_MESSAGE = (
    "an iLook v1 hash set (V1Hash,HashType,...): matcher does not read this layout, since "
    "no published description says what its HashType values mean; export the set as "
    "iLook v3/v4, or as CSV with an md5 column"
)


@dataclasses.dataclass(frozen=True)
class _Layout:
    """Where each wanted column sits, from the header row."""

    width: int
    digests: tuple[tuple[int, str], ...]
    file_name: int | None
    file_path: int | None
    size: int | None


def _layout(cells: list[str]) -> _Layout:
    titles = csv_rows.titles(cells)
    if titles[:1] == ["v1hash"]:
        raise csv_rows.HeaderError(_V1_MESSAGE)
    if titles[:1] not in (["v3hash"], ["v4hash"]):
        raise csv_rows.HeaderError(
            "not an iLook hash set: the header row must start with V3Hash or V4Hash, got "
            f"{excerpt(csv_rows.verbatim(','.join(cells)))}"
        )
    found = tuple((i, _DIGEST_COLUMNS[t]) for i, t in enumerate(titles) if t in _DIGEST_COLUMNS)
    return _Layout(
        width=len(titles),
        digests=found,
        file_name=titles.index("filename") if "filename" in titles else None,
        file_path=titles.index("filepath") if "filepath" in titles else None,
        size=titles.index("filesize") if "filesize" in titles else None,
    )


def _record(row: list[str], layout: _Layout, number: int) -> HashRecord:
    if len(row) != layout.width:
        raise FormatError(f"expected {layout.width} fields as in the header row, got {len(row)}")
    found: dict[str, bytes] = {}
    for index, algorithm in layout.digests:
        cell = row[index].strip()
        if not cell:
            continue
        if not cell.isascii():
            raise FormatError(
                f"the {algorithm} field is not hex: {excerpt(csv_rows.verbatim(cell))}"
            )
        try:
            found[algorithm] = digests.parse_hex(cell, algorithm)
        except ValueError as exc:
            raise FormatError(str(exc)) from exc
    if not found:
        raise FormatError("the row has no MD5, SHA-1, SHA-256 or SHA-512 digest")
    size: int | None = None
    if layout.size is not None and row[layout.size].strip():
        text = row[layout.size].strip()
        if not text.isascii() or _SIZE.fullmatch(text) is None:
            raise FormatError(f"FileSize is not a whole number: {excerpt(csv_rows.verbatim(text))}")
        size = byte_count(text)
    folder = row[layout.file_path] if layout.file_path is not None else ""
    name = row[layout.file_name] if layout.file_name is not None else ""
    return HashRecord(
        digests=found, size=size, name=csv_rows.joined_name(folder, name), line=number
    )


class IlookReader(TextReader):
    """Reads iLook v3 and v4 hash sets: CSV whose header starts `V3Hash` or `V4Hash`.

    Columns are found by name: `V3Hash`/`V4Hash` (MD5), `HashSHA1`,
    `HashSHA256` and `HashSHA512`; `HashSHA384` is read past (matcher has no
    SHA-384). `FilePath` and `FileName` are joined into the name, `FileSize`
    is the size; v4's time columns are ignored. Empty hash cells are fine when
    another hash column of the row has a digest. A row whose field count
    differs from the header's is malformed: with unquoted fields there is no
    telling which field moved.
    """

    NAME = "ilook"
    DESCRIPTION = "iLook v3/v4 hash set (CSV: V3Hash/V4Hash = MD5, HashSHA1, HashSHA256...)"

    def sniff(self, head: bytes, path: Path | None = None) -> bool:
        titles = csv_rows.header_titles(head)
        return titles is not None and titles[:1] in (["v3hash"], ["v4hash"])

    def parse(
        self, stream: BinaryIO, source: str = "<input>", on_invalid: OnInvalid = None
    ) -> Iterator[HashRecord]:
        """Yield one record per row after the header row.

        Raises:
            FormatError: for a header row that does not start with V3Hash or
                V4Hash (always); for a malformed row unless `on_invalid` takes it.
        """
        yield from csv_rows.records(
            stream,
            source,
            on_invalid,
            _layout,
            _record,
            "an iLook hash set starts with its header row",
        )

    def metadata(self, path: Path) -> dict[str, str]:
        """The iLook layout version ("3" or "4"), from the header row."""
        titles = csv_rows.header_titles(registry.read_head(path))
        if titles and titles[0] in _FIRST_COLUMNS:
            return {"ilook_version": titles[0][1]}
        return {}


class IlookV1Refusal:
    """Recognises an iLook v1 set (`V1Hash,HashType,...`) and refuses it."""

    NAME = "ilook-v1"
    DESCRIPTION = "iLook v1 hash set: layout not documented, refused"

    def refuse(self, head: bytes, path: Path | None = None) -> str | None:
        titles = csv_rows.header_titles(head)
        return _V1_MESSAGE if titles is not None and titles[:1] == ["v1hash"] else None


registry.register(IlookReader())
registry.register_refusal(IlookV1Refusal())
