"""``citypulse alerts``: see what is firing, acknowledge, silence, follow, and test the channels.

Every sub-command works on the alert store (``CITYPULSE_ALERTS_STORE``) whether
``citypulse ingest`` is running or not: an acknowledgement is a request the
service applies in its next cycle (or when it next starts), a silence is read
by it as it is. ``--json`` prints machine-readable output (for ``tail``, one
JSON line per event).
"""

from __future__ import annotations

import json
import queue
import sys
import threading
import time
from dataclasses import replace
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from ingest.cli.common import ConfigOption, UserError, duration_option, err, print_json, settings_from
from ingest.settings import Settings
from processors.alerts import Alert, AlertCategory, AlertEvent, AlertState, EventType, Severity, Silence
from processors.alerts.model import alert_id
from processors.kinds import KINDS
from processors.timestamps import format_rfc3339, parse_timestamp

app = typer.Typer(
    help="Alerts: list what is firing, acknowledge, silence, follow events, test the channels.",
    no_args_is_help=True,
)
out = Console(soft_wrap=True)

JsonOption = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]


def _store(settings: Settings, create: bool = False) -> Any:
    from ingest.alerts.store import AlertStore, AlertStoreError

    try:
        return AlertStore(settings.alerts.store, create=create)
    except AlertStoreError as bad:
        raise UserError(str(bad)) from None


def _message(alert: Alert | dict[str, Any], language: str) -> str:
    get = alert.get if isinstance(alert, dict) else lambda k: getattr(alert, k)
    first, second = ("message_vi", "message") if language == "vi" else ("message", "message_vi")
    return str(get(first) or get(second))


@app.command("list")
def list_alerts(config: ConfigOption = None, as_json: JsonOption = False) -> None:
    """What is open now (worst first), with the silences in force and acknowledgements not yet applied."""
    settings = settings_from(config)
    store = _store(settings)
    try:
        alerts = store.open_alerts()
        silences = store.silences()
        pending = store.pending_ack_ids()
    finally:
        store.close()
    if as_json:
        print_json(
            {
                "open": [{**a.to_dict(), "ack_pending": a.id in pending} for a in alerts],
                "silences": [s.to_dict() for s in silences],
            }
        )
        return
    if not alerts:
        out.print("no open alerts")
    else:
        table = Table(title=f"{len(alerts)} open alerts", expand=True)
        for column in ("id", "severity", "state", "rule", "target", "since", "message"):
            table.add_column(column, overflow="fold")
        for a in alerts:
            state = str(a.state) + (" (ack pending)" if a.id in pending else "")
            state += " flapping" if a.flapping else ""
            state += " held: device silent" if a.held else ""
            table.add_row(
                a.id, str(a.severity), state, a.rule, a.target, format_rfc3339(a.started_ms),
                _message(a, settings.alerts.language),
            )  # fmt: skip
        out.print(table)
    for s in silences:
        out.print(
            f"silence {s.id}: {s.describe()} until {format_rfc3339(s.ends_ms)} by {s.created_by} {s.comment}"
        )


@app.command("ack")
def ack(
    alert: Annotated[str, typer.Argument(help="The alert id (citypulse alerts list).")],
    by: Annotated[str, typer.Option(help="Who takes it on.")],
    note: Annotated[str, typer.Option(help="What is being done.")] = "",
    wait: Annotated[str, typer.Option(help="How long to wait for ingest to apply it.")] = "10s",
    config: ConfigOption = None,
    as_json: JsonOption = False,
) -> None:
    """Acknowledge an open alert: it stops escalating, and subscribers are told who took it on."""
    settings = settings_from(config)
    wait_s = duration_option(wait, "--wait") or 0.0
    store = _store(settings)
    try:
        if store.find_open(alert) is None:
            raise UserError(f"no open alert {alert!r}; 'citypulse alerts list' shows the open ones")
        request = store.request_ack(alert, by, note)
        deadline = time.monotonic() + wait_s
        outcome = store.ack_outcome(request)
        while outcome is None and time.monotonic() < deadline:
            time.sleep(0.2)
            outcome = store.ack_outcome(request)
    finally:
        store.close()
    if as_json:
        print_json({"alert": alert, "request": request, "applied": outcome is not None, "outcome": outcome})
    elif outcome is None:
        out.print(
            f"acknowledgement of {alert} recorded; the ingest service applies it in its next cycle "
            "(it did not within --wait: is it running?)"
        )
    else:
        out.print(f"{alert}: {outcome} (by {by})")


@app.command("silence")
def silence(
    device: Annotated[str, typer.Option(help="Silence this device's alerts.")] = "",
    district: Annotated[str, typer.Option(help="Silence this district's alerts.")] = "",
    rule: Annotated[str, typer.Option(help="Silence this rule's alerts.")] = "",
    kind: Annotated[str, typer.Option(help="Silence this kind's alerts.")] = "",
    for_: Annotated[str | None, typer.Option("--for", help="How long, e.g. 2h (from --start).")] = None,
    start: Annotated[str | None, typer.Option(help="When it starts (RFC 3339; default now).")] = None,
    by: Annotated[str, typer.Option(help="Who asks for it.")] = "",
    comment: Annotated[str, typer.Option(help="Why (road works, maintenance ...).")] = "",
    list_: Annotated[bool, typer.Option("--list", help="List silences in force or planned.")] = False,
    end: Annotated[str | None, typer.Option(help="End the silence with this id now.")] = None,
    config: ConfigOption = None,
    as_json: JsonOption = False,
) -> None:
    """Keep matching alerts from every subscriber for a while (they are still raised and stored)."""
    settings = settings_from(config)
    if list_ or end is not None:
        store = _store(settings)
        try:
            if end is not None and not store.end_silence(end):
                raise UserError(f"no silence {end!r} in force; 'citypulse alerts silence --list' shows them")
            silences = store.silences()
        finally:
            store.close()
        if as_json:
            print_json({"ended": end, "silences": [s.to_dict() for s in silences]})
        else:
            for s in silences:
                window = f"from {format_rfc3339(s.starts_ms)} to {format_rfc3339(s.ends_ms)}"
                out.print(f"{s.id}: {s.describe()} {window} by {s.created_by} {s.comment}".rstrip())
            if not silences:
                out.print("no silences in force")
        return
    duration_s = duration_option(for_, "--for")
    if duration_s is None:
        raise UserError("say how long with --for (e.g. --for 2h)")
    if not (device or district or rule or kind):
        raise UserError("say what to silence: --device, --district, --rule and/or --kind")
    if kind and kind not in KINDS:
        raise UserError(f"--kind {kind!r} is not a kind; choose from {', '.join(KINDS)}")
    if rule:
        _check_rule(settings, rule)
    if not by:
        raise UserError("say who asks for the silence with --by NAME")
    try:
        starts = parse_timestamp(start) if start else int(time.time() * 1000)
    except ValueError as bad:
        raise UserError(f"--start: {bad}") from None
    store = _store(settings, create=True)
    try:
        made = store.add_silence(
            Silence("", starts, starts + int(duration_s * 1000), device, district, rule, kind, by, comment)
        )
    finally:
        store.close()
    if as_json:
        print_json({"silence": made.to_dict()})
    else:
        out.print(f"silence {made.id}: {made.describe()} until {format_rfc3339(made.ends_ms)}")


def _check_rule(settings: Settings, rule: str) -> None:
    from ingest.alerts.service import load_rules

    try:
        rules = load_rules(settings.alerts.rules)
    except ValueError as bad:
        raise UserError(str(bad)) from None
    if rules.get(rule) is None:
        raise UserError(f"--rule {rule!r} is not an alert rule; the rules: {', '.join(rules.names())}")


@app.command("tail")
def tail(
    since: Annotated[str, typer.Option(help="Show events stored this long ago first, e.g. 1h.")] = "1h",
    follow: Annotated[bool, typer.Option(help="Keep following new events (Ctrl-C stops).")] = True,
    mqtt: Annotated[bool, typer.Option("--mqtt", help="Follow the events live on MQTT instead.")] = False,
    config: ConfigOption = None,
    as_json: JsonOption = False,
) -> None:
    """Follow alert events as they are raised: from the store, or live from MQTT with --mqtt."""
    settings = settings_from(config)
    if mqtt:
        _tail_mqtt(settings, as_json)
        return
    since_s = duration_option(since, "--since") or 0.0
    store = _store(settings)
    try:
        last = store.seq_before(int((time.time() - since_s) * 1000))
        while True:
            for seq, event in store.events_after(last):
                _show(event, settings.alerts.language, as_json)
                last = seq
            if not follow:
                return
            time.sleep(0.5)
    except KeyboardInterrupt:
        return
    finally:
        store.close()


def _show(event: dict[str, Any], language: str, as_json: bool) -> None:
    if as_json:
        sys.stdout.write(json.dumps(event, ensure_ascii=False, sort_keys=True) + "\n")
        sys.stdout.flush()
        return
    a = event["alert"]
    silenced = f" [silenced: {event['silenced_by']}]" if event.get("silenced_by") else ""
    out.print(
        f"{event['at']} {event['event']:<12} {a['severity']:<8} {a['rule']} {a['target']} "
        f"{_message(a, language)} ({a['id']}){silenced}",
        highlight=False,
    )


def _tail_mqtt(settings: Settings, as_json: bool) -> None:
    import paho.mqtt.client as paho

    from ingest.mqtt_client import disconnect, make_client, start
    from processors.endpoint import BrokerUnreachableError, ConnectOptions

    received: queue.Queue[bytes] = queue.Queue()
    events_filter, _ = settings.topics.alert_filters()
    connected = threading.Event()
    client = make_client(
        ConnectOptions(settings.mqtt, f"citypulse-alerts-tail-{int(time.time())}", settings.mqtt_protocol)
    )

    def on_connect(c: paho.Client, *_: Any) -> None:
        c.subscribe(events_filter, qos=1)
        connected.set()

    client.on_connect = on_connect
    client.on_message = lambda c, u, msg: received.put(bytes(msg.payload))
    try:
        start(client, ConnectOptions(settings.mqtt, "", settings.mqtt_protocol), connected, 10)
    except BrokerUnreachableError as bad:
        raise UserError(str(bad)) from None
    err.print(f"following {events_filter} on {settings.mqtt.display()} (Ctrl-C stops)")
    try:
        while True:
            _show(json.loads(received.get()), settings.alerts.language, as_json)
    except KeyboardInterrupt:
        return
    finally:
        disconnect(client)


@app.command("test")
def send_test(
    channel: Annotated[str | None, typer.Option(help="Only this channel (mqtt, webhook, email).")] = None,
    severity: Annotated[Severity, typer.Option(help="Severity of the test alert.")] = Severity.INFO,
    config: ConfigOption = None,
    as_json: JsonOption = False,
) -> None:
    """Send a test alert to every configured subscriber now, bypassing filters and rate limits."""
    from ingest.alerts.channels import DeliveryError, Notification, open_channels

    settings = settings_from(config)
    channels = [c for c in open_channels(settings) if channel is None or c.name == channel]
    if not channels:
        raise UserError(
            "no alert channel is configured" + (f" by the name {channel!r}" if channel else "")
            + "; add [[alerts.webhooks]] or [[alerts.emails]] to the config file, or enable alerts.mqtt"
        )  # fmt: skip
    fired, resolved = _test_events(severity)
    results: list[dict[str, object]] = []
    for ch in channels:
        ch.start()
        try:
            for subscriber in ch.subscribers():
                try:
                    events = [fired.to_dict(), resolved.to_dict()]
                    ch.deliver(Notification(subscriber, fired.alert.rule, fired.alert.district, events))
                except DeliveryError as failed:
                    results.append(
                        {"channel": ch.name, "subscriber": subscriber.name, "ok": False, "error": str(failed)}
                    )
                else:
                    results.append(
                        {"channel": ch.name, "subscriber": subscriber.name, "ok": True, "error": ""}
                    )
        finally:
            ch.close()
    if as_json:
        print_json({"event_ids": [fired.event_id, resolved.event_id], "results": results})
    else:
        for r in results:
            status = "[green]delivered[/green]" if r["ok"] else f"[red]failed[/red]: {r['error']}"
            out.print(f"{r['channel']} → {r['subscriber']}: {status}")
    if not all(r["ok"] for r in results):
        raise typer.Exit(1)


def _test_events(severity: Severity) -> tuple[AlertEvent, AlertEvent]:
    """A test alert that fires and resolves at once (so MQTT keeps no retained test alert)."""
    now = int(time.time() * 1000)
    alert = Alert(
        id=alert_id("citypulse_test", "citypulse-test", now),
        rule="citypulse_test",
        kind="test",
        target="citypulse-test",
        device="",
        district="test",
        severity=severity,
        category=AlertCategory.DATA_FAULT,
        state=AlertState.FIRING,
        started_ms=now,
        updated_ms=now,
        message="citypulse test alert: if you read this, this channel delivers",
        message_vi="Cảnh báo thử của citypulse: nếu bạn đọc được tin này, kênh gửi hoạt động tốt",
        events=1,
    )
    resolved = replace(alert, state=AlertState.RESOLVED, events=2)
    return AlertEvent(EventType.FIRED, now, alert), AlertEvent(EventType.RESOLVED, now, resolved)
