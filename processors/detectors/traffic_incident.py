"""Traffic incidents: speed collapsing while occupancy climbs, against the road's recent state.

A crash or a blocked lane pushes a road onto the congested branch within
minutes: mean speed falls to a fraction of what it just was while the detector
is occupied far more. Rush-hour congestion builds over half an hour or more, so
the baselines (exponential smoothing over 30 minutes, learned only from calm
readings) move with it and it does not score.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from processors.detectors._robust import rate
from processors.detectors.base import Category, Detector, Round, State, spec
from processors.kinds import SensorKind

SLOWDOWN = 0.5
"""Speed down by half its baseline scores 0.5, if occupancy also rose."""
CROWDING = 20.0
"""Occupancy up by 20 points scores 0.5, if speed also fell."""
TAU_MS = 1_800_000
WARMUP = 10


class TrafficIncidentDetector(Detector):
    """Speed collapse with occupancy rise.

    Score: half the smaller of (speed drop / half the baseline speed) and
    (occupancy rise / 20 points), capped at 1.

    >>> import numpy as np
    >>> from processors.batch import series_batch
    >>> from processors.kinds import get_kind
    >>> kind = get_kind("traffic")
    >>> speed = np.r_[np.full(40, 42.0), np.full(5, 6.0)]
    >>> occupancy = np.r_[np.full(40, 18.0), np.full(5, 78.0)]
    >>> detector = TrafficIncidentDetector(kind)
    >>> scores = detector.update(series_batch(kind, {"mean_speed": speed, "occupancy": occupancy}))
    >>> float(scores[:40].max()), bool(scores[40:].min() >= 0.5)
    (0.0, True)
    """

    name = "traffic_incident"
    category = Category.RULE
    targets = ("traffic_incident",)
    description = "speed collapsing while occupancy climbs"

    @classmethod
    def applies_to(cls, kind: SensorKind) -> bool:
        return {"mean_speed", "occupancy"} <= set(kind.measure_names)

    def select_fields(self, kind: SensorKind) -> tuple[int, ...]:
        return (kind.index_of("mean_speed"), kind.index_of("occupancy"))

    def column_names(self) -> tuple[str, ...]:
        return ("mean_speed",)

    def state_spec(self) -> dict[str, tuple[np.dtype[Any], tuple[int, ...], Any]]:
        return {"baseline": spec(np.float32, (2,), np.nan), "n": spec(np.uint16, (), 0)}

    def step(self, state: State, shared: State, r: Round) -> NDArray[np.float64]:
        base = state["baseline"].astype(np.float64)
        speed, occupancy = r.x[:, 0], r.x[:, 1]
        slowdown = (base[:, 0] - speed) / np.maximum(base[:, 0], 1.0)
        crowding = occupancy - base[:, 1]
        evidence = np.minimum(slowdown / SLOWDOWN, crowding / CROWDING) / 2.0
        warm = state["n"] >= WARMUP
        score = np.where(warm & ~np.isnan(evidence), np.clip(evidence, 0.0, 1.0), 0.0)
        have = ~np.isnan(r.x)
        learn = have & (score < self.threshold)[:, None]
        alpha = rate(r.interval_ms, TAU_MS, 0.02)
        alpha = np.maximum(alpha, 1.0 / (state["n"].astype(np.float64)[:, None] + 1.0))
        updated = np.where(np.isnan(base), r.x, base + alpha * (r.x - base))
        state["baseline"] = np.where(learn, updated, base).astype(np.float32)
        state["n"] = np.where(
            learn.all(axis=1), np.minimum(state["n"].astype(np.int64) + 1, 65535), state["n"]
        ).astype(np.uint16)
        return np.where(have.all(axis=1), score, np.nan)[:, None]


DETECTOR = TrafficIncidentDetector
