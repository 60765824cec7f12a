"""Device timestamps: one integer of epoch milliseconds, whatever the device sent.

Devices disagree on time formats; the store must not. Every timestamp becomes an
``int`` of milliseconds since the Unix epoch (UTC) as early as possible, so that a
redelivered message always maps to the very same point in the database.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from datetime import UTC, datetime

import numpy as np
from numpy.typing import NDArray

# Epoch numbers above this are milliseconds: 1e11 seconds is the year 5138, while
# 1e11 milliseconds is March 1973, older than any sensor we will ever ingest.
_MS_THRESHOLD = 100_000_000_000


def parse_timestamp(value: object) -> int:
    """Return epoch milliseconds for an RFC 3339 string or epoch seconds/milliseconds.

    Raises ``ValueError`` with a message that tells the device author what to send.

    >>> parse_timestamp("2026-11-23T04:30:00Z")
    1795408200000
    >>> parse_timestamp("2026-11-23T11:30:00.250+07:00")
    1795408200250
    >>> parse_timestamp(1795408200), parse_timestamp(1795408200250)
    (1795408200000, 1795408200250)
    """
    if isinstance(value, bool):
        raise ValueError("timestamp must be an RFC 3339 string or epoch seconds/milliseconds, not a boolean")
    if isinstance(value, int | float):
        if not math.isfinite(value) or value < 0:
            raise ValueError(f"epoch timestamp {value!r} is not a finite, non-negative number")
        seconds_or_ms = float(value)
        if seconds_or_ms >= _MS_THRESHOLD:
            return round(seconds_or_ms)
        return round(seconds_or_ms * 1000.0)
    if isinstance(value, str):
        return _parse_rfc3339(value)
    raise ValueError(
        f"timestamp must be an RFC 3339 string or epoch seconds/milliseconds, not {type(value).__name__}"
    )


_RFC3339 = re.compile(
    r"(\d{4}-\d{2}-\d{2})[Tt ](\d{2}:\d{2}:\d{2})(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})?",
    re.ASCII,
)
"""RFC 3339 ``date-time`` (section 5.6), with the space separator its note allows.

Python's ``fromisoformat`` alone would also take ISO 8601 forms that are not RFC 3339
(week dates, basic format, hours without minutes), which a device must not rely on.
"""


def _parse_rfc3339(text: str) -> int:
    if len(text) > 40:
        raise ValueError("timestamp string is longer than any RFC 3339 timestamp")
    match = _RFC3339.fullmatch(text)
    if match is None:
        raise ValueError(f"timestamp {text!r} is not RFC 3339 (e.g. 2026-11-23T04:30:00Z)")
    date, clock, fraction, offset = match.groups()
    if offset is None:
        raise ValueError(f"timestamp {text!r} has no UTC offset; add 'Z' or '+07:00'")
    # fromisoformat checks the calendar (30 February, second 60) and applies the offset;
    # the fraction is cut to milliseconds first, so every spelling floors the same way.
    millis = (fraction or ".000")[1:4].ljust(3, "0")
    zone = "+00:00" if offset in ("Z", "z") else offset
    try:
        parsed = datetime.fromisoformat(f"{date}T{clock}.{millis}{zone}")
    except ValueError as bad:
        raise ValueError(f"timestamp {text!r} is not a valid date and time: {bad}") from None
    delta = parsed - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1000 + delta.microseconds // 1000


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def format_rfc3339(ms: int) -> str:
    """Render epoch milliseconds as RFC 3339 UTC with millisecond precision.

    >>> format_rfc3339(1795408200250)
    '2026-11-23T04:30:00.250Z'
    """
    return datetime.fromtimestamp(ms / 1000.0, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


_CANONICAL_LENGTHS = (20, 24)
_DIGITS = np.array([0, 1, 2, 3, 5, 6, 8, 9, 11, 12, 14, 15, 17, 18, 20, 21, 22])
"""Where the digits are in ``YYYY-MM-DDTHH:MM:SS.fffZ`` (the last three only in the long form)."""


def parse_utc_strings(texts: Sequence[str]) -> tuple[NDArray[np.int64], NDArray[np.bool_]]:
    """Vectorised :func:`parse_timestamp` for the spellings most devices send.

    Handles ``YYYY-MM-DDTHH:MM:SSZ`` and ``YYYY-MM-DDTHH:MM:SS.fffZ`` for a whole
    column at once (a Python call per string costs more than the rest of
    validation together). Returns epoch milliseconds and a mask of the strings it
    could read; the caller sends every other string through :func:`parse_timestamp`,
    so both paths always agree (a property test holds them to it).

    >>> texts = ["2026-11-23T04:30:00Z", "2026-11-23T04:30:00.250Z", "2026-02-30T00:00:00Z"]
    >>> ms, ok = parse_utc_strings(texts)
    >>> ms[ok].tolist(), ok.tolist()
    ([1795408200000, 1795408200250], [True, True, False])
    """
    n = len(texts)
    ms = np.zeros(n, dtype=np.int64)
    ok = np.zeros(n, dtype=np.bool_)
    lengths = np.fromiter(map(len, texts), dtype=np.int64, count=n)
    for length in _CANONICAL_LENGTHS:
        rows = np.flatnonzero(lengths == length)
        if rows.size == 0:
            continue
        chosen = texts if rows.size == n else [texts[i] for i in rows.tolist()]
        try:
            joined = "".join(chosen).encode("ascii")
        except UnicodeEncodeError:
            continue  # somebody sent non-ASCII: parse_timestamp will say what is wrong
        codes = np.frombuffer(joined, dtype=np.uint8).reshape(rows.size, length)
        ms[rows], ok[rows] = _canonical(codes, long=length == 24)
    return ms, ok


def _canonical(codes: NDArray[np.uint8], long: bool) -> tuple[NDArray[np.int64], NDArray[np.bool_]]:
    """Epoch ms of fixed-length ``YYYY-MM-DDTHH:MM:SS[.fff]Z`` rows of ASCII codes, and which are valid."""
    # One contiguous row per digit position: the arithmetic below runs over whole rows.
    d = np.ascontiguousarray(codes[:, _DIGITS if long else _DIGITS[:14]].T, dtype=np.int32)
    d -= 48
    good = (d.view(np.uint32) <= 9).all(axis=0)  # a non-digit wraps around to a huge number
    separators, expected = _SEPARATORS[long]
    good &= (codes[:, separators] == expected).all(axis=1)
    millis = d[14] * 100 + d[15] * 10 + d[16] if long else np.zeros(codes.shape[0], dtype=np.int32)
    year = d[0] * 1000 + d[1] * 100 + d[2] * 10 + d[3]
    month = d[4] * 10 + d[5]
    day = d[6] * 10 + d[7]
    hour = d[8] * 10 + d[9]
    leap = ((year % 4 == 0) & (year % 100 != 0)) | (year % 400 == 0)
    month_ok = (month >= 1) & (month <= 12)
    days_in_month = _DAYS_IN_MONTH[np.where(month_ok, month, 1)] + ((month == 2) & leap)
    seconds_of_day = hour * 3600 + (d[10] * 10 + d[11]) * 60 + d[12] * 10 + d[13]
    good &= (year >= 1) & month_ok & (day >= 1) & (day <= days_in_month)
    good &= (hour < 24) & (d[10] < 6) & (d[12] < 6)
    # Days from the civil date (H. Hinnant, "chrono-Compatible Low-Level Date Algorithms").
    y = year - (month <= 2)
    era = y // 400
    yoe = y - era * 400
    doy = (153 * (month + np.where(month > 2, -3, 9)) + 2) // 5 + day - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    days = (era * 146_097 + doe - 719_468).astype(np.int64)
    ms = (days * 86_400 + seconds_of_day) * 1000 + millis
    return np.where(good, ms, 0), good


_SEPARATORS = {
    True: (np.array([4, 7, 10, 13, 16, 19, 23]), np.array([45, 45, 84, 58, 58, 46, 90], dtype=np.uint8)),
    False: (np.array([4, 7, 10, 13, 16, 19]), np.array([45, 45, 84, 58, 58, 90], dtype=np.uint8)),
}
"""Where ``- - T : : . Z`` (or ``- - T : : Z``) must be, and their ASCII codes."""
_DAYS_IN_MONTH = np.array([0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31], dtype=np.int64)
