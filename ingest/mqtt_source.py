"""MQTT in: QoS 1 deliveries that are acknowledged only after they are safe.

The broker keeps every message it has not had a PUBACK for, across our crashes and
restarts (persistent session, stable client id). So the service takes messages,
makes them durable, and only then acknowledges them: a crash at any point means
redelivery, never loss.

Memory is bounded twice. MQTT 5's receive maximum asks the broker to push at
most that many unacknowledged messages; and because brokers do not all keep to
it (Mosquitto 2.0.11 was measured sending hundreds past it once acknowledgements
flow), the local queue holds at most ``max_pending`` messages too. When it is
full, the network thread waits, paho stops reading the socket, and the broker
keeps the rest: backpressure, not growth.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import paho.mqtt.client as mqtt

from ingest.mqtt_client import describe_failure, disconnect, make_client, start
from processors.endpoint import ConnectOptions
from processors.validate import RawMessage

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Delivery:
    message: RawMessage
    mid: int
    qos: int
    generation: int
    """Connection the message came on; acks from an older connection are stale."""


class MqttSource:
    """Subscribes, queues deliveries, acknowledges on request, republishes dead letters."""

    def __init__(
        self,
        options: ConnectOptions,
        subscriptions: Sequence[str],
        *,
        qos: int = 1,
        status_topic: str | None = None,
        max_pending: int = 100_000,
        ignore: Callable[[str], bool] | None = None,
    ) -> None:
        """``ignore`` names topics that arrive through the subscriptions but are not input
        (what the service publishes itself): they are acknowledged and dropped at once."""
        self.options = replace(
            options,
            manual_ack=True,
            persistent_session=True,
            will_topic=status_topic,
            will_payload=b"offline",
        )
        self.subscriptions = tuple(subscriptions)
        self.qos = qos
        self.status_topic = status_topic
        self._ignore = ignore
        self.ignored = 0
        """Messages dropped as not input (``ignore``)."""
        self._queue: queue.Queue[Delivery] = queue.Queue(maxsize=max_pending)
        self._connected = threading.Event()
        self._stopping = threading.Event()
        self._paused = threading.Event()
        self._generation = 0
        self._client = make_client(self.options)
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect
        self._client.on_message = self._on_message
        self.reconnects = 0
        self.sessions_lost = 0
        """Reconnects where the broker had forgotten our session (and so the messages queued for it)."""

    # --- lifecycle ---------------------------------------------------------------
    def start(self, timeout_s: float = 30.0) -> None:
        start(self._client, self.options, self._connected, timeout_s)

    def stop(self) -> None:
        """Publish our offline status and disconnect cleanly; unacked messages stay at the broker."""
        self._stopping.set()
        if self.status_topic and self._connected.is_set():
            info = self._client.publish(self.status_topic, b"offline", qos=1, retain=True)
            info.wait_for_publish(timeout=2)
        disconnect(self._client)

    def pause(self) -> None:
        """Take no new deliveries: what arrives from now on stays unacknowledged for the next run.

        Stopping calls this first, so draining finishes what was already received
        instead of chasing a stream that never ends.
        """
        self._paused.set()

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    def pending(self) -> int:
        return self._queue.qsize()

    # --- consuming -----------------------------------------------------------------
    def take(self, max_messages: int, linger_s: float, wait_s: float, idle_s: float = 0.05) -> list[Delivery]:
        """Up to ``max_messages`` deliveries.

        Waits up to ``wait_s`` for the first, then gathers more for at most
        ``linger_s``, returning early once nothing has arrived for ``idle_s``:
        large batches under load, low latency when quiet.
        """
        try:
            first = self._queue.get(timeout=wait_s)
        except queue.Empty:
            return []
        taken = [first]
        deadline = time.monotonic() + linger_s
        while len(taken) < max_messages:
            try:
                taken.append(self._queue.get_nowait())
                continue
            except queue.Empty:
                pass
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            try:
                taken.append(self._queue.get(timeout=min(idle_s, remaining)))
            except queue.Empty:
                break
        return taken

    def ack(self, deliveries: Sequence[Delivery]) -> int:
        """Acknowledge deliveries of the current connection; return how many were sent.

        Deliveries from a previous connection are skipped: the broker redelivers
        them on this one, and that copy is acknowledged instead.
        """
        sent = 0
        generation = self._generation
        for d in deliveries:
            if d.qos > 0 and d.generation == generation:
                self._client.ack(d.mid, d.qos)
                sent += 1
        return sent

    def publish(self, topic: str, payload: bytes, qos: int = 1, retain: bool = False) -> None:
        """Best-effort publish (dead letters, status) on the same connection."""
        self._client.publish(topic, payload, qos=qos, retain=retain)

    # --- paho callbacks (network thread) ---------------------------------------------
    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        if reason.is_failure:
            log.error(
                "MQTT broker %s refused the connection: %s",
                self.options.endpoint.display(),
                describe_failure(reason),
            )
            return
        self._generation += 1
        if self._generation > 1:
            self.reconnects += 1
            if flags.session_present:
                log.warning("reconnected to %s (session resumed)", self.options.endpoint.display())
            else:
                self.sessions_lost += 1
                log.error(
                    "reconnected to %s, but the broker no longer had our session: messages it queued "
                    "for us are gone (it restarted without persistence, or the session expired); "
                    "give it 'persistence true' and a session expiry longer than any outage",
                    self.options.endpoint.display(),
                )
        client.subscribe([(topic, self.qos) for topic in self.subscriptions])
        if self.status_topic:
            client.publish(self.status_topic, b"online", qos=1, retain=True)
        self._connected.set()

    def _on_disconnect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        self._connected.clear()
        if not self._stopping.is_set():
            log.warning(
                "lost the MQTT broker %s (%s); reconnecting",
                self.options.endpoint.display(),
                describe_failure(reason),
            )

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        # Never raise here: an exception inside on_message can make paho retry forever.
        try:
            try:
                topic = msg.topic
            except UnicodeDecodeError:  # rejected downstream as a bad topic, and acknowledged
                topic = msg._topic.decode("utf-8", "replace")
            if self._ignore is not None and self._ignore(topic):
                self.ignored += 1
                if msg.qos > 0:
                    client.ack(msg.mid, msg.qos)
                return
            delivery = Delivery(RawMessage(topic, bytes(msg.payload)), msg.mid, msg.qos, self._generation)
            while not (self._stopping.is_set() or self._paused.is_set()):
                try:
                    self._queue.put(delivery, timeout=0.5)
                    return
                except queue.Full:
                    continue
        except Exception:
            log.exception("could not queue a message from %s", getattr(msg, "topic", "?"))
