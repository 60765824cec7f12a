"""The end-to-end benchmark's inputs: a simulated backlog, what it must store, and how it reaches the broker.

The backlog is what ``citypulse simulate`` writes with ``--output`` (``publish_ms<TAB>topic<TAB>payload``
lines), made once per run and published with the simulator's own MQTT client, so the same bytes reach
every contender. What must be stored is read back from those bytes: each reading's kind, device and
timestamp (in the three spellings devices use), so "every reading stored" is checked point by point.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import orjson
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from processors.endpoint import MqttEndpoint
from processors.kinds import KINDS
from processors.timestamps import parse_timestamp
from processors.topics import TopicScheme
from simulators.outputs import read_messages
from simulators.publisher import Publisher

ROOT = Path(__file__).resolve().parents[1]
Point = tuple[str, int]
"""(device, timestamp in ms): one stored reading of a kind."""

COUNT_FIELD = {name: kind.measures[0].name for name, kind in KINDS.items()}
"""The field counted to know how many points a kind's measurement holds (every reading has it)."""


def python_env(root: Path = ROOT) -> dict[str, str]:
    """The environment child processes run in: this checkout (or ``root``) alone on the import path."""
    return {**os.environ, "PYTHONPATH": str(root)}


def citypulse(*args: str) -> list[str]:
    """The command line of ``citypulse`` from this checkout (not whichever is installed)."""
    return [sys.executable, "-m", "ingest.cli", *args]


@dataclass
class Backlog:
    """One simulated backlog file and the points it must leave in the database."""

    path: Path
    registry: Path
    messages: int
    readings: int
    expected: dict[str, set[Point]] = field(repr=False)

    @property
    def per_kind(self) -> dict[str, int]:
        return {kind: len(points) for kind, points in sorted(self.expected.items())}


def make_backlog(
    workdir: Path, name: str, devices: int, span: str, batch: int, registry: Path, seed: int = 1
) -> Backlog:
    """Run ``citypulse simulate --output`` (the real command) and read back what it wrote."""
    path = workdir / f"{name}.tsv"
    command = citypulse(
        "simulate", "--devices", str(devices), "--span", span, "--speed", "0", "--seed", str(seed),
        "--registry", str(registry), "--output", str(path), "--quiet", "--json",
    )  # fmt: skip
    if batch:
        command += ["--batch", str(batch)]
    done = subprocess.run(command, capture_output=True, text=True, env=python_env(), check=False)
    if done.returncode != 0:
        raise RuntimeError(f"citypulse simulate failed: {done.stderr[-2000:]}")
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    expected = expected_points(path)
    readings = sum(len(v) for v in expected.values())
    if summary["valid_by_kind"] != {k: len(v) for k, v in expected.items()}:
        raise RuntimeError(
            f"the file holds {readings} distinct readings but the simulator says "
            f"{summary['valid_by_kind']}: the check of what is stored would be wrong"
        )
    return Backlog(path, registry, int(summary["messages"]), readings, expected)


def expected_points(path: Path) -> dict[str, set[Point]]:
    """Every reading in a backlog file as (device, ms) per kind."""
    topics = TopicScheme()
    points: dict[str, set[Point]] = {}
    for _, topic, payload in read_messages(path):
        kind = topics.parse(topic).kind
        decoded = orjson.loads(payload)
        readings = decoded if isinstance(decoded, list) else [decoded]
        into = points.setdefault(kind, set())
        into.update((r["device"], parse_timestamp(r["ts"])) for r in readings)
    return points


def publish_file(url: str, path: Path, client_id: str = "bench-publisher") -> float:
    """Publish every message of a backlog file at QoS 1, as fast as the broker takes them; seconds taken."""
    publisher = Publisher(MqttEndpoint.parse(url), client_id, qos=1, max_outstanding=20_000)
    publisher.start(15)
    began = time.monotonic()
    chunk: list[tuple[str, bytes]] = []
    for _, topic, payload in read_messages(path):
        chunk.append((topic, payload))
        if len(chunk) == 5000:
            publisher.publish_many(chunk)
            chunk = []
    publisher.publish_many(chunk)
    counts = publisher.close(600)
    if counts.failed or counts.acknowledged != counts.published:
        raise RuntimeError(f"the broker did not take the whole backlog: {counts}")
    return time.monotonic() - began


def _session_client(url: str, client_id: str, v5: bool, clean: bool, expiry_s: int) -> mqtt.Client:
    """A connected paho client (waits for CONNACK) with the session flags asked for."""
    endpoint = MqttEndpoint.parse(url)
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2,
        client_id=client_id,
        protocol=mqtt.MQTTv5 if v5 else mqtt.MQTTv311,
        clean_session=None if v5 else clean,
    )
    props = None
    if v5:
        props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        props.SessionExpiryInterval = expiry_s
    connected = threading.Event()
    client.on_connect = lambda *args: connected.set()
    client.connect(endpoint.host, endpoint.port, clean_start=clean if v5 else 3, properties=props)
    client.loop_start()
    if not connected.wait(10):
        raise RuntimeError(f"{client_id} could not connect to {url}")
    return client


def make_session(url: str, client_id: str, topics: Sequence[str], v5: bool = True) -> None:
    """A persistent QoS 1 session that the broker keeps while its client is away: subscribe, disconnect."""
    client = _session_client(url, client_id, v5, clean=True, expiry_s=7 * 24 * 3600)
    if not v5:
        # MQTT 3.1.1 keeps the session only for a client that connected with clean session off.
        client.disconnect()
        client.loop_stop()
        client = _session_client(url, client_id, v5, clean=False, expiry_s=0)
    subscribed = threading.Event()
    client.on_subscribe = lambda *args: subscribed.set()
    client.subscribe([(topic, 1) for topic in topics])
    if not subscribed.wait(10):
        raise RuntimeError(f"the broker did not confirm the subscription of {client_id} to {topics}")
    client.disconnect()
    client.loop_stop()


def forget_session(url: str, client_id: str, v5: bool = True) -> None:
    """Drop a session and whatever the broker still queues for it."""
    client = _session_client(url, client_id, v5, clean=True, expiry_s=0)
    client.disconnect()
    client.loop_stop()


def live_templates(path: Path, limit: int) -> list[tuple[str, str, bytes, bytes]]:
    """(kind, topic, head, tail) of one message per device, to stamp with any timestamp: head + ts + tail.

    One per device, so that a device never sends twice within a few hundred milliseconds at any
    offered load the benchmark uses, and every (device, timestamp) stays distinct.
    """
    topics = TopicScheme()
    stamp = re.compile(rb'"ts":("[^"]*"|[0-9.]+)')
    seen: set[str] = set()
    found: list[tuple[str, str, bytes, bytes]] = []
    for _, topic, payload in read_messages(path):
        parsed = topics.parse(topic)
        if parsed.source_id in seen:
            continue
        seen.add(parsed.source_id)
        match = stamp.search(payload)
        if match is None:
            continue
        found.append((parsed.kind, topic, payload[: match.start(1)], payload[match.end(1) :]))
        if len(found) == limit:
            break
    return found


def gateway_templates(
    singles: Iterable[tuple[str, str, bytes, bytes]],
    size: int,
    gateway_of: Mapping[str, str | None],
    prefix: str = "citypulse/v1",
) -> list[tuple[str, str, list[tuple[bytes, bytes]]]]:
    """Gateway batches of up to ``size`` readings of one kind, each through the gateway the registry
    puts its devices behind (``gateway_of``: device id to gateway): (kind, topic, [(head, tail), ...])."""
    by_gateway: dict[tuple[str, str], list[tuple[bytes, bytes]]] = {}
    for kind, topic, head, tail in singles:
        device = topic.rsplit("/", 1)[-1]
        by_gateway.setdefault((kind, gateway_of.get(device) or f"gw-bench-{kind}"), []).append((head, tail))
    batches = []
    for (kind, gateway), parts in by_gateway.items():
        for start in range(0, len(parts), size):
            batches.append((kind, f"{prefix}/batches/{kind}/{gateway}", parts[start : start + size]))
    return batches
