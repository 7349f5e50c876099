"""Job: import one hash list file into the store (detect, stream, one transaction)."""

from __future__ import annotations

import dataclasses
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import cast

from matcher import formats  # noqa: F401  (registers every reader)
from matcher.digests import file_sha256
from matcher.errors import FormatError
from matcher.errors import StoreError
from matcher.errors import UsageError
from matcher.errors import os_error_detail
from matcher.errors import refuse_own_limit
from matcher.formats import registry
from matcher.formats.base import ZIP_MAGIC
from matcher.formats.base import HashListReader
from matcher.formats.compressed import PackedListRefusal
from matcher.formats.gnu_sum import name_hint
from matcher.formats.nsrl_rds3 import version_key
from matcher.models import ENTRY_FIELDS
from matcher.models import SKIPPED_INVALID
from matcher.models import HashRecord
from matcher.models import ListInfo
from matcher.models import NewList
from matcher.models import storable_text
from matcher.store import AlreadyImported
from matcher.store import HashStore
from matcher.store import Row
from matcher.workers import usable_cores

BATCH_ROWS = 20_000
MAX_REPORTED_INVALID = 10
# The metadata key of what the reader said of a list as it read it (see _import_list).
IMPORT_NOTES = "import_notes"
# A list copied by SQL (an RDS) of at least this size has its SHA-256 computed
# while the store writes (see _digest_alongside): on a 10M-row RDS the hash of
# its 4 GB was 3.3 s of a 36 s import, done before anything else.
DIGEST_ALONGSIDE_MIN_BYTES = 64 << 20
# A store batch: its algorithms, the entry fields its rows give, and the rows.
_Batch = tuple[tuple[str, ...], tuple[str, ...], list[Row]]


@dataclasses.dataclass
class ImportResult:
    """What an import did."""

    info: ListInfo
    already_imported: bool = False
    skipped_invalid: int = 0
    invalid_examples: list[str] = dataclasses.field(default_factory=list)
    replaced: str | None = None
    # Entries NIST flags malicious (NSRL RDS 2.x SpecialCode "M") in a list
    # imported as known: a file matching one is counted known, so it is said.
    flagged_malicious: int = 0
    # What a replacement changed that the examiner may not have meant (see
    # replacement_notes): an older release, another NSRL build set.
    notes: list[str] = dataclasses.field(default_factory=list)


def replacement_notes(old: ListInfo, new: ListInfo) -> list[str]:
    """What replacing `old` by `new` changes beyond a newer release of the same source.

    Note: --replace is meant for a newer version of the same source (NSRL
    2026.09 for 2026.06). An older release, or another NSRL build set
    (Android for Modern), went in without a word: the known count drops,
    and files known before count as unknown.
    """
    notes: list[str] = []
    before, after = old.metadata.get("version"), new.metadata.get("version")
    if before and after and version_key(after) < version_key(before):
        notes.append(
            f"the list replaced, {old.name!r}, was version {before}: newer than this one ({after})"
        )
    before, after = old.metadata.get("build_set"), new.metadata.get("build_set")
    if before and after and before != after:
        notes.append(
            f"the list replaced, {old.name!r}, was the NSRL build set {before!r}; this one is "
            f"{after!r}: files known from {before!r} alone now count as unknown"
        )
    return notes


# The NSRL formats whose entries carry NIST's SpecialCode as their label.
_SPECIAL_CODE_FORMATS = frozenset({"nsrl-rds2"})
# Formats whose digests' algorithm comes from their length, unless the file's name says.
_BY_LENGTH = frozenset({"plain", "gnu-sum"})


def _with_flags(store: HashStore, result: ImportResult) -> ImportResult:
    """The result, with its known NSRL entries flagged "M" (malicious) counted."""
    info = result.info
    if result.already_imported or info.role != "known" or info.format not in _SPECIAL_CODE_FORMATS:
        return result
    return dataclasses.replace(result, flagged_malicious=store.count_labelled(info.id, "M"))


class BackgroundSha256:
    """A source file's SHA-256 computed on a thread (see HashStore.add_list_sql).

    hashlib lets go of the GIL while it hashes each 1 MiB chunk, so the
    thread runs beside SQLite's own work. `stop()` ends it within a chunk.
    """

    def __init__(self, path: Path):
        self.path = path
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._digest: str | None = None
        self._error: BaseException | None = None

    def start(self) -> None:
        """Begin hashing (once)."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="matcher-source-sha256")
            self._thread.daemon = True
            self._thread.start()

    def _run(self) -> None:
        try:
            self._digest = file_sha256(self.path, self._stopping.is_set)
        except BaseException as exc:  # handed to result(), in the caller's thread
            self._error = exc

    def result(self) -> str:
        """The hex SHA-256 (hashed here if never started); raises what hashing raised."""
        self.start()
        assert self._thread is not None
        self._thread.join()
        if self._error is not None:
            raise self._error
        if self._stopping.is_set() or self._digest is None:
            raise RuntimeError("the SHA-256 of the source was stopped before its end")
        return self._digest

    def stop(self) -> None:
        """Stop hashing, if it is still going, and wait for the thread."""
        self._stopping.set()
        if self._thread is not None:
            self._thread.join()


def _reader_or_none(path: Path, format_name: str | None) -> HashListReader | None:
    """The list's reader, or None where resolving fails.

    Note: used only to choose when to hash the source; the failure is raised
    again by import_list's own resolve_reader, after the already-imported
    check, as before.
    """
    try:
        return resolve_reader(path, format_name)
    except (FormatError, OSError):
        return None


def _check_replaced_role(store: HashStore, replace: str, role: str, format_name: str) -> None:
    """Refuse a replace that would change, by a format's default, what the list is for.

    Note: a notable list replaced by one that defaults to known (an NSRL file
    given the wrong --replace) would turn its matches into known files with
    nothing said; the other way, known files into notable matches. A role
    given with --role is the examiner's own choice, and is not asked about.
    """
    old = store.find_list(name=replace)
    if old is None or old.role == role:
        return  # no such list: the store names that error itself
    raise StoreError(
        f"{replace!r} is a {old.role} list, and this {format_name} list would replace it as "
        f"{role} (its format's default role): a replace keeps what a list is for unless told. "
        f"Pass --role {old.role} to keep it {old.role}, or --role {role} to make it {role}."
    )


def _stored_already(store: HashStore, sha256: str, replace: str | None) -> ListInfo | None:
    """The stored list with this source SHA-256, unless it is the very list replaced.

    Note: a replace by the file of another stored list would hold that file
    twice, perhaps under the other role.
    """
    existing = store.find_list(source_sha256=sha256)
    return None if existing is None or existing.name == replace else existing


def _digest_alongside(
    store: HashStore, path: Path, reader: HashListReader, name: str, replace: str | None
) -> bool:
    """Whether the source's SHA-256 waits until the copy (a large SQL list on 2+ cores).

    Note: this only moves work; the same check decides "already imported",
    before the commit instead of before the copy. A list whose path a stored
    list came from is most likely that list again: it is hashed first, so
    that the answer comes at once. So is one whose list name is taken (by
    a list it does not replace): the answer is then "already imported" if
    it is that list, which the clash of names, checked before a copy, would
    otherwise hide.
    """
    if getattr(reader, "sql_source", None) is None:
        return False
    if name != replace and store.find_list(name=name) is not None:
        return False
    if usable_cores() < 2 or path.stat().st_size < DIGEST_ALONGSIDE_MIN_BYTES:
        return False
    return not store.imported_from(storable_text(str(path)))


def _batches_from_records(records: Iterator[HashRecord]) -> Iterator[_Batch]:
    """Records as store batches: runs of records that carry the same digests and fields.

    Note: a batch leaves out the fields that its records all lack, and holds
    digests as bytearray, so that the store's executemany binds each value
    at once (sqlite3 sends None and bytes through its adapter lookup first,
    about 1 µs each: a one-digest list bound its three empty fields and its
    digest that way, a third of its import time). Batches are runs in the
    list's own order, so entry ids follow the list (the order of a digest's
    hits in a match record).
    """
    rows: list[Row] = []
    shape: tuple[object, ...] = ()
    blob = bytearray
    for record in records:
        digests = record.digests
        algorithms = tuple(digests)
        values = (record.size, record.name, record.ident, record.label)
        this = (algorithms, *[v is None for v in values])
        if this != shape or len(rows) >= BATCH_ROWS:
            if rows:
                yield _batch_of(shape, rows)
            rows, shape = [], this
        rows.append(
            (*[blob(digests[a]) for a in algorithms], *[v for v in values if v is not None])
        )
    if rows:
        yield _batch_of(shape, rows)


def _batch_of(shape: tuple[object, ...], rows: list[Row]) -> _Batch:
    """`(algorithms, fields, rows)` for rows of one shape (algorithms, then a None flag a field)."""
    algorithms = cast(tuple[str, ...], shape[0])
    fields = tuple(f for f, absent in zip(ENTRY_FIELDS, shape[1:], strict=True) if not absent)
    return algorithms, fields, rows


def resolve_reader(path: Path, format_name: str | None) -> HashListReader:
    """The reader named `format_name`, or the one that recognises the file.

    Raises:
        FormatError: when detection finds no reader or several.
    """
    if format_name:
        reader = registry.get(format_name)
        if getattr(reader, "READS_ZIP", False):
            return reader
        # Note: a stored zip or a tar holds its member's text as it is: read as
        # the format named, their bytes made a list (with --skip-invalid; reviews).
        head = registry.read_head(path)
        packed = (
            f"a zip archive: the {reader.NAME} reader does not read zips; unpack the list "
            "and import that file"
            if head[:4] == ZIP_MAGIC
            else PackedListRefusal().refuse(head)
        )
        if packed is not None:
            raise FormatError(packed, source=str(path))
        return reader
    return registry.detect(path)


def default_role(reader: HashListReader, path: Path) -> str:
    """The role a list takes without --role: its reader's, or what the file's own name says."""
    by_name = getattr(reader, "default_role", None)
    return str(by_name(path)) if by_name is not None else reader.DEFAULT_ROLE


def import_list(
    store: HashStore,
    path: Path,
    *,
    format_name: str | None = None,
    name: str | None = None,
    role: str | None = None,
    skip_invalid: bool = False,
    replace: str | None = None,
    source_sha256: str | None = None,
) -> ImportResult:
    """Import the list at `path` into `store`, or do nothing if it is already there.

    Args:
        format_name: a registered format name; detected from content when None.
        name: the list's name; defaults to the file name.
        role: "notable" or "known"; defaults to the format's usual role.
        skip_invalid: keep the good lines and count malformed ones instead of failing.
        replace: the name of a list this one replaces, in the same transaction.
        source_sha256: the file's SHA-256 when the caller has computed it already.

    Raises:
        FormatError: a malformed line (without skip_invalid) or an unknown format;
            the store is unchanged.
        StoreError: a name clash or a database failure; the store is unchanged.
        UsageError: the list could not be read (an I/O error, or matcher's own
            limit on open files or memory: OutOfResources); the store is unchanged.
    """
    old = store.find_list(name=replace) if replace is not None else None
    try:
        result = _import_list(
            store, path, format_name, name, role, skip_invalid, replace, source_sha256
        )
    except OSError as exc:
        # Note: raised out of the store's transaction, so the import is rolled back.
        # It ended in a traceback called a fault of matcher (EMFILE under `ulimit
        # -n 9` in a scan's --list, or EIO from a failing disk).
        refuse_own_limit(exc, os.fsencode(path))
        raise UsageError(
            f"Cannot read the list {path}: {os_error_detail(exc)}; nothing was imported."
        ) from exc
    if old is not None and not result.already_imported:
        result.notes.extend(replacement_notes(old, result.info))
    if not result.already_imported:
        result.notes.extend(length_notes(result.info, path))
        result.notes.extend(nsrl_name_notes(result.info, path))
        if role is None:
            result.notes.extend(suggested_role_notes(result.info))
    return result


def suggested_role_notes(info: ListInfo) -> list[str]:
    """A list whose own description suggests another role than the default it was given.

    Note: a HashKeeper `.hke` notable_flag of 0 or an EnCase set type `Known`
    never sets the role (a mislabelled flag must not hide notable files), but
    the import said nothing of it: a known-good set became notable in silence,
    and every stock file in it a notable match (a probe).
    """
    suggested = info.metadata.get("suggested_role")
    if suggested is None or suggested == info.role:
        return []
    said = [
        f"{key} {info.metadata[key]!r}"
        for key in ("notable_flag", "set_type")
        if key in info.metadata
    ]
    why = f" ({', '.join(said)})" if said else ""
    return [
        f"its set description suggests role {suggested}{why}, but such a flag never sets the "
        f"role: it was imported as {info.role}, its format's default. If the set is {suggested}, "
        f"import it again with --role {suggested} --replace {info.name!r}"
    ]


def nsrl_name_notes(info: ListInfo, path: Path) -> list[str]:
    """A list named as NSRL's NSRLFile.txt, not read as one (no ProductCode column).

    Note: tools that cut NSRL down keep its name and drop columns; read as a
    CSV list it is notable by default, and every stock file then a notable
    match (a validator; FORMATS.md §2: NSRL-style CSVs come with columns missing).
    """
    if path.name.lower() != "nsrlfile.txt" or info.format != "csv":
        return []
    return [
        f"its name is NSRL's, but it lacks the ProductCode column of an NSRL RDS 2.x "
        f"NSRLFile.txt: it was read as a CSV list, {info.role}. If it is NSRL's (known "
        "software), import it with --role known, or the full NSRLFile.txt"
    ]


def length_notes(info: ListInfo, path: Path) -> list[str]:
    """What an import took by length alone that another algorithm shares.

    Note: a b3sum list under a name that says nothing (case42_hashes.txt)
    was imported as SHA-256, with no word: its entries then never match.
    FORMATS.md (§4.4, §8.1): 64 hex digits are SHA-256, BLAKE3 or SHA3-256.
    """
    if info.format not in _BY_LENGTH or not info.counts.get("sha256"):
        return []
    if name_hint(str(path)) is not None:
        return []  # the name said which
    return [
        f"its {info.counts['sha256']:,} digest(s) of 64 hex digits were read as SHA-256, as "
        "their length usually means; BLAKE3 and SHA3-256 digests have that length too. If "
        "they are BLAKE3, remove this list (matcher remove NAME) and import the file under "
        "a name that says so (hashes.b3, or one holding 'b3sum' or 'blake3')"
    ]


def _import_list(
    store: HashStore,
    path: Path,
    format_name: str | None,
    name: str | None,
    role: str | None,
    skip_invalid: bool,
    replace: str | None,
    source_sha256: str | None,
) -> ImportResult:
    """import_list's body; an OSError reading the list escapes it."""
    if not path.is_file():
        # Note: is_file() follows a symlink; a FIFO or a device (/dev/zero) is not a list.
        what = (
            "no such list file"
            if not path.exists()
            else "not a regular file (a FIFO, a device or a folder)"
        )
        raise FormatError(what, source=str(path))
    # Note: the list's SHA-256 (what "already imported" compares, and what the
    # examiner cites for the list's provenance) and its entries come from two
    # reads of the file. A list still being copied, or rewritten in place,
    # gave the SHA-256 of bytes that never held the entries imported. The
    # file must be the same, untouched, from before the first read to after
    # the last: checked inside the store's transaction, so a change rolls
    # the import back.
    seen = _identity(path)

    def unchanged() -> None:
        if _identity(path) != seen:
            raise FormatError(
                "the list changed while it was imported (its size, modification or change "
                "time, or the file itself moved): nothing was imported; import it once it is "
                "complete and nothing writes to it",
                source=str(path),
            )

    alongside: BackgroundSha256 | None = None
    early = _reader_or_none(path, format_name) if source_sha256 is None else None
    if early is not None and replace is not None and role is None:
        # Note: before the file's SHA-256 (seconds for a large list); below for the others.
        _check_replaced_role(store, replace, default_role(early, path), early.NAME)
    if early is not None and _digest_alongside(
        store, path, early, storable_text(name or path.name), replace
    ):
        alongside = BackgroundSha256(path)
    if alongside is None:
        source_sha256 = source_sha256 or file_sha256(path)
        existing = _stored_already(store, source_sha256, replace)
        if existing is not None:
            return _already_imported(path, existing, role, replace)
    reader = early if early is not None else resolve_reader(path, format_name)
    result_invalid: list[FormatError] = []

    def on_invalid(error: FormatError) -> None:
        result_invalid.append(error)

    new = NewList(
        name=storable_text(name or path.name),
        role=role or default_role(reader, path),
        format=reader.NAME,
        source_sha256=source_sha256 or "",  # "": recorded at the end (alongside)
        source_path=storable_text(str(path)),
        metadata=reader.metadata(path),
    )
    if early is None and replace is not None and role is None:
        _check_replaced_role(store, replace, new.role, reader.NAME)  # checked above otherwise
    sql_source = getattr(reader, "sql_source", None)
    if sql_source is not None:
        try:
            copied = store.add_list_sql(
                new,
                sql_source(path),
                replace=replace,
                source_digest=alongside,
                before_commit=unchanged,
            )
        except AlreadyImported as known:
            return _already_imported(path, known.existing, role, replace)
        except BaseException:
            if alongside is not None:
                alongside.stop()  # e.g. a bad row, Ctrl-C: no thread reads on
            raise
        if copied is not None:
            return ImportResult(info=copied, replaced=replace)
    if alongside is not None:
        # The copy by SQL gave way to a read row by row: the check comes first after all.
        new = dataclasses.replace(new, source_sha256=alongside.result())
        existing = _stored_already(store, new.source_sha256, replace)
        if existing is not None:
            return _already_imported(path, existing, role, replace)
    callback = on_invalid if skip_invalid else None
    read_batches = getattr(reader, "read_batches", None)
    batches: Iterator[_Batch]
    if read_batches is not None:
        batches = ((b.algorithms, b.fields, b.rows) for b in read_batches(path, callback))
    else:
        batches = _batches_from_records(reader.read(path, callback))

    def checked(inner: Iterator[_Batch]) -> Iterator[_Batch]:
        # Note that raising inside the store's transaction rolls the import back:
        # a list with no usable entry is almost always the wrong file.
        total = 0
        for algorithms, fields, rows in inner:
            total += len(rows)
            yield algorithms, fields, rows
        if total == 0 and result_invalid:
            raise FormatError(
                f"every entry was invalid ({len(result_invalid)} skipped); "
                f"first: {result_invalid[0]}",
                source=str(path),
            )
        if total == 0:
            raise FormatError("the list holds no entries", source=str(path))
        unchanged()  # every entry is read: the store commits after this

    # Note: what the reader passed over and says (VICS: digests under names it
    # cannot place; a last line with no line end, whose name may be cut).
    reader_notes = getattr(reader, "import_notes", None)
    said: list[str] = []

    def after_reading() -> dict[str, str]:
        """The list's metadata known once it is read: kept in the store, for `matcher lists`.

        Note: the reader's notes too: printed by the import alone, they were
        lost to whoever looked at the store later.
        """
        found = {SKIPPED_INVALID: str(len(result_invalid))} if result_invalid else {}
        said.extend(reader_notes() if reader_notes is not None else [])
        if said:
            found[IMPORT_NOTES] = " / ".join(said)
        return found

    try:
        info = store.add_list(new, checked(batches), replace=replace, metadata_after=after_reading)
    except AlreadyImported as known:
        # Note: imported by another process between the check above and the write lock.
        return _already_imported(path, known.existing, role, replace)
    result = ImportResult(
        info=info,
        skipped_invalid=len(result_invalid),
        invalid_examples=[str(e) for e in result_invalid[:MAX_REPORTED_INVALID]],
        replaced=replace,
        notes=said,
    )
    return _with_flags(store, result)


def _identity(path: Path) -> tuple[int, ...]:
    """What changes when a file's content changes (or another file takes its name)."""
    st = path.stat()
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def _already_imported(
    path: Path, existing: ListInfo, role: str | None, replace: str | None
) -> ImportResult:
    """The answer for a list whose source is stored already; refused if the role differs.

    Refused too with --replace (of another list): "nothing done" would read
    as done, and doing it would hold the file twice.
    """
    if replace is not None:
        raise UsageError(
            f"Cannot replace {replace!r} with {path}: that file is already imported as the "
            f"{existing.role} list {existing.name!r}. Nothing was changed; replace or remove "
            f"{existing.name!r} instead."
        )
    if role is not None and role != existing.role:
        # Note: "nothing done" would leave a list meant as notable filtered out as known.
        raise UsageError(
            f"{path} is already imported as the {existing.role} list {existing.name!r}; "
            f"to use it as {role}, remove that list first (matcher remove "
            f"{existing.name}), then import it again"
        )
    return ImportResult(info=existing, already_imported=True)


__all__ = ["ImportResult", "StoreError", "file_sha256", "import_list", "resolve_reader"]
