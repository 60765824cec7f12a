"""The sink interface: write a batch durably, flush, close, report health.

A sink either stores the ``WriteBatch`` before ``write`` returns, or raises
``SinkError`` saying whether trying again can help. The one exception is a point
the store itself refuses for good (InfluxDB answering 400/422 for it, say a
field type conflict): the sink stores every other point and returns the refused
ones in its ``WriteReport``, so one bad point never holds back its neighbours and
is dead-lettered instead of retried forever. Retries, spooling and backpressure
wrap a sink from the outside (``ingest/durable.py``), so every sink gets them for free.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, Protocol, Self, TypeVar, runtime_checkable

from ingest.settings_section import SettingsSection
from processors.batch import WriteBatch

S = TypeVar("S", bound=SettingsSection)


class SinkError(Exception):
    """A write failed. ``retryable`` says whether the same batch may succeed later."""

    def __init__(self, message: str, *, retryable: bool, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.retry_after_s = retry_after_s


@dataclass(frozen=True, slots=True)
class RejectedPoint:
    """One point the store refused for good, with the store's own reason."""

    measurement: str
    timestamp: int
    """In the unit the point was written with: ms for readings, ns for events."""
    reason: str
    line: str
    """The point as the store saw it (line protocol for InfluxDB)."""
    device: str | None = None
    kind: str | None = None
    """The sensor kind, for readings; None for events."""


@dataclass(frozen=True, slots=True)
class WriteReport:
    """What a write stored: ``written`` points, and the points the store refused."""

    written: int
    rejected: tuple[RejectedPoint, ...] = ()


@dataclass(frozen=True, slots=True)
class SinkHealth:
    ok: bool
    detail: str
    size_bytes: int | None = None
    """Bytes the store occupies, where the sink can know it cheaply."""


class Sink(ABC):
    """Where validated readings and pipeline events are stored."""

    @abstractmethod
    def write(self, batch: WriteBatch) -> WriteReport:
        """Store every reading and event of ``batch`` durably, or raise ``SinkError``.

        Points the store refuses for good are left out and returned in the report.
        """

    def flush(self) -> None:  # noqa: B027 - optional hook, most sinks write through
        """Push anything buffered to durable storage."""

    @abstractmethod
    def close(self) -> None:
        """Flush and release connections; the sink is unusable afterwards."""

    @abstractmethod
    def health(self) -> SinkHealth:
        """Whether the store answers, and how large it is."""

    @abstractmethod
    def describe(self) -> str:
        """Where this sink writes, without secrets, for the start-up log line."""

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# --- reading back ------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class AnomalyQuery:
    """Which stored anomaly onsets to read back, newest first; a filter left None matches all."""

    kind: str | None = None
    district: str | None = None
    device: str | None = None
    detector: str | None = None
    since_ms: int | None = None
    """Only onsets stamped at or after this time (epoch ms)."""
    limit: int = 50


@dataclass(frozen=True, slots=True)
class StoredAnomaly:
    """One anomaly onset as the pipeline stored it (``processors.anomaly.Detection.events``)."""

    ts_ms: int
    kind: str
    detector: str
    category: str
    field: str
    district: str
    device: str
    score: float
    value: float | None


class ReadError(Exception):
    """The store could not be read back; the message says why and what to do."""


@runtime_checkable
class AnomalyReader(Protocol):
    """What ``citypulse anomalies`` needs from a store: the onsets a query matches."""

    def anomalies(self, query: AnomalyQuery) -> list[StoredAnomaly]:
        """Matching onsets, newest first, at most ``query.limit``; ``ReadError`` if the store cannot say."""
        ...

    def describe(self) -> str:
        """Where it reads, without secrets."""
        ...

    def close(self) -> None: ...


@dataclass(frozen=True, slots=True)
class SinkPlugin(Generic[S]):
    """How a sink module registers itself: a name for ``CITYPULSE_SINK``, its settings and a factory.

    ``settings`` is the sink's own :class:`SettingsSection`, nested in ``Settings``
    (``ingest/settings.py`` tells how); ``factory`` opens the sink from that section
    alone, so a sink never reads another part's options. ``reader`` opens the same
    store for reading back (``citypulse anomalies``); a sink that cannot be read
    leaves it None and the command says so.
    """

    name: str
    settings: type[S]
    factory: Callable[[S], Sink]
    description: str
    reader: Callable[[S], AnomalyReader] | None = None
