"""Webhooks: signed JSON notifications to each subscriber's URL.

The body (schema version :data:`~processors.alerts.model.SCHEMA_VERSION`, see
``docs/alerts.md``) holds one group's events; the ``X-Citypulse-Signature``
header is ``sha256=`` and the hex HMAC-SHA256 of the exact body bytes under the
subscriber's secret. 2xx is delivered; 408, 425, 429, 5xx and network errors are
retried (honouring Retry-After); any other status is final and dead-lettered.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import urllib.error
import urllib.request
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ingest.alerts.channels.base import (
    AlertChannel,
    ChannelPlugin,
    DeliveryError,
    Notification,
    Subscriber,
    pace_of,
)
from ingest.alerts.settings import WebhookSubscription
from processors.alerts import SCHEMA_VERSION

if TYPE_CHECKING:
    from ingest.settings import Settings

SIGNATURE_HEADER = "X-Citypulse-Signature"
RETRYABLE_STATUS = frozenset({408, 425, 429})
USER_AGENT = "citypulse-alerts/1"


def signature(secret: bytes, body: bytes) -> str:
    """The ``X-Citypulse-Signature`` value of ``body``.

    >>> signature(b"s3cret", b'{"a":1}')
    'sha256=5910e62016ef5034272c926c27071992a465c2335cecf41851bda071577f4f6d'
    """
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


def body_of(notification: Notification) -> bytes:
    """The JSON body a subscriber receives."""
    document: dict[str, Any] = {
        "schema": SCHEMA_VERSION,
        "type": "citypulse.alerts",
        "subscriber": notification.subscriber.name,
        "group": {"rule": notification.rule, "district": notification.district},
        "events": list(notification.events),
    }
    return json.dumps(document, ensure_ascii=False, sort_keys=True).encode()


class WebhookChannel(AlertChannel):
    name = "webhook"

    def __init__(
        self, subscriptions: Sequence[WebhookSubscription], subscribers: Sequence[Subscriber]
    ) -> None:
        self._by_name = {s.name: s for s in subscriptions}
        self._subscribers = tuple(subscribers)

    def subscribers(self) -> Sequence[Subscriber]:
        return self._subscribers

    def deliver(self, notification: Notification) -> None:
        hook = self._by_name[notification.subscriber.name]
        body = body_of(notification)
        request = urllib.request.Request(
            hook.url,
            data=body,
            method="POST",
            headers={
                "Content-Type": "application/json; charset=utf-8",
                "User-Agent": USER_AGENT,
                SIGNATURE_HEADER: signature(hook.secret.get_secret_value().encode(), body),
            },
        )
        try:
            with urllib.request.urlopen(request, timeout=hook.timeout_s) as reply:
                reply.read()
        except urllib.error.HTTPError as failed:
            retryable = failed.code in RETRYABLE_STATUS or failed.code >= 500
            raise DeliveryError(
                f"webhook {hook.name} answered HTTP {failed.code}",
                retryable=retryable,
                retry_after_s=_retry_after(failed.headers.get("Retry-After")),
            ) from None
        except (urllib.error.URLError, OSError, ValueError) as failed:
            reason = getattr(failed, "reason", failed)
            raise DeliveryError(f"webhook {hook.name} unreachable: {reason}") from None

    def describe(self) -> str:
        return f"webhook ({', '.join(self._by_name)})"


def _retry_after(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


def _open(settings: Settings) -> AlertChannel | None:
    hooks = settings.alerts.webhooks
    if not hooks:
        return None
    return WebhookChannel(hooks, [Subscriber(h.name, h, pace_of(settings, h)) for h in hooks])


PLUGIN = ChannelPlugin(name="webhook", factory=_open, description="Signed JSON to subscribers' URLs.")
