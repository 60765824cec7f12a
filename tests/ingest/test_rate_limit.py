"""The rate limit inside the pipeline: a flood's excess becomes replayable dead letters, others pass."""

from __future__ import annotations

import logging
from pathlib import Path

import orjson
import pytest

from ingest.alerts.service import AlertService
from ingest.pipeline import Pipeline
from ingest.settings import Settings
from ingest.stats import PipelineStats
from processors.anomaly import DetectionEngine
from processors.ratelimit import RateLimiter, RatePolicy
from processors.reasons import Reason
from processors.registry import Device, Registry
from processors.validate import RawMessage, Validator
from tests.ingest.test_pipeline_detection import MemorySink

START = 1_795_132_800_000


def test_a_flooding_device_is_limited_counted_and_reported_once(caplog: pytest.LogCaptureFixture) -> None:
    registry = Registry(Device(f"air-{i}", "air", "Ba Đình", 21.03, 105.85, interval_s=60) for i in range(5))
    clock = [START]
    sink, stats = MemorySink(), PipelineStats()
    published: list[tuple[str, bytes]] = []
    pipeline = Pipeline(
        Validator(registry),
        sink,
        stats,
        publish_deadletter=lambda topic, payload: published.append((topic, payload)),
        clock_ms=lambda: clock[0],
        limiter=RateLimiter(RatePolicy(factor=2.0, burst_s=600.0), registry),
    )
    sent_flood = 0
    with caplog.at_level(logging.WARNING, logger="ingest.pipeline"):
        for minute in range(10):
            now = START + minute * 60_000
            clock[0] = now + 500
            messages = [
                RawMessage(f"citypulse/v1/readings/air/air-{i}", orjson.dumps({"ts": now + i, "pm25": 12.5}))
                for i in range(1, 5)
            ]
            topic = "citypulse/v1/readings/air/air-0"
            flood = [  # 200 readings a minute: 200 times its rate
                RawMessage(topic, orjson.dumps({"ts": now + 100 + k, "pm25": 99.0})) for k in range(200)
            ]
            sent_flood += len(flood)
            pipeline.process(flood[:100] + messages + flood[100:])
    stored = [d for b in sink.batches for r in b.readings for d in r.device_ids()]
    honest = sorted(f"air-{i}" for i in range(1, 5) for _ in range(10))
    assert sorted(d for d in stored if d != "air-0") == honest
    kept_flood = stored.count("air-0")
    assert 20 + 2 + 2 * 9 - 1 <= kept_flood <= 20 + 2 + 2 * 9  # saved up, first interval, then 2 a minute
    limited = [p for t, p in published if t == "citypulse/v1/deadletter/rate_limited"]
    assert len(limited) == sent_flood - kept_flood
    assert stats.snapshot().reasons == {"rate_limited": sent_flood - kept_flood}
    assert stats.snapshot().floods == {"air": 1}
    letter = orjson.loads(limited[0])
    assert letter["reason"] == Reason.RATE_LIMITED
    assert orjson.loads(letter["payload"]) == {"device": "air-0", "ts": START + 100 + 22, "pm25": 99.0}
    warnings = [r.getMessage() for r in caplog.records if "rate_limited" in r.getMessage()]
    assert len(warnings) == 1
    assert "air-0" in warnings[0]


def test_a_flood_raises_one_alert_that_resolves_when_the_device_calms_down(tmp_path: Path) -> None:
    registry = Registry(Device(f"air-{i}", "air", "Ba Đình", 21.03, 105.85, interval_s=60) for i in range(3))
    settings = Settings(alerts={"store": tmp_path / "alerts.sqlite", "mqtt": False})
    alerts = AlertService(settings, registry)
    clock = [START]
    pipeline = Pipeline(
        Validator(registry),
        MemorySink(),
        PipelineStats(),
        clock_ms=lambda: clock[0],
        engine=DetectionEngine(registry, enabled=()),
        limiter=RateLimiter(RatePolicy(factor=2.0, burst_s=600.0), registry),
        alerts=alerts,
    )
    topic = "citypulse/v1/readings/air/air-0"
    try:
        for minute in range(90):
            now = START + minute * 60_000
            clock[0] = now + 500
            burst = 100 if minute < 20 else 1  # 100 times its rate for 20 minutes, then at its interval
            messages = [RawMessage(topic, orjson.dumps({"ts": now + k, "pm25": 20.0})) for k in range(burst)]
            honest = orjson.dumps({"ts": now, "pm25": 9.0})
            messages.append(RawMessage("citypulse/v1/readings/air/air-1", honest))
            pipeline.process(messages)
        history = [event["alert"] for _, event in alerts.store.events_after(0)]
        events = [event["event"] for _, event in alerts.store.events_after(0)]
    finally:
        alerts.close()
    flooding = [(e, a) for e, a in zip(events, history, strict=True) if a["rule"] == "device_flooding"]  # type: ignore[index]
    assert [e for e, _ in flooding] == ["fired", "resolved"], flooding
    alert = flooding[0][1]
    assert alert["device"] == "air-0"  # type: ignore[index]
    assert "rate_limited" in alert["message"]  # type: ignore[index]
    assert all(a["device"] != "air-1" for a in history)  # type: ignore[index]
