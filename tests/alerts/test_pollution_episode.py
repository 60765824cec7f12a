"""A simulated pollution episode through a real Mosquitto and the real ingest service.

Seven air stations, four in Đống Đa and three in Tây Hồ; a pollution episode over
Đống Đa for ten hours of a September day (22 simulated hours in all), under the
default air-quality rules. It must raise exactly one district alert for Đống Đa
(not one per station), the device alerts of stations whose air turns very bad,
escalate the district alert, and resolve everything once the air clears; a
subscriber that connects mid-episode sees the open alerts retained, then their
clearing.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import date
from pathlib import Path

from processors.alerts.rules import DEFAULT_RULES_FILE, parse_rules
from processors.registry import Device, Registry
from processors.timestamps import parse_timestamp
from simulators.incidents import IncidentSpec
from simulators.outputs import OutputCounts
from simulators.plan import FleetChoices, build
from simulators.runner import Simulation
from tests.alerts.helpers import TOPICS, ingest_settings, of_rule, publish, rules_file, running_ingest
from tests.e2e.helpers import wait_until, watching
from tests.servers import Mosquitto

START = parse_timestamp("2026-09-10T00:00:00Z")
HOUR = 3_600_000
AIR_RULES = ("air_quality_district", "air_quality_very_bad")


def stations() -> Registry:
    def air(n: int, district: str, lat: float, lon: float) -> Device:
        # The episode is sent in gateway batches: every station sits behind the one gateway.
        return Device(f"air-{n:06d}", "air", district, lat, lon, date(2025, 1, 1), 60.0, gateway="gw-air")

    return Registry(
        [
            air(1, "Đống Đa", 21.018, 105.830),
            air(2, "Đống Đa", 21.020, 105.826),
            air(3, "Đống Đa", 21.015, 105.834),
            air(4, "Đống Đa", 21.022, 105.832),
            air(5, "Tây Hồ", 21.070, 105.819),
            air(6, "Tây Hồ", 21.075, 105.812),
            air(7, "Tây Hồ", 21.064, 105.825),
        ]
    )


class Collected:
    """The fleet's messages in memory, in send order."""

    def __init__(self) -> None:
        self.counts = OutputCounts()
        self.messages: list[tuple[int, str, bytes]] = []

    def publish_slice(self, messages: Sequence[tuple[int, str, bytes]]) -> None:
        self.messages += messages
        self.counts.published += len(messages)
        self.counts.acknowledged += len(messages)

    def close(self, timeout_s: float) -> OutputCounts:
        return self.counts


def episode(registry: Registry) -> list[tuple[int, str, bytes]]:
    end = START + 22 * HOUR
    schedule, encoder = build(
        registry,
        TOPICS,
        FleetChoices(
            kinds=("air",),
            seed=3,
            start_ms=START,
            end_ms=end,
            faults="none",
            batch=30,
            max_age_ms=400 * 86_400_000,
            incidents=(
                IncidentSpec(
                    "pollution_episode",
                    at="+2h",
                    duration_s=10 * 3600.0,
                    districts=("Đống Đa",),
                    severity=4.0,
                ),
            ),
        ),
    )
    out = Collected()
    Simulation(schedule, encoder, out, speed=0, end_ms=end, ingest_clock="publish").run()
    return out.messages


def only_air_quality_rules() -> str:
    """The default rules as shipped, with every rule but the two air-quality ones switched off."""
    defaults = parse_rules(DEFAULT_RULES_FILE.read_text(encoding="utf-8"))
    return "".join(
        f'[[rules]]\nname = "{r.name}"\nenabled = false\n' for r in defaults.rules if r.name not in AIR_RULES
    )


def test_a_pollution_episode_is_one_district_alert_that_escalates_and_resolves(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    registry = stations()
    messages = episode(registry)
    peak = START + 10 * HOUR
    first = [(t, p) for ms, t, p in messages if ms < peak]
    rest = [(t, p) for ms, t, p in messages if ms >= peak]
    settings = ingest_settings(
        tmp_path,
        mosquitto.url,
        detectors="aqi_vn,silence",
        max_age_s=400 * 86400.0,
        alerts={"rules": rules_file(tmp_path, only_air_quality_rules())},
    )
    open_filter = TOPICS.alert_filters()[1]
    with running_ingest(settings, registry) as ingest:
        publish(mosquitto.url, first)
        wait_until(lambda: ingest.processed() == len(first), 60, "the first ten hours")
        ingest.delivered("mqtt")
        open_now = {a.id: a for a in ingest.alerts.store.open_alerts()}
        districts = [a for a in open_now.values() if a.rule == "air_quality_district"]
        assert [(a.target, str(a.severity), a.escalated) for a in districts] == [
            ("district:Đống Đa", "critical", True)
        ]
        with watching(mosquitto.url, [open_filter]) as late:
            wait_until(lambda: len(late.messages) >= len(open_now), 10, "the retained open alerts")
            retained = {json.loads(p)["id"] for _, p, r in late.messages if r}
            assert retained == set(open_now), "a late subscriber sees exactly what is open"
            publish(mosquitto.url, rest)
            wait_until(lambda: ingest.processed() == len(first) + len(rest), 60, "the rest of the day")
            ingest.delivered("mqtt")
            wait_until(
                lambda: (
                    {t.rsplit("/", 1)[1] for t, p, r in late.messages if not p and not r} == set(open_now)
                ),
                10,
                "the clearing of every open alert",
            )
        events = ingest.events()
        assert ingest.alerts.store.open_alerts() == []
    district = of_rule(events, "air_quality_district")
    assert district == [
        ("fired", "district:Đống Đa"),
        ("escalated", "district:Đống Đa"),
        ("resolved", "district:Đống Đa"),
    ], "one district alert for the episode, not one per station"
    devices = of_rule(events, "air_quality_very_bad")
    fired = sorted(t for e, t in devices if e == "fired")
    assert fired, "the worst stations raise their own alerts"
    assert set(fired) <= {"air-000001", "air-000002", "air-000003", "air-000004"}, (
        "only Đống Đa's air went bad"
    )
    assert sorted(t for e, t in devices if e == "resolved") == fired
    assert len(fired) == len(set(fired)), "one alert per station"
