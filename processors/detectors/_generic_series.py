"""The generic detector over one long recorded series, a block at a time (``citypulse detect``).

The live detector (:mod:`processors.detectors.generic`) takes one reading per
device per round, over many devices; a recorded series is one device and many
readings. :class:`GenericSeries` runs the same arithmetic
(:func:`~processors.detectors._generic_core.advance`) on up to :data:`BLOCK`
readings at once: readings of a block are judged against the state at its start
in either case, so the results are the same, and a long series goes at numpy's
pace rather than Python's.

A series of unknown kind has no declared transform, so one is chosen from its
first readings (:func:`sample_transform`), as a kind's normal band would choose it.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from processors.detectors._generic_core import (
    BINS,
    BLOCK,
    Found,
    Setup,
    advance,
    fresh_state,
    prepare,
)
from processors.detectors._robust import Transform
from processors.kinds import Measure

FloatArray = NDArray[np.float64]
UNBOUNDED = 1e300


class SeriesTables:
    """The profiles of the one device of a series, as plain arrays."""

    def __init__(self, fields: int) -> None:
        self.season = np.zeros((BINS, fields), dtype=np.float32)
        self.pending = np.zeros((BINS, fields), dtype=np.float32)

    def read(self, index: NDArray[np.intp]) -> NDArray[np.float32]:
        found: NDArray[np.float32] = self.season[index]
        return found

    def add(self, index: NDArray[np.intp], values: NDArray[np.float32]) -> None:
        np.add.at(self.pending, index.reshape(-1), values.reshape(-1, values.shape[-1]))

    def flush(self, devices: NDArray[np.intp]) -> None:
        self.season += self.pending
        self.pending[:] = 0.0


class GenericSeries:
    """The generic detector over one device's series; :meth:`run` takes any number of its next readings.

    >>> rng = np.random.default_rng(3)
    >>> x = rng.standard_normal((2000, 3)) @ np.array([[1, 0.8, 0], [0, 0.6, 0], [0, 0, 1]])
    >>> x[1200:1500, :2] += [2.0, -2.0]  # a small shift against the measures' correlation
    >>> ts = 1_000 * np.arange(2000)
    >>> series = GenericSeries(Transform.linear(3), 1_000.0)
    >>> found = [series.run(x[:900], ts[:900]), series.run(x[900:], ts[900:])]
    >>> alarm = np.concatenate([f.alarm for f in found])
    >>> bool(alarm[1210:1500].mean() > 0.9), bool(alarm[:1200].any()), bool(alarm[1530:].any())
    (True, False, False)
    """

    def __init__(self, transform: Transform, interval_ms: float) -> None:
        self.setup = Setup.of(transform)
        self.interval = np.array([float(interval_ms)])
        self.state = fresh_state(1, self.setup.fields)
        self.tables = SeriesTables(self.setup.fields)

    def run(self, x: FloatArray, ts_ms: NDArray[np.int64]) -> Found:
        """Judge and learn the next readings (rows of ``x``, one column per measure; NaN = missing),
        in time order; the state carries over to the next call."""
        f = self.setup.fields
        x = np.asarray(x, dtype=np.float64).reshape(len(x), f)
        ts = np.asarray(ts_ms, dtype=np.int64)
        n = x.shape[0]
        score, level = np.zeros(n), np.zeros(n)
        alarm = np.zeros(n, dtype=np.bool_)
        scored_by, alarmed_by = np.zeros(n, dtype=np.intp), np.zeros(n, dtype=np.intp)
        whole = prepare(x[None], ts[None], self.state["last_ts"], self.interval, self.setup)
        i = 0
        while i < n:
            j = min(n, i + BLOCK - int(self.state["seen"][0]) % BLOCK)
            found = advance(self.state, self.tables, whole.part(i, j), self.setup)
            score[i:j], alarm[i:j], level[i:j] = found.score[0], found.alarm[0], found.level[0]
            scored_by[i:j], alarmed_by[i:j] = found.scored_by[0], found.alarmed_by[0]
            i = j
        return Found(score, alarm, level, scored_by, alarmed_by)


def sample_band(finite: FloatArray) -> tuple[float, float]:
    """A measure's normal band from its finite sample: the 5th to 95th percentile.

    An empty sample gives (0, 1); a flat one is widened by a tenth of its level (at
    least 1) each way, so a band always has width.
    """
    if finite.size:
        low, high = (float(v) for v in np.percentile(finite, [5.0, 95.0]))
    else:
        low, high = 0.0, 1.0
    if high <= low:
        spread = max(abs(low) * 0.1, 1.0)
        low, high = low - spread, high + spread
    return low, high


def sample_transform(sample: FloatArray) -> Transform:
    """A transform for measures of unknown kind, from a sample of their first readings (columns).

    A measure that is never negative and spans a factor of four or more between its
    5th and 95th percentiles varies by factors: log. One that only ever reads whole
    non-negative numbers is a count: square root. The rest stay linear.
    """
    sample = np.asarray(sample, dtype=np.float64).reshape(len(sample), -1)
    measures = []
    for j in range(sample.shape[1]):
        column = sample[:, j]
        finite = column[np.isfinite(column)]
        low, high = sample_band(finite)
        never_negative = bool(finite.size) and float(finite.min()) >= 0.0
        whole = bool(finite.size) and bool(np.all(finite == np.round(finite)))
        measures.append(
            Measure(
                name=f"m{j}",
                unit="",
                lo=0.0 if never_negative else -UNBOUNDED,
                hi=UNBOUNDED,
                description="",
                normal=(max(low, 0.0) if never_negative else low, high),
                fiware=None,
                step=1.0 if whole and never_negative else None,
            )
        )
    return Transform.for_measures(measures)
