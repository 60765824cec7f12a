"""Contract tests run over every registered detector and every kind it applies to.

Exporting a detector (a module in ``processors/detectors`` defining ``DETECTOR``) is
enough to get it checked here: scores in range, nothing learned before commit,
retries scored identically, batches split into rounds exactly like one reading at
a time, and snapshot/restore that resumes where it stopped.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from numpy.typing import NDArray

from processors.batch import ReadingBatch, series_batch
from processors.detectors import DETECTORS, Category, Detector, Scored, StaleScores, _shape
from processors.detectors._robust import Bins, Where
from processors.detectors.base import Binned
from processors.detectors.shift import NEVER, SINCE_MS, TOGETHER_MS, corroborated
from processors.kinds import KINDS, SensorKind
from tests.processors import synthetic

PAIRS = [(cls, kind) for cls in DETECTORS.values() for kind in KINDS.values() if cls.applies_to(kind)]
IDS = [f"{cls.name}-{kind.name}" for cls, kind in PAIRS]


def small_fleet(kind: SensorKind) -> synthetic.Fleet:
    return synthetic.fleet(kind, devices=4, days=0.25 if kind.interval_s < 300 else 1.0, seed=3)


def concat(batches: list[ReadingBatch]) -> ReadingBatch:
    first = batches[0]
    return ReadingBatch(
        first.kind,
        first.table,
        np.concatenate([b.device for b in batches]),
        np.concatenate([b.ts_ms for b in batches]),
        np.concatenate([b.values for b in batches]),
        np.concatenate([b.ts_ms for b in batches]),
    )


def states_equal(a: dict[str, NDArray[Any]], b: dict[str, NDArray[Any]], exact: bool = True) -> bool:
    """Equal states; ``exact=False`` allows the last bit of vectorised maths (numpy's SIMD ``log``
    may round an element differently depending on where it falls in the array)."""
    if a.keys() != b.keys():
        return False
    for key, left in a.items():
        right = b[key]
        if left.dtype.kind == "f" and not exact:
            if not np.allclose(left, right, rtol=1e-5, atol=1e-7, equal_nan=True):
                return False
        elif not np.array_equal(left, right, equal_nan=left.dtype.kind == "f"):
            return False
    return True


def test_every_detector_declares_itself() -> None:
    assert {"spike", "shift", "noise", "stuck", "rate", "silence", "late", "clock"} <= set(DETECTORS)
    for cls in DETECTORS.values():
        assert cls.name
        assert cls.description
        assert isinstance(cls.category, Category)
        assert ">>>" in (cls.__doc__ or ""), f"{cls.name} has no runnable example"
    assert any(cls.category is Category.STANDARD for cls in DETECTORS.values())
    assert any(cls.category is Category.RULE for cls in DETECTORS.values())


@pytest.mark.parametrize(("cls", "kind"), PAIRS, ids=IDS)
class TestEveryDetector:
    def test_scores_are_in_range_and_shaped(self, cls: type[Detector], kind: SensorKind) -> None:
        detector = cls(kind)
        assert detector.columns
        for batch in small_fleet(kind).batches(per_cycle=6):
            scored = detector.score(batch)
            assert scored.scores.shape == (len(batch), len(detector.columns))
            assert scored.scores.dtype == np.float32
            assert np.all((scored.scores >= 0) & (scored.scores <= 1))
            assert not (scored.onsets & (scored.scores < detector.threshold)).any()
            detector.commit(scored)
        assert 0 < detector.bytes_per_device_field() < 2048

    def test_nothing_is_learned_before_commit(self, cls: type[Detector], kind: SensorKind) -> None:
        batches = small_fleet(kind).batches(per_cycle=6)
        detector = cls(kind)
        table = batches[0].table
        for batch in batches[:-1]:
            detector.commit(detector.score(batch))
        before = detector.state(table)
        first = detector.score(batches[-1])  # e.g. the write failed: never committed
        assert states_equal(detector.state(table), before)
        again = detector.score(batches[-1])
        assert np.array_equal(first.scores, again.scores), "a retried cycle must score the same"
        detector.commit(again)
        with pytest.raises(StaleScores):
            detector.commit(first)

    def test_rounds_equal_one_reading_at_a_time(self, cls: type[Detector], kind: SensorKind) -> None:
        batches = small_fleet(kind).batches(per_cycle=1)[:30]
        together, one_by_one = cls(kind), cls(kind)
        joined = together.update(concat(batches))
        separate = np.concatenate([one_by_one.update(b) for b in batches])
        np.testing.assert_allclose(joined, separate, rtol=1e-5, atol=1e-6)
        table = batches[0].table
        assert states_equal(together.state(table), one_by_one.state(table), exact=False)

    def test_snapshot_and_restore_resume_exactly(self, cls: type[Detector], kind: SensorKind) -> None:
        batches = small_fleet(kind).batches(per_cycle=4)
        half = len(batches) // 2
        original = cls(kind)
        for batch in batches[:half]:
            original.update(batch)
        table = batches[0].table
        resumed = cls(kind)
        assert resumed.restore(original.state(table), table) == len(table)
        for batch in batches[half:]:
            assert np.array_equal(original.update(batch), resumed.update(batch))

    def test_alarm_states_start_at_onsets_and_equal_one_reading_at_a_time(
        self, cls: type[Detector], kind: SensorKind
    ) -> None:
        batches = small_fleet(kind).batches(per_cycle=1)[:30]
        together, one_by_one = cls(kind), cls(kind)
        joined = together.score(concat(batches))
        together.commit(joined)
        separate = []
        for batch in batches:
            scored = one_by_one.score(batch)
            one_by_one.commit(scored)
            separate.append(scored)
        assert joined.alarm.shape == joined.scores.shape
        assert not (joined.onsets & ~joined.alarm).any(), "an alarm is on where it starts"
        assert (joined.alarms() == joined.alarm).all()
        assert (joined.alarm == np.concatenate([s.alarm for s in separate])).all()

    def test_an_empty_batch_is_harmless(self, cls: type[Detector], kind: SensorKind) -> None:
        table = small_fleet(kind).registry.tables[kind.name]
        scored = cls(kind).score(ReadingBatch.empty(kind, table))
        assert scored.scores.shape == (0, len(scored.columns))


STATISTICAL = [name for name, cls in DETECTORS.items() if cls.category is Category.STATISTICAL]


@pytest.mark.parametrize("name", [*STATISTICAL, "rate", "late", "clock"])
@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(level=st.floats(min_value=6.6, max_value=8.4), length=st.integers(min_value=300, max_value=700))
def test_a_constant_series_never_alarms(name: str, level: float, length: int) -> None:
    kind = KINDS["water"]
    detector = DETECTORS[name](kind)
    ts = synthetic.START_MS + 300_000 * np.arange(length)
    scores = detector.update(series_batch(kind, {"ph": np.full(length, round(level, 2))}, ts))
    assert scores.max() < detector.threshold


@settings(max_examples=25, deadline=None)
@example(level=250.0, noise=1.0, size=12.0, sign=1.0, at=90, seed=452)  # a 2.3-sigma dip just before it
@given(
    level=st.floats(min_value=250.0, max_value=600.0),
    noise=st.floats(min_value=0.5, max_value=5.0),
    size=st.floats(min_value=12.0, max_value=40.0),
    sign=st.sampled_from([-1.0, 1.0]),
    at=st.integers(min_value=60, max_value=140),
    seed=st.integers(min_value=0, max_value=2**16),
)
def test_a_large_spike_always_alarms(
    level: float, noise: float, size: float, sign: float, at: int, seed: int
) -> None:
    kind = KINDS["water"]
    values = level + noise * np.random.default_rng(seed).standard_normal(160)
    values[at] += sign * size * noise  # stays inside the valid range: a clipped spike is a smaller one
    detector = DETECTORS["spike"](kind)
    scores = detector.update(series_batch(kind, {"conductivity": values}))[:, kind.index_of("conductivity")]
    assert scores[at + 1] >= 0.5, "the spike is confirmed by the reading after it"


def marks_by_step(
    f: synthetic.Fleet, name: str, marked: Callable[[Scored], NDArray[np.bool_]]
) -> NDArray[np.int64]:
    """Readings of each (device, step) where ``marked`` holds in any column, scoring a step at a time."""
    detector = DETECTORS[name](f.kind)
    found = np.zeros(f.present.shape, dtype=np.int64)
    step_of = {(int(d), int(t)): s for d in range(f.ts_ms.shape[0]) for s, t in enumerate(f.ts_ms[d])}
    for batch in f.batches(per_cycle=1):
        scored = detector.score(batch)
        detector.commit(scored)
        for row in np.flatnonzero(marked(scored).any(axis=1)).tolist():
            found[int(batch.device[row]), step_of[(int(batch.device[row]), int(batch.ts_ms[row]))]] += 1
    return found


def alarms_by_step(f: synthetic.Fleet, name: str) -> NDArray[np.bool_]:
    """Whether each (device, step) scored at or above the threshold of detector ``name`` (the alarm
    state, :meth:`Scored.alarms`, is held a while longer: these tests look at the evidence)."""
    found: NDArray[np.bool_] = marks_by_step(f, name, alarming) > 0
    return found


def alarming(scored: Scored) -> NDArray[np.bool_]:
    found: NDArray[np.bool_] = scored.scores >= scored.detector.threshold
    return found


def test_spike_is_caught_on_the_next_reading_and_nothing_else() -> None:
    f = synthetic.fleet(KINDS["water"], devices=3, days=1.0, seed=5)
    synthetic.spike(f, device=1, field=0, step=200, size=12.0)
    found = alarms_by_step(f, "spike")
    assert found[1, 201]
    found[1, 201] = False
    assert not found[:, 30:].any()


def test_noise_burst_is_caught_within_a_few_readings() -> None:
    f = synthetic.fleet(KINDS["water"], devices=3, days=1.0, seed=6)
    synthetic.noise_burst(f, device=2, field=5, first=150, steps=20, factor=10.0)
    found = alarms_by_step(f, "noise")
    assert found[2, 150:156].any()
    assert not found[:, 30:150].any()


def test_drift_is_caught_and_a_clean_day_stays_quiet() -> None:
    f = synthetic.fleet(KINDS["water"], devices=12, days=2.0, seed=7)
    synthetic.drift(f, device=4, field=0, first=420, steps=60, share_of_band=0.8)
    found = alarms_by_step(f, "shift")
    assert found[4, 420:480].any()
    found[4, 420:490] = False
    assert not found.any()


def test_stuck_is_caught_but_natural_repeats_are_not() -> None:
    f = synthetic.fleet(KINDS["air"], devices=3, days=0.5, seed=8)
    synthetic.stuck(f, device=0, field=2, first=400, steps=12)
    found = alarms_by_step(f, "stuck")
    assert found[0, 400:412].any()
    found[0, 400:413] = False
    assert not found.any()


def onsets_by_step(f: synthetic.Fleet, name: str) -> NDArray[np.int64]:
    """How many alarms of detector ``name`` started at each (device, step)."""
    return marks_by_step(f, name, lambda scored: scored.onsets)


def test_shift_raises_one_alarm_for_an_excursion_and_none_once_it_is_over() -> None:
    """A jam (far off for 45 readings, then back) once made the slow statistic flicker for hours."""
    f = synthetic.fleet(KINDS["water"], devices=12, days=2.5, seed=9)
    first = 320  # readings are 5 minutes apart: day 1, 02:40
    f.values[3, first : first + 45, 0] += 40 * synthetic.spread(f, 0)
    onsets = onsets_by_step(f, "shift")
    # Huber-clipped: one reading takes the statistic only half way, so not the first reading.
    assert onsets[3, first + 2] == 1, "the excursion is caught on its third reading"
    assert onsets[3, first + 3 :].sum() == 0, "and nothing starts again after it"
    onsets[3] = 0
    assert onsets.sum() == 0


def test_a_reading_at_the_sensors_limit_neither_ends_nor_restarts_a_shift_alarm() -> None:
    """A measure far off its usual level, read now and then as the sensor's limit (as a quiet road's
    occupancy sits at 0 % at night; a reading pinned there says nothing of the level): one alarm,
    not one per run of readings between the pinned ones."""
    f = synthetic.fleet(KINDS["water"], devices=12, days=2.5, seed=9)
    first = 320
    f.values[3, first : first + 45, 0] += 40 * synthetic.spread(f, 0)
    f.values[3, first + 6 : first + 45 : 4, 0] = KINDS["water"].measures[0].hi
    onsets = onsets_by_step(f, "shift")
    assert onsets[3, first + 2] == 1
    assert onsets[3, first + 3 :].sum() == 0
    onsets[3] = 0
    assert onsets.sum() == 0


def test_a_stuck_sensor_does_not_teach_shift_its_hours() -> None:
    """A probe frozen for six hours of its first day, while the profile is seeded: the next day,
    reading true again, it is not off its profile (had the frozen hours been learned, it would be)."""
    f = synthetic.fleet(KINDS["water"], devices=12, days=3.5, seed=11)
    first = 145  # readings are 5 minutes apart: day 1, 12:05, the cycle falling from its peak
    synthetic.stuck(f, device=3, field=0, first=first, steps=72)
    onsets = onsets_by_step(f, "shift")
    assert onsets.sum() == 0


def test_shift_does_not_blame_devices_for_a_city_wide_step() -> None:
    """The whole fleet cools by many noise sizes at once (a shower): the fleet median follows at once."""
    f = synthetic.fleet(KINDS["water"], devices=12, days=2.5, seed=10)
    f.values[:, 330:, 0] -= 30 * synthetic.spread(f, 0)
    assert onsets_by_step(f, "shift").sum() == 0


def test_shift_excuses_measures_that_move_together_but_not_one_probe_alone() -> None:
    """Rain reaching one water node moves its pH and conductivity together (the water changed);
    the same move of conductivity alone at another node is a probe failing, and alarms."""
    kind = KINDS["water"]
    f = synthetic.fleet(kind, devices=12, days=2.5, seed=13)
    ph, conductivity = kind.index_of("ph"), kind.index_of("conductivity")
    ramp = np.minimum(np.arange(45) / 6.0, 1.0)  # builds up over half an hour, lasts almost four hours
    f.values[3, 330:375, ph] -= 40 * synthetic.spread(f, ph) * ramp
    f.values[3, 330:375, conductivity] -= 40 * synthetic.spread(f, conductivity) * ramp
    f.values[7, 500:545, conductivity] -= 40 * synthetic.spread(f, conductivity) * ramp
    onsets = onsets_by_step(f, "shift")
    assert onsets[3].sum() == 0
    assert onsets[7, 500:510].sum() == 1
    onsets[7] = 0
    assert onsets.sum() == 0


@settings(max_examples=50, deadline=None)
@given(
    off=st.lists(st.booleans(), min_size=2, max_size=7),
    ago_min=st.lists(st.one_of(st.none(), st.integers(min_value=0, max_value=120)), min_size=7, max_size=7),
)
def test_only_measures_off_with_another_measure_of_their_device_are_excused(
    off: list[bool], ago_min: list[int | None]
) -> None:
    """Whatever the history: a measure is excused only if it is off now and another measure of the
    same device is off now or was within the last half hour, and every measure off now is remembered."""
    n = len(off)
    now_ms = synthetic.START_MS
    now_s = (now_ms - SINCE_MS) // 1000
    last = [NEVER if a is None else now_s - a * 60 for a in ago_min[:n]]
    excused, off_s = corroborated(
        np.array([last], dtype=np.int32), np.array([off], dtype=np.bool_), np.array([now_ms], dtype=np.int64)
    )
    recent = [
        o or (a is not None and a * 60_000 <= TOGETHER_MS) for o, a in zip(off, ago_min[:n], strict=True)
    ]
    for j in range(n):
        others = any(recent[k] for k in range(n) if k != j)
        assert bool(excused[0, j]) == (off[j] and others)
    assert off_s[0].tolist() == [now_s if o else t for o, t in zip(off, last, strict=True)]


@pytest.mark.parametrize("seed", [7, 8])
def test_shift_catches_a_drift_well_before_it_ends(seed: int) -> None:
    """A drift to 80 % of the band over 60 readings exceeds the noise after about one reading; it is
    caught within 35 readings of that (while the offset is still under half its final size) and
    nothing else alarms."""
    kind = KINDS["water"]
    f = synthetic.fleet(kind, devices=12, days=2.5, seed=seed)
    synthetic.drift(f, device=4, field=0, first=420, steps=60, share_of_band=0.8)
    m = kind.measures[0]
    exceeds = 420 + synthetic.spread(f, 0) / (0.8 * (m.normal[1] - m.normal[0])) * 59
    found = alarms_by_step(f, "shift")
    first = 420 + int(np.argmax(found[4, 420:]))
    assert found[4, 420:].any()
    assert first - exceeds <= 35
    found[4, 420:490] = False
    assert not found.any()


def test_rate_excuses_a_change_the_whole_fleet_makes_but_not_one_device_alone() -> None:
    kind = KINDS["air"]
    f = synthetic.fleet(kind, devices=12, days=0.1, seed=11)
    field = kind.index_of("temperature")
    f.values[:, 80:, field] -= 10.0  # every device at once: beyond the declared max_rate
    f.values[5, 120:, field] += 10.0  # then one device alone
    onsets = onsets_by_step(f, "rate")
    assert onsets[:, 80].sum() == 0
    assert onsets[5, 120] == 1


def test_traffic_incident_knows_a_road_that_breaks_down_every_rush_hour() -> None:
    """A junction at capacity tips onto the congested branch within minutes at 07:10 every day.

    Judged only against the last half hour, that breakdown looked like a crash on every
    day; now the road's usual occupancy for the hour excuses it from the second day on,
    while a crash at night, far above anything usual then, is still caught at once.
    """
    kind = KINDS["traffic"]
    minutes = 3 * 24 * 60
    rng = np.random.default_rng(5)
    local_minute = (np.arange(minutes) + 7 * 60) % (24 * 60)  # series_batch starts at 00:00 UTC
    speed = 45.0 + rng.normal(0.0, 1.0, minutes)
    occupancy = 12.0 + rng.normal(0.0, 1.0, minutes)
    rush = (local_minute >= 7 * 60 + 10) & (local_minute < 8 * 60 + 30)
    speed[rush] = 12.0 + rng.normal(0.0, 1.0, int(rush.sum()))
    occupancy[rush] = 62.0 + rng.normal(0.0, 2.0, int(rush.sum()))
    crash = 2 * 24 * 60 + 16 * 60  # day 3, 23:00 local
    speed[crash : crash + 45] = 15.0
    occupancy[crash : crash + 45] = 60.0
    detector = DETECTORS["traffic_incident"](kind)
    batch = series_batch(kind, {"mean_speed": speed, "occupancy": occupancy})
    alarms = detector.update(batch)[:, 0] >= 0.5
    onsets = np.flatnonzero(alarms & ~np.r_[False, alarms[:-1]])
    day = onsets // (24 * 60)
    assert day.min() == 0, "the first rush breakdown is new to the detector and alarms"
    assert onsets[day > 0].tolist() == [crash], "later rush hours do not; the night crash does"


def test_traffic_incident_keeps_the_weekday_rush_apart_from_the_quiet_weekend() -> None:
    """Thursday to Monday: the junction breaks down at 07:10 on working days only.

    With one profile for every day, Saturday's and Sunday's quiet mornings watered the
    07:00 usual level down to half a jam, and Monday's ordinary breakdown alarmed as a
    crash. Working days and weekends have profiles of their own: Monday knows Friday's.
    """
    kind = KINDS["traffic"]
    thursday = 1_795_021_200_000  # 2026-11-19 00:00 in Hanoi (18 Nov 17:00 UTC)
    minutes = 5 * 24 * 60
    rng = np.random.default_rng(9)
    ts = thursday + 60_000 * np.arange(minutes)
    day, minute = np.arange(minutes) // (24 * 60), np.arange(minutes) % (24 * 60)
    speed = 45.0 + rng.normal(0.0, 1.0, minutes)
    occupancy = 12.0 + rng.normal(0.0, 1.0, minutes)
    rush = (minute >= 7 * 60 + 10) & (minute < 8 * 60 + 30) & ~np.isin(day, [2, 3])  # not Sat, Sun
    speed[rush] = 12.0 + rng.normal(0.0, 1.0, int(rush.sum()))
    occupancy[rush] = 62.0 + rng.normal(0.0, 2.0, int(rush.sum()))
    detector = DETECTORS["traffic_incident"](kind)
    alarms = (
        detector.update(series_batch(kind, {"mean_speed": speed, "occupancy": occupancy}, ts))[:, 0] >= 0.5
    )
    onset_days = sorted(set((np.flatnonzero(alarms & ~np.r_[False, alarms[:-1]]) // (24 * 60)).tolist()))
    assert onset_days == [0], "Thursday's breakdown is new; Friday's and Monday's are usual"


@pytest.mark.parametrize("seed", [3, 12])
def test_a_first_day_drift_learned_into_the_profile_is_not_blamed_on_true_readings(seed: int) -> None:
    """A probe drifts for eight hours of its first day, while its profile is being seeded, and
    is then recalibrated. The next day it reads true, far from what its profile learned at those
    hours; its peers' shape of the day shows the profile is what is wrong: no alarm. A probe
    drifting on its second day, against a sound profile, still alarms."""
    kind = KINDS["water"]
    f = synthetic.fleet(kind, devices=12, days=3.0, seed=seed)
    synthetic.drift(f, device=3, field=0, first=100, steps=96, share_of_band=0.6)
    synthetic.drift(f, device=8, field=0, first=540, steps=60, share_of_band=0.8)
    onsets = onsets_by_step(f, "shift")
    assert onsets[8, 540:600].sum() == 1
    onsets[8, 540:600] = 0
    assert onsets.sum() == 0


def test_shift_resumes_exactly_with_the_fleets_shape_restored() -> None:
    """The fleet's shape is shared state (it needs ten devices or more): a snapshot carries it."""
    f = synthetic.fleet(KINDS["water"], devices=12, days=2.5, seed=12)
    synthetic.drift(f, device=3, field=0, first=100, steps=96, share_of_band=0.6)
    batches = f.batches(per_cycle=6)
    half = len(batches) * 2 // 3
    original = DETECTORS["shift"](f.kind)
    for batch in batches[:half]:
        original.update(batch)
    table = batches[0].table
    saved = original.state(table)
    assert np.isfinite(saved["shared:shape"]).any()
    resumed = DETECTORS["shift"](f.kind)
    assert resumed.restore(saved, table) == len(table)
    for batch in batches[half:]:
        assert np.array_equal(original.update(batch), resumed.update(batch), equal_nan=True)
    assert states_equal(original.state(table), resumed.state(table))


def test_the_fleets_shape_is_its_devices_common_day_and_names_a_profile_gone_wrong() -> None:
    """Forty devices share one shape of the day, each with its own offset and a little noise; one
    has three hours of its profile wrong. The shape read off them is the common day (up to a
    constant), the stray is the noise, and only a reading of the wrong device at a wrong hour,
    which agrees with the fleet, is called a wrong profile."""
    rng = np.random.default_rng(4)
    devices, bins, noise = 40, 24, 0.05
    common = 3.0 * np.sin(2 * np.pi * np.arange(bins) / bins)
    offsets = rng.normal(0.0, 2.0, devices)
    profile = common[None, :] + offsets[:, None] + rng.normal(0.0, noise, (devices, bins))
    profile[7, 10:13] += 1.0  # learned from a fault
    arrays = {"profile": profile[:, :, None].astype(np.float32)}
    shared = _shape.shape_spec(bins, 1)
    binned = Binned(arrays, np.arange(devices, dtype=np.intp), [])
    _shape.learn(shared, binned, "profile", np.full(devices, synthetic.START_MS, dtype=np.int64))
    shape = shared["shape"][:, 0]
    assert np.abs((shape - shape.mean()) - (common - common.mean())).max() < 3 * noise
    assert 0.5 * noise < float(np.median(shared["stray"])) < 2.0 * noise

    # Every device reads, at hour 11, what the fleet expects of it; device 7's profile there is off.
    i0 = np.full(devices, 11, dtype=np.intp)
    bins_at = Bins(i0, i0 + 1, np.zeros((devices, 1), dtype=np.float32), np.stack([i0, i0 + 1]))
    seasonal = profile[:, 11:12].astype(np.float32)
    y = (common[11] + offsets)[:, None].astype(np.float32)
    suspect = np.ones((devices, 1), dtype=np.bool_)
    scale = np.full((devices, 1), noise, dtype=np.float32)
    where = Where(bins_at, binned.get("profile", bins_at.index))
    found, rows, level = _shape.wrong_profile(shared, binned, "profile", where, y, seasonal, scale, suspect)
    assert found[:, 0].tolist() == [d == 7 for d in range(devices)]
    assert rows.tolist() == list(range(devices))
    apart = level[:, 0] - offsets  # each device's offset, up to the shape's constant
    assert np.abs(apart - np.median(apart)).max() < 3 * noise
    # A profile off by less than the peers usually stray (two of their noise sizes) is the
    # device's own way, not a fault: not rebuilt, though the reading agrees with the fleet.
    seasonal[5] += 2.0 * noise
    found, _, _ = _shape.wrong_profile(shared, binned, "profile", where, y, seasonal, scale, suspect)
    assert found[:, 0].tolist() == [d == 7 for d in range(devices)]
