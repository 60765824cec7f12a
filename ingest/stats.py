"""The pipeline's counters: what came in, what was stored, what was rejected and why.

One object, updated by the pipeline thread and read by the live view, the JSON
summaries, the Prometheus endpoint and the ``pipeline`` measurement, so every
view reports the same numbers.

End-to-end lag is the ingest clock when a cycle's write returned (the readings
are durable) minus each reading's device timestamp, kept as a histogram with
fixed buckets: cheap to update for a whole batch at once, and exactly what
Prometheus expects.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from ingest.sinks.base import RejectedPoint
from processors.reasons import Reason
from processors.validate import ValidationResult

STORE_REJECTED = "store_rejected"
"""Reason for readings that passed validation but the database refused (say, a field type conflict)."""

LAG_BUCKETS_S: tuple[float, ...] = (0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 21600, 86400)
"""Upper bounds of the end-to-end lag histogram, in seconds (a last bucket takes the rest)."""
_LAG_EDGES_MS = np.array(LAG_BUCKETS_S) * 1000.0


def wall_clock_ms() -> int:
    return time.time_ns() // 1_000_000


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
    """Anomaly onsets by sensor kind."""
    alerts: int
    deadletters_published: int
    write_failures: int
    cycles: int
    lag_buckets: tuple[int, ...] = (0,) * (len(LAG_BUCKETS_S) + 1)
    """Readings per lag bucket (not cumulative); the last counts lags beyond every bound."""
    lag_sum_s: float = 0.0
    events_refused: int = 0
    """Events (not readings) the store refused; logged, never dead-lettered again."""
    floods: dict[str, int] = field(default_factory=dict)
    """Devices, per kind, that started sending beyond their rate limit (each flood once)."""
    writes: int = 0
    """Cycle writes that returned (stored, or spooled while the store is down)."""
    write_s_sum: float = 0.0
    """Seconds those writes took, in total."""
    anomaly_detectors: dict[tuple[str, str], int] = field(default_factory=dict)
    """Anomaly onsets by (sensor kind, detector)."""
    alerts_by_severity: dict[str, int] = field(default_factory=dict)
    """Alerts fired so far, by severity (and below by kind); ``alerts`` is their total."""
    alerts_by_kind: dict[str, int] = field(default_factory=dict)
    alerts_resolved: int = 0
    alerts_open: int = 0

    @property
    def lag_count(self) -> int:
        return sum(self.lag_buckets)

    def lag_quantile_s(self, q: float, since: StatsSnapshot | None = None) -> float | None:
        """The lag below which a fraction ``q`` of readings fell (since ``since``), by bucket bound."""
        counts = np.array(self.lag_buckets) - (np.array(since.lag_buckets) if since else 0)
        total = int(counts.sum())
        if total <= 0:
            return None
        at = int(np.searchsorted(np.cumsum(counts), q * total, side="left"))
        return LAG_BUCKETS_S[at] if at < len(LAG_BUCKETS_S) else float("inf")

    def anomalies_by_detector(self) -> dict[str, dict[str, int]]:
        """Anomaly onsets as ``{kind: {detector: count}}``, sorted."""
        nested: dict[str, dict[str, int]] = {}
        for (kind, detector), n in sorted(self.anomaly_detectors.items()):
            nested.setdefault(kind, {})[detector] = n
        return nested

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
            "floods": dict(sorted(self.floods.items())),
            "anomalies_by_detector": self.anomalies_by_detector(),
            "alerts": self.alerts,
            "alerts_by_severity": dict(sorted(self.alerts_by_severity.items())),
            "alerts_by_kind": dict(sorted(self.alerts_by_kind.items())),
            "alerts_resolved": self.alerts_resolved,
            "alerts_open": self.alerts_open,
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
    anomaly_detectors: Counter[tuple[str, str]] = field(default_factory=Counter)
    alerts: int = 0
    deadletters_published: int = 0
    write_failures: int = 0
    cycles: int = 0
    lag_buckets: list[int] = field(default_factory=lambda: [0] * (len(LAG_BUCKETS_S) + 1))
    lag_sum_s: float = 0.0
    events_refused: int = 0
    floods: Counter[str] = field(default_factory=Counter)
    writes: int = 0
    write_s_sum: float = 0.0
    alerts_by_severity: Counter[str] = field(default_factory=Counter)
    alerts_by_kind: Counter[str] = field(default_factory=Counter)
    alerts_resolved: int = 0
    alerts_open: int = 0
    clock_ms: Callable[[], int] = field(default=wall_clock_ms, repr=False)

    def record_cycle(self, messages: int, result: ValidationResult) -> None:
        """Count a cycle whose write returned: its readings are durable as of now."""
        lag_ms = [self.clock_ms() - b.ts_ms for b in result.batches.values() if len(b)]
        lags = np.concatenate(lag_ms).astype(np.float64) if lag_ms else np.empty(0)
        buckets = np.bincount(
            np.searchsorted(_LAG_EDGES_MS, lags, side="left"), minlength=len(LAG_BUCKETS_S) + 1
        )
        with self._lock:
            for i, count in enumerate(buckets.tolist()):
                self.lag_buckets[i] += count
            self.lag_sum_s += float(lags.sum()) / 1000.0
            self.cycles += 1
            self.messages += messages
            self.received.update(result.received)
            for name, batch in result.batches.items():
                self.stored[name] += len(batch)
            for reject in result.rejects:
                self.rejected[reject.kind or "unknown"] += 1
                self.reasons[str(reject.reason)] += 1
            self.ignored_fields.update(result.ignored_fields)

    def record_floods(self, kind: str, count: int) -> None:
        """Devices that started sending beyond their rate limit (each flood counted once)."""
        with self._lock:
            self.floods[kind] += count

    def record_write(self, seconds: float) -> None:
        """A cycle's write returned after ``seconds`` (the write latency the dashboards show)."""
        with self._lock:
            self.writes += 1
            self.write_s_sum += seconds

    def record_anomalies(self, onsets: Mapping[tuple[str, str], int]) -> None:
        """Count a stored cycle's anomaly onsets, given per (kind, detector)."""
        if not onsets:
            return
        with self._lock:
            for (kind, detector), count in onsets.items():
                self.anomalies[kind] += count
                self.anomaly_detectors[(kind, detector)] += count

    def record_alert_events(self, fired: Sequence[tuple[str, str]], resolved: int, open_now: int) -> None:
        """Alerts that fired (severity, kind), how many resolved, and how many are open now."""
        with self._lock:
            self.alerts += len(fired)
            for severity, kind in fired:
                self.alerts_by_severity[severity] += 1
                self.alerts_by_kind[kind] += 1
            self.alerts_resolved += resolved
            self.alerts_open = open_now

    def record_deadletters_published(self, count: int) -> None:
        with self._lock:
            self.deadletters_published += count

    def record_write_failure(self) -> None:
        with self._lock:
            self.write_failures += 1

    def record_store_rejects(self, rejected: Sequence[RejectedPoint]) -> None:
        """Readings the database refused after validation passed them: rejected, not stored."""
        with self._lock:
            for point in rejected:
                if point.kind is None:
                    self.events_refused += 1
                    continue
                self.stored[point.kind] -= 1
                self.rejected[point.kind] += 1
                self.reasons[STORE_REJECTED] += 1

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
                lag_buckets=tuple(self.lag_buckets),
                lag_sum_s=self.lag_sum_s,
                events_refused=self.events_refused,
                floods=dict(self.floods),
                writes=self.writes,
                write_s_sum=self.write_s_sum,
                anomaly_detectors=dict(self.anomaly_detectors),
                alerts_by_severity=dict(self.alerts_by_severity),
                alerts_by_kind=dict(self.alerts_by_kind),
                alerts_resolved=self.alerts_resolved,
                alerts_open=self.alerts_open,
            )


__all__ = ["LAG_BUCKETS_S", "STORE_REJECTED", "PipelineStats", "Reason", "StatsSnapshot"]
