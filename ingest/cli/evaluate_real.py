"""``citypulse evaluate-real``: stream real recordings through a detector and score it.

Two datasets are known. SKAB (``skab``), a water-pump testbed with eight sensors a
second, labelled by the dataset's authors: scored with SKAB's own metrics. Beijing's
air-quality records (``beijing``), two monitoring stations read hourly for four
years, unlabelled: replayed as two devices of the ``air`` kind and scored by how
many alarms they raise per device-day. Their files are read here; the streaming and
the scoring are pure code in :mod:`processors.realeval`, :mod:`processors.skab` and
:mod:`processors.quiet`.
"""

from __future__ import annotations

import csv
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Annotated

import numpy as np
import typer
from numpy.typing import NDArray
from rich.console import Console
from rich.table import Table

from ingest.cli.common import UserError, err, print_json
from processors.kinds import get_kind
from processors.quiet import Span, count_alarms, detectors_on_kind, generic_on_kind
from processors.realeval import RUNNERS, TRAIN_ROWS, PartResult, Recording, evaluate, run
from processors.series import PER_MEASURE_DETECTORS

PROJECT_ROOT = Path(__file__).resolve().parents[2]
PARTS = ("valve1", "valve2", "other", "anomaly-free")
DATASETS = ("skab", "beijing")
BEIJING_STATIONS = ("Dongsi", "Huairou")
CHINA = timezone(timedelta(hours=8))


def _local_ms(year: int) -> int:
    return int(datetime(year, 3, 1, tzinfo=CHINA).timestamp() * 1000)


BEIJING_SPANS = (
    Span("dongsi 2013-15 (dev)", "Dongsi", _local_ms(2013), _local_ms(2015)),
    Span("dongsi 2015-17", "Dongsi", _local_ms(2015), _local_ms(2017)),
    Span("huairou 2013-17", "Huairou", _local_ms(2013), _local_ms(2017)),
)
"""Dongsi's first two years (March 2013 to February 2015) may choose settings; the rest confirms them."""
BEIJING_KIND_RUNNERS = {"today": detectors_on_kind(PER_MEASURE_DETECTORS), "generic": generic_on_kind}


def shared_data(name: str) -> Path:
    """``shared/data/<name>`` in the nearest folder above the project that has it (a worktree sits deeper)."""
    for folder in PROJECT_ROOT.parents:
        candidate = folder / "shared" / "data" / name
        if candidate.is_dir():
            return candidate
    return PROJECT_ROOT.parent / "shared" / "data" / name


def evaluate_real(
    dataset: Annotated[str, typer.Argument(help="The dataset to evaluate on: skab or beijing.")] = "skab",
    data: Annotated[
        Path | None,
        typer.Option(help="The dataset's folder (default: shared/data/<dataset> beside the project)."),
    ] = None,
    detector: Annotated[
        str, typer.Option(help=f"The detector set to stream the files through: {', '.join(RUNNERS)}.")
    ] = "today",
    parts: Annotated[
        str | None,
        typer.Option(
            help="Comma-separated parts to run (skab: valve1, valve2, other, anomaly-free; default all)."
        ),
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the results as JSON, as the last line of stdout.")
    ] = False,
) -> None:
    """Stream every file of a real dataset through a detector, learning as it goes, and score it.

    skab: each file starts from a fresh detector. The table gives SKAB's published
    metrics per part: outlier F1 with false- and missed-alarm rates (per row), and the
    NAB changepoint score (60-second window to the right of each changepoint,
    standard profile) from the alarm's rising and falling edges, as SKAB derives
    changepoints, and from the score's onsets. "all rows" scores every row, warm-up
    included; "test rows" only those after each file's first 400 (the split of SKAB's
    leaderboard). On anomaly-free data it counts the rows alarmed after 400 rows.

    beijing: each station is one air monitor replayed hour by hour; the table counts
    its alarms (episodes) per device-day in each span: Dongsi's first two years, on
    which settings may be chosen, then Dongsi's last two and Huairou's four.
    """
    if dataset not in DATASETS:
        raise UserError(f"unknown dataset {dataset!r}; choose from: {', '.join(DATASETS)}")
    if detector not in RUNNERS:
        raise UserError(f"unknown detector set {detector!r}; choose from: {', '.join(RUNNERS)}")
    if dataset == "beijing":
        _beijing(data or shared_data("beijing-air"), detector, as_json)
        return
    runner = RUNNERS[detector]
    chosen = tuple(p.strip() for p in (parts or ",".join(PARTS)).split(",") if p.strip())
    unknown = [p for p in chosen if p not in PARTS]
    if unknown:
        raise UserError(f"unknown part(s) {', '.join(unknown)}; choose from: {', '.join(PARTS)}")
    recordings = load_skab(data or shared_data("skab"), chosen)
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


def _beijing(folder: Path, detector: str, as_json: bool) -> None:
    kind = get_kind("air")
    recordings = {station: read_beijing(folder, station) for station in BEIJING_STATIONS}
    runner = BEIJING_KIND_RUNNERS[detector]
    found = {}
    for station, recording in recordings.items():
        err.print(
            f"  replaying {station} ({recording.ts_ms.size:,} hours) through {detector!r} ...",
            highlight=False,
        )
        found[station] = runner(recording, kind)
    results = {}
    for span in BEIJING_SPANS:
        recording = recordings[span.recording]
        pm25 = recording.values[:, recording.measures.index("pm25")]
        results[span.name] = count_alarms(recording, found[span.recording], span, pm25).summary()
    if as_json:
        print_json({"dataset": "beijing", "detector": detector, "results": results})
        return
    table = Table(title=f"Beijing air, detector set {detector!r}: alarms per device-day")
    for column in ("span", "device-days", "alarms", "per device-day", "alarmed rows %", "in pollution*"):
        table.add_column(column, justify="left" if column == "span" else "right")
    for name, s in results.items():
        table.add_row(
            name,
            f"{s['device_days']:,.0f}",
            f"{s['alarms']:,}",
            f"{s['alarms_per_device_day']:.3f}",
            f"{s['alarm_rows_percent']:.2f}",
            f"{s['alarms_in_pollution_episodes']:,}",
        )
    Console().print(table)
    err.print(
        "* alarms that started in an hour of very unhealthy air (PM2.5 >= 125.5 µg/m³)", highlight=False
    )


def read_beijing(folder: Path, station: str) -> Recording:
    """One station's hourly records as an ``air`` device: PM2.5, PM10, NO2, O3, CO (mg/m³), temperature,
    and relative humidity from the dew point (Magnus's formula); hours without any reading are left out."""
    files = sorted(folder.glob(f"PRSA_Data_{station}_*.csv"))
    if not files:
        raise UserError(f"no PRSA_Data_{station}_*.csv in {folder}; give the Beijing folder with --data")
    with files[0].open(newline="", encoding="utf-8") as source:
        rows = list(csv.DictReader(source))
    try:
        ts = np.array(
            [
                datetime(
                    int(r["year"]), int(r["month"]), int(r["day"]), int(r["hour"]), tzinfo=CHINA
                ).timestamp()
                * 1000
                for r in rows
            ],
            dtype=np.int64,
        )

        def column(name: str) -> NDArray[np.float64]:
            return np.array([float("nan") if r[name] == "NA" else float(r[name]) for r in rows])

        temp, dew = column("TEMP"), column("DEWP")
    except (KeyError, ValueError) as bad:
        raise UserError(f"{files[0]}: unreadable row ({bad}); is it an unchanged PRSA file?") from None
    humidity = 100.0 * np.exp(17.625 * dew / (243.04 + dew) - 17.625 * temp / (243.04 + temp))
    values = np.column_stack(
        [column("PM2.5"), column("PM10"), column("NO2"), column("O3"), column("CO") / 1000.0, temp, humidity]
    )
    keep = np.isfinite(values).any(axis=1)
    return Recording(
        name=station,
        part="beijing",
        ts_ms=ts[keep],
        values=values[keep],
        measures=("pm25", "pm10", "no2", "o3", "co", "temperature", "humidity"),
    )


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


def _epoch_ms(text: str) -> int:  # SKAB's times carry no zone; read as UTC
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
