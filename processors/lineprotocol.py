"""InfluxDB line protocol: whole columns of readings in, one text line per point out.

Pure and fast on purpose. A cycle may hold tens of thousands of readings, so the
encoder works column by column: every float column is formatted in one call
(orjson writes the shortest text that reads back to the same double, as
``repr`` does, but in native code), and each device's series key
(``kind,device=...,district=...``) is escaped once and cached. Rows are then
assembled from a template per pattern of reported measures, because most rows
of a kind report the same set of measures.

What must never happen is that a value adds a line, a tag or a field. So:

- tag keys and values, field keys and measurement names escape ``\\``, ``,``,
  ``=`` (not in measurement names) and spaces with a backslash; a newline or a
  carriage return becomes the two characters ``\\n`` or ``\\r``; trailing
  backslashes are dropped (no parser can tell them from an escape of the
  separator that follows), and an empty tag value drops the tag (InfluxDB cannot
  store one);
- string field values escape ``\\`` and ``"`` and, likewise, newlines and
  carriage returns (InfluxDB 1.x accepts a raw newline inside quotes, but other
  servers and the line protocol reference do not);
- numbers are always float fields (never the ``i`` suffix), so a field can never
  change type between two writes; NaN and infinities are left out.

Readings carry their device timestamps in milliseconds (write with
``precision=ms``). Events use nanoseconds (write with ``precision=ns``): several
events of one measurement in the same millisecond (a cycle's dead letters share
its clock) get consecutive nanosecond offsets, so none overwrites another, and
re-encoding the same batch gives the same timestamps, so a replay overwrites
instead of duplicating.

>>> encode_point("air quality", {"device": "a 1", "district": "Ba Đình"}, {"pm25": 21, "ok": True}, 5)
'air\\\\ quality,device=a\\\\ 1,district=Ba\\\\ Đình ok=true,pm25=21.0 5'
>>> quote_string('say "hi"\\n')
'"say \\\\"hi\\\\"\\\\n"'
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from operator import itemgetter

import numpy as np
import orjson
from numpy.typing import NDArray

from processors.batch import Event, FieldValue, ReadingBatch
from processors.registry import DeviceTable

READING_TAGS = ("device", "district")
"""Tags of every reading point, in the (sorted) order they are written."""

_KEY_ESCAPES = str.maketrans({"\\": "\\\\", ",": "\\,", "=": "\\=", " ": "\\ ", "\n": "\\n", "\r": "\\r"})
_MEASUREMENT_ESCAPES = str.maketrans({"\\": "\\\\", ",": "\\,", " ": "\\ ", "\n": "\\n", "\r": "\\r"})
_STRING_ESCAPES = str.maketrans({"\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\r"})
_NS_PER_MS = 1_000_000


def escape_key(text: str) -> str:
    """A tag key, tag value or field key, safe to place between separators ('' if nothing is left)."""
    return text.rstrip("\\").translate(_KEY_ESCAPES)


def escape_measurement(name: str) -> str:
    """A measurement name; refuses names that are empty or would make the line a comment."""
    escaped = name.rstrip("\\").translate(_MEASUREMENT_ESCAPES)
    if not escaped or escaped.startswith("#"):
        raise ValueError(f"measurement name {name!r} cannot be written: it is empty or starts with '#'")
    return escaped


def quote_string(value: str) -> str:
    """A string field value, quoted and escaped."""
    return '"' + value.translate(_STRING_ESCAPES) + '"'


def format_value(value: FieldValue) -> str | None:
    """A field value as line protocol, or None when InfluxDB cannot store it (NaN, infinities).

    Integers are written as floats: a field must keep one type forever.
    """
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return quote_string(value)
    number = float(value)
    return repr(number) if math.isfinite(number) else None


def _field_set(fields: Mapping[str, FieldValue]) -> str:
    parts = []
    for key in sorted(fields):
        text = format_value(fields[key])
        if text is None:
            continue
        name = escape_key(key)
        if not name:
            raise ValueError(f"field key {key!r} cannot be written: it is empty")
        parts.append(f"{name}={text}")
    return ",".join(parts)


def _tag_set(tags: Mapping[str, str]) -> str:
    parts = []
    for key in sorted(tags):
        name, value = escape_key(key), escape_key(tags[key])
        if not name:
            raise ValueError(f"tag key {key!r} cannot be written: it is empty")
        if value:
            parts.append(f",{name}={value}")
    return "".join(parts)


def encode_point(
    measurement: str, tags: Mapping[str, str], fields: Mapping[str, FieldValue], timestamp: int
) -> str:
    """One point as one line, or '' if none of its fields can be stored."""
    field_set = _field_set(fields)
    if not field_set:
        return ""
    return f"{escape_measurement(measurement)}{_tag_set(tags)} {field_set} {timestamp}"


def event_timestamps_ns(events: Sequence[Event]) -> list[int]:
    """Nanosecond timestamps that keep events of one measurement and millisecond apart.

    >>> event_timestamps_ns([Event("e", 7), Event("e", 7), Event("f", 7), Event("e", 8)])
    [7000000, 7000001, 7000000, 8000000]
    """
    seen: dict[tuple[str, int], int] = {}
    stamps = []
    for event in events:
        key = (event.measurement, event.ts_ms)
        offset = seen.get(key, 0)
        seen[key] = offset + 1
        stamps.append(event.ts_ms * _NS_PER_MS + offset)
    return stamps


class LineEncoder:
    """Encodes reading batches; remembers each device's escaped series key between batches.

    The cache holds one string per registered device (about 60 bytes each), keyed
    by the device table it came from.
    """

    def __init__(self, max_tables: int = 64) -> None:
        self._heads: dict[int, tuple[DeviceTable, list[str]]] = {}
        self._max_tables = max_tables

    def _series_keys(self, table: DeviceTable) -> list[str]:
        cached = self._heads.get(id(table))
        if cached is not None and cached[0] is table:
            heads = cached[1]
        else:
            if len(self._heads) >= self._max_tables:
                self._heads.clear()
            heads = []
            self._heads[id(table)] = (table, heads)  # holding the table keeps its id unique
        if len(heads) < len(table.devices):
            measurement = escape_measurement(table.kind.name)
            heads.extend(
                measurement + _tag_set({"device": d.device_id, "district": d.district}) + " "
                for d in table.devices[len(heads) :]
            )
        return heads

    def readings(self, batch: ReadingBatch) -> list[str]:
        """One line per row, in row order, with millisecond timestamps.

        Rows that report the same measures are formatted together, with one ``%``
        over one template repeated for all of them: no Python call per row. A row
        without a finite value gives '' (the validator never lets one through).
        """
        n = len(batch)
        if n == 0:
            return []
        heads = self._series_keys(batch.table)
        names = [escape_key(m.name).replace("%", "%%") + "=" for m in batch.kind.measures]
        devices = batch.device.tolist()
        row_heads = list(itemgetter(*devices)(heads)) if n > 1 else [heads[devices[0]]]
        stamps = batch.ts_ms.tolist()
        finite = np.isfinite(batch.values)
        if finite.all():  # the usual batch: one pattern, every measure reported
            columns = [_format_column(batch.values[:, j]) for j in range(len(names))]
            return _rows(row_heads, columns, stamps, names)
        pattern = finite @ (1 << np.arange(len(names), dtype=np.int64)) if names else np.zeros(n, np.int64)
        lines: list[str] = [""] * n
        for bits in np.unique(pattern).tolist():
            chosen = [j for j in range(len(names)) if bits >> j & 1]
            if not chosen:
                continue
            members = np.flatnonzero(pattern == bits)
            picked = members.tolist()
            columns = [_format_column(batch.values[members, j]) for j in chosen]
            formatted = _rows(
                [row_heads[i] for i in picked],
                columns,
                [stamps[i] for i in picked],
                [names[j] for j in chosen],
            )
            for i, line in zip(picked, formatted, strict=True):
                lines[i] = line
        return lines


def _rows(heads: list[str], columns: list[list[str]], stamps: list[int], names: list[str]) -> list[str]:
    """Lines ``head + name=value,... + ' ' + stamp``, formatted all at once."""
    width = len(columns) + 2
    parts: list[object] = [None] * (width * len(heads))
    parts[0::width] = heads
    for j, column in enumerate(columns):
        parts[j + 1 :: width] = column
    parts[width - 1 :: width] = stamps
    template = "%s" + ",".join(name + "%s" for name in names) + " %d"
    # Neither series keys nor numbers can hold a newline (keys are escaped): it separates the rows.
    return ("\n".join([template] * len(heads)) % tuple(parts)).split("\n")


def _format_column(column: NDArray[np.float64]) -> list[str]:
    """Every value of a float column as its shortest round-trip text ('null' for NaN)."""
    # orjson formats doubles with the shortest representation that reads back exactly
    # and always keeps a '.' or an exponent, so InfluxDB sees a float, never an integer.
    text = orjson.dumps(column.tolist(), option=orjson.OPT_SERIALIZE_NUMPY)
    return text[1:-1].decode("ascii").split(",")
