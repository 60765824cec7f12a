"""A per-device token bucket, sized from each device's declared reporting interval.

A device that floods (a firmware loop, a stolen credential replaying readings)
must not drown the city's other devices nor fill the database. Each device earns
``factor`` readings per declared interval and keeps up to ``burst_s`` seconds'
worth of them unused, so a well-behaved device is never limited, while one
sending 100 times its rate is held to ``factor`` times it. What exceeds the
bucket is rejected as ``rate_limited``.

Allowance is earned by whichever clock ran further since the device's last
cycle. The ingest clock refills the bucket up to its capacity (a device back
from an outage). The device's own clock earns what its new readings' timestamps
cover, from its newest earlier reading but at most one interval before the
oldest new one: a backlog or a replay whose readings are spread over hours
earns those hours, even if it arrives within seconds; a flood stamped at one
instant earns one interval. Timestamps cannot buy a flood: a reading newer than
now is rejected by validation, and going back in time earns nothing.

State is held in numpy arrays per kind, 37 bytes per device (tokens, the last
refill, the newest timestamp, a flood flag, and the interval, rate and capacity
the registry gives it): 100,000 devices take 3.7 MB. Like the duplicate memory, the
bucket is judged before the write and committed after it, so a cycle retried
after a failed write is judged the same way again.

Each flood is reported once: a device's *episode* starts with its first limited
reading and ends when its bucket has refilled to half, so a device held at its
limit for hours raises one report, not one per cycle.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import orjson
from numpy.typing import NDArray

from processors.batch import ReadingBatch
from processors.reasons import Reason
from processors.registry import DeviceTable, Registry
from processors.topics import TopicScheme
from processors.validate import Reject, ValidationResult

_NEVER: int = int(np.iinfo(np.int64).min)
"""The newest timestamp of a device not seen yet."""


@dataclass(frozen=True, slots=True)
class RatePolicy:
    """How much a device may send: ``factor`` times its declared rate, ``burst_s`` of it saved up.

    ``factor`` 0 switches the limit off.
    """

    factor: float = 2.0
    burst_s: float = 3600.0

    def __post_init__(self) -> None:
        if self.factor < 0 or self.burst_s <= 0:
            raise ValueError("the rate limit needs factor >= 0 and burst_s > 0")


@dataclass
class _Buckets:
    """One kind's buckets, indexed like the kind's device table (grown as devices are added)."""

    interval_ms: NDArray[np.int64]
    rate_per_ms: NDArray[np.float32]
    capacity: NDArray[np.float32]
    tokens: NDArray[np.float32]
    refilled_ms: NDArray[np.int64]
    newest_ts_ms: NDArray[np.int64]
    flooding: NDArray[np.bool_]

    @classmethod
    def empty(cls) -> _Buckets:
        none = np.zeros(0, np.float32)
        never = np.zeros(0, np.int64)
        return cls(never, none, none, none, never, never, np.zeros(0, np.bool_))

    def grow(self, table: DeviceTable, policy: RatePolicy) -> None:
        n, have = len(table), self.tokens.size
        if n == have:
            return
        interval_s = np.array([table.interval_s(i) for i in range(have, n)], dtype=np.float64)
        rate = policy.factor / (interval_s * 1000.0)
        capacity = np.maximum(policy.factor, rate * policy.burst_s * 1000.0)
        self.interval_ms = np.concatenate([self.interval_ms, np.round(interval_s * 1000).astype(np.int64)])
        self.rate_per_ms = np.concatenate([self.rate_per_ms, rate.astype(np.float32)])
        self.capacity = np.concatenate([self.capacity, capacity.astype(np.float32)])
        self.tokens = np.concatenate([self.tokens, capacity.astype(np.float32)])
        self.refilled_ms = np.concatenate([self.refilled_ms, np.full(n - have, -1, np.int64)])
        self.newest_ts_ms = np.concatenate([self.newest_ts_ms, np.full(n - have, _NEVER, np.int64)])
        self.flooding = np.concatenate([self.flooding, np.zeros(n - have, np.bool_)])


@dataclass(frozen=True, slots=True)
class KindDecision:
    """One kind's verdict: which rows pass, and the buckets as they will be once committed."""

    keep: NDArray[np.bool_]
    devices: NDArray[np.intp]
    """The devices that sent readings this cycle."""
    tokens: NDArray[np.float32]
    newest_ts_ms: NDArray[np.int64]
    flooding: NDArray[np.bool_]
    onsets: NDArray[np.intp]
    """Devices whose flood starts this cycle (reported once)."""
    ended: NDArray[np.intp]
    """Devices whose flood ended before this cycle (their allowance refilled to half)."""
    limited: NDArray[np.int64]
    """Readings refused per device of ``devices`` this cycle."""


@dataclass(frozen=True, slots=True)
class RateDecision:
    now_ms: int
    kinds: dict[str, KindDecision] = field(default_factory=dict)

    @property
    def limited(self) -> int:
        return sum(int((~k.keep).sum()) for k in self.kinds.values())


class RateLimiter:
    """Token buckets for every registered device; pure (``now_ms`` is passed in).

    A device declared to report every 60 s sends six readings in five seconds; with
    ``factor`` 2 and a minute's burst it has two saved up and earns two for the
    interval its first reading covers:

    >>> from processors.batch import series_batch
    >>> from processors.kinds import get_kind
    >>> from processors.registry import Device
    >>> sensor = Device("air-1", "air", "Ba Đình", 21.0, 105.8, interval_s=60)
    >>> batch = series_batch(get_kind("air"), {"pm25": [10.0] * 6}, interval_s=1, device=sensor)
    >>> limiter = RateLimiter(RatePolicy(factor=2.0, burst_s=60.0))
    >>> decision = limiter.judge({"air": batch}, now_ms=batch.ts_ms[-1])
    >>> decision.kinds["air"].keep.tolist(), decision.kinds["air"].onsets.tolist()
    ([True, True, True, True, False, False], [0])
    """

    def __init__(self, policy: RatePolicy | None = None, registry: Registry | None = None) -> None:
        self.policy = policy or RatePolicy()
        self._buckets: dict[str, _Buckets] = {}
        if registry is not None:
            for name, table in registry.tables.items():
                self._table_buckets(name, table)

    @property
    def enabled(self) -> bool:
        return self.policy.factor > 0

    def _table_buckets(self, kind: str, table: DeviceTable) -> _Buckets:
        buckets = self._buckets.setdefault(kind, _Buckets.empty())
        buckets.grow(table, self.policy)
        return buckets

    def judge(self, batches: Mapping[str, ReadingBatch], now_ms: int) -> RateDecision:
        """Which readings fit their device's bucket at ``now_ms`` (rows in arrival order: the first fit)."""
        decision = RateDecision(int(now_ms))
        if not self.enabled:
            return decision
        for kind, batch in batches.items():
            if len(batch):
                decision.kinds[kind] = self._judge_kind(self._table_buckets(kind, batch.table), batch, now_ms)
        return decision

    @staticmethod
    def _judge_kind(b: _Buckets, batch: ReadingBatch, now_ms: int) -> KindDecision:
        devices, first, counts = np.unique(batch.device, return_inverse=True, return_counts=True)
        order = np.argsort(first, kind="stable")  # rows grouped by device, arrival order kept
        starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
        ts_sorted = batch.ts_ms[order]
        newest = np.maximum.reduceat(ts_sorted, starts)
        oldest = np.minimum.reduceat(ts_sorted, starts)
        known = b.newest_ts_ms[devices]
        interval_ms = b.interval_ms[devices]
        own_clock = np.maximum(newest - np.maximum(known, oldest - interval_ms), 0).astype(np.float64)
        last = b.refilled_ms[devices]
        wall_clock = np.where(last < 0, 0, np.maximum(now_ms - last, 0)).astype(np.float64)
        capacity = b.capacity[devices].astype(np.float64)
        rate = b.rate_per_ms[devices].astype(np.float64)
        saved = np.minimum(capacity, b.tokens[devices])
        available = np.maximum(np.minimum(capacity, saved + wall_clock * rate), saved + own_clock * rate)
        allowed = np.minimum(np.floor(available), counts).astype(np.int64)
        rank = np.empty(len(batch), dtype=np.int64)
        rank[order] = np.arange(len(batch)) - np.repeat(starts, counts)
        keep = rank < allowed[first]
        tokens = np.minimum(capacity, available - allowed)
        over = allowed < counts
        # A flood lasts until the bucket has refilled to half (before this cycle spends from it).
        before = b.flooding[devices]
        was = before & (np.minimum(capacity, available) < capacity / 2)
        flooding = was | over
        return KindDecision(
            keep,
            devices.astype(np.intp),
            tokens.astype(np.float32),
            np.maximum(newest, known),
            flooding,
            devices[over & ~was].astype(np.intp),
            devices[before & ~flooding].astype(np.intp),
            (counts - allowed).astype(np.int64),
        )

    def commit(self, decision: RateDecision) -> None:
        """Spend the tokens of a cycle that was stored."""
        for kind, verdict in decision.kinds.items():
            b = self._buckets[kind]
            b.tokens[verdict.devices] = verdict.tokens
            b.refilled_ms[verdict.devices] = decision.now_ms
            b.newest_ts_ms[verdict.devices] = verdict.newest_ts_ms
            b.flooding[verdict.devices] = verdict.flooding

    def nbytes(self) -> int:
        """Memory the buckets hold, all kinds together."""
        arrays = (
            "interval_ms",
            "rate_per_ms",
            "capacity",
            "tokens",
            "refilled_ms",
            "newest_ts_ms",
            "flooding",
        )
        return sum(getattr(b, name).nbytes for b in self._buckets.values() for name in arrays)


def hold_back(result: ValidationResult, decision: RateDecision, topics: TopicScheme) -> None:
    """Move the readings ``decision`` refused from ``result``'s batches to its rejects (in place).

    Each refused reading becomes one ``rate_limited`` reject whose payload is the
    reading itself (device, timestamp in epoch ms, measures), so nothing is lost:
    the dead letter can be replayed once the device is fixed.
    """
    for kind, verdict in decision.kinds.items():
        if verdict.keep.all():
            continue
        batch = result.batches[kind]
        refused = batch.take(~verdict.keep)
        result.batches[kind] = batch.take(verdict.keep)
        names = batch.kind.measure_names
        for device_id, ts_ms, values in zip(
            refused.device_ids(), refused.ts_ms.tolist(), refused.values.tolist(), strict=True
        ):
            reading: dict[str, object] = {"device": device_id, "ts": ts_ms}
            reading.update((n, v) for n, v in zip(names, values, strict=True) if not math.isnan(v))
            result.rejects.append(
                Reject(
                    Reason.RATE_LIMITED,
                    f"device {device_id} exceeds its rate ({batch.kind.name} readings)",
                    topics.reading(kind, device_id),
                    orjson.dumps(reading),
                    kind,
                    device_id,
                )
            )
