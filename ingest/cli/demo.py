"""``citypulse demo``: the whole pipeline in one process."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ingest.allocator import keep_freed_memory
from ingest.cli.common import (
    ConfigOption,
    UserError,
    duration_option,
    err,
    print_json,
    settings_from,
    setup_logging,
)
from processors.endpoint import BrokerUnreachableError


def demo(
    config: ConfigOption = None,
    devices: Annotated[int, typer.Option(min=5, help="Simulated devices, split between all kinds.")] = 200,
    duration: Annotated[
        str | None, typer.Option(help="Run time, e.g. 10 or 2m (default: until Ctrl-C).")
    ] = None,
    speed: Annotated[float, typer.Option(min=1, help="Simulated seconds per real second.")] = 60.0,
    seed: Annotated[int, typer.Option(help="Random seed of the fleet.")] = 1,
    mqtt_url: Annotated[str | None, typer.Option(help="Use this broker instead of the embedded one.")] = None,
    sqlite_path: Annotated[Path, typer.Option(help="SQLite store the demo writes.")] = Path(
        "citypulse-demo.sqlite"
    ),
    faults: Annotated[
        str, typer.Option(help="Bad input mixed into the fleet ('all', a list, or 'none').")
    ] = "all",
    fault_rate: Annotated[float, typer.Option(min=0, max=1, help="Share of readings spoiled.")] = 0.02,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print a JSON summary as the last line of stdout.")
    ] = False,
) -> None:
    """See the whole pipeline work, with nothing installed: broker, fleet, ingest, store, live view.

    Starts an embedded MQTT broker on a free loopback port (unless --mqtt-url),
    a simulated fleet of every sensor kind with a little bad input mixed in,
    the ingest pipeline and the SQLite store, and shows live rates, rejects by
    reason, anomalies and the store size. Ctrl-C stops it cleanly.
    """
    from ingest.cli.demo_stack import DemoOptions, run_demo

    settings = settings_from(config)
    setup_logging("WARNING" if as_json else settings.log_level)
    keep_freed_memory(settings.malloc_keep_mb)
    options = DemoOptions(
        devices=devices,
        duration_s=duration_option(duration, "--duration"),
        speed=speed,
        seed=seed,
        mqtt_url=mqtt_url,
        sqlite_path=sqlite_path,
        faults=faults,
        fault_rate=fault_rate,
    )
    try:
        summary = run_demo(options, settings, err, live=not as_json)
    except BrokerUnreachableError as bad:
        raise UserError(str(bad)) from None
    if as_json:
        print_json(summary)
    else:
        _show_summary(summary)


def _show_summary(summary: dict[str, object]) -> None:
    kinds = summary["kinds"]
    assert isinstance(kinds, dict)
    err.print("[bold]demo finished[/bold]")
    for kind, counts in kinds.items():
        err.print(
            f"  {kind:9} received {counts['received']:>7,}  stored {counts['stored']:>7,}"
            f"  rejected {counts['rejected']:>5,}"
        )
    by_severity = summary.get("alerts_by_severity") or {}
    assert isinstance(by_severity, dict)
    severities = ", ".join(f"{s} {n}" for s, n in sorted(by_severity.items())) or "none"
    err.print(
        f"  alerts: {summary['alerts']} fired ({severities}), {summary['alerts_resolved']} resolved, "
        f"{summary['alerts_open']} open · citypulse alerts list --config ... shows them"
    )
    err.print(f"  store: {summary['store']} · registry: {summary['registry']}")
