"""Numerical pieces the statistical detectors share: scales, transforms, time-of-day bins.

Everything here is vectorised over a round of readings (rows) and a detector's
fields (columns).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property, lru_cache
from typing import Any

import numpy as np
from numpy.typing import NDArray

from processors.detectors.base import Binned
from processors.kinds import Measure, SensorKind

FloatArray = NDArray[np.float64]

MAD_TO_SIGMA = 1.2533
"""E|x| of a normal variable is sigma * sqrt(2/pi): a mean absolute deviation times this is sigma."""
DAY_MS = 86_400_000


def z_score(z: FloatArray, z_alarm: float) -> FloatArray:
    """Map a robust z statistic to [0, 1] so that ``z_alarm`` lands on 0.5 and ``2 z_alarm`` on 1."""
    score: FloatArray = np.asarray(np.abs(z))
    score /= 2.0 * z_alarm  # never negative: only the cap at 1 is needed
    np.minimum(score, 1.0, out=score)
    return score


def rate(interval_ms: FloatArray, tau_ms: float, floor: float = 0.0) -> FloatArray:
    """Per-reading learning rate for a time constant ``tau_ms``, so memory is in time, not readings.

    ``interval_ms``: each row's reporting interval, or :attr:`~.base.Round.interval_col`;
    the rates are a column either way.
    """
    column = interval_ms[:, None] if interval_ms.ndim == 1 else interval_ms
    alpha: FloatArray = np.minimum(np.maximum(column / tau_ms, floor), 1.0).astype(np.float32)
    return alpha


def uniform_column(values: NDArray[Any]) -> NDArray[Any]:
    """``values[:, None]``, or its first row alone (shape (1, 1)) when every row holds the same value.

    A column broadcast over a round's few fields goes a few elements at a time; one value
    goes as a scalar, several times faster, with the same results.
    """
    if values.size > 1 and values.min() == values.max():
        return values[:1, None]
    return values[:, None]


def and_rows(mask: NDArray[np.bool_], rows: NDArray[np.bool_]) -> NDArray[np.bool_]:
    """``mask & rows[:, None]`` as a new array: quicker when every row is set (the usual round) or none is."""
    if rows.all():
        return mask.copy()
    if not rows.any():
        return np.zeros_like(mask)
    found: NDArray[np.bool_] = mask & rows[:, None]
    return found


class Tiled:
    """Per-field constants as (rows, fields) arrays, for elementwise work with a round's readings.

    numpy broadcasts a (fields,) array over a narrow (rows, fields) one a few elements
    at a time, several times slower than it combines two arrays of one shape; a round's
    rows take a prefix of one tiled copy.
    """

    def __init__(self, values: NDArray[Any]) -> None:
        self.values = values
        self._tiled = np.empty((0, values.size), dtype=values.dtype)

    def __call__(self, rows: int) -> NDArray[Any]:
        if self._tiled.shape[0] < rows:
            self._tiled = np.tile(self.values, (max(rows, 2 * self._tiled.shape[0]), 1))
            self._tiled.flags.writeable = False
        return self._tiled[:rows]


@dataclass(frozen=True)
class Transform:
    """Makes each measure's noise roughly the same size whatever its level.

    Concentrations and flows vary by factors, so they are compared on a log scale
    (``log(x + c)``, with ``c`` a tenth of the normal band above its floor: sensors
    add a little absolute noise to their relative noise, and ``c`` keeps readings
    near zero from looking wildly noisy);
    counts are Poisson-like, so they get the Anscombe square root; the rest stays
    linear. A measure can say which it is with ``measure(..., scale=...)``; otherwise
    the shape of its normal band decides.
    """

    mode: NDArray[np.int8]
    """0 linear, 1 log, 2 count (per field)."""
    offset: FloatArray
    floor: FloatArray
    """Smallest noise scale believed, in transformed units (no division by a flat line)."""

    LINEAR: int = 0
    LOG: int = 1
    COUNT: int = 2

    @classmethod
    def for_fields(cls, kind: SensorKind, fields: tuple[int, ...]) -> Transform:
        return cls.for_measures([kind.measures[i] for i in fields])

    @classmethod
    def for_measures(cls, measures: Sequence[Measure]) -> Transform:
        modes, offsets, floors = [], [], []
        for m in measures:
            mode, offset, floor = _choose(m)
            modes.append(mode)
            offsets.append(offset)
            floors.append(floor)
        return cls(np.array(modes, dtype=np.int8), np.array(offsets), np.array(floors))

    @classmethod
    def linear(cls, fields: int) -> Transform:
        """No transform, and no noise floor but a share of each measure's level."""
        return cls(np.zeros(fields, dtype=np.int8), np.zeros(fields), np.zeros(fields))

    def exact(self, x: FloatArray) -> FloatArray:
        """The transformed readings in float64 (for statistics that need every digit), shape kept."""
        y = np.array(x, dtype=np.float64)
        with np.errstate(invalid="ignore", divide="ignore"):
            log = self.mode == self.LOG
            if log.any():
                y[..., log] = np.log(np.maximum(y[..., log] + self.offset[log], 1e-12))
            count = self.mode == self.COUNT
            if count.any():
                y[..., count] = 2.0 * np.sqrt(np.maximum(y[..., count], 0.0) + 0.375)
        return y

    def __call__(self, x: FloatArray) -> NDArray[np.float32]:
        """The transformed readings, in float32 (ample for noise measured in per cent)."""
        y = x.astype(np.float32)
        for mode, function in ((self.LOG, self._log), (self.COUNT, self._count)):
            chosen, every = self._columns[mode]
            if every:  # one mode for all columns: no column gathering and scattering
                return function(y, chosen)
            if mode == self.COUNT and chosen.size == 1:
                # One count column, in place of a gathered copy: its arithmetic is exact
                # (a square root is correctly rounded), so it does not matter how numpy loops.
                column = int(chosen[0])
                y[:, column] = function(y[:, column], chosen)
            elif chosen.size:
                y[:, chosen] = function(y[:, chosen], chosen)  # reads a copy of the columns first
        return y

    @cached_property
    def _columns(self) -> dict[int, tuple[NDArray[np.intp], bool]]:
        """The columns of each mode, and whether they are all of them."""
        found: dict[int, tuple[NDArray[np.intp], bool]] = {}
        for mode in (self.LOG, self.COUNT):
            chosen = np.flatnonzero(self.mode == mode)
            found[mode] = (chosen, chosen.size == self.mode.size > 0)
        return found

    def _log(self, x: NDArray[np.float32], columns: NDArray[np.intp]) -> NDArray[np.float32]:
        with np.errstate(invalid="ignore", divide="ignore"):
            shifted = x + self._log_offset(x.shape[0])
            logged: NDArray[np.float32] = np.log(np.maximum(shifted, 1e-12, out=shifted), out=shifted)
        return logged

    @cached_property
    def _log_offset(self) -> Tiled:
        """The log columns' offsets in float32 (``_log`` is always given those columns), tiled."""
        chosen, _ = self._columns[self.LOG]
        return Tiled(self.offset[chosen].astype(np.float32))

    def _count(self, x: NDArray[np.float32], columns: NDArray[np.intp]) -> NDArray[np.float32]:
        with np.errstate(invalid="ignore"):
            counted: NDArray[np.float32] = (np.sqrt(np.maximum(x, 0.0) + 0.375) * 2.0).astype(np.float32)
        return counted


def _choose(m: Measure) -> tuple[int, float, float]:
    lo_band, hi_band = m.normal
    width = max(hi_band - lo_band, 1e-9)
    scale = m.scale
    if scale is None:
        if m.step == 1 and m.lo >= 0:
            scale = "count"
        elif m.lo >= 0 and lo_band > 0 and hi_band >= 4.0 * lo_band:
            scale = "log"
        else:
            scale = "linear"
    if scale == "count":
        return 2, 0.0, 0.05
    if scale == "log":
        # Declared log: the noise is relative, so only a token offset. Judged from the
        # band: sensors add absolute noise too, which a tenth of the band absorbs.
        offset = 1e-3 * hi_band if m.scale == "log" else max(lo_band, 0.0) + 0.1 * width
        return 1, max(offset, 1e-9), 1e-3
    return 0, 0.0, 1e-3 * width


def time_of_day_bins(
    ts_ms: NDArray[np.int64], bins: int, period_ms: int = DAY_MS
) -> tuple[NDArray[np.intp], NDArray[np.intp], FloatArray]:
    """Neighbouring bins and the weight of the second, for linear interpolation around the clock.

    Bin ``k`` is centred on ``(k + 0.5) / bins`` of the (UTC) day, or of another
    ``period_ms`` (a week: the epoch began on a Thursday, and that is bin 0's day):
    the profile is learned, so which clock it uses does not matter, only that it is
    the same one.
    """
    position = (ts_ms % period_ms).astype(np.float64) / period_ms * bins - 0.5
    left = np.floor(position)
    weight = position - left
    i0 = left.astype(np.intp) % bins
    i1 = (i0 + 1) % bins
    return i0, i1, weight


def at_bounds(kind: SensorKind, fields: tuple[int, ...]) -> tuple[FloatArray, FloatArray]:
    """Each field's physical limits: a reading sitting on one is censored (humidity pinned at 100 %)."""
    lo = np.array([kind.measures[i].lo for i in fields], dtype=np.float64)
    hi = np.array([kind.measures[i].hi for i in fields], dtype=np.float64)
    return lo, hi


@dataclass(frozen=True, eq=False)
class Bins:
    """Where a round's readings fall in a time-of-day profile: the two bins around each and its weight."""

    i0: NDArray[np.intp]
    i1: NDArray[np.intp]
    weight: NDArray[np.float32]
    """The second bin's share, shape (rows, 1)."""
    index: NDArray[np.intp]
    """``pair(i0, i1)``: both bins, shape (2, rows), as :class:`Binned` reads them."""


@dataclass(frozen=True, eq=False)
class Where:
    """The bins a profile's value came from, and their contents (for :meth:`Profile.learn`)."""

    bins: Bins
    cells: NDArray[Any]
    """The two bins' contents as read, shape (2, rows, fields)."""


class Profile:
    """A per-device, per-field time-of-day profile: ``bins`` values, linearly interpolated.

    Kept in a detector's binned tables as (devices, bins, fields): a reading reads
    and moves the two bins around its time of day and nothing else. Each bin
    remembers about ``days`` days of its own hour.
    """

    def __init__(self, bins: int, days: float) -> None:
        self.bins = bins
        self.days = days

    def locate(self, ts_ms: NDArray[np.int64]) -> Bins:
        """The bins around each timestamp (shared by the profiles of one round that have as many bins)."""
        i0, i1, w = time_of_day_bins(ts_ms, self.bins)
        return Bins(i0, i1, w[:, None].astype(np.float32), pair(i0, i1))

    def at(
        self, binned: Binned, name: str, ts_ms: NDArray[np.int64], bins: Bins | None = None
    ) -> tuple[FloatArray, Where]:
        """The profile's value for each row and field, and where it came from (for :meth:`learn`).

        ``bins``: the round's :meth:`locate`, when several profiles of ``self.bins`` bins read it.
        """
        if bins is None:
            bins = self.locate(ts_ms)
        assert bins.index.shape[1] == ts_ms.shape[0]
        cells = binned.get(name, bins.index)
        p0, p1 = cells[0], cells[1]
        # p0 + (p1 - p0) * weight, or the one bin known, computed in place.
        value = p1 - p0
        value *= bins.weight
        value += p0
        np.copyto(value, p0, where=np.isnan(p1))
        np.copyto(value, p1, where=np.isnan(p0))
        return value, Where(bins, cells)

    def learn(
        self,
        binned: Binned,
        name: str,
        where: Where,
        target: NDArray[np.floating[Any]],
        mask: NDArray[np.bool_],
        interval_ms: FloatArray,
    ) -> None:
        """Move the two bins around each row towards ``target``, where ``mask``.

        The bins must not have been written since :meth:`at` read them (their old
        contents go to the undo log as read).
        """
        if not mask.any():
            return
        gamma = self.gamma(interval_ms)
        weight = where.bins.weight
        # Both bins in one pass: the same arithmetic as bin by bin, in fewer, larger calls.
        p = where.cells
        share = pair(1.0 - weight, weight)
        # p + gamma * share * (target - p) where known, target where not, p where not masked;
        # in place, in the dtype numpy would give the expression.
        moved = target - p
        moved *= gamma * share
        moved += p
        unknown = np.isnan(p)
        if unknown.any():
            np.copyto(moved, target, where=unknown)
        if not mask.all():
            np.copyto(moved, p, where=~mask)
        binned.set(name, where.bins.index, moved, old=p)

    def gamma(self, interval_ms: FloatArray) -> NDArray[np.float32]:
        """Each row's learning rate, shape (rows, 1) (or (1, 1) given :attr:`~.base.Round.interval_col`
        of one interval): a bin remembers ``days`` days of its hour."""
        column = interval_ms[:, None] if interval_ms.ndim == 1 else interval_ms
        readings_per_bin_day = DAY_MS / self.bins / column
        gamma: NDArray[np.float32] = np.minimum(1.0 / (self.days * readings_per_bin_day), 0.5).astype(
            np.float32
        )
        return gamma


def pair(a: NDArray[Any], b: NDArray[Any]) -> NDArray[Any]:
    """``np.stack([a, b])`` without its Python overhead (it shows at a few readings per batch)."""
    stacked: NDArray[Any] = np.concatenate((a[None], b[None]))
    return stacked


def nan_to_zero(x: NDArray[np.floating[Any]]) -> NDArray[np.floating[Any]]:
    """``np.nan_to_num`` of a float array (NaN to 0, infinities to the largest finite), as a new array."""
    return clean_in_place(x.copy())


def clean_in_place(x: NDArray[np.floating[Any]]) -> NDArray[np.floating[Any]]:
    """:func:`nan_to_zero` of an array the caller owns, written over it; returns it.

    Usually every value is finite already, and one check finds that out.
    """
    finite = np.isfinite(x)
    if finite.all():
        return x
    nan = np.isnan(x)
    np.copyto(x, 0, where=nan)
    finite |= nan
    if not finite.all():
        big = _LARGEST.get(x.dtype)
        if big is None:
            big = _LARGEST[x.dtype] = np.finfo(x.dtype).max
        np.maximum(x, -big, out=x)
        np.minimum(x, big, out=x)
    return x


def column_counts(mask: NDArray[np.bool_]) -> NDArray[np.int64]:
    """``mask.sum(axis=0)`` of a (rows, columns) mask, a column at a time.

    numpy reduces the first axis of a narrow array (three measures) one row at a
    time, several times slower than counting each column in one call.
    """
    counts = np.empty(mask.shape[1], dtype=np.int64)
    for j in range(mask.shape[1]):
        counts[j] = np.count_nonzero(mask[:, j])
    return counts


def column_sums(values: NDArray[np.floating[Any]]) -> NDArray[np.floating[Any]]:
    """``values.sum(axis=0)`` of a (rows, columns) array, with the same result to the bit.

    numpy sums the first axis of a C-ordered array row after row, in the array's
    dtype; a running sum along the transposed (contiguous) rows adds in that very
    order, without the slow row-by-row reduction.
    """
    if values.shape[0] == 0:
        empty: NDArray[np.floating[Any]] = values.sum(axis=0)
        return empty
    running: NDArray[np.floating[Any]] = np.cumsum(np.ascontiguousarray(values.T), axis=1)
    return running[:, -1].copy()


def any_column(mask: NDArray[np.bool_]) -> NDArray[np.bool_]:
    """``mask.any(axis=1)`` of a (rows, columns) mask of a few columns, one column at a time (faster)."""
    if mask.shape[1] == 0:
        return np.zeros(mask.shape[0], dtype=np.bool_)
    found: NDArray[np.bool_] = mask[:, 0].copy()
    for j in range(1, mask.shape[1]):
        found |= mask[:, j]
    return found


def all_columns(mask: NDArray[np.bool_]) -> NDArray[np.bool_]:
    """``mask.all(axis=1)`` of a (rows, columns) mask of a few columns, one column at a time (faster)."""
    if mask.shape[1] == 0:
        return np.ones(mask.shape[0], dtype=np.bool_)
    found: NDArray[np.bool_] = mask[:, 0].copy()
    for j in range(1, mask.shape[1]):
        found &= mask[:, j]
    return found


_LARGEST: dict[np.dtype[Any], Any] = {}
"""The largest finite value of each float dtype (``np.finfo`` is slow to ask at every call)."""


def median3(
    a: NDArray[np.floating[Any]], b: NDArray[np.floating[Any]], c: NDArray[np.floating[Any]]
) -> NDArray[np.floating[Any]]:
    """Element-wise median of three arrays (NaN if any is NaN), without sorting."""
    if not (a.dtype == b.dtype == c.dtype):
        mixed: NDArray[np.floating[Any]] = np.maximum(np.minimum(a, b), np.minimum(np.maximum(a, b), c))
        return mixed
    low = np.minimum(a, b)
    high = np.maximum(a, b)
    np.minimum(high, c, out=high)
    result: NDArray[np.floating[Any]] = np.maximum(low, high, out=low)
    return result


SAMPLE = 257
"""Rows a fleet statistic is computed from, at most."""


def _thinned(
    values: NDArray[np.floating[Any]], mask: NDArray[np.bool_]
) -> tuple[NDArray[np.floating[Any]], NDArray[np.bool_]]:
    """A large round thinned to :data:`SAMPLE` evenly spaced rows, for fleet statistics that need no more."""
    rows = values.shape[0]
    if rows <= SAMPLE:
        return values, mask
    keep = _sample_rows(rows)
    return values.take(keep, axis=0), mask.take(keep, axis=0)


@lru_cache(maxsize=64)
def _sample_rows(rows: int) -> NDArray[np.intp]:
    """The :data:`SAMPLE` evenly spaced rows of a round of ``rows`` (a fleet's rounds repeat their size)."""
    keep: NDArray[np.intp] = np.linspace(0, rows - 1, SAMPLE).astype(np.intp)
    keep.flags.writeable = False
    return keep


def column_medians(values: NDArray[np.floating[Any]], mask: NDArray[np.bool_]) -> NDArray[np.float64]:
    """Median of each column over its masked rows; a large round is thinned to 257 evenly spaced rows.

    The fleet's shared movement only needs a robust centre, not an exact one, and
    a median of a few hundred devices is as robust as one of a hundred thousand.
    """
    values, mask = _thinned(values, mask)
    if mask.all():
        rows = values.shape[0]
        if rows % 2 == 0:
            median: NDArray[np.float64] = np.median(values, axis=0).astype(np.float64)
            return median
        # What np.median does for an odd count (a thinned round always is), without its
        # overhead: the middle of a partition, or NaN where the column holds one.
        part = np.partition(values, [rows // 2, -1], axis=0)
        median = part[rows // 2].astype(np.float64)
        last = part[-1]
        nan = np.isnan(last)
        if nan.any():
            median[nan] = last[nan]
        return median
    out = np.zeros(values.shape[1])
    for j in np.flatnonzero(mask.any(axis=0)).tolist():
        out[j] = np.median(values[mask[:, j], j])
    return out


def column_quantile(
    values: NDArray[np.floating[Any]], mask: NDArray[np.bool_], q: float
) -> NDArray[np.float64]:
    """The ``q`` quantile (nearest rank) of each column over its masked rows, thinned as above."""
    values, mask = _thinned(values, mask)
    ordered = np.sort(np.where(mask, values, np.inf), axis=0)
    counts = column_counts(mask)
    rank = np.minimum(np.maximum(np.round(q * (counts - 1)).astype(np.intp), 0), max(values.shape[0] - 1, 0))
    picked = np.take_along_axis(ordered, rank[None, :], axis=0)[0].astype(np.float64)
    result: NDArray[np.float64] = np.where(counts > 0, picked, np.nan)
    return result
