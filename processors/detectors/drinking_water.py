"""Drinking-water limits of Vietnam's QCVN 01-1:2018/BYT, reading by reading.

National technical regulation on domestic water quality (Ministry of Health,
2018), Table 1: pH 6.0-8.5, turbidity at most 2 NTU, free chlorine 0.2-1.0 mg/L.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from processors.detectors.base import Category, Detector, Round, State
from processors.kinds import SensorKind

QCVN_01_1_2018 = {"ph": (6.0, 8.5), "turbidity": (None, 2.0), "free_chlorine": (0.2, 1.0)}
"""(lowest, highest) allowed; None where the regulation sets no bound."""


class DrinkingWaterDetector(Detector):
    """Values outside the QCVN 01-1:2018/BYT limits.

    Score: outside the limits, 0.5 plus half the excess over the width of the
    allowed range, capped at 1; inside, 0.5 minus the distance to the nearest limit
    over the width, down to 0. A value wavering at a limit therefore stays one
    alarm (it must come back a quarter of the range to end it), not a hundred.

    >>> import numpy as np
    >>> from processors.batch import series_batch
    >>> from processors.kinds import get_kind
    >>> kind = get_kind("water")
    >>> detector = DrinkingWaterDetector(kind)
    >>> scores = detector.update(series_batch(kind, {"free_chlorine": [0.5, 0.15, 1.4]}))
    >>> [round(float(s), 2) for s in scores[:, detector.columns.index("free_chlorine")]]
    [0.12, 0.53, 0.75]
    """

    name = "drinking_water"
    category = Category.STANDARD
    targets = ("pipe_burst",)
    description = "outside the drinking-water limits of QCVN 01-1:2018/BYT"

    @classmethod
    def applies_to(cls, kind: SensorKind) -> bool:
        return kind.name == "water"

    def select_fields(self, kind: SensorKind) -> tuple[int, ...]:
        return tuple(kind.index_of(p) for p in QCVN_01_1_2018 if p in kind.measure_names)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        limits = [QCVN_01_1_2018[name] for name in self.columns]
        self._lo = np.array([-np.inf if lo is None else lo for lo, _ in limits])
        self._hi = np.array([np.inf if hi is None else hi for _, hi in limits])
        self._width = np.array([hi - (0.0 if lo is None else lo) for lo, hi in limits])

    def state_spec(self) -> dict[str, tuple[np.dtype[Any], tuple[int, ...], Any]]:
        return {}

    def step(self, state: State, shared: State, r: Round) -> NDArray[np.float64]:
        excess = np.maximum(self._lo - r.x, 0.0) + np.maximum(r.x - self._hi, 0.0)
        outside = (r.x < self._lo) | (r.x > self._hi)
        margin = np.minimum(r.x - self._lo, self._hi - r.x)
        inside = np.clip(0.5 - margin / self._width, 0.0, 0.5 - 1e-6)
        scores = np.where(outside, np.clip(0.5 + 0.5 * excess / self._width, 0.0, 1.0), inside)
        return np.where(np.isnan(r.x), np.nan, scores)


DETECTOR = DrinkingWaterDetector
