"""Shared fixtures: real brokers on free ports, a small registry, a clean environment."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from ingest.broker import EmbeddedBroker
from processors.registry import Registry
from simulators.fleet import make_registry
from tests.servers import (
    Influxd,
    Mosquitto,
    SmtpServer,
    VictoriaMetrics,
    WebhookReceiver,
    running_influxd,
    running_mosquitto,
    running_smtp_server,
    running_victoria_metrics,
    running_webhook_receiver,
)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--long", action="store_true", default=False, help="fuzz and soak tests at many times their CI size"
    )


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No CITYPULSE_* variable or citypulse.toml of the developer's leaks into a test.

    The metrics endpoint is off unless a test asks for one (a port of its own): the tests
    run in parallel workers, and every service started on the default port but the first
    would log an error.
    """
    import os

    for name in list(os.environ):
        if name.startswith("CITYPULSE_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("CITYPULSE_METRICS_PORT", "0")
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def mosquitto(tmp_path: Path) -> Iterator[Mosquitto]:
    with running_mosquitto(tmp_path / "mosquitto") as broker:
        yield broker


@pytest.fixture
def influxd(tmp_path: Path) -> Iterator[Influxd]:
    """A private InfluxDB 1.x on free ports, its data in the test's tmp dir."""
    with running_influxd(tmp_path / "influxd") as server:
        yield server


@pytest.fixture
def victoria_metrics(tmp_path: Path) -> Iterator[VictoriaMetrics]:
    """A private VictoriaMetrics, a real server for the InfluxDB v2 write API."""
    with running_victoria_metrics(tmp_path / "victoria-metrics") as server:
        yield server


@pytest.fixture
def webhook_receiver() -> Iterator[WebhookReceiver]:
    """A real local HTTP server that records webhook POSTs and answers as a test scripts it."""
    with running_webhook_receiver() as receiver:
        yield receiver


@pytest.fixture
def smtp_server(tmp_path: Path) -> Iterator[SmtpServer]:
    """A real local SMTP server (aiosmtpd), plain."""
    with running_smtp_server(tmp_path / "smtp") as server:
        yield server


@pytest.fixture
def smtp_tls_server(tmp_path: Path) -> Iterator[SmtpServer]:
    """A real local SMTP server requiring STARTTLS (self-signed certificate) and a login."""
    with running_smtp_server(tmp_path / "smtp", tls=True) as server:
        yield server


@pytest.fixture
def amqtt_broker() -> Iterator[EmbeddedBroker]:
    with EmbeddedBroker() as broker:
        yield broker


@pytest.fixture(scope="session")
def small_registry() -> Registry:
    """Ten devices of every kind, placed in Hanoi (seed 7)."""
    from processors.kinds import KINDS

    return make_registry(10 * len(KINDS), list(KINDS), seed=7)
