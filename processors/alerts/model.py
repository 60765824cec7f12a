"""What an alert is, and the events that tell subscribers about it.

An *alert* is a problem someone should act on, raised by a rule for one target
(a device, or an area such as ``district:Hoàn Kiếm``), with a stable id for its
whole life from firing to resolution. Every change of an alert is an *event*
(fired, escalated, acknowledged, flapping, resolved) with its own id, the alert's
id plus a sequence number: subscribers de-duplicate on it, because delivery is at
least once.

Everything here is plain values: the engine builds them, the store writes them,
the channels serialise :meth:`AlertEvent.to_dict` (the webhook schema, version
:data:`SCHEMA_VERSION`).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any

from processors.batch import Event, FieldValue
from processors.timestamps import format_rfc3339

MEASUREMENT = "alerts"
"""Where alert events are stored, beside ``anomalies`` and ``deadletters``."""

SCHEMA_VERSION = 1
"""Version of the JSON an event is serialised to (webhook bodies, MQTT payloads, ``--json``)."""

AREA_PREFIX = "district:"
"""Targets of area rules are ``district:<name>``; device targets are device ids."""


class Severity(StrEnum):
    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"

    @property
    def rank(self) -> int:
        return _RANKS[self]


_RANKS = {Severity.INFO: 0, Severity.WARNING: 1, Severity.CRITICAL: 2}


class AlertCategory(StrEnum):
    """Who should act: maintenance crews, the city's operators, or planners."""

    DATA_FAULT = "data_fault"
    """The sensor or its link is wrong; the city may be fine."""
    CITY_CONDITION = "city_condition"
    """Something is wrong in the city: polluted air, a burst main, a fire."""
    FORECAST = "forecast"
    """Something will need attention soon (a bin about to be full)."""


class AlertState(StrEnum):
    FIRING = "firing"
    ACKNOWLEDGED = "acknowledged"
    RESOLVED = "resolved"


class EventType(StrEnum):
    FIRED = "fired"
    ESCALATED = "escalated"
    ACKNOWLEDGED = "acknowledged"
    FLAPPING = "flapping"
    """An open alert whose condition keeps starting and ending: it stays one alert, marked flapping."""
    RESOLVED = "resolved"


def alert_id(rule: str, target: str, started_ms: int) -> str:
    """A short id, the same for the same alert however often a cycle is retried.

    >>> alert_id("bin_fire", "waste-000001", 1_800_000_000_000)
    'c605bcd03ae03329'
    """
    digest = hashlib.blake2b(f"{rule}\x00{target}\x00{started_ms}".encode(), digest_size=8)
    return digest.hexdigest()


@dataclass(frozen=True, slots=True)
class Alert:
    """One alert as it stands after its latest event."""

    id: str
    rule: str
    kind: str
    target: str
    device: str
    """The device id for device alerts, ``""`` for area alerts."""
    district: str
    severity: Severity
    category: AlertCategory
    state: AlertState
    started_ms: int
    updated_ms: int
    message: str
    message_vi: str
    lat: float | None = None
    lon: float | None = None
    value: float | None = None
    limit: float | None = None
    field: str = ""
    """The measure the value belongs to (``""`` when it judges a whole device or an area)."""
    unit: str = ""
    flapping: bool = False
    held: bool = False
    """The device is silent: the alert is kept open, neither resolved nor escalated, until it reports."""
    escalated: bool = False
    acknowledged_by: str = ""
    note: str = ""
    announced: bool = True
    """Subscribers were told it fired (False while a silence kept its firing from them)."""
    events: int = 0
    """Events so far: the sequence number of the latest one."""

    @property
    def open(self) -> bool:
        return self.state != AlertState.RESOLVED

    @property
    def is_area(self) -> bool:
        return self.target.startswith(AREA_PREFIX)

    def to_dict(self) -> dict[str, Any]:
        """The alert as JSON-ready values (part of the webhook schema)."""
        return {
            "id": self.id,
            "rule": self.rule,
            "kind": self.kind,
            "target": self.target,
            "device": self.device,
            "district": self.district,
            "location": None if self.lat is None or self.lon is None else {"lat": self.lat, "lon": self.lon},
            "severity": str(self.severity),
            "category": str(self.category),
            "state": str(self.state),
            "started_ms": self.started_ms,
            "started": format_rfc3339(self.started_ms),
            "updated_ms": self.updated_ms,
            "updated": format_rfc3339(self.updated_ms),
            "value": self.value,
            "limit": self.limit,
            "field": self.field,
            "unit": self.unit,
            "message": self.message,
            "message_vi": self.message_vi,
            "flapping": self.flapping,
            "held": self.held,
            "escalated": self.escalated,
            "acknowledged_by": self.acknowledged_by,
            "note": self.note,
            "announced": self.announced,
            "events": self.events,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Alert:
        location = data.get("location") or {}
        return cls(
            id=str(data["id"]),
            rule=str(data["rule"]),
            kind=str(data["kind"]),
            target=str(data["target"]),
            device=str(data.get("device", "")),
            district=str(data.get("district", "")),
            severity=Severity(data["severity"]),
            category=AlertCategory(data["category"]),
            state=AlertState(data["state"]),
            started_ms=int(data["started_ms"]),
            updated_ms=int(data["updated_ms"]),
            message=str(data.get("message", "")),
            message_vi=str(data.get("message_vi", "")),
            lat=location.get("lat"),
            lon=location.get("lon"),
            value=data.get("value"),
            limit=data.get("limit"),
            field=str(data.get("field", "")),
            unit=str(data.get("unit", "")),
            flapping=bool(data.get("flapping", False)),
            held=bool(data.get("held", False)),
            escalated=bool(data.get("escalated", False)),
            acknowledged_by=str(data.get("acknowledged_by", "")),
            note=str(data.get("note", "")),
            announced=bool(data.get("announced", True)),
            events=int(data.get("events", 0)),
        )


@dataclass(frozen=True, slots=True)
class AlertEvent:
    """One change of an alert, with the alert as it stands after it."""

    type: EventType
    at_ms: int
    alert: Alert
    silenced_by: str = ""
    """Why subscribers are not told: the id of a matching silence, or ``unannounced`` for the later
    events of an alert whose firing was silenced. Silenced events are still stored."""

    @property
    def event_id(self) -> str:
        return f"{self.alert.id}.{self.alert.events}"

    @property
    def group(self) -> tuple[str, str]:
        """Notifications group events by (rule, district), as Alertmanager groups by labels."""
        return (self.alert.rule, self.alert.district)

    @property
    def silenced(self) -> bool:
        return bool(self.silenced_by)

    def to_dict(self) -> dict[str, Any]:
        """The event as subscribers receive it (one item of a webhook body's ``events``)."""
        return {
            "schema": SCHEMA_VERSION,
            "event_id": self.event_id,
            "event": str(self.type),
            "at_ms": self.at_ms,
            "at": format_rfc3339(self.at_ms),
            "alert": self.alert.to_dict(),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any], silenced_by: str = "") -> AlertEvent:
        return cls(EventType(data["event"]), int(data["at_ms"]), Alert.from_dict(data["alert"]), silenced_by)

    def store_event(self) -> Event:
        """The point of the ``alerts`` measurement (tags from bounded sets, the rest as fields)."""
        a = self.alert
        fields: dict[str, FieldValue] = {
            "id": a.id,
            "state": str(a.state),
            "open": 1.0 if a.open else 0.0,
            "message": a.message,
            "message_vi": a.message_vi,
            "started_ms": float(a.started_ms),
            "flapping": 1.0 if a.flapping else 0.0,
            "device": a.device,
        }
        if a.value is not None:
            fields["value"] = float(a.value)
        if a.limit is not None:
            fields["limit"] = float(a.limit)
        return Event(
            measurement=MEASUREMENT,
            ts_ms=self.at_ms,
            tags={
                "rule": a.rule,
                "kind": a.kind,
                "district": a.district,
                "severity": str(a.severity),
                "category": str(a.category),
                "event": str(self.type),
                "target": a.target,
            },
            fields=fields,
        )


def next_event(alert: Alert, at_ms: int, **changes: Any) -> Alert:
    """``alert`` after one more event at ``at_ms`` with ``changes`` applied."""
    return replace(alert, updated_ms=at_ms, events=alert.events + 1, **changes)
