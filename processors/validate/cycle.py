"""One validation cycle as it accumulates: each kind's accepted rows, the rejects, the counts.

Every path adds to the same :class:`Cycle`: the fast paths a chunk of arrays at a
time, the reference path a row at a time. Each reading carries a *sequence number*:
message ``i`` numbers its readings from ``i << shift`` in arrival order, so every
path can number its own readings without knowing how many came before, and
sorting by it puts the cycle's readings and rejects back in arrival order whichever
path took them.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from operator import attrgetter
from typing import Any, cast

import numpy as np
import orjson
from numpy.typing import NDArray

from processors.kinds import SensorKind
from processors.validate.messages import MessageColumns, RawMessage, Reject, ValidationResult

Chunk = tuple[NDArray[np.int64], NDArray[np.intp], NDArray[np.int64], NDArray[np.float64], NDArray[np.int64]]
"""Accepted rows: sequence numbers, device positions, timestamps, values, arrival times."""


@dataclass(frozen=True, slots=True)
class Source:
    """Inputs of one fast-path run, kept to find a duplicate's original payload.

    Row ``k`` (sequence number ``seqs[k]``, ascending) came from
    ``messages[index[k]]``, or is ``items[k]`` of that message's array.
    """

    seqs: NDArray[np.int64]
    messages: Sequence[RawMessage]
    index: NDArray[np.intp]
    items: Sequence[object] | ArrayItems | None


@dataclass(frozen=True, slots=True)
class ArrayItems:
    """Items of array payloads the plain path took, parsed as the general way parses them only
    when one must be dead-lettered (a duplicate): item ``numbers[k]`` of ``messages[index[k]]``."""

    messages: Sequence[RawMessage]
    index: NDArray[np.intp]
    numbers: NDArray[np.intp]

    def __getitem__(self, k: int) -> object:
        items = orjson.loads(self.messages[int(self.index[k])].payload.lstrip())
        return cast(list[object], items)[int(self.numbers[k])]


class Rows:
    """One kind's accepted readings of a cycle, from every path, before they become a batch."""

    __slots__ = ("chunks", "origins", "slow", "sources")

    def __init__(self) -> None:
        self.chunks: list[Chunk] = []
        self.slow: list[tuple[int, int, int, tuple[float, ...], int]] = []
        self.origins: dict[int, tuple[str, bytes | object]] = {}
        """Where each row of the reference path came from (by sequence number), to dead-letter a duplicate."""
        self.sources: list[Source] = []
        """The fast paths' inputs, searched only when a duplicate must be dead-lettered."""

    def origin(self, seq: int) -> tuple[str, bytes | object]:
        found = self.origins.get(seq)
        if found is not None:
            return found
        for source in self.sources:
            at = int(np.searchsorted(source.seqs, seq))
            if at < source.seqs.size and source.seqs[at] == seq:
                message = source.messages[int(source.index[at])]
                return message.topic, message.payload if source.items is None else source.items[at]
        raise KeyError(seq)

    def concatenate(self, n_measures: int) -> Chunk:
        """Every row, fast paths' chunks first, then the reference path's (not yet in sequence order)."""
        chunks = list(self.chunks)
        if self.slow:
            slow = self.slow
            chunks.append(
                (
                    np.array([r[0] for r in slow], dtype=np.int64),
                    np.array([r[1] for r in slow], dtype=np.intp),
                    np.array([r[2] for r in slow], dtype=np.int64),
                    np.array([r[3] for r in slow], dtype=np.float64).reshape(-1, n_measures),
                    np.array([r[4] for r in slow], dtype=np.int64),
                )
            )
        if not chunks:
            empty = np.empty(0, dtype=np.int64)
            return empty, np.empty(0, dtype=np.intp), empty, np.empty((0, n_measures)), empty
        if len(chunks) == 1:
            return chunks[0]
        return (
            np.concatenate([c[0] for c in chunks]),
            np.concatenate([c[1] for c in chunks]),
            np.concatenate([c[2] for c in chunks]),
            np.concatenate([c[3] for c in chunks]),
            np.concatenate([c[4] for c in chunks]),
        )


class Cycle:
    """Everything one :meth:`~processors.validate.Validator.validate` call accumulates."""

    def __init__(self, now_ms: int) -> None:
        self.now_ms = now_ms
        self.seq = 0
        self.rows: dict[str, Rows] = {}
        self.rejects: list[tuple[int, Reject]] = []
        self.result = ValidationResult()
        self.parsed: dict[int, Any] = {}
        """Array payloads as the reference parser read them, by ``id`` of their message."""
        self.routed: dict[int, tuple[SensorKind, str]] = {}
        """Messages the general way would hand straight to the model: their kind and device."""

    def next_seq(self) -> int:
        self.seq += 1
        return self.seq

    def rows_of(self, kind: str) -> Rows:
        rows = self.rows.get(kind)
        if rows is None:
            rows = self.rows[kind] = Rows()
        return rows


def arrivals(messages: Sequence[RawMessage], now_ms: int) -> NDArray[np.int64]:
    """Each message's arrival time; the cycle's clock where the source did not say."""
    if isinstance(messages, MessageColumns):  # the receive path does not stamp messages
        return np.full(len(messages), now_ms, dtype=np.int64)
    stamps = list(map(RECEIVED, messages))
    unknown = stamps.count(None)
    if unknown == len(stamps):
        return np.full(len(stamps), now_ms, dtype=np.int64)
    if unknown:
        stamps = [now_ms if t is None else t for t in stamps]
    return np.array(stamps, dtype=np.int64)


TOPIC = attrgetter("topic")
PAYLOAD = attrgetter("payload")
RECEIVED = attrgetter("received_ms")


def item_bytes(item: object) -> bytes:
    """A batch item as bytes to dead-letter (compact JSON, or its ``repr`` if it is no JSON)."""
    try:
        return json.dumps(item, separators=(",", ":"), ensure_ascii=False).encode()
    except (TypeError, ValueError):
        return repr(item).encode()
