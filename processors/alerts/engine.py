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

from processors.alerts.acks import acknowledge
from processors.alerts.areas import AreaCounts, AreaIndex, area_holds, area_value
from processors.alerts.conditions import SILENCE_DETECTOR, Judgement
from processors.alerts.due import next_due, remembered, waits
from processors.alerts.events import alert_values, new_alert, silenced_by
from processors.alerts.flapping import record_onset
from processors.alerts.model import AREA_PREFIX, Alert, AlertState, EventType, next_event
from processors.alerts.rules import Rule, RuleSet
from processors.alerts.staging import Staged
from processors.alerts.state import CycleInput, Key, Member, Outcome, SilentDevice, Target

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
        acknowledge(run, cycle.acks)
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
                if waits(target, self.rules.get(rule)):
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


class _Run(Staged):
    """One cycle's evaluation: reads through the staged changes to the engine's state."""

    def __init__(self, engine: AlertEngine, cycle: CycleInput) -> None:
        super().__init__(
            engine.targets, engine.members, engine.silent, max(cycle.now_ms, engine.clock_ms), cycle.silences
        )
        self.engine = engine
        self._areas = {
            rule.name: AreaCounts.of(rule.kinds, engine.members.get(rule.name, {}), engine.silent)
            for rule in engine.rules.rules
            if rule.area is not None
        }

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
            step = next_due(target, rule, self.held(key, target, rule), until)
            if step is None:
                return
            at, what = step
            edited = self.edit(key)
            assert edited is not None
            if what == "fire":
                self._fire(rule, key, edited, at)
            elif what == "flapping":
                assert edited.alert is not None
                edited.alert = next_event(edited.alert, at, flapping=True, **alert_values(rule, edited))
                self.emit(EventType.FLAPPING, edited.alert, at)
            elif what == "resolve":
                self._resolve(rule, key, edited, at)
            else:
                assert edited.alert is not None
                assert rule.escalate_to is not None
                edited.alert = next_event(
                    edited.alert, at, severity=rule.escalate_to, escalated=True, **alert_values(rule, edited)
                )
                self.emit(EventType.ESCALATED, edited.alert, at)

    def settle(self, key: Key) -> None:
        """At the cycle's end: held flags, announcements, and forgetting what is over."""
        target = self.target(key)
        if target is None:
            return
        rule = self.engine.rules.get(key[0])
        if rule is None:
            return
        if target.alert is None and not target.present and not remembered(target, self.now, rule):
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
        if not target.alert.announced and silenced_by(self.silences, target.alert) == "":
            edited = self.edit(key)
            assert edited is not None
            assert edited.alert is not None
            edited.alert = next_event(edited.alert, self.now, announced=True)
            self.emit(EventType.FIRED, edited.alert, self.now)

    def _fire(self, rule: Rule, key: Key, target: Target, at: int) -> None:
        target.alert = new_alert(rule, key, target, at, self.silences)
        self.emit(EventType.FIRED, target.alert, at)

    def _resolve(self, rule: Rule, key: Key, target: Target, at: int) -> None:
        assert target.alert is not None
        resolved = next_event(
            target.alert, at, state=AlertState.RESOLVED, held=False, **alert_values(rule, target)
        )
        target.alert = None
        self.emit(EventType.RESOLVED, resolved, at)

    def _retire(self, key: Key, target: Target, at: int) -> None:
        if target.alert is not None:
            self.emit(EventType.RESOLVED, next_event(target.alert, at, state=AlertState.RESOLVED), at)
        self.outcome.targets[key] = None
