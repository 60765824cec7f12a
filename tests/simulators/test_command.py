"""``citypulse simulate`` as users run it: against a real Mosquitto, to files, stopped, and misused."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

from tests.e2e.helpers import citypulse_command, last_json_line, run_citypulse, wait_until, watching
from tests.servers import Mosquitto

READINGS = "citypulse/v1/readings/#"


def test_a_fleet_published_to_mosquitto_arrives_whole(mosquitto: Mosquitto, tmp_path: Path) -> None:
    with watching(mosquitto.url, [READINGS, "citypulse/v1/batches/#"]) as watcher:
        done = run_citypulse(
            "simulate", "--devices", "60", "--span", "30m", "--speed", "0", "--mqtt-url", mosquitto.url,
            "--faults", "all", "--fault-rate", "0.05", "--labels", "labels.jsonl", "--json",
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        summary = last_json_line(done.stdout)
        assert summary["published"] == summary["acknowledged"] == summary["messages"] > 500
        assert summary["failed"] == 0
        assert summary["labels"] == len(Path("labels.jsonl").read_bytes().splitlines()) > 0
        wait_until(lambda: len(watcher.payloads("citypulse/v1/")) == summary["messages"], 30, "every message")
    assert "simulating 60 devices" in done.stderr
    assert "done: " in done.stderr
    assert "the pipeline must store:" in done.stderr


def test_same_seed_and_start_give_the_same_files(tmp_path: Path) -> None:
    def run(seed: str, name: str) -> bytes:
        done = run_citypulse(
            "simulate", "--devices", "30", "--span", "2h", "--speed", "0", "--seed", seed,
            "--start", "2026-03-02T00:00:00Z", "--faults", "all", "--fault-rate", "0.02",
            "--output", f"{name}.tsv", "--labels", f"{name}.jsonl", "--quiet",
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        return Path(f"{name}.tsv").read_bytes() + b"\n--\n" + Path(f"{name}.jsonl").read_bytes()

    first = run("4", "a")
    assert first == run("4", "b")
    assert first != run("5", "c")


def test_stopping_a_live_run_keeps_the_tally_exact(mosquitto: Mosquitto, tmp_path: Path) -> None:
    """SIGTERM at any moment: what the summary counts is exactly what was sent and acknowledged."""
    with watching(mosquitto.url, [READINGS]) as watcher:
        process = subprocess.Popen(
            [*citypulse_command(), "simulate", "--devices", "300", "--speed", "60", "--duration", "10m",
             "--mqtt-url", mosquitto.url, "--json", "--quiet"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=os.environ,
        )  # fmt: skip
        try:
            wait_until(lambda: len(watcher.payloads("citypulse/v1/")) > 20, 60, "the first readings")
            process.send_signal(signal.SIGTERM)
            stdout, stderr = process.communicate(timeout=60)
        finally:
            if process.poll() is None:
                process.kill()
        assert process.returncode == 0, stderr
        summary = last_json_line(stdout)
        assert summary["published"] == summary["acknowledged"] == summary["messages"] > 0
        wait_until(lambda: len(watcher.payloads("citypulse/v1/")) == summary["messages"], 30, "every message")
        assert sum(summary["valid_by_kind"].values()) == summary["readings"]


def test_without_a_broker_the_simulator_says_so() -> None:
    done = run_citypulse(
        "simulate",
        "--span",
        "1m",
        "--speed",
        "0",
        "--mqtt-url",
        "mqtt://127.0.0.1:9",
        "--connect-timeout",
        "1",
    )
    assert done.returncode == 2
    assert "no MQTT broker answered at mqtt://127.0.0.1:9" in done.stderr
    assert "Traceback" not in done.stderr


def test_a_file_run_tells_how_to_reproduce_it(tmp_path: Path) -> None:
    done = run_citypulse("simulate", "--devices", "10", "--span", "10m", "--speed", "0", "--output", "x.tsv")
    assert done.returncode == 0, done.stderr
    hint = next(line for line in done.stderr.splitlines() if "to reproduce this file exactly" in line)
    again = run_citypulse(
        "simulate", "--devices", "10", "--span", "10m", "--speed", "0", "--output", "y.tsv",
        *hint.split(": ", 1)[1].split(),
    )  # fmt: skip
    assert again.returncode == 0, again.stderr
    assert Path("x.tsv").read_bytes() == Path("y.tsv").read_bytes()
