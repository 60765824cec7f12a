"""The command line explains itself and turns user mistakes into one clear line."""

from __future__ import annotations

import re
from importlib.metadata import version
from pathlib import Path

import pytest

from tests.e2e.helpers import last_json_line, run_citypulse

COMMANDS = [
    [],
    ["anomalies"],
    ["bench"],
    ["demo"],
    ["detect"],
    ["evaluate"],
    ["ingest"],
    ["replay"],
    ["simulate"],
]


@pytest.mark.parametrize("command", COMMANDS)
def test_help_explains_each_command(command: list[str]) -> None:
    done = run_citypulse(*command, "--help")
    assert done.returncode == 0
    assert "Usage: citypulse" in done.stdout
    if not command:
        for sub in ("anomalies", "bench", "demo", "detect", "evaluate", "ingest", "replay", "simulate"):
            assert sub in done.stdout


@pytest.mark.parametrize("command", COMMANDS)
def test_help_shows_defaults_one_way_and_flags_without_a_placeholder(command: list[str]) -> None:
    done = run_citypulse(*command, "--help", env={"COLUMNS": "250"})
    assert done.returncode == 0
    text = done.stdout
    assert "<bool>" not in text, "a flag takes no value"
    assert not re.search(r"\(default|Default:", text), "defaults show as [default: ...] only"
    flags = [
        line for line in text.splitlines() if re.match(r"\W*--(json|help|version|keep|list|dry-run)\b", line)
    ]
    assert flags
    assert all(re.match(r"\W*--[a-z-]+\s{2,}[A-Z]", line) for line in flags), "help follows the flag directly"
    if command:
        assert "[default: " in text


def test_bench_runs_the_checkouts_benchmark_and_says_what_to_do_without_one(tmp_path: Path) -> None:
    options = run_citypulse("bench", "--help-bench")
    assert options.returncode == 0
    assert "--repeat-key" in options.stdout, "the benchmark's own options"
    done = run_citypulse("bench", "--checkout", str(tmp_path), "--size", "small")
    assert done.returncode == 2
    assert f"no bench/e2e.py in {tmp_path}" in done.stderr
    assert "pip install -e ." in done.stderr


def test_version_is_the_installed_one() -> None:
    done = run_citypulse("--version")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"citypulse {version('citypulse')}"


def test_detect_list_is_aligned() -> None:
    done = run_citypulse("detect", "--list")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].split() == ["detector", "category", "kinds", "finds"]
    assert "traffic_consistency" in done.stdout, "the longest name is listed too"
    for column in ("category", "kinds", "finds"):
        at = lines[0].index(column)
        assert all(line[at - 2 : at] == "  " and line[at] != " " for line in lines[1:]), column


def test_ingest_without_a_registry_says_how_to_make_one(tmp_path: Path) -> None:
    done = run_citypulse("ingest", env={"CITYPULSE_REGISTRY": str(tmp_path / "none.csv")})
    assert done.returncode == 2
    assert "does not exist; create one" in done.stderr
    assert "Traceback" not in done.stderr


def test_ingest_without_a_broker_says_so(tmp_path: Path) -> None:
    assert run_citypulse("simulate", "--devices", "5", "--registry", "d.csv", "--dry-run").returncode == 0
    done = run_citypulse(
        "ingest",
        "--connect-timeout",
        "1",
        env={"CITYPULSE_REGISTRY": "d.csv", "CITYPULSE_MQTT_URL": "mqtt://127.0.0.1:9"},
    )
    assert done.returncode == 2
    assert "no MQTT broker answered at mqtt://127.0.0.1:9" in done.stderr


def test_bad_settings_name_the_variable() -> None:
    done = run_citypulse("ingest", env={"CITYPULSE_BATCH_LINGER_S": "-1"})
    assert done.returncode == 2
    assert "CITYPULSE_BATCH_LINGER_S" in done.stderr


def test_simulate_to_a_file(tmp_path: Path) -> None:
    out = tmp_path / "messages.tsv"
    done = run_citypulse(
        "simulate", "--devices", "20", "--kinds", "air,traffic", "--span", "10m", "--speed", "0",
        "--output", str(out), "--json",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    summary = last_json_line(done.stdout)
    lines = out.read_bytes().splitlines()
    assert len(lines) == summary["messages"] == summary["published"] > 0
    columns = [line.split(b"\t", 2) for line in lines]
    assert all(
        topic.startswith(b"citypulse/v1/readings/") and payload.startswith(b"{")
        for _, topic, payload in columns
    )
    sent = [int(ms) for ms, _, _ in columns]
    assert sent == sorted(sent), "lines are in the order the fleet sends them"
    assert summary["sim_start_ms"] <= sent[0]
    assert sent[-1] < summary["sim_end_ms"]
    assert set(summary["readings_by_kind"]) == {"air", "traffic"}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--kinds", "noise"], "unknown kind(s) noise"),
        (["--faults", "gremlins"], "unknown fault(s) gremlins"),
        (["--duration", "soon"], "is not a duration"),
        (["--speed", "0"], "needs --span"),
        (["--dry-run"], "give --registry"),
    ],
)
def test_simulate_mistakes_are_explained(args: list[str], message: str) -> None:
    done = run_citypulse("simulate", *args)
    assert done.returncode == 2, done.stderr
    assert message in done.stderr
