"""Water mains bursting: pressure collapsing while flow surges, at the same node.

Each node's pressure and flow have a short baseline (exponential smoothing over
about a quarter of an hour, learned only from calm readings: :mod:`._calm`) that follows the
day's demand, morning peak included. A burst shows as both at once and suddenly:
pressure well below its baseline and flow well above, which demand never does
from one reading to the next (it moves both by a few percent).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from processors.detectors._calm import calm_spec, learn_calm, warm
from processors.detectors.base import Category, Detector, Round, State
from processors.kinds import SensorKind

DROP = 0.25
"""Pressure this far below baseline (a share) scores 0.5, if flow also surged."""
SURGE = 0.5
"""Flow this far above baseline scores 0.5, if pressure also dropped."""
TAU_MS = 900_000
WARMUP = 6


class PipeBurstDetector(Detector):
    """Pressure drop with flow surge.

    Score: half the smaller of (pressure drop / 25 %) and (flow rise / 50 %), capped at 1.

    >>> import numpy as np
    >>> from processors.batch import series_batch
    >>> from processors.kinds import get_kind
    >>> kind = get_kind("water")
    >>> pressure = np.r_[np.full(30, 3.2), np.full(5, 1.3)]
    >>> flow = np.r_[np.full(30, 120.0), np.full(5, 420.0)]
    >>> scores = PipeBurstDetector(kind).update(series_batch(kind, {"pressure": pressure, "flow": flow}))
    >>> float(scores[:30].max()), float(scores[30:].min())
    (0.0, 1.0)
    """

    name = "pipe_burst"
    category = Category.RULE
    targets = ("pipe_burst",)
    description = "pressure collapsing while flow surges"

    @classmethod
    def applies_to(cls, kind: SensorKind) -> bool:
        return {"pressure", "flow"} <= set(kind.measure_names)

    def select_fields(self, kind: SensorKind) -> tuple[int, ...]:
        return (kind.index_of("pressure"), kind.index_of("flow"))

    def column_names(self) -> tuple[str, ...]:
        return ("pressure",)

    def state_spec(self) -> dict[str, tuple[np.dtype[Any], tuple[int, ...], Any]]:
        return calm_spec()

    def step(self, state: State, shared: State, r: Round) -> NDArray[np.float64]:
        base = state["baseline"].astype(np.float64)
        pressure, flow = r.x[:, 0], r.x[:, 1]
        drop = (base[:, 0] - pressure) / base[:, 0]
        surge = (flow - base[:, 1]) / np.maximum(base[:, 1], 1e-6)
        evidence = np.minimum(drop / DROP, surge / SURGE) / 2.0
        score = np.where(warm(state, WARMUP) & ~np.isnan(evidence), np.clip(evidence, 0.0, 1.0), 0.0)
        have = learn_calm(state, r, score, self.threshold, TAU_MS, 0.3)
        judged = have.all(axis=1)
        return np.where(judged, score, np.nan)[:, None]


DETECTOR = PipeBurstDetector
