"""What a block of readings teaches the generic detector, and the baseline it is then judged by.

Readings are judged against the state at the start of their block
(:mod:`processors.detectors._generic_core`); what they teach is summed here as
exponentially weighted means over the block at once, and at the block's end the
baseline learned so far becomes the one the next block is judged by.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import NDArray

from processors.detectors._storage import State

if TYPE_CHECKING:
    from processors.detectors._generic_core import Setup, Tables

FloatArray = NDArray[np.float64]
BoolArray = NDArray[np.bool_]

WARMUP = 60
"""Readings learned before the detector judges (per device)."""
ACCEPT = 3_600.0
"""An alarm this many intervals long is a new normal: the baseline starts learning again."""
SHRINK = 0.1
"""Share of the covariance's off-diagonal taken away (shrinkage towards the diagonal)."""
RELATIVE_FLOOR = 1e-3
"""Smallest standard deviation believed for a linear measure, as a share of its level."""
WANDER = 1.0
"""Weight of the wander's covariance in the baseline's."""
NEVER = np.iinfo(np.int64).min


def learn(
    s: State,
    learn: BoolArray,
    learn_change: BoolArray,
    rates: FloatArray,
    filled: FloatArray,
    fast_before: FloatArray,
    change: FloatArray,
    judging: BoolArray,
) -> None:
    """What the readings teach: the baseline's moments (about the reference) and wander from those that
    look normal, the change evidence's usual size from the changes that are not themselves unusual.

    Each is an exponentially weighted mean (a plain mean over the first readings), worked out for the
    block at once: ``m_end = keep * m_0 + sum(w_k * x_k)``.
    """
    teach, teach_change = bool(learn.any()), bool(learn_change.any())
    if not teach and not teach_change:
        return
    f = filled.shape[2]
    # One column for the baseline, one per measure for the change's size.
    mask = np.concatenate([learn[:, :, None], learn_change], axis=2)
    counted = np.concatenate([s["learned"][:, None], s["change_n"]], axis=1)
    count = counted[:, None, :] + np.cumsum(mask, axis=1)
    rate = np.concatenate([rates[:, :, :1], np.broadcast_to(rates[:, :, 1:2], (*rates.shape[:2], f))], axis=2)
    a = np.where(mask, np.maximum(1.0 / np.maximum(count, 1.0), rate), 0.0)
    keep_each = 1.0 - a
    survive = np.cumprod(keep_each[:, ::-1, :], axis=1)[:, ::-1, :]
    keep = survive[:, 0, :]
    w = a.copy()
    w[:, :-1, :] *= survive[:, 1:, :]
    if teach:
        wb, kb = w[:, :, 0], keep[:, 0]
        ref = s["ref"]
        unseen = np.isnan(ref)
        c = filled - np.where(unseen, 0.0, ref)[:, None, :]
        if unseen.any():
            c = np.where(unseen[:, None, :], 0.0, c)
        s["s1"] = kb[:, None] * s["s1"] + (wb[:, None, :] @ c)[:, 0, :]
        s["s2"] = kb[:, None, None] * s["s2"] + (c * wb[:, :, None]).transpose(0, 2, 1) @ c
        if judging.any():
            strayed = fast_before - s["judge_mean"][:, None, :]
            wander = kb[:, None, None] * s["wander"] + (strayed * wb[:, :, None]).transpose(0, 2, 1) @ strayed
            s["wander"] = wander if judging.all() else np.where(judging[:, None, None], wander, s["wander"])
        s["learned"] = count[:, -1, 0]
    if teach_change:
        s["change_var"] = keep[:, 1:] * s["change_var"] + (w[:, :, 1:] * change * change).sum(axis=1)
        s["change_n"] = count[:, -1, 1:]


def restart(s: State, rows: BoolArray) -> None:
    """Forget the baseline of ``rows``: it learns again from scratch (the profiles stay)."""
    s["learned"] = np.where(rows, 0.0, s["learned"])
    s["s1"] = np.where(rows[:, None], 0.0, s["s1"])
    s["s2"] = np.where(rows[:, None, None], 0.0, s["s2"])
    s["wander"] = np.where(rows[:, None, None], 0.0, s["wander"])


def close_block(
    s: State,
    tables: Tables,
    rows: NDArray[np.intp],
    now: NDArray[np.int64],
    interval_ms: FloatArray,
    setup: Setup,
) -> None:
    """At a block boundary: accept a long alarm as the new normal, then take in what the block taught."""
    accept = np.zeros(s["seen"].shape, dtype=np.bool_)
    if s["active"][rows].any():
        accept[rows] = s["active"][rows] & (now[rows] - s["alarm_since"][rows] >= ACCEPT * interval_ms[rows])
    if accept.any():
        restart(s, accept)
        s["active"] = s["active"] & ~accept
        s["run"] = np.where(accept, 0, s["run"])
        s["alarm_since"] = np.where(accept, NEVER, s["alarm_since"])
        s["culprit"] = np.where(accept, -1, s["culprit"])
    tables.flush(rows)
    refresh(s, rows, setup)


def refresh(s: State, rows: NDArray[np.intp], setup: Setup) -> None:
    """The baseline learned so far becomes the one ``rows``' readings are judged by."""
    at: NDArray[np.intp] | slice = slice(None) if rows.size == s["seen"].shape[0] else rows
    raw_ref = s["ref"][at]
    unseen = np.isnan(raw_ref)
    ref = np.where(unseen, 0.0, raw_ref)
    mean = s["s1"][at]
    cov = s["s2"][at] - mean[:, :, None] * mean[:, None, :]
    cov += WANDER * s["wander"][at]
    variance = np.einsum("dff->df", cov).copy()  # einsum's diagonal is a view of cov
    floor = setup.transform.floor + np.where(setup.relative, RELATIVE_FLOOR * np.abs(ref + mean), 0.0)
    eye = setup.eye
    cov *= 1.0 - SHRINK
    cov = np.where(eye, np.maximum(variance, floor * floor)[:, :, None], cov)
    hidden = bool(unseen.any())
    if hidden:
        both = ~unseen[:, :, None] & ~unseen[:, None, :]
        cov = np.where(both, cov, eye.astype(np.float64))
    try:
        precision = np.linalg.inv(cov)
    except np.linalg.LinAlgError:
        precision = np.where(eye, 1.0 / np.einsum("dff->df", cov)[:, :, None], 0.0)
    if hidden:
        precision = np.where(both, precision, 0.0)
    s["judge_precision"][at] = precision
    s["judge_sd"][at] = np.sqrt(np.maximum(variance, floor * floor))
    s["judge_mean"][at] = ref + mean if not hidden else np.where(unseen, 0.0, ref + mean)
    s["judging"][at] = s["learned"][at] >= WARMUP
    s["judge_change_var"][at] = np.maximum(s["change_var"][at], 0.01 * floor * floor)
