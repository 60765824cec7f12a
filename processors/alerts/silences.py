"""Silences: maintenance windows during which matching alerts reach no subscriber.

A silence matches alerts by device, district, rule and kind (every matcher it
sets must match) between its start and end. A silenced alert is still raised,
stored and listed; only its notifications are withheld. An alert that fired
while silenced stays quiet until the silence ends; if it is still open then,
subscribers are told it fired. The resolution of an alert subscribers were told
of is always delivered: it pages nobody, and it closes what they opened (the
retained MQTT state of an open alert, a ticket).

Whether a silence is in force is a wall-clock question (works are planned in
real time), so the caller passes the engine only the silences in force now.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from processors.alerts.model import Alert


@dataclass(frozen=True, slots=True)
class Silence:
    id: str
    starts_ms: int
    ends_ms: int
    device: str = ""
    district: str = ""
    rule: str = ""
    kind: str = ""
    created_by: str = ""
    comment: str = ""

    def __post_init__(self) -> None:
        if not (self.device or self.district or self.rule or self.kind):
            raise ValueError("a silence needs at least one of device, district, rule or kind")
        if self.ends_ms <= self.starts_ms:
            raise ValueError("a silence must end after it starts")

    def in_force(self, now_ms: int) -> bool:
        return self.starts_ms <= now_ms < self.ends_ms

    def matches(self, alert: Alert) -> bool:
        """Every matcher this silence sets equals the alert's (a device silence never matches an area)."""
        return (
            (not self.device or self.device == alert.device)
            and (not self.district or self.district == alert.district)
            and (not self.rule or self.rule == alert.rule)
            and (not self.kind or self.kind == alert.kind)
        )

    def describe(self) -> str:
        parts = [f"{name}={value}" for name, value in self.matchers().items()]
        return " ".join(parts)

    def matchers(self) -> dict[str, str]:
        return {
            name: value
            for name, value in (
                ("device", self.device),
                ("district", self.district),
                ("rule", self.rule),
                ("kind", self.kind),
            )
            if value
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "starts_ms": self.starts_ms,
            "ends_ms": self.ends_ms,
            **{k: getattr(self, k) for k in ("device", "district", "rule", "kind", "created_by", "comment")},
        }
