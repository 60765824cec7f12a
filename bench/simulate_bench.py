"""How fast and how lean a simulated city is: generation, publishing to Mosquitto, memory per device.

Every figure is a ratio against a baseline measured in the same run, on the same machine:

1. **Generating to a file** (``--output``) vs a naive generator that does it the obvious way,
   one reading at a time in pure Python (random values, a dict, ``json.dumps``, a write).
2. **Publishing to a private Mosquitto** (QoS 1, every message acknowledged) vs the same
   publisher fed pre-made messages, the broker's own C client (``mosquitto_pub -l -q 1``, one
   topic) and paho-mqtt, the usual Python client. The CPU time the broker and the simulator each
   spend per message says which of the two sets the pace when each has a core of its own.
3. **Memory per device**: resident memory of fresh processes holding fleets of two sizes, after
   building the fleet and running a simulated minute. The slope between the sizes is the cost of
   one more device; it must stay under 1 KB.

Run: ``python bench/simulate_bench.py`` (about two minutes; ``--quick`` for a smaller run).
Needs ``mosquitto`` and ``mosquitto_pub`` (Debian: ``apt-get install -y mosquitto mosquitto-clients``).
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from processors.endpoint import ConnectOptions, MqttEndpoint  # noqa: E402
from processors.kinds import KINDS  # noqa: E402
from processors.registry import Registry  # noqa: E402
from processors.topics import TopicScheme  # noqa: E402
from simulators.fleet import make_registry  # noqa: E402
from simulators.outputs import FileOutput, MqttOutput, read_messages  # noqa: E402
from simulators.plan import FleetChoices, build  # noqa: E402
from simulators.runner import Simulation  # noqa: E402

START = 1_795_400_000_000


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def simulate(registry: Registry, span_s: float, output: Any, clock: str = "publish") -> tuple[int, float]:
    """Messages produced and seconds taken by the real simulator for ``span_s`` simulated seconds."""
    end = START + int(span_s * 1000)
    schedule, encoder = build(
        registry, TopicScheme(), FleetChoices(kinds=tuple(KINDS), seed=1, start_ms=START, end_ms=end)
    )
    simulation = Simulation(
        schedule, encoder, output, speed=0, end_ms=end, wall_clock_ms=lambda: end + 1, ingest_clock=clock,  # type: ignore[arg-type]
    )  # fmt: skip
    began = time.perf_counter()
    simulation.run(drain_timeout_s=120)
    return encoder.tally.messages, time.perf_counter() - began


def naive(registry: Registry, span_s: float, path: Path) -> tuple[int, float]:
    """The obvious generator: every reading built and written on its own, in pure Python."""
    rng = random.Random(1)
    due: dict[int, dict[int, list[Any]]] = {}  # interval -> phase -> devices reporting then
    for device in registry:
        kind = KINDS[device.kind]
        interval = int(device.interval_s or kind.interval_s)
        due.setdefault(interval, {}).setdefault(rng.randrange(interval), []).append((device, kind))
    began = time.perf_counter()
    count = 0
    with path.open("w") as out:
        for second in range(int(span_s)):
            now = START + second * 1000
            for interval, phases in due.items():
                for device, kind in phases.get(second % interval, ()):
                    reading: dict[str, Any] = {"device": device.device_id, "ts": now}
                    for m in kind.measures:
                        reading[m.name] = round(rng.uniform(*m.normal), 2)
                    topic = f"citypulse/v1/readings/{kind.name}/{device.device_id}"
                    out.write(f"{now}\t{topic}\t{json.dumps(reading)}\n")
                    count += 1
    return count, time.perf_counter() - began


class Broker:
    """A private Mosquitto on a free port, configured as README asks."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        conf = workdir / "mosquitto.conf"
        conf.write_text(
            f"listener {self.port} 127.0.0.1\nallow_anonymous true\n"
            "max_queued_messages 0\nmax_inflight_messages 0\n"
        )
        binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        self.process = subprocess.Popen([binary, "-c", str(conf)], stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("mosquitto did not start")

    def cpu_seconds(self) -> float:
        """CPU time the broker has used so far (user + system)."""
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(10)


def mosquitto_pub(port: int, lines: list[bytes]) -> float:
    """Seconds the C client needs to publish ``lines`` at QoS 1 (one message per line)."""
    binary = shutil.which("mosquitto_pub")
    if binary is None:
        raise RuntimeError("mosquitto_pub is missing: apt-get install -y mosquitto-clients")
    began = time.perf_counter()
    subprocess.run(
        [binary, "-p", str(port), "-q", "1", "-t", "citypulse/v1/bench", "-l"],
        input=b"\n".join(lines) + b"\n",
        check=True,
    )
    return time.perf_counter() - began


def paho_publish(port: int, messages: list[tuple[str, bytes]]) -> float:
    """Seconds paho-mqtt needs to publish ``messages`` at QoS 1 and have them all acknowledged."""
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="bench-paho", protocol=mqtt.MQTTv5)
    client.max_inflight_messages_set(0)
    client.max_queued_messages_set(0)
    acked = [0]
    cond = threading.Condition()

    def on_publish(*_: object) -> None:
        with cond:
            acked[0] += 1
            cond.notify_all()

    client.on_publish = on_publish
    client.connect("127.0.0.1", port)
    client.loop_start()
    began = time.perf_counter()
    for i, (topic, payload) in enumerate(messages):
        with cond:
            while i - acked[0] >= 2000:
                cond.wait(0.5)
        client.publish(topic, payload, qos=1)
    with cond:
        while acked[0] < len(messages):
            cond.wait(0.5)
    elapsed = time.perf_counter() - began
    client.disconnect()
    client.loop_stop()
    return elapsed


def rss_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def memory_probe(devices: int) -> dict[str, int]:
    """Run in a fresh process: resident memory at each stage of holding a fleet of ``devices``."""
    import gc

    gc.collect()
    base = rss_bytes()
    registry = make_registry(devices, list(KINDS), seed=1)
    gc.collect()
    with_registry = rss_bytes()
    simulate(registry, 60.0, FileOutput(Path(os.devnull)))
    gc.collect()
    return {"devices": devices, "base": base, "registry": with_registry, "running": rss_bytes()}


def probe(devices: int) -> dict[str, int]:
    done = subprocess.run(
        [sys.executable, __file__, "--memory-probe", str(devices)], capture_output=True, text=True, check=True
    )
    result: dict[str, int] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


@dataclass
class Rate:
    """The best of a few timed runs (the machine is shared: the best is the least disturbed)."""

    messages: int = 0
    seconds: float = float("inf")
    broker_cpu: float = 0.0
    own_cpu: float = 0.0

    def offer(self, messages: int, seconds: float, broker_cpu: float = 0.0, own_cpu: float = 0.0) -> None:
        if messages / seconds > self.per_s:
            self.messages, self.seconds, self.broker_cpu, self.own_cpu = (
                messages,
                seconds,
                broker_cpu,
                own_cpu,
            )

    @property
    def per_s(self) -> float:
        return self.messages / self.seconds if self.seconds != float("inf") else 0.0

    def show(self, what: str) -> str:
        cpu = ""
        if self.broker_cpu:
            broker, own = self.broker_cpu / self.seconds, self.own_cpu / self.seconds
            cpu = f"   CPU: broker {broker:4.0%}, this process {own:4.0%}"
        return f"{what:<58}{self.per_s:>10,.0f} msg/s{cpu}"


def timed(broker: Broker | None, work: Callable[[], int]) -> tuple[int, float, float, float]:
    """Messages, wall seconds, broker CPU seconds and this process's CPU seconds of ``work``."""
    cpu0, own0, began = broker.cpu_seconds() if broker else 0.0, time.process_time(), time.perf_counter()
    messages = work()
    seconds = time.perf_counter() - began
    broker_cpu = (broker.cpu_seconds() - cpu0) if broker else 0.0
    return messages, seconds, broker_cpu, time.process_time() - own0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smaller, faster run")
    parser.add_argument("--repeat", type=int, default=3, help="timed runs per figure; the best counts")
    parser.add_argument("--memory-probe", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.memory_probe:
        print(json.dumps(memory_probe(args.memory_probe)))
        return
    devices = 20_000 if args.quick else 100_000
    span_s = 120.0 if args.quick else 600.0
    work = Path(tempfile.mkdtemp(prefix="citypulse-bench-"))
    try:
        registry = make_registry(devices, list(KINDS), seed=1)
        print(f"fleet: {devices:,} devices of {len(KINDS)} kinds, {span_s:g} s of simulated time per run, "
              f"best of {args.repeat}")  # fmt: skip

        # 1. Generation to a file, against the naive generator.
        file_path = work / "messages.tsv"
        generated, baseline = Rate(), Rate()
        for _ in range(args.repeat):
            generated.offer(*simulate(registry, span_s, FileOutput(file_path)))
            baseline.offer(*naive(registry, span_s / 5, work / "naive.tsv"))
        print(generated.show("generate to a file (--output)"))
        print(baseline.show("naive pure-Python generator (baseline)"))
        print(f"  ratio simulator / naive: {generated.per_s / baseline.per_s:.1f}x")

        # 2. Publishing to Mosquitto at QoS 1, against other clients with pre-made messages.
        sample = list(read_messages(file_path))[: 200_000 if not args.quick else 50_000]
        lines = [payload for _, _, payload in sample]
        broker = Broker(work)
        live, c_client, bare, paho = Rate(), Rate(), Rate(), Rate()
        try:
            endpoint = MqttEndpoint.parse(f"mqtt://127.0.0.1:{broker.port}")
            for round_ in range(args.repeat):
                output = MqttOutput(ConnectOptions(endpoint=endpoint, client_id=f"bench-{round_}"), qos=1)
                output.start(10)
                live.offer(
                    *timed(broker, functools.partial(_publish_simulated, registry, span_s / 2, output))
                )

                def c_run() -> int:
                    mosquitto_pub(broker.port, lines)
                    return len(lines)

                c_client.offer(*timed(broker, c_run))
                bare.offer(
                    *timed(broker, functools.partial(_publish_bare, endpoint, sample, f"bench-bare-{round_}"))
                )
            paho_n = min(len(sample), 30_000)
            paho.offer(paho_n, paho_publish(broker.port, [(t, p) for _, t, p in sample[:paho_n]]))
        finally:
            broker.stop()
        print(live.show("simulate -> Mosquitto (generated, all acknowledged)"))
        print(bare.show("same publisher, pre-made messages (no generation)"))
        print(c_client.show("mosquitto_pub -l -q 1 (C client, pre-made)"))
        print(paho.show("paho-mqtt, pre-made messages"))
        intake = max(c_client.per_s, bare.per_s)
        print(f"  ratio generation (to a file) / best broker intake measured: {generated.per_s / intake:.2f}")
        broker_us = live.broker_cpu / live.messages * 1e6
        own_us = live.own_cpu / live.messages * 1e6
        print(
            f"  CPU per message (simulating to Mosquitto): broker {broker_us:.1f} us, "
            f"simulator {own_us:.1f} us"
        )
        print(
            f"  ratio simulator / broker CPU per message: {own_us / broker_us:.2f} "
            "(below 1: the broker sets the pace when each has a core)"
        )
        print(f"  ratio simulate -> Mosquitto / C client: {live.per_s / c_client.per_s:.2f}")
        print(f"  ratio simulate -> Mosquitto / paho-mqtt: {live.per_s / paho.per_s:.1f}x")

        # 3. Memory per device, two fleet sizes in fresh processes.
        small, large = (5_000, 20_000) if args.quick else (20_000, 100_000)
        a, b = probe(small), probe(large)
        for p in (a, b):
            total = (p["running"] - p["base"]) / p["devices"]
            sim = (p["running"] - p["registry"]) / p["devices"]
            print(f"memory, {p['devices']:>7,} devices: {total:6.0f} B/device in all, {sim:5.0f} B/device "
                  f"for the simulator beyond the registry")  # fmt: skip
        slope = ((b["running"] - b["base"]) - (a["running"] - a["base"])) / (b["devices"] - a["devices"])
        print(f"  growth from {small:,} to {large:,} devices: {slope:.0f} B per extra device (target < 1024)")
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _publish_simulated(registry: Registry, span_s: float, output: MqttOutput) -> int:
    published, _ = simulate(registry, span_s, output, clock="wall")
    counts = output.counts
    assert counts.acknowledged == published, counts
    assert counts.failed == 0, counts
    return published


def _publish_bare(endpoint: MqttEndpoint, sample: list[tuple[int, str, bytes]], client_id: str) -> int:
    output = MqttOutput(ConnectOptions(endpoint=endpoint, client_id=client_id), qos=1)
    output.start(10)
    for start in range(0, len(sample), 2_000):
        output.publish_slice(sample[start : start + 2_000])
    counts = output.close(60)
    assert counts.acknowledged == len(sample), counts
    return len(sample)


if __name__ == "__main__":
    main()
