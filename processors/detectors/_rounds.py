"""How a batch is scored: its readings taken in rounds, each one vectorised step over many devices.

A detector's :meth:`~processors.detectors.base.Detector.step` sees each device at
most once per call. A pipeline cycle has at most one reading per device, so it is
one round. A batch with several readings of some device (a backlog, a gateway
flush, a recorded series) is taken in rounds: round ``r`` holds each device's
``r``-th reading, in timestamp order (or in arrival order, for a detector of late
deliveries), so every round is still one step over many devices.

Scoring copies the rows of the devices it touches out of the store and hands them
back staged (see :mod:`processors.detectors._transaction`); raw scores become clean
scores and alarm onsets through the detector's :class:`~processors.detectors._hysteresis.Hysteresis`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import NDArray

from processors.batch import ReadingBatch
from processors.detectors._hysteresis import ALARM
from processors.detectors._storage import Binned, State, Undo

if TYPE_CHECKING:
    from processors.detectors.base import Detector, Round


@dataclass(frozen=True, eq=False)
class Visit:
    """How a batch's rows are visited, worked out once per batch for every detector that scores it.

    A pipeline cycle has at most one reading per device, so it is scored in one
    round, in device order: ``order`` sorts the rows by device (``None`` if they
    already are), ``back`` undoes that, and ``span`` is the slice of state rows the
    batch covers when its devices are consecutive (one contiguous copy instead of
    a gather). A batch with several readings of some device (``one_round`` false:
    a gateway's backlog, a recorded series) is taken in rounds instead, and each
    detector orders those itself (by timestamp, or by arrival for late deliveries).
    """

    one_round: bool
    order: NDArray[np.intp] | None = None
    span: slice | None = None
    back: NDArray[np.intp] | None = None

    @classmethod
    def of(cls, device: NDArray[np.intp]) -> Visit:
        n = device.size
        order: NDArray[np.intp] | None = None
        ordered = device
        if n > 1 and not bool((device[1:] > device[:-1]).all()):
            order = np.argsort(device)
            ordered = device[order]
            if not bool((ordered[1:] != ordered[:-1]).all()):
                return cls(one_round=False)
        first = int(ordered[0]) if n else 0
        span = slice(first, first + n) if n and int(ordered[-1]) - first == n - 1 else None
        back: NDArray[np.intp] | None = None
        if order is not None:
            back = np.empty_like(order)
            back[order] = np.arange(n)
        return cls(one_round=True, order=order, span=span, back=back)


Staged = tuple[NDArray[np.intp], State, State]
"""(devices, their state rows, shared state) to keep on commit; devices distinct and ascending."""
Scoring = tuple[NDArray[np.float32], NDArray[np.bool_], NDArray[np.bool_], Staged | None, Undo | None]
"""Scores, alarm onsets and alarm states of every row of a batch, the state to commit, the in-place
changes' log."""


def score_in_rounds(
    detector: Detector, batch: ReadingBatch, visit: Visit | None, make_round: type[Round]
) -> Scoring:
    """The scores of every reading of ``batch`` by ``detector``, its state staged, not changed.

    ``make_round`` is :class:`~processors.detectors.base.Round`, handed in by the module that
    defines it (which imports this one).
    """
    n = len(batch)
    c = len(detector.columns)
    if n == 0:
        none = np.zeros((n, c), dtype=np.bool_)
        return np.zeros((n, c), dtype=np.float32), none, none.copy(), None, None
    if visit is None:
        visit = Visit.of(batch.device)
    if visit.one_round:
        return _one_round(detector, batch, visit, make_round)
    return _rounds(detector, batch, make_round)


def _rounds(detector: Detector, batch: ReadingBatch, make_round: type[Round]) -> Scoring:
    """A batch with several readings of some device, a round per device's ``r``-th reading."""
    store = detector._store
    n = len(batch)
    c = len(detector.columns)
    scores = np.zeros((n, c), dtype=np.float32)
    onsets = np.zeros((n, c), dtype=np.bool_)
    alarm = np.zeros((n, c), dtype=np.bool_)
    if detector.in_arrival_order:
        order = np.argsort(batch.device, kind="stable")
    else:
        order = np.lexsort((batch.ts_ms, batch.device))
    dev = batch.device[order]
    starts = np.flatnonzero(np.r_[True, dev[1:] != dev[:-1]])
    counts = np.diff(np.r_[starts, n])
    unique = dev[starts]
    store.grow(int(unique.max()) + 1, batch.table)
    local = {name: value[unique] for name, value in store.state.items()}
    shared = {name: value.copy() for name, value in store.shared.items()}
    group = np.repeat(np.arange(unique.size), counts)
    rank = np.arange(n) - np.repeat(starts, counts)
    by_round = np.argsort(rank, kind="stable")
    bounds = np.r_[0, np.cumsum(np.bincount(rank))]
    values = batch.values[:, list(detector.fields)] if detector.fields else np.zeros((n, 0))
    undo = detector._staging.begin()
    for r in range(bounds.size - 1):
        sorted_rows = by_round[bounds[r] : bounds[r + 1]]
        rows = order[sorted_rows]
        g = group[sorted_rows]
        # A round in which every device of the batch reads (all of them, in device
        # order) works on the staged rows themselves, not on a copy written back:
        # one long series is one device in thousands of rounds.
        whole = g.size == unique.size
        sub = local if whole else {name: value[g] for name, value in local.items()}
        devices = dev[sorted_rows]
        rnd = make_round(
            device=devices,
            ts_ms=batch.ts_ms[rows],
            received_ms=None if batch.received_ms is None else batch.received_ms[rows],
            x=values[rows],
            interval_ms=store.intervals[devices],
            interval_col=store.interval_col(devices),
            table=batch.table,
            binned=Binned(store.binned, devices, undo) if store.binned else None,
        )
        raw = detector.step(sub, shared, rnd)
        scores[rows], onsets[rows], sub[ALARM] = detector._hysteresis.settle(raw, sub[ALARM])
        alarm[rows] = sub[ALARM]
        if not whole:
            for name, value in sub.items():
                local[name][g] = value
    return scores, onsets, alarm, (unique, local, shared), undo


def _one_round(detector: Detector, batch: ReadingBatch, visit: Visit, make_round: type[Round]) -> Scoring:
    """A batch in one round: no grouping, and contiguous copies where it can."""
    store = detector._store
    order, span, back = visit.order, visit.span, visit.back
    n = len(batch)
    devices = batch.device if order is None else batch.device.take(order)
    store.grow(int(devices[-1]) + 1, batch.table)
    if span is not None:
        local = {name: value[span].copy() for name, value in store.state.items()}
    else:
        local = {name: value.take(devices, axis=0) for name, value in store.state.items()}
    shared = {name: value.copy() for name, value in store.shared.items()}
    fields = list(detector.fields)
    if not fields:
        values = np.zeros((n, 0))
    elif order is None:
        # Every field in declaration order (the common case) is one contiguous copy.
        values = batch.values.copy() if detector._every_field else batch.values[:, fields]
    else:
        values = batch.values.take(order, axis=0)
        if not detector._every_field:
            values = values[:, fields]
    undo = detector._staging.begin()
    rnd = make_round(
        device=devices,
        ts_ms=batch.ts_ms.copy() if order is None else batch.ts_ms.take(order),
        received_ms=None
        if batch.received_ms is None
        else (batch.received_ms.copy() if order is None else batch.received_ms.take(order)),
        x=values,
        interval_ms=store.intervals[span].copy() if span is not None else store.intervals.take(devices),
        interval_col=store.interval_col(devices),
        table=batch.table,
        binned=Binned(store.binned, devices, undo) if store.binned else None,
    )
    raw = detector.step(local, shared, rnd)
    clean, onset, local[ALARM] = detector._hysteresis.settle(raw, local[ALARM])
    state = local[ALARM]
    if back is None:
        scores, onsets, alarm = clean, onset, state.copy()
    else:
        scores, onsets, alarm = clean.take(back, axis=0), onset.take(back, axis=0), state.take(back, axis=0)
    return scores, onsets, alarm, (devices, local, shared), undo
