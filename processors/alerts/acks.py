"""Acknowledgements: an operator takes an open alert, so it stops escalating.

``citypulse alerts ack`` records a request; the engine applies the requests at
the end of a cycle, at the cycle's time, and answers each one: acknowledged,
already acknowledged, or not open (resolved, or never raised).
"""

from __future__ import annotations

from processors.alerts.model import AlertState, EventType, next_event
from processors.alerts.staging import Staged
from processors.alerts.state import Ack, AckResult, Key


def acknowledge(staged: Staged, acks: tuple[Ack, ...]) -> None:
    """Apply ``acks`` to the open alerts, staging each answer and each acknowledged event."""
    if not acks:
        return
    by_id: dict[str, Key] = {}
    for key in staged.target_keys():
        target = staged.target(key)
        if target is not None and target.alert is not None:
            by_id[target.alert.id] = key
    for ack in acks:
        found = by_id.get(ack.alert_id)
        target = None if found is None else staged.edit(found)
        if target is None or target.alert is None:
            staged.outcome.acks.append(AckResult(ack.request, ack.alert_id, "not open"))
            continue
        if target.alert.state == AlertState.ACKNOWLEDGED:
            staged.outcome.acks.append(AckResult(ack.request, ack.alert_id, "already acknowledged"))
            continue
        target.alert = next_event(
            target.alert, staged.now, state=AlertState.ACKNOWLEDGED, acknowledged_by=ack.by, note=ack.note
        )
        staged.emit(EventType.ACKNOWLEDGED, target.alert, staged.now)
        staged.outcome.acks.append(AckResult(ack.request, ack.alert_id, "acknowledged"))
