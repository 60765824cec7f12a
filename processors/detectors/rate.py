"""Impossible changes: a measure moving faster than the physical quantity can.

The limit is the measure's declared ``max_rate`` (units per hour), or else twice
its normal band per reporting interval, which no healthy sensor of the kind does.

A change is impossible for a sensor only if its peers do not see it too: when a
good share of a kind's devices exceed the limit the same way in one round (a
shower reaching the whole city at once), that is the world, not a fault, and
changes that way are not scored for one reporting interval after it (the
devices that reported just before the change see it on their next reading).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from processors.detectors._robust import Tiled, and_rows, column_counts
from processors.detectors.base import Category, Detector, Round, State, spec

HOUR_MS = 3_600_000.0
FLEET_SHARE = 0.2
"""Share of a round's devices that, changing too fast the same way together, make it the world's change..."""
FLEET_MIN = 3
"""... and at least this many of them."""


class RateDetector(Detector):
    """Rate-of-change limits from the kind's declaration.

    Score: observed rate / limit / 2, capped at 1 (0.5 at the limit). The time
    between readings counts as at least half an interval, so a burst of readings
    cannot make a small change look fast.

    >>> import numpy as np
    >>> from processors.batch import series_batch
    >>> from processors.kinds import get_kind
    >>> kind = get_kind("air")
    >>> temperature = np.r_[np.full(30, 25.0), 45.0, np.full(5, 25.0)]
    >>> detector = RateDetector(kind)
    >>> scores = detector.update(series_batch(kind, {"temperature": temperature}))
    >>> np.flatnonzero(scores[:, detector.columns.index("temperature")] >= 0.5).tolist()
    [30, 31]
    """

    name = "rate"
    category = Category.HEALTH
    targets = ("spike",)
    """A health detector: it is for sensor faults; a bin fire has its own rule detector."""
    description = "a change faster than the physical quantity can change"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        measures = [self.kind.measures[i] for i in self.fields]
        interval_h = self.kind.interval_s / 3600.0
        self._limit = np.array(
            [m.max_rate if m.max_rate else 2.0 * (m.normal[1] - m.normal[0]) / interval_h for m in measures]
        )
        self._limit_rows = Tiled(self._limit)

    def shared_spec(self) -> State:
        f = len(self.fields)
        return {
            "world_sign": np.zeros(f, dtype=np.float32),
            "world_until": np.full(f, np.iinfo(np.int64).min, dtype=np.int64),
        }

    def _corroborated(
        self,
        shared: State,
        r: Round,
        scores: NDArray[np.float64],
        sign: NDArray[np.float64],
        judged: NDArray[np.bool_],
    ) -> NDArray[np.float64]:
        """Scores without the changes that a good share of the fleet made the same way at once."""
        over = judged & (scores >= self.threshold)
        if over.any():
            judged_counts = column_counts(judged)
            for direction in (1.0, -1.0):
                same = column_counts(over & (sign == direction))
                world = (same >= FLEET_MIN) & (same >= FLEET_SHARE * judged_counts)
                if world.any():
                    until = int(r.ts_ms.max()) + int(np.max(r.interval_ms))
                    shared["world_sign"] = np.where(world, direction, shared["world_sign"]).astype(np.float32)
                    shared["world_until"] = np.where(world, until, shared["world_until"])
        if r.ts_ms.size and bool((shared["world_until"] < r.ts_ms.min()).all()):
            return scores  # no reading falls in a world change: nothing is excused
        excused = (sign == shared["world_sign"]) & (r.ts_ms[:, None] <= shared["world_until"])
        result: NDArray[np.float64] = np.where(excused, 0.0, scores)
        return result

    def state_spec(self) -> dict[str, tuple[np.dtype[Any], tuple[int, ...], Any]]:
        return {
            "last": spec(np.float32, (len(self.fields),), np.nan),
            "last_at": spec(np.int64, (len(self.fields),), 0),
            "last_ts": spec(np.int64, (), np.iinfo(np.int64).min),
        }

    def step(self, state: State, shared: State, r: Round) -> NDArray[np.float64]:
        have = ~np.isnan(r.x)
        use = and_rows(have, r.ts_ms > state["last_ts"])
        last = state["last"].astype(np.float64)
        rows, fields = r.x.shape
        # The timestamps spread over the fields once: a column against a few fields is slow.
        ts = np.repeat(r.ts_ms, fields).reshape(rows, fields)
        elapsed_ms = np.maximum(ts - state["last_at"], 0.5 * r.interval_col)
        change = r.x - last
        per_hour = np.abs(change) / (elapsed_ms / HOUR_MS)
        scores = np.where(
            use & ~np.isnan(last), np.clip(per_hour / self._limit_rows(rows) / 2.0, 0.0, 1.0), 0.0
        )
        if len(r.table) >= self.config.peer_devices:
            scores = self._corroborated(shared, r, scores, np.sign(change), use & ~np.isnan(last))
        state["last"] = np.where(use, r.x, last).astype(np.float32)
        state["last_at"] = np.where(use, ts, state["last_at"])
        state["last_ts"] = np.maximum(state["last_ts"], r.ts_ms)
        return np.where(have, scores, np.nan)


DETECTOR = RateDetector
