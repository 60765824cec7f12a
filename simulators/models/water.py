"""The water network: demand cycles, pressure, chlorine that decays with water age, rain and turbidity.

- Flow follows household demand: a night minimum around 03:00 (about a third of
  the mean; the minimum night flow is what leak hunters watch), a morning peak
  and an evening peak, later on weekends, higher in the hot season.
- Pressure at a node is the static head minus friction loss, which grows with
  the square of flow: highest at night, lowest at the evening peak.
- Free chlorine leaves the treatment plant at 0.8-0.9 mg/L and decays with
  first-order bulk decay (faster in warm water, about 7 % per °C) over the water's
  travel time, which is longer far from the plant and when demand is low. The dose
  and decay rates are chosen so that, without a fault or incident, every node stays
  inside the limits below: at least about 0.25 mg/L at the far end on a hot night,
  below 1.0 mg/L next to the plant.
- Turbidity rises some hours after heavy rain (raw water from the Red River and
  run-off), up to about four times its dry level, which the plant keeps under
  the 2 NTU limit; conductivity falls a little (dilution) and pH dips.
- Dissolved oxygen follows saturation, which falls as water warms.

Limits: QCVN 01-1:2018/BYT (pH 6.0-8.5, turbidity <= 2 NTU, free chlorine
0.2-1.0 mg/L at the tap), which the ``drinking_water`` detector enforces. Normal
water keeps to them; only injected faults and incidents (a pipe burst) break them.
Measurement noise is bounded (a probe's error is), so a long run never wanders
over a limit by chance.
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
)
from simulators.weather import HOUR_MS, local_hour, seasonal, weekday

WEEKDAY_DEMAND = (
    0.55, 0.42, 0.36, 0.35, 0.45, 0.85, 1.35, 1.48, 1.30, 1.10, 1.00, 1.02,
    1.05, 0.95, 0.90, 0.92, 1.00, 1.20, 1.38, 1.40, 1.28, 1.05, 0.85, 0.68,
)  # fmt: skip
WEEKEND_DEMAND = (
    0.60, 0.46, 0.38, 0.35, 0.40, 0.60, 0.95, 1.25, 1.42, 1.38, 1.20, 1.10,
    1.10, 1.00, 0.95, 0.95, 1.02, 1.18, 1.32, 1.36, 1.25, 1.08, 0.90, 0.72,
)  # fmt: skip
"""Relative household water demand by local hour (mean about 1)."""


def oxygen_saturation(temperature_c: FloatArray) -> FloatArray:
    """Dissolved-oxygen saturation in fresh water (mg/L), the usual cubic fit for 0-40 °C."""
    t = temperature_c
    saturation: FloatArray = 14.62 - 0.3898 * t + 0.006969 * t**2 - 0.00005896 * t**3
    return saturation


class WaterModel:
    """Water-network nodes: ph, turbidity, dissolved_oxygen, conductivity, free_chlorine, pressure, flow."""

    def __init__(self, context: FleetContext) -> None:
        self.kind = context.kind
        self.weather = context.weather
        n = context.n
        rng = context.rng("water")
        self.distance_km = rng.uniform(0.5, 15.0, n).astype(np.float32)
        """Pipe distance from the treatment plant: sets water age and the lag after rain."""
        self.mean_flow = np.exp(rng.uniform(np.log(20.0), np.log(300.0), n)).astype(np.float32)
        self.static_bar = rng.uniform(2.6, 4.2, n).astype(np.float32)
        self.headloss_bar = rng.uniform(0.4, 1.2, n).astype(np.float32)
        self.chlorine0 = rng.uniform(0.8, 0.9, n).astype(np.float32)
        self.decay_per_h = rng.uniform(0.02, 0.045, n).astype(np.float32)
        self.ph0 = rng.uniform(7.0, 7.8, n).astype(np.float32)
        self.turbidity0 = rng.uniform(0.15, 0.35, n).astype(np.float32)
        self.conductivity0 = rng.uniform(250.0, 550.0, n).astype(np.float32)
        self.red = Ar1(n, 2, context.kind.interval_s, tau_s=3600.0)
        self.cols = {name: i for i, name in enumerate(self.kind.measure_names)}
        names = self.kind.measure_names
        absolute = {"ph": 0.045, "turbidity": 0.03, "dissolved_oxygen": 0.12, "conductivity": 4.5}
        absolute |= {"free_chlorine": 0.01, "pressure": 0.04, "flow": 0.5}
        self.variation_abs = np.array([absolute.get(m, 0.0) for m in names])
        self.variation_rel = np.array(
            [
                {"turbidity": 0.12, "free_chlorine": 0.04, "flow": 0.07, "pressure": 0.02}.get(m, 0.0)
                for m in names
            ]
        )
        self.fault_fields = tuple(range(len(names)))

    def demand(self, ts_ms: NDArray[np.int64]) -> FloatArray:
        hour = local_hour(ts_ms)
        working = interp_hourly(WEEKDAY_DEMAND, hour)
        resting = interp_hourly(WEEKEND_DEMAND, hour)
        heat = 1.0 + 0.15 * (seasonal(hanoi.MONTHLY_TEMPERATURE_C, ts_ms) - 23.0) / 6.0
        relative: FloatArray = np.where(weekday(ts_ms) >= 5, resting, working) * heat
        return relative

    def values(self, device: IndexArray, ts_ms: NDArray[np.int64], rng: np.random.Generator) -> FloatArray:
        n = len(device)
        distance = self.distance_km[device].astype(np.float64)
        # Rain reaches a node after the raw water has passed the plant and travelled the pipes.
        lag_ms = (2.0 + 0.4 * distance) * HOUR_MS
        w_lagged = self.weather.sample(ts_ms - lag_ms.astype(np.int64))
        w = self.weather.sample(ts_ms)
        red = self.red.step(device, rng)
        white = np.clip(rng.standard_normal((n, 7)), -3.0, 3.0)
        demand = self.demand(ts_ms)
        flow_rel = demand * np.exp(0.05 * red[:, 0])
        flow = self.mean_flow[device] * flow_rel * (1.0 + 0.02 * white[:, 6])

        pressure = (
            self.static_bar[device]
            - self.headloss_bar[device] * flow_rel**2
            + 0.02 * white[:, 5]
            + 0.03 * red[:, 1]
        )
        water_temperature = 0.8 * seasonal(hanoi.MONTHLY_TEMPERATURE_C, ts_ms) + 5.0
        travel_h = distance / (1.5 * (0.6 + 0.4 * flow_rel))
        decay = self.decay_per_h[device] * 1.07 ** (water_temperature - 20.0)
        chlorine = self.chlorine0[device] * np.exp(-decay * travel_h) * (1.0 + 0.03 * white[:, 4])

        storm = np.minimum(w_lagged.recent_rain / 30.0, 1.5)
        rain_factor = 1.0 + 3.0 * (1.0 - np.exp(-w_lagged.recent_rain / 8.0))
        turbidity = self.turbidity0[device] * rain_factor * np.exp(0.1 * white[:, 1])
        ph = self.ph0[device] - 0.15 * storm + 0.03 * white[:, 0]
        conductivity = self.conductivity0[device] * (1.0 - 0.15 * np.minimum(storm, 1.0)) + 3.0 * white[:, 3]
        oxygen = 0.85 * oxygen_saturation(water_temperature) + 0.08 * white[:, 2] - 0.05 * w.rain / 10.0

        return assemble(
            self.kind,
            {
                "ph": ph,
                "turbidity": turbidity,
                "dissolved_oxygen": oxygen,
                "conductivity": conductivity,
                "free_chlorine": chlorine,
                "pressure": np.maximum(pressure, 0.3),
                "flow": flow,
            },
        )


def pipe_burst(
    model: WaterModel,
    values: FloatArray,
    device: IndexArray,
    intensity: FloatArray,
    severity: float,
    mode: str,
    rng: np.random.Generator,
) -> None:
    """A main bursts: pressure collapses, flow surges through the break, sediment clouds the water."""
    c = model.cols
    hit = np.clip(severity * intensity, 0.0, 1.5)
    values[:, c["pressure"]] *= np.clip(1.0 - 0.6 * hit, 0.05, 1.0)
    values[:, c["flow"]] *= 1.0 + 2.5 * hit
    values[:, c["turbidity"]] *= 1.0 + 6.0 * hit
    values[:, c["free_chlorine"]] *= 1.0 - 0.3 * np.minimum(hit, 1.0)
    values[:] = clip_to_kind(model.kind, values)


MODEL = ModelPlugin(
    kind="water",
    factory=WaterModel,
    incidents=(
        IncidentType(
            name="pipe_burst",
            kind="water",
            description="a main bursts: pressure drops about 60 %, flow 3.5x, turbidity up, until repaired",
            effect=pipe_burst,
            duration_s=4 * 3600.0,
            devices=3,
            ramp_in_s=0.0,
            ramp_out_s=600.0,
        ),
    ),
)
