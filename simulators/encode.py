"""From generated values to MQTT messages, spoiling some on purpose when asked.

Devices in the field disagree on formats, so the simulated fleet does too: most
send RFC 3339 timestamps, some epoch milliseconds, some epoch seconds. Gateway
mode packs many devices' readings into one JSON array per message.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import orjson
from numpy.typing import NDArray

from processors.kinds import SensorKind
from processors.registry import Registry
from processors.topics import TopicScheme
from simulators.faults import MESSAGE_FAULTS, FaultScope, MessageFault

Message = tuple[str, bytes]


class TimeFormat:
    """Which timestamp spelling a device uses, fixed per device."""

    RFC3339 = 0
    EPOCH_MS = 1
    EPOCH_S = 2

    @staticmethod
    def of(device: NDArray[np.intp]) -> NDArray[np.int8]:
        slot = device % 10
        return np.where(slot < 7, 0, np.where(slot < 9, 1, 2)).astype(np.int8)


@dataclass(frozen=True, eq=False)
class Chunk:
    """Generated readings of one kind, before encoding."""

    kind: SensorKind
    device: NDArray[np.intp]
    ts_ms: NDArray[np.int64]
    values: NDArray[np.float64]


@dataclass
class Tally:
    """What was produced, and what the pipeline must therefore make of it."""

    messages: int = 0
    readings: Counter[str] = field(default_factory=Counter)
    valid_readings: Counter[str] = field(default_factory=Counter)
    faults: Counter[str] = field(default_factory=Counter)
    expected_rejects: Counter[str] = field(default_factory=Counter)

    def as_dict(self) -> dict[str, object]:
        return {
            "messages": self.messages,
            "readings": sum(self.readings.values()),
            "valid_readings": sum(self.valid_readings.values()),
            "readings_by_kind": dict(sorted(self.readings.items())),
            "valid_by_kind": dict(sorted(self.valid_readings.items())),
            "faults": dict(sorted(self.faults.items())),
            "expected_rejects": dict(sorted(self.expected_rejects.items())),
        }


class Encoder:
    """Turns chunks into (topic, payload) messages and keeps the tally."""

    def __init__(
        self,
        registry: Registry,
        topics: TopicScheme,
        *,
        faults: Sequence[str] = (),
        fault_rate: float = 0.0,
        batch_size: int = 0,
        max_payload_bytes: int = 256 * 1024,
        seed: int = 0,
    ) -> None:
        self.registry = registry
        self.topics = topics
        self.batch_size = batch_size
        self.max_payload_bytes = max_payload_bytes
        self.fault_rate = fault_rate if faults else 0.0
        chosen = [MESSAGE_FAULTS[n] for n in faults]
        self._message_faults = [f for f in chosen if f.scope is FaultScope.MESSAGE]
        self._reading_faults = [
            f for f in chosen if f.scope is FaultScope.READING and not (batch_size and f.single_only)
        ]
        self._single_faults = [f for f in chosen if batch_size == 0]
        self._rng = np.random.default_rng(np.random.SeedSequence([seed, 0xFA017]))
        self.tally = Tally()

    def encode(self, chunk: Chunk) -> list[Message]:
        n = len(chunk.device)
        if n == 0:
            return []
        kind = chunk.kind
        table = self.registry.tables[kind.name]
        ids = [table.devices[i].device_id for i in chunk.device.tolist()]
        stamps = _timestamps(chunk.device, chunk.ts_ms)
        decimals = [0 if m.step else 2 for m in kind.measures]
        values = np.round(chunk.values, 2).tolist()
        names = kind.measure_names
        readings: list[dict[str, object]] = []
        for device, stamp, row in zip(ids, stamps, values, strict=True):
            reading: dict[str, object] = {"device": device, "ts": stamp}
            for name, value, places in zip(names, row, decimals, strict=True):
                if not math.isnan(value):
                    reading[name] = int(value) if places == 0 else value
            readings.append(reading)
        self.tally.readings[kind.name] += n
        if self.batch_size:
            return self._gateway_messages(kind, readings)
        return [self._single_message(kind, r) for r in readings]

    # --- one reading per message -------------------------------------------------------
    def _single_message(self, kind: SensorKind, reading: dict[str, object]) -> Message:
        device = str(reading["device"])
        fault = self._draw(self._single_faults)
        self.tally.messages += 1
        if fault is None:
            self.tally.valid_readings[kind.name] += 1
            return self.topics.reading(kind.name, device), orjson.dumps(reading)
        self._count(fault)
        if fault.scope is FaultScope.MESSAGE:
            return self.topics.reading(kind.name, device), self._spoil_message(fault, reading)
        spoiled = self._spoil_reading(fault, kind, reading)
        topic_device = str(spoiled["device"]) if fault.name == "unknown_device" else device
        return self.topics.reading(kind.name, topic_device), _dumps_spoiled(spoiled)

    # --- gateway batches -----------------------------------------------------------------
    def _gateway_messages(self, kind: SensorKind, readings: list[dict[str, object]]) -> list[Message]:
        out: list[Message] = []
        for start in range(0, len(readings), self.batch_size):
            group = readings[start : start + self.batch_size]
            gateway = f"gw-{kind.name}-{str(group[0]['device']).rsplit('-', 1)[-1]}"
            topic = self.topics.batch(kind.name, gateway)
            self.tally.messages += 1
            whole = self._draw(self._message_faults)
            if whole is not None:
                self._count(whole)
                out.append((topic, self._spoil_message(whole, group)))
                continue
            items: list[dict[str, object]] = []
            spoiled_any = False
            for reading in group:
                fault = self._draw(self._reading_faults)
                if fault is None:
                    self.tally.valid_readings[kind.name] += 1
                    items.append(reading)
                else:
                    self._count(fault)
                    items.append(self._spoil_reading(fault, kind, reading))
                    spoiled_any = True
            out.append((topic, _dumps_spoiled(items) if spoiled_any else orjson.dumps(items)))
        return out

    # --- faults ----------------------------------------------------------------------------
    def _draw(self, candidates: list[MessageFault]) -> MessageFault | None:
        if not candidates or self.fault_rate <= 0.0:
            return None
        if self._rng.random() >= self.fault_rate:
            return None
        return candidates[int(self._rng.integers(len(candidates)))]

    def _count(self, fault: MessageFault) -> None:
        self.tally.faults[fault.name] += 1
        self.tally.expected_rejects[str(fault.reason)] += 1

    def _spoil_message(self, fault: MessageFault, content: object) -> bytes:
        if fault.name == "oversized":
            padding = "x" * (self.max_payload_bytes + 1)
            if isinstance(content, dict):
                return orjson.dumps({**content, "padding": padding})
            return orjson.dumps([*content, {"padding": padding}])  # type: ignore[misc]
        body = orjson.dumps(content)
        return body[: max(1, len(body) * 2 // 3)]

    def _spoil_reading(
        self, fault: MessageFault, kind: SensorKind, reading: dict[str, object]
    ) -> dict[str, object]:
        spoiled = dict(reading)
        present = [m for m in kind.measures if m.name in spoiled]
        target = present[int(self._rng.integers(len(present)))]
        if fault.name == "wrong_type":
            spoiled[target.name] = str(spoiled[target.name])
        elif fault.name == "not_finite":
            spoiled[target.name] = math.nan if self._rng.random() < 0.5 else math.inf
        elif fault.name == "out_of_range":
            spoiled[target.name] = target.hi * 10 + 1 if target.hi > 0 else target.hi + 1000
        elif fault.name == "missing_timestamp":
            del spoiled["ts"]
        elif fault.name == "unknown_device":
            spoiled["device"] = f"ghost-{spoiled['device']}"
        elif fault.name == "device_mismatch":
            spoiled["device"] = f"{spoiled['device']}-other"
        else:
            raise AssertionError(f"no reading-level spoiler for {fault.name}")
        return spoiled


def _dumps_spoiled(content: object) -> bytes:
    """JSON that may carry NaN/Infinity literals, which orjson would silently turn into null."""
    return json.dumps(content, separators=(",", ":"), ensure_ascii=False).encode()


def _timestamps(device: NDArray[np.intp], ts_ms: NDArray[np.int64]) -> list[object]:
    formats = TimeFormat.of(device)
    rfc = np.datetime_as_string(ts_ms.astype("datetime64[ms]"), unit="ms")
    stamps: list[object] = []
    for fmt, text, ms in zip(formats.tolist(), rfc.tolist(), ts_ms.tolist(), strict=True):
        if fmt == TimeFormat.RFC3339:
            stamps.append(text + "Z")
        elif fmt == TimeFormat.EPOCH_MS:
            stamps.append(ms)
        else:
            stamps.append(ms // 1000)
    return stamps
