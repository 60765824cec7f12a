"""TLS against a real Mosquitto: the files ``devices certs`` makes, the listener ``devices provision`` writes.

Two brokers share one CA: one takes passwords over TLS, the other requires a
client certificate and takes its common name as the user name.
"""

from __future__ import annotations

import ssl
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench._servers import require_binary
from ingest.access.certs import make_certs
from ingest.broker import free_port
from ingest.private_files import is_private
from ingest.tls import client_context
from processors.endpoint import MqttEndpoint
from tests.e2e.helpers import last_json_line, run_citypulse
from tests.ingest.access.helpers import (
    ACCEPTED,
    NOT_AUTHORIZED,
    Client,
    SecuredBroker,
    connected,
    secured_broker,
)
from tests.servers import ConfiguredMosquitto, running

P = "citypulse/v1"


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Our CA (made by the command, as an operator would), and an unrelated CA beside it."""
    root = tmp_path_factory.mktemp("pki")
    done = run_citypulse(
        "devices", "certs", "--out", str(root / "tls"), "--server-name", "127.0.0.1",
        "--client", "air-000001", "--client", "citypulse-ingest", "--json",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert len(last_json_line(done.stdout)["created"]) == 8
    make_certs(root / "rogue", clients=["air-000001"], server_names=["127.0.0.1"], ca_name="rogue CA")
    return root


@pytest.fixture(scope="module")
def password_broker(tmp_path_factory: pytest.TempPathFactory, pki: Path) -> Iterator[SecuredBroker]:
    with secured_broker(tmp_path_factory.mktemp("tls-passwords"), tls_dir=pki / "tls") as running:
        yield running


@pytest.fixture(scope="module")
def certificate_broker(tmp_path_factory: pytest.TempPathFactory, pki: Path) -> Iterator[SecuredBroker]:
    workdir = tmp_path_factory.mktemp("tls-certificates")
    with secured_broker(workdir, "--client-certificates", tls_dir=pki / "tls") as running:
        yield running


def context(pki: Path, ca: str = "tls", client: str | None = None, client_ca: str = "tls") -> ssl.SSLContext:
    """The client context citypulse builds, for a CA and optionally a client certificate."""
    cert = str(pki / client_ca / "clients" / f"{client}.crt") if client else None
    key = str(pki / client_ca / "clients" / f"{client}.key") if client else None
    endpoint = MqttEndpoint.parse("mqtts://127.0.0.1").with_tls_files(str(pki / ca / "ca.crt"), cert, key)
    made = client_context(endpoint)
    assert made is not None
    return made


def test_keys_are_owner_only_and_a_second_run_keeps_the_ca(pki: Path) -> None:
    tls = pki / "tls"
    for key in (tls / "ca.key", tls / "server.key", tls / "clients" / "air-000001.key"):
        assert is_private(key), key
    ca_before = (tls / "ca.crt").read_bytes()
    report = make_certs(tls, clients=["air-000001", "gw-north"], server_names=["127.0.0.1"])
    assert (tls / "ca.crt").read_bytes() == ca_before
    assert report.created == [tls / "clients" / "gw-north.key", tls / "clients" / "gw-north.crt"]


def test_passwords_over_tls(password_broker: SecuredBroker, pki: Path) -> None:
    assert password_broker.tls_port is not None
    creds = password_broker.credentials
    with (
        connected(
            password_broker.tls_port, "citypulse-ingest", creds["citypulse-ingest"], context(pki)
        ) as ingest,
        connected(password_broker.tls_port, "air-000001", creds["air-000001"], context(pki)) as device,
    ):
        ingest.subscribe(f"{P}/readings/+/+")
        assert device.publish(f"{P}/readings/air/air-000001", b"over-tls") in ACCEPTED
        ingest.wait_for(b"over-tls")
        sock = device.client.socket()
        assert isinstance(sock, ssl.SSLSocket)
        assert sock.version() in ("TLSv1.2", "TLSv1.3")
    refused = Client("tls-anonymous").connect(password_broker.tls_port, context=context(pki))
    assert refused in (134, NOT_AUTHORIZED)


def test_a_client_that_does_not_trust_the_broker_will_not_talk_to_it(
    password_broker: SecuredBroker, pki: Path
) -> None:
    assert password_broker.tls_port is not None
    client = Client("wrong-ca")
    creds = password_broker.credentials
    assert (
        client.connect(password_broker.tls_port, "air-000001", creds["air-000001"], context(pki, "rogue"))
        == -1
    )


def test_plain_mqtt_on_the_tls_port_fails(password_broker: SecuredBroker) -> None:
    assert password_broker.tls_port is not None
    creds = password_broker.credentials
    assert (
        Client("plain").connect(password_broker.tls_port, "air-000001", creds["air-000001"], timeout_s=3)
        == -1
    )


def test_tls_older_than_1_2_is_refused_by_the_broker(
    password_broker: SecuredBroker, pki: Path, tmp_path: Path
) -> None:
    """``openssl s_client`` can still speak TLS 1.1 (at security level 0); the provisioned broker must not.

    The control: a broker on the same certificates told to allow TLS 1.1 completes
    that very handshake, so the refusal is the provisioned configuration's doing.
    """
    openssl = require_binary("openssl", "openssl")
    assert password_broker.tls_port is not None

    def handshake(port: int, *version: str) -> str:
        done = subprocess.run(
            [openssl, "s_client", "-connect", f"127.0.0.1:{port}", *version,
             "-CAfile", str(pki / "tls" / "ca.crt"), "-cipher", "DEFAULT:@SECLEVEL=0"],
            input="", capture_output=True, text=True, timeout=30, check=False,
        )  # fmt: skip
        return done.stdout + done.stderr

    accepted = handshake(password_broker.tls_port, "-tls1_2")
    assert "Protocol  : TLSv1.2" in accepted
    assert "Cipher is (NONE)" not in accepted
    refused = handshake(password_broker.tls_port, "-tls1_1")
    assert "alert protocol version" in refused, refused
    assert "Cipher is (NONE)" in refused

    tls = pki / "tls"
    lax = tmp_path / "lax.conf"
    port = free_port()
    lax.write_text(
        f"listener {port} 127.0.0.1\nallow_anonymous true\ncafile {tls / 'ca.crt'}\n"
        f"certfile {tls / 'server.crt'}\nkeyfile {tls / 'server.key'}\n"
        "tls_version tlsv1.1\nciphers DEFAULT:@SECLEVEL=0\n"
    )
    with running(ConfiguredMosquitto(tmp_path / "lax", lax, (port,))):
        old = handshake(port, "-tls1_1")
    assert "Protocol  : TLSv1.1" in old
    assert "Cipher is (NONE)" not in old, old


def test_client_certificates_identify_devices(certificate_broker: SecuredBroker, pki: Path) -> None:
    port = certificate_broker.tls_port
    assert port is not None
    with (
        connected(port, None, None, context(pki, client="citypulse-ingest")) as ingest,
        connected(port, None, None, context(pki, client="air-000001")) as device,
    ):
        ingest.subscribe(f"{P}/readings/+/+")
        assert device.publish(f"{P}/readings/air/air-000001", b"by-certificate") in ACCEPTED
        ingest.wait_for(b"by-certificate")
    with connected(port, None, None, context(pki, client="air-000001")) as device:
        assert device.publish(f"{P}/readings/air/air-000002", b"as-another") == NOT_AUTHORIZED


def test_a_certificate_from_another_ca_or_none_is_refused(
    certificate_broker: SecuredBroker, pki: Path
) -> None:
    port = certificate_broker.tls_port
    assert port is not None
    rogue = context(pki, client="air-000001", client_ca="rogue")
    assert Client("rogue-cert").connect(port, context=rogue, timeout_s=5) == -1
    assert Client("no-cert").connect(port, context=context(pki), timeout_s=5) == -1
