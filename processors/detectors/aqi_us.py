"""The US EPA Air Quality Index, hour by hour, for every air monitor.

Per pollutant the index averaging EPA prescribes: PM2.5 and PM10 as the 12-hour
NowCast of hourly means (AirNow's real-time index), ozone over 8 hours (and over
1 hour from 0.125 ppm), CO over 8 hours, NO2 over 1 hour. Like AirNow, the index
is recomputed when an hour closes, and every reading of the next hour carries it.
Tables and formulas: :mod:`processors.aqi` (EPA-454/B-24-002, 2024 PM2.5
breakpoints).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from processors.aqi import nowcast, us_aqi
from processors.detectors._aqi import HourlyIndexDetector
from processors.detectors._hourly import mean_of


class UsAqiDetector(HourlyIndexDetector):
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
    description = "US EPA Air Quality Index (2024 PM2.5 breakpoints) above 150"
    POLLUTANTS = ("pm25", "pm10", "o3", "no2", "co")

    def sub_index(self, pollutant: str, hourly: NDArray[np.float64]) -> NDArray[np.float64]:
        return us_sub_index(pollutant, hourly)


def us_sub_index(pollutant: str, hourly: NDArray[np.float64]) -> NDArray[np.float64]:
    """US AQI of ``pollutant`` per device from hourly means (rows, hours; column 0 the hour just closed)."""
    if pollutant in ("pm25", "pm10"):
        return us_aqi(pollutant, nowcast(hourly), "24h")
    if pollutant == "o3":
        return np.fmax(us_aqi("o3", mean_of(hourly, 8, 6), "8h"), us_aqi("o3", hourly[:, 0], "1h"))
    if pollutant == "co":
        return us_aqi("co", mean_of(hourly, 8, 6), "8h")
    return us_aqi(pollutant, hourly[:, 0], "1h")


DETECTOR = UsAqiDetector
