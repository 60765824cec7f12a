"""The MQTT source against a real Mosquitto: what it takes as input, and a quiet clean stop."""

from __future__ import annotations

import logging

import pytest
from paho.mqtt import publish

from ingest.mqtt_source import MqttSource
from processors.endpoint import ConnectOptions, MqttEndpoint
from processors.topics import TopicScheme
from tests.e2e.helpers import wait_until
from tests.servers import Mosquitto


def source(url: str, client_id: str) -> MqttSource:
    topics = TopicScheme()
    return MqttSource(
        ConnectOptions(endpoint=MqttEndpoint.parse(url), client_id=client_id, protocol="5"),
        topics.subscriptions(),
        status_topic=topics.status("ingest", client_id),
        ignore=topics.is_own,
    )


def test_a_clean_stop_logs_no_paho_error(mosquitto: Mosquitto, caplog: pytest.LogCaptureFixture) -> None:
    # The error came from a race between paho's network thread and the disconnect, about one stop in two.
    caplog.set_level(logging.DEBUG, logger="paho")
    for i in range(10):
        running = source(mosquitto.url, f"quiet-stop-{i}")
        running.start(10)
        running.stop()
    errors = [r.getMessage() for r in caplog.records if r.name == "paho" and r.levelno >= logging.WARNING]
    assert not errors


def test_the_whole_prefix_is_taken_except_what_the_service_publishes(mosquitto: Mosquitto) -> None:
    taking = source(mosquitto.url, "prefix-taker")
    taking.start(10)
    try:
        sent = [
            "citypulse/v1/readings/air/a-1",
            "citypulse/v1/reading/air/a-1",
            "citypulse/v1/readings/air/a-1/x",
            "citypulse/v1/deadletter/bad_topic",
            "citypulse/v1/status/ingest/other",
            "citypulse/v1/alerts/air/a-1",
            "elsewhere/v1/readings/air/a-1",
        ]
        endpoint = MqttEndpoint.parse(mosquitto.url)
        publish.multiple(
            [{"topic": topic, "payload": b"{}", "qos": 1} for topic in sent],
            hostname=endpoint.host,
            port=endpoint.port,
            client_id="prefix-sender",
        )
        # Our own "online" status is retained under the prefix too, and ignored like the others.
        wait_until(lambda: taking.ignored >= 4, 10, "the service's own topics to arrive and be dropped")
        taken = [d.message.topic for d in taking.take(100, linger_s=0.5, wait_s=5)]
    finally:
        taking.stop()
    assert sorted(taken) == sorted(sent[:3]), "readings and mistyped topics in; our own and others' out"
