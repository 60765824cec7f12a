"""The pipeline's own health: a Prometheus ``/metrics`` endpoint and a ``pipeline`` measurement.

Both read the same counters (``PipelineStats``, the durable sink's snapshot and
the MQTT source), so Prometheus, the pipeline-health dashboard and the JSON
summaries always agree. The endpoint is scraped (pull); the ``pipeline``
measurement is written through the same durable sink as the readings every
``CITYPULSE_METRICS_INTERVAL_S`` (push), so a deployment without Prometheus
still sees the pipeline's health next to its data.

Labels come only from bounded sets: sensor kinds, detectors and reason codes. Field names
of unknown fields and device ids never become labels.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from ingest.durable import DurabilitySnapshot
from ingest.stats import LAG_BUCKETS_S, StatsSnapshot
from processors.batch import Event

if TYPE_CHECKING:
    from ingest.alerts.service import AlertsSnapshot

log = logging.getLogger(__name__)

PIPELINE_MEASUREMENT = "pipeline"


@dataclass(frozen=True)
class SourceState:
    pending: int
    connected: bool
    reconnects: int
    sessions_lost: int = 0


@dataclass(frozen=True)
class Observation:
    """Everything the metrics report, read at one instant."""

    stats: StatsSnapshot
    durable: DurabilitySnapshot | None
    source: SourceState | None
    alerts: AlertsSnapshot | None = None


Observe = Callable[[], Observation]


class PipelineCollector(Collector):
    """Turns one ``Observation`` into Prometheus metric families on every scrape."""

    def __init__(self, observe: Observe) -> None:
        self.observe = observe

    def collect(self) -> Iterator[Metric]:
        seen = self.observe()
        s = seen.stats
        yield _counter("citypulse_messages", "MQTT messages taken through the pipeline.", s.messages)
        yield _by_kind("citypulse_readings_received", "Readings received, by sensor kind.", s.received)
        yield _by_kind(
            "citypulse_readings_valid", "Readings that passed validation and were stored.", s.stored
        )
        yield _by_kind("citypulse_readings_rejected", "Readings rejected, by sensor kind.", s.rejected)
        rejects = CounterMetricFamily(
            "citypulse_rejected", "Rejected readings and messages, by reason code.", labels=["reason"]
        )
        for reason, n in sorted(s.reasons.items()):
            rejects.add_metric([reason], n)
        yield rejects
        anomalies = CounterMetricFamily(
            "citypulse_anomalies",
            "Anomaly onsets (the first alarm of a run, as stored in the anomalies measurement), "
            "by sensor kind and detector.",
            labels=["kind", "detector"],
        )
        for (kind, detector), n in sorted(s.anomaly_detectors.items()):
            anomalies.add_metric([kind, detector], n)
        yield anomalies
        yield _counter(
            "citypulse_deadlettered",
            "Rejections stored as dead letters (every rejection is).",
            sum(s.reasons.values()),
        )
        yield _counter(
            "citypulse_deadletters_published", "Dead letters published on the MQTT dead-letter topic.",
            s.deadletters_published,
        )  # fmt: skip
        yield _counter("citypulse_ignored_fields", "Unknown fields dropped under the ignore policy.",
                       sum(s.ignored_fields.values()))  # fmt: skip
        yield _counter(
            "citypulse_cycle_write_failures",
            "Pipeline cycles that could not be made durable (a full spool) and were retried unacknowledged.",
            s.write_failures,
        )
        yield _counter("citypulse_cycles", "Pipeline cycles completed.", s.cycles)
        lag = HistogramMetricFamily(
            "citypulse_end_to_end_lag_seconds",
            "Ingest clock when a reading became durable minus the reading's device timestamp.",
        )
        cumulative, buckets = 0, []
        for bound, n in zip((*LAG_BUCKETS_S, float("inf")), s.lag_buckets, strict=True):
            cumulative += n
            buckets.append((_le(bound), cumulative))
        lag.add_metric([], buckets, sum_value=s.lag_sum_s)
        yield lag
        if seen.durable is not None:
            yield from _durable(seen.durable)
        if seen.alerts is not None:
            yield from _alerts(seen.alerts)
        if seen.source is not None:
            yield GaugeMetricFamily(
                "citypulse_mqtt_pending_messages",
                "Messages received from the broker, waiting for a pipeline cycle.",
                value=seen.source.pending,
            )
            yield GaugeMetricFamily(
                "citypulse_mqtt_connected",
                "1 while connected to the broker.",
                value=int(seen.source.connected),
            )
            yield _counter(
                "citypulse_mqtt_reconnects", "Reconnections to the broker.", seen.source.reconnects
            )
            yield _counter(
                "citypulse_mqtt_sessions_lost",
                "Reconnections where the broker had lost our session and the messages queued for it.",
                seen.source.sessions_lost,
            )


def every_family() -> list[Metric]:
    """Each metric family ``/metrics`` can serve, once, from an observation that has every part.

    Parts of the observation are optional (no spool before a durable sink, no alerts when
    they are off), so a scrape may show fewer; the reference in ``docs/metrics.md`` is
    generated from this list, so it cannot miss one.
    """
    from ingest.alerts.service import AlertsSnapshot
    from ingest.spool import SpoolState
    from ingest.stats import PipelineStats

    spool = SpoolState(records=0, bytes=0, max_bytes=1, full=False)
    durable = DurabilitySnapshot(0, 0, 0, 0, 0, 0, 0, 0, 0, spool, store_ok=True)
    alerts = AlertsSnapshot(events={}, fired=0, open={}, channels={})
    observation = Observation(PipelineStats().snapshot(), durable, SourceState(0, False, 0), alerts)
    return list(PipelineCollector(lambda: observation).collect())


def _durable(d: DurabilitySnapshot) -> Iterator[Metric]:
    yield _counter(
        "citypulse_points_written", "Points the store accepted (written through or replayed).", d.written
    )
    yield _counter("citypulse_write_retries", "Store writes retried after a failure.", d.retries)
    yield _counter("citypulse_write_failures", "Store write attempts that failed.", d.failures)
    yield _counter("citypulse_spooled_batches", "Batches written to the disk spool.", d.spooled_batches)
    yield _counter("citypulse_spooled_points", "Points written to the disk spool.", d.spooled_points)
    yield _counter(
        "citypulse_replayed_batches", "Spooled batches replayed into the store.", d.replayed_batches
    )
    yield _counter("citypulse_replayed_points", "Spooled points replayed into the store.", d.replayed_points)
    yield _counter("citypulse_store_rejected_points", "Points the store refused for good (dead-lettered).",
                   d.store_rejected)  # fmt: skip
    yield _counter("citypulse_spool_set_aside", "Unreadable spool records moved to unreadable/.", d.set_aside)
    yield GaugeMetricFamily("citypulse_spool_batches", "Batches waiting in the spool.", value=d.spool.records)
    yield GaugeMetricFamily("citypulse_spool_bytes", "Bytes the spool uses on disk.", value=d.spool.bytes)
    yield GaugeMetricFamily(
        "citypulse_spool_limit_bytes", "CITYPULSE_SPOOL_MAX_BYTES.", value=d.spool.max_bytes
    )
    yield GaugeMetricFamily(
        "citypulse_spool_full", "1 while the spool refuses batches (backpressure).", value=int(d.spool.full)
    )
    yield GaugeMetricFamily(
        "citypulse_store_up", "1 if the last store write succeeded.", value=int(d.store_ok)
    )


def _alerts(a: AlertsSnapshot) -> Iterator[Metric]:
    """Alert counts (labels: severity, kind and state, channel and outcome: all bounded sets)."""
    events = CounterMetricFamily(
        "citypulse_alerts",
        "Alert events, by severity, kind and the state they left the alert in "
        "(firing, acknowledged, resolved).",
        labels=["severity", "kind", "state"],
    )
    for (severity, kind, state), n in sorted(a.events.items()):
        events.add_metric([severity, kind, state], n)
    yield events
    yield _counter("citypulse_alerts_fired", "Alerts fired (each alert once).", a.fired)
    opened = GaugeMetricFamily("citypulse_alerts_open", "Alerts open now, by severity.", labels=["severity"])
    for severity, n in sorted(a.open.items()):
        opened.add_metric([severity], n)
    yield opened
    deliveries = CounterMetricFamily(
        "citypulse_alert_deliveries",
        "Alert events by channel and outcome: delivered, retried (an attempt failed), dead_lettered "
        "(given up), dropped (the outbox was full).",
        labels=["channel", "outcome"],
    )
    queued = GaugeMetricFamily(
        "citypulse_alert_queue_depth",
        "Alert events waiting for delivery, by channel (in memory or in the outbox on disk).",
        labels=["channel"],
    )
    overflow = CounterMetricFamily(
        "citypulse_alert_queue_overflow",
        "Alert events the full in-memory queue left in the outbox on disk, by channel (delivered later).",
        labels=["channel"],
    )
    for name, c in sorted(a.channels.items()):
        for outcome, n in (
            ("delivered", c.delivered),
            ("retried", c.retried),
            ("dead_lettered", c.dead_lettered),
            ("dropped", c.dropped),
        ):
            deliveries.add_metric([name, outcome], n)
        queued.add_metric([name], c.queued)
        overflow.add_metric([name], c.overflow)
    yield deliveries
    yield queued
    yield overflow


def _counter(name: str, documentation: str, value: float) -> CounterMetricFamily:
    return CounterMetricFamily(name, documentation, value=value)


def _by_kind(name: str, documentation: str, counts: dict[str, int]) -> CounterMetricFamily:
    family = CounterMetricFamily(name, documentation, labels=["kind"])
    for kind, n in sorted(counts.items()):
        family.add_metric([kind], n)
    return family


def _le(bound: float) -> str:
    return "+Inf" if bound == float("inf") else repr(float(bound))


def health(seen: Observation) -> tuple[bool, dict[str, object]]:
    """Whether the service does its job: connected to the broker, and able to make cycles durable.

    A store that is down is not unhealthy while the spool takes the batches; a full
    spool (the service stops acknowledging) or a lost broker is.
    """
    connected = seen.source.connected if seen.source is not None else True
    durable = seen.durable
    spool_full = bool(durable.spool.full) if durable is not None else False
    body: dict[str, object] = {
        "mqtt_connected": connected,
        "store_ok": durable.store_ok if durable is not None else True,
        "spool_full": spool_full,
    }
    ok = connected and not spool_full
    body["status"] = "ok" if ok else "unhealthy"
    return ok, body


class MetricsServer:
    """``/metrics`` (and ``/health`` for container health checks) over HTTP in a daemon thread."""

    def __init__(self, observe: Observe, host: str, port: int) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(PipelineCollector(observe))
        self._server: WSGIServer
        self._thread: threading.Thread
        self._server, self._thread = start_http_server(port, addr=host, registry=self.registry)
        metrics_app = self._server.get_app()

        def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
            if environ.get("PATH_INFO") != "/health":
                assert metrics_app is not None
                return metrics_app(environ, start_response)
            ok, body = health(observe())
            start_response(
                "200 OK" if ok else "503 Service Unavailable", [("Content-Type", "application/json")]
            )
            return [json.dumps(body, sort_keys=True).encode()]

        self._server.set_app(app)
        self.host = host
        self.port = int(self._server.server_address[1])

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/metrics"

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)


def pipeline_event(now_ms: int, seen: Observation, previous: Observation | None, client_id: str) -> Event:
    """One sample of the ``pipeline`` measurement: running totals, gauges and lag since ``previous``.

    Every value is a float field, so no field ever changes type; the one tag is
    the ingest client id (one series per ingest process).
    """
    s = seen.stats
    fields: dict[str, float] = {
        "messages": float(s.messages),
        "received": float(sum(s.received.values())),
        "valid": float(sum(s.stored.values())),
        "rejected": float(sum(s.rejected.values())),
        "deadlettered": float(sum(s.reasons.values())),
        "cycles": float(s.cycles),
    }
    for reason, n in s.reasons.items():
        fields[f"rejected_{reason}"] = float(n)
    for kind, n in s.stored.items():
        fields[f"valid_{kind}"] = float(n)
    count = s.lag_count - (previous.stats.lag_count if previous else 0)
    if count > 0:
        lag_sum = s.lag_sum_s - (previous.stats.lag_sum_s if previous else 0.0)
        fields["lag_mean_s"] = lag_sum / count
        p95 = s.lag_quantile_s(0.95, previous.stats if previous else None)
        if p95 is not None and p95 != float("inf"):
            fields["lag_p95_le_s"] = float(p95)
    writes = s.writes - (previous.stats.writes if previous else 0)
    if writes > 0:
        fields["write_mean_s"] = (s.write_s_sum - (previous.stats.write_s_sum if previous else 0.0)) / writes
    d = seen.durable
    if d is not None:
        fields |= {
            "written": float(d.written),
            "retried": float(d.retries),
            "write_failures": float(d.failures),
            "spooled_batches": float(d.spooled_batches),
            "spooled_points": float(d.spooled_points),
            "replayed_points": float(d.replayed_points),
            "store_rejected": float(d.store_rejected),
            "spool_batches": float(d.spool.records),
            "spool_bytes": float(d.spool.bytes),
            "spool_percent": d.spool.percent,
            "spool_full": float(d.spool.full),
        }
    if seen.source is not None:
        fields |= {
            "mqtt_pending": float(seen.source.pending),
            "mqtt_connected": float(seen.source.connected),
            "mqtt_reconnects": float(seen.source.reconnects),
            "mqtt_sessions_lost": float(seen.source.sessions_lost),
        }
    if seen.alerts is not None:
        fields |= _alert_fields(seen.alerts)
    return Event(PIPELINE_MEASUREMENT, now_ms, tags={"ingest": client_id}, fields=dict(fields))


def _alert_fields(a: AlertsSnapshot) -> dict[str, float]:
    """The alert fields of the ``pipeline`` measurement (all channels together)."""
    channels = a.channels.values()
    return {
        "alerts_open": float(sum(a.open.values())),
        "alerts_fired": float(a.fired),
        "alert_deliveries_ok": float(sum(c.delivered for c in channels)),
        "alert_deliveries_failed": float(sum(c.dead_lettered for c in channels)),
        "alert_deliveries_dropped": float(sum(c.dropped for c in channels)),
        "alert_queue": float(sum(c.queued for c in channels)),
    }
