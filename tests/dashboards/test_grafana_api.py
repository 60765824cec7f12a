"""``citypulse dashboards push`` and ``check`` against a small Grafana: bodies, headers, and failures."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from dashboards import catalog
from dashboards.influxql import DATASOURCE_UID
from ingest.broker import free_port
from tests.dashboards.fake_grafana import FakeGrafana, running
from tests.e2e.helpers import run_citypulse

ENV = {
    "CITYPULSE_GRAFANA_TOKEN": "svc-token",
    "CITYPULSE_GRAFANA_INFLUX_URL": "http://influxdb:8086",
    "CITYPULSE_GRAFANA_INFLUX_TOKEN": "read-only-token",
    "CITYPULSE_INFLUX_BUCKET": "citypulse",
}


@pytest.fixture
def grafana() -> Iterator[FakeGrafana]:
    with running(FakeGrafana()) as fake:
        yield fake


def test_push_uploads_source_folder_and_every_dashboard_with_the_token(grafana: FakeGrafana) -> None:
    done = run_citypulse("dashboards", "push", "--grafana-url", grafana.url, "--json", env=ENV)
    assert done.returncode == 0, done.stderr
    assert all(r.headers["Authorization"] == "Bearer svc-token" for r in grafana.requests)
    source = grafana.datasources[DATASOURCE_UID]
    assert source["type"] == "influxdb"
    assert source["url"] == "http://influxdb:8086"
    assert source["jsonData"] == {
        "dbName": "citypulse",
        "httpMode": "POST",
        "version": "InfluxQL",
        "httpHeaderName1": "Authorization",
    }
    assert source["secureJsonData"] == {"httpHeaderValue1": "Token read-only-token"}
    assert grafana.folders == {"citypulse": {"title": "citypulse", "uid": "citypulse"}}
    posted = [r.body for r in grafana.requests if r.path == "/api/dashboards/db"]
    expected = {name: json.loads(text) for name, text in catalog.render().items()}
    assert len(posted) == len(expected)
    for body in posted:
        assert body["folderUid"] == "citypulse"
        assert body["overwrite"] is True
        board = body["dashboard"]
        assert board.pop("id") is None
        assert board in expected.values()
    assert "read-only-token" not in done.stderr + done.stdout, "secrets are never printed"

    again = run_citypulse("dashboards", "push", "--grafana-url", grafana.url, env=ENV)
    assert again.returncode == 0, again.stderr
    assert any(
        r.method == "PUT" and r.path == f"/api/datasources/uid/{DATASOURCE_UID}" for r in grafana.requests
    )
    assert len([r for r in grafana.requests if r.path == "/api/folders"]) == 1, "the folder is made once"


def test_check_reports_current_then_a_stale_dashboard_and_a_sick_source(grafana: FakeGrafana) -> None:
    missing = run_citypulse("dashboards", "check", "--grafana-url", grafana.url, env=ENV)
    assert missing.returncode == 1
    assert "data source 'citypulse-influxdb' is missing: run citypulse dashboards push" in missing.stderr
    assert run_citypulse("dashboards", "push", "--grafana-url", grafana.url, env=ENV).returncode == 0
    done = run_citypulse("dashboards", "check", "--grafana-url", grafana.url, "--json", env=ENV)
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout.splitlines()[-1])
    assert summary["ok"] is True
    assert sum("is current" in line for line in summary["lines"]) == len(catalog.entries())
    assert any("is healthy" in line for line in summary["lines"])

    grafana.dashboards["citypulse-air"]["dashboard"]["title"] = "edited by hand"
    grafana.datasource_healthy = False
    stale = run_citypulse("dashboards", "check", "--grafana-url", grafana.url, env=ENV)
    assert stale.returncode == 1
    assert "differs from air.json: run citypulse dashboards push" in stale.stderr
    assert "is unhealthy: error reading InfluxDB: 401 unauthorized" in stale.stderr


def test_a_grafana_that_answers_401_gets_one_clear_line_and_exit_2(grafana: FakeGrafana) -> None:
    grafana.refuse_all = True
    for command in ("push", "check"):
        done = run_citypulse("dashboards", command, "--grafana-url", grafana.url, env=ENV)
        assert done.returncode == 2
        assert "refused the token (401 Unauthorized): set CITYPULSE_GRAFANA_TOKEN" in done.stderr
        assert "Traceback" not in done.stderr
    assert grafana.datasources == {}


def test_a_grafana_that_is_down_gets_one_clear_line_and_exit_2() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    for command in ("push", "check"):
        done = run_citypulse("dashboards", command, "--grafana-url", url, env=ENV)
        assert done.returncode == 2
        assert f"cannot reach Grafana at {url}: is it running" in done.stderr
        assert "Traceback" not in done.stderr


def test_the_token_can_come_from_a_docker_secret_file(grafana: FakeGrafana, tmp_path: object) -> None:
    from pathlib import Path

    secret = Path(str(tmp_path)) / "grafana-token"
    secret.write_text("svc-token\n")
    env = {**ENV, "CITYPULSE_GRAFANA_TOKEN": "wrong", "CITYPULSE_GRAFANA_TOKEN_FILE": str(secret)}
    done = run_citypulse("dashboards", "push", "--grafana-url", grafana.url, env=env)
    assert done.returncode == 0, done.stderr
