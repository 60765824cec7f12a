"""Random numbers you can look up: the same (seed, stream, index) always gives the same value.

Weather, collection days and per-day habits must be the same whichever slice of
time is simulated first, and whether a run covers a day or a year. A sequential
generator would make each value depend on everything drawn before it, so these
values come from a counter-based hash (SplitMix64) instead: any element of the
sequence can be computed on its own, vectorised over numpy arrays of indices.
"""

from __future__ import annotations

import zlib

import numpy as np
from numpy.typing import ArrayLike, NDArray

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)
_TO_UNIT = 1.0 / float(1 << 53)
_S30, _S27, _S31, _S11 = np.uint64(30), np.uint64(27), np.uint64(31), np.uint64(11)


def stream_id(name: str) -> int:
    """A stable number for a named stream of values (``"rain"``, ``"inversion"``, ...)."""
    return zlib.crc32(name.encode())


def _splitmix(x: NDArray[np.uint64]) -> NDArray[np.uint64]:
    # Array arithmetic on uint64 wraps around silently, which is exactly what the hash wants.
    z = x + _GOLDEN
    z = (z ^ (z >> _S30)) * _MIX1
    z = (z ^ (z >> _S27)) * _MIX2
    out: NDArray[np.uint64] = z ^ (z >> _S31)
    return out


def _key(seed: int, stream: int, draw: int) -> int:
    mask = 0xFFFFFFFFFFFFFFFF
    z = (
        seed * 0x100000001B3 + (stream & 0xFFFFFFFF) * 0x1000193 + (draw & 0xFFFF) + 0x9E3779B97F4A7C15
    ) & mask
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & mask
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & mask
    return z ^ (z >> 31)


def hashed_uniform(seed: int, stream: int, index: ArrayLike, draw: int = 0) -> NDArray[np.float64]:
    """Uniform values in [0, 1) for each index, fixed by (seed, stream, draw).

    >>> a = hashed_uniform(1, 7, [0, 1, 2])
    >>> bool(((a >= 0) & (a < 1)).all()), bool((a == hashed_uniform(1, 7, [0, 1, 2])).all())
    (True, True)
    """
    idx = np.atleast_1d(np.asarray(index, dtype=np.int64)).astype(np.uint64)
    key = np.uint64(_key(seed, stream, draw))
    bits = _splitmix(_splitmix(idx ^ key) + key)
    result: NDArray[np.float64] = (bits >> _S11).astype(np.float64) * _TO_UNIT
    return result


def hashed_normal(seed: int, stream: int, index: ArrayLike) -> NDArray[np.float64]:
    """Standard normal values for each index (Box-Muller over two hashed uniforms)."""
    u1 = hashed_uniform(seed, stream, index, 0)
    u2 = hashed_uniform(seed, stream, index, 1)
    normal: NDArray[np.float64] = np.sqrt(-2.0 * np.log1p(-u1)) * np.cos(2.0 * np.pi * u2)
    return normal


def smooth_noise(seed: int, stream: int, t: NDArray[np.float64], period: float) -> NDArray[np.float64]:
    """A smooth random curve: unit-variance normal knots every ``period``, cosine-interpolated.

    Neighbouring values are strongly correlated; values a period or more apart are
    independent. Used for weather anomalies that last hours to days.
    """
    position = t / period
    knot = np.floor(position)
    frac = position - knot
    weight = 0.5 - 0.5 * np.cos(np.pi * frac)
    left = hashed_normal(seed, stream, knot.astype(np.int64))
    right = hashed_normal(seed, stream, knot.astype(np.int64) + 1)
    # Interpolating two independent unit normals shrinks the variance mid-way; rescale it back.
    scale = 1.0 / np.sqrt(weight**2 + (1.0 - weight) ** 2)
    out: NDArray[np.float64] = (left * (1.0 - weight) + right * weight) * scale
    return out
