"""From scores to alarms: an alarm starts at the threshold and ends only well below it.

A detector's score is evidence about one reading; whether an alarm is *on* is a
decision with memory, and it is made here, apart from every detector's statistic
(as river keeps its ``ThresholdFilter`` apart from its anomaly detectors). A score
that wavers around the threshold would otherwise start a new alarm at every crossing.

The alarm state of each (device, score column) is kept with the detector's
per-device state, under :data:`ALARM`, so it is staged, committed and saved with it.
A detector that decides its alarm itself (from a statistic other than its score, as
``generic`` does) returns :class:`Judged` from its ``step``: its scores are cleaned
the same way, and its alarm states are taken as they are.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from processors.detectors._storage import Spec, spec

REARM = 0.5
"""An alarm ends when the score falls below this share of the threshold."""
ALARM = "_active"
"""The per-device state entry holding each score column's alarm state."""


def alarm_spec(columns: int) -> dict[str, Spec]:
    """The state entry of the alarm states of a detector with ``columns`` score columns."""
    return {ALARM: spec(np.bool_, (columns,), False)}


@dataclass(frozen=True, eq=False)
class Judged:
    """What a detector that decides its own alarm returns from ``step``: scores and alarm states.

    Both have one row per reading and one column per score column. A NaN score means
    nothing was judged; the alarm state there is taken as given all the same.
    """

    scores: NDArray[np.float64]
    alarm: NDArray[np.bool_]


@dataclass(frozen=True, slots=True)
class Hysteresis:
    """Turns raw scores into clean scores, alarm onsets and the alarm state after them.

    An alarm starts where a score reaches ``threshold`` and lasts while the score
    stays at or above ``rearm`` x ``threshold``; where nothing was judged (a NaN
    score: the measure was not reported) the alarm state stays as it was.

    >>> alarm = Hysteresis(threshold=0.5)
    >>> active = np.zeros((1, 1), dtype=np.bool_)
    >>> for raw in (0.3, 0.6, 0.4, float("nan"), 0.2, 0.7):
    ...     score, onset, active = alarm.apply(np.array([[raw]]), active)
    ...     print(f"score {score[0, 0]:.1f}  onset {onset[0, 0]!s:5}  alarm {active[0, 0]}")
    score 0.3  onset False  alarm False
    score 0.6  onset True   alarm True
    score 0.4  onset False  alarm True
    score 0.0  onset False  alarm True
    score 0.2  onset False  alarm False
    score 0.7  onset True   alarm True
    """

    threshold: float
    rearm: float = REARM

    def apply(
        self, raw: NDArray[np.float64], active: NDArray[np.bool_]
    ) -> tuple[NDArray[np.float32], NDArray[np.bool_], NDArray[np.bool_]]:
        """Scores clipped to [0, 1] (NaN to 0), where an alarm starts, and which alarms are on after.

        ``raw`` and ``active`` have one row per reading and one column per score column.
        """
        unjudged = np.isnan(raw)
        clean = np.fmax(raw, 0.0)  # NaN (nothing judged) to 0 as well
        np.minimum(clean, 1.0, out=clean)
        high = clean >= self.threshold
        onset = high & ~active
        onset &= ~unjudged
        still = clean >= self.rearm * self.threshold
        still &= active
        still |= high
        still &= ~unjudged
        still |= active & unjudged
        return clean.astype(np.float32), onset, still

    def settle(
        self, raw: NDArray[np.float64] | Judged, active: NDArray[np.bool_]
    ) -> tuple[NDArray[np.float32], NDArray[np.bool_], NDArray[np.bool_]]:
        """:meth:`apply` to a step's raw scores, or a :class:`Judged` step's alarm states taken as given.

        Returns the clean scores, where an alarm starts, and the alarm state after each reading.
        """
        if not isinstance(raw, Judged):
            return self.apply(raw, active)
        clean = np.fmax(raw.scores, 0.0)
        np.minimum(clean, 1.0, out=clean)
        alarm = raw.alarm.astype(np.bool_, copy=True)
        return clean.astype(np.float32), alarm & ~active, alarm
