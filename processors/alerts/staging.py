"""A cycle's staged changes: the engine's state read through them, and the events they raise.

The engine evaluates a cycle without touching its committed state: every target
it changes is copied into an :class:`~processors.alerts.state.Outcome` first,
and every read looks there before the committed state. So a retried cycle is
evaluated against the same state and raises the same events, and
:meth:`~processors.alerts.engine.AlertEngine.commit` keeps the outcome only once
it is stored.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

from processors.alerts.events import event
from processors.alerts.model import Alert, EventType
from processors.alerts.silences import Silence
from processors.alerts.state import Key, Member, Outcome, SilentDevice, Target


class Staged:
    """The committed state as the cycle changed it so far, at the cycle's time ``now``."""

    def __init__(
        self,
        targets: Mapping[Key, Target],
        members: Mapping[str, Mapping[str, Member]],
        silent: Mapping[str, SilentDevice],
        now: int,
        silences: tuple[Silence, ...],
    ) -> None:
        self._targets = targets
        self._members = members
        self._silent = silent
        self.now = now
        self.silences = silences
        """The silences in force now."""
        self.outcome = Outcome(now)

    def target(self, key: Key) -> Target | None:
        staged = self.outcome.targets
        if key in staged:
            return staged[key]
        return self._targets.get(key)

    def edit(self, key: Key) -> Target | None:
        """The target, copied into the staged changes so it may be changed."""
        staged = self.outcome.targets
        if key in staged:
            return staged[key]
        found = self._targets.get(key)
        if found is None:
            return None
        copy = replace(found)
        latest = self.outcome.values.pop(key, None)
        if latest is not None:
            copy.value, copy.field, copy.unit = latest
        staged[key] = copy
        return copy

    def target_keys(self) -> list[Key]:
        return list(dict.fromkeys([*self._targets, *self.outcome.targets]))

    def is_silent(self, device: str) -> bool:
        staged = self.outcome.silent
        if device in staged:
            return staged[device] is not None
        return device in self._silent

    def member(self, rule: str, device: str) -> Member | None:
        key = (rule, device)
        if key in self.outcome.members:
            return self.outcome.members[key]
        return self._members.get(rule, {}).get(device)

    def emit(self, kind: EventType, alert: Alert, at: int) -> None:
        self.outcome.events.append(event(kind, alert, at, self.silences))
