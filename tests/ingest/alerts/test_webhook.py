"""Webhooks against a real local HTTP receiver: signed, grouped, retried, dead-lettered, never blocking."""

from __future__ import annotations

import time
from pathlib import Path

import jsonschema

from processors.alerts import EventType, Severity
from tests.alerts.docs import verify_function, webhook_schema
from tests.e2e.helpers import wait_until
from tests.ingest.alerts.channels import delivering, owe, quiet, settle
from tests.ingest.alerts.helpers import event
from tests.servers import WebhookReceiver

SECRET = "hook-secret-1"


def hook(receiver: WebhookReceiver, **extra: object) -> dict[str, object]:
    return {"name": "ops", "url": receiver.url, "secret": SECRET, **extra}


def test_events_of_one_group_arrive_together_signed_with_the_subscribers_secret(
    tmp_path: Path, webhook_receiver: WebhookReceiver
) -> None:
    with delivering(tmp_path, webhooks=[hook(webhook_receiver)]) as service:
        owe(service, event(1), event(2), event(3), event(4, district="Tây Hồ"))
        settle(service)
    bodies = webhook_receiver.bodies()
    groups = sorted((b["group"]["district"], len(b["events"])) for b in bodies)
    assert groups == [("Tây Hồ", 1), ("Đống Đa", 3)], "grouped by rule and district"
    first = next(b for b in bodies if b["group"]["district"] == "Đống Đa")
    assert first["schema"] == 1
    assert first["type"] == "citypulse.alerts"
    assert [e["event_id"] for e in first["events"]] == [event(n).event_id for n in (1, 2, 3)]
    assert first["events"][0]["alert"]["message_vi"] == "Nghi cháy thùng rác waste-000001"
    verify = verify_function()  # as docs/alerts.md shows it to receivers
    schema = webhook_schema()
    for received in webhook_receiver.received:
        jsonschema.validate(received.json(), schema)
        header = received.headers["X-Citypulse-Signature"]
        assert verify(received.body, header, SECRET)
        assert not verify(received.body, header, "another-secret")
        assert not verify(received.body + b" ", header, SECRET)


def test_filters_pick_what_each_subscriber_receives(
    tmp_path: Path, webhook_receiver: WebhookReceiver
) -> None:
    subscriptions = [
        hook(webhook_receiver, name="fire-brigade", rules=["bin_fire"], severities=["critical"]),
        hook(webhook_receiver, name="water-company", kinds=["water"]),
    ]
    with delivering(tmp_path, webhooks=subscriptions) as service:
        owe(service, event(1), event(2, kind="water", rule="water_main_burst", severity=Severity.WARNING))
        settle(service)
    got = sorted(
        (b["subscriber"], e["alert"]["rule"]) for b in webhook_receiver.bodies() for e in b["events"]
    )
    assert got == [("fire-brigade", "bin_fire"), ("water-company", "water_main_burst")]


def test_a_failing_webhook_is_retried_with_the_same_event_then_succeeds(
    tmp_path: Path, webhook_receiver: WebhookReceiver
) -> None:
    webhook_receiver.respond(503, 503)
    with delivering(tmp_path, webhooks=[hook(webhook_receiver)]) as service:
        owe(service, event(1))
        settle(service)
        counts = service.snapshot().channels["webhook"]
    assert webhook_receiver.attempts() == [503, 503, 200]
    assert [e["event_id"] for e in webhook_receiver.events()] == [event(1).event_id]
    assert (counts.delivered, counts.retried, counts.dead_lettered) == (1, 2, 0)


def test_503s_then_a_timeout_are_retried_then_dead_lettered(
    tmp_path: Path, webhook_receiver: WebhookReceiver
) -> None:
    webhook_receiver.respond(503, 503, "hang")
    store = tmp_path / "alerts.sqlite"
    with delivering(tmp_path, webhooks=[hook(webhook_receiver, timeout_s=0.5)], retry_attempts=3) as service:
        owe(service, event(1))
        settle(service)
        counts = service.snapshot().channels["webhook"]
        dead = service.store.dead_letters()
    assert webhook_receiver.attempts() == [503, 503, "hang"]
    assert webhook_receiver.received == []
    assert (counts.delivered, counts.retried, counts.dead_lettered) == (0, 2, 1)
    assert [(d["event_id"], d["attempts"]) for d in dead] == [(event(1).event_id, 3)]
    assert "unreachable" in str(dead[0]["error"]) or "timed out" in str(dead[0]["error"])
    assert store.exists()


def test_a_refusal_that_retrying_cannot_fix_is_dead_lettered_at_once(
    tmp_path: Path, webhook_receiver: WebhookReceiver
) -> None:
    webhook_receiver.respond(410)
    with delivering(tmp_path, webhooks=[hook(webhook_receiver)]) as service:
        owe(service, event(1))
        settle(service)
        dead = service.store.dead_letters()
    assert webhook_receiver.attempts() == [410]
    assert [d["error"] for d in dead] == ["webhook ops answered HTTP 410"]


def test_a_hanging_webhook_never_blocks_and_its_queue_overflows_to_disk(
    tmp_path: Path, webhook_receiver: WebhookReceiver
) -> None:
    webhook_receiver.respond(*["hang"] * 3)
    settings = {"webhooks": [hook(webhook_receiver, timeout_s=30)], "queue_size": 3, "group_wait_s": 0.0}
    with delivering(tmp_path, **settings) as service:
        owe(service, event(1))
        wait_until(lambda: webhook_receiver.attempts() == ["hang"], 10, "the webhook to hang")
        started = time.monotonic()
        for n in range(2, 22):
            owe(service, event(n, district=f"D{n}"))
        handing_over = time.monotonic() - started
        counts = service.snapshot().channels["webhook"]
        assert counts.queued == 21
        assert counts.overflow >= 17, counts
        webhook_receiver.respond()
        webhook_receiver.release()
        settle(service, 60)
        counts = service.snapshot().channels["webhook"]
    received = sorted(e["event_id"] for e in webhook_receiver.events())
    assert received == sorted(event(n).event_id for n in range(1, 22)), "the overflow was delivered from disk"
    assert counts.delivered == 21
    assert handing_over < 5, "handing events over does not wait for the webhook"


def test_the_rate_limit_holds_events_back_and_sends_them_grouped_later(
    tmp_path: Path, webhook_receiver: WebhookReceiver
) -> None:
    limited = hook(webhook_receiver, max_notifications=1, rate_window_s=3600)
    with delivering(tmp_path, webhooks=[limited], group_wait_s=0.0) as service:
        owe(service, event(1))
        wait_until(lambda: len(webhook_receiver.received) == 1, 10, "the first notification")
        owe(service, event(2, district="Tây Hồ"), event(3, district="Tây Hồ", kind="water"))
        quiet(1.0)
        assert len(webhook_receiver.received) == 1, "one notification per hour for this subscriber"
        assert service.snapshot().channels["webhook"].queued == 2
    assert [e["event"] for e in webhook_receiver.events()] == [str(EventType.FIRED)]
