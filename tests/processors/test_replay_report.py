"""A replay's report: onsets per device-day by detector and part, episode days and their alarms."""

from __future__ import annotations

from datetime import UTC

import numpy as np
import pytest

from processors.detectors import Category
from processors.kinds import get_kind
from processors.recordings import Recording
from processors.replay import AlarmLog
from processors.replay_report import AlertRecord, alert_spans, parse_part, report, totals

AIR = get_kind("air")
HOUR = 3_600_000
DAY = 24 * HOUR


def recording(days: int) -> Recording:
    """Two monitors, hourly: ``a`` clean (PM2.5 20) but for an episode on day 2 (PM2.5 150), ``b`` clean."""
    hours = np.arange(days * 24, dtype=np.int64) * HOUR
    pm_a = np.full(hours.size, 20.0)
    pm_a[2 * 24 : 3 * 24] = 150.0
    ts = np.r_[hours, hours]
    device = np.r_[np.zeros(hours.size, dtype=np.intp), np.ones(hours.size, dtype=np.intp)]
    values = np.r_[pm_a, np.full(hours.size, 20.0)][:, None]
    order = np.lexsort((device, ts))
    return Recording(AIR, ("pm25",), ("a", "b"), device[order], ts[order], values[order])


def alarms(rows: list[tuple[str, str, Category, int, bool]]) -> AlarmLog:
    log = AlarmLog()
    for device, detector, category, ts, onset in rows:
        log.add(
            np.array([device]),
            detector,
            category,
            (),
            ["pm25"],
            np.array([ts], dtype=np.int64),
            np.array([ts], dtype=np.int64),
            np.array([onset]),
        )
    return log


def test_parts_are_named_spans_of_local_dates_optionally_of_some_devices() -> None:
    part = parse_part("dev=1970-01-01..1970-01-03@a", UTC)
    assert (part.name, part.start_ms, part.end_ms, part.covers("a"), part.covers("b")) == (
        "dev",
        0,
        2 * DAY,
        True,
        False,
    )
    assert parse_part("all=1970-01-01..1970-01-02", UTC).covers("b")
    for bad in ("dev=1970-01-02..1970-01-01", "dev=yesterday..today", "1970-01-01..1970-01-02"):
        with pytest.raises(ValueError, match="--part"):
            parse_part(bad, UTC)


def test_onsets_are_counted_per_device_day_in_each_part_and_episodes_by_local_day() -> None:
    log = alarms(
        [
            ("a", "stuck", Category.HEALTH, 1 * DAY + 5 * HOUR, True),
            ("a", "stuck", Category.HEALTH, 1 * DAY + 6 * HOUR, False),  # the same alarm going on
            ("a", "spike", Category.STATISTICAL, 3 * DAY, True),
            ("a", "aqi_vn", Category.STANDARD, 2 * DAY + 10 * HOUR, True),
            ("a", "who_air", Category.STANDARD, 1 * DAY + 23 * HOUR, True),  # the day before: not the episode
            ("b", "stuck", Category.HEALTH, 3 * DAY, True),
        ]
    )
    parts = [
        parse_part("dev=1970-01-01..1970-01-03@a", UTC),
        parse_part("confirm=1970-01-03..1970-01-05", UTC),
    ]
    found = {(r.part, r.device): r for r in report(recording(4), log, parts, UTC, {"a": 3600.0, "b": 3600.0})}
    assert set(found) == {("all", "a"), ("all", "b"), ("dev", "a"), ("confirm", "a"), ("confirm", "b")}
    dev = found[("dev", "a")]
    assert dev.device_days == 2.0
    assert dev.readings == 48
    assert dict(dev.onsets) == {"stuck": 1, "who_air": 1}
    assert dev.per_device_day() == {"stuck": 0.5, "who_air": 0.5}
    assert dev.episode_days == 0
    assert dev.index_days == 2
    confirm = found[("confirm", "a")]
    assert dict(confirm.onsets) == {"spike": 1, "aqi_vn": 1}
    assert confirm.episode_days == 1
    assert confirm.episodes_alarmed == {"aqi_vn": 1, "who_air": 0, "aqi_us": 0}
    assert found[("all", "b")].episode_days == 0
    summed = totals(list(found.values()))
    assert summed["confirm"]["device_days"] == 4.0
    assert summed["confirm"]["per_device_day"] == {"aqi_vn": 0.25, "spike": 0.25, "stuck": 0.25}
    assert summed["confirm"]["episode_days_alarmed"] == {"aqi_us": 0, "aqi_vn": 1, "who_air": 0}


def test_an_episode_day_is_alerted_when_an_alert_for_the_device_or_its_district_was_open() -> None:
    history = [
        AlertRecord("d1", "fired", 2 * DAY + 20 * HOUR, "air_quality_district", "air", "", "City"),
        AlertRecord("x", "fired", 2 * DAY + 21 * HOUR, "sensor_stuck", "air", "a", "City"),
        AlertRecord("d1", "resolved", 3 * DAY + 2 * HOUR, "air_quality_district", "air", "", "City"),
        AlertRecord("o", "fired", 2 * DAY, "air_quality_district", "air", "", "Elsewhere"),
    ]
    spans = alert_spans(history, 4 * DAY)
    assert [(s.rule, s.start_ms, s.end_ms) for s in spans][:1] == [
        ("air_quality_district", 2 * DAY + 20 * HOUR, 3 * DAY + 2 * HOUR)
    ]
    found = report(
        recording(4), AlarmLog(), [], UTC, {"a": 3600.0, "b": 3600.0}, spans, {"a": "City", "b": "City"},
        frozenset({"air_quality_district"}),
    )  # fmt: skip
    a = next(r for r in found if r.device == "a")
    assert a.episode_days == 1
    assert a.episodes_alerted == 1
    assert dict(a.alerts) == {"air_quality_district": 1, "sensor_stuck": 1}  # not another district's
    assert a.as_dict()["episode_days_alerted"] == 1
