"""Domain rules and sensor-health detectors on synthetic series: what they must catch, and what they must not.

Each detector's docstring example shows it catching its anomaly. These tests pin the
other half, which matters as much to an operations centre: the ordinary rhythms of
the city that look a little like an incident (the morning demand peak, rush-hour
congestion, a bin warming in the afternoon sun, lamps switching at dusk) raise nothing.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from processors.batch import ReadingBatch, series_batch
from processors.detectors import DETECTORS, Detector
from processors.kinds import KINDS

NIGHT_MS = 1_795_463_400_000
"""2026-11-23 22:50 in Hanoi (15:50 UTC)."""
NOON_MS = 1_795_413_600_000
"""2026-11-23 12:00 in Hanoi (05:00 UTC)."""


def scores_of(name: str, batch: ReadingBatch, column: str | None = None) -> NDArray[np.floating[Any]]:
    """One column of the detector's scores (the first when not named), reading by reading."""
    detector: Detector = DETECTORS[name](batch.kind)
    scores = detector.update(batch)
    return scores[:, detector.columns.index(column) if column else 0]


def ramp(start: float, end: float, steps: int) -> NDArray[np.float64]:
    return np.linspace(start, end, steps)


class TestPipeBurst:
    def test_the_morning_demand_peak_is_not_a_burst(self) -> None:
        # Five-minute readings: night minimum, then an hour-long climb to the morning peak.
        flow = np.r_[np.full(24, 80.0), ramp(80.0, 150.0, 12), np.full(24, 150.0)]
        pressure = np.r_[np.full(24, 3.6), ramp(3.6, 3.0, 12), np.full(24, 3.0)]
        batch = series_batch(KINDS["water"], {"pressure": pressure, "flow": flow})
        assert scores_of("pipe_burst", batch).max() < 0.5

    def test_a_burst_alarms_at_once_and_ends_with_the_repair(self) -> None:
        pressure = np.r_[np.full(30, 3.2), np.full(6, 1.2), np.full(30, 3.2)]
        flow = np.r_[np.full(30, 120.0), np.full(6, 400.0), np.full(30, 120.0)]
        scores = scores_of("pipe_burst", series_batch(KINDS["water"], {"pressure": pressure, "flow": flow}))
        assert scores[30] >= 0.5, "the first reading of the burst"
        assert scores[30:36].min() >= 0.5, "the baseline does not learn the burst away"
        assert scores[37:].max() < 0.5, "repaired: quiet again"

    def test_pressure_drop_alone_is_not_a_burst(self) -> None:
        # A pump station trips: pressure falls, but flow falls too.
        pressure = np.r_[np.full(30, 3.2), np.full(6, 1.5)]
        flow = np.r_[np.full(30, 120.0), np.full(6, 60.0)]
        batch = series_batch(KINDS["water"], {"pressure": pressure, "flow": flow})
        assert scores_of("pipe_burst", batch).max() < 0.5


class TestTrafficIncident:
    def test_rush_hour_congestion_building_over_45_minutes_is_not_an_incident(self) -> None:
        speed = np.r_[np.full(30, 45.0), ramp(45.0, 18.0, 45), np.full(30, 18.0)]
        occupancy = np.r_[np.full(30, 12.0), ramp(12.0, 40.0, 45), np.full(30, 40.0)]
        batch = series_batch(KINDS["traffic"], {"mean_speed": speed, "occupancy": occupancy})
        assert scores_of("traffic_incident", batch).max() < 0.5

    def test_a_blocked_lane_alarms_within_two_readings(self) -> None:
        speed = np.r_[np.full(40, 42.0), ramp(42.0, 8.0, 3), np.full(20, 8.0)]
        occupancy = np.r_[np.full(40, 18.0), ramp(18.0, 75.0, 3), np.full(20, 75.0)]
        scores = scores_of(
            "traffic_incident", series_batch(KINDS["traffic"], {"mean_speed": speed, "occupancy": occupancy})
        )
        assert scores[:40].max() < 0.5
        assert scores[41:43].max() >= 0.5


class TestTrafficConsistency:
    """Flow = density x speed: the city's rhythms keep it, one drifting sensor breaks it."""

    @staticmethod
    def road(
        days: float, seed: int, free_speed: float = 50.0, rain: tuple[int, int] | None = None
    ) -> dict[str, NDArray[np.float64]]:
        """A road on Greenshields' diagram, minute by minute: a quiet night, two rush hours that
        congest it on some days and not others, and (optionally) rain that cuts its free speed by
        15 % for a while. Speed, occupancy and the Poisson count always agree, as on a real road."""
        rng = np.random.default_rng(seed)
        minutes = int(days * 24 * 60)
        local_hour = ((np.arange(minutes) + 7 * 60) % (24 * 60)) / 60.0
        peak = rng.uniform(0.6, 1.2, int(days) + 1)[np.arange(minutes) // (24 * 60)]
        demand = 0.05 + peak * (np.exp(-((local_hour - 8.0) ** 2)) + np.exp(-((local_hour - 17.5) ** 2)))
        density = np.clip(0.5 * demand, 0.0, 0.9)
        vf = np.full(minutes, free_speed)
        if rain is not None:
            vf[rain[0] : rain[1]] *= 0.85
        speed = vf * (1.0 - density) * (1.0 + 0.03 * rng.standard_normal(minutes))
        occupancy = np.maximum(90.0 * density * (1.0 + 0.05 * rng.standard_normal(minutes)), 0.0)
        count = rng.poisson(0.9 * density * vf * (1.0 - density)).astype(np.float64)
        return {"vehicle_count": count, "mean_speed": speed, "occupancy": occupancy}

    @staticmethod
    def alarms(values: dict[str, NDArray[np.float64]]) -> dict[str, NDArray[np.bool_]]:
        detector = DETECTORS["traffic_consistency"](KINDS["traffic"])
        scores = detector.update(series_batch(KINDS["traffic"], values))
        return {column: scores[:, j] >= 0.5 for j, column in enumerate(detector.columns)}

    def test_rush_hours_congestion_and_rain_keep_the_identity(self) -> None:
        for seed in (1, 2, 3):
            road = self.road(days=3, seed=seed, rain=(36 * 60, 40 * 60))
            found = self.alarms(road)
            assert not any(a.any() for a in found.values()), seed

    def test_a_drifting_occupancy_is_blamed_on_occupancy(self) -> None:
        for seed, total in ((4, 20.0), (5, -15.0)):
            road = self.road(days=2, seed=seed)
            start = 24 * 60 + 2 * 60  # day 2, 09:00 local: the morning rush
            road["occupancy"][start : start + 360] += np.linspace(0.0, total, 360)
            road["occupancy"] = np.maximum(road["occupancy"], 0.0)
            found = self.alarms(road)
            assert found["occupancy"][start : start + 360].any(), seed
            assert not found["occupancy"][:start].any(), seed
            assert not found["mean_speed"].any(), seed

    def test_a_drifting_speed_is_blamed_on_speed(self) -> None:
        for seed, total in ((6, 30.0), (7, -25.0)):
            road = self.road(days=2, seed=seed)
            start = 24 * 60 + 5 * 60  # day 2, 12:00 local
            road["mean_speed"][start : start + 360] += np.linspace(0.0, total, 360)
            road["mean_speed"] = np.maximum(road["mean_speed"], 1.0)
            found = self.alarms(road)
            assert found["mean_speed"][start : start + 360].any(), seed
            assert not found["mean_speed"][:start].any(), seed
            assert not found["occupancy"].any(), seed

    def test_nothing_is_judged_before_the_road_is_learned(self) -> None:
        road = self.road(days=0.5, seed=8)
        road["occupancy"][30:] += 25.0  # wrong from its first hour: nothing to compare with yet
        found = self.alarms(road)
        assert not found["occupancy"][:120].any()


class TestAirConsistency:
    """CO and NO2 come out of the same exhausts: the air moves them together, a sensor does not."""

    @staticmethod
    def monitor(days: float, seed: int) -> dict[str, NDArray[np.float64]]:
        """A street monitor, minute by minute: two rush hours (the gases' main source, and a
        share of PM2.5's), a still night that traps everything, and the day-to-day weather
        diluting all three pollutants alike."""
        rng = np.random.default_rng(seed)
        minutes = int(days * 24 * 60)
        local_hour = ((np.arange(minutes) + 7 * 60) % (24 * 60)) / 60.0
        rush = np.exp(-((local_hour - 8.0) ** 2) / 2.0) + np.exp(-((local_hour - 18.0) ** 2) / 2.0)
        night = 1.0 + 0.6 * np.exp(-((local_hour - 3.0) ** 2) / 8.0)
        weather = np.exp(np.cumsum(rng.normal(0.0, 0.01, minutes)))
        source = (1.0 + 0.8 * rush) * night * weather
        noise = 1.0 + 0.05 * rng.standard_normal((3, minutes))
        return {
            "pm25": 40.0 * (1.0 + 0.4 * rush) * night * weather * noise[0],
            "no2": 30.0 * source * noise[1],
            "co": 0.8 * source * noise[2],
        }

    @staticmethod
    def alarms(values: dict[str, NDArray[np.float64]]) -> dict[str, NDArray[np.bool_]]:
        detector = DETECTORS["air_consistency"](KINDS["air"])
        scores = detector.update(series_batch(KINDS["air"], values))
        return {column: scores[:, j] >= 0.5 for j, column in enumerate(detector.columns)}

    def test_rush_hours_and_still_nights_move_both_gases_and_raise_nothing(self) -> None:
        for seed in (1, 2):
            found = self.alarms(self.monitor(days=3, seed=seed))
            assert not any(a.any() for a in found.values()), seed

    def test_a_drifting_gas_sensor_is_blamed_and_the_other_is_not(self) -> None:
        start = 36 * 60
        for seed, gas, other, total in (
            (3, "co", "no2", 1.2),
            (4, "no2", "co", 35.0),
            (5, "co", "no2", -0.5),
        ):
            air = self.monitor(days=2, seed=seed)
            air[gas][start : start + 360] += np.linspace(0.0, total, 360)
            air[gas] = np.maximum(air[gas], 0.0)
            found = self.alarms(air)
            assert found[gas][start : start + 360].any(), (seed, gas)
            assert not found[gas][:start].any(), (seed, gas)
            assert not found[other].any(), (seed, gas)

    def test_dust_raising_pm25_alone_blames_no_gas(self) -> None:
        air = self.monitor(days=2, seed=6)
        air["pm25"][36 * 60 : 40 * 60] *= 3.0  # a dust storm: particles, no exhaust
        found = self.alarms(air)
        assert not any(a.any() for a in found.values())


class TestBinFire:
    def test_a_bin_warming_in_the_afternoon_sun_is_not_a_fire(self) -> None:
        # Fifteen-minute readings: 27 °C at dawn to 46 °C in the mid-afternoon sun, and back.
        temperature = np.r_[np.full(12, 27.0), ramp(27.0, 46.0, 32), ramp(46.0, 29.0, 24)]
        batch = series_batch(KINDS["waste"], {"temperature": temperature})
        assert scores_of("bin_fire", batch).max() < 0.5

    def test_smouldering_waste_alarms_before_it_is_hot_enough_to_be_obvious(self) -> None:
        temperature = np.r_[np.full(24, 30.0), 38.0, 52.0, 68.0]
        scores = scores_of("bin_fire", series_batch(KINDS["waste"], {"temperature": temperature}))
        assert scores[:24].max() < 0.5
        first = int(np.flatnonzero(scores >= 0.5)[0])
        assert temperature[first] < 60.0, "caught by its rise, not only by its heat"


class TestBinFull:
    def test_a_collection_resets_the_forecast(self) -> None:
        fill = np.r_[np.minimum(40 + 2.5 * np.arange(20), 100.0), np.full(8, 5.0)]
        scores = scores_of("bin_full", series_batch(KINDS["waste"], {"fill_level": fill}))
        assert scores[19] >= 0.5, "88 % and filling 10 points an hour: full within the horizon"
        assert scores[21:].max() < 0.5, "emptied"

    def test_a_slowly_filling_bin_is_not_forecast(self) -> None:
        fill = 30 + 0.25 * np.arange(40)  # one point an hour: days from full
        scores = scores_of("bin_full", series_batch(KINDS["waste"], {"fill_level": fill}))
        assert scores.max() < 0.5


class TestLighting:
    @staticmethod
    def lamps(start_ms: int, on: float, power: float, steps: int = 30) -> ReadingBatch:
        ts = start_ms + 300_000 * np.arange(steps)
        return series_batch(
            KINDS["lighting"],
            {
                "state": np.full(steps, on),
                "dimming": np.full(steps, 100.0 * on),
                "power": np.full(steps, power),
            },
            ts,
        )

    def test_a_lamp_on_at_night_drawing_its_power_is_fine(self) -> None:
        assert scores_of("lighting", self.lamps(NIGHT_MS, on=1.0, power=120.0), "state").max() < 0.5

    def test_a_lamp_on_at_noon_alarms(self) -> None:
        assert scores_of("lighting", self.lamps(NOON_MS, on=1.0, power=120.0), "state").min() >= 0.5

    def test_a_lamp_off_at_night_alarms(self) -> None:
        assert scores_of("lighting", self.lamps(NIGHT_MS, on=0.0, power=0.0), "state").min() >= 0.5

    def test_a_lamp_off_at_noon_is_fine(self) -> None:
        assert scores_of("lighting", self.lamps(NOON_MS, on=0.0, power=0.0), "state").max() < 0.5


class TestSilence:
    def test_a_device_that_keeps_reporting_is_never_silent(self) -> None:
        kind = KINDS["water"]
        batch = series_batch(kind, {"ph": np.full(20, 7.2)})
        detector = DETECTORS["silence"](kind)
        detector.update(batch)
        for ts in batch.ts_ms.tolist():
            assert detector.check(int(ts) + 300_000, batch.table) is None

    def test_silence_is_one_alarm_that_ends_when_the_device_reports_again(self) -> None:
        kind = KINDS["water"]
        batch = series_batch(kind, {"ph": [7.2, 7.3]})
        detector = DETECTORS["silence"](kind)
        detector.update(batch)
        last = int(batch.ts_ms[-1])
        first = detector.check(last + 3 * 300_000, batch.table)
        assert first is not None, "silent for 3 intervals (2.5 allowed)"
        assert first.onsets.all()
        detector.commit(first)
        later = detector.check(last + 6 * 300_000, batch.table)
        assert later is not None
        assert later.alarms().all(), "still silent"
        assert not later.onsets.any(), "the same silence: no second onset"
        detector.commit(later)
        back = series_batch(kind, {"ph": [7.2]}, [last + 7 * 300_000])
        detector.update(back)
        after = detector.check(last + 7 * 300_000 + 60_000, back.table)
        assert after is None or not after.alarms().any(), "reporting again ends the alarm"


class TestHealth:
    def test_a_diurnal_temperature_cycle_never_breaks_the_rate_limit(self) -> None:
        minutes = np.arange(3 * 1440)
        temperature = 27.0 + 6.0 * np.sin(2 * np.pi * minutes / 1440)
        batch = series_batch(KINDS["air"], {"temperature": temperature})
        assert scores_of("rate", batch, "temperature").max() < 0.5

    def test_readings_in_order_are_never_late(self) -> None:
        batch = series_batch(KINDS["traffic"], {"occupancy": np.arange(50.0)})
        assert scores_of("late", batch).max() == 0.0

    def test_a_steady_delivery_delay_is_not_clock_skew(self) -> None:
        kind = KINDS["air"]
        batch = series_batch(kind, {"pm25": np.full(60, 20.0)})
        # Every reading arrives 20 s after its timestamp (a gateway that forwards in batches).
        delayed = ReadingBatch(
            kind, batch.table, batch.device, batch.ts_ms, batch.values, batch.ts_ms + 20_000
        )
        assert scores_of("clock", delayed).max() < 0.5


class TestStandards:
    def test_drinking_water_inside_the_limits_raises_nothing(self) -> None:
        batch = series_batch(
            KINDS["water"],
            {"ph": np.full(10, 7.2), "turbidity": np.full(10, 0.4), "free_chlorine": np.full(10, 0.5)},
        )
        detector = DETECTORS["drinking_water"](KINDS["water"])
        assert detector.update(batch).max() < 0.5

    def test_each_qcvn_limit_is_enforced(self) -> None:
        water = KINDS["water"]
        for column, value in (("ph", 8.9), ("ph", 5.6), ("turbidity", 3.0), ("free_chlorine", 0.1)):
            batch = series_batch(water, {column: [value]})
            assert scores_of("drinking_water", batch, column)[0] >= 0.5, (column, value)

    def test_clean_air_raises_no_standard(self) -> None:
        batch = series_batch(KINDS["air"], {"pm25": np.full(25 * 60, 8.0), "no2": np.full(25 * 60, 12.0)})
        for name in ("aqi_us", "aqi_vn", "who_air"):
            detector = DETECTORS[name](KINDS["air"])
            assert np.nanmax(detector.update(batch)) < 0.5, name
