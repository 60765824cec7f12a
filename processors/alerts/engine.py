"""The alert engine: each cycle's judgements in, alert events out, as one staged transaction.

Per (rule, target) the engine keeps one small :class:`Target`: whether the
condition holds and since when, its recent onsets (for flapping), the latest
value, and the open alert if there is one. So there is never more than one open
alert per (rule, target). Each cycle:

1. the silence detector's judgements mark devices silent or back;
2. each rule's judgements update its targets' conditions (area rules update
   their member devices, then each district's condition is worked out);
3. acknowledgements are applied;
4. every target is checked against the clock: a condition held for ``for``
   fires, one clear for ``clear_for`` resolves, one firing unacknowledged for
   ``escalate_after`` escalates, one starting ``flapping.count`` times within
   ``flapping.window`` fires (or stays) as one flapping alert; a silent device's
   alerts are held (neither resolved nor escalated) and its pending conditions
   wait;
5. silences in force mark events silenced (stored, not notified), and an alert
   whose firing was silenced is announced once no silence covers it any more.

Like the detectors, :meth:`AlertEngine.evaluate` changes nothing: it returns an
:class:`Outcome` holding the changed targets, and :meth:`AlertEngine.commit`
keeps them once the cycle (and its alert events) are stored. A retried cycle is
evaluated against the same state, so it raises the same events with the same
ids, never twice. The clock is the caller's ``now_ms`` (ingest passes the data's
own time, so a backlog replays its alerts as they would have happened live).

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


class AlertEngine:
    """Rules applied to judgements, one cycle at a time; see the module docstring."""

    def __init__(self, rules: RuleSet, areas: AreaIndex | None = None) -> None:
        self.rules = rules
        self.areas = areas or AreaIndex()
        self.targets: dict[Key, Target] = {}
        self.members: dict[str, dict[str, Member]] = {}
        self.silent: dict[str, SilentDevice] = {}
        self._devices: dict[str, set[str]] = {}

    # --- what the caller asks ---------------------------------------------------------------
    def tracked(self, rule: str) -> Set[str]:
        """Device ids with state under ``rule``: their clear judgements matter."""
        return self._devices.get(rule, _EMPTY)

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
        run.silence(cycle.judged.silence)
        for rule in self.rules.rules:
            judgements = cycle.judged.by_rule.get(rule.name, ())
            if rule.area is not None:
                run.members_seen(rule, judgements)
                run.areas(rule)
            else:
                for j in judgements:
                    run.device_seen(rule, j)
        run.acknowledge(cycle.acks)
        for key in run.target_keys():
            run.tick(key)
        return run.outcome

    def commit(self, outcome: Outcome) -> None:
        """Keep what :meth:`evaluate` staged (call once the cycle's events are stored)."""
        for key, target in outcome.targets.items():
            rule, target_id = key
            if target is None:
                self.targets.pop(key, None)
                if not target_id.startswith(AREA_PREFIX):
                    self._devices.get(rule, set()).discard(target_id)
            else:
                self.targets[key] = target
                if not target_id.startswith(AREA_PREFIX):
                    self._devices.setdefault(rule, set()).add(target_id)
        for (rule, device), member in outcome.members.items():
            if member is None:
                self.members.get(rule, {}).pop(device, None)
                self._devices.get(rule, set()).discard(device)
            else:
                self.members.setdefault(rule, {})[device] = member
                self._devices.setdefault(rule, set()).add(device)
        for device, silent in outcome.silent.items():
            if silent is None:
                self.silent.pop(device, None)
            else:
                self.silent[device] = silent

    def restore(
        self,
        targets: Mapping[Key, Target],
        members: Mapping[Key, Member],
        silent: Mapping[str, SilentDevice],
    ) -> None:
        """Take back saved state (at start-up)."""
        self.commit(Outcome(0, targets=dict(targets), members=dict(members), silent=dict(silent)))


_EMPTY: frozenset[str] = frozenset()


class _Run:
    """One cycle's evaluation: reads through the staged changes to the engine's state."""

    def __init__(self, engine: AlertEngine, cycle: CycleInput) -> None:
        self.engine = engine
        self.now = cycle.now_ms
        self.silences = cycle.silences
        self.outcome = Outcome(cycle.now_ms)
        self.held_areas: set[Key] = set()

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
        staged[key] = copy
        return copy

    def target_keys(self) -> list[Key]:
        return list(dict.fromkeys([*self.engine.targets, *self.outcome.targets]))

    def is_silent(self, device: str) -> bool:
        staged = self.outcome.silent
        if device in staged:
            return staged[device] is not None
        return device in self.engine.silent

    def silent_devices(self) -> Iterator[SilentDevice]:
        for device, silent in self.engine.silent.items():
            if device not in self.outcome.silent:
                yield silent
        for staged in self.outcome.silent.values():
            if staged is not None:
                yield staged

    # --- 1. silent devices ---------------------------------------------------------------------
    def silence(self, judgements: list[Judgement]) -> None:
        for j in judgements:
            if j.present and not self.is_silent(j.device):
                self.outcome.silent[j.device] = SilentDevice(j.kind, j.district, self.now)
            elif not j.present and self.is_silent(j.device):
                self.outcome.silent[j.device] = None

    # --- 2. conditions ---------------------------------------------------------------------------
    def device_seen(self, rule: Rule, j: Judgement) -> None:
        key = (rule.name, j.device)
        target = self.edit(key)
        if target is None:
            if not j.present:
                return
            target = Target(j.kind, j.district, j.device, lat=j.lat, lon=j.lon)
            self.outcome.targets[key] = target
        self._observe(rule, target, j.present)
        if j.present:
            target.value, target.field, target.unit = j.value, j.field, j.unit

    def _observe(self, rule: Rule, target: Target, present: bool) -> None:
        if present and not target.present:
            target.present, target.since_ms = True, self.now
            target.onsets = record_onset(target.onsets, self.now, rule.flapping.count)
        elif not present and target.present:
            target.present, target.since_ms = False, self.now

    def members_seen(self, rule: Rule, judgements: tuple[Judgement, ...] | list[Judgement]) -> None:
        current = self.engine.members.get(rule.name, {})
        for j in judgements:
            key = (rule.name, j.device)
            known = (
                self.outcome.members[key] is not None if key in self.outcome.members else j.device in current
            )
            if j.present:
                self.outcome.members[key] = Member(j.kind, j.district, j.value)
            elif known:
                self.outcome.members[key] = None

    def areas(self, rule: Rule) -> None:
        spec = rule.area
        assert spec is not None
        counts: dict[str, int] = {}
        current = self.engine.members.get(rule.name, {})
        members = {d: m for d, m in current.items() if (rule.name, d) not in self.outcome.members}
        for (name, device), member in self.outcome.members.items():
            if name == rule.name and member is not None:
                members[device] = member
        unheard: dict[str, int] = {}
        for device, member in members.items():
            tally = unheard if self.is_silent(device) else counts
            tally[member.district] = tally.get(member.district, 0) + 1
        silent: dict[str, int] = {}
        for s in self.silent_devices():
            if s.kind in rule.kinds:
                silent[s.district] = silent.get(s.district, 0) + 1
        districts = set(counts) | set(unheard)
        districts.update(
            key[1].removeprefix(AREA_PREFIX)
            for key in self.target_keys()
            if key[0] == rule.name and key[1].startswith(AREA_PREFIX)
        )
        kind = rule.kinds[0] if len(rule.kinds) == 1 else ",".join(rule.kinds)
        for district in sorted(districts):
            count = counts.get(district, 0)
            total = max(self.engine.areas.size(rule.kinds, district) - silent.get(district, 0), 0)
            holds = area_holds(spec, count, total)
            key = (rule.name, AREA_PREFIX + district)
            if total == 0 or (count == 0 and unheard.get(district, 0)):
                # Every device that saw it (or every device) went silent: unknown, so held as it is.
                self.held_areas.add(key)
                continue
            target = self.edit(key)
            if target is None:
                if not holds:
                    continue
                lat, lon = self.engine.areas.centre(rule.kinds, district)
                target = Target(kind, district, "", lat=lat, lon=lon)
                self.outcome.targets[key] = target
            self._observe(rule, target, holds)
            if holds:
                target.count, target.total = count, total
                target.value, _ = area_value(spec, count, total)

    # --- 3. acknowledgements ------------------------------------------------------------------
    def acknowledge(self, acks: tuple[Ack, ...]) -> None:
        if not acks:
            return
        by_id: dict[str, Key] = {}
        for key in self.target_keys():
            target = self.target(key)
            if target is not None and target.alert is not None:
                by_id[target.alert.id] = key
        for ack in acks:
            key_found = by_id.get(ack.alert_id)
            target = None if key_found is None else self.edit(key_found)
            if target is None or target.alert is None:
                self.outcome.acks.append(AckResult(ack.request, ack.alert_id, "not open"))
                continue
            if target.alert.state == AlertState.ACKNOWLEDGED:
                self.outcome.acks.append(AckResult(ack.request, ack.alert_id, "already acknowledged"))
                continue
            target.alert = next_event(
                target.alert, self.now, state=AlertState.ACKNOWLEDGED, acknowledged_by=ack.by, note=ack.note
            )
            self.emit(EventType.ACKNOWLEDGED, target.alert)
            self.outcome.acks.append(AckResult(ack.request, ack.alert_id, "acknowledged"))

    # --- 4. the clock -----------------------------------------------------------------------------
    def tick(self, key: Key) -> None:
        target = self.target(key)
        if target is None:
            return
        rule = self.engine.rules.get(key[0])
        if rule is None:  # the rule was removed or disabled since this state was saved
            self._retire(key, target)
            return
        now = self.now
        if target.device:
            held = rule.detector != SILENCE_DETECTOR and self.is_silent(target.device)
        else:
            held = key in self.held_areas
        flapping = is_flapping(target.onsets, now, rule.flapping.count, round(rule.flapping.window_s * 1000))
        alert = target.alert
        if alert is None:
            if target.present and not held and (flapping or now - target.since_ms >= rule.for_ms):
                edited = self.edit(key)
                assert edited is not None
                self._fire(rule, key, edited, flapping)
            elif not target.present and not _remembered(target, now, rule):
                self.outcome.targets[key] = None
            return
        edited = self.edit(key)
        assert edited is not None
        assert edited.alert is not None
        if edited.alert.held != held:
            edited.alert = replace(edited.alert, held=held)
        if target.present:
            if flapping and not edited.alert.flapping:
                edited.alert = next_event(edited.alert, now, flapping=True, **self._values(rule, key, edited))
                self.emit(EventType.FLAPPING, edited.alert)
        elif not held:
            needed = round(rule.flapping.clear_for_s * 1000) if edited.alert.flapping else rule.clear_for_ms
            if now - target.since_ms >= needed:
                self._resolve(rule, key, edited)
                return
        escalate_after = rule.escalate_after_ms
        if (
            escalate_after is not None
            and rule.escalate_to is not None
            and edited.alert.state == AlertState.FIRING
            and not edited.alert.escalated
            and not held
            and now - edited.alert.started_ms >= escalate_after
        ):
            edited.alert = next_event(
                edited.alert,
                now,
                severity=rule.escalate_to,
                escalated=True,
                **self._values(rule, key, edited),
            )
            self.emit(EventType.ESCALATED, edited.alert)
        if not edited.alert.announced and self.silenced_by(edited.alert) == "":
            edited.alert = next_event(edited.alert, now, announced=True)
            self.emit(EventType.FIRED, edited.alert)
        if self.engine.targets.get(key) == edited:
            del self.outcome.targets[key]  # nothing changed after all: keep the cycle's write small

    def _fire(self, rule: Rule, key: Key, target: Target, flapping: bool) -> None:
        now = self.now
        alert = Alert(
            id=alert_id(rule.name, key[1], now),
            rule=rule.name,
            kind=target.kind,
            target=key[1],
            device=target.device,
            district=target.district,
            severity=rule.severity,
            category=rule.alert_category,
            state=AlertState.FIRING,
            started_ms=now,
            updated_ms=now,
            message="",
            message_vi="",
            lat=target.lat,
            lon=target.lon,
            flapping=flapping,
            events=1,
        )
        alert = replace(alert, **self._values(rule, key, target, alert))
        alert = replace(alert, announced=not self.silenced_by(alert))
        target.alert = alert
        self.emit(EventType.FIRED, alert)

    def _resolve(self, rule: Rule, key: Key, target: Target) -> None:
        assert target.alert is not None
        resolved = next_event(
            target.alert, self.now, state=AlertState.RESOLVED, held=False, **self._values(rule, key, target)
        )
        target.alert = None
        self.emit(EventType.RESOLVED, resolved)
        if not target.present and not _remembered(target, self.now, rule):
            self.outcome.targets[key] = None

    def _retire(self, key: Key, target: Target) -> None:
        if target.alert is not None:
            self.emit(EventType.RESOLVED, next_event(target.alert, self.now, state=AlertState.RESOLVED))
        self.outcome.targets[key] = None

    def _values(self, rule: Rule, key: Key, target: Target, alert: Alert | None = None) -> dict[str, Any]:
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

    # --- 5. events and silences --------------------------------------------------------------------
    def silenced_by(self, alert: Alert) -> str:
        for silence in self.silences:
            if silence.matches(alert):
                return silence.id
        return ""

    def emit(self, kind: EventType, alert: Alert) -> None:
        silenced_by = self.silenced_by(alert)
        if not silenced_by and not alert.announced:
            silenced_by = UNANNOUNCED
        self.outcome.events.append(AlertEvent(kind, self.now, alert, silenced_by))


def _remembered(target: Target, now_ms: int, rule: Rule) -> bool:
    """Whether an onset still counts towards flapping, so the target must be kept until it ages out."""
    window = round(rule.flapping.window_s * 1000)
    return any(now_ms - t < window for t in target.onsets)
