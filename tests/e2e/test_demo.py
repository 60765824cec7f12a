from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import time
from pathlib import Path

from processors.kinds import KINDS
from tests.e2e.helpers import (
    citypulse_command,
    last_json_line,
    run_citypulse,
    stored_counts,
    wait_until,
    watching,
)
from tests.servers import Mosquitto

HOUR_MS = 3_600_000


def stored_readings(store: Path, since_ms: int = 0) -> int:
    db = sqlite3.connect(store)
    try:
        return sum(
            db.execute(f'SELECT count(*) FROM "{k}" WHERE ts >= ?', (since_ms,)).fetchone()[0] for k in KINDS
        )
    finally:
        db.close()


def test_demo_runs_the_whole_pipeline_with_nothing_installed(tmp_path: Path) -> None:
    done = run_citypulse("demo", "--duration", "10", "--json", timeout=120)
    assert done.returncode == 0, done.stderr
    summary = last_json_line(done.stdout)
    kinds = summary["kinds"]
    simulator = summary["simulator"]
    for kind in KINDS:
        assert kinds[kind]["stored"] > 0, f"no {kind} readings stored"
        assert kinds[kind]["stored"] == simulator["valid_by_kind"][kind]
    assert summary["received"] == summary["stored"] + summary["rejected"]
    assert summary["rejected_by_reason"] == simulator["expected_rejects"]
    store = tmp_path / summary["store"]
    db = sqlite3.connect(store)
    assert sum(db.execute(f'SELECT count(*) FROM "{k}"').fetchone()[0] for k in KINDS) == summary["stored"]


def test_demo_uses_an_existing_broker_when_given_one(tmp_path: Path, mosquitto: Mosquitto) -> None:
    # The demo keeps to its own topic prefix, so it never mixes with a real fleet on the same broker.
    with watching(mosquitto.url, ["citypulse-demo/v1/readings/#", "citypulse/v1/#"]) as watcher:
        done = run_citypulse(
            "demo", "--duration", "5", "--devices", "20", "--mqtt-url", mosquitto.url, "--json", timeout=120
        )
        assert done.returncode == 0, done.stderr
        summary = last_json_line(done.stdout)
        assert summary["stored"] > 0
        assert summary["received"] == summary["simulator"]["acknowledged"]
        # The readings went through Mosquitto, where anyone subscribed sees them too.
        wait_until(
            lambda: len(watcher.payloads("citypulse-demo/v1/readings/")) == summary["simulator"]["messages"],
            10,
            "the demo's readings on the external broker",
        )
        assert not watcher.payloads("citypulse/v1/"), "nothing on the production prefix"
    assert "Client is not connected" not in done.stderr, "a clean stop logs no paho error"


def test_a_second_demo_starts_afresh_and_leaves_the_services_state_alone(tmp_path: Path) -> None:
    # Each demo replays the last minutes up to now; a second run goes back over time the first covered.
    runs = [run_citypulse("demo", "--duration", "5", "--json", timeout=120) for _ in range(2)]
    for done in runs:
        assert done.returncode == 0, done.stderr
    store = tmp_path / "citypulse-demo.sqlite"
    second = last_json_line(runs[1].stdout)
    assert stored_readings(store) == second["stored"], "the second demo's store holds its own readings only"
    assert "starting afresh: removed the previous demo store" in runs[1].stderr
    kept = run_citypulse("demo", "--duration", "3", "--keep", "--json", timeout=120)
    assert kept.returncode == 0, kept.stderr
    assert "starting afresh" not in kept.stderr
    assert stored_readings(store) >= second["stored"] + last_json_line(kept.stdout)["stored"] - 10, (
        "--keep adds to the previous store (a reading stamped alike in both runs is stored once)"
    )
    assert not (tmp_path / "citypulse-detectors.npz").exists(), (
        "the service's own state file is not the demo's"
    )
    assert (tmp_path / "citypulse-demo-detectors.npz").exists()
    injected = sum(last_json_line(done.stdout)["simulator"]["faults"].get("out_of_order", 0) for done in runs)
    db = sqlite3.connect(tmp_path / last_json_line(runs[1].stdout)["store"])
    late = db.execute(
        "SELECT count(*) FROM events"
        " WHERE measurement = 'anomalies' AND json_extract(tags, '$.detector') = 'late'"
    ).fetchone()[0]
    assert late <= injected, f"{late} late readings for {injected} delivered out of order"


def test_sigterm_stops_the_demo_cleanly_and_the_replay_kept_a_steady_rate(tmp_path: Path) -> None:
    """SIGTERM: the fleet stops, the pipeline stores what the broker accepted, the summary is printed,
    the store is closed (no -wal/-shm left). Without --duration the fleet replays as far back as
    validation accepts, so at 3,600x it is still replaying the past, at a steady rate, when stopped."""
    started = time.monotonic()
    process = subprocess.Popen(
        [*citypulse_command(), "demo", "--devices", "20", "--speed", "3600", "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=os.environ,
    )
    store = tmp_path / "citypulse-demo.sqlite"
    try:
        wait_until(lambda: sum(stored_counts(store).values()) > 1000, 60, "the first readings in the store")
        time.sleep(max(0.0, 10 - (time.monotonic() - started)))  # a 6-hour replay would be over by now
        process.send_signal(signal.SIGTERM)
        stdout, stderr = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, stderr
    assert "stopping: draining what the broker already accepted" in stderr
    summary = last_json_line(stdout)
    simulator = summary["simulator"]
    assert summary["messages"] == simulator["acknowledged"] == simulator["messages"] > 1000
    assert summary["stored"] == stored_readings(store)
    assert not list(tmp_path.glob("*-wal")), "the store was closed cleanly"
    assert not list(tmp_path.glob("*-shm"))
    now_ms = time.time() * 1000
    assert simulator["sim_end_ms"] < now_ms - 24 * HOUR_MS, "still replaying the past when stopped"
    assert simulator["sim_start_ms"] > now_ms - 7 * 24 * HOUR_MS, "never older than CITYPULSE_MAX_AGE_S"
    assert summary["rejected_by_reason"].get("timestamp_too_old", 0) == simulator["expected_rejects"].get(
        "timestamp_too_old", 0
    )


def test_after_the_replay_the_fleet_goes_on_at_its_natural_rate(tmp_path: Path) -> None:
    devices = 1000
    done = run_citypulse(
        "demo", "--devices", str(devices), "--replay", "30s", "--speed", "30", "--duration", "12",
        "--faults", "none", "--json", timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    summary = last_json_line(done.stdout)
    simulator = summary["simulator"]
    # The replayed half minute is over about a second in; everything stamped later was sent live.
    live_from = simulator["sim_start_ms"] + 30_000 + 2_000
    live = stored_readings(tmp_path / "citypulse-demo.sqlite", live_from)
    per_kind = devices // len(KINDS)
    natural_per_s = sum(per_kind / kind.interval_s for kind in KINDS.values())
    expected = natural_per_s * (simulator["sim_end_ms"] - live_from) / 1000
    assert expected > 50
    assert live > 0.6 * expected, (
        f"{live} readings after the catch-up; the fleet's natural rate gives {expected:.0f}"
    )
