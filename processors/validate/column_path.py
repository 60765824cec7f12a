"""The column path: a cycle's payloads parsed by orjson, then each kind's readings checked a field at a time.

It takes two kinds of message: one-reading messages on topics already resolved to
a registered device (:meth:`ColumnPath.singles`, after the plain path had its
turn), and the items of array payloads (:meth:`ColumnPath.array`, collected as
the general way meets them, then :meth:`ColumnPath.arrays`). The checks
themselves are the kinds' column plans (:mod:`processors.validate.columns`). It
never rejects: what it cannot prove valid goes to the reference path, reading by
reading, with the sequence number it would have had.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence
from itertools import repeat
from operator import add, is_, is_not
from typing import Any, cast

import numpy as np
import orjson
from numpy.typing import NDArray

from processors.kinds import KINDS, SensorKind
from processors.topics import ParsedTopic, TopicForm
from processors.validate.columns import Checked, Claims, ColumnPlan, check_claims, pick, plan_for
from processors.validate.context import Context, Singles
from processors.validate.cycle import Cycle, Source, arrivals
from processors.validate.messages import RawMessage, UnknownFieldPolicy
from processors.validate.reference import REFERENCE_DEPTH, ReferencePath, reference_item

_CHUNK = 4096
"""Batch items checked at once: their objects fit the CPU's cache, and numpy's fixed costs do not show."""


class Pending:
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


class ColumnPath:
    """Accepts what each kind's column plan proves valid; hands the rest to the reference path."""

    def __init__(self, context: Context, reference: ReferencePath) -> None:
        self.context = context
        self.reference = reference
        self.plans: dict[str, ColumnPlan | None] = {name: plan_for(kind) for name, kind in KINDS.items()}

    # --- one-reading messages ----------------------------------------------------------------
    def singles(
        self, messages: Sequence[RawMessage], singles: Singles, counts: dict[int, int], cycle: Cycle
    ) -> list[int]:
        """One-reading messages on known topics, a kind at a time; the indices of the others.

        What parses to a JSON object is checked here with the others of its kind; a
        known topic's payload that is not an object goes straight to the model
        (``cycle.routed``); the rest is left to the general way. ``counts`` are the
        readings the plain path took per kind code, counted here in the order of kinds.
        """
        routes = self.context.routes
        kind_names = self.context.kind_names
        left, payloads, sizes, numbers, codes, parse = (
            singles.index,
            singles.payloads,
            singles.sizes,
            singles.numbers,
            singles.codes,
            singles.parse,
        )
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
                cycle.routed[int(left[i])] = (KINDS[kind_names[routes.code[route]]], routes.device_id[route])
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
            kind = KINDS[kind_names[code]]
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
                singles.received,
                claims[part],
                cycle,
            )
        return slow

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
        cycle: Cycle,
    ) -> None:
        """Accept what the column path proves valid of one kind's messages; the rest go to the model."""
        n = len(items)
        seqs = (index.astype(np.int64) << self.context.shift) + 1
        plan = self.plans[kind.name]
        rest = list(range(n))
        if plan is not None and claims.ok.any():  # else none has a timestamp to take, say: nothing to prove
            checked = plan.check(
                items, claims, self.context.policy.unknown_fields is UnknownFieldPolicy.REJECT
            )
            self._count_extra(cycle, checked)
            ok = checked.ok
            accepted = int(np.count_nonzero(ok))
            if accepted:  # an empty chunk would cost the kind a sort when its batch is assembled
                rows = cycle.rows_of(kind.name)
                rows.chunks.append(
                    (seqs[ok], positions[ok], checked.ts_ms[ok], checked.values[ok], received[index[ok]])
                )
                rows.sources.append(Source(seqs, messages, index, None))
            cycle.result.received[kind.name] += accepted
            rest = np.flatnonzero(~ok).tolist()
        for i in rest:
            self.reference.single(messages[int(index[i])], kind, device_ids[i], int(seqs[i]), cycle)

    # --- items of array payloads -----------------------------------------------------------------
    @staticmethod
    def read(payload: bytes) -> object:
        """An array payload as orjson reads it, ``None`` where it cannot or must not.

        orjson reads nesting five times deeper than the reference parser: only a payload
        with this many brackets can nest too deep, so the reference parser reads it and
        says whether it does (a gateway's batch of hundreds, now and then). What orjson
        cannot read (NaN literals, huge numbers...) the reference parser reads too.
        """
        if payload.count(b"[") + payload.count(b"{") <= REFERENCE_DEPTH:
            return orjson_or_none(payload)
        return None

    def array(
        self,
        message: RawMessage,
        topic: ParsedTopic,
        kind: SensorKind,
        items: list[Any],
        cycle: Cycle,
        pending: dict[str, list[Pending]],
    ) -> None:
        """The items of one array payload: those the column path may take wait in ``pending``
        for :meth:`arrays`; the others go to the reference path now."""
        table = self.context.registry.tables[kind.name]
        chunks = pending.setdefault(kind.name, [Pending()])
        waiting = chunks[-1]
        first = cycle.seq + 1
        count = len(items)
        cycle.seq += count
        positions, device_ids = self._item_positions(items, topic.form, topic.source_id, table.index)
        if None in positions:  # items the column path cannot take: only the others wait for it
            for number in itertools.compress(range(count), map(is_, positions, repeat(None))):
                reference = reference_item(cycle, message, number, items[number])
                self.reference.item(
                    message, kind, topic.form, topic.source_id, reference, first + number, cycle
                )
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
            chunks.append(Pending())

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

    def arrays(self, kind: SensorKind, chunks: list[Pending], cycle: Cycle, plain: int = 0) -> None:
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
                    arrivals(chunk.messages, cycle.now_ms)[ok],
                )
            )
            rows.sources.append(Source(seqs, chunk.messages, np.arange(seqs.size), chunk.items))
            accepted += int(np.count_nonzero(ok))
        cycle.result.received[kind.name] += accepted
        for chunk in chunks:
            messages = chunk.messages
            ok = np.zeros(len(messages), dtype=np.bool_) if chunk.checked is None else chunk.checked.ok
            for i in np.flatnonzero(~ok).tolist():
                topic = self.context.topics.parse(messages[i].topic)
                reference = reference_item(cycle, messages[i], chunk.numbers[i], chunk.items[i])
                self.reference.item(
                    messages[i], kind, topic.form, topic.source_id, reference, chunk.seqs[i], cycle
                )

    # --- shared --------------------------------------------------------------------------------
    def _claims(self, items: list[dict[str, Any]], device_ids: list[str], cycle: Cycle) -> Claims:
        """:func:`check_claims` against this cycle's window of acceptable timestamps."""
        policy = self.context.policy
        return check_claims(
            items, device_ids, cycle.now_ms - policy.max_age_ms, cycle.now_ms + policy.max_future_ms
        )

    def _verdict(
        self, kind: SensorKind, items: list[dict[str, Any]], device_ids: list[str], cycle: Cycle
    ) -> Checked | None:
        """The column plan's verdict on items of array payloads; ``None`` without items or a plan."""
        plan = self.plans[kind.name]
        if plan is None or not items:
            return None
        claims = self._claims(items, device_ids, cycle)
        return plan.check(items, claims, self.context.policy.unknown_fields is UnknownFieldPolicy.REJECT)

    def _count_extra(self, cycle: Cycle, checked: Checked) -> None:
        if checked.extra_names and checked.ok.any():
            self.context.count_ignored(cycle, checked.extra_names)


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
            run = orjson_or_none(view[begin : end + 1])
            if not isinstance(run, list) or len(run) != b - a:
                run, objects[a:b] = _each(payloads[a:b])
            parsed.extend(run)
        if b < n:  # payload b, read alone (only if it may be an object: a failed parse is slow)
            text = payloads[b].strip()
            item = orjson_or_none(payloads[b]) if text[:1] == b"{" and text[-1:] == b"}" else None
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


def orjson_or_none(payload: bytes | memoryview) -> object:
    """``payload`` parsed by orjson, or ``None`` where it cannot read it."""
    try:
        return orjson.loads(payload)
    except orjson.JSONDecodeError:
        return None
