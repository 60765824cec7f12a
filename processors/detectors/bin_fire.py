"""Bin fires: a waste bin heating far above its usual temperature, fast.

A bin warms in the sun by a few degrees an hour at most; smouldering waste that
catches fire heats it by tens of degrees within half an hour. The score needs
both: well above the bin's own baseline (smoothed over six hours, learned from
calm readings) and rising fast, or simply hotter than any sun makes a bin.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from processors.detectors._robust import rate
from processors.detectors.base import Category, Detector, Round, State, spec
from processors.kinds import SensorKind

EXCESS_C = 20.0
RISE_C_PER_H = 10.0
HOT_C = 70.0
TAU_MS = 6 * 3_600_000
HOUR_MS = 3_600_000.0


class BinFireDetector(Detector):
    """Fast, large temperature rise in a waste bin.

    Score: half the smaller of (excess over baseline / 20 °C) and (rise rate /
    10 °C per hour), or half of temperature / 70 °C if larger; capped at 1.

    >>> import numpy as np
    >>> from processors.batch import series_batch
    >>> from processors.kinds import get_kind
    >>> kind = get_kind("waste")
    >>> temperature = np.r_[np.full(20, 31.0), 55.0, 80.0, 95.0]
    >>> detector = BinFireDetector(kind)
    >>> scores = detector.update(series_batch(kind, {"temperature": temperature}))[:, 0]
    >>> bool(scores[:20].max() < 0.5), bool(scores[20:].min() >= 0.5)
    (True, True)
    """

    name = "bin_fire"
    category = Category.RULE
    targets = ("bin_fire",)
    description = "a bin heating far above its usual temperature, fast"

    @classmethod
    def applies_to(cls, kind: SensorKind) -> bool:
        return kind.name == "waste" and "temperature" in kind.measure_names

    def select_fields(self, kind: SensorKind) -> tuple[int, ...]:
        return (kind.index_of("temperature"),)

    def state_spec(self) -> dict[str, tuple[np.dtype[Any], tuple[int, ...], Any]]:
        return {
            "baseline": spec(np.float32, (), np.nan),
            "last": spec(np.float32, (), np.nan),
            "last_ts": spec(np.int64, (), np.iinfo(np.int64).min),
        }

    def step(self, state: State, shared: State, r: Round) -> NDArray[np.float64]:
        t = r.x[:, 0]
        base = state["baseline"].astype(np.float64)
        last = state["last"].astype(np.float64)
        hours = np.maximum(r.ts_ms - state["last_ts"], 0.5 * r.interval_ms) / HOUR_MS
        rise = np.where(np.isnan(last), 0.0, (t - last) / hours)
        excess = t - base
        both = np.minimum(excess / EXCESS_C, rise / RISE_C_PER_H) / 2.0
        hot = t / HOT_C / 2.0
        score = np.clip(np.fmax(np.nan_to_num(both, nan=0.0), np.nan_to_num(hot)), 0.0, 1.0)
        calm = ~np.isnan(t) & (score < self.threshold)
        alpha = rate(r.interval_ms, TAU_MS, 0.02)[:, 0]
        state["baseline"] = np.where(
            calm, np.where(np.isnan(base), t, base + alpha * (t - base)), base
        ).astype(np.float32)
        fresh = ~np.isnan(t) & (r.ts_ms > state["last_ts"])
        state["last"] = np.where(fresh, t, last).astype(np.float32)
        state["last_ts"] = np.where(fresh, r.ts_ms, state["last_ts"])
        return np.where(np.isnan(t), np.nan, score)[:, None]


DETECTOR = BinFireDetector
