"""The engine's state and the values a cycle passes in and gets out, as plain data.

A :class:`Target` is all the engine keeps per (rule, target): a dozen fields,
no history beyond the last few onsets, so 100,000 devices cost little even in
a city-wide episode. It round-trips through JSON for the durable store.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from processors.alerts.conditions import Judged
from processors.alerts.model import Alert, AlertEvent
from processors.alerts.silences import Silence

UNANNOUNCED = "unannounced"
"""``silenced_by`` of the later events of an alert whose firing no subscriber heard of."""

Key = tuple[str, str]
"""(rule name, target): a device id, or ``district:<name>`` for area rules."""

UNANNOUNCED = "unannounced"
"""``silenced_by`` of the later events of an alert whose firing no subscriber heard of."""


@dataclass(slots=True)
class Target:
    """What the engine remembers about one (rule, target): a few fields, no history."""

    kind: str
    district: str
    device: str
    present: bool = False
    since_ms: int = 0
    """When the condition last started (if present) or last cleared (if not)."""
    onsets: tuple[int, ...] = ()
    value: float | None = None
    field: str = ""
    unit: str = ""
    lat: float | None = None
    lon: float | None = None
    count: int = 0
    total: int = 0
    alert: Alert | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "district": self.district,
            "device": self.device,
            "present": self.present,
            "since_ms": self.since_ms,
            "onsets": list(self.onsets),
            "value": self.value,
            "field": self.field,
            "unit": self.unit,
            "lat": self.lat,
            "lon": self.lon,
            "count": self.count,
            "total": self.total,
            "alert": None if self.alert is None else self.alert.to_dict(),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Target:
        alert = data.get("alert")
        return cls(
            kind=str(data["kind"]),
            district=str(data["district"]),
            device=str(data.get("device", "")),
            present=bool(data.get("present", False)),
            since_ms=int(data.get("since_ms", 0)),
            onsets=tuple(int(t) for t in data.get("onsets", ())),
            value=data.get("value"),
            field=str(data.get("field", "")),
            unit=str(data.get("unit", "")),
            lat=data.get("lat"),
            lon=data.get("lon"),
            count=int(data.get("count", 0)),
            total=int(data.get("total", 0)),
            alert=None if alert is None else Alert.from_dict(alert),
        )


@dataclass(frozen=True, slots=True)
class Member:
    """A device that sees an area rule's condition."""

    kind: str
    district: str
    value: float | None = None


@dataclass(frozen=True, slots=True)
class SilentDevice:
    kind: str
    district: str
    since_ms: int


@dataclass(frozen=True, slots=True)
class Ack:
    """An operator's acknowledgement, as ``citypulse alerts ack`` records it."""

    request: int
    alert_id: str
    by: str
    note: str = ""


@dataclass(frozen=True, slots=True)
class AckResult:
    request: int
    alert_id: str
    outcome: str
    """``acknowledged``, ``already acknowledged`` or ``not open``."""


@dataclass(frozen=True)
class CycleInput:
    now_ms: int
    judged: Judged = field(default_factory=Judged)
    acks: tuple[Ack, ...] = ()
    silences: tuple[Silence, ...] = ()
    """The silences in force now (the caller decides that by its wall clock)."""


@dataclass
class Outcome:
    """What one cycle changed, staged until :meth:`AlertEngine.commit`."""

    now_ms: int
    events: list[AlertEvent] = field(default_factory=list)
    acks: list[AckResult] = field(default_factory=list)
    targets: dict[Key, Target | None] = field(default_factory=dict)
    members: dict[Key, Member | None] = field(default_factory=dict)
    """(rule, device) -> the member, or None where a device left."""
    silent: dict[str, SilentDevice | None] = field(default_factory=dict)
    values: dict[Key, tuple[float | None, str, str]] = field(default_factory=dict)
    """(value, field, unit) of steady open alerts' latest readings: kept in memory, not saved (a
    restart only loses the latest value, which the next reading brings back)."""

    @property
    def changed(self) -> bool:
        """Whether anything must be saved (new values alone need not)."""
        return bool(self.events or self.acks or self.targets or self.members or self.silent)
