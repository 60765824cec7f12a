"""What a detector is: per-device state in numpy arrays, updated from batches, scores in [0, 1].

A detector keeps one row of state per device of its kind (``n_devices`` x its
columns x whatever each statistic needs) and scores every reading of a
:class:`~processors.batch.ReadingBatch` in one vectorised pass. Three rules hold for
all of them:

- **Scores are evidence, not decisions.** Each detector maps its statistic to a
  score in [0, 1], 1 being certain; the caller's threshold (0.5 by default) turns
  scores into alarms. Scores are designed so 0.5 is where the detector is confident.
- **No learning from what looks wrong.** A reading that scores at or above the
  threshold does not update the baseline it was judged against; a reading older
  than the device's newest (a late delivery) is scored but never learned.
- **Nothing changes until it is committed.** :meth:`Detector.score` works on copies
  of the rows it touches and returns them staged; :meth:`Detector.commit` writes them
  back. Large per-device tables (time-of-day profiles, of which a reading touches
  two bins) are updated in place instead, with an undo log that is replayed if the
  scores are never committed: the next :meth:`Detector.score` first rolls back any
  scoring that was left uncommitted. The pipeline commits only after the cycle is
  stored, so a retried cycle is scored against exactly the same state and nothing
  is learned twice.

Several readings of one device in a batch (a backlog, a gateway flush) are
processed in timestamp order in *rounds*: round ``r`` holds each device's ``r``-th
reading, so every round is still one vectorised step over many devices.

Detectors plug in like kinds and sinks: a module in this package that defines
``DETECTOR`` (a :class:`Detector` subclass) is a detector.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, ClassVar

import numpy as np
from numpy.typing import NDArray

from processors.batch import ReadingBatch
from processors.kinds import SensorKind
from processors.registry import DeviceTable

FloatArray = NDArray[np.float64]
State = dict[str, NDArray[Any]]
DEVICE_COLUMN = "device"
"""The column name of detectors that judge a whole device or reading, not one measure."""
REARM = 0.5
"""An alarm ends when the score falls below this share of the threshold (hysteresis)."""


class Category(StrEnum):
    STATISTICAL = "statistical"
    """The data does not look like this sensor's own past."""
    HEALTH = "health"
    """The sensor or its link misbehaves: stuck, silent, impossible jumps, bad clock, late delivery."""
    RULE = "rule"
    """Domain knowledge says something is wrong in the city: a burst main, a fire, a dark street."""
    STANDARD = "standard"
    """A published limit is exceeded (AQI, WHO, drinking water): true, but not a data fault."""
    FORECAST = "forecast"
    """Something will need attention soon (a bin about to be full)."""


@dataclass(frozen=True)
class DetectorConfig:
    """Settings every detector may read; one instance per pipeline, from ``Settings``."""

    threshold: float = 0.5
    silence_intervals: float = 2.5
    """A device is silent after this many of its reporting intervals without a reading."""
    clock_tolerance_ms: int = 40_000
    """Clock error tolerated beyond a device's usual delay before it is called skewed."""
    full_horizon_ms: int = 2 * 3_600_000
    """A bin predicted to be full within this time raises a forecast."""
    peer_devices: int = 10
    """Devices of a kind needed before their shared movement is taken out of each one's residual."""


Undo = list[tuple[str, NDArray[np.intp], NDArray[Any]]]
"""In-place changes to binned tables: (table, flat (device, bin) cells, their old contents)."""


class Binned:
    """Large per-device tables of the round's devices, read and written in place with an undo log.

    A table of shape (devices, bins, ...) is addressed as one row per (device, bin)
    cell, ``device * bins + bin``: a round reads and writes its cells with
    ``np.take`` and ``np.put`` on whole rows, several times faster than indexing by
    (device, bin) pairs.
    """

    __slots__ = ("_arrays", "_flats", "_undo", "device")

    def __init__(self, arrays: State, device: NDArray[np.intp], undo: Undo) -> None:
        self._arrays = arrays
        self._undo = undo
        self.device = device
        self._flats: dict[tuple[int, int], tuple[NDArray[np.intp], NDArray[np.intp]]] = {}

    def get(self, name: str, index: NDArray[np.intp]) -> NDArray[Any]:
        """``table[device[i], index[..., i]]`` for each row ``i`` of the round.

        ``index`` may hold several bins per row, shape (k, rows): the result is then (k, rows, ...).
        """
        table = self._arrays[name]
        found: NDArray[Any] = cells(table).take(self._flat(table, index), axis=0)
        return found.reshape(*index.shape, *table.shape[2:])

    def set(
        self, name: str, index: NDArray[np.intp], values: NDArray[Any], old: NDArray[Any] | None = None
    ) -> None:
        """Write ``values`` where :meth:`get` reads; of repeated cells, the last write stays.

        ``old``: the cells' contents as :meth:`get` returned them for this ``index``, when
        the caller has them and nothing wrote them since (the undo log keeps them, read
        again otherwise).
        """
        table = self._arrays[name]
        rows = cells(table)
        flat = self._flat(table, index).reshape(-1)
        if old is None:
            before = rows.take(flat, axis=0)
        else:
            before = np.asarray(old, dtype=table.dtype).reshape(flat.size, rows.shape[1])
        self._undo.append((name, flat, before))
        shape = (*index.shape, *table.shape[2:])
        put_cells(rows, flat, np.broadcast_to(np.asarray(values, dtype=table.dtype), shape))

    def rows(self, rows: NDArray[np.intp]) -> Binned:
        """The same tables for only some of the round's rows (same undo log): reads cost what they read."""
        return Binned(self._arrays, self.device[rows], self._undo)

    def _flat(self, table: NDArray[Any], index: NDArray[np.intp]) -> NDArray[np.intp]:
        """The cells of ``index`` in a table of ``table.shape[1]`` bins; worked out once per index array
        (a round reads and writes the same bins of several tables: ``index`` is not changed in place)."""
        key = (id(index), table.shape[1])
        known = self._flats.get(key)
        if known is not None and known[0] is index:
            return known[1]
        flat: NDArray[np.intp] = self.device * table.shape[1] + index
        self._flats[key] = (index, flat)
        return flat


def cells(table: NDArray[Any]) -> NDArray[Any]:
    """A (devices, bins, ...) table as a view of (devices x bins) rows, one per cell."""
    assert table.flags.c_contiguous, "binned tables are allocated contiguous, so this is a view"
    return table.reshape(table.shape[0] * table.shape[1], -1)


_FEW_ROWS = 256


def put_rows(table: NDArray[Any], rows: NDArray[np.intp], values: NDArray[Any]) -> None:
    """``table[rows] = values`` for distinct rows of a per-device array, with one ``np.put``."""
    if rows.size < _FEW_ROWS or table.size == 0 or not table.flags.c_contiguous:
        table[rows] = values
        return
    put_cells(table.reshape(table.shape[0], -1), rows, values)


def put_cells(rows: NDArray[Any], flat: NDArray[np.intp], values: NDArray[Any]) -> None:
    """``rows[flat] = values`` for distinct cells, each row written as one opaque element."""
    if flat.size < _FEW_ROWS:  # plain indexing costs less than setting up the opaque view
        rows[flat] = np.reshape(values, (flat.size, rows.shape[1]))
        return
    width = rows.shape[1] * rows.itemsize
    packed = np.ascontiguousarray(values, dtype=rows.dtype).reshape(flat.size, rows.shape[1])
    np.put(rows.view(np.dtype((np.void, width))).reshape(-1), flat, packed.view(np.dtype((np.void, width))))


@dataclass(frozen=True, eq=False)
class Round:
    """The readings of one round: each device at most once, in the detector's field order."""

    device: NDArray[np.intp]
    ts_ms: NDArray[np.int64]
    received_ms: NDArray[np.int64] | None
    x: FloatArray
    """Values of the detector's fields, shape (m, len(fields)); NaN = not reported."""
    interval_ms: FloatArray
    """Each device's reporting interval."""
    interval_col: FloatArray
    """The same as a column to broadcast over fields: (rows, 1), or (1, 1) when all devices of the
    kind report at one interval (it broadcasts as a scalar, several times faster)."""
    table: DeviceTable
    binned: Binned | None = None


@dataclass(eq=False)
class Scored:
    """Scores of a batch (or of a clock check), plus the state to commit if the batch is stored."""

    detector: Detector
    table: DeviceTable
    device: NDArray[np.intp]
    ts_ms: NDArray[np.int64]
    scores: NDArray[np.float32]
    """Shape (rows, len(columns)), in [0, 1]."""
    onsets: NDArray[np.bool_]
    """Where an alarm starts: the score reached the threshold and the previous one had not."""
    rows: NDArray[np.intp] | None = None
    """Batch rows the scores belong to, or None for a clock check (one row per device)."""
    staged: tuple[NDArray[np.intp], State, State] | None = field(default=None, repr=False)
    """(devices, their state rows, shared state) to keep on commit; devices distinct and ascending."""
    generation: int = 0
    undo: Undo | None = field(default=None, repr=False)

    @property
    def columns(self) -> tuple[str, ...]:
        return self.detector.columns

    def alarms(self) -> NDArray[np.bool_]:
        alarms: NDArray[np.bool_] = self.scores >= self.detector.threshold
        return alarms


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


class StaleScores(RuntimeError):  # noqa: N818 - a state, not a failure of the caller's input
    """Scores computed against a state that has changed since: score the batch again."""


class Detector(ABC):
    """A streaming detector for one sensor kind. Subclasses define the statistics."""

    name: ClassVar[str]
    category: ClassVar[Category]
    targets: ClassVar[tuple[str, ...]] = ()
    """Faults and incidents this detector is built to catch (the evaluation attributes alarms by it)."""
    description: ClassVar[str] = ""
    in_arrival_order: ClassVar[bool] = False
    """Take a device's several readings in a batch in the order they arrived, not by timestamp
    (a detector of late deliveries judges the order itself)."""

    def __init__(self, kind: SensorKind, config: DetectorConfig | None = None) -> None:
        self.kind = kind
        self.config = config or DetectorConfig()
        self.threshold = self.config.threshold
        self.fields: tuple[int, ...] = self.select_fields(kind)
        self._every_field = self.fields == tuple(range(len(kind.measures)))
        self.columns: tuple[str, ...] = self.column_names()
        self._spec = dict(self.state_spec())
        self._spec["_active"] = (np.dtype(np.bool_), (len(self.columns),), False)
        self._state: State = {
            name: np.full((0, *shape), fill, dtype=dtype) for name, (dtype, shape, fill) in self._spec.items()
        }
        self._shared: State = {name: value.copy() for name, value in self.shared_spec().items()}
        self._binned_spec = dict(self.binned_spec())
        self._binned: State = {
            name: np.full((0, *shape), fill, dtype=dtype)
            for name, (dtype, shape, fill) in self._binned_spec.items()
        }
        self._undo: Undo | None = None
        self._intervals = np.zeros(0, dtype=np.float64)
        self._one_interval: FloatArray | None = None
        self._generation = 0

    # --- what subclasses say ------------------------------------------------------------------
    @classmethod
    def applies_to(cls, kind: SensorKind) -> bool:
        """Whether this detector has anything to say about ``kind``."""
        return True

    def select_fields(self, kind: SensorKind) -> tuple[int, ...]:
        """The measures (indices into the kind's values) this detector reads."""
        return tuple(range(len(kind.measures)))

    def column_names(self) -> tuple[str, ...]:
        """What each score column judges: by default one column per field."""
        return tuple(self.kind.measures[i].name for i in self.fields)

    @abstractmethod
    def state_spec(self) -> dict[str, tuple[np.dtype[Any], tuple[int, ...], Any]]:
        """Per-device state: name -> (dtype, shape of one device's entry, initial value)."""

    def shared_spec(self) -> State:
        """State shared by all devices of the kind (small): name -> initial array."""
        return {}

    def binned_spec(self) -> dict[str, tuple[np.dtype[Any], tuple[int, ...], Any]]:
        """Large per-device tables a reading touches only a part of (``Round.binned``)."""
        return {}

    @abstractmethod
    def step(self, state: State, shared: State, r: Round) -> NDArray[np.float64]:
        """Score one round and update ``state`` (the round's rows) and ``shared`` in place.

        Returns scores of shape (m, len(columns)), NaN where nothing was judged
        (a measure not reported), so an ongoing alarm there neither starts nor ends.
        """

    # --- scoring ---------------------------------------------------------------------------------
    def score(self, batch: ReadingBatch, visit: Visit | None = None) -> Scored:
        """Scores for every reading of ``batch``; the state is only staged (see :meth:`commit`).

        ``visit`` is the batch's :class:`Visit`, when the caller scores one batch with
        several detectors and works it out once; otherwise it is worked out here.
        """
        self._rollback()
        n = len(batch)
        c = len(self.columns)
        scores = np.zeros((n, c), dtype=np.float32)
        onsets = np.zeros((n, c), dtype=np.bool_)
        if n == 0:
            return self._scored(batch, scores, onsets)
        if visit is None:
            visit = Visit.of(batch.device)
        if visit.one_round:
            return self._score_one_round(batch, visit)
        if self.in_arrival_order:
            order = np.argsort(batch.device, kind="stable")
        else:
            order = np.lexsort((batch.ts_ms, batch.device))
        dev = batch.device[order]
        starts = np.flatnonzero(np.r_[True, dev[1:] != dev[:-1]])
        counts = np.diff(np.r_[starts, n])
        unique = dev[starts]
        self._grow(int(unique.max()) + 1, batch.table)
        local = {name: value[unique] for name, value in self._state.items()}
        shared = {name: value.copy() for name, value in self._shared.items()}
        group = np.repeat(np.arange(unique.size), counts)
        rank = np.arange(n) - np.repeat(starts, counts)
        by_round = np.argsort(rank, kind="stable")
        bounds = np.r_[0, np.cumsum(np.bincount(rank))]
        values = batch.values[:, list(self.fields)] if self.fields else np.zeros((n, 0))
        undo: Undo = []
        self._undo = undo
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
            rnd = Round(
                device=devices,
                ts_ms=batch.ts_ms[rows],
                received_ms=None if batch.received_ms is None else batch.received_ms[rows],
                x=values[rows],
                interval_ms=self._intervals[devices],
                interval_col=self._interval_col(devices),
                table=batch.table,
                binned=Binned(self._binned, devices, undo) if self._binned else None,
            )
            raw = self.step(sub, shared, rnd)
            scores[rows], onsets[rows] = self._alarm_state(sub, raw)
            if not whole:
                for name, value in sub.items():
                    local[name][g] = value
        return self._scored(batch, scores, onsets, (unique, local, shared), undo)

    def _score_one_round(self, batch: ReadingBatch, visit: Visit) -> Scored:
        """:meth:`score` of a batch in one round: no grouping, and contiguous copies where it can."""
        order, span, back = visit.order, visit.span, visit.back
        n = len(batch)
        devices = batch.device if order is None else batch.device.take(order)
        self._grow(int(devices[-1]) + 1, batch.table)
        if span is not None:
            local = {name: value[span].copy() for name, value in self._state.items()}
        else:
            local = {name: value.take(devices, axis=0) for name, value in self._state.items()}
        shared = {name: value.copy() for name, value in self._shared.items()}
        fields = list(self.fields)
        if not fields:
            values = np.zeros((n, 0))
        elif order is None:
            # Every field in declaration order (the common case) is one contiguous copy.
            values = batch.values.copy() if self._every_field else batch.values[:, fields]
        else:
            values = batch.values.take(order, axis=0)
            if not self._every_field:
                values = values[:, fields]
        undo: Undo = []
        self._undo = undo
        rnd = Round(
            device=devices,
            ts_ms=batch.ts_ms.copy() if order is None else batch.ts_ms.take(order),
            received_ms=None
            if batch.received_ms is None
            else (batch.received_ms.copy() if order is None else batch.received_ms.take(order)),
            x=values,
            interval_ms=self._intervals[span].copy() if span is not None else self._intervals.take(devices),
            interval_col=self._interval_col(devices),
            table=batch.table,
            binned=Binned(self._binned, devices, undo) if self._binned else None,
        )
        raw = self.step(local, shared, rnd)
        clean, onset = self._alarm_state(local, raw)
        if back is None:
            scores, onsets = clean, onset
        else:
            scores, onsets = clean.take(back, axis=0), onset.take(back, axis=0)
        return self._scored(batch, scores, onsets, (devices, local, shared), undo)

    def _scored(
        self,
        batch: ReadingBatch,
        scores: NDArray[np.float32],
        onsets: NDArray[np.bool_],
        staged: tuple[NDArray[np.intp], State, State] | None = None,
        undo: Undo | None = None,
    ) -> Scored:
        """The scores of every row of ``batch``, tied to the state generation they were computed from."""
        return Scored(
            self,
            batch.table,
            batch.device,
            batch.ts_ms,
            scores,
            onsets,
            np.arange(len(batch)),
            staged,
            self._generation,
            undo,
        )

    def _rollback(self) -> None:
        """Undo in-place changes of a scoring that was never committed (its write failed)."""
        undo, self._undo = self._undo, None
        if undo:
            for name, flat, old in reversed(undo):
                put_cells(cells(self._binned[name]), flat, old)

    def _alarm_state(
        self, sub: State, raw: NDArray[np.float64]
    ) -> tuple[NDArray[np.float32], NDArray[np.bool_]]:
        """Turn raw scores into clean scores and alarm onsets, tracking each cell's alarm."""
        unjudged = np.isnan(raw)
        clean = np.fmax(raw, 0.0)  # NaN (nothing judged) to 0 as well
        np.minimum(clean, 1.0, out=clean)
        active = sub["_active"]
        high = clean >= self.threshold
        onset = high & ~active
        onset &= ~unjudged
        still = clean >= REARM * self.threshold
        still &= active
        still |= high
        # Where nothing was judged, the alarm state stays as it was.
        still &= ~unjudged
        still |= active & unjudged
        sub["_active"] = still
        return clean.astype(np.float32), onset

    def commit(self, scored: Scored) -> None:
        """Keep the state a :meth:`score` staged: call once the scored readings are stored."""
        if scored.staged is None:
            return
        if scored.generation != self._generation:
            raise StaleScores(f"{self.name}: the state changed since these scores; score the batch again")
        unique, local, shared = scored.staged
        # Staged devices are distinct and ascending: consecutive ones are a slice.
        rows: NDArray[np.intp] | slice = unique
        if unique.size and int(unique[-1]) - int(unique[0]) == unique.size - 1:
            rows = slice(int(unique[0]), int(unique[-1]) + 1)
        for name, value in local.items():
            if isinstance(rows, slice):
                self._state[name][rows] = value
            else:
                put_rows(self._state[name], rows, value)
        self._shared = shared
        if scored.undo is self._undo:
            self._undo = None  # the in-place changes stay
        self._generation += 1

    def update(self, batch: ReadingBatch) -> NDArray[np.float32]:
        """Score and learn in one go (offline use, tests): the scores of ``batch``."""
        scored = self.score(batch)
        self.commit(scored)
        return scored.scores

    def check(self, now_ms: int, table: DeviceTable) -> Scored | None:
        """Clock-driven scores (one row per device) for detectors that judge silence; staged too."""
        return None

    def hear(self, table: DeviceTable, device: NDArray[np.intp], at_ms: NDArray[np.int64]) -> None:  # noqa: B027
        """Devices that sent something this cycle that was rejected: alive, but with nothing to learn."""

    def _interval_col(self, devices: NDArray[np.intp]) -> FloatArray:
        """:attr:`Round.interval_col` of a round of ``devices``."""
        one = self._one_interval
        if one is not None:
            return one
        column: FloatArray = self._intervals[devices][:, None]
        return column

    # --- state -------------------------------------------------------------------------------------
    def _grow(self, n: int, table: DeviceTable) -> None:
        have = self._intervals.shape[0]
        if n > have or len(table) != have:
            size = max(n, len(table))
            self._intervals = np.array([table.interval_s(i) * 1000.0 for i in range(size)], dtype=np.float64)
            same = size > 0 and bool((self._intervals == self._intervals[0]).all())
            self._one_interval = self._intervals[:1, None].copy() if same else None
        rows = next(iter(self._state.values())).shape[0]
        if n <= rows:
            return
        size = max(n, len(table), 2 * rows)
        for arrays, specs in ((self._state, self._spec), (self._binned, self._binned_spec)):
            for name, (dtype, shape, fill) in specs.items():
                grown = np.full((size, *shape), fill, dtype=dtype)
                grown[:rows] = arrays[name]
                arrays[name] = grown

    def devices_known(self) -> int:
        return int(next(iter(self._state.values())).shape[0])

    def state(self, table: DeviceTable) -> State:
        """Everything needed to resume after a restart, keyed by device id (the registry may change)."""
        n = min(self.devices_known(), len(table))
        saved: State = {"device_id": np.array([d.device_id for d in table.devices[:n]], dtype=np.str_)}
        for name, value in self._state.items():
            saved[f"device:{name}"] = value[:n].copy()
        for name, value in self._binned.items():
            saved[f"device:{name}"] = value[:n].copy()
        if self._undo:  # an uncommitted scoring changed binned tables in place: report them committed
            for name, flat, old in reversed(self._undo):
                cells_of = saved[f"device:{name}"]
                rows, index = np.divmod(flat, cells_of.shape[1])
                keep = rows < n
                cells_of[rows[keep], index[keep]] = old[keep].reshape(-1, *cells_of.shape[2:])
        for name, value in self._shared.items():
            saved[f"shared:{name}"] = value.copy()
        return saved

    def restore(self, saved: State, table: DeviceTable) -> int:
        """Take back :meth:`state`; returns how many devices were restored (0 if incompatible)."""
        ids = saved.get("device_id")
        if ids is None:
            return 0
        specs = {**self._spec, **self._binned_spec}
        for name, (_, shape, _) in specs.items():
            value = saved.get(f"device:{name}")
            if value is None or value.shape[1:] != shape:
                return 0  # saved by another version of this detector: start afresh
        self._rollback()
        positions = np.array([table.index.get(i, -1) for i in ids.tolist()], dtype=np.intp)
        known = positions >= 0
        if known.any():
            self._grow(int(positions[known].max()) + 1, table)
            for name, (dtype, _, _) in specs.items():
                arrays = self._state if name in self._spec else self._binned
                arrays[name][positions[known]] = saved[f"device:{name}"][known].astype(dtype)
        for name, value in self._shared.items():
            stored = saved.get(f"shared:{name}")
            if stored is not None and stored.shape == value.shape:
                self._shared[name] = stored.astype(value.dtype)
        self._generation += 1
        return int(np.count_nonzero(known))

    def bytes_per_device(self) -> int:
        """State bytes one device costs (every column of it)."""
        specs = (*self._spec.values(), *self._binned_spec.values())
        return sum(dtype.itemsize * int(np.prod(shape, dtype=np.int64)) for dtype, shape, _ in specs)

    def bytes_per_device_field(self) -> float:
        return self.bytes_per_device() / max(len(self.columns), 1)


def spec(
    dtype: Any, shape: tuple[int, ...] = (), fill: Any = 0
) -> tuple[np.dtype[Any], tuple[int, ...], Any]:
    """Shorthand for one entry of :meth:`Detector.state_spec`."""
    return np.dtype(dtype), shape, fill
