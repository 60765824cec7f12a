"""The duplicate memory must answer as a plain list of each device's last timestamps would."""

from __future__ import annotations

from collections import deque

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from processors.dedup import RecentTimestamps
from processors.registry import Device, Registry

ROWS = st.lists(st.tuples(st.integers(0, 5), st.integers(0, 40)), max_size=30)
"""(device, ts) rows of one call: few devices and timestamps, so repeats and late readings are common."""


@settings(max_examples=300, deadline=None)
@given(window=st.integers(0, 4), calls=st.lists(st.tuples(ROWS, ROWS), max_size=8), restart=st.booleans())
def test_contains_agrees_with_the_last_timestamps_of_each_device(
    window: int, calls: list[tuple[list[tuple[int, int]], list[tuple[int, int]]]], restart: bool
) -> None:
    recent = RecentTimestamps(window)
    model: dict[int, deque[int]] = {}
    table = Registry(Device(f"air-{i}", "air", "Ba Đình", 21.0, 105.8) for i in range(6)).tables["air"]
    for added, asked in calls:
        device = np.array([d for d, _ in asked], dtype=np.intp)
        ts = np.array([t for _, t in asked], dtype=np.int64)
        expected = [t in model.get(d, ()) for d, t in asked]
        assert recent.contains(device, ts).tolist() == expected
        recent.add(
            np.array([d for d, _ in added], dtype=np.intp), np.array([t for _, t in added], dtype=np.int64)
        )
        for d, t in added:
            model.setdefault(d, deque(maxlen=window)).append(t)
        if restart:  # what a restarted service restores answers the same
            saved = recent.state(table)
            recent = RecentTimestamps(window)
            recent.restore(saved, table)
