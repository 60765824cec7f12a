"""Shared fixtures: real brokers on free ports, a small registry, a clean environment."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from ingest.broker import EmbeddedBroker
from processors.registry import Registry
from simulators.fleet import make_registry
from tests.servers import Mosquitto, running_mosquitto


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No CITYPULSE_* variable or citypulse.toml of the developer's leaks into a test."""
    import os

    for name in list(os.environ):
        if name.startswith("CITYPULSE_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def mosquitto(tmp_path: Path) -> Iterator[Mosquitto]:
    with running_mosquitto(tmp_path / "mosquitto") as broker:
        yield broker


@pytest.fixture
def amqtt_broker() -> Iterator[EmbeddedBroker]:
    with EmbeddedBroker() as broker:
        yield broker


@pytest.fixture(scope="session")
def small_registry() -> Registry:
    """Ten devices of every kind, placed in Hanoi (seed 7)."""
    from processors.kinds import KINDS

    return make_registry(10 * len(KINDS), list(KINDS), seed=7)
