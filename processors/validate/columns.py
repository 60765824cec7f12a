"""The column path's checks: a cycle's readings of one kind validated a field at a time.

Validating each message with its pydantic model costs tens of microseconds of
Python per reading. Here the payloads are parsed with orjson, and each measure is
validated for the whole column in one call to a pydantic-core validator built
from *the model's own schema for that field* (so ranges, strictness, NaN and
Infinity, and custom validators such as lighting's on/off spellings are exactly the
model's). Timestamps are converted as a column too.

The column path never rejects: it returns a mask of the readings it can prove
valid, and the caller (:mod:`processors.validate.column_path`) sends every other
one through the model, which gives the reason code and detail. A kind whose model
does something this module does not understand (its own model validators, a
redefined ``ts``) gets no plan at all and always takes the reference path.

The two fields every kind shares, ``device`` and ``ts``, are checked by
:func:`check_claims`, once for a whole cycle of mixed kinds: converting timestamps costs
mostly per call, and a cycle holds a few kinds. Each kind's plan then checks only
its own measures.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import compress, repeat
from operator import eq, is_, itemgetter
from typing import Any, cast

import numpy as np
from numpy.typing import NDArray
from pydantic_core import SchemaValidator, ValidationError, core_schema

from processors.kinds import Reading, SensorKind
from processors.timestamps import parse_timestamp, parse_utc_strings

_RESERVED = ("device", "ts")
_ABSENT = object()
"""What an item that does not name its device claims."""


@dataclass(frozen=True, slots=True)
class Checked:
    """The column path's verdict on a list of items."""

    ok: NDArray[np.bool_]
    """Items proven valid; the others must go through the model."""
    ts_ms: NDArray[np.int64]
    values: NDArray[np.float64]
    extra_names: list[str]
    """Unknown field names of the accepted items, one entry per occurrence."""


@dataclass(frozen=True, slots=True)
class Claims:
    """What items say of themselves (the device they name, when they were taken), checked.

    The fields are the base model's for every kind with a plan (:func:`plan_for` makes
    sure), so one cycle's items of all kinds are checked at once and sliced by kind.
    """

    ok: NDArray[np.bool_]
    """Items that name no other device and carry a readable timestamp within the window."""
    ts_ms: NDArray[np.int64]
    claimed: list[Any]
    """Each item's ``device``, or a marker where it names none."""

    def __getitem__(self, part: slice) -> Claims:
        return Claims(self.ok[part], self.ts_ms[part], self.claimed[part])


def check_claims(dicts: list[dict[str, Any]], device_ids: list[str], min_ts: int, max_ts: int) -> Claims:
    """Check ``device`` and ``ts`` of ``dicts`` (parsed JSON objects, of any kinds with a plan).

    ``device_ids[i]`` is the registered device the item belongs to (the caller has
    resolved the topic, or a gateway item's ``device``); an item that names another
    device, or names it with something other than a string, is left to the model.
    """
    n = len(dicts)
    ok = np.ones(n, dtype=np.bool_)
    # An item that does not name its device is taken as the caller's; one that names
    # another, or null, goes to the model.
    claimed = list(map(dict.get, dicts, repeat("device"), repeat(_ABSENT)))
    if claimed != device_ids:  # one C-level comparison says so for the usual cycle
        absent = np.fromiter(map(is_, claimed, repeat(_ABSENT)), dtype=np.bool_, count=n)
        ok &= absent | np.fromiter(map(eq, claimed, device_ids), dtype=np.bool_, count=n)
    ts_ms, ts_ok = timestamps(list(map(dict.get, dicts, repeat("ts"))))
    ok &= ts_ok & (ts_ms >= min_ts) & (ts_ms <= max_ts)
    return Claims(ok, ts_ms, claimed)


class ColumnPlan:
    """How to check one kind's measures a column at a time."""

    def __init__(
        self, kind: SensorKind, field_schemas: dict[str, core_schema.CoreSchema], config: Any
    ) -> None:
        self.kind = kind
        self.names = kind.measure_names
        self.known = frozenset((*_RESERVED, *self.names))
        self.field_schemas = field_schemas
        self.validators = [
            SchemaValidator(core_schema.list_schema(field_schemas[name]), config=config)
            for name in self.names
        ]

    def check(self, dicts: list[dict[str, Any]], claims: Claims, reject_unknown: bool) -> Checked:
        """Check the measures of ``dicts``, whose :func:`check_claims` are ``claims``.

        Pure: the caller counts the unknown fields of what it keeps.
        """
        n = len(dicts)
        ok = claims.ok.copy()
        values = self._by_columns(dicts, ok)
        present = np.count_nonzero(~np.isnan(values), axis=1)
        ok &= present > 0

        # Keys beyond ts, the device and the reported measures are unknown fields, or
        # known ones sent as null; only those (rare) items are looked at key by key.
        # Each accepted item has at least those keys, so when the totals of keys agree,
        # no item has more and nobody needs looking at (the usual cycle).
        extra_names: list[str] = []
        keep = ok.tolist()
        keys = sum(compress(map(len, dicts), keep))
        named = keep.count(True) - list(compress(claims.claimed, keep)).count(_ABSENT)
        if keys == int(present[ok].sum()) + keep.count(True) + named:
            return Checked(ok, claims.ts_ms, values, extra_names)
        sizes = np.fromiter(map(len, dicts), dtype=np.int64, count=n)
        has_device = np.fromiter(map(dict.__contains__, dicts, repeat("device")), dtype=np.bool_, count=n)
        for i in np.flatnonzero(ok & (sizes > present + 1 + has_device)).tolist():
            extra = [k for k in dicts[i] if k not in self.known]
            if extra and reject_unknown:
                ok[i] = False
            else:
                extra_names.extend(extra)
        return Checked(ok, claims.ts_ms, values, extra_names)

    def _by_columns(self, dicts: list[dict[str, Any]], ok: NDArray[np.bool_]) -> NDArray[np.float64]:
        """Every measure of every item, a measure at a time; items with an invalid value are not ``ok``."""
        values = np.full((len(dicts), len(self.names)), np.nan, dtype=np.float64)
        for j, (name, validator) in enumerate(zip(self.names, self.validators, strict=True)):
            column = list(map(dict.get, dicts, repeat(name)))
            try:
                checked = validator.validate_python(column)
            except ValidationError as errors:
                bad = {int(e["loc"][0]) for e in errors.errors()}
                ok[list(bad)] = False
                checked = validator.validate_python([None if i in bad else v for i, v in enumerate(column)])
            values[:, j] = checked  # None, a measure the reading did not report, becomes NaN
        return values


def timestamps(raw: list[object]) -> tuple[NDArray[np.int64], NDArray[np.bool_]]:
    """Epoch milliseconds for a column of ``ts`` values, and which ones could be read.

    Numbers and the common string spellings are converted a column at a time with
    the same arithmetic as :func:`parse_timestamp`; other strings go through it.
    """
    n = len(raw)
    ms = np.zeros(n, dtype=np.int64)
    ok = np.zeros(n, dtype=np.bool_)
    sort = np.fromiter(map(_TS_SORTS.get, map(type, raw), repeat(0)), dtype=np.intp, count=n)
    is_str = sort == 1
    is_num = sort == 2
    if is_num.any():
        index = np.flatnonzero(is_num)
        x = np.array(pick(raw, index.tolist()), dtype=np.float64)
        with np.errstate(invalid="ignore", over="ignore"):
            converted = np.where(x >= _MS_THRESHOLD, np.rint(x), np.rint(x * 1000.0))
            good = np.isfinite(x) & (x >= 0) & (converted < _MAX_MS)
        ms[index] = np.where(good, converted, 0).astype(np.int64)
        ok[index] = good
    if is_str.any():
        index = np.flatnonzero(is_str)
        strings = index.tolist()
        texts = cast(list[str], raw if len(strings) == n else pick(raw, strings))
        rest = strings
        if len(texts) >= _FEW:
            fast_ms, fast_ok = parse_utc_strings(texts)
            ms[index] = fast_ms
            ok[index] = fast_ok
            rest = np.flatnonzero(~fast_ok).tolist()
            texts = [texts[k] for k in rest]
            rest = [strings[k] for k in rest]
        for i, text in zip(rest, texts, strict=True):
            try:
                ms[i] = parse_timestamp(text)
                ok[i] = True
            except ValueError:
                pass
    return ms, ok


_FEW = 48
"""Below this many strings, one :func:`parse_timestamp` each is quicker than the fixed cost of numpy."""
_TS_SORTS: dict[type, int] = {str: 1, int: 2, float: 2}
"""What a ``ts`` value's exact type makes of it (a ``bool`` is not a number here): 1 text, 2 number."""
_MS_THRESHOLD = 100_000_000_000.0
"""As in :mod:`processors.timestamps`: epoch numbers from 1e11 up are milliseconds."""
_MAX_MS = float(2**62)
"""Beyond this an epoch number is left to the model (and rejected there as too far ahead)."""


def pick(values: list[Any], index: list[int]) -> list[Any]:
    """``[values[i] for i in index]``, in one C-level call."""
    if len(index) == 1:
        return [values[index[0]]]
    return list(itemgetter(*index)(values)) if index else []


def plan_for(kind: SensorKind) -> ColumnPlan | None:
    """A column plan for ``kind``, or ``None`` if its model is beyond what this module reproduces."""
    try:
        schema: Any = kind.model.__pydantic_core_schema__
        base: Any = Reading.__pydantic_core_schema__
        if schema["type"] != "function-after" or schema["function"] != base["function"]:
            return None
        model = schema["schema"]
        if model["type"] != "model" or model["schema"]["type"] != "model-fields":
            return None
        fields = model["schema"]["fields"]
        base_fields = base["schema"]["schema"]["fields"]
        if any(fields[name] != base_fields[name] for name in _RESERVED):
            return None
        if model["schema"].get("computed_fields"):
            return None
        config = model["config"]
        if not (config.get("strict") and config.get("allow_inf_nan") is False):
            return None
        ts_schema = fields["ts"]["schema"]
        if (
            ts_schema.get("type") != "function-before"
            or ts_schema["function"]["function"] is not parse_timestamp
        ):
            return None
        field_schemas = {name: fields[name]["schema"] for name in kind.measure_names}
    except (KeyError, TypeError, AttributeError):
        return None
    return ColumnPlan(kind, field_schemas, config)
