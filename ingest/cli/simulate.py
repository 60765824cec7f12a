"""``citypulse simulate``: a simulated fleet, publishing to a broker or writing to a file."""

from __future__ import annotations

import logging
import signal
import threading
import time
from pathlib import Path
from typing import Annotated, Any

import typer

from ingest.cli.common import (
    ConfigOption,
    UserError,
    duration_option,
    err,
    print_json,
    settings_from,
    setup_logging,
)
from ingest.registry_file import load_registry, save_registry
from ingest.tls import client_context
from processors.endpoint import BrokerUnreachableError, ConnectOptions
from processors.registry import Registry, RegistryError
from processors.timestamps import format_rfc3339, parse_timestamp
from processors.units import human_rate

log = logging.getLogger(__name__)


def fleet_registry(path: Path | None, devices: int, kinds: list[str], seed: int) -> Registry:
    """Reuse the registry at ``path`` if it exists, else generate one (and save it there)."""
    if path is not None and path.exists():
        registry = load_registry(path)
        log.info("reusing device registry %s (%d devices)", path, len(registry))
        return registry
    from simulators.fleet import make_registry

    registry = make_registry(devices, kinds, seed)
    if path is not None:
        save_registry(registry, path)
        log.info("wrote device registry %s (%d devices)", path, len(registry))
    return registry


def _secrets(path: Path) -> dict[str, str]:
    """User name to password, from a credentials file of ``citypulse devices provision``."""
    from ingest.access.provision import ProvisionError, read_credentials

    if not path.is_file():
        raise UserError(f"--credentials {path}: no such file; 'citypulse devices provision' writes it")
    try:
        return {name: credential.password for name, credential in read_credentials(path).items()}
    except ProvisionError as bad:
        raise UserError(str(bad)) from None


def _identities(fleet: Registry, batching: bool) -> list[str]:
    """Who publishes: every device, or with gateway batches every gateway (each device must have one)."""
    if not batching:
        return [device.device_id for device in fleet]
    alone = [device.device_id for device in fleet if device.gateway is None]
    if alone:
        raise UserError(
            f"--credentials with --batch: {', '.join(alone[:3])} have no gateway in the registry; "
            "fill its gateway column (a generated registry has one)"
        )
    return list(fleet.gateways())


def simulate(
    config: ConfigOption = None,
    devices: Annotated[
        int | None,
        typer.Option(min=1, help="Devices in the fleet, split evenly between kinds.", show_default="100"),
    ] = None,
    kinds: Annotated[
        str | None, typer.Option(help="Comma-separated kinds, or 'all'.", show_default="all")
    ] = None,
    duration: Annotated[
        str | None,
        typer.Option(help="Wall-clock run time, e.g. 30s, 10m, 2h.", show_default="until Ctrl-C or SIGTERM"),
    ] = None,
    span: Annotated[
        str | None, typer.Option(help="Simulated time to cover, e.g. 1h, 7d.", show_default="no end")
    ] = None,
    speed: Annotated[
        float | None,
        typer.Option(
            min=0, help="Simulated seconds per real second; 0 = as fast as possible.", show_default="1"
        ),
    ] = None,
    start: Annotated[
        str | None,
        typer.Option(
            help="Simulated start (RFC 3339 or epoch).", show_default="so that the run ends now, else now"
        ),
    ] = None,
    seed: Annotated[
        int | None,
        typer.Option(help="Random seed; the same seed and --start give the same bytes.", show_default="1"),
    ] = None,
    registry: Annotated[
        Path | None,
        typer.Option(help="Registry file: reused if it exists, else written with the generated fleet."),
    ] = None,
    mqtt_url: Annotated[
        str | None, typer.Option(help="Broker URL.", show_default="CITYPULSE_MQTT_URL")
    ] = None,
    protocol: Annotated[
        str | None, typer.Option(help="MQTT protocol: 5 or 3.1.1.", show_default="CITYPULSE_MQTT_PROTOCOL")
    ] = None,
    qos: Annotated[
        int | None, typer.Option(min=0, max=1, help="Publish QoS, 0 or 1.", show_default="1")
    ] = None,
    batch: Annotated[
        int | None,
        typer.Option(
            min=0, help="Gateway mode: up to N readings per message (0 = one each).", show_default="0"
        ),
    ] = None,
    faults: Annotated[
        str | None,
        typer.Option(
            help="Faults to inject: 'all', or a list such as spike,stuck,duplicates; the real-data "
            "behaviours gap, excursion and recalibration are added by name (all,gap,...).",
            show_default="none",
        ),
    ] = None,
    fault_rate: Annotated[
        float | None,
        typer.Option(
            min=0, max=1, help="Share of readings that start a fault.", show_default="each fault's own rate"
        ),
    ] = None,
    scenario: Annotated[
        str | None,
        typer.Option(help="Scenario file (.toml/.yaml) or built-in: an incident's name, or 'incidents'."),
    ] = None,
    labels: Annotated[
        Path | None, typer.Option(help="Write the ground truth (every injected fault) here, as JSON lines.")
    ] = None,
    output: Annotated[
        Path | None,
        typer.Option(help="Write 'publish_ms<TAB>topic<TAB>payload' lines here instead of publishing."),
    ] = None,
    client_id: Annotated[str, typer.Option(help="MQTT client id of the simulator.")] = "citypulse-simulator",
    credentials: Annotated[
        Path | None,
        typer.Option(
            help="Publish as each device (gateway, with --batch) on its own connection, with its secret "
            "from this file ('citypulse devices provision' writes it): for brokers with per-device ACLs."
        ),
    ] = None,
    max_outstanding: Annotated[
        int, typer.Option(min=1, help="Most messages unacknowledged by the broker at once.")
    ] = 20_000,
    connect_timeout: Annotated[
        float, typer.Option(min=0.1, help="Seconds to wait for the broker at start-up.")
    ] = 15.0,
    give_up_after: Annotated[
        str,
        typer.Option(help="Once the broker has been unreachable this long, count new messages as failed."),
    ] = "60s",
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Only write the registry (with --registry) and exit.")
    ] = False,
    quiet: Annotated[bool, typer.Option("--quiet", help="No progress lines.")] = False,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print a JSON summary as the last line of stdout.")
    ] = False,
) -> None:
    """Run a simulated fleet of Hanoi's sensors publishing readings over MQTT (or to a file).

    Without --duration or --span it runs until Ctrl-C. With --speed above 1 the
    simulated clock starts in the past and catches up with the present, so a
    week can be replayed in minutes without ever stamping a reading in the future.
    Faults and incidents are injected on request and written to --labels.
    """
    from simulators.outputs import FileOutput, MqttOutput, Output, PerDeviceOutput, SliceOutput
    from simulators.plan import FleetChoices, build, parse_kinds
    from simulators.runner import Progress, Simulation
    from simulators.scenario import Scenario, load_scenario

    settings = settings_from(config, mqtt_url=mqtt_url, mqtt_protocol=protocol)
    setup_logging(settings.log_level)
    chosen: Scenario | None = None
    if scenario is not None:
        try:
            chosen = load_scenario(scenario)
        except ValueError as bad:
            raise UserError(str(bad)) from None
    run: dict[str, Any] = chosen.run if chosen else {}

    def pick(given: Any, key: str, default: Any) -> Any:
        """The command line wins, then the scenario's [run] table, then the default."""
        return given if given is not None else run.get(key, default)

    devices_n = int(pick(devices, "devices", 100))
    seed_n = int(pick(seed, "seed", 1))
    speed_x = float(pick(speed, "speed", 1.0))
    batch_n = int(pick(batch, "batch", 0))
    qos_n = int(pick(qos, "qos", 1))
    if devices_n < 1 or speed_x < 0 or batch_n < 0 or qos_n not in (0, 1):
        raise UserError("the scenario's [run] needs devices >= 1, speed >= 0, batch >= 0 and qos 0 or 1")
    try:
        kind_list = parse_kinds(str(pick(kinds, "kinds", "all")))
        fleet = fleet_registry(registry, devices_n, kind_list, seed_n)
    except (ValueError, RegistryError) as bad:
        raise UserError(str(bad)) from None
    if dry_run:
        if registry is None:
            raise UserError("--dry-run writes the registry: give --registry FILE")
        err.print(f"registry {registry}: {len(fleet)} devices {fleet.counts()}")
        return
    duration_s = duration_option(duration, "--duration") if duration is not None else run.get("duration")
    span_s = duration_option(span, "--span") if span is not None else run.get("span")
    give_up_s = duration_option(give_up_after, "--give-up-after") or 60.0
    now_ms = time.time_ns() // 1_000_000
    if speed_x == 0 and span_s is None:
        raise UserError(
            "--speed 0 (as fast as possible) needs --span to say how much simulated time to cover"
        )
    start_text = pick(start, "start", None)
    if start_text is not None:
        text = str(start_text)
        try:
            start_ms = parse_timestamp(float(text) if text.replace(".", "", 1).isdigit() else text)
        except ValueError as bad:
            raise UserError(f"--start: {bad}") from None
    elif span_s is not None and speed_x != 1.0:
        start_ms = now_ms - int(span_s * 1000)
    elif duration_s is not None and speed_x > 1.0:
        start_ms = now_ms - int(duration_s * speed_x * 1000)
    else:
        start_ms = now_ms
    end_ms = start_ms + int(span_s * 1000) if span_s is not None else None
    if output is None and end_ms is not None and start_ms < now_ms - settings.max_age_s * 1000:
        err.print(
            f"warning: the run starts more than CITYPULSE_MAX_AGE_S ({settings.max_age_s:g} s) ago; "
            "the pipeline will reject its oldest readings as timestamp_too_old (the summary counts them)",
            highlight=False,
        )
    fault_spec: str | tuple[str, ...] = (
        faults if faults is not None else (chosen.faults if chosen and chosen.faults is not None else "")
    )
    try:
        schedule, encoder = build(
            fleet,
            settings.topics,
            FleetChoices(
                kinds=tuple(kind_list),
                seed=seed_n,
                start_ms=start_ms,
                faults=fault_spec,
                fault_rate=fault_rate if fault_rate is not None else (chosen.fault_rate if chosen else None),
                fault_rates=chosen.fault_rates if chosen and faults is None else {},
                batch=batch_n,
                max_payload_bytes=settings.max_payload_bytes,
                max_future_ms=int(settings.max_future_s * 1000),
                max_age_ms=int(settings.max_age_s * 1000),
                end_ms=end_ms,
                incidents=chosen.incidents if chosen else (),
                labels=labels,
            ),
        )
    except ValueError as bad:
        raise UserError(str(bad)) from None
    sink: Output | SliceOutput
    if output is not None:
        sink = FileOutput(output)
        target = str(output)
    else:
        options = ConnectOptions(endpoint=settings.mqtt, client_id=client_id, protocol=settings.mqtt_protocol)
        try:
            context = client_context(settings.mqtt)
            mqtt_out: MqttOutput | PerDeviceOutput = (
                MqttOutput(
                    options,
                    qos=qos_n,
                    max_outstanding=max_outstanding,
                    give_up_after_s=give_up_s,
                    ssl_context=context,
                )
                if credentials is None
                else PerDeviceOutput(
                    options,
                    _secrets(credentials),
                    _identities(fleet, batching=bool(batch_n)),
                    qos=qos_n,
                    max_outstanding=max_outstanding,
                    give_up_after_s=give_up_s,
                    ssl_context=context,
                )
            )
        except ValueError as bad:
            raise UserError(str(bad)) from None
        try:
            mqtt_out.start(timeout_s=connect_timeout)
        except BrokerUnreachableError as bad:
            raise UserError(str(bad)) from None
        sink = mqtt_out
        target = f"{settings.mqtt.display()} (MQTT {settings.mqtt_protocol}, QoS {qos_n})"
    simulation = Simulation(
        schedule,
        encoder,
        sink,
        speed=speed_x,
        duration_s=duration_s if (duration_s or end_ms) else float("inf"),
        end_ms=end_ms,
        ingest_clock="publish" if output is not None else "wall",
    )
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    what = f" · scenario {chosen.name}" if chosen else ""
    err.print(
        f"simulating {len(fleet):,} devices ({', '.join(kind_list)}) from {format_rfc3339(start_ms)} "
        f"at speed {speed_x:g}{what} → {target}",
        highlight=False,
    )
    if output is not None and start is None and run.get("start") is None:
        err.print(
            f"to reproduce this file exactly: --seed {seed_n} --start {format_rfc3339(start_ms)}",
            highlight=False,
        )
    last = [time.monotonic(), 0, 0]

    def show(p: Progress) -> None:
        if quiet:
            return
        now = time.monotonic()
        window = max(now - last[0], 1e-9)
        rate = (p.messages - last[1]) / window
        acked_rate = (p.counts.acknowledged - last[2]) / window
        last[0], last[1], last[2] = now, p.messages, p.counts.acknowledged
        done = f" ({p.done:.0%})" if p.done is not None else ""
        outstanding = p.counts.published - p.counts.acknowledged - p.counts.failed
        err.print(
            f"[{p.elapsed_s:7.1f}s] sim {format_rfc3339(p.sim_ms)}{done} · {p.messages:,} messages "
            f"({human_rate(rate)}/s) · {p.counts.acknowledged:,} acked ({human_rate(acked_rate)}/s) · "
            f"{outstanding:,} in flight · {p.counts.failed:,} failed",
            highlight=False,
        )

    try:
        result = simulation.run(stop, progress=show, progress_every_s=2.0)
    except KeyboardInterrupt:
        stop.set()
        raise
    summary = result.summary()
    if labels is not None:
        summary["labels_file"] = str(labels)
    _print_summary(summary)
    if as_json:
        print_json(summary)


def _print_summary(summary: dict[str, Any]) -> None:
    """The end-of-run report for people (stderr); scripts read the --json line instead."""
    err.print(
        f"done: {summary['messages']:,} messages ({summary['readings']:,} readings) "
        f"in {summary['elapsed_s']} s ({human_rate(summary['messages_per_s'])} msg/s) · "
        f"published {summary['published']:,} · acknowledged {summary['acknowledged']:,} · "
        f"failed {summary['failed']:,}",
        highlight=False,
    )
    if summary["failed"]:
        reasons = ", ".join(f"{why}: {n:,}" for why, n in summary["failures"].items())
        err.print(f"[bold red]not delivered:[/bold red] {reasons}", highlight=False)
    if summary["faults"]:
        injected = ", ".join(f"{name} {n:,}" for name, n in summary["faults"].items())
        err.print(f"injected: {injected}", highlight=False)
    if summary["expected_rejects"]:
        rejects = ", ".join(f"{name} {n:,}" for name, n in summary["expected_rejects"].items())
        err.print(f"the pipeline must reject: {rejects}", highlight=False)
    by_kind = ", ".join(f"{kind} {n:,}" for kind, n in summary["valid_by_kind"].items())
    err.print(f"the pipeline must store: {by_kind}", highlight=False)
