"""A broker secured by ``citypulse devices provision``, and MQTT 5 clients that report what it refused."""

from __future__ import annotations

import csv
import ssl
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.reasoncodes import ReasonCode

from ingest.broker import free_port
from tests.e2e.helpers import run_citypulse
from tests.servers import ConfiguredMosquitto

NOT_AUTHORIZED = 135
"""MQTT 5 reason code 0x87, in CONNACK and PUBACK."""
ACCEPTED = range(0x80)
"""PUBACK reason codes below 0x80 mean success (0, or 16: accepted, no subscriber matched)."""

REGISTRY = """device_id,kind,district,lat,lon,install_date,interval_s,gateway
air-000001,air,Ba Đình,21.03,105.81,,,
air-000002,air,Ba Đình,21.03,105.81,,,gw-north
water-000001,water,Ba Đình,21.03,105.81,,,gw-north
traffic-000001,traffic,Ba Đình,21.03,105.81,,,gw-south
"""


def read_credentials(path: Path) -> dict[str, str]:
    with path.open(newline="", encoding="utf-8") as handle:
        return {row["user"]: row["password"] for row in csv.DictReader(handle)}


def provision(workdir: Path, *extra: str) -> dict[str, object]:
    """Run ``citypulse devices provision`` on ``workdir/devices.csv`` into ``workdir/broker``."""
    done = run_citypulse(
        "devices", "provision", "--registry", str(workdir / "devices.csv"), "--out",
        str(workdir / "broker"), "--bind", "127.0.0.1", "--json", *extra,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    from tests.e2e.helpers import last_json_line

    return last_json_line(done.stdout)


@dataclass
class SecuredBroker:
    server: ConfiguredMosquitto
    workdir: Path
    port: int
    tls_port: int | None

    @property
    def credentials(self) -> dict[str, str]:
        return read_credentials(self.workdir / "broker" / "credentials.csv")


@contextmanager
def secured_broker(workdir: Path, *extra: str, tls_dir: Path | None = None) -> Iterator[SecuredBroker]:
    """Provision ``workdir/devices.csv`` (written if absent) and run Mosquitto on the generated files.

    With ``tls_dir`` (made by ``devices certs``) the broker also has a TLS listener.
    """
    registry = workdir / "devices.csv"
    if not registry.exists():
        registry.write_text(REGISTRY, encoding="utf-8")
    port = free_port()
    tls_port = free_port() if tls_dir is not None else None
    args = ["--port", str(port), *extra]
    if tls_port is not None:
        args += ["--tls-port", str(tls_port), "--tls-dir", str(tls_dir)]
    provision(workdir, *args)
    ports = (port,) if tls_port is None else (port, tls_port)
    server = ConfiguredMosquitto(workdir / "mosquitto", workdir / "broker" / "mosquitto.conf", ports)
    server.start()
    try:
        yield SecuredBroker(server, workdir, port, tls_port)
    finally:
        server.stop()


class Client:
    """A paho MQTT 5 client that records CONNACK, PUBACK and SUBACK reason codes and what arrives."""

    def __init__(self, client_id: str) -> None:
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
        self.connack: ReasonCode | None = None
        self.pubacks: dict[int, int] = {}
        self.messages: list[tuple[str, bytes]] = []
        self._lock = threading.Condition()
        self.client.on_connect = self._on_connect
        self.client.on_connect_fail = lambda *_: self._note_failure()
        self.client.on_publish = self._on_publish
        self.client.on_subscribe = lambda *_: self._notify()
        self.client.on_message = self._on_message
        self._failed = False
        self._subscribed = 0

    def _notify(self) -> None:
        with self._lock:
            self._subscribed += 1
            self._lock.notify_all()

    def _note_failure(self) -> None:
        with self._lock:
            self._failed = True
            self._lock.notify_all()

    def _on_connect(
        self, client: mqtt.Client, userdata: object, flags: object, rc: ReasonCode, *_: object
    ) -> None:
        with self._lock:
            self.connack = rc
            self._lock.notify_all()

    def _on_publish(
        self, client: mqtt.Client, userdata: object, mid: int, rc: ReasonCode, *_: object
    ) -> None:
        with self._lock:
            self.pubacks[mid] = int(rc.value)
            self._lock.notify_all()

    def _on_message(self, client: mqtt.Client, userdata: object, msg: mqtt.MQTTMessage) -> None:
        with self._lock:
            self.messages.append((msg.topic, bytes(msg.payload)))
            self._lock.notify_all()

    def connect(
        self,
        port: int,
        user: str | None = None,
        password: str | None = None,
        context: ssl.SSLContext | None = None,
        timeout_s: float = 10.0,
    ) -> int:
        """Connect and return the CONNACK reason code (0: accepted); -1 when no CONNACK came at all."""
        if user is not None:
            self.client.username_pw_set(user, password)
        if context is not None:
            self.client.tls_set_context(context)
        try:
            self.client.connect("127.0.0.1", port)
        except (OSError, ssl.SSLError):
            return -1
        self.client.loop_start()
        with self._lock:
            self._lock.wait_for(lambda: self.connack is not None or self._failed, timeout_s)
        if self.connack is None:
            return -1
        return int(self.connack.value)

    def publish(self, topic: str, payload: bytes, timeout_s: float = 10.0) -> int:
        """Publish at QoS 1 and return the PUBACK reason code (0: accepted, 135: not authorised)."""
        info = self.client.publish(topic, payload, qos=1)
        with self._lock:
            if not self._lock.wait_for(lambda: info.mid in self.pubacks, timeout_s):
                raise AssertionError(f"no PUBACK for {topic} within {timeout_s} s")
            return self.pubacks[info.mid]

    def subscribe(self, *filters: str, timeout_s: float = 10.0) -> None:
        with self._lock:
            before = self._subscribed
        self.client.subscribe([(f, 1) for f in filters])
        with self._lock:
            if not self._lock.wait_for(lambda: self._subscribed > before, timeout_s):
                raise AssertionError(f"no SUBACK for {filters}")

    def wait_for(self, payload: bytes, timeout_s: float = 10.0) -> None:
        with self._lock:
            if not self._lock.wait_for(lambda: any(p == payload for _, p in self.messages), timeout_s):
                raise AssertionError(f"{payload!r} did not arrive within {timeout_s} s")

    def received(self) -> list[tuple[str, bytes]]:
        with self._lock:
            return list(self.messages)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def attempt(port: int, user: str, password: str, topic: str, context: ssl.SSLContext | None = None) -> int:
    """One QoS 1 publish on a connection of its own; the PUBACK reason code.

    Its own connection, because Mosquitto 2.0 closes a client's connection right
    after refusing one of its publishes (PUBACK 135, then the socket is closed;
    eclipse-mosquitto issue 2579), which would cost a longer-lived client its
    subscriptions.
    """
    with connected(port, user, password, context) as client:
        return client.publish(topic, b"attempt")


@contextmanager
def connected(
    port: int, user: str | None, password: str | None, context: ssl.SSLContext | None = None
) -> Iterator[Client]:
    """A client that must be accepted by the broker."""
    client = Client(f"test-{user}-{time.monotonic_ns()}")
    code = client.connect(port, user, password, context)
    try:
        assert code == 0, f"the broker refused {user}: reason code {code}"
        yield client
    finally:
        client.close()
