"""Detector baselines survive a crash: the running service checkpoints them, and a restart takes them back."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from tests.e2e.helpers import IngestProcess, last_json_line, run_citypulse, stored_counts, wait_until
from tests.servers import Mosquitto


def test_a_sigkilled_service_restarts_with_the_baselines_it_had_learned(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    registry = tmp_path / "devices.csv"
    state = tmp_path / "detectors.npz"
    made = run_citypulse("simulate", "--devices", "20", "--registry", str(registry), "--dry-run")
    assert made.returncode == 0, made.stderr
    env = {
        "CITYPULSE_MQTT_URL": mosquitto.url,
        "CITYPULSE_REGISTRY": str(registry),
        "CITYPULSE_SQLITE_PATH": str(tmp_path / "store.sqlite"),
        "CITYPULSE_DETECTOR_STATE": str(state),
        "CITYPULSE_DETECTOR_STATE_INTERVAL_S": "1",
        "CITYPULSE_METRICS_PORT": "0",
    }
    ingest = IngestProcess(tmp_path, env)
    try:
        wait_until(lambda: "citypulse ingest: reading" in ingest.log(), 30, "the service to start")
        sim = run_citypulse(
            "simulate", "--registry", str(registry), "--mqtt-url", mosquitto.url,
            "--span", "2h", "--speed", "0", "--seed", "4", "--json",
        )  # fmt: skip
        assert sim.returncode == 0, sim.stderr
        expected = last_json_line(sim.stdout)["valid_by_kind"]
        wait_until(
            lambda: stored_counts(tmp_path / "store.sqlite") == expected, 60, f"the store to hold {expected}"
        )
        stored_at = state.stat().st_mtime if state.exists() else 0.0
        # A checkpoint written after the last reading was stored holds everything learned.
        wait_until(lambda: state.exists() and state.stat().st_mtime > stored_at, 30, "a checkpoint")
    finally:
        ingest.kill()  # SIGKILL: no save on stop
    with np.load(state) as saved:
        learned = {key: saved[key].copy() for key in saved.files if key.startswith("detectors/")}
    assert learned, "the checkpoint holds detector state"
    assert any(np.issubdtype(a.dtype, np.floating) and np.isfinite(a).any() for a in learned.values())

    restarted = IngestProcess(tmp_path, env)
    try:
        wait_until(lambda: "restored detector state" in restarted.log(), 30, "the restart to load the state")
    finally:
        code = restarted.terminate()
    assert code == 0, restarted.log()
    found = re.search(
        r"restored detector state from .*: (\d+) detectors, up to (\d+) devices", restarted.log()
    )
    assert found, restarted.log()
    assert int(found.group(1)) > 0
    assert int(found.group(2)) == 4, "each kind's 4 devices came back"
