"""The base of a settings section: options one part of the service owns, nested in ``Settings``.

A sink (or any other part) that has options of its own declares them in a
subclass next to its code, as ``InfluxSettings`` in ``ingest/sinks/influxdb.py``
does, and ``ingest/settings.py`` nests it under one name. How that name becomes
environment variables and a TOML table is told there.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, SecretStr


class SettingsSection(BaseModel):
    """Settings nested in ``Settings`` under one name; a misspelt option is an error, not ignored.

    The docstring's first line titles the section in ``docs/configuration.md``; the
    rest of it introduces the section there.
    """

    model_config = ConfigDict(extra="forbid", validate_default=True)


def read_secret(value: SecretStr, file: Path | None, name: str) -> str:
    """A secret from its variable, or from the file its ``*_FILE`` variable names (Docker secrets).

    The file wins when both are set; surrounding whitespace (a trailing newline) is dropped.
    """
    if file is None or str(file) in ("", "."):
        return value.get_secret_value()
    try:
        return file.read_text().strip()
    except OSError as failed:
        raise ValueError(f"CITYPULSE_{name}_FILE={file}: cannot read it ({failed.strerror})") from None
