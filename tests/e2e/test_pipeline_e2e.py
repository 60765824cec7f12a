"""A simulated fleet through a real broker into the real ingest process: exact counts.

Every valid reading the simulator published must be in SQLite, every spoiled one
must be dead-lettered with the reason the simulator says it deserves, and the
two must add up to everything published.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from ingest.broker import EmbeddedBroker
from tests.e2e.helpers import (
    IngestProcess,
    expected_deadletters,
    last_json_line,
    run_citypulse,
    stored_counts,
    wait_until,
    watching,
)
from tests.servers import Mosquitto

STATUS = "citypulse/v1/status/ingest/citypulse-ingest"


def fleet_through_pipeline(workdir: Path, broker_url: str, protocol: str, batch: int) -> None:
    registry = workdir / "devices.csv"
    store = workdir / "store.sqlite"
    made = run_citypulse("simulate", "--devices", "100", "--registry", str(registry), "--dry-run")
    assert made.returncode == 0, made.stderr
    env = {
        "CITYPULSE_MQTT_URL": broker_url,
        "CITYPULSE_MQTT_PROTOCOL": protocol,
        "CITYPULSE_REGISTRY": str(registry),
        "CITYPULSE_SQLITE_PATH": str(store),
    }
    with watching(broker_url, ["citypulse/v1/deadletter/#", STATUS]) as watcher:
        ingest = IngestProcess(workdir, env)
        try:
            wait_until(
                lambda: b"online" in watcher.payloads(STATUS),
                30,
                "the ingest service to come online",
            )
            sim = run_citypulse(
                "simulate", "--registry", str(registry), "--mqtt-url", broker_url, "--protocol", protocol,
                "--span", "40m", "--speed", "0", "--faults", "all", "--fault-rate", "0.05",
                "--batch", str(batch), "--seed", "3", "--json",
            )  # fmt: skip
            assert sim.returncode == 0, sim.stderr
            simulated = last_json_line(sim.stdout)
            assert simulated["failed"] == 0
            assert simulated["acknowledged"] == simulated["messages"]
            expected = {
                **simulated["valid_by_kind"],
                "deadletters": sum(simulated["expected_rejects"].values()),
            }
            assert sum(simulated["faults"].values()) > 10, "the run must actually contain bad input"
            wait_until(lambda: stored_counts(store) == expected, 60, f"store to hold {expected}")
            wait_until(
                lambda: len(watcher.payloads("citypulse/v1/deadletter/")) == expected["deadletters"],
                30,
                "every dead letter on MQTT",
            )
        finally:
            code = ingest.terminate()
        assert code == 0, ingest.log()
        letters = [json.loads(p) for p in watcher.payloads("citypulse/v1/deadletter/")]
        assert Counter(d["reason"] for d in letters) == expected_deadletters(simulated)
        assert all(d["help"] and d["detail"] and d["topic"] for d in letters)
        assert stored_counts(store) == expected, "nothing more arrived after the drain"
        log = ingest.log()
        assert "citypulse ingest: reading" in log
        assert "writing to sqlite:" in log
        assert "SIGTERM received" in log
        assert "Client is not connected" not in log, "a clean stop logs no paho error"
        assert watcher.payloads(STATUS)[-1] == b"offline"


@pytest.mark.parametrize(("protocol", "batch"), [("5", 0), ("3.1.1", 20)])
def test_fleet_through_mosquitto(tmp_path: Path, mosquitto: Mosquitto, protocol: str, batch: int) -> None:
    fleet_through_pipeline(tmp_path, mosquitto.url, protocol, batch)


def test_fleet_through_embedded_amqtt(tmp_path: Path, amqtt_broker: EmbeddedBroker) -> None:
    fleet_through_pipeline(tmp_path, amqtt_broker.url, "3.1.1", 0)
