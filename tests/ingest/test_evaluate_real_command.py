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
