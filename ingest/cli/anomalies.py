"""``citypulse anomalies``: the recent anomaly onsets, read back from the configured store."""

from __future__ import annotations

import math
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Annotated

import typer

from ingest.cli.common import ConfigOption, UserError, aligned, err, print_json, settings_from
from ingest.sinks.base import StoredAnomaly
from processors.detectors import DETECTORS
from processors.kinds import KINDS
from processors.timestamps import format_rfc3339, parse_timestamp
from processors.units import parse_duration

COLUMNS = ("time", "kind", "detector", "field", "district", "device", "score", "value")


def anomalies(
    kind: Annotated[str | None, typer.Option(help="Only this sensor kind.")] = None,
    district: Annotated[str | None, typer.Option(help="Only devices of this district.")] = None,
    device: Annotated[str | None, typer.Option(help="Only this device id.")] = None,
    detector: Annotated[
        str | None, typer.Option(help="Only this detector (citypulse detect --list names them).")
    ] = None,
    since: Annotated[
        str | None,
        typer.Option(help="Only onsets since this long ago (e.g. 30m, 1h, 7d) or this time (RFC 3339)."),
    ] = None,
    limit: Annotated[int, typer.Option(min=1, help="Show at most this many, newest first.")] = 50,
    config: ConfigOption = None,
    sink: Annotated[
        str | None, typer.Option(help="sqlite or influxdb.", show_default="CITYPULSE_SINK")
    ] = None,
    sqlite_path: Annotated[
        Path | None, typer.Option(help="SQLite store to read.", show_default="CITYPULSE_SQLITE_PATH")
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print them as one JSON object on stdout instead of a table.")
    ] = False,
) -> None:
    """List recent anomaly onsets from the store the pipeline writes (SQLite or InfluxDB).

    An onset is the first alarm of a run (per device, field and detector): a sensor
    stuck for a day is one line, not a thousand. Reads whichever store
    CITYPULSE_SINK names, with the same settings as citypulse ingest; the filters
    combine. The demo's store: --sqlite-path citypulse-demo.sqlite.
    """
    from ingest.sinks import AnomalyQuery, ReadError, open_reader

    if kind is not None and kind not in KINDS:
        raise UserError(f"--kind {kind!r} is not a sensor kind; choose one of: {', '.join(KINDS)}")
    if detector is not None and detector not in DETECTORS:
        raise UserError(f"--detector {detector!r} is not a detector; citypulse detect --list shows them all")
    settings = settings_from(config, sink=sink, sqlite={"path": sqlite_path})
    query = AnomalyQuery(
        kind=kind,
        district=district,
        device=device,
        detector=detector,
        since_ms=_since_ms(since),
        limit=limit,
    )
    try:
        reader = open_reader(settings)
    except ReadError as bad:
        raise UserError(str(bad)) from None
    try:
        found = reader.anomalies(query)
    except ReadError as bad:
        raise UserError(str(bad)) from None
    finally:
        reader.close()
    where = reader.describe()
    if as_json:
        print_json(
            {
                "store": where,
                "count": len(found),
                "anomalies": [
                    {**asdict(a), "time": format_rfc3339(a.ts_ms), "score": _number(a.score)} for a in found
                ],
            }
        )
        return
    if not found:
        err.print(f"no anomalies match in {where}", highlight=False)
        return
    sys.stdout.write(aligned(COLUMNS, [_row(a) for a in found], right=("score", "value")))
    sys.stdout.flush()
    more = " (--limit reached; narrow the filters or raise it)" if len(found) >= limit else ""
    err.print(f"{len(found):,} anomalies, newest first, from {where}{more}", highlight=False)


def _since_ms(text: str | None) -> int | None:
    if text is None:
        return None
    try:
        return time.time_ns() // 1_000_000 - int(parse_duration(text) * 1000)
    except ValueError:
        pass
    try:
        return parse_timestamp(text)
    except ValueError:
        raise UserError(
            f"--since {text!r} is neither a duration (30m, 1h, 7d) nor an RFC 3339 time"
        ) from None


def _number(x: float) -> float | None:
    return None if math.isnan(x) else x


def _row(a: StoredAnomaly) -> list[str]:
    return [
        format_rfc3339(a.ts_ms),
        a.kind,
        a.detector,
        a.field,
        a.district,
        a.device,
        "" if math.isnan(a.score) else f"{a.score:.2f}",
        "" if a.value is None else f"{a.value:g}",
    ]
