"""The Mosquitto configuration that enforces citypulse's access rules.

Anonymous clients are refused, every user is checked against the password file
(or, on a listener that requires client certificates, identified by the
certificate's common name) and the ACL. TLS listeners accept TLS 1.2 and newer
only. The two queue settings keep the broker from silently dropping QoS 1
readings queued for a slow or absent ingest service.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import PurePosixPath


@dataclass(frozen=True, slots=True)
class TlsListener:
    """A TLS listener; the paths are where the broker finds the files."""

    port: int
    ca_file: PurePosixPath
    cert_file: PurePosixPath
    key_file: PurePosixPath
    client_certificates: bool = False
    """Require a client certificate signed by the CA and take its CN as the user name."""


@dataclass(frozen=True, slots=True)
class BrokerConfig:
    """What ``mosquitto.conf`` says; ``files_dir`` is where the broker finds ``passwd`` and ``acl``."""

    files_dir: PurePosixPath
    bind: str = ""
    """Address every listener binds to ("" = every interface)."""
    port: int | None = 1883
    """Plain MQTT listener (None: none, TLS only)."""
    tls: TlsListener | None = None
    data_dir: PurePosixPath | None = None
    """If set, the broker persists sessions and queued messages there."""
    user: str | None = None
    """The account Mosquitto switches to when started as root (its default: ``mosquitto``)."""

    def render(self) -> str:
        """The configuration file's text.

        >>> print(BrokerConfig(PurePosixPath("/etc/citypulse"), port=1883).render())  # doctest: +ELLIPSIS
        # Mosquitto configuration written by 'citypulse devices provision'.
        ...
        allow_anonymous false
        password_file /etc/citypulse/passwd
        acl_file /etc/citypulse/acl
        ...
        listener 1883
        <BLANKLINE>
        """
        if self.port is None and self.tls is None:
            raise ValueError("a broker needs at least one listener: give a plain port or a TLS listener")
        lines = [
            "# Mosquitto configuration written by 'citypulse devices provision'.",
            "# The password file and ACL beside it are rewritten by that command; send the",
            "# broker SIGHUP (or restart it) afterwards to load them.",
            "per_listener_settings false",
            "allow_anonymous false",
            f"password_file {self.files_dir / 'passwd'}",
            f"acl_file {self.files_dir / 'acl'}",
            "# citypulse acknowledges only stored readings: never drop what waits for it.",
            "max_queued_messages 0",
            "max_inflight_messages 0",
        ]
        if self.data_dir is not None:
            lines += ["persistence true", f"persistence_location {self.data_dir}/", "autosave_interval 60"]
        if self.user is not None:
            lines.append(f"user {self.user}")
        bind = f" {self.bind}" if self.bind else ""
        if self.port is not None:
            lines += ["", f"listener {self.port}{bind}"]
        if self.tls is not None:
            tls = self.tls
            lines += [
                "",
                f"listener {tls.port}{bind}",
                f"cafile {tls.ca_file}",
                f"certfile {tls.cert_file}",
                f"keyfile {tls.key_file}",
                "tls_version tlsv1.2",
            ]
            if tls.client_certificates:
                lines += ["require_certificate true", "use_identity_as_username true"]
        return "\n".join(lines) + "\n"
