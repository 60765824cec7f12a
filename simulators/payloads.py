"""Readings as JSON payload bytes, formatted in bulk: the simulator's hot loop.

Devices in the field disagree on formats, so the simulated fleet does too: most
send RFC 3339 timestamps, some epoch milliseconds, some epoch seconds
(:class:`~simulators.clocks.TimeFormat`). Clean readings take a fast path:
timestamps are formatted for a whole chunk at once in numpy, the values of a
chunk are serialised by one ``orjson`` call and cut into rows, and each payload is
one bytes ``%`` template. A reading that is to be spoiled, or misses a value, is
built as a dictionary instead (:meth:`KindFormatter.reading`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import orjson
from numpy.typing import NDArray

from processors.kinds import SensorKind
from processors.timestamps import format_rfc3339
from simulators.clocks import TimeFormat

_DAY_MS = 86_400_000
_DIGITS = np.frombuffer(b"0123456789", dtype=np.uint8)


def _put(buffer: NDArray[np.uint8], column: int, value: NDArray[np.int64], width: int) -> None:
    for i in range(width - 1, -1, -1):
        buffer[:, column + i] = _DIGITS[value % 10]
        value = value // 10


def rfc3339_quoted(ts_ms: NDArray[np.int64]) -> list[bytes]:
    """``"YYYY-MM-DDTHH:MM:SS.mmmZ"`` (with the JSON quotes) for each timestamp, without Python loops.

    >>> rfc3339_quoted(np.array([1795408200250]))
    [b'"2026-11-23T04:30:00.250Z"']
    """
    if len(ts_ms) < 8:  # numpy's per-call overhead outweighs its speed on a handful
        return [b'"%s"' % format_rfc3339(int(t)).encode() for t in ts_ms.tolist()]
    days = ts_ms // _DAY_MS
    ms_of_day = ts_ms - days * _DAY_MS
    # Civil date from days since 1970-01-01 (H. Hinnant's algorithm).
    z = days + 719_468
    era = z // 146_097
    doe = z - era * 146_097
    yoe = (doe - doe // 1460 + doe // 36_524 - doe // 146_096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    day = doy - (153 * mp + 2) // 5 + 1
    month = np.where(mp < 10, mp + 3, mp - 9)
    year = yoe + era * 400 + (month <= 2)
    buffer = np.empty((len(ts_ms), 26), dtype=np.uint8)
    buffer[:] = np.frombuffer(b'"0000-00-00T00:00:00.000Z"', dtype=np.uint8)
    _put(buffer, 1, year, 4)
    _put(buffer, 6, month, 2)
    _put(buffer, 9, day, 2)
    _put(buffer, 12, ms_of_day // 3_600_000, 2)
    _put(buffer, 15, ms_of_day // 60_000 % 60, 2)
    _put(buffer, 18, ms_of_day // 1000 % 60, 2)
    _put(buffer, 21, ms_of_day % 1000, 3)
    texts: list[bytes] = buffer.view("S26").ravel().tolist()
    return texts


def format_timestamps(device: NDArray[np.intp], ts_ms: NDArray[np.int64]) -> list[bytes]:
    """Each device's timestamp in its own spelling, as JSON value text."""
    formats = TimeFormat.of(device)
    if not formats.any():
        return rfc3339_quoted(ts_ms)
    texts: list[bytes] = [b""] * len(ts_ms)
    for fmt, values in (
        (TimeFormat.RFC3339, None),
        (TimeFormat.EPOCH_MS, ts_ms),
        (TimeFormat.EPOCH_S, ts_ms // 1000),
    ):
        rows = np.flatnonzero(formats == fmt)
        if rows.size == 0:
            continue
        if values is None:
            parts = rfc3339_quoted(ts_ms[rows])
        else:
            parts = orjson.dumps(values[rows], option=orjson.OPT_SERIALIZE_NUMPY)[1:-1].split(b",")
        for row, text in zip(rows.tolist(), parts, strict=True):
            texts[row] = text
    return texts


def timestamp_value(device: int, ts_ms: int) -> object:
    """One timestamp as a JSON-ready value, for the slow path."""
    fmt = int(TimeFormat.of(np.array([device]))[0])
    if fmt == TimeFormat.EPOCH_MS:
        return ts_ms
    if fmt == TimeFormat.EPOCH_S:
        return ts_ms // 1000
    return rfc3339_quoted(np.array([ts_ms], dtype=np.int64))[0][1:-1].decode()


def _numbers(matrix: NDArray[np.generic]) -> list[bytes]:
    """orjson-formatted numbers of a 2-D array, row after row, in one flat list."""
    text = orjson.dumps(np.ascontiguousarray(matrix), option=orjson.OPT_SERIALIZE_NUMPY)
    return text[2:-2].replace(b"],[", b",").split(b",")


class KindFormatter:
    """Payload bytes for one kind's readings: a template per kind, numbers formatted in bulk."""

    def __init__(self, kind: SensorKind, device_ids: Sequence[str]) -> None:
        self.kind = kind
        self.whole = [i for i, m in enumerate(kind.measures) if m.step]
        self.fractional = [i for i, m in enumerate(kind.measures) if not m.step]
        order = self.whole + self.fractional
        fields = b",".join(b'"%s":%%s' % kind.measures[i].name.encode() for i in order)
        self.template = b'{"device":"%s","ts":%s,' + fields + b"}"
        self.separated = self.template + b"\x00"
        self.ids = [d.encode() for d in device_ids]

    def payloads(
        self, device: NDArray[np.intp], ts_ms: NDArray[np.int64], values: NDArray[np.float64]
    ) -> list[bytes]:
        """Payloads of clean readings (every value present and finite)."""
        if len(device) == 0:
            return []
        n = len(device)
        width = 2 + len(self.whole) + len(self.fractional)
        # Every payload of the chunk comes out of one % formatting: the arguments of all rows
        # interleaved in one flat list, the template repeated with a separator no JSON contains.
        args: list[bytes] = [b""] * (n * width)
        ids = self.ids
        args[0::width] = [ids[d] for d in device.tolist()]
        args[1::width] = format_timestamps(device, ts_ms)
        column = 2
        for columns, matrix in (
            (self.whole, np.round(values[:, self.whole]).astype(np.int64) if self.whole else None),
            (self.fractional, np.round(values[:, self.fractional], 2) + 0.0 if self.fractional else None),
        ):
            if matrix is None:
                continue
            numbers = _numbers(matrix)
            for j in range(len(columns)):
                args[column + j :: width] = numbers[j :: len(columns)]
            column += len(columns)
        joined: bytes = (self.separated * n) % tuple(args)
        return joined.split(b"\x00")[:-1]

    def reading(self, device: int, ts_ms: int, row: NDArray[np.float64]) -> dict[str, object]:
        """A reading as a dict, for the slow path (spoiling, missing values)."""
        reading: dict[str, object] = {
            "device": self.ids[device].decode(),
            "ts": timestamp_value(device, ts_ms),
        }
        for i, measure in enumerate(self.kind.measures):
            value = float(row[i])
            if math.isnan(value):
                continue
            reading[measure.name] = round(value) if measure.step else round(value, 2) + 0.0
        return reading
