"""Detection inside the pipeline cycle: events with the readings, learning only once stored, restarts."""

from __future__ import annotations

import contextlib
from pathlib import Path

import numpy as np
import orjson

from ingest.pipeline import Pipeline, load_state, save_state
from ingest.sinks.base import Sink, SinkError, SinkHealth, WriteReport
from ingest.stats import PipelineStats
from processors.batch import WriteBatch
from processors.reasons import Reason
from processors.registry import Device, Registry
from processors.timestamps import format_rfc3339
from processors.validate import RawMessage, Validator

START = 1_795_132_800_000
MINUTE = 60_000


class MemorySink(Sink):
    """Keeps every batch; fails the writes it is told to."""

    def __init__(self) -> None:
        self.batches: list[WriteBatch] = []
        self.fail_next = 0

    def write(self, batch: WriteBatch) -> WriteReport:
        if self.fail_next:
            self.fail_next -= 1
            raise SinkError("store down", retryable=True)
        self.batches.append(batch)
        return WriteReport(written=len(batch))

    def close(self) -> None:
        pass

    def health(self) -> SinkHealth:
        return SinkHealth(True, "memory")

    def describe(self) -> str:
        return "memory"


def registry() -> Registry:
    return Registry(Device(f"air-{i}", "air", "Ba Đình", 21.03, 105.85) for i in range(12))


class Fleet:
    """Twelve air monitors reporting once a minute; device 3 spikes at minute 300."""

    def __init__(self) -> None:
        self.rng = np.random.default_rng(11)

    def cycle(self, minute: int, skip: tuple[int, ...] = (), bad: tuple[int, ...] = ()) -> list[RawMessage]:
        ts = START + minute * MINUTE
        out = []
        for i in range(12):
            if i in skip:
                continue
            pm25 = round(float(40 + 10 * np.sin(minute / 200) + self.rng.normal(0, 1.5)), 2)
            if i == 3 and minute == 300:
                pm25 = 160.0
            body = {"ts": format_rfc3339(ts + i * 1000), "pm25": pm25, "temperature": 24.0 + i / 10}
            payload = b'{"ts": "broken' if i in bad else orjson.dumps(body)
            out.append(RawMessage(f"citypulse/v1/readings/air/air-{i}", payload, ts + i * 1000 + 300))
        return out


def pipeline(sink: Sink, clock: list[int]) -> Pipeline:
    return Pipeline(Validator(registry()), sink, PipelineStats(), clock_ms=lambda: clock[0])


def run(p: Pipeline, fleet: Fleet, clock: list[int], minutes: range, **kwargs: tuple[int, ...]) -> None:
    for minute in minutes:
        clock[0] = START + minute * MINUTE + 30_000
        p.process(fleet.cycle(minute, **kwargs))


def anomaly_events(sink: MemorySink) -> list[tuple[int, str, str, str]]:
    return [
        (i, str(e.fields["device"]), e.tags["detector"], e.tags["field"])
        for i, batch in enumerate(sink.batches)
        for e in batch.events
        if e.measurement == "anomalies"
    ]


def test_anomalies_are_stored_with_the_readings_and_counted() -> None:
    sink, clock, fleet = MemorySink(), [0], Fleet()
    p = pipeline(sink, clock)
    run(p, fleet, clock, range(310))
    spikes = [e for e in anomaly_events(sink) if e[2] == "spike"]
    assert spikes == [(301, "air-3", "spike", "pm25")], "confirmed by the reading after the spike"
    spike_cycle = sink.batches[301]
    assert spike_cycle.readings, "the event is written in the same batch as that cycle's readings"
    assert p.stats.snapshot().anomalies["air"] == len(anomaly_events(sink))
    event = next(e for e in spike_cycle.events if e.tags.get("detector") == "spike")
    assert set(event.tags) == {"kind", "detector", "category", "field", "district"}
    assert event.fields["device"] == "air-3"
    assert 0.5 <= float(event.fields["score"]) <= 1.0


def test_a_failed_write_is_scored_again_identically_and_learned_once() -> None:
    clock, fleet_a, fleet_b = [0], Fleet(), Fleet()
    steady, flaky = MemorySink(), MemorySink()
    a, b = pipeline(steady, clock), pipeline(flaky, clock)
    run(a, fleet_a, clock, range(320))
    for minute in range(320):
        clock[0] = START + minute * MINUTE + 30_000
        messages = fleet_b.cycle(minute)
        if minute % 7 == 0:
            flaky.fail_next = 1
            with contextlib.suppress(SinkError):
                b.process(messages)
        b.process(messages)  # the retry
    assert [len(x) for x in steady.batches] == [len(x) for x in flaky.batches]
    assert not [
        r
        for batch in flaky.batches
        for e in batch.events
        for r in [e]
        if e.tags.get("reason") == Reason.DUPLICATE
    ]
    assert anomaly_events(steady) == anomaly_events(flaky)
    assert a.engine is not None
    assert b.engine is not None
    for key, value in a.engine.state().items():
        assert np.array_equal(value, b.engine.state()[key], equal_nan=value.dtype.kind == "f"), key


def test_a_silent_device_is_reported_once_but_a_noisy_one_is_not(tmp_path: Path) -> None:
    sink, clock, fleet = MemorySink(), [0], Fleet()
    p = pipeline(sink, clock)
    run(p, fleet, clock, range(60))
    run(p, fleet, clock, range(60, 70), skip=(5,), bad=(7,))
    silent = [e for e in anomaly_events(sink) if e[2] == "silence"]
    assert [(device, cycle) for cycle, device, _, _ in silent] == [("air-5", 62)]


def test_state_survives_a_restart(tmp_path: Path) -> None:
    clock, fleet_a, fleet_b = [0], Fleet(), Fleet()
    a, first = pipeline(MemorySink(), clock), pipeline(MemorySink(), clock)
    run(a, fleet_a, clock, range(200))
    run(first, fleet_b, clock, range(200))
    path = tmp_path / "state" / "detectors.npz"
    assert save_state(first, path) > 0
    second_sink = MemorySink()
    second = pipeline(second_sink, clock)
    assert "restored" in load_state(second, path)
    a_sink = a.sink
    assert isinstance(a_sink, MemorySink)
    start = len(a_sink.batches)
    run(a, fleet_a, clock, range(200, 320))
    run(second, fleet_b, clock, range(200, 320))
    assert anomaly_events(second_sink) == [
        (i - start, d, t, f) for i, d, t, f in anomaly_events(a_sink) if i >= start
    ]
    # The duplicate memory came back too: a redelivery after the restart is recognised.
    clock[0] = START + 319 * MINUTE + 40_000
    again = second.process(Fleet().cycle(319)[:1])
    assert [r.reason for r in again.rejects] == [Reason.DUPLICATE]


def test_an_unreadable_state_file_is_ignored_with_a_reason(tmp_path: Path) -> None:
    path = tmp_path / "detectors.npz"
    path.write_bytes(b"not a zip file")
    p = pipeline(MemorySink(), [START])
    assert "ignoring unreadable" in load_state(p, path)
    assert "no saved detector state" in load_state(p, tmp_path / "missing.npz")
