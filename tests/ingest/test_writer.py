"""The writer thread: cycles stored in order, each acknowledged once stored, failures retried, stops told."""

from __future__ import annotations

import threading
import time

import numpy as np

from ingest.mqtt_source import Taken
from ingest.writer import Writer
from processors.validate import MessageColumns
from tests.ingest.test_pipeline_detection import MINUTE, START, Fleet, MemorySink, pipeline


def test_cycles_are_stored_in_order_and_acknowledged_after_their_write_even_through_failures() -> None:
    clock, fleet = [0], Fleet()
    steady, flaky = MemorySink(), MemorySink()
    synchronous, overlapped = pipeline(steady, clock), pipeline(flaky, clock)
    acknowledged: list[int] = []
    stored_when_acknowledged: list[int] = []

    def acknowledge(cycle: Taken) -> None:
        acknowledged.append(cycle.size)
        stored_when_acknowledged.append(len(flaky.batches))

    writer = Writer(overlapped, acknowledge, depth=1)
    for minute in range(320):
        clock[0] = START + minute * MINUTE + 30_000
        messages = fleet.cycle(minute)
        synchronous.process(messages)
        if minute % 50 == 7:
            flaky.fail_next = 2  # retried by the writer (0.5 s, then 1 s)
        staged = overlapped.stage(messages)
        overlapped.commit(staged)
        assert writer.put(staged, Taken(MessageColumns([], []), [], minute))
    assert writer.close(time.monotonic() + 60)
    assert acknowledged == list(range(320)), "every cycle acknowledged, in order"
    assert stored_when_acknowledged == list(range(1, 321)), "each only once its write succeeded"
    assert [len(b) for b in flaky.batches] == [len(b) for b in steady.batches], "the same writes"
    assert synchronous.engine is not None
    assert overlapped.engine is not None
    for key, value in synchronous.engine.state().items():
        assert np.array_equal(value, overlapped.engine.state()[key], equal_nan=value.dtype.kind == "f"), key
    assert overlapped.stats.snapshot().messages == synchronous.stats.snapshot().messages


def test_a_stop_gives_up_a_cycle_the_store_will_not_take_and_says_so() -> None:
    clock, fleet = [START], Fleet()
    down = MemorySink()
    down.fail_next = 10**9
    p = pipeline(down, clock)
    acknowledged: list[Taken] = []
    writer = Writer(p, acknowledged.append, depth=1)
    staged = p.stage(fleet.cycle(0))
    p.commit(staged)
    assert writer.put(staged, Taken())
    stop = threading.Event()
    second = p.stage(fleet.cycle(1))
    p.commit(second)
    assert writer.put(second, Taken(), stop), "room for one waiting cycle"
    third = p.stage(fleet.cycle(2))
    p.commit(third)
    stop.set()
    assert not writer.put(third, Taken(), stop), "a full queue and a stop request: given up"
    assert not writer.close(time.monotonic() + 1.0)
    assert acknowledged == []
    assert writer.abandoned == 3
