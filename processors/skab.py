"""The SKAB benchmark's published metrics, exactly as its own evaluation code computes them.

SKAB (Skoltech Anomaly Benchmark, waico/SKAB, ``core/metrics.py``, taken from the
``tsad`` library) judges a detector two ways, pooled over every file:

- **Outlier detection**, per row: F1 = TP / (TP + (FP + FN) / 2), the false-alarm rate
  FAR = FP / (FP + TN) and the missed-alarm rate MAR = FN / (FN + TP), both in per cent.
- **Changepoint detection**, the NAB score: each labelled changepoint ``t`` opens a
  window [t, t + 60 s] (to its right: nothing can be seen before it happens). Where two
  windows overlap, the later one starts where the earlier one ends ("cut right
  window"). The first predicted changepoint inside a window earns
  ``A_tp`` at the window's start, falling along a scaled tanh to ``A_fp`` at its end;
  further predictions inside the window count nothing; a window with none costs
  ``A_fn``; every prediction outside every window costs ``A_fp``. Summed over the
  files, the score is ``100 (S - S_null) / (S_perfect - S_null)``, where the null
  detector misses every window and the perfect one hits each at its start.
  Profiles (A_tp, A_fp, A_fn): standard (1, -0.11, -1), low FP (1, -0.22, -1),
  low FN (1, -0.11, -2).

SKAB derives predicted changepoints from a binary outlier prediction as its
edges, both rising and falling (``abs(prediction.diff())``, the first row counting
if it is already 1): :func:`edges` does the same.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

WINDOW_MS = 60_000
"""SKAB's changepoint window: 60 seconds to the right of each labelled changepoint."""
DETAIL = 1000
"""Points of SKAB's tanh scoring curve across a window (its ``detalization``)."""


@dataclass(frozen=True)
class Profile:
    """One NAB cost profile: what a hit at a window's start, a false positive and a miss are worth."""

    name: str
    a_tp: float
    a_fp: float
    a_fn: float


PROFILES = (
    Profile("standard", 1.0, -0.11, -1.0),
    Profile("low_fp", 1.0, -0.22, -1.0),
    Profile("low_fn", 1.0, -0.11, -2.0),
)


@dataclass(frozen=True)
class Confusion:
    """Row counts of a binary outlier prediction against the labels, pooled over files."""

    tp: int = 0
    fp: int = 0
    fn: int = 0
    tn: int = 0

    def __add__(self, other: Confusion) -> Confusion:
        return Confusion(self.tp + other.tp, self.fp + other.fp, self.fn + other.fn, self.tn + other.tn)

    @property
    def f1(self) -> float:
        """TP / (TP + (FN + FP) / 2); 0 when there is nothing to find and nothing was flagged."""
        denominator = self.tp + (self.fn + self.fp) / 2
        return self.tp / denominator if denominator else 0.0

    @property
    def far(self) -> float:
        """False-alarm rate in per cent: flagged normal rows among all normal rows."""
        return 100.0 * self.fp / (self.fp + self.tn) if self.fp + self.tn else 0.0

    @property
    def mar(self) -> float:
        """Missed-alarm rate in per cent: unflagged anomalous rows among all anomalous rows."""
        return 100.0 * self.fn / (self.fn + self.tp) if self.fn + self.tp else 0.0


def confusion(truth: NDArray[np.bool_], predicted: NDArray[np.bool_]) -> Confusion:
    """The row counts of one file.

    >>> confusion(np.array([0, 1, 1, 0], bool), np.array([1, 1, 0, 0], bool))
    Confusion(tp=1, fp=1, fn=1, tn=1)
    """
    return Confusion(
        tp=int(np.count_nonzero(truth & predicted)),
        fp=int(np.count_nonzero(~truth & predicted)),
        fn=int(np.count_nonzero(truth & ~predicted)),
        tn=int(np.count_nonzero(~truth & ~predicted)),
    )


def edges(predicted: NDArray[np.bool_]) -> NDArray[np.bool_]:
    """Predicted changepoints of a binary prediction as SKAB takes them: where it rises or falls.

    >>> edges(np.array([1, 1, 0, 0, 1], bool)).astype(int).tolist()
    [1, 0, 1, 0, 1]
    """
    found = np.zeros(predicted.shape, dtype=np.bool_)
    if predicted.size:
        found[0] = predicted[0]
        found[1:] = predicted[1:] != predicted[:-1]
    return found


def windows(changepoints_ms: NDArray[np.int64], width_ms: int = WINDOW_MS) -> list[tuple[int, int]]:
    """[t, t + width] for each labelled changepoint; an overlapping window starts where the previous ends.

    >>> windows(np.array([0, 30_000, 200_000]))
    [(0, 60000), (60000, 90000), (200000, 260000)]
    """
    found = [[int(t), int(t) + width_ms] for t in np.sort(changepoints_ms)]
    for before, after in itertools.pairwise(found):
        after[0] = max(before[1], after[0])
    return [(left, right) for left, right in found]


def _tp_value(left: int, at: int, right: int, profile: Profile) -> float:
    """What the first detection at ``at`` in [left, right] earns: SKAB's tanh curve, 1,000 steps wide."""
    event = min(int((at - left) / (right - left) * DETAIL), DETAIL - 1)
    x = -math.pi / 2 + event * math.pi / (DETAIL - 1)
    half = (profile.a_tp - profile.a_fp) / 2
    return half * -math.tanh(x) / math.tanh(math.pi / 2) + half + profile.a_fp


@dataclass(frozen=True)
class NabCounts:
    """One file's changepoint outcome: the first detection of each hit window, misses, false positives."""

    hits: tuple[tuple[int, int, int], ...]
    """(window start, first detection, window end) of every window with a detection."""
    misses: int
    false_positives: int

    @property
    def windows(self) -> int:
        return len(self.hits) + self.misses


def nab_counts(
    changepoints_ms: NDArray[np.int64], predicted_ms: NDArray[np.int64], width_ms: int = WINDOW_MS
) -> NabCounts:
    """Match one file's predicted changepoint times to its labelled windows, as SKAB does.

    A prediction inside a window (both ends included) belongs to it; only those strictly
    between windows, before the first or after the last are false positives.

    >>> counts = nab_counts(np.array([100_000]), np.array([10_000, 115_000, 130_000, 300_000]))
    >>> counts.hits, counts.misses, counts.false_positives
    (((100000, 115000, 160000),), 0, 2)
    """
    bounds = windows(changepoints_ms, width_ms)
    predicted = np.sort(np.asarray(predicted_ms, dtype=np.int64))
    if not bounds:
        return NabCounts((), 0, int(predicted.size))
    hits: list[tuple[int, int, int]] = []
    misses = 0
    outside = np.ones(predicted.size, dtype=np.bool_)
    for left, right in bounds:
        inside = (predicted >= left) & (predicted <= right)
        outside &= ~inside
        if inside.any():
            hits.append((left, int(predicted[inside][0]), right))
        else:
            misses += 1
    return NabCounts(tuple(hits), misses, int(np.count_nonzero(outside)))


def nab_score(files: Iterable[NabCounts], profile: Profile = PROFILES[0]) -> float:
    """The NAB score in [-inf, 100] of several files pooled, under ``profile``; 0 is the null detector.

    >>> perfect = NabCounts(((0, 0, 60_000),), 0, 0)
    >>> missed = NabCounts((), 1, 0)
    >>> nab_score([perfect]), nab_score([missed]), nab_score([perfect, missed])
    (100.0, 0.0, 50.0)
    """
    score = null = perfect = 0.0
    for counts in files:
        score += profile.a_fp * counts.false_positives + profile.a_fn * counts.misses
        score += sum(_tp_value(left, at, right, profile) for left, at, right in counts.hits)
        null += counts.windows * profile.a_fn
        perfect += counts.windows * profile.a_tp
    return 100.0 * (score - null) / (perfect - null) if perfect != null else 0.0
