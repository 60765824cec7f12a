"""Stuck sensors: a measure repeating exactly the same value for longer than chance allows.

How often a measure repeats itself depends on the sensor (resolution, noise), so
each device learns the probability ``p`` that a reading equals the previous one.
``k`` repeats in a row then carry ``k * -log10(p)`` decades of evidence. Two kinds
of repeats are not evidence: a value at the measure's physical limit (humidity at
100 %, an empty bin) and the device's *plateaus*: values it has already held for a
long run before (a lamp's standby draw, a dimming step). A stuck sensor freezes at
whatever value it last read, which almost never recurs exactly, so a value seen in
two long runs is the device's habit, not a fault.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from processors.detectors._robust import Tiled, and_rows
from processors.detectors.base import Category, Detector, Round, State, spec

DECADES_ALARM = 6.0
"""Evidence (decades of improbability) that scores 0.5."""
P_FLOOR = 1e-4
P_MEMORY = 2000
"""Readings over which the repeat probability is averaged."""
WARMUP = 30
PLATEAU_RUN = 10
PLATEAUS = 2
"""Distinct plateau values remembered per device and measure (a dimming schedule has two)."""


class StuckDetector(Detector):
    """Flatlines: exact repeats beyond what this sensor's resolution explains.

    Score: repeats x -log10(repeat probability) / 12, capped at 1 (0.5 at a
    chance of one in a million).

    >>> import numpy as np
    >>> from processors.batch import series_batch
    >>> from processors.kinds import get_kind
    >>> kind = get_kind("air")
    >>> pm25 = np.round(40 + 3 * np.random.default_rng(4).standard_normal(300), 2)
    >>> pm25[250:] = pm25[250]
    >>> detector = StuckDetector(kind)
    >>> scores = detector.update(series_batch(kind, {"pm25": pm25}))[:, detector.columns.index("pm25")]
    >>> bool(scores[:250].max() < 0.5), int(np.argmax(scores >= 0.5))
    (True, 253)
    """

    name = "stuck"
    category = Category.HEALTH
    targets = ("stuck",)
    description = "the same value repeated exactly for longer than chance allows"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        measures = [self.kind.measures[i] for i in self.fields]
        self._lo = Tiled(np.array([m.lo for m in measures]))
        self._hi = Tiled(np.array([m.hi for m in measures]))

    def state_spec(self) -> dict[str, tuple[np.dtype[Any], tuple[int, ...], Any]]:
        f = (len(self.fields),)
        return {
            "last": spec(np.float64, f, np.nan),
            "plateau": spec(np.float64, (len(self.fields), PLATEAUS), np.nan),
            "p": spec(np.float32, f, 0.5),
            "run": spec(np.uint16, f, 0),
            "n": spec(np.uint16, f, 0),
            "learned": spec(np.uint16, f, 0),
            "last_ts": spec(np.int64, (), np.iinfo(np.int64).min),
        }

    def step(self, state: State, shared: State, r: Round) -> NDArray[np.float64]:
        x = r.x
        have = ~np.isnan(x)
        use = and_rows(have, r.ts_ms > state["last_ts"])
        last = state["last"]
        repeat = use & (x == last)
        run = np.where(use, np.where(repeat, state["run"].astype(np.int64) + 1, 0), state["run"])
        p = np.clip(state["p"].astype(np.float64), P_FLOOR, 1.0)
        n = state["n"]
        plateau = state["plateau"]
        rows = x.shape[0]
        exempt = (x <= self._lo(rows)) | (x >= self._hi(rows)) | _on_plateau(x, plateau)
        evidence = run * -np.log10(p)
        scores = np.where(use & (n >= WARMUP) & ~exempt, np.clip(evidence / (2 * DECADES_ALARM), 0, 1), 0.0)

        # Only the first repeat of a run is evidence about the sensor: if repeats are
        # independent, P(repeat) and P(run goes on) are the same p, and a stuck run
        # then teaches the estimate one repeat, not hundreds.
        learn = use & ~np.isnan(last) & (scores < self.threshold) & ~exempt & (state["run"] == 0)
        learned = state["learned"]
        alpha = np.maximum(1.0 / (learned.astype(np.float64) + 2.0), 1.0 / P_MEMORY)
        state["p"] = np.where(learn, p + alpha * (repeat - p), p).astype(np.float32)
        state["learned"] = np.where(learn, np.minimum(learned.astype(np.int64) + 1, 65535), learned).astype(
            np.uint16
        )
        # A long run that ends is remembered (newest first), unless its value is already known.
        ended = use & ~repeat & (state["run"] >= PLATEAU_RUN)
        if ended.any():
            ended &= ~_on_plateau(last, plateau)
            shifted = np.concatenate([last[:, :, None], plateau[:, :, :-1]], axis=2)
            state["plateau"] = np.where(ended[:, :, None], shifted, plateau)
        state["run"] = np.minimum(run, 65535).astype(np.uint16)
        state["last"] = np.where(use, x, last)
        state["n"] = np.where(use, np.minimum(n.astype(np.int64) + 1, 65535), n).astype(np.uint16)
        state["last_ts"] = np.maximum(state["last_ts"], r.ts_ms)
        return np.where(have, scores, np.nan)


def _on_plateau(x: NDArray[np.float64], plateau: NDArray[np.float64]) -> NDArray[np.bool_]:
    """``(x[:, :, None] == plateau).any(axis=2)``, a plateau at a time (a narrow last axis is slow)."""
    found: NDArray[np.bool_] = x == plateau[:, :, 0]
    for k in range(1, plateau.shape[2]):
        found |= x == plateau[:, :, k]
    return found


DETECTOR = StuckDetector
