"""``citypulse detect``: score a recorded series offline with the streaming detectors."""

from __future__ import annotations

import csv
import io
import math
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Annotated

import numpy as np
import typer
from numpy.typing import NDArray

from ingest.cli.common import UserError, aligned, err, print_json
from processors.detectors import DETECTORS, DetectorConfig
from processors.kinds import KINDS
from processors.series import SERIES_DETECTORS, SeriesScorer
from processors.timestamps import parse_timestamp

CHUNK_ROWS = 20_000
SAMPLE_ROWS = 2_000
SHOWN_PROBLEMS = 5


def detect(
    input_csv: Annotated[
        Path | None,
        typer.Argument(
            help="CSV with a header and columns timestamp,value ('-' for standard input).", show_default=False
        ),
    ] = None,
    output: Annotated[
        str, typer.Option("--output", "-o", help="Where to write the scored CSV ('-' for standard output).")
    ] = "-",
    timestamp_column: Annotated[str, typer.Option(help="Name of the timestamp column.")] = "timestamp",
    value_column: Annotated[str, typer.Option(help="Name of the value column.")] = "value",
    detectors: Annotated[
        str, typer.Option(help="Comma-separated detectors to combine (see --list).")
    ] = ",".join(SERIES_DETECTORS),
    interval: Annotated[
        float | None,
        typer.Option(help="Reporting interval in seconds.", min=0.001, show_default="the median gap"),
    ] = None,
    list_detectors: Annotated[
        bool, typer.Option("--list", help="List every detector citypulse has and exit.")
    ] = False,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print a JSON summary as the last line of stdout.")
    ] = False,
) -> None:
    """Score a recorded series: the input columns plus anomaly_score in [0, 1] for every row.

    Timestamps are RFC 3339, epoch seconds or epoch milliseconds; ISO timestamps
    without an offset are read as UTC. The detectors learn as they go, exactly as
    they do live (no labels, nothing to tune); scores are low during their warm-up
    (the shift detector needs a day of history). Rows whose timestamp or value
    cannot be read are kept and scored 0, and reported.
    """
    if list_detectors:
        sys.stdout.write(_detector_list())
        return
    if input_csv is None:
        raise UserError("give the CSV to score (or '-' for standard input); see citypulse detect --help")
    if as_json and output == "-":
        raise UserError("--json prints its summary on stdout: give --output FILE for the scored rows")
    chosen = tuple(d.strip() for d in detectors.split(",") if d.strip())
    unknown = [d for d in chosen if d not in DETECTORS]
    if unknown:
        raise UserError(f"unknown detector(s) {', '.join(unknown)}; citypulse detect --list shows them all")
    started = time.monotonic()
    source = _open_input(input_csv)
    try:
        reader = csv.reader(source)
        header = next(reader, None)
        if header is None:
            raise UserError(
                f"{input_csv}: empty file; expected a header with {timestamp_column},{value_column}"
            )
        try:
            ts_at, value_at = header.index(timestamp_column), header.index(value_column)
        except ValueError:
            raise UserError(
                f"{input_csv}: the header {header} lacks {timestamp_column!r} or {value_column!r}; "
                "name them with --timestamp-column / --value-column"
            ) from None
        summary = _score(reader, header, ts_at, value_at, output, chosen, interval, input_csv)
    finally:
        if source is not sys.stdin:
            source.close()
    summary["elapsed_s"] = round(time.monotonic() - started, 2)
    err.print(
        f"scored {summary['rows']:,} rows: {summary['alarms']:,} at or above 0.5, "
        f"{summary['unreadable']:,} unreadable (scored 0) -> {output}",
        highlight=False,
    )
    if as_json:
        print_json(summary)


def _detector_list() -> str:
    """Every detector: its name, category, the kinds it applies to and what it finds, in aligned columns."""
    rows = []
    for name, cls in DETECTORS.items():
        kinds = [kind.name for kind in KINDS.values() if cls.applies_to(kind)]
        rows.append(
            [name, str(cls.category), "all" if len(kinds) == len(KINDS) else ",".join(kinds), cls.description]
        )
    return aligned(("detector", "category", "kinds", "finds"), rows)


def _open_input(path: Path) -> IO[str]:
    if str(path) == "-":
        return sys.stdin
    try:
        return path.open(newline="", encoding="utf-8-sig")
    except OSError as bad:
        raise UserError(f"cannot read {path}: {bad.strerror}") from None


def _chunks(reader: Iterator[list[str]], size: int) -> Iterator[list[list[str]]]:
    chunk: list[list[str]] = []
    for row in reader:
        chunk.append(row)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _timestamp(text: str) -> int:
    text = text.strip()
    try:
        number = float(text)
    except ValueError:
        try:
            return parse_timestamp(text)
        except ValueError:
            naive = datetime.fromisoformat(text)  # NAB-style "2014-04-01 00:00:00": UTC
            if naive.tzinfo is not None:
                raise
            return int(naive.replace(tzinfo=UTC).timestamp() * 1000)
    return parse_timestamp(number)


def _parse(
    rows: list[list[str]], ts_at: int, value_at: int
) -> tuple[NDArray[np.int64], NDArray[np.float64], NDArray[np.bool_]]:
    ts = np.zeros(len(rows), dtype=np.int64)
    values = np.full(len(rows), np.nan)
    good = np.zeros(len(rows), dtype=np.bool_)
    for i, row in enumerate(rows):
        try:
            ts[i] = _timestamp(row[ts_at])
            value = float(row[value_at])
        except (ValueError, IndexError, OverflowError):
            continue
        if math.isfinite(value):
            values[i] = value
            good[i] = True
    return ts, values, good


def _score(
    reader: Iterator[list[str]],
    header: list[str],
    ts_at: int,
    value_at: int,
    output: str,
    detectors: tuple[str, ...],
    interval: float | None,
    source: Path,
) -> dict[str, object]:
    out: IO[str] = sys.stdout if output == "-" else _open_output(output)
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([*header, "anomaly_score"])
    scorer: SeriesScorer | None = None
    rows_done = alarms = unreadable = 0
    problems: list[int] = []
    shown = _Progress()
    line = 2  # the header is line 1
    try:
        for chunk in _chunks(reader, CHUNK_ROWS):
            ts, values, good = _parse(chunk, ts_at, value_at)
            if scorer is None:
                sample = np.flatnonzero(good)[:SAMPLE_ROWS]
                if sample.size < 2:
                    raise UserError(
                        f"{source}: fewer than two readable rows at the start; nothing to learn from"
                    )
                scorer = SeriesScorer(values[sample], ts[sample], detectors, DetectorConfig(), interval)
            scores = np.zeros(len(chunk), dtype=np.float32)
            readable = np.flatnonzero(good)
            if readable.size:
                scores[readable] = scorer.score(ts[readable], values[readable], shown.within(rows_done))
            for i in np.flatnonzero(~good).tolist():
                if len(problems) < SHOWN_PROBLEMS:
                    problems.append(line + i)
            unreadable += int(np.count_nonzero(~good))
            alarms += int(np.count_nonzero(scores >= 0.5))
            for row, score in zip(chunk, scores.tolist(), strict=True):
                writer.writerow([*row, f"{score:.4f}"])
            rows_done += len(chunk)
            line += len(chunk)
            shown(rows_done)
    finally:
        if out is not sys.stdout:
            out.close()
        else:
            out.flush()
    if problems:
        err.print(
            f"[yellow]warning:[/yellow] {unreadable:,} rows without a readable timestamp or finite value "
            f"(first at lines {', '.join(map(str, problems))}) were scored 0",
            highlight=False,
        )
    summary: dict[str, object] = {"rows": rows_done, "alarms": alarms, "unreadable": unreadable}
    if scorer is not None:
        summary.update(scorer.describe())
    return summary


class _Progress:
    """Rows scored so far, on stderr every couple of seconds: a long series takes a while."""

    EVERY_S = 2.0

    def __init__(self) -> None:
        self._last = time.monotonic()

    def __call__(self, rows: int) -> None:
        if time.monotonic() - self._last >= self.EVERY_S:
            err.print(f"  {rows:,} rows scored ...", highlight=False)
            self._last = time.monotonic()

    def within(self, before: int) -> Callable[[int], None]:
        """Progress inside a chunk whose first row comes after ``before`` rows."""
        return lambda rows: self(before + rows)


def _open_output(path: str) -> IO[str]:
    try:
        return io.open(path, "w", newline="", encoding="utf-8")  # noqa: UP020 - explicit about text mode
    except OSError as bad:
        raise UserError(f"cannot write {path}: {bad.strerror}") from None
