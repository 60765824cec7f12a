"""The options ``citypulse dashboards push|check`` use to reach Grafana and the read-only data source."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr

from ingest.settings_section import SettingsSection, read_secret


class GrafanaSettings(SettingsSection):
    """Where ``citypulse dashboards push|check`` finds Grafana (``CITYPULSE_GRAFANA_*``)."""

    url: str = Field(default="http://127.0.0.1:3000", description="Grafana base URL.")
    token: SecretStr = Field(
        default=SecretStr(""),
        description="Grafana service-account token (Editor role is enough to push dashboards).",
    )
    token_file: Path | None = Field(
        default=None, description="File holding the Grafana token (a Docker secret); wins over the token."
    )
    influx_url: str = Field(
        default="",
        description="InfluxDB URL as Grafana reaches it (empty: the ingest service's InfluxDB URL).",
    )
    influx_token: SecretStr = Field(
        default=SecretStr(""),
        description="Read-only InfluxDB token the Grafana data source uses (v1: 'user:password').",
    )
    influx_token_file: Path | None = Field(
        default=None, description="File holding the read-only InfluxDB token; wins over the token."
    )
    timeout_s: float = Field(default=10.0, gt=0, description="Grafana request timeout.")

    def api_token(self) -> str:
        return read_secret(self.token, self.token_file, "GRAFANA_TOKEN")

    def read_token(self) -> str:
        return read_secret(self.influx_token, self.influx_token_file, "GRAFANA_INFLUX_TOKEN")
