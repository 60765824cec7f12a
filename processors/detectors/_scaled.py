"""Bases for the statistical detectors: values on a robust scale, and which measures they judge.

``spike``, ``noise`` and ``shift`` all judge readings after the same transform
(a log scale for skewed measures, a floor under tiny values) and need the kind's
bounds to tell a pinned reading from a real one; ``noise`` and ``shift`` also skip
the measures that switch between levels (a lamp's state, dimming steps), which
have no jitter or daily profile to learn. Set up here once.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from processors.detectors._robust import Tiled, Transform, at_bounds
from processors.detectors.base import Detector
from processors.kinds import SensorKind


class ScaledDetector(Detector):
    """A detector that works on :class:`Transform`-ed values and knows the kind's bounds."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.transform = Transform.for_fields(self.kind, self.fields)
        self._lo, self._hi = at_bounds(self.kind, self.fields)
        self._lo_rows, self._hi_rows = Tiled(self._lo), Tiled(self._hi)
        self._floor_rows = Tiled(self.transform.floor)

    def pinned(self, x: NDArray[np.float64]) -> NDArray[np.bool_]:
        """Readings at a physical limit of their measure (``x`` in the detector's field order)."""
        rows = x.shape[0]
        found: NDArray[np.bool_] = x <= self._lo_rows(rows)
        found |= x >= self._hi_rows(rows)
        return found

    def floor(self, rows: int) -> NDArray[np.float64]:
        """The transform's noise floor of each field, for ``rows`` rows."""
        floor: NDArray[np.float64] = self._floor_rows(rows)
        return floor


class ContinuousDetector(ScaledDetector):
    """A scaled detector of the measures that vary continuously, not those that switch between levels."""

    @classmethod
    def applies_to(cls, kind: SensorKind) -> bool:
        return any(not m.switching for m in kind.measures)

    def select_fields(self, kind: SensorKind) -> tuple[int, ...]:
        return tuple(i for i, m in enumerate(kind.measures) if not m.switching)
