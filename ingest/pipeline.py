"""One pipeline cycle: validate, store durably, dead-letter, count.

The cycle is the unit of durability: the caller acknowledges a cycle's MQTT
messages only after :meth:`Pipeline.process` returns, i.e. after the sink holds
every valid reading and every dead letter of the cycle.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ingest.deadletters import deadletter_event, deadletter_message
from ingest.sinks.base import Sink
from ingest.stats import PipelineStats
from processors.batch import WriteBatch
from processors.topics import TopicScheme
from processors.validate import RawMessage, ValidationResult, Validator

log = logging.getLogger(__name__)

Publish = Callable[[str, bytes], None]


def wall_clock_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclass
class Pipeline:
    """Validator, sink and dead-letter publisher wired together, with shared counters."""

    validator: Validator
    sink: Sink
    stats: PipelineStats
    publish_deadletter: Publish | None = None
    clock_ms: Callable[[], int] = wall_clock_ms

    @property
    def topics(self) -> TopicScheme:
        return self.validator.topics

    def process(self, messages: Sequence[RawMessage]) -> ValidationResult:
        """Store a cycle's readings and dead letters; raise ``SinkError`` if the store failed.

        Nothing is counted and nothing is republished until the write succeeded,
        so a retried cycle is counted once.
        """
        now_ms = self.clock_ms()
        result = self.validator.validate(messages, now_ms)
        events = tuple(deadletter_event(r, now_ms) for r in result.rejects)
        batch = WriteBatch(readings=tuple(b for b in result.batches.values() if len(b)), events=events)
        if len(batch):
            self.sink.write(batch)
        self.stats.record_cycle(len(messages), result)
        if self.publish_deadletter is not None and result.rejects:
            for reject in result.rejects:
                self.publish_deadletter(
                    self.topics.deadletter(reject.reason), deadletter_message(reject, now_ms)
                )
            self.stats.record_deadletters_published(len(result.rejects))
        return result
