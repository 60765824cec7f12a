"""The InfluxDB sinks against real servers: influxd 1.x (v1 API) and VictoriaMetrics (v2 API)."""

from __future__ import annotations

import http.server
import json
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from ingest.settings import Settings, load_settings
from ingest.sinks import SINKS, SinkError, open_sink
from ingest.sinks._influx_v1 import V1Transport
from ingest.sinks.influxdb import InfluxSettings, InfluxSink, open_influx
from processors.batch import Event, ReadingBatch, WriteBatch
from processors.kinds import get_kind
from processors.registry import Registry
from tests.servers import Influxd, VictoriaMetrics

NAN = float("nan")


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def batch_of(registry: Registry, kind_name: str, start_ms: int, n: int) -> ReadingBatch:
    kind = get_kind(kind_name)
    table = registry.tables[kind_name]
    rng = np.random.default_rng(n)
    values = rng.uniform(1, 50, (n, len(kind.measures))).round(3)
    values[:, -1] = np.where(np.arange(n) % 3 == 0, NAN, values[:, -1])  # some readings leave a measure out
    values[0, 0] = 21.0  # an integral float must stay a float
    return ReadingBatch(
        kind,
        table,
        np.arange(n, dtype=np.intp) % len(table),
        start_ms + 1000 * (np.arange(n, dtype=np.int64) // len(table)),
        values,
    )


def expected_points(batch: ReadingBatch) -> set[tuple[str, int]]:
    return set(zip(batch.device_ids(), batch.ts_ms.tolist(), strict=True))


def v1_settings(server: Influxd, bucket: str = "city") -> Settings:
    return load_settings(sink="influxdb", influx={"api": "v1", "url": server.url, "bucket": bucket})


def test_the_influxdb_sink_is_a_plugin() -> None:
    assert "influxdb" in SINKS


def test_v1_creates_the_database_and_stores_the_documented_schema(
    influxd: Influxd, small_registry: Registry
) -> None:
    start = now_ms() - 3_600_000
    air = batch_of(small_registry, "air", start, 25)
    water = batch_of(small_registry, "water", start, 12)
    with open_sink(v1_settings(influxd)) as sink:
        report = sink.write(WriteBatch(readings=(air, water)))
        assert report.written == 37
        assert report.rejected == ()
        sink.write(WriteBatch(readings=(air, water)))  # a redelivery rewrites the same points
        assert sink.health().ok
    assert influxd.points("air", "city") == expected_points(air)
    assert influxd.points("water", "city") == expected_points(water)
    assert len(influxd.rows("air", "city")) == 25, "no duplicates after the rewrite"
    tag_keys = influxd.query('SHOW TAG KEYS FROM "air"', "city")[0]["series"][0]["values"]
    assert sorted(v[0] for v in tag_keys) == ["device", "district"]
    field_types = dict(influxd.query('SHOW FIELD KEYS FROM "air"', "city")[0]["series"][0]["values"])
    assert set(field_types) == set(get_kind("air").measure_names)
    assert set(field_types.values()) == {"float"}
    first = {r["device"]: r for r in influxd.rows("air", "city") if r["time"] == start}
    device = air.device_ids()[0]
    assert first[device]["district"] == small_registry.get(device).district  # type: ignore[union-attr]
    assert first[device]["pm25"] == 21.0
    left_out = [r for r in influxd.rows("air", "city") if r["humidity"] is None]
    assert len(left_out) == int(np.isnan(air.values[:, -1]).sum()), "NaN means not reported, never 0"


def test_v1_field_type_conflict_refuses_only_the_conflicting_points(
    influxd: Influxd, small_registry: Registry
) -> None:
    start = now_ms() - 600_000
    with open_sink(v1_settings(influxd)) as sink:
        # Some other writer created 'humidity' as an integer in this shard: the server refuses our floats.
        body = f"air,device=other humidity=5i {start}".encode()
        request = urllib.request.Request(f"{influxd.url}/write?db=city&precision=ms", data=body)
        urllib.request.urlopen(request, timeout=10).read()
        air = batch_of(small_registry, "air", start, 40)
        report = sink.write(WriteBatch(readings=(air,)))
    has_humidity = ~np.isnan(air.values[:, -1])
    refused = {(p.device, p.timestamp) for p in report.rejected}
    assert refused == {
        (d, t) for d, t, bad in zip(air.device_ids(), air.ts_ms.tolist(), has_humidity, strict=True) if bad
    }
    assert all("field type conflict" in p.reason and p.kind == "air" for p in report.rejected)
    assert all(p.line.startswith("air,device=") for p in report.rejected)
    assert report.written == 40 - len(refused)
    stored = influxd.points("air", "city") - {("other", start)}
    assert stored == expected_points(air) - refused, "every good neighbour of a refused point is stored"


NASTY_VALUES = [
    "a,b=c d",
    'say "hi"',
    "back\\slash",
    "trailing\\",
    "new\nline",
    "tab\there",
    "ünï 😀",
    "#x",
    "=",
]


def test_no_string_can_add_a_point_or_a_field_in_a_real_server(influxd: Influxd) -> None:
    ts = now_ms()
    events = tuple(
        Event(
            "deadletters", ts, {"reason": "wrong_type", "kind": v.replace("\\", "")}, {"payload": v, "n": 1}
        )
        for v in NASTY_VALUES
    )
    with open_sink(v1_settings(influxd)) as sink:
        assert sink.write(WriteBatch(events=events)).written == len(NASTY_VALUES)
    rows = influxd.rows("deadletters", "city")
    assert len(rows) == len(NASTY_VALUES), "one point per event, even in the same millisecond"
    assert set(rows[0]) == {"time", "kind", "reason", "payload", "n"}, "no extra field or tag appeared"
    expected = sorted(v.replace("\n", "\\n") for v in NASTY_VALUES)
    assert sorted(r["payload"] for r in rows) == expected
    assert {r["kind"] for r in rows} == {v.replace("\\", "").replace("\n", "\\n") for v in NASTY_VALUES}


def test_gzip_is_used_from_the_threshold_up_and_stores_the_same(
    influxd: Influxd, small_registry: Registry
) -> None:
    air = batch_of(small_registry, "air", now_ms() - 60_000, 200)
    plain = InfluxSink(V1Transport(influxd.url, "plain", ""), gzip_min_bytes=10**9)
    zipped = InfluxSink(V1Transport(influxd.url, "zipped", ""), gzip_min_bytes=1024)
    for sink in (plain, zipped):
        sink.prepare()
        sink.write(WriteBatch(readings=(air,)))
        sink.close()
    assert zipped.bytes_sent < plain.bytes_sent / 2
    assert influxd.points("air", "plain") == influxd.points("air", "zipped") == expected_points(air)


def test_gzip_by_default_only_for_a_server_on_another_machine(influxd: Influxd) -> None:
    local = open_influx(InfluxSettings(api="v1", url=influxd.url, bucket="auto"))
    forced = open_influx(InfluxSettings(api="v1", url=influxd.url, bucket="auto", gzip="on"))
    try:
        assert local.gzip_min_bytes is None, "loopback: nothing to gain from compressing"
        assert forced.gzip_min_bytes == 1024
    finally:
        local.close()
        forced.close()


def test_requests_hold_at_most_batch_points_lines(influxd: Influxd, small_registry: Registry) -> None:
    air = batch_of(small_registry, "air", now_ms() - 60_000, 95)
    sink = InfluxSink(V1Transport(influxd.url, "chunks", ""), batch_points=10)
    sink.prepare()
    sink.write(WriteBatch(readings=(air,)))
    sink.close()
    assert sink.requests == 10
    assert influxd.points("air", "chunks") == expected_points(air)


def test_v1_a_missing_retention_policy_is_a_configuration_error_with_advice(
    influxd: Influxd, small_registry: Registry
) -> None:
    with (
        open_sink(v1_settings(influxd, bucket="city/nope")) as sink,
        pytest.raises(SinkError, match="CREATE RETENTION POLICY") as refused,
    ):
        sink.write(WriteBatch(readings=(batch_of(small_registry, "air", now_ms(), 3),)))
    assert not refused.value.retryable


def test_v1_a_server_that_does_not_answer_is_worth_retrying(tmp_path: Path, small_registry: Registry) -> None:
    from ingest.broker import free_port

    settings = InfluxSettings(api="v1", url=f"http://127.0.0.1:{free_port()}", timeout_s=2)
    with open_influx(settings) as sink:  # down at start-up is not an error: the spool covers it
        with pytest.raises(SinkError, match="did not answer") as failed:
            sink.write(WriteBatch(readings=(batch_of(small_registry, "air", now_ms(), 3),)))
        assert failed.value.retryable
        assert not sink.health().ok


def test_v1_credentials_must_be_user_and_password() -> None:
    with pytest.raises(ValueError, match="user:password"):
        V1Transport("http://127.0.0.1:1", "city", "just-a-token")
    assert V1Transport("http://127.0.0.1:1", "city/rp", "ops:s3cret").describe() == (
        "influxdb v1 http://127.0.0.1:1 db=city/rp as ops"
    )


def test_v2_writes_through_influxdb_client_to_a_real_server(
    victoria_metrics: VictoriaMetrics, small_registry: Registry
) -> None:
    air = batch_of(small_registry, "air", now_ms() - 120_000, 30)
    settings = load_settings(
        sink="influxdb", influx={"api": "v2", "url": victoria_metrics.url, "gzip": "on", "gzip_min_bytes": 0}
    )
    with open_sink(settings) as sink:
        assert sink.describe() == f"influxdb v2 {victoria_metrics.url} org=citypulse bucket=citypulse"
        assert sink.write(WriteBatch(readings=(air,))).written == 30
        assert sink.health().ok
    samples = victoria_metrics.export("air_pm25")
    stored = {(s["metric"]["device"], t) for s in samples for t in s["timestamps"]}
    assert stored == expected_points(air)
    pm25 = {
        (s["metric"]["device"], t): v
        for s in samples
        for t, v in zip(s["timestamps"], s["values"], strict=True)
    }
    for device, ts, value in zip(
        air.device_ids(), air.ts_ms.tolist(), air.values[:, 0].tolist(), strict=True
    ):
        assert pm25[(device, ts)] == value


@pytest.fixture
def influx2_without_the_bucket() -> Iterator[str]:
    """Answers the InfluxDB 2.x buckets API as a server without our bucket does."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = json.dumps({"buckets": [{"name": "_monitoring"}]}).encode()
            self.send_response(200 if self.path.startswith("/api/v2/buckets") else 404)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_v2_a_missing_bucket_is_reported_at_start(influx2_without_the_bucket: str) -> None:
    settings = load_settings(sink="influxdb", influx={"url": influx2_without_the_bucket, "bucket": "city"})
    with pytest.raises(
        SinkError, match=r"bucket \"city\" not found.*influx bucket create --name city"
    ) as refused:
        open_sink(settings)
    assert not refused.value.retryable


def test_citypulse_ingest_stops_at_start_up_with_advice_when_the_bucket_is_missing(
    tmp_path: Path, influx2_without_the_bucket: str, small_registry: Registry
) -> None:
    from ingest.registry_file import save_registry
    from tests.e2e.helpers import run_citypulse

    save_registry(small_registry, tmp_path / "devices.csv")
    done = run_citypulse(
        "ingest",
        env={
            "CITYPULSE_REGISTRY": str(tmp_path / "devices.csv"),
            "CITYPULSE_SINK": "influxdb",
            "CITYPULSE_INFLUX_URL": influx2_without_the_bucket,
            "CITYPULSE_INFLUX_BUCKET": "city",
            "CITYPULSE_METRICS_PORT": "0",
        },
        timeout=60,
    )
    assert done.returncode == 2
    assert 'bucket "city" not found in organization "citypulse"' in done.stderr
    assert "influx bucket create --name city --org citypulse" in done.stderr


def test_an_event_line_protocol_cannot_carry_is_refused_not_raised(influxd: Influxd) -> None:
    events = (Event("#comment", 5, {}, {"x": 1.0}), Event("pipeline", 5, {"ingest": "a"}, {"x": 2.0}))
    with open_sink(v1_settings(influxd)) as sink:
        report = sink.write(WriteBatch(events=events))
    assert report.written == 1
    assert [(p.measurement, p.kind) for p in report.rejected] == [("#comment", None)]
    assert "starts with '#'" in report.rejected[0].reason
    assert [r["x"] for r in influxd.rows("pipeline", "city")] == [2.0]


@pytest.mark.parametrize(
    ("visible", "missing"),
    [([], False), (["citypulse"], False), (["_monitoring"], True)],
    ids=["write-only token sees nothing", "sees ours", "sees others only"],
)
def test_v2_bucket_check_respects_what_the_token_may_see(visible: list[str], missing: bool) -> None:
    """The stack's ingest token may only write: a bucket list it cannot see proves nothing is missing."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            named = "name=" in self.path
            listed = [b for b in visible if not named or f"name={b}" in self.path]
            body = json.dumps({"buckets": [{"name": b} for b in listed]}).encode()
            self.send_response(200 if self.path.startswith("/api/v2/buckets") else 404)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        settings = load_settings(sink="influxdb", influx={"url": url, "bucket": "citypulse"})
        if missing:
            with pytest.raises(SinkError, match='bucket "citypulse" not found'):
                open_sink(settings)
        else:
            open_sink(settings).close()
    finally:
        server.shutdown()
        server.server_close()
