"""Where the sun is over Hanoi: street lights follow it, and so do light sensors and ozone.

The astronomy is the detectors' own (:mod:`processors.solar`, NOAA's general solar
position formulas), so a simulated lamp and the rule that judges it agree on when
dusk is; this module adds Hanoi's position as the default and sunrise/sunset times.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from processors import solar
from simulators.hanoi import LATITUDE, LONGITUDE

DAY_MS = solar.DAY_MS
SUNRISE_ELEVATION_DEG = -0.833
"""The sun's centre at sunrise/sunset: refraction and the solar radius lift it by 0.833°."""


def elevation_deg(
    ts_ms: NDArray[np.int64] | int, lat: float | NDArray[np.float64] = LATITUDE, lon: float = LONGITUDE
) -> NDArray[np.float64]:
    """The sun's elevation above the horizon in degrees (negative at night), over Hanoi by default.

    >>> noon_june, noon_december = 1782017880000, 1797829620000  # 21 June / 21 Dec, solar noon
    >>> round(float(elevation_deg(noon_june)[0]), 1), round(float(elevation_deg(noon_december)[0]), 1)
    (87.6, 45.4)
    """
    return solar.elevation_deg(np.atleast_1d(np.asarray(ts_ms, dtype=np.int64)), lat, lon)


def sun_times(day_start_ms: int, step_ms: int = 30_000) -> tuple[int, int]:
    """Sunrise and sunset (epoch ms) during the 24 hours from ``day_start_ms``, found by scanning."""
    ts = np.arange(day_start_ms, day_start_ms + DAY_MS, step_ms, dtype=np.int64)
    up = elevation_deg(ts) > SUNRISE_ELEVATION_DEG
    changes = np.flatnonzero(np.diff(up.astype(np.int8)))
    rises = [int(ts[i + 1]) for i in changes if up[i + 1]]
    sets = [int(ts[i + 1]) for i in changes if not up[i + 1]]
    if not rises or not sets:
        raise ValueError("the sun neither rises nor sets in this 24 hours (polar day or night)")
    return rises[0], sets[0]
