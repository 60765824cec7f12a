"""A two-measure baseline learned only from calm readings, for the rule detectors that compare with it.

A pipe burst (pressure and flow) and a traffic incident (speed and occupancy) are
both judged against where the pair just was: an exponential smoothing of each
measure that follows the day's slow changes (demand, rush hours) but learns
nothing from a reading that already alarms, so an incident that lasts never
becomes the baseline it is judged against. Early on, while there are few
readings, the smoothing is a plain running mean (``1 / (n + 1)``), so the
baseline is usable after the detector's warm-up whatever the time constant.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from processors.detectors._robust import all_columns, and_rows, rate, uniform_column
from processors.detectors.base import Round, State, spec


def calm_spec() -> dict[str, tuple[np.dtype[Any], tuple[int, ...], Any]]:
    """The state the baseline needs: the pair's smoothed values and how many calm readings taught them."""
    return {"baseline": spec(np.float32, (2,), np.nan), "n": spec(np.uint16, (), 0)}


def warm(state: State, readings: int) -> NDArray[np.bool_]:
    """Rows whose baseline has learned from at least ``readings`` calm readings."""
    found: NDArray[np.bool_] = state["n"] >= readings
    return found


def learn_calm(
    state: State, r: Round, score: NDArray[np.float64], threshold: float, tau_ms: float, floor: float
) -> NDArray[np.bool_]:
    """Move the baseline towards the round's readings where their ``score`` is below ``threshold``.

    ``tau_ms`` is the smoothing's time constant and ``floor`` the smallest per-reading
    rate (so a device reporting rarely still follows). Returns which measures were
    reported (shape (rows, 2)).
    """
    base = state["baseline"].astype(np.float64)
    have = ~np.isnan(r.x)
    learn = and_rows(have, score < threshold)
    alpha = rate(r.interval_col, tau_ms, floor)[:, 0]
    # One rate for all rows once every device has learned long enough: a scalar broadcasts faster.
    alpha = uniform_column(np.maximum(alpha, 1.0 / (state["n"].astype(np.float64) + 1.0)))
    updated = np.where(np.isnan(base), r.x, base + alpha * (r.x - base))
    state["baseline"] = np.where(learn, updated, base).astype(np.float32)
    state["n"] = np.where(
        all_columns(learn), np.minimum(state["n"].astype(np.int64) + 1, 65535), state["n"]
    ).astype(np.uint16)
    return have
