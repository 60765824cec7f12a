"""The pipeline's counters: what came in, what was stored, what was rejected and why.

One object, updated by the pipeline thread and read by the live view, the JSON
summaries and (later) the metrics endpoint, so every view reports the same numbers.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from dataclasses import dataclass, field

from processors.reasons import Reason
from processors.validate import ValidationResult


@dataclass(frozen=True)
class StatsSnapshot:
    """A consistent copy of the counters at one instant."""

    at: float
    messages: int
    received: dict[str, int]
    stored: dict[str, int]
    rejected: dict[str, int]
    reasons: dict[str, int]
    ignored_fields: dict[str, int]
    anomalies: dict[str, int]
    alerts: int
    deadletters_published: int
    write_failures: int
    cycles: int

    def summary(self) -> dict[str, object]:
        """Per-kind received/stored/rejected plus totals: the ``--json`` contract."""
        kinds = sorted(set(self.received) | set(self.stored) | set(self.rejected))
        return {
            "kinds": {
                k: {
                    "received": self.received.get(k, 0),
                    "stored": self.stored.get(k, 0),
                    "rejected": self.rejected.get(k, 0),
                }
                for k in kinds
            },
            "messages": self.messages,
            "received": sum(self.received.values()),
            "stored": sum(self.stored.values()),
            "rejected": sum(self.rejected.values()),
            "rejected_by_reason": dict(sorted(self.reasons.items())),
            "ignored_fields": dict(sorted(self.ignored_fields.items())),
            "anomalies": dict(sorted(self.anomalies.items())),
            "alerts": self.alerts,
            "write_failures": self.write_failures,
        }


@dataclass
class PipelineStats:
    """Thread-safe counters; ``snapshot`` gives readers a consistent view."""

    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    messages: int = 0
    received: Counter[str] = field(default_factory=Counter)
    stored: Counter[str] = field(default_factory=Counter)
    rejected: Counter[str] = field(default_factory=Counter)
    reasons: Counter[str] = field(default_factory=Counter)
    ignored_fields: Counter[str] = field(default_factory=Counter)
    anomalies: Counter[str] = field(default_factory=Counter)
    alerts: int = 0
    deadletters_published: int = 0
    write_failures: int = 0
    cycles: int = 0

    def record_cycle(self, messages: int, result: ValidationResult) -> None:
        with self._lock:
            self.cycles += 1
            self.messages += messages
            self.received.update(result.received)
            for name, batch in result.batches.items():
                self.stored[name] += len(batch)
            for reject in result.rejects:
                self.rejected[reject.kind or "unknown"] += 1
                self.reasons[str(reject.reason)] += 1
            self.ignored_fields.update(result.ignored_fields)

    def record_anomalies(self, kind: str, count: int) -> None:
        with self._lock:
            self.anomalies[kind] += count

    def record_alerts(self, count: int) -> None:
        with self._lock:
            self.alerts += count

    def record_deadletters_published(self, count: int) -> None:
        with self._lock:
            self.deadletters_published += count

    def record_write_failure(self) -> None:
        with self._lock:
            self.write_failures += 1

    def snapshot(self) -> StatsSnapshot:
        with self._lock:
            return StatsSnapshot(
                at=time.monotonic(),
                messages=self.messages,
                received=dict(self.received),
                stored=dict(self.stored),
                rejected=dict(self.rejected),
                reasons=dict(self.reasons),
                ignored_fields=dict(self.ignored_fields),
                anomalies=dict(self.anomalies),
                alerts=self.alerts,
                deadletters_published=self.deadletters_published,
                write_failures=self.write_failures,
                cycles=self.cycles,
            )


__all__ = ["PipelineStats", "Reason", "StatsSnapshot"]
