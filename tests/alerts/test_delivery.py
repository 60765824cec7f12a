"""What subscribers receive from the running service: a real Mosquitto in, a real webhook receiver out.

Readings are written by hand (bin temperatures, a threshold rule), with device
timestamps in the recent past: the alert clock is the data's, so an hour of
bins takes a second to publish.
"""

from __future__ import annotations

import time
from datetime import date
from pathlib import Path

import pytest

from ingest.alerts.store import AlertStore
from processors.alerts import Silence
from processors.registry import Device, Registry
from tests.alerts.helpers import ingest_settings, publish, reading, rules_file, running_ingest
from tests.e2e.helpers import wait_until
from tests.servers import Mosquitto, WebhookReceiver

MIN = 60_000
HOT_BIN = """
replace_defaults = true

[[rules]]
name = "hot_bin"
field = "temperature"
kinds = ["waste"]
above = 60.0
severity = "warning"
for = "5m"
clear_for = "10m"
escalate_after = "30m"
message = "bin {device} at {value} {unit}"
message_vi = "thùng rác {device} {value} {unit}"
"""
SECRET = "receiver-secret"


def bins() -> Registry:
    return Registry(
        Device(f"waste-{n:06d}", "waste", district, 21.02 + n / 1000, 105.83, date(2025, 1, 1), 60.0)
        for n, district in ((1, "Đống Đa"), (2, "Tây Hồ"), (3, "Đống Đa"))
    )


def hook(receiver: WebhookReceiver, **extra: object) -> dict[str, object]:
    return {"name": "ops", "url": receiver.url, "secret": SECRET, **extra}


def settings_for(tmp_path: Path, mosquitto: Mosquitto, receiver: WebhookReceiver, **alerts: object) -> object:
    return ingest_settings(
        tmp_path,
        mosquitto.url,
        detectors="none",
        alerts={
            "rules": rules_file(tmp_path, HOT_BIN),
            "mqtt": False,
            "webhooks": [hook(receiver)],
            "group_wait_s": 0.2,
            "group_interval_s": 0.0,
            "retry_first_s": 0.1,
            **alerts,
        },
    )


def test_a_flapping_bin_is_one_alert_and_a_silenced_district_pages_nobody(
    tmp_path: Path, mosquitto: Mosquitto, webhook_receiver: WebhookReceiver
) -> None:
    settings = settings_for(tmp_path, mosquitto, webhook_receiver)
    start = int(time.time() * 1000) - 3 * 60 * MIN
    store = AlertStore(tmp_path / "alerts.sqlite")
    now = int(time.time() * 1000)
    store.add_silence(
        Silence("", now, now + 3_600_000, district="Tây Hồ", created_by="lan", comment="road works")
    )
    store.close()
    # waste-1 flaps: hot for 2 minutes, cool for 2, for an hour. waste-2 (Tây Hồ) is hot for an hour.
    messages = []
    for minute in range(60):
        messages.append(
            reading(
                "waste", "waste-000001", start + minute * MIN, temperature=70.0 if minute % 4 < 2 else 20.0
            )
        )
        messages.append(reading("waste", "waste-000002", start + minute * MIN, temperature=75.0))
    with running_ingest(settings, bins()) as ingest:  # type: ignore[arg-type]
        publish(mosquitto.url, messages)
        wait_until(lambda: ingest.processed() == len(messages), 30, "the readings")
        ingest.delivered("webhook")
        events = ingest.events()
    flapping = [e for e in events if e["alert"]["device"] == "waste-000001"]
    assert [e["event"] for e in flapping] == ["fired", "escalated"], "one alert, however often it flapped"
    assert len({e["alert"]["id"] for e in flapping}) == 1
    received = webhook_receiver.events()
    assert [(e["event"], e["alert"]["target"], e["alert"]["flapping"]) for e in received] == [
        ("fired", "waste-000001", True),
        ("escalated", "waste-000001", True),
    ], "the silenced district paged nobody"
    silenced = [e for e in events if e["alert"]["device"] == "waste-000002"]
    assert [e["event"] for e in silenced] == ["fired", "escalated"], "its alerts are still raised and stored"
    assert all(e["silenced_by"] for e in silenced)


@pytest.mark.slow
def test_503s_then_a_timeout_are_retried_then_dead_lettered_while_cycles_keep_completing(
    tmp_path: Path, mosquitto: Mosquitto, webhook_receiver: WebhookReceiver
) -> None:
    webhook_receiver.respond(503, 503, "hang")
    settings = settings_for(
        tmp_path,
        mosquitto,
        webhook_receiver,
        webhooks=[hook(webhook_receiver, timeout_s=8.0)],
        retry_attempts=3,
        queue_size=2,
    )
    start = int(time.time() * 1000) - 3 * 60 * MIN
    fleet = ["waste-000001", "waste-000003"]  # one district: one group, one notification at a time
    with running_ingest(settings, bins()) as ingest:  # type: ignore[arg-type]
        hot = [reading("waste", d, start + m * MIN, temperature=80.0) for m in range(10) for d in fleet]
        publish(mosquitto.url, hot)
        wait_until(lambda: webhook_receiver.attempts() == [503, 503, "hang"], 20, "the webhook to hang")
        # While the webhook holds its request, readings keep flowing through whole cycles, and the
        # alerts they raise (hot and cool in turns of a quarter of an hour: fired, resolved ...) queue up.
        cycles, processed = ingest.cycles(), ingest.processed()
        for m in range(10, 70, 6):
            more = [
                reading(
                    "waste", d, start + (m + k) * MIN, temperature=80.0 if (m + k) // 15 % 2 == 0 else 20.0
                )
                for k in range(6)
                for d in fleet
            ]
            publish(mosquitto.url, more)
            processed += len(more)
            wait_until(lambda: ingest.processed() >= processed, 10, "the next readings")  # noqa: B023
        hanging = webhook_receiver.attempts() == [503, 503, "hang"]
        completed = ingest.cycles() - cycles
        counts = ingest.alerts.snapshot().channels["webhook"]
        wait_until(
            lambda: ingest.alerts.snapshot().channels["webhook"].dead_lettered >= 1, 30, "a dead letter"
        )
        ingest.delivered("webhook")
        final = ingest.alerts.snapshot().channels["webhook"]
        dead = ingest.alerts.store.dead_letters()
        stored = {e["event_id"] for e in ingest.events()}
    assert hanging, "the webhook was still holding the first request"
    assert completed >= 10, "every cycle completed while the webhook hung"
    assert counts.overflow > 0, "the bounded queue overflowed to disk and said so"
    assert counts.queued > 2
    assert (final.retried, final.dead_lettered) == (4, 2), (
        "two events (one notification) retried twice, given up"
    )
    assert [(d["attempts"], "timed out" in str(d["error"])) for d in dead] == [(3, True), (3, True)]
    received = {e["event_id"] for e in webhook_receiver.events()}
    assert received.isdisjoint(str(d["event_id"]) for d in dead)
    assert received | {str(d["event_id"]) for d in dead} == stored, "every event delivered or dead-lettered"
