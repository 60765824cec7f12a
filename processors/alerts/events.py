"""Building alerts and their events: a new alert, its value and messages, and who hears of it.

An alert carries the latest value, the limit and the rendered messages of its
rule at each event. An event is stored whatever silences are in force; its
``silenced_by`` says whether subscribers are told: a silence covering the alert,
or :data:`~processors.alerts.state.UNANNOUNCED` while no subscriber heard it
fire. Who heard an alert fire always hears it end: a resolution pages nobody,
and it closes what the firing opened (see :mod:`processors.alerts.silences`).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from processors.alerts.areas import area_value
from processors.alerts.flapping import is_flapping
from processors.alerts.model import Alert, AlertEvent, AlertState, EventType, alert_id
from processors.alerts.rules import Rule, render
from processors.alerts.silences import Silence
from processors.alerts.state import UNANNOUNCED, Key, Target


def new_alert(rule: Rule, key: Key, target: Target, at: int, silences: tuple[Silence, ...]) -> Alert:
    """The alert ``rule`` raises for ``target`` at ``at`` (announced unless a silence covers it)."""
    window = round(rule.flapping.window_s * 1000)
    alert = Alert(
        id=alert_id(rule.name, key[1], at),
        rule=rule.name,
        kind=target.kind,
        target=key[1],
        device=target.device,
        district=target.district,
        severity=rule.severity,
        category=rule.alert_category,
        state=AlertState.FIRING,
        started_ms=at,
        updated_ms=at,
        message="",
        message_vi="",
        lat=target.lat,
        lon=target.lon,
        flapping=is_flapping(target.onsets, at, rule.flapping.count, window),
        events=1,
    )
    alert = replace(alert, **alert_values(rule, target, alert))
    return replace(alert, announced=not silenced_by(silences, alert))


def alert_values(rule: Rule, target: Target, alert: Alert | None = None) -> dict[str, Any]:
    """The alert's value, limit and messages from the target's latest judgement."""
    alert = alert or target.alert
    limit = rule.threshold if rule.field is not None else rule.limit
    if rule.area is not None:
        _, limit = area_value(rule.area, target.count, target.total)
    values = {
        "rule": rule.name,
        "kind": target.kind,
        "device": target.device,
        "district": target.district,
        "field": target.field,
        "unit": target.unit,
        "value": target.value,
        "limit": limit,
        "count": target.count,
        "total": target.total,
        "severity": alert.severity if alert is not None else rule.severity,
    }
    return {
        "value": target.value,
        "limit": limit,
        "field": target.field,
        "unit": target.unit,
        "message": render(rule.message, values),
        "message_vi": render(rule.message_vi, values),
    }


def silenced_by(silences: tuple[Silence, ...], alert: Alert) -> str:
    """The id of the first silence in force that covers ``alert``, or ``""``."""
    for silence in silences:
        if silence.matches(alert):
            return silence.id
    return ""


def event(kind: EventType, alert: Alert, at: int, silences: tuple[Silence, ...]) -> AlertEvent:
    """The event, marked with what keeps it from subscribers (if anything)."""
    silenced = silenced_by(silences, alert)
    if not silenced and not alert.announced:
        silenced = UNANNOUNCED
    if kind == EventType.RESOLVED and alert.announced:
        silenced = ""  # who heard it fire hears it end: a resolution pages nobody, and closes their view
    return AlertEvent(kind, at, alert, silenced)
