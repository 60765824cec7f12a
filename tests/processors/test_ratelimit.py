"""The per-device token bucket: honest devices pass, floods are held to their allowance, reported once."""

from __future__ import annotations

import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from processors.batch import ReadingBatch
from processors.kinds import get_kind
from processors.ratelimit import RateLimiter, RatePolicy
from processors.registry import Device, DeviceTable, Registry

MINUTE = 60_000
START = 1_795_132_800_000
AIR = get_kind("air")


def fleet(n: int = 3) -> Registry:
    return Registry(Device(f"air-{i}", "air", "Ba Đình", 21.0, 105.8, interval_s=60) for i in range(n))


def batch(table: DeviceTable, rows: list[tuple[int, int]]) -> ReadingBatch:
    """Rows of (device position, timestamp ms), in arrival order."""
    device = np.array([d for d, _ in rows], dtype=np.intp)
    ts = np.array([t for _, t in rows], dtype=np.int64)
    return ReadingBatch(AIR, table, device, ts, np.full((len(rows), len(AIR.measures)), 10.0))


def cycle(limiter: RateLimiter, table: DeviceTable, rows: list[tuple[int, int]], now_ms: int) -> list[bool]:
    decision = limiter.judge({"air": batch(table, rows)}, now_ms)
    limiter.commit(decision)
    return decision.kinds["air"].keep.tolist() if "air" in decision.kinds else []


def test_a_device_reporting_at_its_interval_is_never_limited_over_a_week() -> None:
    reg = fleet(1)
    limiter = RateLimiter(RatePolicy(), reg)
    table = reg.tables["air"]
    for minute in range(7 * 24 * 60):
        ts = START + minute * MINUTE + int(np.sin(minute) * 20_000)  # jittery clock
        assert cycle(limiter, table, [(0, ts)], ts + 800) == [True]


def test_a_backlog_after_an_outage_and_a_fast_replay_are_not_limited() -> None:
    reg = fleet(1)
    table = reg.tables["air"]
    limiter = RateLimiter(RatePolicy(), reg)
    assert all(cycle(limiter, table, [(0, START)], START + 500))
    # Six hours offline, then the whole backlog in one message (more than the saved-up allowance).
    back = START + 6 * 60 * MINUTE
    backlog = [(0, START + m * MINUTE) for m in range(1, 361)]
    assert all(cycle(limiter, table, backlog, back + 1000))
    # A week replayed in seconds: the device's own clock earns what the wall clock does not.
    replay = RateLimiter(RatePolicy(), reg)
    week = [START + m * MINUTE for m in range(7 * 24 * 60)]
    for chunk in range(0, len(week), 5000):
        rows = [(0, t) for t in week[chunk : chunk + 5000]]
        assert all(cycle(replay, table, rows, week[-1] + chunk))


def test_a_flood_is_held_to_its_allowance_and_reported_once_while_others_pass() -> None:
    reg = fleet(3)
    table = reg.tables["air"]
    policy = RatePolicy(factor=2.0, burst_s=3600.0)
    limiter = RateLimiter(policy, reg)
    kept_flood = onsets = 0
    for second in range(0, 30 * 60, 6):  # 30 minutes, a cycle every 6 s
        now = START + second * 1000
        rows = [(0, now - 500 + k) for k in range(10)]  # device 0: 100 readings a minute, 100x its rate
        if second % 60 == 0:
            rows += [(1, now - 300), (2, now - 200)]  # the others: one a minute
        decision = limiter.judge({"air": batch(table, rows)}, now)
        limiter.commit(decision)
        verdict = decision.kinds["air"]
        keep = verdict.keep
        kept_flood += int(keep[:10].sum())
        assert keep[10:].all(), "an honest device was limited"
        onsets += len(verdict.onsets)
        assert set(verdict.onsets.tolist()) <= {0}
    # The hour saved up, the first readings' own interval, then twice the declared rate.
    allowance = 2.0 * 3600 / 60 + 2.0 + 2.0 / 60 * (30 * 60 - 6)
    assert math.floor(allowance) - 1 <= kept_flood <= math.floor(allowance)
    assert onsets == 1, "one flood, one report"


def test_a_second_flood_after_a_calm_spell_is_reported_again() -> None:
    reg = fleet(1)
    table = reg.tables["air"]
    limiter = RateLimiter(RatePolicy(factor=2.0, burst_s=600.0), reg)  # 20 readings saved up at most

    def flood(now: int) -> int:
        decision = limiter.judge({"air": batch(table, [(0, now + k) for k in range(50)])}, now + 100)
        limiter.commit(decision)
        return len(decision.kinds["air"].onsets)

    assert flood(START) == 1
    assert flood(START + MINUTE) == 0, "still the same flood"
    assert flood(START + 2 * 60 * MINUTE) == 1, "calm for two hours, then a new flood"


def test_a_retried_cycle_is_judged_the_same_and_spends_nothing_until_committed() -> None:
    reg = fleet(1)
    table = reg.tables["air"]
    limiter = RateLimiter(RatePolicy(factor=2.0, burst_s=600.0), reg)
    rows = [(0, START + k) for k in range(40)]
    first = limiter.judge({"air": batch(table, rows)}, START + 100)
    again = limiter.judge({"air": batch(table, rows)}, START + 100)
    assert first.kinds["air"].keep.tolist() == again.kinds["air"].keep.tolist()
    assert first.limited == 40 - 20 - 2  # 20 saved up, 2 for the first interval


def test_no_limit_when_switched_off() -> None:
    reg = fleet(1)
    limiter = RateLimiter(RatePolicy(factor=0), reg)
    assert cycle(limiter, reg.tables["air"], [(0, START)] * 1000, START) == []


def test_state_stays_small_for_a_hundred_thousand_devices() -> None:
    reg = Registry(Device(f"air-{i}", "air", "Ba Đình", 21.0, 105.8) for i in range(100_000))
    limiter = RateLimiter(RatePolicy(), reg)
    assert limiter.nbytes() <= 37 * 100_000
    table = reg.tables["air"]
    rows = [(i, START + i % 1000) for i in range(0, 100_000, 7)]
    assert all(cycle(limiter, table, rows, START + 5000))


def reference(policy: RatePolicy, interval_s: float, cycles: list[tuple[int, list[int]]]) -> list[list[bool]]:
    """The same bucket for one device, one reading at a time, written plainly."""
    rate = policy.factor / (interval_s * 1000)
    capacity = max(policy.factor, rate * policy.burst_s * 1000)
    tokens, last, newest = capacity, None, None
    out = []
    for now, stamps in cycles:
        wall = 0 if last is None else max(now - last, 0)
        since = (
            min(stamps) - interval_s * 1000
            if newest is None
            else max(newest, min(stamps) - interval_s * 1000)
        )
        own = max(max(stamps) - since, 0)
        available = max(min(capacity, tokens + wall * rate), min(capacity, tokens) + own * rate)
        kept = []
        for _ in stamps:
            kept.append(available >= 1)
            if available >= 1:
                available -= 1
        out.append(kept)
        tokens = min(capacity, available)
        last, newest = now, max(stamps) if newest is None else max(newest, *stamps)
    return out


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.integers(0, 30 * MINUTE),
            st.lists(st.integers(-10 * MINUTE, 10 * MINUTE), min_size=1, max_size=40),
        ),
        min_size=1,
        max_size=12,
    ),
    st.sampled_from([1.0, 2.0, 3.5]),
    st.sampled_from([60.0, 600.0, 3600.0]),
)
def test_the_vectorised_bucket_matches_a_plain_one(
    steps: list[tuple[int, list[int]]], factor: float, burst_s: float
) -> None:
    policy = RatePolicy(factor, burst_s)
    reg = fleet(1)
    table = reg.tables["air"]
    limiter = RateLimiter(policy, reg)
    now, cycles = START, []
    for gap, offsets in steps:
        now += gap
        cycles.append((now, [now + o for o in offsets]))
    expected = reference(policy, 60.0, cycles)
    got = [cycle(limiter, table, [(0, t) for t in stamps], at) for at, stamps in cycles]
    assert got == expected
