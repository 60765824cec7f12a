"""Durability around any sink: retry, spool, replay in order, backpressure when full, dead letters."""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from ingest.batch_codec import UnreadableBatchError, decode_batch, encode_batch
from ingest.durable import DurableSink, RetryPolicy
from ingest.sinks.base import RejectedPoint, Sink, SinkError, SinkHealth, WriteReport
from ingest.sinks.sqlite import SqliteSink
from ingest.spool import Spool
from processors.batch import Event, ReadingBatch, WriteBatch
from processors.kinds import get_kind
from processors.registry import Registry
from tests.e2e.helpers import wait_until

NAN = float("nan")


def wait_drained(sink: DurableSink, what: str = "the spool to drain") -> None:
    wait_until(lambda: not len(sink.spool), 10, what)


def readings(registry: Registry, first_ts: int, n: int = 3) -> ReadingBatch:
    kind = get_kind("air")
    values = np.full((n, len(kind.measures)), NAN)
    values[:, 0] = np.arange(n) + first_ts / 1000
    values[::2, 2] = 7.25
    return ReadingBatch(
        kind,
        registry.tables["air"],
        np.arange(n, dtype=np.intp) % len(registry.tables["air"]),
        first_ts + np.arange(n, dtype=np.int64),
        values,
    )


def keys(batch: WriteBatch) -> list[tuple[str, int]]:
    return [
        (d, int(t)) for rb in batch.readings for d, t in zip(rb.device_ids(), rb.ts_ms.tolist(), strict=True)
    ]


class ScriptedStore(Sink):
    """A store that fails as scripted (one entry per write call), then succeeds; records what it stored."""

    def __init__(self, script: Sequence[SinkError | None] = (), down: bool = False) -> None:
        self.script = list(script)
        self.down = down
        self.stored: list[WriteBatch] = []
        self.calls: list[float] = []
        self.refuse_ts: set[int] = set()

    def write(self, batch: WriteBatch) -> WriteReport:
        self.calls.append(time.monotonic())
        failure = self.script.pop(0) if self.script else None
        if self.down:
            raise SinkError("store is down", retryable=True)
        if failure is not None:
            raise failure
        refused = []
        kept = []
        for rb in batch.readings:
            bad = np.isin(rb.ts_ms, list(self.refuse_ts))
            for row in np.flatnonzero(bad).tolist():
                refused.append(
                    RejectedPoint(
                        measurement=rb.kind.name,
                        timestamp=int(rb.ts_ms[row]),
                        reason="field type conflict",
                        line=f"air,device={rb.device_ids()[row]} ...",
                        device=rb.device_ids()[row],
                        kind=rb.kind.name,
                    )
                )
            kept.append(rb.take(~bad))
        self.stored.append(WriteBatch(readings=tuple(kept), events=batch.events))
        return WriteReport(written=len(batch) - len(refused), rejected=tuple(refused))

    def close(self) -> None:
        pass

    def health(self) -> SinkHealth:
        return SinkHealth(not self.down, "scripted")

    def describe(self) -> str:
        return "scripted"


FAST = RetryPolicy(first_s=0.01, max_s=0.05, spool_after_s=0.2)


def durable(
    tmp_path: Path, store: Sink, policy: RetryPolicy = FAST, max_bytes: int = 10_000_000
) -> DurableSink:
    return DurableSink(store, Spool(tmp_path / "spool", max_bytes), policy=policy)


def test_a_healthy_store_is_written_straight_through(tmp_path: Path, small_registry: Registry) -> None:
    store = ScriptedStore()
    with durable(tmp_path, store) as sink:
        batch = WriteBatch(readings=(readings(small_registry, 1000),))
        assert sink.write(batch).written == 3
        assert keys(store.stored[0]) == keys(batch)
        assert sink.snapshot().spooled_batches == 0
    assert not (tmp_path / "spool").exists(), "no spool directory unless one was needed"


def test_transient_failures_are_retried_honouring_retry_after(
    tmp_path: Path, small_registry: Registry
) -> None:
    store = ScriptedStore(
        [SinkError("503", retryable=True), SinkError("429", retryable=True, retry_after_s=0.3)]
    )
    policy = RetryPolicy(first_s=0.01, max_s=0.05, spool_after_s=5)
    with durable(tmp_path, store, policy) as sink:
        sink.write(WriteBatch(readings=(readings(small_registry, 1000),)))
        snap = sink.snapshot()
    assert len(store.calls) == 3
    assert len(store.stored) == 1
    assert store.calls[2] - store.calls[1] >= 0.3, "waited at least what Retry-After asked"
    assert (snap.retries, snap.failures, snap.spooled_batches) == (2, 2, 0)


def test_a_store_that_stays_down_fills_the_spool_then_gets_everything_in_order(
    tmp_path: Path, small_registry: Registry
) -> None:
    store = ScriptedStore(down=True)
    sent = [WriteBatch(readings=(readings(small_registry, 1000 * (i + 1)),)) for i in range(6)]
    with durable(tmp_path, store) as sink:
        for batch in sent:
            assert sink.write(batch).written == len(batch), "durable (spooled) when write returns"
        snap = sink.snapshot()
        assert snap.spooled_batches == 6
        assert snap.spool.records == 6
        health = sink.health()
        assert not health.ok
        assert "spool 6 batches" in health.detail
        store.down = False
        wait_drained(sink)
        snap = sink.snapshot()
    assert [keys(b) for b in store.stored] == [keys(b) for b in sent], "replayed in the order written"
    assert snap.replayed_batches == 6
    assert snap.replayed_points == 18
    assert snap.written == 18


def test_a_failure_retrying_cannot_fix_goes_to_the_spool_at_once(
    tmp_path: Path, small_registry: Registry
) -> None:
    store = ScriptedStore([SinkError("401 bad token", retryable=False)] * 5)
    with durable(tmp_path, store, RetryPolicy(first_s=0.01, max_s=0.05, spool_after_s=60)) as sink:
        started = time.monotonic()
        sink.write(WriteBatch(readings=(readings(small_registry, 1000),)))
        assert time.monotonic() - started < 30, "not retried for spool_after_s"
        assert sink.snapshot().spooled_batches == 1
        wait_drained(sink, "the spool to be replayed once the store takes it")


def test_a_full_spool_pushes_back_and_takes_again_once_drained(
    tmp_path: Path, small_registry: Registry
) -> None:
    store = ScriptedStore(down=True)
    accepted: list[int] = []

    def write_until_refused(sink: DurableSink) -> None:
        for i in range(1000):
            sink.write(WriteBatch(readings=(readings(small_registry, 1000 * (i + 1)),)))
            accepted.append(i)

    with durable(tmp_path, store, max_bytes=8 * 1024) as sink:
        with pytest.raises(SinkError, match="full") as full:
            write_until_refused(sink)
        written = len(accepted)
        assert full.value.retryable
        assert sink.snapshot().spool.full
        store.down = False
        wait_drained(sink)
        sink.write(WriteBatch(readings=(readings(small_registry, 10**7),)))
    assert len(store.stored) == written + 1, "every batch accepted before the refusal arrived, none after"


def test_the_spool_outlives_the_process_and_replays_at_the_next_start(
    tmp_path: Path, small_registry: Registry
) -> None:
    down = ScriptedStore(down=True)
    batches = [WriteBatch(readings=(readings(small_registry, 1000 * (i + 1)),)) for i in range(3)]
    with durable(tmp_path, down) as sink:
        for batch in batches:
            sink.write(batch)
    assert down.stored == []
    up = ScriptedStore()
    with durable(tmp_path, up) as sink:
        wait_drained(sink)
        sink.write(WriteBatch(readings=(readings(small_registry, 99_000),)))
    assert [keys(b) for b in up.stored[:3]] == [keys(b) for b in batches]
    assert len(up.stored) == 4


class Collected:
    def __init__(self) -> None:
        self.stored_calls: list[list[RejectedPoint]] = []

    def events(self, rejected: Sequence[RejectedPoint]) -> tuple[Event, ...]:
        return tuple(
            Event("deadletters", 1, {"reason": "store_rejected"}, {"device": p.device or ""})
            for p in rejected
        )

    def stored(self, rejected: Sequence[RejectedPoint]) -> None:
        self.stored_calls.append(list(rejected))


def test_points_the_store_refuses_become_durable_dead_letters(
    tmp_path: Path, small_registry: Registry
) -> None:
    store = ScriptedStore()
    store.refuse_ts = {1001}
    handler = Collected()
    sink = DurableSink(store, Spool(tmp_path / "spool", 10**6), policy=FAST, on_rejected=handler)
    with sink:
        report = sink.write(WriteBatch(readings=(readings(small_registry, 1000),)))
    assert [p.timestamp for p in report.rejected] == [1001]
    assert keys(store.stored[0]) == [
        (d, t) for d, t in keys(WriteBatch(readings=(readings(small_registry, 1000),))) if t != 1001
    ]
    assert [e.measurement for e in store.stored[1].events] == ["deadletters"], "dead letters stored"
    assert [[p.timestamp for p in call] for call in handler.stored_calls] == [[1001]]
    assert sink.snapshot().store_rejected == 1


def test_points_refused_during_replay_are_dead_lettered_too(tmp_path: Path, small_registry: Registry) -> None:
    store = ScriptedStore(down=True)
    store.refuse_ts = {2002}
    handler = Collected()
    with DurableSink(store, Spool(tmp_path / "spool", 10**6), policy=FAST, on_rejected=handler) as sink:
        sink.write(WriteBatch(readings=(readings(small_registry, 2000),)))
        store.down = False
        wait_drained(sink)
        wait_until(lambda: bool(handler.stored_calls), 5, "the replayed reject to be reported")
    assert [[p.timestamp for p in call] for call in handler.stored_calls] == [[2002]]
    assert any(e.measurement == "deadletters" for b in store.stored for e in b.events)


def test_batches_round_trip_through_the_spool_format(small_registry: Registry) -> None:
    batch = WriteBatch(
        readings=(readings(small_registry, 1000, n=7),),
        events=(
            Event("deadletters", 5, {"reason": "wrong_type"}, {"detail": "x", "n": 3, "ok": True, "f": 1.5}),
        ),
    )
    back = decode_batch(encode_batch(batch))
    original, copy = batch.readings[0], back.readings[0]
    assert copy.device_ids() == original.device_ids()
    assert copy.districts() == original.districts()
    assert np.array_equal(copy.ts_ms, original.ts_ms)
    assert np.array_equal(copy.values, original.values, equal_nan=True)
    assert back.events == batch.events
    with pytest.raises(UnreadableBatchError):
        decode_batch(b"CPB1\x05\x00\x00\x00{bad")


def test_any_sink_can_be_wrapped_sqlite_included(tmp_path: Path, small_registry: Registry) -> None:
    with durable(tmp_path, SqliteSink(tmp_path / "s.sqlite")) as sink:
        sink.write(WriteBatch(readings=(readings(small_registry, 1000),)))
        assert sink.inner.count("air") == 3  # type: ignore[attr-defined]


class BuggyStore(ScriptedStore):
    """A store with a bug for batches holding a given timestamp: it raises something unexpected."""

    def __init__(self, poison_ts: int) -> None:
        super().__init__()
        self.poison_ts = poison_ts

    def write(self, batch: WriteBatch) -> WriteReport:
        if any(self.poison_ts in rb.ts_ms for rb in batch.readings):
            raise RuntimeError("a bug in the store")
        return super().write(batch)


def test_a_store_bug_never_crashes_the_caller_and_never_blocks_the_batches_behind_it(
    tmp_path: Path, small_registry: Registry
) -> None:
    store = BuggyStore(poison_ts=2000)
    with durable(tmp_path, store) as sink:
        sink.write(WriteBatch(readings=(readings(small_registry, 2000),)))  # spooled, not raised
        sink.write(WriteBatch(readings=(readings(small_registry, 3000),)))  # queued behind it
        wait_drained(sink)
        snap = sink.snapshot()
    assert snap.set_aside == 1
    assert [keys(b) for b in store.stored] == [keys(WriteBatch(readings=(readings(small_registry, 3000),)))]
    aside = list((tmp_path / "spool" / "unreadable").glob("*.rec"))
    assert len(aside) == 1, "the poison batch is kept on disk for a person to look at"
    assert keys(decode_batch(aside[0].read_bytes())) == keys(
        WriteBatch(readings=(readings(small_registry, 2000),))
    )
