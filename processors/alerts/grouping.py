"""When notifications go out: grouping by (rule, district) and a rate limit per subscriber.

As Alertmanager does, a subscriber's events are gathered per group, here the
rule and the district: the first event of a quiet group waits ``group_wait``
for others to join it (a pollution episode reaching ten devices is one
message), and a group that has just been notified waits ``group_interval``
before the next. On top, a token bucket allows each subscriber at most
``max_notifications`` per ``rate_window``; events that must wait stay in their
groups and go out together. Times are passed in, so this is plain arithmetic.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


def group_due_ms(first_waiting_ms: int, last_sent_ms: int | None, wait_ms: int, interval_ms: int) -> int:
    """When a group holding events since ``first_waiting_ms`` may be notified.

    >>> group_due_ms(1_000, None, wait_ms=500, interval_ms=60_000)
    1500
    >>> group_due_ms(10_000, 5_000, wait_ms=500, interval_ms=60_000)
    65000
    >>> group_due_ms(100_000, 5_000, wait_ms=500, interval_ms=60_000)
    100500
    """
    due = first_waiting_ms + wait_ms
    if last_sent_ms is not None:
        due = max(due, last_sent_ms + interval_ms)
    return due


@dataclass
class TokenBucket:
    """At most ``capacity`` notifications per ``window_ms``, refilled evenly.

    >>> bucket = TokenBucket(capacity=2, window_ms=60_000, tokens=2, at_ms=0)
    >>> bucket.take(0), bucket.take(0), bucket.take(0), bucket.ready_ms(0)
    (True, True, False, 30000)
    """

    capacity: int
    window_ms: int
    tokens: float
    at_ms: int

    @classmethod
    def full(cls, capacity: int, window_ms: int, now_ms: int) -> TokenBucket:
        return cls(capacity, window_ms, float(capacity), now_ms)

    def _refill(self, now_ms: int) -> None:
        if now_ms > self.at_ms:
            rate = self.capacity / self.window_ms
            self.tokens = min(float(self.capacity), self.tokens + (now_ms - self.at_ms) * rate)
            self.at_ms = now_ms

    def take(self, now_ms: int) -> bool:
        self._refill(now_ms)
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False

    def ready_ms(self, now_ms: int) -> int:
        """The earliest time a token is available."""
        self._refill(now_ms)
        if self.tokens >= 1.0:
            return now_ms
        return now_ms + math.ceil((1.0 - self.tokens) * self.window_ms / self.capacity)
