"""Level shifts and drifts: a measure leaving the level this device usually has at this hour.

The baseline of each device and measure is a time-of-day profile (24 bins,
linearly interpolated, each seeded by the first reading of its hour, each
remembering about three days of its hour), learned online with clipped residuals,
as in robust Holt-Winters smoothing (Gelper, Fried and Croux, 2010). When the kind
has enough devices, what they all do at once (weather, a holiday, a city-wide
inversion) is taken out first: a robust running median of the fleet's residuals,
so one device's fault never moves it.

The remaining residual, in units of its robust scale (the larger of the device's
recent one and the one usual at this hour), is smoothed twice: over
about three readings (a shift) and over about an hour (a drift too slow to see
reading by reading). Each smoothed statistic is judged against its own learned
typical size, which also absorbs how much the residuals hang together in time.
Scores start once a device has a full day of history, because a time-of-day
profile needs one.

A measure that is off while another measure of the same device is off too is
not alarmed: a probe that fails spoils one measure, while rain reaching a water
node, a jam or smoke moves several of them together (:func:`corroborated`).

What a device's first day held stays in its profile for days; when the device
reads true again at those hours, the fleet's shape of the day (:mod:`._shape`)
shows that the profile, not the reading, is wrong, and those hours are rebuilt
from the shape instead of alarming.

What the profile must not learn: a reading pinned at the sensor's limit (it says
nothing of the level, and is not judged either), and a reading equal to the
device's last one (a frozen probe's hours would otherwise become the next day's
usual level there, and alarm the other way once it reads true again).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from processors.detectors import _shape
from processors.detectors._robust import (
    DAY_MS,
    MAD_TO_SIGMA,
    Profile,
    Where,
    and_rows,
    any_column,
    clean_in_place,
    column_counts,
    column_medians,
    column_quantile,
    column_sums,
    nan_to_zero,
    rate,
    z_score,
)
from processors.detectors._scaled import ContinuousDetector
from processors.detectors.base import Binned, Category, Round, State, spec

BINS = 24
PROFILE = Profile(BINS, days=3.0)
"""The usual level at each hour, net of the slow level."""
SCALES = Profile(BINS, days=3.0)
"""The usual size of the residual at each hour."""
WARMUP_MS = DAY_MS
WARMUP_READINGS = 30
Z_ALARM = 6.5
FAST = 0.3
SLOW_TAU_MS = 2 * 3_600_000
SCALE_TAU_MS = DAY_MS
SD_TAU_MS = DAY_MS
RE_ACCEPT_MS = DAY_MS
"""A device off its baseline this long has changed for good: its baseline restarts."""
CLIP = 2.5
COMMON_ERRORS = 3.0
"""A move of the fleet's median beyond this many standard errors is followed at once..."""
FOLLOW_PEERS = 5
"""... when at least this many devices moved it."""
SPREAD_QUANTILE = 0.9
USUAL_SPREAD = 2.0
"""The fast statistic is in units of its own mean size, so in a calm fleet its 90th percentile is
about 2 (for a normal variable, the 90th percentile of |x| is 2.06 times the mean of |x|)."""
ONE_READING = 0.5
"""The largest share of the way to an alarm one reading can take the fast statistic."""
WARNING = 0.5
"""Readings scoring at least this share of the threshold teach the baseline nothing."""
HOLD_MS = 3_600_000
HOLD_SCORE = 0.6
"""For an hour after its last alarming reading, an alarm's score stays at this share of the threshold."""
TOGETHER = 0.6
"""A measure scoring this share of the threshold is *off*; two measures of one device off together ..."""
TOGETHER_MS = 1_800_000
"""... within this time are the world changing around the device, not one probe failing."""
SINCE_MS = 1_577_836_800_000
"""2020-01-01 UTC: when the seconds of ``off_s`` count from (an int32 of them lasts until 2088)."""
NEVER = np.iinfo(np.int32).min
"""``off_s`` of a measure never off."""
_FLOAT32_MAX = float(np.finfo(np.float32).max)


class ShiftDetector(ContinuousDetector):
    """Level shifts and slow drifts against a seasonal, fleet-corrected baseline.

    Score: the larger of the fast and slow smoothed residual, each over its own
    typical size (in standard deviations), divided by 13 (6.5 score 0.5), capped at 1. Six and a
    half, not the textbook three to five: residuals against a learned profile wander with the
    weather and the traffic for hours, and at five this detector raised about one false alarm per
    ten device-days on the evaluation fleet.

    >>> import numpy as np
    >>> from processors.batch import series_batch
    >>> from processors.kinds import get_kind
    >>> kind = get_kind("water")
    >>> hours = np.arange(3 * 288) / 12.0
    >>> noise = 0.02 * np.random.default_rng(3).standard_normal(hours.size)
    >>> ph = 7.3 + 0.1 * np.sin(2 * np.pi * hours / 24) + noise
    >>> ph[-100:] += np.linspace(0.0, 0.8, 100)
    >>> detector = ShiftDetector(kind)
    >>> scores = detector.update(series_batch(kind, {"ph": ph}))[:, detector.columns.index("ph")]
    >>> bool(scores[:-100].max() < 0.5), bool(scores[-50:].min() >= 0.5)
    (True, True)
    """

    name = "shift"
    category = Category.STATISTICAL
    targets = ("drift", "recalibration")
    description = "a level shift or drift away from this device's usual level for the time of day"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._sd0 = np.sqrt(FAST / (2.0 - FAST))

    def state_spec(self) -> dict[str, tuple[np.dtype[Any], tuple[int, ...], Any]]:
        f = (len(self.fields),)
        return {
            "scale": spec(np.float32, f, np.nan),
            "fast": spec(np.float32, f, 0.0),
            "slow": spec(np.float32, f, 0.0),
            "fast_sd": spec(np.float32, f, np.nan),
            "slow_sd": spec(np.float32, f, np.nan),
            "n": spec(np.uint32, f, 0),
            "off_ms": spec(np.float32, f, 0.0),
            "hold_ms": spec(np.float32, f, 0.0),
            "off_s": spec(np.int32, f, NEVER),
            "first_ts": spec(np.int64, (), np.iinfo(np.int64).max),
            "last_ts": spec(np.int64, (), np.iinfo(np.int64).min),
            "last_x": spec(np.float32, f, np.nan),
        }

    def binned_spec(self) -> dict[str, tuple[np.dtype[Any], tuple[int, ...], Any]]:
        f = len(self.fields)
        return {
            "profile": spec(np.float32, (BINS, f), np.nan),
            "hourly_scale": spec(np.float32, (BINS, f), np.nan),
            "flagged_day": spec(np.int16, (BINS, f), -1),
        }

    def shared_spec(self) -> State:
        f = len(self.fields)
        return {
            "common": np.zeros(f, dtype=np.float32),
            "spread": np.full(f, np.nan, dtype=np.float32),
            **_shape.shape_spec(BINS, f),
        }

    def step(self, state: State, shared: State, r: Round) -> NDArray[np.float64]:
        y = self.transform(r.x)  # float32 already
        have = ~np.isnan(y)
        pinned = self.pinned(r.x)
        fresh = r.ts_ms > state["last_ts"]
        use = and_rows(have & ~pinned, fresh)
        binned = r.binned
        assert binned is not None
        bins = PROFILE.locate(r.ts_ms)  # SCALES has as many bins
        seasonal, where = PROFILE.at(binned, "profile", r.ts_ms, bins)
        known = ~np.isnan(seasonal)
        resid = y - seasonal
        n = state["n"]
        first_ts = np.minimum(state["first_ts"], r.ts_ms)
        warm = and_rows(n >= WARMUP_READINGS, (r.ts_ms - first_ts) >= WARMUP_MS)
        judged = use & known

        hourly_scale, scale_where = SCALES.at(binned, "hourly_scale", r.ts_ms, bins)
        scale = np.fmax(
            np.fmax(state["scale"].astype(np.float32, copy=False), hourly_scale), self.floor(len(y))
        )
        common = shared["common"]
        peers = len(r.table) >= self.config.peer_devices
        contributing = judged & warm
        counts = column_counts(contributing) if peers else np.zeros(len(self.fields), dtype=np.int64)
        if peers:
            if counts.any():
                median = column_medians(resid, contributing)
                # The round's median is noisy when few devices report, so small moves are
                # smoothed; a move beyond three of its standard errors (the city cooled by
                # four degrees in a shower) is real and followed at once, or every device
                # would see it as its own shift.
                typical = column_sums(np.where(contributing, scale, 0.0)) / np.maximum(counts, 1)
                error = COMMON_ERRORS * MAD_TO_SIGMA * typical / np.sqrt(np.maximum(counts, 1))
                move = median - common
                small = np.clip(move, -error, error)
                weight = counts / (counts + len(r.table) / 8.0)
                jump = np.where(counts >= FOLLOW_PEERS, move - small, 0.0)
                common = np.where(counts > 0, common + weight * small + jump, common)
                common = common.astype(np.float32)
                shared["common"] = common
            resid = resid - common
        z = clean_in_place(np.where(judged, resid / scale, 0.0))
        slow_alpha = rate(r.interval_col, SLOW_TAU_MS, 0.002)
        fast = state["fast"].astype(np.float32, copy=False)
        slow = state["slow"].astype(np.float32, copy=False)
        fast_sd = np.fmax(np.where(np.isnan(state["fast_sd"]), self._sd0, state["fast_sd"]), 1e-3)
        slow_sd0 = np.sqrt(slow_alpha / (2.0 - slow_alpha))
        slow_sd = np.fmax(np.where(np.isnan(state["slow_sd"]), slow_sd0, state["slow_sd"]), 1e-3)
        # Huber-clipped, as in robust Holt-Winters: one wild reading (a spike, or a device a
        # shower reached seconds before the fleet's median did) takes the fast statistic at
        # most half way to an alarm, so a shift shows on its third reading, not its first.
        limit = ONE_READING * Z_ALARM * MAD_TO_SIGMA * fast_sd / FAST
        step_z = np.minimum(np.maximum(z, -limit), limit)
        fast = np.where(judged, fast + FAST * (step_z - fast), fast)
        slow = np.where(judged, slow + slow_alpha * (step_z - slow), slow)
        # The slow statistic may not claim more than the readings show now (plus their
        # noise): once they are back, two hours of memory must not keep the alarm going
        # (after a traffic jam it would flicker on and off for hours).
        fast_stat = np.abs(fast) / fast_sd
        same_way = np.sign(fast) == np.sign(slow)
        slow_stat = np.where(same_way, np.minimum(np.abs(slow), np.abs(fast) + fast_sd) / slow_sd, 0.0)
        stat = np.maximum(fast_stat, slow_stat) / MAD_TO_SIGMA
        spread = self._fleet_spread(shared, r, fast_stat, contributing, counts)
        for j in range(stat.shape[1]):  # a field at a time: a (fields,) array broadcasts slowly
            stat[:, j] /= spread[j]
        scores = np.where(contributing, z_score(stat, Z_ALARM), 0.0)
        found = self._rebuild(shared, r, where, y - common, seasonal, scale, scores) if peers else None
        rebuilt = None if found is None else found[0]
        if rebuilt is not None:
            scores = np.where(rebuilt, 0.0, scores)
            fast = np.where(rebuilt, 0.0, fast)
            slow = np.where(rebuilt, 0.0, slow)
        flagged = scores >= self.threshold
        # Warning zone (as in Gama et al.'s drift detection method): a reading on its way
        # to an alarm teaches no sizes (the scale, the statistics' own typical sizes), or a
        # slow drift would teach them that it is normal and never be seen. The profile
        # still learns from it, by clipped residuals as always: frozen, it would go stale
        # at the hours a device happened to be wary, and be off there the next day.
        wary = contributing & (scores >= WARNING * self.threshold)
        held = state["hold_ms"].astype(np.float32, copy=False)
        held = np.where(flagged, HOLD_MS, np.maximum(held - r.interval_col, 0.0))
        # An alarm is held (below the threshold, above the re-arm level) for a while after
        # its last alarming reading, so noise around the threshold extends one alarm
        # instead of starting a new one every few readings.
        reported = np.where(judged & (held > 0), np.maximum(scores, HOLD_SCORE * self.threshold), scores)
        # Several measures of one device off together: the world changed, not one probe
        # (see :func:`corroborated`). Reported below the threshold, still above the re-arm
        # level, so an alarm already running is neither ended nor started again.
        off_now = scores >= TOGETHER * self.threshold
        if off_now.any():
            together, state["off_s"] = corroborated(state["off_s"], off_now, r.ts_ms)
            if together.any():
                reported = np.where(together, np.minimum(reported, HOLD_SCORE * self.threshold), reported)

        learn = judged & ~wary if rebuilt is None else judged & ~wary & ~rebuilt
        zc = np.minimum(np.maximum(z, -CLIP), CLIP)
        # Unknown hours are seeded with what the device reads; known ones move by clipped residuals.
        target = np.where(known, seasonal + zc * scale, y)
        # A reading equal to the device's last one (to the digit it reports) may be a frozen
        # sensor, and teaches the profile nothing: a stuck probe's hours must not become
        # tomorrow's usual level there (a day later they alarm the other way). Real readings
        # repeat now and then; those hours still learn from the readings that differ.
        x = r.x.astype(np.float32)
        repeated = x == state["last_x"]
        state["last_x"] = np.where(use, x, state["last_x"])
        teach = ((judged & ~flagged) | (use & ~known)) & ~repeated
        if rebuilt is not None:
            teach &= ~rebuilt
        PROFILE.learn(binned, "profile", where, target, teach, r.interval_col)
        if found is not None:
            self._write_rebuilt(shared, binned, where, found)

        n_float = n.astype(np.float32, copy=False)
        running_mean = 1.0 / (n_float + 1.0)
        scale_alpha = np.maximum(rate(r.interval_col, SCALE_TAU_MS, 0.0), running_mean)
        observed = np.minimum(np.abs(nan_to_zero(resid)), CLIP * scale) * MAD_TO_SIGMA
        old_scale = state["scale"].astype(np.float32, copy=False)
        new_scale = np.where(np.isnan(old_scale), observed, old_scale + scale_alpha * (observed - old_scale))
        # What is usual at each hour is learned from calm readings, and from alarming ones
        # that recur at the same hour day after day: a lamp that switches at dusk every
        # evening makes dusk a noisy hour, while a one-off drift teaches it nothing.
        # Clipped from the first day on: a fault or a storm in a device's first day must not
        # make its hours look noisy for days (unclipped, they hid the next day's drifts).
        recurring = self._recurring(binned, scale_where, r.ts_ms, flagged)
        SCALES.learn(
            binned,
            "hourly_scale",
            scale_where,
            observed,
            learn | recurring,
            r.interval_col,
        )
        if SD_TAU_MS == SCALE_TAU_MS:
            sd_alpha = scale_alpha
        else:
            sd_alpha = np.maximum(rate(r.interval_col, SD_TAU_MS, 0.0), running_mean)
        new_fast_sd = fast_sd + sd_alpha * (np.minimum(np.abs(fast), CLIP * fast_sd) - fast_sd)
        new_slow_sd = slow_sd + sd_alpha * (np.minimum(np.abs(slow), CLIP * slow_sd) - slow_sd)

        off = state["off_ms"].astype(np.float32, copy=False) + np.where(wary, r.interval_col, 0.0)
        off = np.where(judged & ~wary, 0.0, off)
        if rebuilt is not None:
            off = np.where(rebuilt, 0.0, off)
        restart = off >= RE_ACCEPT_MS
        # Off its baseline for a day: the device has changed for good; learn it again.
        restarting = bool(restart.any())
        if restarting:
            for b in range(BINS):
                index = np.full(r.device.size, b, dtype=np.intp)
                binned.set("profile", index, np.where(restart, np.nan, binned.get("profile", index)))
            fast = np.where(restart, 0.0, fast)
            slow = np.where(restart, 0.0, slow)
            off = np.where(restart, 0.0, off)
            held = np.where(restart, 0.0, held)
            first_ts = np.where(any_column(restart), r.ts_ms, first_ts)

        state["scale"] = np.where(learn, new_scale, old_scale).astype(np.float32)
        state["fast"] = fast.astype(np.float32)
        state["slow"] = slow.astype(np.float32)
        state["fast_sd"] = np.where(learn, new_fast_sd, fast_sd).astype(np.float32)
        state["slow_sd"] = np.where(learn, new_slow_sd, slow_sd).astype(np.float32)
        state["off_ms"] = off.astype(np.float32)
        state["hold_ms"] = held.astype(np.float32)
        state["n"] = np.where(use, np.minimum(n.astype(np.int64) + 1, 2**32 - 1), n).astype(np.uint32)
        state["first_ts"] = first_ts
        state["last_ts"] = np.maximum(state["last_ts"], r.ts_ms)
        # A reading pinned at the sensor's limit says nothing of the level (a quiet road reads 0 %
        # occupancy for a while at night): not judged, so an alarm running neither ends nor restarts.
        if not fresh.all():
            reported = np.where(fresh[:, None], reported, 0.0)
        return np.where(have & ~pinned, reported, np.nan)

    def _rebuild(
        self,
        shared: State,
        r: Round,
        where: Where,
        y: NDArray[np.floating[Any]],
        seasonal: NDArray[np.floating[Any]],
        scale: NDArray[np.floating[Any]],
        scores: NDArray[np.floating[Any]],
    ) -> _shape.Rebuilt | None:
        """Cells whose profile is wrong here (see :mod:`._shape`), their rows and those rows' offsets.

        Teaches the fleet's shape first. None when no cell qualifies (the usual round).
        """
        binned = r.binned
        assert binned is not None
        _shape.learn(shared, binned, "profile", r.ts_ms)
        suspect = scores >= WARNING * self.threshold
        if not suspect.any():
            return None
        found, rows, level = _shape.wrong_profile(
            shared, binned, "profile", where, y, seasonal, scale, suspect
        )
        return (found, rows, level) if found.any() else None

    @staticmethod
    def _write_rebuilt(
        shared: State,
        binned: Binned,
        where: Where,
        rebuilt: _shape.Rebuilt,
    ) -> None:
        """Set the two bins around each rebuilt cell to the fleet's shape plus the device's offset."""
        found, rows, level = rebuilt
        index = where.bins.index[:, rows]
        some = binned.rows(rows)
        expected = shared["shape"][index] + level[None]
        some.set("profile", index, np.where(found[rows][None], expected, some.get("profile", index)))

    def _fleet_spread(
        self,
        shared: State,
        r: Round,
        fast_stat: NDArray[np.floating[Any]],
        contributing: NDArray[np.bool_],
        counts: NDArray[np.int64],
    ) -> NDArray[np.float32]:
        """How many times further off than usual the fleet's most-off tenth is (at least 1).

        The median takes out what all devices do at once; some causes move only part of
        the fleet, or reach its devices hours apart: the Monday rush congests the roads
        that congest, rain reaches water nodes far from the plant hours after the near
        ones. Then many devices are off together, the fleet's 90th percentile of the
        fast statistic rises above its usual level, and every device's statistic is
        divided by that rise above its calm level (:data:`USUAL_SPREAD`): being off is less
        surprising when a tenth of the fleet is too. A few faulty devices (fewer than a
        tenth) do not move it.
        """
        spread = shared["spread"]
        if len(r.table) < self.config.peer_devices:
            return np.ones(len(self.fields), dtype=np.float32)
        if counts.any():
            top = column_quantile(fast_stat, contributing, SPREAD_QUANTILE)
            weight = counts / (counts + len(r.table) / 8.0)
            spread = np.where(counts > 0, spread + weight * (top - spread), spread).astype(np.float32)
            spread = np.where(np.isnan(spread) & (counts > 0), top, spread).astype(np.float32)
            shared["spread"] = spread
        # np.nan_to_num(spread / USUAL_SPREAD, nan=1.0), without its overhead on three numbers.
        ratio = spread / USUAL_SPREAD
        ratio = np.where(np.isnan(ratio), np.float32(1.0), ratio)
        ratio = np.minimum(np.maximum(ratio, -_FLOAT32_MAX), _FLOAT32_MAX).astype(np.float32)
        found: NDArray[np.float32] = np.maximum(ratio, 1.0)
        return found

    @staticmethod
    def _recurring(
        binned: Binned, where: Where, ts_ms: NDArray[np.int64], flagged: NDArray[np.bool_]
    ) -> NDArray[np.bool_]:
        """Alarming readings whose hour also alarmed yesterday (or earlier today); records today's."""
        if not flagged.any():
            return flagged
        bins = where.bins
        nearest = np.where(bins.weight[:, 0] < 0.5, bins.i0, bins.i1)
        day = (ts_ms // DAY_MS % 30_000).astype(np.int16)[:, None]
        last = binned.get("flagged_day", nearest)
        recurring: NDArray[np.bool_] = flagged & ((last == day) | (last == day - 1))
        binned.set("flagged_day", nearest, np.where(flagged, day, last))
        return recurring


def corroborated(
    off_s: NDArray[np.int32], off: NDArray[np.bool_], ts_ms: NDArray[np.int64]
) -> tuple[NDArray[np.bool_], NDArray[np.int32]]:
    """Measures off while another measure of the same device is, or was within :data:`TOGETHER_MS`.

    A sensor fault (a fouled or drifting probe, a bad calibration, a frozen
    reading) spoils one measure; a change in what is measured moves several at
    once. Rain reaching a water node raises its turbidity and lowers its
    conductivity and pH within the same hour; a jam drops a road's speed as its
    occupancy climbs; smoke raises PM2.5 and PM10 together. The fleet's median
    cannot take these out when they reach devices hours apart (rain reaches the
    far end of the network hours after the near one); the device's own other
    measures can. ``off_s`` is, per measure, when it was last off (seconds since
    2020, :data:`SINCE_MS`: four bytes, not eight, as the state is copied every
    round); returns which measures are excused and the new ``off_s``. Only rows
    with a measure off are worked on (few, in a calm fleet).
    """
    together = np.zeros_like(off)
    rows = np.flatnonzero(any_column(off))
    if rows.size == 0:
        return together, off_s
    now = off[rows]
    seconds = ((ts_ms[rows] - SINCE_MS) // 1000)[:, None]
    recent = now | ((seconds - off_s[rows].astype(np.int64)) * 1000 <= TOGETHER_MS)
    others = recent.sum(axis=1, keepdims=True) - recent
    together[rows] = now & (others > 0)
    updated = off_s.copy()
    updated[rows] = np.where(now, seconds, off_s[rows])
    return together, updated


DETECTOR = ShiftDetector
