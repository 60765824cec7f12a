"""Silent devices: no reading for several of the device's reporting intervals.

Judged by the clock, not by readings: :meth:`SilenceDetector.check` runs every
pipeline cycle and raises one alarm per silence, when a device that has reported
before has been quiet for ``CITYPULSE_SILENCE_INTERVALS`` of its intervals (by
arrival time, so a device with a wrong clock is not taken for a silent one). The
alarm ends when the device reports again. A registered device that has never
reported is not flagged: registries list devices before they are installed.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from processors.detectors._hysteresis import ALARM
from processors.detectors.base import DEVICE_COLUMN, Category, Detector, Round, Scored, State, spec
from processors.registry import DeviceTable

NEVER = np.iinfo(np.int64).min


class SilenceDetector(Detector):
    """Missing data, by arrival time.

    Score (from :meth:`check`): intervals overdue / (2 x silence_intervals),
    capped at 1; readings themselves score 0.

    >>> import numpy as np
    >>> from processors.batch import series_batch
    >>> from processors.kinds import get_kind
    >>> kind = get_kind("water")
    >>> batch = series_batch(kind, {"ph": [7.2, 7.3]})
    >>> detector = SilenceDetector(kind)
    >>> _ = detector.update(batch)
    >>> last = int(batch.ts_ms[-1])
    >>> detector.check(last + 600_000, batch.table) is None
    True
    >>> scored = detector.check(last + 900_000, batch.table)
    >>> scored.onsets.tolist(), round(float(scored.scores[0, 0]), 2)
    ([[True]], 0.6)
    """

    name = "silence"
    category = Category.HEALTH
    targets = ("dropout",)
    description = "no reading for several reporting intervals"

    def select_fields(self, kind: Any) -> tuple[int, ...]:
        return ()

    def column_names(self) -> tuple[str, ...]:
        return (DEVICE_COLUMN,)

    def state_spec(self) -> dict[str, tuple[np.dtype[Any], tuple[int, ...], Any]]:
        return {"last_received": spec(np.int64, (), NEVER)}

    def step(self, state: State, shared: State, r: Round) -> NDArray[np.float64]:
        arrived = r.ts_ms if r.received_ms is None else r.received_ms
        state["last_received"] = np.maximum(state["last_received"], arrived)
        return np.zeros((r.device.size, 1))

    def hear(self, table: DeviceTable, device: NDArray[np.intp], at_ms: NDArray[np.int64]) -> None:
        """A device whose message was rejected is alive all the same (a liveness mark, idempotent)."""
        if device.size:
            self._store.grow(int(device.max()) + 1, table)
            np.maximum.at(self._store.state["last_received"], device, at_ms)

    def check(self, now_ms: int, table: DeviceTable) -> Scored | None:
        store = self._store
        last = store.state["last_received"]
        n = min(last.shape[0], len(table))
        if n == 0:
            return None
        store.grow(n, table)
        overdue = (now_ms - last[:n]) / store.intervals[:n]
        limit = self.config.silence_intervals
        silent = (last[:n] != NEVER) & (overdue >= limit)
        devices = np.flatnonzero(silent | store.state[ALARM][:n, 0])
        if devices.size == 0:
            return None
        raw = np.where(silent[devices], np.clip(overdue[devices] / (2.0 * limit), 0.0, 1.0), 0.0)[:, None]
        scores, onsets, alarm = self._hysteresis.apply(raw, store.state[ALARM][devices])
        ts = np.full(devices.size, now_ms, dtype=np.int64)
        local: State = {ALARM: alarm}
        return Scored(
            self,
            table,
            devices,
            ts,
            scores,
            onsets,
            alarm.copy(),
            None,
            (devices, local, {}),
            self._staging.generation,
        )

    def commit(self, scored: Scored) -> None:
        if scored.staged is not None and scored.rows is None:  # a clock check: only alarm states change
            devices, local, _ = scored.staged
            self._store.state[ALARM][devices] = local[ALARM]
            return
        super().commit(scored)


DETECTOR = SilenceDetector
