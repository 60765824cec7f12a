"""Alerts in the running service: the engine fed by each cycle, made durable, then delivered.

The pipeline calls :meth:`AlertService.evaluate` after detection and before the
cycle's write (nothing changes yet), writes the returned events to the store
with the cycle's readings (the ``alerts`` measurement), and calls
:meth:`AlertService.commit` once that write succeeded: the alert state, history
and owed deliveries are saved in one SQLite transaction, and only then handed
to the delivery threads and the cycle acknowledged. A retried cycle evaluates
the same state again, so it raises the same events with the same ids.

The engine's clock is the data's: the newest reading timestamp stored so far,
never ahead of the wall clock. A backlog replayed after an outage raises its
alerts at the times they would have been raised live; silences are wall-clock
(maintenance is planned in real time).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import Counter, deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ingest.alerts.channels import AlertChannel, open_channels
from ingest.alerts.db import AlertStoreError
from ingest.alerts.dispatch import ChannelSnapshot, Dispatcher
from ingest.alerts.settings import AlertSettings
from ingest.alerts.store import AlertStore, Delivery
from ingest.durable import RetryPolicy
from ingest.settings import Settings
from ingest.stats import PipelineStats
from processors.alerts import (
    Ack,
    AlertEngine,
    AlertEvent,
    AreaIndex,
    CycleInput,
    EventType,
    Outcome,
    RuleSet,
    Silence,
    judge,
    parse_rules,
)
from processors.alerts.conditions import Judgement
from processors.alerts.rules import DEFAULT_RULES_FILE
from processors.anomaly import Detection
from processors.batch import Event, ReadingBatch
from processors.registry import Registry

log = logging.getLogger(__name__)

_NO_BATCHES: Mapping[str, ReadingBatch] = {}
RECENT = 50
CLOCK_SAVE_S = 10.0
"""A cycle that changed no alert saves the alert clock at most this often (no fsync per quiet cycle)."""
"""Latest alert events kept in memory for the demo's live view."""


def load_rules(path: Path | None) -> RuleSet:
    """The default rules patched by the operator's file (``CITYPULSE_ALERTS_RULES``); raises if bad."""
    defaults = DEFAULT_RULES_FILE.read_text(encoding="utf-8")
    if path is None:
        return parse_rules(defaults)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as bad:
        raise ValueError(
            f"cannot read the alert rules {path}: {bad.strerror}; fix CITYPULSE_ALERTS_RULES"
        ) from None
    return parse_rules(defaults, text, str(path))


@dataclass(frozen=True)
class StagedAlerts:
    """One cycle's alert outcome, waiting for the cycle's write."""

    outcome: Outcome
    clock_ms: int

    def store_events(self) -> tuple[Event, ...]:
        return tuple(e.store_event() for e in self.outcome.events)


@dataclass(frozen=True)
class AlertsSnapshot:
    """The alert counters at one instant, for /metrics and the ``pipeline`` measurement."""

    events: dict[tuple[str, str, str], int]
    """(severity, kind, state) -> events that left an alert in that state."""
    fired: int
    open: dict[str, int]
    """Open alerts by severity."""
    channels: dict[str, ChannelSnapshot]


@dataclass
class _Counts:
    lock: threading.Lock = field(default_factory=threading.Lock)
    events: Counter[tuple[str, str, str]] = field(default_factory=Counter)
    fired: int = 0
    open: dict[str, int] = field(default_factory=dict)
    recent: deque[AlertEvent] = field(default_factory=lambda: deque(maxlen=RECENT))


class AlertService:
    """Rules, engine, durable store and delivery threads of one ingest process."""

    def __init__(
        self,
        settings: Settings,
        registry: Registry,
        stats: PipelineStats | None = None,
        channels: list[AlertChannel] | None = None,
    ) -> None:
        a: AlertSettings = settings.alerts
        self.settings = a
        self.stats = stats
        self.rules = load_rules(a.rules)
        self.engine = AlertEngine(self.rules, AreaIndex.of(registry))
        self.store = AlertStore(a.store)
        restored = self.store.restore()
        self.engine.restore(restored.targets, restored.members, restored.silent, restored.clock_ms)
        self.clock_ms = restored.clock_ms
        self.channels = channels if channels is not None else open_channels(settings)
        policy = RetryPolicy(first_s=a.retry_first_s, max_s=a.retry_max_s)
        self.dispatchers = [
            Dispatcher(
                channel,
                a.store,
                attempts=a.retry_attempts,
                policy=policy,
                queue_size=a.queue_size,
                outbox_max=a.outbox_max,
            )
            for channel in self.channels
        ]
        self._clock_saved = time.monotonic()
        self._acks: tuple[Ack, ...] = ()
        self._silences: list[Silence] = []
        self._in_force: frozenset[str] = frozenset()
        self._counts = _Counts()
        self._alerting: frozenset[str] = frozenset()
        self._count_open()
        self._refresh()
        self.store.prune(a.keep_events_days)

    def describe(self) -> str:
        opened = len(self.engine.open_alerts())
        channels = ", ".join(c.describe() for c in self.channels) or "no channel"
        return (
            f"alerts: {len(self.rules)} rules, {opened} open alerts restored from {self.settings.store}, "
            f"delivered by {channels}"
        )

    def start(self) -> None:
        for channel in self.channels:
            channel.start()
        for dispatcher in self.dispatchers:
            dispatcher.start()

    def close(self) -> None:
        for dispatcher in self.dispatchers:
            dispatcher.stop()
        for channel in self.channels:
            channel.close()
        self.store.close()

    # --- the pipeline's cycle --------------------------------------------------------------
    def evaluate(
        self,
        batches: Mapping[str, ReadingBatch],
        detection: Detection | None,
        wall_now_ms: int,
        events: Mapping[str, Sequence[Judgement]] | None = None,
    ) -> StagedAlerts:
        """A cycle's alert events and state, staged (the engine changes only on :meth:`commit`).

        ``events`` are what the ingest service observed itself (a device flooding), for
        the rules with ``event = ...``.
        """
        self._refresh()
        clock = self.clock_ms
        for batch in batches.values():
            if len(batch):
                clock = max(clock, int(batch.ts_ms.max()))
        clock = min(clock, wall_now_ms)
        clock = max(clock, self.clock_ms)
        judged = judge(
            self.rules.rules,
            detection,
            batches,
            self.engine.tracked,
            self.engine.holding,
            self.engine.silent.keys(),
            events,
        )
        silences = tuple(s for s in self._silences if s.in_force(wall_now_ms))
        self._in_force = frozenset(s.id for s in silences)
        outcome = self.engine.evaluate(CycleInput(clock, judged, self._acks, silences))
        return StagedAlerts(outcome, clock)

    def commit(self, staged: StagedAlerts) -> None:
        """Save the staged cycle (state, history, outbox) durably, then hand deliveries to the channels.

        Raises ``AlertStoreError`` if the store cannot be written: the caller then
        leaves the cycle unacknowledged and retries it.
        """
        outcome = staged.outcome
        if not outcome.changed and time.monotonic() - self._clock_saved < CLOCK_SAVE_S:
            self.engine.commit(outcome)  # only the clock moved: kept in memory, saved now and then
            self.clock_ms = staged.clock_ms
            return
        routed = self._route(outcome.events)
        saved = self.store.save(outcome, routed, staged.clock_ms)
        self._clock_saved = time.monotonic()
        self.engine.commit(outcome)
        self.clock_ms = staged.clock_ms
        if outcome.acks:
            applied = {a.request for a in outcome.acks}
            self._acks = tuple(a for a in self._acks if a.request not in applied)
        by_channel: dict[str, list[Delivery]] = {}
        for delivery in saved:
            by_channel.setdefault(delivery.channel, []).append(delivery)
        for dispatcher in self.dispatchers:
            dispatcher.send(by_channel.get(dispatcher.name, []))
        self._count(outcome.events)

    def tick(self, wall_now_ms: int) -> StagedAlerts | None:
        """Between cycles: apply acknowledgements and silences that changed (None if nothing did)."""
        silences_now = frozenset(s.id for s in self._silences if s.in_force(wall_now_ms))
        if not self._refresh() and silences_now == self._in_force:
            return None
        staged = self.evaluate(_NO_BATCHES, None, wall_now_ms)
        return staged if staged.outcome.changed else None

    def _refresh(self) -> bool:
        """Re-read acknowledgement requests and silences if the command line wrote any."""
        if not self.store.changed():
            return False
        self._acks = self.store.pending_acks()
        self._silences = self.store.silences()
        return True

    def _route(self, events: list[AlertEvent]) -> list[Delivery]:
        """The deliveries owed: each event not silenced, to each subscriber whose filters take it."""
        routed: list[Delivery] = []
        for event in events:
            if event.silenced:
                continue
            body = json.dumps(event.to_dict(), ensure_ascii=False, sort_keys=True)
            for channel in self.channels:
                for subscriber in channel.subscribers():
                    if subscriber.filters.matches(event):
                        routed.append(
                            Delivery(
                                channel.name,
                                subscriber.name,
                                event.event_id,
                                event.alert.rule,
                                event.alert.district,
                                body,
                            )
                        )
        return routed

    # --- counts ------------------------------------------------------------------------------
    def _count(self, events: list[AlertEvent]) -> None:
        fired = [e for e in events if e.type == EventType.FIRED and e.alert.events == 1]
        with self._counts.lock:
            for e in events:
                self._counts.events[(str(e.alert.severity), e.alert.kind, str(e.alert.state))] += 1
                self._counts.recent.append(e)
            self._counts.fired += len(fired)
        self._count_open()
        if self.stats is not None:
            self.stats.record_alert_events(
                fired=[(str(e.alert.severity), e.alert.kind) for e in fired],
                resolved=sum(1 for e in events if e.type == EventType.RESOLVED),
                open_now=sum(self._counts.open.values()),
            )

    def _count_open(self) -> None:
        alerts = self.engine.open_alerts()
        open_by: Counter[str] = Counter(str(a.severity) for a in alerts)
        with self._counts.lock:
            self._counts.open = dict(open_by)
        self._alerting = frozenset(a.device for a in alerts if a.device)

    def snapshot(self) -> AlertsSnapshot:
        with self._counts.lock:
            counts = AlertsSnapshot(
                dict(self._counts.events), self._counts.fired, dict(self._counts.open), {}
            )
        counts.channels.update({d.name: d.snapshot() for d in self.dispatchers})
        return counts

    def recent(self) -> list[AlertEvent]:
        """The latest alert events, oldest first (safe from any thread)."""
        with self._counts.lock:
            return list(self._counts.recent)

    def alerting_devices(self) -> frozenset[str]:
        """Devices with an open device alert: the city map's ``alerting`` state (safe from any thread)."""
        return self._alerting


__all__ = ["AlertService", "AlertStoreError", "AlertsSnapshot", "StagedAlerts", "load_rules"]
