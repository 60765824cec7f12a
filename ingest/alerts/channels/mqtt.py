"""MQTT: every alert event on a topic subscribers filter with wildcards, open alerts retained.

Each event is published at QoS 1 on
``{prefix}/alerts/events/{severity}/{kind}/{district}/{device-or-area}``, and the
alert's current state is retained on ``{prefix}/alerts/open/{alert id}``, replaced
by an empty retained message when it resolves, so a subscriber that connects
late receives what is open now. The channel has its own connection (client id
``<ingest client id>-alerts``), so a broker slow to take alerts never holds up
the readings' acknowledgements.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import paho.mqtt.client as mqtt

from ingest.alerts.channels.base import AlertChannel, ChannelPlugin, DeliveryError, Notification, Subscriber
from ingest.mqtt_client import make_client, stop_quietly
from processors.endpoint import ConnectOptions
from processors.topics import TopicScheme

if TYPE_CHECKING:
    from ingest.settings import Settings

PUBLISH_TIMEOUT_S = 10.0


class MqttChannel(AlertChannel):
    name = "mqtt"

    def __init__(self, options: ConnectOptions, topics: TopicScheme) -> None:
        self.options = options
        self.topics = topics
        self._subscribers = (Subscriber("mqtt"),)
        self._connected = threading.Event()
        self._client = make_client(options)
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = lambda *_: self._connected.clear()
        self._started = False

    def subscribers(self) -> Sequence[Subscriber]:
        return self._subscribers

    def start(self) -> None:
        """Connect in the background; paho keeps reconnecting, deliveries wait (and retry) meanwhile."""
        opts = self.options
        self._client.connect_async(opts.endpoint.host, opts.endpoint.port, keepalive=opts.keepalive_s)
        self._client.loop_start()
        self._started = True

    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        if not reason.is_failure:
            self._connected.set()

    def deliver(self, notification: Notification) -> None:
        if not self._connected.wait(timeout=2.0):
            raise DeliveryError(f"not connected to the MQTT broker {self.options.endpoint.display()}")
        infos = []
        for event in notification.events:
            alert = event["alert"]
            topic = self.topics.alert_event(
                alert["severity"], alert["kind"], alert["district"], alert["target"]
            )
            body = json.dumps(event, ensure_ascii=False, sort_keys=True).encode()
            infos.append(self._client.publish(topic, body, qos=1))
            state = (
                b""
                if alert["state"] == "resolved"
                else json.dumps(alert, ensure_ascii=False, sort_keys=True).encode()
            )
            infos.append(self._client.publish(self.topics.alert_open(alert["id"]), state, qos=1, retain=True))
        for info in infos:
            if info.rc not in (mqtt.MQTT_ERR_SUCCESS, mqtt.MQTT_ERR_NO_CONN):
                raise DeliveryError(f"MQTT publish failed: {mqtt.error_string(info.rc)}")
            try:
                info.wait_for_publish(PUBLISH_TIMEOUT_S)
            except (RuntimeError, ValueError) as bad:
                raise DeliveryError(f"MQTT publish failed: {bad}") from bad
            if not info.is_published():
                raise DeliveryError(f"the MQTT broker did not acknowledge within {PUBLISH_TIMEOUT_S:.0f} s")

    def close(self) -> None:
        if self._started:
            stop_quietly(self._client)

    def describe(self) -> str:
        return f"mqtt ({self.topics.prefix}/alerts/...)"


def _open(settings: Settings) -> AlertChannel | None:
    if not settings.alerts.mqtt:
        return None
    options = ConnectOptions(
        endpoint=settings.mqtt,
        client_id=f"{settings.mqtt_client_id}-alerts",
        protocol=settings.mqtt_protocol,
        keepalive_s=settings.mqtt_keepalive_s,
    )
    return MqttChannel(replace(options, persistent_session=False), settings.topics)


PLUGIN = ChannelPlugin(
    name="mqtt", factory=_open, description="Alert events and retained open alerts on MQTT."
)
