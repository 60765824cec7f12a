"""Building paho-mqtt clients the same way wherever citypulse still uses paho.

The ingest service reads with its own lean client (``ingest/mqtt_link.py``); paho
serves the alert channel, ``citypulse alerts tail`` and the benchmark's paho
receiver, where its per-message cost does not matter. paho-mqtt 2.x can
acknowledge a QoS 1 message when *we* decide (``manual_ack``), which that
receiver uses to acknowledge only after its write, as ingest does.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from ingest.tls import client_context
from processors.endpoint import BrokerUnreachableError, ConnectOptions

log = logging.getLogger(__name__)


def make_client(options: ConnectOptions) -> mqtt.Client:
    """A configured, not yet connected paho client."""
    v5 = options.protocol == "5"
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2,
        client_id=options.client_id,
        protocol=mqtt.MQTTv5 if v5 else mqtt.MQTTv311,
        clean_session=None if v5 else not options.persistent_session,
        manual_ack=options.manual_ack,
        reconnect_on_failure=True,
    )
    client.enable_logger(logging.getLogger("paho"))
    client.reconnect_delay_set(min_delay=1, max_delay=15)
    if options.endpoint.username is not None:
        client.username_pw_set(options.endpoint.username, options.endpoint.password)
    context = client_context(options.endpoint)
    if context is not None:
        client.tls_set_context(context)
    if options.will_topic:
        client.will_set(options.will_topic, options.will_payload, qos=1, retain=True)
    return client


def connect_properties(options: ConnectOptions) -> Properties | None:
    if options.protocol != "5":
        return None
    props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
    if options.persistent_session:
        props.SessionExpiryInterval = options.session_expiry_s
    if options.receive_maximum is not None:
        props.ReceiveMaximum = options.receive_maximum
    return props


def start(client: mqtt.Client, options: ConnectOptions, connected: threading.Event, timeout_s: float) -> None:
    """Connect in the background and wait up to ``timeout_s`` for the first CONNACK.

    paho keeps reconnecting on its own afterwards; ``connected`` is set by the
    caller's on_connect callback.
    """
    v5 = options.protocol == "5"
    clean_start: Any = (not options.persistent_session) if v5 else mqtt.MQTT_CLEAN_START_FIRST_ONLY
    client.connect_async(
        options.endpoint.host,
        options.endpoint.port,
        keepalive=options.keepalive_s,
        clean_start=clean_start,
        properties=connect_properties(options),
    )
    client.loop_start()
    if not connected.wait(timeout_s):
        client.loop_stop()
        client.disconnect()
        raise BrokerUnreachableError(
            f"no MQTT broker answered at {options.endpoint.display()} within {timeout_s:.0f} s; "
            "start one (e.g. 'mosquitto -p 1883') or point CITYPULSE_MQTT_URL / --mqtt-url at yours"
        )


def disconnect(client: mqtt.Client) -> None:
    """Disconnect cleanly and stop the network thread, without a false error in the log.

    paho's own log is switched off first: once its network thread has sent the
    DISCONNECT it polls the socket it just closed once more and logs "Client is
    not connected" at ERROR, on a clean stop. (Stopping the thread before
    disconnecting avoids that too, but costs a second: the thread only notices
    at the end of its one-second poll.)
    """
    client.disable_logger()
    client.disconnect()
    client.loop_stop()
