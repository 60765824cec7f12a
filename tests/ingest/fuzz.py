"""Hostile input for the pipeline: cycles that mix good readings with bad messages.

Every generated message knows what it is: good (a reading, a backlog or a gateway
batch holding some), which the pipeline must store exactly once, or bad, which
must become at least one dead letter with a reason and store nothing. Bad
messages are built to be bad for certain (a value past the sensor's range, a
device the registry does not hold, a broken byte stream...), so the counts can
be exact.

Hypothesis chooses each message's shape and a seed; the seed draws the contents.
That keeps a cycle to a few dozen Hypothesis choices, so tens of thousands of
messages are generated in seconds, while a failure still shrinks to the fewest
messages of the simplest shapes and replays exactly.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

import orjson
from hypothesis import strategies as st

from processors.kinds import KINDS
from processors.registry import Device, Registry
from processors.timestamps import format_rfc3339
from processors.validate import RawMessage

PREFIX = "citypulse/v1"
NOW_MS = 1_795_132_800_000
SHAPES = ("good", "backlog", "gateway", "spoiled", "garbage", "topic")
ODD_PAYLOADS = (
    b"", b"null", b"true", b"42", b'"text"', b"{", b"[", b"{}", b"NaN", b'{"ts": NaN}', b"\xff\xfe",
    b"[]", b" [ ] ", b"[[]]", b"[1, 2]", b'{"ts": 1e999}', b'{"ts": 1795132800000}', b"\x00",
)  # fmt: skip


def _takes_booleans() -> frozenset[tuple[str, str]]:
    """Measures a kind reads from booleans on purpose (a lamp's on/off state)."""
    found = set()
    for name, kind in KINDS.items():
        for measure in kind.measures:
            try:
                kind.model.model_validate({"ts": NOW_MS, measure.name: True})
            except ValueError:
                continue
            found.add((name, measure.name))
    return frozenset(found)


TAKES_BOOLEANS = _takes_booleans()


@dataclass
class Message:
    raw: RawMessage
    good: list[tuple[str, str, int]] = field(default_factory=list)
    """(kind, device, ts) of each reading the pipeline must store."""
    bad: int = 0
    """Dead letters this message must produce at least."""


@dataclass
class Stamps:
    """Timestamps no earlier good reading of the cycle used, so no good reading is a duplicate."""

    next_ms: int = NOW_MS - 3_600_000

    def take(self) -> int:
        self.next_ms += 7
        return self.next_ms


def fleet() -> Registry:
    """Four devices of every kind; the air and water ones sit behind gateways gw-0 and gw-1."""
    devices = []
    for kind in KINDS:
        for n in range(4):
            gateway = f"gw-{n % 2}" if kind in ("air", "water") else None
            devices.append(Device(f"{kind}-{n}", kind, "Ba Đình", 21.03, 105.85, gateway=gateway))
    return Registry(devices)


class Builder:
    """Draws one cycle's message contents from a seeded generator."""

    def __init__(self, registry: Registry, seed: int, now_ms: int = NOW_MS) -> None:
        self.registry = registry
        self.devices = list(registry)
        self.rng = random.Random(seed)
        self.now_ms = now_ms
        self.stamps = Stamps(now_ms - 3_600_000)

    def build(self, shape: str) -> Message:
        device = self.rng.choice(self.devices)
        topic = f"{PREFIX}/readings/{device.kind}/{device.device_id}"
        if shape == "good":
            body, ts = self.reading(device)
            return Message(RawMessage(topic, orjson.dumps(body)), good=[(device.kind, device.device_id, ts)])
        if shape == "backlog":
            readings = [self.reading(device) for _ in range(self.rng.randint(1, 6))]
            return Message(
                RawMessage(topic, orjson.dumps([b for b, _ in readings])),
                good=[(device.kind, device.device_id, ts) for _, ts in readings],
            )
        if shape == "gateway":
            return self.gateway_batch()
        if shape == "spoiled":
            body, _ = self.reading(device)
            return Message(RawMessage(topic, orjson.dumps(self.spoil(body, device))), bad=1)
        if shape == "garbage":
            return Message(RawMessage(topic, self.garbage()), bad=1)
        body, _ = self.reading(device)
        return Message(RawMessage(self.wrong_topic(), orjson.dumps(body)), bad=1)

    def reading(self, device: Device) -> tuple[dict[str, object], int]:
        """A reading the registry and the kind accept: in range, in the time window, never seen."""
        rng = self.rng
        kind = KINDS[device.kind]
        ts = self.stamps.take()
        body: dict[str, object] = {"ts": format_rfc3339(ts) if rng.random() < 0.5 else ts}
        if rng.random() < 0.5:
            body["device"] = device.device_id
        for measure in rng.sample(kind.measures, rng.randint(1, len(kind.measures))):
            value = rng.choice([measure.lo, measure.hi, rng.uniform(measure.lo, measure.hi)])
            body[measure.name] = int(value) if rng.random() < 0.3 and measure.lo <= int(value) else value
        return body, ts

    def spoil(self, body: dict[str, object], device: Device) -> dict[str, object]:
        """A copy of a good reading made certainly invalid in one way."""
        rng = self.rng
        measure = rng.choice(KINDS[device.kind].measures)
        how = rng.choice(
            ["out_of_range", "string", "bool", "nan", "no_ts", "future", "old", "bad_ts", "device", "only_ts"]
        )
        spoiled = dict(body)
        if how == "out_of_range":
            spoiled[measure.name] = (
                measure.hi + abs(measure.hi) + 1 if rng.random() < 0.5 else measure.lo - 1e6
            )
        elif how == "string":
            spoiled[measure.name] = str(measure.lo)
        elif how == "bool" and (device.kind, measure.name) not in TAKES_BOOLEANS:
            spoiled[measure.name] = rng.random() < 0.5
        elif how == "bool":
            spoiled[measure.name] = "maybe"
        elif how == "nan":  # JSON has no NaN: a device that tries sends a string, a list or an object
            spoiled[measure.name] = rng.choice(["NaN", "Infinity", [measure.lo], {"value": measure.lo}])
        elif how == "no_ts":
            spoiled.pop("ts")
        elif how == "future":
            spoiled["ts"] = self.now_ms + 86_400_000
        elif how == "old":
            spoiled["ts"] = self.now_ms - 30 * 86_400_000
        elif how == "bad_ts":
            spoiled["ts"] = rng.choice(
                ["yesterday", "2026-13-45T99:00:00Z", [], {"t": 1}, None, True, -1.5e300]
            )
        elif how == "device":
            spoiled["device"] = rng.choice(["air-99", "x" * 65, "bad id", "", 7, ["air-0"]])
        else:
            spoiled = {"ts": spoiled["ts"]}
        return spoiled

    def garbage(self) -> bytes:
        """Bytes no device should send: noise, broken or deep JSON, JSON of the wrong shape."""
        rng = self.rng
        choice = rng.randint(0, 6)
        if choice == 0:
            return rng.randbytes(rng.randint(0, 300))
        if choice == 1:
            return "".join(chr(rng.choice([rng.randint(0, 0x7F), rng.randint(0x80, 0xD7FF)])) for _ in range(
                rng.randint(1, 120))).encode()  # fmt: skip
        if choice == 2:
            return rng.choice(ODD_PAYLOADS)
        if choice == 3:
            depth = rng.randint(50, 5000)
            return b"[" * depth + b"]" * depth
        if choice == 4:
            depth = rng.randint(50, 2000)
            return b'{"a":' * depth + b"1" + b"}" * depth
        if choice == 5:
            return b'{"ts": 1795132800000, "pm25": "' + b"x" * rng.randint(100, 20_000) + b'"}'
        return orjson.dumps({f"f{i}": i for i in range(rng.randint(1, 3000))})

    def wrong_topic(self) -> str:
        """A topic no device publishes to: outside the scheme, an unknown kind, an unregistered device."""
        rng = self.rng
        choice = rng.randint(0, 5)
        if choice == 0:
            return "".join(chr(rng.randint(0, 0x2FF)) for _ in range(rng.randint(0, 80)))
        if choice == 1:
            return f"{PREFIX}/readings/{rng.choice(['noise', 'AIR', '+', '#', ''])}/air-0"
        if choice == 2:
            return (
                f"{PREFIX}/readings/air/{rng.choice(['air-99', 'bad id', 'air-0/extra', '', 'air-0' * 20])}"
            )
        if choice == 3:
            return PREFIX + "/readings" + "/x" * rng.randint(3, 300)
        if choice == 4:
            return f"{PREFIX}/readings/water/air-0"  # a registered device under another kind
        return f"{PREFIX}/{rng.choice(['reading', 'batch', 'deadletter/x', 'status'])}/air/air-0"

    def gateway_batch(self) -> Message:
        """A gateway's batch of one kind: its own devices' items, some spoiled, some of another gateway."""
        rng = self.rng
        kind, gateway = rng.choice(["air", "water"]), rng.choice(["gw-0", "gw-1"])
        behind = [d for d in self.registry.tables[kind].devices if d.gateway == gateway]
        items: list[dict[str, object]] = []
        out = Message(RawMessage(f"{PREFIX}/batches/{kind}/{gateway}", b""))
        others = [d for d in self.registry.tables[kind].devices if d.gateway != gateway]
        for _ in range(rng.randint(1, 8)):
            device = rng.choice(behind)
            body, ts = self.reading(device)
            body["device"] = device.device_id
            if rng.random() < 0.1:  # a valid reading of a device behind another gateway
                stranger = rng.choice(others)
                body, _ = self.reading(stranger)
                items.append({**body, "device": stranger.device_id})
                out.bad += 1
            elif rng.random() < 0.25:
                items.append(self.spoil(body, device))
                out.bad += 1
            else:
                items.append(body)
                out.good.append((kind, device.device_id, ts))
        out.raw = RawMessage(out.raw.topic, orjson.dumps(items))
        return out


@st.composite
def cycle(draw: st.DrawFn, registry: Registry, most: int) -> list[Message]:
    """One pipeline cycle's messages (each cycle meets a fresh pipeline)."""
    count = draw(st.integers(1, most))
    shapes = draw(st.lists(st.sampled_from(SHAPES), min_size=count, max_size=count))
    builder = Builder(registry, draw(st.integers(0, 2**32 - 1)))
    return [builder.build(shape) for shape in shapes]
