"""Replaying recorded messages through validation and detection, cycle by cycle, as live.

A message file records when each message was published; a replay groups them
into cycles of ``cycle_ms`` of that (simulated) time, validates each cycle against
the cycle's end as the ingest clock, scores it, and commits both, exactly as the
pipeline does after a successful write. What comes out is compact: every alarm
(as numpy columns, not objects) and every reject, for the evaluation to score.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from processors.anomaly import Detection, DetectionEngine
from processors.detectors import Category
from processors.registry import DeviceTable
from processors.validate import RawMessage, Validator

TimedMessage = tuple[int, str, bytes]
"""(publish_ms, topic, payload), as ``citypulse simulate --output`` writes them."""


@dataclass
class AlarmLog:
    """Every alarming score of a replay, column-wise.

    ``detector`` and ``column`` index :attr:`detectors` and :attr:`columns`;
    ``device`` holds device ids.
    """

    device: list[NDArray[np.str_]] = field(default_factory=list)
    detector: list[NDArray[np.int16]] = field(default_factory=list)
    column: list[NDArray[np.int16]] = field(default_factory=list)
    ts_ms: list[NDArray[np.int64]] = field(default_factory=list)
    received_ms: list[NDArray[np.int64]] = field(default_factory=list)
    onset: list[NDArray[np.bool_]] = field(default_factory=list)
    detectors: list[str] = field(default_factory=list)
    categories: list[Category] = field(default_factory=list)
    targets: list[tuple[str, ...]] = field(default_factory=list)
    columns: list[str] = field(default_factory=list)

    def _code(self, names: list[str], name: str) -> int:
        try:
            return names.index(name)
        except ValueError:
            names.append(name)
            return len(names) - 1

    def add(
        self,
        device_ids: NDArray[np.str_],
        detector: str,
        category: Category,
        targets: tuple[str, ...],
        columns: list[str],
        ts_ms: NDArray[np.int64],
        received_ms: NDArray[np.int64],
        onset: NDArray[np.bool_],
    ) -> None:
        if detector not in self.detectors:
            self.detectors.append(detector)
            self.categories.append(category)
            self.targets.append(targets)
        code = self.detectors.index(detector)
        self.device.append(device_ids)
        self.detector.append(np.full(device_ids.size, code, dtype=np.int16))
        self.column.append(np.array([self._code(self.columns, c) for c in columns], dtype=np.int16))
        self.ts_ms.append(ts_ms)
        self.received_ms.append(received_ms)
        self.onset.append(onset)

    def arrays(self) -> dict[str, NDArray[np.generic]]:
        """All alarms as one set of equal-length arrays."""
        if not self.device:
            return {
                "device": np.array([], dtype=np.str_),
                "detector": np.array([], dtype=np.int16),
                "column": np.array([], dtype=np.int16),
                "ts_ms": np.array([], dtype=np.int64),
                "received_ms": np.array([], dtype=np.int64),
                "onset": np.array([], dtype=np.bool_),
            }
        return {
            "device": np.concatenate(self.device),
            "detector": np.concatenate(self.detector),
            "column": np.concatenate(self.column),
            "ts_ms": np.concatenate(self.ts_ms),
            "received_ms": np.concatenate(self.received_ms),
            "onset": np.concatenate(self.onset),
        }


@dataclass(frozen=True, slots=True)
class RejectRecord:
    reason: str
    kind: str | None
    device: str | None
    at_ms: int
    """The cycle's clock when it was rejected (the arrival, to within a cycle)."""


@dataclass
class ReplayResult:
    alarms: AlarmLog = field(default_factory=AlarmLog)
    rejects: list[RejectRecord] = field(default_factory=list)
    messages: int = 0
    readings: int = 0
    first_ms: int | None = None
    last_ms: int | None = None


def replay(
    messages: Iterable[TimedMessage],
    validator: Validator,
    engine: DetectionEngine,
    *,
    cycle_ms: int = 5_000,
    progress: Callable[[int, int], None] | None = None,
) -> ReplayResult:
    """Run recorded messages through ``validator`` and ``engine`` in cycles of ``cycle_ms``."""
    result = ReplayResult()
    device_ids = DeviceIds()
    cycle: list[RawMessage] = []
    cycle_end: int | None = None
    for publish_ms, topic, payload in messages:
        if result.first_ms is None:
            result.first_ms = publish_ms
        if cycle_end is None:
            cycle_end = publish_ms + cycle_ms
        if publish_ms >= cycle_end:
            _cycle(cycle, cycle_end, validator, engine, result, device_ids)
            if progress is not None:
                progress(result.messages, cycle_end)
            cycle = []
            while publish_ms >= cycle_end:
                cycle_end += cycle_ms
        cycle.append(RawMessage(topic, payload, publish_ms))
        result.last_ms = publish_ms
    if cycle and cycle_end is not None:
        _cycle(cycle, cycle_end, validator, engine, result, device_ids)
    return result


class DeviceIds:
    """Each table's device ids as an array, built once per replay (and again if the table grew)."""

    def __init__(self) -> None:
        self._known: dict[int, tuple[DeviceTable, NDArray[np.str_]]] = {}

    def __call__(self, table: DeviceTable) -> NDArray[np.str_]:
        known = self._known.get(id(table))
        if known is None or known[0] is not table or known[1].size != len(table):
            ids = np.array([d.device_id for d in table.devices], dtype=np.str_)
            known = self._known[id(table)] = (table, ids)
        return known[1]


def _cycle(
    messages: list[RawMessage],
    now_ms: int,
    validator: Validator,
    engine: DetectionEngine,
    result: ReplayResult,
    device_ids: DeviceIds,
) -> None:
    checked = validator.validate(messages, now_ms)
    detection = engine.score(checked.batches, now_ms, ((r.kind, r.device) for r in checked.rejects))
    validator.remember(checked)
    engine.commit(detection)
    result.messages += len(messages)
    result.readings += checked.valid
    for reject in checked.rejects:
        result.rejects.append(RejectRecord(str(reject.reason), reject.kind, reject.device, now_ms))
    record_alarms(detection, result.alarms, device_ids)


def record_alarms(detection: Detection, log: AlarmLog, device_ids: DeviceIds) -> None:
    """Add every alarming score of a stored cycle to ``log``."""
    for _, scored, batch in detection.scored:
        alarms = scored.alarms()
        if not alarms.any():
            continue
        rows, cols = np.nonzero(alarms)
        ids = device_ids(scored.table)[scored.device[rows]]
        received = scored.ts_ms[rows]
        if batch is not None and batch.received_ms is not None and scored.rows is not None:
            received = batch.received_ms[scored.rows[rows]]
        detector = scored.detector
        log.add(
            ids,
            detector.name,
            detector.category,
            detector.targets,
            [detector.columns[c] for c in cols.tolist()],
            scored.ts_ms[rows],
            received,
            scored.onsets[rows, cols],
        )
