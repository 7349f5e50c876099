"""File times as text: exact, for every year a filesystem can hold (matcher/timestamps.py).

A file dated after 2262 or outside years 1 to 9999 (tmpfs keeps such a date,
and `touch` sets it) stopped a scan with a traceback, exit 1 (the code of a
notable match), and an `interrupted` end record no signal caused.
"""

from __future__ import annotations

import datetime
import hashlib
import os
import shutil
import sqlite3
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import assert_counts_add_up
from conftest import end_record
from conftest import peer_tool
from conftest import read_log
from hypothesis import given
from hypothesis import strategies as st

from matcher.cli import cli
from matcher.timestamps import civil_date
from matcher.timestamps import days_since_epoch
from matcher.timestamps import in_datetime_range
from matcher.timestamps import utc_ns
from matcher.timestamps import utc_text

EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)
FIRST = -62_135_596_800 * 10**9  # 0001-01-01T00:00:00Z
AFTER_LAST = 253_402_300_800 * 10**9  # 10000-01-01T00:00:00Z
WIDE = 10**25  # some 300 million years either way


@given(st.integers(min_value=FIRST, max_value=AFTER_LAST - 1))
def test_same_text_as_datetime_cut_to_the_microsecond(ns: int) -> None:
    moment = EPOCH + datetime.timedelta(microseconds=ns // 1000)
    expected = moment.isoformat(timespec="microseconds").replace("+00:00", "Z")
    assert utc_text(ns) == expected
    assert in_datetime_range(expected)


@given(st.integers(min_value=-WIDE, max_value=WIDE))
def test_text_reads_back_to_the_microsecond(ns: int) -> None:
    assert utc_ns(utc_text(ns)) == ns // 1000 * 1000  # type: ignore[arg-type]


@given(st.integers(min_value=-(10**12), max_value=10**12))
def test_civil_date_and_days_are_inverse(days: int) -> None:
    assert days_since_epoch(*civil_date(days)) == days


@pytest.mark.parametrize(
    ("ns", "text"),
    [
        (0, "1970-01-01T00:00:00.000000Z"),
        (-1, "1969-12-31T23:59:59.999999Z"),  # cut, never rounded into another second
        (1_700_000_000_999_999_999, "2023-11-14T22:13:20.999999Z"),
        (10_413_792_000 * 10**9, "2300-01-01T00:00:00.000000Z"),  # past 2**63 ns
        ((253_402_300_800 + 86_400 * 400) * 10**9, "10001-02-04T00:00:00.000000Z"),
        ((-62_135_596_800 - 86_400 * 800) * 10**9, "-0002-10-24T00:00:00.000000Z"),
        (951_782_400 * 10**9, "2000-02-29T00:00:00.000000Z"),
        (None, None),
    ],
)
def test_known_answers(ns: int | None, text: str | None) -> None:
    assert utc_text(ns) == text
    if text is not None:
        assert utc_ns(text) == ns // 1000 * 1000  # type: ignore[operator]
    assert in_datetime_range("2300-01-01T00:00:00.000000Z")
    assert not in_datetime_range("10001-02-04T00:00:00.000000Z")
    assert not in_datetime_range("-0002-10-24T00:00:00.000000Z")


@pytest.mark.parametrize("text", ["2023-13-01T00:00:00Z", "2023-01-01 00:00:00Z", "", "x"])
def test_not_a_time_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="not a UTC time"):
        utc_ns(text)


# A scan of files with such dates ------------------------------------------------

# seconds since 1970 -> the log's text
FAR_DATES = {
    b"y2300": (10_413_792_000, "2300-01-01T00:00:00.000000Z"),
    b"y10001": (253_402_300_800 + 86_400 * 400, "10001-02-04T00:00:00.000000Z"),
    b"bc3": (-62_135_596_800 - 86_400 * 800, "-0002-10-24T00:00:00.000000Z"),
}


@pytest.fixture
def far_tree() -> Iterator[Path]:
    """Files dated far off, on tmpfs (ext4 holds dates to 2446 only), each notable, plus one unknown."""
    base = Path(tempfile.mkdtemp(prefix="matcher-far-", dir="/dev/shm"))
    ev = base / "ev"
    ev.mkdir()
    try:
        for name, (seconds, _) in FAR_DATES.items():
            path = ev / name.decode()
            path.write_bytes(b"notable " + name)
            os.utime(path, ns=(0, seconds * 10**9))
            assert path.stat().st_mtime_ns == seconds * 10**9, "tmpfs keeps any date"
        unknown = ev / "unknown-2300"
        unknown.write_bytes(b"in no list")
        os.utime(unknown, ns=(0, 10_413_792_000 * 10**9))
        (base / "notable.sha256").write_text(
            "".join(f"{hashlib.sha256(b'notable ' + n).hexdigest()}  {n.decode()}\n" for n in FAR_DATES)
        )
        yield base
    finally:
        shutil.rmtree(base)


def test_scan_of_files_dated_far_off(far_tree: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    log = tmp_path / "far.jsonl"
    args = ["scan", str(far_tree / "ev"), "--examiner", "E", "--case", "T-1", "--db",
            str(tmp_path / "s.db"), "--list", str(far_tree / "notable.sha256"), "--log", str(log)]  # fmt: skip
    result = runner.invoke(cli, [*args, "-q"], catch_exceptions=False)
    assert result.exit_code == 1, result.output  # notable matches, nothing else
    counts = assert_counts_add_up(log)
    assert end_record(log)["status"] == "complete"
    assert (counts["errors"], counts["notable"], counts["unknown"]) == (0, 3, 1)
    times = {os.path.basename(str(r["path"])): r["mtime"] for r in read_log(log) if r["type"] == "match"}
    assert times == {n.decode(): text for n, (_, text) in FAR_DATES.items()}
    # the inventory keeps the exact nanoseconds of every file, the unknown one too
    conn = sqlite3.connect(f"{log}.inventory.db")
    stored = {os.path.basename(bytes(p)): m for p, m in conn.execute("SELECT path, mtime_ns FROM entries")}
    conn.close()
    assert int(stored[b"unknown-2300"]) == 10_413_792_000 * 10**9
    assert {n: int(stored[n]) for n in FAR_DATES} == {n: s * 10**9 for n, (s, _) in FAR_DATES.items()}
    assert runner.invoke(cli, ["verify", str(log)]).exit_code == 0
    # a re-match reads the times back from the inventory
    relog = tmp_path / "re.jsonl"
    rematched = runner.invoke(cli, ["rematch", str(log), "--db", str(tmp_path / "s.db"), "--log",
                                    str(relog), "--examiner", "E", "--case", "T-1"])  # fmt: skip
    assert rematched.exit_code == 1, rematched.output
    again = {os.path.basename(str(r["path"])): r["mtime"] for r in read_log(relog) if r["type"] == "match"}
    assert again == times
    # reports: DFXML takes any year; CASE keeps the ones xsd:dateTime readers parse as such
    for fmt in ("dfxml", "case"):
        out = tmp_path / f"r.{fmt}"
        assert runner.invoke(cli, ["report", str(log), "--format", fmt, "-o", str(out)]).exit_code == 0
    dfxml = (tmp_path / "r.dfxml").read_text()
    assert all(f"<mtime>{text}</mtime>" in dfxml for _, text in FAR_DATES.values())
    # Each report passes its validator.
    schema = Path(__file__).parent / "data" / "dfxml_schema" / "dfxml.xsd"
    checked = subprocess.run([peer_tool("xmllint"), "--noout", "--schema", str(schema),
                              str(tmp_path / "r.dfxml")], capture_output=True, text=True)  # fmt: skip
    assert checked.returncode == 0, checked.stderr
    shutil.copy(tmp_path / "r.case", tmp_path / "r.jsonld")
    checked = subprocess.run([peer_tool("case_validate"), str(tmp_path / "r.jsonld")],
                             capture_output=True, text=True)  # fmt: skip
    assert checked.returncode == 0, checked.stdout + checked.stderr
    case = (tmp_path / "r.case").read_text()
    assert '"@value": "2300-01-01T00:00:00.000000Z"' in case
    assert "modification time 10001-02-04T00:00:00.000000Z" in case
    assert '"@value": "10001-02-04' not in case


def test_hash_command_gives_far_dates(far_tree: Path) -> None:
    result = CliRunner().invoke(cli, ["hash", str(far_tree / "ev"), "--format", "dfxml"])
    assert result.exit_code == 0, result.output
    assert all(f"<mtime>{text}</mtime>" in result.output for _, text in FAR_DATES.values())


@pytest.mark.parametrize(
    "text",
    ["2026-02-30T00:00:00.000000Z", "2025-02-29T00:00:00.000000Z", "2026-04-31T00:00:00.000000Z",
     "1900-02-29T00:00:00.000000Z", "2026-13-01T00:00:00.000000Z", "2026-01-01T24:00:00.000000Z"],
)  # fmt: skip
def test_a_day_no_calendar_has_is_no_utc_time(text: str) -> None:
    """utc_ns took February 30 (its check was day <= 31): verify passed such record times."""
    from matcher.timestamps import utc_ns

    with pytest.raises(ValueError):
        utc_ns(text)


@pytest.mark.parametrize(
    "text", ["2024-02-29T00:00:00.000000Z", "2000-02-29T23:59:59.999999Z", "-0004-02-29T00:00:00.000000Z",
             "10001-02-04T00:00:00.000000Z"],
)  # fmt: skip
def test_leap_days_and_far_years_are_utc_times(text: str) -> None:
    from matcher.timestamps import utc_ns
    from matcher.timestamps import utc_text

    assert utc_text(utc_ns(text)) == text
