"""One MQTT connection, kept up by one thread: a persistent session that receives in bulk.

The service's receive path. paho handles one packet at a time in Python and builds
an MQTT 5 properties object for each (measured: 63-66 µs of CPU per message, two
thirds of the ingest's time); this link reads what the socket has (up to a
megabyte), cuts every PUBLISH in it at once (:func:`processors.mqtt_inbound.cut`,
about 1.5 µs a message) and hands the columns on. Acknowledgements go out as one
block per cycle.

What it keeps, as paho did for the service:

- **The session.** CONNECT without clean start (MQTT 5: with a session expiry and
  a receive maximum; 3.1.1: clean session off) and the subscriptions again on
  every connect. The CONNACK says whether the broker still had the session; if
  it had not, the messages it queued for us are gone and the owner is told.
- **Reconnects** with capped backoff (0.5 s doubling to 15 s), for ever, until
  stopped; a refusal that retrying cannot cure (credentials, rights) stops the
  first connect with the broker's reason.
- **Keep-alive**: a PINGREQ when nothing was sent for half the interval; a broker
  silent for the whole interval after one is taken as gone (not while reading is
  held back on purpose: its answer waits behind the messages then).
- **Backpressure**: the owner says how many more messages it takes (``room``); a
  read is cut no further than that (the rest waits in the link's buffer), and with
  no room the socket is left alone and TCP flow control holds the broker back.
- **The last will** (the service's ``offline`` status) and QoS 1 publishing for
  what the service sends itself (dead letters, status), within the broker's
  receive maximum, sent again with DUP after a reconnect.
- **TLS**: any ``ssl.SSLContext`` (TLS 1.2 or later by default), and user name and
  password from the endpoint.

The socket belongs to this thread alone (an ``SSLSocket`` must not be read and
written from two threads at once); other threads hand it bytes through
:meth:`MqttLink.send` and wake it through a socket pair.
"""

from __future__ import annotations

import contextlib
import logging
import selectors
import socket
import ssl
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ingest.tls import client_context
from processors.endpoint import ConnectOptions
from processors.mqtt_inbound import (
    DISCONNECT,
    DISCONNECT_PACKET,
    PINGREQ,
    PUBACK,
    SUBACK,
    Cut,
    MalformedPacketError,
    as_duplicate,
    cut,
    disconnect_reason,
    publish_packet,
    suback_refusals,
    subscribe_packet,
)
from processors.mqtt_wire import (
    FATAL_CONNACK,
    U16,
    BrokerLimits,
    Will,
    connack,
    connect_packet,
    session_present,
    split_packet,
)

log = logging.getLogger(__name__)

READ_BYTES = 1 << 20
"""Most bytes taken from the socket per wake-up: thousands of readings, cut in one pass."""
MAX_WAITING_PUBLISHES = 100_000
"""Own publishes (dead letters) held beyond the broker's receive maximum; more are dropped and logged."""
FIRST_BACKOFF_S = 0.5
MAX_BACKOFF_S = 15.0


@dataclass(frozen=True, slots=True)
class Session:
    """What a CONNACK told: this connection's number and whether the broker kept our session."""

    generation: int
    resumed: bool


class MqttLink:
    """A subscriber's connection, run by its own thread; see the module docstring.

    Callbacks run on the link's thread: ``on_connect(session)`` after each accepted
    CONNACK, before anything from that connection is received; ``on_receive(cut,
    generation)`` for every read's PUBLISH packets; ``on_subscribed()`` when the
    broker granted the subscriptions (a refusal is logged as an error). ``room()`` (how many
    messages the owner takes now) is asked before each read.
    """

    def __init__(
        self,
        options: ConnectOptions,
        subscriptions: Sequence[str],
        *,
        qos: int,
        on_connect: Callable[[Session], None],
        on_receive: Callable[[Cut, int], None],
        on_subscribed: Callable[[], None],
        room: Callable[[], int],
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.options = options
        self.subscriptions = tuple(subscriptions)
        self.qos = qos
        self.v5 = options.protocol == "5"
        self._on_connect = on_connect
        self._on_receive = on_receive
        self._on_subscribed = on_subscribed
        self._room = room
        self._ssl_context = ssl_context if ssl_context is not None else client_context(options.endpoint)
        self.limits = BrokerLimits()
        self.generation = 0
        self.redelivered = 0
        """Messages the broker sent again (DUP): received before on an earlier connection."""
        self._lock = threading.Condition()
        self._acks: deque[tuple[int, bytes]] = deque()
        """PUBACK blocks to send, each for the connection (generation) its messages came on."""
        self._publishes: deque[tuple[str, bytes, int, bool]] = deque()
        """Own messages (topic, payload, QoS, retain) not yet sent: beyond the broker's receive maximum,
        or while not connected."""
        self._again: dict[int, bytes] = {}
        """Own QoS 1 packets sent on a lost connection, by packet id, to be sent again (DUP) first."""
        self._in_flight: dict[int, bytes] = {}
        """Own QoS 1 packets sent and not yet acknowledged, by packet id (insertion = send order)."""
        self._next_id = 0
        self._subscribe_id = 0
        self.dropped_publishes = 0
        self._connected = False
        self._stop = threading.Event()
        self._first = threading.Event()
        self.fatal: str | None = None
        self._leftover = b""
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._thread = threading.Thread(target=self._run, name="citypulse-mqtt", daemon=True)

    # --- any thread ---------------------------------------------------------------------------
    def start(self) -> None:
        self._thread.start()

    def wait_first(self, timeout_s: float) -> bool:
        """Wait for the first CONNACK; True once connected (False on timeout or refusal)."""
        return self._first.wait(timeout_s) and self.fatal is None

    @property
    def connected(self) -> bool:
        return self._connected

    def acknowledge(self, generation: int, block: bytes) -> None:
        """Send a block of PUBACKs for messages that came on connection ``generation``."""
        if not block:
            return
        with self._lock:
            self._acks.append((generation, block))
        self.wake()

    def publish(self, topic: str, payload: bytes, qos: int = 1, retain: bool = False) -> None:
        """Queue one message; QoS 1 ones go within the broker's receive maximum, and again on reconnect."""
        with self._lock:
            if len(self._publishes) >= MAX_WAITING_PUBLISHES:
                self.dropped_publishes += 1
                if self.dropped_publishes == 1 or self.dropped_publishes % 10_000 == 0:
                    log.warning(
                        "%d messages for %s dropped: %d wait for the broker already (it acknowledges "
                        "too slowly, or is away)",
                        self.dropped_publishes,
                        topic,
                        len(self._publishes),
                    )
                return
            self._publishes.append((topic, payload, qos, retain))
        self.wake()

    def awaiting_acknowledgements(self) -> bool:
        """Whether own QoS 1 messages were sent and not yet acknowledged (read without the lock)."""
        return bool(self._in_flight)

    def flush(self, timeout_s: float) -> bool:
        """Wait until the broker acknowledged every own QoS 1 message (True), or ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        with self._lock:
            while self._in_flight or self._publishes or self._again:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not self._connected:
                    return False
                self._lock.wait(min(remaining, 0.1))
        return True

    def stop(self) -> None:
        """Send what is queued, DISCONNECT (so the broker keeps the will to itself), close."""
        self._stop.set()
        self.wake()
        self._thread.join(10)
        self._wake_r.close()
        self._wake_w.close()

    def wake(self) -> None:
        with contextlib.suppress(OSError):
            self._wake_w.send(b"\x00")

    # --- the link's thread ------------------------------------------------------------------------
    def _take_id(self) -> int:
        """A packet id for an own message or SUBSCRIBE, not in use (lock held)."""
        for _ in range(65_535):
            self._next_id = self._next_id % 65_535 + 1
            taken = self._next_id in self._in_flight or self._next_id in self._again
            if not taken and self._next_id != self._subscribe_id:
                return self._next_id
        raise RuntimeError("no free MQTT packet id: 65,535 own messages are unacknowledged")

    def _run(self) -> None:
        backoff = FIRST_BACKOFF_S
        while not self._stop.is_set():
            try:
                sock = self._connect()
            except (OSError, ConnectionError) as failed:
                if self.fatal is not None and not self._first.is_set():
                    self._first.set()
                    return
                log.debug("connecting to %s failed: %s", self.options.endpoint.display(), failed)
                if self._stop.wait(backoff):
                    break
                backoff = min(backoff * 2, MAX_BACKOFF_S)
                continue
            backoff = FIRST_BACKOFF_S
            try:
                self._serve(sock)
            except (OSError, ConnectionError) as lost:
                if not self._stop.is_set():
                    log.warning(
                        "lost the MQTT broker %s (%s); reconnecting", self.options.endpoint.display(), lost
                    )
            finally:
                self._connected = False
                with contextlib.suppress(OSError):
                    sock.close()

    def _connect(self) -> socket.socket:
        options, endpoint = self.options, self.options.endpoint
        raw = socket.create_connection((endpoint.host, endpoint.port), timeout=5.0)
        sock: socket.socket = raw
        try:
            if self._ssl_context is not None:
                sock = self._ssl_context.wrap_socket(raw, server_hostname=endpoint.host)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            will = Will(options.will_topic, options.will_payload) if options.will_topic else None
            sock.sendall(
                connect_packet(
                    options.client_id,
                    endpoint.username,
                    endpoint.password,
                    options.keepalive_s,
                    self.v5,
                    clean_start=not options.persistent_session,
                    session_expiry_s=options.session_expiry_s if options.persistent_session else None,
                    receive_maximum=options.receive_maximum,
                    will=will,
                )
            )
            resumed, leftover = self._read_connack(sock)
            with self._lock:
                self._subscribe_id = 0
                self._subscribe_id = self._take_id()
            sock.sendall(subscribe_packet(self._subscribe_id, self.subscriptions, self.qos, self.v5))
        except BaseException:
            sock.close()
            raise
        sock.setblocking(False)
        with self._lock:
            self.generation += 1
            session = Session(self.generation, resumed)
            self._acks.clear()  # acknowledgements for the old connection's packet ids would be wrong here
            # Own messages the broker did not acknowledge go again, in order, before newer ones.
            self._again.update((i, as_duplicate(p)) for i, p in self._in_flight.items())
            self._in_flight.clear()
        self._leftover = leftover
        self._on_connect(session)
        self._connected = True
        # Connected and subscribing: a resumed session's queued messages may come before the
        # SUBACK (a whole backlog of them), so the owner must be taking them for it to be read.
        self._first.set()
        return sock

    def _read_connack(self, sock: socket.socket) -> tuple[bool, bytes]:
        """The CONNACK's verdict: whether the session was resumed, and any bytes read after it."""
        sock.settimeout(10.0)
        data = b""
        while (parsed := split_packet(data)) is None:
            chunk = sock.recv(4096)
            if not chunk:
                raise ConnectionError("the broker closed the connection before CONNACK")
            data += chunk
        kind, body, used = parsed
        code, why, limits = connack(kind, body, self.v5)
        if code:
            if code in FATAL_CONNACK:
                self.fatal = why
            log.error("MQTT broker %s refused the connection: %s", self.options.endpoint.display(), why)
            raise ConnectionError(why)
        if self.qos > limits.maximum_qos:
            self.fatal = f"the broker grants QoS {limits.maximum_qos} at most; citypulse needs QoS {self.qos}"
            raise ConnectionError(self.fatal)
        self.limits = limits
        return session_present(body), data[used:]

    def _serve(self, sock: socket.socket) -> None:
        selector = selectors.DefaultSelector()
        selector.register(self._wake_r, selectors.EVENT_READ)
        selector.register(sock, selectors.EVENT_READ)
        watching = selectors.EVENT_READ
        keepalive = self.limits.server_keepalive_s or self.options.keepalive_s
        incoming = self._leftover
        outgoing = memoryview(b"")
        last_sent = last_heard = time.monotonic()
        ping_sent: float | None = None
        try:
            while True:
                if not outgoing:
                    outgoing = memoryview(self._next_out())
                    if not outgoing and self._stop.is_set():
                        break  # what was queued (the last acknowledgements among it) is sent
                room = 0 if self._stop.is_set() else self._room()
                if incoming and room > 0:  # what an earlier read held beyond the room, first
                    incoming = self._handle(incoming, room)
                    room = self._room()
                if room <= 0:
                    ping_sent = None  # its answer waits behind the messages we leave unread
                events = (selectors.EVENT_READ if room > 0 else 0) | (
                    selectors.EVENT_WRITE if outgoing else 0
                )
                if events != watching:
                    if not events:
                        selector.unregister(sock)
                    elif watching:
                        selector.modify(sock, events)
                    else:
                        selector.register(sock, events)
                    watching = events
                now = time.monotonic()
                timeout = max(0.0, min(last_sent + keepalive / 2 - now, 1.0))
                for key, mask in selector.select(timeout):
                    if key.fileobj is self._wake_r:
                        with contextlib.suppress(BlockingIOError):
                            self._wake_r.recv(4096)
                        continue
                    if mask & selectors.EVENT_READ:
                        data = _receive(sock)
                        if data:
                            last_heard = time.monotonic()
                            ping_sent = None
                            incoming = self._handle(incoming + data if incoming else data, room)
                    if mask & selectors.EVENT_WRITE and outgoing:
                        try:
                            written = sock.send(outgoing[:READ_BYTES])
                        except (BlockingIOError, ssl.SSLWantWriteError, ssl.SSLWantReadError):
                            written = 0
                        outgoing = outgoing[written:]
                        last_sent = time.monotonic()
                now = time.monotonic()
                if now - last_sent >= keepalive / 2 and not outgoing:
                    outgoing = memoryview(PINGREQ)
                    ping_sent = ping_sent or now
                if ping_sent is not None and now - max(ping_sent, last_heard) > keepalive:
                    raise ConnectionError(f"no answer from the broker for {keepalive} s")
            with contextlib.suppress(OSError):
                sock.setblocking(True)
                sock.settimeout(2.0)
                sock.sendall(DISCONNECT_PACKET)
        finally:
            selector.close()

    def _next_out(self) -> bytes:
        """Acknowledgements for this connection, then own messages within the broker's receive maximum."""
        with self._lock:
            parts = [block for generation, block in self._acks if generation == self.generation]
            self._acks.clear()
            room = self.limits.receive_maximum - len(self._in_flight)
            while self._again and room > 0:
                packet_id = next(iter(self._again))
                packet = self._in_flight[packet_id] = self._again.pop(packet_id)
                parts.append(packet)
                room -= 1
            while self._publishes and (room > 0 or not self._publishes[0][2]):
                topic, payload, qos, retain = self._publishes.popleft()
                packet_id = self._take_id() if qos else 0
                packet = publish_packet(topic, payload, packet_id, qos, retain, self.v5)
                if qos:
                    self._in_flight[packet_id] = packet
                    room -= 1
                parts.append(packet)
            return b"".join(parts)

    def _handle(self, data: bytes, room: int) -> bytes:
        """What is complete in ``data`` (up to ``room`` publishes, for the owner; the rest here);
        returns what is left for later."""
        found = cut(data, self.v5, room)
        if found.qos2:
            raise MalformedPacketError("the broker sent QoS 2 messages to a QoS 1 subscription")
        self.redelivered += found.redelivered
        if found.topics:
            self._on_receive(found, self.generation)
        for first, body in found.others:
            kind = first & 0xF0
            if kind == PUBACK:
                with self._lock:
                    self._in_flight.pop(U16.unpack_from(body)[0], None)
                    self._lock.notify_all()
            elif kind == SUBACK:
                refused = suback_refusals(body, self.subscriptions, self.v5)
                where = self.options.endpoint.display()
                for line in refused:
                    log.error("MQTT broker %s refused the subscription %s", where, line)
                if len(refused) < len(self.subscriptions):
                    self._on_subscribed()
            elif kind == DISCONNECT:
                raise ConnectionError(f"the broker disconnected us: {disconnect_reason(body)}")
        return data[found.used :]


def _receive(sock: socket.socket) -> bytes:
    """What the socket has now, up to :data:`READ_BYTES` (every TLS record already decrypted, too)."""
    parts: list[bytes] = []
    size = 0
    tls = isinstance(sock, ssl.SSLSocket)
    while size < READ_BYTES:
        wanted = READ_BYTES - size
        try:
            chunk = sock.recv(wanted)
        except (BlockingIOError, ssl.SSLWantReadError, ssl.SSLWantWriteError):
            break
        if not chunk:
            if parts:
                break
            raise ConnectionError("the broker closed the connection")
        parts.append(chunk)
        size += len(chunk)
        if len(chunk) < wanted and not tls:  # the kernel's buffer is empty (TLS: one record at a time)
            break
    return parts[0] if len(parts) == 1 else b"".join(parts)
