"""Where the sun is: enough astronomy to tell day from night at a street light.

NOAA's general solar position formulas (fractional year; equation of time and
declination as short Fourier series; NOAA Global Monitoring Laboratory, "General
Solar Position Calculations"), accurate to a fraction of a degree, which is all a
day/night rule needs. Vectorised over timestamps and device positions.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

DAY_MS = 86_400_000
HOUR_MS = 3_600_000


def solar_time_ms(ts_ms: NDArray[np.int64], lon_deg: NDArray[np.float64]) -> NDArray[np.int64]:
    """Local mean solar time at a longitude, as epoch milliseconds: UTC plus four minutes per degree east.

    The registry knows where a device is, not its civil time zone; the day a road
    lives by (its rush hours, its weekend) follows the sun to within the hour that
    zones stray from it (Hanoi, at 105.85 E, is 7 h 3 min ahead of UTC by the sun
    and 7 h by the clock).

    >>> # 2026-11-20 17:00 UTC is already Saturday 00:03 in Hanoi by the sun
    >>> local = solar_time_ms(np.array([1795194000000]), np.array([105.85]))
    >>> int((local[0] // DAY_MS + 3) % 7)  # 0 = Monday
    5
    """
    local: NDArray[np.int64] = ts_ms + solar_offset_ms(lon_deg)
    return local


def solar_offset_ms(lon_deg: NDArray[np.float64]) -> NDArray[np.int64]:
    """What :func:`solar_time_ms` adds to UTC at each longitude (work it out once per device)."""
    offset: NDArray[np.int64] = np.round(lon_deg / 15.0 * HOUR_MS).astype(np.int64)
    return offset


def elevation_deg(ts_ms: ArrayLike, lat_deg: ArrayLike, lon_deg: ArrayLike) -> NDArray[np.float64]:
    """The sun's elevation above the horizon, degrees (negative at night).

    >>> # Hanoi (21.03 N, 105.85 E): local noon and midnight of 21 June 2026
    >>> [round(float(e)) for e in elevation_deg([1782017880000, 1781974680000], 21.03, 105.85)]
    [88, -46]
    """
    ts = np.asarray(ts_ms, dtype=np.int64)
    moments = ts.astype("datetime64[ms]")
    year_start = moments.astype("datetime64[Y]").astype("datetime64[ms]").astype(np.int64)
    next_year = (moments.astype("datetime64[Y]") + 1).astype("datetime64[ms]").astype(np.int64)
    gamma = 2.0 * np.pi * (ts - year_start) / (next_year - year_start)
    minutes = (ts % DAY_MS) / 60_000.0
    eqtime = 229.18 * (
        0.000075
        + 0.001868 * np.cos(gamma)
        - 0.032077 * np.sin(gamma)
        - 0.014615 * np.cos(2 * gamma)
        - 0.040849 * np.sin(2 * gamma)
    )
    decl = (
        0.006918
        - 0.399912 * np.cos(gamma)
        + 0.070257 * np.sin(gamma)
        - 0.006758 * np.cos(2 * gamma)
        + 0.000907 * np.sin(2 * gamma)
        - 0.002697 * np.cos(3 * gamma)
        + 0.00148 * np.sin(3 * gamma)
    )
    hour_angle = np.radians((minutes + eqtime + 4.0 * np.asarray(lon_deg, dtype=np.float64)) / 4.0 - 180.0)
    phi = np.radians(np.asarray(lat_deg, dtype=np.float64))
    cos_zenith = np.sin(phi) * np.sin(decl) + np.cos(phi) * np.cos(decl) * np.cos(hour_angle)
    elevation: NDArray[np.float64] = 90.0 - np.degrees(np.arccos(np.clip(cos_zenith, -1.0, 1.0)))
    return elevation
