"""Clock skew: a device whose timestamps stop agreeing with when its readings arrive.

Each device has a usual delay between its own timestamp and the arrival (radio,
batching, its clock's small drift), learned slowly. A reading whose delay differs
from it by more than the tolerance (``CITYPULSE_CLOCK_TOLERANCE_S``, or four times
the device's usual wobble if that is larger) says the clock jumped; a timestamp
ahead of its own arrival by more than the tolerance is wrong whatever the habit.
Clocks further ahead than ``CITYPULSE_MAX_FUTURE_S`` never get here: validation
rejects those readings as ``timestamp_in_future``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from processors.detectors.base import DEVICE_COLUMN, Category, Detector, Round, State, spec

ALPHA = 0.05
WARMUP = 10


class ClockDetector(Detector):
    """Timestamp versus arrival time.

    Score: |delay - usual delay| / tolerance / 2, capped at 1 (0.5 at the tolerance).

    >>> import numpy as np
    >>> from processors.batch import series_batch
    >>> from processors.kinds import get_kind
    >>> kind = get_kind("air")
    >>> batch = series_batch(kind, {"pm25": np.full(40, 20.0)})
    >>> skewed = batch.ts_ms.copy()
    >>> skewed[30:] -= 150_000  # the clock falls 2.5 minutes behind; arrivals stay on time
    >>> from processors.batch import ReadingBatch
    >>> late_clock = ReadingBatch(kind, batch.table, batch.device, skewed, batch.values, batch.ts_ms)
    >>> scores = ClockDetector(kind).update(late_clock)[:, 0]
    >>> bool(scores[:30].max() == 0.0), bool(scores[30:].min() >= 0.5)
    (True, True)
    """

    name = "clock"
    category = Category.HEALTH
    targets = ("clock_skew",)
    description = "device timestamps that disagree with arrival times"

    def select_fields(self, kind: Any) -> tuple[int, ...]:
        return ()

    def column_names(self) -> tuple[str, ...]:
        return (DEVICE_COLUMN,)

    def state_spec(self) -> dict[str, tuple[np.dtype[Any], tuple[int, ...], Any]]:
        return {
            "delay": spec(np.float32, (), np.nan),
            "wobble": spec(np.float32, (), 0.0),
            "n": spec(np.uint16, (), 0),
        }

    def step(self, state: State, shared: State, r: Round) -> NDArray[np.float64]:
        if r.received_ms is None:
            return np.full((r.device.size, 1), np.nan)
        delay = (r.received_ms - r.ts_ms).astype(np.float64)
        usual = state["delay"].astype(np.float64)
        wobble = state["wobble"].astype(np.float64)
        tolerance = np.maximum(float(self.config.clock_tolerance_ms), 4.0 * wobble)
        known = ~np.isnan(usual) & (state["n"] >= WARMUP)
        off = np.where(known, np.abs(delay - usual), 0.0)
        ahead = np.maximum(-delay, 0.0)
        scores = np.clip(np.maximum(off, ahead) / tolerance / 2.0, 0.0, 1.0)
        learn = scores < self.threshold
        n = state["n"].astype(np.float64)
        alpha = np.maximum(ALPHA, 1.0 / (n + 1.0))
        new_usual = np.where(np.isnan(usual), delay, usual + alpha * (delay - usual))
        deviation = np.abs(delay - np.where(np.isnan(usual), delay, usual))
        new_wobble = wobble + alpha * (np.minimum(deviation, tolerance) - wobble)
        state["delay"] = np.where(learn, new_usual, usual).astype(np.float32)
        state["wobble"] = np.where(learn, new_wobble, wobble).astype(np.float32)
        state["n"] = np.where(learn, np.minimum(n + 1, 65535), n).astype(np.uint16)
        return scores[:, None]


DETECTOR = ClockDetector
