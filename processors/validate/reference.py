"""The reference path: each message, or each item of a batch, judged by its kind's pydantic model.

This is the definition of what is valid. It produces every reason code and its
detail, and it is what the fast paths must agree with: they only ever *accept*,
and only what this path would accept with the same values; everything else they
leave here. A reading taken here costs tens of microseconds; that is why the fast
paths exist, and why the common case never comes here.
"""

from __future__ import annotations

from typing import Any, cast

import pydantic_core
from pydantic import ValidationError

from processors.kinds import KINDS, Reading, SensorKind
from processors.reasons import Reason
from processors.topics import ParsedTopic, TopicError, TopicForm
from processors.validate.context import CONTROL, DEVICE_ID_RE, Context
from processors.validate.cycle import Cycle, item_bytes
from processors.validate.messages import UNKNOWN, RawMessage, UnknownFieldPolicy

REFERENCE_DEPTH = 200
"""How deep pydantic's JSON parser, the reference, nests (orjson reads 1,024 levels)."""


class Rejected(Exception):  # noqa: N818 - control flow, never escapes this package
    def __init__(self, reason: Reason, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


class ReferencePath:
    """Judges messages and batch items one at a time with the kinds' models."""

    def __init__(self, context: Context) -> None:
        self.context = context

    def open(self, message: RawMessage, cycle: Cycle) -> tuple[ParsedTopic, SensorKind, bytes] | None:
        """A message's topic and kind, and its payload with leading whitespace stripped;
        ``None`` if its topic, kind or size already rejects it whole (it is then dead-lettered)."""
        policy = self.context.policy
        try:
            topic = self.context.topics.parse(message.topic)
        except TopicError as bad:
            self._reject_whole(message, cycle, Reason.BAD_TOPIC, str(bad))
            return None
        kind = KINDS.get(topic.kind)
        if kind is None:
            self._reject_whole(
                message,
                cycle,
                Reason.UNKNOWN_KIND,
                f"unknown sensor kind {topic.kind!r}; known: {', '.join(KINDS)}",
            )
            return None
        size = len(message.payload)
        if size > policy.max_payload_bytes:
            device = topic.source_id if topic.form is TopicForm.READING else None
            self._reject_whole(
                message,
                cycle,
                Reason.PAYLOAD_TOO_LARGE,
                f"payload is {size} bytes; the limit is {policy.max_payload_bytes}",
                kind.name,
                device,
            )
            return None
        return topic, kind, message.payload.lstrip()

    def whole(self, message: RawMessage, topic: ParsedTopic, kind: SensorKind, cycle: Cycle) -> None:
        """A payload that is not an array: one reading, unless the topic is a gateway's."""
        if topic.form is TopicForm.BATCH:
            self._reject_whole(
                message,
                cycle,
                Reason.NOT_AN_OBJECT,
                "a batches/ topic takes a JSON array of readings",
                kind.name,
            )
            return
        self.single(message, kind, topic.source_id, cycle.next_seq(), cycle)

    def read_array(
        self, message: RawMessage, payload: bytes, kind: SensorKind, cycle: Cycle
    ) -> list[Any] | None:
        """An array payload as the reference parser reads it (kept for :func:`reference_item`);
        ``None`` if it is no JSON (the message is then dead-lettered)."""
        try:
            items = pydantic_core.from_json(payload, allow_inf_nan=True)
        except ValueError as bad:
            self._reject_whole(message, cycle, Reason.MALFORMED_JSON, f"invalid JSON: {bad}", kind.name)
            return None
        cycle.parsed[id(message)] = items
        return cast(list[Any], items)

    def items(
        self, message: RawMessage, topic: ParsedTopic, kind: SensorKind, items: list[Any], cycle: Cycle
    ) -> None:
        """Every item of an array payload, one after the other."""
        for item in items:
            self.item(message, kind, topic.form, topic.source_id, item, cycle.next_seq(), cycle)

    def single(self, message: RawMessage, kind: SensorKind, device_id: str, seq: int, cycle: Cycle) -> None:
        """One reading per message, parsed and validated by the kind's model in one pass."""
        cycle.result.received[kind.name] += 1
        try:
            position = self._position(kind, device_id)
            self.context.remember_route(message.topic, kind, device_id, position)
            try:
                reading = kind.model.model_validate_json(message.payload)
            except ValidationError as errors:  # the usual bad input: reject without raising again
                reason, detail = explain(errors)
                self.context.reject(
                    cycle, seq, reason, detail, message.topic, message.payload, kind.name, device_id
                )
                return
            self._accept(kind, device_id, position, reading, message, message.payload, seq, cycle)
        except Rejected as rejected:
            self.context.reject(
                cycle,
                seq,
                rejected.reason,
                rejected.detail,
                message.topic,
                message.payload,
                kind.name,
                device_id,
            )

    def item(
        self,
        message: RawMessage,
        kind: SensorKind,
        form: TopicForm,
        source_id: str,
        item: object,
        seq: int,
        cycle: Cycle,
    ) -> None:
        """One item of an array payload (as the reference parser read it, see :func:`reference_item`)."""
        cycle.result.received[kind.name] += 1
        device_id: str | None = source_id if form is TopicForm.READING else None
        try:
            if not isinstance(item, dict):
                raise Rejected(Reason.NOT_AN_OBJECT, f"batch item is a {type(item).__name__}, not an object")
            claimed = item.get("device")
            if form is TopicForm.BATCH:
                if not isinstance(claimed, str):
                    raise Rejected(
                        Reason.BAD_DEVICE_ID, "each item of a gateway batch must name its 'device'"
                    )
                device_id = claimed
            assert device_id is not None
            position = self._position(kind, device_id)
            try:
                reading = kind.model.model_validate(item)
            except ValidationError as errors:
                raise Rejected(*explain(errors)) from None
            self._accept(kind, device_id, position, reading, message, item, seq, cycle)
        except Rejected as rejected:
            self.context.reject(
                cycle,
                seq,
                rejected.reason,
                rejected.detail,
                message.topic,
                item_bytes(item),
                kind.name,
                device_id,
            )

    def _reject_whole(
        self,
        message: RawMessage,
        cycle: Cycle,
        reason: Reason,
        detail: str,
        kind: str = UNKNOWN,
        device: str | None = None,
    ) -> None:
        """Dead-letter a message that could not be split into readings (it counts as one)."""
        cycle.result.received[kind] += 1
        self.context.reject(
            cycle, cycle.next_seq(), reason, detail, message.topic, message.payload, kind, device
        )

    def _position(self, kind: SensorKind, device_id: str) -> int:
        registry = self.context.registry
        device = registry.get(device_id)
        if device is None:
            if not DEVICE_ID_RE.match(device_id):
                raise Rejected(
                    Reason.BAD_DEVICE_ID,
                    f"device id {short(device_id)} must be 1-64 letters, digits, '_', '.', ':' or '-'",
                )
            raise Rejected(Reason.UNKNOWN_DEVICE, f"device {device_id!r} is not in the registry")
        if device.kind != kind.name:
            raise Rejected(
                Reason.KIND_MISMATCH,
                f"device {device_id!r} is registered as {device.kind!r}, not {kind.name!r}",
            )
        return registry.tables[kind.name].index[device_id]

    def _accept(
        self,
        kind: SensorKind,
        device_id: str,
        position: int,
        reading: Reading,
        message: RawMessage,
        origin: bytes | object,
        seq: int,
        cycle: Cycle,
    ) -> None:
        if reading.device is not None and reading.device != device_id:
            raise Rejected(
                Reason.DEVICE_MISMATCH,
                f"payload names device {reading.device!r} but the topic names {device_id!r}",
            )
        extra = reading.model_extra
        if extra:
            if self.context.policy.unknown_fields is UnknownFieldPolicy.REJECT:
                names = ", ".join(short(n) for n in sorted(extra))
                raise Rejected(Reason.UNKNOWN_FIELD, f"unknown fields: {names}")
            self.context.count_ignored(cycle, extra.keys())
        self._check_time(reading.ts, cycle.now_ms)
        rows = cycle.rows_of(kind.name)
        received = cycle.now_ms if message.received_ms is None else message.received_ms
        rows.slow.append((seq, position, reading.ts, reading.values(), received))
        rows.origins[seq] = (message.topic, origin)

    def _check_time(self, ts: int, now_ms: int) -> None:
        policy = self.context.policy
        if ts > now_ms + policy.max_future_ms:
            raise Rejected(
                Reason.TIMESTAMP_IN_FUTURE,
                f"timestamp is {(ts - now_ms) / 1000:.0f} s ahead of the ingest clock "
                f"(limit {policy.max_future_ms / 1000:.0f} s)",
            )
        if ts < now_ms - policy.max_age_ms:
            raise Rejected(
                Reason.TIMESTAMP_TOO_OLD,
                f"timestamp is {(now_ms - ts) / 3_600_000:.1f} h old "
                f"(limit {policy.max_age_ms / 3_600_000:.1f} h)",
            )


def reference_item(cycle: Cycle, message: RawMessage, number: int, item: object) -> object:
    """Item ``number`` of an array payload as the reference parser reads it; ``item`` is orjson's.

    orjson turns integers beyond 64 bits into floats where pydantic keeps them
    exact; whatever the reference path judges must be what it would have parsed.
    Any other JSON both read to the same values, so the payload is parsed again
    only when the item holds a float that may have been such an integer.
    """
    parsed = cycle.parsed.get(id(message))
    if parsed is None:
        if _no_huge_floats(item):
            return item
        parsed = cycle.parsed[id(message)] = pydantic_core.from_json(
            message.payload.lstrip(), allow_inf_nan=True
        )
    return parsed[number]


def _no_huge_floats(item: object) -> bool:
    """Whether ``item`` holds no float of 2**63 or more in size (which an integer beyond 64 bits becomes)."""
    stack = [item]
    while stack:
        value = stack.pop()
        kind = type(value)
        if kind is float:
            if not -_HUGE < cast(float, value) < _HUGE:
                return False
        elif kind is dict:
            stack.extend(cast(dict[str, object], value).values())
        elif kind is list:
            stack.extend(cast(list[object], value))
    return True


_HUGE = 2.0**63

_RANGE_ERRORS = frozenset({"greater_than_equal", "less_than_equal", "greater_than", "less_than"})
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


def explain(errors: ValidationError) -> tuple[Reason, str]:
    """Pick the reason code that best describes a pydantic error list, and a one-line detail."""
    reasons: list[Reason] = []
    details: list[str] = []
    for error in errors.errors(include_url=False):
        reason = _reason_of(error)
        reasons.append(reason)
        where = ".".join(CONTROL.sub("?", str(p)) for p in error["loc"]) or "payload"
        shown = "" if error["type"] in ("missing", "json_invalid") else f" (got {short(error.get('input'))})"
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


def short(value: object) -> str:
    """``repr`` cut to 60 characters: control characters come out escaped, never raw."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
