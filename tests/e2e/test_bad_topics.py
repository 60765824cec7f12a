"""A message on a mistyped topic is dead-lettered, never lost; what the service publishes is never input.

Real Mosquitto, the real ``citypulse ingest`` process and ``mosquitto_pub``, as a
device team would send by hand.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
from pathlib import Path

from bench._servers import require_binary
from tests.e2e.helpers import IngestProcess, run_citypulse, wait_until, watching
from tests.servers import Mosquitto

STATUS = "citypulse/v1/status/ingest/citypulse-ingest"
READING = b'{"ts": "2026-11-23T04:30:00Z", "pm25": 12}'
MISTYPED = [
    "citypulse/v1/reading/air/air-000001",  # 'reading' for 'readings'
    "citypulse/v1/readings/air/air-000001/extra",  # a level too many
    "citypulse/v1/readings/air",  # a level too few
    "citypulse/v1/air/air-000001",  # the form forgotten
]
OWN = [
    "citypulse/v1/deadletter/bad_topic",
    "citypulse/v1/status/ingest/someone-else",
    "citypulse/v1/alerts/air/air-000001",
]


def mosquitto_pub(port: int, topic: str, payload: bytes) -> None:
    binary = require_binary("mosquitto_pub", "mosquitto-clients")
    subprocess.run(
        [binary, "-h", "127.0.0.1", "-p", str(port), "-q", "1", "-t", topic, "-s"],
        input=payload,
        check=True,
        timeout=10,
    )


def deadletters(store: Path) -> list[tuple[str, str]]:
    if not store.exists():
        return []
    db = sqlite3.connect(store)
    try:
        rows = db.execute("SELECT tags, fields FROM events WHERE measurement = 'deadletters'").fetchall()
    except sqlite3.OperationalError:
        return []
    finally:
        db.close()
    return [(json.loads(tags)["reason"], json.loads(fields)["topic"]) for tags, fields in rows]


def test_mistyped_topics_are_dead_lettered_and_own_topics_are_never_input(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    registry = tmp_path / "devices.csv"
    assert (
        run_citypulse("simulate", "--devices", "10", "--registry", str(registry), "--dry-run").returncode == 0
    )
    store = tmp_path / "store.sqlite"
    env = {
        "CITYPULSE_MQTT_URL": mosquitto.url,
        "CITYPULSE_REGISTRY": str(registry),
        "CITYPULSE_SQLITE_PATH": str(store),
    }
    with watching(mosquitto.url, ["citypulse/v1/deadletter/#", STATUS]) as watcher:
        ingest = IngestProcess(tmp_path, env)
        try:
            wait_until(lambda: b"online" in watcher.payloads(STATUS), 30, "the ingest service to come online")
            for topic in OWN:
                mosquitto_pub(mosquitto.port, topic, READING)
            for topic in MISTYPED:
                mosquitto_pub(mosquitto.port, topic, READING)
            wait_until(lambda: len(deadletters(store)) >= len(MISTYPED), 30, "the dead letters in the store")
            wait_until(
                lambda: len(watcher.payloads("citypulse/v1/deadletter/bad_topic")) >= len(MISTYPED) + 1,
                30,
                "the dead letters on MQTT",
            )
        finally:
            code = ingest.terminate()
    assert code == 0, ingest.log()
    assert sorted(deadletters(store)) == sorted(("bad_topic", topic) for topic in MISTYPED), (
        "each mistyped topic once; the service's own topics (status, dead letters, alerts) never"
    )
    published = [json.loads(p) for p in watcher.payloads("citypulse/v1/deadletter/bad_topic")]
    ours = [p for p in published if isinstance(p, dict) and "reason" in p]
    assert sorted(p["topic"] for p in ours) == sorted(MISTYPED), "no dead letter about a dead letter"
    assert all("citypulse/v1/readings/KIND/DEVICE" in p["help"] for p in ours)
    log = ingest.log()
    assert '"messages": 4' in log, "the service took the four mistyped messages and nothing of its own"
    assert "topics citypulse/v1/#" in log
    assert "Client is not connected" not in log, "a clean stop logs no paho error"
    assert " ERROR " not in log
