"""The groups of settings: each a pydantic model whose fields ``Settings`` inherits.

A group's docstring gives its section's title and introduction in
``docs/configuration.md`` and each field's ``description`` is its text there; see
``ingest/settings.py`` for how the groups are read and in what order.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, SecretStr

from ingest.alerts.settings import AlertSettings
from ingest.device_states import DeviceStateSettings
from ingest.grafana_settings import GrafanaSettings
from ingest.sinks import SINKS
from ingest.sinks.influxdb import InfluxSettings
from ingest.sinks.sqlite import SqliteSettings
from ingest.storage_setup import RetentionSettings
from processors.topics import DEFAULT_PREFIX
from processors.validate import UnknownFieldPolicy


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
