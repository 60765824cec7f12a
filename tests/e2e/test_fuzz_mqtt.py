"""Hostile messages through a real Mosquitto into the real ingest process, which must neither crash nor stall.

A smaller share of the fuzz test's messages (``tests/ingest/fuzz.py``), those an
MQTT client can publish under citypulse's prefix, go to the broker at QoS 1 in
a few cycles' worth of bursts. Every good reading must reach the store exactly
once, every bad message must come back as at least one dead letter, and the
service must still be online afterwards and stop cleanly.
"""

from __future__ import annotations

import sqlite3
import time
from collections import Counter
from pathlib import Path

from processors.endpoint import MqttEndpoint
from processors.kinds import KINDS
from processors.topics import TopicScheme
from simulators.publisher import Publisher
from tests.e2e.helpers import IngestProcess, wait_until, watching
from tests.ingest.fuzz import SHAPES, Builder, Message, fleet
from tests.servers import Mosquitto

STATUS = "citypulse/v1/status/ingest/citypulse-ingest"


def publishable(message: Message, topics: TopicScheme) -> bool:
    """Under the prefix, not one of citypulse's own topics, and a topic MQTT lets a client publish to
    (Mosquitto disconnects a client for wildcards, control characters, invalid UTF-8 or more than 200
    levels)."""
    topic = message.raw.topic
    try:
        topic.encode()
    except UnicodeEncodeError:
        return False
    return (
        topic.startswith(topics.prefix + "/")
        and not topics.is_own(topic)
        and not any(c in "+#" or ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F for c in topic)
        and len(topic.encode()) < 65_535
        and topic.count("/") < 200
    )


def stored(path: Path) -> Counter[tuple[str, str, int]]:
    found: Counter[tuple[str, str, int]] = Counter()
    if not path.exists():
        return found
    db = sqlite3.connect(path, timeout=5)
    try:
        for kind in KINDS:
            try:
                rows = db.execute(f'SELECT device, ts FROM "{kind}"').fetchall()
            except sqlite3.OperationalError:
                continue
            found.update((kind, device, int(ts)) for device, ts in rows)
    finally:
        db.close()
    return found


def test_hostile_messages_through_mosquitto_never_stop_the_service(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    registry = fleet()
    lines = ["device_id,kind,district,lat,lon,install_date,interval_s,gateway"]
    lines += [f"{d.device_id},{d.kind},{d.district},{d.lat},{d.lon},,,{d.gateway or ''}" for d in registry]
    (tmp_path / "devices.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    store = tmp_path / "store.sqlite"
    topics = TopicScheme()
    builder = Builder(registry, seed=20_240, now_ms=time.time_ns() // 1_000_000)
    messages = [builder.build(SHAPES[i % len(SHAPES)]) for i in range(900)]
    messages = [m for m in messages if publishable(m, topics)]
    good = Counter(reading for m in messages for reading in m.good)
    bad = sum(m.bad for m in messages)
    assert len(messages) > 600
    assert bad > 200
    assert len(good) > 300
    env = {
        "CITYPULSE_MQTT_URL": mosquitto.url,
        "CITYPULSE_REGISTRY": str(tmp_path / "devices.csv"),
        "CITYPULSE_SQLITE_PATH": str(store),
        "CITYPULSE_METRICS_PORT": "0",
        "CITYPULSE_RATE_LIMIT_FACTOR": "0",  # the messages come hours' worth at once
    }
    with watching(mosquitto.url, ["citypulse/v1/deadletter/#", STATUS]) as watcher:
        ingest = IngestProcess(tmp_path, env)
        publisher = Publisher(MqttEndpoint.parse(mosquitto.url), "test-fuzz")
        try:
            wait_until(lambda: b"online" in watcher.payloads(STATUS), 30, "ingest online")
            publisher.start()
            for start in range(0, len(messages), 150):
                publisher.publish_many([(m.raw.topic, m.raw.payload) for m in messages[start : start + 150]])
            counts = publisher.close(30)
            assert counts.failed == 0
            wait_until(
                lambda: stored(store) == good, 60, f"the store to hold the {sum(good.values())} good readings"
            )
            wait_until(
                lambda: len(watcher.payloads("citypulse/v1/deadletter/")) >= bad,
                60,
                f"at least {bad} dead letters",
            )
            assert ingest.process.poll() is None, "the service died"
        finally:
            code = ingest.terminate()
        assert code == 0, ingest.log()
    assert stored(store) == good, "nothing more (and nothing twice) after the drain"
    assert "Traceback" not in ingest.log()
