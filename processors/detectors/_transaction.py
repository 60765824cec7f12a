"""Nothing a detector learns counts until the scored readings are stored.

Scoring works on copies of the per-device rows it touches and hands them back
staged in its :class:`~processors.detectors.base.Scored`; :meth:`Staging.commit`
writes them into the store. Binned tables are changed in place instead, and every
change is logged: if the scores are never committed (their cycle's write failed),
:meth:`Staging.rollback` replays the log backwards before the next scoring, so a
retried cycle meets exactly the state its first try met and nothing is learned twice.

Each commit (and each restore) starts a new *generation*: scores computed against
an older one are refused with :class:`StaleScores`, as committing them would
overwrite what was learned since.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from numpy.typing import NDArray

from processors.detectors._storage import Store, Undo, cells, put_cells, put_rows

if TYPE_CHECKING:
    import numpy as np

    from processors.detectors.base import Scored


class StaleScores(RuntimeError):  # noqa: N818 - a state, not a failure of the caller's input
    """Scores computed against a state that has changed since: score the batch again."""


class Staging:
    """A detector's uncommitted in-place changes, and the generation of its committed state."""

    __slots__ = ("generation", "undo")

    def __init__(self) -> None:
        self.generation = 0
        self.undo: Undo | None = None
        """The in-place changes of the latest scoring, until it is committed or rolled back."""

    def begin(self) -> Undo:
        """A fresh undo log for a scoring about to change binned tables in place."""
        undo: Undo = []
        self.undo = undo
        return undo

    def rollback(self, store: Store) -> None:
        """Undo in-place changes of a scoring that was never committed (its write failed)."""
        undo, self.undo = self.undo, None
        if undo:
            for name, flat, old in reversed(undo):
                put_cells(cells(store.binned[name]), flat, old)

    def commit(self, store: Store, scored: Scored) -> None:
        """Write what ``scored`` staged into ``store`` and let go of it (committing it again does
        nothing); refuse scores of an older generation."""
        if scored.staged is None:
            return
        if scored.generation != self.generation:
            raise StaleScores(
                f"{scored.detector.name}: the state changed since these scores; score the batch again"
            )
        unique, local, shared = scored.staged
        # Staged devices are distinct and ascending: consecutive ones are a slice.
        rows: NDArray[np.intp] | slice = unique
        if unique.size and int(unique[-1]) - int(unique[0]) == unique.size - 1:
            rows = slice(int(unique[0]), int(unique[-1]) + 1)
        for name, value in local.items():
            if isinstance(rows, slice):
                store.state[name][rows] = value
            else:
                put_rows(store.state[name], rows, value)
        store.shared = shared
        if scored.undo is self.undo:
            self.undo = None  # the in-place changes stay
        # Kept, the copies would live as long as the scores (a cycle waiting to be stored):
        # at 100,000 devices, a large cycle's copies are over a hundred megabytes.
        scored.staged = None
        scored.undo = None
        self.generation += 1

    def invalidate(self) -> None:
        """The state was replaced (restored): scores computed before may no longer be committed."""
        self.generation += 1
