"""The detection engine: every applicable detector over every kind's batch, as one transaction.

:meth:`DetectionEngine.score` runs the detectors on a cycle's batches (and the
clock-driven checks, such as silence) without changing any state;
:meth:`DetectionEngine.commit` keeps what they learned once the cycle is stored.
A score at or above the threshold is an *alarm*; the first alarm of a run (per
device, column and detector) is an *onset*, and only onsets become events in the
store, so a sensor stuck for a day raises one event, not a thousand.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from processors.batch import Event, ReadingBatch
from processors.detectors import DETECTORS, Category, Detector, DetectorConfig, Scored, Visit, detectors_for
from processors.kinds import KINDS
from processors.registry import Registry

MEASUREMENT = "anomalies"
"""Where alarm onsets are stored, next to the ``deadletters`` events."""


@dataclass(frozen=True, slots=True)
class Alarm:
    """One alarming score, as the evaluation and the events need it."""

    kind: str
    device_id: str
    district: str
    detector: str
    category: Category
    column: str
    ts_ms: int
    """The reading's device timestamp (the clock check's time for silence)."""
    received_ms: int
    """When the reading arrived (the clock check's time for silence)."""
    score: float
    value: float | None
    onset: bool


@dataclass(eq=False)
class Detection:
    """The scores of one cycle, staged until :meth:`DetectionEngine.commit`."""

    scored: list[tuple[str, Scored, ReadingBatch | None]] = field(default_factory=list)
    now_ms: int = 0

    def alarms(self, onsets_only: bool = False) -> list[Alarm]:
        """Every alarm (or only the onsets), in detector order."""
        found: list[Alarm] = []
        for kind_name, scored, batch in self.scored:
            mask = scored.onsets if onsets_only else scored.alarms()
            if not mask.any():
                continue
            detector = scored.detector
            kind = KINDS[kind_name]
            rows, cols = np.nonzero(mask)
            table = scored.table
            for row, col in zip(rows.tolist(), cols.tolist(), strict=True):
                position = int(scored.device[row])
                device = table.devices[position]
                column = detector.columns[col]
                value: float | None = None
                received = int(scored.ts_ms[row])
                if batch is not None and scored.rows is not None:
                    batch_row = int(scored.rows[row])
                    if column in kind.measure_names:
                        v = float(batch.values[batch_row, kind.index_of(column)])
                        value = None if np.isnan(v) else v
                    if batch.received_ms is not None:
                        received = int(batch.received_ms[batch_row])
                found.append(
                    Alarm(
                        kind=kind_name,
                        device_id=device.device_id,
                        district=device.district,
                        detector=detector.name,
                        category=detector.category,
                        column=column,
                        ts_ms=int(scored.ts_ms[row]),
                        received_ms=received,
                        score=float(scored.scores[row, col]),
                        value=value,
                        onset=bool(scored.onsets[row, col]),
                    )
                )
        return found

    def onset_counts(self) -> Counter[tuple[str, str]]:
        """Alarm onsets per (kind, detector), for the pipeline's counters; pairs with none are left out."""
        counts: Counter[tuple[str, str]] = Counter()
        for kind_name, scored, _ in self.scored:
            found = int(np.count_nonzero(scored.onsets))
            if found:
                counts[(kind_name, scored.detector.name)] += found
        return counts

    def events(self) -> tuple[Event, ...]:
        """Alarm onsets as store events: bounded tags, the device and numbers as fields."""
        events: list[Event] = []
        for alarm in self.alarms(onsets_only=True):
            fields: dict[str, float | int | str | bool] = {
                "device": alarm.device_id,
                "score": round(alarm.score, 4),
            }
            if alarm.value is not None:
                fields["value"] = alarm.value
            events.append(
                Event(
                    measurement=MEASUREMENT,
                    ts_ms=alarm.ts_ms,
                    tags={
                        "kind": alarm.kind,
                        "detector": alarm.detector,
                        "category": str(alarm.category),
                        "field": alarm.column,
                        "district": alarm.district,
                    },
                    fields=fields,
                )
            )
        return tuple(events)


class DetectionEngine:
    """All detectors for all kinds of a registry, with one threshold and one set of settings."""

    def __init__(
        self,
        registry: Registry,
        config: DetectorConfig | None = None,
        enabled: Iterable[str] | None = None,
    ) -> None:
        self.registry = registry
        self.config = config or DetectorConfig()
        names = None if enabled is None else set(enabled)
        if names is not None:
            unknown = names - set(DETECTORS)
            if unknown:
                raise ValueError(
                    f"unknown detector(s) {', '.join(sorted(unknown))}; choose from: {', '.join(DETECTORS)}"
                )
        self.detectors: dict[str, list[Detector]] = {}
        for kind_name, kind in KINDS.items():
            self.detectors[kind_name] = [cls(kind, self.config) for cls in detectors_for(kind_name, names)]

    def score(
        self,
        batches: Mapping[str, ReadingBatch],
        now_ms: int | None = None,
        heard: Iterable[tuple[str | None, str | None]] = (),
    ) -> Detection:
        """Score a cycle's batches, then (given ``now_ms``) run the clock checks; nothing is learned yet.

        ``heard`` lists the (kind, device id) of the cycle's rejected messages: a
        device sending bad data is still alive, and is not reported silent.
        """
        detection = Detection(now_ms=now_ms or 0)
        if now_ms is not None:
            self._hear(heard, now_ms)
        for kind_name, batch in batches.items():
            if len(batch) == 0:
                continue
            visit = Visit.of(batch.device)
            for detector in self.detectors.get(kind_name, ()):
                detection.scored.append((kind_name, detector.score(batch, visit), batch))
        if now_ms is not None:
            for kind_name, detectors in self.detectors.items():
                for detector in detectors:
                    checked = detector.check(now_ms, self.registry.tables[kind_name])
                    if checked is not None:
                        detection.scored.append((kind_name, checked, None))
        return detection

    def _hear(self, heard: Iterable[tuple[str | None, str | None]], now_ms: int) -> None:
        positions: dict[str, list[int]] = {}
        for kind_name, device_id in heard:
            if kind_name is None or device_id is None or kind_name not in self.detectors:
                continue
            position = self.registry.tables[kind_name].index.get(device_id)
            if position is not None:
                positions.setdefault(kind_name, []).append(position)
        for kind_name, found in positions.items():
            device = np.asarray(found, dtype=np.intp)
            at = np.full(device.size, now_ms, dtype=np.int64)
            for detector in self.detectors[kind_name]:
                detector.hear(self.registry.tables[kind_name], device, at)

    def commit(self, detection: Detection) -> None:
        """Keep what the detectors learned from a stored cycle."""
        for _, scored, _ in detection.scored:
            scored.detector.commit(scored)

    def update(self, batches: Mapping[str, ReadingBatch], now_ms: int | None = None) -> Detection:
        detection = self.score(batches, now_ms)
        self.commit(detection)
        return detection

    # --- restarts ---------------------------------------------------------------------------
    def state(self) -> dict[str, NDArray[Any]]:
        """Every detector's state as flat named arrays (``kind/detector/name``), for ``np.savez``."""
        flat: dict[str, NDArray[Any]] = {}
        for kind_name, detectors in self.detectors.items():
            table = self.registry.tables[kind_name]
            for detector in detectors:
                if detector.devices_known() == 0 and not len(table):
                    continue
                for key, value in detector.state(table).items():
                    flat[f"{kind_name}/{detector.name}/{key}"] = value
        return flat

    def restore(self, flat: Mapping[str, NDArray[Any]]) -> dict[str, int]:
        """Take back :meth:`state`; returns devices restored per ``kind/detector``."""
        grouped: dict[tuple[str, str], dict[str, NDArray[Any]]] = {}
        for key, value in flat.items():
            parts = key.split("/", 2)
            if len(parts) == 3:
                grouped.setdefault((parts[0], parts[1]), {})[parts[2]] = value
        restored: dict[str, int] = {}
        for kind_name, detectors in self.detectors.items():
            for detector in detectors:
                saved = grouped.get((kind_name, detector.name))
                if saved is not None:
                    restored[f"{kind_name}/{detector.name}"] = detector.restore(
                        saved, self.registry.tables[kind_name]
                    )
        return restored
