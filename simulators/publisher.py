"""A publish-only MQTT 3.1.1/5 client built for fleets: many messages per write, acks counted exactly.

Why not paho? A simulated city must publish faster than the broker can take it,
so that the broker, not the simulator, is what a benchmark measures. paho spends
tens of microseconds of Python per message (measured here: about 6,700 QoS 1
messages/s against a local Mosquitto); this client encodes each PUBLISH packet
with one bytes join and hands the socket thousands at a time, which keeps
Mosquitto itself busy (``bench/simulate_bench.py`` has the figures).

What it promises:

- **QoS 1 honoured.** A message counts as *acknowledged* only when the broker's
  PUBACK for it arrives with a success code (QoS 0: when it was written to the
  socket). Every message handed over ends as acknowledged or *failed*, with the
  reason counted (refused by the broker, never acknowledged, broker unreachable).
- **Reconnects.** When the connection drops (broker restart, network), it
  reconnects with backoff and re-sends every unacknowledged message with the DUP
  flag, in order. QoS 0 messages caught in a dead connection are counted as failed.
- **Bounded memory and flow control.** At most ``max_outstanding`` messages (and
  never more than the broker's MQTT 5 Receive Maximum) are unacknowledged; the
  caller blocks beyond that. If the broker has been unreachable for
  ``give_up_after_s``, new messages fail at once instead of blocking the fleet.
- **The broker's limits.** MQTT 5 Maximum Packet Size and Maximum QoS from CONNACK
  are respected; a message too large is failed rather than sent (a broker
  disconnects a client that sends one).

The packets themselves are encoded and parsed in :mod:`processors.mqtt_wire`; this
module is the connection and the accounting around them.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import selectors
import socket
import ssl
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal

from processors.endpoint import BrokerUnreachableError, MqttEndpoint
from processors.mqtt_wire import (
    DISCONNECT_PACKET,
    FATAL_CONNACK,
    PINGREQ,
    REASONS_V5,
    BrokerLimits,
    connack,
    connect_packet,
    publish_block,
    resend,
    split_packet,
    take_acks,
)

log = logging.getLogger(__name__)

__all__ = ["BrokerUnreachableError", "PublishCounts", "Publisher"]

Protocol = Literal["5", "3.1.1"]

_WRITE_CHUNK = 1 << 20


@dataclass
class PublishCounts:
    published: int = 0
    acknowledged: int = 0
    failed: int = 0
    failures: Counter[str] = field(default_factory=Counter)
    reconnects: int = 0

    @property
    def outstanding(self) -> int:
        return self.published - self.acknowledged - self.failed


class Publisher:
    """Publishes to one broker from any thread; one background thread owns the socket."""

    def __init__(
        self,
        endpoint: MqttEndpoint,
        client_id: str,
        *,
        protocol: Protocol = "5",
        qos: int = 1,
        keepalive_s: int = 30,
        max_outstanding: int = 20_000,
        give_up_after_s: float = 60.0,
        on_acknowledged: Callable[[bytes], None] | None = None,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        """``ssl_context`` is used for ``mqtts://`` (the command line builds it from the settings'
        CA, certificate and key files); without one, the system's CAs verify the broker."""
        if qos not in (0, 1):
            raise ValueError("the simulator publishes with QoS 0 or 1")
        self.endpoint = endpoint
        self.client_id = client_id
        self.v5 = protocol == "5"
        self.qos = qos
        self.keepalive_s = keepalive_s
        self.max_outstanding = max_outstanding
        self.give_up_after_s = give_up_after_s
        self.ssl_context = ssl_context
        self.counts = PublishCounts()
        self.limits = BrokerLimits()
        self._on_acknowledged = on_acknowledged
        self._lock = threading.Condition()
        self._unacked: dict[int, tuple[bytes, int, int]] = {}
        """QoS 1 packets handed over and not yet acknowledged, by packet id (insertion = send order)."""
        self._queue: deque[tuple[bytes, int]] = deque()
        """Blocks of packets to write next on this connection, each with how many are QoS 0."""
        self._producer = threading.Lock()
        self._next_id = 0
        self._connected = False
        self._down_since: float | None = time.monotonic()
        self._stop = threading.Event()
        self._first_connack = threading.Event()
        self._fatal: str | None = None
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._idle = False
        self._thread = threading.Thread(target=self._run, name="citypulse-publisher", daemon=True)

    # --- caller side --------------------------------------------------------------------------------
    def start(self, timeout_s: float = 30.0) -> None:
        """Connect and wait for the broker's first CONNACK; raise BrokerUnreachableError if none."""
        self._thread.start()
        if not self._first_connack.wait(timeout_s) or self._fatal:
            self._stop.set()
            self._wake()
            self._thread.join(5)
            why = (
                self._fatal
                or f"no MQTT broker answered at {self.endpoint.display()} within {timeout_s:.0f} s"
            )
            advice = "start one (e.g. 'mosquitto -p 1883') or point CITYPULSE_MQTT_URL / --mqtt-url at yours"
            raise BrokerUnreachableError(
                f"{why}; {advice}"
                if not self._fatal
                else f"broker {self.endpoint.display()} refused the simulator: {why}"
            )

    def publish(self, topic: str, payload: bytes) -> None:
        self.publish_many(((topic, payload),))

    def publish_many(self, messages: Sequence[tuple[str, bytes]] | Sequence[tuple[int, str, bytes]]) -> None:
        """Queue messages in order, blocking while too many are unacknowledged.

        Each message is ``(topic, payload)``, or ``(send_ms, topic, payload)`` as a slice comes.

        Packets are encoded outside the lock and handed over as one block, so the
        network thread writes thousands with one call and no per-message work.
        """
        with self._producer:
            done = 0
            while done < len(messages):
                with self._lock:
                    self._wait_for_room()
                    if self._gave_up():
                        rest = len(messages) - done
                        self.counts.published += rest
                        self._fail("broker unreachable", rest)
                        return
                    room = max(1, self._cap() - self.counts.outstanding)
                    take = messages[done : done + room]
                    ids = [self._take_id() for _ in take] if self.qos else []
                    self.counts.published += len(take)
                done += len(take)
                self._hand_over(take, ids)

    def _hand_over(
        self, take: Sequence[tuple[str, bytes]] | Sequence[tuple[int, str, bytes]], ids: list[int]
    ) -> None:
        """Encode ``take`` as one block of PUBLISH packets and queue it (ids: QoS 1 packet ids)."""
        qos = self.qos
        block = publish_block(take, ids, qos, self.v5, self.limits.maximum_packet_size)
        data = block.data
        with self._lock:
            if qos and data:
                ends = list(itertools.accumulate(block.lengths))
                starts = [0, *ends[:-1]]
                self._unacked.update(
                    (i, (data, start, end)) for i, start, end in zip(block.ids, starts, ends, strict=True)
                )
            if data:
                self._queue.append((data, 0 if qos else block.count))
            if block.too_large:
                self._fail("larger than the broker's maximum packet size", block.too_large)
            if self._idle:
                self._idle = False
                self._wake()

    def outstanding(self) -> int:
        with self._lock:
            return self.counts.outstanding

    @property
    def connected(self) -> bool:
        return self._connected

    def close(self, timeout_s: float) -> PublishCounts:
        """Wait up to ``timeout_s`` for every acknowledgement, fail the rest, disconnect."""
        deadline = time.monotonic() + timeout_s
        with self._lock:
            while self.counts.outstanding > 0:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._lock.wait(min(remaining, 0.25))
            lost = self.counts.outstanding
            if lost:
                self._fail("not acknowledged before the run ended", lost)
                self._unacked.clear()
                self._queue.clear()
        if lost:
            log.warning("%d messages were never acknowledged by the broker", lost)
        self._stop.set()
        self._wake()
        self._thread.join(10)
        self._wake_r.close()
        self._wake_w.close()
        return self.counts

    # --- helpers (lock held) -------------------------------------------------------------------------
    def _cap(self) -> int:
        return min(self.max_outstanding, self.limits.receive_maximum) if self.qos else self.max_outstanding

    def _wait_for_room(self) -> None:
        while self.counts.outstanding >= self._cap() and not self._stop.is_set() and not self._gave_up():
            self._lock.wait(0.25)

    def _gave_up(self) -> bool:
        return (
            not self._connected
            and self._down_since is not None
            and time.monotonic() - self._down_since >= self.give_up_after_s
            and self._first_connack.is_set()
        )

    def _take_id(self) -> int:
        """The next packet id not in use. Ids taken for a block enter ``_unacked`` when the block is
        handed over; one producer at a time (``_producer``), so none is handed out twice."""
        for _ in range(65_535):
            self._next_id = self._next_id % 65_535 + 1
            if self._next_id not in self._unacked:
                return self._next_id
        raise RuntimeError("no free MQTT packet id: 65,535 messages are unacknowledged")

    def _fail(self, why: str, count: int) -> None:
        self.counts.failed += count
        self.counts.failures[why] += count
        self._lock.notify_all()

    def _wake(self) -> None:
        with contextlib.suppress(OSError):
            self._wake_w.send(b"\x00")

    # --- network thread ----------------------------------------------------------------------------------
    def _run(self) -> None:
        backoff = 0.25
        while not self._stop.is_set():
            try:
                sock = self._connect()
            except (OSError, ConnectionError) as bad:
                if self._fatal and not self._first_connack.is_set():
                    self._first_connack.set()
                    return
                log.debug("connecting to %s failed: %s", self.endpoint.display(), bad)
                if self._stop.wait(backoff):
                    break
                backoff = min(backoff * 2, 5.0)
                continue
            backoff = 0.25
            try:
                self._serve(sock)
            except (OSError, ConnectionError) as bad:
                if not self._stop.is_set():
                    log.warning(
                        "simulator lost the broker %s (%s); reconnecting", self.endpoint.display(), bad
                    )
            finally:
                self._disconnected(sock)
        with self._lock:
            self._connected = False
            self._lock.notify_all()

    def _connect(self) -> socket.socket:
        raw = socket.create_connection((self.endpoint.host, self.endpoint.port), timeout=5.0)
        sock: socket.socket = raw
        if self.endpoint.tls:
            context = self.ssl_context or ssl.create_default_context()
            sock = context.wrap_socket(raw, server_hostname=self.endpoint.host)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        endpoint = self.endpoint
        sock.sendall(
            connect_packet(self.client_id, endpoint.username, endpoint.password, self.keepalive_s, self.v5)
        )
        limits = self._read_connack(sock)
        sock.setblocking(False)
        with self._lock:
            self.limits = limits
            if self._first_connack.is_set():
                self.counts.reconnects += 1
                log.info("simulator reconnected to %s; re-sending %d unacknowledged", self.endpoint.display(),
                         len(self._unacked))  # fmt: skip
            if self.qos and self._unacked:
                # Everything unacknowledged goes again, in its original order; DUP marks those sent before.
                again = resend(self._unacked.items(), [block for block, _ in self._queue])
                self._queue = deque([(again, 0)])
            self._connected = True
            self._down_since = None
            self._lock.notify_all()
        self._first_connack.set()
        return sock

    def _read_connack(self, sock: socket.socket) -> BrokerLimits:
        sock.settimeout(10.0)
        data = b""
        while True:
            chunk = sock.recv(4096)
            if not chunk:
                raise ConnectionError("the broker closed the connection before CONNACK")
            data += chunk
            parsed = split_packet(data)
            if parsed is not None:
                break
        kind, body, _ = parsed
        code, why, limits = connack(kind, body, self.v5)
        if code:
            if code in FATAL_CONNACK:
                self._fatal = why
            log.error("broker %s refused the simulator: %s", self.endpoint.display(), why)
            raise ConnectionError(why)
        if self.qos > limits.maximum_qos:
            self._fatal = f"the broker accepts QoS {limits.maximum_qos} only; use --qos {limits.maximum_qos}"
            raise ConnectionError(self._fatal)
        return limits

    def _serve(self, sock: socket.socket) -> None:
        selector = selectors.DefaultSelector()
        selector.register(self._wake_r, selectors.EVENT_READ)
        keepalive = self.limits.server_keepalive_s or self.keepalive_s
        incoming = bytearray()
        outgoing = memoryview(b"")
        in_flight_qos0 = 0
        last_sent = last_heard = time.monotonic()
        ping_sent: float | None = None
        selector.register(sock, selectors.EVENT_READ)
        watching = selectors.EVENT_READ
        try:
            while not self._stop.is_set():
                if not outgoing:
                    if in_flight_qos0:
                        self._written_qos0(in_flight_qos0)
                        in_flight_qos0 = 0
                    batch, in_flight_qos0 = self._next_batch()
                    outgoing = memoryview(batch)
                events = selectors.EVENT_READ | (selectors.EVENT_WRITE if outgoing else 0)
                if events != watching:
                    selector.modify(sock, events)
                    watching = events
                timeout = max(0.0, min(last_sent + keepalive / 2 - time.monotonic(), 1.0))
                ready = selector.select(timeout)
                for key, mask in ready:
                    if key.fileobj is self._wake_r:
                        with contextlib.suppress(BlockingIOError):
                            self._wake_r.recv(4096)
                        continue
                    if mask & selectors.EVENT_READ and self._receive(sock, incoming):
                        last_heard = time.monotonic()
                        ping_sent = None
                    if mask & selectors.EVENT_WRITE and outgoing:
                        try:
                            written = sock.send(outgoing[:_WRITE_CHUNK])
                        except (BlockingIOError, ssl.SSLWantWriteError, ssl.SSLWantReadError):
                            written = 0
                        outgoing = outgoing[written:]
                        last_sent = time.monotonic()
                now = time.monotonic()
                if ping_sent is not None and now - ping_sent > keepalive:
                    raise ConnectionError(f"no answer from the broker for {keepalive} s")
                if now - last_sent >= keepalive / 2 and not outgoing and ping_sent is None:
                    outgoing = memoryview(PINGREQ)
                    ping_sent = now
                if now - last_heard > 1.5 * keepalive and ping_sent is not None:
                    raise ConnectionError(f"no answer from the broker for {keepalive} s")
            if not outgoing:
                with contextlib.suppress(OSError):
                    sock.setblocking(True)
                    sock.sendall(DISCONNECT_PACKET)
        except (OSError, ConnectionError):
            if in_flight_qos0:
                with self._lock:
                    self._fail("broker connection lost (QoS 0)", in_flight_qos0)
            raise
        finally:
            selector.close()

    def _written_qos0(self, count: int) -> None:
        with self._lock:
            self.counts.acknowledged += count  # QoS 0: delivered as far as MQTT can tell
            self._lock.notify_all()

    def _next_batch(self) -> tuple[bytes, int]:
        """The next blocks of packets to write, joined (about a megabyte at most), and how many are QoS 0."""
        with self._lock:
            if not self._queue:
                self._idle = True
                return b"", 0
            blocks: list[bytes] = []
            size = qos0 = 0
            while self._queue and size < _WRITE_CHUNK:
                block, count = self._queue.popleft()
                blocks.append(block)
                size += len(block)
                qos0 += count
            return (blocks[0] if len(blocks) == 1 else b"".join(blocks)), qos0

    def _receive(self, sock: socket.socket, incoming: bytearray) -> bool:
        try:
            data = sock.recv(1 << 16)
        except (BlockingIOError, ssl.SSLWantReadError, ssl.SSLWantWriteError):
            return False
        if not data:
            raise ConnectionError("the broker closed the connection")
        incoming += data
        ids, codes = take_acks(incoming)
        if ids:
            self._acknowledge(ids, codes)
        return True

    def _acknowledge(self, ids: list[int], codes: bytes) -> None:
        callback = self._on_acknowledged
        with self._lock:
            counts = self.counts
            if callback is None and (not codes or max(codes) < 0x80):
                pop = self._unacked.pop
                counts.acknowledged += sum(1 for i in ids if pop(i, None) is not None)
                self._lock.notify_all()
                return
            for packet_id, code in zip(ids, codes, strict=True):
                where = self._unacked.pop(packet_id, None)
                if where is None:
                    continue
                if code >= 0x80:
                    self._fail(f"refused by the broker: {REASONS_V5.get(code, hex(code))}", 1)
                else:
                    counts.acknowledged += 1
                    if callback is not None:
                        block, start, end = where
                        callback(block[start:end])
            self._lock.notify_all()

    def _disconnected(self, sock: socket.socket) -> None:
        with contextlib.suppress(OSError):
            sock.close()
        with self._lock:
            if self._connected:
                self._down_since = time.monotonic()
            self._connected = False
            self._lock.notify_all()
