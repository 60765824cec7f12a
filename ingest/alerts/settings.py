"""Alert settings: the ``[alerts]`` table of the TOML file, or ``CITYPULSE_ALERTS_<FIELD>``.

Subscriptions are tables in the config file::

    [alerts]
    rules = "alert-rules.toml"

    [[alerts.webhooks]]
    name = "water-company"
    url = "https://hooks.example.vn/citypulse"
    secret_file = "/run/secrets/water-company-hook"
    kinds = ["water"]
    severities = ["warning", "critical"]

    [[alerts.emails]]
    name = "duty-engineers"
    to = ["duty@example.vn"]
    severities = ["critical"]

Secrets (webhook secrets, the SMTP password) are ``SecretStr``: give them in the
environment (``CITYPULSE_ALERTS_SMTP_PASSWORD``) or as ``*_file`` paths, never
in a file that is checked in.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal, Self

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from ingest.settings_section import SettingsSection
from processors.alerts import AlertCategory, AlertEvent, Severity
from processors.kinds import KINDS

_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
_ADDRESS = re.compile(r"^[^@\s]+@[^@\s]+$")


def _read_secret(path: Path, what: str) -> SecretStr:
    try:
        return SecretStr(path.read_text(encoding="utf-8").strip())
    except OSError as bad:
        raise ValueError(f"cannot read {what} from {path}: {bad.strerror}") from None


class Filters(BaseModel):
    """Which events a subscriber wants; an empty list means any."""

    model_config = ConfigDict(extra="forbid")

    severities: list[Severity] = Field(default_factory=list)
    kinds: list[str] = Field(default_factory=list)
    districts: list[str] = Field(default_factory=list)
    categories: list[AlertCategory] = Field(default_factory=list)
    rules: list[str] = Field(default_factory=list)

    @field_validator("kinds")
    @classmethod
    def _kinds_exist(cls, value: list[str]) -> list[str]:
        unknown = [k for k in value if k not in KINDS]
        if unknown:
            raise ValueError(f"unknown kind(s) {', '.join(unknown)}; choose from {', '.join(KINDS)}")
        return value

    def matches(self, event: AlertEvent) -> bool:
        a = event.alert
        return (
            (not self.severities or a.severity in self.severities)
            and (not self.kinds or a.kind in self.kinds)
            and (not self.districts or a.district in self.districts)
            and (not self.categories or a.category in self.categories)
            and (not self.rules or a.rule in self.rules)
        )


class Pacing(BaseModel):
    """Grouping and rate limit of one subscriber; unset values take the ``[alerts]`` defaults."""

    model_config = ConfigDict(extra="forbid")

    group_wait_s: float | None = Field(default=None, ge=0)
    group_interval_s: float | None = Field(default=None, ge=0)
    max_notifications: int | None = Field(default=None, ge=1)
    rate_window_s: float | None = Field(default=None, gt=0)


class WebhookSubscription(Filters, Pacing):
    """A URL that receives signed JSON notifications."""

    name: str = Field(pattern=_NAME)
    url: str
    secret: SecretStr = SecretStr("")
    """Key of the ``X-Citypulse-Signature`` HMAC-SHA256; give it here, in the environment, or as a file."""
    secret_file: Path | None = None
    timeout_s: float = Field(default=5.0, gt=0)

    @field_validator("url")
    @classmethod
    def _http(cls, value: str) -> str:
        if not re.match(r"^https?://[^/\s]+", value):
            raise ValueError(f"webhook url {value!r} must start with http:// or https://")
        return value

    @model_validator(mode="after")
    def _secret(self) -> Self:
        if self.secret_file is not None:
            self.secret = _read_secret(self.secret_file, f"the secret of webhook {self.name}")
        if not self.secret.get_secret_value():
            raise ValueError(
                f"webhook {self.name} has no secret: set secret_file (or secret) so receivers can verify "
                "the X-Citypulse-Signature header"
            )
        return self


class EmailSubscription(Filters, Pacing):
    """Addresses that receive alert emails through the SMTP server of ``[alerts]``."""

    name: str = Field(pattern=_NAME)
    to: list[str] = Field(min_length=1)

    @field_validator("to")
    @classmethod
    def _addresses(cls, value: list[str]) -> list[str]:
        bad = [a for a in value if not _ADDRESS.match(a)]
        if bad:
            raise ValueError(f"not an email address: {', '.join(bad)}")
        return value


class AlertSettings(SettingsSection):
    """Alerts

    Rules, the durable alert store, the delivery channels and their pacing; see docs/alerts.md.
    """

    enabled: bool = Field(default=True, description="Raise alerts from the detectors' alarms (false: none).")
    rules: Path | None = Field(
        default=None,
        description="Operator's rule file (TOML) patching the default rules; see docs/alerts.md.",
    )
    store: Path = Field(
        default=Path("citypulse-alerts.sqlite"),
        description="Durable alert state, outbox and history (SQLite, owner-only); one per ingest process.",
    )
    language: Literal["vi", "en"] = Field(
        default="vi", description="Which message comes first in emails and the command line."
    )
    mqtt: bool = Field(default=True, description="Publish alert events and open alerts on MQTT.")
    webhooks: list[WebhookSubscription] = Field(default_factory=list, description="Webhook subscriptions.")
    emails: list[EmailSubscription] = Field(default_factory=list, description="Email subscriptions.")
    smtp_host: str = Field(default="", description="SMTP server for alert emails.")
    smtp_port: int = Field(default=587, ge=1, le=65535, description="SMTP port.")
    smtp_starttls: bool = Field(default=True, description="Upgrade the SMTP connection with STARTTLS.")
    smtp_ca_file: Path | None = Field(default=None, description="CA bundle for a private SMTP certificate.")
    smtp_username: str = Field(default="", description="SMTP user (empty: no login).")
    smtp_password: SecretStr = Field(default=SecretStr(""), description="SMTP password.")
    smtp_password_file: Path | None = Field(default=None, description="File holding the SMTP password.")
    smtp_from: str = Field(default="citypulse@localhost", description="Sender address of alert emails.")
    smtp_timeout_s: float = Field(default=10.0, gt=0, description="SMTP connection and command timeout.")
    queue_size: int = Field(
        default=1000,
        ge=1,
        description="Events each channel holds in memory; more wait in the outbox on disk.",
    )
    outbox_max: int = Field(
        default=100_000,
        ge=1,
        description="Undelivered events kept per channel; beyond it the oldest are dropped (dead-lettered).",
    )
    retry_attempts: int = Field(
        default=8, ge=1, description="Delivery attempts before an event is dead-lettered."
    )
    retry_first_s: float = Field(default=1.0, gt=0, description="Wait before the first retry; doubles after.")
    retry_max_s: float = Field(default=300.0, gt=0, description="Longest wait between retries.")
    group_wait_s: float = Field(
        default=10.0, ge=0, description="A new group's first event waits this long for others to join it."
    )
    group_interval_s: float = Field(
        default=60.0, ge=0, description="A group just notified waits this long before the next notification."
    )
    max_notifications: int = Field(
        default=30, ge=1, description="Most notifications one subscriber gets per rate_window_s."
    )
    rate_window_s: float = Field(default=3600.0, gt=0, description="Window of max_notifications.")
    keep_events_days: float = Field(
        default=30.0, gt=0, description="Alert events kept in the store's history (for tail and list)."
    )

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.smtp_password_file is not None:
            self.smtp_password = _read_secret(self.smtp_password_file, "the SMTP password")
        if self.emails and not self.smtp_host:
            raise ValueError("email subscriptions need smtp_host (CITYPULSE_ALERTS_SMTP_HOST)")
        names = [w.name for w in self.webhooks] + [e.name for e in self.emails]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"subscription names must be unique: {', '.join(duplicates)}")
        return self
