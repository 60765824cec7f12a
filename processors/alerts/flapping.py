"""Flapping: a condition that keeps starting and ending is one problem, not many.

Each (rule, target) remembers when its condition last started, up to the
rule's ``flapping.count`` onsets. When ``count`` onsets fall within
``flapping.window``, the condition is flapping: the engine raises (or keeps)
one alert marked flapping, which resolves only after the condition has stayed
clear for ``flapping.clear_for``. So a signal that toggles every few minutes
costs subscribers one alert, however long it goes on.

>>> onsets = ()
>>> for minute in (0, 10, 20):
...     onsets = record_onset(onsets, minute * 60_000, keep=3)
>>> is_flapping(onsets, 20 * 60_000, count=3, window_ms=3_600_000)
True
>>> is_flapping(onsets, 90 * 60_000, count=3, window_ms=3_600_000)
False
"""

from __future__ import annotations


def record_onset(onsets: tuple[int, ...], at_ms: int, keep: int) -> tuple[int, ...]:
    """``onsets`` with one more at ``at_ms``, keeping only the latest ``keep`` (bounded memory)."""
    return (*onsets, at_ms)[-keep:]


def recent(onsets: tuple[int, ...], now_ms: int, window_ms: int) -> int:
    """How many onsets fell within the window ending now."""
    return sum(1 for t in onsets if now_ms - t < window_ms)


def is_flapping(onsets: tuple[int, ...], now_ms: int, count: int, window_ms: int) -> bool:
    return recent(onsets, now_ms, window_ms) >= count
