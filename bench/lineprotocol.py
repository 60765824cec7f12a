"""Line-protocol encoding and gzip: citypulse's columnar encoder against influxdb-client's ``Point``.

Run: ``python3 bench/lineprotocol.py [--rows 5000] [--repeat 5] [--influx-url http://127.0.0.1:8086]``

Prints, from the same run on the same data (an air-quality batch, 10 % of cells
missing):

1. encoding speed as a ratio: ``Point(...).to_line_protocol()`` per reading (the
   baseline) versus ``LineEncoder.readings`` for the whole batch, and a check
   that both produce the same points;
2. gzip at levels 1 and 9 for bodies of 1 to 5000 lines: size ratio and time,
   which is where ``CITYPULSE_INFLUX_GZIP_MIN_BYTES`` and the choice of level 1
   come from;
3. with ``--influx-url`` (an InfluxDB 1.x), the time to write a body plain versus
   gzipped, per body size, as a ratio.
"""

from __future__ import annotations

import argparse
import functools
import gzip
import statistics
import time
import urllib.request
from collections.abc import Callable
from typing import Any

import numpy as np

from processors.batch import ReadingBatch
from processors.kinds import get_kind
from processors.lineprotocol import LineEncoder
from simulators.fleet import make_registry


def air_batch(rows: int, seed: int = 1) -> ReadingBatch:
    kind = get_kind("air")
    registry = make_registry(1000, ["air"], seed=seed)
    table = registry.tables["air"]
    rng = np.random.default_rng(seed)
    values = rng.normal(50, 10, (rows, len(kind.measures))).round(2)
    values[rng.random(values.shape) < 0.1] = np.nan
    stamps = 1_795_400_000_000 + np.arange(rows, dtype=np.int64) * 1000
    devices = rng.integers(0, len(table), rows).astype(np.intp)
    return ReadingBatch(kind, table, devices, stamps, values)


def best_of(repeat: int, work: Callable[[], object]) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        work()
        times.append(time.perf_counter() - start)
    return min(times)


def with_point(batch: ReadingBatch) -> list[str]:
    from influxdb_client.client.write.point import Point
    from influxdb_client.domain.write_precision import WritePrecision

    lines = []
    devices = batch.table.devices
    names = batch.kind.measure_names
    for d, row, ts in zip(batch.device.tolist(), batch.values.tolist(), batch.ts_ms.tolist(), strict=True):
        device = devices[d]
        point: Any = Point(batch.kind.name)  # type: ignore[no-untyped-call]
        point.tag("device", device.device_id).tag("district", device.district)
        for name, value in zip(names, row, strict=True):
            point.field(name, value)  # Point leaves NaN out itself
        lines.append(point.time(ts, WritePrecision.MS).to_line_protocol())
    return lines


def encoding(rows: int, repeat: int) -> None:
    batch = air_batch(rows)
    encoder = LineEncoder()
    ours = encoder.readings(batch)
    theirs = with_point(batch)
    same = all(_fields(a) == _fields(b) for a, b in zip(ours, theirs, strict=True))
    baseline = best_of(repeat, lambda: with_point(batch))
    fresh = best_of(repeat, lambda: LineEncoder().readings(batch))
    warm = best_of(repeat, lambda: encoder.readings(batch))
    print(f"encoding {rows} air readings (best of {repeat}); same points as Point: {same}")
    print(f"  influxdb-client Point (baseline) {baseline * 1e3:8.2f} ms  {rows / baseline:10.0f} readings/s")
    print(f"  LineEncoder, cold cache          {fresh * 1e3:8.2f} ms  ratio {baseline / fresh:5.1f}x")
    print(f"  LineEncoder, warm cache          {warm * 1e3:8.2f} ms  ratio {baseline / warm:5.1f}x")


def _fields(line: str) -> tuple[str, dict[str, float], str]:
    head, fields, stamp = line.rsplit(" ", 2)
    parsed = {k: float(v) for k, v in (f.split("=") for f in fields.split(","))}
    return head, parsed, stamp


def compression(repeat: int) -> None:
    lines = LineEncoder().readings(air_batch(5000))
    print("gzip by body size (level 1 vs level 9; time is best of runs)")
    print("  lines    bytes   l1 size  l1 µs   l9 size  l9 µs")
    for n in (1, 3, 5, 10, 30, 100, 1000, 5000):
        body = "\n".join(lines[:n]).encode()
        runs = max(repeat, 2000 // n)
        sizes, times = [], []
        for level in (1, 9):
            sizes.append(len(gzip.compress(body, compresslevel=level, mtime=0)) / len(body))
            times.append(best_of(runs, functools.partial(gzip.compress, body, compresslevel=level, mtime=0)))
        level1 = f"{sizes[0]:6.2f} {times[0] * 1e6:7.0f}"
        level9 = f"{sizes[1]:6.2f} {times[1] * 1e6:7.0f}"
        print(f"  {n:5d} {len(body):8d}   {level1}   {level9}")


def posting(url: str, repeat: int) -> None:
    urllib.request.urlopen(
        urllib.request.Request(url + "/query", data=b"q=CREATE+DATABASE+bench", method="POST"), timeout=10
    ).read()
    lines = LineEncoder().readings(air_batch(5000))
    print(f"POST /write to {url}: median ms plain vs gzip level 1 (compression included)")
    for n in (1, 5, 10, 30, 100, 1000, 5000):
        body = "\n".join(lines[:n]).encode()
        plain, zipped = [], []
        for _ in range(max(repeat, 20)):
            plain.append(_post(url, body, False))
            zipped.append(_post(url, body, True))
        p, z = statistics.median(plain), statistics.median(zipped)
        times = f"plain {p * 1e3:7.2f}   gzip {z * 1e3:7.2f}   plain/gzip {p / z:4.2f}"
        print(f"  {n:5d} lines {len(body):8d} B   {times}")


def _post(url: str, body: bytes, zipped: bool) -> float:
    start = time.perf_counter()
    headers = {"Content-Type": "text/plain; charset=utf-8"}
    if zipped:
        body = gzip.compress(body, compresslevel=1, mtime=0)
        headers["Content-Encoding"] = "gzip"
    request = urllib.request.Request(url + "/write?db=bench&precision=ms", data=body, headers=headers)
    urllib.request.urlopen(request, timeout=30).read()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rows", type=int, default=5000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--influx-url", default=None, help="an InfluxDB 1.x to time plain and gzipped writes")
    args = parser.parse_args()
    encoding(args.rows, args.repeat)
    compression(args.repeat)
    if args.influx_url:
        posting(args.influx_url.rstrip("/"), args.repeat)


if __name__ == "__main__":
    main()
