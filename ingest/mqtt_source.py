"""MQTT in: QoS 1 messages that are acknowledged only after they are safe.

The broker keeps every message it has not had a PUBACK for, across our crashes and
restarts (persistent session, stable client id). So the service takes a cycle of
messages, makes it durable, and only then acknowledges it: a crash at any point
means redelivery, never loss.

The connection is :class:`~ingest.mqtt_link.MqttLink`, which cuts a whole socket
read into columns; here those columns wait for the pipeline (:meth:`take` gathers a
cycle of them as :class:`Taken`) and their acknowledgements leave as one block per
cycle (:meth:`ack`).

Memory is bounded twice. MQTT 5's receive maximum asks the broker to push at
most that many unacknowledged messages; and because brokers do not all keep to
it (Mosquitto 2.0.11 was measured sending hundreds past it once acknowledgements
flow), messages received and not yet taken are bounded too, in count
(``max_pending``, exactly: a read is cut no further) and in payload bytes
(``max_pending_bytes``, give or take one read: a gateway's batch of a hundred
readings weighs a hundred single ones). When either is reached the link stops
reading the socket and the broker keeps the rest: backpressure, not growth.
"""

from __future__ import annotations

import logging
import ssl
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

from ingest.mqtt_link import MqttLink, Session
from processors.endpoint import BrokerUnreachableError, ConnectOptions
from processors.mqtt_inbound import Cut, pubacks
from processors.validate import MessageColumns

log = logging.getLogger(__name__)


@dataclass(slots=True)
class _Received:
    """Messages from one read of one connection, not yet taken."""

    generation: int
    topics: list[str]
    payloads: list[bytes]
    packet_ids: list[bytes]
    size: int


@dataclass(slots=True)
class Taken:
    """A cycle's messages as columns, and what acknowledging them takes."""

    messages: MessageColumns = field(default_factory=lambda: MessageColumns([], []))
    acks: list[tuple[int, list[bytes]]] = field(default_factory=list)
    """(connection, packet ids) of each part, in order; ``b""`` for QoS 0 messages."""
    size: int = 0
    """Payload bytes."""

    def __len__(self) -> int:
        return len(self.messages)


class MqttSource:
    """Subscribes, gathers cycles, acknowledges on request, republishes dead letters."""

    def __init__(
        self,
        options: ConnectOptions,
        subscriptions: Sequence[str],
        *,
        qos: int = 1,
        status_topic: str | None = None,
        max_pending: int = 100_000,
        max_pending_bytes: int = 64 * 2**20,
        ignore: Callable[[str], bool] | None = None,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        """``ignore`` names topics that arrive through the subscriptions but are not input
        (what the service publishes itself): they are acknowledged and dropped at once."""
        self.options = replace(
            options,
            persistent_session=True,
            will_topic=status_topic,
            will_payload=b"offline",
        )
        self.subscriptions = tuple(subscriptions)
        self.qos = qos
        self.status_topic = status_topic
        self.max_pending = max_pending
        self.max_pending_bytes = max_pending_bytes
        self._ignore = ignore
        self._own: dict[str, bool] = {}
        """``ignore``'s verdict per topic seen (topics repeat: a device has one)."""
        self.ignored = 0
        """Messages dropped as not input (``ignore``)."""
        self._lock = threading.Condition()
        self._received: deque[_Received] = deque()
        self._pending = 0
        self._pending_bytes = 0
        self._held = False
        """Reading stopped because the pending messages reached a bound."""
        self._paused = False
        self._subscribed = threading.Event()
        self.reconnects = 0
        self.sessions_lost = 0
        """Reconnects where the broker had forgotten our session (and so the messages queued for it)."""
        self._link = MqttLink(
            self.options,
            self.subscriptions,
            qos=qos,
            on_connect=self._on_connect,
            on_receive=self._on_receive,
            on_subscribed=self._subscribed.set,
            room=self._room,
            ssl_context=ssl_context,
        )

    # --- lifecycle ---------------------------------------------------------------------------
    def start(self, timeout_s: float = 30.0) -> None:
        """Connect (and send the subscriptions); raise ``BrokerUnreachableError`` with advice if that fails.

        Returns once the broker accepted the connection, before its SUBACK: a resumed
        session's backlog may come first, and is taken meanwhile (see :attr:`subscribed`).
        """
        self._link.start()
        if not self._link.wait_first(timeout_s):
            fatal = self._link.fatal
            self._link.stop()
            where = self.options.endpoint.display()
            if fatal is not None:
                raise BrokerUnreachableError(f"the MQTT broker {where} refused citypulse: {fatal}")
            raise BrokerUnreachableError(
                f"no MQTT broker answered at {where} within {timeout_s:.0f} s; "
                "start one (e.g. 'mosquitto -p 1883') or point CITYPULSE_MQTT_URL / --mqtt-url at yours"
            )

    def stop(self) -> None:
        """Publish our offline status and disconnect cleanly; unacked messages stay at the broker."""
        self.pause()
        if self.status_topic and self._link.connected:
            self._link.publish(self.status_topic, b"offline", qos=1, retain=True)
            self._link.flush(timeout_s=2.0)
        self._link.stop()

    def pause(self) -> None:
        """Read no more: what the broker sends from now on stays unacknowledged for the next run.

        Stopping calls this first, so draining finishes what was already received
        instead of chasing a stream that never ends.
        """
        with self._lock:
            self._paused = True
        self._link.wake()

    @property
    def connected(self) -> bool:
        return self._link.connected

    @property
    def subscribed(self) -> bool:
        """Whether the broker has granted the subscriptions (on the first connection, or since)."""
        return self._subscribed.is_set()

    @property
    def redelivered(self) -> int:
        """Messages the broker sent again after a reconnect (DUP)."""
        return self._link.redelivered

    def pending(self) -> int:
        """Messages received and not yet taken."""
        return self._pending

    # --- consuming -----------------------------------------------------------------------------
    def take(
        self,
        max_messages: int,
        linger_s: float,
        wait_s: float,
        idle_s: float = 0.05,
        max_bytes: int | None = None,
    ) -> Taken:
        """A cycle: up to ``max_messages`` messages (and about ``max_bytes`` of payload).

        Waits up to ``wait_s`` for the first, then gathers more for at most
        ``linger_s``, returning early once nothing has arrived for ``idle_s``:
        large cycles under load, low latency when quiet.
        """
        parts: list[_Received] = []
        count = size = 0
        byte_limit = max_bytes if max_bytes is not None else 1 << 62
        with self._lock:
            if not self._received and not self._lock.wait_for(lambda: bool(self._received), wait_s):
                return Taken()
            deadline = time.monotonic() + linger_s
            while count < max_messages and size < byte_limit:
                if self._received:
                    part = self._received.popleft()
                    room = max_messages - count
                    if len(part.topics) > room:
                        part, rest = _split(part, room)
                        self._received.appendleft(rest)
                    parts.append(part)
                    count += len(part.topics)
                    size += part.size
                    continue
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not self._lock.wait(min(idle_s, remaining)):
                    break
            self._pending -= count
            self._pending_bytes -= size
            wake = self._held and self._room_locked() > 0
        if wake:
            self._link.wake()
        return _join(parts, size)

    def ack(self, taken: Taken) -> int:
        """Acknowledge a cycle's messages of the current connection; return how many were sent.

        Messages from a previous connection are skipped: the broker redelivers them
        on this one, and that copy is acknowledged instead.
        """
        generation = self._link.generation
        ids = [i for part_generation, part in taken.acks if part_generation == generation for i in part]
        block = pubacks(ids)
        self._link.acknowledge(generation, block)
        return len(block) // 4

    def publish(self, topic: str, payload: bytes, qos: int = 1, retain: bool = False) -> None:
        """Best-effort publish (dead letters, status) on the same connection."""
        self._link.publish(topic, payload, qos=qos, retain=retain)

    # --- the link's thread -----------------------------------------------------------------------
    def _on_connect(self, session: Session) -> None:
        where = self.options.endpoint.display()
        if session.generation > 1:
            self.reconnects += 1
            if session.resumed:
                log.warning("reconnected to %s (session resumed)", where)
            else:
                self.sessions_lost += 1
                log.error(
                    "reconnected to %s, but the broker no longer had our session: messages it queued "
                    "for us are gone (it restarted without persistence, or the session expired); "
                    "give it 'persistence true' and a session expiry longer than any outage",
                    where,
                )
        if self.status_topic:
            self._link.publish(self.status_topic, b"online", qos=1, retain=True)

    def _on_receive(self, found: Cut, generation: int) -> None:
        if self._paused:  # read only to hear the broker acknowledge our last publishes: left for next time
            return
        topics, payloads, ids = found.topics, found.payloads, found.packet_ids
        if self._ignore is not None:
            own = self._own_topics(topics)
            if own:
                self.ignored += len(own)
                self._link.acknowledge(generation, pubacks([ids[i] for i in own]))
                keep = sorted(set(range(len(topics))) - set(own))
                topics = [topics[i] for i in keep]
                payloads = [payloads[i] for i in keep]
                ids = [ids[i] for i in keep]
                if not topics:
                    return
        size = sum(map(len, payloads))
        with self._lock:
            self._received.append(_Received(generation, topics, payloads, ids, size))
            self._pending += len(topics)
            self._pending_bytes += size
            self._lock.notify_all()

    def _own_topics(self, topics: list[str]) -> list[int]:
        """Positions of the topics ``ignore`` names, from a memo (cleared if it grows past bounds)."""
        own = self._own
        if len(own) > 200_000:
            own.clear()
        verdicts = list(map(own.get, topics))
        if None in verdicts:
            assert self._ignore is not None
            for i, verdict in enumerate(verdicts):
                if verdict is None:
                    verdicts[i] = own[topics[i]] = self._ignore(topics[i])
        return [i for i, verdict in enumerate(verdicts) if verdict]

    def _room(self) -> int:
        """How many more messages the link may hand over now (0: leave the socket unread)."""
        with self._lock:
            room = self._room_locked()
            self._held = room <= 0
            return room

    def _room_locked(self) -> int:
        if self._paused:  # read only to hear the broker acknowledge our last publishes
            return 1 << 30 if self._link.awaiting_acknowledgements() else 0
        if self._pending_bytes >= self.max_pending_bytes:
            return 0
        return self.max_pending - self._pending


def _split(part: _Received, at: int) -> tuple[_Received, _Received]:
    """The first ``at`` messages of a part, and the rest."""
    head_size = sum(map(len, part.payloads[:at]))
    head = _Received(part.generation, part.topics[:at], part.payloads[:at], part.packet_ids[:at], head_size)
    rest = _Received(
        part.generation, part.topics[at:], part.payloads[at:], part.packet_ids[at:], part.size - head_size
    )
    return head, rest


def _join(parts: list[_Received], size: int) -> Taken:
    if len(parts) == 1:
        only = parts[0]
        return Taken(MessageColumns(only.topics, only.payloads), [(only.generation, only.packet_ids)], size)
    topics: list[str] = []
    payloads: list[bytes] = []
    acks: list[tuple[int, list[bytes]]] = []
    for part in parts:
        topics += part.topics
        payloads += part.payloads
        if acks and acks[-1][0] == part.generation:
            acks[-1][1].extend(part.packet_ids)
        else:
            acks.append((part.generation, list(part.packet_ids)))
    return Taken(MessageColumns(topics, payloads), acks, size)
