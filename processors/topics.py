"""The MQTT topic scheme, versioned so it can change without breaking old devices.

``{prefix}/readings/{kind}/{device_id}``
    One device's reading (a JSON object) or its backlog (a JSON array).
``{prefix}/batches/{kind}/{gateway_id}``
    A gateway forwarding many devices' readings of one kind (a JSON array whose
    items each name their ``device``).
``{prefix}/deadletter/{reason}``
    Rejected input, republished with its reason for whoever must fix the device.
``{prefix}/status/{component}/{client_id}``
    Retained online/offline state of each citypulse process.
``{prefix}/alerts/events/{severity}/{kind}/{district}/{device-or-area}``
    Every alert event (QoS 1), so subscribers filter with wildcards.
``{prefix}/alerts/open/{alert_id}``
    The retained state of each open alert, cleared (empty retained message) when it resolves.

The ingest service subscribes to the whole prefix, so a reading sent to a
mistyped topic is dead-lettered as ``bad_topic`` instead of never arriving;
what citypulse publishes itself (:data:`OWN_SECTIONS`) is never read as input.

The default prefix is ``citypulse/v1``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

DEFAULT_PREFIX = "citypulse/v1"
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
"""MQTT forbids U+0000 in topics and advises against other control characters: rejected."""


OWN_SECTIONS = frozenset({"deadletter", "status", "alerts"})
"""First levels under the prefix where citypulse publishes itself: output, never input."""


class TopicForm(StrEnum):
    READING = "readings"
    BATCH = "batches"


class TopicError(ValueError):
    """The topic does not follow the scheme."""


@dataclass(frozen=True, slots=True)
class ParsedTopic:
    form: TopicForm
    kind: str
    source_id: str
    """The device id for ``readings`` topics, the gateway id for ``batches``."""


@dataclass(frozen=True, slots=True)
class TopicScheme:
    """Builds and parses citypulse topics under one prefix."""

    prefix: str = DEFAULT_PREFIX

    def __post_init__(self) -> None:
        if not self.prefix or self.prefix.startswith("/") or self.prefix.endswith("/"):
            raise ValueError(
                f"topic prefix {self.prefix!r} must be non-empty without leading or trailing '/'"
            )
        if any(c in self.prefix for c in "+#\x00"):
            raise ValueError(f"topic prefix {self.prefix!r} must not contain MQTT wildcards or NUL")

    def reading(self, kind: str, device_id: str) -> str:
        return f"{self.prefix}/readings/{kind}/{device_id}"

    def batch(self, kind: str, gateway_id: str) -> str:
        return f"{self.prefix}/batches/{kind}/{gateway_id}"

    def deadletter(self, reason: str) -> str:
        return f"{self.prefix}/deadletter/{reason}"

    def status(self, component: str, client_id: str) -> str:
        return f"{self.prefix}/status/{component}/{client_id}"

    def alert_event(self, severity: str, kind: str, district: str, target: str) -> str:
        """Where an alert event is published; a level that would break the scheme is made safe.

        >>> TopicScheme().alert_event("critical", "water", "Đống Đa", "district:Đống Đa")
        'citypulse/v1/alerts/events/critical/water/Đống Đa/district:Đống Đa'
        """
        levels = "/".join(topic_level(v) for v in (severity, kind, district, target))
        return f"{self.prefix}/alerts/events/{levels}"

    def alert_open(self, alert_id: str) -> str:
        return f"{self.prefix}/alerts/open/{topic_level(alert_id)}"

    def alert_filters(self) -> tuple[str, str]:
        """What a subscriber to every alert subscribes to: the events and the open alerts."""
        return (f"{self.prefix}/alerts/events/#", f"{self.prefix}/alerts/open/+")

    def subscriptions(self) -> tuple[str, ...]:
        """The filters the ingest service subscribes to: everything under the prefix.

        Narrower filters would let a message on a mistyped topic vanish without a
        trace; with the whole prefix it arrives and is dead-lettered as ``bad_topic``.
        """
        return (f"{self.prefix}/#",)

    def is_own(self, topic: str) -> bool:
        """Whether citypulse itself publishes on ``topic`` (dead letters, status, alerts).

        >>> scheme = TopicScheme()
        >>> scheme.is_own("citypulse/v1/deadletter/bad_topic"), scheme.is_own("citypulse/v1/alerts")
        (True, True)
        >>> scheme.is_own("citypulse/v1/readings/air/a-1"), scheme.is_own("citypulse/v1/statuses/x")
        (False, False)
        """
        head = self.prefix + "/"
        if not topic.startswith(head):
            return False
        return topic[len(head) :].split("/", 1)[0] in OWN_SECTIONS

    def parse(self, topic: str) -> ParsedTopic:
        """Split a readings or batches topic into its parts.

        >>> TopicScheme().parse("citypulse/v1/readings/air/air-000001")
        ParsedTopic(form=<TopicForm.READING: 'readings'>, kind='air', source_id='air-000001')
        """
        head = self.prefix + "/"
        if _CONTROL.search(topic):
            raise TopicError(f"topic {topic!r} contains control characters")
        if not topic.startswith(head):
            raise TopicError(f"topic {topic!r} is not under {self.prefix}/")
        parts = topic[len(head) :].split("/")
        if len(parts) != 3 or not all(parts):
            raise TopicError(
                f"topic {topic!r} must be {self.prefix}/readings/KIND/DEVICE "
                f"or {self.prefix}/batches/KIND/GATEWAY"
            )
        form, kind, source = parts
        if form == TopicForm.READING:
            return ParsedTopic(TopicForm.READING, kind, source)
        if form == TopicForm.BATCH:
            return ParsedTopic(TopicForm.BATCH, kind, source)
        raise TopicError(f"topic {topic!r}: {form!r} is neither 'readings' nor 'batches'")


_UNSAFE_LEVEL = re.compile(r"[/+#\x00-\x1f\x7f]")


def topic_level(value: str) -> str:
    """``value`` as one topic level: no separator, wildcard or control character, never empty.

    >>> topic_level("a/b+c"), topic_level("")
    ('a_b_c', '_')
    """
    return _UNSAFE_LEVEL.sub("_", value) or "_"
