"""Streaming detectors compared on SKAB: the candidates behind the generic detector, and what it is made of.

Run from the repository root (a few minutes for every candidate on every part):
``python3 bench/skab_compare.py [--skab ../shared/data/skab] [--parts valve1] [--only generic,t-squared]``.

Each candidate streams every file of the chosen parts from a fresh state (see
``bench/candidates.py``); each is scored with SKAB's metrics (``processors/skab.py``)
over all rows, pooled per part. Settings were chosen on ``valve1`` only; ``valve2``,
``other`` and ``anomaly-free`` confirm them.

Besides the candidates, two ablations of the shipped generic detector show what its
score is made of: ``generic: fast evidence only`` drops the change evidence (a short
mean less a longer one over its usual size), and ``generic: alarm on first reading``
takes the alarm on the first reading past its level instead of the third in a row.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script from a checkout: the repository's packages first
    sys.path.insert(0, str(ROOT))

from bench.candidates import RUNNERS  # noqa: E402
from ingest.cli.evaluate_real import load_skab  # noqa: E402
from processors.detectors import _generic_core as core  # noqa: E402
from processors.realeval import Flags, Recording, Runner, evaluate, generic, run  # noqa: E402

DEFAULT_SKAB = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "skab"
PARTS = ("valve1", "valve2", "other", "anomaly-free")
HEADER = (
    "| detector | F1 | FAR % | MAR % | NAB std (edges) | NAB std (onsets) | missed CPs / FPs (onsets) |\n"
    "|---|---|---|---|---|---|---|"
)


@contextmanager
def patched(name: str, value: object) -> Iterator[None]:
    """The generic core with one of its module-level pieces replaced, for an ablation."""
    old = getattr(core, name)
    setattr(core, name, value)
    try:
        yield
    finally:
        setattr(core, name, old)


def ablation(name: str, value: object) -> Runner:
    def runner(recording: Recording) -> Flags:
        with patched(name, value):
            return generic(recording)

    return runner


def no_change(z_abs: NDArray[np.float64], count: NDArray[np.float64]) -> NDArray[np.float64]:
    return np.zeros_like(z_abs)


ABLATIONS: dict[str, Runner] = {
    "generic: fast evidence only": ablation("largest_z", no_change),
    "generic: alarm on first reading": ablation("CONFIRM", 1),
}


def row(name: str, summary: dict[str, float | int]) -> str:
    if "f1" not in summary:
        alarms, rows = summary["alarm_onsets_after_warmup"], summary["alarm_rows_after_warmup"]
        return f"| {name} | {alarms} | {rows} |"
    cells = [
        f"{summary['f1']:.3f}",
        f"{summary['far']:.1f}",
        f"{summary['mar']:.1f}",
        f"{summary['nab_standard_edges']:.1f}",
        f"{summary['nab_standard_onsets']:.1f}",
        f"{summary['cp_missed_onsets']} / {summary['cp_false_onsets']}",
    ]
    return f"| {name} | " + " | ".join(cells) + " |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--skab", type=Path, default=DEFAULT_SKAB, help="the SKAB folder")
    parser.add_argument("--parts", default="valve1", help=f"comma-separated parts of {', '.join(PARTS)}")
    parser.add_argument("--only", default="", help="comma-separated candidates (default: all)")
    args = parser.parse_args()
    runners: dict[str, Callable[[Recording], Flags]] = {**RUNNERS, **ABLATIONS}
    chosen = [c for c in args.only.split(",") if c] or list(runners)
    unknown = [c for c in chosen if c not in runners]
    if unknown:
        parser.error(f"unknown candidate(s) {', '.join(unknown)}; choose from: {', '.join(runners)}")
    parts = tuple(p for p in args.parts.split(",") if p)
    recordings = load_skab(args.skab, parts)
    results = {name: evaluate(recordings, run(recordings, runners[name]), 0) for name in chosen}
    for part in [*parts, "all labelled"]:
        if part not in next(iter(results.values())):
            continue
        print(f"\n#### {part}, all rows\n")
        if part == "anomaly-free":
            print("| detector | alarms after the first 400 rows | rows alarmed |\n|---|---|---|")
        else:
            print(HEADER)
        for name, result in results.items():
            print(row(name, result[part].summary()))


if __name__ == "__main__":
    main()
