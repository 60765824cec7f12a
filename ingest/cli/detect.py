"""``citypulse detect``: score a recorded series offline with the streaming detectors."""

from __future__ import annotations

import csv
import io
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
from processors.timestamps import parse_timestamp, parse_utc_strings

CHUNK_ROWS = 20_000
SAMPLE_ROWS = 2_000
SHOWN_PROBLEMS = 5
OUTPUT_COLUMNS = ("anomaly_score", "alarm", "detector")


def detect(
    input_csv: Annotated[
        Path | None,
        typer.Argument(
            help="CSV with a header, a timestamp column and value columns ('-' for standard input).",
            show_default=False,
        ),
    ] = None,
    output: Annotated[
        str, typer.Option("--output", "-o", help="Where to write the scored CSV ('-' for standard output).")
    ] = "-",
    timestamp_column: Annotated[str, typer.Option(help="Name of the timestamp column.")] = "timestamp",
    value_columns: Annotated[
        str,
        typer.Option(
            "--value-columns",
            "--value-column",
            help="Comma-separated value columns, judged together as the measures of one device.",
        ),
    ] = "value",
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
    """Score a recorded series: the input columns, then anomaly_score, alarm and detector for every row.

    anomaly_score (0 to 1) is the evidence that the row is anomalous now: high where a
    change starts or new evidence arrives, falling back as the detector adapts; 0.5 is
    as surprising as a reading four standard deviations out. alarm (0 or 1) is a state:
    1 from where an anomaly is confirmed until the series is back to its normal (or,
    after a long while, has a new normal). detector names the detector that gave the
    score. Timestamps are RFC 3339, epoch seconds or epoch milliseconds; ISO
    timestamps without an offset are read as UTC. The detectors learn as they go,
    exactly as they do live (no labels, nothing to tune), and say nothing during
    their warm-up (60 readings). Rows whose timestamp or values cannot be read are
    kept, scored 0, and reported.
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
    columns = tuple(c.strip() for c in value_columns.split(",") if c.strip())
    if not columns:
        raise UserError("--value-columns names no column; give one or more, separated by commas")
    started = time.monotonic()
    source = _open_input(input_csv)
    try:
        reader = csv.reader(source)
        header = next(reader, None)
        if header is None:
            raise UserError(
                f"{input_csv}: empty file; expected a header with {timestamp_column},{','.join(columns)}"
            )
        missing = [c for c in (timestamp_column, *columns) if c not in header]
        if missing:
            raise UserError(
                f"{input_csv}: the header {header} lacks {', '.join(map(repr, missing))}; "
                "name the columns with --timestamp-column / --value-columns"
            )
        at = (header.index(timestamp_column), tuple(header.index(c) for c in columns))
        summary = score_csv(reader, header, at, output, chosen, interval, input_csv)
    finally:
        if source is not sys.stdin:
            source.close()
    summary["elapsed_s"] = round(time.monotonic() - started, 2)
    err.print(
        f"scored {summary['rows']:,} rows: {summary['alarms']:,} alarms over {summary['alarm_rows']:,} rows, "
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


def _column(rows: list[list[str]], at: int) -> list[str]:
    """One column of the rows (an empty string where a row is too short)."""
    try:
        return [row[at] for row in rows]
    except IndexError:
        return [row[at] if len(row) > at else "" for row in rows]


def read_floats(texts: list[str]) -> NDArray[np.float64]:
    """The numbers of a column, NaN where a cell is not a finite number; the whole column at once."""
    try:
        values = np.array(texts, dtype=np.float64)
    except ValueError:
        values = np.array([_float(t) for t in texts], dtype=np.float64)
    values[~np.isfinite(values)] = np.nan
    return values


def _float(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        return float("nan")


def read_times(texts: list[str]) -> tuple[NDArray[np.int64], NDArray[np.bool_]]:
    """Epoch milliseconds of a column of timestamps and which could be read, the usual spellings at once.

    Epoch numbers (seconds or milliseconds) and ``YYYY-MM-DDTHH:MM:SS[.fff]Z`` are read
    as one array; ``YYYY-MM-DD HH:MM:SS`` without an offset is UTC; anything else goes
    through :func:`~processors.timestamps.parse_timestamp` one at a time.
    """
    n = len(texts)
    try:
        numbers = np.array(texts, dtype=np.float64)
    except ValueError:
        pass
    else:
        ok = np.isfinite(numbers) & (numbers >= 0)
        ms = np.where(numbers >= 100_000_000_000, numbers, numbers * 1000.0)
        return np.where(ok, np.round(ms), 0).astype(np.int64), ok
    ms, ok = parse_utc_strings(texts)
    rest = np.flatnonzero(~ok)
    if rest.size:
        naive = [texts[i] for i in rest.tolist()]
        zoned = [t[:10] + "T" + t[11:] + "Z" if len(t) == 19 and t[10] in " T" else "" for t in naive]
        again, good = parse_utc_strings(zoned)
        ms[rest[good]], ok[rest[good]] = again[good], True
        for i in rest[~good].tolist():
            try:
                ms[i], ok[i] = _timestamp(texts[i]), True
            except (ValueError, OverflowError):
                continue
    return ms, ok[:n]


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


def score_csv(
    reader: Iterator[list[str]],
    header: list[str],
    at: tuple[int, tuple[int, ...]],
    output: str,
    detectors: tuple[str, ...],
    interval: float | None,
    source: Path,
) -> dict[str, object]:
    """Score the rows ``reader`` gives and write them with the output columns; returns the summary."""
    ts_at, value_at = at
    out: IO[str] = sys.stdout if output == "-" else _open_output(output)
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([*header, *OUTPUT_COLUMNS])
    scorer: SeriesScorer | None = None
    rows_done = alarm_rows = alarms = unreadable = 0
    was_on = False
    problems: list[int] = []
    shown = _Progress()
    line = 2  # the header is line 1
    try:
        for chunk in _chunks(reader, CHUNK_ROWS):
            ts, ok = read_times(_column(chunk, ts_at))
            values = np.column_stack([read_floats(_column(chunk, j)) for j in value_at])
            good = ok & np.isfinite(values).any(axis=1)
            if scorer is None:
                sample = np.flatnonzero(good)[:SAMPLE_ROWS]
                if sample.size < 2:
                    raise UserError(
                        f"{source}: fewer than two readable rows at the start; nothing to learn from"
                    )
                scorer = SeriesScorer(values[sample], ts[sample], detectors, DetectorConfig(), interval)
            score = np.zeros(len(chunk), dtype=np.float32)
            alarm = np.zeros(len(chunk), dtype=np.bool_)
            by = np.full(len(chunk), "", dtype=object)
            readable = np.flatnonzero(good)
            if readable.size:
                found = scorer.score(ts[readable], values[readable], shown.within(rows_done))
                score[readable], alarm[readable] = found.score, found.alarm
                names = np.array(scorer.names, dtype=object)
                by[readable] = np.where(found.score > 0, names[found.detector], "")
            for i in np.flatnonzero(~good).tolist():
                if len(problems) < SHOWN_PROBLEMS:
                    problems.append(line + i)
            unreadable += int(np.count_nonzero(~good))
            alarm_rows += int(np.count_nonzero(alarm))
            alarms += int(np.count_nonzero(alarm & ~np.concatenate([[was_on], alarm[:-1]])))
            was_on = bool(alarm[-1])
            texts = np.char.mod("%.4f", score).tolist()
            flags = np.where(alarm, "1", "0").tolist()
            writer.writerows(
                [*row, text, flag, name]
                for row, text, flag, name in zip(chunk, texts, flags, by.tolist(), strict=True)
            )
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
            f"[yellow]warning:[/yellow] {unreadable:,} rows without a readable timestamp or any finite value "
            f"(first at lines {', '.join(map(str, problems))}) were scored 0",
            highlight=False,
        )
    summary: dict[str, object] = {
        "rows": rows_done,
        "unreadable": unreadable,
        "alarms": alarms,
        "alarm_rows": alarm_rows,
    }
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
