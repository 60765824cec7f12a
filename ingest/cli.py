"""The ``citypulse`` command line: one entry point, one sub-command per job.

Progress and live views go to stderr; results (and the ``--json`` summary, always
the last line) go to stdout, so scripts can pipe one and watch the other.
"""

from __future__ import annotations

import json
import logging
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.logging import RichHandler

from ingest.mqtt_client import BrokerUnreachableError, ConnectOptions
from ingest.settings import Settings, load_settings
from ingest.units import parse_duration
from processors.registry import RegistryError
from processors.timestamps import format_rfc3339, parse_timestamp

app = typer.Typer(
    name="citypulse",
    help="Smart-city sensor pipeline: MQTT in, validation, anomaly detection, storage, alerts.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
err = Console(stderr=True, soft_wrap=True)

ConfigOption = Annotated[
    Path | None,
    typer.Option(
        "--config",
        help="TOML settings file (default: $CITYPULSE_CONFIG, else ./citypulse.toml if present).",
    ),
]


class UserError(Exception):
    """A mistake the user can fix; printed as one line, exit status 2."""


def _setup_logging(level: str) -> None:
    """Rich output for people at a terminal; plain timestamped lines for journald and files."""
    handler: logging.Handler
    if err.is_terminal:
        handler = RichHandler(console=err, show_path=False, rich_tracebacks=False)
        fmt = "%(message)s"
    else:
        handler = logging.StreamHandler(sys.stderr)
        fmt = "%(asctime)s %(levelname)s %(name)s: %(message)s"
    logging.basicConfig(level=level, format=fmt, handlers=[handler], force=True)
    logging.getLogger("paho").setLevel(logging.WARNING)


def _settings(config: Path | None, **overrides: Any) -> Settings:
    try:
        return load_settings(config, **overrides)
    except ValidationError as bad:
        problems = "; ".join(
            f"CITYPULSE_{'_'.join(str(p) for p in e['loc']).upper()}: {e['msg']}" for e in bad.errors()
        )
        raise UserError(f"invalid configuration: {problems}") from None
    except (FileNotFoundError, ValueError) as bad:
        raise UserError(str(bad)) from None


def _print_json(summary: dict[str, object]) -> None:
    sys.stdout.write(json.dumps(summary, ensure_ascii=False, sort_keys=True) + "\n")
    sys.stdout.flush()


def _duration(text: str | None, option: str) -> float | None:
    if text is None:
        return None
    try:
        seconds = parse_duration(text)
    except ValueError as bad:
        raise UserError(f"{option}: {bad}") from None
    if seconds <= 0:
        raise UserError(f"{option} must be positive")
    return seconds


# --------------------------------------------------------------------------------------
@app.command()
def ingest(
    config: ConfigOption = None,
    mqtt_url: Annotated[str | None, typer.Option(help="Broker URL (overrides CITYPULSE_MQTT_URL).")] = None,
    registry: Annotated[
        Path | None, typer.Option(help="Device registry file (overrides CITYPULSE_REGISTRY).")
    ] = None,
    sink: Annotated[str | None, typer.Option(help="sqlite or influxdb (overrides CITYPULSE_SINK).")] = None,
    sqlite_path: Annotated[
        Path | None, typer.Option(help="SQLite store (overrides CITYPULSE_SQLITE_PATH).")
    ] = None,
    connect_timeout: Annotated[
        float, typer.Option(help="Seconds to wait for the broker at start-up.")
    ] = 30.0,
) -> None:
    """Run the ingest service until stopped (Ctrl-C or SIGTERM drain, flush and exit 0).

    Subscribes to readings over MQTT (QoS 1, persistent session), validates them
    against the device registry and each kind's model, stores valid readings,
    dead-letters the rest with a reason, and acknowledges each message only once
    it is stored. Logs one start-up line saying where it reads and writes, then
    progress every 10 s.
    """
    from ingest.service import IngestService

    settings = _settings(config, mqtt_url=mqtt_url, registry=registry, sink=sink, sqlite_path=sqlite_path)
    _setup_logging(settings.log_level)
    try:
        service = IngestService(settings)
    except RegistryError as bad:
        raise UserError(str(bad)) from None
    except ValueError as bad:
        raise UserError(str(bad)) from None
    stop_requested = threading.Event()

    def on_signal(signum: int, frame: object) -> None:
        if stop_requested.is_set():
            return
        stop_requested.set()
        logging.getLogger("citypulse").info("%s received: draining and flushing", signal.Signals(signum).name)
        service.request_stop()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        service.start(connect_timeout)
    except BrokerUnreachableError as bad:
        service.sink.close()
        raise UserError(str(bad)) from None
    service.run()


# --------------------------------------------------------------------------------------
@app.command()
def simulate(
    config: ConfigOption = None,
    devices: Annotated[
        int, typer.Option(min=1, help="Devices in the fleet (split evenly between kinds).")
    ] = 100,
    kinds: Annotated[str, typer.Option(help="Comma-separated kinds, or 'all'.")] = "all",
    duration: Annotated[str | None, typer.Option(help="Wall-clock run time, e.g. 30s, 10m, 2h.")] = None,
    span: Annotated[str | None, typer.Option(help="Simulated time to cover, e.g. 1h, 7d.")] = None,
    speed: Annotated[
        float,
        typer.Option(min=0, help="Simulated seconds per real second; 0 = as fast as possible."),
    ] = 1.0,
    start: Annotated[
        str | None,
        typer.Option(
            help="Simulated start (RFC 3339 or epoch). Default: so the run ends now (replays) or now."
        ),
    ] = None,
    seed: Annotated[int, typer.Option(help="Random seed; the same seed and start give the same bytes.")] = 1,
    registry: Annotated[
        Path | None,
        typer.Option(help="Registry file: reused if it exists, else written with the generated fleet."),
    ] = None,
    mqtt_url: Annotated[str | None, typer.Option(help="Broker URL (overrides CITYPULSE_MQTT_URL).")] = None,
    protocol: Annotated[str | None, typer.Option(help="MQTT protocol: 5 or 3.1.1.")] = None,
    qos: Annotated[int, typer.Option(min=0, max=1, help="Publish QoS (0 or 1).")] = 1,
    batch: Annotated[
        int, typer.Option(min=0, help="Gateway mode: up to N readings per message (0 = one each).")
    ] = 0,
    faults: Annotated[
        str,
        typer.Option(help="Bad input to inject: 'all', or a list such as malformed_json,wrong_type."),
    ] = "",
    fault_rate: Annotated[
        float, typer.Option(min=0, max=1, help="Probability that a reading/message is spoiled.")
    ] = 0.01,
    output: Annotated[
        Path | None,
        typer.Option(help="Write 'topic<TAB>payload' lines here instead of publishing."),
    ] = None,
    client_id: Annotated[str, typer.Option(help="MQTT client id of the simulator.")] = "citypulse-simulator",
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Only write the registry (with --registry) and exit.")
    ] = False,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print a JSON summary as the last line of stdout.")
    ] = False,
) -> None:
    """Run a simulated fleet of sensors publishing readings over MQTT (or to a file).

    Without --duration or --span it runs until Ctrl-C. With --speed above 1 the
    simulated clock starts in the past and catches up with the present, so a
    week can be replayed in minutes without ever stamping a reading in the future.
    """
    from simulators.outputs import FileOutput, MqttOutput, Output
    from simulators.plan import FleetChoices, build, fleet_registry, parse_kinds
    from simulators.runner import Progress, Simulation

    settings = _settings(config, mqtt_url=mqtt_url, mqtt_protocol=protocol)
    _setup_logging(settings.log_level)
    try:
        kind_list = parse_kinds(kinds)
        fleet, _ = fleet_registry(registry, devices, kind_list, seed)
    except (ValueError, RegistryError) as bad:
        raise UserError(str(bad)) from None
    if dry_run:
        if registry is None:
            raise UserError("--dry-run writes the registry: give --registry FILE")
        err.print(f"registry {registry}: {len(fleet)} devices {fleet.counts()}")
        return
    duration_s = _duration(duration, "--duration")
    span_s = _duration(span, "--span")
    now_ms = time.time_ns() // 1_000_000
    if speed == 0 and span_s is None:
        raise UserError(
            "--speed 0 (as fast as possible) needs --span to say how much simulated time to cover"
        )
    if start is not None:
        try:
            start_ms = parse_timestamp(float(start) if start.replace(".", "", 1).isdigit() else start)
        except ValueError as bad:
            raise UserError(f"--start: {bad}") from None
    elif span_s is not None and speed != 1.0:
        start_ms = now_ms - int(span_s * 1000)
    elif duration_s is not None and speed > 1.0:
        start_ms = now_ms - int(duration_s * speed * 1000)
    else:
        start_ms = now_ms
    end_ms = start_ms + int(span_s * 1000) if span_s is not None else None
    try:
        schedule, encoder = build(
            fleet,
            settings.topics,
            FleetChoices(
                kinds=tuple(kind_list),
                seed=seed,
                start_ms=start_ms,
                faults=faults,
                fault_rate=fault_rate,
                batch=batch,
                max_payload_bytes=settings.max_payload_bytes,
            ),
        )
    except ValueError as bad:
        raise UserError(str(bad)) from None
    sink: Output
    if output is not None:
        sink = FileOutput(output)
        target = str(output)
    else:
        mqtt_out = MqttOutput(
            ConnectOptions(endpoint=settings.mqtt, client_id=client_id, protocol=settings.mqtt_protocol),
            qos=qos,
        )
        try:
            mqtt_out.start()
        except BrokerUnreachableError as bad:
            raise UserError(str(bad)) from None
        sink = mqtt_out
        target = settings.mqtt.display()
    simulation = Simulation(
        schedule,
        encoder,
        sink,
        speed=speed,
        duration_s=duration_s if (duration_s or end_ms) else float("inf"),
        end_ms=end_ms,
    )
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    err.print(
        f"simulating {len(fleet)} devices ({', '.join(kind_list)}) from {format_rfc3339(start_ms)} "
        f"at speed {speed:g} → {target}"
    )
    last = [time.monotonic(), 0]

    def show(p: Progress) -> None:
        now = time.monotonic()
        rate = (p.messages - last[1]) / max(now - last[0], 1e-9)
        last[0], last[1] = now, p.messages
        err.print(
            f"[{p.elapsed_s:7.1f}s] sim {format_rfc3339(p.sim_ms)} · {p.messages:,} messages "
            f"({rate:,.0f}/s) · {p.counts.acknowledged:,} acked · {p.counts.failed:,} failed",
            highlight=False,
        )

    try:
        result = simulation.run(stop, progress=show, progress_every_s=2.0)
    except KeyboardInterrupt:
        stop.set()
        raise
    summary = result.summary()
    if as_json:
        _print_json(summary)
    else:
        err.print(summary)


# --------------------------------------------------------------------------------------
@app.command()
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
    from ingest.demo import DemoOptions, run_demo

    settings = _settings(config)
    _setup_logging("WARNING" if as_json else settings.log_level)
    options = DemoOptions(
        devices=devices,
        duration_s=_duration(duration, "--duration"),
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
        _print_json(summary)
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
    err.print(f"  store: {summary['store']} · registry: {summary['registry']}")


def main() -> None:
    """Console-script entry point: user mistakes become one clear line and exit status 2."""
    try:
        app()
    except UserError as bad:
        err.print(f"[bold red]error:[/bold red] {bad}", highlight=False)
        sys.exit(2)
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
