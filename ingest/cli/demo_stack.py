"""``citypulse demo``: broker, simulated fleet, pipeline and store in one process.

Everything runs on this machine with nothing installed: an embedded amqtt broker
on a free loopback port (or yours, with ``--mqtt-url``), a fleet of all kinds
with a little bad input mixed in, the same ingest service as production, and the
SQLite store. The demo uses its own topic prefix and client id, so pointing it
at a real broker never touches production readings.

The fleet has a water main burst early in its simulated span (after the water
detectors' half-hour warm-up), so the default rules raise a critical district
alert and resolve it a while after the burst ends: the live view shows alerts
firing and resolving, as ``citypulse alerts tail`` would.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.live import Live

from ingest.broker import EmbeddedBroker
from ingest.cli.live_view import LiveView
from ingest.registry_file import save_registry
from ingest.service import IngestService
from ingest.settings import Settings
from ingest.sinks.sqlite import SqliteSettings, SqliteSink
from processors.endpoint import ConnectOptions
from processors.kinds import KINDS
from simulators.fleet import make_registry
from simulators.incidents import IncidentSpec
from simulators.outputs import MqttOutput
from simulators.plan import FleetChoices, build
from simulators.runner import Progress, Simulation, SimulationResult

log = logging.getLogger(__name__)

DEMO_PREFIX = "citypulse-demo/v1"
DEMO_CLIENT_ID = "citypulse-demo-ingest"
DEMO_INCIDENTS = (IncidentSpec("pipe_burst", at="+45m", duration_s=45 * 60.0),)
"""Staged so the burst fires about 45 simulated minutes in and resolves about an hour later."""


REPLAY_MARGIN_S = 3600.0
"""How much younger than CITYPULSE_MAX_AGE_S the oldest replayed reading is, by default."""


@dataclass(frozen=True)
class DemoOptions:
    devices: int = 200
    duration_s: float | None = None
    speed: float = 60.0
    seed: int = 1
    mqtt_url: str | None = None
    sqlite_path: Path = Path("citypulse-demo.sqlite")
    faults: str = "all"
    fault_rate: float = 0.02
    replay_s: float | None = None
    """Simulated past to replay before the fleet reaches the present (None: see :func:`replay_span_s`)."""
    keep: bool = False
    """Add to the store of a previous demo instead of starting afresh."""


def replay_span_s(options: DemoOptions, max_age_s: float) -> float:
    """How far in the past the demo's simulated clock starts.

    The clock runs ``speed`` times faster than real time until it reaches the
    present, then in real time (a reading is never stamped in the future), so the
    fleet's rate drops from ``speed`` times its natural rate to the natural rate.
    To keep the rate steady for as long as the demo runs, the replay reaches back as
    far as validation accepts (CITYPULSE_MAX_AGE_S less an hour: 6 days 23 hours by
    default, 2.8 hours of steady rate at speed 60); with ``--duration`` only as far as
    that run needs, so it ends at the present.
    """
    if options.replay_s is not None:
        return options.replay_s
    longest = max(max_age_s - REPLAY_MARGIN_S, max_age_s / 2)
    if options.speed <= 1:
        return 0.0
    if options.duration_s is not None:
        return min(options.duration_s * options.speed, longest)
    return longest


def run_demo(
    options: DemoOptions,
    base: Settings,
    console: Console,
    live: bool = True,
    stop: threading.Event | None = None,
) -> dict[str, object]:
    """Run the demo until ``duration_s`` passes or ``stop`` is set (Ctrl-C, SIGTERM); return the summary.

    Either way the fleet stops, the pipeline stores everything the broker accepted,
    and the store is closed cleanly (no ``-wal``/``-shm`` files are left behind).
    """
    stop = stop if stop is not None else threading.Event()
    broker: EmbeddedBroker | None = None
    if options.mqtt_url is None:
        broker = EmbeddedBroker()
        broker.start()
        mqtt_url, protocol = broker.url, "3.1.1"  # amqtt speaks MQTT 3.1.1 only
        where = f"{broker.url} (embedded amqtt)"
    else:
        mqtt_url, protocol = options.mqtt_url, base.mqtt_protocol
        where = mqtt_url.split("@")[-1]
    try:
        return _run(options, base, console, live, stop, mqtt_url, protocol, where)
    finally:
        if broker is not None:
            broker.stop()


def _run(
    options: DemoOptions,
    base: Settings,
    console: Console,
    live: bool,
    stop: threading.Event,
    mqtt_url: str,
    protocol: str,
    where: str,
) -> dict[str, object]:
    settings = base.model_copy(
        update={
            "mqtt_url": type(base.mqtt_url)(mqtt_url),
            "mqtt_protocol": protocol,
            "mqtt_client_id": DEMO_CLIENT_ID,
            "topic_prefix": DEMO_PREFIX,
            "sink": "sqlite",
            "sqlite": SqliteSettings(path=options.sqlite_path),
            "detector_state": _fresh(
                options.sqlite_path.with_name(options.sqlite_path.stem + "-detectors.npz")
            ),
            "alerts": base.alerts.model_copy(
                update={
                    "store": _fresh(
                        options.sqlite_path.with_name(options.sqlite_path.stem + "-alerts.sqlite")
                    )
                }
            ),
        }
    )
    registry = make_registry(options.devices, list(KINDS), options.seed)
    registry_path = options.sqlite_path.with_name(options.sqlite_path.stem + "-devices.csv")
    save_registry(registry, registry_path)
    if not options.keep:
        removed = _remove_store(options.sqlite_path)
        if removed:
            console.print(
                f"starting afresh: removed the previous demo store {options.sqlite_path} "
                "(--keep adds to it instead)",
                highlight=False,
            )
    sink = SqliteSink(options.sqlite_path)
    service = IngestService(settings, registry=registry, sink=sink, progress_every_s=0)
    service.start()
    ingest_thread = service.run_in_thread()

    now_ms = time.time_ns() // 1_000_000
    span_ms = int(replay_span_s(options, settings.max_age_s) * 1000)
    schedule, encoder = build(
        registry,
        settings.topics,
        FleetChoices(
            kinds=tuple(KINDS),
            seed=options.seed,
            start_ms=now_ms - span_ms,
            faults=options.faults,
            fault_rate=options.fault_rate,
            max_payload_bytes=settings.max_payload_bytes,
            max_future_ms=int(settings.max_future_s * 1000),
            max_age_ms=int(settings.max_age_s * 1000),
            incidents=DEMO_INCIDENTS,
        ),
    )
    output = MqttOutput(
        ConnectOptions(
            endpoint=settings.mqtt,
            client_id="citypulse-demo-fleet",
            protocol=settings.mqtt_protocol,
        )
    )
    output.start()
    simulation = Simulation(
        schedule,
        encoder,
        output,
        speed=options.speed,
        duration_s=options.duration_s or float("inf"),
    )
    fleet_stop = threading.Event()
    latest: list[Progress] = []
    result: list[SimulationResult] = []

    def simulate() -> None:
        result.append(simulation.run(fleet_stop, progress=latest.append, progress_every_s=0.5))

    sim_thread = threading.Thread(target=simulate, name="citypulse-demo-fleet", daemon=True)
    sim_thread.start()
    view = LiveView(
        title=f"citypulse demo · {options.devices} devices · broker {where} · Ctrl-C to stop",
        stats=service.stats.snapshot,
        store=sink.health,
        simulator=lambda: latest[-1] if latest else None,
        speed=options.speed,
        hint=f"list the anomalies: citypulse anomalies --sqlite-path {options.sqlite_path}",
        alerts=service.alerts.recent if service.alerts is not None else None,
    )
    log.info("demo: broker %s, store %s, registry %s", where, options.sqlite_path, registry_path)
    try:
        with Live(view.render(), console=console, refresh_per_second=4, transient=not live) as screen:
            while sim_thread.is_alive() and not stop.is_set():
                sim_thread.join(0.25)
                screen.update(view.render())
            if stop.is_set():
                console.print("stopping: draining what the broker already accepted ...", highlight=False)
            fleet_stop.set()
            sim_thread.join()
            _wait_for_ingest(service, output.counts.acknowledged, screen.update, view)
            screen.update(view.render())
    finally:
        fleet_stop.set()
        service.request_stop()
        ingest_thread.join(60)
    summary = service.stats.snapshot().summary()
    summary["store"] = str(options.sqlite_path)
    summary["registry"] = str(registry_path)
    if result:
        summary["simulator"] = result[0].summary()
    return summary


def _wait_for_ingest(
    service: IngestService, published: int, update: object, view: LiveView, timeout_s: float = 60.0
) -> None:
    """Give the pipeline time to store everything the broker acknowledged to the fleet."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and service.stats.snapshot().messages < published:
        time.sleep(0.1)
        if callable(update):
            update(view.render())
    if service.stats.snapshot().messages < published:
        log.warning(
            "the pipeline processed %d of %d published messages before the demo gave up waiting",
            service.stats.snapshot().messages,
            published,
        )


def _remove_store(path: Path) -> bool:
    """Delete a previous demo's SQLite store and its WAL files; True if there was one."""
    found = False
    for part in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        if part.exists():
            part.unlink()
            found = True
    return found


def _fresh(state: Path) -> Path:
    """The demo's own detector (or alert) state, started anew each run.

    Each run replays the last ``duration x speed`` of simulated time up to now, so
    a second run soon after the first goes back over time the first one covered:
    baselines kept from it would call every device's first reading late. And a
    demo must never touch the state of a real ``citypulse ingest`` in the same
    directory, so it keeps its own file.
    """
    for path in (state, state.with_name(state.name + "-wal"), state.with_name(state.name + "-shm")):
        path.unlink(missing_ok=True)
    return state
