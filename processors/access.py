"""Who may publish and read what on the broker, derived from the device registry.

Least privilege, one identity per device, gateway and service:

- a **device** may publish only to its own ``readings/{kind}/{device}`` topic;
- a **gateway** only to its own ``batches/{kind}/{gateway}`` topic, for the kinds
  of the devices the registry puts behind it;
- the **ingest** service reads readings and batches and publishes dead letters,
  alerts and its own status;
- an **alert subscriber** may only read alerts; an **operator** reads alerts, dead
  letters, status and the broker's own ``$SYS`` statistics (its health check);
- nobody else reads raw readings, and a name the ACL does not list may do nothing.

This module turns a :class:`~processors.registry.Registry` into those identities
and renders them as a Mosquitto ACL file (``acl_file``). It is pure: the secrets
and the files are made in ``ingest/access``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum

from processors.registry import Registry
from processors.topics import TopicScheme

_USERNAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
"""Broker user names: device-id characters except ':', which ends the name in Mosquitto's password file."""


class AccessError(ValueError):
    """The registry or service names cannot become broker identities; the message says which and why."""


class Role(StrEnum):
    DEVICE = "device"
    GATEWAY = "gateway"
    INGEST = "ingest"
    ALERTS = "alerts"
    OPERATOR = "operator"


@dataclass(frozen=True, slots=True)
class Identity:
    """One broker user: its name and the topics (or filters) it may publish to and read."""

    name: str
    role: Role
    write: tuple[str, ...] = ()
    read: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ServiceAccounts:
    """The broker users of citypulse's own services, beside the devices and gateways."""

    ingest: tuple[str, ...] = ("citypulse-ingest",)
    alert_readers: tuple[str, ...] = ("citypulse-alerts",)
    operators: tuple[str, ...] = ()


def service_identities(topics: TopicScheme, services: ServiceAccounts) -> list[Identity]:
    """The services' identities.

    Ingest subscribes to its whole prefix, to dead-letter a mistyped topic as
    ``bad_topic``; on a broker with this ACL no device can publish to one (the
    broker refuses it), so ingest is given only what it must read: readings and
    batches (also through ``$share/GROUP/...``).
    """
    p = topics.prefix
    ingest_read = (f"{p}/readings/+/+", f"{p}/batches/+/+")
    ingest_write = (f"{p}/deadletter/#", f"{p}/alerts/#", f"{p}/status/ingest/#")
    out = [Identity(name, Role.INGEST, ingest_write, ingest_read) for name in services.ingest]
    out += [Identity(name, Role.ALERTS, (), (f"{p}/alerts/#",)) for name in services.alert_readers]
    out += [
        Identity(name, Role.OPERATOR, (), (f"{p}/alerts/#", f"{p}/deadletter/#", f"{p}/status/#", "$SYS/#"))
        for name in services.operators
    ]
    return out


def identities(registry: Registry, topics: TopicScheme, services: ServiceAccounts) -> list[Identity]:
    """Every identity the broker should know, services first, then devices and gateways in registry order.

    Raises :class:`AccessError` when two identities would share a name (a gateway
    named like a device, a service named like either) or a name cannot be a broker
    user name.
    """
    found = service_identities(topics, services)
    for device in registry:
        found.append(
            Identity(device.device_id, Role.DEVICE, (topics.reading(device.kind, device.device_id),))
        )
    for gateway, devices in registry.gateways().items():
        kinds = dict.fromkeys(device.kind for device in devices)
        found.append(Identity(gateway, Role.GATEWAY, tuple(topics.batch(kind, gateway) for kind in kinds)))
    check_names(found)
    return found


def check_names(found: Sequence[Identity]) -> None:
    """Refuse duplicate names and names Mosquitto's files cannot hold, naming each."""
    seen: dict[str, Role] = {}
    for identity in found:
        if not _USERNAME_RE.match(identity.name):
            raise AccessError(
                f"{identity.role} {identity.name!r} cannot be a broker user name: use 1-64 letters, "
                "digits, '_', '.' or '-' (':' ends a name in Mosquitto's password file)"
            )
        earlier = seen.get(identity.name)
        if earlier is not None:
            raise AccessError(
                f"{identity.role} {identity.name!r} has the same name as a {earlier}: every device, "
                "gateway and service needs a broker user name of its own; rename one of them"
            )
        seen[identity.name] = identity.role


def render_acl(found: Iterable[Identity], source: str) -> str:
    """The Mosquitto ACL file for ``found``; ``source`` names the registry in the header.

    No topic line precedes the first ``user`` line, so an anonymous client (were
    ``allow_anonymous`` ever switched on) could do nothing at all.

    >>> print(render_acl([Identity("air-1", Role.DEVICE, ("city/readings/air/air-1",))], "devices.csv"))
    # Mosquitto ACL written by 'citypulse devices provision' from devices.csv.
    # Re-run that command after changing the registry; edits here are lost.
    # Anonymous clients and unlisted users may do nothing.
    <BLANKLINE>
    # device
    user air-1
    topic write city/readings/air/air-1
    <BLANKLINE>
    """
    lines = [
        f"# Mosquitto ACL written by 'citypulse devices provision' from {source}.",
        "# Re-run that command after changing the registry; edits here are lost.",
        "# Anonymous clients and unlisted users may do nothing.",
        "",
    ]
    for identity in found:
        lines += [f"# {identity.role}", f"user {identity.name}"]
        lines += [f"topic write {topic}" for topic in identity.write]
        lines += [f"topic read {topic}" for topic in identity.read]
        lines.append("")
    return "\n".join(lines)
