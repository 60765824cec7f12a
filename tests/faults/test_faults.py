"""At-least-once from the broker to InfluxDB, through every fault, with real servers.

Each test publishes a known set of readings at QoS 1 to a real Mosquitto, runs
the real ``citypulse ingest`` against a real influxd 1.x, injects one fault
mid-stream, and asserts that the distinct (device, timestamp) points in InfluxDB
equal the published set exactly: nothing lost, nothing extra, no duplicates.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from processors.kinds import KINDS
from tests.e2e.helpers import wait_until, watching
from tests.faults.helpers import (
    Fleet,
    Ingest,
    Publisher,
    held_to_the_published_set,
    stored,
    total,
    wait_for_exactly,
)
from tests.faults.proxy import Scripted, fault_proxy
from tests.servers import Influxd, Mosquitto, running_mosquitto

pytestmark = pytest.mark.slow


@pytest.fixture
def fleet(tmp_path: Path) -> Fleet:
    return Fleet.make(devices=25, per_device=40)


@pytest.fixture
def persistent_mosquitto(tmp_path: Path) -> Iterator[Mosquitto]:
    with running_mosquitto(tmp_path / "mosquitto", persistence=True) as broker:
        yield broker


def points_so_far(influxd: Influxd) -> int:
    return total(stored(influxd, list(KINDS)))


def test_sigkill_mid_stream_then_restart_loses_nothing(
    tmp_path: Path, mosquitto: Mosquitto, influxd: Influxd, fleet: Fleet
) -> None:
    ingest = Ingest(tmp_path, mosquitto.url, influxd.url, fleet.save(tmp_path / "devices.csv")).start()
    half = len(fleet.messages) // 2
    publisher = Publisher(mosquitto.url, fleet.messages, rate_per_s=250, hold_at=half).start()
    with held_to_the_published_set(ingest, publisher, influxd, fleet.expected()):
        wait_until(lambda: points_so_far(influxd) >= 150, 60, "the first readings in InfluxDB")
        ingest.kill()  # SIGKILL: no drain, no flush, no goodbye
        assert publisher.published <= half < len(fleet.messages), "the kill must land mid-stream"
        publisher.resume()
        ingest.start()
        publisher.wait()
        wait_for_exactly(influxd, fleet.expected(), 90, ingest)


def test_influxd_down_for_30_s_mid_stream_spools_and_replays_even_across_a_sigkill(
    tmp_path: Path, mosquitto: Mosquitto, influxd: Influxd, fleet: Fleet
) -> None:
    ingest = Ingest(tmp_path, mosquitto.url, influxd.url, fleet.save(tmp_path / "devices.csv")).start()
    publisher = Publisher(mosquitto.url, fleet.messages, rate_per_s=100).start()
    with held_to_the_published_set(ingest, publisher, influxd, fleet.expected()):
        wait_until(lambda: points_so_far(influxd) >= 100, 60, "the first readings in InfluxDB")
        influxd.stop()
        down_at = time.monotonic()
        wait_until(
            lambda: (ingest.metric("citypulse_spooled_batches_total") or 0) >= 2, 30, "batches spooled"
        )
        # While the database is down, what was spooled is on disk only: kill the process to prove it is safe.
        ingest.kill()
        ingest.start()
        publisher.wait()
        wait_until(
            lambda: (ingest.metric("citypulse_spool_batches") or 0) > 0, 30, "the spool to hold batches"
        )
        assert ingest.metric("citypulse_store_up") == 0
        assert "spool" in ingest.log()
        time.sleep(max(0.0, 30 - (time.monotonic() - down_at)))
        assert time.monotonic() - down_at >= 30
        influxd.start()
        wait_for_exactly(influxd, fleet.expected(), 120, ingest)
        wait_until(lambda: ingest.metric("citypulse_spool_batches") == 0, 30, "the spool to drain")
        assert (ingest.metric("citypulse_replayed_points_total") or 0) > 0
        assert ingest.metric("citypulse_store_up") == 1
    assert not list((tmp_path / "spool").glob("*.seg")), "nothing left behind in the spool"


def test_mosquitto_restart_mid_stream_with_persistence_loses_nothing(
    tmp_path: Path, persistent_mosquitto: Mosquitto, influxd: Influxd, fleet: Fleet
) -> None:
    broker = persistent_mosquitto
    ingest = Ingest(tmp_path, broker.url, influxd.url, fleet.save(tmp_path / "devices.csv")).start()
    half = len(fleet.messages) // 2
    publisher = Publisher(broker.url, fleet.messages, rate_per_s=200, hold_at=half).start()
    with held_to_the_published_set(ingest, publisher, influxd, fleet.expected()):
        wait_until(lambda: points_so_far(influxd) >= 150, 60, "the first readings in InfluxDB")
        broker.stop()
        assert publisher.published <= half < len(fleet.messages), "the restart must land mid-stream"
        publisher.resume()  # some messages are published while the broker is away, and sent after
        time.sleep(0.5)
        broker.start()
        publisher.wait()
        wait_for_exactly(influxd, fleet.expected(), 90, ingest)
        assert (ingest.metric("citypulse_mqtt_reconnects_total") or 0) >= 1
        assert ingest.metric("citypulse_mqtt_sessions_lost_total") == 0, "the broker kept our session"


@pytest.mark.parametrize("api", ["v1", "v2"])
def test_503_then_429_with_retry_after_then_422_for_some_points(
    tmp_path: Path, mosquitto: Mosquitto, influxd: Influxd, fleet: Fleet, api: str
) -> None:
    poisoned = {(m.device, m.ts_ms) for m in fleet.messages[300:900:120]}
    influxd.create_database()  # v2 never creates its bucket; v1 would, but let both start alike
    script = [
        Scripted(503),
        Scripted(503),
        Scripted(429, {"Retry-After": "2"}),
        Scripted(429, {"Retry-After": "2"}),
    ]
    with (
        fault_proxy(influxd.url, script, {ts for _, ts in poisoned}) as proxy,
        watching(mosquitto.url, ["citypulse/v1/deadletter/#"]) as watcher,
    ):
        ingest = Ingest(
            tmp_path,
            mosquitto.url,
            proxy.url,
            fleet.save(tmp_path / "devices.csv"),
            # Retry long enough that 503 and 429 are retried in place, not spooled.
            extra={"CITYPULSE_INFLUX_API": api, "CITYPULSE_RETRY_SPOOL_AFTER_S": "30"},
        ).start()
        publisher = Publisher(mosquitto.url, fleet.messages, rate_per_s=300).start()
        try:
            publisher.wait()
            wait_for_exactly(influxd, fleet.expected(exclude=poisoned), 90, ingest)
            wait_until(
                lambda: len(watcher.payloads("citypulse/v1/deadletter/store_rejected")) == len(poisoned),
                30,
                "a dead letter on MQTT for every refused point",
            )
            wait_until(
                lambda: len(influxd.rows("deadletters")) == len(poisoned), 30, "the dead letters in InfluxDB"
            )
            found = ingest.metrics() or {}
        finally:
            publisher.close()
            code = ingest.terminate()
    assert code == 0, ingest.log()
    assert stored(influxd, list(KINDS)) == fleet.expected(exclude=poisoned)
    letters = influxd.rows("deadletters")
    assert {(r["device"], r["reason"]) for r in letters} == {(d, "store_rejected") for d, _ in poisoned}
    assert all("field type conflict" in r["detail"] for r in letters), "the server's own reason is kept"
    published = [json.loads(p) for p in watcher.payloads("citypulse/v1/deadletter/store_rejected")]
    assert {(p["device"], p["reason"]) for p in published} == {(d, "store_rejected") for d, _ in poisoned}
    writes = proxy.writes()
    assert [w.status for w in writes[:4]] == [503, 503, 429, 429]
    assert writes[3].at - writes[2].at >= 2.0, "Retry-After: 2 was honoured"
    assert writes[4].at - writes[3].at >= 2.0, "Retry-After: 2 was honoured"
    assert sum(w.status == 422 for w in writes) >= len(poisoned)
    assert found["citypulse_write_retries_total"] >= 4
    assert found["citypulse_store_rejected_points_total"] == len(poisoned)
    assert found["citypulse_rejected_total{reason=store_rejected}"] == len(poisoned)
    assert found["citypulse_spooled_batches_total"] == 0, "retried in place, never spooled"


def test_sigterm_mid_stream_drains_exits_0_and_the_restart_finishes_the_job(
    tmp_path: Path, mosquitto: Mosquitto, influxd: Influxd, fleet: Fleet
) -> None:
    ingest = Ingest(tmp_path, mosquitto.url, influxd.url, fleet.save(tmp_path / "devices.csv")).start()
    half = len(fleet.messages) // 2
    publisher = Publisher(mosquitto.url, fleet.messages, rate_per_s=250, hold_at=half).start()
    with held_to_the_published_set(ingest, publisher, influxd, fleet.expected()):
        wait_until(lambda: points_so_far(influxd) >= 150, 60, "the first readings in InfluxDB")
        assert publisher.published <= half < len(fleet.messages) - 250, "SIGTERM must land mid-stream"
        publisher.resume(rate_per_s=50)  # the stream goes on, for ten seconds, while the service drains
        code = ingest.terminate(timeout_s=60)
        assert code == 0, ingest.log()
        assert publisher.published < len(fleet.messages), "the drain finished while the stream went on"
        log = ingest.log()
        assert "SIGTERM received: draining and flushing" in log
        assert "citypulse ingest stopped" in log
        samples = influxd.rows("pipeline")
        assert samples, "the pipeline-health samples are in InfluxDB"
        assert max(r["valid"] for r in samples) >= 150
        assert {r["ingest"] for r in samples} == {"citypulse-ingest"}
        ingest.start()
        publisher.wait()
        wait_for_exactly(influxd, fleet.expected(), 90, ingest)


def test_a_full_spool_stops_intake_and_the_broker_keeps_the_rest(
    tmp_path: Path, mosquitto: Mosquitto, influxd: Influxd
) -> None:
    fleet = Fleet.make(devices=25, per_device=60)
    influxd.stop()  # the database is down from the start
    ingest = Ingest(
        tmp_path,
        mosquitto.url,
        influxd.url,
        fleet.save(tmp_path / "devices.csv"),
        extra={
            "CITYPULSE_SPOOL_MAX_BYTES": str(48 * 1024),
            "CITYPULSE_MQTT_RECEIVE_MAXIMUM": "40",
            "CITYPULSE_BATCH_MAX_MESSAGES": "20",
        },
    ).start()
    publisher = Publisher(mosquitto.url, fleet.messages, rate_per_s=2000).start()
    with held_to_the_published_set(ingest, publisher, influxd, fleet.expected()):
        publisher.wait()  # the broker accepted every message
        wait_until(lambda: ingest.metric("citypulse_spool_full") == 1, 60, "the spool to fill up")
        taken = ingest.metric("citypulse_messages_total") or 0
        time.sleep(3)
        found = ingest.metrics() or {}
        assert found["citypulse_messages_total"] == taken, "no new message is taken while the spool is full"
        assert found["citypulse_spool_bytes"] <= 48 * 1024, "the spool stays within its bound"
        assert found["citypulse_mqtt_pending_messages"] <= 40, "receive maximum bounds what is in memory"
        held_by_us = taken + found["citypulse_mqtt_pending_messages"]
        assert held_by_us < len(fleet.messages), "the rest is still at the broker, unacknowledged"
        assert "spool FULL" in ingest.log()
        influxd.start()
        wait_for_exactly(influxd, fleet.expected(), 120, ingest)
        wait_until(lambda: ingest.metric("citypulse_messages_total") == len(fleet.messages), 30, "all taken")
