"""The alert engine's state machine, with judgements written by hand and the clock passed in."""

from __future__ import annotations

from dataclasses import replace

from processors.alerts import (
    Ack,
    AlertState,
    AreaIndex,
    CycleInput,
    EventType,
    Judged,
    Judgement,
    Silence,
    Target,
)
from processors.alerts.model import AREA_PREFIX, Severity
from processors.alerts.state import UNANNOUNCED
from processors.registry import Device, Registry
from tests.processors.alerts.helpers import MIN, T0, Driver, engine_of, seen

TURBIDITY = """
[[rules]]
name = "murky"
field = "turbidity"
kinds = ["water"]
above = 2.0
severity = "warning"
for = "10m"
clear_for = "15m"
escalate_after = "1h"
message = "turbidity {value} {unit} at {device}"
message_vi = "độ đục {value} {unit} tại {device}"
"""


def murky(device: str = "w1", present: bool = True, value: float = 5.0) -> dict[str, list[Judgement]]:
    return {"murky": [seen(device, present, value=value if present else 1.0)]}


def test_a_condition_fires_only_after_holding_for_its_for_time_and_resolves_after_its_clear_time() -> None:
    d = Driver(engine_of(TURBIDITY))
    assert d.cycle(0, murky()) == []
    assert d.cycle(5, murky()) == [], "held 5 of the 10 minutes: still pending"
    fired = d.cycle(10, murky(value=6.0))
    assert [e.type for e in fired] == [EventType.FIRED]
    alert = fired[0].alert
    assert (alert.rule, alert.target, alert.device, alert.state) == ("murky", "w1", "w1", AlertState.FIRING)
    assert (alert.value, alert.limit, alert.unit) == (6.0, 2.0, "NTU")
    assert alert.message == "turbidity 6 NTU at w1"
    assert alert.message_vi == "độ đục 6 NTU tại w1"
    assert d.cycle(11, murky()) == [], "one open alert per (rule, target): no second firing"
    assert d.cycle(20, murky(present=False)) == []
    assert d.cycle(34, {}) == [], "clear for 14 of 15 minutes"
    resolved = d.cycle(35, {})
    assert [e.type for e in resolved] == [EventType.RESOLVED]
    assert resolved[0].alert.id == alert.id
    assert resolved[0].alert.state == AlertState.RESOLVED
    assert [e.event_id for e in d.events] == [f"{alert.id}.1", f"{alert.id}.2"]
    assert d.engine.open_alerts() == []


def test_a_condition_that_clears_before_its_for_time_never_fires() -> None:
    d = Driver(engine_of(TURBIDITY))
    d.cycle(0, murky())
    d.cycle(9, murky(present=False))
    d.cycle(30, {})
    assert d.events == []


def test_an_unacknowledged_alert_escalates_once_and_an_acknowledged_one_does_not() -> None:
    d = Driver(engine_of(TURBIDITY))
    d.cycle(0, murky("w1"))
    d.cycle(0, murky("w2"))
    fired = d.cycle(10, {"murky": [seen("w1", True, value=5.0), seen("w2", True, value=5.0)]})
    by_device = {e.alert.device: e.alert for e in fired}
    acked = d.cycle(20, acks=[Ack(1, by_device["w2"].id, "lan", "crew on the way")])
    assert [(e.type, e.alert.acknowledged_by, e.alert.note) for e in acked] == [
        (EventType.ACKNOWLEDGED, "lan", "crew on the way")
    ]
    escalated = d.cycle(70, {})
    assert [(e.type, e.alert.device, e.alert.severity) for e in escalated] == [
        (EventType.ESCALATED, "w1", Severity.CRITICAL)
    ]
    assert d.cycle(200, {}) == [], "escalates once"
    again = d.engine.evaluate(
        CycleInput(T0 + 201 * MIN, acks=(Ack(2, by_device["w2"].id, "lan"), Ack(3, "nope", "x")))
    )
    assert [a.outcome for a in again.acks] == ["already acknowledged", "not open"]


def test_an_area_rule_raises_one_district_alert_instead_of_one_per_device() -> None:
    registry = Registry(
        Device(f"air-{i}", "air", "Đống Đa" if i < 4 else "Tây Hồ", 21.0 + i / 100, 105.8) for i in range(6)
    )
    rules = """
[[rules]]
name = "bad_air"
detector = "aqi_vn"
area = { min_share = 0.5, min_devices = 2 }
for = "0s"
clear_for = "0s"
message = "bad air at {count} of {total} stations in {district}"
message_vi = "không khí xấu tại {count}/{total} trạm ở {district}"
"""
    d = Driver(engine_of(rules, AreaIndex.of(registry)))

    def air(device: str, present: bool) -> Judgement:
        district = "Đống Đa" if int(device[-1]) < 4 else "Tây Hồ"
        return seen(device, present, kind="air", district=district, value=90.0)

    assert d.cycle(0, {"bad_air": [air("air-0", True)]}) == [], "1 of 4 is not half"
    fired = d.cycle(1, {"bad_air": [air("air-1", True), air("air-4", True)]})
    assert [(e.type, e.alert.target) for e in fired] == [(EventType.FIRED, AREA_PREFIX + "Đống Đa")]
    alert = fired[0].alert
    assert (alert.device, alert.district, alert.kind, alert.value, alert.limit) == (
        "",
        "Đống Đa",
        "air",
        0.5,
        0.5,
    )
    assert alert.message == "bad air at 2 of 4 stations in Đống Đa"
    assert alert.lat is not None
    assert 21.0 <= alert.lat <= 21.04
    assert d.cycle(2, {"bad_air": [air("air-2", True), air("air-3", True)]}) == []
    assert d.cycle(3, {"bad_air": [air("air-0", False), air("air-1", False)]}) == [], "2 of 4 still"
    resolved = d.cycle(4, {"bad_air": [air("air-2", False)]})
    assert [(e.type, e.alert.id) for e in resolved] == [(EventType.RESOLVED, alert.id)]


def test_silent_devices_leave_the_area_count_and_hold_their_alerts() -> None:
    registry = Registry(Device(f"air-{i}", "air", "Đống Đa", 21.0, 105.8) for i in range(4))
    rules = """
[[rules]]
name = "bad_air"
detector = "aqi_vn"
area = { min_share = 0.5, min_devices = 1 }
clear_for = "0s"
message = "bad air at {count} of {total}"
message_vi = "không khí xấu {count}/{total}"

[[rules]]
name = "murky"
field = "pm25"
kinds = ["air"]
above = 80.0
clear_for = "10m"
message = "pm25 {value}"
message_vi = "pm25 {value}"
"""
    d = Driver(engine_of(rules, AreaIndex.of(registry)))

    def air(device: str, present: bool) -> Judgement:
        return seen(device, present, kind="air", district="Đống Đa", value=90.0)

    d.cycle(0, {"murky": [air("air-0", True)]})
    silent = [air("air-2", True), air("air-3", True)]
    fired = d.cycle(1, {"bad_air": [air("air-0", True)]}, silence=silent)
    assert [(e.type, e.alert.message) for e in fired] == [(EventType.FIRED, "bad air at 1 of 2")]
    # air-0 goes silent too: its open alert is held, not resolved, however long it stays away;
    # so is the district's, which only air-0 saw.
    d.cycle(2, {"murky": [air("air-0", False)]}, silence=[air("air-0", True)])
    assert d.cycle(600, {}) == []
    held = {t.alert.rule: (t.alert.held, t.alert.state) for t in d.engine.targets.values() if t.alert}
    assert held == {"murky": (True, AlertState.FIRING), "bad_air": (True, AlertState.FIRING)}
    back = d.cycle(601, {"bad_air": [air("air-0", False)]}, silence=[air("air-0", False)])
    assert sorted((str(e.type), e.alert.rule) for e in back) == [
        ("resolved", "bad_air"),
        ("resolved", "murky"),
    ]


def test_a_pending_condition_on_a_silent_device_waits() -> None:
    d = Driver(engine_of(TURBIDITY))
    d.cycle(0, murky(), silence=[seen("w1", True)])
    assert d.cycle(30, {}) == []
    assert [e.type for e in d.cycle(31, silence=[seen("w1", False)])] == [EventType.FIRED]


def test_a_flapping_condition_is_one_alert_marked_flapping() -> None:
    d = Driver(engine_of(TURBIDITY.replace('escalate_after = "1h"', "")))
    minute = 0
    for _ in range(20):  # on 3 minutes, off 3 minutes: never 10 minutes on, never 15 off
        d.cycle(minute, murky())
        d.cycle(minute + 3, murky(present=False))
        minute += 6
    fired = [e for e in d.events if e.type == EventType.FIRED]
    assert len(fired) == 1, d.kinds()
    assert fired[0].alert.flapping
    assert d.kinds() == ["fired"]
    # It resolves once the condition stays clear for the flapping clear time (30 minutes).
    last_clear = minute - 3
    d.cycle(last_clear + 29, {})
    assert d.kinds() == ["fired"]
    d.cycle(last_clear + 30, {})
    assert d.kinds() == ["fired", "resolved"]


def test_an_open_alert_that_starts_flapping_is_marked_not_repeated() -> None:
    d = Driver(engine_of(TURBIDITY))
    d.cycle(0, murky())
    d.cycle(10, murky())
    for minute in (12, 16, 20, 24):
        d.cycle(minute, murky(present=minute % 8 == 0))
    assert d.kinds() == ["fired", "flapping"]
    assert d.events[1].alert.id == d.events[0].alert.id


def test_silences_withhold_notifications_but_the_events_are_still_raised() -> None:
    d = Driver(engine_of(TURBIDITY))
    d.silences.append(Silence("s1", T0, T0 + 30 * MIN, district="Ba Đình", created_by="lan"))
    d.cycle(0, murky())
    fired = d.cycle(10, murky())
    assert [(e.type, e.silenced_by) for e in fired] == [(EventType.FIRED, "s1")]
    assert not fired[0].alert.announced
    # The works end with the problem still there: subscribers hear of it now.
    announced = d.cycle(31, murky())
    assert [(e.type, e.silenced_by, e.alert.id) for e in announced] == [
        (EventType.FIRED, "", fired[0].alert.id)
    ]


def test_an_alert_that_fired_and_resolved_inside_a_silence_stays_unheard() -> None:
    d = Driver(engine_of(TURBIDITY))
    d.silences.append(Silence("s1", T0, T0 + 60 * MIN, device="w1"))
    d.cycle(0, murky())
    d.cycle(10, murky())
    d.cycle(11, murky(present=False))
    d.cycle(59, {})
    d.silences.clear()
    d.cycle(61, {})
    assert [(e.type, e.silenced_by) for e in d.events] == [
        (EventType.FIRED, "s1"),
        (EventType.RESOLVED, "s1"),
    ]
    d2 = Driver(engine_of(TURBIDITY))
    d2.silences.append(Silence("s1", T0, T0 + 12 * MIN, device="w1"))
    d2.cycle(0, murky())
    d2.cycle(10, murky())
    d2.cycle(11, murky(present=False))
    d2.silences.clear()
    d2.cycle(30, {})
    assert [(e.type, e.silenced_by) for e in d2.events] == [
        (EventType.FIRED, "s1"),
        (EventType.RESOLVED, UNANNOUNCED),
    ]


def test_evaluation_changes_nothing_until_committed_so_a_retried_cycle_raises_the_same_events() -> None:
    engine = engine_of(TURBIDITY.replace('for = "10m"', 'for = "0s"'))
    cycle = CycleInput(T0, Judged(murky()))
    first = engine.evaluate(cycle)
    again = engine.evaluate(cycle)
    assert [e.event_id for e in first.events] == [e.event_id for e in again.events] != []
    assert engine.targets == {}
    engine.commit(again)
    assert engine.evaluate(CycleInput(T0 + MIN, Judged(murky()))).events == []


def test_state_round_trips_through_json_and_restores() -> None:
    d = Driver(engine_of(TURBIDITY.replace('for = "10m"', 'for = "0s"')))
    d.cycle(0, murky())
    saved = {key: Target.from_dict(t.to_dict()) for key, t in d.engine.targets.items()}
    assert saved == d.engine.targets
    fresh = engine_of(TURBIDITY)
    fresh.restore(saved, {}, {})
    assert fresh.open_alerts() == d.engine.open_alerts()
    assert fresh.alerting_devices() == {"w1"}
    assert fresh.tracked("murky", "water") == {"w1"}


def test_alerts_of_a_rule_that_no_longer_exists_are_resolved() -> None:
    d = Driver(engine_of(TURBIDITY.replace('for = "10m"', 'for = "0s"')))
    d.cycle(0, murky())
    other = engine_of(TURBIDITY.replace('name = "murky"', 'name = "cloudy"'))
    other.restore(dict(d.engine.targets), {}, {})
    retired = other.evaluate(CycleInput(T0 + MIN))
    assert [e.type for e in retired.events] == [EventType.RESOLVED]
    other.commit(retired)
    assert other.targets == {}


def test_a_silence_keeps_escalations_quiet_but_not_the_end_of_an_alert_subscribers_were_told_of() -> None:
    d = Driver(engine_of(TURBIDITY))
    d.cycle(0, murky())
    d.cycle(10, murky())
    d.silences.append(Silence("works", T0 + 20 * MIN, T0 + 200 * MIN, device="w1"))
    d.cycle(70, murky())
    d.cycle(80, murky(present=False))
    d.cycle(95, {})
    assert [(str(e.type), e.silenced_by) for e in d.events] == [
        ("fired", ""),
        ("escalated", "works"),
        ("resolved", ""),
    ]


def test_a_steady_alert_follows_its_latest_value_without_an_event_or_a_save() -> None:
    d = Driver(engine_of(TURBIDITY))
    d.cycle(0, murky(value=5.0))
    d.cycle(10, murky(value=6.0))
    outcome = d.engine.evaluate(
        CycleInput(
            T0 + 30 * MIN, Judged({"murky": [replace(seen("w1", True, value=9.5), ts_ms=T0 + 30 * MIN)]})
        )
    )
    assert (outcome.events, outcome.targets, outcome.changed) == ([], {}, False), "nothing to store"
    d.engine.commit(outcome)
    [escalated] = d.cycle(70, {})
    assert (escalated.type, escalated.alert.value) == (EventType.ESCALATED, 9.5)
    assert escalated.alert.message == "turbidity 9.5 NTU at w1"
