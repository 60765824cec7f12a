"""``citypulse storage setup`` on a real influxd 1.x: retention, the hourly rollup, what long ranges read."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest

from dashboards import catalog, domains
from ingest.settings import load_settings
from ingest.sinks import open_sink
from processors.batch import ReadingBatch, WriteBatch
from processors.kinds import get_kind
from processors.registry import Device, Registry
from processors.retention import continuous_query_name, rollup_measurements
from tests.dashboards.test_panel_queries import selected_columns
from tests.e2e.helpers import run_citypulse
from tests.servers import Influxd

HOUR = 3_600_000
DEVICES = [
    Device("air-a", "air", "Ba Dinh", 21.03, 105.83),
    Device("air-b", "air", "Ba Dinh", 21.04, 105.84),
    Device("air-c", "air", "Dong Da", 21.01, 105.82),
]


def env(influxd: Influxd, **more: str) -> dict[str, str]:
    return {
        "CITYPULSE_SINK": "influxdb",
        "CITYPULSE_INFLUX_API": "v1",
        "CITYPULSE_INFLUX_URL": influxd.url,
        "CITYPULSE_INFLUX_BUCKET": "citypulse",
        **more,
    }


def setup(influxd: Influxd, *args: str, **more: str) -> dict[str, object]:
    done = run_citypulse("storage", "setup", "--json", *args, env=env(influxd, **more))
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout.splitlines()[-1])
    assert isinstance(summary, dict)
    return summary


def policies(influxd: Influxd) -> dict[str, tuple[str, bool]]:
    series = influxd.query('SHOW RETENTION POLICIES ON "citypulse"')[0]["series"][0]
    return {row[0]: (row[1], row[4]) for row in series["values"]}


def test_setup_is_idempotent_and_follows_the_settings(influxd: Influxd) -> None:
    first = setup(influxd)
    assert first["changed"] == 2 + len(rollup_measurements())
    assert policies(influxd) == {"autogen": ("720h0m0s", True), "rollup_1h": ("43800h0m0s", False)}
    queries = influxd.query("SHOW CONTINUOUS QUERIES")[0]["series"]
    names = {row[0] for s in queries if s["name"] == "citypulse" for row in s["values"]}
    assert names == {continuous_query_name(m) for m in rollup_measurements()}
    again = setup(influxd)
    assert again["changed"] == 0
    assert all("unchanged" in line or line.startswith("rp_config") for line in again["lines"])  # type: ignore[attr-defined]
    shorter = setup(influxd, CITYPULSE_RETENTION_RAW_DAYS="14")
    assert shorter["changed"] == 1
    assert policies(influxd)["autogen"] == ("336h0m0s", True)


def test_without_influxdb_setup_says_what_to_set(tmp_path: Path) -> None:
    done = run_citypulse("storage", "setup", env={"CITYPULSE_SINK": "sqlite"})
    assert done.returncode == 2
    assert "retention and rollups need CITYPULSE_SINK=influxdb" in done.stderr


@pytest.mark.slow
def test_a_week_rolls_up_to_the_right_hourly_means_and_long_ranges_read_them(influxd: Influxd) -> None:
    registry = Registry(DEVICES)
    kind = get_kind("air")
    table = registry.tables["air"]
    now_ms = int(np.datetime64("now", "ms").astype(np.int64))
    start = (now_ms - 7 * 24 * HOUR) // HOUR * HOUR
    end = now_ms // HOUR * HOUR - HOUR  # whole hours only
    ts = np.arange(start, end, 60_000, dtype=np.int64)
    rng = np.random.default_rng(3)
    settings = load_settings(sink="influxdb", influx={"api": "v1", "url": influxd.url, "bucket": "citypulse"})
    sink = open_sink(settings)
    expected: dict[tuple[str, int], list[float]] = defaultdict(list)
    try:
        for position, device in enumerate(DEVICES):
            values = np.full((ts.size, len(kind.measures)), np.nan)
            pm25 = np.round(rng.uniform(5, 80, ts.size), 2)
            values[:, kind.index_of("pm25")] = pm25
            for t, v in zip(ts.tolist(), pm25.tolist(), strict=True):
                expected[(device.device_id, t // HOUR * HOUR)].append(v)
            batch = ReadingBatch(kind, table, np.full(ts.size, position, dtype=np.intp), ts, values)
            sink.write(WriteBatch(readings=(batch,)))
    finally:
        sink.close()

    summary = setup(influxd, "--backfill", "8d")
    assert any(str(line).startswith("backfill air: ") for line in summary["lines"])  # type: ignore[attr-defined]
    rolled = influxd.query(
        'SELECT "pm25", "pm25_min", "pm25_max", "pm25_count" FROM "rollup_1h"."air" GROUP BY "device"'
    )[0]["series"]
    got = {(s["tags"]["device"], row[0]): row[1:] for s in rolled for row in s["values"]}
    assert set(got) == set(expected), "one rollup point per device and hour, no more"
    for key, readings in expected.items():
        mean, low, high, count = got[key]
        assert mean == pytest.approx(float(np.mean(readings)), abs=1e-9)
        assert (low, high, count) == (min(readings), max(readings), len(readings))

    # A dashboard over the week: its rp variable picks the rollup, and its panels read it.
    board = catalog.build(next(e for e in catalog.entries() if e.uid == domains.uid(kind)))
    assert board.templating is not None
    policy = next(v for v in board.templating.list_val or [] if v.name == "rp")
    choose = str(policy.query).replace("${__from}", str(start)).replace("${__to}", str(now_ms))
    assert influxd.query(choose)[0]["series"][0]["values"][0][1] == "rollup_1h"
    panel = next(p for p in board.panels or [] if p.title == "Fine particulate matter, PM2.5 by district")
    query = panel.targets[0].query  # type: ignore[union-attr,index]
    statement = (
        query.replace("$rp", "rollup_1h")
        .replace("$timeFilter", f"time >= {start}ms and time < {end}ms")
        .replace("$__interval", "1h")
        .replace("$district", ".*")
        .replace("$device", ".*")
    )
    assert selected_columns(statement) == ["mean"]
    series = influxd.query(statement)[0]["series"]
    by_district = {s["tags"]["district"]: dict(s["values"]) for s in series}
    assert set(by_district) == {"Ba Dinh", "Dong Da"}
    hours = range(start, end, HOUR)
    for hour in hours:
        ba_dinh = np.mean([np.mean(expected[(d, hour)]) for d in ("air-a", "air-b")])
        assert by_district["Ba Dinh"][hour] == pytest.approx(float(ba_dinh), abs=1e-9)
        assert by_district["Dong Da"][hour] == pytest.approx(
            float(np.mean(expected[("air-c", hour)])), abs=1e-9
        )
    raw_points = influxd.query('SELECT count("pm25") FROM "autogen"."air"')[0]["series"][0]["values"][0][1]
    rollup_points = sum(len(s["values"]) for s in rolled)
    assert raw_points == 60 * rollup_points, "the long range reads 60 times fewer points"
