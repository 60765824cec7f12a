"""Self-metrics: Prometheus text that parses, counters that match the pipeline, a storable sample."""

from __future__ import annotations

import math
import urllib.request
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from ingest.durable import DurabilitySnapshot
from ingest.metrics import MetricsServer, Observation, SourceState, pipeline_event
from ingest.sinks.base import RejectedPoint
from ingest.spool import SpoolState
from ingest.stats import LAG_BUCKETS_S, STORE_REJECTED, PipelineStats
from processors.batch import ReadingBatch
from processors.kinds import get_kind
from processors.lineprotocol import encode_point
from processors.reasons import Reason
from processors.registry import Registry
from processors.validate import Reject, ValidationResult
from tests.processors.lineprotocol_parser import parse_line

NOW = 1_795_400_000_000


def observed(small_registry: Registry) -> Observation:
    kind = get_kind("air")
    lags_s = [0.05, 0.3, 0.3, 2.0, 7200.0, 200_000.0]
    n = len(lags_s)
    batch = ReadingBatch(
        kind,
        small_registry.tables["air"],
        np.arange(n, dtype=np.intp),
        np.array([NOW - int(s * 1000) for s in lags_s], dtype=np.int64),
        np.ones((n, len(kind.measures))),
    )
    result = ValidationResult(
        batches={"air": batch},
        rejects=[Reject(Reason.WRONG_TYPE, "pm25 is a string", "t", b"{}", "air", "air-1")] * 2,
        received=Counter({"air": n + 2}),
    )
    stats = PipelineStats(clock_ms=lambda: NOW)
    stats.record_cycle(5, result)
    stats.record_store_rejects([RejectedPoint("air", NOW, "type conflict", "air,...", "air-2", "air")])
    stats.record_anomalies({("air", "spike"): 2, ("air", "stuck"): 1, ("water", "drinking_water"): 4})
    stats.record_anomalies({("air", "spike"): 1})
    durable = DurabilitySnapshot(
        written=41,
        retries=3,
        failures=4,
        spooled_batches=2,
        spooled_points=20,
        replayed_batches=1,
        replayed_points=10,
        store_rejected=1,
        set_aside=0,
        spool=SpoolState(records=1, bytes=512, max_bytes=4096, full=False),
        store_ok=True,
    )
    return Observation(stats.snapshot(), durable, SourceState(pending=7, connected=True, reconnects=1))


def samples(text: str) -> dict[str, list[Sample]]:
    found: dict[str, list[Sample]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found.setdefault(sample.name, []).append(sample)
    return found


def value(found: dict[str, list[Sample]], name: str, **labels: str) -> float:
    matching = [s.value for s in found[name] if all(s.labels.get(k) == v for k, v in labels.items())]
    assert len(matching) == 1, (name, labels, found.get(name))
    return matching[0]


def test_the_endpoint_serves_every_counter_in_prometheus_text(small_registry: Registry) -> None:
    seen = observed(small_registry)
    server = MetricsServer(lambda: seen, "127.0.0.1", 0)
    try:
        with urllib.request.urlopen(server.url, timeout=10) as reply:
            assert reply.status == 200
            text = reply.read().decode()
    finally:
        server.stop()
    found = samples(text)
    assert value(found, "citypulse_messages_total") == 5
    assert value(found, "citypulse_readings_received_total", kind="air") == 8
    assert value(found, "citypulse_readings_valid_total", kind="air") == 5, "6 valid, 1 refused by the store"
    assert value(found, "citypulse_readings_rejected_total", kind="air") == 3
    assert value(found, "citypulse_rejected_total", reason="wrong_type") == 2
    assert value(found, "citypulse_rejected_total", reason=STORE_REJECTED) == 1
    assert value(found, "citypulse_deadlettered_total") == 3
    assert value(found, "citypulse_anomalies_total", kind="air", detector="spike") == 3
    assert value(found, "citypulse_anomalies_total", kind="air", detector="stuck") == 1
    assert value(found, "citypulse_anomalies_total", kind="water", detector="drinking_water") == 4
    assert len(found["citypulse_anomalies_total"]) == 3, "only (kind, detector) pairs that fired"
    assert value(found, "citypulse_points_written_total") == 41
    assert value(found, "citypulse_write_retries_total") == 3
    assert value(found, "citypulse_spooled_points_total") == 20
    assert value(found, "citypulse_spool_batches") == 1
    assert value(found, "citypulse_spool_bytes") == 512
    assert value(found, "citypulse_spool_limit_bytes") == 4096
    assert value(found, "citypulse_spool_full") == 0
    assert value(found, "citypulse_mqtt_pending_messages") == 7
    assert value(found, "citypulse_end_to_end_lag_seconds_count") == 6
    assert math.isclose(value(found, "citypulse_end_to_end_lag_seconds_sum"), 207_202.65)
    buckets = {s.labels["le"]: s.value for s in found["citypulse_end_to_end_lag_seconds_bucket"]}
    assert buckets["0.1"] == 1
    assert buckets["0.5"] == 3
    assert buckets["2.5"] == 4
    assert buckets["21600.0"] == 5
    assert buckets["+Inf"] == 6
    assert len(buckets) == len(LAG_BUCKETS_S) + 1


def test_a_taken_port_is_reported_not_fatal(small_registry: Registry, tmp_path: Path) -> None:
    seen = observed(small_registry)
    first = MetricsServer(lambda: seen, "127.0.0.1", 0)
    try:
        try:
            MetricsServer(lambda: seen, "127.0.0.1", first.port).stop()
            raised = False
        except OSError:
            raised = True
        assert raised, "binding a taken port fails with OSError, which the service logs and survives"
    finally:
        first.stop()


def test_the_pipeline_sample_is_one_storable_point_of_floats(small_registry: Registry) -> None:
    seen = observed(small_registry)
    event = pipeline_event(NOW, seen, None, "citypulse-ingest")
    assert event.measurement == "pipeline"
    assert event.tags == {"ingest": "citypulse-ingest"}
    assert all(isinstance(v, float) for v in event.fields.values()), "a field never changes type"
    assert event.fields["valid"] == 5.0
    assert event.fields["written"] == 41.0
    assert event.fields["spool_batches"] == 1.0
    assert event.fields[f"rejected_{STORE_REJECTED}"] == 1.0
    assert seen.stats.lag_quantile_s(0.5) == 0.5
    assert seen.stats.lag_quantile_s(0.95) == math.inf
    assert "lag_p95_le_s" not in event.fields, "a quantile beyond the last bound is not a number to store"
    assert math.isclose(float(event.fields["lag_mean_s"]), 207_202.65 / 6)
    parsed = parse_line(encode_point(event.measurement, event.tags, event.fields, event.ts_ms * 1_000_000))
    assert parsed.measurement == "pipeline"
    assert len(parsed.fields) == len(event.fields)
    # The next sample reports lag only for readings since the previous one.
    assert "lag_mean_s" not in pipeline_event(NOW, seen, seen, "citypulse-ingest").fields


def test_health_endpoint_answers_what_a_container_check_needs(small_registry: Registry) -> None:
    import dataclasses
    import json
    import urllib.error

    seen = observed(small_registry)
    state = {"seen": seen}
    server = MetricsServer(lambda: state["seen"], "127.0.0.1", 0)
    health_url = server.url.replace("/metrics", "/health")
    try:
        with urllib.request.urlopen(health_url, timeout=10) as reply:
            assert reply.status == 200
            assert json.loads(reply.read()) == {
                "mqtt_connected": True,
                "spool_full": False,
                "status": "ok",
                "store_ok": True,
            }
        assert seen.source is not None
        state["seen"] = dataclasses.replace(seen, source=dataclasses.replace(seen.source, connected=False))
        with pytest.raises(urllib.error.HTTPError) as unhealthy:
            urllib.request.urlopen(health_url, timeout=10)
        assert unhealthy.value.code == 503, "a service without its broker must not look healthy"
        assert json.loads(unhealthy.value.read())["status"] == "unhealthy"
        with urllib.request.urlopen(server.url, timeout=10) as reply:
            assert "citypulse_messages_total" in reply.read().decode(), "/metrics still served"
    finally:
        server.stop()


def test_metrics_and_health_listen_on_loopback_unless_configured_otherwise(small_registry: Registry) -> None:
    from ingest.settings import Settings

    host = Settings().metrics_host
    server = MetricsServer(lambda: None, host, 0)  # type: ignore[arg-type,return-value]
    try:
        assert server._server.server_address[0] == "127.0.0.1"
    finally:
        server.stop()
