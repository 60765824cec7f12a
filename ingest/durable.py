"""Durability around any sink: retries with capped backoff, then the disk spool, then backpressure.

``DurableSink.write`` returns only once the batch is safe: stored by the wrapped
sink, or fsync'd into the local spool. So the caller may acknowledge the MQTT
messages either way, and nothing the broker accepted is lost:

1. While the spool is empty, write straight through. A failure is retried with
   capped exponential backoff (with jitter, at least as long as the server's
   Retry-After) for up to ``spool_after_s``; then the batch goes to the spool.
   A failure that retrying cannot fix (bad credentials, no such database) goes
   to the spool at once, with the operator's advice in the log.
2. While the spool holds batches, new batches join its tail, so the store sees
   batches in the order they came. A replay thread writes the oldest batch,
   takes it off the spool once the store has it, and backs off while the store
   keeps failing.
3. When the spool is full, ``write`` raises a retryable ``SinkError``: the caller
   stops acknowledging, MQTT flow control stops the broker sending, and the
   broker keeps the messages until the spool drains.

Points the store refuses for good (a ``WriteReport``'s ``rejected``) are handed
to a ``RejectHandler``, which turns them into dead-letter events; those are made
durable the same way before the write counts as done.

The inner sink is never written by two threads at once: direct writes happen
only while the spool is empty, and the replay thread takes a batch off the spool
only after its write finished.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from ingest.batch_codec import UnreadableBatchError, decode_batch, encode_batch
from ingest.counters import LockedCounters
from ingest.sinks.base import RejectedPoint, Sink, SinkError, SinkHealth, WriteReport
from ingest.spool import Record, Spool, SpoolFullError, SpoolLockedError, SpoolState
from processors.batch import Event, WriteBatch

log = logging.getLogger(__name__)

MAX_RETRY_AFTER_S = 600.0
"""A Retry-After longer than this is treated as this (a broken header should not stall replay for days)."""


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Capped exponential backoff: ``first_s``, doubling, at most ``max_s``, with ±20 % jitter."""

    first_s: float = 0.25
    max_s: float = 30.0
    spool_after_s: float = 5.0
    """How long a direct write keeps retrying before its batch goes to the spool."""

    def wait_s(self, attempt: int, retry_after_s: float | None = None) -> float:
        """Seconds to wait before retry number ``attempt`` (0-based); never less than Retry-After."""
        backoff = min(self.max_s, self.first_s * 2.0 ** min(attempt, 30)) * random.uniform(0.8, 1.2)
        if retry_after_s is not None:
            backoff = max(backoff, min(retry_after_s, MAX_RETRY_AFTER_S))
        return backoff


class RejectHandler(Protocol):
    """Turns points the store refused into dead letters (see ``ingest/store_rejects.py``)."""

    def events(self, rejected: Sequence[RejectedPoint]) -> tuple[Event, ...]:
        """Dead-letter events to store for ``rejected``."""

    def stored(self, rejected: Sequence[RejectedPoint]) -> None:
        """Called once those events are durable: count and announce the rejects."""


@dataclass(frozen=True)
class DurabilitySnapshot:
    """The durability counters at one instant, plus the spool's state."""

    written: int
    retries: int
    failures: int
    spooled_batches: int
    spooled_points: int
    replayed_batches: int
    replayed_points: int
    store_rejected: int
    set_aside: int
    spool: SpoolState
    store_ok: bool


@dataclass
class _Counters(LockedCounters):
    written: int = 0
    retries: int = 0
    failures: int = 0
    spooled_batches: int = 0
    spooled_points: int = 0
    replayed_batches: int = 0
    replayed_points: int = 0
    store_rejected: int = 0
    set_aside: int = 0


class DurableSink(Sink):
    """``inner`` made durable by retries and ``spool``; see the module docstring."""

    def __init__(
        self,
        inner: Sink,
        spool: Spool,
        *,
        policy: RetryPolicy | None = None,
        on_rejected: RejectHandler | None = None,
    ) -> None:
        self.inner = inner
        self.spool = spool
        self.policy = policy or RetryPolicy()
        self.on_rejected = on_rejected
        self._counters = _Counters()
        self._closing = threading.Event()
        self._wake = threading.Condition()
        self._store_ok = True
        self._write_lock = threading.Lock()
        if len(spool):
            state = spool.state()
            log.warning(
                "spool %s holds %d batches (%.1f MB) from an earlier run; replaying them first",
                spool.directory,
                state.records,
                state.bytes / 1e6,
            )
        self._replayer = threading.Thread(target=self._replay_forever, name="citypulse-replay", daemon=True)
        self._replayer.start()

    # --- Sink -------------------------------------------------------------------------
    def write(self, batch: WriteBatch) -> WriteReport:
        with self._write_lock:
            report = self._write(batch)
            if report.rejected:
                self._dead_letter(report.rejected)
            return report

    def _write(self, batch: WriteBatch) -> WriteReport:
        if len(self.spool):
            return self._to_spool(batch)
        attempt = 0
        give_up_at = time.monotonic() + self.policy.spool_after_s
        while True:
            try:
                report = self.inner.write(batch)
            except SinkError as failure:
                self._counters.add(failures=1)
                self._store_ok = False
                wait = self.policy.wait_s(attempt, failure.retry_after_s)
                attempt += 1
                if not failure.retryable or time.monotonic() + wait > give_up_at or self._closing.is_set():
                    (log.warning if failure.retryable else log.error)(
                        "store failed (%s); %d points go to the spool %s",
                        failure,
                        len(batch),
                        self.spool.directory,
                    )
                    return self._to_spool(batch)
                log.info("store failed (%s); retry %d in %.1f s", failure, attempt, wait)
                self._counters.add(retries=1)
                if self._closing.wait(wait):
                    return self._to_spool(batch)
                continue
            except Exception:
                # A bug in a sink must not crash-loop the service on redelivery of the same batch:
                # the batch goes to the spool, and replay sets it aside if it fails there too.
                log.exception("the store raised an unexpected error; the batch goes to the spool")
                self._counters.add(failures=1)
                return self._to_spool(batch)
            self._store_ok = True
            self._counters.add(written=report.written)
            return report

    def _to_spool(self, batch: WriteBatch) -> WriteReport:
        try:
            self.spool.append(encode_batch(batch))
        except SpoolFullError as full:
            raise SinkError(str(full), retryable=True, retry_after_s=1.0) from full
        except SpoolLockedError as locked:
            raise SinkError(str(locked), retryable=True) from locked
        except OSError as failed:
            raise SinkError(
                f"cannot write the spool {self.spool.directory}: {failed}; "
                "free disk space or fix its permissions",
                retryable=True,
            ) from failed
        self._counters.add(spooled_batches=1, spooled_points=len(batch))
        with self._wake:
            self._wake.notify_all()
        return WriteReport(written=len(batch))

    def _dead_letter(self, rejected: Sequence[RejectedPoint]) -> None:
        """Store dead letters for ``rejected`` (directly or via the spool), then report them."""
        if self.on_rejected is None:
            for point in rejected:
                log.error("the store refused %s: %s", point.line[:300], point.reason)
        else:
            events = self.on_rejected.events(rejected)
            if events:
                report = self._write(WriteBatch(events=events))
                for point in report.rejected:  # a dead letter refused in turn: log it, never loop
                    log.error("the store refused a dead letter too: %s (%s)", point.line[:300], point.reason)
            self.on_rejected.stored(rejected)
        self._counters.add(store_rejected=len(rejected))

    def flush(self) -> None:
        self.inner.flush()

    def close(self) -> None:
        """Stop replaying (the spool keeps what is left for the next run), then close the store."""
        self._closing.set()
        with self._wake:
            self._wake.notify_all()
        self._replayer.join(timeout=30)
        left = len(self.spool)
        if left:
            log.info("%d batches stay in the spool %s for the next run", left, self.spool.directory)
        self.spool.close()
        self.inner.close()

    def health(self) -> SinkHealth:
        inner = self.inner.health()
        state = self.spool.state()
        if not state.records:
            return inner
        detail = f"{inner.detail}; spool {state.records} batches, {state.percent:.0f}% full"
        return SinkHealth(inner.ok and not state.full, detail, inner.size_bytes)

    def describe(self) -> str:
        return self.inner.describe()

    def snapshot(self) -> DurabilitySnapshot:
        c = self._counters
        with c.lock:
            return DurabilitySnapshot(
                written=c.written,
                retries=c.retries,
                failures=c.failures,
                spooled_batches=c.spooled_batches,
                spooled_points=c.spooled_points,
                replayed_batches=c.replayed_batches,
                replayed_points=c.replayed_points,
                store_rejected=c.store_rejected,
                set_aside=c.set_aside,
                spool=self.spool.state(),
                store_ok=self._store_ok,
            )

    # --- replay -------------------------------------------------------------------------
    def _replay_forever(self) -> None:
        attempt = 0
        failing_since: float | None = None
        last_log = 0.0
        while not self._closing.is_set():
            record = self.spool.peek()
            if record is None:
                with self._wake:
                    self._wake.wait_for(lambda: len(self.spool) > 0 or self._closing.is_set(), timeout=1.0)
                continue
            try:
                batch = decode_batch(self.spool.read(record))
            except (UnreadableBatchError, OSError) as bad:
                self._set_aside(record, str(bad))
                continue
            try:
                report = self.inner.write(batch)
                if report.rejected:
                    self._replay_dead_letters(report.rejected)
            except SinkError as failure:
                self._counters.add(failures=1)
                self._store_ok = False
                now = time.monotonic()
                failing_since = failing_since or now
                wait = self.policy.wait_s(attempt, failure.retry_after_s)
                attempt += 1
                if now - last_log >= 30 or attempt == 1:
                    last_log = now
                    state = self.spool.state()
                    log.warning(
                        "replay: store still failing after %.0f s (%s); spool holds %d batches (%.0f%%), "
                        "next try in %.1f s",
                        now - failing_since,
                        failure,
                        state.records,
                        state.percent,
                        wait,
                    )
                self._closing.wait(wait)
                continue
            except Exception as bug:
                log.exception("replay: the store raised an unexpected error on a spooled batch")
                self._set_aside(record, f"the store raised {bug!r}")
                continue
            self._store_ok = True
            self._counters.add(  # counted before the pop, so an empty spool means "all counted"
                written=report.written,
                replayed_batches=1,
                replayed_points=len(batch),
                store_rejected=len(report.rejected),
            )
            self.spool.pop(record)
            if report.rejected and self.on_rejected is not None:
                self.on_rejected.stored(report.rejected)
            if failing_since is not None:
                log.info("replay: the store answers again after %.0f s", time.monotonic() - failing_since)
                failing_since, attempt = None, 0
            if not len(self.spool):
                log.info("replay: spool %s is empty; writing straight through again", self.spool.directory)

    def _set_aside(self, record: Record, why: str) -> None:
        """Move a record that can never be written out of the way; counted before it leaves the queue."""
        self._counters.add(set_aside=1)
        try:
            self.spool.set_aside(record, why)
        except OSError as failed:
            self._counters.add(set_aside=-1)
            log.error("cannot set spool record aside (%s); trying again in 5 s", failed)
            self._closing.wait(5)

    def _replay_dead_letters(self, rejected: Sequence[RejectedPoint]) -> None:
        """Store dead letters for points refused during replay (raises ``SinkError`` to retry the record)."""
        if self.on_rejected is None:
            for point in rejected:
                log.error("the store refused %s: %s", point.line[:300], point.reason)
            return
        events = self.on_rejected.events(rejected)
        if events:
            report = self.inner.write(WriteBatch(events=events))
            for point in report.rejected:
                log.error("the store refused a dead letter too: %s (%s)", point.line[:300], point.reason)
