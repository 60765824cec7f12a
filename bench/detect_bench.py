"""Detection speed and state size: the vectorised detectors against a per-reading baseline, same run.

Run: ``python3 bench/detect_bench.py [--devices 5000] [--batches 20] [--kind air] [--malloc-mb 32]`` from the
repository root (about two minutes: most of it is the day of warm-up).

A fleet of ``--devices`` monitors of one kind reports once per cycle (a batch of
one reading per device, as a 5,000-message pipeline cycle of a large fleet is),
after a day of warm-up so every detector is past its learning phase. It prints:

1. for every detector that applies to the kind: milliseconds per batch,
   reading-fields per second on one core, and state bytes per device and measure;
2. the same for the statistical and sensor-health set (what runs on every
   measure of every kind) and for all detectors together;
3. the baseline: the spike detector's algorithm written the ordinary way, one
   reading at a time over per-device Python objects, timed on the same readings,
   with its state measured by ``tracemalloc``; and the ratios;
4. one long series as ``citypulse detect`` scores it (one device, one reading per
   round, where numpy's fixed cost per call dominates), against the same baseline.

``--malloc-mb 32`` raises glibc's trim and mmap thresholds first (README, deployment).

Each figure is the best of three timings of scoring and committing the batches,
every repeat from the same saved state. The machine is shared and noisy: the
ratios, measured in the same run on the same machine, travel better than the
absolute numbers.
"""

from __future__ import annotations

import argparse
import math
import time
import tracemalloc
from dataclasses import dataclass

import numpy as np

from ingest.allocator import keep_freed_memory
from processors.batch import ReadingBatch
from processors.detectors import DETECTORS, Detector
from processors.detectors.spike import ALPHA, BETA, CLIP, QUICK, RETURN, WARMUP, Z_ALARM, Z_CANDIDATE
from processors.kinds import KINDS, SensorKind
from processors.registry import Device, Registry
from processors.series import PER_MEASURE_DETECTORS, SeriesScorer

START_MS = 1_795_132_800_000
CORE = ("spike", "noise", "shift", "stuck", "rate", "late", "clock", "silence")


def batches(kind: SensorKind, registry: Registry, count: int, seed: int = 1) -> list[ReadingBatch]:
    table = registry.tables[kind.name]
    n = len(table)
    rng = np.random.default_rng(seed)
    lo = np.array([m.normal[0] for m in kind.measures])
    hi = np.array([m.normal[1] for m in kind.measures])
    level = lo + (hi - lo) * rng.uniform(0.3, 0.7, (n, len(lo)))
    step = int(kind.interval_s * 1000)
    out = []
    for t in range(count):
        hours = (t * step / 3_600_000) % 24
        cycle = 1 + 0.2 * math.sin(2 * math.pi * hours / 24)
        values = np.round(level * cycle * (1 + 0.03 * rng.standard_normal((n, len(lo)))), 2)
        ts = START_MS + t * step + np.arange(n, dtype=np.int64) % step
        out.append(ReadingBatch(kind, table, np.arange(n, dtype=np.intp), ts, values, ts + 500))
    return out


def timed(detector: Detector, work: list[ReadingBatch], repeat: int = 3) -> float:
    """Seconds per batch to score and commit, as a pipeline cycle does; best of ``repeat``.

    Each repeat starts from the same saved state (restored untimed), so every one
    sees the same readings against the same history.
    """
    table = work[0].table
    saved = detector.state(table)
    best = math.inf
    for _ in range(repeat):
        detector.restore(saved, table)
        start = time.perf_counter()
        for batch in work:
            detector.commit(detector.score(batch))
        best = min(best, time.perf_counter() - start)
    detector.restore(saved, table)
    return best / len(work)


@dataclass
class PyState:
    """The spike detector's per-device, per-measure state as ordinary Python objects."""

    level: float = math.nan
    trend: float = 0.0
    scale: float = math.nan
    quick: float = math.nan
    candidate: float = math.nan
    n: int = 0


def python_spike(states: dict[tuple[int, int], PyState], batch: ReadingBatch, floor: float) -> int:
    """One reading at a time: the same arithmetic as ``SpikeDetector.step`` (linear scale)."""
    alarms = 0
    values = batch.values.tolist()
    for device, row in zip(batch.device.tolist(), values, strict=True):
        for field, y in enumerate(row):
            if math.isnan(y):
                continue
            s = states.get((device, field))
            if s is None:
                s = states[(device, field)] = PyState()
            if math.isnan(s.level):
                s.level, s.n = y, 1
                continue
            predicted = s.level + s.trend
            resid = y - predicted
            scale = max(
                0.0 if math.isnan(s.scale) else s.scale, 0.0 if math.isnan(s.quick) else s.quick, floor
            )
            z = resid / scale
            if not math.isnan(s.candidate):
                back = s.candidate - resid
                returned = (back > 0) == (s.candidate > 0) and abs(back) >= RETURN * abs(s.candidate)
                if returned and min(abs(s.candidate), abs(back)) / scale >= Z_ALARM:
                    alarms += 1
            if s.n >= WARMUP and abs(z) >= Z_CANDIDATE:
                s.candidate = resid
                continue
            s.candidate = math.nan
            clipped = max(-CLIP, min(CLIP, z)) * scale
            s.level = predicted + ALPHA * clipped
            s.trend += BETA * ALPHA * clipped
            observed = min(abs(resid), CLIP * scale) * 1.2533
            alpha = max(0.02, 1.0 / (s.n + 1))
            s.scale = observed if math.isnan(s.scale) else s.scale + alpha * (observed - s.scale)
            s.quick = observed if math.isnan(s.quick) else s.quick + QUICK * (observed - s.quick)
            s.n += 1
    return alarms


def series(rows: int) -> None:
    """One long series through the per-measure detectors (``citypulse detect --detectors
    spike,shift,noise,stuck``): one device, one reading per round.

    Every round is a vectorised step over one-element arrays, so numpy's fixed cost per
    call dominates; the per-reading Python spike detector runs on the same readings.
    """
    rng = np.random.default_rng(3)
    hours = np.arange(rows)
    values = np.round(60 + 25 * np.sin(2 * np.pi * hours / 24) + 6 * rng.standard_normal(rows), 1)
    values[rng.integers(48, rows, max(rows // 500, 1))] += 150
    values[rows // 2 :] += 40
    ts = START_MS + hours.astype(np.int64) * 3_600_000
    scorer = SeriesScorer(values[: rows // 4], ts[: rows // 4], PER_MEASURE_DETECTORS)
    start = time.perf_counter()
    scorer.score(ts, values)
    general = time.perf_counter() - start
    kind = scorer.kind
    batch = ReadingBatch(kind, scorer.table, np.zeros(rows, dtype=np.intp), ts, values[:, None], ts)
    floor = 1e-3 * (kind.measures[0].normal[1] - kind.measures[0].normal[0])
    best = math.inf
    for _ in range(3):
        start = time.perf_counter()
        python_spike({}, batch, floor)
        best = min(best, time.perf_counter() - start)
    names = ", ".join(d.name for d in scorer.detectors)
    print(
        f"\none series of {rows:,} hourly readings, through the per-measure detectors (one reading per round)"
    )
    print(f"  per-reading Python spike           {rows / best:>10,.0f} rows/s   1.0000x")
    speed = rows / general
    print(f"  vectorised, general path, all four {speed:>10,.0f} rows/s   {best / general:.4f}x  ({names})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--devices", type=int, default=5000)
    parser.add_argument("--batches", type=int, default=20)
    parser.add_argument("--kind", default="air", choices=list(KINDS))
    parser.add_argument("--series-rows", type=int, default=2000, help="length of the one-series test")
    parser.add_argument(
        "--malloc-mb",
        type=int,
        default=0,
        help="raise glibc's trim and mmap thresholds to this many MB first (0: the defaults)",
    )
    args = parser.parse_args()
    if args.malloc_mb and not keep_freed_memory(args.malloc_mb):
        raise SystemExit(f"mallopt({args.malloc_mb} MB) refused: is this glibc?")
    kind = KINDS[args.kind]
    registry = Registry(Device(f"d{i}", kind.name, "Ba Đình", 21.03, 105.85) for i in range(args.devices))
    warmup = int(86_400 / kind.interval_s) + 1
    data = batches(kind, registry, warmup + args.batches)
    learn, work = data[:warmup], data[warmup:]
    cells = args.devices * len(kind.measures)
    allocator = f"glibc malloc thresholds {args.malloc_mb} MB" if args.malloc_mb else "default glibc malloc"
    print(
        f"{args.devices:,} {kind.name} devices x {len(kind.measures)} measures per batch, "
        f"after a day of warm-up ({allocator})\n"
    )
    print(
        f"{'detector':18} {'category':12} {'ms/batch':>9} {'reading-fields/s':>17} {'bytes/device-field':>19}"
    )
    totals: dict[str, list[float]] = {"core": [0.0, 0.0], "all": [0.0, 0.0]}
    counts = {"core": 0, "all": 0}
    spike_speed = 0.0
    for name, cls in DETECTORS.items():
        if not cls.applies_to(kind):
            continue
        detector = cls(kind)
        for batch in learn:
            detector.update(batch)
        seconds = timed(detector, work)
        size = detector.bytes_per_device() / len(kind.measures)
        print(f"{name:18} {cls.category!s:12} {seconds * 1e3:9.2f} {cells / seconds:17,.0f} {size:19.1f}")
        for group in ("all", "core") if name in CORE else ("all",):
            totals[group][0] += seconds
            totals[group][1] += size
            counts[group] += 1
        if name == "spike":
            spike_speed = cells / seconds
    for group, label in (("core", "statistical + health"), ("all", "all detectors")):
        seconds, size = totals[group]
        print(f"{label:31} {seconds * 1e3:9.2f} {cells / seconds:17,.0f} {size:19.1f}")

    floor = 1e-3 * min(m.normal[1] - m.normal[0] for m in kind.measures)
    states: dict[tuple[int, int], PyState] = {}
    for batch in learn[-50:]:
        python_spike(states, batch, floor)
    best = math.inf
    for _ in range(3):
        copies = {key: PyState(**vars(s)) for key, s in states.items()}
        start = time.perf_counter()
        for batch in work:
            python_spike(copies, batch, floor)
        best = min(best, (time.perf_counter() - start) / len(work))
    tracemalloc.start()
    fresh: dict[tuple[int, int], PyState] = {}
    python_spike(fresh, learn[0], floor)
    python_spike(fresh, learn[1], floor)
    python_bytes = tracemalloc.get_traced_memory()[0] / cells
    tracemalloc.stop()
    vector = DETECTORS["spike"](kind).bytes_per_device_field()
    print("\nbaseline: the spike detector one reading at a time in Python, same readings")
    print(
        f"  per-reading Python      {cells / best:>14,.0f} reading-fields/s   "
        f"{python_bytes:7.1f} bytes/device-field"
    )
    print(
        f"  vectorised spike        {spike_speed:>14,.0f} reading-fields/s   {vector:7.1f} bytes/device-field"
    )
    print(
        f"  ratio                   {spike_speed / (cells / best):>13.1f}x faster              "
        f"{python_bytes / vector:6.1f}x smaller"
    )
    python_speed = cells / best
    for group, label in (("core", "statistical + health"), ("all", "all detectors")):
        seconds, size = totals[group]
        print(
            f"  {label} ({counts[group]} detectors) vs one Python detector: "
            f"{cells / seconds / python_speed:.1f}x the speed, {size:.0f} vs {python_bytes:.0f} "
            "bytes/device-field"
        )
    series(args.series_rows)


if __name__ == "__main__":
    main()
