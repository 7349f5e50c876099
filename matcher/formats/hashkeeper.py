"""Reads HashKeeper hash sets (.hsh), with their set description (.hke) as metadata."""

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

# Note that TSK (tsk/hashdb/hashkeeper.c) checks these first five column names.
HSH_SIGNATURE = ("file_id", "hashset_id", "file_name", "directory", "hash")
HKE_SIGNATURE = ("hashset_id", "name", "vendor", "package", "version")
# .hke columns kept as list metadata, under these keys. The field is spelled
# `authenicated_flag` in real files (typo included); both spellings are read.
_HKE_FIELDS = {
    "hashset_id": "hashset_id",
    "name": "set_name",
    "vendor": "vendor",
    "package": "package",
    "version": "version",
    "authenicated_flag": "authenticated_flag",
    "authenticated_flag": "authenticated_flag",
    "notable_flag": "notable_flag",
    "initials": "initials",
    "num_of_files": "num_of_files",
    "description": "description",
    "date_loaded": "date_loaded",
}
# A set description is a few lines; more rows than this is not one.
_HKE_MAX_ROWS = 10_000
_SIZE = re.compile(r"\d{1,20}")
_FLAG_ROLES = {"0": "known", "1": "notable"}
# As for plain lists: a list that does not say what it is defaults to notable.
DEFAULT_ROLE = "notable"


@dataclasses.dataclass(frozen=True)
class _Layout:
    """Where each wanted column of a .hsh sits, from its header row."""

    width: int
    hash: int
    file_name: int | None
    directory: int | None
    size: int | None
    ident: int | None
    hashset: int | None


def _index(titles: list[str], name: str) -> int | None:
    return titles.index(name) if name in titles else None


def _layout(cells: list[str]) -> _Layout:
    titles = csv_rows.titles(cells)
    if tuple(titles[: len(HKE_SIGNATURE)]) == HKE_SIGNATURE:
        raise csv_rows.HeaderError(hke_reason(None, None))
    if "hash" not in titles:
        raise csv_rows.HeaderError(
            'not a HashKeeper .hsh: the header row has no "hash" column '
            f"(expected {','.join(HSH_SIGNATURE)},...)"
        )
    return _Layout(
        width=len(titles),
        hash=titles.index("hash"),
        file_name=_index(titles, "file_name"),
        directory=_index(titles, "directory"),
        size=_index(titles, "file_size"),
        ident=_index(titles, "file_id"),
        hashset=_index(titles, "hashset_id"),
    )


def _record(row: list[str], layout: _Layout, number: int) -> HashRecord:
    if len(row) != layout.width:
        raise FormatError(f"expected {layout.width} fields as in the header row, got {len(row)}")
    cell = row[layout.hash].strip()
    if not cell:
        raise FormatError("the hash field is empty")
    if not cell.isascii():
        raise FormatError(f"the hash is not hex: {excerpt(csv_rows.verbatim(cell))}")
    try:
        # Note that HashKeeper sets hold MD5 only; Autopsy rejects any other length too.
        md5 = digests.parse_hex(cell, "md5")
    except ValueError as exc:
        raise FormatError(str(exc)) from exc
    size: int | None = None
    if layout.size is not None and row[layout.size].strip():
        text = row[layout.size].strip()
        if not text.isascii() or _SIZE.fullmatch(text) is None:
            raise FormatError(
                f"file_size is not a whole number: {excerpt(csv_rows.verbatim(text))}"
            )
        size = byte_count(text)
    directory = row[layout.directory] if layout.directory is not None else ""
    file_name = row[layout.file_name] if layout.file_name is not None else ""
    return HashRecord(
        digests={"md5": md5},
        size=size,
        name=csv_rows.joined_name(directory, file_name),
        ident=csv_rows.text(row[layout.ident]) if layout.ident is not None else None,
        line=number,
    )


def sibling(path: Path, suffix: str) -> Path | None:
    """The file beside `path` with the same stem and `suffix` (any case), if there is one."""
    for candidate in (suffix.lower(), suffix.upper()):
        other = path.with_suffix(candidate)
        if other != path and other.is_file():
            return other
    return None


def hke_reason(path: Path | None, first: dict[str, str] | None) -> str:
    """The refusal of a .hke file: what it is, and what to import instead.

    Args:
        path: the .hke file, to name its .hsh when one sits beside it.
        first: its first set description (from `read_hke`), when readable.
    """
    hsh = sibling(path, ".hsh") if path is not None else None
    target = f"the set's .hsh ({hsh.name})" if hsh is not None else "the set's .hsh"
    details = []
    if first is not None and "set_name" in first:
        details.append(f"set {first['set_name']!r}")
    if first is not None and "notable_flag" in first:
        meaning = {"0": ": known-good", "1": ": notable"}.get(first["notable_flag"], "")
        details.append(f"notable_flag {first['notable_flag']}{meaning}")
    shown = f" ({', '.join(details)})" if details else ""
    return (
        f"a HashKeeper set description (.hke), not a hash list: import {target} instead; "
        f"this description{shown} is then kept as the list's metadata, and the role is "
        f"what --role says ({DEFAULT_ROLE} by default)"
    )


def read_hke(path: Path) -> list[dict[str, str]]:
    """The set descriptions of a .hke file, one dict per row, keyed as in the metadata.

    Raises:
        FormatError: when the file is not a .hke (header), a row does not
            fit the header, or it has more than a few thousand rows.
    """
    source = str(path)
    found: list[dict[str, str]] = []
    titles: list[str] | None = None
    with path.open("rb") as stream:
        for number, row in csv_rows.rows(stream):
            if isinstance(row, str):
                raise FormatError(row, source, number)
            if titles is None:
                titles = csv_rows.titles(row)
                if tuple(titles[: len(HKE_SIGNATURE)]) != HKE_SIGNATURE:
                    raise FormatError(
                        f"not a HashKeeper set description: the header must start "
                        f"{','.join(HKE_SIGNATURE)}",
                        source,
                        number,
                    )
                continue
            if len(row) != len(titles):
                raise FormatError(
                    f"expected {len(titles)} fields as in the header row, got {len(row)}",
                    source,
                    number,
                )
            if len(found) >= _HKE_MAX_ROWS:
                raise FormatError(f"more than {_HKE_MAX_ROWS} set descriptions", source, number)
            entry: dict[str, str] = {}
            for title, cell in zip(titles, row, strict=True):
                value = csv_rows.text(cell)
                if title in _HKE_FIELDS and value is not None:
                    entry[_HKE_FIELDS[title]] = value
            found.append(entry)
    return found


def _first_hashset_id(path: Path) -> str | None:
    """The hashset_id of the first entry of a .hsh, or None when there is none."""
    with path.open("rb") as stream:
        column: int | None = None
        for _number, row in csv_rows.rows(stream):
            if isinstance(row, str):
                return None
            if column is None:
                try:
                    column = _layout(row).hashset
                except FormatError:
                    return None
                if column is None:
                    return None
                continue
            return csv_rows.text(row[column]) if len(row) > column else None
    return None


class HashkeeperReader(TextReader):
    """Reads HashKeeper `.hsh` hash sets: header-driven RFC 4180 CSV of MD5s.

    Columns are found by name: `hash` (MD5, required), `directory` and
    `file_name` (joined with a backslash into the name), `file_size`, and
    `file_id` (kept as the entry's id). Other columns are ignored.

    The set description (`.hke` with the same stem, beside the `.hsh`) is
    read into the list's metadata when its `hashset_id` is the one of the
    list's first entry: set name, vendor, package, version, notable_flag...
    The role stays the format's default (notable) or what --role says: the
    notable_flag is recorded, with the role it suggests, but never decides.
    """

    NAME = "hashkeeper"
    DESCRIPTION = "HashKeeper hash set (.hsh, MD5); the .hke beside it is read as metadata"
    DEFAULT_ROLE = DEFAULT_ROLE

    def sniff(self, head: bytes, path: Path | None = None) -> bool:
        titles = csv_rows.header_titles(head)
        return titles is not None and tuple(titles[: len(HSH_SIGNATURE)]) == HSH_SIGNATURE

    def read(self, path: Path, on_invalid: OnInvalid = None) -> Iterator[HashRecord]:
        """Yield every entry of the .hsh at `path` (a .hke is refused, naming its .hsh).

        Raises:
            FormatError: as `parse`.
        """
        reason = HkeRefusal().refuse(registry.read_head(path), path)
        if reason is not None:
            raise FormatError(reason, source=str(path), line=1)
        yield from super().read(path, on_invalid)

    def parse(
        self, stream: BinaryIO, source: str = "<input>", on_invalid: OnInvalid = None
    ) -> Iterator[HashRecord]:
        """Yield one record per row after the header row.

        Raises:
            FormatError: for a header row without a `hash` column, or a .hke
                (always); for a malformed row unless `on_invalid` takes it.
        """
        yield from csv_rows.records(
            stream,
            source,
            on_invalid,
            _layout,
            _record,
            "a HashKeeper .hsh starts with its header row",
        )

    def metadata(self, path: Path) -> dict[str, str]:
        """The list's hashset_id and, from the .hke beside it, the set's description.

        A .hke that is missing, unreadable or about another set is not used;
        the reason is kept under `set_description_ignored`.
        """
        info: dict[str, str] = {}
        hashset_id = _first_hashset_id(path)
        if hashset_id is not None:
            info["hashset_id"] = hashset_id
        hke = sibling(path, ".hke")
        if hke is None:
            return info
        try:
            descriptions = read_hke(hke)
        except (FormatError, OSError) as exc:
            info["set_description_ignored"] = f"{hke.name}: {exc}"
            return info
        if hashset_id is None:
            info["set_description_ignored"] = (
                f"the list has no hashset_id to match {hke.name} against"
            )
            return info
        match = [d for d in descriptions if d.get("hashset_id") == hashset_id]
        if not match:
            info["set_description_ignored"] = (
                f"{hke.name} describes no set with this list's hashset_id {hashset_id}"
            )
            return info
        info.update(match[0])
        info["set_description_file"] = hke.name
        suggested = _FLAG_ROLES.get(match[0].get("notable_flag", ""))
        if suggested is not None:
            info["suggested_role"] = suggested
        return info


class HkeRefusal:
    """Recognises a HashKeeper `.hke` set description and refuses it, naming the .hsh."""

    NAME = "hashkeeper-hke"
    DESCRIPTION = "HashKeeper set description (.hke): import the .hsh"

    def refuse(self, head: bytes, path: Path | None = None) -> str | None:
        titles = csv_rows.header_titles(head)
        if titles is None or tuple(titles[: len(HKE_SIGNATURE)]) != HKE_SIGNATURE:
            return None
        first: dict[str, str] | None = None
        if path is not None:
            try:
                descriptions = read_hke(path)
            except (FormatError, OSError):
                descriptions = []
            first = descriptions[0] if descriptions else None
        return hke_reason(path, first)


registry.register(HashkeeperReader())
registry.register_refusal(HkeRefusal())
