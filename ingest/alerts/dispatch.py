"""Delivery beside the pipeline: one thread per channel, a bounded queue, grouping, retries, dead letters.

``Dispatcher.send`` never blocks: deliveries (already safe in the outbox) go on a
bounded in-memory queue, and when it is full they simply stay on disk, counted
as overflow, and the thread reads them back once it has room. So a slow or dead
webhook or mail server costs ingestion nothing but a counter.

The thread gathers each subscriber's deliveries per group (rule, district),
sends a group when its ``group_wait`` / ``group_interval`` allow and the
subscriber's rate limit has a token, retries failures with capped exponential
backoff and jitter (honouring Retry-After), and after the last attempt, or at
once for a failure retrying cannot fix, records the events as dead letters.
"""

from __future__ import annotations

import json
import logging
import queue
import sqlite3
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ingest.alerts.channels import AlertChannel, DeliveryError, Notification, Subscriber
from ingest.alerts.db import AlertStoreError
from ingest.alerts.outbox import Outbox
from ingest.alerts.store import Delivery, wall_ms
from ingest.counters import LockedCounters
from ingest.durable import RetryPolicy
from processors.alerts.grouping import TokenBucket, group_due_ms

log = logging.getLogger(__name__)

GroupKey = tuple[str, str, str]
"""(subscriber, rule, district)"""

IDLE_WAIT_S = 1.0


@dataclass(frozen=True)
class ChannelSnapshot:
    delivered: int
    retried: int
    dead_lettered: int
    dropped: int
    overflow: int
    queued: int
    """Events owed to this channel's subscribers right now (in memory or waiting in the outbox)."""


@dataclass
class _Counters(LockedCounters):
    delivered: int = 0
    retried: int = 0
    dead_lettered: int = 0
    dropped: int = 0
    overflow: int = 0
    queued: int = 0


@dataclass
class _Held:
    delivery: Delivery
    event: dict[str, Any]
    attempts: int


@dataclass
class _Group:
    items: list[_Held] = field(default_factory=list)
    first_ms: int = 0
    last_sent_ms: int | None = None
    retry_at_ms: int = 0
    failures: int = 0


class Dispatcher:
    """Delivers one channel's deliveries from the outbox; see the module docstring."""

    def __init__(
        self,
        channel: AlertChannel,
        store: Path,
        *,
        attempts: int = 8,
        policy: RetryPolicy | None = None,
        queue_size: int = 1000,
        outbox_max: int = 100_000,
        clock_ms: Callable[[], int] = wall_ms,
    ) -> None:
        self.channel = channel
        self.store = store
        self.attempts = attempts
        self.policy = policy or RetryPolicy(first_s=1.0, max_s=300.0)
        self.capacity = queue_size
        self.outbox_max = outbox_max
        self.clock_ms = clock_ms
        self._queue: queue.Queue[Delivery] = queue.Queue(maxsize=queue_size)
        self._counters = _Counters()
        outbox = Outbox(store)
        try:
            self._counters.queued = outbox.count(channel.name)
        finally:
            outbox.close()
        self._backlog = threading.Event()
        self._backlog.set()  # whatever an earlier run left in the outbox is read back first
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._subscribers = {s.name: s for s in channel.subscribers()}
        self._thread = threading.Thread(
            target=self._run, name=f"citypulse-alerts-{channel.name}", daemon=True
        )

    @property
    def name(self) -> str:
        return self.channel.name

    # --- the pipeline's side -------------------------------------------------------------------
    def send(self, deliveries: Sequence[Delivery]) -> None:
        """Hand over deliveries already saved in the outbox; never blocks."""
        if not deliveries:
            return
        overflow = 0
        for delivery in deliveries:
            try:
                self._queue.put_nowait(delivery)
            except queue.Full:
                overflow += 1
        self._counters.add(queued=len(deliveries), overflow=overflow)
        if overflow:
            self._backlog.set()
        self._wake.set()

    def snapshot(self) -> ChannelSnapshot:
        c = self._counters
        with c.lock:
            return ChannelSnapshot(c.delivered, c.retried, c.dead_lettered, c.dropped, c.overflow, c.queued)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stop after the delivery in flight (if any); what is owed stays in the outbox for the next run."""
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout_s)

    # --- the delivery thread -----------------------------------------------------------------
    def _run(self) -> None:
        try:
            outbox = Outbox(self.store)
        except AlertStoreError as bad:
            log.error("alert channel %s cannot open its outbox: %s", self.name, bad)
            return
        held: dict[int, _Held] = {}
        groups: dict[GroupKey, _Group] = {}
        buckets: dict[str, TokenBucket] = {}
        try:
            while not self._stop.is_set():
                self._wake.clear()
                try:
                    self._gather(outbox, held, groups)
                    wait_ms = self._deliver_due(outbox, held, groups, buckets)
                    if len(held) < self.capacity and (self._backlog.is_set() or not self._queue.empty()):
                        wait_ms = 0  # room again, and more waiting on disk or in the queue: take it now
                except (sqlite3.Error, AlertStoreError) as bad:
                    log.warning("alert channel %s: outbox unavailable (%s); trying again", self.name, bad)
                    wait_ms = 1000
                self._wake.wait(min(max(wait_ms, 0) / 1000.0, IDLE_WAIT_S))
        finally:
            outbox.close()

    def _gather(self, outbox: Outbox, held: dict[int, _Held], groups: dict[GroupKey, _Group]) -> None:
        """Take queued deliveries, and read back the outbox's backlog while there is room."""
        taken: list[Delivery] = []
        while len(held) + len(taken) < self.capacity:
            try:
                taken.append(self._queue.get_nowait())
            except queue.Empty:
                break
        if self._backlog.is_set() and len(held) + len(taken) < self.capacity:
            self._backlog.clear()  # cleared first: an overflow from now on sets it again
            dropped = outbox.trim(self.name, self.outbox_max)
            if dropped:
                log.error(
                    "alert channel %s: outbox over %d events, dropped the %d oldest (see dead_letters)",
                    self.name,
                    self.outbox_max,
                    len(dropped),
                )
                self._counters.add(dropped=len(dropped), queued=-len(dropped))
                for d in dropped:
                    self._forget(held, groups, d.seq)
            known = set(held) | {d.seq for d in taken}
            room = self.capacity - len(held) - len(taken)
            backlog = outbox.pending(self.name, exclude=known, limit=room)
            taken += backlog
            if len(backlog) >= room:
                self._backlog.set()
        now = self.clock_ms()
        for delivery in taken:
            if delivery.seq in held:
                continue
            subscriber = self._subscribers.get(delivery.subscriber)
            if subscriber is None:
                outbox.dead_letter([delivery], f"subscriber {delivery.subscriber} is no longer configured")
                self._counters.add(dead_lettered=1, queued=-1)
                continue
            item = _Held(delivery, json.loads(delivery.body), delivery.attempts)
            held[delivery.seq] = item
            group = groups.setdefault((delivery.subscriber, delivery.rule, delivery.district), _Group())
            if not group.items:
                group.first_ms = min(now, delivery.created_ms or now)
            group.items.append(item)

    def _deliver_due(
        self,
        outbox: Outbox,
        held: dict[int, _Held],
        groups: dict[GroupKey, _Group],
        buckets: dict[str, TokenBucket],
    ) -> int:
        """Send every group that is due; return ms until the next one may be (IDLE if none)."""
        next_ms = int(IDLE_WAIT_S * 1000)
        for key in list(groups):
            if self._stop.is_set():
                break
            group = groups[key]
            subscriber = self._subscribers[key[0]]
            pace = subscriber.pace
            now = self.clock_ms()
            if not group.items:
                if group.last_sent_ms is None or now - group.last_sent_ms > pace.group_interval_ms:
                    del groups[key]  # forgotten once its interval has passed: memory stays bounded
                continue
            due = max(
                group_due_ms(group.first_ms, group.last_sent_ms, pace.group_wait_ms, pace.group_interval_ms),
                group.retry_at_ms,
            )
            bucket = None
            if pace.max_notifications is not None:
                bucket = buckets.setdefault(
                    subscriber.name, TokenBucket.full(pace.max_notifications, pace.window_ms, now)
                )
                due = max(due, bucket.ready_ms(now))
            if due > now:
                next_ms = min(next_ms, due - now)
                continue
            if bucket is not None:
                bucket.take(now)
            self._send(outbox, held, key, group, subscriber)
            next_ms = 0 if group.items else next_ms
        return next_ms

    def _send(
        self, outbox: Outbox, held: dict[int, _Held], key: GroupKey, group: _Group, subscriber: Subscriber
    ) -> None:
        batch = group.items[: subscriber.pace.max_events]
        notification = Notification(subscriber, key[1], key[2], [i.event for i in batch])
        deliveries = [i.delivery for i in batch]
        try:
            self.channel.deliver(notification)
        except Exception as failure:
            error = failure if isinstance(failure, DeliveryError) else DeliveryError(repr(failure))
            if not isinstance(failure, DeliveryError):
                log.exception("alert channel %s raised an unexpected error", self.name)
            self._failed(outbox, held, group, batch, error)
            return
        outbox.delivered(deliveries)
        for item in batch:
            held.pop(item.delivery.seq, None)
        del group.items[: len(batch)]
        group.last_sent_ms = self.clock_ms()
        group.retry_at_ms = 0
        group.failures = 0
        group.first_ms = group.last_sent_ms
        self._counters.add(delivered=len(batch), queued=-len(batch))
        log.debug("alert channel %s delivered %d events to %s", self.name, len(batch), subscriber.name)

    def _failed(
        self, outbox: Outbox, held: dict[int, _Held], group: _Group, batch: list[_Held], error: DeliveryError
    ) -> None:
        outbox.failed([i.delivery for i in batch], str(error))
        final: list[_Held] = []
        for item in batch:
            item.attempts += 1
            if not error.retryable or item.attempts >= self.attempts:
                final.append(item)
        if final:
            dead = [replace(i.delivery, attempts=i.attempts) for i in final]
            outbox.dead_letter(dead, str(error))
            for item in final:
                held.pop(item.delivery.seq, None)
                group.items.remove(item)
            self._counters.add(dead_lettered=len(final), queued=-len(final))
            log.error(
                "alert channel %s: gave up on %d events for %s after %d attempts (%s); see dead_letters",
                self.name,
                len(final),
                final[0].delivery.subscriber,
                final[0].attempts,
                error,
            )
        retried = len(batch) - len(final)
        if retried:
            group.failures += 1
            wait_s = self.policy.wait_s(group.failures - 1, error.retry_after_s)
            group.retry_at_ms = self.clock_ms() + int(wait_s * 1000)
            self._counters.add(retried=retried)
            log.warning(
                "alert channel %s: delivery to %s failed (%s); retry in %.1f s",
                self.name,
                batch[0].delivery.subscriber,
                error,
                wait_s,
            )

    def _forget(self, held: dict[int, _Held], groups: dict[GroupKey, _Group], seq: int) -> None:
        item = held.pop(seq, None)
        if item is None:
            return
        d = item.delivery
        group = groups.get((d.subscriber, d.rule, d.district))
        if group is not None and item in group.items:
            group.items.remove(item)
