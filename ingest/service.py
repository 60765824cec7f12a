"""The ingest service: MQTT source, pipeline and sink, run until told to stop.

Loop: take a cycle of deliveries, make them durable (retrying the store with
capped backoff while it fails), then acknowledge them. Stopping drains what was
already received; anything not yet stored stays unacknowledged at the broker and
is redelivered to the next run.
"""

from __future__ import annotations

import json
import logging
import math
import threading
import time
from collections.abc import Sequence

from ingest.mqtt_client import ConnectOptions
from ingest.mqtt_source import Delivery, MqttSource
from ingest.pipeline import Pipeline
from ingest.registry_file import load_registry
from ingest.settings import Settings
from ingest.sinks import Sink, SinkError, open_sink
from ingest.stats import PipelineStats, StatsSnapshot
from processors.registry import Registry
from processors.validate import Validator

log = logging.getLogger(__name__)

MAX_BACKOFF_S = 30.0


class IngestService:
    """Everything ``citypulse ingest`` runs, usable in-process by the demo and tests."""

    def __init__(
        self,
        settings: Settings,
        *,
        registry: Registry | None = None,
        sink: Sink | None = None,
        stats: PipelineStats | None = None,
        progress_every_s: float = 10.0,
    ) -> None:
        self.settings = settings
        self.registry = registry if registry is not None else load_registry(settings.registry)
        self.registry_source = "the caller" if registry is not None else str(settings.registry)
        self.sink = sink if sink is not None else open_sink(settings)
        self.stats = stats if stats is not None else PipelineStats()
        self.progress_every_s = progress_every_s
        topics = settings.topics
        subscriptions = topics.subscriptions()
        if settings.mqtt_shared_group:
            subscriptions = tuple(f"$share/{settings.mqtt_shared_group}/{t}" for t in subscriptions)
        self.source = MqttSource(
            ConnectOptions(
                endpoint=settings.mqtt,
                client_id=settings.mqtt_client_id,
                protocol=settings.mqtt_protocol,
                keepalive_s=settings.mqtt_keepalive_s,
                session_expiry_s=settings.mqtt_session_expiry_s,
                receive_maximum=settings.mqtt_receive_maximum,
            ),
            subscriptions,
            status_topic=topics.status("ingest", settings.mqtt_client_id),
        )
        self.pipeline = Pipeline(
            Validator(self.registry, settings.validation, topics),
            self.sink,
            self.stats,
            publish_deadletter=lambda topic, payload: self.source.publish(topic, payload, qos=1),
        )
        self._stop = threading.Event()
        self.stopped = threading.Event()

    def describe(self) -> str:
        s = self.settings
        return (
            f"citypulse ingest: reading {s.mqtt.display()} (MQTT {s.mqtt_protocol}, client id "
            f"{s.mqtt_client_id!r}, topics {', '.join(self.source.subscriptions)}), "
            f"{len(self.registry)} devices from {self.registry_source}, writing to {self.sink.describe()}"
        )

    def start(self, timeout_s: float = 30.0) -> None:
        """Connect and subscribe; raise ``BrokerUnreachableError`` with advice if the broker is not there."""
        self.source.start(timeout_s)
        log.info(self.describe())

    def request_stop(self) -> None:
        self._stop.set()

    def run(self, drain_timeout_s: float = 30.0) -> None:
        """Process cycles until :meth:`request_stop`, then drain, disconnect and close the sink."""
        s = self.settings
        last_progress = time.monotonic()
        last = self.stats.snapshot()
        try:
            while not self._stop.is_set():
                deliveries = self.source.take(s.batch_max_messages, s.batch_linger_s, wait_s=0.2)
                if deliveries:
                    self._cycle(deliveries, give_up_at=None)
                if self.progress_every_s and time.monotonic() - last_progress >= self.progress_every_s:
                    last = self._log_progress(last)
                    last_progress = time.monotonic()
            self._drain(time.monotonic() + drain_timeout_s)
        finally:
            self.source.stop()
            self.sink.close()
            self.stopped.set()
            log.info(
                "citypulse ingest stopped: %s",
                json.dumps(self.stats.snapshot().summary(), sort_keys=True),
            )

    def _drain(self, give_up_at: float) -> None:
        s = self.settings
        while time.monotonic() < give_up_at:
            deliveries = self.source.take(s.batch_max_messages, linger_s=0.05, wait_s=0.05)
            if not deliveries:
                return
            if not self._cycle(deliveries, give_up_at=give_up_at):
                return

    def _cycle(self, deliveries: Sequence[Delivery], give_up_at: float | None) -> bool:
        """Store a cycle and acknowledge it; retry while the store fails.

        Retries go on until stored, or until ``give_up_at`` (while draining) or a
        stop request (while running); what is given up stays unacknowledged.
        """
        backoff = 0.5
        while True:
            try:
                self.pipeline.process([d.message for d in deliveries])
            except SinkError as failure:
                self.stats.record_write_failure()
                wait = min(failure.retry_after_s or backoff, MAX_BACKOFF_S)
                backoff = min(backoff * 2, MAX_BACKOFF_S)
                log.warning(
                    "store failed (%s); %d messages stay unacknowledged, retrying in %.1f s",
                    failure,
                    len(deliveries),
                    wait,
                )
                deadline = give_up_at if give_up_at is not None else math.inf
                if time.monotonic() + wait > deadline or (give_up_at is None and self._stop.wait(wait)):
                    log.warning(
                        "giving up for now: %d messages left at the broker for the next run",
                        len(deliveries),
                    )
                    return False
                if give_up_at is not None:
                    time.sleep(wait)
                continue
            self.source.ack(deliveries)
            return True

    def _log_progress(self, last: StatsSnapshot) -> StatsSnapshot:
        now = self.stats.snapshot()
        elapsed = max(now.at - last.at, 1e-9)
        stored = sum(now.stored.values())
        rejected = sum(now.rejected.values())
        log.info(
            "%.0f msg/s, %.0f readings/s stored, %d rejected, %d queued; totals: %d stored, %d rejected",
            (now.messages - last.messages) / elapsed,
            (stored - sum(last.stored.values())) / elapsed,
            rejected - sum(last.rejected.values()),
            self.source.pending(),
            stored,
            rejected,
        )
        return now

    def run_in_thread(self) -> threading.Thread:
        thread = threading.Thread(target=self.run, name="citypulse-ingest", daemon=True)
        thread.start()
        return thread
