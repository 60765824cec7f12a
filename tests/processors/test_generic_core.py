"""The generic core: the same results however a series is cut, alarms held, scores falling back."""

from __future__ import annotations

import numpy as np
import pytest

from processors.detectors._generic_core import ACCEPT_S, BLOCK, WARMUP, Z_ON, GenericCore, equivalent_z


def correlated(rows: int, seed: int = 4) -> np.ndarray:
    rng = np.random.default_rng(seed)
    mix = np.array([[1.0, 0.9, 0.0], [0.0, 0.4, 0.0], [0.0, 0.0, 1.0]])
    found: np.ndarray = 50.0 + rng.standard_normal((rows, 3)) @ mix
    return found


def run_in_pieces(x: np.ndarray, ts: np.ndarray, cuts: list[int]) -> tuple[np.ndarray, np.ndarray]:
    core = GenericCore(x.shape[1])
    scores, alarms = [], []
    for lo, hi in zip([0, *cuts], [*cuts, len(x)], strict=True):
        found = core.run(x[lo:hi], ts[lo:hi])
        scores.append(found.score)
        alarms.append(found.alarm)
    return np.concatenate(scores), np.concatenate(alarms)


def test_the_same_results_however_the_series_is_cut() -> None:
    x = correlated(1500)
    x[900:1100, 0] += 3.0
    x[400, 2] = np.nan  # a missing measure
    ts = (1_000 * np.arange(1500)).astype(np.int64)
    ts[700:] += 30_000  # a gap
    whole_score, whole_alarm = run_in_pieces(x, ts, [])
    rng = np.random.default_rng(0)
    for cuts in ([BLOCK, 2 * BLOCK], sorted(rng.choice(np.arange(1, 1500), 40, replace=False).tolist())):
        score, alarm = run_in_pieces(x, ts, cuts)
        np.testing.assert_allclose(score, whole_score, rtol=1e-9, atol=1e-12)
        assert (alarm == whole_alarm).all()
    core = GenericCore(3)
    one_by_one = [core.run(x[i : i + 1], ts[i : i + 1]) for i in range(300)]
    np.testing.assert_allclose([f.score[0] for f in one_by_one], whole_score[:300], rtol=1e-9, atol=1e-12)
    assert whole_alarm[900:1100].mean() > 0.9, "the shift is found and held"


def test_quiet_on_normal_noise_and_silent_in_warm_up() -> None:
    x = correlated(5000, seed=9)
    found = GenericCore(3).run(x)
    assert not found.alarm[: WARMUP + BLOCK].any()
    assert (found.level[:WARMUP] == 0).all()
    assert found.alarm.mean() < 0.002


def test_the_score_falls_back_while_the_alarm_holds() -> None:
    x = correlated(2000)
    x[1200:, :2] += [2.0, -2.0]  # against the measures' correlation, and it stays
    found = GenericCore(3).run(x)
    assert found.score[1200] >= 0.5, "high where the change starts"
    assert found.score[1260:1400].max() < 0.5, "falls back as the fast mean follows"
    assert found.alarm[1201:2000].all(), "the alarm stays on while the device is off its normal"
    assert found.level[1300] >= Z_ON


def test_a_new_normal_is_accepted_after_a_long_alarm() -> None:
    rows = int(ACCEPT_S) + 1500
    x = correlated(rows)
    x[1000:, :2] += [2.0, -2.0]
    found = GenericCore(3).run(x)
    assert found.alarm[1000 : 1000 + int(ACCEPT_S) - BLOCK].all()
    assert not found.alarm[-200:].any(), "learned again from scratch after ACCEPT_S"


def test_a_spike_scores_once() -> None:
    x = correlated(1000)
    x[600, 1] += 6.0
    found = GenericCore(3).run(x)
    assert found.score[600] >= 0.5
    assert np.delete(found.score, [600]).max() < 0.5


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
