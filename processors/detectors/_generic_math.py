"""Arithmetic the generic detector is built from: tails mapped to normal deviates, running means over
a block at once, and hysteresis along rows.

Everything here works on whole arrays (a block of readings of many devices), so the
detector's recursions cost a few numpy calls per block rather than a Python step per reading.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

FloatArray = NDArray[np.float64]
BoolArray = NDArray[np.bool_]


def equivalent_z(t2: FloatArray | float, dof: FloatArray | int) -> FloatArray:
    """The standard normal deviate with the upper tail of a chi-square with ``dof`` degrees (Wilson-Hilferty).

    >>> round(float(equivalent_z(8.0, 8)), 2), round(float(equivalent_z(20.09, 8)), 2)
    (0.17, 2.32)
    """
    k = np.maximum(np.asarray(dof, dtype=np.float64), 1.0)
    c = 2.0 / (9.0 * k)
    z: FloatArray = (np.cbrt(np.asarray(t2, dtype=np.float64) / k) - (1.0 - c)) / np.sqrt(c)
    return z


def largest_z(z_abs: FloatArray, count: FloatArray) -> FloatArray:
    """The normal deviate as surprising as the largest of ``count`` two-sided deviates being ``z_abs``.

    Solves ``Q(z') = 2 n Q(z)`` (the largest of ``n`` has about ``n`` times one's tail, both
    sides counted) with the normal tail's ``Q(z) ~ exp(-z^2 / 2) / z``, by two fixed-point
    steps: within 0.01 of exact beyond 3, and 0 where it is not surprising at all.

    >>> z, n = np.array([4.0, 4.0, 6.0, 1.0]), np.array([1.0, 8.0, 8.0, 8.0])
    >>> [round(float(v), 2) for v in largest_z(z, n)]
    [3.83, 3.29, 5.53, 0.0]
    """
    z = np.maximum(z_abs, 1e-9)
    base = z * z - 2.0 * np.log(2.0 * np.maximum(count, 1.0))
    guess = np.sqrt(np.maximum(base, 1e-18))
    for _ in range(2):
        guess = np.sqrt(np.maximum(base + 2.0 * np.log(z / guess), 1e-18))
    found: FloatArray = np.where(base > 0, guess, 0.0)
    return found


def affine_path(m0: FloatArray, keep: FloatArray, push: FloatArray) -> FloatArray:
    """Every value of ``m_k = keep_k * m_{k-1} + push_k`` (shapes (d, c), (d, k, c)): rows m_1 .. m_k.

    ``m_k = P_k (m_0 + sum_{j <= k} push_j / P_j)`` with ``P_k`` the product of the keeps:
    one cumulative sum. Where a keep is (nearly) zero (a mean started afresh) that would
    divide by nothing, and the path is worked out as a weighted sum instead.
    """
    k = keep.shape[1]
    if k == 1:
        one: FloatArray = keep * m0[:, None, :] + push
        return one
    log_keep = np.cumsum(np.log(np.maximum(keep, 1e-300)), axis=1)
    if log_keep.min(initial=0.0) > -500.0:
        scale = np.exp(log_keep)
        path: FloatArray = scale * (m0[:, None, :] + np.cumsum(push / scale, axis=1))
        return path
    # weight[i, j] of push_j in m_i (j <= i): prod_{j < l <= i} keep_l
    gap = log_keep[:, :, None, :] - log_keep[:, None, :, :]
    lower = np.tri(k, dtype=np.bool_)[None, :, :, None]
    weight = np.where(lower, np.exp(np.minimum(gap, 0.0)), 0.0)
    summed: FloatArray = np.exp(log_keep) * m0[:, None, :] + np.einsum("dijf,djf->dif", weight, push)
    return summed


def runs(high: BoolArray, carried: NDArray[np.int64]) -> NDArray[np.int64]:
    """Readings in a row with ``high`` set, up to and including each (carrying the count before)."""
    k = high.shape[1]
    position = np.arange(k)[None, :]
    last_low = np.maximum.accumulate(np.where(high, -1, position), axis=1)
    run = np.where(last_low < 0, carried[:, None] + position + 1, position - last_low)
    found: NDArray[np.int64] = np.where(high, run, 0)
    return found


def latch(on: BoolArray, off: BoolArray, active: BoolArray) -> BoolArray:
    """Hysteresis along each row: set where ``on``, reset where ``off`` (and not ``on``), else held."""
    event = np.where(on, 1, np.where(off, -1, 0))
    position = np.arange(on.shape[1])[None, :]
    last = np.maximum.accumulate(np.where(event != 0, position, -1), axis=1)
    held = np.take_along_axis(event, np.maximum(last, 0), axis=1) == 1
    found: BoolArray = np.where(last >= 0, held, active[:, None])
    return found
