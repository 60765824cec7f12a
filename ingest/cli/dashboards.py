"""``citypulse dashboards build|push|check``: the Grafana dashboards, as code and in Grafana."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from ingest.cli.common import ConfigOption, UserError, err, print_json, settings_from
from ingest.settings import Settings

app = typer.Typer(
    help="Grafana dashboards generated from the sensor kinds: build the JSON, push it, check Grafana.",
    no_args_is_help=True,
)

OutDir = Annotated[
    Path | None,
    typer.Option("--out", help="Directory of the JSON files (default: the package's dashboards/json)."),
]
GrafanaUrl = Annotated[
    str | None, typer.Option("--grafana-url", help="Grafana base URL (overrides CITYPULSE_GRAFANA_URL).")
]
JsonFlag = Annotated[bool, typer.Option("--json", help="Print a JSON summary as the last line.")]


def influx_source(settings: Settings) -> Any:
    """The InfluxDB the Grafana data source reads: the store's, unless Grafana reaches it elsewhere."""
    from dashboards.grafana import InfluxSource

    g = settings.grafana
    try:
        token = g.read_token()
    except ValueError as bad:
        raise UserError(str(bad)) from None
    database = settings.influx.bucket.split("/", 1)[0]
    return InfluxSource(
        url=g.influx_url or settings.influx.url, database=database, token=token, api=settings.influx.api
    )


def _boards() -> dict[str, dict[str, Any]]:
    from dashboards.catalog import render

    return {name: json.loads(text) for name, text in render().items()}


@app.command("build")
def build(
    out: OutDir = None,
    check_only: Annotated[
        bool, typer.Option("--check", help="Only say whether the files are current (exit 1 if not).")
    ] = False,
) -> None:
    """Regenerate the dashboard JSON from the sensor-kind declarations (committed, provisioned by Grafana)."""
    from dashboards.catalog import JSON_DIR, stale, write

    directory = out or JSON_DIR
    if check_only:
        outdated = stale(directory)
        if outdated:
            err.print(f"out of date in {directory}: {', '.join(outdated)}; run citypulse dashboards build")
            raise typer.Exit(1)
        err.print(f"every dashboard in {directory} is current")
        return
    for path in write(directory):
        err.print(f"wrote {path}")


def _api(settings: Settings, url: str | None) -> Any:
    from dashboards.grafana import connect

    g = settings.grafana
    try:
        token = g.api_token()
    except ValueError as bad:
        raise UserError(str(bad)) from None
    return connect(url or g.url, token, g.timeout_s)


@app.command("push")
def push(config: ConfigOption = None, grafana_url: GrafanaUrl = None, json_summary: JsonFlag = False) -> None:
    """Upload the data source, the citypulse folder and every dashboard to an existing Grafana.

    The token comes from CITYPULSE_GRAFANA_TOKEN (or CITYPULSE_GRAFANA_TOKEN_FILE); the data source
    reads InfluxDB with the read-only token CITYPULSE_GRAFANA_INFLUX_TOKEN.
    """
    from dashboards.grafana import GrafanaError
    from dashboards.grafana import push as do_push

    settings = settings_from(config)
    try:
        report = do_push(_api(settings, grafana_url), influx_source(settings), _boards())
    except GrafanaError as failed:
        raise UserError(str(failed)) from None
    for line in report.lines:
        err.print(line, highlight=False)
    if json_summary:
        print_json({"ok": report.ok, "lines": report.lines})


@app.command("check")
def check(
    config: ConfigOption = None, grafana_url: GrafanaUrl = None, json_summary: JsonFlag = False
) -> None:
    """Say whether Grafana answers, the data source is healthy and every dashboard is there and current.

    Exit status 0 when all is well, 1 when something needs a push or a fix, 2 when Grafana cannot be used.
    """
    from dashboards.grafana import GrafanaError
    from dashboards.grafana import check as do_check

    settings = settings_from(config)
    try:
        report = do_check(_api(settings, grafana_url), _boards())
    except GrafanaError as failed:
        raise UserError(str(failed)) from None
    for line in report.lines:
        err.print(("ok   " if line not in report.problems else "FAIL ") + line, highlight=False)
    if json_summary:
        print_json({"ok": report.ok, "lines": report.lines, "problems": report.problems})
    if not report.ok:
        raise typer.Exit(1)
