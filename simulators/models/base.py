"""What every signal model shares: its interface, its context and a few physical building blocks.

A model turns (device indices, timestamps) into one row of values per reading,
vectorised over devices. Per-device constants (where a sensor stands, how big
its pipe is, how fast its bin fills) are drawn once from the seed and kept in
numpy arrays of a few bytes per device, so a fleet of 100,000 stays small.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
from numpy.typing import NDArray

from processors.kinds import SensorKind
from processors.registry import DeviceTable
from simulators.rand import stream_id
from simulators.weather import Weather, local_hour

FloatArray = NDArray[np.float64]
IndexArray = NDArray[np.intp]


@dataclass(frozen=True)
class FleetContext:
    """Everything a model may depend on: its kind, its devices, the seed and the city's weather."""

    kind: SensorKind
    table: DeviceTable
    seed: int
    weather: Weather

    @property
    def n(self) -> int:
        return len(self.table)

    def rng(self, purpose: str) -> np.random.Generator:
        """A generator for per-device constants, independent of every other purpose and kind."""
        return np.random.default_rng(
            np.random.SeedSequence([self.seed, stream_id(self.kind.name), stream_id(purpose)])
        )

    def column(self, name: str) -> int:
        return self.kind.measure_names.index(name)


class SignalModel(Protocol):
    """The interface of a physics model (one per kind) and of the generic fallback."""

    kind: SensorKind
    variation_abs: FloatArray
    """Typical reading-to-reading variation of each measure when nothing is wrong: the
    standard deviation is about ``variation_abs + variation_rel * |value|``. Fault injection
    scales spikes and noise bursts from it, so they stand out by a known factor."""
    variation_rel: FloatArray
    fault_fields: tuple[int, ...]
    """Measures that signal faults (spike, drift, stuck, noise) may target: continuous ones
    whose value normally keeps changing, so a fault there is visible in the data."""

    def values(self, device: IndexArray, ts_ms: NDArray[np.int64], rng: np.random.Generator) -> FloatArray:
        """One row per (device, timestamp), one column per measure; NaN = not reported."""
        ...


IncidentEffect = Callable[[Any, FloatArray, IndexArray, FloatArray, float, str, np.random.Generator], None]
"""``effect(model, values, device, intensity, severity, mode, rng)`` changes ``values`` in place
for the affected rows; ``intensity`` (0-1 per row) follows the incident's ramps."""


@dataclass(frozen=True)
class IncidentType:
    """A kind of incident a scenario can stage, with the physics of what it does to readings."""

    name: str
    kind: str
    description: str
    effect: IncidentEffect
    duration_s: float
    """Default length of the incident."""
    devices: int | None
    """Default number of devices hit (the nearest to a point); None: every device of the area."""
    ramp_in_s: float = 0.0
    ramp_out_s: float = 0.0
    modes: tuple[str, ...] = ("",)
    starts_at_dusk: bool = False
    """Only visible at night (lighting): the built-in scenario starts it at the first dusk."""


@dataclass(frozen=True)
class ModelPlugin:
    """What a module in ``simulators/models/`` declares as ``MODEL``."""

    kind: str
    factory: Callable[[FleetContext], SignalModel]
    incidents: Sequence[IncidentType] = field(default_factory=tuple)


def assemble(kind: SensorKind, columns: Mapping[str, NDArray[Any]]) -> FloatArray:
    """One row per reading, one column per measure in the kind's order, clipped to the kind.

    A model must give every measure its kind declares: a measure added to the kind
    and forgotten here fails loudly instead of being simulated as zeros.
    """
    missing = [m.name for m in kind.measures if m.name not in columns]
    if missing:
        raise KeyError(f"the {kind.name} model gives no values for {', '.join(missing)}")
    stacked = np.column_stack([np.asarray(columns[m.name], dtype=np.float64) for m in kind.measures])
    return clip_to_kind(kind, stacked)


def clip_to_kind(kind: SensorKind, values: FloatArray) -> FloatArray:
    """Keep every value inside its measure's valid range, and whole where the sensor counts."""
    lo = np.array([m.lo for m in kind.measures])
    hi = np.array([m.hi for m in kind.measures])
    step = np.array([m.step or 0.0 for m in kind.measures])
    if np.any(step > 0):
        safe = np.where(step > 0, step, 1.0)
        values = np.where(step > 0, np.round(values / safe) * safe, values)
    clipped: FloatArray = np.clip(values, lo, hi)
    return clipped


class Ar1:
    """Per-device red noise: each step keeps ``phi`` of the last value (unit variance overall).

    Real signals wander: a minute's reading resembles the last one. Stepped once per
    reading of a device, with ``phi = exp(-interval / tau)``.
    """

    def __init__(self, n: int, columns: int, interval_s: float, tau_s: float) -> None:
        self.state = np.zeros((n, columns), dtype=np.float32)
        self.phi = float(np.exp(-interval_s / tau_s))
        self.kick = float(np.sqrt(1.0 - self.phi**2))

    def step(self, device: IndexArray, rng: np.random.Generator) -> FloatArray:
        shock = rng.standard_normal((len(device), self.state.shape[1]))
        new = self.phi * self.state[device].astype(np.float64) + self.kick * shock
        self.state[device] = new
        return new


def interp_hourly(table: Sequence[float], hour: FloatArray) -> FloatArray:
    """A 24-value hourly table (value at each hour's middle) interpolated around the clock."""
    values = np.asarray(table, dtype=np.float64)
    xp = np.arange(-0.5, 25.0, 1.0)
    fp = np.concatenate([values[-1:], values, values[:1]])
    result: FloatArray = np.interp(hour, xp, fp)
    return result


# Road traffic demand in Hanoi, relative to the weekday peak, by local hour. Morning rush
# 07:00-09:00 and evening rush 17:00-19:00 on weekdays; weekends rise later, peak lower
# and spread through the afternoon. Shared by traffic, air (NO2, CO) and noise from roads.
WEEKDAY_TRAFFIC = (
    0.12, 0.07, 0.05, 0.05, 0.08, 0.25, 0.62, 0.95, 1.00, 0.80, 0.66, 0.64,
    0.60, 0.60, 0.64, 0.70, 0.86, 1.00, 0.94, 0.74, 0.60, 0.50, 0.35, 0.20,
)  # fmt: skip
WEEKEND_TRAFFIC = (
    0.18, 0.10, 0.07, 0.05, 0.06, 0.14, 0.28, 0.45, 0.60, 0.70, 0.72, 0.70,
    0.65, 0.60, 0.62, 0.66, 0.72, 0.78, 0.80, 0.75, 0.65, 0.55, 0.40, 0.28,
)  # fmt: skip


def traffic_demand(hour: FloatArray, weekday: NDArray[np.int64]) -> FloatArray:
    """Relative road-traffic demand (0-1) at local ``hour`` on ``weekday`` (0 = Monday)."""
    working = interp_hourly(WEEKDAY_TRAFFIC, hour)
    resting = interp_hourly(WEEKEND_TRAFFIC, hour)
    demand: FloatArray = np.where(weekday >= 5, resting, working)
    return demand


class GenericModel:
    """A daily cycle inside each measure's normal band, a per-device offset and noise.

    The fallback for kinds without a physics model: derived only from the kind's
    declaration, so a newly declared kind simulates at once.
    """

    def __init__(self, context: FleetContext) -> None:
        kind = self.kind = context.kind
        rng = context.rng("generic")
        n_measures = len(kind.measures)
        self.bias = rng.normal(0.0, 0.15, size=(context.n, n_measures)).astype(np.float32)
        self.phase = rng.uniform(0.0, 24.0, size=n_measures)
        normal = np.array([m.normal for m in kind.measures], dtype=np.float64)
        self.mid = normal.mean(axis=1)
        self.half = (normal[:, 1] - normal[:, 0]) / 2.0
        self.variation_abs = 0.12 * self.half
        self.variation_rel = np.zeros(n_measures)
        self.fault_fields = tuple(i for i, m in enumerate(kind.measures) if not m.step)

    def values(self, device: IndexArray, ts_ms: NDArray[np.int64], rng: np.random.Generator) -> FloatArray:
        hour = local_hour(ts_ms)[:, None]
        daily = np.sin(2.0 * np.pi * (hour - self.phase[None, :]) / 24.0)
        noise = rng.normal(0.0, 0.08, size=(len(device), len(self.mid)))
        raw = self.mid + self.half * (0.6 * daily + self.bias[device] + noise)
        return clip_to_kind(self.kind, raw)
