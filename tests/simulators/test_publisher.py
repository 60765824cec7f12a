"""Publishing to a real Mosquitto: every message acknowledged or reported failed, restarts survived."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from processors.endpoint import BrokerUnreachableError, MqttEndpoint
from processors.mqtt_wire import split_packet
from simulators.publisher import Protocol, Publisher
from tests.e2e.helpers import wait_until
from tests.servers import Mosquitto, running_mosquitto


class Subscriber:
    """A paho subscriber with a persistent session: the broker keeps its messages while it is away."""

    def __init__(self, broker: Mosquitto, topic: str = "sim/#") -> None:
        self.payloads: set[bytes] = set()
        self.received = 0
        self._lock = threading.Lock()
        self._ready = threading.Event()
        self._client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"sub-{id(self)}",
            clean_session=False,
            protocol=mqtt.MQTTv311,
        )
        self._client.reconnect_delay_set(min_delay=1, max_delay=2)
        self._client.on_connect = lambda c, *_: (c.subscribe(topic, qos=1), None)[1]
        self._client.on_subscribe = lambda *_: self._ready.set()
        self._client.on_message = self._on_message
        self._client.connect("127.0.0.1", broker.port, keepalive=5)
        self._client.loop_start()
        assert self._ready.wait(10), "the subscriber could not subscribe"

    def _on_message(self, client: mqtt.Client, userdata: object, message: mqtt.MQTTMessage) -> None:
        with self._lock:
            self.payloads.add(bytes(message.payload))
            self.received += 1

    def count(self) -> int:
        with self._lock:
            return len(self.payloads)

    def has(self, payloads: set[bytes]) -> bool:
        with self._lock:
            return payloads <= self.payloads

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()


@contextmanager
def subscribed(broker: Mosquitto) -> Iterator[Subscriber]:
    subscriber = Subscriber(broker)
    try:
        yield subscriber
    finally:
        subscriber.close()


def endpoint(broker: Mosquitto) -> MqttEndpoint:
    return MqttEndpoint.parse(broker.url)


def payload_of(packet: bytes) -> bytes:
    """The application payload of a PUBLISH packet (QoS 1, MQTT 5 or 3.1.1 without properties)."""
    split = split_packet(packet)
    assert split is not None
    _, body, _ = split
    topic_length = int.from_bytes(body[:2], "big")
    rest = body[2 + topic_length + 2 :]
    return rest[1:] if rest[:1] == b"\x00" else rest


@pytest.mark.parametrize(("protocol", "qos"), [("5", 1), ("3.1.1", 1), ("5", 0)])
def test_every_message_reaches_the_broker_and_is_counted(
    mosquitto: Mosquitto, protocol: Protocol, qos: int
) -> None:
    with subscribed(mosquitto) as subscriber:
        publisher = Publisher(
            endpoint(mosquitto), "sim-test", protocol=protocol, qos=qos, max_outstanding=500
        )
        publisher.start(10)
        messages = [(f"sim/readings/air/air-{i % 50:06d}", b'{"n":%d}' % i) for i in range(5_000)]
        for start in range(0, len(messages), 700):
            publisher.publish_many(messages[start : start + 700])
        counts = publisher.close(30)
        assert counts.published == counts.acknowledged == 5_000
        assert counts.failed == 0
        assert not counts.failures
        wait_until(lambda: subscriber.count() == 5_000, 30, "every message at the subscriber")


@dataclass
class _Acked:
    payloads: set[bytes]
    lock: threading.Lock


@pytest.mark.slow
def test_broker_restart_loses_nothing_that_was_acknowledged(tmp_path: Path) -> None:
    """Mosquitto (with persistence) restarts mid-run: the publisher reconnects and re-sends, and every
    message it counted as acknowledged reaches a subscriber with a persistent session."""
    acked = _Acked(set(), threading.Lock())

    def on_ack(packet: bytes) -> None:
        with acked.lock:
            acked.payloads.add(payload_of(packet))

    with running_mosquitto(tmp_path / "broker", persistence=True) as broker, subscribed(broker) as subscriber:
        publisher = Publisher(
            endpoint(broker), "sim-restart", qos=1, max_outstanding=2_000, on_acknowledged=on_ack
        )
        publisher.start(10)
        total = 60_000
        done = threading.Event()

        def publish() -> None:
            for start in range(0, total, 200):
                publisher.publish_many(
                    [(f"sim/r/{i % 97}", b'{"n":%d}' % i) for i in range(start, start + 200)]
                )
                time.sleep(0.002)
            done.set()

        thread = threading.Thread(target=publish, daemon=True)
        thread.start()
        wait_until(lambda: publisher.counts.acknowledged > 5_000, 60, "the first acknowledgements")
        broker.restart()
        thread.join(120)
        assert done.is_set()
        counts = publisher.close(60)
        assert counts.reconnects >= 1
        assert counts.published == total
        assert counts.acknowledged + counts.failed == total
        assert counts.failed == 0, counts.failures
        with acked.lock:
            confirmed = set(acked.payloads)
        assert len(confirmed) == counts.acknowledged
        wait_until(lambda: subscriber.has(confirmed), 60, "every acknowledged message at the subscriber")


def test_a_broker_that_stays_down_is_reported_not_hidden(mosquitto: Mosquitto) -> None:
    publisher = Publisher(endpoint(mosquitto), "sim-down", qos=1, max_outstanding=100, give_up_after_s=0.5)
    publisher.start(10)
    publisher.publish_many([("sim/a", b"before")] * 10)
    wait_until(lambda: publisher.counts.acknowledged == 10, 10, "the first messages acknowledged")
    mosquitto.stop()
    wait_until(lambda: not publisher.connected, 10, "the lost connection")
    publisher.publish_many([("sim/a", b"during")] * 300)
    counts = publisher.close(1.0)
    assert counts.published == 310
    assert counts.acknowledged == 10
    assert counts.failed == 300
    assert set(counts.failures) <= {"broker unreachable", "not acknowledged before the run ended"}
    assert sum(counts.failures.values()) == 300


def test_no_broker_is_a_clear_error() -> None:
    from ingest.broker import free_port

    publisher = Publisher(MqttEndpoint.parse(f"mqtt://127.0.0.1:{free_port()}"), "sim-none")
    with pytest.raises(BrokerUnreachableError, match=r"no MQTT broker answered at .* start one"):
        publisher.start(1.0)


class SmallPacketMosquitto(Mosquitto):
    def config(self) -> str:
        return super().config() + "max_packet_size 2000\n"


def test_messages_beyond_the_brokers_packet_limit_fail_alone(tmp_path: Path) -> None:
    broker = SmallPacketMosquitto(tmp_path / "small")
    broker.start()
    try:
        publisher = Publisher(endpoint(broker), "sim-small", protocol="5", qos=1)
        publisher.start(10)
        assert publisher.limits.maximum_packet_size == 2000
        publisher.publish_many([("sim/a", b"x" * 100), ("sim/b", b"y" * 5000), ("sim/c", b"z" * 100)])
        counts = publisher.close(10)
        assert (counts.published, counts.acknowledged, counts.failed) == (3, 2, 1)
        assert counts.failures == {"larger than the broker's maximum packet size": 1}
    finally:
        broker.stop()
