"""``citypulse demo`` shows alerts firing and resolving: its fleet has a water main burst early on."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from tests.e2e.helpers import last_json_line, run_citypulse


def test_the_demo_raises_and_resolves_alerts(tmp_path: Path) -> None:
    # 15 s at 600x is two and a half simulated hours: the burst starts 45 minutes in, lasts 45.
    done = run_citypulse(
        "demo", "--duration", "15", "--speed", "600", "--devices", "60", "--json", timeout=180
    )
    assert done.returncode == 0, done.stderr
    summary = last_json_line(done.stdout)
    assert summary["alerts"] >= 1
    assert summary["alerts_resolved"] >= 1
    assert summary["alerts_by_severity"]["critical"] >= 1
    assert sum(summary["alerts_by_kind"].values()) == summary["alerts"]
    db = sqlite3.connect(tmp_path / summary["store"])
    stored = db.execute(
        "SELECT json_extract(tags, '$.event'), json_extract(tags, '$.rule') FROM events"
        " WHERE measurement = 'alerts'"
    ).fetchall()
    assert ("fired", "water_main_burst") in stored
    assert ("resolved", "water_main_burst") in stored
    assert (tmp_path / "citypulse-demo-alerts.sqlite").exists(), "the demo keeps its own alert store"
    assert not (tmp_path / "citypulse-alerts.sqlite").exists(), "and leaves the service's alone"
