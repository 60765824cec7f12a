"""Recognising a reading seen before: the last few timestamps of every device, in numpy.

A QoS 1 redelivery, a gateway that retries, or a device that sends its backlog twice
all produce the same (device, timestamp) again. Storing it again is harmless for the
database (the key overwrites itself) but not for the counts, nor for the detectors,
which must not learn a reading twice. Each device keeps a ring of its last
``window`` accepted timestamps (8 bytes each), so memory stays bounded however long
the service runs.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from processors.registry import DeviceTable

EMPTY = np.iinfo(np.int64).min
"""A ring slot that holds no timestamp yet."""


class RecentTimestamps:
    """The last ``window`` timestamps of each device of one kind.

    >>> recent = RecentTimestamps(window=2)
    >>> recent.add(np.array([0, 0, 0, 1]), np.array([10, 20, 30, 10]))
    >>> recent.contains(np.array([0, 0, 1, 1]), np.array([10, 30, 10, 20])).tolist()
    [False, True, True, False]
    """

    def __init__(self, window: int) -> None:
        if window < 0:
            raise ValueError(f"the duplicate window must be 0 or more, not {window}")
        self.window = window
        self.ts = np.full((0, window), EMPTY, dtype=np.int64)
        self.next = np.zeros(0, dtype=np.int64)
        self.newest = np.full(0, EMPTY, dtype=np.int64)
        """At least each device's newest remembered timestamp: a reading stamped later cannot be a
        repeat, and that is nearly every reading, so only the others are compared with the ring."""

    def _grow(self, n: int) -> None:
        have = self.ts.shape[0]
        if n <= have:
            return
        size = max(n, 2 * have, 64)
        ts = np.full((size, self.window), EMPTY, dtype=np.int64)
        ts[:have] = self.ts
        nxt = np.zeros(size, dtype=np.int64)
        nxt[:have] = self.next
        newest = np.full(size, EMPTY, dtype=np.int64)
        newest[:have] = self.newest
        self.ts, self.next, self.newest = ts, nxt, newest

    def contains(self, device: NDArray[np.intp], ts: NDArray[np.int64]) -> NDArray[np.bool_]:
        """Which (device, ts) pairs are among the remembered ones."""
        if self.window == 0 or device.size == 0:
            return np.zeros(device.size, dtype=np.bool_)
        self._grow(int(device.max()) + 1)
        found = np.zeros(device.size, dtype=np.bool_)
        maybe = np.flatnonzero(ts <= self.newest[device])
        if maybe.size:
            # The matches' flat positions, not ``any(axis=1)``: a reduction over a row of a
            # few slots costs more than the comparison itself, and matches are rare.
            hits = np.flatnonzero(np.take(self.ts, device[maybe], axis=0) == ts[maybe, None])
            found[maybe[hits // self.window]] = True
        return found

    def add(self, device: NDArray[np.intp], ts: NDArray[np.int64]) -> None:
        """Remember ``ts`` for each device, oldest forgotten first (rows in arrival order)."""
        if self.window == 0 or device.size == 0:
            return
        self._grow(int(device.max()) + 1)
        order = np.argsort(device, kind="stable")
        dev = device[order]
        changes = dev[1:] != dev[:-1]
        if changes.all():  # one reading per device, the usual cycle: each goes in its device's next slot
            slot = self.next[dev]
            self.ts[dev, slot] = ts[order]
            self.next[dev] = (slot + 1) % self.window
            self.newest[dev] = np.maximum(self.newest[dev], ts[order])
            return
        np.maximum.at(self.newest, device, ts)
        starts = np.flatnonzero(np.concatenate(([True], changes)))
        counts = np.diff(np.append(starts, dev.size))
        rank = np.arange(dev.size) - np.repeat(starts, counts)
        total = np.repeat(counts, counts)
        keep = rank >= total - self.window  # only the newest `window` of a long backlog survive
        dev, rank = dev[keep], rank[keep]
        slot = (self.next[dev] + rank) % self.window
        self.ts[dev, slot] = ts[order][keep]
        unique = dev[np.concatenate(([True], dev[1:] != dev[:-1]))]
        self.next[unique] += counts
        self.next[unique] %= self.window

    def state(self, table: DeviceTable) -> dict[str, NDArray[Any]]:
        n = min(len(table), self.ts.shape[0])
        return {
            "device_id": np.array([d.device_id for d in table.devices[:n]], dtype=np.str_),
            "ts": self.ts[:n].copy(),
            "next": self.next[:n].copy(),
        }

    def restore(self, state: dict[str, NDArray[Any]], table: DeviceTable) -> None:
        """Take back a saved memory, matching devices by id (the registry may have changed)."""
        ids = state["device_id"].tolist()
        saved_ts = state["ts"]
        if saved_ts.ndim != 2 or not ids:
            return
        positions = np.array([table.index.get(i, -1) for i in ids], dtype=np.intp)
        known = positions >= 0
        if not known.any():
            return
        self._grow(int(positions[known].max()) + 1)
        width = min(self.window, saved_ts.shape[1])
        self.ts[positions[known], :width] = saved_ts[known][:, -width:] if width else saved_ts[known][:, :0]
        self.next[positions[known]] = state["next"][known] % max(self.window, 1)
        if self.window:
            self.newest[positions[known]] = self.ts[positions[known]].max(axis=1)
