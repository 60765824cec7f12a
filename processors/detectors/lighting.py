"""Street-light rules: lamps by the sun, power by the dimming level, light sensors by the sky.

- A lamp on in daylight (the sun above 6°) or off at night (below -6°); in the
  twilight between, lamps legitimately switch, so nothing is judged.
- Power inconsistent with the dimming level: an LED driver draws its standby
  power plus a share proportional to dimming. Each controller's standby draw and
  watts per percent are learned from its own calm readings; a lamp on at night
  drawing almost nothing (a failed LED, a dead circuit) is caught the same way.
- A light sensor reading daylight at night (over 2,000 lx with the sun below -6°)
  or darkness in daylight (under 20 lx with the sun above 10°).

The sun's position comes from each device's registered latitude and longitude
(:mod:`processors.solar`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from processors.detectors.base import Category, Detector, Round, State, spec
from processors.kinds import SensorKind
from processors.solar import elevation_deg

DAY_DEG = 6.0
NIGHT_DEG = -6.0
NIGHT_LUX = 2_000.0
DAY_LUX = 20.0
POWER_TOLERANCE = 0.2
"""Share of the expected draw (plus POWER_SLACK_W) that scores 0.5."""
POWER_SLACK_W = 5.0
ALPHA = 0.05
WARMUP = 12


class LightingDetector(Detector):
    """Street-light consistency rules (state vs sun, power vs dimming, lux vs sun).

    Scores: 1 for a lamp in the wrong state for the sun or a light sensor reading
    the wrong sky; for power, |deviation| / (20 % of expected + 5 W) / 2, capped.

    >>> import numpy as np
    >>> from processors.batch import series_batch
    >>> from processors.kinds import get_kind
    >>> kind = get_kind("lighting")
    >>> night = 1795463400000  # 2026-11-23 22:50 in Hanoi
    >>> ts = night + 300_000 * np.arange(30)
    >>> state, dimming = np.ones(30), np.full(30, 100.0)
    >>> power = np.r_[np.full(25, 120.0), np.zeros(5)]  # the circuit loses supply
    >>> state[25:] = 0.0
    >>> batch = series_batch(kind, {"state": state, "dimming": dimming, "power": power}, ts)
    >>> detector = LightingDetector(kind)
    >>> scores = detector.update(batch)
    >>> bool(scores[:25].max() < 0.5), bool(scores[25:, detector.columns.index("state")].min() == 1.0)
    (True, True)
    """

    name = "lighting"
    category = Category.RULE
    targets = ("lighting_outage",)
    description = "a lamp on by day or dark at night, power out of line with dimming, lux against the sky"

    @classmethod
    def applies_to(cls, kind: SensorKind) -> bool:
        return {"state", "dimming", "power", "lux"} <= set(kind.measure_names)

    def select_fields(self, kind: SensorKind) -> tuple[int, ...]:
        return tuple(kind.index_of(name) for name in ("state", "power", "lux", "dimming"))

    def column_names(self) -> tuple[str, ...]:
        return ("state", "power", "lux")

    def state_spec(self) -> dict[str, tuple[np.dtype[Any], tuple[int, ...], Any]]:
        return {
            "standby": spec(np.float32, (), np.nan),
            "watts_per_pct": spec(np.float32, (), np.nan),
            "n": spec(np.uint16, (), 0),
        }

    def step(self, state: State, shared: State, r: Round) -> NDArray[np.float64]:
        on, power, lux, dimming = (r.x[:, j] for j in range(4))
        lat, lon = (where[r.device] for where in r.table.coordinates())
        sun = elevation_deg(r.ts_ms, lat, lon)
        day, night = sun > DAY_DEG, sun < NIGHT_DEG
        wrong_state = np.where((day & (on > 0.5)) | (night & (on < 0.5)), 1.0, 0.0)
        state_score = np.where(np.isnan(on), np.nan, wrong_state)

        standby = state["standby"].astype(np.float64)
        per_pct = state["watts_per_pct"].astype(np.float64)
        lit = (on > 0.5) & (dimming > 0)
        expected = np.where(lit, np.nan_to_num(standby) + per_pct * dimming, standby)
        deviation = np.abs(power - expected) / (POWER_TOLERANCE * np.abs(expected) + POWER_SLACK_W) / 2.0
        known = ~np.isnan(expected) & (state["n"] >= WARMUP)
        power_score = np.where(
            np.isnan(power) | np.isnan(on), np.nan, np.where(known, np.clip(deviation, 0, 1), 0)
        )

        wrong_sky = (night & (lux > NIGHT_LUX)) | ((sun > 10.0) & (lux < DAY_LUX))
        lux_score = np.where(np.isnan(lux), np.nan, np.where(wrong_sky, 1.0, 0.0))

        calm = ~(power_score >= self.threshold) & ~(state_score >= self.threshold) & ~np.isnan(power)
        idle = calm & (on < 0.5)
        state["standby"] = np.where(
            idle, np.where(np.isnan(standby), power, standby + ALPHA * (power - standby)), standby
        ).astype(np.float32)
        ratio = (power - np.nan_to_num(standby)) / np.where(dimming > 0, dimming, np.nan)
        learn_ratio = calm & lit & (dimming >= 10) & ~np.isnan(standby)
        state["watts_per_pct"] = np.where(
            learn_ratio, np.where(np.isnan(per_pct), ratio, per_pct + ALPHA * (ratio - per_pct)), per_pct
        ).astype(np.float32)
        state["n"] = np.where(calm, np.minimum(state["n"].astype(np.int64) + 1, 65535), state["n"]).astype(
            np.uint16
        )
        return np.stack([state_score, power_score, lux_score], axis=1)


DETECTOR = LightingDetector
