from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from ingest.cli.common import UserError, settings_from
from ingest.settings import GROUPS, Settings, load_settings, sections
from ingest.sinks import SINKS
from ingest.sinks.influxdb import InfluxSettings
from processors.endpoint import MqttEndpoint


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
        'sink = "sqlite"\nmqtt_client_id = "from-file"\nbatch_linger_s = 0.25\n'
        '[sqlite]\npath = "from-file.sqlite"\n'
    )
    monkeypatch.setenv("CITYPULSE_CONFIG", str(toml))
    monkeypatch.setenv("CITYPULSE_MQTT_CLIENT_ID", "from-env")
    s = load_settings()
    assert s.sqlite.path == Path("from-file.sqlite")
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
    settings = load_settings()
    assert settings.influx.token.get_secret_value() == "tok-123"
    shown = repr(settings) + str(settings.influx) + repr(settings.model_dump())
    assert "hunter2" not in shown
    assert "tok-123" not in shown


# --- sections: a plugin's own settings, nested under one name ---------------------------------


def test_section_options_keep_their_environment_names(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CITYPULSE_INFLUX_BATCH_POINTS", "7")
    monkeypatch.setenv("CITYPULSE_INFLUX_URL", "http://db:8086")
    monkeypatch.setenv("CITYPULSE_SQLITE_PATH", "env.sqlite")
    monkeypatch.setenv("CITYPULSE_MAX_AGE_S", "60")
    monkeypatch.setenv("CITYPULSE_MQTT_SESSION_EXPIRY_S", "5")
    s = load_settings()
    assert (s.influx.batch_points, s.influx.url, s.influx.org) == (7, "http://db:8086", "citypulse")
    assert s.sqlite.path == Path("env.sqlite")
    assert (s.max_age_s, s.mqtt_session_expiry_s) == (60.0, 5), "flat settings are read as before"


def test_a_misspelt_section_option_is_an_error_that_names_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CITYPULSE_INFLUX_BACH_POINTS", "7")
    with pytest.raises(ValidationError, match=r"influx\.bach_points\n  Extra inputs are not permitted"):
        load_settings()
    with pytest.raises(UserError, match="CITYPULSE_INFLUX_BACH_POINTS: Extra inputs are not permitted"):
        settings_from(None)


def test_a_bad_section_value_names_its_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CITYPULSE_INFLUX_BATCH_POINTS", "0")
    with pytest.raises(
        UserError, match="CITYPULSE_INFLUX_BATCH_POINTS: Input should be greater than or equal"
    ):
        settings_from(None)


def test_the_file_takes_a_table_or_dotted_keys_for_a_section(tmp_path: Path) -> None:
    toml = tmp_path / "c.toml"
    toml.write_text('sink = "influxdb"\n[influx]\nurl = "http://table:8086"\ntoken = "s3cret"\n')
    s = load_settings(toml)
    assert (s.influx.url, s.influx.token.get_secret_value()) == ("http://table:8086", "s3cret")
    toml.write_text('influx.url = "http://dotted:8086"\nsqlite.path = "dotted.sqlite"\n')
    s = load_settings(toml)
    assert (s.influx.url, s.sqlite.path) == ("http://dotted:8086", Path("dotted.sqlite"))


def test_the_file_refuses_a_flat_spelling_of_a_section_option_with_the_one_it_takes(tmp_path: Path) -> None:
    toml = tmp_path / "c.toml"
    toml.write_text('influx_url = "http://flat:8086"\n')
    with pytest.raises(ValueError, match=r"'influx_url' belongs to the \[influx\] table; write url = \.\.\."):
        load_settings(toml)
    with pytest.raises(UserError, match=r"c.toml: 'influx_url' belongs to the \[influx\] table"):
        settings_from(toml)
    toml.write_text("[influx]\nbach_points = 7\n")
    with pytest.raises(ValidationError, match=r"influx\.bach_points"):
        load_settings(toml)


def test_the_environment_and_overrides_merge_within_a_section(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    toml = tmp_path / "c.toml"
    toml.write_text('[influx]\nurl = "http://file:8086"\nbucket = "from-file"\n')
    monkeypatch.setenv("CITYPULSE_INFLUX_TOKEN", "from-env")
    monkeypatch.setenv("CITYPULSE_INFLUX_BUCKET", "from-env")
    s = load_settings(toml, influx={"url": "http://override:8086", "org": None}, sqlite={"path": None})
    assert s.influx.url == "http://override:8086"
    assert (s.influx.bucket, s.influx.token.get_secret_value(), s.influx.org) == (
        "from-env",
        "from-env",
        "citypulse",
    )
    assert s.sqlite.path == Path("citypulse.sqlite"), "an option not given keeps its default"
    with pytest.raises(ValidationError, match="influx_url"):
        load_settings(influx_url="http://flat:8086")


def test_every_sink_plugin_owns_a_section_nested_once_in_settings() -> None:
    nested = sections(Settings)
    settings = load_settings()
    for name, plugin in SINKS.items():
        owners = [field for field, cls in nested.items() if cls is plugin.settings]
        assert len(owners) == 1, f"sink {name}: {plugin.settings.__name__} must be nested in Settings once"
        assert settings.section(plugin.settings) is getattr(settings, owners[0])
    with pytest.raises(LookupError, match="is not nested in Settings"):
        settings.section(type("Orphan", (InfluxSettings,), {}))


def test_no_flat_setting_reads_like_a_section_option() -> None:
    """``CITYPULSE_INFLUX_X`` means option ``x`` of ``[influx]``: no flat field may be called influx_x."""
    for section in sections(Settings):
        clashes = [name for name in Settings.model_fields if name.startswith(section + "_")]
        assert clashes == [], f"rename {clashes}: their variables would be read as options of [{section}]"


def test_every_setting_belongs_to_one_group() -> None:
    grouped = [name for group in GROUPS for name in group.model_fields]
    assert sorted(grouped) == sorted(Settings.model_fields)
    assert list(Settings.model_fields) == grouped, "fields keep the order of the reference"
