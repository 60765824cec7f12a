"""Traffic incidents: speed collapsing while occupancy climbs, against the road's recent state.

A crash or a blocked lane pushes a road onto the congested branch within
minutes: mean speed falls to a fraction of what it just was while the detector
is occupied far more. Rush-hour congestion builds over half an hour or more, so
the baselines (exponential smoothing over 30 minutes, learned only from calm
readings: :mod:`._calm`) move with it and it does not score.

A road at capacity can also break down within minutes by itself: the Monday rush
tips a busy junction onto the congested branch as abruptly as a crash does. That
breakdown recurs at the same time of day, so each road also remembers its usual
occupancy at each hour of a working day and of a weekend day, apart (a mean over
about a week of that hour's readings on days of that type, so Monday still knows
last Friday's rush, and a quiet Sunday morning does not water it down), and
occupancy counts as crowding only above the larger of the recent baseline and the
usual level within an hour of now (traffic management centres compare with the
historical profile of the same day type for the same reason). Hours and days are
the road's own, by the sun at its longitude (:func:`~processors.solar.solar_time_ms`).
A crash at a quiet hour is far above both; one in a road's own rush hour must push
it past its usual jam. The mean learns from alarming readings too: a breakdown
alarms from start to end the first time it is seen, and would otherwise never
become usual. The price: a crash enters its hour's mean like any day's
traffic, so in a road's first days a second crash at the same hour must rise
further above it to be seen.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from processors.detectors._calm import calm_spec, learn_calm, warm
from processors.detectors._robust import all_columns
from processors.detectors.base import Category, Detector, Round, State, spec
from processors.kinds import SensorKind
from processors.solar import DAY_MS, HOUR_MS, solar_offset_ms

SLOWDOWN = 0.5
"""Speed down by half its baseline scores 0.5, if occupancy also rose."""
CROWDING = 20.0
"""Occupancy up by 20 points scores 0.5, if speed also fell."""
TAU_MS = 1_800_000
WARMUP = 10
HOURS = 24
USUAL_DAYS = 7.0
"""Days of its hour each usual-occupancy bin remembers (a week: every weekday's pattern is in it)."""
USUAL_MIN = 10
"""Readings an hour's bin needs before its usual occupancy counts."""


class TrafficIncidentDetector(Detector):
    """Speed collapse with occupancy rise.

    Score: half the smaller of (speed drop / half the baseline speed) and
    (occupancy rise / 20 points), capped at 1.

    >>> import numpy as np
    >>> from processors.batch import series_batch
    >>> from processors.kinds import get_kind
    >>> kind = get_kind("traffic")
    >>> speed = np.r_[np.full(40, 42.0), np.full(5, 6.0)]
    >>> occupancy = np.r_[np.full(40, 18.0), np.full(5, 78.0)]
    >>> detector = TrafficIncidentDetector(kind)
    >>> scores = detector.update(series_batch(kind, {"mean_speed": speed, "occupancy": occupancy}))
    >>> float(scores[:40].max()), bool(scores[40:].min() >= 0.5)
    (0.0, True)
    """

    name = "traffic_incident"
    category = Category.RULE
    targets = ("traffic_incident",)
    description = "speed collapsing while occupancy climbs"

    @classmethod
    def applies_to(cls, kind: SensorKind) -> bool:
        return {"mean_speed", "occupancy"} <= set(kind.measure_names)

    def select_fields(self, kind: SensorKind) -> tuple[int, ...]:
        return (kind.index_of("mean_speed"), kind.index_of("occupancy"))

    def column_names(self) -> tuple[str, ...]:
        return ("mean_speed",)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._solar: tuple[NDArray[np.float64], NDArray[np.int64]] | None = None

    def state_spec(self) -> dict[str, tuple[np.dtype[Any], tuple[int, ...], Any]]:
        return calm_spec()

    def binned_spec(self) -> dict[str, tuple[np.dtype[Any], tuple[int, ...], Any]]:
        # Per hour of a working day, then of a weekend day: the mean occupancy of ordinary
        # readings and how many taught it.
        return {"usual": spec(np.float32, (2 * HOURS, 2), 0.0)}

    def _offsets(self, r: Round) -> NDArray[np.int64]:
        """Every device's solar offset (:func:`~processors.solar.solar_offset_ms`), worked out once per
        registry size (devices are only appended, and the table keeps their coordinates until then)."""
        longitudes = r.table.coordinates()[1]
        known = self._solar
        if known is None or known[0] is not longitudes:
            known = self._solar = (longitudes, solar_offset_ms(longitudes))
        return known[1]

    def _usual(self, r: Round) -> tuple[NDArray[np.intp], NDArray[np.float32], NDArray[np.float64]]:
        """The reading's hour bin (of its day type), its (mean, count), and the highest usual mean near it."""
        assert r.binned is not None
        local = r.ts_ms + self._offsets(r).take(r.device)  # solar_time_ms, per device once
        hour = (local // HOUR_MS % HOURS).astype(np.intp)
        weekend = (local // DAY_MS + 3) % 7 >= 5  # 1970-01-01 was a Thursday; 0 = Monday
        day_type = np.where(weekend, HOURS, 0)
        around = np.stack([(hour + HOURS - 1) % HOURS, hour, (hour + 1) % HOURS]) + day_type
        hour = hour + day_type
        cells = r.binned.get("usual", around)
        known = cells[:, :, 1] >= USUAL_MIN
        usual = np.where(known, cells[:, :, 0], -np.inf).max(axis=0)
        return hour, cells[1], usual

    def step(self, state: State, shared: State, r: Round) -> NDArray[np.float64]:
        base = state["baseline"].astype(np.float64)
        speed, occupancy = r.x[:, 0], r.x[:, 1]
        slowdown = (base[:, 0] - speed) / np.maximum(base[:, 0], 1.0)
        hour, cell, usual = self._usual(r)
        crowding = occupancy - np.fmax(base[:, 1], usual)
        evidence = np.minimum(slowdown / SLOWDOWN, crowding / CROWDING) / 2.0
        ready = warm(state, WARMUP)
        score = np.where(ready & ~np.isnan(evidence), np.clip(evidence, 0.0, 1.0), 0.0)
        have = learn_calm(state, r, score, self.threshold, TAU_MS, 0.02)
        ordinary = have[:, 1] & ready
        count = np.minimum(cell[:, 1] + 1.0, USUAL_DAYS * HOUR_MS / r.interval_ms)
        mean = cell[:, 0] + (np.nan_to_num(occupancy) - cell[:, 0]) / count
        assert r.binned is not None
        learned = np.stack([mean, count], axis=1)
        if not ordinary.all():
            learned = np.where(ordinary[:, None], learned, cell)
        r.binned.set("usual", hour, learned, old=cell)
        return np.where(all_columns(have), score, np.nan)[:, None]


DETECTOR = TrafficIncidentDetector
