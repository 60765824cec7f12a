"""``citypulse evaluate-real``: stream real labelled recordings through a detector and score it.

Today one dataset is known: SKAB (``skab``), a water-pump testbed with eight
sensors a second, labelled by the dataset's authors. Its files are read here; the
streaming and the scoring are pure code in :mod:`processors.realeval` and
:mod:`processors.skab`.
"""

from __future__ import annotations

import csv
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import numpy as np
import typer
from rich.console import Console
from rich.table import Table

from ingest.cli.common import UserError, err, print_json
from processors.realeval import RUNNERS, TRAIN_ROWS, PartResult, Recording, evaluate, run

PROJECT_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_DATA = PROJECT_ROOT.parent / "shared" / "data" / "skab"
PARTS = ("valve1", "valve2", "other", "anomaly-free")
DATASETS = ("skab",)


def evaluate_real(
    dataset: Annotated[str, typer.Argument(help="The dataset to evaluate on: skab.")] = "skab",
    data: Annotated[
        Path, typer.Option(help="The dataset's folder (default: ../shared/data/skab beside the project).")
    ] = DEFAULT_DATA,
    detector: Annotated[
        str, typer.Option(help=f"The detector set to stream the files through: {', '.join(RUNNERS)}.")
    ] = "today",
    parts: Annotated[
        str, typer.Option(help="Comma-separated parts to run: valve1, valve2, other, anomaly-free.")
    ] = ",".join(PARTS),
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the results as JSON, as the last line of stdout.")
    ] = False,
) -> None:
    """Stream every file of a real labelled dataset through a detector, learning as it goes, and score it.

    Each file starts from a fresh detector. The table gives SKAB's published metrics
    per part: outlier F1 with false- and missed-alarm rates (per row), and the NAB
    changepoint score (60-second window to the right of each changepoint, standard
    profile) from the alarm's rising and falling edges, as SKAB derives changepoints,
    and from the score's onsets. "all rows" scores every row, warm-up included;
    "test rows" only those after each file's first 400 (the split of SKAB's
    leaderboard). On anomaly-free data it counts the rows alarmed after 400 rows.
    """
    if dataset not in DATASETS:
        raise UserError(f"unknown dataset {dataset!r}; choose from: {', '.join(DATASETS)}")
    runner = RUNNERS.get(detector)
    if runner is None:
        raise UserError(f"unknown detector set {detector!r}; choose from: {', '.join(RUNNERS)}")
    chosen = tuple(p.strip() for p in parts.split(",") if p.strip())
    unknown = [p for p in chosen if p not in PARTS]
    if unknown:
        raise UserError(f"unknown part(s) {', '.join(unknown)}; choose from: {', '.join(PARTS)}")
    recordings = load_skab(data, chosen)
    err.print(f"streaming {len(recordings)} files through {detector!r} ...", highlight=False)
    flags = run(recordings, runner, progress=lambda r: err.print(f"  {r.name}", highlight=False))
    results = {
        "all rows": evaluate(recordings, flags, 0),
        "test rows": evaluate(recordings, flags, TRAIN_ROWS),
    }
    if as_json:
        print_json(
            {
                "dataset": dataset,
                "detector": detector,
                "results": {
                    rows: {part: result.summary() for part, result in parts_found.items()}
                    for rows, parts_found in results.items()
                },
            }
        )
        return
    _print_table(results, detector)


def load_skab(folder: Path, parts: tuple[str, ...] = PARTS) -> list[Recording]:
    """Every file of the chosen parts, in numeric file order; clear errors for a missing or odd folder."""
    if not folder.is_dir():
        raise UserError(f"no SKAB folder at {folder}; give its path with --data")
    found: list[Recording] = []
    for part in parts:
        files = sorted((folder / part).glob("*.csv"), key=lambda p: (len(p.stem), p.stem))
        if not files:
            raise UserError(
                f"{folder / part}: no CSV files; is --data the SKAB folder (valve1/, other/ ...)?"
            )
        found.extend(read_skab_file(path, part) for path in files)
    return found


def read_skab_file(path: Path, part: str) -> Recording:
    """One semicolon-separated SKAB file: datetime, the sensors, and (if labelled) anomaly and changepoint."""
    with path.open(newline="", encoding="utf-8") as source:
        rows = list(csv.reader(source, delimiter=";"))
    if not rows or rows[0][0] != "datetime":
        raise UserError(f"{path}: expected a header starting with 'datetime;'")
    header = rows[0]
    labelled = header[-2:] == ["anomaly", "changepoint"]
    measures = tuple(header[1:-2] if labelled else header[1:])
    body = rows[1:]
    try:
        ts = np.array([_epoch_ms(r[0]) for r in body], dtype=np.int64)
        table = np.array([[float(v) for v in r[1:]] for r in body], dtype=np.float64)
    except (ValueError, IndexError) as bad:
        raise UserError(f"{path}: unreadable row ({bad}); is it an unchanged SKAB file?") from None
    n = len(measures)
    return Recording(
        name=f"{part}/{path.name}",
        part=part,
        ts_ms=ts,
        values=table[:, :n],
        measures=measures,
        anomaly=table[:, n] == 1 if labelled else None,
        changepoint=table[:, n + 1] == 1 if labelled else None,
    )


def _epoch_ms(text: str) -> int:
    return int(datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp() * 1000)


def _print_table(results: dict[str, dict[str, PartResult]], detector: str) -> None:
    table = Table(title=f"SKAB, detector set {detector!r}")
    for column in ("rows", "part", "files", "F1", "FAR %", "MAR %", "NAB edges", "NAB onsets", "alarms*"):
        table.add_column(column, justify="left" if column in ("rows", "part") else "right")
    for rows, parts_found in results.items():
        for part, result in parts_found.items():
            s = result.summary()
            labelled = "f1" in s
            table.add_row(
                rows,
                part,
                str(s["files"]),
                f"{s['f1']:.3f}" if labelled else "-",
                f"{s['far']:.2f}" if labelled else "-",
                f"{s['mar']:.2f}" if labelled else "-",
                f"{s['nab_standard_edges']:.2f}" if labelled else "-",
                f"{s['nab_standard_onsets']:.2f}" if labelled else "-",
                f"{s['alarm_rows_after_warmup']:,} / {s['alarm_onsets_after_warmup']:,}",
            )
    Console().print(table)
    err.print("* rows alarmed / alarms started after each file's first 400 rows", highlight=False)
