"""Dashboards as code: committed JSON is the generator's, round-trips through the SDK, covers every kind."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from dashboards import catalog
from dashboards.influxql import DATASOURCE_UID, InfluxQLQuery, load_dashboard
from ingest.stats import STORE_REJECTED
from processors.kinds import KINDS

ROOT = Path(__file__).resolve().parents[2]


def test_committed_json_is_what_the_code_generates() -> None:
    assert catalog.stale() == [], "run: citypulse dashboards build"


@pytest.mark.parametrize("path", sorted(catalog.JSON_DIR.glob("*.json")), ids=lambda p: p.name)
def test_each_dashboard_round_trips_through_the_sdk(path: Path) -> None:
    text = path.read_text()
    assert catalog.to_json(load_dashboard(json.loads(text))) == text


def _targets(board: dict[str, object]) -> list[dict[str, object]]:
    found = []
    for panel in board["panels"]:  # type: ignore[attr-defined]
        for inner in [panel, *panel.get("panels", [])]:
            found.extend(inner.get("targets", []))
    return found


@pytest.mark.parametrize("entry", catalog.entries(), ids=lambda e: e.uid)
def test_every_query_is_influxql_on_the_provisioned_source(entry: catalog.Entry) -> None:
    board = catalog.build(entry)
    ids = [p.id_val for p in board.panels or []]
    assert len(ids) == len(set(ids)), "panel ids are unique"
    queries = [t for p in board.panels or [] for t in (getattr(p, "targets", None) or [])]
    assert queries, "a dashboard without queries shows nothing"
    for query in queries:
        assert isinstance(query, InfluxQLQuery)
        assert query.datasource is not None
        assert query.datasource.uid == DATASOURCE_UID
        assert "$timeFilter" in query.query or "now() - 30d" in query.query
    annotations = board.annotations.list_val if board.annotations else []
    assert any(a.name == "Alerts fired" for a in annotations or []), "alerts annotate every time-series panel"


def test_every_kind_has_its_dashboard_with_a_panel_per_measure() -> None:
    boards = {p.name: json.loads(p.read_text()) for p in catalog.JSON_DIR.glob("*.json")}
    for name, kind in KINDS.items():
        text = json.dumps(boards[f"{name}.json"])
        for measure in kind.measures:
            assert f'mean(\\"{measure.name}\\")' in text or f'last(\\"{measure.name}\\")' in text


def test_rejects_panel_knows_every_reason_ingest_can_write() -> None:
    from dashboards.pipeline_health import REJECT_REASONS

    assert STORE_REJECTED in REJECT_REASONS


NEW_KIND = '''
"""Noise monitors (a kind the dashboards have never heard of)."""
from processors.kinds.base import Limit, Reading, SensorKind, measure


class NoiseReading(Reading):
    laeq: float | None = measure(
        "dB", 20, 140, "Equivalent sound level", normal=(40, 75), limits=(Limit(70, "WHO 2018, day"),)
    )
    peak: float | None = measure("dB", 20, 160, "Peak sound level", normal=(50, 100))


KIND = SensorKind(
    name="noise", title="Noise", model=NoiseReading, interval_s=60.0, fiware_type="NoiseLevelObserved"
)
'''


def test_a_new_kind_gets_its_dashboard_with_no_edit_in_dashboards(tmp_path: Path) -> None:
    for package in ("processors", "dashboards", "ingest"):
        shutil.copytree(ROOT / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__"))
    (tmp_path / "processors" / "kinds" / "noise.py").write_text(NEW_KIND)
    done = subprocess.run(
        [sys.executable, "-m", "ingest.cli", "dashboards", "build"],
        cwd=tmp_path,
        env={"PYTHONPATH": str(tmp_path), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    board = json.loads((tmp_path / "dashboards" / "json" / "noise.json").read_text())
    titles = [p["title"] for p in board["panels"]]
    assert "Equivalent sound level by district" in titles
    assert "Peak sound level by district" in titles
    laeq = next(p for p in board["panels"] if p["title"] == "Equivalent sound level by district")
    assert {"color": "red", "value": 70} in laeq["fieldConfig"]["defaults"]["thresholds"]["steps"]
    assert laeq["fieldConfig"]["defaults"]["unit"] == "suffix: dB"
    built = tmp_path / "dashboards" / "json"
    assert 'max(\\"valid_noise\\"), 1s) AS \\"noise\\"' in (built / "overview.json").read_text()
    assert (
        '"matcher": {\n              "id": "byName",\n              "options": "laeq"'
        in (built / "device.json").read_text()
    )
    for name in ("air.json", "water.json", "pipeline.json"):
        assert (built / name).read_text() == (catalog.JSON_DIR / name).read_text(), "other kinds' boards stay"
