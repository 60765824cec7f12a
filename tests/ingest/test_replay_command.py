"""``citypulse replay`` as users run it: records fed through the pipeline, files published to Mosquitto."""

from __future__ import annotations

import csv
import itertools
import sqlite3
import time
from pathlib import Path

import orjson
import pytest

from tests.e2e.helpers import (
    IngestProcess,
    last_json_line,
    run_citypulse,
    stored_counts,
    wait_until,
    watching,
)
from tests.servers import Mosquitto
from tests.shared_data import shared_data

BEIJING_MAP = "pm25=PM2.5,pm10=PM10,no2=NO2,co=CO:ug/m3,o3=O3,temperature=TEMP"


BEIJING = shared_data("beijing-air")
STATIONS = sorted(BEIJING.glob("PRSA_Data_*.csv"))


def beijing_cut(path: Path, year: str, month: str, days: range) -> int:
    """Both stations' rows of some days, in one file (the station column names the device)."""
    rows = 0
    with path.open("w", newline="") as out:
        writer = csv.writer(out)
        for number, station in enumerate(STATIONS):
            with station.open(newline="") as handle:
                reader = csv.reader(handle)
                header = next(reader)
                if number == 0:
                    writer.writerow(header)
                for row in reader:
                    if row[1] == year and row[2] == month and int(row[3]) in days:
                        writer.writerow(row)
                        rows += 1
    return rows


@pytest.mark.skipif(len(STATIONS) < 2, reason=f"the Beijing air-quality records are not at {BEIJING}")
def test_two_weeks_of_real_records_go_through_the_whole_pipeline(tmp_path: Path) -> None:
    """A January 2014 smog fortnight at Dongsi and Huairou: stored, indexed, and its episodes alarmed."""
    rows = beijing_cut(tmp_path / "cut.csv", "2014", "1", range(10, 24))
    store = tmp_path / "replay.sqlite"
    done = run_citypulse(
        "replay", str(tmp_path / "cut.csv"), "--feed", "--kind", "air", "--map", BEIJING_MAP,
        "--time", "year,month,day,hour", "--tz", "+08:00", "--device-column", "station",
        "--sqlite", str(store), "--part", "first=2014-01-10..2014-01-17", "--district", "Beijing", "--json",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    summary = last_json_line(done.stdout)
    assert summary["rows"] == rows == 2 * 14 * 24
    readings = summary["readings"]
    assert readings == rows - summary["gaps"]
    assert summary["stored"] + sum(summary["rejects"].values()) == readings
    assert stored_counts(store)["air"] == summary["stored"]
    # Each station declared at the interval it really reports at, and its records kept their dates.
    assert {d: v["interval_s"] for d, v in summary["devices"].items()} == {
        "Dongsi": 3600.0,
        "Huairou": 3600.0,
    }
    assert summary["first"] == "2014-01-09T16:00:00.000Z"  # 2014-01-10 00:00 in Beijing
    db = sqlite3.connect(store)
    try:
        onsets = db.execute("SELECT count(*) FROM events WHERE measurement = 'anomalies'").fetchone()[0]
        hourly_indices = db.execute("SELECT count(*) FROM events WHERE measurement = 'aqi'").fetchone()[0]
    finally:
        db.close()
    assert onsets == sum(summary["onsets_by_detector"].values()) > 0
    assert hourly_indices > 2 * 13 * 24
    parts = {(p["part"], p["device"]): p for p in summary["parts"]}
    assert set(parts) == {("all", "Dongsi"), ("all", "Huairou"), ("first", "Dongsi"), ("first", "Huairou")}
    dongsi = parts[("all", "Dongsi")]
    assert dongsi["device_days"] == 14.0
    # That fortnight was smog most days; every such day raised the VN_AQI alarm.
    assert dongsi["episode_days"] >= 7
    assert dongsi["episode_days_alarmed"]["aqi_vn"] == dongsi["episode_days"]
    # And the alert path raised the city's alert on them: VN_AQI above 150 at both of Beijing's stations
    # (the default district rule), or 250 at one; the replay's alerts are kept apart and delivered to no one.
    assert summary["alerts_fired"]["air_quality_district"] > 0
    assert dongsi["episode_days_alerted"] >= dongsi["episode_days"] - 1
    assert not Path("citypulse-alerts.sqlite").exists(), "the service's own alert store is left alone"
    assert sum(p["onsets"].get("stuck", 0) for k, p in parts.items() if k[0] == "all") == summary[
        "onsets_by_detector"
    ].get("stuck", 0)
    assert summary["totals"]["first"]["device_days"] == 14.0
    assert "alarm onsets per device-day" in done.stderr


def test_any_csv_maps_onto_a_kind_with_units_gaps_and_bad_cells(tmp_path: Path) -> None:
    """Two one-device files in epoch seconds, °F and a fraction for %, NA values, a gap and a typo."""
    start = 1_700_000_000
    for name in ("north", "south"):
        with (tmp_path / f"{name}.csv").open("w", newline="") as out:
            writer = csv.writer(out)
            writer.writerow(["epoch", "fine_dust", "temp_f", "rh"])
            for minute in range(30):
                fine = "NA" if minute == 5 else ("lots" if minute == 7 else f"{10 + minute % 3}")
                row = [str(start + 60 * minute), fine, "68", "0.55"]
                if minute == 12:
                    row = [row[0], "", "", ""]  # the device sent nothing this minute
                writer.writerow(row)
    store = tmp_path / "s.sqlite"
    done = run_citypulse(
        "replay", str(tmp_path / "north.csv"), str(tmp_path / "south.csv"), "--feed",
        "--map", "pm25=fine_dust,temperature=temp_f:degF,humidity=rh:fraction", "--time", "epoch",
        "--sqlite", str(store), "--save-registry", str(tmp_path / "devices.csv"), "--json",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    summary = last_json_line(done.stdout)
    assert summary["rows"] == 60
    assert summary["gaps"] == 2
    assert summary["readings"] == 58
    assert summary["problems"] == {"unreadable value in fine_dust ('lots'), kept as missing": 2}
    assert "north.csv:9: unreadable value in fine_dust" in done.stderr
    assert summary["stored"] == 58
    assert {d: v["interval_s"] for d, v in summary["devices"].items()} == {"north": 60.0, "south": 60.0}
    assert "north,air,north,0.000000,0.000000,,60" in (tmp_path / "devices.csv").read_text()
    db = sqlite3.connect(store)
    try:
        rows = db.execute(
            "SELECT device, ts, pm25, temperature, humidity FROM air ORDER BY device, ts"
        ).fetchall()
    finally:
        db.close()
    north = [r for r in rows if r[0] == "north"]
    assert north[0][1:] == (start * 1000, 10.0, pytest.approx(20.0), pytest.approx(55.0))
    assert [r[2] for r in north[4:8]] == [11.0, None, 10.0, None]  # NA and the typo stay missing
    assert start * 1000 + 12 * 60_000 not in {r[1] for r in north}  # the gap stays a gap


def test_mistakes_are_explained_in_one_line(tmp_path: Path) -> None:
    (tmp_path / "a.csv").write_text("ts,pm\n2024-01-01T00:00:00Z,5\n")
    cases = {
        ("--map", "pm25=pm25"): "no column 'pm25'; its columns are 'ts', 'pm'",
        ("--map", "pm25=pm", "--kind", "noise"): "--kind noise: unknown kind",
        ("--map", "pm25=pm", "--tz", "Mars/Olympus"): "--tz Mars/Olympus: not a time zone",
        (
            "--map",
            "pm25=pm",
            "--feed",
            "--part",
            "x=2024-02-01..2024-01-01",
        ): "the end must come after the start",
        ("--map", "co=pm:ppm"): "mixing ratio",
    }
    for args, message in cases.items():
        done = run_citypulse("replay", str(tmp_path / "a.csv"), *args)
        assert done.returncode == 2, (args, done.stderr)
        assert message in done.stderr, (args, done.stderr)
        assert "Traceback" not in done.stderr


def test_published_records_reach_a_running_ingest_in_order_and_never_from_the_future(
    mosquitto: Mosquitto, tmp_path: Path
) -> None:
    """Six hours recorded three years ago, published at full speed, shifted to end now: all stored."""
    (tmp_path / "devices.csv").write_text(
        "device_id,kind,district,lat,lon,install_date,interval_s\nkiosk-1,air,Ba Đình,21.03,105.83,,300\n"
    )
    recorded = 1_600_000_000
    with (tmp_path / "kiosk.csv").open("w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["time", "pm25", "no2"])
        for step in range(72):
            if 30 <= step < 36:
                continue  # half an hour offline
            writer.writerow([str(recorded + 300 * step), f"{20 + step % 5}", "NA" if step % 7 == 0 else "30"])
    store = tmp_path / "store.sqlite"
    env = {
        "CITYPULSE_MQTT_URL": mosquitto.url,
        "CITYPULSE_REGISTRY": str(tmp_path / "devices.csv"),
        "CITYPULSE_SQLITE_PATH": str(store),
    }
    with watching(mosquitto.url, ["citypulse/v1/readings/#"]) as watcher:
        ingest = IngestProcess(tmp_path, env)
        try:
            wait_until(lambda: "citypulse ingest: reading" in ingest.log(), 60, "ingest to start")
            before_ms = time.time_ns() // 1_000_000
            done = run_citypulse(
                "replay", str(tmp_path / "kiosk.csv"), "--device", "kiosk-1", "--registry",
                str(tmp_path / "devices.csv"), "--map", "pm25=pm25,no2=no2", "--time", "time",
                "--mqtt-url", mosquitto.url, "--json",
            )  # fmt: skip
            after_ms = time.time_ns() // 1_000_000
            assert done.returncode == 0, done.stderr
            summary = last_json_line(done.stdout)
            assert summary["published"] == summary["acknowledged"] == summary["readings"] == 66
            assert summary["failed"] == 0
            wait_until(lambda: stored_counts(store).get("air") == 66, 60, "every reading stored")
        finally:
            assert ingest.terminate() == 0, ingest.log()
        stamps = [orjson.loads(p)["ts"] for p in watcher.payloads("citypulse/v1/readings/air/kiosk-1")]
    assert len(stamps) == 66
    assert stamps == sorted(stamps)
    # One constant moved the records: gaps and spacing as recorded, the last reading stamped when sent.
    assert {b - a for a, b in itertools.pairwise(stamps)} == {300_000, 7 * 300_000}
    assert before_ms - 1000 <= stamps[-1] <= after_ms
    assert summary["shift_ms"] == stamps[0] - recorded * 1000


def test_a_registry_that_misstates_the_interval_is_pointed_out(tmp_path: Path) -> None:
    (tmp_path / "devices.csv").write_text(
        "device_id,kind,district,lat,lon,install_date,interval_s\nstation,air,Ba Đình,21.03,105.83,,60\n"
    )
    rows = "".join(f"{1_600_000_000 + 3600 * h},{20 + h % 4}\n" for h in range(6))
    (tmp_path / "station.csv").write_text("t,pm\n" + rows)
    done = run_citypulse(
        "replay", str(tmp_path / "station.csv"), "--registry", str(tmp_path / "devices.csv"), "--feed",
        "--map", "pm25=pm", "--time", "t", "--sqlite", str(tmp_path / "s.sqlite"),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "station reports every 3600 s in the records but --registry" in done.stderr
    assert "declares 60 s" in done.stderr
