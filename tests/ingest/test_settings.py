from __future__ import annotations

import re
from pathlib import Path

import pytest
from pydantic import ValidationError

from ingest.settings import Settings, load_settings
from processors.endpoint import MqttEndpoint

README = Path(__file__).resolve().parents[2] / "README.md"


def test_defaults_work_on_one_machine() -> None:
    s = load_settings()
    assert s.sink == "sqlite"
    assert s.mqtt.host == "127.0.0.1"
    assert s.mqtt.port == 1883
    assert s.topics.subscriptions() == ("citypulse/v1/#",)


def test_environment_beats_file_and_arguments_beat_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    toml = tmp_path / "c.toml"
    toml.write_text(
        'sink = "sqlite"\nsqlite_path = "from-file.sqlite"\n'
        'mqtt_client_id = "from-file"\nbatch_linger_s = 0.25\n'
    )
    monkeypatch.setenv("CITYPULSE_CONFIG", str(toml))
    monkeypatch.setenv("CITYPULSE_MQTT_CLIENT_ID", "from-env")
    s = load_settings()
    assert s.sqlite_path == Path("from-file.sqlite")
    assert s.batch_linger_s == 0.25
    assert s.mqtt_client_id == "from-env"
    assert load_settings(mqtt_client_id="from-cli").mqtt_client_id == "from-cli"


def test_explicit_config_file_and_default_file(tmp_path: Path) -> None:
    (tmp_path / "citypulse.toml").write_text('mqtt_client_id = "cwd-file"\n')
    assert load_settings().mqtt_client_id == "cwd-file"
    other = tmp_path / "other.toml"
    other.write_text('mqtt_client_id = "explicit"\n')
    assert load_settings(other).mqtt_client_id == "explicit"
    assert load_settings().mqtt_client_id == "cwd-file", "--config must not leak into later loads"
    with pytest.raises(FileNotFoundError, match="no such file"):
        load_settings(tmp_path / "missing.toml")


def test_bad_values_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CITYPULSE_MQTT_URL", "http://broker")
    with pytest.raises(ValidationError, match="must start with mqtt://"):
        load_settings()
    monkeypatch.setenv("CITYPULSE_MQTT_URL", "mqtt://b:1883")
    monkeypatch.setenv("CITYPULSE_TOPIC_PREFIX", "city/#")
    with pytest.raises(ValidationError, match="wildcards"):
        load_settings()


def test_unknown_keys_in_the_file_are_errors(tmp_path: Path) -> None:
    toml = tmp_path / "c.toml"
    toml.write_text('mqtt_urll = "mqtt://x"\n')
    with pytest.raises(ValidationError, match="mqtt_urll"):
        load_settings(toml)


def test_mqtt_url_parsing_and_display_hides_password() -> None:
    e = MqttEndpoint.parse("mqtts://ops:s%40cret@broker.example:8884")
    assert (e.host, e.port, e.username, e.password, e.tls) == (
        "broker.example",
        8884,
        "ops",
        "s@cret",
        True,
    )
    assert "cret" not in e.display()
    assert MqttEndpoint.parse("mqtt://h").port == 1883


def test_secrets_do_not_print(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CITYPULSE_MQTT_URL", "mqtt://u:hunter2@h:1883")
    monkeypatch.setenv("CITYPULSE_INFLUX_TOKEN", "tok-123")
    shown = repr(load_settings())
    assert "hunter2" not in shown
    assert "tok-123" not in shown


def test_readme_documents_every_setting() -> None:
    text = README.read_text()
    documented = set(re.findall(r"^\| `CITYPULSE_([A-Z0-9_]+)` \|", text, flags=re.M))
    fields = {name.upper() for name in Settings.model_fields}
    assert fields - documented == set(), "settings missing from README's configuration table"
    assert documented - fields - {"CONFIG"} == set(), "README documents settings that do not exist"
