"""The end-to-end benchmark's stages, each run against the one broker and database of the run."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import _nodered
from bench._e2e_data import (
    COUNT_FIELD,
    Backlog,
    forget_session,
    gateway_templates,
    live_templates,
    make_backlog,
    make_session,
    publish_file,
)
from bench._e2e_drain import (
    Progress,
    Ready,
    Servers,
    database_ceiling,
    drain_mosquitto_sub,
    drain_process,
    ingest_env,
    ingest_summary,
    rates,
    readings_bodies,
    start_ingest,
    start_naive,
    wait_until_ready,
    watch_drain,
)
from bench._e2e_load import offered_load
from bench._e2e_memory import simulator_marginal
from bench._e2e_profile import start_sampling, stop_sampling, summarise
from bench._e2e_scale import scale_out
from bench._servers import stop_process
from ingest.registry_file import load_registry
from ingest.sinks.influxdb import InfluxSettings
from processors.topics import TopicScheme

READINGS_TOPIC = "citypulse/v1/readings/+/+"
Start = Callable[[], tuple[subprocess.Popen[bytes], Ready]]
"""Starts a contender: its process, and how to tell that it is connected."""
INGEST_TOPICS = TopicScheme().subscriptions()


@dataclass(frozen=True)
class Size:
    name: str
    devices: int
    span: str
    """Simulated time the backlog covers: 40 minutes of 10,000 devices is about 197,000 readings."""
    batch: int
    load_s: float
    """How long each offered load is held."""
    fixed_load: int
    """Readings/s of the fixed load the latency target names (p99 <= 1 s at 10,000 readings/s)."""
    settle_s: float
    poll_s: float
    drain_timeout_s: float
    memory_devices: int
    memory_span: str
    simulator_devices: tuple[int, int]
    shares: tuple[float, ...]
    """Offered loads as shares of citypulse's measured maximum."""


SIZES = {
    "full": Size("full", 10_000, "40m", 100, 30.0, 10_000, 60.0, 0.1, 1800.0, 100_000, "15m",
                 (10_000, 100_000), (0.25, 0.5, 0.9)),
    "small": Size("small", 300, "10m", 100, 1.0, 500, 4.0, 0.1, 120.0, 600, "15m",
                  (300, 600), (0.5,)),
}  # fmt: skip


@dataclass
class Run:
    """What every stage needs: the servers, a scratch directory, the backlogs, where progress goes."""

    servers: Servers
    work: Path
    size: Size
    progress: Progress
    singles: Backlog | None = None
    gateway: Backlog | None = None
    red: Path | None = None
    """Node-RED's ``red.js`` once installed; None when it could not be."""
    baselines: tuple[Path, ...] = ()
    """Other checkouts whose ``citypulse ingest`` drains the same backlogs too (``--baseline``)."""

    def ingest(self, name: str, db: str, registry: Path, root: Path | None = None, **extra: str) -> Start:
        env = ingest_env(self.servers, self.work / name, f"bench-{name}", db, registry, root, **extra)
        return lambda: start_ingest(self.work / name, env)

    def node_red(self, name: str, db: str, auto_unsubscribe: bool = True) -> _nodered.NodeRed:
        assert self.red is not None
        return _nodered.NodeRed(
            self.red, self.work / name, self.servers.mosquitto.port, self.servers.influxd.port, db,
            client_id=f"bench-{name}", auto_unsubscribe=auto_unsubscribe,
        )  # fmt: skip


def prepare(run: Run, node_red: bool, cache: Path) -> None:
    """Make both backlogs and, if asked, install Node-RED."""
    registry = run.work / "devices.csv"
    run.singles = make_backlog(run.work, "singles", run.size.devices, run.size.span, 0, registry)
    run.gateway = make_backlog(run.work, "gateway", run.size.devices, run.size.span, run.size.batch, registry)
    run.progress(
        f"backlogs: {run.singles.messages:,} single-reading messages, {run.gateway.messages:,} gateway "
        f"messages ({run.gateway.readings:,} readings) from {run.size.devices:,} devices"
    )
    if node_red:
        try:
            run.red = _nodered.install(cache)
        except _nodered.NodeRedUnavailableError as missing:
            run.progress(f"Node-RED left out: {missing}")


def drains(run: Run, naive: bool = True) -> dict[str, Any]:
    """Sessions made, the singles backlog published once, each contender draining it alone; then gateway."""
    assert run.singles is not None
    assert run.gateway is not None
    url, s, size, progress = run.servers.mosquitto.url, run.servers, run.size, run.progress
    make_session(url, "bench-mosquitto-sub", [READINGS_TOPIC], v5=False)
    if naive:
        make_session(url, "bench-naive", [READINGS_TOPIC], v5=False)
    ingest_sessions = ["citypulse-singles", "citypulse-nodetect"] + (
        [f"baseline-{b.name}-singles" for b in run.baselines]
    )
    for name in ingest_sessions:
        make_session(url, f"bench-{name}", INGEST_TOPICS)
    if run.red is not None:
        for name, auto in (("node-red-default", True), ("node-red-keep", False)):
            red = run.node_red(name, f"bench_{name.replace('-', '_')}", auto)
            red.start()
            red.stop()
    progress(f"publishing {run.singles.messages:,} messages to every session")
    publish_s = publish_file(url, run.singles.path)
    progress(f"published in {publish_s:.1f} s")
    out: dict[str, Any] = {}
    progress("draining: mosquitto_sub -q 1")
    out["mosquitto_sub"] = drain_mosquitto_sub(
        s, "bench-mosquitto-sub", READINGS_TOPIC, run.singles.messages, size.drain_timeout_s
    )
    out["mosquitto_sub"]["label"] = "mosquitto_sub -q 1 (broker ceiling, discards)"
    forget_session(url, "bench-mosquitto-sub", v5=False)
    contenders: list[tuple[str, str, str, Start]] = [
        ("citypulse_singles", "citypulse ingest, one reading per message", "bench_singles",
         run.ingest("citypulse-singles", "bench_singles", run.singles.registry)),
        ("citypulse_no_detectors", "citypulse ingest, CITYPULSE_DETECTORS=none", "bench_nodetect",
         run.ingest("citypulse-nodetect", "bench_nodetect", run.singles.registry, detectors="none")),
    ]  # fmt: skip
    for b in run.baselines:
        key = f"baseline_{_key(b)}_singles"
        contenders.append((
            key, f"baseline ({b.name}) ingest, one reading per message", f"bench_{key}",
            run.ingest(f"baseline-{b.name}-singles", f"bench_{key}", run.singles.registry, b),
        ))  # fmt: skip
    if naive:
        contenders.append((
            "naive_bridge", "naive bridge: paho -> Point -> one /write each", "bench_naive",
            lambda: start_naive(s, run.work / "naive", "bench_naive", "bench-naive"),
        ))  # fmt: skip
    for key, label, db, start in contenders:
        progress(f"draining: {label}")
        out[key] = drain_process(
            s, label, db, run.singles, start, size.drain_timeout_s, size.poll_s, progress
        )
        out[key]["label"] = label
    for name in ingest_sessions:
        forget_session(url, f"bench-{name}")
    if naive:
        forget_session(url, "bench-naive", v5=False)
    if run.red is not None:
        out["node_red_keep_session"] = node_red_backlog(run)
    gateways: list[tuple[str, str, str, Path | None]] = [
        ("citypulse_gateway", "citypulse-gateway", f"citypulse ingest, gateway batches of {size.batch}", None)
    ]
    for b in run.baselines:
        gateways.append(
            (
                f"baseline_{_key(b)}_gateway",
                f"baseline-{b.name}-gateway",
                f"baseline ({b.name}) ingest, gateway batches of {size.batch}",
                b,
            )
        )
    for _, name, _, _ in gateways:
        make_session(url, f"bench-{name}", INGEST_TOPICS)
    progress(f"publishing {run.gateway.messages:,} gateway messages ({run.gateway.readings:,} readings)")
    publish_file(url, run.gateway.path)
    for key, name, label, root in gateways:
        progress(f"draining: {label}")
        db = f"bench_{key}"
        start = run.ingest(name, db, run.gateway.registry, root)
        out[key] = drain_process(
            s, label, db, run.gateway, start, size.drain_timeout_s, size.poll_s, progress
        )
        out[key]["label"] = label
        forget_session(url, f"bench-{name}")
    return out


def _key(checkout: Path) -> str:
    """A baseline's name as a result key."""
    return "".join(c if c.isalnum() else "_" for c in checkout.name)


def node_red_backlog(run: Run) -> dict[str, Any]:
    """Node-RED against the backlog queued while it was stopped: with its default, then with sessions kept."""
    assert run.singles is not None
    s, progress = run.servers, run.progress
    default = run.node_red("node-red-default", "bench_node_red_default", True)
    s.influxd.create_database(default.database)
    progress("Node-RED (default settings) restarted against the backlog queued while it was stopped")
    default.start()
    time.sleep(min(15.0, run.size.settle_s / 2))
    stored_default = sum(s.influxd.counts(default.database, COUNT_FIELD).values())
    default.stop()
    label = "Node-RED 4, MQTT 'auto-unsubscribe' off (not its default)"
    progress(f"draining: {label}")
    keep = run.node_red("node-red-keep", "bench_node_red_keep", False)

    def start() -> tuple[subprocess.Popen[bytes], Ready]:
        keep.start()  # returns once Node-RED is connected to the broker
        assert keep.process is not None
        return keep.process, lambda: True

    result = drain_process(
        s, label, keep.database, run.singles, start, run.size.drain_timeout_s, run.size.poll_s, progress
    )
    forget_session(s.mosquitto.url, keep.client_id, v5=False)
    result["label"] = label
    result["write_errors_logged"] = keep.errors()
    result["default_settings_stored_of_backlog"] = stored_default
    return result


def latency(
    run: Run, max_singles: float, node_red: bool, node_red_max: float | None = None
) -> dict[str, Any]:
    """Fixed offered loads against citypulse ingest and (singles only) Node-RED, live.

    Each contender is offered shares of its own measured maximum (Node-RED's is its drain
    rate, ``node_red_max``; without one it gets citypulse's loads), then the fixed load. Each
    load gets a fresh contender process and database, so one load's backlog or failure
    (Node-RED's exhausted sockets, say) never carries over into the next.
    """
    assert run.singles is not None
    size, s = run.size, run.servers
    singles = live_templates(run.singles.path, size.devices)
    fleet = load_registry(run.work / "devices.csv")
    gateways = gateway_templates(singles, size.batch, {d.device_id: d.gateway for d in fleet})
    at_fixed = (f"fixed {size.fixed_load:,} readings/s", float(size.fixed_load), True, False)

    def shares(of: str, maximum: float) -> list[tuple[str, float, bool, bool]]:
        return [(f"{share:.0%} of {of}'s maximum", share * maximum, False, False) for share in size.shares]

    out: dict[str, Any] = {}
    contenders = ["citypulse"] + (["node_red"] if node_red and run.red is not None else [])
    for who in contenders:
        if who == "citypulse":
            loads = [
                *shares("citypulse", max_singles), at_fixed,
                (f"fixed {size.fixed_load:,} readings/s in batches", float(size.fixed_load), True, True),
            ]  # fmt: skip
        else:
            loads = [*shares("Node-RED", node_red_max or max_singles), at_fixed]
        results: list[dict[str, Any]] = []
        for number, (label, rate, fixed, batched) in enumerate(loads):
            name = f"{who.replace('_', '-')}-live-{number}"
            db = f"bench_latency_{who}_{number}"
            s.influxd.create_database(db)
            red = None
            if who == "citypulse":
                process, ready = run.ingest(name, db, run.singles.registry)()
                wait_until_ready(process, ready)
            else:
                red = run.node_red(name, db)
                red.start()
                assert red.process is not None
                process = red.process
            try:
                r = offered_load(
                    s, db, singles, gateways if batched else [], rate, size.load_s, size.settle_s,
                    min(size.poll_s, 0.05), process.pid, run.progress, f"{who} {label}",
                )  # fmt: skip
            finally:
                if red is not None:
                    red.stop()
                else:
                    stop_process(process, grace_s=60.0)
                    forget_session(s.mosquitto.url, f"bench-{name}")
            r["fixed"] = fixed
            if red is not None:
                r["write_errors_logged"] = red.errors()
            else:
                r["ingest_counts"] = ingest_summary(run.work / name)
            results.append(r)
            s.influxd.drop_database(db)
        out[who] = results
    return out


def memory(run: Run) -> dict[str, Any]:
    """Ingest at a large fleet (singles, then gateway batches) and the simulator's memory per device."""
    size, s, url = run.size, run.servers, run.servers.mosquitto.url
    work = run.work / "memory"
    work.mkdir(exist_ok=True)
    registry = work / "devices.csv"
    out: dict[str, Any] = {}
    for key, batch in (("ingest_singles", 0), ("ingest_gateway", size.batch)):
        backlog = make_backlog(work, key, size.memory_devices, size.memory_span, batch, registry)
        name = f"memory-{key.replace('_', '-')}"
        make_session(url, f"bench-{name}", INGEST_TOPICS)
        run.progress(f"memory: {backlog.messages:,} messages ({backlog.readings:,} readings) from "
                     f"{size.memory_devices:,} devices")  # fmt: skip
        publish_file(url, backlog.path)
        db = f"bench_{key}"
        result = drain_process(
            s,
            key,
            db,
            backlog,
            run.ingest(name, db, registry),
            size.drain_timeout_s,
            size.poll_s,
            run.progress,
        )
        result["devices"] = size.memory_devices
        out[key] = result
        forget_session(url, f"bench-{name}")
        backlog.path.unlink()
    small, large = size.simulator_devices
    run.progress(f"memory: the simulator at {small:,} and {large:,} devices, every fault, labels written")
    out["simulator"] = simulator_marginal(work / "simulator", small, large)
    return out


def scale(run: Run, counts: tuple[int, ...] = (1, 2, 4)) -> list[dict[str, Any]]:
    """The singles backlog drained by 1, 2 and 4 ingest processes in one shared subscription."""
    assert run.singles is not None
    return [
        scale_out(run.servers, run.work, run.singles, n, run.size.drain_timeout_s, run.progress)
        for n in counts
    ]


def profile(run: Run, mode: str) -> dict[str, Any]:
    """A drain of citypulse ingest under py-spy (200 samples/s); the summary of where time went.

    ``mode``: ``running`` (singles, every running thread), ``gil`` (singles, only the thread that
    holds the GIL) or ``gateway-wall`` (gateway batches, every thread, idle ones too: where the
    wall-clock time goes when the process is not busy).
    """
    assert run.singles is not None
    assert run.gateway is not None
    backlog = run.gateway if mode == "gateway-wall" else run.singles
    s, url = run.servers, run.servers.mosquitto.url
    name = f"profile-{mode}"
    db = f"bench_{name.replace('-', '_')}"
    make_session(url, f"bench-{name}", INGEST_TOPICS)
    publish_file(url, backlog.path)
    s.influxd.create_database(db)
    run.progress(f"profiling a drain with py-spy ({mode})")
    raw = run.work / f"{name}.txt"
    started = time.monotonic()
    process, ready = run.ingest(name, db, backlog.registry)()
    sampler = None
    try:
        # Sampling starts once the service is up: the drain, not the imports, is what is profiled.
        wait_until_ready(process, ready)
        sampler = start_sampling(process.pid, raw, gil=mode == "gil", idle=mode == "gateway-wall")
        drained = watch_drain(
            s, db, backlog.readings, process, ready, started, run.size.drain_timeout_s,
            run.size.poll_s, run.progress, name,
        )  # fmt: skip
    finally:
        if sampler is not None:
            stop_sampling(sampler)
        stop_process(process, grace_s=60.0)
    forget_session(url, f"bench-{name}")
    s.influxd.drop_database(db)
    summary = summarise(raw)
    summary["mode"] = mode
    summary["readings_per_s_while_sampled"] = rates(drained, backlog.messages, backlog.readings)[
        "sustained_readings_per_s"
    ]
    summary["cpu_s_while_sampled"] = drained["cpu_s_sustained"]
    summary["seconds_sampled"] = drained["sustained_s"]
    return summary


def ceilings(run: Run) -> dict[str, Any]:
    """influxd alone: synthetic points in 5,000-point bodies (the targets' yardstick), and the singles
    backlog's own readings as citypulse encodes them, in bodies as large as citypulse's writes."""
    assert run.singles is not None
    points = run.singles.readings
    out = {}
    for key, connections, gz in (
        ("one_connection", 1, False),
        ("two_connections", 2, False),
        ("one_connection_gzip", 1, True),
    ):
        run.progress(f"influxd alone: {points:,} points in 5,000-point bodies, {key.replace('_', ' ')}")
        out[key] = database_ceiling(run.servers, points, connections, gz)
    per_body = InfluxSettings().batch_points
    run.progress(
        f"influxd alone: the backlog's {points:,} readings as citypulse encodes them, {per_body:,} a body"
    )
    bodies = readings_bodies(run.singles, per_body)
    out["same_readings_one_connection"] = database_ceiling(
        run.servers, points, 1, bodies=bodies, count=COUNT_FIELD
    )
    return out


def key_pairs(run: Run, number: int) -> dict[str, Any]:
    """The two comparisons the targets name, drained again side by side: a check on a shared machine."""
    assert run.singles is not None
    assert run.gateway is not None
    url, s, size, progress = run.servers.mosquitto.url, run.servers, run.size, run.progress
    sub, singles, gateway = f"bench-again-sub-{number}", f"again-singles-{number}", f"again-gateway-{number}"
    make_session(url, sub, [READINGS_TOPIC], v5=False)
    make_session(url, f"bench-{singles}", INGEST_TOPICS)
    publish_file(url, run.singles.path)
    progress(f"key pairs again ({number + 1}): mosquitto_sub, citypulse singles, gateway, influxd alone")
    broker = drain_mosquitto_sub(s, sub, READINGS_TOPIC, run.singles.messages, size.drain_timeout_s)
    forget_session(url, sub, v5=False)
    db = f"bench_again_singles_{number}"
    ours = drain_process(
        s, singles, db, run.singles, run.ingest(singles, db, run.singles.registry), size.drain_timeout_s,
        size.poll_s, progress,
    )  # fmt: skip
    forget_session(url, f"bench-{singles}")
    make_session(url, f"bench-{gateway}", INGEST_TOPICS)
    publish_file(url, run.gateway.path)
    db = f"bench_again_gateway_{number}"
    batched = drain_process(
        s, gateway, db, run.gateway, run.ingest(gateway, db, run.gateway.registry), size.drain_timeout_s,
        size.poll_s, progress,
    )  # fmt: skip
    forget_session(url, f"bench-{gateway}")
    database = database_ceiling(s, run.singles.readings, 1)
    return {
        "mosquitto_sub_msg_per_s": broker["msg_per_s"],
        "citypulse_singles_msg_per_s": ours["sustained_msg_per_s"],
        "broker_ceiling_over_citypulse_singles": round(broker["msg_per_s"] / ours["sustained_msg_per_s"], 2),
        "citypulse_gateway_readings_per_s": batched["sustained_readings_per_s"],
        "database_1_connection_points_per_s": database["points_per_s"],
        "citypulse_gateway_over_database": round(
            batched["sustained_readings_per_s"] / database["points_per_s"], 2
        ),
        "every_reading_stored": ours["every_reading_stored"] and batched["every_reading_stored"],
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }
