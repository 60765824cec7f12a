"""Alert events and settings for channel and store tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ingest.settings import Settings
from processors.alerts import Alert, AlertCategory, AlertEvent, AlertState, EventType, Severity
from processors.alerts.model import alert_id

T0 = 1_800_000_000_000


def alert(
    n: int = 1,
    *,
    rule: str = "bin_fire",
    severity: Severity = Severity.CRITICAL,
    district: str = "Đống Đa",
    kind: str = "waste",
    state: AlertState = AlertState.FIRING,
    events: int = 1,
) -> Alert:
    device = f"{kind}-{n:06d}"
    return Alert(
        id=alert_id(rule, device, T0 + n),
        rule=rule,
        kind=kind,
        target=device,
        device=device,
        district=district,
        severity=severity,
        category=AlertCategory.CITY_CONDITION,
        state=state,
        started_ms=T0 + n,
        updated_ms=T0 + n,
        message=f"Possible fire in waste bin {device}",
        message_vi=f"Nghi cháy thùng rác {device}",
        lat=21.01,
        lon=105.82,
        value=71.5,
        field="temperature",
        unit="°C",
        events=events,
    )


def event(n: int = 1, happened: EventType = EventType.FIRED, **changes: Any) -> AlertEvent:
    state = AlertState.RESOLVED if happened == EventType.RESOLVED else AlertState.FIRING
    events = 2 if happened == EventType.RESOLVED else 1
    return AlertEvent(happened, T0 + n, alert(n, state=state, events=events, **changes))


def settings_with(tmp_path: Path, **alerts: Any) -> Settings:
    """Settings with an ``[alerts]`` table, the store in ``tmp_path``."""
    return Settings(alerts={"store": tmp_path / "alerts.sqlite", **alerts})
