"""What each message of a generated block added to the tally, so a stopped run can take back the rest.

A block of simulated time is generated and encoded at once (a minute), then sent
second by second as each second falls due. A run stopped mid-block must not send
the seconds that are not due yet: a live fleet would stamp them ahead of the
clock, and the pipeline would call that clock skew. So the encoder notes, per
message, what it counted (readings, valid readings, expected rejects), and the
runner withdraws what it never sent: the tally stays exactly what was sent.

Single-reading messages are noted a chunk at a time (their send times as one
array), so the encoder's hot path pays one list append per chunk.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import NDArray

from processors.reasons import Reason

if TYPE_CHECKING:
    from simulators.encode import Tally


@dataclass(frozen=True, slots=True)
class _Singles:
    kind: str
    publish_ms: NDArray[np.int64]
    """Send time of each row of a chunk; rows in ``held_back`` were not sent with it."""
    reasons: Mapping[int, Reason]
    held_back: Collection[int]


@dataclass(frozen=True, slots=True)
class _Message:
    kind: str
    publish_ms: int
    readings: int
    valid: int
    rejects: tuple[Reason, ...]


@dataclass
class Ledger:
    """The tally's entries of the block being sent, message by message.

    >>> from simulators.encode import Tally
    >>> tally, ledger = Tally(), Ledger()
    >>> tally.messages, tally.readings["air"], tally.valid_readings["air"] = 3, 3, 2
    >>> tally.expected_rejects["wrong_type"] = 1
    >>> ledger.singles("air", np.array([1000, 2000, 3000]), {2: Reason.WRONG_TYPE}, ())
    >>> ledger.withdraw(tally, 2500)
    1
    >>> tally.messages, tally.readings["air"], tally.valid_readings["air"], dict(tally.expected_rejects)
    (2, 2, 2, {})
    """

    _singles: list[_Singles] = field(default_factory=list)
    _messages: list[_Message] = field(default_factory=list)

    def clear(self) -> None:
        """Forget the previous block: it was sent whole."""
        self._singles.clear()
        self._messages.clear()

    def singles(
        self,
        kind: str,
        publish_ms: NDArray[np.int64],
        reasons: Mapping[int, Reason],
        held_back: Collection[int],
    ) -> None:
        """Single-reading messages, one per row not ``held_back``; ``reasons`` names the rejects."""
        self._singles.append(_Singles(kind, publish_ms, reasons, held_back))

    def message(
        self, kind: str, publish_ms: int, readings: int, valid: int, rejects: Sequence[Reason]
    ) -> None:
        """One message (a released reading, a gateway batch) and what it counted."""
        self._messages.append(_Message(kind, publish_ms, readings, valid, tuple(rejects)))

    def unsent(self, from_ms: int) -> tuple[int, int]:
        """Messages and readings of the block sent at or after ``from_ms``: counted, not sent yet."""
        part = self._from(from_ms)
        return part.messages, sum(part.readings.values())

    def withdraw(self, tally: Tally, from_ms: int) -> int:
        """Take every message sent at or after ``from_ms`` out of ``tally``; returns how many."""
        part = self._from(from_ms)
        tally.messages -= part.messages
        _subtract(tally.readings, part.readings)
        _subtract(tally.valid_readings, part.valid)
        _subtract(tally.expected_rejects, part.rejects)
        self.clear()
        return part.messages

    def _from(self, from_ms: int) -> _Part:
        part = _Part()
        for chunk in self._singles:
            rows = [
                r for r in np.flatnonzero(chunk.publish_ms >= from_ms).tolist() if r not in chunk.held_back
            ]
            refused = [chunk.reasons[r] for r in rows if r in chunk.reasons]
            part.messages += len(rows)
            part.readings[chunk.kind] += len(rows)
            part.valid[chunk.kind] += len(rows) - len(refused)
            part.rejects.update(str(reason) for reason in refused)
        for message in self._messages:
            if message.publish_ms >= from_ms:
                part.messages += 1
                part.readings[message.kind] += message.readings
                part.valid[message.kind] += message.valid
                part.rejects.update(str(reason) for reason in message.rejects)
        return part


@dataclass
class _Part:
    """What some of the block's messages counted."""

    messages: int = 0
    readings: Counter[str] = field(default_factory=Counter)
    valid: Counter[str] = field(default_factory=Counter)
    rejects: Counter[str] = field(default_factory=Counter)


def _subtract(counts: Counter[str], taken: Counter[str]) -> None:
    """Subtract in place, dropping what falls to zero (summaries compare these dicts exactly)."""
    for key, n in taken.items():
        counts[key] -= n
        if counts[key] <= 0:
            del counts[key]
