"""Validation: raw MQTT messages in, columnar batches of good readings and rejects out.

One bad reading never costs a good one: each item of a batch message is judged on
its own, and every rejection carries a reason code, a detail and the original
payload (size-bounded) so the device team can fix the sender.

Two paths give the same answers. The *reference path* validates one message at a
time with the kind's pydantic model; it is the definition of what is valid and
produces every reason code and detail. The *column path* (:mod:`processors.columns`)
parses a cycle's payloads with orjson and checks them a column at a time; it only
ever *accepts*, and only what the model would accept with the same values. Anything
it is not sure of goes to the reference path, so reasons and details stay exact while
the common case costs a few microseconds instead of tens.

Duplicates (the same device and timestamp twice, within a cycle or across recent
cycles) are rejected with reason ``duplicate``. The memory of recent timestamps is
only updated by :meth:`Validator.remember`, which the pipeline calls once the cycle
is durable: a cycle whose write failed is validated again exactly the same way.
"""

from __future__ import annotations

import itertools
import json
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from itertools import repeat
from operator import add, attrgetter, is_, is_not
from typing import Any, cast

import numpy as np
import orjson
import pydantic_core
from numpy.typing import NDArray
from pydantic import ValidationError

from processors.batch import ReadingBatch
from processors.columns import Checked, Claims, ColumnPlan, check_claims, pick, plan_for
from processors.dedup import RecentTimestamps
from processors.kinds import KINDS, Reading, SensorKind
from processors.kinds.base import DEVICE_ID_PATTERN
from processors.plain import PlainPlan, check_plain
from processors.reasons import Reason
from processors.registry import Registry
from processors.timestamps import format_rfc3339
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
    dedup_window: int = 16
    """Timestamps remembered per device to recognise a repeated reading across cycles."""


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
    """What one call to :meth:`Validator.validate` found."""

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

_RANGE_ERRORS = frozenset({"greater_than_equal", "less_than_equal", "greater_than", "less_than"})
_DEVICE_ID_RE = re.compile(DEVICE_ID_PATTERN)
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


class _Rejected(Exception):  # noqa: N818 - control flow, never escapes this module
    def __init__(self, reason: Reason, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


class _Routes:
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


_Chunk = tuple[NDArray[np.int64], NDArray[np.intp], NDArray[np.int64], NDArray[np.float64], NDArray[np.int64]]
"""Accepted rows: sequence numbers, device positions, timestamps, values, arrival times."""


class _Rows:
    """One kind's accepted readings of a cycle, from either path, before they become a batch."""

    __slots__ = ("chunks", "origins", "slow", "sources")

    def __init__(self) -> None:
        self.chunks: list[_Chunk] = []
        self.slow: list[tuple[int, int, int, tuple[float, ...], int]] = []
        self.origins: dict[int, tuple[str, bytes | object]] = {}
        """Where each row of the reference path came from (by sequence number), to dead-letter a duplicate."""
        self.sources: list[_Source] = []
        """The column path's inputs, searched only when a duplicate must be dead-lettered."""

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


class _Cycle:
    """Everything one :meth:`Validator.validate` call accumulates."""

    def __init__(self, now_ms: int) -> None:
        self.now_ms = now_ms
        self.seq = 0
        self.rows: dict[str, _Rows] = {}
        self.rejects: list[tuple[int, Reject]] = []
        self.result = ValidationResult()
        self._reference: dict[int, Any] = {}
        self.routed: dict[int, tuple[SensorKind, str]] = {}
        """Messages the general way would hand straight to the model: their kind and device."""

    def next_seq(self) -> int:
        self.seq += 1
        return self.seq

    def keep_reference(self, message: RawMessage, items: Any) -> None:
        self._reference[id(message)] = items

    def reference_item(self, message: RawMessage, number: int, item: object) -> object:
        """Item ``number`` of an array payload as the reference parser reads it; ``item`` is orjson's.

        orjson turns integers beyond 64 bits into floats where pydantic keeps them
        exact; whatever the reference path judges must be what it would have parsed.
        Any other JSON both read to the same values, so the payload is parsed again
        only when the item holds a float that may have been such an integer.
        """
        parsed = self._reference.get(id(message))
        if parsed is None:
            if _no_huge_floats(item):
                return item
            parsed = self._reference[id(message)] = pydantic_core.from_json(
                message.payload.lstrip(), allow_inf_nan=True
            )
        return parsed[number]

    def rows_of(self, kind: str) -> _Rows:
        rows = self.rows.get(kind)
        if rows is None:
            rows = self.rows[kind] = _Rows()
        return rows


class _Pending:
    """Parsed objects of array payloads waiting for the column path, one kind's, as parallel lists.

    A gateway cycle can hold a hundred thousand readings: its objects are checked
    :data:`_CHUNK` at a time as they come, so that the column passes (one per measure)
    find them still in the CPU's cache; ``checked`` is a full chunk's verdict.
    """

    __slots__ = ("checked", "device_ids", "items", "messages", "numbers", "positions", "seqs")

    def __init__(self) -> None:
        self.checked: Checked | None = None
        self.seqs: list[int] = []
        self.positions: list[int] = []
        self.device_ids: list[str] = []
        self.items: list[dict[str, Any]] = []
        self.numbers: list[int] = []
        """Each item's place in its message's array."""
        self.messages: list[RawMessage] = []

    def add(
        self,
        message: RawMessage,
        seqs: Iterable[int],
        positions: Iterable[int],
        device_ids: Iterable[str],
        items: Iterable[dict[str, Any]],
        numbers: Sequence[int],
    ) -> None:
        """Items of one message, each column given whole (the lists extend in C)."""
        self.seqs.extend(seqs)
        self.positions.extend(positions)
        self.device_ids.extend(device_ids)
        self.items.extend(items)
        self.numbers.extend(numbers)
        self.messages.extend([message] * len(numbers))


_CHUNK = 4096
"""Batch items checked at once: their objects fit the CPU's cache, and numpy's fixed costs do not show."""


@dataclass(frozen=True, slots=True)
class _Source:
    """Inputs of one column-path run, kept to find a duplicate's original payload.

    Row ``k`` (sequence number ``seqs[k]``, ascending) came from
    ``messages[index[k]]``, or is ``items[k]`` of that message's array.
    """

    seqs: NDArray[np.int64]
    messages: Sequence[RawMessage]
    index: NDArray[np.intp]
    items: Sequence[object] | _ArrayItems | None


@dataclass(frozen=True, slots=True)
class _ArrayItems:
    """Items of array payloads the plain path took, parsed as the general way parses them only
    when one must be dead-lettered (a duplicate): item ``numbers[k]`` of ``messages[index[k]]``."""

    messages: Sequence[RawMessage]
    index: NDArray[np.intp]
    numbers: NDArray[np.intp]

    def __getitem__(self, k: int) -> object:
        items = orjson.loads(self.messages[int(self.index[k])].payload.lstrip())
        return cast(list[object], items)[int(self.numbers[k])]


class Validator:
    """Turns raw messages into per-kind batches against a registry and a policy.

    Pure: the caller passes the current time, so replays and tests are exact. The
    only state is the memory of recent timestamps (see :meth:`remember`) and caches.
    """

    def __init__(
        self,
        registry: Registry,
        policy: ValidationPolicy | None = None,
        topics: TopicScheme | None = None,
        *,
        column_path: bool = True,
        plain_path: bool = True,
    ) -> None:
        self.registry = registry
        self.policy = policy or ValidationPolicy()
        self.topics = topics or TopicScheme()
        self.column_path = column_path
        self.plain_path = column_path and plain_path
        """Offer well-formed readings to :mod:`processors.plain` first (off: the column path alone)."""
        self.recent: dict[str, RecentTimestamps] = {
            name: RecentTimestamps(self.policy.dedup_window) for name in KINDS
        }
        self._routes = _Routes()
        self._kind_names = list(KINDS)
        self._shift = (self.policy.max_payload_bytes + 1).bit_length()
        """Bits of a sequence number that count the readings within one message (at most one per byte)."""
        self._plans: dict[str, ColumnPlan | None] = {name: plan_for(kind) for name, kind in KINDS.items()}
        self._plain = [None if plan is None else PlainPlan(plan) for plan in self._plans.values()]
        """Each kind's plain plan, by its place in :data:`KINDS` (its kind code)."""
        self._field_names: set[str] = set()
        self._kind_codes = {name: code for code, name in enumerate(self._kind_names)}

    # --- public ----------------------------------------------------------------------------
    def validate(self, messages: Sequence[RawMessage], now_ms: int) -> ValidationResult:
        cycle = _Cycle(now_ms)
        pending: dict[str, list[_Pending]] = {}
        # Message i numbers its readings from i << shift: every path can number its own
        # readings in arrival order without knowing how many readings came before.
        shift = self._shift
        slow = self._singles(messages, cycle) if self.column_path else range(len(messages))
        gateways: dict[int, str] = {}
        plain: Counter[str] = Counter()
        if self.plain_path and slow:
            gateways, plain = self._plain_gateways(messages, slow, cycle)
        for i in slow:
            cycle.seq = i << shift
            routed = cycle.routed.get(i)
            if routed is not None:
                self._single(messages[i], *routed, cycle.next_seq(), cycle)
            elif i in gateways:  # taken whole by the plain path: its kind waits its turn all the same
                pending.setdefault(gateways[i], [_Pending()])
            else:
                self._message(messages[i], cycle, pending)
        for name, chunks in pending.items():
            if plain[name] or any(chunk.items for chunk in chunks):
                self._columns(KINDS[name], chunks, cycle, plain[name])
        return self._finish(cycle)

    def remember(self, result: ValidationResult) -> None:
        """Record the cycle's readings as seen, once they are durable.

        Called after the store accepted the cycle, so a retried cycle is not taken
        for its own duplicate, and a cycle that was never stored is not remembered.
        """
        for name, batch in result.batches.items():
            self.recent[name].add(batch.device, batch.ts_ms)

    def state(self) -> dict[str, dict[str, NDArray[Any]]]:
        """The duplicate memory per kind, keyed by device id so the registry may change in between."""
        return {name: recent.state(self.registry.tables[name]) for name, recent in self.recent.items()}

    def restore(self, state: dict[str, dict[str, NDArray[Any]]]) -> None:
        for name, saved in state.items():
            if name in self.recent:
                self.recent[name].restore(saved, self.registry.tables[name])

    # --- routing -----------------------------------------------------------------------------
    def _remember_route(self, topic: str, kind: SensorKind, device_id: str, position: int) -> None:
        self._routes.remember(
            topic, self._kind_names.index(kind.name), device_id, position, 2 * len(self.registry) + 1024
        )

    # --- the reference path ----------------------------------------------------------------
    def _message(self, message: RawMessage, cycle: _Cycle, pending: dict[str, list[_Pending]]) -> None:
        def reject_whole(reason: Reason, detail: str, kind: str = UNKNOWN, device: str | None = None) -> None:
            cycle.result.received[kind] += 1
            self._reject(
                cycle, cycle.next_seq(), reason, detail, message.topic, message.payload, kind, device
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
            self._single(message, kind, topic.source_id, cycle.next_seq(), cycle)
            return
        items: Any = None
        # orjson reads nesting five times deeper than the reference parser: only a payload
        # with this many brackets can nest too deep, so the reference parser reads it and
        # says whether it does (a gateway's batch of hundreds, now and then). What orjson
        # cannot read (NaN literals, huge numbers...) the reference parser reads too.
        if self.column_path and payload.count(b"[") + payload.count(b"{") <= REFERENCE_DEPTH:
            items = _orjson_or_none(payload)
        if not isinstance(items, list):
            try:
                items = pydantic_core.from_json(payload, allow_inf_nan=True)
            except ValueError as bad:
                reject_whole(Reason.MALFORMED_JSON, f"invalid JSON: {bad}", kind.name)
                return
            cycle.keep_reference(message, items)
            if not self.column_path:
                for item in items:
                    self._item(message, kind, topic.form, topic.source_id, item, cycle.next_seq(), cycle)
                return
        table = self.registry.tables[kind.name]
        chunks = pending.setdefault(kind.name, [_Pending()])
        waiting = chunks[-1]
        first = cycle.seq + 1
        count = len(items)
        cycle.seq += count
        positions, device_ids = self._item_positions(items, topic.form, topic.source_id, table.index)
        if None in positions:  # items the column path cannot take: only the others wait for it
            for number in itertools.compress(range(count), map(is_, positions, repeat(None))):
                reference = cycle.reference_item(message, number, items[number])
                self._item(message, kind, topic.form, topic.source_id, reference, first + number, cycle)
            taken = list(itertools.compress(range(count), map(is_not, positions, repeat(None))))
            waiting.add(
                message,
                map(add, taken, repeat(first)),
                pick(positions, taken),
                pick(device_ids, taken),
                pick(items, taken),
                taken,
            )
        else:
            waiting.add(
                message,
                range(first, first + count),
                cast(list[int], positions),
                device_ids,
                items,
                range(count),
            )
        if len(waiting.items) >= _CHUNK:
            waiting.checked = self._verdict(kind, waiting.items, waiting.device_ids, cycle)
            chunks.append(_Pending())

    @staticmethod
    def _item_positions(
        items: list[Any], form: TopicForm, source_id: str, index: dict[str, int]
    ) -> tuple[list[int | None], list[str]]:
        """Each item's device position if the column path may take it (else ``None``), and its device."""
        if form is TopicForm.BATCH:
            try:  # the usual batch, every item an object naming a device: two passes in C
                claimed: list[Any] = list(map(dict.get, items, repeat("device")))
                found: list[int | None] = list(map(index.get, claimed))  # None for anything not an id
            except TypeError:  # an item that is not an object, or a device that is not hashable
                claimed = [item.get("device") if type(item) is dict else None for item in items]
                found = [index.get(c) if type(c) is str else None for c in claimed]
            return found, cast(list[str], claimed)  # a str wherever the position is not None
        own = index.get(source_id)
        positions = [
            own if type(item) is dict and item.get("device") in (None, source_id) else None for item in items
        ]
        return positions, [source_id] * len(items)

    def _single(self, message: RawMessage, kind: SensorKind, device_id: str, seq: int, cycle: _Cycle) -> None:
        """One reading per message, parsed and validated by the kind's model in one pass."""
        cycle.result.received[kind.name] += 1
        try:
            position = self._position(kind, device_id)
            self._remember_route(message.topic, kind, device_id, position)
            try:
                reading = kind.model.model_validate_json(message.payload)
            except ValidationError as errors:  # the usual bad input: reject without raising again
                reason, detail = _explain(errors)
                self._reject(cycle, seq, reason, detail, message.topic, message.payload, kind.name, device_id)
                return
            self._accept(kind, device_id, position, reading, message, message.payload, seq, cycle)
        except _Rejected as rejected:
            self._reject(
                cycle,
                seq,
                rejected.reason,
                rejected.detail,
                message.topic,
                message.payload,
                kind.name,
                device_id,
            )

    def _item(
        self,
        message: RawMessage,
        kind: SensorKind,
        form: TopicForm,
        source_id: str,
        item: object,
        seq: int,
        cycle: _Cycle,
    ) -> None:
        cycle.result.received[kind.name] += 1
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
            self._accept(kind, device_id, position, reading, message, item, seq, cycle)
        except _Rejected as rejected:
            self._reject(
                cycle,
                seq,
                rejected.reason,
                rejected.detail,
                message.topic,
                _item_bytes(item),
                kind.name,
                device_id,
            )

    def _position(self, kind: SensorKind, device_id: str) -> int:
        device = self.registry.get(device_id)
        if device is None:
            if not _DEVICE_ID_RE.match(device_id):
                raise _Rejected(
                    Reason.BAD_DEVICE_ID,
                    f"device id {_short(device_id)} must be 1-64 letters, digits, '_', '.', ':' or '-'",
                )
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
        message: RawMessage,
        origin: bytes | object,
        seq: int,
        cycle: _Cycle,
    ) -> None:
        if reading.device is not None and reading.device != device_id:
            raise _Rejected(
                Reason.DEVICE_MISMATCH,
                f"payload names device {reading.device!r} but the topic names {device_id!r}",
            )
        extra = reading.model_extra
        if extra:
            if self.policy.unknown_fields is UnknownFieldPolicy.REJECT:
                names = ", ".join(_short(n) for n in sorted(extra))
                raise _Rejected(Reason.UNKNOWN_FIELD, f"unknown fields: {names}")
            self._count_ignored(cycle, extra.keys())
        self._check_time(reading.ts, cycle.now_ms)
        rows = cycle.rows_of(kind.name)
        received = cycle.now_ms if message.received_ms is None else message.received_ms
        rows.slow.append((seq, position, reading.ts, reading.values(), received))
        rows.origins[seq] = (message.topic, origin)

    def _check_time(self, ts: int, now_ms: int) -> None:
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

    def _count_ignored(self, cycle: _Cycle, names: Any) -> None:
        """Count unknown field names, sanitised and bounded (they become stats keys)."""
        for raw in names:
            name = _CONTROL.sub("", str(raw))[:64] or "(empty)"
            if name not in self._field_names:
                if len(self._field_names) >= MAX_FIELD_NAMES:
                    name = OTHER_FIELDS
                else:
                    self._field_names.add(name)
            cycle.result.ignored_fields[name] += 1

    def _reject(
        self,
        cycle: _Cycle,
        seq: int,
        reason: Reason,
        detail: str,
        topic: str,
        payload: bytes,
        kind: str | None,
        device: str | None,
    ) -> None:
        shown = device if device is not None and _DEVICE_ID_RE.match(device) else None
        cycle.rejects.append((seq, Reject(reason, detail, topic, self._bounded(payload), kind, shown)))

    # --- the column path ---------------------------------------------------------------------
    def _singles(self, messages: Sequence[RawMessage], cycle: _Cycle) -> list[int]:
        """The plain and column paths for one-reading messages on known topics, a kind at a time.

        A topic already resolved to a registered device, with a payload within the
        size limit, is first offered to the plain path; what it does not take and parses
        to a JSON object is checked here with the others of its kind. Returns the indices
        of every other message, for :meth:`_message` (or straight for the model, those in
        ``cycle.routed``).
        """
        n = len(messages)
        if n == 0:
            return []
        routes = self._routes
        numbers = np.fromiter(map(routes.number.get, map(_TOPIC, messages), repeat(-1)), np.intp, count=n)
        payloads: list[bytes] = list(map(_PAYLOAD, messages))
        sizes = np.fromiter(map(len, payloads), dtype=np.int64, count=n)
        # Kind code per message, -1 where the general way must decide: an unknown topic
        # (gateway batches among them), a payload too large, or one that is not a JSON
        # object (arrays, scalars, what orjson cannot read). Sorting by it groups the kinds
        # and keeps arrival order. Only what may stay here is parsed: the general way parses
        # the rest itself, and a gateway's array must not be parsed twice.
        codes = np.where(numbers >= 0, routes.code[numbers], -1)
        parse = (sizes <= self.policy.max_payload_bytes) & (codes >= 0)
        received = _arrivals(messages, cycle.now_ms)
        left = np.arange(n)
        counts: dict[int, int] = {}
        if self.plain_path and parse.any():
            taken, counts = self._plain_singles(messages, payloads, numbers, codes, parse, received, cycle)
            # Only the messages the plain path left are looked at again (a few in a hundred in
            # the usual cycle), so that what follows costs in proportion to them, not to the cycle.
            if taken.any():
                left = np.flatnonzero(~taken)
                payloads = pick(payloads, left.tolist())
                sizes, numbers, codes, parse = sizes[left], numbers[left], codes[left], parse[left]
        m = left.size
        if parse.all():
            items, objects = _parse(payloads, sizes)
        else:
            items = [None] * m
            objects = np.zeros(m, dtype=np.bool_)
            chosen = np.flatnonzero(parse)
            if chosen.size:
                parsed, objects[chosen] = _parse(pick(payloads, chosen.tolist()), sizes[chosen])
                for i, item in zip(chosen.tolist(), parsed, strict=True):
                    items[i] = item
        # A known topic's payload that is not an object (cut short, NaN...) goes to the model
        # as the general way would send it, without resolving the topic again.
        for i in np.flatnonzero(parse & ~objects).tolist():
            if payloads[i].lstrip()[:1] != b"[":
                route = int(numbers[i])
                cycle.routed[int(left[i])] = (
                    KINDS[self._kind_names[routes.code[route]]],
                    routes.device_id[route],
                )
        codes[~objects] = -1
        index = left
        if m and codes.min() != codes.max():
            order = np.argsort(codes, kind="stable")
            codes = codes[order]
            items = pick(items, order.tolist())
            numbers = numbers[order]
            index = left[order]
        # The general way's messages sort first; the objects' devices and timestamps are
        # checked for all kinds at once.
        start = int(np.searchsorted(codes, 0))
        slow: list[int] = index[:start].tolist()
        bounds = [start, *(np.flatnonzero(codes[start + 1 :] != codes[start:-1]) + start + 1).tolist(), m]
        groups = {int(codes[a]): (a, b) for a, b in itertools.pairwise(bounds) if a < b}
        if start < m:
            device_ids = routes.device_id[numbers[start:]].tolist()
            claims = self._claims(cast(list[dict[str, Any]], items[start:]), device_ids, cycle)
        # Kinds in code order, whichever path took their readings, so the counts come out
        # in the order the column path alone gives them.
        for code in sorted(groups.keys() | counts.keys()):
            kind = KINDS[self._kind_names[code]]
            cycle.result.received[kind.name] += counts.get(code, 0)
            if code not in groups:
                continue
            a, b = groups[code]
            part = slice(a - start, b - start)
            self._kind_singles(
                kind,
                messages,
                index[a:b],
                cast(list[dict[str, Any]], items[a:b]),
                device_ids[part],
                routes.position[numbers[a:b]],
                received,
                claims[part],
                cycle,
            )
        return slow

    def _plain_singles(
        self,
        messages: Sequence[RawMessage],
        payloads: list[bytes],
        numbers: NDArray[np.intp],
        codes: NDArray[np.intp],
        chosen: NDArray[np.bool_],
        received: NDArray[np.int64],
        cycle: _Cycle,
    ) -> tuple[NDArray[np.bool_], dict[int, int]]:
        """The plain path for the ``chosen`` messages: which it accepted, and how many per kind code.

        Accepted readings become rows at once; the counts are left to the caller, to be
        added in the order of kinds that the column path counts in.
        """
        routes = self._routes
        candidates = np.flatnonzero(chosen)
        order = candidates[np.argsort(codes[candidates], kind="stable")]
        sorted_codes = codes[order]
        bounds = [0, *(np.flatnonzero(sorted_codes[1:] != sorted_codes[:-1]) + 1).tolist(), order.size]
        plans: list[PlainPlan] = []
        parts: list[list[Any]] = []
        kinds: list[tuple[int, NDArray[np.intp]]] = []
        for a, b in itertools.pairwise(bounds):
            code = int(sorted_codes[a])
            plan = self._plain[code]
            if plan is not None:
                structs, refused = plan.decode(pick(payloads, order[a:b].tolist()))
                decoded = np.ones(b - a, dtype=np.bool_)
                decoded[refused] = False  # a mask, not np.delete: its fixed cost is many times this
                plans.append(plan)
                parts.append(structs)
                kinds.append((code, order[a:b][decoded]))
        taken = np.zeros(len(messages), dtype=np.bool_)
        counts: dict[int, int] = {}
        if not plans:
            return taken, counts
        verdicts = check_plain(
            plans,
            parts,
            [routes.device_id[numbers[index]].tolist() for _, index in kinds],
            cycle.now_ms - self.policy.max_age_ms,
            cycle.now_ms + self.policy.max_future_ms,
        )
        for (code, index), verdict in zip(kinds, verdicts, strict=True):
            if not verdict.taken.size:
                continue
            rows = cycle.rows_of(self._kind_names[code])
            kept = index[verdict.taken]
            seqs = (kept.astype(np.int64) << self._shift) + 1
            rows.chunks.append(
                (seqs, routes.position[numbers[kept]], verdict.ts_ms, verdict.values, received[kept])
            )
            rows.sources.append(_Source(seqs, messages, kept, None))
            taken[kept] = True
            counts[code] = kept.size
        return taken, counts

    def _plain_gateways(
        self, messages: Sequence[RawMessage], slow: Sequence[int], cycle: _Cycle
    ) -> tuple[dict[int, str], Counter[str]]:
        """The plain path for gateway batches: the messages it took whole (with their kind), and
        how many readings of each kind it took.

        A message is taken only if msgspec reads every item and every item is proven
        valid (a device of the topic's kind, a timestamp in the window, values in range):
        anything else leaves the whole message to the general way, which judges it as it
        always did. Duplicates are found with every other row when the batches are assembled.
        """
        limit = self.policy.max_payload_bytes
        found: dict[int, tuple[list[int], list[list[Any]]]] = {}
        routed = cycle.routed
        for i in slow:
            message = messages[i]
            if i in routed or len(message.payload) > limit:
                continue
            try:
                topic = self.topics.parse(message.topic)
            except TopicError:
                continue
            code = self._kind_codes.get(topic.kind)
            if topic.form is not TopicForm.BATCH or code is None or self._plain[code] is None:
                continue
            payload = message.payload.lstrip()
            if payload[:1] != b"[":
                continue
            structs = cast(PlainPlan, self._plain[code]).decode_array(payload)
            # The general way reads the array with orjson if it holds at most REFERENCE_DEPTH
            # brackets and braces: the array's and its items' own, if every item is proven
            # (none is inside a string then: keys are field names, devices registered ids,
            # timestamps RFC 3339 or numbers). Larger arrays are left to it.
            if structs and len(structs) < REFERENCE_DEPTH:
                numbers, parts = found.setdefault(code, ([], []))
                numbers.append(i)
                parts.append(structs)
        gateways: dict[int, str] = {}
        plain: Counter[str] = Counter()
        if not found:
            return gateways, plain
        codes = sorted(found)
        plans = [cast(PlainPlan, self._plain[code]) for code in codes]
        flat = [list(itertools.chain.from_iterable(found[code][1])) for code in codes]
        verdicts = check_plain(
            plans,
            flat,
            None,
            cycle.now_ms - self.policy.max_age_ms,
            cycle.now_ms + self.policy.max_future_ms,
        )
        received = _arrivals(messages, cycle.now_ms)
        for code, verdict in zip(codes, verdicts, strict=True):
            claimed = verdict.devices
            name = self._kind_names[code]
            index = self.registry.tables[name].index
            numbers, parts = found[code]
            sizes = np.fromiter(map(len, parts), dtype=np.intp, count=len(parts))
            positions = np.fromiter(map(index.get, claimed, repeat(-1)), dtype=np.intp, count=len(claimed))
            ok = np.zeros(len(claimed), dtype=np.bool_)
            ok[verdict.taken] = True
            ok &= positions >= 0  # a device missing, unknown or of another kind: the model explains
            starts = np.cumsum(sizes) - sizes
            whole = np.logical_and.reduceat(ok, starts)
            if not whole.any():
                continue
            owner = np.repeat(np.arange(len(parts)), sizes)  # each reading's message among ``parts``
            keep = whole[owner[verdict.taken]]
            rows_at = verdict.taken[keep]
            message_at = np.array(numbers, dtype=np.intp)[owner[rows_at]]
            item_at = rows_at - starts[owner[rows_at]]
            seqs = (message_at.astype(np.int64) << self._shift) + 1 + item_at
            rows = cycle.rows_of(name)
            rows.chunks.append(
                (seqs, positions[rows_at], verdict.ts_ms[keep], verdict.values[keep], received[message_at])
            )
            rows.sources.append(
                _Source(seqs, messages, message_at, _ArrayItems(messages, message_at, item_at))
            )
            plain[name] += rows_at.size
            for k in np.flatnonzero(whole).tolist():
                gateways[numbers[k]] = name
        return gateways, plain

    def _kind_singles(
        self,
        kind: SensorKind,
        messages: Sequence[RawMessage],
        index: NDArray[np.intp],
        items: list[dict[str, Any]],
        device_ids: list[str],
        positions: NDArray[np.intp],
        received: NDArray[np.int64],
        claims: Claims,
        cycle: _Cycle,
    ) -> None:
        """Accept what the column path proves valid of one kind's messages; the rest go to the model."""
        n = len(items)
        seqs = (index.astype(np.int64) << self._shift) + 1
        plan = self._plans[kind.name]
        rest = list(range(n))
        if plan is not None and claims.ok.any():  # else none has a timestamp to take, say: nothing to prove
            checked = plan.check(items, claims, self.policy.unknown_fields is UnknownFieldPolicy.REJECT)
            self._count_extra(cycle, checked)
            ok = checked.ok
            accepted = int(np.count_nonzero(ok))
            if accepted:  # an empty chunk would cost the kind a sort when its batch is assembled
                rows = cycle.rows_of(kind.name)
                rows.chunks.append(
                    (seqs[ok], positions[ok], checked.ts_ms[ok], checked.values[ok], received[index[ok]])
                )
                rows.sources.append(_Source(seqs, messages, index, None))
            cycle.result.received[kind.name] += accepted
            rest = np.flatnonzero(~ok).tolist()
        for i in rest:
            self._single(messages[int(index[i])], kind, device_ids[i], int(seqs[i]), cycle)

    def _claims(self, items: list[dict[str, Any]], device_ids: list[str], cycle: _Cycle) -> Claims:
        """:func:`check_claims` against this cycle's window of acceptable timestamps."""
        return check_claims(
            items,
            device_ids,
            cycle.now_ms - self.policy.max_age_ms,
            cycle.now_ms + self.policy.max_future_ms,
        )

    def _verdict(
        self, kind: SensorKind, items: list[dict[str, Any]], device_ids: list[str], cycle: _Cycle
    ) -> Checked | None:
        """The column plan's verdict on items of array payloads; ``None`` without items or a plan."""
        plan = self._plans[kind.name]
        if plan is None or not items:
            return None
        claims = self._claims(items, device_ids, cycle)
        return plan.check(items, claims, self.policy.unknown_fields is UnknownFieldPolicy.REJECT)

    def _count_extra(self, cycle: _Cycle, checked: Checked) -> None:
        if checked.extra_names and checked.ok.any():
            self._count_ignored(cycle, checked.extra_names)

    def _columns(self, kind: SensorKind, chunks: list[_Pending], cycle: _Cycle, plain: int = 0) -> None:
        """The column path for the items of array payloads; the rest go to the model one by one.

        Full chunks were checked as they filled; the result changes here, in the order
        that checking all the items at once would change it (unknown fields counted,
        then what was proven valid kept, then the rest judged by the model). ``plain``
        readings of the kind were taken by the plain path already and are counted here.
        """
        last = chunks[-1]
        last.checked = self._verdict(kind, last.items, last.device_ids, cycle)
        for chunk in chunks:
            if chunk.checked is not None:
                self._count_extra(cycle, chunk.checked)
        accepted = plain
        for chunk in chunks:
            checked = chunk.checked
            if checked is None or not checked.ok.any():
                continue
            ok = checked.ok
            seqs = np.array(chunk.seqs, dtype=np.int64)
            rows = cycle.rows_of(kind.name)
            rows.chunks.append(
                (
                    seqs[ok],
                    np.array(chunk.positions, dtype=np.intp)[ok],
                    checked.ts_ms[ok],
                    checked.values[ok],
                    _arrivals(chunk.messages, cycle.now_ms)[ok],
                )
            )
            rows.sources.append(_Source(seqs, chunk.messages, np.arange(seqs.size), chunk.items))
            accepted += int(np.count_nonzero(ok))
        cycle.result.received[kind.name] += accepted
        for chunk in chunks:
            messages = chunk.messages
            ok = np.zeros(len(messages), dtype=np.bool_) if chunk.checked is None else chunk.checked.ok
            for i in np.flatnonzero(~ok).tolist():
                topic = self.topics.parse(messages[i].topic)
                reference = cycle.reference_item(messages[i], chunk.numbers[i], chunk.items[i])
                self._item(messages[i], kind, topic.form, topic.source_id, reference, chunk.seqs[i], cycle)

    # --- assembling the batches ----------------------------------------------------------------
    def _finish(self, cycle: _Cycle) -> ValidationResult:
        result = cycle.result
        for name, rows in cycle.rows.items():
            kind = KINDS[name]
            seq, device, ts, values, received = _concatenate(rows, len(kind.measures))
            if seq.size == 0:
                continue
            if len(rows.chunks) + bool(rows.slow) > 1:
                order = np.argsort(seq, kind="stable")
                seq, device, ts, values, received = (
                    seq[order],
                    device[order],
                    ts[order],
                    values[order],
                    received[order],
                )
            duplicate = self._duplicates(name, device, ts)
            if duplicate.any():
                for i in np.flatnonzero(duplicate).tolist():
                    self._duplicate(cycle, kind, int(seq[i]), int(device[i]), int(ts[i]), rows)
                keep = ~duplicate
                seq, device, ts, values, received = (
                    seq[keep],
                    device[keep],
                    ts[keep],
                    values[keep],
                    received[keep],
                )
            result.batches[name] = ReadingBatch(
                kind=kind,
                table=self.registry.tables[name],
                device=device,
                ts_ms=ts,
                values=values,
                received_ms=received,
            )
        # Kinds in one fixed order (that of KINDS), whichever path took their readings first.
        result.batches = {name: result.batches[name] for name in KINDS if name in result.batches}
        cycle.rejects.sort(key=lambda pair: pair[0])
        result.rejects = [reject for _, reject in cycle.rejects]
        return result

    def _duplicates(self, kind: str, device: NDArray[np.intp], ts: NDArray[np.int64]) -> NDArray[np.bool_]:
        """Rows whose (device, ts) was seen before: earlier in this cycle, or in a remembered one."""
        duplicate = self.recent[kind].contains(device, ts)
        if device.size > 1:
            first, span = int(ts.min()), int(ts.max()) - int(ts.min()) + 1
            if (int(device.max()) + 1) * span < 2**62:
                # One int64 key per (device, ts), ordered as (device, ts): a cycle spans
                # minutes, so it fits, and one stable argsort is quicker than a lexsort.
                key = device.astype(np.int64) * span + (ts - first)
                ordered = np.sort(key)
                if not (ordered[1:] == ordered[:-1]).any():  # the usual cycle: a quicker sort says so
                    return duplicate
                order = np.argsort(key, kind="stable")
                ordered = key[order]
                same = ordered[1:] == ordered[:-1]
            else:
                order = np.lexsort((np.arange(device.size), ts, device))
                same = (device[order][1:] == device[order][:-1]) & (ts[order][1:] == ts[order][:-1])
            duplicate[order[1:][same]] = True
        return duplicate

    def _duplicate(
        self, cycle: _Cycle, kind: SensorKind, seq: int, position: int, ts: int, rows: _Rows
    ) -> None:
        device_id = self.registry.tables[kind.name].devices[position].device_id
        topic, origin = rows.origin(seq)
        payload = origin if isinstance(origin, bytes) else _item_bytes(origin)
        cycle.rejects.append(
            (
                seq,
                Reject(
                    Reason.DUPLICATE,
                    f"device {device_id!r} already sent a reading stamped {format_rfc3339(ts)}",
                    topic,
                    self._bounded(payload),
                    kind.name,
                    device_id,
                ),
            )
        )

    def _bounded(self, payload: bytes) -> bytes:
        return payload[: self.policy.deadletter_payload_bytes]


def _parse(payloads: list[bytes], sizes: NDArray[np.int64]) -> tuple[list[object], NDArray[np.bool_]]:
    """Each payload (``sizes`` bytes) as orjson reads it, ``None`` where it cannot, and which are objects.

    A call per payload would cost a fifth of the parsing, so the payloads are read a
    run at a time, each run as one JSON array, joined by a comma and a line break.
    Its items are exactly the run's payloads, each as it alone would be read, when
    each payload starts with ``{`` and ends with ``}``, none holds ``[`` or ``]``,
    and there are as many items as payloads: a raw line break cannot be inside a JSON
    string, so no string spans a join; a comma inside an object is followed by a key,
    never by ``{``, and there are no arrays inside, so every join separates two items
    of the outer array; each payload then holds at least one item, and with as many
    items as payloads, exactly one (an object, as it starts with ``{``). The other
    payloads (cut short, NaN or Infinity literals, arrays) are read one at a time
    between the runs, and so is each payload of a run that cannot be read as an array.
    """
    n = len(payloads)
    if n < _FEW_PAYLOADS:
        return _each(payloads)
    # Joins before the first payload and after the last too, so that every run's
    # brackets can be written over the line break before it and the comma after it
    # (and an empty payload's first and last bytes are those of the joins around it).
    body = bytearray(_JOIN).join([b"", *payloads, b""])
    codes = np.frombuffer(body, dtype=np.uint8)
    ends = np.cumsum(sizes + len(_JOIN))
    starts = ends - sizes
    alone = (codes[starts] != ord("{")) | (codes[ends - 1] != ord("}"))
    for literal in (b"[", b"]", b"NaN", b"Inf"):
        if literal[:1] in body:  # one memchr: most cycles hold none of them
            alone[np.searchsorted(ends, _find_all(codes, literal), "right")] = True
    apart = np.flatnonzero(alone).tolist()
    parsed: list[object] = []
    objects = ~alone
    view = memoryview(body)
    for a, b in zip([0, *(i + 1 for i in apart)], [*apart, n], strict=True):
        if a < b:  # the run of payloads [a, b)
            begin, end = int(starts[a]) - 1, int(ends[b - 1])
            body[begin], body[end] = ord("["), ord("]")
            run = _orjson_or_none(view[begin : end + 1])
            if not isinstance(run, list) or len(run) != b - a:
                run, objects[a:b] = _each(payloads[a:b])
            parsed.extend(run)
        if b < n:  # payload b, read alone (only if it may be an object: a failed parse is slow)
            text = payloads[b].strip()
            item = _orjson_or_none(payloads[b]) if text[:1] == b"{" and text[-1:] == b"}" else None
            parsed.append(item)
            objects[b] = type(item) is dict
    return parsed, objects


def _find_all(codes: NDArray[np.uint8], literal: bytes) -> NDArray[np.intp]:
    """Where ``literal`` starts in ``codes`` (``bytes.find`` is slow for some needles, this never is)."""
    hits = np.flatnonzero(codes[: codes.size - len(literal) + 1] == literal[0])
    for k, code in enumerate(literal[1:], start=1):
        hits = hits[codes[hits + k] == code]
    return hits


_JOIN = b",\n"
_FEW_PAYLOADS = 32
"""Below this many payloads, the fixed cost of joining them is more than it saves."""


def _each(payloads: list[bytes]) -> tuple[list[object], NDArray[np.bool_]]:
    """Each payload parsed by orjson on its own, ``None`` where it cannot read it, and which are objects.

    One C-level call per payload: ``list.extend`` keeps what it took before an error,
    so only a payload that fails costs a turn of the Python loop.
    """
    parsed: list[object] = []
    rest = iter(payloads)
    while True:
        try:
            parsed.extend(map(orjson.loads, rest))
            break
        except orjson.JSONDecodeError:
            parsed.append(None)
    assert len(parsed) == len(payloads)
    objects = np.fromiter(map(is_, map(type, parsed), repeat(dict)), dtype=np.bool_, count=len(parsed))
    return parsed, objects


def _orjson_or_none(payload: bytes | memoryview) -> object:
    """``payload`` parsed by orjson, or ``None`` where it cannot read it."""
    try:
        return orjson.loads(payload)
    except orjson.JSONDecodeError:
        return None


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


REFERENCE_DEPTH = 200
"""How deep pydantic's JSON parser, the reference, nests (orjson reads 1,024 levels)."""


def _arrivals(messages: Sequence[RawMessage], now_ms: int) -> NDArray[np.int64]:
    """Each message's arrival time; the cycle's clock where the source did not say."""
    stamps = list(map(_RECEIVED, messages))
    unknown = stamps.count(None)
    if unknown == len(stamps):
        return np.full(len(stamps), now_ms, dtype=np.int64)
    if unknown:
        stamps = [now_ms if t is None else t for t in stamps]
    return np.array(stamps, dtype=np.int64)


_TOPIC = attrgetter("topic")
_PAYLOAD = attrgetter("payload")
_RECEIVED = attrgetter("received_ms")


def _concatenate(rows: _Rows, n_measures: int) -> _Chunk:
    chunks = list(rows.chunks)
    if rows.slow:
        slow = rows.slow
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
        where = ".".join(_CONTROL.sub("?", str(p)) for p in error["loc"]) or "payload"
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
    """``repr`` cut to 60 characters: control characters come out escaped, never raw."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
