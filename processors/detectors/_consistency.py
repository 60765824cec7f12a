"""What the consistency detectors share: a relation between measures, and which measure broke it.

``traffic_consistency`` and ``air_consistency`` judge a relation that the city keeps
and a drifting sensor breaks, on exponential sums over the last half hour (reset by
the gap since the device's last reading, so a device back from silence is judged on
what it says now). An alarm names one measure: the one the detector *blames* when
the relation first breaks, held while the break lasts (no alarm hops from one
measure to the other mid-fault); while no measure is clearly to blame, both show the
evidence just under the threshold. A device out of line for a whole day has been
changed (recalibrated, replaced) and learns its relation again.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from processors.detectors._hysteresis import REARM
from processors.detectors._robust import DAY_MS, any_column, rate, uniform_column
from processors.detectors.base import Round, State, spec

TAU_MS = 1_800_000
"""The window a relation is judged on (an exponential one): half an hour."""
UNBLAMED = 0.9
"""Share of the threshold an unattributed score is capped at: evidence shown, no alarm raised."""
RE_ACCEPT_MS = DAY_MS
"""A device out of line this long has been changed: it learns its relation again."""
NEVER = np.iinfo(np.int64).min


def window_spec() -> dict[str, tuple[np.dtype[Any], tuple[int, ...], Any]]:
    """Per-device state every consistency detector keeps besides its own sums."""
    return {
        "n": spec(np.uint32, (), 0),
        "off_ms": spec(np.float32, (), 0.0),
        "blamed": spec(np.int8, (), 0),
        "first_ts": spec(np.int64, (), np.iinfo(np.int64).max),
        "last_ts": spec(np.int64, (), NEVER),
    }


@dataclass(frozen=True, eq=False)
class Window:
    """The round's readings as the half-hour sums see them."""

    use: NDArray[np.bool_]
    """Readings with every measure present and newer than the device's last."""
    keep: NDArray[np.float64]
    """Share of the sums that survives the gap since the device's last reading, shape (m, 1), or
    (1, 1) when it is the same for every row (devices reporting in step)."""
    first_ts: NDArray[np.int64]
    """When each device's learning started."""

    @classmethod
    def of(cls, state: State, r: Round) -> Window:
        use = ~any_column(np.isnan(r.x)) & (r.ts_ms > state["last_ts"])
        gap = np.where(state["last_ts"] == NEVER, 0.0, (r.ts_ms - state["last_ts"]).astype(np.float64))
        keep = uniform_column(np.exp(-np.maximum(gap, 0.0) / TAU_MS))
        first_ts = np.where(use, np.minimum(state["first_ts"], r.ts_ms), state["first_ts"])
        return cls(use, keep, first_ts)

    def learning_rate(self, state: State, r: Round) -> NDArray[np.float64]:
        """A day's memory, or the plain running mean while fewer readings than that were learned."""
        n = state["n"].astype(np.float64)
        alpha: NDArray[np.float64] = np.maximum(rate(r.interval_ms, DAY_MS, 0.0)[:, 0], 1.0 / (n + 1.0))
        return alpha


def held_blame(
    state: State, warm: NDArray[np.bool_], score: NDArray[np.float64], threshold: float
) -> tuple[NDArray[np.int8], NDArray[np.bool_]]:
    """The measure still blamed (while the score stays above the re-arm level), and the rows that
    must decide afresh (an alarm-level score with nothing blamed yet)."""
    blamed = np.where(warm & (score >= REARM * threshold), state["blamed"], 0).astype(np.int8)
    deciding = (blamed == 0) & (score >= threshold)
    return blamed, deciding


def settle(
    state: State,
    r: Round,
    window: Window,
    wary: NDArray[np.bool_],
    blamed: NDArray[np.int8],
) -> NDArray[np.bool_]:
    """Update the shared bookkeeping after a round; returns the devices that start learning again.

    ``wary`` readings (near an alarm) teach nothing; a day of them in a row restarts the
    device: the caller then clears its own learned relation for those rows.
    """
    learn = window.use & ~wary
    off = np.where(wary, state["off_ms"] + r.interval_ms, np.where(learn, 0.0, state["off_ms"]))
    restart: NDArray[np.bool_] = off >= RE_ACCEPT_MS
    n = state["n"].astype(np.int64)
    state["n"] = np.where(restart, 0, np.where(learn, np.minimum(n + 1, 2**32 - 1), n)).astype(np.uint32)
    state["off_ms"] = np.where(restart, 0.0, off).astype(np.float32)
    state["blamed"] = np.where(restart, 0, blamed).astype(np.int8)
    state["first_ts"] = np.where(restart, r.ts_ms, window.first_ts)
    state["last_ts"] = np.where(window.use, r.ts_ms, state["last_ts"])
    return restart


def blamed_scores(
    score: NDArray[np.float64],
    blamed: NDArray[np.int8],
    codes: tuple[int, ...],
    threshold: float,
    use: NDArray[np.bool_],
) -> NDArray[np.float64]:
    """One score column per blamable measure (``codes``, in column order): the score where that
    measure is blamed, capped under the threshold elsewhere; NaN for readings not judged."""
    capped = np.minimum(score, UNBLAMED * threshold)
    scores: NDArray[np.float64] = np.stack(
        [np.where(blamed == code, score, capped) for code in codes], axis=1
    )
    if use.all():
        return scores
    judged: NDArray[np.float64] = np.where(use[:, None], scores, np.nan)
    return judged
