"""What an alert channel is: subscribers with filters and pacing, and one way to deliver to them.

A channel plugin (MQTT, webhook, email) only knows how to deliver one
notification (a few events of one group) to one subscriber, blocking while it
does, and says whether a failure is worth retrying. Everything that keeps a
slow or dead receiver away from ingestion (the bounded queue, the delivery
thread, grouping, rate limits, retries with backoff, dead letters) wraps every
channel the same way from the outside (``ingest/alerts/dispatch.py``), as
durability wraps every sink.

Adding a channel is one module in this package defining ``PLUGIN``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from ingest.alerts.settings import Filters

if TYPE_CHECKING:
    from ingest.settings import Settings


class DeliveryError(Exception):
    """A delivery failed; ``retryable`` says whether the same notification may succeed later."""

    def __init__(self, message: str, *, retryable: bool = True, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.retry_after_s = retry_after_s


@dataclass(frozen=True)
class Pace:
    """How one subscriber's notifications are grouped and limited (milliseconds)."""

    group_wait_ms: int = 0
    group_interval_ms: int = 0
    max_notifications: int | None = None
    """At most this many notifications per ``window_ms`` (None: no limit)."""
    window_ms: int = 3_600_000
    max_events: int = 100
    """Most events in one notification; more wait for the next."""


IMMEDIATE = Pace()


@dataclass(frozen=True)
class Subscriber:
    name: str
    filters: Filters = field(default_factory=Filters)
    pace: Pace = IMMEDIATE


@dataclass(frozen=True)
class Notification:
    """Events of one group for one subscriber, in the order they happened."""

    subscriber: Subscriber
    rule: str
    district: str
    events: Sequence[dict[str, Any]]


class AlertChannel(ABC):
    """One delivery channel; see the module docstring."""

    name: ClassVar[str]

    @abstractmethod
    def subscribers(self) -> Sequence[Subscriber]:
        """Who this channel delivers to, each with the events they want."""

    @abstractmethod
    def deliver(self, notification: Notification) -> None:
        """Deliver now (blocking, bounded by a timeout) or raise ``DeliveryError``."""

    def start(self) -> None:  # noqa: B027 - optional hook
        """Open connections that live as long as the channel (never blocks on an unreachable server)."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections."""

    def describe(self) -> str:
        return f"{self.name} ({', '.join(s.name for s in self.subscribers())})"


@dataclass(frozen=True, slots=True)
class ChannelPlugin:
    """How a channel module registers itself: a name and a factory (None when not configured)."""

    name: str
    factory: Callable[[Settings], AlertChannel | None]
    description: str


def pace_of(settings: Settings, own: Any) -> Pace:
    """A subscriber's pacing: its own values where given, else the ``[alerts]`` defaults."""
    a = settings.alerts

    def pick(name: str) -> Any:
        value = getattr(own, name, None)
        return getattr(a, name) if value is None else value

    return Pace(
        group_wait_ms=round(pick("group_wait_s") * 1000),
        group_interval_ms=round(pick("group_interval_s") * 1000),
        max_notifications=int(pick("max_notifications")),
        window_ms=round(pick("rate_window_s") * 1000),
    )
