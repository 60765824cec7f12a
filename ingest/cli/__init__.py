"""The ``citypulse`` command line: one entry point, one sub-command per job.

Each sub-command lives in its own module of this package; this file
only registers them and turns user mistakes into one clear line (exit status 2).
"""

from __future__ import annotations

import sys

import typer

from ingest.cli import dashboards, demo, detect, devices, evaluate, simulate, storage
from ingest.cli import ingest as ingest_command
from ingest.cli.common import UserError, err

app = typer.Typer(
    name="citypulse",
    help="Smart-city sensor pipeline: MQTT in, validation, anomaly detection, storage, alerts.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.command("demo")(demo.demo)
app.command("detect")(detect.detect)
app.add_typer(devices.app, name="devices")
app.command("evaluate")(evaluate.evaluate_command)
app.command("ingest")(ingest_command.ingest)
app.command("simulate")(simulate.simulate)
app.add_typer(dashboards.app, name="dashboards")
app.add_typer(storage.app, name="storage")


def main() -> None:
    """Console-script entry point: user mistakes become one clear line and exit status 2."""
    try:
        app()
    except UserError as bad:
        err.print(f"[bold red]error:[/bold red] {bad}", highlight=False)
        sys.exit(2)
    except KeyboardInterrupt:
        sys.exit(130)
