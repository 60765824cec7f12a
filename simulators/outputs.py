"""Where simulated messages go: an MQTT broker, or a file for replays and benchmarks."""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Protocol

import paho.mqtt.client as mqtt

from ingest.mqtt_client import ConnectOptions, describe_failure, make_client, start

log = logging.getLogger(__name__)


@dataclass
class OutputCounts:
    published: int = 0
    acknowledged: int = 0
    failed: int = 0


class Output(Protocol):
    counts: OutputCounts

    def publish(self, topic: str, payload: bytes) -> None: ...

    def close(self, timeout_s: float) -> OutputCounts:
        """Wait up to ``timeout_s`` for outstanding deliveries, then count the rest as failed."""
        ...


class FileOutput:
    """Writes ``topic<TAB>payload`` lines; payloads never contain newlines."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._out: IO[bytes] = path.open("wb")
        self.counts = OutputCounts()

    def publish(self, topic: str, payload: bytes) -> None:
        self._out.write(topic.encode() + b"\t" + payload.replace(b"\n", b" ") + b"\n")
        self.counts.published += 1
        self.counts.acknowledged += 1

    def close(self, timeout_s: float) -> OutputCounts:
        self._out.close()
        return self.counts


class MqttOutput:
    """Publishes with paho, counts broker acknowledgements, and bounds what is in flight.

    paho reconnects by itself and re-sends unacknowledged QoS 1 messages, so a
    broker restart costs time, not messages; what is still unacknowledged when
    the run ends is reported as failed.
    """

    def __init__(self, options: ConnectOptions, qos: int = 1, max_outstanding: int = 2_000) -> None:
        self.options = options
        self.qos = qos
        self.max_outstanding = max_outstanding
        self.counts = OutputCounts()
        self._lock = threading.Condition()
        self._connected = threading.Event()
        self._closing = False
        self._client = make_client(options)
        # paho walks every outstanding message on each PUBACK when it caps in-flight messages
        # itself (quadratic at fleet scale), so its cap is off and max_outstanding bounds instead.
        self._client.max_inflight_messages_set(0)
        self._client.max_queued_messages_set(0)
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect
        self._client.on_publish = self._on_publish

    def start(self, timeout_s: float = 30.0) -> None:
        start(self._client, self.options, self._connected, timeout_s)

    def publish(self, topic: str, payload: bytes) -> None:
        with self._lock:
            while (
                self.counts.published - self.counts.acknowledged - self.counts.failed >= self.max_outstanding
            ):
                self._lock.wait(0.5)
            self.counts.published += 1
        info = self._client.publish(topic, payload, qos=self.qos)
        if info.rc != mqtt.MQTT_ERR_SUCCESS and self.qos == 0:
            with self._lock:
                self.counts.failed += 1
                self._lock.notify_all()

    def outstanding(self) -> int:
        with self._lock:
            return self.counts.published - self.counts.acknowledged - self.counts.failed

    def close(self, timeout_s: float) -> OutputCounts:
        deadline = time.monotonic() + timeout_s
        with self._lock:
            while self.counts.published - self.counts.acknowledged - self.counts.failed > 0:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._lock.wait(min(remaining, 0.5))
            lost = self.counts.published - self.counts.acknowledged - self.counts.failed
            self.counts.failed += lost
        if lost:
            log.warning("%d messages were never acknowledged by the broker", lost)
        self._closing = True
        self._client.disconnect()
        self._client.loop_stop()
        return self.counts

    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        if reason.is_failure:
            log.error(
                "broker %s refused the simulator: %s",
                self.options.endpoint.display(),
                describe_failure(reason),
            )
            return
        self._connected.set()

    def _on_disconnect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        if self._connected.is_set() and not self._closing:
            log.warning("simulator lost the broker (%s); reconnecting", describe_failure(reason))
        self._connected.clear()

    def _on_publish(self, client: mqtt.Client, userdata: Any, mid: int, reason: Any, props: Any) -> None:
        with self._lock:
            if getattr(reason, "is_failure", False):
                self.counts.failed += 1
            else:
                self.counts.acknowledged += 1
            self._lock.notify_all()
