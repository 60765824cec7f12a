"""Stopping a live fleet: nothing is sent before it is due, and the tally is what was sent."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Sequence

import pytest

from processors.anomaly import DetectionEngine
from processors.kinds import KINDS
from processors.topics import TopicScheme
from processors.validate import RawMessage, Validator
from simulators.encode import TimedMessage
from simulators.fleet import make_registry
from simulators.outputs import OutputCounts
from simulators.plan import FleetChoices, build
from simulators.runner import Simulation
from simulators.schedule import BLOCK_MS


class WallStampedOutput:
    """Keeps each message with the wall clock at the moment the runner hands it over."""

    def __init__(self) -> None:
        self.sent: list[tuple[int, TimedMessage]] = []
        self.counts = OutputCounts()

    def publish_slice(self, messages: Sequence[TimedMessage]) -> None:
        now = time.time_ns() // 1_000_000
        self.sent += [(now, m) for m in messages]
        self.counts.published += len(messages)
        self.counts.acknowledged += len(messages)

    def close(self, timeout_s: float) -> OutputCounts:
        return self.counts


def stopped_live_run(kinds: Sequence[str], devices: int, stop_after_s: float, **choices: object) -> tuple[
    Simulation, WallStampedOutput
]:  # fmt: skip
    """A fleet publishing live from now (speed 1), stopped by hand a few seconds in, mid-block."""
    registry = make_registry(devices, list(kinds), seed=3)
    start = time.time_ns() // 1_000_000
    schedule, encoder = build(
        registry,
        TopicScheme(),
        FleetChoices(kinds=tuple(kinds), seed=3, start_ms=start, **choices),  # type: ignore[arg-type]
    )
    out = WallStampedOutput()
    simulation = Simulation(schedule, encoder, out, speed=1, duration_s=float("inf"), ingest_clock="wall")
    stop = threading.Event()
    threading.Timer(stop_after_s, stop.set).start()
    result = simulation.run(stop)
    assert result.elapsed_s < BLOCK_MS / 1000, "the stop lands inside the first generated block"
    return simulation, out


def test_a_stopped_live_run_sends_nothing_before_it_is_due_and_no_clock_alarm_follows() -> None:
    # Air and traffic clocks resync hourly, so their own drift is a fraction of a second.
    simulation, out = stopped_live_run(("air", "traffic"), devices=2000, stop_after_s=3.0)
    assert len(out.sent) > 20, "the run sent what fell due before the stop"
    assert simulation.withdrawn > 100, "the stop landed mid-block, with most of the block not due yet"
    early = [(wall, due) for wall, (due, _, _) in out.sent if due > wall]
    ahead = max((d - w for w, d in early), default=0)
    assert not early, f"{len(early)} messages sent before they were due, up to {ahead} ms"
    tally = simulation.encoder.tally
    assert tally.messages == len(out.sent), "what was counted is what was sent"

    registry = simulation.schedule.registry
    validator = Validator(registry)
    engine = DetectionEngine(registry, enabled={"clock"})
    alarms = 0
    stored: Counter[str] = Counter()
    for wall, (_, topic, payload) in out.sent:
        result = validator.validate([RawMessage(topic, payload)], wall)
        validator.remember(result)
        stored.update({name: len(batch) for name, batch in result.batches.items()})
        detection = engine.update(result.batches, wall)
        alarms += len(detection.alarms())
    assert alarms == 0, "no reading arrived stamped ahead of its arrival"
    assert stored == tally.valid_readings


@pytest.mark.parametrize("batch", [0, 20])
def test_a_stopped_live_run_with_faults_counts_exactly_what_it_sent(batch: int) -> None:
    """Held-back (late, duplicate) readings of the withdrawn part are not sent later either; those held
    from before the stop still go out (early, with their own past timestamps) and are counted."""
    simulation, out = stopped_live_run(
        tuple(KINDS), devices=1500, stop_after_s=6.0, faults="all", fault_rate=0.2, batch=batch
    )
    assert simulation.withdrawn > 0
    validator = Validator(simulation.schedule.registry)
    rejects: Counter[str] = Counter()
    stored: Counter[str] = Counter()
    for wall, (_, topic, payload) in out.sent:
        result = validator.validate([RawMessage(topic, payload)], wall)
        validator.remember(result)
        rejects.update(str(r.reason) for r in result.rejects)
        stored.update({name: len(b) for name, b in result.batches.items()})
    tally = simulation.encoder.tally
    assert tally.messages == len(out.sent)
    assert stored == tally.valid_readings
    assert rejects == tally.expected_rejects
    assert sum(stored.values()) > 0, "the run stored readings before the stop"
