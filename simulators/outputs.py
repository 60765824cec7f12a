"""Where simulated messages go: an MQTT broker, or a file for replays and benchmarks.

The file format (one message per line) is a contract with the evaluation tools:
``publish_ms<TAB>topic<TAB>payload``, where ``publish_ms`` is the simulated time
the fleet sends the message. Payloads never contain a newline but may contain
TABs, so split each line on the first two TABs only. Lines are in send order.
"""

from __future__ import annotations

import ssl
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Protocol, runtime_checkable

from processors.endpoint import ConnectOptions
from simulators.publisher import Publisher

TimedMessage = tuple[int, str, bytes]


@dataclass
class OutputCounts:
    published: int = 0
    acknowledged: int = 0
    """Confirmed: written to the file, or acknowledged by the broker (QoS 1) / sent (QoS 0)."""
    failed: int = 0
    failures: Counter[str] = field(default_factory=Counter)
    """Why messages failed, e.g. 'not acknowledged before the run ended'."""
    reconnects: int = 0


class Output(Protocol):
    """Anything that takes messages one by one (tests collect them in memory)."""

    @property
    def counts(self) -> OutputCounts: ...

    def publish(self, topic: str, payload: bytes) -> None: ...

    def close(self, timeout_s: float) -> OutputCounts:
        """Wait up to ``timeout_s`` for outstanding deliveries, then count the rest as failed."""
        ...


@runtime_checkable
class SliceOutput(Protocol):
    """An output that takes a slice's messages at once, with the time each is sent."""

    @property
    def counts(self) -> OutputCounts: ...

    def publish_slice(self, messages: Sequence[TimedMessage]) -> None: ...

    def close(self, timeout_s: float) -> OutputCounts: ...


class FileOutput:
    """Writes ``publish_ms<TAB>topic<TAB>payload`` lines."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._out: IO[bytes] = path.open("wb", buffering=1 << 20)
        self.counts = OutputCounts()

    def publish(self, topic: str, payload: bytes) -> None:
        self.publish_slice(((0, topic, payload),))

    def publish_slice(self, messages: Sequence[TimedMessage]) -> None:
        if not messages:
            return
        # Payloads are compact JSON (or deliberately broken JSON) and never contain a newline.
        # One % formatting for the whole slice: the lines' fields interleaved in one flat list.
        sent, topics, payloads = zip(*messages, strict=True)
        fields: list[object] = [None] * (3 * len(messages))
        fields[0::3] = sent
        fields[1::3] = [topic.encode() for topic in topics]
        fields[2::3] = payloads
        self._out.write((b"%d\t%b\t%b\n" * len(messages)) % tuple(fields))
        self.counts.published += len(messages)
        self.counts.acknowledged += len(messages)

    def close(self, timeout_s: float) -> OutputCounts:
        self._out.close()
        return self.counts


def read_messages(path: Path) -> Iterator[TimedMessage]:
    """The messages of a file written by :class:`FileOutput`, in order."""
    with path.open("rb") as handle:
        for line in handle:
            ms, topic, payload = line.rstrip(b"\n").split(b"\t", 2)
            yield int(ms), topic.decode(), payload


class MqttOutput:
    """Publishes to a broker through :class:`~simulators.publisher.Publisher`."""

    def __init__(
        self,
        options: ConnectOptions,
        qos: int = 1,
        max_outstanding: int = 20_000,
        give_up_after_s: float = 60.0,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.options = options
        self.publisher = Publisher(
            options.endpoint,
            options.client_id,
            protocol=options.protocol,
            qos=qos,
            keepalive_s=options.keepalive_s,
            max_outstanding=max_outstanding,
            give_up_after_s=give_up_after_s,
            ssl_context=ssl_context,
        )

    @property
    def counts(self) -> OutputCounts:
        c = self.publisher.counts
        return OutputCounts(c.published, c.acknowledged, c.failed, Counter(c.failures), c.reconnects)

    def start(self, timeout_s: float = 30.0) -> None:
        self.publisher.start(timeout_s)

    def publish(self, topic: str, payload: bytes) -> None:
        self.publisher.publish(topic, payload)

    def publish_slice(self, messages: Sequence[TimedMessage]) -> None:
        self.publisher.publish_many(messages)

    def outstanding(self) -> int:
        return self.publisher.outstanding()

    def close(self, timeout_s: float) -> OutputCounts:
        self.publisher.close(timeout_s)
        return self.counts


class PerDeviceOutput:
    """Publishes each device's (or gateway's) messages on its own connection, with its own secret.

    For a broker that gives every device a password and an ACL of its own
    (``citypulse devices provision``): a message goes out on the connection of the
    device or gateway its topic names, as the real device would send it. One
    connection and one thread per identity, so this suits fleets of hundreds, not
    of the tens of thousands a single connection serves.
    """

    def __init__(
        self,
        options: ConnectOptions,
        credentials: Mapping[str, str],
        identities: Sequence[str],
        qos: int = 1,
        max_outstanding: int = 20_000,
        give_up_after_s: float = 60.0,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        missing = [name for name in identities if name not in credentials]
        if missing:
            raise ValueError(
                f"no credentials for {', '.join(missing[:5])}{' ...' if len(missing) > 5 else ''}: "
                "provision them (citypulse devices provision) or publish with one account"
            )
        self.publishers = {
            name: Publisher(
                options.endpoint.model_copy(update={"username": name, "password": credentials[name]}),
                f"{options.client_id}-{name}",
                protocol=options.protocol,
                qos=qos,
                keepalive_s=options.keepalive_s,
                max_outstanding=max(1, max_outstanding // max(1, len(identities))),
                give_up_after_s=give_up_after_s,
                ssl_context=ssl_context,
            )
            for name in identities
        }

    @property
    def counts(self) -> OutputCounts:
        total = OutputCounts()
        for publisher in self.publishers.values():
            c = publisher.counts
            total.published += c.published
            total.acknowledged += c.acknowledged
            total.failed += c.failed
            total.failures.update(c.failures)
            total.reconnects += c.reconnects
        return total

    def start(self, timeout_s: float = 30.0) -> None:
        for publisher in self.publishers.values():
            publisher.start(timeout_s)

    def publish(self, topic: str, payload: bytes) -> None:
        self._publisher(topic).publish(topic, payload)

    def publish_slice(self, messages: Sequence[TimedMessage]) -> None:
        by_source: dict[str, list[TimedMessage]] = {}
        for message in messages:
            by_source.setdefault(message[1].rsplit("/", 1)[-1], []).append(message)
        for mine in by_source.values():
            self._publisher(mine[0][1]).publish_many(mine)

    def outstanding(self) -> int:
        return sum(p.outstanding() for p in self.publishers.values())

    def close(self, timeout_s: float) -> OutputCounts:
        for publisher in self.publishers.values():
            publisher.close(timeout_s)
        return self.counts

    def _publisher(self, topic: str) -> Publisher:
        source = topic.rsplit("/", 1)[-1]
        publisher = self.publishers.get(source)
        if publisher is None:
            raise ValueError(f"no connection for {source!r} (topic {topic}): it has no credentials here")
        return publisher
