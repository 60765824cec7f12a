"""SKAB's metrics on small examples worked out by hand from the definitions in its ``core/metrics.py``."""

from __future__ import annotations

import math

import numpy as np
import pytest

from processors.skab import PROFILES, Confusion, NabCounts, confusion, edges, nab_counts, nab_score, windows

STANDARD, LOW_FP, LOW_FN = PROFILES


def test_outlier_metrics_count_rows() -> None:
    truth = np.array([1, 1, 1, 0, 0, 0, 0, 0], dtype=bool)
    predicted = np.array([1, 1, 0, 1, 0, 0, 0, 0], dtype=bool)
    counts = confusion(truth, predicted)
    assert counts == Confusion(tp=2, fp=1, fn=1, tn=4)
    assert counts.f1 == pytest.approx(2 / (2 + (1 + 1) / 2))
    assert counts.far == pytest.approx(100 * 1 / 5)
    assert counts.mar == pytest.approx(100 * 1 / 3)


def test_files_pool_before_the_ratios() -> None:
    one = confusion(np.array([1, 0], bool), np.array([1, 0], bool))
    two = confusion(np.array([1, 1, 0], bool), np.array([0, 0, 1], bool))
    both = one + two
    assert both == Confusion(tp=1, fp=1, fn=2, tn=1)
    assert both.f1 == pytest.approx(1 / (1 + 1.5))
    assert Confusion().f1 == 0.0


def test_edges_rise_and_fall_and_the_first_row_counts() -> None:
    assert edges(np.array([0, 1, 1, 0, 0, 1], bool)).astype(int).tolist() == [0, 1, 0, 1, 0, 1]
    assert edges(np.array([1, 1], bool)).astype(int).tolist() == [1, 0]
    assert edges(np.array([], bool)).size == 0


def test_overlapping_windows_cut_the_later_one() -> None:
    assert windows(np.array([572_000, 573_000, 972_000])) == [
        (572_000, 632_000),
        (632_000, 633_000),
        (972_000, 1_032_000),
    ]


def test_first_detection_in_a_window_scores_and_the_rest_are_free() -> None:
    counts = nab_counts(np.array([100_000]), np.array([100_000, 110_000, 150_000]))
    assert counts.hits == ((100_000, 100_000, 160_000),)
    assert (counts.misses, counts.false_positives) == (0, 0)
    assert nab_score([counts]) == pytest.approx(100.0)


def test_detections_outside_windows_cost_a_fp_each() -> None:
    # One changepoint hit at its window's start (1.0) and two false alarms (-0.11 each):
    # S = 0.78, null = -1, perfect = 1 -> 100 * 1.78 / 2.
    counts = nab_counts(np.array([100_000]), np.array([5_000, 100_000, 161_000]))
    assert (len(counts.hits), counts.misses, counts.false_positives) == (1, 0, 2)
    assert nab_score([counts], STANDARD) == pytest.approx(89.0)
    assert nab_score([counts], LOW_FP) == pytest.approx(100 * (1 - 0.44 + 1) / 2)


def test_a_missed_window_costs_a_fn() -> None:
    counts = nab_counts(np.array([100_000, 500_000]), np.array([100_000]))
    assert (len(counts.hits), counts.misses) == (1, 1)
    # S = 1 - 1 = 0, null = -2, perfect = 2 -> 50; low FN: S = 1 - 2, null = -4, perfect 2 -> 50.
    assert nab_score([counts], STANDARD) == pytest.approx(50.0)
    assert nab_score([counts], LOW_FN) == pytest.approx(100 * (-1 + 4) / 6)


def test_a_prediction_on_a_shared_boundary_belongs_to_both_windows() -> None:
    counts = nab_counts(np.array([0, 30_000]), np.array([60_000]))
    assert counts.hits == ((0, 60_000, 60_000), (60_000, 60_000, 90_000))
    assert counts.false_positives == 0


def _skab_curve(position: float) -> float:
    """SKAB's ``my_scale`` for the standard profile, written as its source does, with numpy's linspace."""
    x = np.linspace(-np.pi / 2, np.pi / 2, 1000)
    y = (1 + 0.11) / 2 * -1 * np.tanh(x) / np.tanh(np.pi / 2) + (1 + 0.11) / 2 - 0.11
    return float(y[min(int(position * 1000), 999)])


@pytest.mark.parametrize("seconds", [0, 1, 15, 29, 30, 45, 59, 60])
def test_late_detections_earn_less_along_skab_s_curve(seconds: int) -> None:
    counts = NabCounts(((0, seconds * 1000, 60_000),), 0, 0)
    expected = _skab_curve(seconds / 60)
    assert nab_score([counts]) == pytest.approx(100 * (expected + 1) / 2, abs=1e-9)


def test_the_curve_runs_from_a_tp_to_a_fp() -> None:
    start = NabCounts(((0, 0, 60_000),), 0, 0)
    end = NabCounts(((0, 60_000, 60_000),), 0, 0)
    assert nab_score([start]) == pytest.approx(100.0)
    assert nab_score([end]) == pytest.approx(100 * (-0.11 + 1) / 2)
    assert math.isclose(nab_score([]), 0.0)


def test_a_file_without_changepoints_counts_every_prediction_false() -> None:
    counts = nab_counts(np.array([], dtype=np.int64), np.array([1_000, 2_000]))
    assert (counts.windows, counts.false_positives) == (0, 2)
