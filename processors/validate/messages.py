"""What validation takes and gives: raw messages in; batches, rejects and counts out; the policy between."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import overload

from processors.batch import ReadingBatch
from processors.reasons import Reason


class UnknownFieldPolicy(StrEnum):
    IGNORE = "ignore"
    """Store the known measurements, drop unknown fields and count them."""
    REJECT = "reject"
    """Dead-letter the whole reading."""


@dataclass(frozen=True, slots=True)
class ValidationPolicy:
    """Limits that separate a usable reading from one that must be dead-lettered."""

    max_payload_bytes: int = 256 * 1024
    max_future_ms: int = 5 * 60 * 1000
    max_age_ms: int = 7 * 24 * 3600 * 1000
    unknown_fields: UnknownFieldPolicy = UnknownFieldPolicy.IGNORE
    deadletter_payload_bytes: int = 4096
    dedup_window: int = 16
    """Timestamps remembered per device to recognise a repeated reading across cycles."""
    max_topic_bytes: int = 256
    max_json_depth: int = 4
    """A reading is an object (depth 1), a backlog or batch an array of them (2): the rest is slack."""
    max_batch_items: int = 10_000
    max_fields: int = 64
    max_string_bytes: int = 1024
    gateway_check: bool = True
    """Refuse a batch item for a device the registry does not put behind that gateway."""


@dataclass(frozen=True, slots=True)
class RawMessage:
    """An MQTT message exactly as the broker delivered it.

    ``received_ms`` is when it arrived, if the source knows; otherwise the cycle's
    clock stands in for it.
    """

    topic: str
    payload: bytes
    received_ms: int | None = None


@dataclass(frozen=True, slots=True)
class Reject:
    """One rejected message or batch item, ready to be counted and dead-lettered."""

    reason: Reason
    detail: str
    topic: str
    payload: bytes
    kind: str | None = None
    device: str | None = None


@dataclass
class ValidationResult:
    """What one call to :meth:`~processors.validate.Validator.validate` found."""

    batches: dict[str, ReadingBatch] = field(default_factory=dict)
    rejects: list[Reject] = field(default_factory=list)
    received: Counter[str] = field(default_factory=Counter)
    """Readings seen per kind (a message that could not be split counts once)."""
    ignored_fields: Counter[str] = field(default_factory=Counter)
    """Unknown fields dropped under the ``ignore`` policy, by (sanitised) field name."""

    @property
    def valid(self) -> int:
        return sum(len(b) for b in self.batches.values())


UNKNOWN = "unknown"
"""The kind name rejects are counted under when the topic names no known kind."""

OTHER_FIELDS = "(other)"
"""Unknown field names beyond :data:`MAX_FIELD_NAMES` distinct ones are counted under this name."""
MAX_FIELD_NAMES = 256
"""Distinct unknown field names counted by name: a sender inventing names must not grow memory."""


class MessageColumns(Sequence[RawMessage]):
    """A cycle's messages as two lists, as the receive path cuts them: topics and payloads.

    A sequence of :class:`RawMessage` to whoever reads it one message at a time (the
    reference path, for the few messages it sees); the fast paths read the lists
    themselves, so the usual message never becomes an object of its own.
    """

    __slots__ = ("payloads", "topics")

    def __init__(self, topics: list[str], payloads: list[bytes]) -> None:
        if len(topics) != len(payloads):
            raise ValueError("every message needs a topic and a payload")
        self.topics = topics
        self.payloads = payloads

    def __len__(self) -> int:
        return len(self.topics)

    @overload
    def __getitem__(self, index: int) -> RawMessage: ...

    @overload
    def __getitem__(self, index: slice) -> MessageColumns: ...

    def __getitem__(self, index: int | slice) -> RawMessage | MessageColumns:
        if isinstance(index, slice):
            return MessageColumns(self.topics[index], self.payloads[index])
        return RawMessage(self.topics[index], self.payloads[index])
