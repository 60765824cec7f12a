"""From generated values to MQTT messages, spoiling some on purpose, and counting what must happen.

Each slice's chunks of readings pass the fault injector (:mod:`simulators.inject`),
become payloads (:mod:`simulators.payloads`; spoiled ones by :mod:`simulators.spoil`),
are held back when they are to arrive late or twice, and go out as one message per
reading or, in gateway mode, packed many devices' readings to one JSON array per message.

The :class:`Tally` says what the pipeline must make of the output: how many
readings it must store per kind and how many rejects of each reason it must give.
"""

from __future__ import annotations

import heapq
import operator
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import orjson

from processors.reasons import Reason
from processors.registry import Registry
from processors.topics import TopicScheme
from processors.validate import ValidationPolicy
from simulators.faults import FAULTS
from simulators.incidents import PlacedIncident
from simulators.inject import (
    SPOILERS,
    VERDICT_FUTURE,
    VERDICT_OLD,
    KindInjector,
    message_rates,
    reading_rates,
    timestamp_verdicts,
)
from simulators.labels import LabelSink
from simulators.ledger import Ledger
from simulators.models import SignalModel
from simulators.payloads import KindFormatter
from simulators.schedule import SLICE_MS, Chunk
from simulators.spoil import Spoiler

Message = tuple[str, bytes]
TimedMessage = tuple[int, str, bytes]
"""(publish_ms, topic, payload): when the fleet sends it, where, and what."""

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
        self._spoiler = Spoiler(self.policy, message_rates(self.rates, batch_size), self.labels, seed)
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
            payloads[row], ghost = self._spoiler.reading(fault.name, chunk.kind, reading, target)
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
        """Readings packed per gateway: each device's readings go through the gateway the registry
        puts it behind; devices behind none are packed together, named after the first of them."""
        devices = self.registry.tables[name].devices
        ids = self._formatters[name].ids
        by_gateway: dict[str | None, list[_Item]] = {}
        for item in group:
            by_gateway.setdefault(devices[item.device].gateway, []).append(item)
        for gateway, items in by_gateway.items():
            for start in range(0, len(items), self.batch_size):
                batch = items[start : start + self.batch_size]
                name_of = gateway or f"gw-{name}-{ids[batch[0].device].decode().rsplit('-', 1)[-1]}"
                self._batch(name, name_of, batch, gateway is not None, out)

    def _batch(self, name: str, gateway: str, batch: list[_Item], own: bool, out: list[TimedMessage]) -> None:
        """One gateway message; ``own``: its devices are behind it (else ingest refuses them)."""
        tally = self.tally
        ids = self._formatters[name].ids
        topic = self.topics.batch(name, gateway)
        publish_ms = max(item.publish_ms for item in batch)
        body = b"[" + b",".join(item.payload for item in batch) + b"]"
        tally.messages += 1
        tally.readings[name] += len(batch)
        whole = self._spoiler.draw_whole()
        if whole is not None and not any(item.marked for item in batch):
            readings = [(ids[item.device].decode(), item.ts_ms) for item in batch]
            out.append((publish_ms, topic, self._spoiler.batch(whole, body, name, gateway, readings)))
            tally.expected_rejects[str(whole.reason)] += 1
            self.ledger.message(name, publish_ms, len(batch), 0, [whole.reason] if whole.reason else [])
            return
        out.append((publish_ms, topic, body))
        foreign = not own and self.policy.gateway_check
        refused: list[Reason] = []
        for item in batch:
            # Ingest checks the gateway once an item is valid, before it looks for duplicates.
            reason = (
                Reason.GATEWAY_MISMATCH
                if foreign and item.reason in (None, Reason.DUPLICATE)
                else item.reason
            )
            if reason is None:
                tally.valid_readings[name] += 1
            else:
                tally.expected_rejects[str(reason)] += 1
                refused.append(reason)
        self.ledger.message(name, publish_ms, len(batch), len(batch) - len(refused), refused)

    def _close_incidents(self, slice_start_ms: int) -> None:
        for incident in self.incidents:
            if not incident.labelled and slice_start_ms > incident.end_ms:
                incident.write_labels(self.registry, self.labels)


_SENT = operator.itemgetter(0)
