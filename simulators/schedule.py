"""When each device reports: fixed simulated-time slices, independent of the wall clock.

The fleet advances in one-second slices of simulated time. Random numbers are
drawn slice by slice, so the output depends only on the seed and the start time,
never on how fast the machine is or how the run is paced.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from processors.kinds import KINDS
from processors.registry import Registry
from simulators.encode import Chunk, TimeFormat
from simulators.signals import SignalModel, model_for

SLICE_MS = 1000


@dataclass
class _KindSchedule:
    model: SignalModel
    interval_ms: NDArray[np.int64]
    next_due: NDArray[np.int64]


class Schedule:
    """Yields, slice by slice, the readings every device of the fleet produces."""

    def __init__(self, registry: Registry, kinds: list[str], start_ms: int, seed: int) -> None:
        self.start_ms = start_ms
        self._rng = np.random.default_rng(np.random.SeedSequence([seed, 0x5C4ED]))
        phase_rng = np.random.default_rng(np.random.SeedSequence([seed, 0x9A5E]))
        self._kinds: dict[str, _KindSchedule] = {}
        for name in kinds:
            table = registry.tables[name]
            n = len(table)
            if n == 0:
                continue
            interval = np.array([round(table.interval_s(i) * 1000) for i in range(n)], dtype=np.int64)
            phase = (phase_rng.random(n) * interval).astype(np.int64)
            # Devices that send epoch seconds report on whole seconds, so nothing is rounded away.
            whole = TimeFormat.of(np.arange(n)) == TimeFormat.EPOCH_S
            phase[whole] -= phase[whole] % 1000
            self._kinds[name] = _KindSchedule(model_for(KINDS[name], n, seed), interval, start_ms + phase)

    def slice(self, slice_start_ms: int) -> Iterator[Chunk]:
        """Readings due in ``[slice_start_ms, slice_start_ms + SLICE_MS)``, kind by kind."""
        end = slice_start_ms + SLICE_MS
        for name, sched in self._kinds.items():
            while True:
                due = np.flatnonzero(sched.next_due < end)
                if due.size == 0:
                    break
                ts = sched.next_due[due].copy()
                sched.next_due[due] += sched.interval_ms[due]
                values = sched.model.values(due, ts, self._rng)
                yield Chunk(KINDS[name], due, ts, values)
