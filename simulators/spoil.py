"""Deliberately bad payloads, each of a kind the pipeline must reject with a known reason.

A *message* fault (:data:`~simulators.inject.SPOILERS`) spoils one reading's
content: a value of the wrong type, out of range or not finite, no timestamp, a
device that is not registered or not the topic's, JSON cut short, a payload over
the size limit. In gateway mode a fault may also spoil a whole batch (cut short or
oversized), drawn once per batch message; every reading in it is then labelled
with the fault, as the pipeline rejects them all with the message.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence

import numpy as np
import orjson

from processors.kinds import SensorKind
from processors.validate import ValidationPolicy
from simulators.faults import FAULTS, Fault
from simulators.inject import ghost_device_id
from simulators.labels import Label, LabelSink


class Spoiler:
    """Spoils readings and gateway batches; its own random stream decides what chance must."""

    def __init__(
        self, policy: ValidationPolicy, per_message: Mapping[str, float], labels: LabelSink, seed: int
    ) -> None:
        self.policy = policy
        self.labels = labels
        self._whole = [FAULTS[n] for n in FAULTS if per_message.get(n, 0.0) > 0.0]
        self._whole_cumulative = (
            np.cumsum([per_message[f.name] for f in self._whole]) if self._whole else None
        )
        self._rng = np.random.default_rng(np.random.SeedSequence([seed, 0xE7C0DE]))

    def reading(
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

    def draw_whole(self) -> Fault | None:
        """A fault that spoils a whole gateway message, drawn once per message."""
        if self._whole_cumulative is None:
            return None
        u = float(self._rng.random())
        if u >= float(self._whole_cumulative[-1]):
            return None
        return self._whole[int(np.searchsorted(self._whole_cumulative, u, side="right"))]

    def batch(
        self, fault: Fault, body: bytes, kind: str, gateway: str, readings: Sequence[tuple[str, int]]
    ) -> bytes:
        """A gateway batch's ``body`` spoiled whole by ``fault``; each of its (device, timestamp)
        ``readings`` is labelled with the fault."""
        for device, ts_ms in readings:
            self.labels.add(
                Label(
                    fault=fault.name,
                    scope=str(fault.scope),
                    device=device,
                    kind=kind,
                    field=None,
                    start_ms=ts_ms,
                    end_ms=ts_ms,
                    expected_reason=str(fault.reason),
                    detail={"gateway": gateway, "items": len(readings)},
                )
            )
        if fault.name == "oversized":
            return body[:-1] + b',{"padding":"' + b"x" * (self.policy.max_payload_bytes + 1) + b'"}]'
        return body[: max(1, len(body) * 2 // 3)]


def _dumps_spoiled(content: object) -> bytes:
    """JSON that may carry NaN/Infinity literals, which orjson would silently turn into null."""
    return json.dumps(content, separators=(",", ":"), ensure_ascii=False).encode()
