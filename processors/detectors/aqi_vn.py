"""Vietnam's VN_AQI, hour by hour, for every air monitor.

The hourly index of Decision 1459/QĐ-TCMT (2019): PM2.5 and PM10 as the 12-hour
NowCast of hourly means (formula 2), O3, NO2, CO and SO2 as 1-hour means
(formula 1), breakpoints from its Table 2, recomputed as each hour closes.
Tables and formulas: :mod:`processors.aqi`.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from processors.aqi import nowcast, vn_aqi
from processors.detectors._aqi import HourlyIndexDetector


class VnAqiDetector(HourlyIndexDetector):
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
    description = "Vietnam's VN_AQI (Decision 1459/QĐ-TCMT) above 150"
    POLLUTANTS = ("pm25", "pm10", "o3", "no2", "co", "so2")

    def sub_index(self, pollutant: str, hourly: NDArray[np.float64]) -> NDArray[np.float64]:
        return vn_sub_index(pollutant, hourly)


def vn_sub_index(pollutant: str, hourly: NDArray[np.float64]) -> NDArray[np.float64]:
    """VN_AQI of ``pollutant`` per device from hourly means (rows, hours; column 0 the hour just closed)."""
    if pollutant in ("pm25", "pm10"):
        return vn_aqi(pollutant, nowcast(hourly))
    return vn_aqi("o3_1h" if pollutant == "o3" else pollutant, hourly[:, 0])


DETECTOR = VnAqiDetector
