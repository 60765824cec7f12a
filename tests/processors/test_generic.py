"""The generic detector: one arithmetic live and offline; scale-free time, seasons, counts, gaps; alarms."""

from __future__ import annotations

import numpy as np
import pytest
from numpy.typing import NDArray

from processors.batch import series_batch
from processors.detectors import _generic_core as core
from processors.detectors._generic_core import ACCEPT, BLOCK, CONFIRM, WARMUP, Z_ON
from processors.detectors._generic_math import equivalent_z, largest_z
from processors.detectors._generic_series import GenericSeries, sample_transform
from processors.detectors._robust import Transform
from processors.detectors.generic import GenericDetector
from processors.kinds import KINDS
from processors.registry import Device

START = 1_795_132_800_000
HOUR = 3_600_000


def correlated(rows: int, seed: int = 4) -> NDArray[np.float64]:
    rng = np.random.default_rng(seed)
    mix = np.array([[1.0, 0.9, 0.0], [0.0, 0.4, 0.0], [0.0, 0.0, 1.0]])
    found: NDArray[np.float64] = 50.0 + rng.standard_normal((rows, 3)) @ mix
    return found


def run(
    x: NDArray[np.float64], ts: NDArray[np.int64] | None = None, interval_ms: float = 1000.0
) -> core.Found:
    stamps = (START + interval_ms * np.arange(len(x))).astype(np.int64) if ts is None else ts
    return GenericSeries(Transform.linear(x.shape[1]), interval_ms).run(x, stamps)


def run_in_pieces(
    x: NDArray[np.float64], ts: NDArray[np.int64], cuts: list[int]
) -> tuple[np.ndarray, np.ndarray]:
    series = GenericSeries(Transform.linear(x.shape[1]), 1000.0)
    scores, alarms = [], []
    for lo, hi in zip([0, *cuts], [*cuts, len(x)], strict=True):
        found = series.run(x[lo:hi], ts[lo:hi])
        scores.append(found.score)
        alarms.append(found.alarm)
    return np.concatenate(scores), np.concatenate(alarms)


def test_the_same_results_however_the_series_is_cut() -> None:
    x = correlated(1500)
    x[900:1100, 0] += 3.0
    x[400, 2] = np.nan  # a missing measure
    ts = (START + 1_000 * np.arange(1500)).astype(np.int64)
    ts[700:] += 30_000  # a gap
    whole_score, whole_alarm = run_in_pieces(x, ts, [])
    rng = np.random.default_rng(0)
    for cuts in ([BLOCK, 2 * BLOCK], sorted(rng.choice(np.arange(1, 1500), 40, replace=False).tolist())):
        score, alarm = run_in_pieces(x, ts, cuts)
        np.testing.assert_allclose(score, whole_score, rtol=1e-7, atol=1e-12)
        assert (alarm == whole_alarm).all()
    series = GenericSeries(Transform.linear(3), 1000.0)
    one_by_one = [series.run(x[i : i + 1], ts[i : i + 1]) for i in range(300)]
    np.testing.assert_allclose([f.score[0] for f in one_by_one], whole_score[:300], rtol=1e-7, atol=1e-12)
    assert whole_alarm[900:1100].mean() > 0.9, "the shift is found and held"


def test_the_live_detector_says_what_the_series_runner_says() -> None:
    """One arithmetic: the detector taking a device's readings round by round (as live) and the
    series runner taking them a block at a time give the same scores and alarms."""
    kind = KINDS["water"]
    rng = np.random.default_rng(8)
    rows = 900
    ph = 7.2 + 0.05 * rng.standard_normal(rows) + 0.1 * np.sin(np.arange(rows) / 50)
    conductivity = 450 + 6 * rng.standard_normal(rows)
    ph[600:700] -= 0.8
    conductivity[300] = np.nan
    ts = (START + 300_000 * np.arange(rows)).astype(np.int64)
    ts[500:] += 6 * 3_600_000  # a gap of six hours
    detector = GenericDetector(kind)
    batch = series_batch(kind, {"ph": ph, "conductivity": conductivity}, ts)
    scored = detector.score(batch)
    detector.commit(scored)
    fields = detector.fields
    series = GenericSeries(Transform.for_fields(kind, fields), 300_000.0)
    found = series.run(batch.values[:, list(fields)], ts)
    np.testing.assert_allclose(scored.scores.max(axis=1), found.score, rtol=1e-6, atol=1e-6)
    assert (scored.alarms().any(axis=1) == found.alarm).all()
    assert found.alarm[610:700].all()
    assert not found.alarm[:600].any()


def test_quiet_on_normal_noise_and_silent_in_warm_up() -> None:
    found = run(correlated(5000, seed=9))
    assert not found.alarm[: WARMUP + BLOCK].any()
    assert (found.level[:WARMUP] == 0).all()
    assert found.alarm.mean() < 0.002


def test_the_score_falls_back_while_the_alarm_holds() -> None:
    x = correlated(2000)
    x[1200:, :2] += [2.0, -2.0]  # against the measures' correlation, and it stays
    found = run(x)
    assert found.score[1200] >= 0.5, "high where the change starts"
    assert found.score[1300:1400].max() < 0.5, "falls back as the detector follows"
    assert found.alarm[1200 + CONFIRM :].all(), "the alarm stays on while the device is off its normal"
    assert not found.alarm[: 1200 + CONFIRM - 1].any(), "and starts once it has been off for a few readings"
    assert found.level[1300] >= Z_ON


def test_a_blip_is_evidence_but_not_an_alarm() -> None:
    x = correlated(1000)
    x[600:602, 1] += 6.0  # two readings far out
    found = run(x)
    assert found.score[600] >= 0.5
    assert not found.alarm.any()


def test_a_new_normal_is_accepted_after_a_long_alarm() -> None:
    rows = int(ACCEPT) + 1500
    x = correlated(rows)
    x[1000:, :2] += [2.0, -2.0]
    found = run(x)
    assert found.alarm[1000 + CONFIRM : 1000 + int(ACCEPT) - BLOCK].all()
    assert not found.alarm[-200:].any(), "learned again from scratch after ACCEPT intervals"


@pytest.mark.parametrize("interval_ms", [1_000.0, 60_000.0, float(HOUR)])
def test_one_setting_fits_every_cadence(interval_ms: float) -> None:
    """Memories count reporting intervals: the same readings a second, a minute or an hour apart
    raise the same alarm (with no cycle in them, the time of day teaches nothing)."""
    x = correlated(3000, seed=5)
    x[2000:2300, 0] += 4.0
    found = run(x, interval_ms=interval_ms)
    on = np.flatnonzero(found.alarm)
    assert on.min() == 2000 + CONFIRM - 1
    assert found.alarm[2000 + CONFIRM - 1 : 2300].all()
    assert not found.alarm[2310:].any()


def daily_cycle(weeks: int, seed: int) -> tuple[NDArray[np.float64], NDArray[np.int64]]:
    rng = np.random.default_rng(seed)
    hours = np.arange(24 * 7 * weeks)
    x = 10.0 * np.sin(2 * np.pi * hours / 24) + rng.standard_normal(hours.size)
    return x.reshape(-1, 1), (START + HOUR * hours).astype(np.int64)


@pytest.mark.parametrize("seed", [1, 2])
def test_the_day_is_learned_so_an_hour_off_its_usual_is_caught(seed: int) -> None:
    """Hourly readings with a daily cycle ten times the noise: the cycle never alarms, and a night that
    reads like noon (within the day's range, wrong for the hour) does, as it would not without the
    seasonal profile."""
    x, ts = daily_cycle(8, seed)
    night = 24 * 7 * 6 + 1 + np.arange(6)
    x[night, 0] += 15.0
    found = GenericSeries(Transform.linear(1), HOUR).run(x, ts)
    assert not found.alarm[: night[0]].any()
    assert found.alarm[night[CONFIRM - 1 :]].all()
    assert not found.alarm[night[-1] + 6 :].any()


def test_the_week_is_learned_too() -> None:
    """Five busy days and a quiet weekend, every week: after a few weeks neither alarms."""
    rng = np.random.default_rng(3)
    hours = np.arange(24 * 7 * 12)
    day = (hours // 24 + 4) % 7  # the epoch's day 0 was a Thursday: 0 = Monday
    busy = np.where(day < 5, 8.0 * np.exp(-(((hours % 24) - 8.0) ** 2) / 4.0), 0.0)
    x = (20 + busy + rng.standard_normal(hours.size)).reshape(-1, 1)
    ts = (HOUR * hours).astype(np.int64)
    found = GenericSeries(Transform.linear(1), HOUR).run(x, ts)
    assert not found.alarm[24 * 7 * 6 :].any()
    assert (found.score[24 * 7 * 6 :] >= 0.5).mean() < 0.002


def test_counts_and_heavy_tails_are_judged_on_their_own_scale() -> None:
    """Vehicle counts (Poisson) and a concentration with a heavy right tail (log-normal): the
    transform chosen from their first readings keeps them quiet, and a level ten times as high is caught."""
    rng = np.random.default_rng(11)
    rows = 4000
    counts = rng.poisson(12.0, rows).astype(np.float64)
    concentration = np.exp(3.0 + 0.5 * rng.standard_normal(rows))
    x = np.column_stack([counts, concentration])
    transform = sample_transform(x[:400])
    assert transform.mode.tolist() == [Transform.COUNT, Transform.LOG]
    quiet = GenericSeries(transform, 300_000.0).run(x, (START + 300_000 * np.arange(rows)).astype(np.int64))
    assert not quiet.alarm.any()
    x[3000:, 1] *= 10.0
    found = GenericSeries(transform, 300_000.0).run(x, (START + 300_000 * np.arange(rows)).astype(np.int64))
    assert found.alarm[3010:3300].all()


def test_a_long_gap_does_not_make_the_next_reading_an_alarm() -> None:
    """Three days without readings, then the device reads as usual (its level moved a little, as levels
    do): nothing is raised. Had it come back far off its normal, the alarm would start after a few
    readings."""
    x = correlated(3000, seed=12)
    ts = (START + 300_000 * np.arange(3000)).astype(np.int64)
    ts[2000:] += 3 * 86_400_000
    x[2000:, 0] += 0.5
    found = run(x, ts, 300_000.0)
    assert found.score[2000] < 0.5
    assert not found.alarm.any()
    x[2000:, 0] += 8.0
    found = run(x, ts, 300_000.0)
    assert found.alarm[2000 + CONFIRM - 1 :].all()
    assert not found.alarm[:2000].any()


def test_each_alarm_and_score_names_the_measure_behind_it() -> None:
    kind = KINDS["water"]
    rng = np.random.default_rng(2)
    ph, pressure = 7.2 + 0.05 * rng.standard_normal(800), 3.0 + 0.05 * rng.standard_normal(800)
    pressure[600:] += 1.0
    device = Device("w-1", "water", "x", 0.0, 0.0, None, 60.0)
    detector = GenericDetector(kind)
    scored = detector.score(series_batch(kind, {"ph": ph, "pressure": pressure}, device=device))
    column = detector.columns.index("pressure")
    assert scored.alarm[610:, column].all()
    assert not np.delete(scored.alarm, column, axis=1).any()
    assert scored.scores[600, column] >= 0.5
    assert scored.onsets[:, column].sum() == 1


NORMAL_TAIL = (2.3263, 3.7190, 4.7534)
"""Upper-tail deviates of the standard normal at 1e-2, 1e-4 and 1e-6 (scipy.stats.norm.isf)."""


@pytest.mark.parametrize(
    ("dof", "chi2_tail", "within"),
    [
        (1, (6.6349, 15.1367, 23.9281), 0.5),
        (3, (11.3449, 21.1075, 30.6648), 0.25),
        (8, (20.0902, 31.8276, 42.7009), 0.15),
    ],
)
def test_equivalent_z_tracks_the_chi_square_tail(
    dof: int, chi2_tail: tuple[float, ...], within: float
) -> None:
    """The chi-square quantiles at the same tails (scipy.stats.chi2.isf) map close to the normal's:
    Wilson-Hilferty is rough for one measure and close from a few on."""
    for t2, z in zip(chi2_tail, NORMAL_TAIL, strict=True):
        assert float(equivalent_z(t2, dof)) == pytest.approx(z, abs=within)


@pytest.mark.parametrize(
    ("count", "z_abs", "expected"), [(1, 4.0, 3.8328), (8, 4.0, 3.2868), (8, 6.0, 5.5325)]
)
def test_largest_z_tracks_the_tail_of_a_maximum(count: int, z_abs: float, expected: float) -> None:
    """Q(z') = 2 n Q(z): the normal deviates of those tails (scipy.stats.norm.isf(2 * n * norm.sf(z)))."""
    assert float(largest_z(np.array([z_abs]), np.array([float(count)]))[0]) == pytest.approx(
        expected, abs=0.02
    )


def test_it_runs_by_default_only_where_no_domain_detector_speaks() -> None:
    """Live, the built-in kinds have rules and standards of their own; a kind without them gets the
    generic detector unless the detectors are chosen by name."""
    from pydantic import create_model

    from processors.anomaly import DetectionEngine
    from processors.kinds import Reading, SensorKind, measure
    from processors.registry import Registry

    engine = DetectionEngine(Registry())
    assert all("generic" not in {d.name for d in found} for found in engine.detectors.values())
    named = DetectionEngine(Registry(), enabled=["generic", "spike"])
    assert {d.name for d in named.detectors["water"]} == {"generic", "spike"}
    model = create_model(
        "SoilReading",
        __base__=Reading,
        moisture=(float | None, measure("%", 0, 100, "Soil moisture", normal=(10, 60))),
    )
    soil = SensorKind(name="soil", title="Soil", model=model, interval_s=600.0, fiware_type="Soil")
    assert GenericDetector.runs_by_default(soil)
    assert not GenericDetector.runs_by_default(KINDS["air"])
