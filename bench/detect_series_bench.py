"""``citypulse detect`` end to end, the command as it was against the command as it is, in one run.

Run from the repository root (a couple of minutes):
``python3 bench/detect_series_bench.py [--skab ../shared/data/skab] [--rows 200000] [--today-rows 20000]``.

Each contender reads a CSV file, scores every row and writes the scored CSV, as the
command does (files in a temporary folder):

- **before**: the command's path before the generic detector, kept here as it was:
  each row parsed in Python, one measure's series through
  :class:`~processors.series.SeriesScorer` with the per-measure detectors (spike,
  shift, noise, stuck), each row written on its own. It took one value column, so a
  device of several measures is one run per measure;
- **now**: :func:`ingest.cli.detect.score_csv`, the command's path: columns parsed
  as arrays, the generic detector a block of readings at a time, rows written in bulk.

Three series: a real SKAB recording (``valve1/0.csv``) with one measure, the same with
its eight measures as one device, and a long synthetic series (one reading a minute: a
daily cycle, noise, a level shift and spikes). The old path is timed on the first
``--today-rows`` rows of the long one. Figures are rows per second, best of
``--repeat``; the machine is shared, so the ratio is what travels.
"""

from __future__ import annotations

import argparse
import csv
import math
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from ingest.cli.detect import score_csv
from processors.series import PER_MEASURE_DETECTORS, SeriesScorer
from processors.timestamps import format_rfc3339, parse_timestamp

DEFAULT_SKAB = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "skab"


def best_rate(rows: int, work: Callable[[], object], repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        work()
        best = min(best, time.perf_counter() - started)
    return rows / best


def write_csv(path: Path, ts: NDArray[np.int64], x: NDArray[np.float64]) -> None:
    names = ["value"] if x.shape[1] == 1 else [f"m{j}" for j in range(x.shape[1])]
    with path.open("w", newline="") as out:
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(["timestamp", *names])
        writer.writerows(
            [format_rfc3339(int(t)), *(f"{v:.6g}" for v in row)] for t, row in zip(ts, x, strict=True)
        )


def before(source: Path, target: Path, column: str) -> None:
    """The command's loop before the generic detector (``ingest/cli/detect.py`` then), without its
    progress and warnings: a row at a time in, the per-measure detectors, a row at a time out."""
    with source.open(newline="") as file, target.open("w", newline="") as out:
        reader = csv.reader(file)
        header = next(reader)
        ts_at, value_at = header.index("timestamp"), header.index(column)
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow([*header, "anomaly_score"])
        chunk = list(reader)
        ts = np.zeros(len(chunk), dtype=np.int64)
        values = np.full(len(chunk), np.nan)
        good = np.zeros(len(chunk), dtype=np.bool_)
        for i, row in enumerate(chunk):
            try:
                ts[i] = parse_timestamp(row[ts_at])
                value = float(row[value_at])
            except (ValueError, IndexError):
                continue
            if math.isfinite(value):
                values[i], good[i] = value, True
        sample = np.flatnonzero(good)[:2000]
        scorer = SeriesScorer(values[sample], ts[sample], PER_MEASURE_DETECTORS)
        scores = np.zeros(len(chunk), dtype=np.float32)
        readable = np.flatnonzero(good)
        scores[readable] = scorer.score(ts[readable], values[readable]).score
        for row, score in zip(chunk, scores.tolist(), strict=True):
            writer.writerow([*row, f"{score:.4f}"])


def before_each(source: Path, target: Path, columns: tuple[str, ...]) -> None:
    """The old path took one value column: a device of several measures is one run per measure."""
    for column in columns:
        before(source, target, column)


def now(source: Path, target: Path, columns: tuple[str, ...]) -> None:
    with source.open(newline="") as file:
        reader = csv.reader(file)
        header = next(reader)
        at = (header.index("timestamp"), tuple(header.index(c) for c in columns))
        score_csv(reader, header, at, str(target), ("generic",), None, source)


def read_skab(path: Path) -> tuple[NDArray[np.int64], NDArray[np.float64]]:
    with path.open(newline="") as source:
        rows = list(csv.reader(source, delimiter=";"))[1:]
    ts = np.array(
        [int(datetime.fromisoformat(r[0]).replace(tzinfo=UTC).timestamp() * 1000) for r in rows],
        dtype=np.int64,
    )
    return ts, np.array([[float(v) for v in r[1:9]] for r in rows])


def synthetic(rows: int) -> tuple[NDArray[np.int64], NDArray[np.float64]]:
    rng = np.random.default_rng(1)
    minutes = np.arange(rows)
    x = 20 + 5 * np.sin(2 * np.pi * minutes / 1440) + rng.standard_normal(rows)
    x[rows // 2 :] += 4.0
    x[rng.choice(rows, max(rows // 5000, 1), replace=False)] += 12.0
    return (1_795_000_000_000 + 60_000 * minutes).astype(np.int64), x.reshape(rows, 1)


def line(name: str, rows: int, old: float, new: float) -> None:
    rates = f"before {old:>10,.0f} rows/s   now {new:>10,.0f} rows/s"
    print(f"  {name:44} {rows:>9,} rows   {rates}   x{new / old:,.0f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--skab", type=Path, default=DEFAULT_SKAB, help="the SKAB folder")
    parser.add_argument("--rows", type=int, default=200_000, help="length of the synthetic series")
    parser.add_argument("--today-rows", type=int, default=20_000, help="of it, rows timed on the old path")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    print("citypulse detect end to end (CSV in, scores, CSV out), rows per second, best of", args.repeat)
    print("(shared machine: compare the ratios)")
    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        out = tmp / "scored.csv"
        ts, x = read_skab(args.skab / "valve1" / "0.csv")
        write_csv(tmp / "one.csv", ts, x[:, :1])
        write_csv(tmp / "eight.csv", ts, x)
        n = len(ts)
        line(
            "SKAB valve1/0.csv, Accelerometer1RMS",
            n,
            best_rate(n, lambda: before(tmp / "one.csv", out, "value"), args.repeat),
            best_rate(n, lambda: now(tmp / "one.csv", out, ("value",)), args.repeat),
        )
        names = tuple(f"m{j}" for j in range(8))
        line(
            "SKAB valve1/0.csv, 8 measures as one device",
            n,
            best_rate(n, lambda: before_each(tmp / "eight.csv", out, names), args.repeat),
            best_rate(n, lambda: now(tmp / "eight.csv", out, names), args.repeat),
        )
        ts_long, x_long = synthetic(args.rows)
        short = min(args.today_rows, args.rows)
        write_csv(tmp / "long.csv", ts_long, x_long)
        write_csv(tmp / "short.csv", ts_long[:short], x_long[:short])
        line(
            "synthetic, one reading a minute",
            args.rows,
            best_rate(short, lambda: before(tmp / "short.csv", out, "value"), args.repeat),
            best_rate(args.rows, lambda: now(tmp / "long.csv", out, ("value",)), args.repeat),
        )


if __name__ == "__main__":
    main()
