"""Columnar batches: how readings and events travel between stages.

A ``ReadingBatch`` holds many readings of one kind as numpy columns, so detectors
can update thousands of devices in one vectorised call and sinks can encode whole
columns at once. ``Event`` carries everything that is not a reading (dead letters,
alerts, the pipeline's own metrics) to the same sinks.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import ArrayLike, NDArray

from processors.kinds import SensorKind
from processors.registry import Device, DeviceTable

FieldValue = float | int | str | bool


@dataclass(frozen=True, eq=False)
class ReadingBatch:
    """Readings of one kind: row ``i`` is device ``device[i]`` at ``ts_ms[i]``.

    ``values`` has one column per measure of the kind, in declaration order; NaN
    means the device did not report that measure in that reading. Rows are in
    arrival order, which is how detectors tell a late reading from a new one.
    ``received_ms`` is when each reading reached citypulse (the broker's delivery,
    or the cycle's clock), so clock-skew detection can compare it with ``ts_ms``;
    it is ``None`` where nobody knows (batches built by hand).
    """

    kind: SensorKind
    table: DeviceTable
    device: NDArray[np.intp]
    ts_ms: NDArray[np.int64]
    values: NDArray[np.float64]
    received_ms: NDArray[np.int64] | None = None

    def __post_init__(self) -> None:
        n = self.device.shape[0]
        if self.ts_ms.shape != (n,) or self.values.shape != (n, len(self.kind.measures)):
            raise ValueError(
                f"batch columns disagree: {n} devices, {self.ts_ms.shape} timestamps, "
                f"{self.values.shape} values for {len(self.kind.measures)} measures"
            )
        if self.received_ms is not None and self.received_ms.shape != (n,):
            raise ValueError(f"batch columns disagree: {n} devices, {self.received_ms.shape} arrival times")

    def __len__(self) -> int:
        return int(self.device.shape[0])

    def device_ids(self) -> list[str]:
        devices = self.table.devices
        return [devices[i].device_id for i in self.device.tolist()]

    def districts(self) -> list[str]:
        devices = self.table.devices
        return [devices[i].district for i in self.device.tolist()]

    def take(self, rows: NDArray[np.bool_] | NDArray[np.intp]) -> ReadingBatch:
        """A batch of the selected rows (a boolean mask or indices)."""
        received = None if self.received_ms is None else self.received_ms[rows]
        return ReadingBatch(
            self.kind, self.table, self.device[rows], self.ts_ms[rows], self.values[rows], received
        )

    @classmethod
    def empty(cls, kind: SensorKind, table: DeviceTable) -> ReadingBatch:
        return cls(
            kind,
            table,
            np.empty(0, dtype=np.intp),
            np.empty(0, dtype=np.int64),
            np.empty((0, len(kind.measures)), dtype=np.float64),
        )


@dataclass(frozen=True, slots=True)
class Event:
    """A point that is not a reading: a dead letter, an alert, a metric sample.

    ``tags`` must come from bounded sets (reason codes, kinds, districts) because
    every distinct tag set is a new series in InfluxDB; unbounded values such as
    device ids or payloads go in ``fields``.
    """

    measurement: str
    ts_ms: int
    tags: dict[str, str] = field(default_factory=dict)
    fields: dict[str, FieldValue] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class WriteBatch:
    """Everything one pipeline cycle hands to a sink in one durable write."""

    readings: tuple[ReadingBatch, ...] = ()
    events: tuple[Event, ...] = ()

    def __len__(self) -> int:
        return sum(len(b) for b in self.readings) + len(self.events)


def series_batch(
    kind: SensorKind,
    columns: Mapping[str, ArrayLike],
    ts_ms: ArrayLike | None = None,
    *,
    interval_s: float | None = None,
    start_ms: int = 1_795_392_000_000,
    device: Device | None = None,
) -> ReadingBatch:
    """One device's readings as a batch: for offline scoring, examples and tests.

    ``columns`` maps measure names to equal-length sequences (others are NaN).
    Timestamps default to a regular series every ``interval_s`` (the kind's
    interval) from ``start_ms``.

    >>> from processors.kinds import get_kind
    >>> batch = series_batch(get_kind("water"), {"ph": [7.1, 7.2]})
    >>> batch.ts_ms.tolist(), batch.values[:, 0].tolist(), batch.device_ids()
    ([1795392000000, 1795392300000], [7.1, 7.2], ['water-series', 'water-series'])
    """
    lengths = {len(np.atleast_1d(np.asarray(v))) for v in columns.values()}
    if len(lengths) != 1:
        raise ValueError(f"series columns differ in length: {sorted(lengths)}")
    n = lengths.pop()
    unknown = set(columns) - set(kind.measure_names)
    if unknown:
        raise ValueError(f"{kind.name} has no measure(s) {sorted(unknown)}")
    values = np.full((n, len(kind.measures)), np.nan)
    for name, column in columns.items():
        values[:, kind.index_of(name)] = np.asarray(column, dtype=np.float64)
    if ts_ms is None:
        step = round((interval_s or kind.interval_s) * 1000)
        ts = start_ms + step * np.arange(n, dtype=np.int64)
    else:
        ts = np.asarray(ts_ms, dtype=np.int64)
    table = DeviceTable(kind)
    table.add(
        device or Device(f"{kind.name}-series", kind.name, "unknown", 21.0285, 105.8542, None, interval_s)
    )
    return ReadingBatch(kind, table, np.zeros(n, dtype=np.intp), ts, values, ts.copy())
