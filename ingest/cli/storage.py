"""``citypulse storage setup``: retention, the hourly rollup and what the dashboards read, idempotently."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ingest.cli.common import ConfigOption, UserError, duration_option, err, print_json, settings_from

app = typer.Typer(help="The store's history: retention policies and the hourly rollup.", no_args_is_help=True)


@app.command("setup")
def setup(
    config: ConfigOption = None,
    backfill: Annotated[
        str | None,
        typer.Option(
            help="Also roll up the raw data of this last span, e.g. 7d (the rollup covers new hours only)."
        ),
    ] = None,
    tokens_dir: Annotated[
        Path | None,
        typer.Option(
            "--tokens-dir",
            help="InfluxDB 2.x: keep a write-only token for ingest and a read-only one for Grafana here "
            "(ingest.token, grafana.token), made when missing.",
        ),
    ] = None,
    json_summary: Annotated[
        bool, typer.Option("--json", help="Print a JSON summary as the last line.")
    ] = False,
) -> None:
    """Set up retention and the hourly rollup in InfluxDB; safe to run again (it says what it changed).

    On 1.x: the raw retention policy (CITYPULSE_RETENTION_RAW_DAYS), the rollup_1h policy
    (CITYPULSE_RETENTION_ROLLUP_DAYS) and a continuous query per measurement. On 2.x: the buckets
    'BUCKET' and 'BUCKET/rollup_1h' and a task per measurement. Both: the rows that make the
    dashboards read the rollup beyond CITYPULSE_RETENTION_ROLLUP_FROM_DAYS.
    """
    from ingest.storage_setup import StorageSetupError, V1Setup, V2Setup

    settings = settings_from(config)
    if settings.sink != "influxdb":
        raise UserError(f"CITYPULSE_SINK={settings.sink}: retention and rollups need CITYPULSE_SINK=influxdb")
    if tokens_dir is not None and settings.influx.api == "v1":
        raise UserError("--tokens-dir makes InfluxDB 2.x tokens; with CITYPULSE_INFLUX_API=v1 leave it out")
    days = (duration_option(backfill, "--backfill") or 0.0) / 86_400
    token = settings.influx.token.get_secret_value()
    try:
        if settings.influx.api == "v1":
            report = V1Setup(
                settings.influx.url, settings.influx.bucket, token, settings.influx.timeout_s
            ).setup(settings.retention, days)
        else:
            v2 = V2Setup(settings.influx.url, settings.influx.bucket, token, settings.influx.org)
            try:
                report = v2.setup(settings.retention, days, tokens_dir)
            finally:
                v2.close()
    except (StorageSetupError, ValueError) as failed:
        raise UserError(str(failed)) from None
    except Exception as failed:  # influxdb-client's ApiException and transport errors
        raise UserError(f"InfluxDB at {settings.influx.url} refused the setup: {failed}") from None
    for line in report.lines:
        err.print(line, highlight=False)
    err.print(f"storage setup done: {report.changed} change(s)")
    if json_summary:
        print_json({"changed": report.changed, "lines": report.lines})
