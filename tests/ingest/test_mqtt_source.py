"""The MQTT source against a real Mosquitto: input taken, acknowledged only when told, sessions kept."""

from __future__ import annotations

import logging
import os
import ssl
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt import publish
from paho.mqtt.enums import CallbackAPIVersion

from bench._servers import require_binary
from ingest.mqtt_source import MqttSource, Taken
from processors.endpoint import BrokerUnreachableError, ConnectOptions, MqttEndpoint
from processors.topics import TopicScheme
from tests.e2e.helpers import wait_until
from tests.servers import Mosquitto, running

AS_ROOT = "user root\n" if os.geteuid() == 0 else ""
"""Started as root, Mosquitto drops to user 'mosquitto', which cannot read files in a root-owned tmp dir."""


def source(url: str, client_id: str, **options: object) -> MqttSource:
    topics = TopicScheme()
    return Subscribed(
        ConnectOptions(
            endpoint=MqttEndpoint.parse(url),
            client_id=client_id,
            protocol=str(options.pop("protocol", "5")),  # type: ignore[arg-type]
            session_expiry_s=3600,
            receive_maximum=int(options.pop("receive_maximum", 1000)),  # type: ignore[call-overload]
            keepalive_s=int(options.pop("keepalive_s", 30)),  # type: ignore[call-overload]
        ),
        [str(t) for t in options.pop("subscriptions", topics.subscriptions())],  # type: ignore[attr-defined]
        status_topic=topics.status("ingest", client_id),
        ignore=topics.is_own,
        **options,  # type: ignore[arg-type]
    )


class Subscribed(MqttSource):
    """Starts, then waits for the SUBACK: these tests publish at once, to subscriptions in place."""

    def start(self, timeout_s: float = 30.0) -> None:
        super().start(timeout_s)
        wait_until(lambda: self.subscribed, timeout_s, "the broker to grant the subscriptions")


def send(broker: Mosquitto, messages: list[tuple[str, bytes]], client_id: str = "sender") -> None:
    publish.multiple(
        [{"topic": topic, "payload": payload, "qos": 1} for topic, payload in messages],
        hostname="127.0.0.1",
        port=broker.port,
        client_id=client_id,
    )


def readings(n: int, start: int = 0) -> list[tuple[str, bytes]]:
    return [(f"citypulse/v1/readings/air/a-{i}", b'{"n": %d}' % i) for i in range(start, start + n)]


def take_all(running_source: MqttSource, expected: int, timeout_s: float = 15) -> Taken:
    """Everything until ``expected`` messages (as one Taken, parts in order)."""
    deadline = time.monotonic() + timeout_s
    got = Taken()
    while len(got) < expected and time.monotonic() < deadline:
        more = running_source.take(10_000, linger_s=0.1, wait_s=0.5)
        got.messages.topics.extend(more.messages.topics)
        got.messages.payloads.extend(more.messages.payloads)
        got.acks.extend(more.acks)
    return got


def test_a_clean_stop_logs_nothing_to_worry_about(
    mosquitto: Mosquitto, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    for i in range(5):
        running_source = source(mosquitto.url, f"quiet-stop-{i}")
        running_source.start(10)
        running_source.stop()
    assert not [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]


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
        send(mosquitto, [(topic, b"{}") for topic in sent])
        # Our own "online" status is retained under the prefix too, and ignored like the others.
        wait_until(lambda: taking.ignored >= 4, 10, "the service's own topics to arrive and be dropped")
        taken = taking.take(100, linger_s=0.5, wait_s=5).messages.topics
    finally:
        taking.stop()
    assert sorted(taken) == sorted(sent[:3]), "readings and mistyped topics in; our own and others' out"


@pytest.mark.parametrize("protocol", ["5", "3.1.1"])
def test_only_acknowledged_messages_leave_the_session(mosquitto: Mosquitto, protocol: str) -> None:
    sent = readings(3000)
    first = source(mosquitto.url, f"acker-{protocol}", protocol=protocol, receive_maximum=65535)
    first.start(10)
    send(mosquitto, sent)
    got = take_all(first, len(sent))
    assert got.messages.payloads == [p for _, p in sent], "in order, each once"
    acked = Taken(got.messages[:1000], [(g, ids[:1000]) for g, ids in got.acks], 0)
    assert first.ack(acked) == 1000
    first.stop()
    again = source(mosquitto.url, f"acker-{protocol}", protocol=protocol)
    again.start(10)
    try:
        redelivered = take_all(again, 2000)
        assert sorted(redelivered.messages.payloads) == sorted(p for _, p in sent[1000:])
        assert again.sessions_lost == 0
        again.ack(redelivered)
    finally:
        again.stop()
    last = source(mosquitto.url, f"acker-{protocol}", protocol=protocol)
    last.start(10)
    try:
        assert len(last.take(100, linger_s=0.2, wait_s=1.0)) == 0, "every message was acknowledged"
    finally:
        last.stop()


def test_reading_stops_at_the_bounds_and_resumes_when_taken(mosquitto: Mosquitto) -> None:
    held = source(mosquitto.url, "held", max_pending=500, receive_maximum=65535)
    held.start(10)
    try:
        send(mosquitto, readings(20_000))
        wait_until(lambda: held.pending() >= 500, 10, "the first messages")
        time.sleep(0.5)
        assert held.pending() == 500, "a read is cut no further than the bound"
        got = take_all(held, 20_000, timeout_s=30)
        held.ack(got)
        assert len(got) == 20_000
    finally:
        held.stop()


def test_a_backlog_larger_than_the_bounds_queued_before_the_subscription_is_answered(
    mosquitto: Mosquitto,
) -> None:
    first = source(mosquitto.url, "backlogged", receive_maximum=65535)
    first.start(10)
    first.stop()
    big = [(topic, payload + b" " * 20_000) for topic, payload in readings(300)]
    send(mosquitto, big)  # 6 MB waiting for the session, and the SUBACK behind it
    again = MqttSource(
        first.options, first.subscriptions, max_pending_bytes=2**20, ignore=TopicScheme().is_own
    )
    again.start(10)  # returns: a start must not wait for what comes after the backlog
    try:
        got = take_all(again, 300)
        again.ack(got)
        assert got.messages.payloads == [p for _, p in big]
        wait_until(lambda: again.subscribed, 10, "the SUBACK, read once the backlog was taken")
    finally:
        again.stop()


def test_a_broker_restart_without_persistence_is_a_lost_session(tmp_path: Path) -> None:
    broker = Mosquitto(tmp_path / "m")
    with running(broker):
        running_source = source(broker.url, "forgotten", keepalive_s=5)
        running_source.start(10)
        try:
            broker.restart()
            wait_until(lambda: running_source.reconnects == 1, 20, "a reconnect")
            assert running_source.sessions_lost == 1
            send(broker, readings(10))
            assert len(take_all(running_source, 10)) == 10, "subscribed again on the new connection"
        finally:
            running_source.stop()


def test_dead_letters_are_published_beyond_the_brokers_receive_maximum(tmp_path: Path) -> None:
    @dataclass
    class Strict(Mosquitto):
        def config(self) -> str:
            return super().config().replace("max_inflight_messages 0", "max_inflight_messages 5")

    broker = Strict(tmp_path / "m")
    with running(broker):
        got: list[bytes] = []
        listener = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="listener")
        listener.on_message = lambda c, u, m: got.append(bytes(m.payload))
        listener.connect("127.0.0.1", broker.port)
        listener.subscribe("elsewhere/#", qos=1)
        listener.loop_start()
        time.sleep(0.3)
        publishing = source(broker.url, "publisher")
        publishing.start(10)
        try:
            for i in range(300):
                publishing.publish(f"elsewhere/dead/{i}", b"%d" % i)
            wait_until(lambda: len(got) == 300, 20, "every dead letter at the listener")
        finally:
            publishing.stop()
            listener.disconnect()
            listener.loop_stop()
    assert sorted(got) == sorted(b"%d" % i for i in range(300))


def test_messages_published_while_the_broker_is_away_go_out_once_it_is_back(tmp_path: Path) -> None:
    broker = Mosquitto(tmp_path / "m", persistence=True)
    with running(broker):
        got: list[bytes] = []
        listener = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="away-listener", clean_session=False)
        listener.on_message = lambda c, u, m: got.append(bytes(m.payload))
        listener.on_connect = lambda c, *_: c.subscribe("elsewhere/#", qos=1)
        listener.connect("127.0.0.1", broker.port)
        listener.loop_start()
        publishing = source(broker.url, "away-publisher", keepalive_s=5)
        publishing.start(10)
        try:
            wait_until(lambda: len(got) == 0 and listener.is_connected(), 5, "the listener")
            publishing.publish("elsewhere/dead/before", b"before")
            wait_until(lambda: got == [b"before"], 10, "a message while the broker is up")
            broker.stop()
            for i in range(50):
                publishing.publish(f"elsewhere/dead/{i}", b"%d" % i)
            broker.start()
            wait_until(lambda: len(got) == 51, 30, "the messages queued while the broker was away")
        finally:
            publishing.stop()
            listener.disconnect()
            listener.loop_stop()
    assert sorted(got[1:]) == sorted(b"%d" % i for i in range(50))


def test_an_idle_connection_stays_up_on_keepalives(mosquitto: Mosquitto) -> None:
    idle = source(mosquitto.url, "idle", keepalive_s=5)
    idle.start(10)
    try:
        time.sleep(12)
        assert idle.connected
        assert idle.reconnects == 0
    finally:
        idle.stop()


def test_shared_subscriptions_split_the_messages(mosquitto: Mosquitto) -> None:
    shared = [f"$share/ingest/{t}" for t in TopicScheme().subscriptions()]
    workers = [source(mosquitto.url, f"worker-{i}", subscriptions=shared) for i in range(2)]
    for worker in workers:
        worker.start(10)
    try:
        send(mosquitto, readings(2000))
        got: list[list[bytes]] = [[], []]
        deadline = time.monotonic() + 15
        while sum(map(len, got)) < 2000 and time.monotonic() < deadline:
            for i, worker in enumerate(workers):
                taken = worker.take(5000, linger_s=0.05, wait_s=0.1)
                got[i] += taken.messages.payloads
                worker.ack(taken)
    finally:
        for worker in workers:
            worker.stop()
    assert sorted(got[0] + got[1]) == sorted(p for _, p in readings(2000)), "each message to one worker"
    assert got[0], "both workers took a share"
    assert got[1], "both workers took a share"


def test_a_wrong_password_is_refused_at_once_with_the_reason(tmp_path: Path) -> None:
    passwords = tmp_path / "passwords"
    passwd = require_binary("mosquitto_passwd", "mosquitto")
    subprocess.run([passwd, "-b", "-c", str(passwords), "ingest", "s3cret"], check=True)

    @dataclass
    class Guarded(Mosquitto):
        def config(self) -> str:
            return (
                super().config().replace("allow_anonymous true", "allow_anonymous false")
                + f"password_file {passwords}\n"
                + AS_ROOT
            )

    broker = Guarded(tmp_path / "m")
    with running(broker):
        with pytest.raises(
            BrokerUnreachableError, match=r"refused citypulse: (bad user name or password|not authorised)"
        ):
            source(f"mqtt://ingest:wrong@127.0.0.1:{broker.port}", "wrong").start(10)
        right = source(f"mqtt://ingest:s3cret@127.0.0.1:{broker.port}", "right")
        right.start(10)
        try:
            send_as = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="s")
            send_as.username_pw_set("ingest", "s3cret")
            send_as.connect("127.0.0.1", broker.port)
            send_as.loop_start()
            send_as.publish("citypulse/v1/readings/air/a-1", b"{}", qos=1).wait_for_publish(5)
            send_as.disconnect()
            send_as.loop_stop()
            assert len(take_all(right, 1)) == 1
        finally:
            right.stop()


@pytest.fixture
def tls_files(tmp_path: Path) -> dict[str, Path]:
    openssl = require_binary("openssl", "openssl")
    d = tmp_path / "tls"
    d.mkdir()

    def run(*args: str) -> None:
        subprocess.run([openssl, *args], check=True, capture_output=True, cwd=d)

    run(
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-days",
        "2",
        "-subj",
        "/CN=test CA",
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
    )
    run(
        "req",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-subj",
        "/CN=localhost",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
    )
    (d / "ext").write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    run("x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
        "-days", "2", "-extfile", "ext", "-out", "server.crt")  # fmt: skip
    return {name: d / f"{name}" for name in ("ca.crt", "server.crt", "server.key")}


def test_tls_with_a_private_ca(tmp_path: Path, tls_files: dict[str, Path]) -> None:
    @dataclass
    class Secure(Mosquitto):
        def config(self) -> str:
            return super().config() + (
                f"cafile {tls_files['ca.crt']}\ncertfile {tls_files['server.crt']}\n"
                f"keyfile {tls_files['server.key']}\ntls_version tlsv1.2\n{AS_ROOT}"
            )

    broker = Secure(tmp_path / "m")
    with running(broker):
        context = ssl.create_default_context(cafile=str(tls_files["ca.crt"]))
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        secure = source(
            f"mqtts://127.0.0.1:{broker.port}", "secure", ssl_context=context, receive_maximum=65535
        )
        secure.start(10)
        try:
            sender = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="tls-sender")
            sender.tls_set(ca_certs=str(tls_files["ca.crt"]))
            sender.connect("127.0.0.1", broker.port)
            sender.loop_start()
            infos = [sender.publish(t, p, qos=1) for t, p in readings(5000)]
            for info in infos:
                info.wait_for_publish(10)
            sender.disconnect()
            sender.loop_stop()
            got = take_all(secure, 5000)
            assert got.messages.payloads == [p for _, p in readings(5000)]
            assert secure.ack(got) == 5000
        finally:
            secure.stop()
        with pytest.raises(BrokerUnreachableError):  # the system's CAs do not know ours
            source(f"mqtts://127.0.0.1:{broker.port}", "untrusting").start(3)


def test_taking_waits_and_lingers(mosquitto: Mosquitto) -> None:
    taking = source(mosquitto.url, "lingering")
    taking.start(10)
    try:
        assert len(taking.take(10, linger_s=0.1, wait_s=0.2)) == 0

        def later() -> None:
            time.sleep(0.3)
            send(mosquitto, readings(5), client_id="later")

        thread = threading.Thread(target=later)
        thread.start()
        got = taking.take(3, linger_s=1.0, wait_s=5)
        thread.join()
        assert len(got) == 3, "at most max_messages"
        rest = taking.take(10, linger_s=0.2, wait_s=5)
        assert len(rest) == 2
        taking.ack(got)
        taking.ack(rest)
    finally:
        taking.stop()
