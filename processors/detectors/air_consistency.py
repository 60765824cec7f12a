"""CO or NO2 out of line with the other: both come out of the same exhausts, into the same air.

At a street monitor, carbon monoxide and nitrogen dioxide have the same sources
(traffic and other combustion) and the same dilution (the mixing height, the
wind, an inversion), so their ratio holds far steadier than either does: the
morning rush, a still night or a smoky week move both together. A drifting CO
or NO2 sensor changes the ratio; the air does not. On fault-free simulated
weeks the half-hour ratio of each monitor stays within about 5 % of its usual
value (the fleet's shared move taken out first, as ``shift`` does), while each
gas alone swings by 15-20 % for hours. So this sees the drifts that hide in a
gas's own daily swing.

Which gas is wrong? PM2.5, a third product of the same combustion (less tightly
tied, its ratios to the gases scatter about 15-20 %), is the witness: the gas
whose ratio to PM2.5 moved the same way, while the other gas's ratio to PM2.5
stayed put, is blamed. Until the witness is clear, nothing is raised; a change
in PM2.5 alone (dust, a fire) moves both ratios to it and blames no gas.

Each monitor learns the usual value and spread of its three log ratios (of
half-hour exponential means) from a day of calm readings; scores start after that
day.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from processors.detectors._consistency import TAU_MS, Window, blamed_scores, held_blame, settle, window_spec
from processors.detectors._robust import DAY_MS, column_medians, z_score
from processors.detectors.base import Category, Detector, Round, State, spec
from processors.kinds import SensorKind

WARMUP_MS = DAY_MS
WARMUP_READINGS = 60
Z_ALARM = 6.0
EVIDENCE = 8.0
"""Log-likelihood ratio needed to blame one gas rather than the other (odds of about 3,000 to 1)."""
WARNING = 0.5
"""Readings past this share of the alarm level teach nothing."""
CLIP = 2.5
OFFSETS = (2.0, 2.0, 0.1)
"""Added to PM2.5 (µg/m³), NO2 (µg/m³) and CO (mg/m³) means before the log: noise at clean-air levels."""
NO2, CO = 1, 2
"""``blamed`` values (0: nothing blamed); the score columns are these less one."""
# Log ratios: CO/NO2 (judged), CO/PM2.5 and NO2/PM2.5 (witnesses).
_CN, _CP, _NP = range(3)


class AirConsistencyDetector(Detector):
    """CO against NO2, with PM2.5 as the witness to which of them moved.

    Score: the CO/NO2 ratio's deviation in its standard deviations over 12 (6 scores 0.5), on
    the gas the witness blames; capped just under the threshold on the other.

    >>> import numpy as np
    >>> from processors.batch import series_batch
    >>> from processors.kinds import get_kind
    >>> kind = get_kind("air")
    >>> rng = np.random.default_rng(2)
    >>> minutes = np.arange(36 * 60)
    >>> local_hour = (minutes / 60.0 + 7.0) % 24.0
    >>> rush = np.exp(-((local_hour - 8.0) ** 2) / 2.0) + np.exp(-((local_hour - 18.0) ** 2) / 2.0)
    >>> traffic = 1.0 + 0.8 * rush
    >>> weather = np.exp(np.cumsum(rng.normal(0.0, 0.01, minutes.size)))  # dilution shared by all
    >>> no2 = 30.0 * traffic * weather * (1.0 + 0.05 * rng.standard_normal(minutes.size))
    >>> co = 0.8 * traffic * weather * (1.0 + 0.05 * rng.standard_normal(minutes.size))
    >>> pm25 = 40.0 * weather * (1.0 + 0.05 * rng.standard_normal(minutes.size))
    >>> co[-360:] += np.linspace(0.0, 1.5, 360)  # the CO cell drifts over the last six hours
    >>> detector = AirConsistencyDetector(kind)
    >>> scores = detector.update(series_batch(kind, {"pm25": pm25, "no2": no2, "co": co}))
    >>> no2_scores, co_scores = scores[:, 0], scores[:, 1]
    >>> bool(scores[:-360].max() < 0.5), bool(co_scores[-60:].min() >= 0.5), bool(no2_scores.max() < 0.5)
    (True, True, True)
    """

    name = "air_consistency"
    category = Category.HEALTH
    targets = ("drift", "recalibration")
    description = "CO or NO2 out of line with the other (the same exhausts), PM2.5 witnessing which"

    @classmethod
    def applies_to(cls, kind: SensorKind) -> bool:
        return {"pm25", "no2", "co"} <= set(kind.measure_names)

    def select_fields(self, kind: SensorKind) -> tuple[int, ...]:
        return tuple(kind.index_of(name) for name in ("pm25", "no2", "co"))

    def column_names(self) -> tuple[str, ...]:
        return ("no2", "co")

    def state_spec(self) -> dict[str, tuple[np.dtype[Any], tuple[int, ...], Any]]:
        return {
            "short": spec(np.float32, (4,), 0.0),
            "usual": spec(np.float32, (3,), np.nan),
            "spread": spec(np.float32, (3,), np.nan),
            **window_spec(),
        }

    def shared_spec(self) -> State:
        return {"common": np.zeros(3, dtype=np.float32)}

    def step(self, state: State, shared: State, r: Round) -> NDArray[np.float64]:
        window = Window.of(state, r)
        use, keep, first_ts = window.use, window.keep, window.first_ts
        # Exponential sums of PM2.5, NO2, CO and the weight: means over the last half hour.
        reading = np.concatenate([np.nan_to_num(r.x), np.ones((r.x.shape[0], 1))], axis=1)
        short = state["short"].astype(np.float64)
        short = np.where(use[:, None], short * keep + reading, short)
        means = short[:, :3] / np.maximum(short[:, 3:], 1e-9) + np.asarray(OFFSETS)
        logs = np.log(np.maximum(means, 1e-9))
        ratios = np.stack([logs[:, 2] - logs[:, 1], logs[:, 2] - logs[:, 0], logs[:, 1] - logs[:, 0]], axis=1)

        n = state["n"]
        usual = state["usual"].astype(np.float64)
        spread = state["spread"].astype(np.float64)
        warm = (
            use & ((r.ts_ms - first_ts) >= WARMUP_MS) & (n >= WARMUP_READINGS) & ~np.isnan(spread).any(axis=1)
        )
        # Monitors whose half-hour means have filled and that know their usual ratios.
        grown = use & ((r.ts_ms - first_ts) >= TAU_MS) & ~np.isnan(usual).any(axis=1)
        common = shared["common"].astype(np.float64)
        if len(r.table) >= self.config.peer_devices and grown.any():
            # What every monitor's ratios do at once (the rush hours favour NO2 a little, an
            # inversion CO, rain washes particles out): a robust centre of the round, smoothed,
            # taken out before anything is judged or learned, from the first day on.
            calm = grown & ~(state["blamed"] > 0)
            counts = calm.sum()
            if counts:
                median = column_medians(ratios - usual, np.repeat(calm[:, None], 3, axis=1))
                weight = counts / (counts + len(r.table) / 8.0)
                common = common + weight * (median - common)
                shared["common"] = common.astype(np.float32)
        deviation = ratios - usual - common
        z = np.where(warm, np.nan_to_num(deviation[:, _CN] / np.sqrt(np.fmax(spread[:, _CN], 1e-6))), 0.0)
        score = np.where(warm, z_score(z, Z_ALARM), 0.0)

        blamed, deciding = held_blame(state, warm, score, self.threshold)
        # Either gas alone explains the judged ratio's move: if CO moved, NO2 still agrees with
        # PM2.5 and CO/PM2.5 moved by the whole amount; if NO2 moved, the other way round. The
        # log-likelihood ratio of the two (Gaussian deviations, each of its learned spread) is
        # (d_cp^2 - d_np^2) (1 / s_cp^2 + 1 / s_np^2) / 2; it must pass EVIDENCE either way.
        spread_cp, spread_np = np.fmax(spread[:, _CP], 1e-6), np.fmax(spread[:, _NP], 1e-6)
        d_cp, d_np = deviation[:, _CP], deviation[:, _NP]
        evidence = np.nan_to_num((d_cp * d_cp - d_np * d_np) * (1.0 / spread_cp + 1.0 / spread_np) / 2.0)
        co_moved = evidence >= EVIDENCE
        no2_moved = evidence <= -EVIDENCE
        blamed = np.where(deciding & co_moved, CO, np.where(deciding & no2_moved, NO2, blamed)).astype(
            np.int8
        )

        wary = warm & (score >= WARNING * self.threshold)
        learn = use & ~wary
        alpha = window.learning_rate(state, r)[:, None]
        seeded = np.isnan(usual)
        usual = np.where(learn[:, None], np.where(seeded, ratios, usual + alpha * deviation), usual)
        bound = CLIP * CLIP * np.where(np.isnan(spread), np.inf, spread)
        observed = np.minimum(np.nan_to_num(deviation * deviation), bound)
        spread_learn = (learn & grown)[:, None]
        spread = np.where(
            spread_learn, np.where(np.isnan(spread), observed, spread + alpha * (observed - spread)), spread
        )

        restart = settle(state, r, window, wary, blamed)
        state["short"] = short.astype(np.float32)
        state["usual"] = np.where(restart[:, None], np.nan, usual).astype(np.float32)
        state["spread"] = np.where(restart[:, None], np.nan, spread).astype(np.float32)
        return blamed_scores(score, blamed, (NO2, CO), self.threshold, use)


DETECTOR = AirConsistencyDetector
