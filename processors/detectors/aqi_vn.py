"""Vietnam's VN_AQI, hour by hour, for every air monitor.

The hourly index of Decision 1459/QĐ-TCMT (2019): PM2.5 and PM10 as the 12-hour
NowCast of hourly means (formula 2), O3, NO2, CO and SO2 as 1-hour means
(formula 1), breakpoints from its Table 2, recomputed as each hour closes.
Tables and formulas: :mod:`processors.aqi`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from processors.aqi import nowcast, vn_aqi
from processors.detectors._hourly import hourly_scores, hourly_spec
from processors.detectors.aqi_us import aqi_score
from processors.detectors.base import Category, Detector, Round, State
from processors.kinds import SensorKind

POLLUTANTS = ("pm25", "pm10", "o3", "no2", "co", "so2")


class VnAqiDetector(Detector):
    """VN_AQI sub-indices per pollutant.

    Score per pollutant column: (VN_AQI - 50) / 200, clipped to [0, 1]; 0.5 at 150,
    where "Kém" (poor) ends and "Xấu" (bad: ordinary people start to feel it) begins.

    >>> import numpy as np
    >>> from processors.batch import series_batch
    >>> from processors.kinds import get_kind
    >>> kind = get_kind("air")
    >>> detector = VnAqiDetector(kind)
    >>> batch = series_batch(kind, {"pm25": np.full(180, 80.0)})  # three hours at the Kém/Xấu boundary
    >>> round(float(detector.update(batch)[-1, detector.columns.index("pm25")]), 2)
    0.5
    """

    name = "aqi_vn"
    category = Category.STANDARD
    targets = ("pollution_episode",)
    description = "Vietnam's VN_AQI (Decision 1459/QĐ-TCMT) above 150"

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
                aqi = vn_aqi(name, nowcast(series))
            else:
                aqi = vn_aqi("o3_1h" if name == "o3" else name, series[:, 0])
            scores[:, j] = aqi_score(aqi)
        return scores


DETECTOR = VnAqiDetector
