"""The US EPA Air Quality Index, hour by hour, for every air monitor.

Per pollutant the index averaging EPA prescribes: PM2.5 and PM10 as the 12-hour
NowCast of hourly means (AirNow's real-time index), ozone over 8 hours (and over
1 hour from 0.125 ppm), CO over 8 hours, NO2 over 1 hour. Like AirNow, the index
is recomputed when an hour closes, and every reading of the next hour carries it.
Tables and formulas: :mod:`processors.aqi` (EPA-454/B-24-002, 2024 PM2.5
breakpoints).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from processors.aqi import nowcast, us_aqi
from processors.detectors._hourly import hourly_scores, hourly_spec, mean_of
from processors.detectors.base import Category, Detector, Round, State
from processors.kinds import SensorKind

POLLUTANTS = ("pm25", "pm10", "o3", "no2", "co")
AQI_AT_HALF = 150.0
"""The score is 0.5 at AQI 150: from 151 the air is unhealthy for everyone ("Unhealthy")."""


def aqi_score(aqi: NDArray[np.float64]) -> NDArray[np.float64]:
    """0 up to AQI 50 (good air), 0.5 at 150, 1 from 250 on."""
    score: NDArray[np.float64] = np.clip((np.nan_to_num(aqi) - 50.0) / (2 * (AQI_AT_HALF - 50.0)), 0.0, 1.0)
    return score


class UsAqiDetector(Detector):
    """US EPA AQI sub-indices per pollutant.

    Score per pollutant column: (AQI - 50) / 200, clipped to [0, 1]; 0.5 at AQI 150.

    >>> import numpy as np
    >>> from processors.batch import series_batch
    >>> from processors.kinds import get_kind
    >>> kind = get_kind("air")
    >>> minutes = np.arange(240)
    >>> pm25 = np.where(minutes < 120, 8.0, 150.0)  # clean, then a smoke plume
    >>> detector = UsAqiDetector(kind)
    >>> scores = detector.update(series_batch(kind, {"pm25": pm25}))[:, detector.columns.index("pm25")]
    >>> float(scores[100]), bool(scores[-1] >= 0.5)
    (0.0, True)
    """

    name = "aqi_us"
    category = Category.STANDARD
    targets = ("pollution_episode",)
    description = "US EPA Air Quality Index (2024 PM2.5 breakpoints) above 150"

    @classmethod
    def applies_to(cls, kind: SensorKind) -> bool:
        return "pm25" in kind.measure_names or "pm10" in kind.measure_names

    def select_fields(self, kind: SensorKind) -> tuple[int, ...]:
        return tuple(kind.index_of(p) for p in POLLUTANTS if p in kind.measure_names)

    def state_spec(self) -> dict[str, tuple[np.dtype[Any], tuple[int, ...], Any]]:
        return hourly_spec(len(self.fields), 12)

    def step(self, state: State, shared: State, r: Round) -> NDArray[np.float64]:
        return hourly_scores(state, r.ts_ms, r.x, self._index)

    def _index(self, ring: NDArray[np.float64]) -> NDArray[np.float64]:
        scores = np.zeros(ring.shape[:2])
        for j, name in enumerate(self.columns):
            series = ring[:, j, :]
            if name in ("pm25", "pm10"):
                aqi = us_aqi(name, nowcast(series), "24h")
            elif name == "o3":
                aqi = np.fmax(us_aqi("o3", mean_of(series, 8, 6), "8h"), us_aqi("o3", series[:, 0], "1h"))
            elif name == "co":
                aqi = us_aqi("co", mean_of(series, 8, 6), "8h")
            else:
                aqi = us_aqi(name, series[:, 0], "1h")
            scores[:, j] = aqi_score(aqi)
        return scores


DETECTOR = UsAqiDetector
