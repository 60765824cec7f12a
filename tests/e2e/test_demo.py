from __future__ import annotations

import sqlite3
from pathlib import Path

from processors.kinds import KINDS
from tests.e2e.helpers import last_json_line, run_citypulse, wait_until, watching
from tests.servers import Mosquitto


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


def test_a_second_demo_starts_afresh_and_leaves_the_services_state_alone(tmp_path: Path) -> None:
    # Each demo replays the last minutes up to now; a second run goes back over time the first covered.
    runs = [run_citypulse("demo", "--duration", "5", "--json", timeout=120) for _ in range(2)]
    for done in runs:
        assert done.returncode == 0, done.stderr
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
