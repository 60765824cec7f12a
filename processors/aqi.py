"""Air-quality indices and guidelines: the published tables and formulas, vectorised.

Two indices, both piecewise-linear in the concentration between breakpoints:

US EPA AQI
    Technical Assistance Document for the Reporting of Daily Air Quality - the Air
    Quality Index (AQI), EPA-454/B-24-002, May 2024, Table 6; PM2.5 breakpoints as
    revised by "Final Updates to the Air Quality Index (AQI) for Particulate Matter"
    (EPA, February 2024). Concentrations are truncated before the formula (PM2.5 to
    0.1 µg/m³, PM10 to 1 µg/m³, O3 to 0.001 ppm, CO to 0.1 ppm, NO2 and SO2 to
    1 ppb) and the index is rounded to an integer. Gases are converted from µg/m³
    (mg/m³ for CO) at 25 °C and 1 atm, as EPA does.

VN_AQI
    Decision 1459/QĐ-TCMT (12 November 2019) of the Vietnam Environment
    Administration, "Hướng dẫn kỹ thuật tính toán và công bố chỉ số chất lượng không
    khí Việt Nam", Table 2 (breakpoints in µg/m³), formulas 1 and 2, section 2.3
    (worked examples). Not to be confused with the EPA table: VN_AQI 100 is
    PM2.5 50 µg/m³, where the US index puts 35.4.

Hourly PM indices of both use the 12-hour NowCast (EPA TAD 2024 section IV;
Decision 1459 section 2.2.1a): ``w* = Cmin/Cmax`` over the last 12 hourly means,
``w = max(w*, 1/2)``, NowCast ``= sum(w^(i-1) c_i) / sum(w^(i-1))`` over the hours
present, and only when at least 2 of the latest 3 hours are. (The Decision writes
the ``w = 1/2`` case as ``sum((1/2)^i c_i)``, which equals the weighted mean when
all 12 hours are present; the weighted mean is used for both cases, as EPA does.)

WHO global air quality guidelines (2021), short-term (24-hour, O3 8-hour) levels
in µg/m³ (CO in mg/m³): PM2.5 15, PM10 45, NO2 25, O3 100, CO 4.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

FloatArray = NDArray[np.float64]


@dataclass(frozen=True)
class Scale:
    """Breakpoints of one pollutant in one index: concentration ``c[k]`` maps to ``i[k]``.

    ``steps`` pairs each category's low and high concentration (EPA's table has
    gaps, e.g. 9.0 then 9.1, bridged by truncation); ``decimals`` is how the
    concentration is truncated first (None: not truncated).
    """

    low: tuple[float, ...]
    high: tuple[float, ...]
    index_low: tuple[int, ...]
    index_high: tuple[int, ...]
    decimals: int | None = None

    def index(self, concentration: ArrayLike) -> FloatArray:
        """The (unrounded) sub-index; NaN where the concentration is NaN; 500 caps what is beyond."""
        c = np.asarray(concentration, dtype=np.float64)
        if self.decimals is not None:
            factor = 10.0**self.decimals
            # Truncate, but not below what the decimal representation says (35.4 must stay 35.4).
            c = np.floor(c * factor + 1e-9) / factor
        low = np.asarray(self.low)
        high = np.asarray(self.high)
        k = np.clip(np.searchsorted(low, c, side="right") - 1, 0, low.size - 1)
        il = np.asarray(self.index_low, dtype=np.float64)[k]
        ih = np.asarray(self.index_high, dtype=np.float64)[k]
        value = (ih - il) / (high[k] - low[k]) * (c - low[k]) + il
        value = np.where(c > high[-1], 500.0, value)
        result: FloatArray = np.where(np.isnan(c), np.nan, np.maximum(value, 0.0))
        return result


def _contiguous(breaks: tuple[float, ...]) -> tuple[tuple[float, ...], tuple[float, ...]]:
    return breaks[:-1], breaks[1:]


# --- US EPA (EPA-454/B-24-002, Table 6) -----------------------------------------------------
_US_INDEX_LOW = (0, 51, 101, 151, 201, 301)
_US_INDEX_HIGH = (50, 100, 150, 200, 300, 500)

US_PM25_24H = Scale(
    (0.0, 9.1, 35.5, 55.5, 125.5, 225.5),
    (9.0, 35.4, 55.4, 125.4, 225.4, 325.4),
    _US_INDEX_LOW,
    _US_INDEX_HIGH,
    decimals=1,
)
"""µg/m³, 24-hour (NowCast for the hourly index); February 2024 revision."""
US_PM10_24H = Scale(
    (0.0, 55.0, 155.0, 255.0, 355.0, 425.0),
    (54.0, 154.0, 254.0, 354.0, 424.0, 604.0),
    _US_INDEX_LOW,
    _US_INDEX_HIGH,
    decimals=0,
)
"""µg/m³, 24-hour (NowCast for the hourly index)."""
US_O3_8H = Scale(
    (0.000, 0.055, 0.071, 0.086, 0.106),
    (0.054, 0.070, 0.085, 0.105, 0.200),
    _US_INDEX_LOW[:5],
    _US_INDEX_HIGH[:5],
    decimals=3,
)
"""ppm, 8-hour; above 0.200 ppm only the 1-hour table applies."""
US_O3_1H = Scale(
    (0.125, 0.165, 0.205, 0.405),
    (0.164, 0.204, 0.404, 0.604),
    (101, 151, 201, 301),
    (150, 200, 300, 500),
    decimals=3,
)
"""ppm, 1-hour; only defined from 0.125 ppm (AQI 101) up."""
US_CO_8H = Scale(
    (0.0, 4.5, 9.5, 12.5, 15.5, 30.5),
    (4.4, 9.4, 12.4, 15.4, 30.4, 50.4),
    _US_INDEX_LOW,
    _US_INDEX_HIGH,
    decimals=1,
)
"""ppm, 8-hour."""
US_NO2_1H = Scale(
    (0.0, 54.0, 101.0, 361.0, 650.0, 1250.0),
    (53.0, 100.0, 360.0, 649.0, 1249.0, 2049.0),
    _US_INDEX_LOW,
    _US_INDEX_HIGH,
    decimals=0,
)
"""ppb, 1-hour."""

PPB_PER_UG_M3 = {"no2": 1.0 / 1.88, "o3": 1.0 / 1.96, "so2": 1.0 / 2.62}
"""µg/m³ to ppb at 25 °C and 1 atm (molar volume 24.45 L): 46.01, 48.00 and 64.07 g/mol."""
PPM_PER_MG_M3_CO = 24.45 / 28.01
"""mg/m³ of CO to ppm at 25 °C and 1 atm."""


def us_aqi(pollutant: str, concentration: ArrayLike, averaging: str) -> FloatArray:
    """EPA sub-index of ``pollutant`` for a concentration in citypulse's units (µg/m³, CO mg/m³).

    ``averaging`` is ``"24h"`` (PM), ``"8h"`` (O3, CO) or ``"1h"`` (O3, NO2).
    Rounded to the nearest integer, as the TAD says.

    >>> us_aqi("pm25", [9.0, 9.1, 35.9, 55.4, 225.5, 400.0], "24h").tolist()
    [50.0, 51.0, 102.0, 150.0, 301.0, 500.0]
    """
    c = np.asarray(concentration, dtype=np.float64)
    if pollutant == "pm25":
        value = US_PM25_24H.index(c)
    elif pollutant == "pm10":
        value = US_PM10_24H.index(c)
    elif pollutant == "o3":
        ppm = c * PPB_PER_UG_M3["o3"] / 1000.0
        if averaging == "8h":
            value = np.where(ppm > 0.200, np.nan, US_O3_8H.index(ppm))
        else:
            value = np.where(ppm < 0.125, np.nan, US_O3_1H.index(ppm))
    elif pollutant == "co":
        value = US_CO_8H.index(c * PPM_PER_MG_M3_CO)
    elif pollutant == "no2":
        value = US_NO2_1H.index(c * PPB_PER_UG_M3["no2"])
    else:
        raise ValueError(f"no US AQI table for {pollutant!r}")
    return _round_half_up(value)


# --- VN_AQI (Decision 1459/QĐ-TCMT, Table 2) ------------------------------------------------
_VN_LEVELS = (0, 50, 100, 150, 200, 300, 400, 500)
_VN_BREAKS = {
    "o3_1h": (0.0, 160.0, 200.0, 300.0, 400.0, 800.0, 1000.0, 1200.0),
    "o3_8h": (0.0, 100.0, 120.0, 170.0, 210.0, 400.0),
    "co": (0.0, 10_000.0, 30_000.0, 45_000.0, 60_000.0, 90_000.0, 120_000.0, 150_000.0),
    "so2": (0.0, 125.0, 350.0, 550.0, 800.0, 1600.0, 2100.0, 2630.0),
    "no2": (0.0, 100.0, 200.0, 700.0, 1200.0, 2350.0, 3100.0, 3850.0),
    "pm10": (0.0, 50.0, 150.0, 250.0, 350.0, 420.0, 500.0, 600.0),
    "pm25": (0.0, 25.0, 50.0, 80.0, 150.0, 250.0, 350.0, 500.0),
}
"""µg/m³ (CO too: 10,000 µg/m³ is 10 mg/m³) at VN_AQI 0, 50, 100, 150, 200, 300, 400, 500."""
VN_SCALES = {
    name: Scale(*_contiguous(breaks), _VN_LEVELS[: len(breaks) - 1], _VN_LEVELS[1 : len(breaks)])
    for name, breaks in _VN_BREAKS.items()
}


def vn_aqi(pollutant: str, concentration: ArrayLike) -> FloatArray:
    """VN_AQI sub-index for a concentration in citypulse's units (µg/m³, CO mg/m³), rounded.

    ``pollutant`` is one of ``pm25``, ``pm10``, ``no2``, ``so2``, ``co``, ``o3_1h``, ``o3_8h``.
    The hourly examples of Decision 1459, section 2.3b (O3 136.1 and PM2.5 NowCast 20.3):

    >>> vn_aqi("o3_1h", 136.1).tolist(), vn_aqi("pm25", 20.3).tolist()
    (43.0, 41.0)
    """
    c = np.asarray(concentration, dtype=np.float64)
    if pollutant == "co":
        c = c * 1000.0
    scale = VN_SCALES.get(pollutant)
    if scale is None:
        raise ValueError(f"no VN_AQI table for {pollutant!r}")
    return _round_half_up(scale.index(c))


def _round_half_up(value: FloatArray) -> FloatArray:
    rounded: FloatArray = np.floor(value + 0.5)
    return rounded


def nowcast(hourly: ArrayLike) -> FloatArray:
    """12-hour NowCast of hourly means, newest hour first along the last axis (NaN = missing).

    The worked example of Decision 1459, section 2.3a (PM2.5, 20:00 back to 09:00):

    >>> hours = [20.6, 19.6, 22.4, 20.3, 16.5, 19.0, 16.5, 19.5, 23.5, 20.5, 24.7, 26.9]
    >>> round(float(nowcast(hours)), 1)
    20.3
    """
    c = np.asarray(hourly, dtype=np.float64)[..., :12]
    present = ~np.isnan(c)
    recent = present[..., :3].sum(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        cmin = np.nanmin(np.where(present, c, np.inf), axis=-1)
        cmax = np.nanmax(np.where(present, c, -np.inf), axis=-1)
        w_star = np.where(cmax > 0, cmin / cmax, 1.0)
    w = np.maximum(w_star, 0.5)
    powers = w[..., None] ** np.arange(c.shape[-1])
    weights = np.where(present, powers, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        value = (weights * np.nan_to_num(c)).sum(axis=-1) / weights.sum(axis=-1)
    result: FloatArray = np.where(recent >= 2, value, np.nan)
    return result


# --- WHO 2021 ----------------------------------------------------------------------------------
WHO_2021_SHORT_TERM = {"pm25": 15.0, "pm10": 45.0, "no2": 25.0, "o3": 100.0, "co": 4.0}
"""WHO global air quality guidelines (2021), executive summary Table 0.1: 24-hour levels
(O3: 8-hour), µg/m³, CO mg/m³."""


def category(aqi: float) -> int:
    """Category number 0-5 shared by both indices (Good ... Hazardous); -1 for NaN.

    >>> [category(a) for a in (0, 50, 51, 150, 151, 301)]
    [0, 0, 1, 2, 3, 5]
    """
    if math.isnan(aqi):
        return -1
    for number, top in enumerate((50, 100, 150, 200, 300)):
        if aqi <= top:
            return number
    return 5
