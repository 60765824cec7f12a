"""When each device reports: fixed simulated-time slices, independent of the wall clock.

The fleet is generated in fixed blocks of simulated time (a minute, cut short
only by the end of the run) and published in one-second slices. Random
numbers are drawn block by block, so the output depends only on the seed, the
start time and the fleet, never on how fast the machine is or how the run is
paced; blocks rather than single seconds keep numpy's per-call overhead small for
small fleets. A fleet larger than :data:`BLOCK_DEVICES` gets shorter blocks, so
that a block holds about as many readings as a minute of that many devices: the
encoded messages of a block wait in memory until they are sent, and at 100,000
devices a minute of them (a few hundred oversized payloads of 256 KB among them)
was most of the simulator's memory.

Each device reports on its own lattice (start + phase + k x interval); each
reading leaves a little after it was due (jitter) and is stamped by the device's
drifting clock (:mod:`simulators.clocks`). Staged incidents change the values of
the devices they hit while they last.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from processors.kinds import KINDS, SensorKind
from processors.registry import Registry
from simulators.clocks import DeviceClocks
from simulators.incidents import PlacedIncident
from simulators.models import SignalModel, model_for
from simulators.weather import Weather

SLICE_MS = 1000
"""Publishing and pacing step."""
BLOCK_MS = 60_000
"""Generation step: readings of a block are generated together, then sent slice by slice."""
BLOCK_DEVICES = 20_000
"""Fleets up to this size are generated a minute at a time; larger ones in proportionally shorter blocks."""


def block_length_ms(devices: int) -> int:
    """How much simulated time is generated at once for a fleet of ``devices``: whole slices.

    >>> block_length_ms(2_000), block_length_ms(100_000), block_length_ms(10**7)
    (60000, 12000, 1000)
    """
    if devices <= BLOCK_DEVICES:
        return BLOCK_MS
    return max(SLICE_MS, BLOCK_MS * BLOCK_DEVICES // devices // SLICE_MS * SLICE_MS)


@dataclass(frozen=True, eq=False)
class Chunk:
    """Readings of one kind generated in one slice, before faults and encoding."""

    kind: SensorKind
    device: NDArray[np.intp]
    ts_ms: NDArray[np.int64]
    """True time the reading is taken and sent."""
    clock_ms: NDArray[np.int64]
    """The timestamp the device writes: its own clock, at its format's precision."""
    values: NDArray[np.float64]
    incidents: tuple[tuple[PlacedIncident, NDArray[np.bool_]], ...] = ()
    """Incidents that changed some of these readings, and which rows."""


class _KindSchedule:
    __slots__ = ("clocks", "interval_ms", "kind", "lattice", "model", "next_send", "soonest")

    def __init__(self, kind: SensorKind, model: SignalModel, interval_ms: NDArray[np.int64], start_ms: int,
                 phase_rng: np.random.Generator, rng: np.random.Generator) -> None:  # fmt: skip
        self.kind = kind
        self.model = model
        self.interval_ms = interval_ms
        self.clocks = DeviceClocks(kind.name, interval_ms, phase_rng)
        self.lattice = start_ms + (phase_rng.random(len(interval_ms)) * interval_ms).astype(np.int64)
        self.next_send = self.lattice + self.clocks.jitter(np.arange(len(interval_ms)), rng)
        self.soonest = int(self.next_send.min())


class Schedule:
    """Yields, slice by slice, the readings every device of the fleet produces."""

    def __init__(
        self,
        registry: Registry,
        kinds: Sequence[str],
        start_ms: int,
        seed: int,
        incidents: Sequence[PlacedIncident] = (),
        weather: Weather | None = None,
    ) -> None:
        self.start_ms = start_ms
        self.registry = registry
        self.block_ms = block_length_ms(sum(len(registry.tables[name]) for name in kinds))
        self.weather = weather or Weather(seed)
        self._rng = np.random.default_rng(np.random.SeedSequence([seed, 0x5C4ED]))
        phase_rng = np.random.default_rng(np.random.SeedSequence([seed, 0x9A5E]))
        self._kinds: dict[str, _KindSchedule] = {}
        self.models: dict[str, SignalModel] = {}
        for name in kinds:
            table = registry.tables[name]
            n = len(table)
            if n == 0:
                continue
            kind = KINDS[name]
            interval = np.array([round(table.interval_s(i) * 1000) for i in range(n)], dtype=np.int64)
            model = model_for(kind, table, seed, self.weather)
            self.models[name] = model
            self._kinds[name] = _KindSchedule(kind, model, interval, start_ms, phase_rng, self._rng)
        self.incidents = {name: [i for i in incidents if i.kind == name] for name in self._kinds}

    @property
    def kinds(self) -> list[str]:
        return list(self._kinds)

    def slice(self, slice_start_ms: int, end_ms: int | None = None) -> Iterator[Chunk]:
        """Readings sent in ``[slice_start_ms, end_ms)`` (default: one slice), kind by kind."""
        end = slice_start_ms + SLICE_MS if end_ms is None else end_ms
        for name, sched in self._kinds.items():
            while sched.soonest < end:
                due = np.flatnonzero(sched.next_send < end)
                ts = sched.next_send[due].copy()
                sched.lattice[due] += sched.interval_ms[due]
                sched.next_send[due] = sched.lattice[due] + sched.clocks.jitter(due, self._rng)
                sched.soonest = int(sched.next_send.min())
                values = sched.model.values(due, ts, self._rng)
                touched = self._apply_incidents(name, sched.model, due, ts, values)
                yield Chunk(sched.kind, due, ts, sched.clocks.read(due, ts), values, touched)

    def _apply_incidents(
        self,
        name: str,
        model: SignalModel,
        device: NDArray[np.intp],
        ts: NDArray[np.int64],
        values: NDArray[np.float64],
    ) -> tuple[tuple[PlacedIncident, NDArray[np.bool_]], ...]:
        touched = []
        for incident in self.incidents.get(name, ()):
            if incident.end_ms <= int(ts.min()) or incident.start_ms > int(ts.max()):
                continue
            rows = incident.rows(device, ts)
            if not rows.any():
                continue
            part = values[rows]
            incident.type.effect(
                model,
                part,
                device[rows],
                incident.intensity(ts[rows]),
                incident.severity,
                incident.mode,
                incident.rng,
            )
            values[rows] = part
            touched.append((incident, rows))
        return tuple(touched)
