"""Tests for the Project VIC VICS JSON reader (vics)."""

from __future__ import annotations

import gc
import hashlib
import io
import json
import os
import subprocess
import sys
import tracemalloc
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st

from matcher.errors import FormatError
from matcher.formats import projectvic_json
from matcher.formats import registry
from matcher.formats.base import SNIFF_BYTES
from matcher.formats.projectvic_json import ProjectVicReader
from matcher.models import HashRecord

SAMPLES = Path(__file__).parent / "samples" / "synthetic" / "vics"
ALL_SAMPLES = Path(__file__).parent / "samples"
READER = ProjectVicReader()

# From samples/synthetic/TRUTH.json.
HELLO = {
    "md5": "5d41402abc4b2a76b9719d911017c592",
    "sha1": "aaf4c61ddcc5e8a2dabede0f3b482cd9aea9434d",
    "sha256": "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824",
}
WORLD = {
    "md5": "7d793037a0760186574b0282f2f435e7",
    "sha1": "7c211433f02071597741e6ff5a8ea34789abbf43",
    "sha256": "486ea46224d1bb4fb680f34f7c9ad96a8f24ec88be73ea8e5a6c65260e9cb8a7",
}
EMPTY_MD5 = "d41d8cd98f00b204e9800998ecf8427e"

V13_MEDIA = "http://github.com/ICMEC/ProjectVic/DataModels/1.3.xml#Media"
V11_CASES = "http://github.com/ICMEC/ProjectVic/DataModels/1.1.xml#Cases"
V20 = "http://github.com/VICSDATAMODEL/ProjectVic/DataModels/2.0.xml/{}/$metadata#{}"


def raw(truth: dict[str, str]) -> dict[str, bytes]:
    return {alg: bytes.fromhex(value) for alg, value in truth.items()}


def media(
    truth: dict[str, str], media_id: object = 1, category: object = 0, **extra: object
) -> dict[str, object]:
    entry: dict[str, object] = {
        "MediaID": media_id,
        "Category": category,
        "MD5": truth["md5"].upper(),
        "SHA1": truth["sha1"].upper(),
        "MediaSize": 5,
        "IsPrecategorized": "false",
    }
    if "sha256" in truth:
        entry["AlternativeHashes"] = [
            {"MD5": truth["md5"].upper(), "HashName": "PhotoDNA", "HashValue": "AAAA"},
            {
                "MD5": truth["md5"].upper(),
                "HashName": "SHA256",
                "HashValue": truth["sha256"].upper(),
            },
        ]
    entry.update(extra)
    return entry


def document(envelope: str, value: list[object], key: str = "@odata.context") -> bytes:
    return json.dumps({key: envelope, "value": value}, indent=1).encode()


def parse(data: bytes, errors: list[FormatError] | None = None) -> list[HashRecord]:
    on_invalid = errors.append if errors is not None else None
    return list(READER.parse(io.BytesIO(data), source="list.json", on_invalid=on_invalid))


def test_registered_with_notable_role() -> None:
    assert isinstance(registry.get("vics"), ProjectVicReader)
    assert READER.DEFAULT_ROLE == "notable"


@pytest.mark.parametrize(
    ("sample", "count"),
    [
        ("vics_1.2_caid_style.json", 1),
        ("vics_1.3_media.json", 1),
        ("vics_2.0_cases.json", 2),
        ("vics_2.0_default_media.json", 2),
    ],
)
def test_samples_known_answers(sample: str, count: int) -> None:
    path = SAMPLES / sample
    assert READER.sniff(path.read_bytes()[:SNIFF_BYTES], path)
    records = list(READER.read(path))
    assert len(records) == count
    hello = records[0]
    assert hello.digests["md5"] == bytes.fromhex(HELLO["md5"])
    assert hello.digests["sha1"] == bytes.fromhex(HELLO["sha1"])
    assert hello.size == 5
    assert hello.line == 1
    assert hello.name is None
    if sample == "vics_1.2_caid_style.json":
        # NIST CAID style: no MediaID, no Category, MediaSize as a string.
        assert "sha256" not in hello.digests
        assert (hello.ident, hello.label) == (None, None)
    else:
        assert hello.digests["sha256"] == bytes.fromhex(HELLO["sha256"])
        assert (hello.ident, hello.label) == ("1", "0")
    if count == 2:
        assert records[1].digests == raw(WORLD)
        assert (records[1].ident, records[1].line) == ("2", 2)


def test_samples_metadata() -> None:
    assert READER.metadata(SAMPLES / "vics_2.0_cases.json") == {
        "envelope": V20.format("US", "Cases"),
        "version": "2.0",
        "profile": "US",
        "set": "Cases",
    }
    assert READER.metadata(SAMPLES / "vics_1.3_media.json") == {
        "envelope": V13_MEDIA,
        "version": "1.3",
        "set": "Media",
    }


@pytest.mark.parametrize("profile", ["Default", "US", "UK", "CUSTOM"])
def test_v20_cases_with_several_cases(profile: str) -> None:
    cases = [
        {"CaseID": "c1", "Case No.": "unknown key", "Media": [media(HELLO, 10)]},
        {"CaseNumber": "2", "Media": [media(WORLD, 11), media({"md5": EMPTY_MD5, "sha1": ""}, 12)]},
        {"CaseID": "c3", "Media": []},
    ]
    records = parse(document(V20.format(profile, "Cases"), cases))
    assert [(r.ident, r.line) for r in records] == [("10", 1), ("11", 2), ("12", 3)]
    assert records[0].digests == raw(HELLO)
    assert records[2].digests == {"md5": bytes.fromhex(EMPTY_MD5)}


def test_v1x_cases_with_odata_annotations() -> None:
    hello = media(HELLO, 3, 2, **{"odata.id": "Media('x')", "Exifs@odata.navigationLinkUrl": "u"})
    data = document(V11_CASES, [{"Examiner Email": "e@x", "Media": [hello]}], key="odata.metadata")
    [record] = parse(data)
    assert record.digests == raw(HELLO)
    assert (record.ident, record.label) == ("3", "2")


def test_bom_string_booleans_numeric_string_size_and_unknown_keys() -> None:
    entry = media(
        WORLD,
        "0007",
        "1",
        MediaSize=" 123 ",
        IsPrecategorized="TRUE",
        VictimIdentified="false",
        SomethingNew={"nested": [1, 2, {"x": None}]},
    )
    data = b"\xef\xbb\xbf" + document(V20.format("Default", "Media"), [entry])
    assert READER.sniff(data[:SNIFF_BYTES])
    [record] = parse(data)
    assert record.digests == raw(WORLD)
    # MediaID and Category are kept exactly as given, never mapped to anything.
    assert (record.size, record.ident, record.label) == (123, "0007", "1")


@pytest.mark.parametrize(
    ("category", "label"),
    [(0, "0"), (2, "2"), ("2", "2"), ("A", "A"), (None, None), (True, "true"), (1.50, "1.5")],
)
def test_category_verbatim(category: object, label: str | None) -> None:
    data = document(V20.format("UK", "Media"), [media(HELLO, 1, category)])
    assert parse(data)[0].label == label


def test_envelope_after_value_and_lower_case_hex() -> None:
    entry = {"MD5": HELLO["md5"], "MediaSize": "5"}
    data = json.dumps({"value": [entry], "@odata.context": V20.format("Default", "Media")})
    [record] = parse(data.encode())
    assert record.digests == {"md5": bytes.fromhex(HELLO["md5"])}
    assert record.size == 5


def test_malformed_media_are_numbered() -> None:
    entries = [
        media(HELLO, 1),
        media(WORLD, 2),
        media(HELLO, 3, MD5="5D41402ABC4B2A76B9719D911017C59Z"),
        media(HELLO, 4, MediaSize="five"),
        media(HELLO, 5, MD5=None, SHA1="", AlternativeHashes=[]),
        media(HELLO, 6, SHA1=12345),
        "not an object",
        media(WORLD, 8),
    ]
    data = document(V20.format("Default", "Media"), entries)
    with pytest.raises(FormatError) as caught:
        parse(data)
    # Note: the position is a media's number and JSON path, never a line number.
    assert (caught.value.source, caught.value.line) == ("list.json", None)
    assert str(caught.value).startswith("list.json: media number 3 (value[2]): ")
    assert "32 hex digits" in caught.value.reason
    errors: list[FormatError] = []
    records = parse(data, errors)
    assert [r.ident for r in records] == ["1", "2", "8"]
    assert [r.line for r in records] == [1, 2, 8]
    assert [e.reason.split(":")[0] for e in errors] == [
        f"media number {n} (value[{n - 1}])" for n in (3, 4, 5, 6, 7)
    ]
    assert "MediaSize is not a byte count" in errors[1].reason
    assert "no MD5, SHA1 or SHA-256" in errors[2].reason


def test_bad_sha256_in_alternative_hashes() -> None:
    entry = media(HELLO)
    entry["AlternativeHashes"] = [{"HashName": "SHA-256", "HashValue": "ABC"}]
    with pytest.raises(FormatError, match=r"number 1 \(value\[0\]\): expected 64 hex digits for"):
        parse(document(V20.format("Default", "Media"), [entry]))


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "empty"),
        (b"   \n", "empty"),
        (b"[1, 2]", "not an object"),
        (b'{"@odata.context": "x"}', "names no ProjectVic data model"),
        (b'{"odata.metadata": "' + V13_MEDIA.encode() + b'"}', 'no "value" array'),
        (b'{"value": [{"MD5": "' + HELLO["md5"].encode() + b'"}', "invalid JSON"),
        (b'{"value": [{"MD5": "\xff"}]}', "invalid JSON"),
        (b'{"value": []} trailing', "invalid JSON"),
        (b'{"value": {"MD5": "x"}}', 'no "value" array'),
    ],
)
def test_not_vics_or_invalid_json(data: bytes, message: str) -> None:
    with pytest.raises(FormatError, match=message) as caught:
        parse(data)
    assert len(str(caught.value)) < 160


@pytest.mark.parametrize(
    ("envelope", "message"),
    [
        ("http://github.com/ICMEC/ProjectVic/DataModels/1.3.xml#Widgets", "neither #Media nor"),
        (V20.format("Default", "Media").replace("2.0", "9.0"), "names data model '9.0'"),
        ("http://example.org/SomethingElse/$metadata#Media", "names no ProjectVic data model"),
        (42, "envelope is not a string"),
        (None, "envelope is not a string"),
    ],
)
def test_a_wrong_envelope_is_refused(envelope: object, message: str) -> None:
    """FORMATS.md 6.1: the key, the model version and the #Media/#Cases set must match."""
    data = json.dumps({"@odata.context": envelope, "value": [media(HELLO)]}).encode()
    with pytest.raises(FormatError, match="not a VICS list: its ") as caught:
        parse(data)
    assert message in str(caught.value)


@pytest.mark.parametrize("where", ["first", "last"])
def test_a_list_without_an_envelope_is_refused_wherever_it_would_be(where: str) -> None:
    """Even with --format vics: the whole document is read, then refused (nothing kept)."""
    entries = [media(HELLO, n) for n in range(3)]
    if where == "first":
        data = json.dumps({"value": entries}).encode()
    else:
        data = json.dumps({"value": entries, "odata.count": 3}).encode()
    with pytest.raises(FormatError, match="has no '@odata.context' or 'odata.metadata' envelope"):
        parse(data)
    # The envelope after the value array is enough.
    late = json.dumps({"value": entries, "odata.metadata": V13_MEDIA}).encode()
    assert [r.ident for r in parse(late)] == ["0", "1", "2"]


def test_a_case_without_media_is_skipped_and_positions_name_the_case() -> None:
    """In a #Cases list a Case with no Media array holds nothing; it is not a bad Media."""
    cases = [
        {"CaseID": "a", "CaseNumber": "X-1"},
        {"CaseID": "b", "Media": []},
        {"CaseID": "c", "Media": [media(HELLO, 1), media(WORLD, 2, MD5="XYZ")]},
    ]
    data = json.dumps({"odata.metadata": V11_CASES, "value": cases}).encode()
    errors: list[FormatError] = []
    assert [r.ident for r in parse(data, errors)] == ["1"]
    assert [e.reason.split(":")[0] for e in errors] == ["media number 2 (value[2].Media[1])"]
    # A #Media list's item with no hash stays a bad Media (named), never skipped in silence.
    data = document(V13_MEDIA, [{"CaseID": "a"}, media(HELLO)], key="odata.metadata")
    with pytest.raises(FormatError, match=r"media number 1 \(value\[0\]\): it has no MD5"):
        parse(data)


def test_deep_nesting_is_skipped_or_refused_in_bounded_memory() -> None:
    hello = b'{"MD5": "' + HELLO["md5"].encode() + b'"'
    deep_array = b"[" * 200_000 + b"]" * 200_000
    head = b'{"@odata.context": "' + V20.format("Default", "Media").encode() + b'", "value": ['
    # An unwanted field is skipped however deep it goes; nothing of it is built.
    [record] = parse(head + hello + b', "Exifs": ' + deep_array + b"}]}")
    assert record.digests == {"md5": bytes.fromhex(HELLO["md5"])}
    # A wanted field (Category is kept verbatim) may not be junk nested without end.
    with pytest.raises(FormatError, match="nested more than 16 levels"):
        parse(head + hello + b', "Category": ' + deep_array + b"}]}")
    errors: list[FormatError] = []
    assert parse(head + deep_array + b"]}", errors) == []
    assert [e.reason.split(":")[0] for e in errors] == ["media number 1 (value[0])"]


@pytest.mark.parametrize(
    "number",
    [b"1e999999999999999999999", b"-5", b"5.5", b'"12345678901234567890123"', b'"5.5"', b'"-5"',
     b'"1e999999999"', b'"NaN"', b'"0x10"', b'"5."'],
)  # fmt: skip
def test_unusable_media_sizes(number: bytes) -> None:
    entry = b'{"MD5": "' + HELLO["md5"].encode() + b'", "MediaSize": ' + number + b"}"
    data = b'{"odata.metadata": "' + V13_MEDIA.encode() + b'", "value": [' + entry + b"]}"
    with pytest.raises(FormatError) as caught:
        parse(data)
    assert (
        "out of range" in caught.value.reason
        or "MediaSize is not a byte count" in caught.value.reason
        or "larger than any file can be" in caught.value.reason
    )


def test_invalid_json_deep_in_a_large_file() -> None:
    entries = [media(HELLO, n) for n in range(2000)]
    data = document(V20.format("Default", "Media"), entries)[:-10] + b"}}}"
    records: list[HashRecord] = []
    with pytest.raises(FormatError, match="invalid JSON"):
        for record in READER.parse(io.BytesIO(data), source="big.json"):
            records.append(record)
    assert len(records) > 1000


def test_read_batches_equals_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    entries = [media(HELLO if n % 2 else WORLD, n, n % 3) for n in range(30)]
    path = tmp_path / "v.json"
    path.write_bytes(
        document(V20.format("US", "Cases"), [{"Media": entries[:11]}, {"Media": entries[11:]}])
    )
    monkeypatch.setattr(projectvic_json, "BATCH_ROWS", 7)
    batches = list(READER.read_batches(path))
    assert [len(b.rows) for b in batches] == [7, 7, 7, 7, 2]
    flat = [row for batch in batches for row in batch.rows]
    expected = [
        (
            r.digests.get("md5"),
            r.digests.get("sha1"),
            r.digests.get("sha256"),
            r.size,
            r.ident,
            r.label,
        )
        for r in READER.read(path)
    ]
    assert flat == expected
    assert all(b.fields == ("size", "ident", "label") for b in batches)
    assert len(flat) == 30


def test_sniff() -> None:
    assert READER.sniff(document(V20.format("CUSTOM", "Media"), []))
    assert READER.sniff(document(V13_MEDIA, [], key="odata.metadata"))
    assert not READER.sniff(document("http://example.org/other#Media", []))
    assert not READER.sniff(b'{"@context": {"uco": "https://ontology.unifiedcyberontology.org"}}')
    assert not READER.sniff(b'"SHA-1","MD5","CRC32","FileName"\r\n')
    assert not READER.sniff(b"[]")
    assert not READER.sniff(b"")


# Reads a list in a fresh interpreter and prints the count and the peak RSS (KiB).
_CHILD = """
import resource, sys
from pathlib import Path
from matcher.formats.projectvic_json import ProjectVicReader
count = sum(1 for _ in ProjectVicReader().read(Path(sys.argv[1])))
print(count, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def write_large_list(path: Path, count: int) -> None:
    with path.open("wb") as out:
        out.write(b'{"@odata.context": "' + V20.format("Default", "Media").encode())
        out.write(b'", "value": [\n')
        for n in range(count):
            sep = b",\n" if n + 1 < count else b"\n"
            out.write(
                b'{"MediaID": %d, "Category": %d, "MD5": "%032X", "MediaSize": "%d",'
                b' "IsPrecategorized": "false", "Comments": "%s"}%s'
                % (n, n % 3, n, n, b"c" * 100, sep)
            )
        out.write(b"]}\n")


def peak_rss_kib(path: Path) -> tuple[int, int]:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    done = subprocess.run(
        [sys.executable, "-c", _CHILD, str(path)], env=env, capture_output=True, check=True
    )
    count, peak = done.stdout.split()
    return int(count), int(peak)


def test_bounded_memory_on_a_large_list(tmp_path: Path) -> None:
    large, small = tmp_path / "large.json", tmp_path / "small.json"
    write_large_list(large, 200_000)
    write_large_list(small, 1)
    assert large.stat().st_size > 40_000_000
    count, peak = peak_rss_kib(large)
    _one, baseline = peak_rss_kib(small)
    assert count == 200_000
    # Holding the parsed list would take hundreds of MB; streaming stays flat.
    assert peak - baseline < 20_000, (peak, baseline)


def test_streaming_keeps_python_allocations_small(tmp_path: Path) -> None:
    path = tmp_path / "medium.json"
    write_large_list(path, 10_000)
    gc.collect()
    tracemalloc.start()
    try:
        seen = 0
        for record in READER.read(path):
            seen += 1
            last = record
        _current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert seen == 10_000
    assert last.digests["md5"] == (10_000 - 1).to_bytes(16, "big")
    assert path.stat().st_size > 2_000_000
    assert peak < 1_500_000, peak


@settings(max_examples=300)
@given(st.binary(max_size=400))
def test_any_bytes_raise_only_format_error(data: bytes) -> None:
    prefix = b'{"@odata.context": "' + V20.format("Default", "Media").encode() + b'", "value": ['
    for payload in (data, prefix + data, b"\xef\xbb\xbf" + data):
        try:
            parse(payload)
        except FormatError:
            pass
        try:
            parse(payload, [])
        except FormatError:
            pass


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=10),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children, max_size=3)
    ),
    max_leaves=10,
)


@settings(max_examples=150)
@given(
    st.lists(
        st.dictionaries(
            st.sampled_from(
                [
                    "MD5",
                    "SHA1",
                    "MediaSize",
                    "MediaID",
                    "Category",
                    "AlternativeHashes",
                    "Media",
                    "x",
                ]
            ),
            json_values,
        ),
        max_size=4,
    )
)
def test_any_json_structure_raises_only_format_error(value: list[dict[str, object]]) -> None:
    data = document(V20.format("Default", "Media"), value)  # type: ignore[arg-type]
    try:
        parse(data, [])
    except FormatError:
        pass


def test_detection_is_exclusive_over_all_samples() -> None:
    # Every registered reader sees every bundled sample: ours must be the only
    # one to claim VICS samples, and must claim nothing else.
    for sample in sorted(ALL_SAMPLES.rglob("*")):
        if not sample.is_file() or sample.name == "TRUTH.json":
            continue
        head = sample.read_bytes()[:SNIFF_BYTES]
        ours = sample.parent.name == "vics"
        assert READER.sniff(head, sample) == ours, sample
        if ours:
            assert registry.detect(sample, head) is registry.get(READER.NAME), sample


def test_truncated_file_names_the_last_whole_media_and_the_byte(tmp_path: Path) -> None:
    whole, cut = tmp_path / "whole.json", tmp_path / "cut.json"
    write_large_list(whole, 2000)
    data = whole.read_bytes()
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(FormatError) as caught:
        list(READER.read_batches(cut))
    message = str(caught.value)
    assert message.startswith(f"{cut}: invalid JSON after media number ")
    done = int(message.split("after media number ")[1].split(" ")[0])
    assert f"media number {done} (value[{done - 1}]), input read" in message
    assert done == data[: len(data) // 2].count(b"},\n")  # every whole entry before the cut
    assert f"input read up to byte {len(data) // 2:,}" in message


def test_usual_hash_names_resolve_as_canonical_name_does() -> None:
    from matcher import digests

    for name, algorithm in projectvic_json._USUAL_NAMES.items():
        assert digests.canonical_name(name) == algorithm


@settings(max_examples=300)
@given(st.one_of(st.text(max_size=200), st.integers(), st.none(), st.booleans()), st.booleans())
def test_any_envelope_is_read_or_refused_as_not_vics(envelope: object, cases: bool) -> None:
    """An envelope is a VICS one (its set comes back) or the list is refused; nothing else."""
    suffix = "#Cases" if cases else "#Media"
    for value in (envelope, f"http://github.com/ICMEC/ProjectVic/DataModels/{envelope}{suffix}"):
        data = json.dumps({"odata.metadata": value, "value": []}).encode()
        try:
            assert parse(data) == []
        except FormatError as exc:
            assert str(exc).startswith("list.json: not a VICS list: its ")


V2_MEDIA = "http://github.com/VICSDATAMODEL/ProjectVic/DataModels/2.0.xml/Default/$metadata#Media"


@pytest.mark.parametrize("at", [100, 64 * 1024 - 2500, 64 * 1024 + 10, 3 * 64 * 1024 - 7])
@pytest.mark.parametrize("where", ["number", "string"])
def test_a_digit_run_the_json_parser_cannot_take_is_refused_at_its_byte(
    tmp_path: Path, at: int, where: str
) -> None:
    """ijson's C parser kills the process on an integer of more than 4,300 digits.

    Such a run never reaches it, wherever it falls across the reads; the
    file is refused naming the byte where the run starts.
    """
    start = (
        json.dumps({"@odata.context": V2_MEDIA, "value": []})[:-2]
        + '{"MD5":"5d41402abc4b2a76b9719d911017c592","X":"'
    )
    pad = "a" * (at - len(start) - 2)
    quote = '"' if where == "string" else ""
    prefix = start + pad + '",' + f'"N":{quote}'
    run_start = len(prefix.encode())
    text = prefix + "7" * 5000 + quote + "}]}"
    path = tmp_path / "l.json"
    path.write_text(text)
    with pytest.raises(FormatError, match=f"more than 4,300 digits starts at byte {run_start:,}:"):
        list(READER.read_batches(path))


def test_a_digit_run_in_the_head_does_not_crash_detection(tmp_path: Path) -> None:
    path = tmp_path / "l.json"
    path.write_text('{"value": [' + "1" * 5000 + "]}")
    result = subprocess.run(
        [sys.executable, "-m", "matcher", "import", str(path), "--db", str(tmp_path / "s.db")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr


def test_a_run_of_4300_digits_inside_a_string_is_read(tmp_path: Path) -> None:
    path = tmp_path / "l.json"
    media = {"MD5": "5d41402abc4b2a76b9719d911017c592", "Comment": "1" * 4300}
    path.write_text(json.dumps({"@odata.context": V2_MEDIA, "value": [media]}))
    assert [r.digests["md5"].hex() for r in READER.read(path)] == [media["MD5"]]


SHA256_HELLO = "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"


@pytest.mark.parametrize(
    "name",
    ["SHA256", "SHA-256", "sha_256", "SHA 256", "SHA2-256", "SHA-2-256", "SHA-2 256", " Sha-256 "],
)
def test_every_spelling_of_sha256_is_read(name: str) -> None:
    entry = {
        "MD5": "5d41402abc4b2a76b9719d911017c592",
        "AlternativeHashes": [{"HashName": name, "HashValue": SHA256_HELLO}],
    }
    (record,) = parse(document(V20.format("Default", "Media"), [entry]))
    assert record.digests["sha256"].hex() == SHA256_HELLO


def test_two_different_values_of_one_digest_refuse_the_media() -> None:
    other = "0" * 64
    entry = {
        "MD5": "5d41402abc4b2a76b9719d911017c592",
        "AlternativeHashes": [
            {"HashName": "SHA256", "HashValue": SHA256_HELLO},
            {"HashName": "SHA-256", "HashValue": other},
        ],
    }
    with pytest.raises(
        FormatError,
        match=f"media number 1 \\(value\\[0\\]\\): it gives two different SHA256 values \\({SHA256_HELLO} and {other}\\)",
    ):
        parse(document(V20.format("Default", "Media"), [entry]))
    same = dict(entry, AlternativeHashes=[{"HashName": "SHA256", "HashValue": SHA256_HELLO}] * 2)
    (record,) = parse(document(V20.format("Default", "Media"), [same]))
    assert record.digests["sha256"].hex() == SHA256_HELLO
    clash = {
        "MD5": "5d41402abc4b2a76b9719d911017c592",
        "AlternativeHashes": [{"HashName": "MD5", "HashValue": "0" * 32}],
    }
    with pytest.raises(FormatError, match="two different MD5 values"):
        parse(document(V20.format("Default", "Media"), [clash]))


@pytest.mark.parametrize("envelope", [True, False])
def test_deep_nesting_costs_no_memory_out_of_proportion(tmp_path: Path, envelope: bool) -> None:
    """100,000 nested arrays (200 KB) took 10 GB: the envelope was looked for with
    ijson.parse, whose C parser gives each buffered event a prefix as long as its depth."""
    depth = 100_000
    head = '{"@odata.context":"' + V2_MEDIA + '",' if envelope else "{"
    path = tmp_path / "deep.json"
    path.write_text(head + '"value":[' + "[" * depth + "]" * depth + "]}")
    # Note: VmHWM, not getrusage's ru_maxrss, which Linux carries over exec from
    # the parent (the whole test run's pytest process).
    script = (
        "import sys\n"
        "from matcher.cli import cli\n"
        "try:\n"
        "    cli(sys.argv[1:], prog_name='matcher')\n"
        "finally:\n"
        "    hwm = [l for l in open('/proc/self/status') if l.startswith('VmHWM:')][0]\n"
        "    print(hwm.split()[1], file=sys.stderr)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script, "import", str(path), "--db", str(tmp_path / "s.db")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2, result.stderr
    peak_kib = int(result.stderr.strip().splitlines()[-1])
    assert peak_kib < 200 * 1024, f"peak RSS {peak_kib} KiB"


@pytest.mark.parametrize("key", ["@odata.context", "odata.metadata"])
def test_an_envelope_after_a_value_past_the_head_is_still_detected(
    tmp_path: Path, key: str
) -> None:
    # JSON keys have no order: a `value` larger than the head, envelope last.
    envelope = V20.format("UK", "Media") if key == "@odata.context" else V13_MEDIA
    value = [media(HELLO, media_id=n, Notes="x" * 200) for n in range(600)]
    path = tmp_path / "late.json"
    path.write_bytes(json.dumps({"value": value, key: envelope}).encode())
    assert path.stat().st_size > 2 * SNIFF_BYTES
    assert registry.detect(path) is registry.get(READER.NAME)
    assert len(list(READER.read(path))) == 600
    # The same object whose last key is no ProjectVic envelope is not claimed.
    other = tmp_path / "other.json"
    other.write_bytes(json.dumps({"value": value, key: "http://example.org/x#Media"}).encode())
    assert not READER.sniff(registry.read_head(other), other)
    plain = tmp_path / "plain.json"
    plain.write_bytes(json.dumps({"value": value}).encode())
    assert not READER.sniff(registry.read_head(plain), plain)
    # The envelope found there is the list's metadata too.
    assert READER.metadata(path)["envelope"] == envelope


def test_the_tail_is_looked_at_only_for_an_object_cut_short_by_the_head(tmp_path: Path) -> None:
    # A closed object followed by more JSON, NDJSON, or a VICS document nested
    # at the end of another object: none is one VICS object, none is claimed.
    vics = json.dumps({"@odata.context": V20.format("UK", "Media"), "value": []})
    pad = " " * SNIFF_BYTES
    shapes = {
        "two.json": '{"a": 1}' + pad + vics,
        "nd.jsonl": '{"a": 1}\n' * 10_000 + vics + "\n",
        "broken.json": '{"a": 1] ' + pad + vics,
    }
    for name, text in shapes.items():
        path = tmp_path / name
        path.write_text(text)
        assert not READER.sniff(registry.read_head(path), path), name


def test_an_item_with_a_media_array_and_its_own_digest_keeps_that_digest() -> None:
    """A Media whose unknown keys include a `Media` array is not emptied of its own hash."""
    hello, world = media(HELLO, 1, Media=[]), media(WORLD, 2)
    for value in ([hello, world], [world, hello]):
        data = document(V20.format("Default", "Media"), value)
        assert sorted(r.ident for r in parse(data)) == ["1", "2"]
    # With Media objects in that array too, both the item and they are read.
    nested = media(HELLO, 1, Media=[media(WORLD, 2)])
    assert sorted(r.ident for r in parse(document(V11_CASES, [nested], "odata.metadata"))) == [
        "1",
        "2",
    ]


@pytest.mark.parametrize("padding", [0, 600])
def test_a_cases_list_whose_envelope_comes_last_skips_cases_without_media(
    tmp_path: Path, padding: int
) -> None:
    """Which a value item is (a Case without Media, or a bad Media) follows the envelope,
    wherever in the file it is: in the head, or after a `value` longer than the head."""
    cases: list[object] = [{"CaseID": "a", "CaseNumber": "X-1"}]
    cases += [
        {"CaseID": f"p{n}", "Media": [media(HELLO, n, Notes="x" * 200)]} for n in range(padding)
    ]
    cases += [{"CaseID": "b", "Media": [media(WORLD, "w")]}]
    for envelope, key in (
        (V20.format("US", "Cases"), "@odata.context"),
        (V11_CASES, "odata.metadata"),
    ):
        path = tmp_path / "late.json"
        path.write_bytes(json.dumps({"value": cases, key: envelope}).encode())
        if padding:
            assert path.stat().st_size > 2 * SNIFF_BYTES
        assert registry.detect(path) is registry.get(READER.NAME)
        records = list(READER.read(path))
        assert [r.ident for r in records][-1] == "w" and len(records) == padding + 1
        with path.open("rb") as stream:  # through parse() on a stream as well
            assert len(list(READER.parse(stream, source=str(path)))) == padding + 1
    # In a #Cases list, a Media inside a Case still needs a digest.
    bad = {"value": [{"CaseID": "c", "Media": [{"MediaID": 9}]}], "odata.metadata": V11_CASES}
    with pytest.raises(FormatError, match=r"value\[0\]\.Media\[0\]\): it has no MD5"):
        parse(json.dumps(bad).encode())


def test_two_envelopes_naming_different_sets_are_refused() -> None:
    value = [media(HELLO)]
    for first, second in ((V13_MEDIA, V11_CASES), (V11_CASES, V13_MEDIA)):
        both = {"odata.metadata": first, "value": value, "@odata.context": second}
        with pytest.raises(FormatError, match="not a VICS list: it has two envelopes"):
            parse(json.dumps(both).encode())
    # Two envelopes that agree (a 1.x and a 2.0 key naming the same set) are read.
    same = {
        "odata.metadata": V13_MEDIA,
        "value": value,
        "@odata.context": V20.format("UK", "Media"),
    }
    assert len(parse(json.dumps(same).encode())) == 1


def test_a_vics_list_cut_before_its_envelope_is_refused_as_such(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Cut short, a list whose envelope came last (or sat inside the cut) is named as VICS."""
    value = [media(HELLO, media_id=n, Notes="x" * 200) for n in range(600)]
    whole = json.dumps({"value": value, "odata.metadata": V13_MEDIA}).encode()
    late = tmp_path / "late.json"
    late.write_bytes(whole[: len(whole) // 2])
    # Detection itself names where its JSON ends (only --format vics did).
    with pytest.raises(
        FormatError,
        match=r"no ProjectVic envelope .* read as VICS: invalid JSON after media number \d+ "
        r"\(value\[\d+\]\), input read up to byte [\d,]+: .*cut short",
    ):
        registry.detect(late)
    # One too large to read at detection is pointed to --format vics.
    with monkeypatch.context() as small:
        small.setattr(projectvic_json, "BREAK_SCAN_MAX_BYTES", 1000)
        with pytest.raises(FormatError, match="no ProjectVic envelope .* give --format vics"):
            registry.detect(late)
    # A break that is no cut (a second object after the first) is not called one.
    twice = tmp_path / "twice.json"
    twice.write_bytes(whole.replace(b', "odata.metadata": ' + json.dumps(V13_MEDIA).encode(), b"") * 2)
    with pytest.raises(FormatError, match=r"read as VICS: invalid JSON .*garbage") as caught:
        registry.detect(twice)
    assert "cut short" not in caught.value.reason
    # An import detects twice (before and after the file's SHA-256): the file is read once.
    reads = []
    real_read = projectvic_json.ProjectVicReader.read
    with monkeypatch.context() as counted:
        counted.setattr(projectvic_json.ProjectVicReader, "read",
                        lambda self, *a, **k: reads.append(1) or real_read(self, *a, **k))  # fmt: skip
        for _ in range(2):
            with pytest.raises(FormatError):
                registry.detect(late)
    assert len(reads) <= 1
    # Cut inside `true` (yajl: "invalid string", not "premature EOF"): still a cut.
    flagged = [media(HELLO, media_id=n, IsPrecategorized=True) for n in range(600)]
    text = json.dumps({"value": flagged, "odata.metadata": V13_MEDIA}).encode()
    literal = tmp_path / "literal.json"
    literal.write_bytes(text[: text.index(b"true", len(text) // 2) + 2])
    with pytest.raises(FormatError, match=r"read as VICS: invalid JSON .*: a VICS list cut short\?"):
        registry.detect(literal)
    # Rewritten in place, its size and mtime kept: read again, not answered from the memo.
    stat_before = twice.stat()
    twice.write_bytes(late.read_bytes()[: len(twice.read_bytes())].ljust(stat_before.st_size, b" "))
    os.utime(twice, ns=(stat_before.st_atime_ns, stat_before.st_mtime_ns))
    assert twice.stat().st_size == stat_before.st_size
    with pytest.raises(FormatError) as caught:
        registry.detect(twice)
    assert "garbage" not in caught.value.reason
    # A whole JSON object without an envelope is said to lack one, not to be cut short.
    bare = tmp_path / "bare.json"
    bare.write_bytes(json.dumps({"value": value}).encode())
    with pytest.raises(FormatError, match="no ProjectVic envelope .* give --format vics"):
        registry.detect(bare)
    # Read as VICS, the list is refused where it ends.
    with pytest.raises(FormatError, match=r"invalid JSON after media number \d+ \(value\[\d+\]\)"):
        list(READER.read(late))
    early = tmp_path / "early.json"
    early.write_bytes(document(V13_MEDIA, [media(HELLO)], key="odata.metadata")[:40])
    with pytest.raises(FormatError, match="a JSON object cut short at byte 40, before its .* a VICS list cut short"):
        registry.detect(early)
    # JSON of another shape is still simply not recognised.
    other = tmp_path / "other.json"
    other.write_bytes(json.dumps({"value": [{"name": "a", "size": 1}]}).encode())
    with pytest.raises(FormatError, match="the list format was not recognised"):
        registry.detect(other)


MD5_HELLO = "5d41402abc4b2a76b9719d911017c592"
MD5_OTHER = "7d793037a0760186574b0282f2f435e7"
SHA256_HELLO = "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"


def raw_document(items: str) -> bytes:
    # json.dumps cannot write a key twice: the items are written by hand.
    return ('{"@odata.context": "' + V20.format("Default", "Media") + '", "value": [' + items + "]}").encode()


def test_a_field_given_twice_with_two_values_refuses_the_media_not_keeps_the_last() -> None:
    # JSON allows it, and a plain parse kept the last MD5: the first was lost, exit 0.
    data = raw_document(f'{{"MediaID": 1, "MD5": "{MD5_HELLO}", "MD5": "{MD5_OTHER}", "MediaSize": 5}}')
    with pytest.raises(FormatError, match=r"value\[0\]\): it gives MD5 twice, with different values"):
        parse(data)
    same = raw_document(f'{{"MediaID": 1, "MD5": "{MD5_HELLO}", "MD5": "{MD5_HELLO}", "MediaSize": 5}}')
    [record] = parse(same)
    assert record.digests == {"md5": bytes.fromhex(MD5_HELLO)}
    # One digest in upper and lower case is one value (it was refused as two).
    cased = raw_document(
        f'{{"MediaID": 1, "MD5": "{MD5_HELLO.upper()}", "MD5": "{MD5_HELLO.lower()}", "MediaSize": 5}}'
    )
    [record] = parse(cased)
    assert record.digests == {"md5": bytes.fromhex(MD5_HELLO)}
    labels = raw_document(f'{{"MediaID": 1, "MD5": "{MD5_HELLO}", "Category": "A", "Category": "a"}}')
    with pytest.raises(FormatError, match=r"it gives Category twice, with different values"):
        parse(labels)  # a supplier's label is kept verbatim: its case is a difference


def test_two_alternative_hashes_arrays_are_joined_not_replaced() -> None:
    data = raw_document(
        f'{{"MediaID": 1, "MD5": "{MD5_HELLO}", '
        f'"AlternativeHashes": [{{"HashName": "SHA256", "HashValue": "{SHA256_HELLO}"}}], '
        '"AlternativeHashes": []}'
    )
    [record] = parse(data)
    assert record.digests["sha256"] == bytes.fromhex(SHA256_HELLO)


@pytest.mark.parametrize(
    ("given_media", "kind"),
    [
        (media(HELLO), "an object"),  # one Media, not in an array: its digests were dropped
        ("9F9F90DBE3E5EE1218C86B8839DB1995", "a string"),
        (7, "a number"),
        (True, "true or false"),
    ],
)
def test_a_case_whose_media_is_not_an_array_is_refused_at_the_case(
    given_media: object, kind: str
) -> None:
    """Before, such a Case was passed over: exit 0, its media never imported, never matched."""
    cases = [{"CaseID": "c1", "Media": given_media}, {"CaseID": "c2", "Media": [media(WORLD)]}]
    data = document(V20.format("US", "Cases"), cases)
    with pytest.raises(FormatError, match=rf"media number 1 \(value\[0\]\): its Media is {kind}, not an array"):
        parse(data)
    errors: list[FormatError] = []
    kept = parse(data, errors)  # --skip-invalid: the other Case's media stay
    assert [r.digests for r in kept] == [raw(WORLD)] and len(errors) == 1


@pytest.mark.parametrize(
    ("key", "item"),
    [
        ("media", media(HELLO)),
        ("MEDIA", {"MediaID": 1, "md5": HELLO["md5"]}),
        ("Items", {"MediaID": 1, "Sha-1": HELLO["sha1"]}),
        ("Files", {"alternativeHashes": [{"HashName": "SHA256", "HashValue": HELLO["sha256"]}]}),
    ],
)
def test_a_case_whose_media_sit_under_another_key_is_refused_at_the_case(
    key: str, item: dict[str, object]
) -> None:
    """Before, such a Case was taken for a Case without media: exit 0, never matched."""
    cases = [
        {"CaseID": "c1", "Notes": [{"Text": "x"}], key: [{"MediaID": 0}, item]},
        {"CaseID": "c2", "Media": [media(WORLD)]},
    ]
    data = document(V20.format("US", "Cases"), cases)
    with pytest.raises(
        FormatError, match=rf"media number 1 \(value\[0\]\): it has no Media array, but its '{key}' is an array of objects with digests"
    ):
        parse(data)
    errors: list[FormatError] = []
    kept = parse(data, errors)  # --skip-invalid: the other Case's media stay
    assert [r.digests for r in kept] == [raw(WORLD)] and len(errors) == 1


def test_a_case_with_arrays_holding_no_digests_still_has_no_media() -> None:
    cases = [
        {"CaseID": "c1", "Notes": [{"Text": "md5"}, "MD5"], "media": []},
        {"CaseID": "c2", "Media": [media(WORLD)]},
    ]
    assert [r.digests for r in parse(document(V20.format("US", "Cases"), cases))] == [raw(WORLD)]


@pytest.mark.parametrize("version", ["1.1", "2.0"])
@pytest.mark.parametrize(
    "own", [{"MD5": None, "SHA1": None}, {"MD5": "", "SHA1": ""}, {"AlternativeHashes": []}]
)
def test_a_case_whose_digest_keys_are_null_or_empty_is_a_case(
    version: str, own: dict[str, object]
) -> None:
    """Before: a Case written with every property, its own MD5 and SHA1 null (as serializers
    do), was taken for a Media with no digest: "media number 2 (value[0]): it has no MD5, SHA1
    or SHA-256", and the whole list refused."""
    cases = [{"CaseID": "c1", **own, "Media": [media(WORLD)]}, {"CaseID": "c2", **own}]
    if version == "1.1":
        data = document(V11_CASES, cases, key="odata.metadata")
    else:
        data = document(V20.format("US", "Cases"), cases)
    assert [r.digests for r in parse(data)] == [raw(WORLD)]


def test_a_case_whose_media_is_null_has_no_media() -> None:
    cases = [{"CaseID": "c1", "Media": None}, {"CaseID": "c2", "Media": [media(WORLD)]}]
    assert [r.digests for r in parse(document(V20.format("US", "Cases"), cases))] == [raw(WORLD)]


@pytest.mark.parametrize(
    ("alternatives", "message"),
    [
        ({"HashName": "SHA256", "HashValue": HELLO["sha256"]}, r"its AlternativeHashes is an object, not an array"),
        ("SHA256", r"its AlternativeHashes is a string, not an array"),
        ([HELLO["sha256"]], r"its AlternativeHashes\[0\] is not an object with a HashName"),
        ([{"HashValue": HELLO["sha256"]}], r"its AlternativeHashes\[0\] is not an object with a HashName"),
        ([{"HashName": "SHA256", "HashValue": HELLO["sha256"]}, {"HashName": 5}], r"its AlternativeHashes\[1\] is not"),
        # A digest named with no HashValue (left out, or spelt otherwise) was dropped in silence.
        ([{"HashName": "SHA256"}], r"its AlternativeHashes\[0\] names 'SHA256' but has no HashValue"),
        ([{"HashName": "SHA256", "Hash": HELLO["sha256"]}], r"its AlternativeHashes\[0\] names 'SHA256' but has no"),
    ],
)
def test_alternative_hashes_of_another_shape_are_refused_not_passed_over(
    alternatives: object, message: str
) -> None:
    """Before, the SHA-256 in such a field was dropped in silence (the Media kept its MD5 only)."""
    item = {"MediaID": 1, "MD5": HELLO["md5"], "AlternativeHashes": alternatives}
    with pytest.raises(FormatError, match=rf"media number 1 \(value\[0\]\): {message}"):
        parse(document(V13_MEDIA, [item], key="odata.metadata"))


def test_null_alternative_hashes_are_none() -> None:
    item = {"MediaID": 1, "MD5": HELLO["md5"], "AlternativeHashes": None}
    (record,) = parse(document(V13_MEDIA, [item], key="odata.metadata"))
    assert record.digests == {"md5": raw(HELLO)["md5"]}


def test_a_hash_value_key_in_another_case_is_read() -> None:
    item = {"MediaID": 1, "MD5": HELLO["md5"], "AlternativeHashes": [{"HashName": "SHA256", "hashValue": HELLO["sha256"]}]}
    (record,) = parse(document(V13_MEDIA, [item], key="odata.metadata"))
    assert record.digests == {a: raw(HELLO)[a] for a in ("md5", "sha256")}


@pytest.mark.parametrize("key", ["sha1", "Sha256", "md5", "alternativeHashes", "SHA-1", "Sha_256"])
@pytest.mark.parametrize("kind", ["Media", "Cases"])
def test_a_digest_key_spelt_otherwise_refuses_the_media(key: str, kind: str) -> None:
    """VICS names are exact: `sha1` beside `MD5` was skipped as an unknown key, its digest
    dropped in silence (and a Media with only such keys was a Case without media)."""
    value: object = [{"HashName": "SHA1", "HashValue": HELLO["sha1"]}] if key == "alternativeHashes" else HELLO["sha1"]
    item = {"MediaID": 1, key: value} if kind == "Cases" else {"MediaID": 1, "MD5": HELLO["md5"], key: value}
    items = [{"CaseID": "c1", "Media": [item]}] if kind == "Cases" else [item]
    with pytest.raises(FormatError, match=rf"its key '{key}' is not a VICS field name"):
        parse(document(V20.format("US", kind), items))


@pytest.mark.parametrize(("key", "exact"), [("category", "Category"), ("CATEGORY", "Category"), ("mediaSize", "MediaSize"), ("Media_Size", "MediaSize"), ("mediaId", "MediaID")])
@pytest.mark.parametrize("kind", ["Media", "Cases"])
def test_a_label_size_or_id_key_spelt_otherwise_refuses_the_media(key: str, exact: str, kind: str) -> None:
    """`category` beside `MD5` was skipped as an unknown key: the Category (the label the
    examiner sees), the size or the id dropped in silence, the Media imported without it."""
    item = {"MD5": HELLO["md5"], key: 2}
    items = [{"CaseID": "c1", "Media": [item]}] if kind == "Cases" else [item]
    with pytest.raises(FormatError, match=rf"its key '{key}' is not a VICS field name \(VICS names are exact: {exact}\)"):
        parse(document(V20.format("US", kind), items))


def test_a_case_key_like_a_media_field_keeps_the_case() -> None:
    """Only a Media is refused: a Case's own keys are not read."""
    items = [{"CaseID": "c1", "category": "x", "Media": [media(HELLO)]}]
    (record,) = parse(document(V20.format("US", "Cases"), items))
    assert record.label == "0"


def test_a_digest_key_spelt_otherwise_with_no_value_is_ignored() -> None:
    """`"sha256": null` holds no digest to lose: ignored, as the exact field's null is."""
    for value in (None, ""):
        item = {"MediaID": 1, "MD5": HELLO["md5"], "sha256": value, "MediaName": "x"}
        (record,) = parse(document(V20.format("US", "Media"), [item]))
        assert record.digests == {"md5": raw(HELLO)["md5"]}


@pytest.mark.parametrize("given", [b"5", b"5.0", b"5e0", b"0.5e1", b'"5"', b'"5.0"', b'"5e0"', b'" 5.0 "'])
def test_a_media_size_given_as_a_numeric_string_is_read_as_the_number_it_spells(given: bytes) -> None:
    """MediaSize "5.0" refused the whole list while 5.0 was read as 5: FORMATS.md 6.3 says a
    number or a numeric string; the string is read by the number's rule."""
    entry = b'{"MD5": "' + HELLO["md5"].encode() + b'", "MediaSize": ' + given + b"}"
    data = b'{"odata.metadata": "' + V13_MEDIA.encode() + b'", "value": [' + entry + b"]}"
    [record] = parse(data)
    assert record.size == 5


SHA512_HELLO = (
    "9b71d224bd62f3785d96d46ad3ea3d73319bfbc2890caadae2dff72519673ca7"
    "2323c3d99ba5c11d7c7acc6e14b8c5da0c4663475c2e5c3adef46f73bcdec043"
)


def test_a_sha512_alternative_hash_is_imported_and_a_malformed_one_refused(tmp_path: Path) -> None:
    """AlternativeHashes items other than SHA-256 were passed over in silence: a SHA-512 left
    out (the list's digests md5 only), and one of 20 hex digits imported with exit 0."""
    from matcher.store import HashStore

    envelope = V20.format("US", "Media")
    with_512 = {
        "MediaID": 7,
        "MD5": HELLO["md5"],
        "AlternativeHashes": [{"HashName": "SHA-512", "HashValue": SHA512_HELLO.upper()}],
    }
    only_512 = {"MediaID": 8, "AlternativeHashes": [{"HashName": "SHA512", "HashValue": SHA512_HELLO}]}
    plain = {"MediaID": 9, "MD5": WORLD["md5"]}
    first, second, third = parse(document(envelope, [with_512, only_512, plain]))
    assert first.digests == {"md5": raw(HELLO)["md5"], "sha512": bytes.fromhex(SHA512_HELLO)}
    assert second.digests == {"sha512": bytes.fromhex(SHA512_HELLO)}
    assert third.digests == {"md5": raw(WORLD)["md5"]}
    # Imported in the list's order, whatever the batch shapes.
    path = tmp_path / "l.json"
    path.write_bytes(document(envelope, [plain, with_512, only_512, plain]))
    batches = list(READER.read_batches(path))
    three, four = ("md5", "sha1", "sha256"), ("md5", "sha1", "sha256", "sha512")
    assert [b.algorithms for b in batches] == [three, four, three]
    idents = [row[-2] for b in batches for row in b.rows]
    assert idents == ["9", "7", "8", "9"]
    store = HashStore(tmp_path / "s.db")
    try:
        from matcher.importing import import_list

        info = import_list(store, path).info
        assert info.counts == {"md5": 3, "sha512": 2}
    finally:
        store.close()
    bad = dict(with_512, AlternativeHashes=[{"HashName": "SHA-512", "HashValue": "ab" * 10}])
    with pytest.raises(FormatError, match=r"media number 1 \(value\[0\]\): expected 128 hex digits"):
        parse(document(envelope, [bad]))
    clash = dict(with_512, AlternativeHashes=[
        {"HashName": "SHA-512", "HashValue": SHA512_HELLO}, {"HashName": "SHA512", "HashValue": "0" * 128}
    ])  # fmt: skip
    with pytest.raises(FormatError, match="two different SHA512 values"):
        parse(document(envelope, [clash]))


def test_a_hashname_naming_an_algorithm_in_other_words_is_read_and_an_unplaced_digest_said(tmp_path: Path) -> None:
    """A SHA-256 under "SHA256Hash", "HashSHA256", "sha256sum" or "SHA-256 (hex)" was passed over
    in silence (exit 0, the match resting on the MD5 alone): an algorithm's name with a word
    around it is that algorithm. A name saying more ("HMAC-SHA256", "SHA-512/256", "MD5 (first
    1 MiB)", "SHA1Base32") is another value, passed over as before; one of a digest's length
    under a name that names no algorithm ("SHA-2") is said at import, perceptual hashes
    (PhotoDNA, PDQ: 64 hex digits) are not."""
    from matcher.importing import import_list
    from matcher.store import HashStore

    envelope = V20.format("Default", "Media")
    sha256 = hashlib.sha256(b"hello").hexdigest()
    md5_only = {"md5": raw(HELLO)["md5"]}

    def item(name: str, value: str = sha256) -> dict[str, object]:
        return {"MD5": HELLO["md5"], "AlternativeHashes": [{"HashName": name, "HashValue": value}]}

    def one(name: str, value: str = sha256) -> HashRecord:
        (record,) = parse(document(envelope, [item(name, value)]))
        return record

    for name in ("SHA256Hash", "HashSHA256", "sha256sum", "SHA-256 (hex)"):
        assert one(name).digests == {**md5_only, "sha256": bytes.fromhex(sha256)}, name
    for name, value in (("HMAC-SHA256", sha256), ("SHA-512/256", sha256), ("MD5 (first 1 MiB)", "ab" * 16),
                        ("MD5 (\u0437\u0430\u0433\u043e\u043b\u043e\u0432\u043e\u043a)", "ab" * 16), ("SHA-1 (\u03c4\u03bc\u03ae\u03bc\u03b1)", "ab" * 20),
                        ("SHA1Base32", "AAF4C61DDCC5E8A2"), ("SHA-2", sha256), ("PDQ", sha256), ("PhotoDNA", "QUJD" * 30)):
        assert one(name, value).digests == md5_only, name  # fmt: skip
    path = tmp_path / "l.json"
    path.write_bytes(document(envelope, [item("SHA-2"), item("SHA-2"), item("PDQ"), item("XXH128", "ab" * 16)]))
    store = HashStore(tmp_path / "s.db")
    try:
        (note,) = import_list(store, path).notes
    finally:
        store.close()
    assert note.startswith("3 AlternativeHashes value(s) of a digest's length were passed over")
    assert "'SHA-2' (2), 'XXH128' (1)" in note and "PDQ" not in note
    # A media refused (here skipped, --skip-invalid) says nothing of what it would pass over.
    refused = {**item("SHA-2"), "MediaSize": "no size"}  # refused after its hashes are read
    skipped = tmp_path / "skipped.json"
    skipped.write_bytes(document(envelope, [item("SHA-2"), refused]))
    store = HashStore(tmp_path / "k.db")
    try:
        result = import_list(store, skipped, skip_invalid=True)
    finally:
        store.close()
    assert result.skipped_invalid == 1 and result.notes[0].startswith("1 AlternativeHashes value(s)")
    quiet = tmp_path / "q.json"
    quiet.write_bytes(document(envelope, [item("SHA256Hash"), item("PDQ")]))
    store = HashStore(tmp_path / "q.db")
    try:
        assert import_list(store, quiet).notes == []
    finally:
        store.close()


@pytest.mark.parametrize("cut", [10, 18])
def test_a_list_cut_inside_its_envelope_key_is_said_cut_short_at_its_byte(tmp_path: Path, cut: int) -> None:
    """Cut at 10 or 18 bytes (`{  "@odata.context`), a VICS list was "not a hash list in any
    format", with no position; from the key's closing quote on it was "cut short at byte N".
    A first key that is not an envelope's, or a stub too short to tell ("@"), is not."""
    whole = b'{  "@odata.context": "' + V20.format("Default", "Media").encode() + b'", "value": []}'
    cut_file = tmp_path / "cut.json"
    cut_file.write_bytes(whole[:cut])
    with pytest.raises(FormatError, match=f"a JSON object cut short at byte {cut}, before its"):
        registry.detect(cut_file)
    for stub in (b'{  "@', b'{"name', b'{"od'):
        cut_file.write_bytes(stub)
        with pytest.raises(FormatError, match="the list format was not recognised"):
            registry.detect(cut_file)
