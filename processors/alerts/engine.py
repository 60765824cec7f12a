"""The alert engine: each cycle's judgements in, alert events out, as one staged transaction.

Per (rule, target) the engine keeps one small :class:`Target`: whether the
condition holds and since when, its recent onsets (for flapping), the latest
value, and the open alert if there is one. So there is never more than one open
alert per (rule, target).

Time is the data's own. A cycle's judgements are taken in timestamp order, each
at its reading's time (never before the engine's clock, never after the
cycle's), and before a target changes it is *advanced* to that time: a
condition held for ``for`` fires at exactly ``since + for``, one clear for
``clear_for`` resolves then, one firing unacknowledged for ``escalate_after``
escalates then, one starting ``flapping.count`` times within
``flapping.window`` fires (or stays) as one flapping alert. So a backlog of
hours arriving in one cycle raises the same alerts, at the same times, as the
same readings arriving live. At the cycle's end every target is advanced to the
cycle's clock; acknowledgements apply then.

A silent device's alerts are held (neither resolved nor escalated) and its
pending conditions wait; silent devices also leave area rules' counts. Silences
in force mark events silenced (stored, not notified); an alert whose firing was
silenced is announced once no silence covers it any more.

Like the detectors, :meth:`AlertEngine.evaluate` changes nothing: it returns an
:class:`Outcome` holding the changed targets, and :meth:`AlertEngine.commit`
keeps them once the cycle (and its alert events) are stored. A retried cycle is
evaluated against the same state, so it raises the same events with the same
ids, never twice.

State is keyed by device (area targets by district), so several processes that
split the devices between them each hold their own devices' alerts.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Set
from dataclasses import replace
from typing import Any

from processors.alerts.areas import AreaIndex, area_holds, area_value
from processors.alerts.conditions import SILENCE_DETECTOR, Judgement
from processors.alerts.flapping import is_flapping, record_onset
from processors.alerts.model import (
    AREA_PREFIX,
    Alert,
    AlertEvent,
    AlertState,
    EventType,
    alert_id,
    next_event,
)
from processors.alerts.rules import Rule, RuleSet, render
from processors.alerts.state import (
    UNANNOUNCED,
    Ack,
    AckResult,
    CycleInput,
    Key,
    Member,
    Outcome,
    SilentDevice,
    Target,
)

_EMPTY: frozenset[str] = frozenset()


class AlertEngine:
    """Rules applied to judgements, one cycle at a time; see the module docstring."""

    def __init__(self, rules: RuleSet, areas: AreaIndex | None = None) -> None:
        self.rules = rules
        self.areas = areas or AreaIndex()
        self.targets: dict[Key, Target] = {}
        self.members: dict[str, dict[str, Member]] = {}
        self.silent: dict[str, SilentDevice] = {}
        self.clock_ms = 0
        """The latest cycle's time: no judgement is taken as earlier (time never runs back)."""
        self._devices: dict[tuple[str, str], set[str]] = {}
        self._present: dict[tuple[str, str], set[str]] = {}
        self.waiting: set[Key] = set()
        """Targets something may fall due for without a new judgement (pending, clearing, not yet
        escalated, held ...): the only ones a cycle looks at besides those it touches. A steady open
        alert costs a cycle nothing."""

    # --- what the caller asks ---------------------------------------------------------------
    def tracked(self, rule: str, kind: str) -> Set[str]:
        """Device ids of ``kind`` with state under ``rule``: their clear judgements matter."""
        return self._devices.get((rule, kind), _EMPTY)

    def holding(self, rule: str, kind: str) -> Set[str]:
        """Device ids of ``kind`` whose condition holds under ``rule`` now."""
        return self._present.get((rule, kind), _EMPTY)

    def open_alerts(self) -> list[Alert]:
        return [t.alert for t in self.targets.values() if t.alert is not None]

    def alerting_devices(self) -> frozenset[str]:
        """Devices with an open device alert (for the city map's ``alerting`` state)."""
        return frozenset(
            t.alert.device for t in self.targets.values() if t.alert is not None and t.alert.device
        )

    # --- one cycle ------------------------------------------------------------------------------
    def evaluate(self, cycle: CycleInput) -> Outcome:
        """The events of one cycle and the state they leave, without changing anything yet."""
        run = _Run(self, cycle)
        for at, rule, j in run.stream(cycle):
            if rule is None:
                run.silence(j, at)
            elif rule.area is not None:
                run.member_seen(rule, j, at)
            else:
                run.device_seen(rule, j, at)
        for key in run.final_keys():
            run.advance(key, run.now)
        run.acknowledge(cycle.acks)
        for key in run.final_keys():
            run.settle(key)
        return run.outcome

    def commit(self, outcome: Outcome) -> None:
        """Keep what :meth:`evaluate` staged (call once the cycle's events are stored)."""
        for key, target in outcome.targets.items():
            rule, target_id = key
            if target is None:
                gone = self.targets.pop(key, None)
                self.waiting.discard(key)
                if gone is not None and gone.device:
                    self._devices.get((rule, gone.kind), set()).discard(target_id)
                    self._present.get((rule, gone.kind), set()).discard(target_id)
            else:
                self.targets[key] = target
                if _waits(target, self.rules.get(rule)):
                    self.waiting.add(key)
                else:
                    self.waiting.discard(key)
                if target.device:
                    self._devices.setdefault((rule, target.kind), set()).add(target_id)
                    present = self._present.setdefault((rule, target.kind), set())
                    if target.present:
                        present.add(target_id)
                    else:
                        present.discard(target_id)
        for (rule, device), member in outcome.members.items():
            if member is None:
                left = self.members.get(rule, {}).pop(device, None)
                if left is not None:
                    self._present.get((rule, left.kind), set()).discard(device)
                    if (rule, device) not in self.targets:
                        self._devices.get((rule, left.kind), set()).discard(device)
            else:
                self.members.setdefault(rule, {})[device] = member
                self._devices.setdefault((rule, member.kind), set()).add(device)
                self._present.setdefault((rule, member.kind), set()).add(device)
        for device, silent in outcome.silent.items():
            if silent is None:
                self.silent.pop(device, None)
            else:
                self.silent[device] = silent
        for key, (value, field, unit) in outcome.values.items():
            steady = self.targets.get(key)
            if steady is not None:
                steady.value, steady.field, steady.unit = value, field, unit
        self.clock_ms = max(self.clock_ms, outcome.now_ms)

    def restore(
        self,
        targets: Mapping[Key, Target],
        members: Mapping[Key, Member],
        silent: Mapping[str, SilentDevice],
        clock_ms: int = 0,
    ) -> None:
        """Take back saved state (at start-up)."""
        self.commit(Outcome(clock_ms, targets=dict(targets), members=dict(members), silent=dict(silent)))


class _Run:
    """One cycle's evaluation: reads through the staged changes to the engine's state."""

    def __init__(self, engine: AlertEngine, cycle: CycleInput) -> None:
        self.engine = engine
        self.now = max(cycle.now_ms, engine.clock_ms)
        self.silences = cycle.silences
        self.outcome = Outcome(self.now)
        self._areas = {rule.name: self._count(rule) for rule in engine.rules.rules if rule.area is not None}

    def stream(self, cycle: CycleInput) -> Iterator[tuple[int, Rule | None, Judgement]]:
        """Every judgement of the cycle with its time, in time order (silence first at equal times)."""
        low, high = self.engine.clock_ms, self.now
        items: list[tuple[int, int, Rule | None, Judgement]] = [
            (min(max(j.ts_ms, low), high), 0, None, j) for j in cycle.judged.silence
        ]
        for order, each in enumerate(self.engine.rules.rules, start=1):
            items += [
                (min(max(j.ts_ms, low), high), order, each, j)
                for j in cycle.judged.by_rule.get(each.name, ())
            ]
        items.sort(key=lambda item: (item[0], item[1]))
        for at, _, rule, j in items:
            yield at, rule, j

    # --- staged state -------------------------------------------------------------------------
    def target(self, key: Key) -> Target | None:
        staged = self.outcome.targets
        if key in staged:
            return staged[key]
        return self.engine.targets.get(key)

    def edit(self, key: Key) -> Target | None:
        """The target, copied into the staged changes so it may be changed."""
        staged = self.outcome.targets
        if key in staged:
            return staged[key]
        found = self.engine.targets.get(key)
        if found is None:
            return None
        copy = replace(found)
        latest = self.outcome.values.pop(key, None)
        if latest is not None:
            copy.value, copy.field, copy.unit = latest
        staged[key] = copy
        return copy

    def target_keys(self) -> list[Key]:
        return list(dict.fromkeys([*self.engine.targets, *self.outcome.targets]))

    def final_keys(self) -> list[Key]:
        """What the cycle's end must look at: what it touched, what waits on the clock, and the
        targets of devices that went silent or came back (their held flags)."""
        keys = dict.fromkeys([*self.outcome.targets, *self.engine.waiting])
        for device in self.outcome.silent:
            for rule in self.engine.rules.rules:
                key = (rule.name, device)
                if self.target(key) is not None:
                    keys[key] = None
        return list(keys)

    def is_silent(self, device: str) -> bool:
        staged = self.outcome.silent
        if device in staged:
            return staged[device] is not None
        return device in self.engine.silent

    def member(self, rule: str, device: str) -> Member | None:
        key = (rule, device)
        if key in self.outcome.members:
            return self.outcome.members[key]
        return self.engine.members.get(rule, {}).get(device)

    def held(self, key: Key, target: Target, rule: Rule) -> bool:
        if target.device:
            return rule.detector != SILENCE_DETECTOR and self.is_silent(target.device)
        counts = self._areas.get(rule.name)
        size = self.engine.areas.size(rule.kinds, target.district)
        return counts is not None and counts.unknown(target.district, size)

    # --- conditions, each at its time ---------------------------------------------------------
    def silence(self, j: Judgement, at: int) -> None:
        if j.present == self.is_silent(j.device):
            return
        for rule in self.engine.rules.rules:  # what was due before the device went quiet (or back) happens
            key = (rule.name, j.device)
            if self.target(key) is not None:
                self.advance(key, at)
        self.outcome.silent[j.device] = SilentDevice(j.kind, j.district, at) if j.present else None
        for rule in self.engine.rules.rules:
            if rule.area is not None and j.kind in rule.kinds:
                self._areas[rule.name].silenced(
                    j.district, self.member(rule.name, j.device) is not None, j.present
                )
                self._judge_area(rule, j.district, at)

    def device_seen(self, rule: Rule, j: Judgement, at: int) -> None:
        key = (rule.name, j.device)
        if j.present and key not in self.outcome.targets and key not in self.engine.waiting:
            steady = self.engine.targets.get(key)
            if steady is not None and steady.present:
                # Still there, and nothing can fall due: only the value moves (the common case).
                self.outcome.values[key] = (j.value, j.field, j.unit)
                return
        target = self.edit(key)
        if target is None:
            if not j.present:
                return
            target = Target(j.kind, j.district, j.device, since_ms=at, lat=j.lat, lon=j.lon)
            self.outcome.targets[key] = target
        else:
            self.advance(key, at - 1)  # what fell due before this reading; what falls due at it sees it
        if j.present:
            target.value, target.field, target.unit = j.value, j.field, j.unit
        self._observe(rule, target, j.present, at)
        self.advance(key, at)

    def member_seen(self, rule: Rule, j: Judgement, at: int) -> None:
        was = self.member(rule.name, j.device) is not None
        if j.present:
            self.outcome.members[(rule.name, j.device)] = Member(j.kind, j.district, j.value)
        elif was:
            self.outcome.members[(rule.name, j.device)] = None
        if was != j.present:
            self._areas[rule.name].member(j.district, j.present, self.is_silent(j.device))
            self._judge_area(rule, j.district, at)

    def _count(self, rule: Rule) -> _AreaCounts:
        """An area rule's counts per district, from the state at the cycle's start."""
        counts = _AreaCounts()
        for device, m in self.engine.members.get(rule.name, {}).items():
            counts.member(m.district, True, device in self.engine.silent)
        for s in self.engine.silent.values():
            if s.kind in rule.kinds:
                counts.silent[s.district] = counts.silent.get(s.district, 0) + 1
        return counts

    def _judge_area(self, rule: Rule, district: str, at: int) -> None:
        spec = rule.area
        assert spec is not None
        counts = self._areas[rule.name]
        key = (rule.name, AREA_PREFIX + district)
        target = self.edit(key)
        if target is not None:
            self.advance(key, at)
        size = self.engine.areas.size(rule.kinds, district)
        count = counts.seeing.get(district, 0)
        total = max(size - counts.silent.get(district, 0), 0)
        if counts.unknown(district, size):
            return  # every device that saw it (or every device) went silent: held as it is
        holds = area_holds(spec, count, total)
        if target is None:
            if not holds:
                return
            lat, lon = self.engine.areas.centre(rule.kinds, district)
            kind = rule.kinds[0] if len(rule.kinds) == 1 else ",".join(rule.kinds)
            target = Target(kind, district, "", since_ms=at, lat=lat, lon=lon)
            self.outcome.targets[key] = target
        if holds:
            target.count, target.total = count, total
            target.value, _ = area_value(spec, count, total)
        self._observe(rule, target, holds, at)
        self.advance(key, at)

    def _observe(self, rule: Rule, target: Target, present: bool, at: int) -> None:
        if present and not target.present:
            target.present, target.since_ms = True, at
            target.onsets = record_onset(target.onsets, at, rule.flapping.count)
        elif not present and target.present:
            target.present, target.since_ms = False, at

    # --- acknowledgements (at the cycle's time) ------------------------------------------------
    def acknowledge(self, acks: tuple[Ack, ...]) -> None:
        if not acks:
            return
        by_id: dict[str, Key] = {}
        for key in self.target_keys():
            target = self.target(key)
            if target is not None and target.alert is not None:
                by_id[target.alert.id] = key
        for ack in acks:
            found = by_id.get(ack.alert_id)
            target = None if found is None else self.edit(found)
            if target is None or target.alert is None:
                self.outcome.acks.append(AckResult(ack.request, ack.alert_id, "not open"))
                continue
            if target.alert.state == AlertState.ACKNOWLEDGED:
                self.outcome.acks.append(AckResult(ack.request, ack.alert_id, "already acknowledged"))
                continue
            target.alert = next_event(
                target.alert, self.now, state=AlertState.ACKNOWLEDGED, acknowledged_by=ack.by, note=ack.note
            )
            self.emit(EventType.ACKNOWLEDGED, target.alert, self.now)
            self.outcome.acks.append(AckResult(ack.request, ack.alert_id, "acknowledged"))

    # --- the clock -----------------------------------------------------------------------------
    def advance(self, key: Key, until: int) -> None:
        """Everything due for this target up to ``until``, each at the time it fell due, in order."""
        while True:
            target = self.target(key)
            if target is None:
                return
            rule = self.engine.rules.get(key[0])
            if rule is None:  # the rule was removed or disabled since this state was saved
                self._retire(key, target, until)
                return
            step = self._next(key, target, rule, until)
            if step is None:
                return
            at, what = step
            edited = self.edit(key)
            assert edited is not None
            if what == "fire":
                self._fire(rule, key, edited, at)
            elif what == "flapping":
                assert edited.alert is not None
                edited.alert = next_event(edited.alert, at, flapping=True, **self._values(rule, edited))
                self.emit(EventType.FLAPPING, edited.alert, at)
            elif what == "resolve":
                self._resolve(rule, key, edited, at)
            else:
                assert edited.alert is not None
                assert rule.escalate_to is not None
                edited.alert = next_event(
                    edited.alert, at, severity=rule.escalate_to, escalated=True, **self._values(rule, edited)
                )
                self.emit(EventType.ESCALATED, edited.alert, at)

    def _next(self, key: Key, target: Target, rule: Rule, until: int) -> tuple[int, str] | None:
        """The earliest thing due for ``target`` at or before ``until``, if any."""
        window = round(rule.flapping.window_s * 1000)
        held = self.held(key, target, rule)
        alert = target.alert
        due: list[tuple[int, str]] = []
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

    def settle(self, key: Key) -> None:
        """At the cycle's end: held flags, announcements, and forgetting what is over."""
        target = self.target(key)
        if target is None:
            return
        rule = self.engine.rules.get(key[0])
        if rule is None:
            return
        if target.alert is None and not target.present and not _remembered(target, self.now, rule):
            self.outcome.targets[key] = None
            return
        if target.alert is not None:
            self._refresh(key, target, rule)
        staged, base = self.outcome.targets.get(key), self.engine.targets.get(key)
        if (
            staged is not None
            and base is not None
            and replace(staged, value=base.value, field=base.field, unit=base.unit) == base
        ):
            del self.outcome.targets[key]  # at most the value moved: nothing to save
            if (staged.value, staged.field, staged.unit) != (base.value, base.field, base.unit):
                self.outcome.values[key] = (staged.value, staged.field, staged.unit)

    def _refresh(self, key: Key, target: Target, rule: Rule) -> None:
        """An open alert's held flag, and its announcement once no silence covers it."""
        assert target.alert is not None
        held = self.held(key, target, rule)
        if target.alert.held != held:
            edited = self.edit(key)
            assert edited is not None
            assert edited.alert is not None
            edited.alert = replace(edited.alert, held=held)
            target = edited
        assert target.alert is not None
        if not target.alert.announced and self.silenced_by(target.alert) == "":
            edited = self.edit(key)
            assert edited is not None
            assert edited.alert is not None
            edited.alert = next_event(edited.alert, self.now, announced=True)
            self.emit(EventType.FIRED, edited.alert, self.now)

    def _fire(self, rule: Rule, key: Key, target: Target, at: int) -> None:
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
        alert = replace(alert, **self._values(rule, target, alert))
        alert = replace(alert, announced=not self.silenced_by(alert))
        target.alert = alert
        self.emit(EventType.FIRED, alert, at)

    def _resolve(self, rule: Rule, key: Key, target: Target, at: int) -> None:
        assert target.alert is not None
        resolved = next_event(
            target.alert, at, state=AlertState.RESOLVED, held=False, **self._values(rule, target)
        )
        target.alert = None
        self.emit(EventType.RESOLVED, resolved, at)

    def _retire(self, key: Key, target: Target, at: int) -> None:
        if target.alert is not None:
            self.emit(EventType.RESOLVED, next_event(target.alert, at, state=AlertState.RESOLVED), at)
        self.outcome.targets[key] = None

    def _values(self, rule: Rule, target: Target, alert: Alert | None = None) -> dict[str, Any]:
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

    # --- events and silences ------------------------------------------------------------------------
    def silenced_by(self, alert: Alert) -> str:
        for silence in self.silences:
            if silence.matches(alert):
                return silence.id
        return ""

    def emit(self, kind: EventType, alert: Alert, at: int) -> None:
        silenced_by = self.silenced_by(alert)
        if not silenced_by and not alert.announced:
            silenced_by = UNANNOUNCED
        if kind == EventType.RESOLVED and alert.announced:
            silenced_by = (
                ""  # who heard it fire hears it end: a resolution pages nobody, and closes their view
            )
        self.outcome.events.append(AlertEvent(kind, at, alert, silenced_by))


class _AreaCounts:
    """Per district of one area rule: devices seeing the condition, silent ones, and the reporting total."""

    def __init__(self) -> None:
        self.seeing: dict[str, int] = {}
        self.unheard: dict[str, int] = {}
        """Devices that saw the condition and then went silent."""
        self.silent: dict[str, int] = {}

    def member(self, district: str, joined: bool, silent: bool) -> None:
        tally = self.unheard if silent else self.seeing
        tally[district] = tally.get(district, 0) + (1 if joined else -1)

    def silenced(self, district: str, is_member: bool, silent: bool) -> None:
        step = 1 if silent else -1
        self.silent[district] = self.silent.get(district, 0) + step
        if is_member:
            self.seeing[district] = self.seeing.get(district, 0) - step
            self.unheard[district] = self.unheard.get(district, 0) + step

    def unknown(self, district: str, size: int) -> bool:
        """Nothing can be said: every device went silent, or every device that saw it did."""
        if size - self.silent.get(district, 0) <= 0:
            return True
        return self.seeing.get(district, 0) == 0 and self.unheard.get(district, 0) > 0


def _waits(target: Target, rule: Rule | None) -> bool:
    """Whether the clock alone may change this target (see :attr:`AlertEngine.waiting`)."""
    alert = target.alert
    if rule is None or alert is None or not target.present or not target.device:
        return True
    if not alert.announced or alert.held:
        return True
    return alert.state == AlertState.FIRING and not alert.escalated and rule.escalate_after_ms is not None


def _remembered(target: Target, now_ms: int, rule: Rule) -> bool:
    """Whether an onset still counts towards flapping, so the target must be kept until it ages out."""
    window = round(rule.flapping.window_s * 1000)
    return any(now_ms - t < window for t in target.onsets)
