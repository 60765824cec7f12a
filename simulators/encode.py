"""From generated values to MQTT messages, spoiling some on purpose, and counting what must happen.

Devices in the field disagree on formats, so the simulated fleet does too: most
send RFC 3339 timestamps, some epoch milliseconds, some epoch seconds. Gateway
mode packs many devices' readings into one JSON array per message.

Encoding is the simulator's hot loop, so clean readings take a fast path:
timestamps are formatted for a whole chunk at once in numpy, the values of a
chunk are serialised by one ``orjson`` call and cut into rows, and each payload
is one bytes ``%`` template. Only spoiled readings go through dictionaries.

The :class:`Tally` says what the pipeline must make of the output: how many
readings it must store per kind and how many rejects of each reason it must give.
"""

from __future__ import annotations

import heapq
import json
import math
import operator
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import orjson
from numpy.typing import NDArray

from processors.kinds import SensorKind
from processors.reasons import Reason
from processors.registry import Registry
from processors.timestamps import format_rfc3339
from processors.topics import TopicScheme
from processors.validate import ValidationPolicy
from simulators.clocks import TimeFormat
from simulators.faults import FAULTS, Fault
from simulators.incidents import PlacedIncident
from simulators.inject import (
    SPOILERS,
    VERDICT_FUTURE,
    VERDICT_OLD,
    KindInjector,
    ghost_device_id,
    message_rates,
    reading_rates,
    timestamp_verdicts,
)
from simulators.labels import Label, LabelSink
from simulators.ledger import Ledger
from simulators.models import SignalModel
from simulators.schedule import SLICE_MS, Chunk

Message = tuple[str, bytes]
TimedMessage = tuple[int, str, bytes]
"""(publish_ms, topic, payload): when the fleet sends it, where, and what."""

_DAY_MS = 86_400_000
_DIGITS = np.frombuffer(b"0123456789", dtype=np.uint8)
_VERDICT_REASON = {VERDICT_FUTURE: Reason.TIMESTAMP_IN_FUTURE, VERDICT_OLD: Reason.TIMESTAMP_TOO_OLD}


@dataclass
class Tally:
    """What was produced, and what the pipeline must therefore make of it."""

    messages: int = 0
    readings: Counter[str] = field(default_factory=Counter)
    valid_readings: Counter[str] = field(default_factory=Counter)
    faults: Counter[str] = field(default_factory=Counter)
    expected_rejects: Counter[str] = field(default_factory=Counter)
    labels: int = 0

    def as_dict(self) -> dict[str, object]:
        return {
            "messages": self.messages,
            "readings": sum(self.readings.values()),
            "valid_readings": sum(self.valid_readings.values()),
            "readings_by_kind": dict(sorted(self.readings.items())),
            "valid_by_kind": dict(sorted(self.valid_readings.items())),
            "faults": dict(sorted(self.faults.items())),
            "expected_rejects": dict(sorted(self.expected_rejects.items())),
            "labels": self.labels,
        }


# --- timestamps, vectorised ----------------------------------------------------------------------
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


@dataclass(order=True)
class _Held:
    release_ms: int
    sequence: int
    kind: str = field(compare=False)
    device: int = field(compare=False)
    topic: str = field(compare=False)
    payload: bytes = field(compare=False)
    ts_ms: int = field(compare=False)
    spoil: Reason | None = field(compare=False, default=None)
    copy_of_valid: bool | None = field(compare=False, default=None)
    """For a duplicate: whether the first copy was a valid reading (None: not a duplicate)."""
    sent_ms: int = field(compare=False, default=0)
    """When the reading it holds was first due to be sent."""


@dataclass
class _Item:
    publish_ms: int
    device: int
    ts_ms: int
    payload: bytes
    reason: Reason | None
    marked: bool


class Encoder:
    """Turns each slice's chunks into timed messages, injects faults, labels them and keeps the tally."""

    def __init__(
        self,
        registry: Registry,
        topics: TopicScheme,
        models: Mapping[str, SignalModel],
        *,
        rates: Mapping[str, float] | None = None,
        batch_size: int = 0,
        policy: ValidationPolicy | None = None,
        seed: int = 0,
        labels: LabelSink | None = None,
        start_ms: int | None = None,
        end_ms: int | None = None,
        incidents: Sequence[PlacedIncident] = (),
    ) -> None:
        self.registry = registry
        self.topics = topics
        self.batch_size = batch_size
        self.policy = policy or ValidationPolicy()
        self.labels = labels or LabelSink()
        self.rates = dict(rates or {})
        self.incidents = list(incidents)
        self.tally = Tally()
        self.ledger = Ledger()
        """What each message of the last slice counted, to withdraw what a stop leaves unsent."""
        per_reading = reading_rates(self.rates, batch_size)
        per_message = message_rates(self.rates, batch_size)
        self._whole = [FAULTS[n] for n in FAULTS if per_message.get(n, 0.0) > 0.0]
        self._whole_cumulative = (
            np.cumsum([per_message[f.name] for f in self._whole]) if self._whole else None
        )
        self._rng = np.random.default_rng(np.random.SeedSequence([seed, 0xE7C0DE]))
        self._formatters: dict[str, KindFormatter] = {}
        self._injectors: dict[str, KindInjector] = {}
        self._prefix: dict[str, str] = {}
        self._ids: dict[str, list[str]] = {}
        for name, model in models.items():
            table = registry.tables[name]
            self._formatters[name] = KindFormatter(table.kind, [d.device_id for d in table.devices])
            self._injectors[name] = KindInjector(
                table.kind,
                table,
                model,
                per_reading,
                seed=seed,
                policy=self.policy,
                labels=self.labels,
                start_ms=start_ms,
                end_ms=end_ms,
            )
            self._prefix[name] = topics.reading(name, "x")[:-1]
            self._ids[name] = [d.device_id for d in table.devices]
        self._held: list[_Held] = []
        self._sequence = 0

    # --- the slice ------------------------------------------------------------------------------
    def encode_slice(
        self, slice_start_ms: int, chunks: Sequence[Chunk], ingest_ms: int | None, end_ms: int | None = None
    ) -> list[TimedMessage]:
        """Messages of one slice (or block, up to ``end_ms``), in the order they are sent.

        ``ingest_ms`` is the clock the pipeline will judge timestamps by: the wall clock
        when publishing live, None to use each message's own send time (files, replays).
        """
        slice_end = slice_start_ms + SLICE_MS if end_ms is None else end_ms
        self.ledger.clear()
        out: list[TimedMessage] = []
        items: dict[str, list[_Item]] = {}
        for chunk in chunks:
            self._chunk(chunk, ingest_ms, out, items)
        self._release(slice_end, ingest_ms, out, items)
        if self.batch_size:
            for name, group in items.items():
                self._batches(name, group, out)
        self._close_incidents(slice_start_ms)
        out.sort(key=_SENT)
        self._count_labels()
        return out

    def finish(self, ingest_ms: int | None) -> list[TimedMessage]:
        """Whatever is still held back (sent now), and the labels of unfinished episodes."""
        out: list[TimedMessage] = []
        items: dict[str, list[_Item]] = {}
        self._release(None, ingest_ms, out, items)
        for name, group in items.items():
            self._batches(name, group, out)
        for injector in self._injectors.values():
            injector.finish()
        for incident in self.incidents:
            incident.write_labels(self.registry, self.labels, truncated=True)
        self.labels.flush()
        out.sort(key=_SENT)
        self._count_labels()
        return out

    def withdraw(self, from_ms: int) -> int:
        """Uncount the last slice's messages sent at or after ``from_ms``, which a stopped run never
        sends, and drop the readings of that time held back for later; returns the messages withdrawn."""
        self._held = [held for held in self._held if held.sent_ms < from_ms]
        heapq.heapify(self._held)
        return self.ledger.withdraw(self.tally, from_ms)

    def _count_labels(self) -> None:
        self.tally.faults = Counter(self.labels.counts)
        self.tally.labels = sum(self.labels.counts.values())

    # --- one chunk --------------------------------------------------------------------------------
    def _chunk(
        self, chunk: Chunk, ingest_ms: int | None, out: list[TimedMessage], items: dict[str, list[_Item]]
    ) -> None:
        name = chunk.kind.name
        # The pipeline sees a message no earlier than it is sent: when publishing live, its clock is
        # the later of the wall clock now and the send time.
        clock = chunk.ts_ms if ingest_ms is None else np.maximum(chunk.ts_ms, ingest_ms)
        marks = self._injectors[name].process(chunk.device, chunk.ts_ms, chunk.clock_ms, chunk.values, clock)
        for incident, rows in chunk.incidents:
            sent = rows & marks.keep
            incident.track(chunk.device[sent], chunk.clock_ms[sent])
        # In send order within the chunk, so that the slice's messages sort as a few sorted runs.
        keep = np.flatnonzero(marks.keep)
        if keep.size == 0:
            return
        keep = keep[np.argsort(chunk.ts_ms[keep], kind="stable")]
        device = chunk.device[keep]
        true_ms = chunk.ts_ms[keep]
        ts = marks.ts[keep]
        values = chunk.values[keep]
        spoil = marks.spoil[keep]
        verdicts = timestamp_verdicts(
            ts, true_ms if ingest_ms is None else np.maximum(true_ms, ingest_ms), self.policy
        )
        formatter = self._formatters[name]
        slow = (spoil > 0) | np.isnan(values).any(axis=1)
        if slow.any():
            fast = np.flatnonzero(~slow)
            payloads: list[bytes] = [b""] * len(keep)
            for row, payload in zip(
                fast.tolist(), formatter.payloads(device[fast], ts[fast], values[fast]), strict=True
            ):
                payloads[row] = payload
        else:
            payloads = formatter.payloads(device, ts, values)
        # Rows the pipeline must reject, with why; every other row is a reading it must store.
        reasons: dict[int, Reason] = {
            row: _VERDICT_REASON[int(verdicts[row])] for row in np.flatnonzero(verdicts).tolist()
        }
        ghosts: dict[int, str] = {}
        for row in np.flatnonzero(slow).tolist():
            reading = formatter.reading(int(device[row]), int(ts[row]), values[row])
            code = int(spoil[row])
            if not code:
                payloads[row] = orjson.dumps(reading)
                continue
            fault = FAULTS[SPOILERS[code - 1]]
            target = int(marks.spoil_field[keep[row]])
            payloads[row], ghost = self._spoil(fault.name, chunk.kind, reading, target)
            if ghost is not None:
                ghosts[row] = ghost
            if fault.reason is not None:
                reasons[row] = fault.reason
        hold = marks.hold_ms[keep]
        duplicate = marks.duplicate_ms[keep]
        special = np.flatnonzero((hold > 0) | (duplicate > 0)).tolist()
        held_back = {row for row in special if hold[row] > 0}
        ids = self._ids[name]
        prefix = self._prefix[name]
        device_list = device.tolist()
        true_list = true_ms.tolist()
        if not self.batch_size:
            topics = [prefix + ids[d] for d in device_list]
            for row, ghost in ghosts.items():
                topics[row] = prefix + ghost
            if held_back:
                out.extend(
                    m
                    for row, m in enumerate(zip(true_list, topics, payloads, strict=True))
                    if row not in held_back
                )
            else:
                out.extend(zip(true_list, topics, payloads, strict=True))
            self._count(
                name, len(device_list) - len(held_back), [r for i, r in reasons.items() if i not in held_back]
            )
            self.ledger.singles(name, true_ms, reasons, held_back)
        else:
            group = items.setdefault(name, [])
            marked = marks.marked[keep].tolist()
            stamps = ts.tolist()
            group.extend(
                _Item(
                    true_list[row],
                    device_list[row],
                    stamps[row],
                    payloads[row],
                    reasons.get(row),
                    marked[row],
                )
                for row in range(len(device_list))
                if row not in held_back
            )
        for row in special:
            d, t = device_list[row], true_list[row]
            topic = prefix + ghosts.get(row, ids[d])
            reason = reasons.get(row)
            if hold[row] > 0:
                self._hold(t + int(hold[row]), name, d, topic, payloads[row], int(ts[row]), reason, None, t)
            if duplicate[row] > 0:
                self._hold(
                    t + int(duplicate[row]),
                    name,
                    d,
                    topic,
                    payloads[row],
                    int(ts[row]),
                    reason,
                    reason is None,
                    t,
                )

    def _count(self, name: str, readings: int, rejects: list[Reason]) -> None:
        """Tally single-reading messages: how many, and which the pipeline must reject."""
        tally = self.tally
        tally.messages += readings
        tally.readings[name] += readings
        tally.valid_readings[name] += readings - len(rejects)
        for reason in rejects:
            tally.expected_rejects[str(reason)] += 1

    def _hold(
        self, release_ms: int, kind: str, device: int, topic: str, payload: bytes, ts_ms: int,
        reason: Reason | None, copy_of_valid: bool | None, sent_ms: int,
    ) -> None:  # fmt: skip
        self._sequence += 1
        heapq.heappush(
            self._held,
            _Held(
                release_ms,
                self._sequence,
                kind,
                device,
                topic,
                payload,
                ts_ms,
                reason,
                copy_of_valid,
                sent_ms,
            ),
        )

    def _release(
        self,
        before_ms: int | None,
        ingest_ms: int | None,
        out: list[TimedMessage],
        items: dict[str, list[_Item]],
    ) -> None:
        """Send what was held back and is now due (everything, when ``before_ms`` is None)."""
        while self._held and (before_ms is None or self._held[0].release_ms < before_ms):
            held = heapq.heappop(self._held)
            clock = held.release_ms if ingest_ms is None else max(held.release_ms, ingest_ms)
            verdict = int(timestamp_verdicts(np.array([held.ts_ms]), clock, self.policy)[0])
            reason = held.spoil or _VERDICT_REASON.get(verdict)
            if reason is None and held.copy_of_valid is not None:
                reason = Reason.DUPLICATE if held.copy_of_valid else None
            if self.batch_size:
                items.setdefault(held.kind, []).append(
                    _Item(held.release_ms, held.device, held.ts_ms, held.payload, reason, True)
                )
                continue
            out.append((held.release_ms, held.topic, held.payload))
            self._count(held.kind, 1, [reason] if reason is not None else [])
            self.ledger.message(
                held.kind, held.release_ms, 1, int(reason is None), [reason] if reason else []
            )

    # --- gateway batches ------------------------------------------------------------------------------
    def _batches(self, name: str, group: list[_Item], out: list[TimedMessage]) -> None:
        tally = self.tally
        ids = self._formatters[name].ids
        for start in range(0, len(group), self.batch_size):
            batch = group[start : start + self.batch_size]
            gateway = f"gw-{name}-{ids[batch[0].device].decode().rsplit('-', 1)[-1]}"
            topic = self.topics.batch(name, gateway)
            publish_ms = max(item.publish_ms for item in batch)
            body = b"[" + b",".join(item.payload for item in batch) + b"]"
            tally.messages += 1
            tally.readings[name] += len(batch)
            whole = self._draw_whole()
            if whole is not None and not any(item.marked for item in batch):
                out.append((publish_ms, topic, self._spoil_whole(whole.name, body)))
                tally.expected_rejects[str(whole.reason)] += 1
                self.ledger.message(name, publish_ms, len(batch), 0, [whole.reason] if whole.reason else [])
                for item in batch:
                    self.labels.add(
                        Label(
                            fault=whole.name,
                            scope=str(whole.scope),
                            device=ids[item.device].decode(),
                            kind=name,
                            field=None,
                            start_ms=item.ts_ms,
                            end_ms=item.ts_ms,
                            expected_reason=str(whole.reason),
                            detail={"gateway": gateway, "items": len(batch)},
                        )
                    )
                continue
            out.append((publish_ms, topic, body))
            for item in batch:
                if item.reason is None:
                    tally.valid_readings[name] += 1
                else:
                    tally.expected_rejects[str(item.reason)] += 1
            refused = [item.reason for item in batch if item.reason is not None]
            self.ledger.message(name, publish_ms, len(batch), len(batch) - len(refused), refused)

    def _draw_whole(self) -> Fault | None:
        """A fault that spoils a whole gateway message, drawn once per message."""
        if self._whole_cumulative is None:
            return None
        u = float(self._rng.random())
        if u >= float(self._whole_cumulative[-1]):
            return None
        return self._whole[int(np.searchsorted(self._whole_cumulative, u, side="right"))]

    # --- spoilers -------------------------------------------------------------------------------------
    def _spoil(
        self, fault: str, kind: SensorKind, reading: dict[str, object], target: int
    ) -> tuple[bytes, str | None]:
        """The payload (and, if it differs, the topic's device id) of a deliberately bad reading."""
        measure = kind.measures[target]
        device = str(reading["device"])
        if fault == "malformed_json":
            body = orjson.dumps(reading)
            return body[: max(1, len(body) * 2 // 3)], None
        if fault == "oversized":
            return orjson.dumps({**reading, "padding": "x" * (self.policy.max_payload_bytes + 1)}), None
        if fault == "wrong_type":
            reading[measure.name] = str(reading.get(measure.name, measure.normal[0]))
        elif fault == "not_finite":
            reading[measure.name] = math.nan if self._rng.random() < 0.5 else math.inf
        elif fault == "out_of_range":
            reading[measure.name] = measure.hi * 10 + 1 if measure.hi > 0 else measure.hi + 1000
        elif fault == "missing_timestamp":
            del reading["ts"]
        elif fault == "unknown_device":
            reading["device"] = ghost_device_id(device)
            return _dumps_spoiled(reading), str(reading["device"])
        elif fault == "device_mismatch":
            reading["device"] = f"{device}-other"
        else:
            raise AssertionError(f"no spoiler for {fault}")
        return _dumps_spoiled(reading), None

    def _spoil_whole(self, fault: str, body: bytes) -> bytes:
        if fault == "oversized":
            return body[:-1] + b',{"padding":"' + b"x" * (self.policy.max_payload_bytes + 1) + b'"}]'
        return body[: max(1, len(body) * 2 // 3)]

    def _close_incidents(self, slice_start_ms: int) -> None:
        for incident in self.incidents:
            if not incident.labelled and slice_start_ms > incident.end_ms:
                incident.write_labels(self.registry, self.labels)


_SENT = operator.itemgetter(0)


def _dumps_spoiled(content: object) -> bytes:
    """JSON that may carry NaN/Infinity literals, which orjson would silently turn into null."""
    return json.dumps(content, separators=(",", ":"), ensure_ascii=False).encode()
