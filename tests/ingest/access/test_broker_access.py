"""Each access rule proved against a real Mosquitto started with the files ``devices provision`` wrote.

A refused publish is checked twice: the broker's PUBACK says "not authorised"
(MQTT 5 reason 135), and the ingest identity, subscribed to every reading, never
receives it, while a message sent after it does arrive. Mosquitto 2.0 closes a
client's connection after refusing its publish, so each attempt connects anew.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.ingest.access.helpers import (
    ACCEPTED,
    NOT_AUTHORIZED,
    Client,
    SecuredBroker,
    attempt,
    connected,
    provision,
    read_credentials,
    secured_broker,
)

P = "citypulse/v1"


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecuredBroker]:
    with secured_broker(tmp_path_factory.mktemp("secured")) as running:
        yield running


@pytest.fixture
def ingest(broker: SecuredBroker) -> Iterator[Client]:
    """The ingest identity, subscribed to every reading and batch as the service is."""
    with connected(broker.port, "citypulse-ingest", broker.credentials["citypulse-ingest"]) as client:
        client.subscribe(f"{P}/readings/+/+", f"{P}/batches/+/+")
        yield client


def test_anonymous_clients_and_wrong_passwords_are_refused(broker: SecuredBroker) -> None:
    assert Client("anonymous").connect(broker.port) in (134, NOT_AUTHORIZED)
    assert Client("guessing").connect(broker.port, "air-000001", "guess") in (134, NOT_AUTHORIZED)
    stolen = broker.credentials["air-000002"]
    assert Client("swapped").connect(broker.port, "air-000001", stolen) in (134, NOT_AUTHORIZED)
    assert Client("unknown").connect(broker.port, "air-999999", stolen) in (134, NOT_AUTHORIZED)


def test_a_device_publishes_only_its_own_readings(broker: SecuredBroker, ingest: Client) -> None:
    user, password = "air-000001", broker.credentials["air-000001"]
    with connected(broker.port, user, password) as device:
        assert device.publish(f"{P}/readings/air/air-000001", b"own") in ACCEPTED
    for topic in (
        f"{P}/readings/air/air-000002",  # as another device
        f"{P}/readings/water/air-000001",  # as another kind
        f"{P}/batches/air/gw-north",  # as a gateway
        f"{P}/alerts/air/air-000001",  # a fake alert
        f"{P}/deadletter/out_of_range",
    ):
        assert attempt(broker.port, user, password, topic) == NOT_AUTHORIZED, topic
    with connected(broker.port, user, password) as device:
        assert device.publish(f"{P}/readings/air/air-000001", b"marker") in ACCEPTED
    ingest.wait_for(b"marker")
    assert [p for _, p in ingest.received()] == [b"own", b"marker"]


def test_a_device_cannot_read_any_readings(broker: SecuredBroker, ingest: Client) -> None:
    creds = broker.credentials
    with (
        connected(broker.port, "air-000001", creds["air-000001"]) as snooper,
        connected(broker.port, "air-000002", creds["air-000002"]) as other,
    ):
        snooper.subscribe(f"{P}/#", "#")
        assert other.publish(f"{P}/readings/air/air-000002", b"private") in ACCEPTED
        assert snooper.publish(f"{P}/readings/air/air-000001", b"its-own") in ACCEPTED
        ingest.wait_for(b"its-own")
        assert snooper.received() == []


def test_a_gateway_publishes_only_its_own_batches_of_its_kinds(broker: SecuredBroker, ingest: Client) -> None:
    user, password = "gw-north", broker.credentials["gw-north"]
    with connected(broker.port, user, password) as gateway:
        assert gateway.publish(f"{P}/batches/air/gw-north", b"air-batch") in ACCEPTED
        assert gateway.publish(f"{P}/batches/water/gw-north", b"water-batch") in ACCEPTED
    for topic in (
        f"{P}/batches/traffic/gw-north",  # a kind none of its devices has
        f"{P}/batches/traffic/gw-south",  # as another gateway
        f"{P}/readings/air/air-000002",  # as one of its devices
    ):
        assert attempt(broker.port, user, password, topic) == NOT_AUTHORIZED, topic
    with connected(broker.port, user, password) as gateway:
        assert gateway.publish(f"{P}/batches/air/gw-north", b"marker") in ACCEPTED
    ingest.wait_for(b"marker")
    assert [p for _, p in ingest.received()] == [b"air-batch", b"water-batch", b"marker"]


def test_an_alert_subscriber_reads_alerts_and_publishes_nothing(
    broker: SecuredBroker, ingest: Client
) -> None:
    creds = broker.credentials
    user, password = "citypulse-alerts", creds["citypulse-alerts"]
    for topic in (f"{P}/alerts/air/fake", f"{P}/readings/air/air-000001", f"{P}/status/ingest/x"):
        assert attempt(broker.port, user, password, topic) == NOT_AUTHORIZED, topic
    with connected(broker.port, user, password) as reader:
        reader.subscribe(f"{P}/#")
        assert ingest.publish(f"{P}/alerts/air/real", b"real-alert") in ACCEPTED
        assert ingest.publish(f"{P}/deadletter/out_of_range", b"dead-letter") in ACCEPTED
        with connected(broker.port, "air-000001", creds["air-000001"]) as device:
            assert device.publish(f"{P}/readings/air/air-000001", b"raw-reading") in ACCEPTED
        ingest.wait_for(b"raw-reading")
        reader.wait_for(b"real-alert")
        assert [p for _, p in reader.received()] == [b"real-alert"]


def test_ingest_reads_readings_but_cannot_forge_them(broker: SecuredBroker, ingest: Client) -> None:
    user, password = "citypulse-ingest", broker.credentials["citypulse-ingest"]
    for topic in (f"{P}/readings/air/air-000001", f"{P}/batches/air/gw-north", f"{P}/status/simulator/x"):
        assert attempt(broker.port, user, password, topic) == NOT_AUTHORIZED, topic
    assert attempt(broker.port, user, password, f"{P}/status/ingest/citypulse-ingest") in ACCEPTED
    with connected(broker.port, "air-000001", broker.credentials["air-000001"]) as device:
        assert device.publish(f"{P}/readings/air/air-000001", b"marker") in ACCEPTED
    ingest.wait_for(b"marker")
    assert [p for _, p in ingest.received()] == [b"marker"]


def test_ingest_may_share_its_subscription(broker: SecuredBroker) -> None:
    creds = broker.credentials
    with connected(broker.port, "citypulse-ingest", creds["citypulse-ingest"]) as member:
        member.subscribe(f"$share/ingest/{P}/readings/+/+")
        with connected(broker.port, "air-000001", creds["air-000001"]) as device:
            assert device.publish(f"{P}/readings/air/air-000001", b"shared") in ACCEPTED
        member.wait_for(b"shared")


def test_secrets_and_rules_are_readable_by_their_owner_only(broker: SecuredBroker) -> None:
    out = broker.workdir / "broker"
    assert stat.S_IMODE(out.stat().st_mode) == 0o700
    for name in ("passwd", "acl", "credentials.csv"):
        assert stat.S_IMODE((out / name).stat().st_mode) == 0o600, name
    passwd = (out / "passwd").read_text()
    for user, password in broker.credentials.items():
        assert password not in passwd, f"{user}'s password is in the password file in clear"
    secrets = out / "secrets"
    assert stat.S_IMODE(secrets.stat().st_mode) == 0o700
    assert sorted(p.name for p in secrets.iterdir()) == ["citypulse-alerts", "citypulse-ingest"]
    for path in secrets.iterdir():
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert path.read_text() == broker.credentials[path.name] + "\n", "each service's own secret, alone"


def test_provisioning_again_keeps_secrets_adds_new_devices_and_retires_old_ones(tmp_path: Path) -> None:
    with secured_broker(tmp_path) as running:
        before = running.credentials
        hashes_before = dict(
            line.split(":", 1) for line in (tmp_path / "broker" / "passwd").read_text().splitlines()
        )
        registry = tmp_path / "devices.csv"
        lines = registry.read_text(encoding="utf-8").splitlines()
        kept = [line for line in lines if not line.startswith("air-000002,")]
        registry.write_text("\n".join([*kept, "air-000003,air,Ba Đình,21.03,105.81,,,"]) + "\n", "utf-8")
        port = str(running.port)
        summary = provision(tmp_path, "--port", port)
        assert summary["added"] == ["air-000003"]
        assert summary["retired"] == ["air-000002"]
        after = running.credentials
        assert "air-000002" not in after
        assert {u: p for u, p in after.items() if u in before} == {
            u: p for u, p in before.items() if u != "air-000002"
        }
        hashes_after = dict(
            line.split(":", 1) for line in (tmp_path / "broker" / "passwd").read_text().splitlines()
        )
        assert {u: h for u, h in hashes_after.items() if u != "air-000003"} == {
            u: h for u, h in hashes_before.items() if u != "air-000002"
        }
        running.server.reload()
        with connected(running.port, "air-000003", after["air-000003"]) as newcomer:
            assert newcomer.publish("citypulse/v1/readings/air/air-000003", b"hello") in ACCEPTED
        with connected(running.port, "air-000001", before["air-000001"]) as old_hand:
            assert old_hand.publish("citypulse/v1/readings/air/air-000001", b"still-here") in ACCEPTED
        retired = Client("retired")
        assert retired.connect(running.port, "air-000002", before["air-000002"]) in (134, NOT_AUTHORIZED)

        rotated = provision(tmp_path, "--port", port, "--rotate", "air-000001")
        assert rotated["rotated"] == ["air-000001"]
        assert rotated["added"] == []
        assert read_credentials(tmp_path / "broker" / "credentials.csv")["air-000001"] != before["air-000001"]


def test_credentials_can_be_printed_once_instead_of_stored(tmp_path: Path) -> None:
    from tests.e2e.helpers import run_citypulse

    (tmp_path / "devices.csv").write_text(
        "device_id,kind,district,lat,lon\nair-1,air,Ba Đình,21.03,105.81\n", encoding="utf-8"
    )
    out = tmp_path / "broker"
    args = ["devices", "provision", "--registry", str(tmp_path / "devices.csv"), "--out", str(out)]
    first = run_citypulse(*args, "--credentials", "-")
    assert first.returncode == 0, first.stderr
    assert first.stdout.splitlines()[0] == "user,role,password"
    assert {line.split(",")[0] for line in first.stdout.splitlines()[1:]} == {
        "citypulse-ingest",
        "citypulse-alerts",
        "air-1",
    }
    assert not (out / "credentials.csv").exists()
    second = run_citypulse(*args, "--credentials", "-")
    assert second.returncode == 0, second.stderr
    assert second.stdout.splitlines() == ["user,role,password"], "a secret was shown a second time"


def test_names_the_broker_cannot_hold_are_refused_with_the_fix(tmp_path: Path) -> None:
    from tests.e2e.helpers import run_citypulse

    (tmp_path / "devices.csv").write_text(
        "device_id,kind,district,lat,lon,install_date,interval_s,gateway\n"
        "air-1,air,Ba Đình,21.03,105.81,,,air-2\n"
        "air-2,air,Ba Đình,21.03,105.81,,,\n",
        encoding="utf-8",
    )
    done = run_citypulse("devices", "provision", "--registry", str(tmp_path / "devices.csv"))
    assert done.returncode == 2
    assert "gateway 'air-2' has the same name as a device" in done.stderr
    assert not (tmp_path / "broker").exists() or not os.listdir(tmp_path / "broker")
