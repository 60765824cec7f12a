"""What the clock alone brings a target: firing, flapping, resolving and escalating when due.

A condition held for the rule's ``for`` fires at ``since + for`` (at once when it
is flapping); an open alert turns flapping at the onset that makes it so;
a condition clear for ``clear_for`` (``flapping.clear_for`` for a flapping
alert) resolves then; an alert firing unacknowledged for ``escalate_after``
escalates then. A held target (its device silent, or its district unknown)
neither fires, resolves nor escalates.
"""

from __future__ import annotations

from typing import Literal

from processors.alerts.flapping import is_flapping
from processors.alerts.model import AlertState
from processors.alerts.rules import Rule
from processors.alerts.state import Target

Step = Literal["fire", "flapping", "resolve", "escalate"]


def next_due(target: Target, rule: Rule, held: bool, until: int) -> tuple[int, Step] | None:
    """The earliest step due for ``target`` at or before ``until``, with its time, if any."""
    window = round(rule.flapping.window_s * 1000)
    alert = target.alert
    due: list[tuple[int, Step]] = []
    if alert is None:
        if target.present and not held:
            fire_at = target.since_ms + rule.for_ms
            if is_flapping(target.onsets, target.since_ms, rule.flapping.count, window):
                fire_at = target.since_ms
            due.append((max(fire_at, target.since_ms), "fire"))
    else:
        if (
            target.present
            and not alert.flapping
            and is_flapping(target.onsets, target.since_ms, rule.flapping.count, window)
        ):
            due.append((max(target.since_ms, alert.updated_ms), "flapping"))
        if not target.present and not held:
            needed = round(rule.flapping.clear_for_s * 1000) if alert.flapping else rule.clear_for_ms
            due.append((target.since_ms + needed, "resolve"))
        escalate_after = rule.escalate_after_ms
        if (
            escalate_after is not None
            and rule.escalate_to is not None
            and alert.state == AlertState.FIRING
            and not alert.escalated
            and not held
        ):
            due.append((max(alert.started_ms + escalate_after, alert.updated_ms), "escalate"))
    ready = [d for d in due if d[0] <= until]
    return min(ready) if ready else None


def waits(target: Target, rule: Rule | None) -> bool:
    """Whether the clock alone may change this target, so each cycle must look at it.

    A steady open alert of a reporting device, announced and not held, waits on
    nothing unless it may still escalate: a cycle that does not touch it costs
    nothing.
    """
    alert = target.alert
    if rule is None or alert is None or not target.present or not target.device:
        return True
    if not alert.announced or alert.held:
        return True
    return alert.state == AlertState.FIRING and not alert.escalated and rule.escalate_after_ms is not None


def remembered(target: Target, now_ms: int, rule: Rule) -> bool:
    """Whether an onset still counts towards flapping, so the target must be kept until it ages out."""
    window = round(rule.flapping.window_s * 1000)
    return any(now_ms - t < window for t in target.onsets)
