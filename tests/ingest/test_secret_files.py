"""Every secret setting can come from a ``*_FILE`` path, as Docker secrets are mounted."""

from __future__ import annotations

from pathlib import Path

import pytest

from ingest.secret_files import secret_paths
from ingest.settings import Settings, load_settings


def test_every_secret_setting_is_known_including_sections() -> None:
    assert {"_".join(path) for path in secret_paths(Settings)} >= {
        "mqtt_url",
        "mqtt_password",
        "influx_token",
    }


def test_secrets_are_read_from_files(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / "token").write_text("influx-token-from-a-file\n")
    (tmp_path / "password").write_text("mqtt-password-from-a-file")
    monkeypatch.setenv("CITYPULSE_INFLUX_TOKEN_FILE", str(tmp_path / "token"))
    monkeypatch.setenv("CITYPULSE_MQTT_PASSWORD_FILE", str(tmp_path / "password"))
    monkeypatch.setenv("CITYPULSE_MQTT_URL", "mqtts://citypulse-ingest@broker:8883")
    monkeypatch.setenv("CITYPULSE_MQTT_CA_FILE", "/etc/citypulse/ca.crt")
    settings = load_settings()
    assert settings.influx.token.get_secret_value() == "influx-token-from-a-file"
    endpoint = settings.mqtt
    assert (endpoint.username, endpoint.password) == ("citypulse-ingest", "mqtt-password-from-a-file")
    assert endpoint.ca_file == "/etc/citypulse/ca.crt"
    assert "mqtt-password-from-a-file" not in repr(endpoint) + endpoint.display() + repr(settings)


@pytest.mark.parametrize(
    ("variables", "message"),
    [
        (
            {"CITYPULSE_INFLUX_TOKEN": "a", "CITYPULSE_INFLUX_TOKEN_FILE": "{dir}/t"},
            "both CITYPULSE_INFLUX_TOKEN",
        ),
        ({"CITYPULSE_MQTT_URL_FILE": "{dir}/missing"}, "CITYPULSE_MQTT_URL_FILE names .* cannot be read"),
        ({"CITYPULSE_MQTT_CA_FILE": "ca.crt"}, "the MQTT URL mqtt://127.0.0.1:1883 is plain: use mqtts://"),
        ({"CITYPULSE_MQTT_PASSWORD": "pw"}, "the MQTT URL names no user"),
    ],
)
def test_mistakes_are_explained(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, variables: dict[str, str], message: str
) -> None:
    (tmp_path / "t").write_text("x")
    for name, value in variables.items():
        monkeypatch.setenv(name, value.format(dir=tmp_path))
    with pytest.raises(ValueError, match=message):
        load_settings()
