"""One pipeline cycle: validate, detect, store durably, dead-letter, count.

The cycle is the unit of durability: the caller acknowledges a cycle's MQTT
messages only after :meth:`Pipeline.process` returns, i.e. after the sink holds
every valid reading, every dead letter and every anomaly event of the cycle.

Validation and detection run *before* the write but learn only *after* it: the
memory of recent timestamps (duplicates) and the detectors' baselines are
committed once the cycle is stored. A cycle whose write failed is therefore
validated and scored again exactly as the first time, and nothing is learned
twice or from readings that were never stored.

Alerts follow the same rule: their events are worked out before the write and
stored with it (the ``alerts`` measurement), and the alert state and the
deliveries owed are saved only after it, before the cycle is acknowledged.
"""

from __future__ import annotations

import logging
import os
import time
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from ingest.alerts.service import AlertService, AlertStoreError, StagedAlerts
from ingest.deadletters import deadletter_event, deadletter_message
from ingest.device_states import DeviceStates, StagedStates
from ingest.private_files import open_private_binary
from ingest.sinks.base import Sink, SinkError
from ingest.stats import PipelineStats
from processors.air_index import AirIndex
from processors.air_index import Staged as StagedIndex
from processors.alerts.conditions import Judgement
from processors.anomaly import Detection, DetectionEngine
from processors.batch import WriteBatch
from processors.ratelimit import RateDecision, RateLimiter, hold_back
from processors.registry import Device, Registry
from processors.topics import TopicScheme
from processors.validate import RawMessage, ValidationResult, Validator

log = logging.getLogger(__name__)

Publish = Callable[[str, bytes], None]


@dataclass(frozen=True, slots=True)
class StagedCycle:
    """A validated and scored cycle: what it writes, and what it teaches once committed."""

    messages: int
    now_ms: int
    result: ValidationResult
    detection: Detection
    batch: WriteBatch
    indices: StagedIndex | None
    states: StagedStates | None
    alerts: StagedAlerts | None
    rated: RateDecision | None


def wall_clock_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclass
class Pipeline:
    """Validator, sink and dead-letter publisher wired together, with shared counters."""

    validator: Validator
    sink: Sink
    stats: PipelineStats
    publish_deadletter: Publish | None = None
    clock_ms: Callable[[], int] = wall_clock_ms
    engine: DetectionEngine | None = None
    """Anomaly detection; ``None`` runs every detector with default settings, as the demo does."""
    limiter: RateLimiter | None = None
    """Per-device rate limit; ``None``: every valid reading is stored, however many a device sends."""
    air_index: AirIndex | None = None
    """Hourly VN_AQI and US AQI points (``aqi``); ``None`` writes none."""
    device_states: DeviceStates | None = None
    """The ``devices`` measurement behind the city map; ``None`` writes none."""
    alerts: AlertService | None = None
    """Alert rules, store and delivery; ``None``: no alerts."""

    def __post_init__(self) -> None:
        if self.engine is None:
            self.engine = DetectionEngine(self.validator.registry)

    @property
    def topics(self) -> TopicScheme:
        return self.validator.topics

    def process(self, messages: Sequence[RawMessage]) -> ValidationResult:
        """Store a cycle's readings and dead letters; raise ``SinkError`` if the store failed.

        Nothing is learned, counted or republished until the write succeeded, so a
        failed cycle can be processed again exactly as the first time.
        """
        cycle = self.stage(messages)
        self.store(cycle)
        self.commit(cycle)
        self.finish(cycle)
        return cycle.result

    def stage(self, messages: Sequence[RawMessage]) -> StagedCycle:
        """Validate and score a cycle, and work out everything it writes; nothing changes yet."""
        now_ms = self.clock_ms()
        result = self.validator.validate(messages, now_ms)
        rated = None if self.limiter is None else self.limiter.judge(result.batches, now_ms)
        if rated is not None and rated.limited:
            hold_back(result, rated, self.topics)
        assert self.engine is not None
        detection = self.engine.score(result.batches, now_ms, ((r.kind, r.device) for r in result.rejects))
        events = tuple(deadletter_event(r, now_ms) for r in result.rejects) + detection.events()
        indices = self.air_index.stage(result.batches) if self.air_index is not None else None
        states = (
            self.device_states.stage(detection, result.batches, now_ms)
            if self.device_states is not None
            else None
        )
        events += (indices.events if indices else ()) + (states.events if states else ())
        alerts = (
            None
            if self.alerts is None
            else self.alerts.evaluate(
                result.batches, detection, now_ms, flood_judgements(self.validator.registry, rated, now_ms)
            )
        )
        if alerts is not None:
            events += alerts.store_events()
        batch = WriteBatch(readings=tuple(b for b in result.batches.values() if len(b)), events=events)
        return StagedCycle(len(messages), now_ms, result, detection, batch, indices, states, alerts, rated)

    def store(self, cycle: StagedCycle) -> None:
        """Write a staged cycle; raise ``SinkError`` if the store failed (it may be tried again)."""
        if len(cycle.batch):
            started = time.perf_counter()
            self.sink.write(cycle.batch)
            self.stats.record_write(time.perf_counter() - started)

    def commit(self, cycle: StagedCycle) -> None:
        """Learn from a cycle: the alert store first (it may fail, ``SinkError``), then the memories.

        In :meth:`process` this follows the write. The service commits before the
        write instead (:class:`~ingest.writer.Writer` stores it while the next cycle is
        staged), and then never gives a committed cycle up while it runs.
        """
        if cycle.alerts is not None:
            self.commit_alerts(cycle.alerts)
        assert self.engine is not None
        self.validator.remember(cycle.result)
        if cycle.rated is not None:
            assert self.limiter is not None
            self.limiter.commit(cycle.rated)
            self._report_floods(cycle.rated, cycle.result)
        self.engine.commit(cycle.detection)
        if cycle.indices is not None and self.air_index is not None:
            self.air_index.commit(cycle.indices)
        if cycle.states is not None and self.device_states is not None:
            self.device_states.commit(cycle.states)

    def finish(self, cycle: StagedCycle) -> None:
        """Once a cycle is stored: count it and announce its dead letters."""
        result = cycle.result
        self.stats.record_anomalies(cycle.detection.onset_counts())
        self.stats.record_cycle(cycle.messages, result)
        if self.publish_deadletter is not None and result.rejects:
            for reject in result.rejects:
                self.publish_deadletter(
                    self.topics.deadletter(reject.reason),
                    deadletter_message(reject, cycle.now_ms, self.topics.prefix),
                )
            self.stats.record_deadletters_published(len(result.rejects))

    def _report_floods(self, rated: RateDecision, result: ValidationResult) -> None:
        """One warning when a device starts flooding, however long the flood lasts."""
        for kind, verdict in rated.kinds.items():
            table = result.batches[kind].table
            for position in verdict.onsets.tolist():
                device = table.devices[position]
                log.warning(
                    "device %s (%s, %s) sends far more than one reading per %g s: readings beyond %g times "
                    "that rate are dead-lettered as rate_limited",
                    device.device_id, kind, device.district, table.interval_s(position),
                    self.limiter.policy.factor if self.limiter else 0,
                )  # fmt: skip
            if len(verdict.onsets):
                self.stats.record_floods(kind, len(verdict.onsets))

    def commit_alerts(self, staged: StagedAlerts) -> None:
        """Save a stored cycle's alerts; a store that cannot take them fails the cycle (retried, unacked)."""
        assert self.alerts is not None
        try:
            self.alerts.commit(staged)
        except AlertStoreError as failed:
            raise SinkError(str(failed), retryable=True) from failed

    def alert_tick(self) -> bool:
        """Between cycles: apply acknowledgements and silences from the command line; True if any."""
        if self.alerts is None:
            return False
        staged = self.alerts.tick(self.clock_ms())
        if staged is None:
            return False
        events = staged.store_events()
        if events:
            self.sink.write(WriteBatch(events=events))
        self.commit_alerts(staged)
        return True


def flood_judgements(
    registry: Registry, rated: RateDecision | None, now_ms: int
) -> dict[str, list[Judgement]]:
    """The ``rate_limited`` event for the alert rules: present while a device floods, clear once it stops.

    The value is how many of the device's readings were refused this cycle.
    """
    found: list[Judgement] = []
    for kind, verdict in rated.kinds.items() if rated is not None else ():
        devices = registry.tables[kind].devices
        rows = zip(verdict.devices.tolist(), verdict.flooding.tolist(), verdict.limited.tolist(), strict=True)
        for position, flooding, limited in rows:
            if flooding:
                found.append(_flood(devices[position], True, now_ms, float(limited)))
        found += [_flood(devices[position], False, now_ms) for position in verdict.ended.tolist()]
    return {"rate_limited": found} if found else {}


def _flood(device: Device, present: bool, now_ms: int, limited: float | None = None) -> Judgement:
    return Judgement(
        device=device.device_id,
        kind=device.kind,
        district=device.district,
        present=present,
        ts_ms=now_ms,
        value=limited,
        unit="readings refused",
        lat=device.lat,
        lon=device.lon,
    )


STATE_FORMAT = 1
"""Bumped when the layout of the state file changes; an older file is then ignored."""


def save_state(pipeline: Pipeline, path: Path) -> int:
    """Write detector baselines and the duplicate memory to ``path`` (atomically); returns bytes."""
    assert pipeline.engine is not None
    arrays = {f"detectors/{key}": value for key, value in pipeline.engine.state().items()}
    for kind, saved in pipeline.validator.state().items():
        for key, value in saved.items():
            arrays[f"duplicates/{kind}/{key}"] = value
    if pipeline.air_index is not None:
        for key, value in pipeline.air_index.state().items():
            arrays[f"aqi/{key}"] = value
    arrays["format"] = np.array(STATE_FORMAT)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    with open_private_binary(partial) as out:
        np.savez(out, **arrays)  # type: ignore[arg-type]
        out.flush()
        os.fsync(out.fileno())
    partial.replace(path)
    return path.stat().st_size


def load_state(pipeline: Pipeline, path: Path) -> str:
    """Restore what :func:`save_state` wrote; returns a line for the log saying what happened."""
    if not path.is_file():
        return f"no saved detector state at {path}: baselines are learned afresh"
    try:
        with np.load(path, allow_pickle=False) as saved:
            arrays = {key: saved[key] for key in saved.files}
    except (OSError, ValueError, zipfile.BadZipFile) as bad:
        return f"ignoring unreadable detector state {path} ({bad}): baselines are learned afresh"
    if int(arrays.get("format", np.array(-1))) != STATE_FORMAT:
        return f"ignoring detector state {path} from another version: baselines are learned afresh"
    assert pipeline.engine is not None
    restored = pipeline.engine.restore(
        {k.removeprefix("detectors/"): v for k, v in arrays.items() if k.startswith("detectors/")}
    )
    duplicates: dict[str, dict[str, NDArray[Any]]] = {}
    for key, value in arrays.items():
        if key.startswith("duplicates/"):
            _, kind, name = key.split("/", 2)
            duplicates.setdefault(kind, {})[name] = value
    pipeline.validator.restore(duplicates)
    if pipeline.air_index is not None:
        pipeline.air_index.restore(
            {k.removeprefix("aqi/"): v for k, v in arrays.items() if k.startswith("aqi/")}
        )
    devices = max(restored.values(), default=0)
    return f"restored detector state from {path}: {len(restored)} detectors, up to {devices} devices each"
