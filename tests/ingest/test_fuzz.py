"""Fuzzing the pipeline with Hypothesis: hostile topics and payloads mixed with good readings.

Each example is one cycle through a real ``Validator`` and ``Pipeline`` writing to
a real SQLite store. Whatever arrives, the cycle returns; every good reading is
stored exactly once (checked in the store, reading by reading); every bad message
becomes at least one dead letter with a reason, and the store holds exactly as
many dead letters as the cycle rejected. CI runs at least 10,000 messages;
``pytest --long`` runs twenty times as many.
"""

from __future__ import annotations

import sqlite3
import tempfile
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings

from ingest.pipeline import Pipeline
from ingest.sinks.base import WriteReport
from ingest.sinks.sqlite import SqliteSink
from ingest.stats import PipelineStats
from processors.anomaly import DetectionEngine
from processors.batch import WriteBatch
from processors.kinds import KINDS
from processors.reasons import Reason
from processors.validate import ValidationPolicy, Validator
from tests.ingest.fuzz import NOW_MS, Message, cycle, fleet

REGISTRY = fleet()
POLICY = ValidationPolicy(max_payload_bytes=8 * 1024)


def stored(path: Path) -> tuple[Counter[tuple[str, str, int]], int]:
    """Every stored reading as (kind, device, ts), and the number of stored dead letters."""
    db = sqlite3.connect(path)
    try:
        readings: Counter[tuple[str, str, int]] = Counter()
        for kind in KINDS:
            rows = db.execute(f'SELECT device, ts FROM "{kind}"').fetchall()
            readings.update((kind, device, int(ts)) for device, ts in rows)
        letters = db.execute("SELECT count(*) FROM events WHERE measurement = 'deadletters'").fetchone()[0]
        return readings, int(letters)
    finally:
        db.close()


class TagWatch(SqliteSink):
    """The real SQLite sink, noting every tag value it is given: none may come from a payload."""

    def write(self, batch: WriteBatch) -> WriteReport:
        for event in batch.events:
            TAGS.update((event.measurement, key, value) for key, value in event.tags.items())
        for readings in batch.readings:
            TAGS.update(("reading", "device", d) for d in readings.device_ids())
            TAGS.update(("reading", "district", d) for d in readings.districts())
        return super().write(batch)


TAGS: set[tuple[str, str, str]] = set()
BOUNDED = {
    "device": {d.device_id for d in REGISTRY},
    "district": {d.district for d in REGISTRY},
    "kind": {*KINDS, "unknown"},
    "reason": {str(r) for r in Reason},
}


def names(shown: str, topic: str) -> bool:
    """Whether a dead letter's topic is ``topic`` (a topic past the length limit is shown cut, with …)."""
    return shown == topic or (shown.endswith("…") and topic.startswith(shown[:-1]))


def run_cycle(messages: list[Message], workdir: Path) -> None:
    path = workdir / "store.sqlite"
    sink = TagWatch(path)
    pipeline = Pipeline(
        Validator(REGISTRY, POLICY),
        sink,
        PipelineStats(),
        clock_ms=lambda: NOW_MS,
        engine=DetectionEngine(REGISTRY, enabled=()),
    )
    try:
        result = pipeline.process([m.raw for m in messages])
    finally:
        sink.close()
    good = Counter(reading for m in messages for reading in m.good)
    readings, letters = stored(path)
    assert readings == good, "the store differs from the good readings sent"
    assert letters == len(result.rejects)
    assert all(isinstance(r.reason, Reason) and r.detail for r in result.rejects)
    assert len(result.rejects) >= sum(m.bad for m in messages)
    for m in messages:
        if m.bad and not m.good:
            assert any(names(r.topic, m.raw.topic) for r in result.rejects), f"{m.raw!r} left no dead letter"


def fuzz(examples: int, most: int, counted: list[int]) -> None:
    @settings(
        max_examples=examples,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
        derandomize=False,
    )
    @given(cycle(REGISTRY, most))
    def one_cycle(messages: list[Message]) -> None:
        counted[0] += len(messages)
        with tempfile.TemporaryDirectory() as workdir:
            run_cycle(messages, Path(workdir))

    one_cycle()


def test_hostile_input_never_breaks_the_pipeline_and_loses_no_good_reading(
    request: pytest.FixtureRequest,
) -> None:
    long = bool(request.config.getoption("--long"))
    counted = [0]
    TAGS.clear()
    fuzz(examples=4000 if long else 200, most=120, counted=counted)
    assert counted[0] >= (200_000 if long else 10_000), f"only {counted[0]} messages were generated"
    seen = {key for _, key, _ in TAGS}
    assert seen <= set(BOUNDED), f"unexpected tags {seen - set(BOUNDED)}"
    strays = {(m, k, v) for m, k, v in TAGS if v not in BOUNDED[k]}
    assert not strays, f"tag values that no registry or code declares: {sorted(strays)[:5]}"
