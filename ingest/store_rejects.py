"""Dead letters for readings the database refused after validation passed them.

Validation makes this rare (every measure is a float within its range), but a
database can still refuse a point: a field created with another type by some
other writer, a schema rule, a limit of a hosted service. Such a point is never
retried (it would fail forever and hold up everything behind it): it becomes a
dead letter with reason ``store_rejected`` and the server's own words, stored in
the ``deadletters`` measurement and published on ``{prefix}/deadletter/store_rejected``
like every other rejection.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

import orjson

from ingest.deadletters import MEASUREMENT
from ingest.sinks.base import RejectedPoint
from ingest.stats import STORE_REJECTED, PipelineStats, wall_clock_ms
from processors.batch import Event
from processors.timestamps import format_rfc3339
from processors.topics import TopicScheme

log = logging.getLogger(__name__)

HELP = "the database refused this point; 'detail' has its reason (often a field type set by another writer)"

Publish = Callable[[str, bytes], None]


class StoreRejects:
    """The ``RejectHandler`` the ingest service gives its durable sink."""

    def __init__(
        self,
        stats: PipelineStats,
        topics: TopicScheme,
        publish: Publish | None = None,
        payload_bytes: int = 4096,
        clock_ms: Callable[[], int] = wall_clock_ms,
    ) -> None:
        self.stats = stats
        self.topics = topics
        self.publish = publish
        self.payload_bytes = payload_bytes
        self.clock_ms = clock_ms

    def events(self, rejected: Sequence[RejectedPoint]) -> tuple[Event, ...]:
        now_ms = self.clock_ms()
        events = []
        for point in rejected:
            if point.kind is None:
                # An event (a dead letter, an alert, a metric) refused: dead-lettering it could loop.
                log.error(
                    "the database refused a %s event: %s (%s)",
                    point.measurement,
                    point.reason,
                    point.line[:300],
                )
                continue
            events.append(
                Event(
                    measurement=MEASUREMENT,
                    ts_ms=now_ms,
                    tags={"reason": STORE_REJECTED, "kind": point.kind},
                    fields={
                        "device": point.device or "",
                        "topic": "",
                        "detail": point.reason,
                        "payload": point.line[: self.payload_bytes],
                        "payload_encoding": "line-protocol",
                    },
                )
            )
        return tuple(events)

    def stored(self, rejected: Sequence[RejectedPoint]) -> None:
        self.stats.record_store_rejects(rejected)
        readings = [p for p in rejected if p.kind is not None]
        if not readings:
            return
        log.warning(
            "the database refused %d readings (first: %s); they are dead-lettered as %s",
            len(readings),
            readings[0].reason,
            STORE_REJECTED,
        )
        if self.publish is None:
            return
        now_ms = self.clock_ms()
        topic = self.topics.deadletter(STORE_REJECTED)
        for point in readings:
            self.publish(topic, _message(point, now_ms, self.payload_bytes))
        self.stats.record_deadletters_published(len(readings))


def _message(point: RejectedPoint, now_ms: int, payload_bytes: int) -> bytes:
    return orjson.dumps(
        {
            "reason": STORE_REJECTED,
            "detail": point.reason,
            "help": HELP,
            "kind": point.kind,
            "device": point.device,
            "topic": None,
            "ts": format_rfc3339(point.timestamp) if point.kind is not None else None,
            "payload": point.line[:payload_bytes],
            "payload_encoding": "line-protocol",
            "rejected_at": format_rfc3339(now_ms),
        }
    )
