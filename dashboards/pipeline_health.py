"""Pipeline health: is citypulse itself keeping up, and is anything being lost?

Read from the ``pipeline`` measurement each ingest process writes every
``CITYPULSE_METRICS_INTERVAL_S`` (counters since start, so rates are
``non_negative_derivative``), and from the dead letters themselves.
"""

from __future__ import annotations

from grafana_foundation_sdk.builders.dashboard import Dashboard, Row

from dashboards import panels
from dashboards.influxql import InfluxQL, annotation
from dashboards.queries import alert_annotation_query
from processors.reasons import Reason

UID = "citypulse-pipeline"
REJECT_REASONS = (*(str(r) for r in Reason), "store_rejected")
"""Every ``rejected_<reason>`` field ingest can write: validation codes, and readings the store refused."""
PER_INGEST = (
    'FROM "pipeline" WHERE $timeFilter AND "ingest" =~ /^$ingest$/ '
    'GROUP BY time($__interval), "ingest" fill(none)'
)


def _rate(*fields: tuple[str, str]) -> InfluxQL:
    columns = ", ".join(f'non_negative_derivative(max("{f}"), 1s) AS "{name}"' for f, name in fields)
    return InfluxQL(f"SELECT {columns} {PER_INGEST}").alias("$tag_ingest $col")


def _gauge(*fields: tuple[str, str], function: str = "max") -> InfluxQL:
    columns = ", ".join(f'{function}("{f}") AS "{name}"' for f, name in fields)
    return InfluxQL(f"SELECT {columns} {PER_INGEST}").alias("$tag_ingest $col")


def build() -> Dashboard:
    rejects = _rate(*((f"rejected_{reason}", reason) for reason in REJECT_REASONS))
    return (
        Dashboard("citypulse · Pipeline health")
        .uid(UID)
        .description(
            "Ingest rate, rejects, write latency, spool, end-to-end lag, dead letters, alert delivery."
        )
        .tags(["citypulse"])
        .refresh("30s")
        .time("now-3h", "now")
        .timezone("browser")
        .link(panels.dashboard_links())
        .with_variable(
            panels.query_variable(
                "ingest", "Ingest process", 'SHOW TAG VALUES FROM "pipeline" WITH KEY = "ingest"'
            )
        )
        .annotation(
            annotation(
                "Alerts fired", alert_annotation_query(), text="message", tags="severity", colour=panels.RED
            )
        )
        .with_row(Row("Flow"))
        .with_panel(
            panels.timeseries_panel(
                "Ingest rate",
                "MQTT messages taken, readings received and readings stored per second, per ingest process.",
                [_rate(("messages", "messages"), ("received", "received"), ("valid", "stored"))],
                unit="reqps",
                width=8,
            )
        )
        .with_panel(
            panels.timeseries_panel(
                "Rejects by reason",
                "Rejected readings and messages per second, by reason code (every one is dead-lettered).",
                [rejects],
                unit="reqps",
                stacked=True,
                width=8,
            )
        )
        .with_panel(
            panels.timeseries_panel(
                "Dead letters by reason",
                "Dead letters stored in the interval, by reason.",
                [
                    InfluxQL(
                        'SELECT count("topic") FROM "deadletters" WHERE $timeFilter '
                        'GROUP BY time($__interval), "reason" fill(none)'
                    ).alias("$tag_reason")
                ],
                bars=True,
                width=8,
            )
        )
        .with_row(Row("Store"))
        .with_panel(
            panels.timeseries_panel(
                "Write latency",
                "Mean time a pipeline cycle's write took (to the store, or to the spool while it is down).",
                [_gauge(("write_mean_s", "write"), function="mean")],
                unit="s",
                width=8,
            )
        )
        .with_panel(
            panels.timeseries_panel(
                "Spool depth",
                "Batches waiting on disk for the store; above zero means the store is or was down.",
                [_gauge(("spool_batches", "batches"), ("spool_percent", "percent full"))],
                width=8,
            )
        )
        .with_panel(
            panels.timeseries_panel(
                "End-to-end lag",
                "From a reading's device timestamp to durable storage: mean, and the bucket holding the 95th "
                "percentile.",
                [_gauge(("lag_mean_s", "mean"), ("lag_p95_le_s", "p95 ≤"), function="mean")],
                unit="s",
                width=8,
            )
        )
        .with_row(Row("Alerts and broker"))
        .with_panel(
            panels.timeseries_panel(
                "Alert deliveries",
                "Alert notifications delivered, failed and dropped per second (all channels).",
                [
                    _rate(
                        ("alert_deliveries_ok", "delivered"),
                        ("alert_deliveries_failed", "failed"),
                        ("alert_deliveries_dropped", "dropped"),
                    )
                ],
                unit="reqps",
                width=8,
            )
        )
        .with_panel(
            panels.timeseries_panel(
                "Open alerts and delivery queue",
                "Alerts open now, and alert events waiting for delivery.",
                [_gauge(("alerts_open", "open"), ("alert_queue", "queued"))],
                width=8,
            )
        )
        .with_panel(
            panels.timeseries_panel(
                "Broker connection",
                "Messages received and waiting for a cycle; 1 while connected to the broker.",
                [_gauge(("mqtt_pending", "pending"), ("mqtt_connected", "connected"))],
                width=8,
            )
        )
    )
