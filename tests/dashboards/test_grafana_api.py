"""``citypulse dashboards push`` and ``check`` against a small Grafana: bodies, headers, and failures."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from dashboards import catalog
from dashboards.grafana import GrafanaError, InfluxSource, check, connect, push
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


def boards() -> dict[str, dict[str, object]]:
    return {name: json.loads(text) for name, text in catalog.render().items()}


SOURCE = InfluxSource(url="http://influxdb:8086", database="citypulse", token="read-only-token")


def test_push_uploads_source_folder_and_every_dashboard_with_the_token(grafana: FakeGrafana) -> None:
    api = connect(grafana.url, "svc-token", 5)
    report = push(api, SOURCE, boards())
    assert report.ok
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
    expected = boards()
    assert len(posted) == len(expected)
    for body in posted:
        assert body["folderUid"] == "citypulse"
        assert body["overwrite"] is True
        board = body["dashboard"]
        assert board.pop("id") is None
        assert board in expected.values()
    assert not any("read-only-token" in line for line in report.lines), "secrets are never reported"

    assert push(api, SOURCE, boards()).ok
    assert any(
        r.method == "PUT" and r.path == f"/api/datasources/uid/{DATASOURCE_UID}" for r in grafana.requests
    )
    assert len([r for r in grafana.requests if r.path == "/api/folders"]) == 1, "the folder is made once"


def test_influxdb_1x_sources_send_user_and_password() -> None:
    body = InfluxSource(url="http://h:8086", database="city", token="reader:secret", api="v1").payload()
    assert (body["user"], body["secureJsonData"]) == ("reader", {"password": "secret"})
    assert "httpHeaderName1" not in body["jsonData"]


def test_check_reports_current_then_a_stale_dashboard_and_a_sick_source(grafana: FakeGrafana) -> None:
    api = connect(grafana.url, "svc-token", 5)
    missing = check(api, boards())
    assert not missing.ok
    assert "data source 'citypulse-influxdb' is missing: run citypulse dashboards push" in missing.problems
    push(api, SOURCE, boards())
    current = check(api, boards())
    assert current.ok, current.problems
    assert sum("is current" in line for line in current.lines) == len(catalog.entries())
    assert any("is healthy" in line for line in current.lines)

    grafana.dashboards["citypulse-air"]["dashboard"]["title"] = "edited by hand"
    grafana.datasource_healthy = False
    stale = check(api, boards())
    assert any("differs from air.json: run citypulse dashboards push" in line for line in stale.problems)
    assert any("is unhealthy: error reading InfluxDB: 401 unauthorized" in line for line in stale.problems)


def test_the_commands_push_then_check_with_exit_codes(grafana: FakeGrafana, tmp_path: Path) -> None:
    secret = tmp_path / "grafana-token"
    secret.write_text("svc-token\n")
    env = {**ENV, "CITYPULSE_GRAFANA_TOKEN": "wrong", "CITYPULSE_GRAFANA_TOKEN_FILE": str(secret)}
    done = run_citypulse("dashboards", "push", "--grafana-url", grafana.url, env=env)
    assert done.returncode == 0, done.stderr
    assert grafana.datasources[DATASOURCE_UID]["secureJsonData"] == {
        "httpHeaderValue1": "Token read-only-token"
    }
    assert "read-only-token" not in done.stderr + done.stdout, "secrets are never printed"
    checked = run_citypulse("dashboards", "check", "--grafana-url", grafana.url, "--json", env=env)
    assert checked.returncode == 0, checked.stderr
    assert json.loads(checked.stdout.splitlines()[-1])["ok"] is True
    grafana.datasource_healthy = False
    sick = run_citypulse("dashboards", "check", "--grafana-url", grafana.url, env=env)
    assert sick.returncode == 1
    assert "FAIL data source 'citypulse-influxdb' is unhealthy" in sick.stderr


def test_a_grafana_that_answers_401_gets_one_clear_line_and_exit_2(grafana: FakeGrafana) -> None:
    grafana.refuse_all = True
    done = run_citypulse("dashboards", "push", "--grafana-url", grafana.url, env=ENV)
    assert done.returncode == 2
    assert "refused the token (401 Unauthorized): set CITYPULSE_GRAFANA_TOKEN" in done.stderr
    assert "Traceback" not in done.stderr
    assert grafana.datasources == {}
    with pytest.raises(GrafanaError, match="refused the token"):
        check(connect(grafana.url, "svc-token", 5), boards())


def test_a_grafana_that_is_down_gets_one_clear_line_and_exit_2() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    done = run_citypulse("dashboards", "check", "--grafana-url", url, env=ENV)
    assert done.returncode == 2
    assert f"cannot reach Grafana at {url}: is it running" in done.stderr
    assert "Traceback" not in done.stderr
    with pytest.raises(GrafanaError, match="cannot reach Grafana"):
        push(connect(url, "svc-token", 5), SOURCE, boards())
