"""Replaying recorded readings: fed through the whole pipeline in-process, or published to a broker.

**Feeding** (``citypulse replay --feed``) runs the recording through the same
:class:`~ingest.pipeline.Pipeline` as ``citypulse ingest``: validation, detection,
the hourly air indices, the device map and the store, in cycles of replayed time,
as fast as the machine goes. The pipeline's clock follows the replay (each cycle
is judged at its end, as ``citypulse evaluate`` does), so readings keep their
recorded timestamps: the store holds the records' own dates, a local day stays
the day it was, and years-old records are never "too old" for validation.

**Publishing** sends the readings to a broker in time order, at ``speed`` times
the recorded pace (0: as fast as the broker takes them), for a running
``citypulse ingest`` to judge against its wall clock. Recorded timestamps are then
moved by one constant (:func:`shift_to_now`), so gaps and order stay as recorded
and no reading is ever stamped after the moment it is sent.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ingest.alerts.service import AlertService, StagedAlerts
from ingest.pipeline import Pipeline
from processors.anomaly import Detection, DetectionEngine
from processors.detectors import DetectorConfig
from processors.registry import Registry
from processors.replay import AlarmLog, DeviceIds, TimedMessage, record_alarms
from processors.replay_report import AlertRecord
from processors.validate import RawMessage

Progress = Callable[[int, int], None]
"""Called now and then with (messages done, replayed time in ms)."""


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


class RecordingAlerts(AlertService):
    """The alert service, keeping every alert event of the cycles that were stored."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.history: list[AlertRecord] = []

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
