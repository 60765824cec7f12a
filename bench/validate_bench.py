"""Validation speed from raw JSON bytes: citypulse's validator against per-reading baselines, same run.

Run: ``python3 bench/validate_bench.py [--devices 20000] [--messages 100000] [--cycle 5000] [--repeat 3]``

The messages are what a city fleet sends in proportion to its reporting
intervals (air and traffic every minute, water and lighting every five, waste
every fifteen), one reading per message, with the timestamp spellings devices
use (70 % RFC 3339, 20 % epoch ms, 10 % epoch s) and 1 % bad input of every
sort. Three validators read exactly the same bytes:

1. a per-reading pure-Python baseline: ``json.loads`` and hand-written checks of
   topic, registry, types, ranges and time window, one message at a time, and a
   set of the cycle's (device, timestamp) pairs to drop duplicates, as citypulse does;
2. the reference path: each message through its kind's pydantic model
   (``model_validate_json``), as the foundation did;
3. citypulse's validator (plain and column paths), in cycles of ``--cycle`` messages.

All three see the same cycles of ``--cycle`` messages. The generated fleet
repeats a reading now and then (the same device and second, once spelled in
epoch seconds), which all three must reject as a duplicate when it falls in one
cycle. It prints readings per second for each and the ratios, checks that all
three accept the same number of readings, and repeats the run with gateway batches
(50 readings per message). The three take turns, ``--repeat`` rounds of one run
each, so that all see the same moments of a shared machine; figures are the best
run of each, by the wall clock and by the process's CPU time (which leaves out
the time a busy neighbour held the core: the per-core figure). Compare the
ratios, which are measured side by side.
Last, the validator's memory: the duplicate memory per device.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from collections.abc import Callable, Sequence

import numpy as np
import orjson

from processors.kinds import KINDS
from processors.registry import Device, Registry
from processors.timestamps import format_rfc3339, parse_timestamp
from processors.topics import TopicError, TopicScheme
from processors.validate import RawMessage, Validator

NOW_MS = 1_795_408_200_000


def fleet(devices: int) -> Registry:
    per_kind = devices // len(KINDS)
    return Registry(
        Device(f"{kind}-{i:06d}", kind, "Ba Đình", 21.03, 105.85, gateway=f"gw-{kind}-{i // 50:04d}")
        for kind in KINDS
        for i in range(per_kind)
    )


def make_messages(registry: Registry, count: int, seed: int = 1) -> list[RawMessage]:
    rng = np.random.default_rng(seed)
    kinds = list(KINDS)
    weights = np.array([1.0 / KINDS[k].interval_s * len(registry.tables[k]) for k in kinds])
    chosen = rng.choice(len(kinds), size=count, p=weights / weights.sum())
    out = []
    for i, k in enumerate(chosen.tolist()):
        kind = KINDS[kinds[k]]
        table = registry.tables[kind.name]
        device = table.devices[int(rng.integers(len(table)))].device_id
        ts = NOW_MS - int(rng.integers(0, 3_600_000))
        spelling = i % 10
        stamp: object = format_rfc3339(ts) if spelling < 7 else (ts if spelling < 9 else ts // 1000)
        body: dict[str, object] = {"device": device, "ts": stamp}
        for m in kind.measures:
            value = rng.uniform(*m.normal)
            body[m.name] = round(value) if m.step else round(float(value), 2)
        payload = orjson.dumps(body)
        if i % 100 == 0:  # 1 % bad input of every sort
            payload = [payload[:20], payload.replace(b'"ts"', b'"tz"'), b'{"ts": 1, "x": NaN}'][i // 100 % 3]
        out.append(RawMessage(f"citypulse/v1/readings/{kind.name}/{device}", payload))
    return out


def gateway(registry: Registry, messages: Sequence[RawMessage], size: int) -> tuple[list[RawMessage], int]:
    """The readings packed by the gateway each device sits behind, ``size`` to a message."""
    groups: dict[tuple[str, str], list[bytes]] = {}
    for m in messages:
        if m.payload.startswith(b"{") and m.payload.endswith(b"}"):
            _, _, _, kind, device_id = m.topic.split("/")
            device = registry.get(device_id)
            behind = device.gateway if device is not None and device.gateway else "gw-none"
            groups.setdefault((kind, behind), []).append(m.payload)
    out, readings = [], 0
    for (kind, behind), payloads in groups.items():
        for start in range(0, len(payloads), size):
            chunk = payloads[start : start + size]
            readings += len(chunk)
            out.append(RawMessage(f"citypulse/v1/batches/{kind}/{behind}", b"[" + b",".join(chunk) + b"]"))
    return out, readings


class PurePython:
    """The baseline: what a straightforward per-reading validator does, in plain Python."""

    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        self.topics = TopicScheme()
        self.limits = {k: {m.name: (m.lo, m.hi) for m in kind.measures} for k, kind in KINDS.items()}

    def validate(self, messages: Sequence[RawMessage], now_ms: int) -> int:
        valid = 0
        seen: set[tuple[str, int]] = set()
        for message in messages:
            try:
                topic = self.topics.parse(message.topic)
                body = json.loads(message.payload)
            except (TopicError, ValueError):
                continue
            items = body if isinstance(body, list) else [body]
            for item in items:
                valid += self._one(topic.kind, topic.source_id, item, now_ms, seen)
        return valid

    def _one(self, kind: str, source: str, item: object, now_ms: int, seen: set[tuple[str, int]]) -> int:
        if not isinstance(item, dict):
            return 0
        device_id = item.get("device", source)
        device = self.registry.get(device_id) if isinstance(device_id, str) else None
        if device is None or device.kind != kind or "ts" not in item:
            return 0
        try:
            ts = parse_timestamp(item["ts"])
        except ValueError:
            return 0
        if not now_ms - 7 * 86_400_000 <= ts <= now_ms + 300_000:
            return 0
        measured = 0
        for name, (lo, hi) in self.limits[kind].items():
            value = item.get(name)
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, int | float):
                return 0
            if not math.isfinite(value) or not lo <= value <= hi:
                return 0
            measured += 1
        if not measured or (device_id, ts) in seen:
            return 0
        seen.add((device_id, ts))
        return 1


def timed(work: Callable[[], int]) -> tuple[float, float, int]:
    """One run's wall-clock and CPU seconds, and its result."""
    wall, cpu = time.perf_counter(), time.process_time()
    result = work()
    return time.perf_counter() - wall, time.process_time() - cpu, result


def cycles(validator: Validator | PurePython, messages: Sequence[RawMessage], size: int) -> int:
    total = 0
    for i in range(0, len(messages), size):
        result = validator.validate(messages[i : i + size], NOW_MS)
        total += result if isinstance(result, int) else result.valid
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--devices", type=int, default=20_000)
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--cycle", type=int, default=5000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    registry = fleet(args.devices)
    messages = make_messages(registry, args.messages)
    print(f"{len(messages):,} messages from {len(registry):,} devices, cycles of {args.cycle:,}")
    baseline = PurePython(registry)
    reference = Validator(registry, column_path=False)
    columns = Validator(registry)
    cycles(columns, messages, args.cycle)  # resolve every topic once, as a running service has
    for label, batch, readings in (
        ("one reading per message", messages, len(messages)),
        ("gateway batches of 50", *gateway(registry, messages, 50)),
    ):
        contenders: dict[str, Validator | PurePython] = {
            "pure-Python per reading": baseline,
            "pydantic per message": reference,
            "citypulse validator": columns,
        }
        wall = dict.fromkeys(contenders, math.inf)
        cpu = dict.fromkeys(contenders, math.inf)
        accepted: dict[str, int] = {}
        for _ in range(args.repeat):
            for name, validator in contenders.items():
                w, c, accepted[name] = timed(lambda v=validator, b=batch: cycles(v, b, args.cycle))  # type: ignore[misc]
                wall[name], cpu[name] = min(wall[name], w), min(cpu[name], c)
        assert len(set(accepted.values())) == 1, f"validators disagree on the readings accepted: {accepted}"
        print(
            f"\n{label}: {readings:,} readings, {accepted['citypulse validator']:,} valid (all three agree)"
        )
        print(f"  {'':24} {'readings/s':>11} {'x baseline':>10}   {'CPU time':>11} {'x baseline':>10}")
        first = next(iter(contenders))
        for name in contenders:
            print(
                f"  {name:24} {readings / wall[name]:>11,.0f} {wall[first] / wall[name]:>9.2f}x"
                f"   {readings / cpu[name]:>11,.0f} {cpu[first] / cpu[name]:>9.2f}x"
            )
    columns.remember(columns.validate(messages[: args.cycle], NOW_MS))
    memory = sum(r.ts.nbytes + r.next.nbytes + r.newest.nbytes for r in columns.recent.values())
    rows = sum(r.ts.shape[0] for r in columns.recent.values())
    print(
        f"\nvalidator state: {memory / max(rows, 1):.0f} bytes per device "
        f"(the last {columns.policy.dedup_window} timestamps, to recognise duplicates)"
    )


if __name__ == "__main__":
    main()
