"""``citypulse ingest``: the service."""

from __future__ import annotations

import logging
import signal
import threading
from pathlib import Path
from typing import Annotated

import typer

from ingest.allocator import keep_freed_memory
from ingest.cli.common import (
    ConfigOption,
    UserError,
    settings_from,
    setup_logging,
)
from processors.endpoint import BrokerUnreachableError
from processors.registry import RegistryError


def ingest(
    config: ConfigOption = None,
    mqtt_url: Annotated[
        str | None, typer.Option(help="Broker URL.", show_default="CITYPULSE_MQTT_URL")
    ] = None,
    registry: Annotated[
        Path | None, typer.Option(help="Device registry file.", show_default="CITYPULSE_REGISTRY")
    ] = None,
    sink: Annotated[
        str | None, typer.Option(help="sqlite or influxdb.", show_default="CITYPULSE_SINK")
    ] = None,
    sqlite_path: Annotated[
        Path | None, typer.Option(help="SQLite store.", show_default="CITYPULSE_SQLITE_PATH")
    ] = None,
    connect_timeout: Annotated[
        float, typer.Option(help="Seconds to wait for the broker at start-up.")
    ] = 30.0,
) -> None:
    """Run the ingest service until stopped (Ctrl-C or SIGTERM drain, flush and exit 0).

    Subscribes to readings over MQTT (QoS 1, persistent session), validates them
    against the device registry and each kind's model, stores valid readings,
    dead-letters the rest with a reason, and acknowledges each message only once
    it is stored, or spooled to local disk while the store is down. Serves
    Prometheus metrics on CITYPULSE_METRICS_PORT. Logs one start-up line saying
    where it reads and writes, then progress every 10 s.
    """
    from ingest.alerts.db import AlertStoreError
    from ingest.service import IngestService
    from ingest.sinks import SinkError
    from ingest.spool import SpoolLockedError

    settings = settings_from(
        config, mqtt_url=mqtt_url, registry=registry, sink=sink, sqlite={"path": sqlite_path}
    )
    setup_logging(settings.log_level)
    keep_freed_memory(settings.malloc_keep_mb)
    try:
        service = IngestService(settings, serve_metrics=True)
    except RegistryError as bad:
        raise UserError(str(bad)) from None
    except (ValueError, SinkError, SpoolLockedError, AlertStoreError) as bad:
        raise UserError(str(bad)) from None
    stop_requested = threading.Event()

    def on_signal(signum: int, frame: object) -> None:
        if stop_requested.is_set():
            return
        stop_requested.set()
        logging.getLogger("citypulse").info("%s received: draining and flushing", signal.Signals(signum).name)
        service.request_stop()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        service.start(connect_timeout)
    except BrokerUnreachableError as bad:
        service.sink.close()
        if service.metrics is not None:
            service.metrics.stop()
        raise UserError(str(bad)) from None
    service.run()
