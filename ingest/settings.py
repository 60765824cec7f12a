"""All configuration, from one place: ``CITYPULSE_*`` environment variables and a TOML file.

Precedence, highest first: values passed by the command line, environment
variables, the TOML file named by ``CITYPULSE_CONFIG`` (or ``--config``), then the
defaults below, which work on one machine with nothing else installed.

``docs/configuration.md`` is generated from this module (``python -m ingest.docs``):
the groups in ``ingest/settings_groups.py`` are its sections (a group's docstring
gives the title and the introduction), each field's ``description`` is its text. A test fails when the
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
from typing import Any, TypeVar

from pydantic import BaseModel, SecretStr, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from ingest.secret_files import SecretFilesSource
from ingest.settings_groups import (
    AlertsGroup,
    DashboardsGroup,
    DetectionGroup,
    DurabilityGroup,
    MetricsGroup,
    MqttGroup,
    PipelineGroup,
    StorageGroup,
    ValidationGroup,
)
from ingest.settings_section import SettingsSection
from processors.detectors import DETECTORS, DetectorConfig
from processors.endpoint import MqttEndpoint
from processors.ratelimit import RatePolicy
from processors.topics import TopicScheme
from processors.validate import ValidationPolicy

DEFAULT_CONFIG_FILE = Path("citypulse.toml")
_explicit_config: ContextVar[Path | None] = ContextVar("citypulse_config", default=None)
S = TypeVar("S", bound=SettingsSection)


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
