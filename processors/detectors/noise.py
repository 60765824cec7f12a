"""Noise bursts: a measure whose reading-to-reading jitter suddenly grows several-fold.

Each change between consecutive readings is first corrected for the local trend
(the median of the three changes before it), so a steady rise at dawn or a
filling bin is not mistaken for jitter. The statistic is the median of the last
three corrected changes against the device's typical one. A median of three
ignores one big change (a level that moved, a lamp switching on), so only
sustained jitter, or a spike going out and back, raises it. Jitter goes back and
forth: three corrected changes of the same sign are a trend bending (daylight
fading at dusk), not noise, and do not score. Changes from or to a
physical limit (a value pinned at 0 or 100 %) say nothing about the noise and are
left out.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from processors.detectors._robust import Profile, Transform, at_bounds, median3, nan_to_zero, rate
from processors.detectors.base import Category, Detector, Round, State, spec
from processors.kinds import SensorKind

WARMUP = 12
RATIO_ALARM = 5.0
"""Median recent change over typical change that scores 0.5."""
SCALE_TAU_MS = 3_600_000
CLIP = 4.0
HOURLY = Profile(bins=24, days=3.0)
"""The usual jitter at each hour: dusk, rush hours and the like have their own."""
JUMP = 50.0
"""A change this many typical changes big is a new regime (a lamp switching on): relearn."""


class NoiseDetector(Detector):
    """Variance bursts on one measure.

    Score: (median of the last 3 trend-corrected changes) / (typical one) / 10,
    capped at 1, so a 5-fold rise scores 0.5. The typical change is the larger of
    the device's recent one and the one usual at this hour.

    >>> import numpy as np
    >>> from processors.batch import series_batch
    >>> from processors.kinds import get_kind
    >>> kind = get_kind("water")
    >>> noise = np.random.default_rng(2).standard_normal(300)
    >>> pressure = 3.0 + 0.02 * noise
    >>> pressure[200:230] += 0.18 * noise[200:230]
    >>> detector = NoiseDetector(kind)
    >>> column = detector.columns.index("pressure")
    >>> scores = detector.update(series_batch(kind, {"pressure": pressure}))[:, column]
    >>> bool(scores[:200].max() < 0.5), bool(scores[200:230].max() >= 0.5)
    (True, True)
    """

    name = "noise"
    category = Category.STATISTICAL
    targets = ("noise_burst",)
    description = "reading-to-reading jitter several times the device's usual"

    @classmethod
    def applies_to(cls, kind: SensorKind) -> bool:
        return any(not m.switching for m in kind.measures)

    def select_fields(self, kind: SensorKind) -> tuple[int, ...]:
        """Measures whose jitter means something (not those that switch between levels)."""
        return tuple(i for i, m in enumerate(kind.measures) if not m.switching)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.transform = Transform.for_fields(self.kind, self.fields)
        self._lo, self._hi = at_bounds(self.kind, self.fields)
        self._floor32 = self.transform.floor.astype(np.float32)

    def state_spec(self) -> dict[str, tuple[np.dtype[Any], tuple[int, ...], Any]]:
        f = (len(self.fields),)
        return {
            "last": spec(np.float32, f, np.nan),
            "steps": spec(np.float32, (len(self.fields), 3), np.nan),
            "d1": spec(np.float32, f, np.nan),
            "d2": spec(np.float32, f, np.nan),
            "typical": spec(np.float32, f, np.nan),
            "pinned": spec(np.bool_, f, True),
            "n": spec(np.uint16, f, 0),
            "last_ts": spec(np.int64, (), np.iinfo(np.int64).min),
        }

    def binned_spec(self) -> dict[str, tuple[np.dtype[Any], tuple[int, ...], Any]]:
        return {"hourly": spec(np.float32, (HOURLY.bins, len(self.fields)), np.nan)}

    def step(self, state: State, shared: State, r: Round) -> NDArray[np.float64]:
        y = self.transform(r.x)  # float32 already
        have = ~np.isnan(y)
        fresh = (r.ts_ms > state["last_ts"])[:, None]
        use = have & fresh
        last = state["last"].astype(np.float32, copy=False)
        pinned = (r.x <= self._lo) | (r.x >= self._hi)
        # A change from or to a physical limit is censored: no measure of the noise.
        step = np.where(pinned | state["pinned"], np.nan, y - last)
        steps = state["steps"].astype(np.float32, copy=False)
        s0, s1, s2 = steps[:, :, 0], steps[:, :, 1], steps[:, :, 2]
        trend = nan_to_zero(median3(s0, s1, s2))
        signed = step - trend
        change = np.abs(signed)
        d1 = state["d1"].astype(np.float32, copy=False)
        d2 = state["d2"].astype(np.float32, copy=False)
        floor = self.transform.floor
        sign = [np.where(np.abs(v) > floor, np.sign(v), 0.0) for v in (signed, d1, d2)]
        one_way = (sign[0] == sign[1]) & (sign[1] == sign[2])
        assert r.binned is not None
        hourly, where = HOURLY.at(r.binned, "hourly", r.ts_ms)
        typical = np.fmax(np.fmax(state["typical"].astype(np.float32, copy=False), hourly), self._floor32)
        n = state["n"]
        median = median3(np.abs(signed), np.abs(d1), np.abs(d2))  # NaN if any is missing
        ratio = np.where(use & (n >= WARMUP) & ~one_way & ~np.isnan(median), median / typical, 0.0)
        scores = np.minimum(np.maximum(ratio / (2.0 * RATIO_ALARM), 0.0), 1.0)

        measured = use & ~np.isnan(change)
        jumped = measured & (change > JUMP * typical) & (n >= WARMUP)
        scores = np.where(jumped, 0.0, scores)
        learn = measured & (scores < self.threshold) & ~jumped
        alpha = np.maximum(
            rate(r.interval_ms, SCALE_TAU_MS, 0.01), 1.0 / (n.astype(np.float32, copy=False) + 1.0)
        )
        observed = np.minimum(nan_to_zero(change), CLIP * typical)
        old = state["typical"].astype(np.float32, copy=False)
        new_typical = np.where(np.isnan(old), observed, old + alpha * (observed - old))
        state["typical"] = np.where(jumped, np.nan, np.where(learn, new_typical, old)).astype(np.float32)
        HOURLY.learn(r.binned, "hourly", where, observed, learn & (n >= WARMUP), r.interval_ms)
        state["d2"] = np.where(jumped, np.nan, np.where(use, d1, d2)).astype(np.float32)
        state["d1"] = np.where(jumped, np.nan, np.where(use, signed, d1)).astype(np.float32)
        shifted = np.concatenate([step[:, :, None], steps[:, :, :2]], axis=2)
        state["steps"] = np.where(
            (use & ~jumped)[:, :, None], shifted, np.where(jumped[:, :, None], np.nan, steps)
        )
        state["last"] = np.where(use, y, last).astype(np.float32)
        state["pinned"] = np.where(use, pinned, state["pinned"])
        counted = np.where(learn, np.minimum(n.astype(np.int64) + 1, 65535), n)
        state["n"] = np.where(jumped, 0, counted).astype(np.uint16)
        state["last_ts"] = np.maximum(state["last_ts"], r.ts_ms)
        return np.where(have, scores, np.nan)


DETECTOR = NoiseDetector
