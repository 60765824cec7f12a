"""The ``citypulse`` command line: one entry point, one sub-command per job.

Each sub-command lives in its own module of this package; this file
only registers them and turns user mistakes into one clear line (exit status 2).
"""

from __future__ import annotations

import sys
from importlib.metadata import PackageNotFoundError, version
from typing import Annotated

import typer

from ingest.cli import (
    alerts,
    anomalies,
    bench,
    dashboards,
    demo,
    detect,
    devices,
    evaluate,
    evaluate_real,
    replay,
    simulate,
    storage,
)
from ingest.cli import ingest as ingest_command
from ingest.cli.common import Command, Group, UserError, err

app = typer.Typer(
    name="citypulse",
    help="Smart-city sensor pipeline: MQTT in, validation, anomaly detection, storage, alerts.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    cls=Group,
)
app.command("anomalies", cls=Command)(anomalies.anomalies)
app.command(
    "bench",
    cls=Command,
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
)(bench.bench)
app.command("demo", cls=Command)(demo.demo)
app.command("detect", cls=Command)(detect.detect)
app.command("evaluate", cls=Command)(evaluate.evaluate_command)
app.command("evaluate-real", cls=Command)(evaluate_real.evaluate_real)
app.command("ingest", cls=Command)(ingest_command.ingest)
app.command("replay", cls=Command)(replay.replay)
app.command("simulate", cls=Command)(simulate.simulate)
app.add_typer(dashboards.app, name="dashboards")
app.add_typer(storage.app, name="storage")
app.add_typer(alerts.app, name="alerts")
app.add_typer(devices.app, name="devices")


def installed_version() -> str:
    """The version pip installed, from the package's metadata (pyproject.toml is the one source)."""
    try:
        return version("citypulse")
    except PackageNotFoundError:
        return "unknown (not installed: pip install -e .)"


def _print_version(wanted: bool) -> None:
    if wanted:
        typer.echo(f"citypulse {installed_version()}")
        raise typer.Exit()


@app.callback()
def _root(
    show_version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_print_version, is_eager=True, help="Print the installed version and exit."
        ),
    ] = False,
) -> None:
    """Smart-city sensor pipeline: MQTT in, validation, anomaly detection, storage, alerts."""


def main() -> None:
    """Console-script entry point: user mistakes become one clear line and exit status 2."""
    try:
        app()
    except UserError as bad:
        err.print(f"[bold red]error:[/bold red] {bad}", highlight=False)
        sys.exit(2)
    except KeyboardInterrupt:
        sys.exit(130)
