"""All configuration, from one place: ``CITYPULSE_*`` environment variables and a TOML file.

Precedence, highest first: values passed by the command line, environment
variables, the TOML file named by ``CITYPULSE_CONFIG`` (or ``--config``), then the
defaults below, which work on one machine with nothing else installed. Every
field is documented in README's configuration table; a test keeps the two equal.
"""

from __future__ import annotations

import os
from contextvars import ContextVar
from pathlib import Path
from typing import Any, Literal
from urllib.parse import unquote, urlsplit

from pydantic import BaseModel, Field, SecretStr, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from processors.topics import DEFAULT_PREFIX, TopicScheme
from processors.validate import UnknownFieldPolicy, ValidationPolicy

DEFAULT_CONFIG_FILE = Path("citypulse.toml")
_explicit_config: ContextVar[Path | None] = ContextVar("citypulse_config", default=None)


class MqttEndpoint(BaseModel):
    """A broker address parsed from ``mqtt://user:pass@host:port`` (``mqtts://`` for TLS)."""

    host: str
    port: int
    username: str | None = None
    password: str | None = None
    tls: bool = False

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

    def display(self) -> str:
        """The address without the password, for logs."""
        user = f"{self.username}@" if self.username else ""
        return f"{'mqtts' if self.tls else 'mqtt'}://{user}{self.host}:{self.port}"


class Settings(BaseSettings):
    """citypulse configuration. Field docstrings are the documentation README shows."""

    model_config = SettingsConfigDict(
        env_prefix="CITYPULSE_",
        extra="forbid",
        validate_default=True,
    )

    # --- MQTT -----------------------------------------------------------------
    mqtt_url: SecretStr = Field(
        default=SecretStr("mqtt://127.0.0.1:1883"),
        description="Broker to read from, as mqtt://[user:password@]host[:port] (mqtts:// for TLS).",
    )
    mqtt_protocol: Literal["5", "3.1.1"] = Field(
        default="5",
        description="MQTT protocol version. 5 gives flow control (receive maximum) and session expiry.",
    )
    mqtt_client_id: str = Field(
        default="citypulse-ingest",
        description="Stable client id: the broker keeps this session's messages while the service is down.",
    )
    mqtt_session_expiry_s: int = Field(
        default=7 * 24 * 3600,
        ge=0,
        description="How long the broker keeps the session and its queued readings after a disconnect (v5).",
    )
    mqtt_receive_maximum: int = Field(
        default=10000,
        ge=1,
        le=65535,
        description="Most unacknowledged messages the broker may send at once (MQTT 5); bounds memory.",
    )
    mqtt_shared_group: str = Field(
        default="",
        description="If set, subscribe as $share/GROUP/... so several ingest processes split the load.",
    )
    mqtt_keepalive_s: int = Field(default=30, ge=5, description="MQTT keep-alive interval.")
    topic_prefix: str = Field(
        default=DEFAULT_PREFIX, description="Prefix of every citypulse topic (versioned)."
    )

    # --- Devices and validation ---------------------------------------------------
    registry: Path = Field(
        default=Path("devices.csv"),
        description="Device registry (CSV or JSON): id, kind, district, location of every device.",
    )
    max_payload_bytes: int = Field(
        default=256 * 1024, ge=64, description="Larger MQTT payloads are dead-lettered unread."
    )
    max_future_s: float = Field(
        default=300.0, ge=0, description="Readings this far ahead of the ingest clock are rejected."
    )
    max_age_s: float = Field(
        default=7 * 24 * 3600.0, gt=0, description="Readings older than this are rejected."
    )
    unknown_fields: UnknownFieldPolicy = Field(
        default=UnknownFieldPolicy.IGNORE,
        description="What to do with fields a kind does not declare: ignore (count and drop) or reject.",
    )
    deadletter_payload_bytes: int = Field(
        default=4096,
        ge=0,
        description="Dead letters keep at most this much of the original payload.",
    )

    # --- Pipeline -------------------------------------------------------------------
    batch_max_messages: int = Field(
        default=5000, ge=1, description="A pipeline cycle handles at most this many messages."
    )
    batch_linger_s: float = Field(
        default=0.5,
        gt=0,
        le=10,
        description="A cycle waits at most this long to fill up, so a reading is stored within about 1 s.",
    )

    # --- Storage ----------------------------------------------------------------------
    sink: str = Field(default="sqlite", description="Where readings go: sqlite or influxdb.")
    sqlite_path: Path = Field(default=Path("citypulse.sqlite"), description="SQLite store file.")
    influx_api: Literal["v2", "v1"] = Field(
        default="v2", description="InfluxDB write API: v2 (2.x, 3.x, 1.8+) or v1 (/write?db=)."
    )
    influx_url: str = Field(default="http://127.0.0.1:8086", description="InfluxDB base URL.")
    influx_token: SecretStr = Field(
        default=SecretStr(""), description="InfluxDB token; for v1, 'user:password' or empty."
    )
    influx_org: str = Field(default="citypulse", description="InfluxDB organisation (v2).")
    influx_bucket: str = Field(
        default="citypulse", description="InfluxDB bucket; for v1 the database ('db' or 'db/rp')."
    )

    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        default="INFO", description="Log verbosity."
    )

    @field_validator("mqtt_url")
    @classmethod
    def _mqtt_url_parses(cls, value: SecretStr) -> SecretStr:
        MqttEndpoint.parse(value.get_secret_value())
        return value

    @field_validator("topic_prefix")
    @classmethod
    def _prefix_is_valid(cls, value: str) -> str:
        TopicScheme(value)
        return value

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        toml_file = _config_file_from_env()
        if toml_file is not None:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=toml_file))
        return tuple(sources)

    # --- Derived views --------------------------------------------------------------
    @property
    def mqtt(self) -> MqttEndpoint:
        return MqttEndpoint.parse(self.mqtt_url.get_secret_value())

    @property
    def topics(self) -> TopicScheme:
        return TopicScheme(self.topic_prefix)

    @property
    def validation(self) -> ValidationPolicy:
        return ValidationPolicy(
            max_payload_bytes=self.max_payload_bytes,
            max_future_ms=int(self.max_future_s * 1000),
            max_age_ms=int(self.max_age_s * 1000),
            unknown_fields=self.unknown_fields,
            deadletter_payload_bytes=self.deadletter_payload_bytes,
        )


def _config_file_from_env() -> Path | None:
    explicit = _explicit_config.get()
    if explicit is not None:
        return explicit
    named = os.environ.get("CITYPULSE_CONFIG")
    if named:
        path = Path(named)
        if not path.is_file():
            raise FileNotFoundError(f"CITYPULSE_CONFIG names {path}, which is not a file")
        return path
    return DEFAULT_CONFIG_FILE if DEFAULT_CONFIG_FILE.is_file() else None


def load_settings(config: Path | None = None, **overrides: Any) -> Settings:
    """Settings from the environment and the TOML file, with command-line overrides on top.

    ``config`` (the ``--config`` option) wins over ``CITYPULSE_CONFIG``.
    """
    if config is not None and not config.is_file():
        raise FileNotFoundError(f"--config {config}: no such file")
    values = {k: v for k, v in overrides.items() if v is not None}
    token = _explicit_config.set(config)
    try:
        return Settings(**values)
    finally:
        _explicit_config.reset(token)
