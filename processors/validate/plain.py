"""The plain path of validation: well-formed readings decoded and checked in C, no dict per payload.

Nearly every message a fleet sends is plainly valid: one JSON object holding the
device, a timestamp and numbers within range, nothing else. The column path
(:mod:`processors.validate.column_path`) builds a dict per payload and then validates each measure
as a column; here msgspec decodes each payload straight into a small struct of the
kind's own fields, checking the types and ranges of the model while it reads, so a
plain reading costs one C call and leaves the values ready to copy into an array.

msgspec is stricter than the model: it refuses unknown fields, nulls, booleans,
strings where numbers belong, numbers that do not fit 64 bits, and any JSON it cannot
read. Whatever it refuses is handed back to the column path and the model, which give
the answer they always gave; whatever it accepts, the column path would have accepted
with the same timestamp and values (the tests hold the two to it). A measure whose
schema is more than a range-checked float (lighting's on/off spellings) is decoded as a
number only and then goes through the model's own validator for that field, so its
values are the model's.

:class:`PlainPath` is its part in a cycle: one-reading messages on known topics first
of all, and gateway batches, each taken whole or left whole to the general way.
"""

from __future__ import annotations

import itertools
import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import chain, repeat
from operator import eq, is_
from struct import pack_into
from typing import Annotated, Any, cast

import msgspec
import numpy as np
from numpy.typing import NDArray
from pydantic_core import SchemaValidator, ValidationError

from processors.topics import TopicError, TopicForm
from processors.validate.columns import ColumnPlan, pick, timestamps
from processors.validate.context import Context, Singles
from processors.validate.cycle import ArrayItems, Cycle, Source, arrivals
from processors.validate.messages import RawMessage
from processors.validate.reference import REFERENCE_DEPTH

_BOUNDS = {"ge", "le", "gt", "lt"}
_INT64 = Annotated[int, msgspec.Meta(ge=-(2**63), le=2**63 - 1)]
"""Integers orjson reads as ``int`` too (beyond 64 bits it reads a float: the paths would differ)."""
_TIMESTAMP = str | _INT64 | float
_UNSET = msgspec.UNSET
_META: Any = msgspec.Meta
"""Called with the bounds a schema has (its overloads name each combination)."""
astuple = msgspec.structs.astuple


@dataclass(frozen=True, slots=True)
class Plain:
    """The plain path's verdict on one kind's payloads: the readings it proved valid, and their data."""

    taken: NDArray[np.intp]
    """Where the accepted readings are among the structs checked; the others must go the general way."""
    ts_ms: NDArray[np.int64]
    values: NDArray[np.float64]
    devices: list[Any]
    """The ``device`` field of every struct checked (``UNSET`` where absent), taken or not."""


class PlainPlan:
    """One kind's struct for msgspec, built from the column plan's own field schemas.

    The measures come first and ``ts`` and ``device`` last, so that a list of structs
    flattens into one list where each field is a slice (one C-level pass per field).
    """

    def __init__(self, plan: ColumnPlan) -> None:
        self.names = plan.names
        fields: list[tuple[str, Any, Any]] = []
        self._checked: list[tuple[int, SchemaValidator]] = []
        for j, name in enumerate(self.names):
            bounds = _plain_bounds(plan.field_schemas[name])
            if bounds is None:
                # Not a plain float: read a number as orjson would; the model's validator judges it.
                fields.append((name, _INT64 | float | msgspec.UnsetType, _UNSET))
                self._checked.append((j, plan.validators[j]))
            else:
                fields.append((name, Annotated[float, _META(**bounds)], math.nan))
        fields.append(("ts", _TIMESTAMP, msgspec.NODEFAULT))
        fields.append(("device", str | msgspec.UnsetType, _UNSET))
        struct = msgspec.defstruct(
            f"Plain{plan.kind.model.__name__}", fields, kw_only=True, forbid_unknown_fields=True, gc=False
        )
        self._decode = msgspec.json.Decoder(struct).decode
        self._decode_array = msgspec.json.Decoder(list[struct]).decode  # type: ignore[valid-type]

    def decode_array(self, payload: bytes) -> list[Any] | None:
        """A gateway's JSON array as a list of structs, ``None`` if msgspec refuses any of it."""
        try:
            decoded: list[Any] = self._decode_array(payload)
        except ValueError:
            return None
        return decoded

    def decode(self, payloads: list[bytes]) -> tuple[list[Any], list[int]]:
        """The structs of the payloads msgspec reads (one C call per payload), and where the
        refused ones are among ``payloads``.

        The refused are left out, not marked, so that nothing downstream has to pass over the
        whole list again to find them (a cycle of a bad fleet still holds only a few).
        """
        decoded: list[Any] = []
        refused: list[int] = []
        rest = iter(payloads)
        while True:
            try:
                decoded.extend(map(self._decode, rest))
                break
            except ValueError:  # refused (msgspec's errors and invalid UTF-8 alike)
                refused.append(len(decoded) + len(refused))
        return decoded, refused

    def fields(
        self, structs: list[Any]
    ) -> tuple[NDArray[np.float64], NDArray[np.bool_], list[Any], list[Any]]:
        """The measures of ``structs`` (NaN where not reported), which of them the model's validators
        pass, and the ``ts`` and ``device`` fields (``UNSET`` where absent)."""
        n, k = len(structs), len(self.names)
        width = k + 2
        flat = list(chain.from_iterable(map(astuple, structs)))
        ts, devices = flat[k::width], flat[k + 1 :: width]
        good = np.ones(n, dtype=np.bool_)
        if not self._checked:
            del flat[k::width]
            del flat[k :: width - 1]
            values = np.empty((n, k), dtype=np.float64)
            pack_into(f"{n * k}d", values.data, 0, *flat)  # straight into the array: writable, as a copy is
            return values, good, ts, devices
        values = np.empty((n, k), dtype=np.float64)
        checked = dict(self._checked)
        for j in range(k):
            validator = checked.get(j)
            if validator is None:
                values[:, j] = flat[j::width]
                continue
            column = [None if v is _UNSET else v for v in flat[j::width]]
            try:
                values[:, j] = validator.validate_python(column)
            except ValidationError as errors:
                bad = {int(e["loc"][0]) for e in errors.errors()}
                good[list(bad)] = False
                values[:, j] = validator.validate_python(
                    [None if i in bad else v for i, v in enumerate(column)]
                )
        return values, good, ts, devices


def check_plain(
    plans: list[PlainPlan],
    parts: list[list[Any]],
    device_ids: list[list[str]] | None,
    min_ts: int,
    max_ts: int,
) -> list[Plain]:
    """The verdicts on ``parts[i]``, structs decoded by ``plans[i]``.

    ``device_ids[i]`` are the devices the topics of ``parts[i]`` name; a reading that
    names another device is left to the general way. Without them (a gateway's items
    name their own devices), the caller judges the devices. The timestamps of all
    parts are converted at once (most of the cost of converting is per call).
    """
    fields = []
    for j, (plan, structs) in enumerate(zip(plans, parts, strict=True)):
        values, good, ts, devices = plan.fields(structs)
        if device_ids is not None and devices != device_ids[j]:  # one C-level comparison for the usual cycle
            n = len(structs)
            good &= np.fromiter(map(is_, devices, repeat(_UNSET)), np.bool_, count=n) | np.fromiter(
                map(eq, devices, device_ids[j]), np.bool_, count=n
            )
        fields.append((values, good, ts, devices))
    ts_ms, ts_ok = timestamps(
        list(chain.from_iterable(ts for _, _, ts, _ in fields)) if len(fields) > 1 else fields[0][2]
    )
    ts_ok &= (ts_ms >= min_ts) & (ts_ms <= max_ts)
    verdicts: list[Plain] = []
    start = 0
    for values, good, _, devices in fields:
        end = start + len(devices)
        ok = good & ts_ok[start:end] & ~np.isnan(values).all(axis=1)
        if ok.all():  # the usual part: nothing to leave out, so nothing to copy
            verdicts.append(Plain(np.arange(ok.size), ts_ms[start:end], values, devices))
        else:
            verdicts.append(Plain(np.flatnonzero(ok), ts_ms[start:end][ok], values[ok], devices))
        start = end
    return verdicts


def _plain_bounds(schema: Any) -> dict[str, float] | None:
    """The range of a measure whose schema is an optional float with bounds only, else ``None``."""
    try:
        if schema["type"] != "default" or schema["default"] is not None or len(schema) != 3:
            return None
        nullable = schema["schema"]
        if nullable["type"] != "nullable" or len(nullable) != 2:
            return None
        number = nullable["schema"]
        if number["type"] != "float" or not set(number) - {"type"} <= _BOUNDS:
            return None
        bounds = {key: number[key] for key in _BOUNDS & set(number)}
    except (KeyError, TypeError):
        return None
    if {"ge", "gt"} <= bounds.keys() or {"le", "lt"} <= bounds.keys():
        return None
    exact = all(
        type(b) in (int, float) and math.isfinite(b) and float(b) == b and abs(b) < 2**53
        for b in bounds.values()
    )
    return {key: float(b) for key, b in bounds.items()} if exact else None


class PlainPath:
    """The plain path's part in a cycle: single-reading messages on known topics, and gateway batches."""

    def __init__(self, context: Context, plans: dict[str, ColumnPlan | None]) -> None:
        self.context = context
        self.plans = [None if plan is None else PlainPlan(plan) for plan in plans.values()]
        """Each kind's plain plan, by its place in :data:`~processors.kinds.KINDS` (its kind code)."""

    def singles(
        self, messages: Sequence[RawMessage], singles: Singles, cycle: Cycle
    ) -> tuple[NDArray[np.bool_], dict[int, int]]:
        """The plain path for the messages ``singles.parse`` marks: which it accepted, and how many
        per kind code.

        Accepted readings become rows at once; the counts are left to the caller, to be
        added in the order of kinds that the column path counts in.
        """
        routes = self.context.routes
        numbers, codes, received = singles.numbers, singles.codes, singles.received
        candidates = np.flatnonzero(singles.parse)
        order = candidates[np.argsort(codes[candidates], kind="stable")]
        sorted_codes = codes[order]
        bounds = [0, *(np.flatnonzero(sorted_codes[1:] != sorted_codes[:-1]) + 1).tolist(), order.size]
        plans: list[PlainPlan] = []
        parts: list[list[Any]] = []
        kinds: list[tuple[int, NDArray[np.intp]]] = []
        for a, b in itertools.pairwise(bounds):
            code = int(sorted_codes[a])
            plan = self.plans[code]
            if plan is not None:
                structs, refused = plan.decode(pick(singles.payloads, order[a:b].tolist()))
                decoded = np.ones(b - a, dtype=np.bool_)
                decoded[refused] = False  # a mask, not np.delete: its fixed cost is many times this
                plans.append(plan)
                parts.append(structs)
                kinds.append((code, order[a:b][decoded]))
        taken = np.zeros(len(messages), dtype=np.bool_)
        counts: dict[int, int] = {}
        if not plans:
            return taken, counts
        policy = self.context.policy
        verdicts = check_plain(
            plans,
            parts,
            [routes.device_id[numbers[index]].tolist() for _, index in kinds],
            cycle.now_ms - policy.max_age_ms,
            cycle.now_ms + policy.max_future_ms,
        )
        for (code, index), verdict in zip(kinds, verdicts, strict=True):
            if not verdict.taken.size:
                continue
            rows = cycle.rows_of(self.context.kind_names[code])
            kept = index[verdict.taken]
            seqs = (kept.astype(np.int64) << self.context.shift) + 1
            rows.chunks.append(
                (seqs, routes.position[numbers[kept]], verdict.ts_ms, verdict.values, received[kept])
            )
            rows.sources.append(Source(seqs, messages, kept, None))
            taken[kept] = True
            counts[code] = kept.size
        return taken, counts

    def gateways(
        self, messages: Sequence[RawMessage], slow: Sequence[int], cycle: Cycle
    ) -> tuple[dict[int, str], Counter[str]]:
        """The plain path for gateway batches: the messages it took whole (with their kind), and
        how many readings of each kind it took.

        A message is taken only if msgspec reads every item and every item is proven
        valid (a device of the topic's kind, a timestamp in the window, values in range):
        anything else leaves the whole message to the general way, which judges it as it
        always did. Duplicates are found with every other row when the batches are assembled.
        """
        context = self.context
        limit = context.policy.max_payload_bytes
        found: dict[int, tuple[list[int], list[list[Any]]]] = {}
        routed = cycle.routed
        for i in slow:
            message = messages[i]
            if i in routed or len(message.payload) > limit:
                continue
            try:
                topic = context.topics.parse(message.topic)
            except TopicError:
                continue
            code = context.kind_codes.get(topic.kind)
            if topic.form is not TopicForm.BATCH or code is None or self.plans[code] is None:
                continue
            payload = message.payload.lstrip()
            if payload[:1] != b"[":
                continue
            structs = cast(PlainPlan, self.plans[code]).decode_array(payload)
            # The general way reads the array with orjson if it holds at most REFERENCE_DEPTH
            # brackets and braces: the array's and its items' own, if every item is proven
            # (none is inside a string then: keys are field names, devices registered ids,
            # timestamps RFC 3339 or numbers). Larger arrays are left to it.
            if structs and len(structs) < REFERENCE_DEPTH and len(structs) <= context.policy.max_batch_items:
                numbers, parts = found.setdefault(code, ([], []))
                numbers.append(i)
                parts.append(structs)
        gateways: dict[int, str] = {}
        plain: Counter[str] = Counter()
        if not found:
            return gateways, plain
        codes = sorted(found)
        plans = [cast(PlainPlan, self.plans[code]) for code in codes]
        flat = [list(itertools.chain.from_iterable(found[code][1])) for code in codes]
        verdicts = check_plain(
            plans,
            flat,
            None,
            cycle.now_ms - context.policy.max_age_ms,
            cycle.now_ms + context.policy.max_future_ms,
        )
        received = arrivals(messages, cycle.now_ms)
        for code, verdict in zip(codes, verdicts, strict=True):
            claimed = verdict.devices
            name = context.kind_names[code]
            index = context.registry.tables[name].index
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
            seqs = (message_at.astype(np.int64) << context.shift) + 1 + item_at
            rows = cycle.rows_of(name)
            rows.chunks.append(
                (seqs, positions[rows_at], verdict.ts_ms[keep], verdict.values[keep], received[message_at])
            )
            rows.sources.append(Source(seqs, messages, message_at, ArrayItems(messages, message_at, item_at)))
            plain[name] += rows_at.size
            for k in np.flatnonzero(whole).tolist():
                gateways[numbers[k]] = name
        return gateways, plain
