"""``citypulse evaluate-real`` on a small SKAB-shaped folder made here."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tests.e2e.helpers import last_json_line, run_citypulse

HEADER = "datetime;a;b;anomaly;changepoint"


def write_file(path: Path, rows: int, shift_at: int | None, seed: int) -> None:
    rng = np.random.default_rng(seed)
    lines = [HEADER if shift_at is not None else "datetime;a;b"]
    for i in range(rows):
        a, b = 10 + rng.standard_normal(), 5 + 0.5 * rng.standard_normal()
        anomalous = shift_at is not None and shift_at <= i < shift_at + 200
        if anomalous:
            a += 8.0
        stamp = f"2020-03-09 10:{i // 60 % 60:02d}:{i % 60:02d}".replace("10:", f"{10 + i // 3600}:", 1)
        row = f"{stamp};{a:.4f};{b:.4f}"
        if shift_at is not None:
            row += f";{1.0 if anomalous else 0.0};{1.0 if i in (shift_at, shift_at + 200) else 0.0}"
        lines.append(row)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")


def test_evaluate_real_scores_each_part(tmp_path: Path) -> None:
    for part, seed in (("valve1", 1), ("valve2", 2), ("other", 3)):
        write_file(tmp_path / part / "0.csv", 900, 600, seed)
    write_file(tmp_path / "anomaly-free" / "anomaly-free.csv", 900, None, 4)
    done = run_citypulse("evaluate-real", "skab", "--data", str(tmp_path), "--detector", "generic", "--json")
    assert done.returncode == 0, done.stderr
    report = last_json_line(done.stdout)
    assert report["detector"] == "generic"
    every = report["results"]["all rows"]
    assert set(every) == {"valve1", "valve2", "other", "anomaly-free", "all labelled"}
    for part in ("valve1", "valve2", "other"):
        assert every[part]["f1"] > 0.9, "an 8-sigma shift of one measure is found and held"
        assert every[part]["nab_standard_edges"] > 50
    assert every["anomaly-free"]["alarm_rows_after_warmup"] == 0
    assert report["results"]["test rows"]["valve1"]["rows"] == 500


def test_evaluate_real_says_what_is_missing(tmp_path: Path) -> None:
    done = run_citypulse("evaluate-real", "skab", "--data", str(tmp_path / "nowhere"))
    assert done.returncode == 2
    assert "--data" in done.stderr
    done = run_citypulse("evaluate-real", "skab", "--data", str(tmp_path), "--detector", "nope")
    assert done.returncode == 2
    assert "generic" in done.stderr


def write_station(folder: Path, station: str, seed: int, fault_at: int | None) -> None:
    """Four years of an hourly station as the PRSA files have them (local time), with a daily cycle."""
    rng = np.random.default_rng(seed)
    lines = [
        '"No","year","month","day","hour","PM2.5","PM10","SO2","NO2","CO","O3","TEMP","PRES","DEWP",'
        '"RAIN","wd","WSPM","station"'
    ]
    hours = 24 * 120
    for i in range(hours):
        day, hour = divmod(i, 24)
        month, mday = 3 + day // 30, 1 + day % 30
        daily = np.sin(2 * np.pi * hour / 24)
        pm25 = np.exp(3.5 + 0.3 * rng.standard_normal())
        no2 = 40 * np.exp(0.2 * rng.standard_normal())
        temp = 15 + 6 * daily + 0.5 * rng.standard_normal()
        if fault_at is not None and fault_at <= i < fault_at + 48:
            temp += 25.0  # a thermometer gone wrong for two days
        cells = [
            str(i + 1), "2013", str(month), str(mday), str(hour), f"{pm25:.0f}", f"{pm25 * 1.3:.0f}", "5",
            "NA" if i % 97 == 0 else f"{no2:.0f}", f"{no2 * 20:.0f}", f"{60 + 30 * daily:.0f}", f"{temp:.1f}",
            "1013.0", f"{temp - 8:.1f}", "0", '"N"', "1.0", f'"{station}"',
        ]  # fmt: skip
        lines.append(",".join(cells))
    (folder / f"PRSA_Data_{station}_20130301-20170228.csv").write_text("\n".join(lines) + "\n")


def test_evaluate_real_counts_alarms_per_device_day_on_beijing_records(tmp_path: Path) -> None:
    write_station(tmp_path, "Dongsi", 5, fault_at=24 * 100)
    write_station(tmp_path, "Huairou", 6, fault_at=None)
    done = run_citypulse(
        "evaluate-real", "beijing", "--data", str(tmp_path), "--detector", "generic", "--json"
    )
    assert done.returncode == 0, done.stderr
    report = last_json_line(done.stdout)
    spans = report["results"]
    assert list(spans) == ["dongsi 2013-15 (dev)", "dongsi 2015-17", "huairou 2013-17"]
    dongsi = spans["dongsi 2013-15 (dev)"]
    assert dongsi["rows"] == 24 * 120
    assert dongsi["alarms"] == 1, "the broken thermometer, once"
    assert spans["huairou 2013-17"]["alarms"] == 0
    assert spans["dongsi 2015-17"]["rows"] == 0
    assert dongsi["alarms_per_device_day"] == round(1 / 730, 4)


def test_evaluate_real_says_which_beijing_file_is_missing(tmp_path: Path) -> None:
    done = run_citypulse("evaluate-real", "beijing", "--data", str(tmp_path))
    assert done.returncode == 2
    assert "PRSA_Data_Dongsi" in done.stderr
