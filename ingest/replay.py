"""Replaying recorded readings: read from CSV files, fed through the whole pipeline in-process, or
published to a broker.

**Reading** turns CSV files into one :class:`~processors.recordings.Recording`
(:func:`read_recording`; the mapping of columns onto a kind is
:class:`~processors.recordings.Layout`'s), with times in a zone given as UTC, an
offset or an IANA name (:func:`zone`, from the system's time zone database).

**Feeding** (``citypulse replay --feed``) runs the recording through the same
:class:`~ingest.pipeline.Pipeline` as ``citypulse ingest``: validation, detection,
the hourly air indices, the device map and the store, in cycles of replayed time,
as fast as the machine goes. The pipeline's clock follows the replay (each cycle
is judged at its end, as ``citypulse evaluate`` does), so readings keep their
recorded timestamps: the store holds the records' own dates, a local day stays
the day it was, and years-old records are never "too old" for validation.

A feed keeps every alarm and alert event, so :func:`feed_report` can say what
the detectors and the alert rules made of the records, per part and device, on
the records' own time axis. Its alerts go to a store of their own and reach no
one: years-old records must not page anybody.

**Publishing** sends the readings to a broker in time order, at ``speed`` times
the recorded pace (0: as fast as the broker takes them), for a running
``citypulse ingest`` to judge against its wall clock. Recorded timestamps are then
moved by one constant (:func:`shift_to_now`), so gaps and order stay as recorded
and no reading is ever stamped after the moment it is sent.
"""

from __future__ import annotations

import csv
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, timedelta, timezone, tzinfo
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from ingest.alerts.service import AlertService, StagedAlerts
from ingest.pipeline import Pipeline
from ingest.settings import Settings
from ingest.stats import PipelineStats
from processors.anomaly import Detection, DetectionEngine
from processors.detectors import DetectorConfig
from processors.recordings import Layout, Recording, RecordingBuilder, RecordingError
from processors.registry import Registry
from processors.replay import AlarmLog, DeviceIds, TimedMessage, record_alarms
from processors.replay_report import EPISODE_DETECTORS, AlertRecord, Part, PartReport, alert_spans, report
from processors.timestamps import parse_timestamp
from processors.validate import RawMessage

Progress = Callable[[int, int], None]
"""Called now and then with (messages done, replayed time in ms)."""


def zone(text: str) -> tzinfo:
    """The time zone ``text`` names: ``UTC``, an offset such as ``+08:00``, or an IANA name.

    >>> [str(zone(text)) for text in ("+08:00", "-03:30", "utc", "Asia/Ho_Chi_Minh")]
    ['UTC+08:00', 'UTC-03:30', 'UTC', 'Asia/Ho_Chi_Minh']
    """
    cleaned = text.strip()
    if cleaned.upper() in ("UTC", "Z"):
        return UTC
    if cleaned[:1] in "+-" and ":" in cleaned:
        hours, _, minutes = cleaned[1:].partition(":")
        try:
            offset = timedelta(hours=int(hours), minutes=int(minutes))
        except ValueError:
            raise ValueError("write an offset as +08:00") from None
        return timezone(-offset if cleaned[0] == "-" else offset)
    try:
        return ZoneInfo(cleaned)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            "not a time zone; use UTC, an offset such as +08:00, or a name such as Asia/Ho_Chi_Minh"
        ) from None


def read_recording(files: Sequence[Path], layout: Layout, device: str | None) -> Recording:
    """The readings of ``files`` (CSV, with a header row) as ``layout`` maps them.

    Without a device column, each file is one device: ``device``, or the file's
    name. ``RecordingError`` says which file could not be read, and why.
    """
    builder = RecordingBuilder(layout)
    for path in files:
        try:
            handle = path.open(newline="", encoding="utf-8-sig")
        except OSError as bad:
            raise RecordingError(f"cannot read {path}: {bad.strerror}") from None
        with handle:
            rows = csv.reader(handle)
            header = next(rows, None)
            if header is None:
                raise RecordingError(f"{path} is empty; a CSV with a header row is expected")
            name = device if device is not None else path.stem
            try:
                builder.add_table(
                    header, rows, where=str(path), device=None if layout.device_column else name
                )
            except csv.Error as bad:
                raise RecordingError(f"{path}: not a readable CSV file ({bad})") from None
    return builder.build()


def chosen_shift(
    choice: str | None, first_ms: int, last_ms: int, now_ms: int, *, publishing: bool, speed: float
) -> int:
    """The constant added to every timestamp: ``none`` (0), ``now`` (:func:`shift_to_now`), or what
    moves the first reading to an RFC 3339 time (``ValueError`` if it is none of those).

    The default is ``now`` when publishing (a running ingest judges readings by its
    clock) and ``none`` when feeding (the feed's clock follows the records).
    """
    chosen = (choice or ("now" if publishing else "none")).strip()
    if chosen == "none":
        return 0
    if chosen == "now":
        return shift_to_now(first_ms, last_ms, now_ms, speed if publishing else 0.0)
    return parse_timestamp(chosen) - first_ms


class RecordingEngine(DetectionEngine):
    """The detection engine, keeping every alarm of the cycles that were stored."""

    def __init__(
        self, registry: Registry, config: DetectorConfig | None = None, enabled: Iterable[str] | None = None
    ) -> None:
        super().__init__(registry, config, enabled)
        self.alarms = AlarmLog()
        self._ids = DeviceIds()

    def commit(self, detection: Detection) -> None:
        super().commit(detection)
        record_alarms(detection, self.alarms, self._ids)

    def alarms_by_detector(self) -> dict[str, int]:
        """How many alarming readings each detector logged (sorted by detector)."""
        codes = self.alarms.arrays()["detector"]
        rows = {name: int((codes == code).sum()) for code, name in enumerate(self.alarms.detectors)}
        return dict(sorted(rows.items()))

    def unshift(self, shift_ms: int) -> AlarmLog:
        """The alarm log moved back onto the records' own time axis (the report counts their days)."""
        log = self.alarms
        if shift_ms:
            log.ts_ms = [ts - shift_ms for ts in log.ts_ms]
            log.received_ms = [ts - shift_ms for ts in log.received_ms]
        return log


class RecordingAlerts(AlertService):
    """The alert service, keeping every alert event of the cycles that were stored."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.history: list[AlertRecord] = []

    @classmethod
    def apart(
        cls, settings: Settings, registry: Registry, stats: PipelineStats, store: Path
    ) -> RecordingAlerts | None:
        """The settings' alert rules over a replay, kept in ``store`` and delivered to no one (None
        when alerts are off); ``ValueError`` if the rules cannot be loaded.

        Years-old records must not page anybody, nor mix with the service's own alert store.
        """
        if not settings.alerts.enabled:
            return None
        scoped = settings.model_copy(update={"alerts": settings.alerts.model_copy(update={"store": store})})
        return cls(scoped, registry, stats, channels=[])

    def fired(self) -> dict[str, int]:
        """How many alerts each rule fired (sorted by rule)."""
        return dict(sorted(Counter(r.rule for r in self.history if r.event == "fired").items()))

    def commit(self, staged: StagedAlerts) -> None:
        super().commit(staged)
        for event in staged.outcome.events:
            alert = event.alert
            self.history.append(
                AlertRecord(
                    alert.id,
                    str(event.type),
                    event.at_ms,
                    alert.rule,
                    alert.kind,
                    alert.device,
                    alert.district,
                )
            )


def feed_report(
    recording: Recording,
    registry: Registry,
    engine: RecordingEngine,
    alerts: RecordingAlerts | None,
    parts: Sequence[Part],
    tz: tzinfo,
    shift_ms: int,
) -> list[PartReport]:
    """What a feed's alarms and alerts say, per part and device, on the records' own time axis.

    An alert still open at the end runs to the last reading plus the longest
    reporting interval.
    """
    intervals = {
        d.device_id: registry.tables[d.kind].interval_s(registry.tables[d.kind].index[d.device_id])
        for d in registry
    }
    spans = None
    standards_rules: frozenset[str] = frozenset()
    if alerts is not None:
        history = [replace(a, at_ms=a.at_ms - shift_ms) for a in alerts.history]
        spans = alert_spans(history, int(recording.ts_ms[-1]) + round(max(intervals.values()) * 1000))
        standards_rules = frozenset(r.name for r in alerts.rules.rules if r.detector in EPISODE_DETECTORS)
    return report(
        recording,
        engine.unshift(shift_ms),
        parts,
        tz,
        intervals,
        spans,
        {d.device_id: d.district for d in registry},
        standards_rules,
    )


class ReplayClock:
    """The pipeline's clock during a feed: the end of the cycle being processed."""

    def __init__(self) -> None:
        self.now_ms = 0

    def __call__(self) -> int:
        return self.now_ms


@dataclass
class FeedResult:
    messages: int = 0
    cycles: int = 0
    first_ms: int | None = None
    last_ms: int | None = None
    elapsed_s: float = 0.0


def feed(
    messages: Iterable[TimedMessage],
    pipeline: Pipeline,
    clock: ReplayClock,
    *,
    cycle_ms: int = 30_000,
    progress: Progress | None = None,
) -> FeedResult:
    """Process ``messages`` (in time order) in cycles of ``cycle_ms`` of replayed time.

    A cycle holds the messages sent within it and is processed at its end, the
    pipeline's clock set there; a stretch with nothing sent costs nothing.
    """
    result = FeedResult()
    started = time.monotonic()
    cycle: list[RawMessage] = []
    cycle_end: int | None = None

    def run(end: int) -> None:
        clock.now_ms = end
        pipeline.process(cycle)
        result.cycles += 1
        result.messages += len(cycle)
        if progress is not None:
            progress(result.messages, end)

    for sent_ms, topic, payload in messages:
        if result.first_ms is None:
            result.first_ms = sent_ms
        if cycle_end is None:
            cycle_end = sent_ms + cycle_ms
        if sent_ms >= cycle_end:
            run(cycle_end)
            cycle = []
            cycle_end += (sent_ms - cycle_end) // cycle_ms * cycle_ms + cycle_ms
        cycle.append(RawMessage(topic, payload, sent_ms))
        result.last_ms = sent_ms
    if cycle and cycle_end is not None:
        run(cycle_end)
    result.elapsed_s = time.monotonic() - started
    return result


def shift_to_now(first_ms: int, last_ms: int, now_ms: int, speed: float) -> int:
    """The constant to add to recorded timestamps so the last reading is stamped when it is sent.

    At ``speed`` x the recorded pace the last reading goes out ``(last - first) / speed``
    after the first (at once when ``speed`` is 0), so every reading is stamped at or
    before its send time (never in the future), and at ``speed`` 1 exactly at it.
    Whole seconds, so millisecond parts stay as recorded.

    >>> shift_to_now(1_000, 3_601_000, 10_000_000, 1.0) == 10_000_000 - 1_000
    True
    """
    sent_last = now_ms + ((last_ms - first_ms) / speed if speed > 0 else 0.0)
    return int((sent_last - last_ms) // 1000 * 1000)


@dataclass
class PublishResult:
    messages: int = 0
    elapsed_s: float = 0.0
    stopped: bool = False
    failures: Counter[str] = field(default_factory=Counter)


def publish(
    messages: Iterable[TimedMessage],
    send: Callable[[Sequence[tuple[str, bytes]]], None],
    *,
    speed: float,
    stop: Callable[[], bool] = lambda: False,
    progress: Progress | None = None,
    block: int = 1000,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> PublishResult:
    """Hand ``messages`` (in time order) to ``send`` at ``speed`` x their recorded pace.

    A message recorded ``t`` after the first is sent ``t / speed`` after the start;
    with ``speed`` 0 they go in blocks as fast as ``send`` takes them. ``stop``
    ends the run early (what was not sent is not counted).
    """
    result = PublishResult()
    started = clock()
    pending: list[tuple[str, bytes]] = []
    first: int | None = None
    last_ms = 0

    def flush() -> None:
        if pending:
            send(pending)
            result.messages += len(pending)
            pending.clear()
            if progress is not None:
                progress(result.messages, last_ms)

    for sent_ms, topic, payload in messages:
        if stop():
            result.stopped = True
            break
        if first is None:
            first = sent_ms
        if speed > 0:
            due = started + (sent_ms - first) / 1000.0 / speed
            if due > clock():
                flush()
            while (wait := due - clock()) > 0 and not stop():
                sleep(min(wait, 0.5))
            if stop():
                result.stopped = True
                break
        pending.append((topic, payload))
        last_ms = sent_ms
        if len(pending) >= block:
            flush()
    if not result.stopped:
        flush()
    result.elapsed_s = clock() - started
    return result
