"""Scoring one recorded series offline with the same streaming detectors that run live.

``citypulse detect`` feeds a CSV through here: a timestamp and one or more value
columns, which are taken as the measures of one device. Every detector learns as
it goes, exactly as it would on a live device: no labels, no tuning per file.

The default is the generic detector (:mod:`processors.detectors.generic`), run a
block of readings at a time (:class:`~processors.detectors._generic_series.GenericSeries`),
which needs to know nothing of the series beforehand: its transform (log for a
measure that varies by factors, square root for counts) is chosen from the first
readings, and its memories are counted in the series' own reporting interval (the
median gap). The other detectors can be named too; they see the series as a sensor
kind of its own whose normal band comes from the first part of the data.

For every row the scorer gives:

- ``score`` in [0, 1]: the largest score any detector gives it, the evidence that
  this reading is anomalous now (0.5 is as surprising as each detector's alarm);
- ``alarm``: whether any detector's alarm is on after it (a state: on from where an
  anomaly is found until it is over);
- ``detector``: which detector gave the score (the first, where several tie).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray
from pydantic import create_model

from processors.batch import ReadingBatch
from processors.detectors import DETECTORS, Detector, DetectorConfig
from processors.detectors._generic_series import GenericSeries, sample_band, sample_transform
from processors.detectors._robust import Transform
from processors.kinds import Reading, SensorKind, measure
from processors.registry import Device, DeviceTable

SERIES_DETECTORS = ("generic",)
"""What ``citypulse detect`` runs unless told otherwise."""
PER_MEASURE_DETECTORS = ("spike", "shift", "noise", "stuck")
"""The statistical and sensor-health detectors of one measure at a time (``citypulse detect``'s
set before the generic detector)."""
GENERIC = "generic"
PIECE_ROWS = 500
"""Rows scored by every detector before the next piece: how often a long series reports progress."""
TRANSFORM_SAMPLE = 400
"""Readings the generic detector chooses each measure's transform from."""
UNBOUNDED = 1e300
ALARM = 0.5
"""A row scoring at least this is an alarm (the CLI's summary counts them)."""


def series_kind(
    sample: NDArray[np.float64], interval_s: float, names: Sequence[str] = ("value",)
) -> SensorKind:
    """A kind of ``names`` (a column of ``sample`` each), each with its column's 5th-95th percentile band."""
    sample = np.asarray(sample, dtype=np.float64).reshape(len(sample), -1)
    fields: dict[str, Any] = {}
    for j, name in enumerate(names):
        column = sample[:, j]
        low, high = sample_band(column[np.isfinite(column)])
        fields[name] = (
            float | None,
            measure("", -UNBOUNDED, UNBOUNDED, "The recorded value", normal=(low, high)),
        )
    model: type[Reading] = create_model("SeriesReading", __base__=Reading, **fields)
    return SensorKind(name="series", title="Series", model=model, interval_s=interval_s, fiware_type="Series")


def typical_interval_s(ts_ms: NDArray[np.int64]) -> float:
    """The series' reporting interval: the median gap between consecutive timestamps."""
    gaps = np.diff(np.sort(ts_ms))
    gaps = gaps[gaps > 0]
    return float(np.median(gaps)) / 1000.0 if gaps.size else 60.0


@dataclass(frozen=True, eq=False)
class Scores:
    """What the detectors said of each row of a piece of the series."""

    score: NDArray[np.float32]
    alarm: NDArray[np.bool_]
    detector: NDArray[np.intp]
    """Index into :attr:`SeriesScorer.names` of the detector that gave the score."""


class SeriesScorer:
    """Scores successive chunks of one series (one device, one or more measures); state carries over.

    >>> import numpy as np
    >>> values = 10 + 0.1 * np.random.default_rng(5).standard_normal(600)
    >>> values[400:] += 1.0  # a step
    >>> ts = 1_795_392_000_000 + 60_000 * np.arange(600)
    >>> scorer = SeriesScorer(values[:200], ts[:200])
    >>> found = [scorer.score(ts[:250], values[:250]), scorer.score(ts[250:], values[250:])]
    >>> score = np.concatenate([f.score for f in found]); alarm = np.concatenate([f.alarm for f in found])
    >>> int(np.argmax(score)), bool(alarm[:400].any()), bool(alarm[403:].all())
    (400, False, True)
    """

    def __init__(
        self,
        sample: NDArray[np.float64],
        sample_ts_ms: NDArray[np.int64],
        detectors: Sequence[str] = SERIES_DETECTORS,
        config: DetectorConfig | None = None,
        interval_s: float | None = None,
    ) -> None:
        unknown = [d for d in detectors if d not in DETECTORS]
        if unknown:
            raise ValueError(f"unknown detector(s) {', '.join(unknown)}; choose from: {', '.join(DETECTORS)}")
        sample = np.asarray(sample, dtype=np.float64)
        self.fields = 1 if sample.ndim == 1 else sample.shape[1]
        sample = sample.reshape(len(sample), self.fields)
        self.interval_s = interval_s or typical_interval_s(sample_ts_ms)
        self.generic: GenericSeries | None = None
        if GENERIC in detectors:
            transform = sample_transform(sample[:TRANSFORM_SAMPLE])
            self.generic = GenericSeries(transform, 1000.0 * self.interval_s)
            self.transform = transform
        self.detectors: list[Detector] = []
        others = [name for name in DETECTORS if name in detectors and name != GENERIC]
        if others:  # the series as a sensor kind of its own (a pydantic model: built only when needed)
            names = ("value",) if self.fields == 1 else tuple(f"m{j}" for j in range(self.fields))
            self.kind = series_kind(sample, self.interval_s, names)
            self.table = DeviceTable(self.kind)
            self.table.add(Device("series", "series", "offline", 0.0, 0.0, None, self.interval_s))
            self.detectors = [
                cls(self.kind, config) for cls in (DETECTORS[n] for n in others) if cls.applies_to(self.kind)
            ]
        self.names: tuple[str, ...] = ((GENERIC,) if self.generic else ()) + tuple(
            d.name for d in self.detectors
        )
        self.alarms: Counter[str] = Counter(dict.fromkeys(self.names, 0))
        """Alarms (episodes) each detector started."""
        self._generic_on = False

    def score(
        self,
        ts_ms: NDArray[np.int64],
        values: NDArray[np.float64],
        progress: Callable[[int], None] | None = None,
    ) -> Scores:
        """What the detectors say of every row (rows with no value score 0).

        Rows are taken in timestamp order (ties in input order), as the detectors'
        rounds would take them, in pieces of :data:`PIECE_ROWS` (the same rounds as
        one batch of them all); ``progress`` hears how many rows are done after each.
        """
        n = ts_ms.size
        order = np.argsort(ts_ms, kind="stable")
        ts_sorted = ts_ms[order]
        values_sorted = np.asarray(values, dtype=np.float64).reshape(n, self.fields)[order]
        score = np.zeros(n, dtype=np.float32)
        alarm = np.zeros(n, dtype=np.bool_)
        detector = np.zeros(n, dtype=np.intp)
        if self.generic is not None:
            found = self.generic.run(values_sorted, ts_sorted)
            score[:] = found.score
            alarm[:] = found.alarm
            self.alarms[GENERIC] += _onsets(found.alarm, self._generic_on)
            self._generic_on = bool(found.alarm[-1]) if n else self._generic_on
            if progress is not None and not self.detectors:
                progress(n)
        first = 1 if self.generic is not None else 0
        for start in range(0, n, PIECE_ROWS) if self.detectors else ():
            piece = slice(start, min(start + PIECE_ROWS, n))
            ts = ts_sorted[piece]
            batch = ReadingBatch(
                self.kind, self.table, np.zeros(ts.size, dtype=np.intp), ts, values_sorted[piece], ts
            )
            for i, d in enumerate(self.detectors, start=first):
                scored = d.score(batch)
                d.commit(scored)
                best = scored.scores.max(axis=1, initial=0.0)
                on = scored.alarm.any(axis=1)
                higher = best > score[piece]
                detector[piece] = np.where(higher, i, detector[piece])
                score[piece] = np.where(higher, best, score[piece])
                alarm[piece] |= on
                self.alarms[d.name] += int(np.count_nonzero(scored.onsets.any(axis=1)))
            if progress is not None:
                progress(piece.stop)
        found_order = np.empty(n, dtype=np.intp)
        found_order[order] = np.arange(n)
        return Scores(score[found_order], alarm[found_order], detector[found_order])

    def describe(self) -> dict[str, Any]:
        found: dict[str, Any] = {"interval_s": self.interval_s}
        if self.generic is not None:
            modes = {Transform.LINEAR: "linear", Transform.LOG: "log", Transform.COUNT: "count"}
            found["scales"] = [modes[int(m)] for m in self.transform.mode]
        if self.detectors:
            found["normal_band"] = [list(m.normal) for m in self.kind.measures]
        found.update(detectors=list(self.names), alarms_by_detector=dict(self.alarms))
        return found


def _onsets(alarm: NDArray[np.bool_], was: bool) -> int:
    """Alarms started in ``alarm`` (the state before it being ``was``)."""
    if alarm.size == 0:
        return 0
    before = np.concatenate([[was], alarm[:-1]])
    return int(np.count_nonzero(alarm & ~before))
