"""``citypulse detect`` and ``citypulse evaluate`` from the command line."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import orjson

from processors.timestamps import format_rfc3339
from tests.e2e.helpers import last_json_line, run_citypulse

START = 1_795_132_800_000


def write_series(path: Path, rows: int, spike_at: int) -> None:
    rng = np.random.default_rng(2)
    values = 50 + 5 * np.sin(np.arange(rows) / 240) + 0.3 * rng.standard_normal(rows)
    values[spike_at] += 9.0
    with path.open("w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["timestamp", "value", "note"])
        for i, value in enumerate(values):
            writer.writerow([format_rfc3339(START + i * 60_000), f"{value:.3f}", f"n{i}"])
        writer.writerow(["not a time", "1", "bad"])
        writer.writerow([START // 1000 + rows * 60, "", "empty"])


def test_detect_scores_every_row_and_finds_the_spike(tmp_path: Path) -> None:
    source, target = tmp_path / "series.csv", tmp_path / "scored.csv"
    write_series(source, rows=600, spike_at=450)
    done = run_citypulse("detect", str(source), "-o", str(target), "--json")
    assert done.returncode == 0, done.stderr
    summary = last_json_line(done.stdout)
    assert (summary["rows"], summary["unreadable"]) == (602, 2)
    with target.open(newline="") as scored:
        rows = list(csv.DictReader(scored))
    assert len(rows) == 602
    assert list(rows[0]) == ["timestamp", "value", "note", "anomaly_score", "alarm", "detector"], (
        "input columns kept, in order"
    )
    scores = np.array([float(r["anomaly_score"]) for r in rows])
    assert ((scores >= 0) & (scores <= 1)).all()
    assert int(np.argmax(scores)) == 450, "the spike scores where it is"
    assert scores[[i for i in range(600) if i not in (450, 451)]].max() < 0.5
    assert rows[450]["detector"] == "generic"
    assert {r["alarm"] for r in rows} == {"0"}, "one wild reading is evidence, not a state to page anyone for"
    assert (summary["alarms"], summary["alarm_rows"]) == (0, 0)
    assert rows[-1]["note"] == "empty"
    assert (rows[-1]["anomaly_score"], rows[-1]["alarm"], rows[-1]["detector"]) == ("0.0000", "0", "")
    assert "lines 602, 603" in done.stderr
    by_detector = summary["alarms_by_detector"]
    assert set(by_detector) == set(summary["detectors"])
    assert max(by_detector.values()) <= summary["alarms"] <= sum(by_detector.values())


def test_detect_holds_an_alarm_while_a_shift_lasts_and_counts_it_once(tmp_path: Path) -> None:
    source, target = tmp_path / "series.csv", tmp_path / "scored.csv"
    rng = np.random.default_rng(5)
    values = 20 + rng.standard_normal(900)
    values[600:] += 8.0
    lines = ["time,reading"] + [f"{START // 1000 + 300 * i},{v:.3f}" for i, v in enumerate(values)]
    source.write_text("\n".join(lines) + "\n")
    done = run_citypulse(
        "detect", str(source), "-o", str(target), "--timestamp-column", "time", "--value-columns", "reading",
        "--json",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    summary = last_json_line(done.stdout)
    with target.open(newline="") as scored:
        rows = list(csv.DictReader(scored))
    alarm = np.array([r["alarm"] == "1" for r in rows])
    scores = np.array([float(r["anomaly_score"]) for r in rows])
    assert not alarm[:600].any()
    assert alarm[605:].all(), "the alarm holds while the series stays off its normal"
    assert scores[600] >= 0.5, "the score is high where the shift starts ..."
    assert scores[700:].max() < 0.5, "... and falls back once the detector has nothing new to say"
    assert (summary["alarms"], summary["alarm_rows"]) == (1, int(alarm.sum()))
    assert summary["interval_s"] == 300.0


def test_detect_judges_several_value_columns_as_one_device(tmp_path: Path) -> None:
    """Two measures that wander together; at row 1000 they part, each by about two of its own spreads:
    seen when they are judged together, not in either alone."""
    source, target = tmp_path / "series.csv", tmp_path / "scored.csv"
    rng = np.random.default_rng(6)
    common = np.zeros(1500)
    for i in range(1, 1500):
        common[i] = 0.9 * common[i - 1] + 0.44 * rng.standard_normal()
    a = 10 + common + 0.5 * rng.standard_normal(1500)
    b = 5 + common + 0.5 * rng.standard_normal(1500)
    a[1000:] += 2.5
    b[1000:] -= 2.5
    lines = ["timestamp,a,b"] + [
        f"{START + 60_000 * i},{x:.4f},{y:.4f}" for i, (x, y) in enumerate(zip(a, b, strict=True))
    ]
    source.write_text("\n".join(lines) + "\n")
    for columns, share in (("a,b", 0.9), ("a", 0.0)):
        done = run_citypulse("detect", str(source), "-o", str(target), "--value-columns", columns)
        assert done.returncode == 0, done.stderr
        with target.open(newline="") as scored:
            alarm = np.array([r["alarm"] == "1" for r in csv.DictReader(scored)])
        assert not alarm[:1000].any()
        assert alarm[1000:].mean() > share if share else not alarm.any(), columns


def test_detect_explains_a_wrong_header(tmp_path: Path) -> None:
    source = tmp_path / "series.csv"
    source.write_text("time,reading\n2026-11-23T00:00:00Z,1\n")
    done = run_citypulse("detect", str(source), "-o", str(tmp_path / "out.csv"))
    assert done.returncode == 2
    assert "--timestamp-column" in done.stderr
    assert "Traceback" not in done.stderr


def test_detect_combines_detectors_and_names_the_one_that_scored(tmp_path: Path) -> None:
    source, target = tmp_path / "series.csv", tmp_path / "scored.csv"
    write_series(source, rows=600, spike_at=450)
    done = run_citypulse("detect", str(source), "-o", str(target), "--detectors", "spike,generic", "--json")
    assert done.returncode == 0, done.stderr
    assert last_json_line(done.stdout)["detectors"] == ["generic", "spike"]
    with target.open(newline="") as scored:
        rows = list(csv.DictReader(scored))
    assert rows[451]["detector"] == "spike", "the spike detector confirms it on the next reading"
    assert rows[451]["alarm"] == "1"
    assert {r["detector"] for r in rows} <= {"generic", "spike", ""}


def test_detect_lists_its_detectors() -> None:
    done = run_citypulse("detect", "--list")
    assert done.returncode == 0
    for name in ("generic", "spike", "shift", "aqi_vn", "drinking_water", "silence"):
        assert name in done.stdout


def test_evaluate_scores_rejects_against_message_labels(tmp_path: Path) -> None:
    (tmp_path / "devices.csv").write_text(
        "device_id,kind,district,lat,lon,install_date,interval_s\n"
        + "".join(f"air-{i},air,Ba Đình,21.03,105.85,,\n" for i in range(3))
    )
    lines: list[bytes] = []
    labels: list[dict[str, object]] = []
    for minute in range(120):
        for i in range(3):
            ts = START + minute * 60_000 + i * 1000
            payload = orjson.dumps(
                {"ts": format_rfc3339(ts), "pm25": 40.0 + (minute % 7), "temperature": 24.0}
            )
            if i == 1 and minute in (30, 90):
                payload = payload[:20]
                labels.append(
                    {
                        "fault": "malformed_json",
                        "scope": "message",
                        "device": "air-1",
                        "kind": "air",
                        "field": None,
                        "start_ms": ts,
                        "end_ms": ts,
                        "expected_reason": "malformed_json",
                        "detail": {},
                    }
                )
            lines.append(b"%d\tcitypulse/v1/readings/air/air-%d\t%s\n" % (ts, i, payload))
    (tmp_path / "messages.tsv").write_bytes(b"".join(lines))
    (tmp_path / "labels.jsonl").write_text("".join(json.dumps(label) + "\n" for label in labels))
    done = run_citypulse(
        "evaluate", "messages.tsv", "--labels", "labels.jsonl", "--registry", "devices.csv",
        "--probation", "20m", "--json",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    report = last_json_line(done.stdout)
    malformed = report["faults"]["malformed_json"]
    assert (malformed["episodes"], malformed["detected"], malformed["f1"]) == (2, 2, 1.0)
    assert report["messages"] == 360
    assert set(report["anomalies_by_detector"]) <= {"air"}, "onsets by kind and detector, as live"
