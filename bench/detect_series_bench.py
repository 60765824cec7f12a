"""One series, offline: today's ``citypulse detect`` path against the generic core, side by side.

Run from the repository root (about a minute):
``python3 bench/detect_series_bench.py [--skab ../shared/data/skab] [--rows 200000] [--today-rows 20000]``.

Three series, each timed with both contenders in the same run:

1. a real SKAB recording (``valve1/0.csv``), one measure (``Accelerometer1RMS``): what
   ``citypulse detect`` is given today;
2. the same recording as one device of eight measures (the generic core judges them together;
   today's path runs once per measure, as ``citypulse evaluate-real`` does);
3. a long synthetic series (daily cycle, noise, a level shift and spikes; one reading a minute).

Today's path is :class:`processors.series.SeriesScorer` (what the command calls, without the
CSV reading and writing, which both paths would share); it is timed on the first
``--today-rows`` rows of the long series, the generic core on all ``--rows``. Figures are rows
per second, best of three; the machine is shared, so the ratio is what travels.
"""

from __future__ import annotations

import argparse
import csv
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from processors.detectors._generic_core import GenericCore
from processors.series import SeriesScorer

DEFAULT_SKAB = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "skab"


def best_rate(rows: int, work: Callable[[], object], repeat: int = 3) -> float:
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        work()
        best = min(best, time.perf_counter() - started)
    return rows / best


def today(ts: NDArray[np.int64], x: NDArray[np.float64]) -> None:
    for column in range(x.shape[1]):
        SeriesScorer(x[:2000, column], ts[:2000]).score(ts, x[:, column])


def generic(ts: NDArray[np.int64], x: NDArray[np.float64]) -> None:
    GenericCore(x.shape[1]).run(x, ts)


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
    rates = f"today {old:>10,.0f} rows/s   generic {new:>12,.0f} rows/s"
    print(f"  {name:44} {rows:>9,} rows   {rates}   x{new / old:,.0f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--skab", type=Path, default=DEFAULT_SKAB, help="the SKAB folder")
    parser.add_argument("--rows", type=int, default=200_000, help="length of the synthetic series")
    parser.add_argument("--today-rows", type=int, default=20_000, help="of it, rows timed on today's path")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    print("rows per second, best of", args.repeat, "(shared machine: compare the ratios)")
    ts, x = read_skab(args.skab / "valve1" / "0.csv")
    one = x[:, :1]
    line(
        "SKAB valve1/0.csv, Accelerometer1RMS",
        len(ts),
        best_rate(len(ts), lambda: today(ts, one), args.repeat),
        best_rate(len(ts), lambda: generic(ts, one), args.repeat),
    )
    line(
        "SKAB valve1/0.csv, 8 measures as one device",
        len(ts),
        best_rate(len(ts), lambda: today(ts, x), args.repeat),
        best_rate(len(ts), lambda: generic(ts, x), args.repeat),
    )
    ts_long, x_long = synthetic(args.rows)
    short = min(args.today_rows, args.rows)
    line(
        "synthetic, one reading a minute",
        args.rows,
        best_rate(short, lambda: today(ts_long[:short], x_long[:short]), args.repeat),
        best_rate(args.rows, lambda: generic(ts_long, x_long), args.repeat),
    )


if __name__ == "__main__":
    main()
