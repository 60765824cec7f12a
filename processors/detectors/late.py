"""Late deliveries: a reading that arrives after a newer one of the same device.

Order of arrival is what counts, so this detector does not take a batch's
readings in timestamp order as the others do: a reading is late if an earlier
arrival (in this cycle or a past one) already carried a later timestamp. The
other detectors score a late reading but never learn from it.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from processors.detectors.base import DEVICE_COLUMN, Category, Detector, Round, State, spec

NEVER = np.iinfo(np.int64).min


class LateDetector(Detector):
    """Out-of-order delivery.

    Score: 0.5 for any late reading, plus 0.25 per reporting interval it is
    behind the newest one, capped at 1.

    >>> import numpy as np
    >>> from processors.batch import series_batch
    >>> from processors.kinds import get_kind
    >>> kind = get_kind("traffic")
    >>> batch = series_batch(kind, {"occupancy": [10, 11, 12, 13]}, [0, 60_000, 180_000, 120_000])
    >>> LateDetector(kind).update(batch)[:, 0].tolist()
    [0.0, 0.0, 0.0, 0.75]
    """

    name = "late"
    category = Category.HEALTH
    targets = ("out_of_order",)
    description = "a reading delivered after a newer one of the same device"
    in_arrival_order = True

    def select_fields(self, kind: Any) -> tuple[int, ...]:
        return ()

    def column_names(self) -> tuple[str, ...]:
        return (DEVICE_COLUMN,)

    def state_spec(self) -> dict[str, tuple[np.dtype[Any], tuple[int, ...], Any]]:
        return {"newest": spec(np.int64, (), NEVER)}

    def step(self, state: State, shared: State, r: Round) -> NDArray[np.float64]:
        behind = np.where(state["newest"] == NEVER, 0, state["newest"] - r.ts_ms)
        late = behind > 0
        state["newest"] = np.maximum(state["newest"], r.ts_ms)
        score = np.where(late, 0.5 + 0.25 * np.minimum(behind / r.interval_ms, 2.0), 0.0)
        return score[:, None]


DETECTOR = LateDetector
