"""What an ingest's memory holds at fleet scale: the service's pipeline fed a backlog in-process.

Run: ``python3 bench/memory_probe.py --devices 100000`` from the repository root (about a
minute; ``--trace`` adds a tracemalloc breakdown and takes several times longer).

``bench/e2e.py`` measures the peak of the real ``citypulse ingest`` (MQTT link, writer
thread, cycles in flight). This probe takes those away to show the floor beneath them:
it builds the pipeline as the service does (validator, every detector, air index,
device states, alerts) over a registry of ``--devices`` simulated devices, with a sink
that stores nothing, and stages and commits the same backlog the memory benchmark
drains (``citypulse simulate --span 15m``, every device reporting) in cycles of
``--cycle`` messages. It prints resident memory after each step and, with ``--trace``,
the largest live allocations by where they were made.
"""

from __future__ import annotations

import argparse
import collections
import gc
import os
import subprocess
import sys
import tempfile
import tracemalloc
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def resident_mb() -> tuple[int, int]:
    """(current, peak) resident memory of this process, in MiB."""
    values = {}
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(("VmRSS", "VmHWM")):
                values[line.split(":")[0]] = int(line.split()[1]) // 1024
    return values["VmRSS"], values["VmHWM"]


def say(step: str) -> None:
    now, peak = resident_mb()
    print(f"{step:<44} {now:>6} MiB resident, {peak:>6} MiB peak", flush=True)


class NullSink:
    """Stores nothing: the probe measures the pipeline, not a database client."""

    def write(self, batch: Any) -> None:
        return None

    def close(self) -> None:
        return None

    def describe(self) -> str:
        return "nothing"


def make_backlog(workdir: Path, devices: int) -> tuple[Path, Path]:
    registry, backlog = workdir / "devices.csv", workdir / "backlog.tsv"
    command = [
        sys.executable, "-m", "ingest.cli", "simulate", "--devices", str(devices),
        "--registry", str(registry), "--span", "15m", "--speed", "0", "--output", str(backlog), "--quiet",
    ]  # fmt: skip
    done = subprocess.run(
        command,
        check=False,
        cwd=workdir,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        raise SystemExit(f"citypulse simulate failed ({done.returncode}):\n{done.stderr}")
    return registry, backlog


def probe(registry_path: Path, backlog: Path, cycle: int, trace: bool, workdir: Path) -> None:
    os.environ["CITYPULSE_REGISTRY"] = str(registry_path)
    os.chdir(workdir)  # the alert store and its outbox go here
    from ingest.alerts.service import AlertService
    from ingest.device_states import DeviceStates
    from ingest.pipeline import Pipeline
    from ingest.registry_file import load_registry
    from ingest.settings import load_settings
    from ingest.stats import PipelineStats
    from processors.air_index import AirIndex
    from processors.anomaly import DetectionEngine
    from processors.validate import RawMessage, Validator

    say("interpreter and citypulse imported")
    if trace:
        tracemalloc.start(6)
    settings = load_settings()
    registry = load_registry(registry_path)
    say(f"registry of {len(registry):,} devices")
    stats = PipelineStats()
    alerts = AlertService(settings, registry, stats) if settings.alerts.enabled else None
    pipeline = Pipeline(
        Validator(registry, settings.validation, settings.topics),
        NullSink(),  # type: ignore[arg-type]
        stats,
        engine=DetectionEngine(registry, settings.detection, settings.detector_names),
        air_index=AirIndex(registry),
        device_states=DeviceStates(registry, settings.devices),
        alerts=alerts,
    )
    say("pipeline built")
    batch: list[RawMessage] = []
    cycles = messages = 0
    with backlog.open("rb") as lines:
        for line in lines:
            messages += 1
            _, topic, payload = line.rstrip(b"\n").split(b"\t", 2)
            batch.append(RawMessage(topic.decode(), payload))
            if len(batch) == cycle:
                staged = pipeline.stage(batch)
                pipeline.commit(staged)
                pipeline.finish(staged)
                batch, cycles = [], cycles + 1
                if cycles in (1, 10) or cycles % 20 == 0:
                    say(f"after cycle {cycles} ({cycles * cycle:,} messages)")
    if batch:
        staged = pipeline.stage(batch)
        pipeline.commit(staged)
        pipeline.finish(staged)
    del batch
    gc.collect()
    say(f"backlog done: {messages:,} messages, {sum(stats.snapshot().stored.values()):,} readings stored")
    if trace:
        by_place: collections.Counter[str] = collections.Counter()
        for stat in tracemalloc.take_snapshot().statistics("traceback"):
            frames = [f"{Path(f.filename).name}:{f.lineno}" for f in stat.traceback]
            by_place[" <- ".join(frames)] += stat.size
        print("largest live allocations (tracemalloc; innermost frame last):")
        for place, size in by_place.most_common(15):
            print(f"  {size / 2**20:8.1f} MiB  {place}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=100_000)
    parser.add_argument("--cycle", type=int, default=20_000, help="messages a cycle (the service's default)")
    parser.add_argument(
        "--trace", action="store_true", help="also break the live memory down with tracemalloc"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="citypulse-memory-") as tmp:
        workdir = Path(tmp)
        print(f"simulating {args.devices:,} devices for 15 minutes ...", file=sys.stderr, flush=True)
        registry, backlog = make_backlog(workdir, args.devices)
        probe(registry, backlog, args.cycle, args.trace, workdir)


if __name__ == "__main__":
    main()
