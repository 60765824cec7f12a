"""Secrets from files: ``CITYPULSE_<NAME>_FILE`` for every secret setting (Docker secrets).

A container platform mounts a secret as a file (``/run/secrets/influx_token``)
rather than putting it in the environment, where ``docker inspect`` and child
processes would see it. Every setting typed ``SecretStr`` (the broker URL, the
MQTT password, the InfluxDB token, ...) can therefore be given either as
``CITYPULSE_INFLUX_TOKEN`` or as ``CITYPULSE_INFLUX_TOKEN_FILE`` naming a file
that holds it; giving both is an error, since one of them would be silently
ignored. A trailing newline in the file is not part of the secret.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pydantic import BaseModel, SecretStr
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource


def secret_paths(model: type[BaseModel], prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """The field paths of every ``SecretStr`` setting, sections included: ``("influx", "token")``.

    A section that declares its own ``<name>_file`` option (Grafana's token) reads
    that file itself and is left alone here.
    """
    found: list[tuple[str, ...]] = []
    for name, field in model.model_fields.items():
        annotation = field.annotation
        if annotation is SecretStr and f"{name}_file" not in model.model_fields:
            found.append((*prefix, name))
        elif isinstance(annotation, type) and issubclass(annotation, BaseModel):
            found += secret_paths(annotation, (*prefix, name))
    return found


def variable(env_prefix: str, path: tuple[str, ...]) -> str:
    """The environment variable of a secret setting, ``CITYPULSE_INFLUX_TOKEN``."""
    return (env_prefix + "_".join(path)).upper()


class SecretFilesSource(PydanticBaseSettingsSource):
    """Wraps the environment source: adds the secrets read from ``*_FILE`` paths."""

    def __init__(self, settings_cls: type[BaseSettings], environment: PydanticBaseSettingsSource) -> None:
        super().__init__(settings_cls)
        self.environment = environment
        self.env_prefix = str(settings_cls.model_config.get("env_prefix", ""))

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        """Unused: ``__call__`` reads every secret file at once."""
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        data = self.environment()
        environ = {name.upper(): value for name, value in os.environ.items()}
        for path in secret_paths(self.settings_cls):
            name = variable(self.env_prefix, path)
            section = data
            for part in path[:-1]:
                section = section.setdefault(part, {}) if isinstance(section, dict) else {}
            # A section's option "token_file" is what the environment source made of *_TOKEN_FILE.
            if isinstance(section, dict):
                section.pop(path[-1] + "_file", None)
            named = environ.get(name + "_FILE")
            if not named:
                continue
            if name in environ:
                raise ValueError(f"both {name} and {name}_FILE are set: keep one of them")
            try:
                secret = Path(named).read_text(encoding="utf-8").removesuffix("\n").removesuffix("\r")
            except OSError as bad:
                raise ValueError(
                    f"{name}_FILE names {named}, which cannot be read ({bad.strerror}); "
                    "mount the secret there or unset the variable"
                ) from None
            if isinstance(section, dict):
                section[path[-1]] = secret
        return {key: value for key, value in data.items() if value != {}}
