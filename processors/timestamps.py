"""Device timestamps: one integer of epoch milliseconds, whatever the device sent.

Devices disagree on time formats; the store must not. Every timestamp becomes an
``int`` of milliseconds since the Unix epoch (UTC) as early as possible, so that a
redelivered message always maps to the very same point in the database.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime

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


def _parse_rfc3339(text: str) -> int:
    if len(text) > 40:
        raise ValueError("timestamp string is longer than any RFC 3339 timestamp")
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"timestamp {text!r} is not RFC 3339 (e.g. 2026-11-23T04:30:00Z)") from None
    if parsed.tzinfo is None:
        raise ValueError(f"timestamp {text!r} has no UTC offset; add 'Z' or '+07:00'")
    delta = parsed - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1000 + delta.microseconds // 1000


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def format_rfc3339(ms: int) -> str:
    """Render epoch milliseconds as RFC 3339 UTC with millisecond precision.

    >>> format_rfc3339(1795408200250)
    '2026-11-23T04:30:00.250Z'
    """
    return datetime.fromtimestamp(ms / 1000.0, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
