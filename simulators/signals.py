"""Signal models: what a device of each kind reports at a given time.

A model turns (device indices, timestamps) into a value array, vectorised over
devices. The generic model derives everything from the kind's declaration (its
normal band and step), so a newly declared kind can be simulated at once.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np
from numpy.typing import NDArray

from processors.kinds import SensorKind
from simulators.hanoi import UTC_OFFSET_HOURS

DAY_MS = 86_400_000


def local_hour(ts_ms: NDArray[np.int64]) -> NDArray[np.float64]:
    """Hour of day in Hanoi (0-24, fractional) for epoch-millisecond timestamps."""
    local = (ts_ms + UTC_OFFSET_HOURS * 3_600_000) % DAY_MS
    return local.astype(np.float64) / 3_600_000.0


class SignalModel(Protocol):
    kind: SensorKind

    def values(
        self, device: NDArray[np.intp], ts_ms: NDArray[np.int64], rng: np.random.Generator
    ) -> NDArray[np.float64]:
        """One row per (device, timestamp), one column per measure of the kind."""
        ...


class GenericModel:
    """A daily cycle inside each measure's normal band, a per-device offset and noise."""

    def __init__(self, kind: SensorKind, n_devices: int, seed: int) -> None:
        self.kind = kind
        rng = np.random.default_rng(np.random.SeedSequence([seed, 0x5161A1, len(kind.name)]))
        n_measures = len(kind.measures)
        self.bias = rng.normal(0.0, 0.15, size=(n_devices, n_measures))
        self.phase = rng.uniform(0.0, 24.0, size=n_measures)
        normal = np.array([m.normal for m in kind.measures], dtype=np.float64)
        self.mid = normal.mean(axis=1)
        self.half = (normal[:, 1] - normal[:, 0]) / 2.0
        self.lo = np.array([m.lo for m in kind.measures])
        self.hi = np.array([m.hi for m in kind.measures])
        self.step = np.array([m.step or 0.0 for m in kind.measures])

    def values(
        self, device: NDArray[np.intp], ts_ms: NDArray[np.int64], rng: np.random.Generator
    ) -> NDArray[np.float64]:
        hour = local_hour(ts_ms)[:, None]
        daily = np.sin(2.0 * np.pi * (hour - self.phase[None, :]) / 24.0)
        noise = rng.normal(0.0, 0.08, size=(len(device), len(self.mid)))
        raw = self.mid + self.half * (0.6 * daily + self.bias[device] + noise)
        stepped = np.where(
            self.step > 0, np.round(raw / np.where(self.step > 0, self.step, 1.0)) * self.step, raw
        )
        clipped: NDArray[np.float64] = np.clip(stepped, self.lo, self.hi)
        return clipped


def model_for(kind: SensorKind, n_devices: int, seed: int) -> SignalModel:
    """The signal model for ``kind``."""
    return GenericModel(kind, n_devices, seed)
