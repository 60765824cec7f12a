"""The benchmarks run end to end at a small size, so that they cannot rot between the runs that
report figures. Their figures are not judged here (the machine is shared); what they check is."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.shared_data import shared_data

ROOT = Path(__file__).resolve().parents[2]


def run(script: str, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / script), *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def test_validate_bench_agrees_with_its_baselines_on_both_message_shapes() -> None:
    out = run(
        "validate_bench.py", "--devices", "300", "--messages", "3000", "--cycle", "500", "--repeat", "1"
    )
    assert out.count("(all three agree)") == 2
    # Each of the three validators, on both shapes, with a rate by wall clock and by CPU time.
    rows = re.findall(
        r"^  (pure-Python per reading|pydantic per message|citypulse validator)\s+([\d,]+)\s", out, re.M
    )
    assert [name for name, _ in rows].count("citypulse validator") == 2
    assert all(int(rate.replace(",", "")) > 0 for _, rate in rows)
    assert "bytes per device" in out


def test_memory_probe_stores_the_whole_backlog_and_finds_the_detector_state() -> None:
    out = run("memory_probe.py", "--devices", "300", "--cycle", "500", "--trace")
    done = re.search(r"backlog done: ([\d,]+) messages, ([\d,]+) readings stored", out)
    assert done is not None, out[-1500:]
    messages, stored = (int(n.replace(",", "")) for n in done.groups())
    assert messages > 1000
    assert stored == messages
    assert re.search(r"after cycle 1 \(500 messages\)\s+\d+ MiB resident", out)
    assert "_storage.py" in out.split("largest live allocations")[1], "detector state is among the largest"


def test_detect_bench_reports_speed_and_state_per_device_field() -> None:
    out = run("detect_bench.py", "--devices", "200", "--batches", "3", "--series-rows", "200")
    assert "reading-fields/s" in out
    assert re.search(r"\d+ vs \d+ bytes/device-field", out), out[-1500:]
    assert "one series of 200 hourly readings" in out


def test_receive_paths_acknowledge_every_message_after_writing_it() -> None:
    out = run("receive_paths.py", "--devices", "200", "--span", "10m", "--json")
    summary = json.loads(out.strip().splitlines()[-1])
    assert {"paho-manual-ack", "paho-manual-ack-3.1.1", "lean-socket"} <= set(summary["runs"])
    for name, runs in summary["runs"].items():
        for figures in runs:
            assert figures["received"] == summary["messages"], name
            assert figures["left_unacknowledged"] == 0, name


SKAB = shared_data("skab")
needs_skab = pytest.mark.skipif(
    not (SKAB / "valve1" / "0.csv").is_file(), reason=f"the SKAB recordings are not at {SKAB}"
)


@needs_skab
def test_detect_series_bench_times_both_paths_on_every_series() -> None:
    out = run(
        "detect_series_bench.py",
        "--skab",
        str(SKAB),
        "--rows",
        "3000",
        "--today-rows",
        "600",
        "--repeat",
        "1",
    )
    rates = re.findall(r"before\s+([\d,]+) rows/s\s+now\s+([\d,]+) rows/s", out)
    assert len(rates) == 3
    assert all(int(a.replace(",", "")) > 0 and int(b.replace(",", "")) > 0 for a, b in rates)


@needs_skab
def test_skab_compare_scores_candidates_and_ablations() -> None:
    out = run(
        "skab_compare.py",
        "--skab",
        str(SKAB),
        "--only",
        "generic,generic-v1,generic: fast evidence only",
    )
    rows = re.findall(r"^\| (generic[^|]*) \| (0\.\d{3}) \|", out, re.M)
    assert [name.strip() for name, _ in rows] == ["generic", "generic-v1", "generic: fast evidence only"]
    assert all(0.5 < float(f1) < 1 for _, f1 in rows)
