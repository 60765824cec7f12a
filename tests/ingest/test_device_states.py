"""The ``devices`` measurement: a device's state from detection, written on change and on refresh."""

from __future__ import annotations

import numpy as np

from ingest.device_states import MEASUREMENT, DeviceStates, DeviceStateSettings
from processors.anomaly import DetectionEngine
from processors.batch import ReadingBatch
from processors.kinds import get_kind
from processors.registry import Device, Registry

T0 = 1_795_392_000_000
MINUTE = 60_000


class City:
    """Two air monitors and a water meter, the rate and silence detectors, and the device map."""

    def __init__(self, **settings: float) -> None:
        self.registry = Registry(
            [
                Device("a1", "air", "Ba Dinh", 21.03, 105.83),
                Device("a2", "air", "Hoan Kiem", 21.02, 105.85),
                Device("w1", "water", "Cau Giay", 21.03, 105.79),
            ]
        )
        self.engine = DetectionEngine(self.registry, enabled=["rate", "silence"])
        self.alerting: set[str] = set()
        self.states = DeviceStates(
            self.registry, DeviceStateSettings(**settings), open_alert_devices=lambda: self.alerting
        )

    def cycle(
        self, minute: int, temperatures: dict[str, float], commit: bool = True
    ) -> list[dict[str, object]]:
        kind = get_kind("air")
        table = self.registry.tables["air"]
        now = T0 + minute * MINUTE
        batches = {}
        if temperatures:
            positions = np.array([table.index[d] for d in temperatures], dtype=np.intp)
            values = np.full((positions.size, len(kind.measures)), np.nan)
            values[:, kind.index_of("temperature")] = list(temperatures.values())
            ts = np.full(positions.size, now, dtype=np.int64)
            batches["air"] = ReadingBatch(kind, table, positions, ts, values, ts.copy())
        detection = self.engine.score(batches, now)
        staged = self.states.stage(detection, batches, now)
        if commit:
            self.engine.commit(detection)
            self.states.commit(staged)
        assert all(e.measurement == MEASUREMENT and e.ts_ms == now for e in staged.events)
        return [{**e.tags, **e.fields} for e in staged.events]


def test_every_device_is_written_at_start_with_its_place() -> None:
    city = City()
    points = city.cycle(0, {"a1": 25.0, "a2": 25.0})
    assert {p["device"]: p["state"] for p in points} == {"a1": "ok", "a2": "ok", "w1": "ok"}
    a1 = next(p for p in points if p["device"] == "a1")
    assert a1 == {
        "device": "a1",
        "kind": "air",
        "district": "Ba Dinh",
        "lat": 21.03,
        "lon": 105.83,
        "state": "ok",
    }
    assert city.cycle(1, {"a1": 25.1, "a2": 25.0}) == [], "nothing changed, nothing is written"


def test_an_alarm_makes_a_device_anomalous_for_a_while_then_ok_again() -> None:
    city = City(anomalous_for_s=300)
    city.cycle(0, {"a1": 25.0, "a2": 25.0})
    city.cycle(1, {"a1": 25.1, "a2": 25.0})
    points = city.cycle(2, {"a1": 60.0, "a2": 25.0})  # 35 °C in a minute: impossible
    assert [(p["device"], p["state"]) for p in points] == [("a1", "anomalous")]
    assert city.cycle(4, {"a1": 60.1, "a2": 25.1}) == [], "still within the hold"
    back = city.cycle(8, {"a1": 60.2, "a2": 25.2})
    assert [(p["device"], p["state"]) for p in back] == [("a1", "ok")]


def test_silence_and_open_alerts_take_precedence() -> None:
    city = City()
    city.cycle(0, {"a1": 25.0, "a2": 25.0})
    quiet = city.cycle(5, {"a2": 25.0})  # a1 silent for 5 intervals (silent after 2.5)
    assert [(p["device"], p["state"]) for p in quiet] == [("a1", "silent")]
    city.alerting = {"a1", "a2", "not-registered"}
    alerted = city.cycle(6, {"a2": 25.0})
    assert [(p["device"], p["state"]) for p in alerted] == [("a2", "alerting")], "a1 stays silent"
    city.alerting = set()
    back = city.cycle(7, {"a1": 25.0, "a2": 25.0})
    assert sorted((p["device"], p["state"]) for p in back) == [("a1", "ok"), ("a2", "ok")]
    assert city.states.states() == {"a1": "ok", "a2": "ok", "w1": "ok"}


def test_refresh_rewrites_every_device_at_most_once_per_period_spread_over_it() -> None:
    city = City(refresh_s=600)
    city.cycle(0, {"a1": 25.0, "a2": 25.0})
    seen: dict[str, list[int]] = {}
    for minute in range(1, 21):
        for point in city.cycle(minute, {"a1": 25.0, "a2": 25.0}):
            seen.setdefault(str(point["device"]), []).append(minute)
    assert seen["w1"] == [10, 20], "the lone water meter is refreshed every 10 minutes"
    assert seen["a1"] == [5, 15], "air monitors are spread over the period"
    assert seen["a2"] == [10, 20]


def test_a_cycle_that_was_not_stored_changes_nothing() -> None:
    city = City()
    city.cycle(0, {"a1": 25.0, "a2": 25.0})
    city.cycle(1, {"a1": 25.1, "a2": 25.0})
    first = city.cycle(2, {"a1": 60.0, "a2": 25.0}, commit=False)
    again = city.cycle(2, {"a1": 60.0, "a2": 25.0})
    assert first == again == [{**first[0]}]
    assert first[0]["state"] == "anomalous"


def test_without_a_hold_an_alarm_shows_on_no_map() -> None:
    city = City(anomalous_for_s=0)
    city.cycle(0, {"a1": 25.0, "a2": 25.0})
    city.cycle(1, {"a1": 25.1, "a2": 25.0})
    assert city.cycle(2, {"a1": 60.0, "a2": 25.0}) == []
