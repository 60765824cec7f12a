"""What alerts cost ingestion: pipeline cycles with alerts off, on, and on beside a webhook that hangs.

Run: ``python3 bench/alerts_bench.py [--devices 2000] [--hours 6] [--window 10] [--repeat 3]`` from the
repository root.

A simulated fleet of every kind (the demo's faults and a water main burst, so rules
fire) is generated into memory once, then pushed through ``Pipeline.process`` in
cycles as if live: a cycle takes what the fleet sent within ``--window`` seconds (at
most ``--cycle`` messages), and its ingest clock is half a second after its last
message's send time, so clocks, lateness and silence look as they would live. Three
ways, taking turns:

1. alerts off (the pipeline as it was);
2. alerts on with the default rules, no subscriber (the engine, the alert store and
   its history, the ``alerts`` events in the store);
3. as 2, plus a webhook subscriber that never answers (a local HTTP server holding
   every request until the client's 30 s timeout), the outbox and its bounded
   queue filling beside the pipeline.

Each figure is the best of ``--repeat`` runs, each run from a fresh pipeline and
fresh stores in a temporary directory. Readings per second are given by the
pipeline thread's CPU time (what ingestion pays) and by wall-clock time. The
machine is shared and noisy: the ratios to (1), measured in the same run, travel
better than the absolute numbers.
"""

from __future__ import annotations

import argparse
import http.server
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ingest.alerts.service import AlertService
from ingest.broker import free_port
from ingest.pipeline import Pipeline
from ingest.settings import Settings
from ingest.sinks.sqlite import SqliteSink
from ingest.stats import PipelineStats
from processors.anomaly import DetectionEngine
from processors.kinds import KINDS
from processors.registry import Registry
from processors.topics import TopicScheme
from processors.validate import RawMessage, Validator
from simulators.fleet import make_registry
from simulators.incidents import IncidentSpec
from simulators.outputs import OutputCounts
from simulators.plan import FleetChoices, build
from simulators.runner import Simulation

MODES = ("alerts off", "alerts on, no subscriber", "alerts on, hanging webhook")


class _Collected:
    def __init__(self) -> None:
        self.counts = OutputCounts()
        self.messages: list[tuple[int, RawMessage]] = []

    def publish_slice(self, messages: Any) -> None:
        self.messages += [(sent, RawMessage(topic, payload)) for sent, topic, payload in messages]
        self.counts.published += len(messages)
        self.counts.acknowledged += len(messages)

    def close(self, timeout_s: float) -> OutputCounts:
        return self.counts


def fleet(devices: int, hours: float, seed: int = 5) -> tuple[Registry, list[tuple[int, RawMessage]]]:
    registry = make_registry(devices, list(KINDS), seed)
    end = int(time.time() * 1000) - 60_000
    start = end - int(hours * 3_600_000)
    schedule, encoder = build(
        registry,
        TopicScheme(),
        FleetChoices(
            kinds=tuple(KINDS),
            seed=seed,
            start_ms=start,
            end_ms=end,
            faults="all",
            fault_rate=0.02,
            incidents=(IncidentSpec("pipe_burst", at="+45m", duration_s=45 * 60.0),),
        ),
    )
    out = _Collected()
    Simulation(schedule, encoder, out, speed=0, end_ms=end, ingest_clock="publish").run()
    return registry, out.messages


class HangingHook:
    """A local HTTP server that takes every request and never answers it (until stopped)."""

    def __init__(self) -> None:
        self.port = free_port()
        self.release = threading.Event()
        hook = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                hook.release.wait(120)

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


@dataclass
class Run:
    readings: int
    cpu_s: float
    wall_s: float
    alert_events: int
    queued: int
    overflow: int


def _cycles(
    messages: list[tuple[int, RawMessage]], most: int, window_ms: int
) -> Iterator[list[tuple[int, RawMessage]]]:
    """The messages in pipeline cycles: what was sent within ``window_ms``, at most ``most``."""
    chunk: list[tuple[int, RawMessage]] = []
    for item in messages:
        if chunk and (len(chunk) >= most or item[0] - chunk[0][0] >= window_ms):
            yield chunk
            chunk = []
        chunk.append(item)
    if chunk:
        yield chunk


def run(
    mode: str,
    registry: Registry,
    messages: list[tuple[int, RawMessage]],
    cycle: int,
    window_ms: int,
    hook: HangingHook,
) -> Run:
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        alerts: dict[str, Any] = {"store": workdir / "alerts.sqlite", "mqtt": False}
        if mode == MODES[2]:
            alerts["webhooks"] = [
                {"name": "hangs", "url": f"http://127.0.0.1:{hook.port}/", "secret": "s", "timeout_s": 30.0}
            ]
            alerts["group_wait_s"] = 0.0
        settings = Settings(alerts=alerts, max_age_s=30 * 86400.0)
        stats = PipelineStats()
        service = None if mode == MODES[0] else AlertService(settings, registry, stats)
        if service is not None:
            service.start()
        sink = SqliteSink(workdir / "store.sqlite")
        clock = [0]
        pipeline = Pipeline(
            Validator(registry, settings.validation, settings.topics),
            sink,
            stats,
            clock_ms=lambda: clock[0],
            engine=DetectionEngine(registry, settings.detection),
            alerts=service,
        )
        cycles = list(_cycles(messages, cycle, window_ms))
        cpu, wall = time.thread_time(), time.perf_counter()
        for chunk in cycles:
            clock[0] = chunk[-1][0] + 500
            pipeline.process([message for _, message in chunk])
        cpu, wall = time.thread_time() - cpu, time.perf_counter() - wall
        snapshot = stats.snapshot()
        queued = overflow = 0
        if service is not None:
            channels = service.snapshot().channels.values()
            queued = sum(c.queued for c in channels)
            overflow = sum(c.overflow for c in channels)
            events = len(service.store.events_after(0, limit=10**9))
            service.close()
        else:
            events = 0
        sink.close()
        return Run(sum(snapshot.stored.values()), cpu, wall, events, queued, overflow)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--devices", type=int, default=2000)
    parser.add_argument("--hours", type=float, default=6.0)
    parser.add_argument("--cycle", type=int, default=5000, help="most messages in one cycle")
    parser.add_argument("--window", type=float, default=10.0, help="simulated seconds one cycle gathers")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    registry, messages = fleet(args.devices, args.hours)
    print(
        f"alerts bench: {args.devices:,} devices, {args.hours:g} h simulated, {len(messages):,} messages "
        f"in cycles of {args.window:g} s (at most {args.cycle:,}); best of {args.repeat} "
        "(the machine may be shared: read the ratios)"
    )
    hook = HangingHook()
    best: dict[str, Run] = {}
    try:
        for _ in range(args.repeat):
            for mode in MODES:  # taking turns, so a busy moment of the machine hits every mode alike
                result = run(mode, registry, messages, args.cycle, int(args.window * 1000), hook)
                if mode not in best or result.cpu_s < best[mode].cpu_s:
                    best[mode] = result
    finally:
        hook.stop()
    base = best[MODES[0]]
    print(
        f"  {'mode':<28} {'readings/s (CPU)':>17} {'readings/s (wall)':>18} {'CPU vs off':>11}  alert events"
    )
    for mode in MODES:
        r = best[mode]
        ratio = base.cpu_s / r.cpu_s if r.cpu_s else float("nan")
        extra = (
            f"  (webhook: {r.queued:,} owed, {r.overflow:,} overflowed to disk)" if mode == MODES[2] else ""
        )
        print(
            f"  {mode:<28} {r.readings / r.cpu_s:>17,.0f} {r.readings / r.wall_s:>18,.0f} "
            f"{ratio:>10.2f}x  {r.alert_events:,}{extra}"
        )


if __name__ == "__main__":
    main()
