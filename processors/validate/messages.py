"""What validation takes and gives: raw messages in; batches, rejects and counts out; the policy between."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from enum import StrEnum

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
