"""Where the sun is over Hanoi: street lights follow it, and so do light sensors and ozone.

NOAA's general solar position formulas (fractional year, equation of time and
declination as Fourier series) are accurate to a fraction of a degree, which
puts sunrise and sunset within a minute or two: good enough for photocells,
and no ephemeris library or network needed.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from simulators.hanoi import LATITUDE, LONGITUDE

DAY_MS = 86_400_000
SUNRISE_ELEVATION_DEG = -0.833
"""The sun's centre at sunrise/sunset: refraction and the solar radius lift it by 0.833°."""


def _year_fraction(ts_ms: NDArray[np.int64]) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Fractional year angle (radians) and minutes since UTC midnight."""
    moments = ts_ms.astype("datetime64[ms]")
    year_start = moments.astype("datetime64[Y]").astype("datetime64[ms]").astype(np.int64)
    next_year = (moments.astype("datetime64[Y]") + 1).astype("datetime64[ms]").astype(np.int64)
    days_in_year = (next_year - year_start) / DAY_MS
    day_of_year = (ts_ms - year_start) / DAY_MS  # 0-based, fractional
    gamma = 2.0 * np.pi / days_in_year * day_of_year
    minutes = (ts_ms % DAY_MS) / 60_000.0
    return gamma.astype(np.float64), minutes.astype(np.float64)


def declination(ts_ms: NDArray[np.int64]) -> NDArray[np.float64]:
    """Solar declination in radians."""
    g, _ = _year_fraction(np.asarray(ts_ms, dtype=np.int64))
    decl: NDArray[np.float64] = (
        0.006918
        - 0.399912 * np.cos(g)
        + 0.070257 * np.sin(g)
        - 0.006758 * np.cos(2 * g)
        + 0.000907 * np.sin(2 * g)
        - 0.002697 * np.cos(3 * g)
        + 0.00148 * np.sin(3 * g)
    )
    return decl


def elevation_deg(
    ts_ms: NDArray[np.int64] | int, lat: float | NDArray[np.float64] = LATITUDE, lon: float = LONGITUDE
) -> NDArray[np.float64]:
    """The sun's elevation above the horizon in degrees (negative at night).

    >>> noon_june, noon_december = 1782017880000, 1797829620000  # 21 June / 21 Dec, solar noon
    >>> round(float(elevation_deg(noon_june)[0]), 1), round(float(elevation_deg(noon_december)[0]), 1)
    (87.6, 45.4)
    """
    ts = np.atleast_1d(np.asarray(ts_ms, dtype=np.int64))
    g, minutes = _year_fraction(ts)
    eqtime = 229.18 * (
        0.000075
        + 0.001868 * np.cos(g)
        - 0.032077 * np.sin(g)
        - 0.014615 * np.cos(2 * g)
        - 0.040849 * np.sin(2 * g)
    )
    decl = declination(ts)
    true_solar_minutes = minutes + eqtime + 4.0 * lon
    hour_angle = np.radians(true_solar_minutes / 4.0 - 180.0)
    phi = np.radians(lat)
    cos_zenith = np.sin(phi) * np.sin(decl) + np.cos(phi) * np.cos(decl) * np.cos(hour_angle)
    elevation: NDArray[np.float64] = 90.0 - np.degrees(np.arccos(np.clip(cos_zenith, -1.0, 1.0)))
    return elevation


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
