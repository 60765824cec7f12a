"""``citypulse evaluate``: score validation and detection against a simulated run's labels."""

from __future__ import annotations

import math
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated

import orjson
import typer
from rich.console import Console
from rich.table import Table

from ingest.allocator import keep_freed_memory
from ingest.cli.common import ConfigOption, UserError, duration_option, err, print_json, settings_from
from ingest.registry_file import load_registry
from processors.anomaly import DetectionEngine
from processors.evaluation import DAY_MS, Report, evaluate
from processors.labels import Label
from processors.registry import Registry, RegistryError
from processors.replay import AlarmLog, TimedMessage, replay
from processors.timestamps import format_rfc3339
from processors.validate import Validator


def evaluate_command(
    messages: Annotated[Path, typer.Argument(help="Message file written by citypulse simulate --output.")],
    labels: Annotated[
        Path | None,
        typer.Option(help="Labels file written by citypulse simulate --labels (none: clean data)."),
    ] = None,
    registry: Annotated[
        Path, typer.Option(help="The fleet's registry (citypulse simulate --registry).")
    ] = Path("devices.csv"),
    config: ConfigOption = None,
    cycle: Annotated[str, typer.Option(help="Simulated time per pipeline cycle, e.g. 5s, 1m.")] = "30s",
    probation: Annotated[
        str, typer.Option(help="Learning time at the start: labels in it are not scored, alarms not counted.")
    ] = "1d",
    grace: Annotated[
        float, typer.Option(help="Reporting intervals an alarm may come after an episode ends.")
    ] = 3.0,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the full report as JSON, as the last line of stdout.")
    ] = False,
) -> None:
    """Replay a simulated run through validation and detection and print precision, recall, F1 and delay.

    Messages are grouped into cycles of simulated time, each validated against the
    cycle's clock, scored, and committed as the live pipeline does. Settings
    (threshold, detectors, limits) come from the usual CITYPULSE_* variables or
    --config. Without --labels, it reports false alarms per device-day on clean data.
    """
    settings = settings_from(config)
    keep_freed_memory(settings.malloc_keep_mb)
    cycle_s = duration_option(cycle, "--cycle")
    probation_s = duration_option(probation, "--probation") if probation not in ("0", "0s") else 0.0
    assert cycle_s is not None
    assert probation_s is not None
    try:
        fleet = load_registry(registry)
    except (OSError, RegistryError) as bad:
        raise UserError(f"--registry {registry}: {bad}") from None
    episodes = _labels(labels) if labels is not None else []
    validator = Validator(fleet, settings.validation, settings.topics)
    engine = DetectionEngine(fleet, settings.detection, settings.detector_names)
    started = time.monotonic()
    last = [started]

    def progress(done: int, sim_ms: int) -> None:
        if time.monotonic() - last[0] >= 5.0:
            last[0] = time.monotonic()
            err.print(
                f"  {done:,} messages replayed, simulated time {format_rfc3339(sim_ms)}", highlight=False
            )

    result = replay(_messages(messages), validator, engine, cycle_ms=int(cycle_s * 1000), progress=progress)
    if result.messages == 0:
        raise UserError(f"{messages}: no messages; write one with citypulse simulate --output FILE")
    report = evaluate(episodes, result, fleet, grace_intervals=grace, probation_ms=int(probation_s * 1000))
    err.print(
        f"replayed {result.messages:,} messages ({result.readings:,} readings stored) in "
        f"{time.monotonic() - started:.0f} s; probation {probation_s / 86400:g} d; "
        f"{report.device_days:,.1f} device-days scored",
        highlight=False,
    )
    # Not on a terminal (a log, a pipe), rich would squeeze the table into 80 columns.
    wide = err if err.is_terminal else Console(stderr=True, width=120, soft_wrap=True)
    wide.print(_table(report))
    summary = report.as_dict()
    summary["anomalies_by_detector"] = _onsets(result.alarms, fleet)
    summary["messages"] = result.messages
    summary["readings"] = result.readings
    summary["probation_days"] = probation_s * 1000 / DAY_MS
    if as_json:
        print_json(summary)


def _onsets(alarms: AlarmLog, fleet: Registry) -> dict[str, dict[str, int]]:
    """Alarm onsets as ``{kind: {detector: n}}``, as the live pipeline's summaries count them."""
    arrays = alarms.arrays()
    counts: Counter[tuple[str, str]] = Counter()
    onset = arrays["onset"]
    for device, code in zip(
        arrays["device"][onset].tolist(), arrays["detector"][onset].tolist(), strict=True
    ):
        known = fleet.get(str(device))
        counts[(known.kind if known is not None else "unknown", alarms.detectors[int(code)])] += 1
    nested: dict[str, dict[str, int]] = {}
    for (kind, detector), n in sorted(counts.items()):
        nested.setdefault(kind, {})[detector] = n
    return nested


def _messages(path: Path) -> Iterator[TimedMessage]:
    try:
        handle = path.open("rb")
    except OSError as bad:
        raise UserError(f"cannot read {path}: {bad.strerror}") from None
    with handle:
        for number, line in enumerate(handle, 1):
            parts = line.rstrip(b"\n").split(b"\t", 2)
            if len(parts) != 3 or not parts[0].isdigit():
                raise UserError(
                    f"{path}, line {number}: expected publish_ms<TAB>topic<TAB>payload "
                    "(written by citypulse simulate --output)"
                )
            yield int(parts[0]), parts[1].decode("utf-8", "replace"), parts[2]


def _labels(path: Path) -> list[Label]:
    episodes: list[Label] = []
    try:
        text = path.read_bytes().splitlines()
    except OSError as bad:
        raise UserError(f"cannot read {path}: {bad.strerror}") from None
    for number, line in enumerate(text, 1):
        if not line.strip():
            continue
        try:
            episodes.append(Label.from_dict(orjson.loads(line)))
        except (orjson.JSONDecodeError, ValueError) as bad:
            raise UserError(f"{path}, line {number}: {bad}") from None
    return episodes


def _cell(value: float, digits: int = 2) -> str:
    return "-" if math.isnan(value) else f"{value:.{digits}f}"


def _table(report: Report) -> Table:
    table = Table(title="Detection against labels (after probation)")
    for column in (
        "fault",
        "scope",
        "episodes",
        "detected",
        "false pos.",
        "precision",
        "recall",
        "F1",
        "delay",
        "from noise",
    ):
        table.add_column(column, justify="left" if column in ("fault", "scope") else "right")
    for name, score in sorted(report.faults.items(), key=lambda kv: (kv[1].scope, kv[0])):
        table.add_row(
            name,
            score.scope,
            f"{score.episodes:,}",
            f"{score.detected:,}",
            f"{score.false_positives:,}",
            _cell(score.precision),
            _cell(score.recall),
            _cell(score.f1) if score.episodes else "-",
            _cell(score.median_delay, 1),
            _cell(score.median_delay_from_noise, 1),
        )
    days = report.device_days
    exceedances = sum(report.exceedances.values()) / days if days else math.nan
    table.caption = (
        f"false alarms per device-day (anomaly, health and rule detectors, outside every label): "
        f"{_cell(report.false_alarms_per_device_day, 3)} · standards exceedances and forecasts per "
        f"device-day: {_cell(exceedances, 3)} · median delay over all episodes: "
        f"{_cell(report.overall_median_delay, 1)} intervals · delays are in the device's reporting "
        f"intervals from the label's start; a drift's second one from when its offset exceeded the noise"
    )
    return table
