"""The generic detector: any device's measures judged together, for kinds and series of any shape.

Where no domain knowledge says what a fault looks like (a recorded series of unknown
kind, a sensor kind without rules of its own), this is the detector to trust: it
learns each device's normal from its own readings, whatever their cadence, cycles
and scale (:mod:`processors.detectors._generic_core` has the method), and says two
things of every reading:

- its **score**: the evidence that this reading is anomalous now, high where a
  change starts and where new evidence arrives, falling back as the detector
  adapts while the device stays where it went;
- its **alarm**: whether the device is away from its normal (a state, on after
  three readings in a row far from it, off once it is well back, or after a long
  while taken as the new normal).

It runs live on the kinds that no domain detector (a rule or a standard) speaks for,
and wherever ``CITYPULSE_DETECTORS`` names it; ``citypulse detect`` runs it by default.
It judges a device's measures together: a faulty valve moves several measures a
little each, together and against their usual relations, which no measure alone
shows. Each score and each alarm is put down to the measure that carries most of
its evidence (its share of the T-squared sum, or the largest change): that column
holds it, the others score 0.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from processors.detectors import _generic_core as core
from processors.detectors._robust import Transform
from processors.detectors.base import Binned, Category, Detector, Judged, Round, Spec, State
from processors.kinds import SensorKind


class BinnedTables:
    """The profiles of a round's devices (one reading each), in the detector's binned tables."""

    def __init__(self, binned: Binned) -> None:
        self.binned = binned

    def read(self, index: NDArray[np.intp]) -> NDArray[np.float32]:
        found: NDArray[np.float32] = self.binned.get("season", index[:, :, 0])[:, :, None, :]
        return found

    def add(self, index: NDArray[np.intp], values: NDArray[np.float32]) -> None:
        cells = index[:, :, 0]
        old = self.binned.get("pending", cells)
        self.binned.set("pending", cells, old + values[:, :, 0, :], old=old)

    def flush(self, devices: NDArray[np.intp]) -> None:
        some = self.binned.rows(devices)
        every = np.broadcast_to(np.arange(core.BINS, dtype=np.intp)[:, None], (core.BINS, devices.size))
        pending = some.get("pending", every)
        season = some.get("season", every)
        some.set("season", every, season + pending, old=season)
        some.set("pending", every, np.zeros_like(pending), old=pending)


class GenericDetector(Detector):
    """Any device, any measures: away from its own normal (alarm), and how surprising each reading is (score).

    Score: the largest of the fast and the change evidence (normal deviates) over 8,
    capped at 1, so a reading as surprising as a 4-sigma one scores 0.5; where an alarm
    starts, at least the alarm's own level. Alarm: T-squared of the reading against the
    device's seasonal baseline at 4 sigma (as a normal deviate) for three readings in a
    row; it ends below 2.

    >>> import numpy as np
    >>> from processors.batch import series_batch
    >>> from processors.kinds import get_kind
    >>> kind = get_kind("water")
    >>> rng = np.random.default_rng(4)
    >>> ph, conductivity = 7.2 + 0.05 * rng.standard_normal(600), 450 + 5 * rng.standard_normal(600)
    >>> ph[400:], conductivity[400:] = ph[400:] - 0.5, conductivity[400:] + 30  # the water changed
    >>> detector = GenericDetector(kind)
    >>> batch = series_batch(kind, {"ph": ph, "conductivity": conductivity})
    >>> scored = detector.score(batch)
    >>> detector.commit(scored)
    >>> alarm, score = scored.alarms().any(axis=1), scored.scores.max(axis=1)
    >>> bool(alarm[:400].any()), bool(alarm[410:].all())
    (False, True)
    >>> bool(score[400] >= 0.5), bool(score[480:].max() < 0.5)  # news where the change starts, then none
    (True, True)
    >>> [detector.columns[c] for c in np.flatnonzero(scored.alarms()[420])]  # the measure that moved most
    ['ph']
    """

    name = "generic"
    category = Category.STATISTICAL
    targets = ("drift",)
    description = (
        "a device away from its own seasonal normal, its measures judged together (any kind, any cadence)"
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.setup = core.Setup.of(Transform.for_fields(self.kind, self.fields))

    @classmethod
    def applies_to(cls, kind: SensorKind) -> bool:
        return any(not m.switching for m in kind.measures)

    @classmethod
    def runs_by_default(cls, kind: SensorKind) -> bool:
        """Only where no domain detector speaks for the kind (see :func:`has_domain_detectors`)."""
        return not has_domain_detectors(kind)

    def select_fields(self, kind: SensorKind) -> tuple[int, ...]:
        return tuple(i for i, m in enumerate(kind.measures) if not m.switching)

    def state_spec(self) -> dict[str, Spec]:
        return core.core_spec(len(self.fields))

    def binned_spec(self) -> dict[str, Spec]:
        return core.table_spec(len(self.fields))

    def step(self, state: State, shared: State, r: Round) -> Judged:
        assert r.binned is not None
        prepared = core.prepare(
            r.x[:, None, :], r.ts_ms[:, None], state["last_ts"], r.interval_ms, self.setup
        )
        found = core.advance(state, BinnedTables(r.binned), prepared, self.setup)
        columns = np.arange(len(self.fields))[None, :]
        scores = np.where(columns == found.scored_by[:, :1], found.score[:, :1], 0.0)
        alarm = columns == found.alarmed_by[:, :1]
        return Judged(scores, alarm)


def has_domain_detectors(kind: SensorKind) -> bool:
    """Whether a detector written for this kind's domain (a rule or a standard) applies to it."""
    from processors.detectors import DETECTORS

    return any(
        cls.category in (Category.RULE, Category.STANDARD) and cls.applies_to(kind)
        for cls in DETECTORS.values()
    )


DETECTOR = GenericDetector
