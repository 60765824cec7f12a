"""What every fault test needs: a known set of readings, a paced QoS 1 publisher, the real ingest process.

The published set is known exactly (device, timestamp) per kind, so each test
can assert that InfluxDB holds exactly that set: nothing lost, nothing extra,
no duplicate.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.request
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from prometheus_client.parser import text_string_to_metric_families

from ingest.broker import free_port
from ingest.registry_file import save_registry
from processors.endpoint import MqttEndpoint
from processors.kinds import KINDS
from processors.registry import Registry
from processors.topics import TopicScheme
from simulators.fleet import make_registry
from tests.e2e.helpers import IngestProcess, wait_until
from tests.servers import Influxd

Point = tuple[str, int]


@dataclass(frozen=True)
class Message:
    topic: str
    payload: bytes
    kind: str
    device: str
    ts_ms: int


@dataclass
class Fleet:
    """``per_device`` readings from each device of a small registry, timestamps unique per device."""

    registry: Registry
    messages: list[Message]

    @classmethod
    def make(cls, devices: int = 25, per_device: int = 40, seed: int = 11) -> Fleet:
        registry = make_registry(devices, list(KINDS), seed=seed)
        topics = TopicScheme()
        base = (time.time_ns() // 1_000_000) - 3 * 3600 * 1000
        messages = []
        for i in range(per_device):
            for n, device in enumerate(registry):
                ts = base + i * 1000 + n  # unique per (device, reading): a fault can target one point
                kind = KINDS[device.kind]
                reading: dict[str, object] = {"device": device.device_id, "ts": ts}
                for m in kind.measures:
                    low, high = m.normal
                    reading[m.name] = low if m.step else round(low + (high - low) * ((i % 7) / 7), 3)
                messages.append(
                    Message(
                        topics.reading(device.kind, device.device_id),
                        json.dumps(reading).encode(),
                        device.kind,
                        device.device_id,
                        ts,
                    )
                )
        return cls(registry, messages)

    def save(self, path: Path) -> Path:
        save_registry(self.registry, path)
        return path

    def expected(self, exclude: Collection[Point] = ()) -> dict[str, set[Point]]:
        points: dict[str, set[Point]] = {}
        for m in self.messages:
            if (m.device, m.ts_ms) not in exclude:
                points.setdefault(m.kind, set()).add((m.device, m.ts_ms))
        return points


class Publisher:
    """Publishes messages at QoS 1 at a steady pace, in a thread; survives a broker restart.

    paho keeps every QoS 1 message until the broker's PUBACK and resends it after
    a reconnect, so once :meth:`wait` returns, the broker accepted every message.
    """

    def __init__(
        self,
        url: str,
        messages: list[Message],
        rate_per_s: float,
        client_id: str = "fault-fleet",
        hold_at: int | None = None,
    ) -> None:
        """``hold_at``: publish that many messages, then wait for :meth:`resume`, so that a fault
        injected meanwhile lands mid-stream however slow the machine is."""
        endpoint = MqttEndpoint.parse(url)
        self.messages = messages
        self.rate = rate_per_s
        self.published = 0
        self.hold_at = hold_at
        self._resumed = threading.Event()
        self._client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=False)
        self._client.max_queued_messages_set(0)
        self._client.max_inflight_messages_set(100)
        self._client.reconnect_delay_set(1, 1)
        self._acked: set[int] = set()
        self._acked_lock = threading.Lock()
        self._client.on_publish = self._on_publish
        self._client.connect(endpoint.host, endpoint.port)
        self._client.loop_start()
        self._infos: list[mqtt.MQTTMessageInfo] = []
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _on_publish(self, client: mqtt.Client, userdata: object, mid: int, *rest: object) -> None:
        with self._acked_lock:
            self._acked.add(mid)

    def start(self) -> Publisher:
        self._thread.start()
        return self

    def _run(self) -> None:
        started = time.monotonic()
        for i, message in enumerate(self.messages):
            if i == self.hold_at:
                self._resumed.wait()
                started = time.monotonic() - i / self.rate
            due = started + i / self.rate
            pause = due - time.monotonic()
            if pause > 0:
                time.sleep(pause)
            self._infos.append(self._client.publish(message.topic, message.payload, qos=1))
            self.published = i + 1

    def resume(self, rate_per_s: float | None = None) -> None:
        """Go on publishing (at ``rate_per_s`` from now, if given)."""
        if rate_per_s is not None and not self._resumed.is_set():
            self.rate = rate_per_s
        self._resumed.set()

    def wait(self, timeout_s: float = 120) -> None:
        """Until every message is published and acknowledged by the broker (resuming a held publisher)."""
        self.resume()
        self._thread.join(timeout_s)
        assert not self._thread.is_alive(), "the publisher did not finish"
        # PUBACKs are counted by mid: a message published while the broker was away reports
        # "not connected" but stays queued in paho and is sent, and acknowledged, after the reconnect.
        wanted = {info.mid for info in self._infos}
        assert len(wanted) == len(self._infos), "message ids must not wrap within one test"
        wait_until(lambda: self._missing(wanted) == 0, timeout_s, "the broker to acknowledge every message")

    def _missing(self, wanted: set[int]) -> int:
        with self._acked_lock:
            return len(wanted - self._acked)

    def close(self) -> None:
        self.resume()
        self._client.disconnect()
        self._client.loop_stop()


@dataclass
class Ingest:
    """The real ``citypulse ingest`` against influxd, restartable with the same identity and spool."""

    workdir: Path
    mqtt_url: str
    influx_url: str
    registry: Path
    extra: dict[str, str] = field(default_factory=dict)
    metrics_port: int = field(default_factory=free_port)
    process: IngestProcess | None = None

    def env(self) -> dict[str, str]:
        return {
            "CITYPULSE_MQTT_URL": self.mqtt_url,
            "CITYPULSE_REGISTRY": str(self.registry),
            "CITYPULSE_SINK": "influxdb",
            "CITYPULSE_INFLUX_API": "v1",
            "CITYPULSE_INFLUX_URL": self.influx_url,
            "CITYPULSE_INFLUX_BUCKET": "citypulse",
            "CITYPULSE_SPOOL_DIR": str(self.workdir / "spool"),
            "CITYPULSE_METRICS_PORT": str(self.metrics_port),
            "CITYPULSE_METRICS_INTERVAL_S": "1",
            "CITYPULSE_RETRY_SPOOL_AFTER_S": "1",
            "CITYPULSE_RETRY_MAX_BACKOFF_S": "1",
            "CITYPULSE_INFLUX_TIMEOUT_S": "5",
            "CITYPULSE_BATCH_LINGER_S": "0.2",
            "CITYPULSE_BATCH_MAX_MESSAGES": "200",
            # The fleet sends a reading a second per device, far above the kinds' intervals, to
            # stress durability; the rate limit (tests/e2e/test_flood.py) would hold most of it.
            "CITYPULSE_RATE_LIMIT_FACTOR": "0",
            **self.extra,
        }

    def start(self) -> Ingest:
        self.process = IngestProcess(self.workdir, self.env())
        wait_until(lambda: self.metrics() is not None or self.exited(), 60, "the ingest metrics endpoint")
        assert not self.exited(), self.log()
        wait_until(lambda: (self.metric("citypulse_mqtt_connected") or 0) == 1, 30, "ingest to connect")
        return self

    def exited(self) -> bool:
        return self.process is not None and self.process.process.poll() is not None

    def kill(self) -> None:
        assert self.process is not None
        self.process.kill()
        self.process = None

    def terminate(self, timeout_s: float = 60) -> int:
        assert self.process is not None
        code = self.process.terminate(timeout_s)
        self.process = None
        return code

    def log(self) -> str:
        path = self.workdir / "ingest.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def metrics(self) -> dict[str, float] | None:
        """Every sample on /metrics, keyed like ``name{label=value}``; None if nothing answers."""
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=2) as reply:
                text = reply.read().decode()
        except OSError:
            return None
        found: dict[str, float] = {}
        for family in text_string_to_metric_families(text):
            for s in family.samples:
                labels = ",".join(f"{k}={v}" for k, v in sorted(s.labels.items()))
                found[f"{s.name}{{{labels}}}" if labels else s.name] = s.value
        return found

    def metric(self, name: str) -> float | None:
        found = self.metrics()
        return None if found is None else found.get(name)


def stored(influxd: Influxd, kinds: list[str], db: str = "citypulse") -> dict[str, set[Point]]:
    """The distinct (device, time) points of each kind's measurement; {} while influxd is down."""
    if not influxd.answers():
        return {}
    try:
        return {kind: points for kind in kinds if (points := influxd.points(kind, db))}
    except AssertionError as failed:
        if "database not found" in str(failed):
            return {}  # the ingest creates it with its first write
        raise


def wait_for_exactly(
    influxd: Influxd, expected: dict[str, set[Point]], timeout_s: float, ingest: Ingest
) -> None:
    """Until InfluxDB holds exactly the expected points (it only ever grows, so equality is final)."""
    kinds = list(KINDS)
    deadline = time.monotonic() + timeout_s
    last: dict[str, set[Point]] = {}
    while time.monotonic() < deadline:
        last = stored(influxd, kinds)
        if last == expected:
            return
        extra = {k: v - expected.get(k, set()) for k, v in last.items() if v - expected.get(k, set())}
        assert not extra, f"InfluxDB holds points nobody published: {extra}"
        time.sleep(0.25)
    missing = {k: len(v - last.get(k, set())) for k, v in expected.items()}
    raise AssertionError(
        f"InfluxDB still misses points per kind: {missing}\n--- ingest log ---\n{ingest.log()[-4000:]}"
    )


def total(points: dict[str, set[Point]]) -> int:
    return sum(len(v) for v in points.values())


@contextmanager
def held_to_the_published_set(
    ingest: Ingest, publisher: Publisher, influxd: Influxd, expected: dict[str, set[Point]]
) -> Iterator[None]:
    """Whatever fault the body injects, stop both sides and hold InfluxDB to exactly ``expected``.

    The service must exit 0 and the stored points must equal the published set.
    These checks run only when the body succeeded (a failing wait already says
    what went wrong); the publisher and the service are stopped either way, so a
    failed test leaves no process behind.
    """
    try:
        yield
    finally:
        publisher.close()
        code = ingest.terminate() if ingest.process else 0
    assert code == 0, ingest.log()
    assert stored(influxd, list(KINDS)) == expected
