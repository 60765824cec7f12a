"""Air quality in Hanoi: particles and gases driven by season, traffic, mixing height and weather.

The shape of each cycle is calibrated on real monitor records (see
:mod:`simulators.calibration`; Beijing, Dongsi station, 2013-2017):

- PM2.5/PM10 rises with relative humidity, from about 0.5 in dry air to 0.9 near
  saturation (``RATIO_BY_RH``), because wet particles grow into the fine fraction.
- Particles are highest at night and lowest in the afternoon, when the mixing layer
  is deepest (``PM25_DIURNAL``); the CO cycle (``CO_DIURNAL``) is used as the
  mixing-height proxy for traffic gases.
- Ozone peaks in the mid-afternoon sun at about 1.8x its mean and bottoms out at
  dawn (``O3_DIURNAL``).
- A pollution anomaly persists for about a day (log PM2.5 autocorrelation 0.96 at
  1 h, 0.74 at 6 h, 0.33 at 24 h, 0.07 at 48 h), which the weather's ventilation
  anomaly reproduces.

Levels are Hanoi's: monthly PM2.5 from ``hanoi.MONTHLY_PM25``, winter inversions
from the weather model (PM2.5 up to about 2.8x while one holds), NO2 and CO peaks
at the morning and evening rush (Hanoi's motorbike traffic), rain washing
particles out.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from simulators import hanoi
from simulators.models.base import (
    Ar1,
    FleetContext,
    FloatArray,
    IncidentType,
    IndexArray,
    ModelPlugin,
    assemble,
    clip_to_kind,
    interp_hourly,
    traffic_demand,
)
from simulators.weather import local_hour, seasonal, weekday

RATIO_BY_RH = (0.51, 0.61, 0.70, 0.75, 0.78, 0.81, 0.84, 0.87, 0.91)
"""Mean PM2.5/PM10 in relative-humidity bins centred on 15, 25, ..., 95 % (Dongsi)."""
RH_BIN_CENTRES = (15.0, 25.0, 35.0, 45.0, 55.0, 65.0, 75.0, 85.0, 95.0)
PM25_DIURNAL = (
    1.13, 1.12, 1.10, 1.07, 1.03, 0.99, 0.95, 0.93, 0.93, 0.92, 0.92, 0.93,
    0.93, 0.93, 0.92, 0.91, 0.91, 0.91, 0.95, 1.01, 1.08, 1.13, 1.13, 1.13,
)  # fmt: skip
O3_DIURNAL = (
    0.76, 0.68, 0.57, 0.49, 0.54, 0.49, 0.46, 0.45, 0.49, 0.62, 0.80, 1.03,
    1.27, 1.49, 1.66, 1.75, 1.77, 1.71, 1.59, 1.41, 1.21, 1.04, 0.91, 0.83,
)  # fmt: skip
CO_DIURNAL = (
    1.12, 1.13, 1.13, 1.00, 0.95, 1.05, 1.06, 1.08, 1.09, 1.06, 1.01, 0.99,
    0.94, 0.89, 0.84, 0.82, 0.80, 0.82, 0.88, 0.96, 1.03, 1.08, 1.12, 1.13,
)  # fmt: skip

MONTHLY_NO2 = (48.0, 44.0, 40.0, 36.0, 32.0, 28.0, 26.0, 27.0, 32.0, 40.0, 45.0, 48.0)
"""µg/m³, an assumption: Hanoi roadside NO2 is highest in the dry, stagnant winter."""
MONTHLY_O3 = (35.0, 40.0, 48.0, 52.0, 50.0, 40.0, 36.0, 36.0, 45.0, 52.0, 48.0, 38.0)
"""µg/m³, an assumption: ozone follows sunshine, lowest in the cloudy rainy season."""

INVERSION_GAIN = {"pm25": 1.8, "pm10": 1.5, "no2": 0.6, "co": 0.8}
"""How much a full inversion multiplies each pollutant (1 + gain x strength)."""


class AirModel:
    """Air-quality monitors: pm25, pm10, no2, o3, co, temperature, humidity."""

    def __init__(self, context: FleetContext) -> None:
        self.kind = context.kind
        self.weather = context.weather
        n = context.n
        rng = context.rng("air")
        density = {d.name: d.weight for d in hanoi.DISTRICTS}
        district = np.array([density.get(d.district, 1.0) for d in context.table.devices])
        self.site = (np.exp(rng.normal(0.0, 0.2, n)) * (0.85 + 0.15 * district)).astype(np.float32)
        self.road = rng.uniform(0.2, 1.0, n).astype(np.float32)
        """How close to a busy road the monitor stands: rush-hour gases and particles."""
        self.gain = np.clip(rng.normal(1.0, 0.05, n), 0.85, 1.15).astype(np.float32)
        """Each optical particle counter reads a little high or low."""
        self.ratio_bias = rng.normal(0.0, 0.03, n).astype(np.float32)
        self.t_bias = rng.normal(0.0, 0.4, n).astype(np.float32)
        self.rh_bias = rng.normal(0.0, 2.0, n).astype(np.float32)
        self.red = Ar1(n, 3, context.kind.interval_s, tau_s=1200.0)
        self.cols = {name: i for i, name in enumerate(self.kind.measure_names)}
        self.variation_abs = self._by_name(pm25=1.5, pm10=2.0, no2=1.5, o3=2.8, co=0.05, temperature=0.15)
        self.variation_abs[self.cols["humidity"]] = 1.2
        self.variation_rel = self._by_name(pm25=0.065, pm10=0.08, no2=0.085, o3=0.085, co=0.065)
        self.fault_fields = tuple(range(len(self.kind.measures)))

    def _by_name(self, **values: float) -> FloatArray:
        out = np.zeros(len(self.kind.measures))
        for name, value in values.items():
            out[self.cols[name]] = value
        return out

    def values(self, device: IndexArray, ts_ms: NDArray[np.int64], rng: np.random.Generator) -> FloatArray:
        n = len(device)
        w = self.weather.sample(ts_ms)
        hour = local_hour(ts_ms)
        rush = traffic_demand(hour, weekday(ts_ms))
        road = self.road[device]
        red = self.red.step(device, rng)
        white = rng.standard_normal((n, 7))
        inversion = w.inversion * (0.75 + 0.25 * np.cos(2.0 * np.pi * (hour - 5.0) / 24.0))
        washout = np.exp(-0.06 * np.minimum(w.rain, 30.0) - 0.004 * w.recent_rain)
        humidity = np.clip(w.humidity + self.rh_bias[device] + 0.8 * white[:, 6], 5.0, 100.0)

        base = seasonal(hanoi.MONTHLY_PM25, ts_ms)
        pm25 = (
            base
            * interp_hourly(PM25_DIURNAL, hour)
            * np.exp(0.45 * w.pm_anomaly - 0.1 + 0.15 * red[:, 0])
            * self.site[device]
            * (0.85 + 0.3 * road * rush)
            * (1.0 + INVERSION_GAIN["pm25"] * inversion)
            * washout
            * self.gain[device]
        )
        pm25 = pm25 + (1.0 + 0.03 * pm25) * white[:, 0]
        ratio = np.clip(np.interp(humidity, RH_BIN_CENTRES, RATIO_BY_RH) + self.ratio_bias[device], 0.3, 0.97)
        coarse_boost = (1.0 + INVERSION_GAIN["pm10"] * inversion) / (1.0 + INVERSION_GAIN["pm25"] * inversion)
        pm10 = np.maximum(pm25 / ratio * coarse_boost * np.exp(0.04 * white[:, 1]), pm25)

        mixing = interp_hourly(CO_DIURNAL, hour)
        traffic = (0.45 + 1.1 * road * rush) / 0.81
        no2 = (
            seasonal(MONTHLY_NO2, ts_ms)
            * mixing
            * traffic
            * (1.0 + INVERSION_GAIN["no2"] * inversion)
            * np.exp(0.2 * red[:, 1])
        )
        no2 = no2 + (1.0 + 0.04 * no2) * white[:, 2]
        sun = (0.35 + 0.65 * w.clear_sky) / 0.77
        o3 = (
            seasonal(MONTHLY_O3, ts_ms)
            * interp_hourly(O3_DIURNAL, hour)
            * sun
            * (1.0 - 0.3 * road * rush)
            * (1.0 - 0.35 * inversion)
            * np.exp(0.15 * red[:, 2])
        )
        o3 = o3 + (2.0 + 0.05 * o3) * white[:, 3]
        co = (
            0.9
            * np.sqrt(base / 45.0)
            * mixing
            * (0.5 + 0.9 * road * rush)
            / 0.8
            * (1.0 + INVERSION_GAIN["co"] * inversion)
            * np.exp(0.15 * red[:, 1])
        )
        co = co + (0.03 + 0.03 * co) * white[:, 4]
        temperature = w.temperature + self.t_bias[device] + 0.1 * white[:, 5]

        return assemble(
            self.kind,
            {
                "pm25": pm25,
                "pm10": pm10,
                "no2": no2,
                "o3": o3,
                "co": co,
                "temperature": temperature,
                "humidity": humidity,
            },
        )


def pollution_episode(
    model: AirModel,
    values: FloatArray,
    device: IndexArray,
    intensity: FloatArray,
    severity: float,
    mode: str,
    rng: np.random.Generator,
) -> None:
    """A stagnant, inversion-capped air mass: particles several-fold, gases up, ozone down."""
    c = model.cols
    for name, gain in (("pm25", 3.0), ("pm10", 2.6), ("co", 1.2), ("no2", 0.6)):
        values[:, c[name]] *= 1.0 + gain * severity * intensity
    values[:, c["o3"]] *= 1.0 - 0.3 * intensity
    values[:, c["humidity"]] = np.minimum(values[:, c["humidity"]] + 4.0 * intensity, 100.0)
    values[:] = clip_to_kind(model.kind, values)


MODEL = ModelPlugin(
    kind="air",
    factory=AirModel,
    incidents=(
        IncidentType(
            name="pollution_episode",
            kind="air",
            description="days of stagnant air under an inversion: PM2.5 about 4x, PM10 3.6x, CO and NO2 up",
            effect=pollution_episode,
            duration_s=2 * 86400.0,
            devices=None,
            ramp_in_s=6 * 3600.0,
            ramp_out_s=4 * 3600.0,
        ),
    ),
)
