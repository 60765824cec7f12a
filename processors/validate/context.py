"""What every validation path of one :class:`~processors.validate.Validator` shares, cycle after cycle.

Its registry, policy and topic scheme; the kinds' codes; the cache of topics
already resolved to a registered device (:class:`Routes`), which lets the fast
paths take a cycle's one-reading messages as columns (:class:`Singles`); and the
unknown field names counted so far, bounded.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from itertools import repeat

import numpy as np
from numpy.typing import NDArray

from processors.kinds import KINDS, SensorKind
from processors.kinds.base import DEVICE_ID_PATTERN
from processors.reasons import Reason
from processors.registry import Registry
from processors.topics import TopicScheme
from processors.validate.columns import pick
from processors.validate.cycle import PAYLOAD, TOPIC, Cycle, arrivals
from processors.validate.messages import (
    MAX_FIELD_NAMES,
    OTHER_FIELDS,
    MessageColumns,
    RawMessage,
    Reject,
    ValidationPolicy,
)

DEVICE_ID_RE = re.compile(DEVICE_ID_PATTERN)
CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


class Routes:
    """Readings topics of registered devices of the right kind, resolved once and cached.

    Kept as columns by route number, so a cycle looks all its topics up in one pass
    and takes kinds and device positions out of arrays, not attribute by attribute.
    """

    def __init__(self) -> None:
        self.number: dict[str, int] = {}
        self.code = np.zeros(64, dtype=np.int16)
        """The kind's place in :data:`KINDS`, to group a cycle's messages by kind in one sort
        (16 bits: numpy sorts them by radix, in one pass)."""
        self.position = np.zeros(64, dtype=np.intp)
        self.device_id: NDArray[np.object_] = np.empty(64, dtype=object)
        """The device's id (a ``str``): an array too, so that a cycle's are taken in one C-level pass."""

    def clear(self) -> None:
        self.number.clear()

    def __len__(self) -> int:
        return len(self.number)

    def remember(self, topic: str, code: int, device_id: str, position: int, limit: int) -> None:
        if topic in self.number:  # a topic always resolves to the same route: nothing to update
            return
        if len(self.number) >= limit:  # topics nobody registered must not grow memory
            self.clear()
        number = len(self.number)
        if number == self.code.size:
            self.code = np.concatenate([self.code, np.zeros_like(self.code)])
            self.position = np.concatenate([self.position, np.zeros_like(self.position)])
            self.device_id = np.concatenate([self.device_id, np.empty_like(self.device_id)])
        self.number[topic] = number
        self.code[number], self.position[number], self.device_id[number] = code, position, device_id


@dataclass(slots=True)
class Singles:
    """A cycle's messages as columns, for the fast paths' one-reading messages on known topics.

    Row ``k`` is message ``index[k]`` of the cycle. ``codes`` is its kind code, -1
    where the general way must decide: an unknown topic (gateway batches among them);
    ``parse`` marks the rows a fast path may read (a known topic, a payload within
    the size limit).
    """

    index: NDArray[np.intp]
    payloads: list[bytes]
    sizes: NDArray[np.int64]
    numbers: NDArray[np.intp]
    """Each topic's route number, -1 where the topic is not a known route."""
    codes: NDArray[np.int16]
    parse: NDArray[np.bool_]
    received: NDArray[np.int64]
    """Arrival times of every message of the cycle, by its place in the cycle (not by row)."""

    @classmethod
    def of(cls, messages: Sequence[RawMessage], routes: Routes, limit: int, now_ms: int) -> Singles:
        n = len(messages)
        if isinstance(messages, MessageColumns):
            topics, payloads = messages.topics, messages.payloads
        else:
            topics, payloads = list(map(TOPIC, messages)), list(map(PAYLOAD, messages))
        numbers = np.fromiter(map(routes.number.get, topics, repeat(-1)), np.intp, count=n)
        sizes = np.fromiter(map(len, payloads), dtype=np.int64, count=n)
        codes = np.where(numbers >= 0, routes.code[numbers], -1)
        parse = (sizes <= limit) & (codes >= 0)
        return cls(np.arange(n), payloads, sizes, numbers, codes, parse, arrivals(messages, now_ms))

    def without(self, taken: NDArray[np.bool_]) -> Singles:
        """The rows not ``taken``."""
        left = np.flatnonzero(~taken)
        return Singles(
            self.index[left],
            pick(self.payloads, left.tolist()),
            self.sizes[left],
            self.numbers[left],
            self.codes[left],
            self.parse[left],
            self.received,
        )


class Context:
    """The registry, policy and caches one validator's paths work with."""

    def __init__(self, registry: Registry, policy: ValidationPolicy, topics: TopicScheme) -> None:
        self.registry = registry
        self.policy = policy
        self.topics = topics
        self.routes = Routes()
        self.kind_names = list(KINDS)
        self.kind_codes = {name: code for code, name in enumerate(self.kind_names)}
        self.shift = (policy.max_payload_bytes + 1).bit_length()
        """Bits of a sequence number that count the readings within one message (at most one per byte)."""
        self._field_names: set[str] = set()

    def remember_route(self, topic: str, kind: SensorKind, device_id: str, position: int) -> None:
        self.routes.remember(
            topic, self.kind_codes[kind.name], device_id, position, 2 * len(self.registry) + 1024
        )

    def count_ignored(self, cycle: Cycle, names: Iterable[object]) -> None:
        """Count unknown field names, sanitised and bounded (they become stats keys)."""
        for raw in names:
            name = CONTROL.sub("", str(raw))[:64] or "(empty)"
            if name not in self._field_names:
                if len(self._field_names) >= MAX_FIELD_NAMES:
                    name = OTHER_FIELDS
                else:
                    self._field_names.add(name)
            cycle.result.ignored_fields[name] += 1

    def reject(
        self,
        cycle: Cycle,
        seq: int,
        reason: Reason,
        detail: str,
        topic: str,
        payload: bytes,
        kind: str | None,
        device: str | None,
    ) -> None:
        """Dead-letter a message or item (reading ``seq`` of the cycle), its payload cut to size."""
        shown = device if device is not None and DEVICE_ID_RE.match(device) else None
        limit = self.policy.max_topic_bytes
        topic = topic if len(topic) <= limit else topic[:limit] + "…"
        cycle.rejects.append((seq, Reject(reason, detail, topic, self.bounded(payload), kind, shown)))

    def bounded(self, payload: bytes) -> bytes:
        return payload[: self.policy.deadletter_payload_bytes]
