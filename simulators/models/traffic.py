"""Road traffic detectors: counts, speed and occupancy that obey a traffic fundamental diagram.

Each detector has a free-flow speed ``vf``, a jam density ``kj`` per lane and a
number of lanes. Demand (the relative traffic of the hour, ``traffic_demand``,
times the site's peak demand over capacity ``d``) sets the state on Greenshields'
diagram, ``v = vf (1 - k/kj)`` and ``q = k v``:

- below capacity (``d <= 1``) traffic is free-flowing, density ``k/kj = (1 - sqrt(1 - d)) / 2``;
- above it a queue forms and the state moves onto the congested branch: density
  rises towards jam, speed collapses and the flow actually served falls.

Speed, occupancy (density times the effective vehicle length) and the count (a
Poisson draw of the flow over the interval) therefore always agree with each
other, as they do on a real road. Rain lowers free-flow speed by 15 %.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from simulators.models.base import (
    Ar1,
    FleetContext,
    FloatArray,
    IncidentType,
    IndexArray,
    ModelPlugin,
    assemble,
    clip_to_kind,
    traffic_demand,
)
from simulators.weather import local_hour, weekday

JAM_OCCUPANCY = 0.9
"""Share of time a loop is occupied at jam density (vehicles bumper to bumper)."""


def density_ratio(demand_over_capacity: FloatArray) -> FloatArray:
    """k/kj for a demand ratio: the free-flow branch up to capacity, the congested one beyond."""
    d = np.maximum(demand_over_capacity, 0.0)
    free = (1.0 - np.sqrt(np.clip(1.0 - d, 0.0, 1.0))) / 2.0
    congested = 0.5 + 0.42 * (1.0 - np.exp(-2.5 * (d - 1.0)))
    ratio: FloatArray = np.where(d <= 1.0, free, congested)
    return ratio


class TrafficModel:
    """Traffic detectors: vehicle_count, mean_speed, occupancy."""

    def __init__(self, context: FleetContext) -> None:
        self.kind = context.kind
        self.weather = context.weather
        n = context.n
        rng = context.rng("traffic")
        self.free_speed = rng.uniform(35.0, 60.0, n).astype(np.float32)
        self.jam_density = rng.uniform(100.0, 140.0, n).astype(np.float32)
        """Vehicles per km per lane at a standstill."""
        self.lanes = rng.integers(2, 5, n).astype(np.int8)
        self.peak_demand = rng.uniform(0.6, 1.25, n).astype(np.float32)
        """Demand at the weekday peak over capacity: above 1 the site congests at rush hour."""
        self.interval_s = np.array([context.table.interval_s(i) for i in range(n)], dtype=np.float32)
        self.red = Ar1(n, 1, context.kind.interval_s, tau_s=900.0)
        self.cols = {name: i for i, name in enumerate(self.kind.measure_names)}
        names = self.kind.measure_names
        absolute = {"vehicle_count": 3.0, "mean_speed": 1.5, "occupancy": 1.0}
        relative = {"vehicle_count": 0.15, "mean_speed": 0.05, "occupancy": 0.08}
        self.variation_abs = np.array([absolute.get(m, 0.0) for m in names])
        self.variation_rel = np.array([relative.get(m, 0.0) for m in names])
        self.fault_fields = tuple(i for i, m in enumerate(self.kind.measures) if not m.step)

    def demand_ratio(self, device: IndexArray, ts_ms: NDArray[np.int64], red: FloatArray) -> FloatArray:
        w = self.weather.sample(ts_ms)
        relative = traffic_demand(local_hour(ts_ms), weekday(ts_ms))
        ratio: FloatArray = (
            self.peak_demand[device]
            * relative
            * (1.0 - 0.1 * np.minimum(w.rain / 10.0, 1.0))
            * np.exp(0.08 * red)
        )
        return ratio

    def state(
        self, device: IndexArray, ratio: FloatArray, ts_ms: NDArray[np.int64], rng: np.random.Generator
    ) -> FloatArray:
        """Readings for a given demand ratio: where the fundamental diagram puts the road."""
        n = len(device)
        rain = self.weather.sample(ts_ms).rain
        vf = self.free_speed[device] * (1.0 - 0.15 * np.minimum(rain / 5.0, 1.0))
        x = density_ratio(ratio)
        white = rng.standard_normal((n, 2))
        speed = vf * (1.0 - x) * (1.0 + 0.03 * white[:, 0]) + 0.5 * white[:, 0]
        occupancy = 100.0 * JAM_OCCUPANCY * x * (1.0 + 0.05 * white[:, 1]) + 0.5 * white[:, 1]
        flow_per_h = self.jam_density[device] * self.lanes[device] * vf * x * (1.0 - x)
        count = rng.poisson(np.maximum(flow_per_h * self.interval_s[device] / 3600.0, 0.0))
        return assemble(
            self.kind,
            {
                "vehicle_count": count,
                "mean_speed": np.maximum(speed, 1.0),
                "occupancy": occupancy,
            },
        )

    def values(self, device: IndexArray, ts_ms: NDArray[np.int64], rng: np.random.Generator) -> FloatArray:
        red = self.red.step(device, rng)[:, 0]
        return self.state(device, self.demand_ratio(device, ts_ms, red), ts_ms, rng)


def traffic_incident(
    model: TrafficModel,
    values: FloatArray,
    device: IndexArray,
    intensity: FloatArray,
    severity: float,
    mode: str,
    rng: np.random.Generator,
) -> None:
    """A crash blocks lanes: capacity falls, the road moves onto the congested branch."""
    c = model.cols
    x = np.clip(values[:, c["occupancy"]] / (100.0 * JAM_OCCUPANCY), 0.0, 0.99)
    demand = np.where(x <= 0.5, 1.0 - (1.0 - 2.0 * x) ** 2, 1.0)
    blocked = np.clip(0.7 * severity * intensity, 0.0, 0.95)
    x_new = np.maximum(density_ratio(np.maximum(demand, 0.35) / (1.0 - blocked)), x)
    vf = model.free_speed[device]
    speed = vf * (1.0 - x_new) * (1.0 + 0.03 * rng.standard_normal(len(device)))
    open_share = 1.0 - blocked
    flow_per_h = model.jam_density[device] * model.lanes[device] * open_share * vf * x_new * (1.0 - x_new)
    values[:, c["mean_speed"]] = np.maximum(speed, 1.0)
    values[:, c["occupancy"]] = 100.0 * JAM_OCCUPANCY * x_new
    values[:, c["vehicle_count"]] = rng.poisson(flow_per_h * model.interval_s[device] / 3600.0)
    values[:] = clip_to_kind(model.kind, values)


MODEL = ModelPlugin(
    kind="traffic",
    factory=TrafficModel,
    incidents=(
        IncidentType(
            name="traffic_incident",
            kind="traffic",
            description="a crash blocks lanes: speed collapses to a few km/h, occupancy rises past 70 %",
            effect=traffic_incident,
            duration_s=45 * 60.0,
            devices=4,
            ramp_in_s=300.0,
            ramp_out_s=900.0,
        ),
    ),
)
