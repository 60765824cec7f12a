"""Each kind behaves like the city it simulates: the sun, the rush hour, the water network, the bins."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import numpy as np
import pytest
from numpy.typing import NDArray

from processors.kinds import KINDS
from processors.registry import Registry
from simulators.fleet import make_registry
from simulators.models import model_for
from simulators.models.base import traffic_demand
from simulators.models.traffic import JAM_OCCUPANCY
from simulators.sun import elevation_deg, sun_times
from simulators.weather import Weather, local_hour, weekday

HANOI = timezone(timedelta(hours=7))
SEED = 5


def hanoi_ms(text: str) -> int:
    """Epoch ms of a Hanoi local time, e.g. '2026-06-21 05:00'."""
    return int(datetime.fromisoformat(text).replace(tzinfo=HANOI).timestamp() * 1000)


def sample(
    kind: str, start: str, days: float, n_devices: int = 40, every_s: float | None = None
) -> dict[str, Any]:
    """Every device of a kind read on a regular grid: values by measure, with times and device indices."""
    registry = make_registry(n_devices, [kind], seed=SEED)
    table = registry.tables[kind]
    model = model_for(KINDS[kind], table, SEED)
    step = int((every_s or KINDS[kind].interval_s) * 1000)
    times = np.arange(hanoi_ms(start), hanoi_ms(start) + int(days * 86_400_000), step, dtype=np.int64)
    rng = np.random.default_rng(0)
    # One call for the whole grid (fast); each device's red noise then takes one step, which the
    # statistics below do not depend on.
    device = np.tile(np.arange(len(table)), len(times))
    flat = model.values(device, np.repeat(times, len(table)), rng)
    values = flat.reshape(len(times), len(table), -1)  # (time, device, measure)
    out: dict[str, Any] = {m: values[:, :, i] for i, m in enumerate(KINDS[kind].measure_names)}
    out["ts"] = times
    out["hour"] = local_hour(times)
    out["model"] = model
    return out


def at_hours(data: dict[str, Any], measure: str, hours: tuple[float, float]) -> NDArray[np.float64]:
    picked = (data["hour"] >= hours[0]) & (data["hour"] < hours[1])
    result: NDArray[np.float64] = data[measure][picked]
    return result


# --- the sun and street lights ---------------------------------------------------------------------
@pytest.mark.parametrize(
    ("day", "sunrise", "sunset"),
    # Hanoi's published sunrise/sunset times (local), to within a few minutes.
    [("2026-06-21", "05:14", "18:42"), ("2026-12-21", "06:30", "17:20"), ("2026-03-20", "06:04", "18:08")],
)
def test_sunrise_and_sunset_over_hanoi(day: str, sunrise: str, sunset: str) -> None:
    rise, set_ = sun_times(hanoi_ms(f"{day} 00:00"))
    for got, expected in ((rise, sunrise), (set_, sunset)):
        assert abs(got - hanoi_ms(f"{day} {expected}")) <= 6 * 60_000


def test_solar_noon_elevation_follows_the_seasons() -> None:
    june = float(elevation_deg(hanoi_ms("2026-06-21 11:58"))[0])
    december = float(elevation_deg(hanoi_ms("2026-12-21 12:07"))[0])
    assert june == pytest.approx(90 - abs(21.0285 - 23.44), abs=0.3)
    assert december == pytest.approx(90 - 21.0285 - 23.44, abs=0.3)


def test_lamps_are_off_at_noon_on_at_night_and_draw_power_by_dimming() -> None:
    data = sample("lighting", "2026-12-01 00:00", 3, every_s=300)
    assert np.all(at_hours(data, "state", (10, 14)) == 0), "off at noon"
    assert np.all(at_hours(data, "power", (10, 14)) < 1.0)
    assert np.all(at_hours(data, "state", (19, 24)) == 1), "on in the evening"
    assert np.all(at_hours(data, "state", (0, 5)) == 1), "on after midnight"
    assert set(np.unique(at_hours(data, "dimming", (0.1, 4.4)))) <= {50.0, 100.0}, "dimmed after midnight"
    lit = data["state"] == 1
    rated = np.broadcast_to(data["model"].rated_w, data["power"].shape)
    expected = 0.5 + rated[lit] * data["dimming"][lit] / 100.0
    assert np.allclose(data["power"][lit], expected, rtol=0.05), "power proportional to dimming"
    assert np.median(at_hours(data, "lux", (11, 13))) > 5000 > np.median(at_hours(data, "lux", (21, 23)))


def test_lamps_switch_at_dusk_and_dawn_by_the_sun() -> None:
    day = "2026-06-21"
    data = sample("lighting", f"{day} 00:00", 1, every_s=60)
    rise, set_ = sun_times(hanoi_ms(f"{day} 00:00"))
    on_share = data["state"].mean(axis=1)
    ts = data["ts"]
    assert np.all(on_share[ts < rise - 20 * 60_000] == 1)
    assert np.all(on_share[(ts > rise + 20 * 60_000) & (ts < set_ - 20 * 60_000)] == 0)
    assert np.all(on_share[ts > set_ + 20 * 60_000] == 1)
    switching = ts[(on_share > 0) & (on_share < 1)]
    assert switching.size
    assert np.all(np.minimum(abs(switching - rise), abs(switching - set_)) < 20 * 60_000)


# --- air ---------------------------------------------------------------------------------------------
def test_pm25_is_higher_on_inversion_days() -> None:
    weather = Weather(SEED)
    data = sample("air", "2026-12-01 00:00", 60, n_devices=10, every_s=3600)
    strength = weather.sample(data["ts"]).inversion
    inversion_days = strength > 0.5
    calm = strength == 0
    assert inversion_days.sum() > 24, "the winter has inversions"
    assert calm.sum() > 24, "and calm days"
    ratio = np.median(data["pm25"][inversion_days]) / np.median(data["pm25"][calm])
    assert ratio > 1.8


def test_no2_peaks_at_rush_hour_and_ozone_in_the_afternoon() -> None:
    data = sample("air", "2026-10-05 00:00", 5, n_devices=20, every_s=600)  # Monday to Friday
    no2_rush = np.mean(at_hours(data, "no2", (7, 9)))
    assert no2_rush > 1.2 * np.mean(at_hours(data, "no2", (12, 15)))
    assert no2_rush > 1.2 * np.mean(at_hours(data, "no2", (2, 4)))
    assert np.mean(at_hours(data, "o3", (14, 16))) > 2 * np.mean(at_hours(data, "o3", (5, 7)))


def test_fine_share_of_particles_rises_with_humidity() -> None:
    data = sample("air", "2026-01-01 00:00", 30, n_devices=10, every_s=1800)
    ratio = (data["pm25"] / data["pm10"]).ravel()
    humidity = data["humidity"].ravel()
    dry, wet = ratio[humidity < 60], ratio[humidity > 90]
    assert dry.size > 20
    assert wet.size > 20
    assert np.median(wet) - np.median(dry) > 0.05
    assert np.all(data["pm10"] >= data["pm25"])


def test_the_seasons_are_hanois() -> None:
    january = sample("air", "2026-01-05 00:00", 5, n_devices=10, every_s=3600)
    july = sample("air", "2026-07-06 00:00", 5, n_devices=10, every_s=3600)
    assert np.mean(january["pm25"]) > 1.8 * np.mean(july["pm25"]), "dry winters are smoggy"
    assert np.mean(july["temperature"]) - np.mean(january["temperature"]) > 8
    assert 10 < np.mean(january["temperature"]) < 22
    assert 25 < np.mean(july["temperature"]) < 33


# --- traffic -------------------------------------------------------------------------------------------
def test_traffic_is_slower_and_denser_at_rush_hour_and_obeys_the_fundamental_diagram() -> None:
    data = sample("traffic", "2026-10-05 00:00", 5, every_s=300)
    assert np.median(at_hours(data, "mean_speed", (7.5, 8.5))) < 0.85 * np.median(
        at_hours(data, "mean_speed", (2, 4))
    )
    assert np.median(at_hours(data, "occupancy", (7.5, 8.5))) > 3 * np.median(
        at_hours(data, "occupancy", (2, 4))
    )
    model = data["model"]
    # Greenshields: speed = vf (1 - k/kj), with occupancy measuring k/kj; and flow = k v.
    x = data["occupancy"] / (100 * JAM_OCCUPANCY)
    implied_speed = model.free_speed[None, :] * (1 - x)
    dry = Weather(SEED).sample(data["ts"]).rain < 0.1
    assert np.median(np.abs(data["mean_speed"][dry] / implied_speed[dry] - 1)) < 0.08
    flow = model.jam_density[None, :] * model.lanes[None, :] * model.free_speed[None, :] * x * (1 - x)
    busy = flow > 600
    counts_per_hour = data["vehicle_count"] * 3600 / KINDS["traffic"].interval_s
    assert np.median(counts_per_hour[busy] / flow[busy]) == pytest.approx(1.0, abs=0.2)


def test_weekends_have_no_morning_rush() -> None:
    hours = np.array([8.0])
    weekday_demand = traffic_demand(hours, np.array([2]))
    sunday = traffic_demand(hours, np.array([6]))
    assert float(sunday[0]) < 0.6 * float(weekday_demand[0])
    assert int(weekday(np.array([hanoi_ms("2026-11-22 12:00")]))[0]) == 6, "22 Nov 2026 is a Sunday"


# --- water ----------------------------------------------------------------------------------------------
def test_water_flow_is_lowest_at_night_when_pressure_is_highest() -> None:
    data = sample("water", "2026-05-04 00:00", 3, every_s=300)
    night_flow = np.mean(at_hours(data, "flow", (2, 4)))
    assert night_flow < 0.5 * np.mean(at_hours(data, "flow", (6, 8)))
    assert np.mean(at_hours(data, "pressure", (2, 4))) > np.mean(at_hours(data, "pressure", (18, 20))) + 0.2


def test_chlorine_decays_along_the_network() -> None:
    data = sample("water", "2026-05-04 00:00", 1, n_devices=60, every_s=3600)
    distance = data["model"].distance_km
    chlorine = data["free_chlorine"].mean(axis=0)
    near, far = chlorine[distance < 4], chlorine[distance > 11]
    assert near.size
    assert far.size
    assert np.mean(far) < 0.8 * np.mean(near)


def test_turbidity_rises_after_heavy_rain() -> None:
    weather = Weather(SEED)
    data = sample("water", "2026-07-01 00:00", 30, n_devices=10, every_s=3600)
    recent = weather.sample(data["ts"]).recent_rain
    after_storms, dry = recent > 25, recent < 1
    assert after_storms.sum() > 5
    assert dry.sum() > 5
    assert np.median(data["turbidity"][after_storms]) > 2 * np.median(data["turbidity"][dry])


# --- waste -------------------------------------------------------------------------------------------------
def test_bins_fill_up_and_are_emptied_and_batteries_run_down() -> None:
    data = sample("waste", "2026-09-07 00:00", 6, n_devices=30)
    fill = data["fill_level"]
    rises = np.diff(fill, axis=0)
    assert np.median(rises[rises > -30]) >= 0, "fill levels creep up"
    collected = (fill[:-1] >= 5) & (fill[1:] < 0.3 * fill[:-1])
    assert np.all(collected.sum(axis=0) >= 2), "every bin is collected at least every other day"
    assert np.median(fill[1:][collected]) < 4, "and emptied"
    battery = data["battery"]
    assert np.all(battery[-10:].mean(axis=0) <= battery[:10].mean(axis=0) + 0.5)
    assert np.all((data["tilt"] >= 0) & (data["tilt"] < 10))


def test_every_model_stays_inside_its_valid_ranges() -> None:
    registry: Registry = make_registry(50, list(KINDS), seed=SEED)
    rng = np.random.default_rng(1)
    times = np.arange(
        hanoi_ms("2026-01-01 00:00"), hanoi_ms("2026-12-31 00:00"), 7 * 3_600_000 + 1234, dtype=np.int64
    )
    for name, kind in KINDS.items():
        table = registry.tables[name]
        model = model_for(kind, table, SEED)
        device = np.resize(np.arange(len(table)), len(times)).astype(np.intp)
        values = model.values(device, times, rng)
        lo = np.array([m.lo for m in kind.measures])
        hi = np.array([m.hi for m in kind.measures])
        assert np.all(np.isfinite(values)), name
        assert np.all((values >= lo) & (values <= hi)), name


def test_weather_is_the_same_whichever_moments_are_asked_together() -> None:
    weather = Weather(3)
    times = np.array([hanoi_ms("2026-08-10 15:30") + k * 3_600_000 for k in range(48)], dtype=np.int64)
    together = weather.sample(times)
    one_by_one = [Weather(3).sample(times[i : i + 1]) for i in range(len(times))]
    for field in ("temperature", "humidity", "rain", "recent_rain", "inversion", "clear_sky", "pm_anomaly"):
        alone = np.array([float(getattr(s, field)[0]) for s in one_by_one])
        assert np.array_equal(getattr(together, field), alone), field
    assert datetime.fromtimestamp(int(times[0]) / 1000, UTC).hour == 8


@pytest.mark.parametrize("day", ["2026-01-12 00:00", "2026-07-20 00:00"])
def test_normal_water_keeps_to_the_drinking_water_standard(day: str) -> None:
    """A fault-free water fleet for a simulated day, through validation and the detector that
    enforces QCVN 01-1:2018/BYT: nothing to report (winter: cold water, chlorine highest; July: storms)."""
    from processors.anomaly import DetectionEngine
    from processors.detectors.drinking_water import QCVN_01_1_2018
    from processors.validate import RawMessage, Validator
    from tests.simulators.helpers import DAY_MS, run_fleet

    registry = make_registry(80, ["water"], seed=SEED)
    start = hanoi_ms(day)
    messages, tally = run_fleet(registry, DAY_MS, start_ms=start, seed=SEED, kinds=["water"])
    assert tally.valid_readings["water"] == len(messages) > 80 * 280, "every node, every 5 minutes, all day"
    validator = Validator(registry)
    result = validator.validate([RawMessage(t, p) for t, p in messages], start + 2 * DAY_MS)
    batch = result.batches["water"]
    assert len(batch) == len(messages)
    engine = DetectionEngine(registry, enabled={"drinking_water"})
    alarms = engine.update(result.batches).alarms()
    worst = {
        m: (
            float(np.nanmin(batch.values[:, batch.kind.index_of(m)])),
            float(np.nanmax(batch.values[:, batch.kind.index_of(m)])),
        )
        for m in QCVN_01_1_2018
    }
    assert not alarms, f"{len(alarms)} readings outside QCVN 01-1:2018/BYT; ranges seen: {worst}"
