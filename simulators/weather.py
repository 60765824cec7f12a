"""Hanoi's weather, shared by every simulated device: the common cause behind many signals.

Rain raises water turbidity and washes particles out of the air; winter
temperature inversions trap pollution for days; clouds dim the light sensors;
heat speeds up chlorine decay. Devices in one city see the same weather, so it
is modelled once, city-wide, and each device adds its own local offsets.

Every quantity is a pure function of (seed, time) built from counter-based
random numbers (:mod:`simulators.rand`), so any moment can be sampled on its
own and the result never depends on which slices were simulated before.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from simulators import hanoi
from simulators.rand import hashed_uniform, smooth_noise, stream_id

HOUR_MS = 3_600_000
DAY_MS = 86_400_000
WEEK_MS = 7 * DAY_MS
RESOLUTION_MS = 60_000
_LOCAL_OFFSET_MS = hanoi.UTC_OFFSET_HOURS * HOUR_MS
RAIN_MEMORY_H = 12.0
"""How long rain keeps affecting what it touches (turbidity, soil): e-folding time in hours."""
RAIN_RAMP_H = 0.4
"""How long a shower takes to build to full strength, and to die away (at most a third of it).

Even a convective storm's gust front cools the air over a quarter of an hour or so,
not from one minute to the next; a step would be a weather event no sensor has
ever recorded, and detectors rightly call it impossible."""

FloatArray = NDArray[np.float64]


def local_hour(ts_ms: NDArray[np.int64]) -> FloatArray:
    """Hour of day in Hanoi (0-24, fractional)."""
    hours: FloatArray = ((ts_ms + _LOCAL_OFFSET_MS) % DAY_MS).astype(np.float64) / HOUR_MS
    return hours


def local_day(ts_ms: NDArray[np.int64]) -> NDArray[np.int64]:
    """Days since 1970-01-01 in Hanoi local time."""
    days: NDArray[np.int64] = (ts_ms + _LOCAL_OFFSET_MS) // DAY_MS
    return days


def weekday(ts_ms: NDArray[np.int64]) -> NDArray[np.int64]:
    """0 = Monday ... 6 = Sunday, in local time (1970-01-01 was a Thursday)."""
    days: NDArray[np.int64] = (local_day(ts_ms) + 3) % 7
    return days


def year_position(ts_ms: NDArray[np.int64]) -> FloatArray:
    """Months since 1 January as a fraction (0-12), for seasonal interpolation."""
    moments = (ts_ms + _LOCAL_OFFSET_MS).astype("datetime64[ms]")
    start = moments.astype("datetime64[Y]")
    start_ms = start.astype("datetime64[ms]").astype(np.int64)
    end_ms = (start + 1).astype("datetime64[ms]").astype(np.int64)
    fraction = (moments.astype(np.int64) - start_ms) / (end_ms - start_ms)
    result: FloatArray = fraction * 12.0
    return result


def seasonal(monthly: tuple[float, ...], ts_ms: NDArray[np.int64]) -> FloatArray:
    """A monthly table interpolated smoothly through the year (values sit at mid-month)."""
    position = year_position(ts_ms)
    table = np.asarray(monthly, dtype=np.float64)
    xp = np.arange(-0.5, 12.5 + 1.0, 1.0)  # mid-months, padded by one on each side
    fp = np.concatenate([table[-1:], table, table[:1]])
    result: FloatArray = np.interp(position, xp[: len(fp)], fp)
    return result


def month_index(ts_ms: NDArray[np.int64]) -> NDArray[np.int64]:
    months: NDArray[np.int64] = np.minimum(year_position(ts_ms).astype(np.int64), 11)
    return months


def diurnal_temperature_shape(hour: FloatArray) -> FloatArray:
    """-1 at the 05:30 minimum, +1 at the 14:00 maximum: a slow rise and a long evening fall."""
    rise = (hour >= 5.5) & (hour < 14.0)
    since_min = np.where(rise, hour - 5.5, 0.0)
    since_max = np.where(hour >= 14.0, hour - 14.0, hour + 24.0 - 14.0)
    up = -np.cos(np.pi * since_min / 8.5)
    down = np.cos(np.pi * since_max / 15.5)
    shape: FloatArray = np.where(rise, up, down)
    return shape


@dataclass(frozen=True, slots=True)
class WeatherSample:
    """City-wide weather at some moments (one value per timestamp)."""

    temperature: FloatArray
    """Air temperature, °C."""
    humidity: FloatArray
    """Relative humidity, %."""
    rain: FloatArray
    """Rain intensity now, mm/h."""
    recent_rain: FloatArray
    """Rain of the last days, mm, each millimetre fading with an e-folding time of 12 h."""
    inversion: FloatArray
    """Strength of a winter temperature inversion, 0 (none) to 1 (strong)."""
    clear_sky: FloatArray
    """Fraction of clear-sky daylight that reaches the ground, 0.1-1."""
    pm_anomaly: FloatArray
    """Day-to-day ventilation anomaly on a log scale, unit variance."""


class Weather:
    """Rain events, inversion episodes and smooth anomalies for one seed."""

    def __init__(self, seed: int) -> None:
        self.seed = seed
        self._s_temp = stream_id("temperature")
        self._s_humid = stream_id("humidity")
        self._s_cloud = stream_id("cloud")
        self._s_pm_slow = stream_id("pm-slow")
        self._s_pm_fast = stream_id("pm-fast")
        self._s_rain = stream_id("rain")
        self._s_inversion = stream_id("inversion")
        self._cache: dict[int, WeatherSample] = {}
        self._rows_cache: dict[int, FloatArray] = {}
        self._rain_days: dict[int, tuple[float, float, float]] = {}
        self._inversion_weeks: dict[int, tuple[float, float, float]] = {}

    def sample(self, ts_ms: NDArray[np.int64]) -> WeatherSample:
        """The weather at each timestamp, resolved to the minute.

        Weather changes over minutes, not milliseconds, so it is computed once per
        minute (at the minute's middle) and shared by every reading in it: the
        readings of a one-second slice almost always share one minute.
        """
        ts = np.asarray(ts_ms, dtype=np.int64)
        minute = ts // RESOLUTION_MS
        if ts.size and minute[0] == minute[-1] and (ts.size < 3 or minute.min() == minute.max()):
            # One value per field (length-1 arrays), which broadcasts against the readings.
            return self._minute(int(minute[0]))
        unique, where = np.unique(minute, return_inverse=True)
        table = self._rows(unique.tolist())
        return WeatherSample(*(table[where, i] for i in range(_N_FIELDS)))

    def _rows(self, minutes: list[int]) -> FloatArray:
        """The weather of each minute, one row per minute, from the cache or computed together."""
        cache = self._rows_cache
        missing = [m for m in minutes if m not in cache]
        if missing:
            fresh = self._sample(np.asarray(missing, dtype=np.int64) * RESOLUTION_MS + RESOLUTION_MS // 2)
            columns = np.stack(_fields(fresh), axis=1)
            for i, m in enumerate(missing):
                cache[m] = columns[i]
        table: FloatArray = np.stack([cache[m] for m in minutes])
        if len(cache) > 8192:
            for key in list(cache)[: len(cache) - 4096]:
                del cache[key]
        return table

    def _minute(self, minute: int) -> WeatherSample:
        cached = self._cache.get(minute)
        if cached is None:
            row = self._rows([minute])[0]
            cached = WeatherSample(*(row[i : i + 1] for i in range(_N_FIELDS)))
            if len(self._cache) >= 16:
                self._cache.pop(next(iter(self._cache)))
            self._cache[minute] = cached
        return cached

    def _sample(self, ts: NDArray[np.int64]) -> WeatherSample:
        hours = ts.astype(np.float64) / HOUR_MS
        hour = local_hour(ts)
        rain, recent = self.rain(ts)
        inversion = self.inversion(ts)
        shape = diurnal_temperature_shape(hour)
        raining = np.minimum(rain / 2.0, 1.0)
        temperature = (
            seasonal(hanoi.MONTHLY_TEMPERATURE_C, ts)
            + 0.5 * seasonal(hanoi.MONTHLY_DAILY_RANGE_C, ts) * shape * (1.0 - 0.6 * raining)
            + 1.6 * smooth_noise(self.seed, self._s_temp, hours, 60.0)
            - 2.0 * raining
        )
        anomaly = 0.8 * smooth_noise(self.seed, self._s_pm_slow, hours, 30.0) + 0.6 * smooth_noise(
            self.seed, self._s_pm_fast, hours, 8.0
        )
        # Stagnant air masses are moist as well as polluted: the ventilation anomaly shows in both.
        humidity = (
            seasonal(hanoi.MONTHLY_HUMIDITY_PCT, ts)
            - 11.0 * shape
            + 3.0 * smooth_noise(self.seed, self._s_humid, hours, 30.0)
            + 5.0 * anomaly
            + 14.0 * raining
            + 5.0 * inversion
        )
        cloudiness = np.clip(
            0.45 + 0.25 * smooth_noise(self.seed, self._s_cloud, hours, 8.0) + 0.45 * raining, 0.0, 1.0
        )
        return WeatherSample(
            temperature=temperature,
            humidity=np.clip(humidity, 30.0, 99.5),
            rain=rain,
            recent_rain=recent,
            inversion=inversion,
            clear_sky=1.0 - 0.85 * cloudiness,
            pm_anomaly=anomaly,
        )

    # --- rain -----------------------------------------------------------------------------
    def rain_event(self, day: NDArray[np.int64]) -> tuple[FloatArray, FloatArray, FloatArray]:
        """Each local day's rain event: start (ms since epoch), duration (h) and total (mm).

        Days without rain have a total of 0. Wet-season rain falls as afternoon and
        evening storms, dry-season rain as long light drizzle.
        """
        day_ms = day * DAY_MS - _LOCAL_OFFSET_MS
        mid = day_ms + DAY_MS // 2
        rain_days = seasonal(hanoi.MONTHLY_RAIN_DAYS, mid)
        rain_mm = seasonal(hanoi.MONTHLY_RAIN_MM, mid)
        days_in_month = 30.4
        wet = hashed_uniform(self.seed, self._s_rain, day, 0) < rain_days / days_in_month
        mean_total = rain_mm / np.maximum(rain_days, 0.5)
        total = -np.log1p(-hashed_uniform(self.seed, self._s_rain, day, 1)) * mean_total
        convective = mean_total > 8.0
        start_h = np.where(
            convective,
            13.0 + 7.0 * hashed_uniform(self.seed, self._s_rain, day, 2),
            24.0 * hashed_uniform(self.seed, self._s_rain, day, 2),
        )
        duration = np.where(
            convective,
            0.5 + 2.5 * hashed_uniform(self.seed, self._s_rain, day, 3),
            2.0 + 8.0 * hashed_uniform(self.seed, self._s_rain, day, 3),
        )
        start = day_ms + start_h * HOUR_MS
        return start, duration, np.where(wet, total, 0.0)

    def rain(self, ts: NDArray[np.int64]) -> tuple[FloatArray, FloatArray]:
        """Rain intensity now (mm/h) and the fading sum of recent rain (mm)."""
        today = local_day(ts)
        now = np.zeros(ts.shape)
        recent = np.zeros(ts.shape)
        for back in range(5):
            start, duration, total = _cached(self._rain_days, today - back, self.rain_event)
            end = start + duration * HOUR_MS
            intensity, fallen = _shower(np.asarray((ts - start) / HOUR_MS), duration, total)
            now += intensity
            since_end_h = np.maximum(ts - end, 0) / HOUR_MS
            recent += fallen * np.exp(-since_end_h / RAIN_MEMORY_H)
        return now, recent

    # --- inversions -------------------------------------------------------------------------
    def inversion_episode(self, week: NDArray[np.int64]) -> tuple[FloatArray, FloatArray, FloatArray]:
        """The inversion episode starting in each week, if any: start (ms), duration (ms), peak."""
        week_ms = week * WEEK_MS
        chance = np.asarray(hanoi.MONTHLY_INVERSION_CHANCE)[month_index(week_ms + WEEK_MS // 2)]
        happens = hashed_uniform(self.seed, self._s_inversion, week, 0) < chance
        start = week_ms + hashed_uniform(self.seed, self._s_inversion, week, 1) * WEEK_MS
        duration = (2.0 + 3.0 * hashed_uniform(self.seed, self._s_inversion, week, 2)) * DAY_MS
        peak = np.where(happens, 0.6 + 0.4 * hashed_uniform(self.seed, self._s_inversion, week, 3), 0.0)
        return start, duration, peak

    def inversion(self, ts: NDArray[np.int64]) -> FloatArray:
        """Inversion strength 0-1: builds over a day, holds, then breaks up within a day."""
        week = ts // WEEK_MS
        strength = np.zeros(ts.shape)
        for back in (0, 1):
            start, duration, peak = _cached(self._inversion_weeks, week - back, self.inversion_episode)
            phase = (ts - start) / duration
            inside = (phase >= 0.0) & (phase <= 1.0)
            ramp = np.clip(np.minimum(phase / 0.3, (1.0 - phase) / 0.25), 0.0, 1.0)
            envelope = np.sin(0.5 * np.pi * ramp) ** 2
            strength = np.maximum(strength, np.where(inside, peak * envelope, 0.0))
        return strength


def _cached(
    table: dict[int, tuple[float, float, float]],
    keys: NDArray[np.int64],
    compute: Callable[[NDArray[np.int64]], tuple[FloatArray, FloatArray, FloatArray]],
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Per-day (or per-week) events, computed once per key: the weather asks for the same ones often."""
    unique, where = np.unique(keys, return_inverse=True)
    missing = [k for k in unique.tolist() if k not in table]
    if missing:
        fresh = compute(np.asarray(missing, dtype=np.int64))
        for i, key in enumerate(missing):
            table[key] = (float(fresh[0][i]), float(fresh[1][i]), float(fresh[2][i]))
        if len(table) > 4096:
            for key in list(table)[: len(table) - 2048]:
                del table[key]
    rows = np.array([table[k] for k in unique.tolist()], dtype=np.float64).reshape(len(unique), 3)[where]
    return rows[:, 0], rows[:, 1], rows[:, 2]


_N_FIELDS = 7


def _fields(sample: WeatherSample) -> tuple[FloatArray, ...]:
    return (
        sample.temperature,
        sample.humidity,
        sample.rain,
        sample.recent_rain,
        sample.inversion,
        sample.clear_sky,
        sample.pm_anomaly,
    )


def _shower(hours: FloatArray, duration: FloatArray, total: FloatArray) -> tuple[FloatArray, FloatArray]:
    """Intensity (mm/h) and rain fallen so far (mm), ``hours`` into a shower of ``total`` mm.

    The intensity is a trapezoid: it ramps up over :data:`RAIN_RAMP_H` (at most a
    third of the shower), holds, and ramps down, with the same total as a step.

    >>> i, fallen = _shower(np.array([-1.0, 0.2, 1.0, 2.0, 5.0]), np.full(5, 2.0), np.full(5, 8.0))
    >>> [round(float(v), 2) for v in i], [round(float(v), 2) for v in fallen]
    ([0.0, 2.5, 5.0, 0.0, 0.0], [0.0, 0.25, 4.0, 8.0, 8.0])
    """
    ramp = np.minimum(RAIN_RAMP_H, duration / 3.0)
    safe = np.maximum(ramp, 1e-9)
    peak = np.where(duration > 0, total / np.maximum(duration - ramp, 1e-9), 0.0)
    u = np.clip(hours, 0.0, duration)
    rising = u < ramp
    falling = u > duration - ramp
    shape = np.where(rising, u / safe, np.where(falling, (duration - u) / safe, 1.0))
    inside = (hours >= 0.0) & (hours < duration)
    intensity: FloatArray = np.where(inside, peak * shape, 0.0)
    area = np.where(
        rising,
        u * u / (2.0 * safe),
        np.where(falling, (duration - ramp) - (duration - u) ** 2 / (2.0 * safe), ramp / 2.0 + (u - ramp)),
    )
    fallen: FloatArray = np.where(hours <= 0.0, 0.0, peak * area)
    return intensity, fallen
