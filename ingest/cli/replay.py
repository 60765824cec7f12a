"""``citypulse replay``: real records from CSV files, fed through the pipeline or published to a broker."""

from __future__ import annotations

import signal
import tempfile
import threading
import time
from datetime import UTC, datetime, tzinfo
from pathlib import Path
from typing import Annotated, Any

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
    Progress,
    PublishResult,
    RecordingAlerts,
    RecordingEngine,
    ReplayClock,
    chosen_shift,
    feed,
    feed_report,
    publish,
    read_recording,
    zone,
)
from ingest.settings import Settings
from ingest.sinks import Sink, open_sink
from ingest.sinks.sqlite import SqliteSink
from ingest.stats import PipelineStats
from processors.air_index import AirIndex
from processors.endpoint import BrokerUnreachableError
from processors.kinds import KINDS
from processors.recordings import Layout, Recording, RecordingError
from processors.registry import Registry, RegistryError
from processors.replay_report import TABLE_TITLE, Part, devices, parse_part, table, totals
from processors.timestamps import format_rfc3339
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
    try:
        local = zone(tz)
    except ValueError as bad:
        raise UserError(f"--tz {tz}: {bad}") from None
    try:
        layout = Layout.of(KINDS[kind], mapping, time_columns, local, device_column, na)
        parts = [parse_part(text, local) for text in part or ()]
    except (RecordingError, ValueError) as bad:
        raise UserError(str(bad)) from None
    try:
        recording = read_recording(files, layout, device)
    except RecordingError as bad:
        raise UserError(str(bad)) from None
    if len(recording) == 0:
        raise UserError(
            f"{', '.join(map(str, files))}: no readings with any mapped value; check --map and --na"
        )
    fleet = _registry(recording, registry, district, save_registry_to)
    mode = "feed" if feed_mode else "publish"
    try:
        shift_ms = chosen_shift(
            shift_to,
            int(recording.ts_ms[0]),
            int(recording.ts_ms[-1]),
            time.time_ns() // 1_000_000,
            publishing=not feed_mode,
            speed=speed,
        )
    except ValueError:
        raise UserError(f"--shift-to {shift_to}: use 'now', 'none' or an RFC 3339 time") from None
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
        "devices": devices(recording, fleet),
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
        summary |= _feed(recording, fleet, settings, sqlite, cycle, shift_ms, parts, local, alerts_store)
    else:
        summary |= _publish(recording, settings, speed, shift_ms, client_id)
    if as_json:
        print_json(summary)


def _registry(
    recording: Recording, path: Path | None, district: str | None, save_to: Path | None
) -> Registry:
    """The given registry (checked against the records), else one generated from them."""
    if path is None:
        fleet = recording.registry(district)
        if save_to is not None:
            save_registry(fleet, save_to)
        return fleet
    try:
        fleet = load_registry(path)
    except (OSError, RegistryError) as bad:
        raise UserError(f"--registry {path}: {bad}") from None
    missing = recording.missing_from(fleet)
    if missing:
        raise UserError(
            f"--registry {path} lacks {', '.join(missing[:5])}{' ...' if len(missing) > 5 else ''}; "
            "add them, or leave --registry out to generate one"
        )
    for name, measured, declared in recording.misstated_intervals(fleet):
        err.print(
            f"warning: {name} reports every {measured:g} s in the records but --registry {path} "
            f"declares {declared:g} s; detectors scale their memories to the declared interval, so "
            "set interval_s to what the device really does",
            highlight=False,
        )
    return fleet


def _progress(total: int) -> Progress:
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
    parts: list[Part],
    local: tzinfo,
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
        try:
            alerts = RecordingAlerts.apart(
                settings, fleet, stats, alerts_store or Path(scratch) / "alerts.sqlite"
            )
        except ValueError as bad:
            raise UserError(str(bad)) from None
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
    reports = feed_report(recording, fleet, engine, alerts, parts, local, shift_ms)
    err.print(
        f"fed {result.messages:,} readings in {result.cycles:,} cycles in {result.elapsed_s:.0f} s "
        f"({human_rate(result.messages / max(result.elapsed_s, 1e-9))} readings/s): "
        f"{sum(snapshot.stored.values()):,} stored, {sum(snapshot.reasons.values()):,} rejected",
        highlight=False,
    )
    header, rows = table(reports)
    err.print(TABLE_TITLE + aligned(header, rows, right=header[2:]), highlight=False, end="")
    return {
        "stored": sum(snapshot.stored.values()),
        "rejects": dict(sorted(snapshot.reasons.items())),
        "cycles": result.cycles,
        "elapsed_s": round(result.elapsed_s, 2),
        "alarms_by_detector": engine.alarms_by_detector(),
        "onsets_by_detector": {d: n for (_, d), n in sorted(snapshot.anomaly_detectors.items())},
        "alerts_fired": alerts.fired() if alerts is not None else None,
        "parts": [r.as_dict() for r in reports],
        "totals": totals(reports),
    }


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
