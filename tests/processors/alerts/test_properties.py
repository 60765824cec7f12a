"""Properties of the alert engine over random signals: no two open alerts, no flood, no silence."""

from __future__ import annotations

import math
from dataclasses import replace

from hypothesis import given, settings
from hypothesis import strategies as st

from processors.alerts import AlertEvent, CycleInput, EventType, Judged, Judgement
from tests.processors.alerts.helpers import MIN, T0, Driver, engine_of, seen

RULE = """
[[rules]]
name = "murky"
field = "turbidity"
kinds = ["water"]
above = 2.0
for = "10m"
clear_for = "15m"
escalate_after = "1h"
flapping = { count = 3, window = "1h", clear_for = "30m" }
message = "turbidity {value}"
message_vi = "độ đục {value}"
"""

step = st.tuples(
    st.integers(min_value=1, max_value=40),  # minutes since the previous cycle
    st.sampled_from([True, False, None]),  # the condition (None: the device said nothing about it)
    st.sampled_from([True, False, None]),  # silent from now / back / unchanged
)


def run(steps: list[tuple[int, bool | None, bool | None]], devices: int = 1) -> tuple[Driver, list[int]]:
    """Drive the engine; return it and, per cycle, the minute."""
    d = Driver(engine_of(RULE))
    minute = 0
    minutes = []
    for i, (gap, present, silent) in enumerate(steps):
        minute += gap
        device = f"w{i % devices}"
        judged = {} if present is None else {"murky": [seen(device, present, value=5.0 if present else 1.0)]}
        silence = [] if silent is None else [seen(device, silent)]
        d.cycle(minute, judged, silence=silence)
        minutes.append(minute)
    return d, minutes


@settings(max_examples=150, deadline=None)
@given(st.lists(step, max_size=60), st.integers(min_value=1, max_value=3))
def test_never_two_open_alerts_per_rule_and_target(
    steps: list[tuple[int, bool | None, bool | None]], n: int
) -> None:
    d, _ = run(steps, n)
    open_by_target: dict[tuple[str, str], str] = {}
    ids: set[str] = set()
    for e in d.events:
        assert e.event_id not in ids, "every event id is new"
        ids.add(e.event_id)
        key = (e.alert.rule, e.alert.target)
        if e.type == EventType.FIRED:
            assert key not in open_by_target, f"a second alert opened for {key}"
            open_by_target[key] = e.alert.id
        else:
            assert open_by_target.get(key) == e.alert.id, f"{e.type} for an alert that is not open"
            if e.type == EventType.RESOLVED:
                del open_by_target[key]
    assert {a.id for a in d.engine.open_alerts()} == set(open_by_target.values())


@settings(max_examples=150, deadline=None)
@given(st.lists(step, max_size=80))
def test_no_flood_whatever_the_signal(steps: list[tuple[int, bool | None, bool | None]]) -> None:
    d, _ = run(steps)
    fired = [e.at_ms for e in d.events if e.type == EventType.FIRED]
    bound = 3 + math.ceil(60 / 30)  # flapping.count, plus one per flapping clear time in the window
    for i, at in enumerate(fired):
        within = [t for t in fired[i:] if t - at < 3_600_000]
        assert len(within) <= bound, f"{len(within)} alerts within an hour"


@settings(max_examples=150, deadline=None)
@given(st.lists(step, max_size=60))
def test_a_silent_devices_alerts_are_held_not_resolved(
    steps: list[tuple[int, bool | None, bool | None]],
) -> None:
    d = Driver(engine_of(RULE))
    minute = 0
    silent = False
    for gap, present, now_silent in steps:
        minute += gap
        judged = {} if present is None else {"murky": [seen("w1", present, value=5.0 if present else 1.0)]}
        if now_silent is not None:
            silent_before = silent
            silent = now_silent
        else:
            silent_before = silent
        events: list[AlertEvent] = d.cycle(
            minute, judged, silence=[] if now_silent is None else [seen("w1", now_silent)]
        )
        if silent and silent_before:
            assert not [e for e in events if e.type in (EventType.RESOLVED, EventType.ESCALATED)]
            assert not [e for e in events if e.type == EventType.FIRED]


@settings(max_examples=100, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(min_value=1, max_value=9), st.integers(min_value=1, max_value=14)),
        min_size=3,
        max_size=30,
    )
)
def test_a_flapping_signal_is_one_alert(toggles: list[tuple[int, int]]) -> None:
    """On shorter than ``for``, off shorter than ``clear_for``: never a normal alert, never resolved."""
    d = Driver(engine_of(RULE.replace('escalate_after = "1h"', "")))
    minute = 0
    for on, off in toggles:
        d.cycle(minute, {"murky": [seen("w1", True, value=5.0)]})
        d.cycle(minute + on, {"murky": [seen("w1", False)]})
        minute += on + off
    assert [str(e.type) for e in d.events] == ["fired"]
    assert d.events[0].alert.flapping


@settings(max_examples=150, deadline=None)
@given(st.lists(step, max_size=50), st.integers(min_value=1, max_value=3))
def test_a_backlog_in_one_cycle_raises_what_the_same_readings_raise_live(
    steps: list[tuple[int, bool | None, bool | None]], n: int
) -> None:
    """Each judgement counts at its own time, so cycle boundaries change nothing."""
    judged: list[tuple[int, dict[str, list[Judgement]], list[Judgement]]] = []
    minute = 0
    for i, (gap, present, silent) in enumerate(steps):
        minute += gap
        at = T0 + minute * MIN
        device = f"w{i % n}"
        rules = {} if present is None else {"murky": [replace(seen(device, present, value=5.0), ts_ms=at)]}
        silence = [] if silent is None else [replace(seen(device, silent), ts_ms=at)]
        judged.append((at, rules, silence))
    live = engine_of(RULE)
    live_events: list[AlertEvent] = []
    for at, rules, silence in judged:
        outcome = live.evaluate(CycleInput(at, Judged(rules, silence)))
        live.commit(outcome)
        live_events += outcome.events
    backlog = engine_of(RULE)
    merged: dict[str, list[Judgement]] = {"murky": [j for _, r, _ in judged for j in r.get("murky", [])]}
    at_end = judged[-1][0] if judged else T0
    replayed = backlog.evaluate(
        CycleInput(at_end, Judged(merged, [j for _, _, s in judged for j in s]))
    ).events

    def key(e: AlertEvent) -> tuple[int, str, str, str]:
        return (e.at_ms, e.alert.target, str(e.type), e.event_id)

    assert sorted(map(key, replayed)) == sorted(map(key, live_events))
