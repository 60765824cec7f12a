"""Where the air model's shapes come from: statistics of real hourly monitor records.

The Beijing Multi-Site Air Quality data (Zhang et al., 2017; UCI, CC BY 4.0)
holds four years of hourly PM2.5, PM10, gases, temperature and dew point at
urban and suburban stations. Beijing's winters (heating, inversions) resemble
Hanoi's, and what is taken from them is *shape*, not level: how the PM2.5/PM10
ratio rises with humidity (wet particles grow into the fine fraction), how
pollutants cycle through the day as the mixing layer breathes, and how long a
pollution anomaly persists. Levels come from Hanoi's own climate (``hanoi.py``).

``python -m simulators.calibration FILE.csv`` prints the tables that
``simulators/models/air.py`` carries; a test recomputes them from the data and
checks the model still matches.
"""

from __future__ import annotations

import csv
import math
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

RH_BIN_CENTRES = (15.0, 25.0, 35.0, 45.0, 55.0, 65.0, 75.0, 85.0, 95.0)
ACF_LAGS_H = (1, 6, 24, 48)


@dataclass(frozen=True)
class AirStatistics:
    ratio_by_rh: tuple[float, ...]
    """Mean PM2.5/PM10 (capped at 1) in 10 %-wide relative-humidity bins centred on RH_BIN_CENTRES."""
    pm25_diurnal: tuple[float, ...]
    """Mean PM2.5 by local hour, relative to the overall mean."""
    o3_diurnal: tuple[float, ...]
    co_diurnal: tuple[float, ...]
    log_pm25_acf: tuple[float, ...]
    """Autocorrelation of log PM2.5 at ACF_LAGS_H hours, after removing each month's mean."""
    log_pm25_rh_correlation: float
    """Correlation of log PM2.5 with relative humidity, both after removing each month's mean."""


def relative_humidity(
    temperature: NDArray[np.float64], dew_point: NDArray[np.float64]
) -> NDArray[np.float64]:
    """Relative humidity (%) from temperature and dew point, Magnus formula (Alduchov & Eskridge)."""
    rh: NDArray[np.float64] = 100.0 * np.exp(
        17.625 * dew_point / (243.04 + dew_point) - 17.625 * temperature / (243.04 + temperature)
    )
    return rh


def deseasonalise(values: NDArray[np.float64], month: NDArray[np.int64]) -> NDArray[np.float64]:
    """Subtract each calendar month's mean, so slow seasons do not pass for persistence."""
    out = values.copy()
    for m in np.unique(month):
        sel = month == m
        out[sel] -= np.nanmean(values[sel])
    return out


def autocorrelation(series: NDArray[np.float64], lags: tuple[int, ...]) -> tuple[float, ...]:
    """Autocorrelation of an hourly series at ``lags`` hours, ignoring missing values."""
    result = []
    for lag in lags:
        a, b = series[:-lag], series[lag:]
        both = np.isfinite(a) & np.isfinite(b)
        result.append(round(float(np.corrcoef(a[both], b[both])[0, 1]), 2))
    return tuple(result)


def _load(path: Path) -> dict[str, NDArray[np.float64]]:
    columns = ("year", "month", "hour", "PM2.5", "PM10", "O3", "CO", "TEMP", "DEWP")
    data: dict[str, list[float]] = {c: [] for c in columns}
    with path.open(newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            for c in columns:
                raw = row[c]
                data[c].append(float(raw) if raw not in ("", "NA") else math.nan)
    return {c: np.asarray(v) for c, v in data.items()}


def _diurnal(values: NDArray[np.float64], hour: NDArray[np.float64]) -> tuple[float, ...]:
    mean = float(np.nanmean(values))
    return tuple(round(float(np.nanmean(values[hour == h])) / mean, 2) for h in range(24))


def beijing_air_statistics(path: Path) -> AirStatistics:
    """Compute the calibration tables from one PRSA station file."""
    d = _load(path)
    pm25, pm10 = d["PM2.5"], d["PM10"]
    rh = relative_humidity(d["TEMP"], d["DEWP"])
    ok = np.isfinite(pm25) & np.isfinite(pm10) & (pm10 > 0) & np.isfinite(rh)
    ratio = np.minimum(pm25[ok] / pm10[ok], 1.0)
    ratios = []
    for centre in RH_BIN_CENTRES:
        in_bin = (rh[ok] >= centre - 5.0) & (rh[ok] < centre + 5.0)
        ratios.append(round(float(ratio[in_bin].mean()), 2))
    month = (d["year"] * 12 + d["month"]).astype(np.int64)
    log_pm = deseasonalise(np.log(np.where(pm25 > 0, pm25, np.nan)), month)
    acf = autocorrelation(log_pm, ACF_LAGS_H)
    rh_anomaly = deseasonalise(rh, month)
    good = np.isfinite(log_pm) & np.isfinite(rh_anomaly)
    return AirStatistics(
        ratio_by_rh=tuple(ratios),
        pm25_diurnal=_diurnal(pm25, d["hour"]),
        o3_diurnal=_diurnal(d["O3"], d["hour"]),
        co_diurnal=_diurnal(d["CO"], d["hour"]),
        log_pm25_acf=tuple(acf),
        log_pm25_rh_correlation=round(float(np.corrcoef(log_pm[good], rh_anomaly[good])[0, 1]), 2),
    )


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m simulators.calibration PRSA_Data_STATION.csv", file=sys.stderr)
        return 2
    stats = beijing_air_statistics(Path(argv[0]))
    for name, value in stats.__dict__.items():
        print(f"{name} = {value}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
