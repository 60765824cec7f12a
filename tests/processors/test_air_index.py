"""Hourly VN_AQI and US AQI points: the published tables, hour by hour, kept only when stored."""

from __future__ import annotations

import numpy as np

from processors.air_index import MEASUREMENT, AirIndex, index_fields
from processors.aqi import nowcast, us_aqi, vn_aqi
from processors.batch import ReadingBatch
from processors.kinds import get_kind
from processors.registry import Device, Registry

T0 = 1_795_392_000_000  # a whole hour
HOUR = 3_600_000


def registry() -> Registry:
    return Registry(
        [Device("a1", "air", "Ba Dinh", 21.03, 105.83), Device("a2", "air", "Dong Da", 21.01, 105.82)]
    )


def minutes(reg: Registry, start_ms: int, count: int, pm25: dict[str, list[float]]) -> ReadingBatch:
    """``count`` minutes of PM2.5 readings of the named devices, interleaved as they arrive."""
    kind = get_kind("air")
    table = reg.tables["air"]
    names = list(pm25)
    device = np.tile([table.index[n] for n in names], count).astype(np.intp)
    ts = np.repeat(start_ms + 60_000 * np.arange(count, dtype=np.int64), len(names))
    values = np.full((device.size, len(kind.measures)), np.nan)
    values[:, kind.index_of("pm25")] = np.column_stack([pm25[n] for n in names]).reshape(-1)
    return ReadingBatch(kind, table, device, ts, values, ts.copy())


def test_each_closed_hour_gives_one_point_per_device_with_the_published_indices() -> None:
    reg = registry()
    index = AirIndex(reg)
    hourly = [20.0, 40.0, 90.0]
    series = [*np.repeat(hourly, 60).tolist(), 10.0]
    staged = index.stage({"air": minutes(reg, T0, 181, {"a1": series, "a2": [30.0] * 181})})
    points = [(e.tags["device"], e.ts_ms, e.fields) for e in staged.events]
    assert all(e.measurement == MEASUREMENT and e.tags["district"] for e in staged.events)
    a1 = [(ts, f) for d, ts, f in points if d == "a1"]
    # Stamped with the hour each closes; the NowCast needs 2 of the latest 3 hours, so none for the first.
    assert [ts for ts, _ in a1] == [T0 + HOUR, T0 + 2 * HOUR]
    ring = np.array([[90.0, 40.0, 20.0] + [np.nan] * 9])
    expected_vn = float(vn_aqi("pm25", nowcast(ring))[0])
    expected_us = float(np.floor(us_aqi("pm25", nowcast(ring), "24h")[0]))
    assert a1[1][1]["vn_pm25"] == a1[1][1]["vn_aqi"] == expected_vn
    assert a1[1][1]["us_pm25"] == a1[1][1]["us_aqi"] == expected_us
    assert set(a1[1][1]) <= set(index_fields(get_kind("air")))
    a2 = [f for d, _, f in points if d == "a2"]
    assert a2[-1]["vn_aqi"] == float(vn_aqi("pm25", 30.0)), "a steady 30 µg/m³ NowCasts to 30"


def test_nothing_is_learned_from_a_cycle_that_was_not_stored() -> None:
    reg = registry()
    index = AirIndex(reg)
    first = index.stage({"air": minutes(reg, T0, 121, {"a1": [50.0] * 121})})
    assert [e.ts_ms for e in first.events] == [T0 + HOUR]
    index.stage({"air": minutes(reg, T0 + 2 * HOUR + 60_000, 120, {"a1": [50.0] * 120})})  # not stored
    index.commit(first)
    again = index.stage({"air": minutes(reg, T0 + 2 * HOUR + 60_000, 60, {"a1": [50.0] * 60})})
    assert [e.ts_ms for e in again.events] == [T0 + 2 * HOUR]


def test_hours_survive_a_restart_by_device_id() -> None:
    reg = registry()
    index = AirIndex(reg)
    index.commit(index.stage({"air": minutes(reg, T0, 120, {"a1": [60.0] * 120})}))
    saved = index.state()
    shuffled = Registry([reg.get("a2"), reg.get("a1")])  # type: ignore[list-item]
    restarted = AirIndex(shuffled)
    assert restarted.restore(saved) == 2
    points = restarted.stage({"air": minutes(shuffled, T0 + 2 * HOUR, 1, {"a1": [60.0]})}).events
    assert [(e.tags["device"], e.fields["vn_aqi"]) for e in points] == [("a1", float(vn_aqi("pm25", 60.0)))]
