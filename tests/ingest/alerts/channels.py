"""Running the alert service's delivery side alone: events in, what the real receivers got out."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ingest.alerts.service import AlertService, StagedAlerts
from ingest.settings import Settings
from processors.alerts import AlertEvent, Outcome
from processors.registry import Registry
from tests.e2e.helpers import wait_until
from tests.ingest.alerts.helpers import T0

FAST = {"retry_first_s": 0.05, "retry_max_s": 0.2, "group_wait_s": 0.2, "group_interval_s": 0.0}


@contextmanager
def delivering(tmp_path: Path, **alerts: Any) -> Iterator[AlertService]:
    """An alert service (no rules firing, just delivery) with ``[alerts]`` settings, started and closed."""
    settings = Settings(alerts={"store": tmp_path / "alerts.sqlite", "mqtt": False, **FAST, **alerts})
    service = AlertService(settings, Registry())
    service.start()
    try:
        yield service
    finally:
        service.close()


def owe(service: AlertService, *events: AlertEvent) -> None:
    """Save events as a cycle would (store, outbox), handing them to the channels."""
    service.commit(StagedAlerts(Outcome(T0, events=list(events)), service.clock_ms + 1))


def settle(service: AlertService, timeout_s: float = 20.0) -> None:
    """Until nothing is owed to any channel."""
    wait_until(
        lambda: all(c.queued == 0 for c in service.snapshot().channels.values()),
        timeout_s,
        "deliveries to settle",
    )


def quiet(seconds: float) -> None:
    """Give the delivery threads time in which nothing must happen (asserted by the caller)."""
    time.sleep(seconds)
