"""The real ingest service in-process against a real Mosquitto, with readings written by hand."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from ingest.alerts.service import AlertService
from ingest.service import IngestService
from ingest.settings import Settings
from processors.alerts import AlertEvent
from processors.endpoint import MqttEndpoint
from processors.registry import Registry
from processors.topics import TopicScheme
from tests.e2e.helpers import wait_until

TOPICS = TopicScheme()


def rules_file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "alert-rules.toml"
    path.write_text(text, encoding="utf-8")
    return path


def ingest_settings(tmp_path: Path, mqtt_url: str, **values: Any) -> Settings:
    """Settings for an in-process ingest writing SQLite in ``tmp_path``; ``alerts`` merged into [alerts]."""
    alerts = {"store": tmp_path / "alerts.sqlite", **values.pop("alerts", {})}
    return Settings(
        mqtt_url=mqtt_url,
        mqtt_client_id=f"alerts-test-{id(tmp_path)}",
        sqlite={"path": tmp_path / "store.sqlite"},
        spool_dir=tmp_path / "spool",
        detector_state=Path(""),
        batch_linger_s=0.1,
        metrics_interval_s=0,
        alerts=alerts,
        **values,
    )


@dataclass
class Running:
    service: IngestService
    thread: threading.Thread

    @property
    def alerts(self) -> AlertService:
        assert self.service.alerts is not None
        return self.service.alerts

    def processed(self) -> int:
        return self.service.stats.snapshot().messages

    def cycles(self) -> int:
        return self.service.stats.snapshot().cycles

    def events(self) -> list[dict[str, Any]]:
        """Every alert event in the store's history, in order (with ``silenced_by``)."""
        store = self.alerts.store
        return [event for _, event in _history(store.path)]

    def delivered(self, channel: str) -> None:
        wait_until(lambda: self.alerts.snapshot().channels[channel].queued == 0, 30, f"{channel} deliveries")


def _history(path: Path) -> list[tuple[int, dict[str, Any]]]:
    from ingest.alerts.store import AlertStore

    store = AlertStore(path, create=False)
    try:
        return store.events_after(0, limit=100_000)
    finally:
        store.close()


@contextmanager
def running_ingest(settings: Settings, registry: Registry) -> Iterator[Running]:
    service = IngestService(settings, registry=registry, progress_every_s=0)
    service.start()
    thread = service.run_in_thread()
    try:
        yield Running(service, thread)
    finally:
        service.request_stop()
        thread.join(60)


def publish(url: str, messages: Sequence[tuple[str, bytes]], client_id: str = "alerts-test-fleet") -> None:
    """Publish at QoS 1 and return once the broker acknowledged every message."""
    endpoint = MqttEndpoint.parse(url)
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id)
    client.max_inflight_messages_set(200)
    client.max_queued_messages_set(0)
    client.connect(endpoint.host, endpoint.port)
    client.loop_start()
    try:
        infos = [client.publish(topic, payload, qos=1) for topic, payload in messages]
        for info in infos:
            info.wait_for_publish(60)
    finally:
        client.disconnect()
        client.loop_stop()


def reading(kind: str, device: str, ts_ms: int, **values: float) -> tuple[str, bytes]:
    return TOPICS.reading(kind, device), json.dumps({"device": device, "ts": ts_ms, **values}).encode()


def of_rule(events: Sequence[dict[str, Any]], rule: str) -> list[tuple[str, str]]:
    """(event, target) of one rule's events, in order."""
    return [(e["event"], e["alert"]["target"]) for e in events if e["alert"]["rule"] == rule]


def parse(event: dict[str, Any]) -> AlertEvent:
    return AlertEvent.from_dict(event, str(event.get("silenced_by", "")))
