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

from processors.detectors._robust import Profile, Tiled, and_rows, clean_in_place, median3, rate
from processors.detectors._scaled import ContinuousDetector
from processors.detectors.base import Category, Round, State, spec

WARMUP = 12
RATIO_ALARM = 5.0
"""Median recent change over typical change that scores 0.5."""
SCALE_TAU_MS = 3_600_000
CLIP = 4.0
HOURLY = Profile(bins=24, days=3.0)
"""The usual jitter at each hour: dusk, rush hours and the like have their own."""
JUMP = 50.0
"""A change this many typical changes big is a new regime (a lamp switching on): relearn."""


class NoiseDetector(ContinuousDetector):
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

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._floor32 = Tiled(self.transform.floor.astype(np.float32))
        self._below = Tiled(-self.transform.floor)

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
        # Written for few passes over (devices, fields) and few temporaries: at thousands of
        # devices, each full-size array allocated and freed costs page faults as well as time.
        y = self.transform(r.x)  # float32 already
        missing = np.isnan(y)
        use = and_rows(~missing, r.ts_ms > state["last_ts"])
        last = state["last"]
        pinned = self.pinned(r.x)
        # A change from or to a physical limit is censored: no measure of the noise.
        step = y - last
        np.copyto(step, np.nan, where=pinned | state["pinned"])
        steps = state["steps"]
        s0, s1, s2 = steps[:, :, 0], steps[:, :, 1], steps[:, :, 2]
        signed = step - clean_in_place(median3(s0, s1, s2))
        change = np.abs(signed)
        d1, d2 = state["d1"], state["d2"]
        # Three corrected changes beyond the floor, all up or all down: a trend bending, not jitter.
        rows = len(y)
        floor, below = self.floor(rows), self._below(rows)
        up1, down1 = d1 > floor, d1 < below
        one_way = (signed > floor) == up1
        one_way &= (signed < below) == down1
        one_way &= (d2 > floor) == up1
        one_way &= (d2 < below) == down1
        assert r.binned is not None
        hourly, where = HOURLY.at(r.binned, "hourly", r.ts_ms)
        typical = np.fmax(np.fmax(state["typical"], hourly), self._floor32(rows))
        n = state["n"]
        warm = n >= WARMUP
        median = median3(change, np.abs(d1), np.abs(d2))  # NaN if any is missing
        judged = use & warm
        judged &= ~one_way
        judged &= ~np.isnan(median)
        scores = np.zeros_like(median)
        np.divide(median, typical, out=scores, where=judged)
        # Scores are ratio / 10 capped at 1; the ratio is never negative, so no floor at 0.
        np.divide(scores, 2.0 * RATIO_ALARM, out=scores)
        np.minimum(scores, 1.0, out=scores)

        measured = use & ~np.isnan(change)
        jumped = measured & (change > JUMP * typical)
        jumped &= warm
        any_jump = bool(jumped.any())
        if any_jump:
            np.copyto(scores, 0.0, where=jumped)
        learn = measured & (scores < self.threshold)
        if any_jump:
            learn &= ~jumped
        alpha = np.maximum(rate(r.interval_col, SCALE_TAU_MS, 0.01), 1.0 / (n.astype(np.float32) + 1.0))
        observed = clean_in_place(change)  # ``change`` is not read again
        np.minimum(observed, CLIP * typical, out=observed)
        old = state["typical"]
        moved = observed - old  # old + alpha * (observed - old), in place
        moved *= alpha
        moved += old
        np.copyto(moved, observed, where=np.isnan(old))
        new_typical = np.where(learn, moved, old)
        HOURLY.learn(r.binned, "hourly", where, observed, learn & warm, r.interval_col)
        new_d2 = np.where(use, d1, d2)
        new_d1 = np.where(use, signed, d1)
        new_steps = steps.copy()
        np.copyto(new_steps[:, :, 0], step, where=use)
        np.copyto(new_steps[:, :, 1], s0, where=use)
        np.copyto(new_steps[:, :, 2], s1, where=use)
        counted = n + (learn & (n < np.iinfo(np.uint16).max))
        if any_jump:
            for array in (new_typical, new_d1, new_d2):
                np.copyto(array, np.nan, where=jumped)
            np.copyto(new_steps, np.nan, where=jumped[:, :, None])
            np.copyto(counted, 0, where=jumped)
        state["typical"] = new_typical
        state["d2"] = new_d2
        state["d1"] = new_d1
        state["steps"] = new_steps
        state["last"] = np.where(use, y, last)
        state["pinned"] = np.where(use, pinned, state["pinned"])
        state["n"] = counted
        state["last_ts"] = np.maximum(state["last_ts"], r.ts_ms)
        np.copyto(scores, np.nan, where=missing)
        return scores


DETECTOR = NoiseDetector
