"""``citypulse demo``: the whole pipeline in one process."""

from __future__ import annotations

import signal
import threading
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
from processors.units import parse_duration


def demo(
    config: ConfigOption = None,
    devices: Annotated[int, typer.Option(min=5, help="Simulated devices, split between all kinds.")] = 200,
    duration: Annotated[
        str | None, typer.Option(help="Run time, e.g. 10 or 2m.", show_default="until Ctrl-C or SIGTERM")
    ] = None,
    speed: Annotated[
        float, typer.Option(min=1, help="Simulated seconds per real second while replaying the past.")
    ] = 60.0,
    replay: Annotated[
        str | None,
        typer.Option(
            help="Simulated past to replay before the fleet reaches the present and goes on in real time.",
            show_default="duration x speed, else as far back as CITYPULSE_MAX_AGE_S allows",
        ),
    ] = None,
    seed: Annotated[int, typer.Option(help="Random seed of the fleet.")] = 1,
    mqtt_url: Annotated[
        str | None, typer.Option(help="Use this broker instead of the embedded one.", show_default="embedded")
    ] = None,
    sqlite_path: Annotated[Path, typer.Option(help="SQLite store the demo writes.")] = Path(
        "citypulse-demo.sqlite"
    ),
    keep: Annotated[
        bool, typer.Option("--keep", help="Add to the store of a previous demo instead of starting afresh.")
    ] = False,
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
    the ingest pipeline and a fresh SQLite store, and shows live rates, rejects by
    reason, anomalies by detector and the store size. The fleet replays the past
    at --speed, then goes on in real time at its natural rate. Ctrl-C or SIGTERM
    stops it cleanly: what the broker accepted is stored, then the summary.
    """
    from ingest.cli.demo_stack import DemoOptions, run_demo

    settings = settings_from(config)
    setup_logging("WARNING" if as_json else settings.log_level)
    keep_freed_memory(settings.malloc_keep_mb)
    replay_s = None
    if replay is not None:
        try:
            replay_s = parse_duration(replay)
        except ValueError as bad:
            raise UserError(f"--replay: {bad}") from None
    options = DemoOptions(
        devices=devices,
        duration_s=duration_option(duration, "--duration"),
        speed=speed,
        seed=seed,
        mqtt_url=mqtt_url,
        sqlite_path=sqlite_path,
        faults=faults,
        fault_rate=fault_rate,
        replay_s=replay_s,
        keep=keep,
    )
    stop = threading.Event()

    def on_signal(signum: int, frame: object) -> None:
        if stop.is_set():
            raise KeyboardInterrupt  # a second signal: stop now, without waiting for the drain
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        summary = run_demo(options, settings, err, live=not as_json, stop=stop)
    except BrokerUnreachableError as bad:
        raise UserError(str(bad)) from None
    if as_json:
        print_json(summary)
    else:
        _show_summary(summary)


def _show_summary(summary: dict[str, object]) -> None:
    kinds = summary["kinds"]
    anomalies = summary["anomalies"]
    by_detector = summary["anomalies_by_detector"]
    assert isinstance(kinds, dict)
    assert isinstance(anomalies, dict)
    assert isinstance(by_detector, dict)
    err.print("[bold]demo finished[/bold]")
    for kind, counts in kinds.items():
        err.print(
            f"  {kind:9} received {counts['received']:>7,}  stored {counts['stored']:>7,}"
            f"  rejected {counts['rejected']:>5,}  anomalies {anomalies.get(kind, 0):>4,}",
            highlight=False,
        )
    pairs = sorted(
        ((n, f"{kind}/{detector}") for kind, found in by_detector.items() for detector, n in found.items()),
        key=lambda pair: (-pair[0], pair[1]),
    )
    if pairs:
        err.print(
            "  anomalies by detector: " + ", ".join(f"{name} {n:,}" for n, name in pairs), highlight=False
        )
    by_severity = summary.get("alerts_by_severity") or {}
    assert isinstance(by_severity, dict)
    severities = ", ".join(f"{s} {n}" for s, n in sorted(by_severity.items())) or "none"
    err.print(
        f"  alerts: {summary['alerts']} fired ({severities}), {summary['alerts_resolved']} resolved, "
        f"{summary['alerts_open']} open",
        highlight=False,
    )
    err.print(f"  store: {summary['store']} · registry: {summary['registry']}", highlight=False)
    err.print(f"  list the anomalies: citypulse anomalies --sqlite-path {summary['store']}", highlight=False)
