"""WHO 2021 air quality guideline exceedances (short-term levels).

24-hour means of PM2.5, PM10, NO2 and CO and the 8-hour mean of O3, against the
WHO global air quality guidelines (2021) short-term levels (:mod:`processors.aqi`).
A mean needs three quarters of its hours.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from processors.aqi import WHO_2021_SHORT_TERM
from processors.detectors._hourly import hourly_scores, hourly_spec, mean_of
from processors.detectors.base import Category, Detector, Round, State
from processors.kinds import SensorKind


class WhoAirDetector(Detector):
    """Exceedance of the WHO 2021 short-term guideline levels.

    Score per pollutant column: mean / guideline / 2, capped at 1 (0.5 at the guideline).

    >>> import numpy as np
    >>> from processors.batch import series_batch
    >>> from processors.kinds import get_kind
    >>> kind = get_kind("air")
    >>> detector = WhoAirDetector(kind)
    >>> day = series_batch(kind, {"pm25": np.full(25 * 60, 30.0)})  # a day at twice the guideline
    >>> float(detector.update(day)[-1, detector.columns.index("pm25")])
    1.0
    """

    name = "who_air"
    category = Category.STANDARD
    targets = ("pollution_episode",)
    description = "WHO 2021 short-term air quality guideline exceeded"

    @classmethod
    def applies_to(cls, kind: SensorKind) -> bool:
        return any(p in kind.measure_names for p in WHO_2021_SHORT_TERM)

    def select_fields(self, kind: SensorKind) -> tuple[int, ...]:
        return tuple(kind.index_of(p) for p in WHO_2021_SHORT_TERM if p in kind.measure_names)

    def state_spec(self) -> dict[str, tuple[np.dtype[Any], tuple[int, ...], Any]]:
        return hourly_spec(len(self.fields), 24)

    def step(self, state: State, shared: State, r: Round) -> NDArray[np.float64]:
        return hourly_scores(state, r.ts_ms, r.x, self._exceedance)

    def _exceedance(self, ring: NDArray[np.float64]) -> NDArray[np.float64]:
        scores = np.zeros(ring.shape[:2])
        for j, name in enumerate(self.columns):
            series = ring[:, j, :]
            mean = mean_of(series, 8, 6) if name == "o3" else mean_of(series, 24, 18)
            scores[:, j] = np.clip(np.nan_to_num(mean / WHO_2021_SHORT_TERM[name]) / 2.0, 0.0, 1.0)
        return scores


DETECTOR = WhoAirDetector
