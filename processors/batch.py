"""Columnar batches: how readings and events travel between stages.

A ``ReadingBatch`` holds many readings of one kind as numpy columns, so detectors
can update thousands of devices in one vectorised call and sinks can encode whole
columns at once. ``Event`` carries everything that is not a reading (dead letters,
alerts, the pipeline's own metrics) to the same sinks.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from processors.kinds import SensorKind
from processors.registry import DeviceTable

FieldValue = float | int | str | bool


@dataclass(frozen=True, eq=False)
class ReadingBatch:
    """Readings of one kind: row ``i`` is device ``device[i]`` at ``ts_ms[i]``.

    ``values`` has one column per measure of the kind, in declaration order; NaN
    means the device did not report that measure in that reading.
    """

    kind: SensorKind
    table: DeviceTable
    device: NDArray[np.intp]
    ts_ms: NDArray[np.int64]
    values: NDArray[np.float64]

    def __post_init__(self) -> None:
        n = self.device.shape[0]
        if self.ts_ms.shape != (n,) or self.values.shape != (n, len(self.kind.measures)):
            raise ValueError(
                f"batch columns disagree: {n} devices, {self.ts_ms.shape} timestamps, "
                f"{self.values.shape} values for {len(self.kind.measures)} measures"
            )

    def __len__(self) -> int:
        return int(self.device.shape[0])

    def device_ids(self) -> list[str]:
        devices = self.table.devices
        return [devices[i].device_id for i in self.device.tolist()]

    def districts(self) -> list[str]:
        devices = self.table.devices
        return [devices[i].district for i in self.device.tolist()]

    def field_count(self) -> int:
        """Number of measured values (non-NaN cells) in the batch."""
        return int(np.count_nonzero(~np.isnan(self.values)))

    def take(self, rows: NDArray[np.bool_] | NDArray[np.intp]) -> ReadingBatch:
        """A batch of the selected rows (a boolean mask or indices)."""
        return ReadingBatch(self.kind, self.table, self.device[rows], self.ts_ms[rows], self.values[rows])

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
