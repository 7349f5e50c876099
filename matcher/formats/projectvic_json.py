"""Reads Project VIC "VICS" JSON hash sets (1.1-1.3 and 2.0), streaming."""

from __future__ import annotations

import collections
import decimal
import io
import json
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from typing import BinaryIO
from typing import cast

import ijson

from matcher import digests
from matcher.errors import FormatError
from matcher.formats import registry
from matcher.formats.base import OnInvalid
from matcher.formats.base import RecordBatch
from matcher.formats.base import TextReader
from matcher.formats.base import byte_count
from matcher.models import HashRecord

BOM = b"\xef\xbb\xbf"
ALGORITHMS: tuple[str, ...] = ("md5", "sha1", "sha256")
BATCH_ROWS = 20_000
# sniff() and metadata() look for the envelope in this much of the file.
HEAD_BYTES = 64 * 1024
ENVELOPE_KEYS = ("@odata.context", "odata.metadata")  # 2.0, 1.x
# The Media fields matcher imports; every other field is skipped unbuilt.
_WANTED = frozenset(
    {"MD5", "SHA1", "SHA256", "MediaSize", "MediaID", "Category", "AlternativeHashes"}
)
# Note that a wanted field needs a few levels (AlternativeHashes[].HashValue);
# anything deeper is junk, and json.dumps() of it could overflow the stack.
MAX_FIELD_DEPTH = 16
_OPEN = frozenset({"start_map", "start_array"})
_CLOSE = frozenset({"end_map", "end_array"})
_HEX_LENGTHS = {alg: size * 2 for alg, size in digests.DIGEST_SIZES.items()}
_MODEL = re.compile(r"DataModels/(\d+(?:\.\d+)*)\.xml(?:/([^/$#]+))?")
_SETS = ("Media", "Cases")
# The data model versions whose envelopes FORMATS.md records (6.1).
MODEL_VERSIONS = ("1.1", "1.2", "1.3", "2.0")
# (md5, sha1, sha256, size, ident, label): a batch row, the fields of _FIELDS (VICS has no names).
_Digest = bytes | bytearray | None
_Row = tuple[_Digest, _Digest, _Digest, int | None, str | None, str | None]
# A Media's digests of other algorithms than ALGORITHMS (SHA-512 or BLAKE3 in
# its AlternativeHashes), in DIGEST_SIZES order: their row puts them after
# the three (see _row), in a batch of its own shape.
_Extra = tuple[tuple[str, ...], tuple[bytes, ...]]
_FIELDS = ("size", "ident", "label")
_Events = Iterator[tuple[str, Any]]


class _NotVics(Exception):
    """The JSON is valid so far but is not shaped like a VICS list."""


# Note: ijson's C parser (yajl2_c) kills the whole process (a segmentation
# fault) on an integer longer than Python's int-conversion limit (4,300 digits
# by default). So no run of that many digits ever reaches the parser: a
# hostile list is refused with its byte offset instead. No field of a VICS
# list is anywhere near that long (sizes have at most 19 digits, hashes are hex).
def _digit_run_limit() -> int:
    configured = sys.get_int_max_str_digits()
    return min(configured, _DIGIT_RUN_CAP) if configured else _DIGIT_RUN_CAP


_DIGIT_RUN_CAP = 4300


class _LongDigitRun(Exception):
    """A run of more digits than the JSON parser can take, at a byte offset."""

    def __init__(self, offset: int, limit: int):
        super().__init__(offset, limit)
        self.offset = offset
        self.limit = limit


# Every digit becomes "0" and every other byte "x": runs are then found with
# bytes.find at memory speed (a regex would retry at each digit of a hex digest).
_DIGITS_AS_ZEROS = bytes(0x30 if 0x30 <= b <= 0x39 else 0x78 for b in range(256))


def _long_digit_run(data: bytes | memoryview, limit: int) -> int | None:
    """The offset of a run of more than `limit` digits in `data`, if any."""
    found = bytes(data).translate(_DIGITS_AS_ZEROS).find(b"0" * (limit + 1))
    return None if found < 0 else found


def _head_envelope(head: bytes) -> tuple[str | None, bool]:
    """The `@odata.context`/`odata.metadata` value among the head's top-level keys,
    and whether the head ran out before it.

    The second value is True only when the head is a JSON object still open
    where the head ends (the envelope may come later), not when the object
    closed or the JSON is invalid.
    """
    pending = False
    if _long_digit_run(head, _digit_run_limit()) is not None:
        return None, False  # the parser cannot take it; reading the file names the offset
    # Note: basic_parse, not parse: the C parser builds every event of a read
    # block before handing out the first, and parse() gives each a prefix as
    # long as its depth; 64 KiB of nested arrays then took gigabytes.
    depth = 0
    try:
        for event, value in ijson.basic_parse(io.BytesIO(head.removeprefix(BOM))):
            if depth == 0 and event != "start_map":
                return None, False  # the JSON is not an object
            if pending:
                return (value if event == "string" else None), False
            if event in _OPEN:
                depth += 1
            elif event in _CLOSE:
                depth -= 1
                if depth == 0:
                    return None, False  # the top-level object ended without an envelope
            elif depth == 1 and event == "map_key":
                pending = value in ENVELOPE_KEYS
    except ijson.IncompleteJSONError as exc:
        # Note: the C parser says "premature EOF", the Python one "Incomplete".
        text = str(exc)
        return None, depth >= 1 and ("premature EOF" in text or "Incomplete" in text)
    except (ijson.JSONError, ValueError, ArithmeticError):
        pass
    return None, False


def _find_envelope(head: bytes, path: Path | None) -> str | None:
    """The envelope in the head, or written after a `value` longer than the head."""
    envelope, cut_short = _head_envelope(head[:HEAD_BYTES])
    if envelope is None and cut_short and path is not None and len(head) >= HEAD_BYTES:
        envelope = _tail_envelope(path)
    return envelope


# An envelope key and its string value, as they stand in the file (escapes included).
_TAIL_ENVELOPE = re.compile(
    rb'"(?:@odata\.context|odata\.metadata)"\s*:\s*("(?:[^"\\]|\\.){0,4096}")'
)


def _tail_envelope(path: Path) -> str | None:
    """The envelope value written after the data: the last one in the file's last HEAD_BYTES."""
    try:
        with path.open("rb") as stream:
            return _stream_tail_envelope(stream)
    except OSError:
        return None


def _stream_tail_envelope(stream: BinaryIO) -> str | None:
    """As _tail_envelope, of an open stream, whose position is kept (None: not seekable)."""
    try:
        if not stream.seekable():
            return None
        here = stream.tell()
        try:
            stream.seek(max(0, stream.seek(0, io.SEEK_END) - HEAD_BYTES))
            tail = stream.read(HEAD_BYTES)
        finally:
            stream.seek(here)
        found = list(_TAIL_ENVELOPE.finditer(tail))
        value = json.loads(found[-1].group(1)) if found else None
    except (OSError, ValueError):
        return None
    return value if isinstance(value, str) else None


def _envelope_kind(envelope: str) -> str | None:
    for kind in _SETS:
        if envelope.endswith("#" + kind):
            return kind
    return None


def _rest(events: _Events) -> Iterator[tuple[int, str, Any]]:
    """The events of the rest of an open value, up to its close, each with its depth.

    Depth 1 is directly inside the value; an object opened there, and its
    keys, are at depth 2.
    """
    depth = 1
    for event, value in events:
        if event in _OPEN:
            depth += 1
        elif event in _CLOSE:
            depth -= 1
            if depth == 0:
                return
        yield depth, event, value


def _skip(event: str, events: _Events) -> None:
    """Consume the rest of a value whose first event was `event`, building nothing."""
    if event in _OPEN:
        for _ in _rest(events):
            pass


def _build(event: str, value: Any, events: _Events, depth: int = 1) -> Any:
    """The JSON value whose first event was `(event, value)`, at most MAX_FIELD_DEPTH deep.

    Note: recursive, one call per container (a wanted field holds one or
    two levels); the depth check comes before any descent, so junk nesting
    is refused at MAX_FIELD_DEPTH, never followed.
    """
    if event == "start_map":
        if depth > MAX_FIELD_DEPTH:
            raise _NotVics(f"a Media field is nested more than {MAX_FIELD_DEPTH} levels")
        built: dict[str, Any] = {}
        for event, key in events:
            if event == "end_map":
                return built
            event, value = next(events)
            built[key] = _build(event, value, events, depth + 1) if event in _OPEN else value
    elif event == "start_array":
        if depth > MAX_FIELD_DEPTH:
            raise _NotVics(f"a Media field is nested more than {MAX_FIELD_DEPTH} levels")
        items: list[Any] = []
        for event, value in events:
            if event == "end_array":
                return items
            items.append(_build(event, value, events, depth + 1) if event in _OPEN else value)
    return value


_Media = tuple[dict[str, Any] | None, int | None, int]
# HashName spellings that suppliers write, resolved without canonical_name().
_USUAL_NAMES = {"SHA256": "sha256", "SHA-256": "sha256"}
# An algorithm named with a word around it ("SHA256Hash", "HashSHA256", "sha256sum",
# "SHA-256 (hex)"), compacted; only these shapes: a name saying more ("HMAC-SHA256",
# "MD5 (first 1 MiB)", "SHA-512/256", "SHA1Base32") is another value than the digest.
_NAME_TOKENS = ("sha512", "sha256", "sha1", "md5", "blake3")
_NAME_WORDS = ("", "hash", "sum", "hex", "digest", "value")
_WORDED_NAMES = {
    shape: token
    for token in _NAME_TOKENS
    for word in _NAME_WORDS
    for shape in (token + word, word + token)
}
# HashNames (compacted) of hashes matcher does not read that suppliers are
# known to give, passed over unsaid: perceptual hashes (PDQ is 64 hex digits).
_PERCEPTUAL = frozenset({"photodna", "pdq", "pdqhash", "tlsh", "ssdeep", "phash", "dhash"})
_DIGEST_HEX = re.compile(r"[0-9A-Fa-f]{32}|[0-9A-Fa-f]{40}|[0-9A-Fa-f]{64}|[0-9A-Fa-f]{128}")


def _named_algorithm(name: str, entry: dict[str, Any], passed: list[str] | None) -> str | None:
    """The algorithm an AlternativeHashes item's HashName names; None for none matcher reads.

    Note: a SHA-256 under "SHA256Hash" or "sha256sum" was passed over in
    silence (the match then resting on the MD5 alone). A name that names
    none is passed over, as before (another hash: XXH128, BLAKE2b-256,
    HMAC-SHA256), and added to `passed` when its value is hex of a
    digest's length (it may be one under a name matcher cannot place),
    which the import then says.
    """
    known = _USUAL_NAMES.get(name) or digests.canonical_name(name)
    if known is not None:
        return known
    # Note: blanks and punctuation only; a letter of any script stays ("MD5
    # (заголовок)", a header's MD5, was read as the file's).
    compact = re.sub(r"[\W_]", "", name.lower())
    worded = _WORDED_NAMES.get(compact)
    if worded is not None:
        return worded
    value = _hash_value(entry)
    if (
        passed is not None
        and compact not in _PERCEPTUAL
        and isinstance(value, str)
        and _DIGEST_HEX.fullmatch(value.strip())
    ):
        passed.append(name[:40])
    return None


# Where _fields notes a key that names a digest in another spelling ("sha1",
# "Md5"): VICS names are exact, so it would be skipped as an unknown key, its
# digest passed over in silence; the Media is refused instead (see _row).
_MISSPELT = "_misspelt"
# Keys up to this long are worth compacting to compare (SHA-256, Alternative_Hashes).
_LONGEST_SPELLING = 24
# Where _fields notes a key that names Category, MediaSize or MediaID in another
# spelling ("category", "mediaSize"): skipped as an unknown key, the label (or
# size, or id) was dropped in silence; the Media is refused instead, as for a
# digest (see _row). Not a digest: a Case with such a key is not a Media.
_MISNAMED = "_misnamed"
_OTHER_FIELDS = {"category": "Category", "mediasize": "MediaSize", "mediaid": "MediaID"}
# Their first three letters in any case: other keys beginning with C or M
# (Comments, Created, Modified, MimeType) are passed at once.
_OTHER_STARTS = frozenset({"cat", "med"})
_DIGEST_INITIALS = frozenset("mMsSaA")
# The fields that make a value item a Media rather than a Case without a Media array.
_HASH_FIELDS = frozenset({"MD5", "SHA1", "SHA256", "AlternativeHashes", _MISSPELT})
# Where _take notes the fields a Media gives twice with two values (never a
# wanted key, so no JSON key lands there).
_REPEATED = "_repeated"
# Where _fields notes why a Case's media cannot be read (its reason).
_BAD_CASE = "_bad_case"
# Keys that name a Media's digests, compacted (lower case, no blank, "-" or
# "_"): an array of objects with one of them holds media, under whatever key.
_DIGEST_KEYS = frozenset({"md5", "sha1", "sha256", "alternativehashes"})
_KEY_NOISE = re.compile(r"[\s_\-]+")
_JSON_KINDS = {"start_map": "an object", "string": "a string", "boolean": "true or false"}


def _json_kind(event: str) -> str:
    """What a JSON value is, in words, from the parser event that starts it."""
    return _JSON_KINDS.get(event, "a number")


def _value_kind(value: object) -> str:
    """The same for a value already built (its event named by its type)."""
    event = {dict: "start_map", str: "string", bool: "boolean"}.get(type(value), "number")
    return _json_kind(event)


def _misspelt(key: str) -> bool:
    """True for a key that names a Media digest in another spelling (sha1, SHA-1, Md5)."""
    # Note: the first letter first: this runs for every other key of every Media.
    return (
        key[:1] in _DIGEST_INITIALS
        and len(key) <= _LONGEST_SPELLING
        and _KEY_NOISE.sub("", key).lower() in _DIGEST_KEYS
    )


def _misnamed(key: str) -> bool:
    """True for a key that names Category, MediaSize or MediaID in another spelling."""
    # Note: as _misspelt, this runs for every other key of every Media.
    return (
        key[:3].lower() in _OTHER_STARTS
        and len(key) <= _LONGEST_SPELLING
        and _KEY_NOISE.sub("", key).lower() in _OTHER_FIELDS
    )


def _digest_key(events: _Events) -> str | None:
    """Consume the rest of an array, building nothing: the first key of an
    object in it that names a digest, in any case (`md5`, `Sha-1`), if any."""
    named = None
    for depth, event, value in _rest(events):
        if named is None and depth == 2 and event == "map_key":
            if _KEY_NOISE.sub("", value).lower() in _DIGEST_KEYS:
                named = value
    return named


def _fields(events: _Events, kind: str | None, outer: int | None, index: int) -> Iterator[_Media]:
    """Inside an array item: yield it (a Media), or each Media of its Media array (a Case).

    `kind` is the set the envelope names (None when it is not known yet).
    An item with a Media array is a Case wherever it sits; in a #Cases
    list, an item with neither a Media array nor a hash is a Case without
    media, not a bad Media, unless another of its keys holds an array of
    objects with digests (media under `media`, say): that one is refused.
    An item's own digests are never dropped: an item with a Media array and
    a digest of its own is also a Media.
    """
    found: dict[str, Any] = {}
    is_case = False
    elsewhere: tuple[str, str] | None = None  # (a key, a digest key of its objects)
    for event, key in events:
        if event == "end_map":
            break
        event, value = next(events)
        if key == "Media" and outer is None and event != "null":
            if event == "start_array":
                is_case = True
                yield from _items(events, kind, index)
                continue
            # Note: a Case's Media is an array (FORMATS.md 6); one given as an
            # object or a scalar is refused at the Case, never passed over
            # with the media it holds (an object is not taken as one Media:
            # which shape the supplier meant is not for matcher to guess).
            _skip(event, events)
            found[_BAD_CASE] = f"its Media is {_json_kind(event)}, not an array"
        elif event not in _OPEN:
            if key in _WANTED:  # most wanted fields: scalars, taken as they are
                if key in found:
                    _take(found, key, value)
                else:
                    found[key] = value
            elif value not in (None, "") and _misspelt(key):
                found.setdefault(_MISSPELT, key)  # (a null or empty one holds no digest)
            elif value not in (None, "") and _misnamed(key):
                found.setdefault(_MISNAMED, key)
        elif key in _WANTED:
            _take(found, key, _build(event, value, events))
        elif _misspelt(key):
            found.setdefault(_MISSPELT, key)
            _skip(event, events)
        elif _misnamed(key):
            found.setdefault(_MISNAMED, key)
            _skip(event, events)
        elif event == "start_array" and outer is None:
            # Note: streamed, never built; only where media could hide is kept.
            named = _digest_key(events)
            if named is not None and elsewhere is None:
                elsewhere = key, named
        else:
            _skip(event, events)
    if not is_case and elsewhere is not None and not _gives_a_digest(found):
        # Note: a Case's media are its Media array; media under another key
        # ("media") are refused, not taken (which key holds them is not for
        # matcher to guess) nor passed over.
        found.setdefault(
            _BAD_CASE,
            f"it has no Media array, but its {elsewhere[0]!r} is an array of objects with "
            f"digests ({elsewhere[1]!r}): are those its media? A Case's media are read from "
            "its Media array only",
        )
    if (
        (is_case or (kind == "Cases" and outer is None))
        and not _gives_a_digest(found)
        and _BAD_CASE not in found
    ):
        return
    yield found, outer, index


def _gives_a_digest(found: dict[str, Any]) -> bool:
    """True when an item gives a digest field with a value (a Media, or a Case's own digest).

    Note: a serializer that writes every property writes a Case's MD5 and
    SHA1 as null: keyed on the names alone, such a Case with a Media array
    was taken for a Media with no digest, and the whole list refused.
    """
    return any(found.get(key) not in (None, "", []) for key in _HASH_FIELDS)


def _take(found: dict[str, Any], key: str, value: object) -> None:
    """Keep a wanted field; a key given twice must not lose its first value in silence.

    JSON allows a key twice in an object, and a plain parse keeps the last
    value: a first MD5 (or an AlternativeHashes array and its SHA-256) would
    be dropped with nothing said. Two AlternativeHashes arrays are joined
    (their digests must then agree, as within one); any other field given
    twice with two values refuses the Media (see _row).
    """
    if key not in found:
        found[key] = value
    elif key == "AlternativeHashes" and isinstance(value, list):
        before = found[key]
        found[key] = (before if isinstance(before, list) else []) + value
    elif found[key] != value and not (key in _PLAIN_DIGESTS and _same_hex(found[key], value)):
        found.setdefault(_REPEATED, []).append(key)


_PLAIN_DIGESTS = frozenset({"MD5", "SHA1", "SHA256"})


def _same_hex(first: object, second: object) -> bool:
    """True for two texts that differ in letter case only (a digest in upper and lower case)."""
    return isinstance(first, str) and isinstance(second, str) and first.lower() == second.lower()


def _items(events: _Events, kind: str | None, outer: int | None = None) -> Iterator[_Media]:
    """Each element of an array of Media (or Cases) as (Media, Case index, index).

    The Media is None for an element that is not an object.
    """
    index = -1
    for event, _value in events:
        if event == "end_array":
            return
        index += 1
        if event == "start_map":
            yield from _fields(events, kind, outer, index)
        else:
            _skip(event, events)
            yield None, outer, index


def _position(outer: int | None, index: int) -> str:
    """Where a Media sits in the document, as a JSON path."""
    return f"value[{index}]" if outer is None else f"value[{outer}].Media[{index}]"


def _set_of(envelope: object) -> str:
    """The set an envelope value names (Media or Cases); _NotVics for any other envelope.

    FORMATS.md 6.1: match the version number and the #Media/#Cases suffix,
    ignore the rest (the profile, the host).
    """
    if not isinstance(envelope, str):
        raise _NotVics("its envelope is not a string")
    model = _MODEL.search(envelope)
    if "projectvic" not in envelope.lower() or model is None:
        raise _NotVics(f"its envelope {_excerpt(envelope)} names no ProjectVic data model")
    if model.group(1) not in MODEL_VERSIONS:
        raise _NotVics(
            f"its envelope names data model {_excerpt(model.group(1))}; "
            f"matcher reads VICS {', '.join(MODEL_VERSIONS)}"
        )
    kind = _envelope_kind(envelope)
    if kind is None:
        raise _NotVics(f"its envelope {_excerpt(envelope)} names neither #Media nor #Cases")
    return kind


def _excerpt(text: str, limit: int = 120) -> str:
    return repr(text if len(text) <= limit else text[:limit] + "...")


def _media(events: _Events, expected: str | None = None) -> Iterator[_Media]:
    """Every Media object: `value[]` in #Media lists, `value[].Media[]` in #Cases lists.

    The envelope may come after `value` (JSON keys have no order), so
    `expected` is the set named by an envelope found before the parse (in
    the file's head or tail, see _find_envelope); the envelope must still be
    there, name a VICS model and set, and agree with it, wherever it is.
    Without `expected` (an envelope in neither), which of the two a value
    item is shows in the item itself (a Case has a Media array).
    """
    first = next(events, None)
    if first is None or first[0] != "start_map":
        raise _NotVics("the JSON is not an object")
    has_value = False
    kind: str | None = None
    for event, key in events:
        if event == "end_map":
            break
        event, value = next(events)
        if key in ENVELOPE_KEYS:
            if event != "string":
                _skip(event, events)
            named = _set_of(value if event == "string" else None)
            if kind is not None and named != kind:
                raise _NotVics(f"it has two envelopes, naming #{kind} and #{named}")
            if expected is not None and named != expected:
                raise _NotVics(f"its envelope names #{named}, but #{expected} was found first")
            kind = named
        elif key == "value" and event == "start_array":
            has_value = True
            yield from _items(events, kind or expected)
        else:
            _skip(event, events)
    for _event in events:  # let the parser reject trailing garbage
        pass
    if not has_value:
        raise _NotVics('it has no "value" array')
    if kind is None:
        raise _NotVics(f"it has no {' or '.join(repr(k) for k in ENVELOPE_KEYS)} envelope")


class _Replay(io.RawIOBase):
    """A stream that returns the bytes already read, then the rest of `stream`.

    It raises _LongDigitRun before handing the parser a run of digits longer
    than it can take (see _digit_run_limit), across read boundaries too.
    """

    def __init__(self, head: bytes, stream: BinaryIO) -> None:
        super().__init__()
        self._head = memoryview(head)
        self._stream = stream
        self._limit = _digit_run_limit()
        self._offset = 0  # bytes handed out so far
        self._run = 0  # digits at the end of what was handed out

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if self._head:
            count = min(len(buffer), len(self._head))
            data: bytes | memoryview = self._head[:count]
            self._head = self._head[count:]
        else:
            data = self._stream.read(len(buffer))
        self._check(data)
        buffer[: len(data)] = data
        return len(data)

    def _check(self, data: bytes | memoryview) -> None:
        shape = bytes(data).translate(_DIGITS_AS_ZEROS)
        first_other = shape.find(b"x")
        lead = len(shape) if first_other < 0 else first_other
        if self._run + lead > self._limit:
            raise _LongDigitRun(self._offset - self._run, self._limit)
        if first_other < 0:
            self._run += lead
        else:
            inside = shape.find(b"0" * (self._limit + 1))
            if inside >= 0:
                raise _LongDigitRun(self._offset + inside, self._limit)
            self._run = len(shape) - 1 - shape.rfind(b"x")
        self._offset += len(data)


def _tell(stream: BinaryIO) -> str:
    try:
        return f"{stream.tell():,}"
    except (OSError, ValueError):
        return "?"


def _json_reason(exc: BaseException) -> str:
    if isinstance(exc, ArithmeticError):
        return "a number is out of range"
    # Note that yajl messages quote the offending input on later lines; keep the first.
    raw = exc.args[0] if exc.args else type(exc).__name__
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
    return (text.strip().splitlines() or [type(exc).__name__])[0][:80]


def _verbatim(value: object) -> str | None:
    """A supplier's id or label as text, exactly as the JSON gives it."""
    if value is None or type(value) is str:
        return value
    if type(value) is int:
        return str(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, decimal.Decimal)):
        return str(value)
    return json.dumps(value, default=str, separators=(",", ":"))


_NO_VALUE = object()


def _hash_value(entry: dict[str, Any]) -> object:
    """An AlternativeHashes item's HashValue, its key in any case; _NO_VALUE without one."""
    if "HashValue" in entry:
        return entry["HashValue"]
    for key, value in entry.items():
        if isinstance(key, str) and key.lower() == "hashvalue":
            return value
    return _NO_VALUE


def _digest(value: object, algorithm: str, field: str) -> bytes | bytearray | None:
    """The raw digest (a bytearray, which the store binds fastest), None when absent."""
    # Fast path for the usual well-formed value; parse_hex explains any other.
    if type(value) is str and len(value) == _HEX_LENGTHS[algorithm]:
        try:
            raw = bytearray.fromhex(value)
        except ValueError:
            pass
        else:
            if len(raw) * 2 == len(value):  # fromhex skips whitespace
                return raw
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise ValueError(f"{field} is not a hex string: {_verbatim(value)!r:.60}")
    return digests.parse_hex(value, algorithm)


# A JSON number's grammar (RFC 8259 section 6), for sizes given as strings.
_JSON_NUMBER = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?")


def _size(value: object) -> int | None:
    # Fast path: fewer than 19 digits is always a size the store can hold.
    if type(value) is str and len(value) < 19 and value.isdigit() and value.isascii():
        return int(value)
    if type(value) is int and value >= 0:
        return byte_count(value)
    if value is None or value == "":
        return None
    if isinstance(value, str):
        digits = value.strip()
        if digits.isascii() and digits.isdigit():
            return byte_count(digits)
        if _JSON_NUMBER.fullmatch(digits):
            # Note: a numeric string is read as the number it spells ("5.0"
            # as 5.0 is), by the same rule below: refused, the whole list was.
            value = decimal.Decimal(digits)
    # Note that a huge exponent (1E+999999999) must not be expanded into an int.
    if isinstance(value, decimal.Decimal) and value.is_finite() and value.adjusted() < 30:
        if value >= 0 and value == value.to_integral_value():
            return byte_count(int(value))
    raise ValueError(f"MediaSize is not a byte count: {_verbatim(value)!r:.60}")


def _row(media: object, passed: list[str] | None = None) -> tuple[_Row, _Extra | None]:
    """One Media object as a batch row, and its digests of other algorithms; ValueError says
    what is wrong with it.

    Note: an AlternativeHashes item of SHA-512 (or BLAKE3) was passed over in
    silence, its digest left out, a malformed one too.
    """
    if not isinstance(media, dict):
        raise ValueError("it is not a JSON object")
    if media.get(_BAD_CASE):
        raise ValueError(media[_BAD_CASE])
    if media.get(_REPEATED):
        # Note: which of the two is right is not for matcher to guess.
        raise ValueError(
            f"it gives {', '.join(dict.fromkeys(media[_REPEATED]))} twice, with different values"
        )
    if _MISSPELT in media:
        field = media[_MISSPELT]
        exact = {name.lower(): name for name in _HASH_FIELDS}[_KEY_NOISE.sub("", field).lower()]
        raise ValueError(
            f"its key {field!r} is not a VICS field name (VICS names are exact: {exact}); "
            "refused, so that its digest is not passed over"
        )
    if _MISNAMED in media:
        field = media[_MISNAMED]
        exact = _OTHER_FIELDS[_KEY_NOISE.sub("", field).lower()]
        raise ValueError(
            f"its key {field!r} is not a VICS field name (VICS names are exact: {exact}); "
            "refused, so that its value is not passed over"
        )
    found = {
        "md5": _digest(media.get("MD5"), "md5", "MD5"),
        "sha1": _digest(media.get("SHA1"), "sha1", "SHA1"),
        "sha256": _digest(media.get("SHA256"), "sha256", "SHA256"),
    }
    alternatives = media.get("AlternativeHashes")
    if alternatives is not None and not isinstance(alternatives, list):
        # Note: an object here would hold a digest; never passed over in silence.
        raise ValueError(f"its AlternativeHashes is {_value_kind(alternatives)}, not an array")
    extra: dict[str, bytes | bytearray | None] | None = None
    for k, entry in enumerate(alternatives or ()):
        if not isinstance(entry, dict) or not isinstance(entry.get("HashName"), str):
            raise ValueError(
                f"its AlternativeHashes[{k}] is not an object with a HashName (text): "
                f"{_verbatim(entry)!r:.80}"
            )
        # Note that HashName is free text; PhotoDNA and the like are not digests.
        name = entry["HashName"]
        algorithm = _named_algorithm(name, entry, passed)
        if algorithm is not None:
            given = _hash_value(entry)
            if given is _NO_VALUE:
                # Note: a key spelt otherwise ("hashValue") or left out: the digest
                # the item names would be passed over in silence.
                raise ValueError(
                    f"its AlternativeHashes[{k}] names {name[:20]!r} but has no HashValue: "
                    f"{_verbatim(entry)!r:.80}"
                )
            value = _digest(given, algorithm, name[:20])
            if algorithm in found:
                held = found
            else:
                held = extra = {} if extra is None else extra
            if held.get(algorithm) is None:
                if value is not None:
                    held[algorithm] = value
            elif value is not None and value != held[algorithm]:
                # Note: one file has one digest; which of two is right is not for matcher to guess.
                raise ValueError(
                    f"it gives two different {algorithm.upper()} values "
                    f"({held[algorithm].hex()} and {value.hex()})"  # type: ignore[union-attr]
                )
    if not any(found.values()) and not extra:
        raise ValueError("it has no MD5, SHA1 or SHA-256")
    size = _size(media.get("MediaSize"))
    ident = _verbatim(media.get("MediaID"))
    label = _verbatim(media.get("Category"))
    row = (found["md5"], found["sha1"], found["sha256"], size, ident, label)
    if not extra:
        return row, None
    names = tuple(a for a in digests.DIGEST_SIZES if a in extra)
    return row, (names, tuple(bytes(extra[a] or b"") for a in names))


class ProjectVicReader(TextReader):
    """Reads VICS JSON: `value` holds Media (#Media) or Cases each holding Media (#Cases).

    Imports MD5, SHA1, a SHA-256 from AlternativeHashes, MediaSize and, as
    they are, MediaID (`ident`) and Category (`label`). Categories are never
    interpreted. Parsing streams with ijson, so memory stays bounded.
    """

    NAME = "vics"
    DESCRIPTION = "Project VIC VICS JSON 1.1-1.3 and 2.0 (#Media or #Cases)"
    DEFAULT_ROLE = "notable"

    def sniff(self, head: bytes, path: Path | None = None) -> bool:
        """True for a JSON object with a ProjectVic `@odata.context`/`odata.metadata`.

        JSON keys have no order: an exporter may write `value` first and the
        envelope last. When the head is a JSON object cut short before any
        envelope, the file's tail is looked at too (parse() then checks the
        envelope for real, wherever it is).

        Args:
            head: the first bytes of the file.
            path: the file, for its tail.
        """
        envelope = _find_envelope(head, path)
        return envelope is not None and "projectvic" in envelope.lower()

    def parse(
        self, stream: BinaryIO, source: str = "<input>", on_invalid: OnInvalid = None
    ) -> Iterator[HashRecord]:
        """Yield one record per Media object, wherever it sits.

        Raises:
            FormatError: for invalid JSON or a document that is not VICS, and
                for a malformed Media object (its number and JSON path named) unless
                `on_invalid` takes it.
        """
        for number, row, extra in self._rows(stream, source, on_invalid):
            found = {alg: bytes(raw) for alg, raw in zip(ALGORITHMS, row[:3], strict=True) if raw}
            if extra is not None:
                found.update(zip(*extra, strict=True))
            yield HashRecord(found, size=row[3], ident=row[4], label=row[5], line=number)

    def read_batches(self, path: Path, on_invalid: OnInvalid = None) -> Iterator[RecordBatch]:
        """Yield batches of BATCH_ROWS rows `(md5, sha1, sha256, size, ident, label)`.

        Raises:
            FormatError: as `parse()` does.
        """
        with path.open("rb") as stream:
            rows: list[tuple[object, ...]] = []
            shape = ALGORITHMS
            for _number, row, extra in self._rows(stream, str(path), on_invalid):
                # Note: a Media with a SHA-512 (or BLAKE3) goes in a batch of its
                # own shape, its digests after the three: the entries keep the
                # list's order, and the usual batch binds no column of NULLs.
                this = ALGORITHMS if extra is None else ALGORITHMS + extra[0]
                if this != shape or len(rows) >= BATCH_ROWS:
                    if rows:
                        yield RecordBatch(shape, rows, _FIELDS)
                    rows, shape = [], this
                rows.append(row if extra is None else (*row[:3], *extra[1], *row[3:]))
            if rows:
                yield RecordBatch(shape, rows, _FIELDS)

    def import_notes(self) -> list[str]:
        """What the last read passed over that the examiner should hear of.

        (See _named_algorithm.)
        """
        passed = getattr(self, "passed_over", None)
        if not passed:
            return []
        named = ", ".join(f"{name!r} ({count:,})" for name, count in passed.most_common(5))
        more = f" and {len(passed) - 5} other name(s)" if len(passed) > 5 else ""
        return [
            f"{sum(passed.values()):,} AlternativeHashes value(s) of a digest's length were "
            f"passed over, their HashName naming no algorithm matcher reads: {named}{more}; "
            "if one of them is an MD5, SHA1, SHA-256 or SHA-512, the supplier's name for it "
            "must say so"
        ]

    def metadata(self, path: Path) -> dict[str, str]:
        """The envelope string, and the model version, profile and set it names."""
        with path.open("rb") as stream:
            envelope = _find_envelope(stream.read(HEAD_BYTES), path)
        if envelope is None:
            return {}
        info = {"envelope": envelope}
        model = _MODEL.search(envelope)
        if model:
            info["version"] = model.group(1)
            if model.group(2):
                info["profile"] = model.group(2)
        kind = _envelope_kind(envelope)
        if kind:
            info["set"] = kind
        return info

    def _rows(
        self, stream: BinaryIO, source: str, on_invalid: OnInvalid
    ) -> Iterator[tuple[int, _Row, _Extra | None]]:
        self.passed_over: collections.Counter[str] = collections.Counter()
        passed: list[str] = []  # one media's, counted once it is taken
        head = stream.read(HEAD_BYTES)
        if not head.strip() and len(head) < HEAD_BYTES:
            raise FormatError("the file is empty; a VICS list is a JSON object", source)
        # Note: the envelope, wherever it is found first, says what an item
        # of `value` is before the parse reaches it (see _media).
        envelope, cut_short = _head_envelope(head.removeprefix(BOM))
        if envelope is None and cut_short:
            envelope = _stream_tail_envelope(stream)
        expected = _envelope_kind(envelope) if isinstance(envelope, str) else None
        events = ijson.basic_parse(_Replay(head.removeprefix(BOM), stream))
        media = _media(events, expected)
        number = 0
        outer: int | None = None
        index = 0
        while True:
            try:
                entry, next_outer, next_index = next(media)
            except StopIteration:
                return
            except _NotVics as exc:
                raise FormatError(f"not a VICS list: {exc}", source) from exc
            except _LongDigitRun as exc:
                raise FormatError(
                    f"a run of more than {exc.limit:,} digits starts at byte {exc.offset:,}: "
                    "no value of a VICS list is that long, and the JSON parser cannot take it",
                    source,
                ) from exc
            except (ijson.JSONError, ValueError, UnicodeError, ArithmeticError) as exc:
                # Note: the parser reads ahead in blocks, so the byte offset
                # bounds the fault; the media count places it exactly.
                where = (
                    f"after media number {number} ({_position(outer, index)})"
                    if number
                    else "before any media"
                )
                position = f"{where}, input read up to byte {_tell(stream)}"
                raise FormatError(f"invalid JSON {position}: {_json_reason(exc)}", source) from exc
            number += 1
            outer, index = next_outer, next_index  # placed in words only when needed
            try:
                row, extra = _row(entry, passed)
            except ValueError as exc:
                passed.clear()  # a media refused: what it would have passed over is not said
                where = f"media number {number} ({_position(outer, index)})"
                error = FormatError(f"{where}: {exc}", source)
                if on_invalid is None:
                    raise error from exc
                on_invalid(error)
                continue
            if passed:
                self.passed_over.update(passed)
                passed.clear()
            yield number, row, extra


def _media_shaped(head: bytes) -> bool:
    """True when the head is a JSON object whose `value` array holds a Media-like object.

    That is, its first item (or the first item of that item's Media array)
    has a field VICS Media have: what a VICS list looks like without its
    envelope.
    """
    depth, in_value, keys = 0, False, 0
    try:
        for event, value in ijson.basic_parse(io.BytesIO(head.removeprefix(BOM))):
            if depth == 0 and event != "start_map":
                return False
            if event in _OPEN:
                depth += 1
            elif event in _CLOSE:
                depth -= 1
                if depth <= 1 and in_value:
                    return False  # the value array closed with no Media field
            elif event == "map_key":
                if depth == 1:
                    in_value = value == "value"
                elif in_value and depth in (3, 5):
                    if value in _WANTED:
                        return True
                    keys += 1
                    if keys > 200:
                        return False
    except (ijson.JSONError, ValueError, ArithmeticError):
        pass
    return False


_FIRST_KEY_CUT = re.compile(rb'\A\s*\{\s*"([@a-z.]*)\Z')


def _cut_in_envelope_key(body: bytes) -> bool:
    """True for a whole file that ends inside its first key, which begins an envelope key.

    Note: cut at 10 or 18 bytes (`{  "@odata.context`), a VICS list was "not a
    hash list in any format", with no position; from the key's closing
    quote on, "cut short at byte N". At least "@o" or "odata" must be there.
    """
    cut = _FIRST_KEY_CUT.match(body)
    if cut is None:
        return False
    key = cut.group(1).decode("ascii")
    return any(
        name.startswith(key) and len(key) >= (2 if name.startswith("@") else 5)
        for name in ENVELOPE_KEYS
    )


class VicsWithoutEnvelopeRefusal:
    """A JSON object shaped like a VICS list, with no envelope in its first or last bytes.

    A VICS list whose envelope comes last and that was cut short, or one
    whose envelope sits mid-file: detection cannot tell which, so it says
    so, and how to read it as VICS (which then finds the envelope, or
    refuses the file at the JSON position where it ends).
    """

    NAME = "vics-without-envelope"
    DESCRIPTION = "JSON shaped like a VICS list, without its envelope in the head or the tail"

    def refuse(self, head: bytes, path: Path | None = None) -> str | None:
        if ProjectVicReader().sniff(head, path):
            return None  # a file that is claimed by a reader is never refused as well
        body = head.removeprefix(BOM)
        if len(head) < HEAD_BYTES and (
            any(f'"{k}"'.encode() in body for k in ENVELOPE_KEYS) or _cut_in_envelope_key(body)
        ):
            envelope, cut_short = _head_envelope(body)
            if envelope is None and cut_short:  # the whole file, and its JSON ends open
                return (
                    f"a JSON object cut short at byte {len(head):,}, before its "
                    f"{' or '.join(ENVELOPE_KEYS)} envelope or its object is complete: "
                    "a VICS list cut short?"
                )
        if not _media_shaped(head):
            return None
        found = _read_as_vics(path) if path is not None else None
        if found is not None:
            # Note: where the JSON breaks, which only --format vics said.
            cut = ": a VICS list cut short?" if _ends_cut(found, path) else ""
            return (
                'a JSON object with a "value" array of Media-like objects, but no ProjectVic '
                "envelope (@odata.context or odata.metadata) in its first or last "
                f"{HEAD_BYTES // 1024} KiB, and read as VICS: {found}{cut}"
            )
        return (
            'a JSON object with a "value" array of Media-like objects, but no ProjectVic '
            "envelope (@odata.context or odata.metadata) in its first or last "
            f"{HEAD_BYTES // 1024} KiB: a VICS list cut short, one whose envelope sits "
            "mid-file, or one whose envelope is wrong; give --format vics to read it as "
            "VICS, which then names what is wrong and where"
        )


# A file refused for want of an envelope is read as VICS to say where its JSON
# breaks, up to this size (a refusal's cost: a few seconds); a larger one is
# pointed to --format vics.
BREAK_SCAN_MAX_BYTES = 256 << 20


def _read_as_vics(path: Path) -> str | None:
    """Where a file read as VICS breaks as JSON (its position), if it does; None otherwise.

    Note: kept for the file as it is (device, inode, size, mtime): an import
    detects a list's format twice (before and after its SHA-256), and this
    reads the whole file.
    """
    try:
        st = path.stat()
    except OSError:
        return None
    if st.st_size > BREAK_SCAN_MAX_BYTES:
        return None
    # Note: the ctime too: a file rewritten in place, its size and mtime kept,
    # was answered from the memo.
    key = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
    if _LAST_READ and _LAST_READ[0] == key:
        return cast("str | None", _LAST_READ[1])
    found = None
    try:
        for _ in ProjectVicReader().read(path):
            pass
    except FormatError as exc:
        found = exc.reason if exc.reason.startswith("invalid JSON") else None
    except OSError:
        return None
    _LAST_READ[:] = [key, found]
    return found


_LAST_READ: list[Any] = []
_READ_UP_TO = re.compile(r"input read up to byte ([\d,]+)")


def _ends_cut(reason: str, path: Path | None) -> bool:
    """True when a JSON break is the file's end: a list cut short.

    Note: yajl says "premature EOF" only between tokens; cut inside `true` or
    `null` it says "invalid string", and the Python backend "Incomplete".
    """
    if "premature EOF" in reason or "Incomplete" in reason:
        return True
    read = _READ_UP_TO.search(reason)
    try:
        size = path.stat().st_size if path is not None else None
    except OSError:
        return False
    return read is not None and size is not None and int(read.group(1).replace(",", "")) == size


registry.register(ProjectVicReader())
registry.register_refusal(VicsWithoutEnvelopeRefusal())
