"""A ``WriteBatch`` as bytes and back, so it can wait in the spool for any sink.

The spool wraps every sink, so it stores batches, not line protocol. A record
must also outlive the process that wrote it and survive a registry that changed
since: readings carry their device ids and districts by name (not the registry's
dense indices) and their measures by name (so a kind that gained a measure still
reads old records). Columns travel as raw little-endian arrays: encoding a batch
costs about as much as copying it.

>>> from processors.batch import Event
>>> batch = WriteBatch(events=(Event("deadletters", 5, {"reason": "wrong_type"}, {"detail": "x"}),))
>>> decode_batch(encode_batch(batch)).events == batch.events
True
"""

from __future__ import annotations

import struct

import numpy as np
import orjson

from processors.batch import Event, ReadingBatch, WriteBatch
from processors.kinds import KINDS
from processors.registry import Device, DeviceTable

_MAGIC = b"CPB1"
_PREFIX = struct.Struct("<4sI")


class UnreadableBatchError(ValueError):
    """A record that cannot become a batch again (corrupt, or of a kind that no longer exists)."""


def encode_batch(batch: WriteBatch) -> bytes:
    readings = []
    arrays: list[bytes] = []
    for rb in batch.readings:
        used, rows = np.unique(rb.device, return_inverse=True)
        devices = [rb.table.devices[int(i)] for i in used.tolist()]
        readings.append(
            {
                "kind": rb.kind.name,
                "measures": list(rb.kind.measure_names),
                "devices": [d.device_id for d in devices],
                "districts": [d.district for d in devices],
                "n": len(rb),
            }
        )
        arrays += [
            rows.astype("<i4").tobytes(),
            rb.ts_ms.astype("<i8").tobytes(),
            np.ascontiguousarray(rb.values, dtype="<f8").tobytes(),
        ]
    events = [[e.measurement, e.ts_ms, e.tags, e.fields] for e in batch.events]
    header = orjson.dumps({"readings": readings, "events": events})
    return b"".join([_PREFIX.pack(_MAGIC, len(header)), header, *arrays])


def decode_batch(data: bytes) -> WriteBatch:
    try:
        magic, size = _PREFIX.unpack_from(data, 0)
        if magic != _MAGIC:
            raise UnreadableBatchError("not a citypulse batch record")
        header = orjson.loads(data[_PREFIX.size : _PREFIX.size + size])
        at = _PREFIX.size + size
        readings = []
        for entry in header["readings"]:
            rb, at = _readings(entry, data, at)
            readings.append(rb)
        events = tuple(
            Event(m, int(ts), dict(tags), dict(fields)) for m, ts, tags, fields in header["events"]
        )
    except UnreadableBatchError:
        raise
    except (struct.error, orjson.JSONDecodeError, KeyError, TypeError, ValueError) as bad:
        raise UnreadableBatchError(f"corrupt batch record: {bad}") from bad
    return WriteBatch(readings=tuple(readings), events=events)


def _readings(entry: dict[str, object], data: bytes, at: int) -> tuple[ReadingBatch, int]:
    name = str(entry["kind"])
    kind = KINDS.get(name)
    if kind is None:
        raise UnreadableBatchError(f"readings of kind {name!r}, which this citypulse does not declare")
    n = int(entry["n"])  # type: ignore[call-overload]
    stored = [str(m) for m in entry["measures"]]  # type: ignore[attr-defined]
    ids = [str(d) for d in entry["devices"]]  # type: ignore[attr-defined]
    districts = [str(d) for d in entry["districts"]]  # type: ignore[attr-defined]
    rows = np.frombuffer(data, "<i4", n, at).astype(np.intp)
    at += 4 * n
    ts = np.frombuffer(data, "<i8", n, at).astype(np.int64)
    at += 8 * n
    old = np.frombuffer(data, "<f8", n * len(stored), at).reshape(n, len(stored))
    at += 8 * n * len(stored)
    values = np.full((n, len(kind.measures)), np.nan)
    current = {m: j for j, m in enumerate(kind.measure_names)}
    for j, m in enumerate(stored):
        if m in current:
            values[:, current[m]] = old[:, j]
        elif np.isfinite(old[:, j]).any():
            raise UnreadableBatchError(
                f"{name} readings carry measure {m!r}, which the kind no longer declares"
            )
    table = DeviceTable(kind)
    for device_id, district in zip(ids, districts, strict=True):
        table.add(Device(device_id, name, district, 0.0, 0.0))
    return ReadingBatch(kind, table, rows, ts, values), at
