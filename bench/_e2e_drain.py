"""Draining a backlog: each contender alone against the same queued messages, timed until all is stored.

A drain ends when InfluxDB holds as many points as the backlog has readings (counted every poll),
and is then checked point by point: every (device, timestamp) of every kind, nothing missing and
nothing extra. Wall time runs from starting the contender's process; the *sustained* rate leaves out
its start-up (interpreter, imports, connecting): it counts from the first poll that saw a point.
CPU seconds and peak resident memory are the contender's own, from /proc (or from wait4 when it
exits by itself). The broker's and the database's CPU seconds over the same window are recorded too,
because on two cores they compete with the contender.
"""

from __future__ import annotations

import http.client
import json
import subprocess
import sys
import threading
import time
import urllib.parse
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench._e2e_data import COUNT_FIELD, Backlog, citypulse, python_env
from bench._servers import Influxd, Mosquitto, cpu_and_peak, run_measured, stop_process
from ingest.broker import free_port

Progress = Callable[[str], None]


class Servers:
    """The broker and the database a run shares between contenders."""

    def __init__(self, mosquitto: Mosquitto, influxd: Influxd) -> None:
        self.mosquitto = mosquitto
        self.influxd = influxd

    def cpu(self) -> tuple[float, float]:
        assert self.mosquitto.process is not None
        assert self.influxd.process is not None
        return cpu_and_peak(self.mosquitto.process.pid)[0], cpu_and_peak(self.influxd.process.pid)[0]


def check_stored(influxd: Influxd, db: str, backlog: Backlog) -> dict[str, Any]:
    """Compare what the database holds with the backlog's readings, point by point."""
    missing = extra = 0
    for kind, expected in backlog.expected.items():
        stored = influxd.points(db, kind, COUNT_FIELD[kind])
        missing += len(expected - stored)
        extra += len(stored - expected)
    return {"every_reading_stored": missing == 0 and extra == 0, "missing": missing, "extra": extra}


Ready = Callable[[], bool]
"""Whether a contender has finished starting (connected to the broker); polled, must be quick."""


def log_says(path: Path, text: str) -> Ready:
    return lambda: path.exists() and text in path.read_text(errors="replace")


def watch_drain(
    servers: Servers,
    db: str,
    target: int,
    process: subprocess.Popen[bytes],
    ready: Ready,
    started: float,
    timeout_s: float,
    poll_s: float,
    progress: Progress,
    label: str,
    stall_s: float = 30.0,
) -> dict[str, Any]:
    """Poll the database until it holds ``target`` readings; times, rates and the process's CPU and memory.

    Progress is followed on influxd's own write counters, which cost it nothing; an exact count
    (which scans every point, and so costs influxd CPU the contender would otherwise have) is made
    only once those counters say the target may be reached, and every few seconds. ``wall_s`` runs
    from starting the process to the end of the exact count that found every reading; the
    *sustained* figures from the moment the contender was ready (connected), so that interpreter
    start-up and imports are left out. Gives up after ``timeout_s``, or when nothing new reached
    the database for ``stall_s`` (``complete`` is then false).
    """
    ready_at: float | None = None
    ready_count = 0
    ready_cpu = 0.0
    stored = reached = 0
    now = last_report = last_change = last_exact = last_poll = time.monotonic()
    done_at = now
    while stored < target:
        if process.poll() is not None:
            raise RuntimeError(f"{label} exited with {process.returncode} before storing everything")
        if now - started > timeout_s or now - last_change > stall_s:
            progress(f"  {label}: gave up with {stored:,} of {target:,} readings stored")
            break
        time.sleep(0.02)
        now = time.monotonic()
        if ready_at is None and ready():
            ready_at, ready_cpu = now, cpu_and_peak(process.pid)[0]
            ready_count = sum(servers.influxd.counts(db, COUNT_FIELD).values())
        if now - last_poll < poll_s:
            continue
        last_poll = now
        count = servers.influxd.points_reached(db)
        if count != reached:
            reached, last_change = count, now
        if (reached >= target and now - last_exact >= poll_s) or now - last_exact >= 5:
            stored = sum(servers.influxd.counts(db, COUNT_FIELD).values())
            now = last_exact = done_at = time.monotonic()
        if now - last_report >= 5:
            progress(f"  {label}: {stored:,}/{target:,} stored after {now - started:.0f} s")
            last_report = now
    cpu, peak = cpu_and_peak(process.pid)
    if ready_at is None or ready_at >= done_at:  # never seen ready before the end: count from the start
        ready_at, ready_count, ready_cpu = started, 0, 0.0
    return {
        "complete": stored >= target,
        "stored": stored,
        "wall_s": round(done_at - started, 3),
        "startup_s": round(ready_at - started, 3),
        "sustained_s": round(done_at - ready_at, 3),
        "sustained_readings": stored - ready_count,
        "cpu_s": round(cpu, 3),
        "cpu_s_sustained": round(cpu - ready_cpu, 3),
        "peak_rss_mb": round(peak / 2**20, 1),
    }


def rates(result: dict[str, Any], messages: int, readings: int) -> dict[str, Any]:
    """Rates from a drain: from starting the process, and sustained (from ready to the last point)."""
    per_message = readings / messages
    stored = result["stored"]
    window_readings, window_s, window_cpu = (
        result["sustained_readings"],
        result["sustained_s"],
        result["cpu_s_sustained"],
    )
    return {
        "messages": messages,
        "readings": readings,
        "msg_per_s": round(stored / per_message / result["wall_s"]),
        "readings_per_s": round(stored / result["wall_s"]),
        "sustained_msg_per_s": round(window_readings / per_message / window_s),
        "sustained_readings_per_s": round(window_readings / window_s),
        "cpu_s_per_10k_messages": round(window_cpu / max(window_readings / per_message, 1) * 10_000, 3),
    }


def drain_mosquitto_sub(
    servers: Servers, client_id: str, topic: str, messages: int, timeout_s: float
) -> dict[str, Any]:
    """The broker's ceiling: its own C client receives the session's backlog at QoS 1 and discards it."""
    args = [
        "mosquitto_sub", "-h", "127.0.0.1", "-p", str(servers.mosquitto.port), "-q", "1", "-c",
        "-i", client_id, "-t", topic, "-C", str(messages),
    ]  # fmt: skip
    broker0, _ = servers.cpu()
    done = run_measured(args, timeout_s)
    if done.returncode != 0:
        raise RuntimeError(f"mosquitto_sub exited with {done.returncode} (did not receive {messages:,})")
    broker1, _ = servers.cpu()
    return {
        "wall_s": round(done.wall_s, 3),
        "messages": messages,
        "msg_per_s": round(messages / done.wall_s),
        "cpu_s": round(done.cpu_s, 3),
        "cpu_s_per_10k_messages": round(done.cpu_s / messages * 10_000, 3),
        "peak_rss_mb": round(done.peak_rss_bytes / 2**20, 1),
        "broker_cpu_s": round(broker1 - broker0, 3),
        "every_message_received": True,
    }


def ingest_env(
    servers: Servers,
    workdir: Path,
    client_id: str,
    db: str,
    registry: Path,
    root: Path | None = None,
    **extra: str,
) -> dict[str, str]:
    """``citypulse ingest`` with its defaults, pointed at this run's broker and influxd (v1 sink).

    ``root``: run the ``citypulse`` of another checkout (``--baseline``) instead of this one's.
    """
    return {
        **(python_env(root) if root is not None else python_env()),
        "CITYPULSE_MQTT_URL": servers.mosquitto.url,
        "CITYPULSE_MQTT_CLIENT_ID": client_id,
        "CITYPULSE_REGISTRY": str(registry),
        "CITYPULSE_SINK": "influxdb",
        "CITYPULSE_INFLUX_API": "v1",
        "CITYPULSE_INFLUX_URL": servers.influxd.url,
        "CITYPULSE_INFLUX_BUCKET": db,
        "CITYPULSE_SPOOL_DIR": str(workdir / "spool"),
        "CITYPULSE_DETECTOR_STATE": str(workdir / "detectors.npz"),
        "CITYPULSE_METRICS_PORT": str(free_port()),
        # The offered loads send every device far more often than its registered interval (a waste
        # bin once a second): the per-device rate limit would hold most of it back.
        "CITYPULSE_RATE_LIMIT_FACTOR": "0",
        **{f"CITYPULSE_{key.upper()}": value for key, value in extra.items()},
    }


def ingest_summary(workdir: Path) -> dict[str, Any] | None:
    """The counts ``citypulse ingest`` logged when it stopped (messages, stored, rejected by reason)."""
    path = workdir / "ingest.log"
    if not path.exists():
        return None
    marker = "citypulse ingest stopped: "
    lines = [line for line in path.read_text(errors="replace").splitlines() if marker in line]
    if not lines:
        return None
    summary: dict[str, Any] = json.loads(lines[-1].split(marker, 1)[1])
    keep = (
        "messages", "received", "stored", "rejected", "rejected_by_reason", "write_failures",
        "anomalies_by_detector",
    )  # fmt: skip
    return {key: summary.get(key) for key in keep}


INGEST_READY = "citypulse ingest: reading"
"""What ``citypulse ingest`` logs once it is connected and subscribed."""


def start_ingest(workdir: Path, env: dict[str, str]) -> tuple[subprocess.Popen[bytes], Ready]:
    workdir.mkdir(parents=True, exist_ok=True)
    path = workdir / "ingest.log"
    log = path.open("ab")
    process = subprocess.Popen(
        citypulse("ingest"), cwd=workdir, env=env, stdout=log, stderr=subprocess.STDOUT
    )
    return process, log_says(path, INGEST_READY)


def start_naive(
    servers: Servers, workdir: Path, db: str, client_id: str
) -> tuple[subprocess.Popen[bytes], Ready]:
    workdir.mkdir(parents=True, exist_ok=True)
    path = workdir / "bridge.log"
    script = Path(__file__).with_name("naive_bridge.py")
    args = [sys.executable, str(script), servers.mosquitto.url, servers.influxd.url, db, client_id]
    process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=path.open("ab"))
    return process, log_says(path, "naive bridge: connected")


def wait_until_ready(process: subprocess.Popen[bytes], ready: Ready, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not ready():
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"{process.args!r} did not get ready (exit code {process.poll()})")
        time.sleep(0.02)


def drain_process(
    servers: Servers,
    label: str,
    db: str,
    backlog: Backlog,
    start: Callable[[], tuple[subprocess.Popen[bytes], Ready]],
    timeout_s: float,
    poll_s: float,
    progress: Progress,
) -> dict[str, Any]:
    """Start a contender against its queued session, time it until everything is stored, stop it, check."""
    servers.influxd.create_database(db)
    broker0, db0 = servers.cpu()
    started = time.monotonic()
    process, ready = start()
    try:
        result = watch_drain(
            servers, db, backlog.readings, process, ready, started, timeout_s, poll_s, progress, label
        )
        broker1, db1 = servers.cpu()
    finally:
        stop_process(process, grace_s=60.0)
    result.update(rates(result, backlog.messages, backlog.readings))
    result["broker_cpu_s"] = round(broker1 - broker0, 3)
    result["influxd_cpu_s"] = round(db1 - db0, 3)
    result.update(check_stored(servers.influxd, db, backlog))
    servers.influxd.drop_database(db)
    return result


def ceiling_bodies(points: int, per_body: int = 5000, series: int = 10_000) -> list[bytes]:
    """Pre-encoded line protocol: 4 float fields per point, ``series`` devices, distinct ms timestamps."""
    base = int(time.time() * 1000) - 3_600_000
    lines = [
        b"ceiling,device=d%05d f0=%d.5,f1=%d.25,f2=0.%d,f3=1%d.0 %d"
        % (i % series, i % 97, i % 89, i % 83, i % 79, base + i)
        for i in range(points)
    ]
    return [b"\n".join(lines[i : i + per_body]) for i in range(0, points, per_body)]


def _post_all(url: str, db: str, bodies: list[bytes], gzipped: bool) -> None:
    import gzip

    parts = urllib.parse.urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port or 8086, timeout=120)
    path = "/write?" + urllib.parse.urlencode({"db": db, "precision": "ms"})
    headers = {"Content-Encoding": "gzip"} if gzipped else {}
    for body in bodies:
        connection.request("POST", path, gzip.compress(body, 1) if gzipped else body, headers)
        reply = connection.getresponse()
        reply.read()
        if reply.status != 204:
            raise RuntimeError(f"influxd answered {reply.status} to a {len(body)}-byte write")
    connection.close()


def database_ceiling(
    servers: Servers,
    points: int,
    connections: int,
    gzipped: bool = False,
    bodies: list[bytes] | None = None,
    count: dict[str, str] | None = None,
) -> dict[str, Any]:
    """influxd alone: pre-encoded bodies posted back to back over 1 or 2 connections.

    By default ``points`` synthetic points in 5,000-point bodies; or the given ``bodies``, whose
    points are counted afterwards on the measurements and fields of ``count``. Gzip (when
    asked) happens inside the timed loop, as a client that sends compressed bodies pays it.
    """
    db = f"bench_ceiling_{connections}{'_gz' if gzipped else ''}{'_given' if bodies else ''}"
    servers.influxd.create_database(db)
    if bodies is None:
        bodies = ceiling_bodies(points)
    else:
        points = sum(body.count(b"\n") + 1 for body in bodies)
    shares = [bodies[i::connections] for i in range(connections)]
    _, db0 = servers.cpu()
    started = time.monotonic()
    failures: list[BaseException] = []

    def post_share(share: list[bytes]) -> None:
        try:
            _post_all(servers.influxd.url, db, share, gzipped)
        except BaseException as failed:
            failures.append(failed)

    threads = [threading.Thread(target=post_share, args=(share,)) for share in shares]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.monotonic() - started
    if failures:
        raise RuntimeError(f"writing to influxd alone failed: {failures[0]}")
    _, db1 = servers.cpu()
    stored = sum(servers.influxd.counts(db, count or {"ceiling": "f0"}).values())
    servers.influxd.drop_database(db)
    return {
        "connections": connections,
        "gzip": gzipped,
        "points": points,
        "points_per_body": max(body.count(b"\n") + 1 for body in bodies),
        "wall_s": round(wall, 3),
        "points_per_s": round(points / wall),
        "influxd_cpu_s": round(db1 - db0, 3),
        "influxd_cpu_us_per_point": round((db1 - db0) / points * 1e6, 2),
        "every_reading_stored": stored == points,
        "missing": points - stored,
    }


def readings_bodies(backlog: Backlog, per_body: int) -> list[bytes]:
    """The backlog's readings as citypulse encodes them (validated, then line protocol), in bodies."""
    from ingest.registry_file import load_registry
    from processors.lineprotocol import LineEncoder
    from processors.validate import MessageColumns, Validator
    from simulators.outputs import read_messages

    validator = Validator(load_registry(backlog.registry))
    encoder = LineEncoder()
    lines: list[str] = []
    messages = list(read_messages(backlog.path))
    for start in range(0, len(messages), 20_000):
        part = messages[start : start + 20_000]
        result = validator.validate(
            MessageColumns([t for _, t, _ in part], [p for _, _, p in part]), int(time.time() * 1000)
        )
        validator.remember(result)
        for batch in result.batches.values():
            lines += encoder.readings(batch)
    return ["\n".join(lines[i : i + per_body]).encode() for i in range(0, len(lines), per_body)]
