"""The ingest service: MQTT source, pipeline and sink, run until told to stop.

Loop: take a cycle of deliveries, make them durable, then acknowledge them. The
sink the settings name is wrapped in a ``DurableSink`` (retries, then the disk
spool), so a cycle is durable even while the database is down; only a full spool
makes a cycle fail, and then its messages stay unacknowledged and the service
retries it, taking nothing new (backpressure: the broker keeps the rest).
Stopping drains what was already received; anything not yet durable stays
unacknowledged at the broker and is redelivered to the next run.
"""

from __future__ import annotations

import json
import logging
import math
import threading
import time

from ingest.alerts.service import AlertService
from ingest.device_states import DeviceStates, no_open_alerts
from ingest.durable import DurableSink, RetryPolicy
from ingest.metrics import MetricsServer, Observation, SourceState, pipeline_event
from ingest.mqtt_source import MqttSource, Taken
from ingest.pipeline import Pipeline, load_state, save_state
from ingest.registry_file import load_registry
from ingest.settings import Settings
from ingest.sinks import Sink, SinkError, open_sink
from ingest.spool import Spool
from ingest.stats import PipelineStats, StatsSnapshot, wall_clock_ms
from ingest.store_rejects import StoreRejects
from ingest.writer import Writer
from processors.air_index import AirIndex
from processors.anomaly import DetectionEngine
from processors.batch import WriteBatch
from processors.endpoint import ConnectOptions
from processors.ratelimit import RateLimiter
from processors.registry import Registry
from processors.units import human_rate
from processors.validate import Validator

log = logging.getLogger(__name__)

MAX_BACKOFF_S = 30.0
IDLE_CYCLE_S = 5.0
"""With no message for this long, a cycle runs anyway: the clock checks (silence) and the
device map must see a city gone quiet, not only one device among talkative ones."""
CHECKPOINT_WAIT_S = 5.0
"""How long a periodic checkpoint waits for the writer to store what was committed; else it is put off."""
ALERT_TICK_S = 1.0
"""How often, while no readings arrive, acknowledgements and silences from the command line are applied."""


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
        durable: bool | None = None,
        serve_metrics: bool = False,
    ) -> None:
        """``durable`` wraps the sink in retries and the spool; by default only a sink opened from settings.

        ``serve_metrics`` starts the /metrics endpoint (``citypulse ingest`` does;
        the demo and in-process tests do not, so they never fight over a port).
        """
        self.settings = settings
        self.registry = registry if registry is not None else load_registry(settings.registry)
        self.registry_source = "the caller" if registry is not None else str(settings.registry)
        self.stats = stats if stats is not None else PipelineStats()
        self.progress_every_s = progress_every_s
        self.serve_metrics = serve_metrics
        self.metrics: MetricsServer | None = None
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
            max_pending=settings.mqtt_receive_maximum,
            max_pending_bytes=settings.mqtt_receive_buffer_bytes,
            ignore=topics.is_own,
        )
        inner = sink if sink is not None else open_sink(settings)
        self.durable: DurableSink | None = None
        if durable or (durable is None and sink is None):
            try:
                self.durable = DurableSink(
                    inner,
                    Spool(settings.spool_dir, settings.spool_max_bytes),
                    policy=RetryPolicy(
                        max_s=settings.retry_max_backoff_s, spool_after_s=settings.retry_spool_after_s
                    ),
                    on_rejected=StoreRejects(
                        self.stats,
                        topics,
                        publish=lambda topic, payload: self.source.publish(topic, payload, qos=1),
                        payload_bytes=settings.deadletter_payload_bytes,
                    ),
                )
            except Exception:
                inner.close()
                raise
        self.sink: Sink = self.durable if self.durable is not None else inner
        self.alerts: AlertService | None = None
        if settings.alerts.enabled:
            try:
                self.alerts = AlertService(settings, self.registry, self.stats)
            except Exception:
                self.sink.close()
                raise
        alerting = self.alerts.alerting_devices if self.alerts is not None else no_open_alerts
        self.pipeline = Pipeline(
            Validator(self.registry, settings.validation, topics),
            self.sink,
            self.stats,
            publish_deadletter=lambda topic, payload: self.source.publish(topic, payload, qos=1),
            engine=DetectionEngine(self.registry, settings.detection, settings.detector_names),
            limiter=RateLimiter(settings.rate_policy, self.registry),
            air_index=AirIndex(self.registry),
            device_states=DeviceStates(
                self.registry,
                settings.devices,
                open_alert_devices=alerting,
            ),
            alerts=self.alerts,
        )
        self._state_path = settings.detector_state if str(settings.detector_state) not in ("", ".") else None
        if self._state_path is not None:
            log.info(load_state(self.pipeline, self._state_path))
        self._stop = threading.Event()
        self.stopped = threading.Event()

    def describe(self) -> str:
        s = self.settings
        line = (
            f"citypulse ingest: reading {s.mqtt.display()} (MQTT {s.mqtt_protocol}, client id "
            f"{s.mqtt_client_id!r}, topics {', '.join(self.source.subscriptions)}), "
            f"{len(self.registry)} devices from {self.registry_source}, writing to {self.sink.describe()}"
        )
        if self.durable is not None:
            line += f", spooling to {s.spool_dir} (up to {s.spool_max_bytes / 2**20:.0f} MiB) while it fails"
        if self.metrics is not None:
            line += f", metrics at {self.metrics.url}"
        if self.alerts is not None:
            line += f"; {self.alerts.describe()}"
        return line

    def start(self, timeout_s: float = 30.0) -> None:
        """Connect and subscribe; raise ``BrokerUnreachableError`` with advice if the broker is not there."""
        s = self.settings
        if self.serve_metrics and s.metrics_port:
            try:
                self.metrics = MetricsServer(self.observe, s.metrics_host, s.metrics_port)
            except OSError as failed:
                log.error(
                    "cannot serve metrics on %s:%d (%s); set CITYPULSE_METRICS_PORT to a free port, "
                    "or 0 to turn the endpoint off",
                    s.metrics_host,
                    s.metrics_port,
                    failed,
                )
        self.source.start(timeout_s)
        if self.alerts is not None:
            self.alerts.start()
        log.info(self.describe())

    def observe(self) -> Observation:
        """The counters every metrics view reports, read now."""
        return Observation(
            stats=self.stats.snapshot(),
            durable=self.durable.snapshot() if self.durable is not None else None,
            source=SourceState(
                self.source.pending(),
                self.source.connected,
                self.source.reconnects,
                self.source.sessions_lost,
            ),
            alerts=self.alerts.snapshot() if self.alerts is not None else None,
        )

    def request_stop(self) -> None:
        self._stop.set()

    def run(self, drain_timeout_s: float = 30.0) -> None:
        """Process cycles until :meth:`request_stop`, then drain, disconnect and close the sink."""
        s = self.settings
        last_progress = last_sample = last_saved = last_cycle = last_alert_tick = time.monotonic()
        last = self.stats.snapshot()
        sampled: Observation | None = None
        writer = Writer(self.pipeline, self.source.ack)
        stored_all = False
        try:
            while not self._stop.is_set():
                taken = self.source.take(
                    s.batch_max_messages, s.batch_linger_s, wait_s=0.2, max_bytes=s.batch_max_bytes
                )
                if taken or time.monotonic() - last_cycle >= IDLE_CYCLE_S:
                    self._cycle(taken, writer, give_up_at=None)
                    last_cycle = time.monotonic()
                elif time.monotonic() - last_alert_tick >= ALERT_TICK_S:
                    self._alert_tick()
                    last_alert_tick = time.monotonic()
                if self.progress_every_s and time.monotonic() - last_progress >= self.progress_every_s:
                    last = self._log_progress(last)
                    last_progress = time.monotonic()
                if s.metrics_interval_s and time.monotonic() - last_sample >= s.metrics_interval_s:
                    sampled = self._write_sample(sampled)
                    last_sample = time.monotonic()
                if (
                    s.detector_state_interval_s
                    and time.monotonic() - last_saved >= s.detector_state_interval_s
                    # Once every committed cycle is stored: the checkpoint holds what stored cycles taught.
                    and writer.wait_stored(CHECKPOINT_WAIT_S)
                ):
                    self._save_state(final=False)
                    last_saved = time.monotonic()
            self.source.pause()
            give_up_at = time.monotonic() + drain_timeout_s
            self._drain(writer, give_up_at)
            stored_all = writer.close(give_up_at)
            if s.metrics_interval_s:
                self._write_sample(sampled)
        finally:
            if not stored_all:
                stored_all = writer.close(time.monotonic() + 5.0)
            self.source.stop()
            if stored_all:
                self._save_state()
            elif self._state_path is not None:
                log.warning(
                    "detector state not saved: %d cycles were not stored and stay unacknowledged at the "
                    "broker, and the state would take their redelivered readings for duplicates; "
                    "%s keeps the previous checkpoint",
                    writer.abandoned,
                    self._state_path,
                )
            self.sink.close()
            if self.alerts is not None:
                self.alerts.close()
            if self.metrics is not None:
                self.metrics.stop()
            self.stopped.set()
            log.info(
                "citypulse ingest stopped: %s",
                json.dumps(self.stats.snapshot().summary(), sort_keys=True),
            )

    def _save_state(self, final: bool = True) -> None:
        """Keep the detectors' baselines for the next run; a failure costs relearning, not data."""
        if self._state_path is None:
            return
        try:
            size = save_state(self.pipeline, self._state_path)
        except OSError as failed:
            log.warning(
                "could not save detector state to %s (%s): the next run relearns", self._state_path, failed
            )
        else:
            log.log(
                logging.INFO if final else logging.DEBUG,
                "saved detector state to %s (%d bytes)",
                self._state_path,
                size,
            )

    def _alert_tick(self) -> None:
        """While no readings come: acknowledgements and silences from the command line take effect."""
        try:
            self.pipeline.alert_tick()
        except SinkError as failure:
            log.debug("alert acknowledgements wait for the store: %s", failure)

    def _drain(self, writer: Writer, give_up_at: float) -> None:
        """Store and acknowledge what was already received; new arrivals wait at the broker."""
        s = self.settings
        while time.monotonic() < give_up_at:
            taken = self.source.take(
                s.batch_max_messages, linger_s=0.0, wait_s=0.05, max_bytes=s.batch_max_bytes
            )
            if not taken or writer.abandoned:  # a cycle given up: the store is not taking any
                return
            if not self._cycle(taken, writer, give_up_at=give_up_at):
                return

    def _cycle(self, taken: Taken, writer: Writer, give_up_at: float | None) -> bool:
        """Stage and commit a cycle, and hand it to the writer, which acknowledges it once stored.

        Committing can fail only in the alert store; that is retried until it works,
        or until ``give_up_at`` (while draining) or a stop request (while running):
        what is given up stays unacknowledged, and nothing of it was learned.
        """
        backoff = 0.5
        while True:
            try:
                cycle = self.pipeline.stage(taken.messages)
                self.pipeline.commit(cycle)
            except SinkError as failure:
                self.stats.record_write_failure()
                wait = min(failure.retry_after_s or backoff, MAX_BACKOFF_S)
                backoff = min(backoff * 2, MAX_BACKOFF_S)
                log.warning(
                    "store failed (%s); %d messages stay unacknowledged, retrying in %.1f s",
                    failure,
                    len(taken),
                    wait,
                )
                deadline = give_up_at if give_up_at is not None else math.inf
                if time.monotonic() + wait > deadline or (give_up_at is None and self._stop.wait(wait)):
                    log.warning(
                        "giving up for now: %d messages left at the broker for the next run", len(taken)
                    )
                    return False
                if give_up_at is not None:
                    time.sleep(wait)
                continue
            if give_up_at is None:
                return writer.put(cycle, taken, stop=self._stop)
            return writer.put(cycle, taken, give_up_at=give_up_at)

    def _write_sample(self, previous: Observation | None) -> Observation:
        """Store one ``pipeline`` measurement sample; a full spool skips it (readings come first)."""
        seen = self.observe()
        event = pipeline_event(wall_clock_ms(), seen, previous, self.settings.mqtt_client_id)
        try:
            self.sink.write(WriteBatch(events=(event,)))
        except SinkError as failure:
            log.debug("pipeline metrics sample not stored: %s", failure)
        return seen

    def _log_progress(self, last: StatsSnapshot) -> StatsSnapshot:
        now = self.stats.snapshot()
        elapsed = max(now.at - last.at, 1e-9)
        stored = sum(now.stored.values())
        rejected = sum(now.rejected.values())
        spool = ""
        if self.durable is not None:
            state = self.durable.spool.state()
            if state.records:
                spool = f"; spool {state.records} batches ({state.percent:.0f}% full)"
        anomalies = sum(now.anomalies.values())
        log.info(
            "%s msg/s, %s readings/s stored, %d rejected, %d anomalies%s, %d queued; "
            "totals: %d stored, %d rejected, %d anomalies%s",
            human_rate((now.messages - last.messages) / elapsed),
            human_rate((stored - sum(last.stored.values())) / elapsed),
            rejected - sum(last.rejected.values()),
            anomalies - sum(last.anomalies.values()),
            _by_detector(now, last),
            self.source.pending(),
            stored,
            rejected,
            anomalies,
            spool,
        )
        return now

    def run_in_thread(self) -> threading.Thread:
        thread = threading.Thread(target=self.run, name="citypulse-ingest", daemon=True)
        thread.start()
        return thread


def _by_detector(now: StatsSnapshot, last: StatsSnapshot, shown: int = 4) -> str:
    """New anomaly onsets since ``last`` by kind/detector, the largest first: `` (air/spike 3, ...)``."""
    new = {
        f"{kind}/{detector}": n - last.anomaly_detectors.get((kind, detector), 0)
        for (kind, detector), n in now.anomaly_detectors.items()
    }
    ranked = sorted(((n, name) for name, n in new.items() if n > 0), key=lambda pair: (-pair[0], pair[1]))
    if not ranked:
        return ""
    parts = [f"{name} {n}" for n, name in ranked[:shown]]
    if len(ranked) > shown:
        parts.append("...")
    return f" ({', '.join(parts)})"
