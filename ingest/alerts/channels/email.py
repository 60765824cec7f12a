"""Email: alert notifications for duty engineers, through an SMTP server.

One message per notification (one group's events), subject line first with the
worst severity, then each event in the configured language first and the other
second. STARTTLS is used when configured (certificate checked, against
``smtp_ca_file`` if given); the password comes from the environment or a file.
"""

from __future__ import annotations

import smtplib
import ssl
from collections.abc import Sequence
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import TYPE_CHECKING

from ingest.alerts.channels.base import (
    AlertChannel,
    ChannelPlugin,
    DeliveryError,
    Notification,
    Subscriber,
    pace_of,
)
from ingest.alerts.settings import AlertSettings, EmailSubscription

if TYPE_CHECKING:
    from ingest.settings import Settings

_RANK = {"info": 0, "warning": 1, "critical": 2}


def compose(notification: Notification, sender: str, to: Sequence[str], language: str) -> EmailMessage:
    """The email for one notification."""
    events = notification.events
    worst = max((e["alert"]["severity"] for e in events), key=lambda s: _RANK.get(s, 0))
    first = events[0]["alert"]
    where = notification.district or first["target"]
    subject = f"[citypulse] {worst.upper()} {notification.rule} · {where}"
    if len(events) > 1:
        subject += f" ({len(events)} events)"
    lines = []
    for e in events:
        a = e["alert"]
        messages = (a["message_vi"], a["message"]) if language == "vi" else (a["message"], a["message_vi"])
        lines.append(f"{e['event'].upper()} · {a['severity']} · {e['at']}")
        lines.extend(f"  {m}" for m in messages if m)
        value = "" if a["value"] is None else f" · value {a['value']:g} {a['unit']}".rstrip()
        limit = "" if a["limit"] is None else f" (limit {a['limit']:g})"
        lines.append(f"  alert {a['id']} · {a['target']} · since {a['started']}{value}{limit}")
        if a["acknowledged_by"]:
            lines.append(f"  acknowledged by {a['acknowledged_by']}: {a['note']}")
        lines.append(f"  event id {e['event_id']}")
        lines.append("")
    lines.append(f"Acknowledge: citypulse alerts ack {first['id']} --by NAME --note TEXT")
    message = EmailMessage()
    message["Subject"] = subject
    message["From"] = sender
    message["To"] = ", ".join(to)
    message["Date"] = formatdate(localtime=False)
    message["Message-ID"] = make_msgid(domain="citypulse")
    message["X-Citypulse-Event-Ids"] = " ".join(e["event_id"] for e in events)
    message.set_content("\n".join(lines))
    return message


class EmailChannel(AlertChannel):
    name = "email"

    def __init__(
        self,
        alerts: AlertSettings,
        subscriptions: Sequence[EmailSubscription],
        subscribers: Sequence[Subscriber],
    ) -> None:
        self.alerts = alerts
        self._by_name = {s.name: s for s in subscriptions}
        self._subscribers = tuple(subscribers)

    def subscribers(self) -> Sequence[Subscriber]:
        return self._subscribers

    def deliver(self, notification: Notification) -> None:
        a = self.alerts
        subscription = self._by_name[notification.subscriber.name]
        message = compose(notification, a.smtp_from, subscription.to, a.language)
        try:
            with smtplib.SMTP(a.smtp_host, a.smtp_port, timeout=a.smtp_timeout_s) as smtp:
                if a.smtp_starttls:
                    context = ssl.create_default_context(
                        cafile=str(a.smtp_ca_file) if a.smtp_ca_file is not None else None
                    )
                    smtp.starttls(context=context)
                if a.smtp_username:
                    smtp.login(a.smtp_username, a.smtp_password.get_secret_value())
                refused = smtp.send_message(message)
        except smtplib.SMTPAuthenticationError as bad:
            raise DeliveryError(
                f"SMTP {a.smtp_host} refused the login ({bad.smtp_code}); "
                "check CITYPULSE_ALERTS_SMTP_USERNAME and the password",
                retryable=False,
            ) from None
        except smtplib.SMTPNotSupportedError:
            raise DeliveryError(
                f"SMTP {a.smtp_host} does not offer STARTTLS; "
                "set smtp_starttls = false only on a trusted network",
                retryable=False,
            ) from None
        except smtplib.SMTPResponseException as bad:
            raise DeliveryError(
                f"SMTP {a.smtp_host} answered {bad.smtp_code}", retryable=bad.smtp_code < 500
            ) from None
        except (smtplib.SMTPException, OSError, ssl.SSLError) as bad:
            raise DeliveryError(f"SMTP {a.smtp_host}:{a.smtp_port} failed: {bad}") from None
        if refused:
            raise DeliveryError(f"SMTP {a.smtp_host} refused {', '.join(refused)}", retryable=False)

    def describe(self) -> str:
        return f"email via {self.alerts.smtp_host}:{self.alerts.smtp_port} ({', '.join(self._by_name)})"


def _open(settings: Settings) -> AlertChannel | None:
    emails = settings.alerts.emails
    if not emails:
        return None
    subscribers = [Subscriber(e.name, e, pace_of(settings, e)) for e in emails]
    return EmailChannel(settings.alerts, emails, subscribers)


PLUGIN = ChannelPlugin(name="email", factory=_open, description="Emails to duty engineers through SMTP.")
