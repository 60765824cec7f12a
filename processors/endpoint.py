"""Where the MQTT broker is and how to connect to it: plain values shared by every client.

The service (``ingest/``), the simulator's publisher (``simulators/``) and the demo
all connect to a broker. What they share is only data — the parsed broker URL and
the connection options — so it lives here, below both, and importing it loads no
MQTT library.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal
from urllib.parse import unquote, urlsplit

from pydantic import BaseModel, Field

Protocol = Literal["5", "3.1.1"]


class BrokerUnreachableError(ConnectionError):
    """The broker did not accept a connection in time; the message says what to check."""


class MqttEndpoint(BaseModel):
    """A broker address parsed from ``mqtt://user:pass@host:port`` (``mqtts://`` for TLS).

    >>> MqttEndpoint.parse("mqtt://ops:secret@broker.local").display()
    'mqtt://ops@broker.local:1883'
    """

    host: str
    port: int
    username: str | None = None
    password: str | None = Field(default=None, repr=False)
    """Never shown by ``repr`` (nor by :meth:`display`), so a logged endpoint leaks no secret."""
    tls: bool = False
    ca_file: str | None = None
    """PEM file of the CA(s) that signed the broker's certificate (None: the system's trusted CAs)."""
    cert_file: str | None = None
    """PEM client certificate presented to the broker (for ``require_certificate`` listeners)."""
    key_file: str | None = None
    """PEM private key of ``cert_file`` (None: the key is in ``cert_file``)."""

    @classmethod
    def parse(cls, url: str) -> MqttEndpoint:
        parts = urlsplit(url)
        if parts.scheme not in ("mqtt", "mqtts", "tcp", "ssl"):
            raise ValueError(f"MQTT URL {url!r} must start with mqtt:// or mqtts://")
        if not parts.hostname:
            raise ValueError(f"MQTT URL {url!r} names no host; e.g. mqtt://127.0.0.1:1883")
        tls = parts.scheme in ("mqtts", "ssl")
        try:
            port = parts.port or (8883 if tls else 1883)
        except ValueError:
            raise ValueError(f"MQTT URL {url!r} has an invalid port") from None
        return cls(
            host=parts.hostname,
            port=port,
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
            tls=tls,
        )

    def with_tls_files(
        self, ca_file: str | None = None, cert_file: str | None = None, key_file: str | None = None
    ) -> MqttEndpoint:
        """This endpoint with TLS files; refused for a plain ``mqtt://`` URL, where they would be ignored.

        >>> MqttEndpoint.parse("mqtt://broker").with_tls_files(ca_file="ca.crt")
        Traceback (most recent call last):
        ...
        ValueError: TLS files are set but the MQTT URL mqtt://broker:1883 is plain: use mqtts://
        """
        if not (ca_file or cert_file or key_file):
            return self
        if not self.tls:
            raise ValueError(f"TLS files are set but the MQTT URL {self.display()} is plain: use mqtts://")
        if key_file and not cert_file:
            raise ValueError("a client key is set without its certificate: set the certificate file too")
        return self.model_copy(
            update={"ca_file": ca_file or None, "cert_file": cert_file or None, "key_file": key_file or None}
        )

    def display(self) -> str:
        """The address without the password, for logs."""
        user = f"{self.username}@" if self.username else ""
        return f"{'mqtts' if self.tls else 'mqtt'}://{user}{self.host}:{self.port}"


@dataclass(frozen=True, slots=True)
class ConnectOptions:
    """How one client connects: identity, protocol, session and flow-control choices."""

    endpoint: MqttEndpoint
    client_id: str
    protocol: Protocol = "5"
    keepalive_s: int = 30
    persistent_session: bool = False
    session_expiry_s: int = 0
    receive_maximum: int | None = None
    manual_ack: bool = False
    will_topic: str | None = None
    will_payload: bytes = b""
