"""The end-to-end benchmark at its small size: every contender stores every reading, the result says so.

Timings are never judged here (the machine is shared); what is checked is that each stage ran
against the real servers and that the JSON carries what the docs table is made from.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from bench._e2e_report import RUNS_HEADER, write_doc
from ingest.sinks.influxdb import InfluxSettings

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def result() -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-m", "ingest.cli", "bench", "--size", "small", "--json"],  # citypulse bench
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "draining: citypulse ingest, one reading per message" in done.stderr  # progress on stderr
    parsed: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return parsed


pytestmark = pytest.mark.slow


def test_every_drain_contender_stored_every_reading(result: dict[str, Any]) -> None:
    drain = result["drain"]
    expected = {
        "mosquitto_sub",
        "citypulse_singles",
        "citypulse_no_detectors",
        "naive_bridge",
        "citypulse_gateway",
    }
    assert expected <= set(drain)
    assert drain["mosquitto_sub"]["every_message_received"]
    assert drain["mosquitto_sub"]["messages"] == result["backlog"]["single_messages"]
    for name in expected - {"mosquitto_sub"}:
        row = drain[name]
        assert row["every_reading_stored"], (name, row)
        assert (row["missing"], row["extra"]) == (0, 0)
        assert row["stored"] == row["readings"]
        assert row["cpu_s"] > 0
        assert row["peak_rss_mb"] > 0
    assert drain["citypulse_gateway"]["messages"] < drain["citypulse_gateway"]["readings"]
    assert drain["citypulse_singles"]["readings"] == sum(result["backlog"]["readings_by_kind"].values())


def test_node_red_ran_or_the_result_says_why(result: dict[str, Any]) -> None:
    if shutil.which("node") is None or shutil.which("npm") is None:
        assert "left out" in result["node_red"]
        return
    keep = result["drain"]["node_red_keep_session"]
    assert keep["every_reading_stored"], keep
    assert "default_settings_stored_of_backlog" in keep
    offered = [r["offered_readings_per_s"] for r in result["latency"]["node_red"] if not r["fixed"]]
    assert offered, "Node-RED is offered shares of its own maximum"
    assert all(0 < rate <= keep["sustained_msg_per_s"] for rate in offered), (offered, keep)


def test_the_database_alone_stores_every_point(result: dict[str, Any]) -> None:
    ceilings = result["database_ceiling"]
    assert set(ceilings) == {
        "one_connection",
        "two_connections",
        "one_connection_gzip",
        "same_readings_one_connection",
    }
    for row in ceilings.values():
        assert row["every_reading_stored"]
        assert row["points"] == result["backlog"]["single_messages"]
    same = ceilings["same_readings_one_connection"]
    assert same["points_per_body"] == min(same["points"], InfluxSettings().batch_points), (
        "the same readings go in bodies as large as citypulse's writes"
    )


def test_scaling_out_stores_every_reading_once(result: dict[str, Any]) -> None:
    runs = result["scale_out"]
    assert [r["processes"] for r in runs] == [1, 2, 4]
    for r in runs:
        assert r["every_reading_stored"], r
        assert r["every_message_taken_once"], r
        assert len(r["messages_taken"]) == r["processes"]
        assert all(taken and taken > 0 for taken in r["messages_taken"]), "every process took a share"
    assert runs[0]["devices_in_more_than_one_process"] == 0


def test_latency_runs_report_percentiles_of_every_published_reading(result: dict[str, Any]) -> None:
    loads = result["latency"]["citypulse"]
    assert any(r["fixed"] and r["readings_per_message"] > 1 for r in loads)  # gateway batches too
    for r in loads:
        assert r["published_readings"] > 0
        assert r["queryable"] == r["published_readings"], r
        assert r["broker_acknowledged_messages"] == r["published_messages"] > 0
        assert 0 < r["p50_s"] <= r["p95_s"] <= r["p99_s"] <= r["max_s"]


def test_memory_and_ratios_are_reported(result: dict[str, Any]) -> None:
    memory = result["memory"]
    for key in ("ingest_singles", "ingest_gateway"):
        assert memory[key]["every_reading_stored"]
        assert memory[key]["peak_rss_mb"] > 0
    simulator = memory["simulator"]
    assert simulator["devices"][0] < simulator["devices"][1]
    assert isinstance(simulator["bytes_per_device"], int)
    assert set(result["ratios"]) >= {
        "broker_ceiling_over_citypulse_singles",
        "citypulse_singles_over_naive_bridge",
        "citypulse_gateway_over_database_1_connection",
    }
    assert all(v is None or v > 0 for v in result["ratios"].values())
    assert result["commit"]
    assert "cores" in result["machine"]


def test_write_doc_appends_one_row_under_the_runs_table(result: dict[str, Any], tmp_path: Path) -> None:
    doc = tmp_path / "benchmarks.md"
    header = RUNS_HEADER + " | rest |"
    doc.write_text(f"# Benchmarks\n\n{header}\n|---|\n| old row |\n\nAfter the table.\n")
    write_doc(result, doc)
    lines = doc.read_text().splitlines()
    row = lines[lines.index("| old row |") + 1]
    assert row.startswith("| ")
    assert result["commit"] in row
    assert "| small |" in row
    assert lines[-1] == "After the table."
