"""Waste bins: fill levels that rise with the day's habits and drop at collection, heat, tilt, battery.

- Each bin fills at its own rate (busy market corners several times faster than
  quiet lanes), mostly between 06:00 and 22:00, with the evening the busiest.
- Collection crews empty it on a route schedule: every day or every other day at
  the route's hour (Hanoi collects in the evening and at night). About one
  collection in 25 is missed and the bin keeps filling, up to overflowing.
- The fill level is a pure function of time (deposits since the last collection
  that happened), so any moment can be simulated on its own.
- Temperature is the air's plus sun on the lid plus a little from decomposition;
  tilt stays near the ground's slope; the battery drains steadily and is replaced
  near 15 %.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from simulators.models.base import (
    FleetContext,
    FloatArray,
    IncidentType,
    IndexArray,
    ModelPlugin,
    assemble,
    clip_to_kind,
)
from simulators.rand import hashed_normal, hashed_uniform, stream_id
from simulators.sun import elevation_deg
from simulators.weather import local_day, local_hour

DEPOSITS = (
    0.2, 0.1, 0.1, 0.1, 0.3, 1.5, 4.5, 6.5, 6.0, 5.0, 4.5, 5.0,
    6.0, 5.0, 4.5, 4.5, 5.0, 6.5, 8.0, 8.5, 7.5, 5.5, 3.0, 1.2,
)  # fmt: skip
"""Relative share of a day's waste thrown in during each local hour."""
_SHARE = np.asarray(DEPOSITS) / sum(DEPOSITS)
_CUMULATIVE = np.concatenate([[0.0], np.cumsum(_SHARE)])
MISSED_COLLECTION = 0.04
BATTERY_REPLACED_AT = 15.0


def day_progress(hour: FloatArray) -> FloatArray:
    """Share of the day's deposits made by local ``hour`` (0 at midnight, 1 at the next)."""
    whole = np.clip(np.floor(hour).astype(np.int64), 0, 23)
    progress: FloatArray = _CUMULATIVE[whole] + _SHARE[whole] * (hour - whole)
    return progress


class WasteModel:
    """Waste-bin sensors: fill_level, temperature, tilt, battery."""

    def __init__(self, context: FleetContext) -> None:
        self.kind = context.kind
        self.weather = context.weather
        self.seed = context.seed
        n = context.n
        rng = context.rng("waste")
        self.lat = np.array([d.lat for d in context.table.devices], dtype=np.float32)
        self.fill_per_day = np.clip(np.exp(rng.normal(np.log(40.0), 0.45, n)), 8.0, 160.0).astype(np.float32)
        """Percent of the bin filled by a day's deposits."""
        evening = rng.random(n) < 0.75
        self.collect_hour = np.where(evening, rng.uniform(19.0, 23.5, n), rng.uniform(4.0, 6.0, n)).astype(
            np.float32
        )
        self.period_days = np.where(rng.random(n) < 0.7, 1, 2).astype(np.int8)
        self.phase_days = (rng.integers(0, 2, n) % self.period_days).astype(np.int8)
        self.sun_exposure = rng.uniform(0.2, 1.0, n).astype(np.float32)
        self.tilt0 = rng.uniform(0.5, 6.0, n).astype(np.float32)
        self.drain_per_day = rng.uniform(0.04, 0.12, n).astype(np.float32)
        install = [
            d.install_date.toordinal() - 719163 if d.install_date else 19_000 for d in context.table.devices
        ]
        self.install_day = np.asarray(install, dtype=np.int32)
        self._s_missed = stream_id("waste-missed")
        self._s_rate = stream_id("waste-rate")
        self.cols = {name: i for i, name in enumerate(self.kind.measure_names)}
        names = self.kind.measure_names
        absolute = {"fill_level": 1.8, "temperature": 0.9, "tilt": 0.45, "battery": 0.45}
        self.variation_abs = np.array([absolute.get(m, 0.0) for m in names])
        self.variation_rel = np.zeros(len(names))
        self.fault_fields = tuple(range(len(names)))

    def last_collection(
        self, device: IndexArray, ts_ms: NDArray[np.int64]
    ) -> tuple[FloatArray, NDArray[np.int64]]:
        """When each bin was last emptied: in deposit-days (day + day_progress) and as a local day."""
        hour = local_hour(ts_ms)
        today = local_day(ts_ms)
        collect = self.collect_hour[device].astype(np.float64)
        period = self.period_days[device].astype(np.int64)
        day = np.where(hour >= collect, today, today - 1)
        day = day - (day - self.phase_days[device]) % period
        found = np.zeros(len(device), dtype=np.bool_)
        chosen = day.copy()
        for _ in range(6):
            key = device.astype(np.int64) * 1_000_003 + day
            happened = hashed_uniform(self.seed, self._s_missed, key) >= MISSED_COLLECTION
            take = happened & ~found
            chosen = np.where(take, day, chosen)
            found |= happened
            day = day - period
        return chosen + day_progress(collect), chosen

    def fill(self, device: IndexArray, ts_ms: NDArray[np.int64]) -> FloatArray:
        """Fill level (%) without sensor noise."""
        now = local_day(ts_ms) + day_progress(local_hour(ts_ms))
        emptied, day = self.last_collection(device, ts_ms)
        rate = self.fill_per_day[device] * np.exp(
            0.2 * hashed_normal(self.seed, self._s_rate, device.astype(np.int64) * 1_000_003 + day)
        )
        level: FloatArray = np.minimum(rate * (now - emptied), 100.0)
        return level

    def values(self, device: IndexArray, ts_ms: NDArray[np.int64], rng: np.random.Generator) -> FloatArray:
        n = len(device)
        w = self.weather.sample(ts_ms)
        white = rng.standard_normal((n, 4))
        fill = self.fill(device, ts_ms)
        sun = np.clip(np.sin(np.radians(elevation_deg(ts_ms, self.lat[device].astype(np.float64)))), 0.0, 1.0)
        temperature = w.temperature + 8.0 * self.sun_exposure[device] * sun * w.clear_sky + 2.0 * fill / 100.0
        days = local_day(ts_ms) - self.install_day[device]
        life = (100.0 - BATTERY_REPLACED_AT) / self.drain_per_day[device]
        battery = 100.0 - self.drain_per_day[device] * np.mod(np.maximum(days, 0), life)
        battery = battery - 0.3 * np.maximum(15.0 - w.temperature, 0.0)
        return assemble(
            self.kind,
            {
                "fill_level": fill + 1.0 * white[:, 0],
                "temperature": temperature + 0.3 * white[:, 1],
                "tilt": self.tilt0[device] + 0.3 * white[:, 2],
                "battery": battery + 0.3 * white[:, 3],
            },
        )


def bin_fire(
    model: WasteModel,
    values: FloatArray,
    device: IndexArray,
    intensity: FloatArray,
    severity: float,
    mode: str,
    rng: np.random.Generator,
) -> None:
    """Smouldering waste catches fire: the bin heats fast and smoke confuses the level sensor."""
    c = model.cols
    values[:, c["temperature"]] += 75.0 * severity * intensity
    values[:, c["fill_level"]] += 8.0 * intensity * rng.standard_normal(len(device))
    values[:] = clip_to_kind(model.kind, values)


MODEL = ModelPlugin(
    kind="waste",
    factory=WasteModel,
    incidents=(
        IncidentType(
            name="bin_fire",
            kind="waste",
            description="a bin catches fire: its temperature climbs about 75 °C within 30 minutes",
            effect=bin_fire,
            duration_s=3 * 3600.0,
            devices=1,
            ramp_in_s=1800.0,
            ramp_out_s=1800.0,
        ),
    ),
)
