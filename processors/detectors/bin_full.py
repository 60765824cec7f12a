"""Bins about to overflow: when each bin will be full, from its own filling rate.

The filling rate is smoothed over the last three hours of rises (an emptying is
not a rise); the time to full is what is left over that rate. A forecast, not a
fault: it tells the collection crews where to go first.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from processors.detectors._robust import rate
from processors.detectors.base import Category, Detector, Round, State, spec
from processors.kinds import SensorKind

FULL = 100.0
TAU_MS = 3 * 3_600_000
HOUR_MS = 3_600_000.0
EMPTIED = -5.0
"""A fall of more than this (points) is a collection, not noise."""


class BinFullDetector(Detector):
    """Predicted time until a bin is full.

    Score: half of (horizon / predicted hours to full), capped at 1, where the
    horizon is ``CITYPULSE_FULL_HORIZON_S``; a bin already full scores 1.

    >>> import numpy as np
    >>> from processors.batch import series_batch
    >>> from processors.kinds import get_kind
    >>> kind = get_kind("waste")
    >>> fill = np.minimum(40 + 2.5 * np.arange(24), 100)  # 10 points an hour
    >>> scores = BinFullDetector(kind).update(series_batch(kind, {"fill_level": fill}))[:, 0]
    >>> bool(scores[4] < 0.5), bool(scores[-6] >= 0.5)
    (True, True)
    """

    name = "bin_full"
    category = Category.FORECAST
    targets = ()
    description = "a bin predicted to be full within the forecast horizon"

    @classmethod
    def applies_to(cls, kind: SensorKind) -> bool:
        return kind.name == "waste" and "fill_level" in kind.measure_names

    def select_fields(self, kind: SensorKind) -> tuple[int, ...]:
        return (kind.index_of("fill_level"),)

    def state_spec(self) -> dict[str, tuple[np.dtype[Any], tuple[int, ...], Any]]:
        return {
            "per_hour": spec(np.float32, (), 0.0),
            "last": spec(np.float32, (), np.nan),
            "last_ts": spec(np.int64, (), np.iinfo(np.int64).min),
        }

    def step(self, state: State, shared: State, r: Round) -> NDArray[np.float64]:
        fill = r.x[:, 0]
        last = state["last"].astype(np.float64)
        fresh = ~np.isnan(fill) & (r.ts_ms > state["last_ts"])
        hours = np.maximum(r.ts_ms - state["last_ts"], 1) / HOUR_MS
        change = fill - last
        rising = fresh & ~np.isnan(last) & (change > EMPTIED)
        alpha = rate(r.interval_ms, TAU_MS, 0.05)[:, 0]
        per_hour = state["per_hour"].astype(np.float64)
        per_hour = np.where(rising, per_hour + alpha * (np.maximum(change, 0.0) / hours - per_hour), per_hour)
        per_hour = np.where(fresh & (change <= EMPTIED), 0.0, per_hour)
        left = np.maximum(FULL - fill, 0.0)
        horizon_h = self.config.full_horizon_ms / HOUR_MS
        with np.errstate(divide="ignore", invalid="ignore"):
            hours_to_full = np.where(per_hour > 0.01, left / per_hour, np.inf)
            score = np.where(left <= 0.0, 1.0, np.clip(0.5 * horizon_h / hours_to_full, 0.0, 1.0))
        state["per_hour"] = per_hour.astype(np.float32)
        state["last"] = np.where(fresh, fill, last).astype(np.float32)
        state["last_ts"] = np.where(fresh, r.ts_ms, state["last_ts"])
        return np.where(np.isnan(fill), np.nan, score)[:, None]


DETECTOR = BinFullDetector
