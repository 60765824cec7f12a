"""Counters that several threads bump: one lock, and ``add`` to change several at once."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field


@dataclass
class LockedCounters:
    """A base for a dataclass of ``int`` counters shared between threads.

    ``add(written=1, retries=2)`` changes every named counter under the one lock,
    so a reader holding the lock never sees half of an update.
    """

    lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def add(self, **deltas: int) -> None:
        with self.lock:
            for name, delta in deltas.items():
                setattr(self, name, getattr(self, name) + delta)
