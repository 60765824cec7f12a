"""The fleet's shape of the day: tells a device's wrong baseline from a wrong reading.

A device's time-of-day profile is learned from its own readings, so what its
first hours held stays in it for days: a probe drifting or stuck in its first
day, a gap whose hours were later seeded from a single reading, an hour of
smoke. When the device then reads true at those hours, it looks off, and a
detector judging it against its own profile alone raises a false alarm a day
after the fault (the main source of ``shift``'s false alarms on the evaluation
fleets).

The devices of a kind share the shape of the day up to an offset of their own:
the city warms and cools together, the rush hours come to every road. So the
fleet keeps, per field, the median shape of its devices' profiles (as many bins
as the profiles) and how far its devices' profiles usually stray from it at each
bin. A device's offset from the shape is the median over the day of its
profile's distance from it, so a few wrong hours do not move it, and it is
worked out only when needed, from the device's own bins: no state per device. A
reading its own profile calls off, which the fleet's shape plus the device's
offset expects far better, on a device whose profile is an outlier among its
peers' at this hour, is a wrong profile, not a wrong reading: :func:`wrong_profile`.
Where devices differ in shape (a busy road's rush against a quiet one's), the
stray is large and the test does not pass, so nothing changes there.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from processors.detectors._robust import Where
from processors.detectors.base import Binned, State

MEDIAN_TO_SIGMA = 1.4826
"""Median absolute deviation of a normal variable, to its standard deviation."""
SMOOTH = 0.2
"""How far each new reading of the shape moves it: a few readings' memory, against sampling noise."""
FITS = 2.0
"""A reading within this many of its noise sizes of the fleet's expectation is explained by it ..."""
BETTER = 2.0
"""... when it is this many times further from the device's own profile ..."""
OUTLIER = 3.0
"""... and that profile is this many strays from the fleet's expectation (an outlier among its peers)."""
Rebuilt = tuple[NDArray[np.bool_], NDArray[np.intp], NDArray[np.float32]]
"""Cells whose profile is wrong, the rows they are on, and those rows' offsets from the shape."""
EVERY_MS = 300_000
"""The shape is read off the profiles at most once per this much time: they move over days."""
ROWS = 129
"""Devices the shape is read from, at most: the median of a hundred is as robust as of a million."""


def shape_spec(bins: int, fields: int) -> State:
    """Shared state: the fleet's shape and the usual stray of profiles from it, per bin and field."""
    return {
        "shape": np.full((bins, fields), np.nan, dtype=np.float32),
        "stray": np.full((bins, fields), np.nan, dtype=np.float32),
        "taught_ms": np.full((), np.iinfo(np.int64).min, dtype=np.int64),
    }


def _profiles(binned: Binned, name: str, bins: int) -> NDArray[np.float32]:
    """Every bin of each row's profile, shape (bins, rows, fields)."""
    every = np.broadcast_to(np.arange(bins, dtype=np.intp)[:, None], (bins, binned.device.size))
    found: NDArray[np.float32] = binned.get(name, every)
    return found


def _offsets(shared: State, profile: NDArray[np.float32]) -> NDArray[np.float32]:
    """Each device's offset from the fleet's shape: the median over its known bins (rows, fields).

    Where the shape is not known yet it counts as zero, so a new fleet's first
    offsets are its devices' median levels and its first shape their common form.
    """
    shape = np.where(np.isnan(shared["shape"]), np.float32(0.0), shared["shape"])
    return _median_known(profile - shape[:, None, :])


def _median_known(values: NDArray[np.float32]) -> NDArray[np.float32]:
    """Median over the first axis of the values that are not NaN (NaN where none are).

    ``np.nanmedian`` over a short first axis works one cell at a time; sorting puts
    the NaNs last, so the median is the middle of each cell's known values.
    """
    ordered = np.sort(values, axis=0)
    known = (~np.isnan(values)).sum(axis=0)
    low = np.maximum((known - 1) // 2, 0)[None]
    high = (known // 2)[None]
    middle = (np.take_along_axis(ordered, low, axis=0)[0] + np.take_along_axis(ordered, high, axis=0)[0]) / 2
    result: NDArray[np.float32] = np.where(known > 0, middle, np.nan).astype(np.float32)
    return result


def at(
    shared: State, i0: NDArray[np.intp], i1: NDArray[np.intp], weight: NDArray[Any], name: str
) -> NDArray[np.float32]:
    """A shared (bins, fields) table linearly interpolated at each row's time of day."""
    table = shared[name]
    lo = table[i0]
    value: NDArray[np.float32] = table[i1] - lo
    value *= weight
    value += lo
    return value


def learn(shared: State, binned: Binned, name: str, ts_ms: NDArray[np.int64]) -> None:
    """Work out the fleet's shape and stray again from a sample of the round's devices' profiles.

    The shape at each bin is the median over the devices of their profile (table
    ``name``) less their offset, so devices whose profile is wrong at that hour do
    not move it; the stray is their spread about it. Both are read off the
    profiles as they are now (which remember days already), lightly smoothed
    against the sampling noise; a hundred devices tell them as well as a million.
    """
    t = int(np.max(ts_ms))
    if 0 <= t - int(shared["taught_ms"]) < EVERY_MS:
        return
    shared["taught_ms"] = np.array(t, dtype=np.int64)
    rows = np.arange(ts_ms.size)
    if rows.size > ROWS:
        rows = rows[np.linspace(0, rows.size - 1, ROWS).astype(np.intp)]
    profile = _profiles(binned.rows(rows), name, shared["shape"].shape[0])  # (bins, rows, fields)
    relative = profile - _offsets(shared, profile)[None]
    middle = _median_known(relative.transpose(1, 0, 2))  # (bins, fields)
    stray = _median_known(np.abs(relative - middle[:, None, :]).transpose(1, 0, 2)) * MEDIAN_TO_SIGMA
    for table, target in (("shape", middle), ("stray", stray)):
        old = shared[table]
        moved = np.where(np.isnan(old), target, old + SMOOTH * (target - old))
        shared[table] = np.where(np.isnan(target), old, moved).astype(np.float32)


def wrong_profile(
    shared: State,
    binned: Binned,
    name: str,
    where: Where,
    y: NDArray[np.floating[Any]],
    seasonal: NDArray[np.floating[Any]],
    scale: NDArray[np.floating[Any]],
    suspect: NDArray[np.bool_],
) -> Rebuilt:
    """Suspect readings the fleet's shape explains far better than the device's own profile does.

    ``y`` is the reading net of what the whole fleet does now (the common move),
    ``seasonal`` the device's profile there. Returns the cells found, the rows they
    are on, and those rows' offsets (to rebuild their profile from the shape).
    """
    rows = np.flatnonzero(suspect.any(axis=1))
    found = np.zeros_like(suspect)
    i0, i1, weight = where.bins.i0, where.bins.i1, where.bins.weight
    level = _offsets(shared, _profiles(binned.rows(rows), name, shared["shape"].shape[0]))
    expected = at(shared, i0[rows], i1[rows], weight[rows], "shape") + level
    stray = at(shared, i0[rows], i1[rows], weight[rows], "stray")
    with np.errstate(invalid="ignore"):
        fleet = np.abs(y[rows] - expected)
        own = np.abs(y[rows] - seasonal[rows])
        outlier = np.abs(seasonal[rows] - expected) >= OUTLIER * stray
        explained = (fleet <= FITS * np.fmax(stray, scale[rows])) & (own >= BETTER * fleet)
        found[rows] = suspect[rows] & outlier & explained
    return found, rows, level
