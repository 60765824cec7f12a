"""The daily VN_AQI of a monitor's records, per local day: which days were pollution episodes.

Decision 1459/QĐ-TCMT (2019) defines a daily index beside the hourly one (tables
and the sub-index formula: :mod:`processors.aqi`). Per local calendar day:

- PM2.5 and PM10: the 24-hour mean of the day's hourly means;
- NO2, CO, SO2: the highest hourly mean of the day;
- O3: the larger of the sub-index of the day's highest hourly mean and that of its
  highest 8-hour mean (8-hour means of the hours ending at each hour of the day),
  the 8-hour branch dropped when its mean is beyond the table's last breakpoint
  (400 µg/m³), where the Decision uses the 1-hour value alone;
- the day's index is the highest sub-index, and there is none without a PM sub-index.

A daily value needs at least :data:`MIN_HOURS` of the day's 24 hourly means (an
8-hour mean at least 6 of its 8). The Decision states no completeness rule; 75 %
is the usual one of air-quality reporting, and independent implementations of
the Decision use it too.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo

import numpy as np
from numpy.typing import NDArray

from processors.aqi import vn_aqi

HOUR_MS = 3_600_000
DAY_MS = 86_400_000
MIN_HOURS = 18
"""Hourly means a day needs for a daily value (75 % of 24)."""
MIN_HOURS_8H = 6
O3_8H_TOP = 400.0
"""µg/m³: the last O3 8-hour breakpoint of Table 2; above it only the 1-hour index applies."""
POLLUTANTS = ("pm25", "pm10", "no2", "co", "so2", "o3")


def local_ms(ts_ms: NDArray[np.int64], tz: tzinfo) -> NDArray[np.int64]:
    """Each timestamp as local wall-clock milliseconds (epoch-based), for day and hour arithmetic.

    The offset is looked up once per hour of the records, so a zone with daylight
    saving time is followed exactly at hour resolution.
    """
    if ts_ms.size == 0:
        return ts_ms.copy()
    hours = ts_ms // HOUR_MS
    unique, inverse = np.unique(hours, return_inverse=True)
    offsets = np.array(
        [
            round(datetime.fromtimestamp(int(h) * 3600, UTC).astimezone(tz).utcoffset().total_seconds())  # type: ignore[union-attr]
            * 1000
            for h in unique.tolist()
        ],
        dtype=np.int64,
    )
    shifted: NDArray[np.int64] = ts_ms + offsets[inverse.reshape(-1)]
    return shifted


@dataclass(frozen=True)
class DailyIndex:
    """Daily VN_AQI of one monitor: one entry per local day from its first to its last record."""

    first_day: int
    """The first day, as days since 1970-01-01 in local time."""
    aqi: NDArray[np.float64]
    """The day's VN_AQI; NaN where no PM sub-index could be computed."""
    sub_indices: dict[str, NDArray[np.float64]]

    def days_above(self, level: float) -> NDArray[np.int64]:
        """The days (local day numbers) whose index is above ``level``."""
        found: NDArray[np.int64] = self.first_day + np.flatnonzero(np.nan_to_num(self.aqi) > level)
        return found


def hourly_grid(local: NDArray[np.int64], values: NDArray[np.float64]) -> tuple[int, NDArray[np.float64]]:
    """Hourly means on a grid of whole local days: (first day, array of shape (days, 24, columns))."""
    hour = local // HOUR_MS
    first_day = int(hour.min() // 24)
    last_day = int(hour.max() // 24)
    slots = (last_day - first_day + 1) * 24
    index = hour - first_day * 24
    columns = values.shape[1]
    sums = np.zeros((slots, columns))
    counts = np.zeros((slots, columns))
    present = ~np.isnan(values)
    for j in range(columns):
        np.add.at(sums[:, j], index[present[:, j]], values[present[:, j], j])
        np.add.at(counts[:, j], index[present[:, j]], 1.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        means = np.where(counts > 0, sums / np.maximum(counts, 1.0), np.nan)
    return first_day, means.reshape(-1, 24, columns)


def daily_vn_aqi(local: NDArray[np.int64], values: dict[str, NDArray[np.float64]]) -> DailyIndex:
    """The daily VN_AQI from readings at local times ``local`` (citypulse units: µg/m³, CO mg/m³).

    >>> hours = np.arange(48, dtype=np.int64) * HOUR_MS
    >>> pm25 = np.r_[np.full(24, 70.0), np.full(24, 100.0)]   # a Kém day, then a Xấu one
    >>> daily = daily_vn_aqi(hours, {"pm25": pm25})
    >>> daily.aqi.tolist(), daily.days_above(150).tolist()
    ([133.0, 164.0], [1])
    """
    names = [p for p in POLLUTANTS if p in values]
    if local.size == 0 or not names:
        return DailyIndex(0, np.zeros(0), {})
    stacked = np.column_stack([np.asarray(values[p], dtype=np.float64) for p in names])
    first_day, grid = hourly_grid(local, stacked)
    enough = (~np.isnan(grid)).sum(axis=1) >= MIN_HOURS  # (days, columns)
    sub: dict[str, NDArray[np.float64]] = {}
    with np.errstate(invalid="ignore"):
        for j, name in enumerate(names):
            hourly = grid[:, :, j]
            if name in ("pm25", "pm10"):
                present = ~np.isnan(hourly)
                daily = np.nansum(hourly, axis=1) / np.maximum(present.sum(axis=1), 1)
                sub[name] = vn_aqi(name, np.where(enough[:, j], daily, np.nan))
            elif name == "o3":
                sub[name] = _o3(hourly, enough[:, j])
            else:
                highest = np.nanmax(np.where(enough[:, j : j + 1], hourly, -np.inf), axis=1)
                sub[name] = vn_aqi(name, np.where(enough[:, j], highest, np.nan))
    stack = np.vstack([sub[n] for n in names])
    have_pm = np.zeros(grid.shape[0], dtype=np.bool_)
    for name in ("pm25", "pm10"):
        if name in sub:
            have_pm |= ~np.isnan(sub[name])
    with np.errstate(invalid="ignore"):
        best = np.nanmax(np.where(np.isnan(stack), -np.inf, stack), axis=0)
    aqi = np.where(have_pm & np.isfinite(best), best, np.nan)
    return DailyIndex(first_day, aqi, sub)


def _o3(hourly: NDArray[np.float64], enough: NDArray[np.bool_]) -> NDArray[np.float64]:
    """O3's daily sub-index: the larger of the 1-hour and the 8-hour branch."""
    days = hourly.shape[0]
    flat = np.r_[np.full(7, np.nan), hourly.reshape(-1)]
    windows = np.lib.stride_tricks.sliding_window_view(flat, 8)  # window k ends at hour k
    present = (~np.isnan(windows)).sum(axis=1)
    with np.errstate(invalid="ignore"):
        means = np.where(present > 0, np.nansum(windows, axis=1) / np.maximum(present, 1), np.nan)
        means = np.where(present >= MIN_HOURS_8H, means, np.nan).reshape(days, 24)
        top_8h = np.nanmax(np.where(np.isnan(means), -np.inf, means), axis=1)
        top_1h = np.nanmax(np.where(np.isnan(hourly), -np.inf, hourly), axis=1)
    usable_1h = enough & np.isfinite(top_1h)
    one_hour = np.where(usable_1h, vn_aqi("o3_1h", np.where(usable_1h, top_1h, np.nan)), np.nan)
    usable_8h = enough & np.isfinite(top_8h) & (top_8h <= O3_8H_TOP)
    eight_hour = np.where(usable_8h, vn_aqi("o3_8h", np.where(usable_8h, top_8h, np.nan)), np.nan)
    both = np.vstack([one_hour, eight_hour])
    with np.errstate(invalid="ignore"):
        best = np.nanmax(np.where(np.isnan(both), -np.inf, both), axis=0)
    result: NDArray[np.float64] = np.where(np.isfinite(best), best, np.nan)
    return result
