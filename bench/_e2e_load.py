"""A fixed offered load, and latency from publish to queryable in InfluxDB.

The publisher (the simulator's MQTT client, QoS 1) sends one slice every 10 ms, on the 10 ms
boundaries of the wall clock, and stamps every reading of a slice with that boundary's time in
epoch milliseconds. A poller asks InfluxDB every ``poll_s`` how many points each 10 ms bucket of
reading time holds (``GROUP BY time(10ms)``); a reading is queryable from the first poll whose
count covers it, so its latency is that poll's completion time minus its stamp: an upper bound,
late by at most the time between polls (``poll_s``, or twice the last query's time when the window
of open buckets grows). Readings not queryable when the run gives up count as lost (their latency
as infinite), so a contender that falls behind shows it in its p99 instead of hiding it.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Sequence
from typing import Any

from bench._e2e_data import COUNT_FIELD
from bench._e2e_drain import Progress, Servers
from bench._servers import cpu_and_peak
from processors.endpoint import MqttEndpoint
from simulators.publisher import Publisher

SLICE_MS = 10
Single = tuple[str, str, bytes, bytes]
Gateway = tuple[str, str, list[tuple[bytes, bytes]]]


def percentile(sorted_values: Sequence[float], share: float) -> float:
    """Nearest-rank percentile of an ascending list (``math.inf`` stands for a reading never seen)."""
    if not sorted_values:
        return math.nan
    rank = max(1, math.ceil(share * len(sorted_values)))
    return sorted_values[rank - 1]


class Poller(threading.Thread):
    """Counts stored readings per 10 ms bucket of reading time until every published one is seen."""

    def __init__(self, servers: Servers, db: str, kinds: Sequence[str], poll_s: float) -> None:
        super().__init__(name="latency-poller", daemon=True)
        self.servers, self.db, self.poll_s = servers, db, poll_s
        self.kinds = list(kinds)
        self.published: dict[int, int] = {}
        """Readings published per bucket (bucket start in epoch ms), filled by the publisher."""
        self.seen: dict[int, int] = {}
        self.latencies: list[float] = []
        self.lock = threading.Lock()
        self.stop = threading.Event()

    def oldest_open(self) -> int | None:
        with self.lock:
            open_buckets = [b for b, n in self.published.items() if self.seen.get(b, 0) < n]
        return min(open_buckets) if open_buckets else None

    def run(self) -> None:
        # Waits at least twice as long as a query took: a lagging contender widens the window of
        # buckets asked about, and the poller must not take the database's CPU from it.
        pause = self.poll_s
        while not self.stop.wait(pause):
            began = time.monotonic()
            self.poll()
            pause = max(self.poll_s, 2 * (time.monotonic() - began))

    def poll(self) -> None:
        low = self.oldest_open()
        if low is None:
            return
        high = int(time.time() * 1000) + 1000
        statements = ";".join(
            f'SELECT count("{COUNT_FIELD[k]}") FROM "{k}" WHERE time >= {low}ms AND time < {high}ms '
            f"GROUP BY time({SLICE_MS}ms)"
            for k in self.kinds
        )
        results = self.servers.influxd.query(statements, self.db)
        at = time.time() * 1000
        counts: dict[int, int] = {}
        for result in results:
            for series in result.get("series") or []:
                for bucket, count in series["values"]:
                    if count:
                        counts[int(bucket)] = counts.get(int(bucket), 0) + int(count)
        with self.lock:
            for bucket, count in counts.items():
                before = self.seen.get(bucket, 0)
                if count > before:
                    self.latencies.extend([(at - bucket) / 1000] * (count - before))
                    self.seen[bucket] = count

    def missing(self) -> int:
        with self.lock:
            return sum(max(n - self.seen.get(b, 0), 0) for b, n in self.published.items())


def offered_load(
    servers: Servers,
    db: str,
    singles: Sequence[Single],
    gateways: Sequence[Gateway],
    readings_per_s: float,
    duration_s: float,
    settle_s: float,
    poll_s: float,
    contender_pid: int,
    progress: Progress,
    label: str,
) -> dict[str, Any]:
    """Offer ``readings_per_s`` for ``duration_s`` (singles, or gateway batches if given); measure latency."""
    batch = len(gateways[0][2]) if gateways else 1
    kinds = sorted({t[0] for t in (gateways or singles)})
    poller = Poller(servers, db, kinds, poll_s)
    publisher = Publisher(MqttEndpoint.parse(servers.mosquitto.url), f"bench-load-{db}", qos=1)
    publisher.start(15)
    cpu0, _ = cpu_and_peak(contender_pid)
    poller.start()
    owed = 0.0
    sent = cursor = 0
    per_slice = readings_per_s / batch * SLICE_MS / 1000
    began = time.time()
    end = began + duration_s
    bucket = (int(began * 1000) // SLICE_MS + 1) * SLICE_MS
    while bucket / 1000 < end:
        pause = bucket / 1000 - time.time()
        if pause > 0:
            time.sleep(pause)
        now_bucket = int(time.time() * 1000) // SLICE_MS * SLICE_MS
        owed += per_slice * max(1, (now_bucket - bucket) // SLICE_MS + 1)
        # A device sends at most once a slice: after a stall (a busy machine) the arrears go out
        # over the next slices, so a (device, timestamp) is never sent twice (a duplicate).
        count = min(int(owed), len(gateways) if gateways else len(singles))
        owed -= count
        if count:
            stamp = b"%d" % now_bucket
            messages: list[tuple[str, bytes]] = []
            for _ in range(count):
                if gateways:
                    _, topic, parts = gateways[cursor % len(gateways)]
                    payload = b"[" + b",".join(head + stamp + tail for head, tail in parts) + b"]"
                    readings = len(parts)
                else:
                    _, topic, head, tail = singles[cursor % len(singles)]
                    payload, readings = head + stamp + tail, 1
                messages.append((topic, payload))
                cursor += 1
                with poller.lock:
                    poller.published[now_bucket] = poller.published.get(now_bucket, 0) + readings
                sent += readings
            publisher.publish_many(messages)
        bucket = now_bucket + SLICE_MS
    published_s = time.time() - began
    counts = publisher.close(60)
    give_up = time.monotonic() + settle_s
    while poller.missing() and time.monotonic() < give_up:
        time.sleep(poll_s)
    poller.stop.set()
    poller.join()
    poller.poll()
    cpu1, peak = cpu_and_peak(contender_pid)
    missing = poller.missing()
    ordered = sorted(poller.latencies) + [math.inf] * missing
    result = {
        "label": label,
        "offered_readings_per_s": round(readings_per_s),
        "readings_per_message": batch,
        "published_readings": sent,
        "published_per_s": round(sent / published_s),
        "published_messages": counts.published,
        "broker_acknowledged_messages": counts.acknowledged,
        "queryable": sent - missing,
        "not_queryable_after_settle": missing,
        "p50_s": _seconds(percentile(ordered, 0.50)),
        "p95_s": _seconds(percentile(ordered, 0.95)),
        "p99_s": _seconds(percentile(ordered, 0.99)),
        "max_s": _seconds(ordered[-1] if ordered else math.nan),
        "contender_cpu_s": round(cpu1 - cpu0, 3),
        "contender_peak_rss_mb": round(peak / 2**20, 1),
    }
    progress(
        f"  {label}: {readings_per_s:,.0f} readings/s offered, p50 {result['p50_s']} s, "
        f"p99 {result['p99_s']} s, {missing:,} not queryable"
    )
    return result


def _seconds(value: float) -> float | None:
    """JSON-friendly: ``None`` for a reading never seen (or no readings at all)."""
    return None if not math.isfinite(value) else round(value, 3)
