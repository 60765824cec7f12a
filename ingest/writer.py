"""Storing cycles on a thread of their own, in order, each acknowledged once it is stored.

A cycle's write is mostly waiting: for InfluxDB to answer (measured: 35-42 % of a
gateway drain's time on the one thread that did everything). Here that wait
overlaps the next cycle's validation and scoring on the service's main thread.

The price is the order of learning. :meth:`Pipeline.process
<ingest.pipeline.Pipeline.process>` learns from a cycle only after its write; the
service commits a cycle's learning (duplicates, baselines, alert state) as soon as
it is staged, so the next cycle is judged against it, and hands the write here.
That stays at-least-once because a committed cycle is never given up while the
service runs: a failing write (only a full spool fails, the durable sink spools
everything else) is retried here for as long as it takes, and the service stops
taking cycles meanwhile (the queue is short), so the broker keeps the rest. Only a
stop can abandon a committed cycle, its messages then stay unacknowledged for the
next run; the service then does not save its detector state, because that state
would take the redelivered readings for duplicates.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from ingest.mqtt_source import Taken
from ingest.pipeline import Pipeline, StagedCycle
from ingest.sinks.base import SinkError

log = logging.getLogger(__name__)

MAX_BACKOFF_S = 30.0


@dataclass(frozen=True, slots=True)
class _Job:
    cycle: StagedCycle
    taken: Taken


class Writer:
    """One thread storing staged cycles in order; ``acknowledge`` is called for each once stored."""

    def __init__(self, pipeline: Pipeline, acknowledge: Callable[[Taken], object], depth: int = 1) -> None:
        self.pipeline = pipeline
        self._acknowledge = acknowledge
        self._jobs: queue.Queue[_Job | None] = queue.Queue(maxsize=depth)
        self._wake = threading.Condition()
        self._give_up_at: float | None = None
        self.abandoned = 0
        """Committed cycles left unstored (and unacknowledged) because the service stopped."""
        self._thread = threading.Thread(target=self._run, name="citypulse-writer", daemon=True)
        self._thread.start()

    def put(
        self,
        cycle: StagedCycle,
        taken: Taken,
        stop: threading.Event | None = None,
        give_up_at: float | None = None,
    ) -> bool:
        """Queue a committed cycle; blocks while ``depth`` cycles wait (the main thread then takes none).

        Gives up (False) if ``stop`` is set or ``give_up_at`` passes meanwhile: the cycle then
        stays unstored and unacknowledged, and counts as abandoned.
        """
        job = _Job(cycle, taken)
        while True:
            try:
                self._jobs.put(job, timeout=0.2)
                return True
            except queue.Full:
                if (stop is not None and stop.is_set()) or (
                    give_up_at is not None and time.monotonic() > give_up_at
                ):
                    log.warning(
                        "giving up for now: %d messages left at the broker for the next run", cycle.messages
                    )
                    self.abandoned += 1
                    return False

    def wait_stored(self, timeout_s: float) -> bool:
        """Wait until every queued cycle is stored and acknowledged (True), or ``timeout_s`` passed."""
        deadline = time.monotonic() + timeout_s
        while self._jobs.unfinished_tasks:
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.005)
        return True

    def close(self, give_up_at: float) -> bool:
        """Store what is queued, retrying failures until ``give_up_at``; True if everything was stored."""
        with self._wake:
            self._give_up_at = give_up_at
            self._wake.notify_all()
        self._jobs.put(None)
        self._thread.join(max(0.0, give_up_at - time.monotonic()) + 5.0)
        return self.abandoned == 0 and not self._thread.is_alive()

    def _run(self) -> None:
        while True:
            job = self._jobs.get()
            try:
                if job is None:
                    return
                if self._store(job.cycle):
                    self.pipeline.finish(job.cycle)
                    self._acknowledge(job.taken)
                else:
                    self.abandoned += 1
            except Exception:  # a bug here must not leave the main thread blocked on a full queue
                log.exception("storing a cycle failed unexpectedly; its messages stay unacknowledged")
                self.abandoned += 1
            finally:
                self._jobs.task_done()

    def _store(self, cycle: StagedCycle) -> bool:
        """Write the cycle, retrying with backoff; False only once the service gave up (stopping)."""
        backoff = 0.5
        while True:
            try:
                self.pipeline.store(cycle)
            except SinkError as failure:
                self.pipeline.stats.record_write_failure()
                wait = min(failure.retry_after_s or backoff, MAX_BACKOFF_S)
                backoff = min(backoff * 2, MAX_BACKOFF_S)
                log.warning(
                    "store failed (%s); %d messages stay unacknowledged, retrying in %.1f s",
                    failure,
                    cycle.messages,
                    wait,
                )
                with self._wake:
                    give_up_at = self._give_up_at
                    if give_up_at is not None and time.monotonic() + wait > give_up_at:
                        log.warning(
                            "giving up for now: %d messages left at the broker for the next run",
                            cycle.messages,
                        )
                        return False
                    self._wake.wait(wait)
                continue
            return True
