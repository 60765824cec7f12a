"""Parsing the human spellings of durations and sizes used on the command line."""

from __future__ import annotations

import re

_DURATION = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*(ms|s|m|h|d|w)?\s*$")
_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}


def parse_duration(text: str) -> float:
    """Seconds in ``"90"``, ``"90s"``, ``"15m"``, ``"2h"``, ``"7d"`` or ``"1w"``.

    >>> parse_duration("15m"), parse_duration("1.5h"), parse_duration("10")
    (900.0, 5400.0, 10.0)
    """
    match = _DURATION.match(text)
    if not match:
        raise ValueError(f"{text!r} is not a duration; use e.g. 30s, 15m, 2h, 7d")
    return float(match.group(1)) * _SECONDS[match.group(2) or "s"]


def human_bytes(size: float) -> str:
    """``1536`` -> ``'1.5 KiB'``.

    >>> human_bytes(1536)
    '1.5 KiB'
    """
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")


def human_rate(per_s: float) -> str:
    """A rate as people read it: whole numbers when large, one or two decimals when small.

    At low traffic a whole number would show ``0`` for a fleet that is sending.

    >>> human_rate(12345.6), human_rate(42.26), human_rate(0.4), human_rate(0.04), human_rate(0)
    ('12,346', '42', '0.4', '0.04', '0')
    """
    if per_s == 0:
        return "0"
    if abs(per_s) >= 10:
        return f"{per_s:,.0f}"
    if abs(per_s) >= 0.1:
        return f"{per_s:.1f}"
    return f"{per_s:.2f}"
