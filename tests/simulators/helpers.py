"""Running fleets into memory or files, for tests that need their messages without a broker."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson

from processors.kinds import KINDS
from processors.registry import Registry
from processors.timestamps import parse_timestamp
from processors.topics import TopicScheme
from processors.validate import RawMessage, ValidationPolicy, Validator
from simulators.encode import Tally
from simulators.outputs import FileOutput, OutputCounts, read_messages
from simulators.plan import FleetChoices, build
from simulators.runner import IngestClock, Simulation

Message = tuple[str, bytes]
TimedMessage = tuple[int, str, bytes]

START = 1_795_400_000_000
"""2026-11-23T03:13:20Z, a Monday: 10:13 in Hanoi, a winter weekday."""
HOUR_MS = 3_600_000
DAY_MS = 24 * HOUR_MS


class MemoryOutput:
    """Collects messages one by one, as a plain (not slice-aware) output does."""

    def __init__(self) -> None:
        self.messages: list[Message] = []
        self.counts = OutputCounts()

    def publish(self, topic: str, payload: bytes) -> None:
        self.messages.append((topic, payload))
        self.counts.published += 1
        self.counts.acknowledged += 1

    def close(self, timeout_s: float) -> OutputCounts:
        return self.counts


def run_fleet(
    registry: Registry,
    span_ms: int = HOUR_MS,
    *,
    start_ms: int = START,
    seed: int = 11,
    kinds: Sequence[str] | None = None,
    ingest_clock: IngestClock = "wall",
    **choices: object,
) -> tuple[list[Message], Tally]:
    """Messages (in send order) and tally of a fleet run as fast as possible.

    The pipeline's clock is taken to be ``start + 2 x span`` (tests validate with that clock).
    """
    schedule, encoder = build(
        registry,
        TopicScheme(),
        FleetChoices(
            kinds=tuple(kinds or KINDS),
            seed=seed,
            start_ms=start_ms,
            end_ms=start_ms + span_ms,
            **choices,  # type: ignore[arg-type]
        ),
    )
    out = MemoryOutput()
    Simulation(
        schedule,
        encoder,
        out,
        speed=0,
        end_ms=start_ms + span_ms,
        wall_clock_ms=lambda: start_ms + 2 * span_ms,
        ingest_clock=ingest_clock,
    ).run()
    return out.messages, encoder.tally


def run_to_file(
    registry: Registry,
    path: Path,
    span_ms: int = HOUR_MS,
    *,
    start_ms: int = START,
    seed: int = 11,
    kinds: Sequence[str] | None = None,
    speed: float = 0,
    **choices: object,
) -> tuple[list[TimedMessage], Tally]:
    """A fleet run into a message file (publish-time clock), read back."""
    schedule, encoder = build(
        registry,
        TopicScheme(),
        FleetChoices(
            kinds=tuple(kinds or KINDS),
            seed=seed,
            start_ms=start_ms,
            end_ms=start_ms + span_ms,
            **choices,  # type: ignore[arg-type]
        ),
    )
    Simulation(
        schedule,
        encoder,
        FileOutput(path),
        speed=speed,
        end_ms=start_ms + span_ms,
        wall_clock_ms=lambda: start_ms + 10 * span_ms,
        ingest_clock="publish",
    ).run()
    return list(read_messages(path)), encoder.tally


class TimedMemoryOutput:
    """Collects each slice's messages with the time the fleet sends them."""

    def __init__(self) -> None:
        self.messages: list[TimedMessage] = []
        self.counts = OutputCounts()

    def publish_slice(self, messages: Sequence[TimedMessage]) -> None:
        self.messages.extend(messages)
        self.counts.published += len(messages)
        self.counts.acknowledged += len(messages)

    def close(self, timeout_s: float) -> OutputCounts:
        return self.counts


def run_timed(
    registry: Registry, span_ms: int = HOUR_MS, *, start_ms: int = START, seed: int = 11, **choices: object
) -> tuple[list[TimedMessage], Tally]:
    """Like :func:`run_fleet`, keeping send times, with the pipeline's clock at each message's send time."""
    schedule, encoder = build(
        registry,
        TopicScheme(),
        FleetChoices(kinds=tuple(KINDS), seed=seed, start_ms=start_ms, end_ms=start_ms + span_ms, **choices),  # type: ignore[arg-type]
    )
    out = TimedMemoryOutput()
    Simulation(
        schedule, encoder, out, speed=0, end_ms=start_ms + span_ms,
        wall_clock_ms=lambda: start_ms + 10 * span_ms, ingest_clock="publish",
    ).run()  # fmt: skip
    return out.messages, encoder.tally


def validate_as_sent(
    registry: Registry, messages: Sequence[TimedMessage], policy: ValidationPolicy | None = None
) -> tuple[Counter[str], Counter[str]]:
    """Rejects by reason and stored readings by kind, each message judged when it is sent."""
    validator = Validator(registry, policy)
    rejects: Counter[str] = Counter()
    stored: Counter[str] = Counter()
    for sent, topic, payload in messages:
        result = validator.validate([RawMessage(topic, payload)], sent)
        validator.remember(result)
        rejects.update(str(r.reason) for r in result.rejects)
        stored.update({name: len(batch) for name, batch in result.batches.items()})
    return rejects, stored


def device_of(topic: str) -> str:
    return topic.rsplit("/", 1)[-1]


def reading_of(payload: bytes) -> dict[str, object] | None:
    """The JSON object of a single-reading payload, or None when it is not one."""
    try:
        value = orjson.loads(payload)
    except orjson.JSONDecodeError:
        return None
    return value if isinstance(value, dict) else None


def ts_of(reading: dict[str, object]) -> int:
    return parse_timestamp(reading["ts"])


def read_labels(path: Path) -> list[dict[str, Any]]:
    """All labels of a labels file, in file order."""
    with path.open("rb") as handle:
        return [orjson.loads(line) for line in handle if line.strip()]
