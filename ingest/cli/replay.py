"""``citypulse replay``: real records from CSV files, fed through the pipeline or published to a broker."""

from __future__ import annotations

import csv
import signal
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from pathlib import Path
from typing import Annotated, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import typer

from ingest.allocator import keep_freed_memory
from ingest.cli.common import (
    ConfigOption,
    UserError,
    aligned,
    duration_option,
    err,
    print_json,
    settings_from,
)
from ingest.device_states import DeviceStates, no_open_alerts
from ingest.pipeline import Pipeline
from ingest.registry_file import load_registry, save_registry
from ingest.replay import (
    PublishResult,
    RecordingAlerts,
    RecordingEngine,
    ReplayClock,
    feed,
    publish,
    shift_to_now,
)
from ingest.settings import Settings
from ingest.sinks import Sink, open_sink
from ingest.sinks.sqlite import SqliteSink
from ingest.stats import PipelineStats
from processors.air_index import AirIndex
from processors.endpoint import BrokerUnreachableError
from processors.kinds import KINDS
from processors.recordings import (
    Layout,
    Recording,
    RecordingBuilder,
    RecordingError,
    TimeColumns,
    parse_mapping,
)
from processors.registry import Registry, RegistryError
from processors.replay_report import (
    EPISODE_DETECTORS,
    PartReport,
    alert_spans,
    fault_detectors,
    parse_part,
    report,
    totals,
)
from processors.timestamps import format_rfc3339, parse_timestamp
from processors.units import human_rate
from processors.validate import Validator


def replay(
    files: Annotated[
        list[Path],
        typer.Argument(help="CSV files of recorded readings (one device each, or --device-column)."),
    ],
    kind: Annotated[str, typer.Option(help="Sensor kind the records are readings of.")] = "air",
    mapping: Annotated[
        str,
        typer.Option(
            "--map",
            help="FIELD=COLUMN pairs, comma-separated; FIELD=COLUMN:UNIT converts the column's unit, "
            "e.g. pm25=PM2.5,co=CO:ug/m3.",
        ),
    ] = "",
    time_columns: Annotated[
        str,
        typer.Option(
            "--time",
            help="The time column (RFC 3339 or epoch), or year,month,day[,hour[,minute[,second]]] columns.",
        ),
    ] = "ts",
    tz: Annotated[
        str, typer.Option(help="Time zone of times without an offset: UTC, +08:00 or an IANA name.")
    ] = "UTC",
    device_column: Annotated[
        str | None, typer.Option(help="Column naming each row's device.", show_default="one device per file")
    ] = None,
    device: Annotated[
        str | None, typer.Option(help="Device id of a single file's rows.", show_default="the file's name")
    ] = None,
    na: Annotated[
        str,
        typer.Option(
            help="More cell values meaning 'no value', comma-separated (NA, NaN, null, empty are known)."
        ),
    ] = "",
    registry: Annotated[
        Path | None,
        typer.Option(
            help="Registry of the recorded devices.",
            show_default="generated: one device per station, at the interval it really reports",
        ),
    ] = None,
    save_registry_to: Annotated[
        Path | None, typer.Option("--save-registry", help="Write the generated registry here.")
    ] = None,
    district: Annotated[
        str | None, typer.Option(help="District of the generated devices.", show_default="each device's id")
    ] = None,
    feed_mode: Annotated[
        bool,
        typer.Option(
            "--feed", help="Run the whole pipeline in this process as fast as possible instead of publishing."
        ),
    ] = False,
    sqlite: Annotated[
        Path | None,
        typer.Option(
            help="With --feed: store in this SQLite file.", show_default="the sink CITYPULSE_SINK names"
        ),
    ] = None,
    cycle: Annotated[str, typer.Option(help="With --feed: replayed time per pipeline cycle.")] = "30s",
    alerts_store: Annotated[
        Path | None,
        typer.Option(
            help="With --feed: keep the replay's alerts in this new file (they are never delivered).",
            show_default="a temporary file",
        ),
    ] = None,
    mqtt_url: Annotated[
        str | None, typer.Option(help="Broker to publish to.", show_default="CITYPULSE_MQTT_URL")
    ] = None,
    speed: Annotated[
        float,
        typer.Option(min=0, help="Publishing: recorded seconds per real second; 0 = as fast as possible."),
    ] = 0.0,
    shift_to: Annotated[
        str | None,
        typer.Option(
            help="Move every timestamp by one constant: 'now' (the last reading is stamped when it is sent), "
            "an RFC 3339 time for the first reading, or 'none'.",
            show_default="'now' when publishing, 'none' with --feed",
        ),
    ] = None,
    part: Annotated[
        list[str] | None,
        typer.Option(
            help="A named span for the report, NAME=START..END, or NAME=START..END@DEVICE+DEVICE for some "
            "devices only (local dates, END exclusive); repeat it.",
        ),
    ] = None,
    client_id: Annotated[str, typer.Option(help="MQTT client id when publishing.")] = "citypulse-replay",
    config: ConfigOption = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print a JSON summary as the last line of stdout.")
    ] = False,
) -> None:
    """Replay real records through citypulse: each CSV row a reading, in time order, gaps and all.

    --map says which column feeds which measure of --kind (and converts units),
    --time where the time is, --tz its zone. Missing values stay missing; a row
    with none of the mapped measures is a gap. With --feed the records run
    through validation, detection, the air indices, the alert rules and the store
    in this process, on a clock that follows the replay, and the summary reports alarm
    onsets per device-day by detector (per --part) and, for air, the days whose
    daily VN_AQI was above 150 and whether the standards detectors alarmed and
    the alert rules alerted on them. Without it they are published to the
    broker (QoS 1) for a running 'citypulse ingest'.
    """
    settings = settings_from(config, mqtt_url=mqtt_url) if mqtt_url else settings_from(config)
    keep_freed_memory(settings.malloc_keep_mb)
    if kind not in KINDS:
        raise UserError(f"--kind {kind}: unknown kind; known kinds: {', '.join(KINDS)}")
    if not files:
        raise UserError("name at least one CSV file to replay")
    if device is not None and (len(files) > 1 or device_column is not None):
        raise UserError(
            "--device names the device of a single file; with several, use --device-column or one file each"
        )
    zone = _zone(tz)
    try:
        layout = Layout(
            KINDS[kind],
            parse_mapping(mapping, KINDS[kind]),
            TimeColumns(tuple(c.strip() for c in time_columns.split(",") if c.strip()), zone),
            device_column,
        )
        if na:
            layout = Layout(
                layout.kind, layout.sources, layout.time, layout.device_column, layout.na | set(na.split(","))
            )
        parts = [parse_part(text, zone) for text in part or ()]
    except (RecordingError, ValueError) as bad:
        raise UserError(str(bad)) from None
    recording = _read(files, layout, device)
    if len(recording) == 0:
        raise UserError(
            f"{', '.join(map(str, files))}: no readings with any mapped value; check --map and --na"
        )
    fleet = _registry(recording, registry, district, save_registry_to)
    mode = "feed" if feed_mode else "publish"
    shift_ms = _shift(shift_to, recording, mode, speed)
    summary: dict[str, Any] = {
        "mode": mode,
        "kind": kind,
        "files": [str(f) for f in files],
        "rows": recording.rows,
        "gaps": recording.gaps,
        "problems": dict(recording.problems),
        "readings": len(recording),
        "shift_ms": shift_ms,
        "first": format_rfc3339(int(recording.ts_ms[0]) + shift_ms),
        "last": format_rfc3339(int(recording.ts_ms[-1]) + shift_ms),
        "devices": _devices(recording, fleet),
    }
    err.print(
        f"replaying {len(recording):,} {kind} readings of {len(recording.devices)} device(s) from "
        f"{summary['first']} to {summary['last']} ({recording.gaps:,} gap rows, "
        f"{sum(recording.problems.values()):,} unreadable)",
        highlight=False,
    )
    for example in recording.examples:
        err.print(f"  {example}", highlight=False)
    if feed_mode:
        summary |= _feed(recording, fleet, settings, sqlite, cycle, shift_ms, parts, zone, alerts_store)
    else:
        summary |= _publish(recording, settings, speed, shift_ms, client_id)
    if as_json:
        print_json(summary)


def _zone(text: str) -> tzinfo:
    cleaned = text.strip()
    if cleaned.upper() in ("UTC", "Z"):
        return UTC
    if cleaned[:1] in "+-" and ":" in cleaned:
        hours, _, minutes = cleaned[1:].partition(":")
        try:
            offset = timedelta(hours=int(hours), minutes=int(minutes))
        except ValueError:
            raise UserError(f"--tz {text}: write an offset as +08:00") from None
        return timezone(-offset if cleaned[0] == "-" else offset)
    try:
        return ZoneInfo(cleaned)
    except (ZoneInfoNotFoundError, ValueError):
        raise UserError(
            f"--tz {text}: not a time zone; use UTC, an offset such as +08:00, "
            "or a name such as Asia/Ho_Chi_Minh"
        ) from None


def _read(files: Sequence[Path], layout: Layout, device: str | None) -> Recording:
    builder = RecordingBuilder(layout)
    for path in files:
        try:
            handle = path.open(newline="", encoding="utf-8-sig")
        except OSError as bad:
            raise UserError(f"cannot read {path}: {bad.strerror}") from None
        with handle:
            rows = csv.reader(handle)
            header = next(rows, None)
            if header is None:
                raise UserError(f"{path} is empty; a CSV with a header row is expected")
            name = device if device is not None else path.stem
            try:
                builder.add_table(
                    header, rows, where=str(path), device=None if layout.device_column else name
                )
            except RecordingError as bad:
                raise UserError(str(bad)) from None
            except csv.Error as bad:
                raise UserError(f"{path}: not a readable CSV file ({bad})") from None
    return builder.build()


def _registry(
    recording: Recording, path: Path | None, district: str | None, save_to: Path | None
) -> Registry:
    if path is None:
        fleet = recording.registry(district)
        if save_to is not None:
            save_registry(fleet, save_to)
        return fleet
    try:
        fleet = load_registry(path)
    except (OSError, RegistryError) as bad:
        raise UserError(f"--registry {path}: {bad}") from None
    missing = [d for d in recording.devices if d not in fleet]
    if missing:
        raise UserError(
            f"--registry {path} lacks {', '.join(missing[:5])}{' ...' if len(missing) > 5 else ''}; "
            "add them, or leave --registry out to generate one"
        )
    measured = recording.interval_s()
    for name in recording.devices:
        table = fleet.tables[recording.kind.name]
        declared = table.interval_s(table.index[name]) if name in table.index else None
        if declared is not None and not 0.5 <= measured[name] / declared <= 2.0:
            err.print(
                f"warning: {name} reports every {measured[name]:g} s in the records but --registry {path} "
                f"declares {declared:g} s; detectors scale their memories to the declared interval, so "
                "set interval_s to what the device really does",
                highlight=False,
            )
    return fleet


def _shift(text: str | None, recording: Recording, mode: str, speed: float) -> int:
    choice = (text or ("none" if mode == "feed" else "now")).strip()
    first, last = int(recording.ts_ms[0]), int(recording.ts_ms[-1])
    if choice == "none":
        return 0
    if choice == "now":
        return shift_to_now(first, last, time.time_ns() // 1_000_000, speed if mode == "publish" else 0.0)
    try:
        return parse_timestamp(choice) - first
    except ValueError:
        raise UserError(f"--shift-to {text}: use 'now', 'none' or an RFC 3339 time") from None


def _devices(recording: Recording, fleet: Registry) -> dict[str, dict[str, object]]:
    found: dict[str, dict[str, object]] = {}
    for index, name in enumerate(recording.devices):
        rows = recording.of_device(index)
        known = fleet.get(name)
        found[name] = {
            "readings": int(rows.size),
            "interval_s": known.interval_s if known is not None else None,
            "first": format_rfc3339(int(recording.ts_ms[rows[0]])),
            "last": format_rfc3339(int(recording.ts_ms[rows[-1]])),
        }
    return found


def _progress(total: int) -> Any:
    started = time.monotonic()
    last = [started]

    def show(done: int, replayed_ms: int) -> None:
        now = time.monotonic()
        if now - last[0] >= 2.0:
            last[0] = now
            err.print(
                f"  {done:,} of {total:,} readings, replayed time {format_rfc3339(replayed_ms)}, "
                f"{human_rate(done / max(now - started, 1e-9))} readings/s",
                highlight=False,
            )

    return show


def _feed(
    recording: Recording,
    fleet: Registry,
    settings: Settings,
    sqlite: Path | None,
    cycle: str,
    shift_ms: int,
    parts: list[Any],
    zone: tzinfo,
    alerts_store: Path | None,
) -> dict[str, Any]:
    cycle_s = duration_option(cycle, "--cycle")
    assert cycle_s is not None
    if alerts_store is not None and alerts_store.exists():
        raise UserError(
            f"--alerts-store {alerts_store} exists; name a new file, so the replay's alerts stand alone"
        )
    clock = ReplayClock()
    engine = RecordingEngine(fleet, settings.detection, settings.detector_names)
    stats = PipelineStats(clock_ms=clock)
    with tempfile.TemporaryDirectory(prefix="citypulse-replay-") as scratch:
        alerts = _alerts(settings, fleet, stats, alerts_store or Path(scratch) / "alerts.sqlite")
        sink: Sink = SqliteSink(sqlite) if sqlite is not None else open_sink(settings)
        try:
            pipeline = Pipeline(
                Validator(fleet, settings.validation, settings.topics),
                sink,
                stats,
                clock_ms=clock,
                engine=engine,
                air_index=AirIndex(fleet),
                device_states=DeviceStates(
                    fleet,
                    settings.devices,
                    open_alert_devices=alerts.alerting_devices if alerts is not None else no_open_alerts,
                ),
                alerts=alerts,
            )
            result = feed(
                recording.messages(settings.topics, shift_ms),
                pipeline,
                clock,
                cycle_ms=int(cycle_s * 1000),
                progress=_progress(len(recording)),
            )
            sink.flush()
        finally:
            sink.close()
            if alerts is not None:
                alerts.close()
    snapshot = stats.snapshot()
    intervals = {
        d.device_id: fleet.tables[d.kind].interval_s(fleet.tables[d.kind].index[d.device_id]) for d in fleet
    }
    spans = None
    standards_rules: frozenset[str] = frozenset()
    if alerts is not None:
        history = [replace(a, at_ms=a.at_ms - shift_ms) for a in alerts.history]
        spans = alert_spans(history, int(recording.ts_ms[-1]) + round(max(intervals.values()) * 1000))
        standards_rules = frozenset(r.name for r in alerts.rules.rules if r.detector in EPISODE_DETECTORS)
    reports = report(
        recording,
        _shifted_alarms(engine, shift_ms),
        parts,
        zone,
        intervals,
        spans,
        {d.device_id: d.district for d in fleet},
        standards_rules,
    )
    err.print(
        f"fed {result.messages:,} readings in {result.cycles:,} cycles in {result.elapsed_s:.0f} s "
        f"({human_rate(result.messages / max(result.elapsed_s, 1e-9))} readings/s): "
        f"{sum(snapshot.stored.values()):,} stored, {sum(snapshot.reasons.values()):,} rejected",
        highlight=False,
    )
    err.print(_table(reports), highlight=False, end="")
    alarm_rows: dict[str, int] = {}
    arrays = engine.alarms.arrays()
    for code, name in enumerate(engine.alarms.detectors):
        alarm_rows[name] = int((arrays["detector"] == code).sum())
    fired: Counter[str] = Counter()
    if alerts is not None:
        fired.update(record.rule for record in alerts.history if record.event == "fired")
    return {
        "stored": sum(snapshot.stored.values()),
        "rejects": dict(sorted(snapshot.reasons.items())),
        "cycles": result.cycles,
        "elapsed_s": round(result.elapsed_s, 2),
        "alarms_by_detector": dict(sorted(alarm_rows.items())),
        "onsets_by_detector": {d: n for (_, d), n in sorted(snapshot.anomaly_detectors.items())},
        "alerts_fired": dict(sorted(fired.items())) if alerts is not None else None,
        "parts": [r.as_dict() for r in reports],
        "totals": totals(reports),
    }


def _alerts(settings: Settings, fleet: Registry, stats: PipelineStats, store: Path) -> RecordingAlerts | None:
    """The alert rules of the settings over the replay, kept in ``store`` and delivered to no one.

    Years-old records must not page anybody, nor mix with the service's own alert store.
    """
    if not settings.alerts.enabled:
        return None
    scoped = settings.model_copy(update={"alerts": settings.alerts.model_copy(update={"store": store})})
    try:
        return RecordingAlerts(scoped, fleet, stats, channels=[])
    except ValueError as bad:
        raise UserError(str(bad)) from None


def _shifted_alarms(engine: RecordingEngine, shift_ms: int) -> Any:
    """The alarm log on the records' own time axis (the report counts days of the records)."""
    log = engine.alarms
    if shift_ms:
        log.ts_ms = [ts - shift_ms for ts in log.ts_ms]
        log.received_ms = [ts - shift_ms for ts in log.received_ms]
    return log


def _table(reports: Sequence[PartReport]) -> str:
    """Onsets per device-day of the sensor-fault detectors, and the episode days, per part and device."""
    categories: dict[str, str] = {}
    for entry in reports:
        categories |= entry.categories
    faults = fault_detectors(categories)
    header = [
        "part",
        "device",
        "device-days",
        *faults,
        "episode days",
        "aqi_vn",
        "who_air",
        "aqi_us",
        "alerted",
    ]
    rows = []
    for entry in reports:
        rate = entry.per_device_day()
        rows.append(
            [
                entry.part,
                entry.device,
                f"{entry.device_days:.1f}",
                *(f"{rate.get(name, 0.0):.3f}" for name in faults),
                f"{entry.episode_days}" if entry.index_days else "-",
                *(
                    f"{entry.episodes_alarmed.get(d, 0)}" if entry.index_days else "-"
                    for d in ("aqi_vn", "who_air", "aqi_us")
                ),
                f"{entry.episodes_alerted}"
                if entry.index_days and entry.episodes_alerted is not None
                else "-",
            ]
        )
    title = (
        "alarm onsets per device-day (sensor-fault detectors); episode days (daily VN_AQI > 150), "
        "those alarmed by each standards detector and those alerted\n"
    )
    return title + aligned(header, rows, right=header[2:])


def _publish(
    recording: Recording, settings: Settings, speed: float, shift_ms: int, client_id: str
) -> dict[str, Any]:
    from simulators.publisher import Publisher

    publisher = Publisher(settings.mqtt, client_id, protocol=settings.mqtt_protocol, qos=1)
    try:
        publisher.start()
    except BrokerUnreachableError as bad:
        raise UserError(str(bad)) from None
    stop = threading.Event()
    previous = signal.signal(signal.SIGTERM, lambda *_: stop.set())
    first = int(recording.ts_ms[0]) + shift_ms
    oldest_age_s = (time.time_ns() // 1_000_000 - first) / 1000.0
    if oldest_age_s > settings.max_age_s:
        err.print(
            f"warning: the first readings are {oldest_age_s / 86400:.1f} days old when sent, older than "
            f"CITYPULSE_MAX_AGE_S ({settings.max_age_s / 86400:g} days): an ingest with that setting rejects "
            "them as too old; raise it there, replay at --speed 1, or replay a shorter span",
            highlight=False,
        )
    err.print(
        f"publishing to {settings.mqtt.display()} (QoS 1) at "
        f"{'full speed' if speed == 0 else f'{speed:g}x the recorded pace'}",
        highlight=False,
    )
    outcome = PublishResult()
    try:
        outcome = publish(
            recording.messages(settings.topics, shift_ms),
            publisher.publish_many,
            speed=speed,
            stop=stop.is_set,
            progress=_progress(len(recording)),
        )
    except KeyboardInterrupt:
        outcome.stopped = True
    finally:
        counts = publisher.close(timeout_s=30.0)
        signal.signal(signal.SIGTERM, previous)
    err.print(
        f"published {counts.published:,} readings in {outcome.elapsed_s:.0f} s: {counts.acknowledged:,} "
        f"acknowledged, {counts.failed:,} failed{' (stopped early)' if outcome.stopped else ''}",
        highlight=False,
    )
    return {
        "published": counts.published,
        "acknowledged": counts.acknowledged,
        "failed": counts.failed,
        "failures": dict(counts.failures),
        "stopped": outcome.stopped,
        "elapsed_s": round(outcome.elapsed_s, 2),
        "broker": settings.mqtt.display(),
        "sent_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
