"""Anomalies an operator can see: /metrics, progress and summaries, and ``citypulse anomalies``.

The anomalies command is tested against real stores filled through the real
pipeline: a simulated fleet with faults, published to Mosquitto, taken by the
real ``citypulse ingest`` into SQLite or into a real influxd.
"""

from __future__ import annotations

import json
import logging
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from ingest.service import IngestService
from ingest.settings import load_settings
from ingest.sinks import SINKS, ReadError, SinkPlugin, open_reader
from ingest.sinks.sqlite import SqliteSink
from processors.registry import Registry
from processors.timestamps import format_rfc3339
from tests.e2e.helpers import last_json_line, run_citypulse, wait_until
from tests.faults.helpers import Ingest
from tests.servers import Influxd, Mosquitto

Pair = tuple[str, str]


def fill(tmp_path: Path, mosquitto: Mosquitto, influx_url: str, extra: dict[str, str]) -> tuple[Ingest, int]:
    """A faulty fleet's last three hours through the real ingest, which is left running."""
    registry = tmp_path / "devices.csv"
    made = run_citypulse("simulate", "--devices", "100", "--registry", str(registry), "--dry-run")
    assert made.returncode == 0, made.stderr
    ingest = Ingest(tmp_path, mosquitto.url, influx_url, registry, extra=extra).start()
    sim = run_citypulse(
        "simulate", "--registry", str(registry), "--mqtt-url", mosquitto.url, "--span", "3h", "--speed", "0",
        "--faults", "all", "--fault-rate", "0.05", "--seed", "3", "--json",
    )  # fmt: skip
    assert sim.returncode == 0, sim.stderr
    messages = int(last_json_line(sim.stdout)["messages"])
    wait_until(
        lambda: ingest.metric("citypulse_messages_total") == messages, 90, "ingest to take every message"
    )
    return ingest, messages


def metric_pairs(ingest: Ingest) -> Counter[Pair]:
    found = ingest.metrics() or {}
    pairs: Counter[Pair] = Counter()
    for key, value in found.items():
        if key.startswith("citypulse_anomalies_total{"):
            labels = dict(part.split("=", 1) for part in key[key.index("{") + 1 : -1].split(","))
            pairs[(labels["kind"], labels["detector"])] = int(value)
    return pairs


def listed(env: dict[str, str], *args: str) -> list[dict[str, Any]]:
    done = run_citypulse("anomalies", "--json", *args, env=env)
    assert done.returncode == 0, done.stderr
    found = last_json_line(done.stdout)
    assert found["count"] == len(found["anomalies"])
    anomalies: list[dict[str, Any]] = found["anomalies"]
    return anomalies


def check_listing(env: dict[str, str], pairs: Counter[Pair]) -> list[dict[str, Any]]:
    """Every stored onset comes back, as /metrics counted them, and every filter keeps to itself."""
    everything = listed(env, "--limit", "100000")
    assert Counter((a["kind"], a["detector"]) for a in everything) == pairs
    assert [a["ts_ms"] for a in everything] == sorted((a["ts_ms"] for a in everything), reverse=True)
    sample = everything[len(everything) // 2]
    for option, key in (("--kind", "kind"), ("--detector", "detector"), ("--district", "district"),
                        ("--device", "device")):  # fmt: skip
        chosen = listed(env, option, sample[key], "--limit", "100000")
        assert chosen == [a for a in everything if a[key] == sample[key]], option
    both = listed(env, "--kind", sample["kind"], "--detector", sample["detector"], "--limit", "100000")
    assert both == [
        a for a in everything if (a["kind"], a["detector"]) == (sample["kind"], sample["detector"])
    ]
    since = listed(env, "--since", format_rfc3339(sample["ts_ms"]), "--limit", "100000")
    assert since == [a for a in everything if a["ts_ms"] >= sample["ts_ms"]]
    assert 0 < len(since) < len(everything)
    assert listed(env, "--since", "1s") == [a for a in everything if a["ts_ms"] >= time.time() * 1000 - 1000]
    assert listed(env, "--limit", "3") == everything[:3]
    table = run_citypulse("anomalies", "--limit", "5", env=env)
    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    assert lines[0].split() == ["time", "kind", "detector", "field", "district", "device", "score", "value"]
    assert len(lines) == 6
    assert everything[0]["device"] in lines[1]
    return everything


def test_anomalies_from_sqlite_match_the_metrics_and_the_summary(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    store = tmp_path / "store.sqlite"
    ingest, _ = fill(
        tmp_path,
        mosquitto,
        "http://127.0.0.1:9",
        {"CITYPULSE_SINK": "sqlite", "CITYPULSE_SQLITE_PATH": str(store)},
    )
    try:
        pairs = metric_pairs(ingest)
        assert sum(pairs.values()) > 10, pairs
        assert len({d for _, d in pairs}) >= 3, pairs
        everything = check_listing({"CITYPULSE_SQLITE_PATH": str(store)}, pairs)
    finally:
        code = ingest.terminate()
    assert code == 0, ingest.log()
    summary = json.loads(ingest.log().split("citypulse ingest stopped: ", 1)[1].splitlines()[0])
    nested = {k: dict(v) for k, v in summary["anomalies_by_detector"].items()}
    assert nested == {
        kind: {d: n for (k, d), n in sorted(pairs.items()) if k == kind} for kind in {k for k, _ in pairs}
    }
    assert summary["anomalies"] == dict(Counter(a["kind"] for a in everything))
    assert not list(tmp_path.glob("*.sqlite-wal")), "reading the store leaves no WAL files behind"


def test_anomalies_from_influxdb_through_influxql(
    tmp_path: Path, mosquitto: Mosquitto, influxd: Influxd
) -> None:
    ingest, _ = fill(tmp_path, mosquitto, influxd.url, {})
    try:
        wait_until(lambda: len(influxd.rows("anomalies")) == sum(metric_pairs(ingest).values()), 30, "onsets")
        pairs = metric_pairs(ingest)
        assert sum(pairs.values()) > 10, pairs
        v1 = {"CITYPULSE_SINK": "influxdb", "CITYPULSE_INFLUX_API": "v1", "CITYPULSE_INFLUX_URL": influxd.url}
        everything = check_listing(v1, pairs)
        # 2.x and 3.x answer InfluxQL through their v1 compatibility API, bucket as database: the same query.
        v2 = {**v1, "CITYPULSE_INFLUX_API": "v2", "CITYPULSE_INFLUX_BUCKET": "citypulse"}
        assert listed(v2, "--limit", "100000") == everything
    finally:
        code = ingest.terminate()
    assert code == 0, ingest.log()
    stored = {(r["device"], r["time"], r["detector"]) for r in influxd.rows("anomalies")}
    assert {(a["device"], a["ts_ms"], a["detector"]) for a in everything} == stored


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        ([], {"CITYPULSE_SQLITE_PATH": "missing.sqlite"}, "no SQLite store at missing.sqlite"),
        (["--kind", "noise"], {}, "--kind 'noise' is not a sensor kind"),
        (["--detector", "gremlin"], {}, "--detector 'gremlin' is not a detector"),
        (["--since", "yesterday"], {}, "neither a duration"),
        (["--sink", "influxdb"], {"CITYPULSE_INFLUX_URL": "http://127.0.0.1:9"}, "did not answer"),
    ],
)
def test_mistakes_are_explained(args: list[str], env: dict[str, str], message: str) -> None:
    done = run_citypulse("anomalies", *args, env=env)
    assert done.returncode == 2, done.stderr
    assert message in done.stderr
    assert "Traceback" not in done.stderr


def test_a_sink_that_cannot_be_read_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    sqlite = SINKS["sqlite"]
    unreadable = SinkPlugin(
        name="tape", settings=sqlite.settings, factory=sqlite.factory, description="write-only"
    )
    monkeypatch.setattr("ingest.sinks.SINKS", {**SINKS, "tape": unreadable})
    with pytest.raises(ReadError, match="the tape sink stores anomalies but cannot read them back"):
        open_reader(load_settings(sink="tape"))


def test_the_progress_line_counts_anomalies_and_low_rates(
    tmp_path: Path, small_registry: Registry, caplog: pytest.LogCaptureFixture
) -> None:
    service = IngestService(
        load_settings(mqtt_url="mqtt://127.0.0.1:9"),
        registry=small_registry,
        sink=SqliteSink(tmp_path / "s.db"),
    )
    try:
        before = service.stats.snapshot()
        service.stats.record_anomalies({("air", "spike"): 2, ("water", "drinking_water"): 1})
        service.stats.messages = 3
        time.sleep(0.05)
        caplog.set_level(logging.INFO, logger="ingest.service")
        service._log_progress(before)
    finally:
        service.sink.close()
    (line,) = [r.getMessage() for r in caplog.records if "msg/s" in r.getMessage()]
    assert "3 anomalies (air/spike 2, water/drinking_water 1)" in line
    assert "totals: 0 stored, 0 rejected, 3 anomalies" in line
    rate = float(line.split(" msg/s")[0])
    assert rate > 0, "a low rate is shown with decimals, not rounded to 0"
