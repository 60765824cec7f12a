"""What a detector is: per-device state in numpy arrays, updated from batches, scores in [0, 1].

A detector keeps one row of state per device of its kind (``n_devices`` x its
columns x whatever each statistic needs) and scores every reading of a
:class:`~processors.batch.ReadingBatch` in one vectorised pass. Three rules hold for
all of them:

- **Scores are evidence; alarms are states.** Each detector maps its statistic to a
  score in [0, 1], 1 being certain, designed so that 0.5 is where the detector is
  confident: the evidence that this reading is anomalous. The *alarm* is a state
  with memory, which the alert layer uses. By default it is derived from the score
  alike for every detector: on where the score reaches the threshold (0.5), off once
  it falls below half of it (``_hysteresis``). A detector whose evidence and state
  differ (``generic``: the score fades as the detector adapts while the device stays
  off its normal) returns its alarm states itself, as :class:`Judged`.
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
``DETECTOR`` (a :class:`Detector` subclass) is a detector. A subclass says what its
state is (:meth:`Detector.state_spec`, and :meth:`~Detector.shared_spec` and
:meth:`~Detector.binned_spec` if it needs them) and how one round is scored
(:meth:`Detector.step`); this module is all it needs to read. The machinery that
runs every detector alike lives beside it, in modules that plugin discovery skips:

- ``_storage``: the state arrays, grown as devices appear, and :class:`Binned` tables;
- ``_rounds``: a batch taken in rounds (:class:`~processors.detectors._rounds.Visit`);
- ``_hysteresis``: raw scores to clean scores, alarm onsets and alarm states;
- ``_transaction``: staging, committing and rolling back;
- ``_persist``: the state saved and restored across restarts, keyed by device id.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from enum import StrEnum
from typing import ClassVar

import numpy as np
from numpy.typing import NDArray

from processors.batch import ReadingBatch
from processors.detectors import _persist
from processors.detectors._hysteresis import Hysteresis, Judged, alarm_spec
from processors.detectors._rounds import Staged, Visit, score_in_rounds
from processors.detectors._storage import Binned, FloatArray, Spec, State, Store, Undo, spec
from processors.detectors._transaction import Staging
from processors.kinds import SensorKind
from processors.registry import DeviceTable

__all__ = [
    "DEVICE_COLUMN",
    "Binned",
    "Category",
    "Detector",
    "DetectorConfig",
    "FloatArray",
    "Judged",
    "Round",
    "Scored",
    "Spec",
    "State",
    "spec",
]

DEVICE_COLUMN = "device"
"""The column name of detectors that judge a whole device or reading, not one measure."""


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
    """The round's devices' binned tables (:meth:`Detector.binned_spec`), read and written in place."""


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
    """Where an alarm starts: its state turned on at this reading (shape of ``scores``)."""
    alarm: NDArray[np.bool_]
    """The alarm state after each reading (shape of ``scores``): on from an onset until it ends."""
    rows: NDArray[np.intp] | None = None
    """Batch rows the scores belong to, or None for a clock check (one row per device)."""
    staged: Staged | None = field(default=None, repr=False)
    """(devices, their state rows, shared state) to keep on commit; devices distinct and ascending."""
    generation: int = 0
    """The generation of the state the scores were computed from (see :class:`StaleScores`)."""
    undo: Undo | None = field(default=None, repr=False)
    """The log of the scoring's in-place changes to binned tables."""

    @property
    def columns(self) -> tuple[str, ...]:
        return self.detector.columns

    def alarms(self) -> NDArray[np.bool_]:
        """Where an alarm is on after the reading (:attr:`alarm`): what the alert layer acts on."""
        return self.alarm


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
        per_device = {**self.state_spec(), **alarm_spec(len(self.columns))}
        shared = self.shared_spec()
        self._store = Store(per_device, self.binned_spec(), shared)
        self._hysteresis = Hysteresis(self.threshold)
        self._staging = Staging()

    # --- what subclasses say ------------------------------------------------------------------
    @classmethod
    def applies_to(cls, kind: SensorKind) -> bool:
        """Whether this detector has anything to say about ``kind``."""
        return True

    @classmethod
    def runs_by_default(cls, kind: SensorKind) -> bool:
        """Whether it runs on ``kind`` unless the detectors are chosen by name (it applies, too)."""
        return True

    def select_fields(self, kind: SensorKind) -> tuple[int, ...]:
        """The measures (indices into the kind's values) this detector reads."""
        return tuple(range(len(kind.measures)))

    def column_names(self) -> tuple[str, ...]:
        """What each score column judges: by default one column per field."""
        return tuple(self.kind.measures[i].name for i in self.fields)

    @abstractmethod
    def state_spec(self) -> dict[str, Spec]:
        """Per-device state: name -> (dtype, shape of one device's entry, initial value); see :func:`spec`."""

    def shared_spec(self) -> State:
        """State shared by all devices of the kind (small): name -> initial array."""
        return {}

    def binned_spec(self) -> dict[str, Spec]:
        """Large per-device tables a reading touches only a part of (``Round.binned``)."""
        return {}

    @abstractmethod
    def step(self, state: State, shared: State, r: Round) -> NDArray[np.float64] | Judged:
        """Score one round and update ``state`` (the round's rows) and ``shared`` in place.

        Returns scores of shape (m, len(columns)), NaN where nothing was judged
        (a measure not reported), so an ongoing alarm there neither starts nor ends;
        or, for a detector that decides its alarm itself, :class:`Judged` scores and
        alarm states.
        """

    def check(self, now_ms: int, table: DeviceTable) -> Scored | None:
        """Clock-driven scores (one row per device) for detectors that judge silence; staged too."""
        return None

    def hear(self, table: DeviceTable, device: NDArray[np.intp], at_ms: NDArray[np.int64]) -> None:  # noqa: B027
        """Devices that sent something this cycle that was rejected: alive, but with nothing to learn."""

    # --- what the engine calls --------------------------------------------------------------------
    def score(self, batch: ReadingBatch, visit: Visit | None = None) -> Scored:
        """Scores for every reading of ``batch``; the state is only staged (see :meth:`commit`).

        ``visit`` is the batch's :class:`~processors.detectors._rounds.Visit`, when the caller
        scores one batch with several detectors and works it out once; otherwise it is
        worked out here. A scoring left uncommitted before is rolled back first.
        """
        self._staging.rollback(self._store)
        scores, onsets, alarm, staged, undo = score_in_rounds(self, batch, visit, Round)
        return Scored(
            self,
            batch.table,
            batch.device,
            batch.ts_ms,
            scores,
            onsets,
            alarm,
            np.arange(len(batch)),
            staged,
            self._staging.generation,
            undo,
        )

    def commit(self, scored: Scored) -> None:
        """Keep the state a :meth:`score` staged: call once the scored readings are stored.

        Raises :class:`~processors.detectors._transaction.StaleScores` if the state changed
        since the scores were computed.
        """
        self._staging.commit(self._store, scored)

    def update(self, batch: ReadingBatch) -> NDArray[np.float32]:
        """Score and learn in one go (offline use, tests): the scores of ``batch``."""
        scored = self.score(batch)
        self.commit(scored)
        return scored.scores

    def state(self, table: DeviceTable) -> State:
        """Everything needed to resume after a restart, keyed by device id (the registry may change)."""
        return _persist.save(self._store, self._staging, table)

    def restore(self, saved: State, table: DeviceTable) -> int:
        """Take back :meth:`state`; returns how many devices were restored (0 if incompatible)."""
        return _persist.restore(self._store, self._staging, saved, table)

    def devices_known(self) -> int:
        return self._store.devices_known()

    def bytes_per_device(self) -> int:
        """State bytes one device costs (every column of it)."""
        return self._store.bytes_per_device()

    def bytes_per_device_field(self) -> float:
        return self.bytes_per_device() / max(len(self.columns), 1)
