"""Spikes: one reading far off the sensor's short-term course that the next reading takes back.

A robust Holt smoother (level and trend, updated with clipped residuals) predicts
each reading from the ones before it, and a robust scale of the one-step residuals
says how far off is unusual for this device and measure. A reading more than 5
scales off becomes a *candidate* and is not learned. The next reading decides:

- it comes back at least half way (the jump up is matched by a jump down): a
  spike, scored on the smaller of the two jumps, so a level change never scores;
- it stays off in the same direction: the level moved (a bin was emptied, a lamp
  switched on), and the smoother restarts from the new level without an alarm.

So the alarm comes one reading after the spike, on the reading that proves it.

The scale is the larger of a slow one (hours) and a quick one (the last few
readings), so a sensor whose noise grows with its level (daylight in the morning)
is not judged by the quiet night before. The quick one follows the median of the
last three residuals' sizes, not each one: noise that has grown shows in two
readings out of three, while one ordinary reading two or three sigmas out (as one
in a few dozen is) would otherwise inflate it for several readings and take a
12-sigma spike right after it below the alarm. A residual past three scales is not
ordinary: noise bursting, which the quick scale follows at once. Readings pinned at a physical limit
(humidity at 100 %) carry no noise and do not teach the scale; a reading leaving
the limit is not a candidate.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from processors.detectors._robust import (
    MAD_TO_SIGMA,
    and_rows,
    clean_in_place,
    median3,
    nan_to_zero,
    rate,
    uniform_column,
    z_score,
)
from processors.detectors._scaled import ScaledDetector
from processors.detectors.base import Category, Round, State, spec

WARMUP = 12
"""Readings of a device and measure before its scores count."""
Z_CANDIDATE = 5.0
Z_ALARM = 5.0
ALPHA = 0.3
"""Level smoothing per reading."""
BETA = 0.05
"""Trend smoothing per reading (of the level's corrections)."""
SCALE_TAU_MS = 2 * 3_600_000
QUICK = 0.3
"""Smoothing of the quick scale, per reading."""
RETURN = 0.5
"""A spike's next reading must come back at least this share of the way."""
CLIP = 3.0


class SpikeDetector(ScaledDetector):
    """Isolated outliers, confirmed by the next reading.

    Score: the smaller of the jump away and the jump back, in robust scales of
    one-step residuals, divided by 10 (so 5 scales is 0.5), capped at 1.

    >>> import numpy as np
    >>> from processors.batch import series_batch
    >>> from processors.kinds import get_kind
    >>> kind = get_kind("water")
    >>> ph = 7.2 + 0.02 * np.random.default_rng(1).standard_normal(200)
    >>> ph[150] = 8.4
    >>> detector = SpikeDetector(kind)
    >>> scores = detector.update(series_batch(kind, {"ph": ph}))[:, detector.columns.index("ph")]
    >>> int(np.argmax(scores)), round(float(scores[151]), 2), bool(np.delete(scores, 151).max() < 0.5)
    (151, 1.0, True)
    """

    name = "spike"
    category = Category.STATISTICAL
    targets = ("spike",)
    description = "a single reading far off its short-term course, taken back by the next one"

    def state_spec(self) -> dict[str, tuple[np.dtype[Any], tuple[int, ...], Any]]:
        f = (len(self.fields),)
        return {
            "level": spec(np.float32, f, np.nan),
            "trend": spec(np.float32, f, 0.0),
            "scale": spec(np.float32, f, np.nan),
            "quick": spec(np.float32, f, np.nan),
            "sizes": spec(np.float32, (len(self.fields), 2), np.nan),
            "candidate": spec(np.float32, f, np.nan),
            "pinned": spec(np.bool_, f, False),
            "n": spec(np.uint16, f, 0),
            "last_ts": spec(np.int64, (), np.iinfo(np.int64).min),
        }

    def step(self, state: State, shared: State, r: Round) -> NDArray[np.float64]:
        y = self.transform(r.x)
        have = ~np.isnan(y)
        last_ts = state["last_ts"]
        fresh = r.ts_ms > last_ts
        have_fresh = and_rows(have, fresh)
        gap = uniform_column(np.clip((r.ts_ms - last_ts).astype(np.float64) / r.interval_ms, 1.0, 10.0))
        level = state["level"].astype(np.float64)
        trend = state["trend"].astype(np.float64)
        quick = state["quick"].astype(np.float64)
        scale = np.fmax(np.fmax(state["scale"].astype(np.float64), quick), self.floor(len(y)))
        pinned = self.pinned(r.x)
        candidate = state["candidate"].astype(np.float64)
        n = state["n"]
        started = ~np.isnan(level)

        predicted = level + trend * gap
        resid = y - predicted
        with np.errstate(invalid="ignore"):
            z = resid / scale
        usable = have_fresh & started
        warm = n >= WARMUP

        pending = usable & ~np.isnan(candidate)
        # A reading after a candidate (rare in a calm fleet) decides it; other rows score 0.
        deciding = bool(pending.any())
        if deciding:
            came_back = candidate - resid
            returned = (np.sign(came_back) == np.sign(candidate)) & (
                np.abs(came_back) >= RETURN * np.abs(candidate)
            )
            spike_z = np.where(
                pending & returned, np.minimum(np.abs(candidate), np.abs(came_back)) / scale, 0.0
            )
            clean_in_place(spike_z)
        else:
            spike_z = np.zeros(resid.shape)
        scores = np.where(have, z_score(spike_z, Z_ALARM), np.nan)

        z = clean_in_place(z)
        big = usable & warm & (np.abs(z) >= Z_CANDIDATE) & ~state["pinned"]
        if deciding:
            moved = big & pending & (np.sign(resid) == np.sign(candidate)) & ~(scores >= self.threshold)
            new_candidate = big & ~moved
            any_moved = bool(moved.any())
        else:
            moved, new_candidate, any_moved = big, big, False  # ``moved`` is not read then
        learn = usable & ~big

        clipped = np.clip(z, -CLIP, CLIP) * scale
        new_level = np.where(learn, predicted + ALPHA * clipped, level)
        new_trend = np.where(learn, trend + BETA * ALPHA * clipped / gap, trend)
        if any_moved:
            # A level that moved for good: start again from where the readings now are, and
            # learn the new regime's noise afresh (a lamp's full power is noisier than standby).
            new_level = np.where(moved, y, new_level)
            new_trend = np.where(moved, 0.0, new_trend)
        # The first reading of a measure starts the smoother.
        begin = have_fresh & ~started
        if begin.any():
            new_level = np.where(begin, y, new_level)

        alpha = np.maximum(rate(r.interval_col, SCALE_TAU_MS, 0.02), 1.0 / (n.astype(np.float64) + 1.0))
        observed = np.minimum(np.abs(nan_to_zero(resid)), CLIP * scale) * MAD_TO_SIGMA
        old_scale = state["scale"].astype(np.float64)
        seed_scale = np.isnan(old_scale) & learn
        teach = learn & ~pinned & ~state["pinned"]
        new_scale = np.where(
            teach, np.where(seed_scale, observed, old_scale + alpha * (observed - old_scale)), old_scale
        )
        # The quick scale follows the median of the last three sizes (the two before, kept in
        # ``sizes``, and this one): one ordinary reading two or three sigmas out does not move
        # it. A residual past the clip is no ordinary reading: noise bursting, which the scale
        # follows at once (or the burst's next reading would look like a spike).
        sizes = state["sizes"].astype(np.float64)
        typical = median3(sizes[:, :, 0], sizes[:, :, 1], observed)
        burst = np.abs(nan_to_zero(resid)) >= CLIP * scale
        typical = np.where(np.isnan(typical) | burst, observed, typical)
        new_quick = np.where(
            teach, np.where(np.isnan(quick), observed, quick + QUICK * (typical - quick)), quick
        )
        state["sizes"] = np.where(
            teach[:, :, None], np.stack([sizes[:, :, 1], observed], axis=2), sizes
        ).astype(np.float32)

        state["level"] = new_level.astype(np.float32)
        state["trend"] = new_trend.astype(np.float32)
        if any_moved:
            new_scale = np.where(moved, np.nan, new_scale)
            new_quick = np.where(moved, np.nan, new_quick)
            state["sizes"] = np.where(moved[:, :, None], np.float32(np.nan), state["sizes"])
        state["scale"] = new_scale.astype(np.float32)
        state["quick"] = new_quick.astype(np.float32)
        state["pinned"] = (pinned & have_fresh) | (state["pinned"] & ~have_fresh)
        state["candidate"] = np.where(new_candidate, resid, np.where(usable, np.nan, candidate)).astype(
            np.float32
        )
        counted = np.where(learn | begin, np.minimum(n.astype(np.int64) + 1, 65535), n)
        if any_moved:
            counted = np.where(moved, 0, counted)
        state["n"] = counted.astype(np.uint16)
        state["last_ts"] = np.maximum(last_ts, r.ts_ms)
        if fresh.all():
            return scores
        return np.where(fresh[:, None], scores, np.where(have, 0.0, np.nan))


DETECTOR = SpikeDetector
