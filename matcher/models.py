"""Plain records passed between layers: hash-list entries, evidence entries, outcomes."""

from __future__ import annotations

import array
import bisect
import dataclasses
import enum
from collections.abc import Iterator
from collections.abc import Mapping
from collections.abc import Set
from pathlib import Path
from typing import Protocol

ROLES = ("notable", "known")
# What a list entry may carry besides its digests, in the order an import batch row gives them.
ENTRY_FIELDS = ("size", "name", "ident", "label")


class SizeSet(Set[int]):
    """A set of byte sizes kept as one sorted array, answering `in` by bisection.

    A store's notable lists can hold millions of distinct sizes; as a Python
    set they would cost some 60 bytes each and a long build at every scan,
    where the array is read straight from the store's saved copy.
    """

    __slots__ = ("_sizes", "_small")

    # Up to this many sizes, `in` asks a frozenset instead (about 60 bytes a
    # size, some 8 MB at most): one hash probe, where bisection builds an int
    # per step (2 µs for every file of a --candidates-only scan).
    SMALL = 1 << 17

    def __init__(self, sorted_sizes: array.array[int]):
        self._sizes = sorted_sizes
        self._small = frozenset(sorted_sizes) if len(sorted_sizes) <= self.SMALL else None

    @classmethod
    def of(cls, sizes: Iterator[int] | set[int] | list[int]) -> SizeSet:
        """From sizes in any order, with repeats."""
        return cls(array.array("q", sorted(set(sizes))))

    def __contains__(self, size: object) -> bool:
        if self._small is not None:
            return size in self._small
        sizes = self._sizes
        i = bisect.bisect_left(sizes, size)  # type: ignore[call-overload]
        return bool(i < len(sizes) and sizes[i] == size)

    def __iter__(self) -> Iterator[int]:
        return iter(self._sizes)

    def __len__(self) -> int:
        return len(self._sizes)

    def tobytes(self) -> bytes:
        """The sorted array's bytes (int64, native order), as the store keeps them."""
        return self._sizes.tobytes()


@dataclasses.dataclass(frozen=True)
class HashRecord:
    """One entry of a supplied hash list, metadata kept verbatim.

    `digests` maps canonical algorithm names to raw digest bytes; one line of a
    list may carry several (hashdeep: md5 and sha256). `name` is the list's own
    file name: text when it decodes as UTF-8, else the raw bytes. `ident` and
    `label` are the supplier's id and label (e.g. a VICS Category) exactly as
    given; matcher never invents either.
    """

    digests: Mapping[str, bytes]
    size: int | None = None
    name: str | bytes | None = None
    ident: str | None = None
    label: str | None = None
    line: int | None = None


class Verdict(enum.StrEnum):
    """What a hashed file turned out to be."""

    NOTABLE = "notable"
    KNOWN = "known"
    UNKNOWN = "unknown"


class Skip(enum.StrEnum):
    """Why an entry under an evidence root was not hashed (never "clean")."""

    SYMLINK = "symlink"
    FIFO = "fifo"
    SOCKET = "socket"
    DEVICE = "device"
    EXCLUDED = "excluded"
    TOO_LARGE = "too-large"
    NOT_CANDIDATE = "not-candidate"
    OTHER_FILESYSTEM = "other-filesystem"
    FS_METADATA = "fs-metadata"
    DELETED = "deleted"  # in an image, without --deleted (or its content is gone)
    NO_FILESYSTEM = "no-filesystem"  # an image partition TSK cannot read
    ENCRYPTED = "encrypted"  # an encrypted archive member
    TOO_DEEP = "too-deep"  # an archive nested deeper than --max-depth
    TOO_MANY_MEMBERS = "too-many-members"  # archive limits (zip bombs)
    EXPANDED_TOO_LARGE = "expanded-too-large"
    RATIO_TOO_HIGH = "ratio-too-high"
    # Content this installation cannot open (7z without the `archives` extra);
    # the detail names what to install.
    UNSUPPORTED = "unsupported"


class Failure(enum.StrEnum):
    """Why an entry could not be hashed (an error: the run is incomplete)."""

    VANISHED = "vanished"
    CHANGED = "changed"
    UNREADABLE = "unreadable"
    IO_ERROR = "io-error"
    WALK = "walk-error"


# Note: FileTask and EntryOutcome are made once per evidence entry, in the
# scan's main process, which is the bottleneck on a tree of small files: as
# frozen dataclasses each cost 2-5 µs to build, as slotted ones about 0.5 µs.
# They are not frozen for that reason only; no code changes one once built.
@dataclasses.dataclass(slots=True)
class FileTask:
    """A regular file the walk found, to be hashed: what the walk saw of it."""

    path: bytes
    size: int
    mtime_ns: int
    dev: int
    ino: int
    kind: str = "file"
    # Set by sources other than folders (disk images, archives): picklable
    # data that the source's chunk reader needs to find the content again.
    # None means a plain file opened by path.
    locator: tuple[object, ...] | None = None
    # Hard links in images: the path of the first name of the same content.
    # Equal to `path` on that first name; the scan hashes it once and
    # reports the outcome under every later name that points to it.
    link: bytes | None = None
    # The owner of a file in a folder (O_NOATIME is granted to its owner
    # only, without CAP_FOWNER); None for a file the scan does not open itself.
    uid: int | None = None


@dataclasses.dataclass(slots=True)
class EntryOutcome:
    """The end state of one evidence entry: exactly one of digests, skip or failure."""

    path: bytes
    size: int | None
    mtime_ns: int | None
    digests: Mapping[str, bytes] | None = None
    skip: Skip | None = None
    failure: Failure | None = None
    errno: int | None = None
    detail: str | None = None
    kind: str = "file"

    @classmethod
    def hashed(
        cls, path: bytes, size: int, mtime_ns: int, digests: Mapping[str, bytes], kind: str
    ) -> EntryOutcome:
        """A hashed outcome (every hashed file of a scan is built here)."""
        return cls(path, size, mtime_ns, digests, kind=kind)

    @classmethod
    def skipped(
        cls, path: bytes, size: int | None, mtime_ns: int | None, skip: Skip, kind: str = "file"
    ) -> EntryOutcome:
        """A skipped outcome."""
        return cls(path, size, mtime_ns, None, skip, kind=kind)  # fmt: skip

    def __post_init__(self) -> None:
        # Note: spelled out (no generator): every file of a scan passes here.
        if (self.digests is not None) + (self.skip is not None) + (self.failure is not None) != 1:
            raise ValueError("an outcome is exactly one of hashed, skipped or failed")


# The list metadata key (and `run` record field) of the entries an import
# skipped as invalid (--skip-invalid).
SKIPPED_INVALID = "skipped_invalid"


@dataclasses.dataclass(frozen=True)
class ListInfo:
    """One imported hash list, as the store records it."""

    id: int
    name: str
    role: str
    format: str
    source_sha256: str
    entries: int
    imported: str
    counts: Mapping[str, int] = dataclasses.field(default_factory=dict)
    metadata: Mapping[str, str] = dataclasses.field(default_factory=dict)
    # Entries whose digest is that of an empty file: flagged, never a match.
    zero_length: int = 0

    def as_log_dict(self) -> dict[str, object]:
        """The fields a `run` record names for every list used."""
        fields: dict[str, object] = {
            "name": self.name,
            "role": self.role,
            "format": self.format,
            "source_sha256": self.source_sha256,
            "entries": self.entries,
        }
        if self.zero_length:
            fields["zero_length_entries"] = self.zero_length
        skipped = self.metadata.get(SKIPPED_INVALID)
        if skipped is not None and str(skipped).isdigit():
            # Note: entries of the supplier's list that were never imported
            # (--skip-invalid): a file one of them names is never matched.
            fields[SKIPPED_INVALID] = int(skipped)
        return fields


@dataclasses.dataclass(frozen=True)
class NewList:
    """What the store records of a list being imported, besides its entries."""

    name: str
    role: str
    format: str
    source_sha256: str
    source_path: str
    metadata: Mapping[str, str]


class SourceDigest(Protocol):
    """A list source's SHA-256, computed on the side: started once, its result asked once."""

    def start(self) -> None:
        """Begin computing (in the background)."""

    def result(self) -> str:
        """The lowercase hex SHA-256, once computed; raises what the computation raised."""


@dataclasses.dataclass(frozen=True)
class SqlListSource:
    """A list that is itself an SQLite database, copied into the store by SQL.

    `select` reads the database attached as schema `src` and yields one row
    per entry: `(*hex_digests, size, name, ident, label)`, one hex-text column
    per name in `algorithms`. No row becomes a Python object on the way.

    A source may also give that SELECT in parts (`select` is then
    `SELECT {digests}, {columns} {clauses}`): the store decodes the digests
    inside this very query rather than in a subquery around it, which would
    cost SQLite a copy of every row. `ordered_by` names an algorithm whose
    digests the rows come in byte order of, so the store need not sort them.
    `halves`, when given, are two more `clauses` (FROM onwards) that split
    the walk in two: each gives its rows in the walk's order, and the first
    half's rows all come before the second's, so that walked one after the
    other they give exactly the rows of `clauses`. The store may walk them
    at the same time, in two processes. A source whose walk reads an index
    (split or not) should also give `source_rows` (a SELECT of the number of
    rows the walk reads, counted apart from the walk's index) and
    `rows_walked` (an aggregate of each entry's rows, e.g. count(*)): a
    damaged index reads fewer rows in silence (a seek of a half lands
    elsewhere: a damaged RDS imported 5,907 of 9,003 digests, exit 0; a leaf
    written over by its neighbour is still a valid B-tree to one walk). The
    store compares the two.
    Note that upper-case (or lower-case) hex text sorts as its raw bytes do;
    should a database mix cases, the rows are still right, only slower to insert.
    """

    path: Path
    select: str
    algorithms: tuple[str, ...]
    digests: tuple[str, ...] = ()
    columns: str = ""
    clauses: str = ""
    ordered_by: str | None = None
    halves: tuple[str, str] | None = None
    source_rows: str | None = None
    rows_walked: str | None = None


@dataclasses.dataclass(frozen=True)
class ListHit:
    """An entry of one list that a file's digest matched."""

    list_name: str
    role: str
    algorithm: str
    size: int | None
    name: str | bytes | None
    ident: str | None
    label: str | None
    # The store's id of the entry (one entry is hit once per digest it shares with the file).
    entry_id: int | None = None


def path_fields(path: bytes, key: str = "path") -> dict[str, str]:
    """Lossless JSON fields for a path: text, plus base64 bytes when not UTF-8.

    `{key}` is always present for people to read (undecodable bytes shown as
    U+FFFD); `{key}_b64` carries the exact bytes whenever the text alone would
    lose them.
    """
    import base64

    try:
        return {key: path.decode("utf-8")}
    except UnicodeDecodeError:
        return {
            key: path.decode("utf-8", "replace"),
            f"{key}_b64": base64.b64encode(path).decode("ascii"),
        }


def fields_path(fields: Mapping[str, object], key: str = "path") -> bytes:
    """Inverse of `path_fields`: the exact path bytes."""
    import base64

    raw = fields.get(f"{key}_b64")
    if isinstance(raw, str):
        return base64.b64decode(raw)
    text = fields[key]
    if not isinstance(text, str):
        raise ValueError(f"{key} is not text")
    return text.encode("utf-8")


def storable_text(text: str) -> str:
    """`text` as valid UTF-8: bytes that were not (surrogates) become `\\xNN` escapes.

    Python hands over names and arguments that are not UTF-8 with surrogates
    (os.fsdecode); neither SQLite text nor a UTF-8 log line can hold them.
    Evidence paths never go through here (they keep their bytes in
    `path_fields`); list names, arguments and notes do.
    """
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        pass
    try:
        return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    except UnicodeEncodeError:  # a surrogate that no undecodable byte made
        return text.encode("utf-8", "backslashreplace").decode("utf-8")


def storable(value: object) -> object:
    """`value` (JSON-shaped) with every string made `storable_text`."""
    if isinstance(value, str):
        return storable_text(value)
    if isinstance(value, dict):
        return {storable_text(str(k)): storable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [storable(v) for v in value]
    return value
