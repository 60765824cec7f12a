"""The generic detector's first version, kept for the comparison in ``bench/skab_compare.py``.

It is what :mod:`processors.detectors._generic_core` grew from: T-squared of one
device's measures against a slow, gated baseline widened by each measure's wander
(a diagonal), with the alarm on the first reading past the level and the score from
a fast mean only. Time constants are in seconds, chosen on SKAB's one-second data.

What it computes, for a device with ``f`` measures read at times ``t``:

- **A normal baseline** of the measures: their exponentially weighted mean and
  covariance, with a memory of :data:`TAU_SLOW_S` seconds (the weight of each
  reading follows the real time since the one before, so irregular sampling and
  gaps are handled; the first readings are a plain average). It learns only from
  readings that look normal: not while the alarm is on, not from a reading whose
  statistic is past half the alarm level. The covariance is shrunk a little
  towards its diagonal, and each variance has a floor, so a flat or quantised
  sensor does not divide by zero.
- **The alarm statistic** ``level``: Hotelling's T-squared of the reading against
  that baseline, turned into the normal deviate with the same upper-tail
  probability (Wilson-Hilferty), so that one threshold fits any number of
  measures. It stays high for as long as the device is away from its normal, so
  it drives the *alarm*: on at :data:`Z_ON`, off below half of it (hysteresis).
  An alarm that lasts :data:`ACCEPT_S` is taken as a new normal: the baseline
  starts again.
- **The anomaly score** ``score`` in [0, 1], the evidence that *this* reading is
  anomalous: T-squared of the reading against where the device has just been (a
  fast mean, memory :data:`TAU_FAST_S`), measured with the normal covariance, as
  the same normal deviate over ``2 Z_ON``. It is high where a change starts and
  wherever new evidence arrives (a further step, a spike), and falls back as the
  fast mean follows the device, as a CUSUM restart or HTM's anomaly likelihood do.

Why this method: on SKAB's development part (valve1) it beat every per-measure
candidate (EWMA and windowed Gaussian, a robust baseline with NAB's anomaly
likelihood, CUSUM, SPOT and DSPOT), because a faulty valve moves several
measures a little each, together, against their usual relations, and T-squared
weighs exactly that; ``docs/detection-real.md`` has the tables.

Speed: the recursions are computed for a whole series at once, block by block.
Within a block of :data:`BLOCK` readings the baseline used for judging is the one
at the block's start, so the alarm and what is learned are known for the whole
block before any learning; the block's learning is then one weighted sum. The
block boundaries depend only on how many readings the device has had, and the
state carries over between calls, so a series gives the same results however it
is cut into calls, one reading at a time included.

>>> import numpy as np
>>> rng = np.random.default_rng(3)
>>> x = rng.standard_normal((2000, 3)) @ np.array([[1, 0.8, 0], [0, 0.6, 0], [0, 0, 1]])
>>> x[1200:1500, :2] += [2.0, -2.0]  # a small shift against the measures' correlation
>>> ts = 1_000 * np.arange(2000)
>>> core = GenericCore(3)
>>> found = core.run(x[:900], ts[:900]).alarm.tolist() + core.run(x[900:], ts[900:]).alarm.tolist()
>>> alarm = np.array(found)
>>> bool(alarm[1210:1500].mean() > 0.9), bool(alarm[:1200].any()), bool(alarm[1530:].any())
(True, False, False)
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

FloatArray = NDArray[np.float64]

TAU_SLOW_S = 900.0
"""Memory of the normal baseline (mean and covariance)."""
TAU_FAST_S = 10.0
"""Memory of the fast mean the score measures new evidence against."""
Z_ON = 4.0
"""Alarm level of the statistic (a normal deviate); the score is 0.5 there."""
REARM = 0.5
"""The alarm ends when the statistic falls below this share of :data:`Z_ON`."""
ACCEPT_S = 3_600.0
"""An alarm this long is a new normal: the baseline starts learning again from scratch."""
WARMUP = 60
"""Readings learned before the detector judges (per device)."""
SHRINK = 0.1
"""Share of the covariance's off-diagonal taken away (shrinkage towards the diagonal)."""
FLOOR = 1e-3
"""Smallest standard deviation believed, as a share of a measure's typical magnitude."""
LEARN_BELOW = 0.5
"""A reading teaches the baseline only while its statistic is below this share of :data:`Z_ON`."""
WANDER = 1.0
"""Weight of each measure's wander in its variance: the mean square of how far its fast mean strays
from the baseline while it is normal. A measure that wanders (an engine's temperature) is judged by
how far it usually wanders, not by its second-to-second noise alone."""
BLOCK = 32
"""Readings judged against one baseline before it takes in what they taught."""


def equivalent_z(t2: FloatArray | float, dof: int) -> FloatArray:
    """The standard normal deviate with the upper tail of a chi-square with ``dof`` degrees (Wilson-Hilferty).

    >>> round(float(equivalent_z(8.0, 8)), 2), round(float(equivalent_z(20.09, 8)), 2)
    (0.17, 2.32)
    """
    c = 2.0 / (9.0 * dof)
    z: FloatArray = (np.cbrt(np.asarray(t2, dtype=np.float64) / dof) - (1.0 - c)) / math.sqrt(c)
    return z


@dataclass
class Found:
    """What the core said of each reading of a call."""

    score: FloatArray
    """Evidence now, in [0, 1]."""
    alarm: NDArray[np.bool_]
    level: FloatArray
    """The alarm statistic (a normal deviate; 0 during warm-up)."""


@dataclass
class CoreState:
    """One device's state: O(f^2) numbers, whatever the length of the series."""

    fields: int
    seen: int = 0
    """Readings of the device so far (block boundaries are multiples of :data:`BLOCK`)."""
    learned: float = 0.0
    """Readings the baseline learned from since it (re)started."""
    last_ts: float = math.nan
    ref: FloatArray = field(init=False)
    """The first reading: moments are kept about it, so large offsets lose no precision."""
    s1: FloatArray = field(init=False)
    s2: FloatArray = field(init=False)
    wander: FloatArray = field(init=False)
    judge_mean: FloatArray = field(init=False)
    judge_precision: FloatArray = field(init=False)
    fast: FloatArray = field(init=False)
    active: bool = False
    alarm_since: float = math.nan
    judging: bool = False
    """Whether the baseline had learned enough at the last block boundary to judge by."""

    def __post_init__(self) -> None:
        f = self.fields
        self.ref = np.full(f, np.nan)
        self.s1 = np.zeros(f)
        self.s2 = np.zeros((f, f))
        self.wander = np.zeros(f)
        self.judge_mean = np.zeros(f)
        self.judge_precision = np.zeros((f, f))
        self.fast = np.full(f, np.nan)


class GenericCore:
    """The detector over one device's series; :meth:`run` takes any number of its next readings."""

    def __init__(self, fields: int) -> None:
        self.state = CoreState(fields)

    def run(self, x: FloatArray, ts_ms: NDArray[np.int64] | None = None) -> Found:
        """Judge and learn the next readings (rows of ``x``, one column per measure; NaN = missing).

        ``ts_ms``: their times (default: one second apart, after the last).
        """
        x = np.asarray(x, dtype=np.float64).reshape(len(x), self.state.fields)
        n = x.shape[0]
        if ts_ms is None:
            start = 0.0 if math.isnan(self.state.last_ts) else self.state.last_ts + 1000.0
            t = (start + 1000.0 * np.arange(n)).astype(np.float64)
        else:
            t = np.asarray(ts_ms).astype(np.float64)
        score, alarm, level = np.zeros(n), np.zeros(n, dtype=np.bool_), np.zeros(n)
        i = 0
        while i < n:
            room = BLOCK - self.state.seen % BLOCK
            j = min(n, i + room)
            self._block(x[i:j], t[i:j], score[i:j], alarm[i:j], level[i:j])
            i = j
        return Found(score, alarm, level)

    def _block(
        self, x: FloatArray, t: FloatArray, score: FloatArray, alarm: NDArray[np.bool_], level: FloatArray
    ) -> None:
        """One block (or the part of it in this call): judge against the block-start baseline, then learn."""
        s = self.state
        k = x.shape[0]
        if np.isnan(s.ref).any():
            first = x[np.isfinite(x).all(axis=1)]
            if first.size == 0:
                s.seen += k
                return
            s.ref = first[0].copy()
            s.fast = first[0].copy()
        finite = np.isfinite(x)
        complete = finite.all(axis=1)
        dt = np.diff(np.r_[s.last_ts, t])
        dt = np.where(np.isfinite(dt), np.clip(dt, 0.0, 1e3 * TAU_SLOW_S), 0.0) / 1000.0

        # Fast mean (learns from every complete reading): its value before each reading is what the
        # score compares with, and what a missing measure is taken to read.
        a_fast = -np.expm1(-dt / TAU_FAST_S) * complete
        fast_before = _ew_path(s.fast, np.where(finite, x, 0.0), a_fast)
        x = np.where(finite, x, fast_before[:-1])
        d_fast = x - fast_before[:-1]
        s.fast = fast_before[-1]

        judging = s.judging
        if judging:
            d = x - s.judge_mean
            t2 = np.einsum("ij,jk,ik->i", d, s.judge_precision, d)
            level[:] = np.maximum(equivalent_z(t2, s.fields), 0.0)
            t2_fast = np.einsum("ij,jk,ik->i", d_fast, s.judge_precision, d_fast)
            score[:] = np.clip(equivalent_z(t2_fast, s.fields) / (2 * Z_ON), 0.0, 1.0)
        alarm[:] = _latch(level, Z_ON, REARM * Z_ON, s.active)
        if alarm[-1] and (~alarm).any():
            s.alarm_since = float(t[np.flatnonzero(~alarm)[-1] + 1])
        elif alarm[-1] and not s.active:
            s.alarm_since = float(t[0])
        s.active = bool(alarm[-1])

        # Learning, gated: a reading teaches the baseline only if it looks normal.
        learn = complete & ~alarm & (level < LEARN_BELOW * Z_ON)
        count = s.learned + np.cumsum(learn)
        a = np.where(learn, np.maximum(1.0 / np.maximum(count, 1.0), -np.expm1(-dt / TAU_SLOW_S)), 0.0)
        if learn.any():
            w, keep = _ew_weights(a)
            c = x - s.ref
            s.s1 = keep * s.s1 + w @ c
            s.s2 = keep * s.s2 + (c * w[:, None]).T @ c
            if judging:
                s.wander = keep * s.wander + w @ (fast_before[1:] - s.judge_mean) ** 2
            s.learned = float(count[-1])
        s.seen += k
        s.last_ts = float(t[-1])
        if s.seen % BLOCK:
            return
        if s.active and t[-1] - s.alarm_since >= 1000.0 * ACCEPT_S:
            s.learned, s.active, s.alarm_since = 0.0, False, math.nan
            s.ref = x[-1].copy()
            s.s1, s.s2, s.wander = np.zeros(s.fields), np.zeros((s.fields, s.fields)), np.zeros(s.fields)
        self._refresh()

    def _refresh(self) -> None:
        """At a block boundary: the baseline learned so far becomes the one readings are judged by."""
        s = self.state
        s.judging = s.learned >= WARMUP
        mean = s.s1
        cov = s.s2 - np.outer(mean, mean)
        variance = np.diag(cov) + WANDER * s.wander
        floor = (FLOOR * (np.abs(s.ref + mean) + 1e-9)) ** 2
        cov = (1.0 - SHRINK) * cov + SHRINK * np.diag(variance)
        cov[np.diag_indices_from(cov)] = np.maximum(variance, floor)
        s.judge_mean = s.ref + mean
        try:
            s.judge_precision = np.linalg.inv(cov).astype(np.float64)
        except np.linalg.LinAlgError:
            s.judge_precision = np.diag(1.0 / np.maximum(variance, floor))


def _latch(level: FloatArray, on: float, off: float, active: bool) -> NDArray[np.bool_]:
    """Hysteresis over a block: set where ``level >= on``, reset where ``level < off``, else held."""
    event = np.where(level >= on, 1, np.where(level < off, -1, 0))
    where = np.where(event != 0, np.arange(level.size), -1)
    last = np.maximum.accumulate(where)
    held: NDArray[np.bool_] = np.where(last >= 0, event[np.maximum(last, 0)] == 1, active)
    return held


def _ew_weights(a: FloatArray) -> tuple[FloatArray, float]:
    """Weights of ``m_k = (1 - a_k) m_{k-1} + a_k x_k`` over a block: m_end = keep * m_0 + w @ x."""
    survive = np.r_[np.cumprod((1.0 - a)[::-1])[::-1][1:], 1.0]
    return a * survive, float(np.prod(1.0 - a))


def _ew_path(m0: FloatArray, x: FloatArray, a: FloatArray) -> FloatArray:
    """Every value of ``m_k = (1 - a_k) m_{k-1} + a_k x_k``: rows m_0 (before x_1) to m_k (after x_k)."""
    k = a.size
    log_keep = np.cumsum(np.log1p(-np.minimum(a, 1.0 - 1e-15)))
    # weight[i, j] of x_j in m_i (j <= i): a_j * prod_{j < l <= i} (1 - a_l)
    gap = log_keep[:, None] - log_keep[None, :]
    weight = np.where(np.tri(k, dtype=np.bool_), a[None, :] * np.exp(np.minimum(gap, 0.0)), 0.0)
    path = np.empty((k + 1, m0.size))
    path[0] = m0
    path[1:] = np.exp(log_keep)[:, None] * m0 + weight @ x
    return path
