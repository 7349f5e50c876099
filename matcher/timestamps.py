"""File times as UTC ISO 8601 text, exact and for any year a filesystem can hold.

A file's mtime comes from the filesystem as whole nanoseconds since 1970.
Python's datetime holds years 1 to 9999 only, and a float of seconds rounds:
ext4 keeps dates to 2446, tmpfs and others (and a suspect's `touch`) to
years far beyond, and before 1970. Those came out as a traceback that
stopped the scan. Here the date is worked out in integers (the proleptic
Gregorian calendar, as ISO 8601 and XML Schema use it), so every mtime has
its one text, cut (never rounded) to the microsecond: a rounding up could
move a time past midnight into the next day.
"""

from __future__ import annotations

import re

_NS = 1_000_000_000
_DAY = 86_400
# Days from 0000-03-01 (a 400-year cycle starts there) to 1970-01-01.
_EPOCH_SHIFT = 719_468
_CYCLE_DAYS = 146_097  # days in 400 Gregorian years


def civil_date(days: int) -> tuple[int, int, int]:
    """(year, month, day) of `days` days after 1970-01-01 (before it when negative).

    Years are astronomical: 0 is 1 BC, -1 is 2 BC. Counted from March, so
    that the leap day ends a year; the year then starts over in January.
    """
    shifted = days + _EPOCH_SHIFT
    cycle, day_of_cycle = divmod(shifted, _CYCLE_DAYS)
    year_of_cycle = (
        day_of_cycle - day_of_cycle // 1460 + day_of_cycle // 36524 - day_of_cycle // 146096
    ) // 365
    day_of_year = day_of_cycle - (365 * year_of_cycle + year_of_cycle // 4 - year_of_cycle // 100)
    month_from_march = (5 * day_of_year + 2) // 153
    day = day_of_year - (153 * month_from_march + 2) // 5 + 1
    month = month_from_march + 3 if month_from_march < 10 else month_from_march - 9
    year = year_of_cycle + 400 * cycle + (1 if month <= 2 else 0)
    return year, month, day


def days_since_epoch(year: int, month: int, day: int) -> int:
    """The inverse of civil_date: days from 1970-01-01 to that date."""
    year -= 1 if month <= 2 else 0
    cycle, year_of_cycle = divmod(year, 400)
    month_from_march = month - 3 if month > 2 else month + 9
    day_of_year = (153 * month_from_march + 2) // 5 + day - 1
    day_of_cycle = 365 * year_of_cycle + year_of_cycle // 4 - year_of_cycle // 100 + day_of_year
    return cycle * _CYCLE_DAYS + day_of_cycle - _EPOCH_SHIFT


def utc_text(ns: int | None) -> str | None:
    """`ns` nanoseconds since 1970 as `YYYY-MM-DDThh:mm:ss.ffffffZ` (None for None).

    The year has at least four digits, more when it needs them, and a minus
    sign before year 0 (ISO 8601's expanded form, which xsd:dateTime takes).
    """
    if ns is None:
        return None
    seconds, rest = divmod(ns, _NS)
    days, of_day = divmod(seconds, _DAY)
    year, month, day = civil_date(days)
    hours, of_hour = divmod(of_day, 3600)
    minutes, secs = divmod(of_hour, 60)
    year_text = f"{year:04d}" if year >= 0 else f"-{-year:04d}"
    return (
        f"{year_text}-{month:02d}-{day:02d}T{hours:02d}:{minutes:02d}:{secs:02d}"
        f".{rest // 1000:06d}Z"
    )


def in_datetime_range(text: str) -> bool:
    """True when `text` (from utc_text) has a year Python's datetime holds (1 to 9999).

    Some readers of a report parse xsd:dateTime with such a datetime and call
    any other year ill-formed.
    """
    head = text.split("-", 1)[0]
    return len(head) == 4 and head != "0000"


_UTC_TEXT = re.compile(r"(-?\d{4,})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)(?:\.(\d{1,9}))?Z")


def utc_ns(text: str) -> int:
    """Nanoseconds since 1970 of a utc_text (to its precision, the microsecond).

    Raises:
        ValueError: `text` is not of utc_text's form.
    """
    found = _UTC_TEXT.fullmatch(text)
    if found is None:
        raise ValueError(f"not a UTC time: {text!r}")
    year, month, day, hours, minutes, secs = (int(g) for g in found.groups()[:6])
    if not (1 <= month <= 12 and 1 <= day <= 31 and hours < 24 and minutes < 60 and secs < 60):
        raise ValueError(f"not a UTC time: {text!r}")
    fraction = (found.group(7) or "").ljust(9, "0")
    days = days_since_epoch(year, month, day)
    if civil_date(days) != (year, month, day):  # February 30, April 31
        raise ValueError(f"not a UTC time: {text!r}")
    return ((days * _DAY + hours * 3600 + minutes * 60 + secs) * _NS) + int(fraction)
