"""A small fault injector for detector tests: a few devices, known anomalies, exact labels.

Independent of the simulator on purpose: these tests pin the detectors' behaviour
on series whose every anomaly is known, whatever the fleet models become.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from processors.batch import ReadingBatch
from processors.kinds import SensorKind
from processors.labels import Label
from processors.registry import Device, Registry

START_MS = 1_795_132_800_000  # 2026-11-20 00:00 UTC
DAY_MS = 86_400_000


@dataclass
class Fleet:
    """Readings of one kind for a few devices, with the labels of what was injected."""

    kind: SensorKind
    registry: Registry
    ts_ms: NDArray[np.int64]
    """(devices, steps) device timestamps."""
    values: NDArray[np.float64]
    """(devices, steps, measures)."""
    present: NDArray[np.bool_]
    """(devices, steps): whether the device sent that reading (False in a dropout)."""
    labels: list[Label] = field(default_factory=list)

    @property
    def interval_ms(self) -> int:
        return int(self.kind.interval_s * 1000)

    def batches(self, per_cycle: int = 1) -> list[ReadingBatch]:
        """Cycle batches in time order: ``per_cycle`` steps of every device per batch."""
        table = self.registry.tables[self.kind.name]
        n_dev, steps = self.present.shape
        out = []
        for start in range(0, steps, per_cycle):
            span = slice(start, min(start + per_cycle, steps))
            device = np.repeat(np.arange(n_dev), span.stop - span.start)
            ts = self.ts_ms[:, span].reshape(-1)
            values = self.values[:, span].reshape(-1, len(self.kind.measures))
            keep = self.present[:, span].reshape(-1)
            order = np.argsort(ts[keep], kind="stable")
            out.append(
                ReadingBatch(
                    self.kind,
                    table,
                    device[keep][order].astype(np.intp),
                    ts[keep][order],
                    values[keep][order],
                    ts[keep][order],
                )
            )
        return out


def fleet(kind: SensorKind, devices: int, days: float, seed: int = 0) -> Fleet:
    """Clean readings: each measure a daily cycle inside its normal band, plus noise."""
    rng = np.random.default_rng(seed)
    registry = Registry(
        Device(f"{kind.name}-{i:03d}", kind.name, "Ba Đình", 21.03 + 0.001 * i, 105.85)
        for i in range(devices)
    )
    interval = int(kind.interval_s * 1000)
    steps = int(days * DAY_MS // interval)
    phase = rng.integers(0, interval, devices)
    ts = START_MS + phase[:, None] + interval * np.arange(steps)[None, :]
    lo = np.array([m.normal[0] for m in kind.measures])
    hi = np.array([m.normal[1] for m in kind.measures])
    mid, half = (lo + hi) / 2, (hi - lo) / 2
    hours = (ts % DAY_MS) / 3_600_000
    cycle = 0.4 * np.sin(2 * np.pi * hours / 24)[:, :, None]
    bias = rng.normal(0.0, 0.1, (devices, 1, len(lo)))
    noise = rng.normal(0.0, 0.03, (devices, steps, len(lo)))
    values = np.round(mid + half * (cycle + bias + noise), 2)
    return Fleet(kind, registry, ts.astype(np.int64), values, np.ones((devices, steps), dtype=np.bool_))


def spread(f: Fleet, field: int) -> float:
    """The noise standard deviation the generator used for a measure."""
    m = f.kind.measures[field]
    return 0.03 * (m.normal[1] - m.normal[0]) / 2


def label(f: Fleet, fault: str, device: int, field: int | None, first: int, last: int) -> None:
    f.labels.append(
        Label(
            fault=fault,
            scope="signal",
            device=f.registry.tables[f.kind.name].devices[device].device_id,
            kind=f.kind.name,
            field=None if field is None else f.kind.measures[field].name,
            start_ms=int(f.ts_ms[device, first]),
            end_ms=int(f.ts_ms[device, last]),
        )
    )


def spike(f: Fleet, device: int, field: int, step: int, size: float) -> None:
    f.values[device, step, field] += size * spread(f, field)
    label(f, "spike", device, field, step, step)


def drift(f: Fleet, device: int, field: int, first: int, steps: int, share_of_band: float) -> None:
    m = f.kind.measures[field]
    total = share_of_band * (m.normal[1] - m.normal[0])
    f.values[device, first : first + steps, field] += np.linspace(0.0, total, steps)
    label(f, "drift", device, field, first, first + steps - 1)


def stuck(f: Fleet, device: int, field: int, first: int, steps: int) -> None:
    f.values[device, first : first + steps, field] = f.values[device, first, field]
    label(f, "stuck", device, field, first, first + steps - 1)


def noise_burst(
    f: Fleet, device: int, field: int, first: int, steps: int, factor: float, seed: int = 1
) -> None:
    extra = np.random.default_rng(seed).normal(0.0, factor * spread(f, field), steps)
    f.values[device, first : first + steps, field] += extra
    label(f, "noise_burst", device, field, first, first + steps - 1)


def dropout(f: Fleet, device: int, first: int, steps: int) -> None:
    f.present[device, first : first + steps] = False
    label(f, "dropout", device, None, first, first + steps - 1)
