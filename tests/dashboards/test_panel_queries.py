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
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from dashboards import catalog, device, domains, overview, pipeline_health
from dashboards.influxql import InfluxQLAnnotationTarget, InfluxQLQuery
from ingest.settings import load_settings
from ingest.sinks import open_sink
from processors.batch import Event, WriteBatch
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
    """kind -> the device an alert was written for."""

    def query(self, statement: str) -> dict[str, Any]:
        url = f"{self.influxd.url}/query?" + urllib.parse.urlencode(
            {"db": "citypulse", "q": statement, "epoch": "ms"}
        )
        with urllib.request.urlopen(urllib.request.Request(url, method="POST"), timeout=30) as answer:
            result: dict[str, Any] = json.loads(answer.read())["results"][0]
        return result


def _alert_events(alerted: dict[str, tuple[str, str]], end_ms: int) -> list[Event]:
    """Alert events exactly as SCHEMA-alerts.md defines them: one fired and open per kind, one resolved."""
    events = []
    for n, (kind, (device_id, district)) in enumerate(sorted(alerted.items())):
        at = end_ms - (n + 2) * 600_000
        tags = {
            "rule": f"{kind}_check",
            "kind": kind,
            "district": district,
            "severity": "warning",
            "category": "data_fault",
            "event": "fired",
            "target": device_id,
        }
        fields: dict[str, float | int | str | bool] = {
            "id": f"{kind}_check:{device_id}",
            "state": "firing",
            "open": 1.0,
            "value": 42.0,
            "limit": 40.0,
            "message": f"{device_id} reads 42 (limit 40)",
            "message_vi": f"{device_id} đo được 42 (giới hạn 40)",
            "started_ms": float(at),
            "flapping": 0.0,
            "device": device_id,
        }
        events.append(Event("alerts", at, tags=tags, fields=fields))
    device_id, district = alerted["air"]
    resolved = {"rule": "air_old", "kind": "air", "district": district, "severity": "info"}
    resolved |= {"category": "city_condition", "event": "resolved", "target": f"district:{district}"}
    events.append(
        Event(
            "alerts",
            end_ms - 3_000_000,
            tags=resolved,
            fields={"id": "air_old:d", "state": "resolved", "open": 0.0, "message": "cleared", "device": ""},
        )
    )
    for i in range(4):  # the alert fields the alerts work adds to `pipeline`
        fields = {
            "alerts_open": float(len(alerted)),
            "alerts_fired": float(len(alerted) * (i + 1)),
            "alert_deliveries_ok": float(3 * i),
            "alert_deliveries_failed": float(i),
            "alert_deliveries_dropped": 0.0,
            "alert_queue": float(i % 2),
        }
        events.append(
            Event("pipeline", end_ms - (4 - i) * 600_000, tags={"ingest": "citypulse-alerts"}, fields=fields)
        )
    return events


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
        districts = {r.split(",")[0]: r.split(",")[2] for r in rows[1:]}
        alerted = {}
        for kind in KINDS:  # per kind, the device with the most anomalies gets an alert
            found = influxd.query(f'SELECT "device" FROM "anomalies" WHERE "kind" = \'{kind}\'')
            counts = Counter(row[1] for s in found[0].get("series", []) for row in s["values"])
            candidates = [d for d, _ in counts.most_common()]
            assert candidates, f"no {kind} device had an anomaly"
            alerted[kind] = (candidates[0], districts[candidates[0]])
        sink = open_sink(
            load_settings(sink="influxdb", influx={"api": "v1", "url": influxd.url, "bucket": "citypulse"})
        )
        try:
            sink.write(WriteBatch(events=tuple(_alert_events(alerted, end_ms))))
        finally:
            sink.close()
        yield City(
            influxd,
            int(simulated["sim_start_ms"]) - 600_000,
            end_ms + 60_000,
            silent,
            {kind: device_id for kind, (device_id, _) in alerted.items()},
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
    open_by_target = {s["tags"]["target"]: s["values"][0][1] for s in result["series"]}
    assert {t for t, is_open in open_by_target.items() if is_open == 1} == set(city.alerted.values())


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
