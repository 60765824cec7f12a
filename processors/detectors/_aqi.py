"""What the two air-quality-index detectors share: hourly means in, a score per pollutant out.

The US EPA AQI and Vietnam's VN_AQI differ only in their pollutants and in how
each pollutant's hourly means become a sub-index; the hour bookkeeping, the
field selection and the score scale are the same, so they live here once.
"""

from __future__ import annotations

from abc import abstractmethod
from typing import Any, ClassVar

import numpy as np
from numpy.typing import NDArray

from processors.detectors._hourly import hourly_scores, hourly_spec
from processors.detectors.base import Category, Detector, Round, State
from processors.kinds import SensorKind

AQI_AT_HALF = 150.0
"""The score is 0.5 at index 150: from 151 the air is unhealthy for everyone on both scales."""

HOURS_KEPT = 12
"""Hourly means kept per pollutant: the NowCast of PM2.5 and PM10 looks back 12 hours."""


def aqi_score(aqi: NDArray[np.float64]) -> NDArray[np.float64]:
    """0 up to index 50 (good air), 0.5 at 150, 1 from 250 on."""
    score: NDArray[np.float64] = np.clip((np.nan_to_num(aqi) - 50.0) / (2 * (AQI_AT_HALF - 50.0)), 0.0, 1.0)
    return score


class HourlyIndexDetector(Detector):
    """A sub-index per pollutant, recomputed when an hour closes and carried by the next hour's readings."""

    category = Category.STANDARD
    targets = ("pollution_episode",)
    POLLUTANTS: ClassVar[tuple[str, ...]]

    @classmethod
    def applies_to(cls, kind: SensorKind) -> bool:
        return "pm25" in kind.measure_names or "pm10" in kind.measure_names

    def select_fields(self, kind: SensorKind) -> tuple[int, ...]:
        return tuple(kind.index_of(p) for p in self.POLLUTANTS if p in kind.measure_names)

    def state_spec(self) -> dict[str, tuple[np.dtype[Any], tuple[int, ...], Any]]:
        return hourly_spec(len(self.fields), HOURS_KEPT)

    def step(self, state: State, shared: State, r: Round) -> NDArray[np.float64]:
        return hourly_scores(state, r.ts_ms, r.x, self._index)

    def _index(self, ring: NDArray[np.float64]) -> NDArray[np.float64]:
        scores = np.zeros(ring.shape[:2])
        for j, name in enumerate(self.columns):
            scores[:, j] = aqi_score(self.sub_index(name, ring[:, j, :]))
        return scores

    @abstractmethod
    def sub_index(self, pollutant: str, hourly: NDArray[np.float64]) -> NDArray[np.float64]:
        """The pollutant's index per device from its hourly means (column 0 the hour just closed)."""
