"""Alert counts on /metrics and in the pipeline measurement, with the names docs/alerts.md gives."""

from __future__ import annotations

import re

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from ingest.alerts.dispatch import ChannelSnapshot
from ingest.alerts.service import AlertsSnapshot
from ingest.metrics import Observation, PipelineCollector, pipeline_event
from ingest.stats import PipelineStats
from tests.alerts.docs import PAGE

SNAPSHOT = AlertsSnapshot(
    events={("critical", "water", "firing"): 2, ("critical", "water", "resolved"): 1},
    fired=2,
    open={"critical": 1},
    channels={
        "webhook": ChannelSnapshot(delivered=3, retried=4, dead_lettered=1, dropped=0, overflow=7, queued=5),
        "mqtt": ChannelSnapshot(delivered=3, retried=0, dead_lettered=0, dropped=2, overflow=0, queued=0),
    },
)


def test_alert_metrics_are_served_under_the_documented_names() -> None:
    registry = CollectorRegistry(auto_describe=False)
    seen = Observation(PipelineStats().snapshot(), None, None, SNAPSHOT)
    registry.register(PipelineCollector(lambda: seen))
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(generate_latest(registry).decode())
        for s in family.samples
    }
    assert (
        samples[
            ("citypulse_alerts_total", (("kind", "water"), ("severity", "critical"), ("state", "firing")))
        ]
        == 2
    )
    assert samples[("citypulse_alerts_fired_total", ())] == 2
    assert samples[("citypulse_alerts_open", (("severity", "critical"),))] == 1
    assert (
        samples[("citypulse_alert_deliveries_total", (("channel", "webhook"), ("outcome", "dead_lettered")))]
        == 1
    )
    assert samples[("citypulse_alert_deliveries_total", (("channel", "mqtt"), ("outcome", "dropped")))] == 2
    assert samples[("citypulse_alert_queue_depth", (("channel", "webhook"),))] == 5
    assert samples[("citypulse_alert_queue_overflow_total", (("channel", "webhook"),))] == 7
    documented = set(
        re.findall(r"^\| `(citypulse_alert[a-z_]*)` \|", PAGE.read_text(encoding="utf-8"), flags=re.M)
    )
    assert documented == {name for name, _ in samples if name.startswith("citypulse_alert")}


def test_the_pipeline_measurement_carries_the_alert_fields() -> None:
    seen = Observation(PipelineStats().snapshot(), None, None, SNAPSHOT)
    fields = pipeline_event(0, seen, None, "ingest-1").fields
    assert {k: v for k, v in fields.items() if "alert" in k} == {
        "alerts_open": 1.0,
        "alerts_fired": 2.0,
        "alert_deliveries_ok": 6.0,
        "alert_deliveries_failed": 1.0,
        "alert_deliveries_dropped": 2.0,
        "alert_queue": 5.0,
    }
