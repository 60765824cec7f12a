"""Hourly means per device, for the standards that are defined on them (AQI, WHO guidelines).

Each device keeps the running sum and count of the current clock hour and a ring
of the previous complete hours' means (newest first, NaN for an hour without
data). A reading of a later hour closes the current one and shifts the ring; a
reading of an hour already closed (a late delivery) is not counted.

Indices are published hourly (AirNow, the Vietnam Environment Administration), so
the detectors recompute them only when an hour closes, from complete hours, and
score every reading of the new hour with that value: the costly part runs once
per device and hour, not once per reading.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from numpy.typing import NDArray

from processors.detectors._robust import nan_to_zero
from processors.detectors.base import State

HOUR_MS = 3_600_000


def hourly_spec(
    pollutants: int, hours: int
) -> dict[str, tuple[np.dtype[np.generic], tuple[int, ...], object]]:
    return {
        "latest": (np.dtype(np.float32), (pollutants,), 0.0),
        "hours": (np.dtype(np.float32), (pollutants, hours), np.nan),
        "hour_sum": (np.dtype(np.float32), (pollutants,), 0.0),
        "hour_count": (np.dtype(np.uint16), (pollutants,), 0),
        "hour": (np.dtype(np.int64), (), -1),
    }


def advance(
    state: State, ts_ms: NDArray[np.int64], values: NDArray[np.float64]
) -> tuple[NDArray[np.bool_], NDArray[np.float64]]:
    """Add a round's readings (one per device); return which rows closed an hour, and their ring.

    The ring (only of the rows that closed an hour) has shape (closing rows,
    pollutants, hours): complete hours, newest first.
    """
    hour = ts_ms // HOUR_MS
    current = state["hour"]
    ahead = hour - current
    moving = (current >= 0) & (ahead > 0)
    total = state["hour_sum"]
    count = state["hour_count"]
    ring = np.zeros((0, *state["hours"].shape[1:]))
    if moving.any():
        rows = np.flatnonzero(moving)
        counted = count[rows].astype(np.float64)
        closed = np.where(counted > 0, total[rows] / np.maximum(counted, 1.0), np.nan)
        old = state["hours"][rows].astype(np.float64)
        hours = old.shape[2]
        gap = np.minimum(ahead[rows] - 1, hours)[:, None, None]
        position = np.arange(hours)[None, None, :]
        # Hour 0 is the one just closed, then `gap` empty hours, then the old ring shifted along.
        source = np.minimum(np.maximum(position - 1 - gap, 0), hours - 1)
        shifted = np.take_along_axis(old, np.broadcast_to(source, old.shape), axis=2)
        ring = np.where(position == 0, closed[:, :, None], np.where(position <= gap, np.nan, shifted))
        state["hours"][rows] = ring.astype(np.float32)
        total[rows] = 0.0
        count[rows] = 0
    in_hour = (ahead >= 0) | (current < 0)
    have = ~np.isnan(values) & in_hour[:, None]
    state["hour_sum"] = (total + np.where(have, values, 0.0)).astype(np.float32)
    state["hour_count"] = np.minimum(count + have, 65535).astype(np.uint16)
    state["hour"] = np.where(in_hour, np.maximum(current, hour), current)
    return moving, ring


def mean_of(hours: NDArray[np.float64], span: int, minimum: int) -> NDArray[np.float64]:
    """Mean of the newest ``span`` hourly means, where at least ``minimum`` are present."""
    window = hours[..., :span]
    present = (~np.isnan(window)).sum(axis=-1)
    with np.errstate(invalid="ignore"):
        mean = np.nansum(window, axis=-1) / np.maximum(present, 1)
    result: NDArray[np.float64] = np.where(present >= minimum, mean, np.nan)
    return result


def hourly_scores(
    state: State,
    ts_ms: NDArray[np.int64],
    values: NDArray[np.float64],
    compute: Callable[[NDArray[np.float64]], NDArray[np.float64]],
) -> NDArray[np.float64]:
    """Advance the hours and score each reading with its device's latest hourly value.

    ``compute`` maps the ring of the rows that just closed an hour (rows,
    pollutants, hours) to their new scores (rows, pollutants); other rows keep the
    score their device's current hour started with.
    """
    closed, ring = advance(state, ts_ms, values)
    if ring.shape[0]:
        state["latest"][closed] = compute(ring).astype(np.float32)
    scores: NDArray[np.float64] = np.where(np.isnan(values), np.nan, nan_to_zero(state["latest"]))
    return scores
