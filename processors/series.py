"""Scoring one recorded series offline with the same streaming detectors that run live.

``citypulse detect`` feeds a CSV of ``timestamp,value`` rows through here. The
series becomes a one-measure sensor kind of its own, whose normal band comes
from the first part of the data (no physical limits are known), and the
statistical detectors learn as they go, exactly as they would on a live device:
no labels, no tuning per file. Each row's anomaly score is the largest score any
detector gives it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray
from pydantic import create_model

from processors.batch import ReadingBatch
from processors.detectors import DETECTORS, Detector, DetectorConfig
from processors.kinds import Reading, SensorKind, measure
from processors.registry import Device, DeviceTable

SERIES_DETECTORS = ("spike", "shift", "noise", "stuck")
"""The statistical and sensor-health detectors that make sense for any single series."""
PIECE_ROWS = 500
"""Rows scored by every detector before the next piece: how often a long series reports progress."""
UNBOUNDED = 1e300
ALARM = 0.5
"""A row scoring at least this is an alarm (the CLI's summary counts them)."""


def series_kind(sample: NDArray[np.float64], interval_s: float) -> SensorKind:
    """A one-measure kind (``value``) whose normal band is the 5th-95th percentile of ``sample``."""
    finite = sample[np.isfinite(sample)]
    if finite.size:
        low, high = (float(v) for v in np.percentile(finite, [5.0, 95.0]))
    else:
        low, high = 0.0, 1.0
    if high <= low:
        spread = max(abs(low) * 0.1, 1.0)
        low, high = low - spread, high + spread
    model: type[Reading] = create_model(
        "SeriesReading",
        __base__=Reading,
        value=(float | None, measure("", -UNBOUNDED, UNBOUNDED, "The recorded value", normal=(low, high))),
    )
    return SensorKind(name="series", title="Series", model=model, interval_s=interval_s, fiware_type="Series")


def typical_interval_s(ts_ms: NDArray[np.int64]) -> float:
    """The series' reporting interval: the median gap between consecutive timestamps."""
    gaps = np.diff(np.sort(ts_ms))
    gaps = gaps[gaps > 0]
    return float(np.median(gaps)) / 1000.0 if gaps.size else 60.0


class SeriesScorer:
    """Scores successive chunks of one series; state carries over from chunk to chunk.

    >>> import numpy as np
    >>> values = 10 + 0.1 * np.random.default_rng(5).standard_normal(500)
    >>> values[400] = 14.0
    >>> ts = 1_795_392_000_000 + 60_000 * np.arange(500)
    >>> scorer = SeriesScorer(values[:200], ts[:200])
    >>> scores = np.concatenate([scorer.score(ts[:250], values[:250]), scorer.score(ts[250:], values[250:])])
    >>> int(np.argmax(scores)), bool(np.delete(scores, [400, 401, 402]).max() < 0.5)
    (401, True)
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
        self.interval_s = interval_s or typical_interval_s(sample_ts_ms)
        self.kind = series_kind(sample, self.interval_s)
        self.table = DeviceTable(self.kind)
        self.table.add(Device("series", "series", "offline", 0.0, 0.0, None, self.interval_s))
        self.detectors: list[Detector] = [
            cls(self.kind, config)
            for name, cls in DETECTORS.items()
            if name in detectors and cls.applies_to(self.kind)
        ]
        self.alarms: Counter[str] = Counter({d.name: 0 for d in self.detectors})
        """Rows each detector alone scored at or above :data:`ALARM`."""

    def score(
        self,
        ts_ms: NDArray[np.int64],
        values: NDArray[np.float64],
        progress: Callable[[int], None] | None = None,
    ) -> NDArray[np.float32]:
        """The anomaly score of every row, in [0, 1] (rows with no value score 0).

        Rows are taken in timestamp order (ties in input order), as the detectors'
        rounds would take them, in pieces of :data:`PIECE_ROWS` (the same rounds as
        one batch of them all); ``progress`` hears how many rows are done after each.
        """
        n = ts_ms.size
        order = np.argsort(ts_ms, kind="stable")
        ts_sorted = ts_ms[order]
        values_sorted = values.astype(np.float64)[order].reshape(n, 1)
        ranked = np.zeros(n, dtype=np.float32)
        for start in range(0, n, PIECE_ROWS):
            piece = slice(start, min(start + PIECE_ROWS, n))
            ts = ts_sorted[piece]
            batch = ReadingBatch(
                self.kind, self.table, np.zeros(ts.size, dtype=np.intp), ts, values_sorted[piece], ts
            )
            best = ranked[piece]
            for detector in self.detectors:
                scores = detector.update(batch).max(axis=1, initial=0.0)
                self.alarms[detector.name] += int(np.count_nonzero(scores >= ALARM))
                np.maximum(best, scores, out=best)
            if progress is not None:
                progress(piece.stop)
        scores = np.empty(n, dtype=np.float32)
        scores[order] = ranked
        return scores

    def describe(self) -> dict[str, Any]:
        return {
            "interval_s": self.interval_s,
            "normal_band": list(self.kind.measures[0].normal),
            "detectors": [d.name for d in self.detectors],
            "alarms_by_detector": dict(self.alarms),
        }
