"""Every panel, variable and annotation query of every dashboard, run against a real influxd 1.x.

The database is filled once for the module by the real ingest path: ``citypulse
storage setup``, then ``citypulse ingest`` (InfluxDB v1 sink) reading a simulated
fleet with faults and incidents from Mosquitto. Alerts are not produced by ingest
yet, so the ``alerts`` measurement and the alert fields of ``pipeline`` are written
exactly as SCHEMA-alerts.md specifies, through the same sink's event path.

Each query is expanded as Grafana would for a fixed range (``$timeFilter``,
``$__interval``, ``${__from}``/``${__to}``, the variables, ``$rp`` from its own
query) and must answer without error, with the columns it selects and data in
them: a misspelt measurement, field or tag makes it come back empty.
"""

from __future__ import annotations

import json
import re
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from dashboards import catalog, device, domains, overview, pipeline_health
from dashboards.influxql import InfluxQLAnnotationTarget, InfluxQLQuery
from processors.kinds import KINDS
from processors.registry import REGISTRY_COLUMNS
from tests.e2e.helpers import IngestProcess, last_json_line, run_citypulse, wait_until
from tests.servers import Influxd, running_influxd, running_mosquitto

pytestmark = pytest.mark.slow

INTERVAL = "10s"
PIPELINE_INTERVAL = "1s"
"""The ingest run lasts seconds: its own samples (``pipeline``, one a second here) are read as a narrow
panel zoomed on that run would read them, so rates have several intervals to come from."""
QUICK_SILENCE = ("air-", "water-", "lighting-")
"""One device of each of these kinds reports every second, says the ingest registry, so it falls silent
right after the run."""


@dataclass
class City:
    influxd: Influxd
    start_ms: int
    end_ms: int
    silent: list[str]
    alerted: dict[str, str]
    """Per kind that had one, a device the real alert rules fired on."""
    open_targets: set[str]
    """What the ingest's own alert store holds open at the end (``citypulse alerts list``)."""

    def query(self, statement: str) -> dict[str, Any]:
        url = f"{self.influxd.url}/query?" + urllib.parse.urlencode(
            {"db": "citypulse", "q": statement, "epoch": "ms"}
        )
        with urllib.request.urlopen(urllib.request.Request(url, method="POST"), timeout=30) as answer:
            result: dict[str, Any] = json.loads(answer.read())["results"][0]
        return result


@pytest.fixture(scope="module")
def city(tmp_path_factory: pytest.TempPathFactory) -> Iterator[City]:
    work = tmp_path_factory.mktemp("city")
    with running_mosquitto(work / "mosquitto") as broker, running_influxd(work / "influxd") as influxd:
        influx_env = {
            "CITYPULSE_SINK": "influxdb",
            "CITYPULSE_INFLUX_API": "v1",
            "CITYPULSE_INFLUX_URL": influxd.url,
            "CITYPULSE_INFLUX_BUCKET": "citypulse",
        }
        setup = run_citypulse("storage", "setup", "--json", env=influx_env)
        assert setup.returncode == 0, setup.stderr
        registry = work / "devices.csv"
        made = run_citypulse("simulate", "--devices", "40", "--registry", str(registry), "--dry-run")
        assert made.returncode == 0, made.stderr
        rows = registry.read_text().splitlines()
        quick = [next(i for i, row in enumerate(rows) if row.startswith(prefix)) for prefix in QUICK_SILENCE]
        silent = [rows[i].split(",")[0] for i in quick]
        for i in quick:
            cells = rows[i].split(",")
            cells[REGISTRY_COLUMNS.index("interval_s")] = "1"
            rows[i] = ",".join(cells)
        ingest_registry = work / "ingest-devices.csv"
        ingest_registry.write_text("\n".join(rows) + "\n")
        env = {
            **influx_env,
            "CITYPULSE_MQTT_URL": broker.url,
            "CITYPULSE_REGISTRY": str(ingest_registry),
            "CITYPULSE_METRICS_INTERVAL_S": "1",
            "CITYPULSE_METRICS_PORT": "0",
            "CITYPULSE_DEVICES_REFRESH_S": "10",
            "CITYPULSE_SPOOL_DIR": str(work / "spool"),
            "CITYPULSE_DETECTOR_STATE": "",
            "CITYPULSE_ALERTS_STORE": str(work / "alerts.sqlite"),
        }
        ingest = IngestProcess(work, env)
        try:
            wait_until(lambda: "citypulse ingest: reading" in ingest.log(), 60, "ingest to start")
            sim = run_citypulse(
                "simulate", "--registry", str(registry), "--mqtt-url", broker.url, "--span", "6h",
                "--speed", "0", "--faults", "all", "--scenario", "incidents", "--seed", "5", "--json",
            )  # fmt: skip
            assert sim.returncode == 0, sim.stderr
            simulated = last_json_line(sim.stdout)
            stored = sum(simulated["valid_by_kind"].values())

            def caught_up() -> bool:
                series = influxd.query('SELECT last("valid") FROM "pipeline"')[0].get("series", [])
                return bool(series) and series[0]["values"][0][1] >= stored

            wait_until(caught_up, 120, f"ingest to store {stored} readings")

            def silent_written() -> bool:
                query = 'SELECT "state" FROM "devices" WHERE "state" = \'silent\' GROUP BY "device"'
                return len(influxd.query(query)[0].get("series", [])) >= len(silent)

            wait_until(silent_written, 60, "the quick devices to be written silent")
        finally:
            code = ingest.terminate()
        assert code == 0, ingest.log()
        end_ms = time.time_ns() // 1_000_000
        listed = run_citypulse("alerts", "list", "--json", env=env)
        assert listed.returncode == 0, listed.stderr
        open_targets = {a["target"] for a in last_json_line(listed.stdout)["open"]}
        alerted = {}
        for kind in KINDS:  # per kind, a device the real alert rules fired on, for the drill-down
            found = influxd.query(
                f'SELECT "device" FROM "alerts" WHERE "kind" = \'{kind}\' AND "event" = \'fired\''
            )
            devices = sorted({row[1] for s in found[0].get("series", []) for row in s["values"] if row[1]})
            if devices:
                alerted[kind] = devices[0]
        assert alerted, "the incidents raised no device alert"
        yield City(
            influxd,
            int(simulated["sim_start_ms"]) - 600_000,
            end_ms + 60_000,
            silent,
            alerted,
            open_targets,
        )


def expand(text: str, city: City, variables: dict[str, str]) -> str:
    """The query as Grafana sends it for the fixed range, with these variable values."""
    text = text.replace("${__from}", str(city.start_ms)).replace("${__to}", str(city.end_ms))
    text = text.replace("$timeFilter", f"time >= {city.start_ms}ms and time <= {city.end_ms}ms")
    interval = PIPELINE_INTERVAL if 'FROM "pipeline"' in text else INTERVAL
    text = text.replace("$__interval_ms", "10000").replace("$__interval", interval)
    for name in sorted(variables, key=len, reverse=True):
        text = text.replace("$" + name, variables[name])
    assert not re.search(r"\$[A-Za-z_{]", text), f"unexpanded macro or variable in {text}"
    return text


def selected_columns(statement: str) -> list[str]:
    """The names the outer SELECT gives its columns (alias, function name, or field)."""
    body = statement[len("SELECT ") : _outer_from(statement)]
    names, depth, item = [], 0, ""
    for char in body + ",":
        depth += char == "("
        depth -= char == ")"
        if char == "," and depth == 0:
            item = item.strip()
            alias = re.search(r'\s+AS\s+"([^"]+)"$', item)
            call = re.match(r"(\w+)\(", item)
            names.append(alias.group(1) if alias else call.group(1) if call else item.strip('"'))
            item = ""
        else:
            item += char
    return names


def _outer_from(statement: str) -> int:
    depth = 0
    for i in range(len(statement)):
        depth += statement[i] == "("
        depth -= statement[i] == ")"
        if depth == 0 and statement.startswith(" FROM ", i):
            return i
    raise AssertionError(f"no FROM in {statement}")


def answer_rows(city: City, statement: str) -> tuple[list[str], list[list[Any]]]:
    result = city.query(statement)
    assert "error" not in result, f"{result['error']}: {statement}"
    columns: list[str] = []
    rows: list[list[Any]] = []
    for series in result.get("series", []):
        columns = series["columns"]
        rows.extend(series["values"])
    return columns, rows


def assert_answers(city: City, statement: str, *, may_be_empty: bool = False) -> None:
    columns, rows = answer_rows(city, statement)
    if not rows and may_be_empty:
        return
    assert rows, f"no data: {statement}"
    if statement.startswith("SELECT"):
        wanted = selected_columns(statement)
        assert set(wanted) <= set(columns), f"columns {columns}, wanted {wanted}: {statement}"
        filled = [columns.index(c) for c in wanted]
        assert any(any(row[i] is not None for i in filled) for row in rows), f"only nulls: {statement}"


def dashboard_queries(board: Any) -> list[tuple[str, str, bool]]:
    """(panel title, InfluxQL, may the answer be empty) for every target of a built dashboard."""
    found = []
    for panel in board.panels or []:
        for target in getattr(panel, "targets", None) or []:
            assert isinstance(target, InfluxQLQuery)
            # Counts of devices past a band are often 0; one detector's events are checked kind by kind below.
            conditional = (panel.title or "").startswith("Above ") or '"detector" = ' in target.query
            found.append((panel.title or "", target.query, conditional))
    return found


def run_board(city: City, entry: catalog.Entry, variables: dict[str, str]) -> None:
    board = catalog.build(entry)
    assert board.templating is not None
    variables_ = board.templating.list_val or []
    policy = [v for v in variables_ if v.name == "rp"]
    values = dict(variables)
    if policy:
        _, rows = answer_rows(city, expand(str(policy[0].query), city, {}))
        assert [r[1] for r in rows] == ["autogen"], "a 6-hour range reads the raw policy"
        values["rp"] = rows[0][1]
    for variable in variables_:
        if variable.name != "rp":
            assert_answers(city, expand(str(variable.query), city, values))
    assert board.annotations is not None
    for annotation in board.annotations.list_val or []:
        target = annotation.target
        assert isinstance(target, InfluxQLAnnotationTarget)
        statement = expand(target.query, city, values)
        columns, rows = answer_rows(city, statement)
        assert rows, f"annotation {annotation.name!r} finds nothing: {statement}"
        assert {target.text_column, target.tags_column} <= set(columns)
    for _title, query, conditional in dashboard_queries(board):
        assert_answers(city, expand(query, city, values), may_be_empty=conditional)


def entry(uid: str) -> catalog.Entry:
    return next(e for e in catalog.entries() if e.uid == uid)


def test_overview_queries(city: City) -> None:
    run_board(city, entry(overview.UID), {"kind": ".*", "district": ".*"})
    board = catalog.build(entry(overview.UID))
    silent_panel = next(q for t, q, _ in dashboard_queries(board) if t == "Devices silent now")
    _, rows = answer_rows(city, expand(silent_panel, city, {"kind": ".*", "district": ".*"}))
    result = city.query(expand(silent_panel, city, {"kind": ".*", "district": ".*"}))
    assert sorted(s["tags"]["device"] for s in result["series"]) == sorted(city.silent)
    assert all(row[1] == "silent" for row in rows)
    alerts_panel = next(q for t, q, _ in dashboard_queries(board) if t == "Open alerts")
    result = city.query(expand(alerts_panel, city, {"kind": ".*", "district": ".*"}))
    open_now = {s["tags"]["target"] for s in result["series"] if s["values"][0][1] == 1}
    assert city.open_targets, "the incidents left no alert open"
    assert open_now == city.open_targets, "the panel shows what the alert store holds open"


@pytest.mark.parametrize("kind", list(KINDS))
def test_domain_queries(city: City, kind: str) -> None:
    run_board(city, entry(domains.uid(KINDS[kind])), {"district": ".*", "device": ".*"})


def test_every_kind_shows_some_of_its_city_events(city: City) -> None:
    """The incidents scenario fires the rule detectors: their panels must find their events."""
    empty = []
    for kind in KINDS.values():
        board = catalog.build(entry(domains.uid(kind)))
        for title, query, _ in dashboard_queries(board):
            if '"detector" = ' in query:
                _, rows = answer_rows(city, expand(query, city, {"district": ".*", "device": ".*"}))
                if not rows:
                    empty.append(title)
    assert len(empty) <= 4, f"event panels with no event in a run of incidents: {empty}"


def test_device_queries(city: City) -> None:
    for kind, device_id in city.alerted.items():
        fields = [m.name for m in KINDS[kind].measures]
        for field in fields[:2]:
            run_board(city, entry(device.UID), {"kind": kind, "device": device_id, "field": field})


def test_pipeline_queries(city: City) -> None:
    run_board(city, entry(pipeline_health.UID), {"ingest": ".*"})
