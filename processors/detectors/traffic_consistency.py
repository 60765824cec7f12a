"""Speed or occupancy out of line with the vehicle count: flow equals density times speed.

A road detector measures three things that physics ties together. The vehicles
counted per interval (flow) equal the vehicles on the loop's stretch (density,
which occupancy measures, through the vehicles' effective length) times their
speed: ``count = K * occupancy * speed``, with one constant ``K`` per detector
(its lanes, loop length and the fleet's vehicle lengths: the "g-factor" of
California's PeMS loop diagnostics). Rain, rush hours, weekends and jams move
all three together and leave ``K`` alone; a drifting speed or occupancy sensor
does not. So this sees a drift that the time-of-day baseline of ``shift``
cannot: the day-to-day swing of a road's rush hour is larger than a slow sensor
fault, but it never breaks the identity.

Each detector's ``K`` is a ratio of sums over about a day of calm readings (busy
minutes, where counts are large, weigh most). The identity is judged on the
last half hour: the log of its counted over its predicted vehicles, in units of
its standard error (the counts' Poisson noise plus the device's own learned
excess).

Which measure is wrong? The identity alone cannot say: a speed reading too high
and an occupancy reading too high break it the same way. A second relation can:
each road's speed falls along a straight line as occupancy rises (Greenshields'
diagram; learned from the same calm readings). If occupancy is the faulty one,
the occupancy the count implies (``count / (K * speed)``) sits on that line; if
speed is, the speed the count implies does. An alarm is raised on the measure
whose replacement fits the line clearly better, and held on it while the
identity stays broken; while neither fits clearly better, nothing is raised yet.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from processors.detectors._consistency import Window, blamed_scores, held_blame, settle, window_spec
from processors.detectors._robust import clean_in_place, uniform_column, z_score
from processors.detectors.base import Category, Detector, Round, State, spec
from processors.kinds import SensorKind

WARMUP_MS = 2 * 3_600_000
WARMUP_READINGS = 60
Z_ALARM = 6.0
WARNING = 0.5
"""Readings past this share of the alarm level teach nothing (``K``, the line, the excess noise)."""
CLIP = 2.5
FLOOR = 0.1
"""Vehicles per reading added to counted and predicted, so a quiet night's zeros are no ratio of zeros."""
AMBIGUITY = 1.5
MARGIN = 2.0
"""A measure is blamed when the other's fit to the line is off by more than :data:`AMBIGUITY` times
its own plus :data:`MARGIN` times the line's scatter."""

SPEED, OCCUPANCY = 1, 2
"""``blamed`` values (0: nothing blamed); also the score columns, less one."""
# Short sums (half an hour): counted vehicles, occupancy x speed, occupancy, speed, weight,
# squared weight. Long sums (a day, calm readings only): weight, counted vehicles, occupancy,
# speed, and the moments of the speed-occupancy line.
_C, _OS, _O, _S, _W, _W2 = range(6)
_LW, _LC, _LO, _LS, _LOO, _LOS, _LSS = range(7)


class TrafficConsistencyDetector(Detector):
    """Counts, speed and occupancy that disagree: flow = density x speed, broken by one sensor.

    Score: the identity's log error in standard errors over 12 (6 scores 0.5), on the measure
    the speed-occupancy line blames; capped just under the threshold on the other.

    >>> import numpy as np
    >>> from processors.batch import series_batch
    >>> from processors.kinds import get_kind
    >>> kind = get_kind("traffic")
    >>> rng = np.random.default_rng(1)
    >>> minutes = np.arange(8 * 60)
    >>> occupancy = 20.0 + 12.0 * np.sin(minutes / 90.0) + rng.normal(0.0, 0.5, minutes.size)
    >>> speed = 50.0 * (1.0 - occupancy / 90.0) + rng.normal(0.0, 0.5, minutes.size)
    >>> count = rng.poisson(0.09 * occupancy * speed).astype(float)
    >>> occupancy[-120:] += np.linspace(0.0, 20.0, 120)  # the loop's reading drifts up
    >>> batch = series_batch(kind, {"vehicle_count": count, "mean_speed": speed, "occupancy": occupancy})
    >>> detector = TrafficConsistencyDetector(kind)
    >>> scores = detector.update(batch)
    >>> speed_scores, occupancy_scores = scores[:, 0], scores[:, 1]
    >>> bool(scores[:-120].max() < 0.5), bool(occupancy_scores[-30:].min() >= 0.5)
    (True, True)
    >>> bool(speed_scores.max() < 0.5)
    True
    """

    name = "traffic_consistency"
    category = Category.HEALTH
    targets = ("drift", "recalibration")
    description = "speed or occupancy out of line with the vehicle count (flow = density x speed)"

    @classmethod
    def applies_to(cls, kind: SensorKind) -> bool:
        return {"vehicle_count", "mean_speed", "occupancy"} <= set(kind.measure_names)

    def select_fields(self, kind: SensorKind) -> tuple[int, ...]:
        return tuple(kind.index_of(name) for name in ("vehicle_count", "mean_speed", "occupancy"))

    def column_names(self) -> tuple[str, ...]:
        return ("mean_speed", "occupancy")

    def state_spec(self) -> dict[str, tuple[np.dtype[Any], tuple[int, ...], Any]]:
        return {
            "short": spec(np.float32, (6,), 0.0),
            "long": spec(np.float32, (7,), 0.0),
            "excess": spec(np.float32, (), 0.0),
            **window_spec(),
        }

    def step(self, state: State, shared: State, r: Round) -> NDArray[np.float64]:
        count, speed, occupancy = r.x[:, 0], r.x[:, 1], r.x[:, 2]
        window = Window.of(state, r)
        use, keep, first_ts = window.use, window.keep, window.first_ts
        reading = np.stack(
            [count, occupancy * speed, occupancy, speed, np.ones_like(count), np.ones_like(count)], axis=1
        )
        short = state["short"].astype(np.float64)
        decayed = short * keep
        decayed[:, _W2] *= keep[:, 0]
        decayed += clean_in_place(reading)
        short = decayed if use.all() else np.where(use[:, None], decayed, short)

        long = state["long"].astype(np.float64)
        n = state["n"]
        warm = use & ((r.ts_ms - first_ts) >= WARMUP_MS) & (n >= WARMUP_READINGS) & (long[:, _LOS] > 0)

        weight = np.maximum(short[:, _W], 1e-9)
        mean_count = short[:, _C] / weight
        k = long[:, _LC] / np.where(long[:, _LOS] > 0, long[:, _LOS], np.nan)
        predicted = k * short[:, _OS] / weight
        stat = np.log((mean_count + FLOOR) / (predicted + FLOOR))
        effective = weight * weight / np.maximum(short[:, _W2], 1e-9)
        poisson = 1.0 / np.maximum(effective * mean_count, 1.0)
        excess = state["excess"].astype(np.float64)
        se = np.sqrt(poisson + excess)
        z = np.where(warm, clean_in_place(stat / se), 0.0)
        score = np.where(warm, z_score(z, Z_ALARM), 0.0)

        blamed, deciding = held_blame(state, warm, score, self.threshold)
        if deciding.any():
            blamed = np.where(deciding, self._blame(long, short, k), blamed).astype(np.int8)

        wary = warm & (score >= WARNING * self.threshold)
        learn = use & ~wary
        alpha = window.learning_rate(state, r)
        moments = np.stack(
            [
                np.ones_like(count),
                count,
                occupancy,
                speed,
                occupancy * occupancy,
                occupancy * speed,
                speed * speed,
            ],
            axis=1,
        )
        # long + alpha * (moments - long), in place; one rate for all rows once every device has
        # learned a day (a scalar broadcasts faster than a column).
        moved: NDArray[np.float64] = np.asarray(clean_in_place(moments), dtype=np.float64)
        moved -= long
        moved *= uniform_column(alpha)
        moved += long
        long = moved if learn.all() else np.where(learn[:, None], moved, long)
        observed = np.minimum(np.maximum(stat * stat - poisson, 0.0), (CLIP * CLIP) * (poisson + excess))
        excess = np.where(learn & warm, excess + alpha * (clean_in_place(observed) - excess), excess)

        restart = settle(state, r, window, wary, blamed)
        state["short"] = short.astype(np.float32)
        if restart.any():
            long = np.where(restart[:, None], 0.0, long)
            excess = np.where(restart, 0.0, excess)
        state["long"] = long.astype(np.float32)
        state["excess"] = excess.astype(np.float32)
        return blamed_scores(score, blamed, (SPEED, OCCUPANCY), self.threshold, use)

    @staticmethod
    def _blame(
        long: NDArray[np.float64], short: NDArray[np.float64], k: NDArray[np.float64]
    ) -> NDArray[np.int8]:
        """Which measure's replacement by what the count implies fits the speed-occupancy line better.

        The line ``speed = a + b * occupancy`` is the least-squares fit of the long sums;
        its scatter is the residual standard deviation. 0 where neither clearly wins
        (a road at capacity, where the two explanations meet), or the line is unknown.
        """
        w = np.maximum(long[:, _LW], 1e-9)
        mean_o, mean_s = long[:, _LO] / w, long[:, _LS] / w
        var_o = long[:, _LOO] / w - mean_o * mean_o
        cov = long[:, _LOS] / w - mean_o * mean_s
        var_s = long[:, _LSS] / w - mean_s * mean_s
        fitted = var_o > 1e-6
        slope = np.where(fitted, cov / np.where(fitted, var_o, 1.0), 0.0)
        intercept = mean_s - slope * mean_o
        scatter = np.sqrt(np.maximum(var_s - slope * cov, 0.01))
        weight = np.maximum(short[:, _W], 1e-9)
        count, occupancy, speed = short[:, _C] / weight, short[:, _O] / weight, short[:, _S] / weight
        with np.errstate(divide="ignore", invalid="ignore"):
            implied_occupancy = count / (k * speed)
            implied_speed = count / (k * occupancy)
        off_if_occupancy = np.abs(speed - (intercept + slope * implied_occupancy))
        off_if_speed = np.abs(implied_speed - (intercept + slope * occupancy))
        off_if_occupancy = np.nan_to_num(off_if_occupancy, nan=np.inf, posinf=np.inf)
        off_if_speed = np.nan_to_num(off_if_speed, nan=np.inf, posinf=np.inf)
        occupancy_wrong = AMBIGUITY * off_if_occupancy + MARGIN * scatter < off_if_speed
        speed_wrong = AMBIGUITY * off_if_speed + MARGIN * scatter < off_if_occupancy
        blamed: NDArray[np.int8] = np.where(
            fitted & occupancy_wrong, OCCUPANCY, np.where(fitted & speed_wrong, SPEED, 0)
        ).astype(np.int8)
        return blamed


DETECTOR = TrafficConsistencyDetector
