"""Street lights: on at dusk and off at dawn by the sun, dimmed late at night, power follows dimming.

Each controller's photocell switches its lamp when the sun's elevation (from
:mod:`simulators.sun` at the lamp's own latitude) crosses that controller's
threshold, between 2.5° below and 0.5° above the horizon. While on, the lamp
follows a dimming schedule that saves energy when the streets are empty:
100 % until 22:00, 70 % until midnight, 50 % until 04:30, then 100 % until dawn
(one lamp in ten has no dimming). An LED driver's power is proportional to the
dimming level plus a small standby draw. The controller's own light sensor sees
daylight (dimmed by cloud) and, at night, a little of its own lamp.

Lamps belong to circuits (groups of neighbours on one feeder): a circuit outage
darkens all of them, a lamp failure one of them (incident ``lighting_outage``).
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
)
from simulators.sun import elevation_deg
from simulators.weather import local_hour

STANDBY_W = 0.5
"""What a controller and driver draw with the lamp off."""
LAMP_FAILED_W = 2.5
"""A driver whose LED module has failed still draws a little."""


def dimming_schedule(hour: FloatArray) -> FloatArray:
    """Dimming level (%) a lit lamp follows through the night, by local hour."""
    schedule: FloatArray = np.select(
        [(hour >= 22.0) & (hour < 24.0), hour < 4.5],
        [70.0, 50.0],
        default=100.0,
    )
    return schedule


def sky_illuminance(elevation: FloatArray, clear_sky: FloatArray) -> FloatArray:
    """Daylight on a horizontal surface (lux): about 110,000 at a high clear sun, a few lux at dusk."""
    day = 400.0 + 110_000.0 * np.clip(np.sin(np.radians(elevation)), 0.0, 1.0) ** 1.15 * clear_sky
    twilight = 400.0 * 10.0 ** (np.clip(elevation, -18.0, 0.0) / 2.4)
    lux: FloatArray = np.where(elevation > 0.0, day, twilight * np.maximum(clear_sky, 0.3))
    return lux


class LightingModel:
    """Street-light controllers: state, dimming, power, lux."""

    def __init__(self, context: FleetContext) -> None:
        self.kind = context.kind
        self.weather = context.weather
        n = context.n
        rng = context.rng("lighting")
        self.lat = np.array([d.lat for d in context.table.devices], dtype=np.float32)
        self.threshold_deg = rng.uniform(-2.5, 0.5, n).astype(np.float32)
        self.rated_w = rng.choice(np.array([60.0, 90.0, 120.0, 150.0, 200.0]), n).astype(np.float32)
        self.dims = (rng.random(n) >= 0.1).astype(np.bool_)
        self.spill_lux = rng.uniform(5.0, 30.0, n).astype(np.float32)
        self.cols = {name: i for i, name in enumerate(self.kind.measure_names)}
        names = self.kind.measure_names
        self.variation_abs = np.array([{"power": 1.0, "lux": 0.5}.get(m, 0.0) for m in names])
        self.variation_rel = np.array([{"power": 0.015, "lux": 0.08}.get(m, 0.0) for m in names])
        self.fault_fields: tuple[int, ...] = (self.cols["power"], self.cols["lux"])

    def values(self, device: IndexArray, ts_ms: NDArray[np.int64], rng: np.random.Generator) -> FloatArray:
        n = len(device)
        w = self.weather.sample(ts_ms)
        elevation = elevation_deg(ts_ms, self.lat[device].astype(np.float64))
        on = elevation < self.threshold_deg[device]
        scheduled = np.where(self.dims[device], dimming_schedule(local_hour(ts_ms)), 100.0)
        dimming = np.where(on, scheduled, 0.0)
        white = rng.standard_normal((n, 2))
        # The meter never reads a perfectly flat line, not even the standby draw.
        power = np.where(
            on,
            STANDBY_W + self.rated_w[device] * dimming / 100.0 * (1.0 + 0.01 * white[:, 0]),
            STANDBY_W * (1.0 + 0.05 * white[:, 0]),
        )
        lamp_light = np.where(on, self.spill_lux[device] * dimming / 100.0, 0.0)
        lux = (sky_illuminance(elevation, w.clear_sky) + lamp_light) * np.exp(0.05 * white[:, 1]) + 0.1
        return assemble(
            self.kind,
            {
                "state": on,
                "dimming": dimming,
                "power": power,
                "lux": lux,
            },
        )


def lighting_outage(
    model: LightingModel,
    values: FloatArray,
    device: IndexArray,
    intensity: FloatArray,
    severity: float,
    mode: str,
    rng: np.random.Generator,
) -> None:
    """A circuit loses supply (its lamps go dark and draw nothing) or one lamp's LED fails."""
    c = model.cols
    out = intensity > 0.0
    lamp_light = model.spill_lux[device] * values[:, c["dimming"]] / 100.0
    values[:, c["lux"]] = np.where(
        out, np.maximum(values[:, c["lux"]] - lamp_light, 0.1), values[:, c["lux"]]
    )
    if mode == "lamp":
        lit = out & (values[:, c["state"]] > 0.5)
        values[:, c["power"]] = np.where(lit, LAMP_FAILED_W, values[:, c["power"]])
    else:
        values[:, c["state"]] = np.where(out, 0.0, values[:, c["state"]])
        values[:, c["dimming"]] = np.where(out, 0.0, values[:, c["dimming"]])
        values[:, c["power"]] = np.where(out, 0.0, values[:, c["power"]])


MODEL = ModelPlugin(
    kind="lighting",
    factory=LightingModel,
    incidents=(
        IncidentType(
            name="lighting_outage",
            kind="lighting",
            description="a lighting circuit loses supply: its lamps are dark at night and draw ~0 W "
            "(mode 'lamp': one lamp's LED fails, drawing 2.5 W while switched on)",
            effect=lighting_outage,
            duration_s=6 * 3600.0,
            devices=12,
            modes=("circuit", "lamp"),
            starts_at_dusk=True,
        ),
    ),
)
