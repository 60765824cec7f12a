"""Validation: raw MQTT messages in, columnar batches of good readings and rejects out.

One bad reading never costs a good one: each item of a batch message is judged on
its own, and every rejection carries a reason code, a detail and the original
payload (size-bounded) so the device team can fix the sender.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import numpy as np
import pydantic_core
from pydantic import ValidationError

from processors.batch import ReadingBatch
from processors.kinds import KINDS, Reading, SensorKind
from processors.reasons import Reason
from processors.registry import Registry
from processors.topics import TopicError, TopicForm, TopicScheme


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


@dataclass(frozen=True, slots=True)
class RawMessage:
    """An MQTT message exactly as the broker delivered it."""

    topic: str
    payload: bytes


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
    """What one call to :meth:`Validator.validate` found."""

    batches: dict[str, ReadingBatch] = field(default_factory=dict)
    rejects: list[Reject] = field(default_factory=list)
    received: Counter[str] = field(default_factory=Counter)
    """Readings seen per kind (a message that could not be split counts once)."""
    ignored_fields: Counter[str] = field(default_factory=Counter)
    """Unknown fields dropped under the ``ignore`` policy, by field name."""

    @property
    def valid(self) -> int:
        return sum(len(b) for b in self.batches.values())


UNKNOWN = "unknown"
"""The kind name rejects are counted under when the topic names no known kind."""

_RANGE_ERRORS = frozenset({"greater_than_equal", "less_than_equal", "greater_than", "less_than"})


class _Rejected(Exception):  # noqa: N818 - control flow, never escapes this module
    def __init__(self, reason: Reason, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


class _Columns:
    """Accumulates one kind's accepted readings before they become numpy columns."""

    __slots__ = ("device", "ts", "values")

    def __init__(self) -> None:
        self.device: list[int] = []
        self.ts: list[int] = []
        self.values: list[tuple[float, ...]] = []


class Validator:
    """Turns raw messages into per-kind batches against a registry and a policy.

    Pure: the caller passes the current time, so replays and tests are exact.
    """

    def __init__(
        self,
        registry: Registry,
        policy: ValidationPolicy | None = None,
        topics: TopicScheme | None = None,
    ) -> None:
        self.registry = registry
        self.policy = policy or ValidationPolicy()
        self.topics = topics or TopicScheme()

    def validate(self, messages: Sequence[RawMessage], now_ms: int) -> ValidationResult:
        result = ValidationResult()
        columns: dict[str, _Columns] = {}
        for message in messages:
            self._message(message, now_ms, result, columns)
        for name, cols in columns.items():
            kind = KINDS[name]
            result.batches[name] = ReadingBatch(
                kind=kind,
                table=self.registry.tables[name],
                device=np.asarray(cols.device, dtype=np.intp),
                ts_ms=np.asarray(cols.ts, dtype=np.int64),
                values=np.asarray(cols.values, dtype=np.float64).reshape(len(cols.ts), len(kind.measures)),
            )
        return result

    def _message(
        self,
        message: RawMessage,
        now_ms: int,
        result: ValidationResult,
        columns: dict[str, _Columns],
    ) -> None:
        def reject_whole(reason: Reason, detail: str, kind: str = UNKNOWN, device: str | None = None) -> None:
            result.received[kind] += 1
            result.rejects.append(
                Reject(reason, detail, message.topic, self._bounded(message.payload), kind, device)
            )

        try:
            topic = self.topics.parse(message.topic)
        except TopicError as bad:
            reject_whole(Reason.BAD_TOPIC, str(bad))
            return
        kind = KINDS.get(topic.kind)
        if kind is None:
            reject_whole(
                Reason.UNKNOWN_KIND,
                f"unknown sensor kind {topic.kind!r}; known: {', '.join(KINDS)}",
            )
            return
        size = len(message.payload)
        if size > self.policy.max_payload_bytes:
            device = topic.source_id if topic.form is TopicForm.READING else None
            reject_whole(
                Reason.PAYLOAD_TOO_LARGE,
                f"payload is {size} bytes; the limit is {self.policy.max_payload_bytes}",
                kind.name,
                device,
            )
            return

        payload = message.payload.lstrip()
        if payload[:1] != b"[":
            if topic.form is TopicForm.BATCH:
                reject_whole(
                    Reason.NOT_AN_OBJECT,
                    "a batches/ topic takes a JSON array of readings",
                    kind.name,
                )
                return
            self._single(message, kind, topic.source_id, now_ms, result, columns)
            return
        try:
            items = pydantic_core.from_json(payload, allow_inf_nan=True)
        except ValueError as bad:
            reject_whole(Reason.MALFORMED_JSON, f"invalid JSON: {bad}", kind.name)
            return
        for item in items:
            self._item(message, kind, topic.form, topic.source_id, item, now_ms, result, columns)

    def _single(
        self,
        message: RawMessage,
        kind: SensorKind,
        device_id: str,
        now_ms: int,
        result: ValidationResult,
        columns: dict[str, _Columns],
    ) -> None:
        """The common case, one reading per message, parsed and validated in one pass."""
        result.received[kind.name] += 1
        try:
            position = self._position(kind, device_id)
            try:
                reading = kind.model.model_validate_json(message.payload)
            except ValidationError as errors:
                raise _Rejected(*_explain(errors)) from None
            self._accept(kind, device_id, position, reading, now_ms, result, columns)
        except _Rejected as rejected:
            result.rejects.append(
                Reject(
                    rejected.reason,
                    rejected.detail,
                    message.topic,
                    self._bounded(message.payload),
                    kind.name,
                    device_id,
                )
            )

    def _item(
        self,
        message: RawMessage,
        kind: SensorKind,
        form: TopicForm,
        source_id: str,
        item: object,
        now_ms: int,
        result: ValidationResult,
        columns: dict[str, _Columns],
    ) -> None:
        result.received[kind.name] += 1
        device_id: str | None = source_id if form is TopicForm.READING else None
        try:
            if not isinstance(item, dict):
                raise _Rejected(Reason.NOT_AN_OBJECT, f"batch item is a {type(item).__name__}, not an object")
            claimed = item.get("device")
            if form is TopicForm.BATCH:
                if not isinstance(claimed, str):
                    raise _Rejected(
                        Reason.BAD_DEVICE_ID, "each item of a gateway batch must name its 'device'"
                    )
                device_id = claimed
            assert device_id is not None
            position = self._position(kind, device_id)
            try:
                reading = kind.model.model_validate(item)
            except ValidationError as errors:
                raise _Rejected(*_explain(errors)) from None
            self._accept(kind, device_id, position, reading, now_ms, result, columns)
        except _Rejected as rejected:
            result.rejects.append(
                Reject(
                    rejected.reason,
                    rejected.detail,
                    message.topic,
                    self._bounded(_item_bytes(item)),
                    kind.name,
                    device_id if isinstance(device_id, str) else None,
                )
            )

    def _position(self, kind: SensorKind, device_id: str) -> int:
        device = self.registry.get(device_id)
        if device is None:
            raise _Rejected(Reason.UNKNOWN_DEVICE, f"device {device_id!r} is not in the registry")
        if device.kind != kind.name:
            raise _Rejected(
                Reason.KIND_MISMATCH,
                f"device {device_id!r} is registered as {device.kind!r}, not {kind.name!r}",
            )
        return self.registry.tables[kind.name].index[device_id]

    def _accept(
        self,
        kind: SensorKind,
        device_id: str,
        position: int,
        reading: Reading,
        now_ms: int,
        result: ValidationResult,
        columns: dict[str, _Columns],
    ) -> None:
        if reading.device is not None and reading.device != device_id:
            raise _Rejected(
                Reason.DEVICE_MISMATCH,
                f"payload names device {reading.device!r} but the topic names {device_id!r}",
            )
        extra = reading.model_extra
        if extra:
            if self.policy.unknown_fields is UnknownFieldPolicy.REJECT:
                raise _Rejected(Reason.UNKNOWN_FIELD, f"unknown fields: {', '.join(sorted(extra))}")
            result.ignored_fields.update(extra.keys())
        ts = reading.ts
        if ts > now_ms + self.policy.max_future_ms:
            raise _Rejected(
                Reason.TIMESTAMP_IN_FUTURE,
                f"timestamp is {(ts - now_ms) / 1000:.0f} s ahead of the ingest clock "
                f"(limit {self.policy.max_future_ms / 1000:.0f} s)",
            )
        if ts < now_ms - self.policy.max_age_ms:
            raise _Rejected(
                Reason.TIMESTAMP_TOO_OLD,
                f"timestamp is {(now_ms - ts) / 3_600_000:.1f} h old "
                f"(limit {self.policy.max_age_ms / 3_600_000:.1f} h)",
            )
        cols = columns.get(kind.name)
        if cols is None:
            cols = columns[kind.name] = _Columns()
        cols.device.append(position)
        cols.ts.append(ts)
        cols.values.append(reading.values())

    def _bounded(self, payload: bytes) -> bytes:
        return payload[: self.policy.deadletter_payload_bytes]


def _item_bytes(item: object) -> bytes:
    try:
        return json.dumps(item, separators=(",", ":"), ensure_ascii=False).encode()
    except (TypeError, ValueError):
        return repr(item).encode()


_PRIORITY = (
    Reason.MALFORMED_JSON,
    Reason.NOT_AN_OBJECT,
    Reason.MISSING_TIMESTAMP,
    Reason.BAD_TIMESTAMP,
    Reason.BAD_DEVICE_ID,
    Reason.NO_MEASUREMENTS,
    Reason.NOT_FINITE,
    Reason.WRONG_TYPE,
    Reason.OUT_OF_RANGE,
)


def _explain(errors: ValidationError) -> tuple[Reason, str]:
    """Pick the reason code that best describes a pydantic error list, and a one-line detail."""
    reasons: list[Reason] = []
    details: list[str] = []
    for error in errors.errors(include_url=False):
        reason = _reason_of(error)
        reasons.append(reason)
        where = ".".join(str(p) for p in error["loc"]) or "payload"
        shown = "" if error["type"] in ("missing", "json_invalid") else f" (got {_short(error.get('input'))})"
        message = str(error["msg"]).removeprefix("Value error, ")
        details.append(f"{where}: {message}{shown}")
    best = min(reasons, key=_PRIORITY.index)
    return best, "; ".join(details)[:500]


def _reason_of(error: Any) -> Reason:
    kind = error["type"]
    loc = error["loc"]
    if kind == "json_invalid":
        return Reason.MALFORMED_JSON
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        return Reason.NOT_AN_OBJECT
    if loc and loc[0] == "ts":
        return Reason.MISSING_TIMESTAMP if kind == "missing" else Reason.BAD_TIMESTAMP
    if loc and loc[0] == "device":
        return Reason.BAD_DEVICE_ID
    if kind == "value_error" and "no_measurements" in str(error["msg"]):
        return Reason.NO_MEASUREMENTS
    if kind == "finite_number":
        return Reason.NOT_FINITE
    if kind in _RANGE_ERRORS:
        return Reason.OUT_OF_RANGE
    return Reason.WRONG_TYPE


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
