"""``citypulse simulate``: a simulated fleet."""

from __future__ import annotations

import signal
import threading
import time
from pathlib import Path
from typing import Annotated

import typer

from ingest.cli_common import (
    ConfigOption,
    UserError,
    duration_option,
    err,
    print_json,
    settings_from,
    setup_logging,
)
from ingest.mqtt_client import BrokerUnreachableError, ConnectOptions
from processors.registry import RegistryError
from processors.timestamps import format_rfc3339, parse_timestamp


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

    settings = settings_from(config, mqtt_url=mqtt_url, mqtt_protocol=protocol)
    setup_logging(settings.log_level)
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
    duration_s = duration_option(duration, "--duration")
    span_s = duration_option(span, "--span")
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
        print_json(summary)
    else:
        err.print(summary)
