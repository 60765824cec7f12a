"""All configuration, from one place: ``CITYPULSE_*`` environment variables and a TOML file.

Precedence, highest first: values passed by the command line, environment
variables, the TOML file named by ``CITYPULSE_CONFIG`` (or ``--config``), then the
defaults below, which work on one machine with nothing else installed.

``docs/configuration.md`` is generated from this module (``python -m ingest.docs``):
the groups below are its sections (a group's docstring gives the title and the
introduction), each field's ``description`` is its text. A test fails when the
committed file differs from what the code generates. A group is a pydantic model
whose fields ``Settings`` inherits: a new group joins ``Settings``' bases, where
the order of the bases is the order of the reference, last group first.

Every secret (a ``SecretStr`` setting) may also come from a file named by
``CITYPULSE_<NAME>_FILE``, as Docker secrets are mounted (``ingest/secret_files.py``).

Two shapes of setting:

- A flat setting is a field of the group it belongs to, read from
  ``CITYPULSE_<FIELD>`` and from the TOML key ``<field>``.
- The options a part owns (a sink, the alerts, ...) are a
  :class:`~ingest.settings_section.SettingsSection` declared next to that part's
  code and nested here as one field, ``influx: InfluxSettings``. Its options are
  read from ``CITYPULSE_INFLUX_<OPTION>`` (the first ``_`` after the section's
  name separates it from the option, so option names may contain ``_``:
  ``CITYPULSE_INFLUX_BATCH_POINTS`` is ``settings.influx.batch_points``) and from
  the TOML table ``[influx]`` (or dotted keys, ``influx.url = ...``). A misspelt
  option is an error. A sink names its section in its plugin (``SinkPlugin(...,
  settings=InfluxSettings)``) and receives only that section. No flat field may
  start with a section's name and ``_`` (a test checks it), or its variable would
  be read as an option of the section.

To add a section: declare ``class AlertSettings(SettingsSection)`` with described
fields beside the code that uses them, add ``alerts: AlertSettings =
Field(default_factory=AlertSettings, description=...)`` to the group it belongs
to, and regenerate the docs.
"""

from __future__ import annotations

import os
from contextvars import ContextVar
from pathlib import Path
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, Field, SecretStr, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from ingest.alerts.settings import AlertSettings
from ingest.device_states import DeviceStateSettings
from ingest.grafana_settings import GrafanaSettings
from ingest.secret_files import SecretFilesSource
from ingest.settings_section import SettingsSection
from ingest.sinks import SINKS
from ingest.sinks.influxdb import InfluxSettings
from ingest.sinks.sqlite import SqliteSettings
from ingest.storage_setup import RetentionSettings
from processors.detectors import DETECTORS, DetectorConfig
from processors.endpoint import MqttEndpoint
from processors.ratelimit import RatePolicy
from processors.topics import DEFAULT_PREFIX, TopicScheme
from processors.validate import UnknownFieldPolicy, ValidationPolicy

DEFAULT_CONFIG_FILE = Path("citypulse.toml")
_explicit_config: ContextVar[Path | None] = ContextVar("citypulse_config", default=None)
S = TypeVar("S", bound=SettingsSection)


class MqttGroup(BaseModel):
    """MQTT

    The broker citypulse reads readings from, and how it subscribes.
    """

    mqtt_url: SecretStr = Field(
        default=SecretStr("mqtt://127.0.0.1:1883"),
        description="Broker to read from, as `mqtt://[user:password@]host[:port]` (`mqtts://` for TLS).",
    )
    mqtt_password: SecretStr = Field(
        default=SecretStr(""),
        description="Broker password, instead of the one in `mqtt_url` (empty: the URL's); "
        "`CITYPULSE_MQTT_PASSWORD_FILE` reads it from a file, as every secret can be.",
    )
    mqtt_ca_file: str = Field(
        default="",
        description="PEM file of the CA that signed the broker's certificate, for `mqtts://` "
        "(empty: the system's trusted CAs).",
    )
    mqtt_cert_file: str = Field(
        default="",
        description="PEM client certificate, for a broker that requires one; its common name is the "
        "broker user name there.",
    )
    mqtt_key_file: str = Field(
        default="", description="PEM private key of `mqtt_cert_file`, unless that file holds it."
    )
    mqtt_protocol: Literal["5", "3.1.1"] = Field(
        default="5",
        description="MQTT protocol version; 5 gives flow control (receive maximum) and session expiry.",
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
        default=65535,
        ge=1,
        le=65535,
        description="Most unacknowledged messages the broker may send at once (MQTT 5), and most received "
        "messages held in memory. A cycle is acknowledged once stored while the next ones are read and "
        "processed, so keep it at three cycles (`batch_max_messages`) or more.",
    )
    mqtt_receive_buffer_bytes: int = Field(
        default=16 * 2**20,
        ge=2**16,
        description="Most payload bytes received and not yet taken by a cycle; beyond it the socket is left "
        "unread and the broker keeps the rest. With `mqtt_receive_maximum`, this bounds memory.",
    )
    mqtt_shared_group: str = Field(
        default="",
        description="If set, subscribe as `$share/GROUP/...` so several ingest processes split the load.",
    )
    mqtt_keepalive_s: int = Field(default=30, ge=5, description="MQTT keep-alive interval.")
    topic_prefix: str = Field(
        default=DEFAULT_PREFIX, description="Prefix of every citypulse topic (versioned)."
    )


class ValidationGroup(BaseModel):
    """Devices and validation

    Which devices exist, and what a reading must be to be stored; anything else
    becomes a dead letter with its reason.
    """

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
        description="What to do with fields a kind does not declare: `ignore` (count and drop) or `reject`.",
    )
    deadletter_payload_bytes: int = Field(
        default=4096,
        ge=0,
        description="Dead letters keep at most this much of the original payload.",
    )
    dedup_window: int = Field(
        default=16,
        ge=0,
        le=1024,
        description="Recent timestamps remembered per device to recognise a repeated reading (8 bytes each).",
    )
    max_topic_bytes: int = Field(
        default=256, ge=32, description="Longer topics are dead-lettered as `over_limit`."
    )
    max_json_depth: int = Field(
        default=4,
        ge=2,
        description="Deepest JSON nesting accepted: a reading is an object (1), a batch an array of them "
        "(2); deeper payloads are dead-lettered as `over_limit`.",
    )
    max_batch_items: int = Field(
        default=10_000, ge=1, description="Most readings in one array (a backlog or a gateway batch)."
    )
    max_fields: int = Field(
        default=64, ge=16, description="Most fields in one reading (a kind has at most a dozen)."
    )
    max_string_bytes: int = Field(default=1024, ge=64, description="Longest string in a payload.")
    gateway_check: bool = Field(
        default=True,
        description="A gateway's batch may carry only the devices the registry's `gateway` column puts "
        "behind it; others are dead-lettered as `gateway_mismatch` (`false`: any gateway, any device).",
    )
    rate_limit_factor: float = Field(
        default=2.0,
        ge=0,
        description="Each device may send this many times the readings its reporting interval implies; "
        "the excess is dead-lettered as `rate_limited` (`0`: no limit).",
    )
    rate_limit_burst_s: float = Field(
        default=3600.0,
        gt=0,
        description="How much unused allowance a device may save up, in seconds of its allowed rate, "
        "so a backlog sent after an outage is not limited.",
    )


class DetectionGroup(BaseModel):
    """Anomaly detection

    Which detectors run and when a score raises an alarm; each detector is
    described in [detectors.md](detectors.md).
    """

    detectors: str = Field(
        default="all",
        description=(
            "Detectors to run: `all` (each where it runs by default), `none`, or a comma-separated list of "
            "names (`citypulse detect --list`), each run on every kind it applies to."
        ),
    )
    anomaly_threshold: float = Field(
        default=0.5,
        gt=0,
        le=1,
        description="Scores at or above this raise an alarm; each detector scores 0.5 where it is confident.",
    )
    silence_intervals: float = Field(
        default=2.5,
        gt=1,
        description="A device is silent after this many of its reporting intervals without a reading.",
    )
    clock_tolerance_s: float = Field(
        default=40.0,
        gt=0,
        description="Clock error tolerated beyond a device's usual delay before it is reported as skewed.",
    )
    full_horizon_s: float = Field(
        default=7200.0,
        gt=0,
        description="A waste bin predicted to be full within this time raises a forecast.",
    )
    detector_state: Path = Field(
        default=Path("citypulse-detectors.npz"),
        description="Where detector baselines are saved on stop and restored on start (empty: not kept).",
    )
    detector_state_interval_s: float = Field(
        default=300.0,
        ge=0,
        description="Detector baselines are also saved this often while running, so a crash costs at most "
        "this much learning (`0`: only on stop).",
    )
    malloc_keep_mb: int = Field(
        default=32,
        ge=0,
        le=32,
        description="Freed memory (MB) the process keeps for reuse instead of returning it to the kernel "
        "after every cycle (glibc `mallopt`), which spares detection thousands of page faults per cycle at "
        "large fleets (`0`: the C library's defaults).",
    )


class PipelineGroup(BaseModel):
    """Pipeline

    How many messages one cycle (validate, detect, store, acknowledge) takes.
    """

    batch_max_messages: int = Field(
        default=20_000, ge=1, description="A pipeline cycle handles at most this many messages."
    )
    batch_max_bytes: int = Field(
        default=2 * 2**20,
        ge=1024,
        description="A cycle stops taking messages once their payloads reach this size: bounds the readings "
        "a cycle holds (a gateway's batch of 100 readings weighs 100 single ones).",
    )
    batch_linger_s: float = Field(
        default=0.2,
        gt=0,
        le=10,
        description="A cycle waits at most this long to fill up, so a reading is stored within about 1 s.",
    )


class StorageGroup(BaseModel):
    """Storage

    Where readings, dead letters and the pipeline's own measurements are stored:
    one sink, chosen by name; each sink's options are a section of their own.
    """

    sink: str = Field(
        default="sqlite", description=f"Where readings go: {' or '.join(f'`{name}`' for name in SINKS)}."
    )
    sqlite: SqliteSettings = Field(default_factory=SqliteSettings, description="The sqlite sink's options.")
    influx: InfluxSettings = Field(default_factory=InfluxSettings, description="The influxdb sink's options.")


class DurabilityGroup(BaseModel):
    """Durability

    What happens while the store is down: retries, then a spool on disk, then
    backpressure at the broker; nothing acknowledged is lost.
    """

    spool_dir: Path = Field(
        default=Path("citypulse-spool"),
        description="Where batches wait on disk while the store is down (one directory per ingest process).",
    )
    spool_max_bytes: int = Field(
        default=1024**3,
        ge=1024,
        description="Most disk the spool may use; when it is full, messages stay unacknowledged at the "
        "broker.",
    )
    retry_spool_after_s: float = Field(
        default=5.0, ge=0, description="How long a failing write is retried before its batch is spooled."
    )
    retry_max_backoff_s: float = Field(
        default=30.0,
        gt=0,
        description="Longest wait between retries, unless the server's `Retry-After` asks for more.",
    )


class MetricsGroup(BaseModel):
    """Self-metrics and logging

    What the service tells about itself: Prometheus metrics, a measurement in the
    store, and its log.
    """

    metrics_port: int = Field(
        default=9108, ge=0, le=65535, description="Port of the Prometheus `/metrics` endpoint (`0`: off)."
    )
    metrics_host: str = Field(
        default="127.0.0.1",
        description="Address the `/metrics` endpoint listens on (`0.0.0.0`: every interface).",
    )
    metrics_interval_s: float = Field(
        default=10.0,
        ge=0,
        description="How often the `pipeline` measurement is written to the store (`0`: never).",
    )

    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        default="INFO", description="Log verbosity."
    )


class AlertsGroup(BaseModel):
    """Alerts

    Turning the detectors' alarms into alerts and delivering them: the `[alerts]` table of the
    file, or `CITYPULSE_ALERTS_<OPTION>`. Subscriptions (`[[alerts.webhooks]]`,
    `[[alerts.emails]]`) are tables of the file; see docs/alerts.md.
    """

    alerts: AlertSettings = Field(
        default_factory=AlertSettings, description="Alert rules, store and delivery; see docs/alerts.md."
    )


class DashboardsGroup(BaseModel):
    """Dashboards, history and the city map

    Grafana for `citypulse dashboards push|check`, how long history is kept (`citypulse storage
    setup`), and the `devices` measurement the city map draws.
    """

    grafana: GrafanaSettings = Field(
        default_factory=GrafanaSettings, description="Grafana for `citypulse dashboards push|check`."
    )
    retention: RetentionSettings = Field(
        default_factory=RetentionSettings, description="Retention and rollups (`citypulse storage setup`)."
    )
    devices: DeviceStateSettings = Field(
        default_factory=DeviceStateSettings, description="The `devices` measurement behind the city map."
    )


# The groups are listed last to first: pydantic collects the fields of later bases first,
# so this order keeps the fields (and error messages) in the order the reference shows them.
class Settings(
    BaseSettings,
    DashboardsGroup,
    AlertsGroup,
    MetricsGroup,
    DurabilityGroup,
    StorageGroup,
    PipelineGroup,
    DetectionGroup,
    ValidationGroup,
    MqttGroup,
):
    """citypulse configuration: every group's fields, read from the environment and a TOML file."""

    model_config = SettingsConfigDict(
        env_prefix="CITYPULSE_",
        env_nested_delimiter="_",
        env_nested_max_split=1,
        extra="forbid",
        validate_default=True,
    )

    @field_validator("mqtt_url")
    @classmethod
    def _mqtt_url_parses(cls, value: SecretStr) -> SecretStr:
        MqttEndpoint.parse(value.get_secret_value())
        return value

    @model_validator(mode="after")
    def _mqtt_endpoint_is_whole(self) -> Settings:
        """TLS files with a plain URL, or a password without a user, fail at load, not at connect."""
        self.mqtt  # noqa: B018 - building the endpoint is the check
        return self

    @field_validator("detectors")
    @classmethod
    def _detectors_exist(cls, value: str) -> str:
        names = [n.strip() for n in value.split(",") if n.strip()]
        if names in (["all"], ["none"], []):
            return value
        unknown = [n for n in names if n not in DETECTORS]
        if unknown:
            raise ValueError(
                f"unknown detector(s) {', '.join(unknown)}; choose all, none or from: {', '.join(DETECTORS)}"
            )
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
        sources: list[PydanticBaseSettingsSource] = [
            init_settings,
            SecretFilesSource(settings_cls, env_settings),
        ]
        toml_file = _config_file_from_env()
        if toml_file is not None:
            sources.append(_TomlFile(settings_cls, toml_file))
        return tuple(sources)

    def section(self, cls: type[S]) -> S:
        """The nested section of type ``cls`` (a sink's ``InfluxSettings``, say)."""
        for name, field in type(self).model_fields.items():
            if field.annotation is cls:
                value: S = getattr(self, name)
                return value
        raise LookupError(
            f"{cls.__name__} is not nested in Settings; add a field for it (ingest/settings.py)"
        )

    # --- Derived views --------------------------------------------------------------
    @property
    def mqtt(self) -> MqttEndpoint:
        """The broker endpoint: the URL, with the separate password and the TLS files applied."""
        endpoint = MqttEndpoint.parse(self.mqtt_url.get_secret_value())
        password = self.mqtt_password.get_secret_value()
        if password:
            if endpoint.username is None:
                raise ValueError("CITYPULSE_MQTT_PASSWORD is set but the MQTT URL names no user: add user@")
            endpoint = endpoint.model_copy(update={"password": password})
        return endpoint.with_tls_files(self.mqtt_ca_file, self.mqtt_cert_file, self.mqtt_key_file)

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
            dedup_window=self.dedup_window,
            max_topic_bytes=self.max_topic_bytes,
            max_json_depth=self.max_json_depth,
            max_batch_items=self.max_batch_items,
            max_fields=self.max_fields,
            max_string_bytes=self.max_string_bytes,
            gateway_check=self.gateway_check,
        )

    @property
    def rate_policy(self) -> RatePolicy:
        return RatePolicy(factor=self.rate_limit_factor, burst_s=self.rate_limit_burst_s)

    @property
    def detection(self) -> DetectorConfig:
        return DetectorConfig(
            threshold=self.anomaly_threshold,
            silence_intervals=self.silence_intervals,
            clock_tolerance_ms=int(self.clock_tolerance_s * 1000),
            full_horizon_ms=int(self.full_horizon_s * 1000),
        )

    @property
    def detector_names(self) -> tuple[str, ...] | None:
        """The detectors ``CITYPULSE_DETECTORS`` asks for (None: all of them)."""
        spec = self.detectors.strip()
        if spec in ("", "all"):
            return None
        if spec == "none":
            return ()
        return tuple(dict.fromkeys(n.strip() for n in spec.split(",") if n.strip()))


GROUPS: tuple[type[BaseModel], ...] = tuple(
    cls
    for cls in reversed(Settings.__mro__)
    if issubclass(cls, BaseModel) and cls not in (BaseModel, BaseSettings, Settings)
)
"""The groups of settings, in the order ``docs/configuration.md`` shows them."""


def sections(model: type[BaseModel]) -> dict[str, type[SettingsSection]]:
    """The nested sections of ``model`` (Settings or one of its groups), by field name."""
    found: dict[str, type[SettingsSection]] = {}
    for name, field in model.model_fields.items():
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, SettingsSection):
            found[name] = annotation
    return found


class _TomlFile(TomlConfigSettingsSource):
    """The TOML file, which must spell a section's option in its table: ``[influx]`` ``url``.

    The environment spells it ``CITYPULSE_INFLUX_URL``; the file refuses ``influx_url``
    with the spelling it takes, so one file never holds two spellings that disagree.
    """

    def __init__(self, settings_cls: type[BaseSettings], toml_file: Path) -> None:
        super().__init__(settings_cls, toml_file=toml_file)
        for section, cls in sections(settings_cls).items():
            for key in self.toml_data:
                option = key.removeprefix(section + "_")
                if option != key and option in cls.model_fields:
                    raise ValueError(
                        f"{toml_file}: {key!r} belongs to the [{section}] table; write {option} = ... "
                        f"under [{section}] (or {section}.{option} = ...)"
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


def _given(values: dict[str, Any]) -> dict[str, Any]:
    """``values`` without the None ones, within sections too; a section left empty goes."""
    kept: dict[str, Any] = {}
    for key, value in values.items():
        given = (_given(value) or None) if isinstance(value, dict) else value
        if given is not None:
            kept[key] = given
    return kept


def load_settings(config: Path | None = None, **overrides: Any) -> Settings:
    """Settings from the environment and the TOML file, with command-line overrides on top.

    ``config`` (the ``--config`` option) wins over ``CITYPULSE_CONFIG``. An override
    of None (an option not given) is left out; a section's options are overridden
    with a dict, ``sqlite={"path": ...}``, which is merged with what the environment
    and the file say about that section.
    """
    if config is not None and not config.is_file():
        raise FileNotFoundError(f"--config {config}: no such file")
    values = _given(overrides)
    token = _explicit_config.set(config)
    try:
        return Settings(**values)
    finally:
        _explicit_config.reset(token)
