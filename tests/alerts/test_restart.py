"""At least once across a crash: the real ``citypulse ingest``, SIGKILLed between an alert and its webhook."""

from __future__ import annotations

import time
from datetime import date
from pathlib import Path

import pytest

from ingest.alerts.outbox import Outbox
from ingest.alerts.store import AlertStore
from ingest.broker import free_port
from ingest.registry_file import save_registry
from processors.registry import Device, Registry
from tests.alerts.helpers import publish, reading
from tests.e2e.helpers import IngestProcess, wait_until
from tests.servers import Mosquitto, WebhookReceiver

pytestmark = pytest.mark.slow

MIN = 60_000
RULES = """
replace_defaults = true

[[rules]]
name = "hot_bin"
field = "temperature"
kinds = ["waste"]
above = 60.0
for = "5m"
message = "bin {device} at {value} {unit}"
message_vi = "thùng rác {device} {value} {unit}"
"""


def config(path: Path, receiver: WebhookReceiver, group_wait_s: float) -> Path:
    path.write_text(
        f"""
[alerts]
rules = "{path.parent / "rules.toml"}"
store = "{path.parent / "alerts.sqlite"}"
mqtt = false
group_wait_s = {group_wait_s}

[[alerts.webhooks]]
name = "ops"
url = "{receiver.url}"
secret = "s3cret"
""",
        encoding="utf-8",
    )
    return path


def started(workdir: Path, env: dict[str, str]) -> IngestProcess:
    process = IngestProcess(workdir, env)
    wait_until(
        lambda: "citypulse ingest: reading" in process.log() or process.process.poll() is not None,
        60,
        "ingest to start",
    )
    assert process.process.poll() is None, process.log()
    return process


def test_an_alert_raised_just_before_a_sigkill_is_delivered_after_the_restart_with_the_same_event_id(
    tmp_path: Path, mosquitto: Mosquitto, webhook_receiver: WebhookReceiver
) -> None:
    registry = Registry([Device("waste-000001", "waste", "Đống Đa", 21.02, 105.83, date(2025, 1, 1), 60.0)])
    save_registry(registry, tmp_path / "devices.csv")
    (tmp_path / "rules.toml").write_text(RULES, encoding="utf-8")
    settings = tmp_path / "citypulse.toml"
    env = {
        "CITYPULSE_CONFIG": str(config(settings, webhook_receiver, group_wait_s=600)),
        "CITYPULSE_MQTT_URL": mosquitto.url,
        "CITYPULSE_MQTT_CLIENT_ID": "alerts-restart",
        "CITYPULSE_REGISTRY": str(tmp_path / "devices.csv"),
        "CITYPULSE_SQLITE_PATH": str(tmp_path / "store.sqlite"),
        "CITYPULSE_SPOOL_DIR": str(tmp_path / "spool"),
        "CITYPULSE_METRICS_PORT": str(free_port()),
        "CITYPULSE_DETECTORS": "none",
        "CITYPULSE_BATCH_LINGER_S": "0.1",
    }
    ingest = started(tmp_path, env)
    start = int(time.time() * 1000) - 60 * MIN
    publish(
        mosquitto.url,
        [reading("waste", "waste-000001", start + m * MIN, temperature=85.0) for m in range(10)],
    )

    def owed() -> int:
        outbox = Outbox(tmp_path / "alerts.sqlite")
        try:
            return outbox.count("webhook")
        finally:
            outbox.close()

    try:
        wait_until(lambda: owed() == 1, 30, "the alert to be owed to the webhook")
    finally:
        ingest.kill()  # SIGKILL: the delivery was waiting for its group to fill
    assert webhook_receiver.attempts() == []
    store = AlertStore(tmp_path / "alerts.sqlite", create=False)
    [(_, fired)] = store.events_after(0)
    [alert] = store.open_alerts()
    store.close()
    assert fired["event"] == "fired"

    config(settings, webhook_receiver, group_wait_s=0)
    ingest = started(tmp_path, env)
    try:
        wait_until(lambda: len(webhook_receiver.events()) >= 1, 30, "the delivery after the restart")
        wait_until(lambda: owed() == 0, 10, "the outbox to empty")
    finally:
        assert ingest.terminate() == 0, ingest.log()
    [delivered] = webhook_receiver.events()
    assert delivered["event_id"] == fired["event_id"], "the same event, so the receiver can de-duplicate"
    assert delivered["alert"]["id"] == alert.id
    store = AlertStore(tmp_path / "alerts.sqlite", create=False)
    assert [a.id for a in store.open_alerts()] == [alert.id], "the open alert was restored, not raised again"
    assert len(store.events_after(0)) == 1
    store.close()
