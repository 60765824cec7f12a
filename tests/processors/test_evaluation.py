"""The evaluation's matching rules, and an end-to-end replay of labelled synthetic faults."""

from __future__ import annotations

import numpy as np
import orjson

from processors.anomaly import DetectionEngine
from processors.detectors import Category
from processors.evaluation import DAY_MS, evaluate
from processors.kinds import KINDS
from processors.labels import Label
from processors.registry import Device, Registry
from processors.replay import AlarmLog, RejectRecord, ReplayResult, TimedMessage, replay
from processors.timestamps import format_rfc3339
from processors.validate import Validator
from tests.processors import synthetic

START = synthetic.START_MS
MINUTE = 60_000


def result_with(
    alarms: list[tuple[str, str, str, int, bool]], rejects: tuple[RejectRecord, ...] = ()
) -> ReplayResult:
    """A replay result by hand: (device, detector, column, ts, onset) alarms."""
    log = AlarmLog()
    for device, detector, column, ts, onset in alarms:
        category = Category.STANDARD if detector == "aqi_vn" else Category.STATISTICAL
        targets = {
            "spike": ("spike",),
            "shift": ("drift", "recalibration"),
            "aqi_vn": ("pollution_episode",),
            "silence": ("dropout",),
        }[detector]
        log.add(
            np.array([device]),
            detector,
            category,
            targets,
            [column],
            np.array([ts]),
            np.array([ts]),
            np.array([onset]),
        )
    return ReplayResult(
        alarms=log, rejects=list(rejects), messages=1, readings=1, first_ms=START, last_ms=START + 3 * DAY_MS
    )


def fleet_registry() -> Registry:
    return Registry(
        [Device("air-1", "air", "Ba Đình", 21.0, 105.8), Device("air-2", "air", "Ba Đình", 21.0, 105.8)]
    )


def spike_label(device: str, ts: int, field: str = "pm25") -> Label:
    return Label("spike", "signal", device, "air", field, ts, ts)


def test_an_alarm_on_the_labelled_field_within_grace_detects_it() -> None:
    t = START + DAY_MS + 3600_000
    result = result_with([("air-1", "spike", "pm25", t + MINUTE, True)])
    report = evaluate([spike_label("air-1", t)], result, fleet_registry())
    spike = report.faults["spike"]
    assert (spike.episodes, spike.detected, spike.false_positives) == (1, 1, 0)
    assert spike.median_delay == 1.0, "one reporting interval after the spike"


def test_the_wrong_field_or_too_late_is_a_miss_and_a_false_positive() -> None:
    t = START + DAY_MS + 3600_000
    result = result_with(
        [("air-1", "spike", "pm10", t + MINUTE, True), ("air-1", "spike", "pm25", t + 10 * MINUTE, True)]
    )
    report = evaluate([spike_label("air-1", t)], result, fleet_registry(), grace_intervals=3)
    spike = report.faults["spike"]
    assert (spike.detected, spike.false_positives) == (0, 2)
    assert report.false_alarms["spike"] == 2


def test_only_onsets_count_as_false_alarms_and_standards_are_apart() -> None:
    t = START + DAY_MS + 3600_000
    result = result_with(
        [
            ("air-2", "shift", "pm25", t, True),
            ("air-2", "shift", "pm25", t + MINUTE, False),
            ("air-2", "aqi_vn", "pm25", t, True),
        ]
    )
    report = evaluate([], result, fleet_registry())
    assert report.false_alarms == {"shift": 1}
    assert report.exceedances == {"aqi_vn": 1}
    assert report.false_alarms_per_device_day == 1 / report.device_days


def test_probation_skips_early_labels_and_alarms() -> None:
    early = START + 3600_000
    result = result_with([("air-1", "spike", "pm25", early + 2 * MINUTE, True)])
    report = evaluate([spike_label("air-1", early)], result, fleet_registry())
    assert report.faults["spike"].episodes == 0
    assert report.faults["spike"].skipped == 1
    assert not report.false_alarms


def test_message_faults_are_detected_by_their_reject_reason() -> None:
    t = START + DAY_MS + 3600_000
    label = Label("wrong_type", "message", "air-1", "air", "pm25", t, t, "wrong_type")
    good = RejectRecord("wrong_type", "air", "air-1", t + 400)
    stray = RejectRecord("wrong_type", "air", "air-2", t + 400)
    report = evaluate([label], result_with([], (good, stray)), fleet_registry())
    score = report.faults["wrong_type"]
    assert (score.detected, score.false_positives, score.median_delay) == (1, 1, 0.0)


def messages_of(f: synthetic.Fleet) -> list[TimedMessage]:
    out = []
    names = f.kind.measure_names
    for d, device in enumerate(f.registry.tables[f.kind.name].devices):
        for step in np.flatnonzero(f.present[d]).tolist():
            ts = int(f.ts_ms[d, step])
            body = {
                "ts": format_rfc3339(ts),
                **{n: float(v) for n, v in zip(names, f.values[d, step], strict=True)},
            }
            out.append(
                (ts + 500, f"citypulse/v1/readings/{f.kind.name}/{device.device_id}", orjson.dumps(body))
            )
    return sorted(out)


def test_a_replay_finds_every_injected_fault_and_little_else() -> None:
    f = synthetic.fleet(KINDS["water"], devices=12, days=2.5, seed=21)
    day = DAY_MS // f.interval_ms
    synthetic.spike(f, device=0, field=1, step=day + 40, size=15.0)
    synthetic.stuck(f, device=1, field=3, first=day + 80, steps=12)
    synthetic.dropout(f, device=2, first=day + 120, steps=8)
    synthetic.noise_burst(f, device=3, field=5, first=day + 160, steps=12, factor=10.0)
    synthetic.drift(f, device=4, field=0, first=day + 200, steps=40, share_of_band=0.8)
    result = replay(messages_of(f), Validator(f.registry), DetectionEngine(f.registry), cycle_ms=30_000)
    report = evaluate(f.labels, result, f.registry)
    for fault in ("spike", "stuck", "dropout", "noise_burst", "drift"):
        score = report.faults[fault]
        assert (score.episodes, score.detected) == (1, 1), fault
    assert report.faults["spike"].median_delay == 1.0
    assert report.faults["dropout"].median_delay <= 2.0
    assert report.false_alarms_per_device_day < 0.5


def drift_label(device: str, start: int, end: int, **detail: float) -> Label:
    return Label("drift", "signal", device, "air", "pm25", start, end, detail=detail)


def test_a_drift_is_also_timed_from_when_its_offset_exceeds_the_noise() -> None:
    """Offset 0 at the start, 60 at the end (100 intervals later), noise 6: it exceeds the noise
    a tenth of the way in, at interval 10. An alarm at interval 25 is 25 from the start, 15 from there."""
    start = START + DAY_MS + 3600_000
    end = start + 100 * MINUTE
    result = result_with([("air-1", "shift", "pm25", start + 25 * MINUTE, True)])
    report = evaluate([drift_label("air-1", start, end, total=-60.0, noise=6.0)], result, fleet_registry())
    drift = report.faults["drift"]
    assert drift.median_delay == 25.0
    assert drift.median_delay_from_noise == 15.0
    assert drift.as_dict()["median_delay_from_noise_intervals"] == 15.0


def test_an_alarm_before_the_offset_exceeds_the_noise_counts_as_no_delay() -> None:
    start = START + DAY_MS + 3600_000
    result = result_with([("air-1", "shift", "pm25", start + 2 * MINUTE, True)])
    label = drift_label("air-1", start, start + 100 * MINUTE, total=60.0, noise=6.0)
    assert evaluate([label], result, fleet_registry()).faults["drift"].noise_delays == [0.0]


def test_labels_without_a_noise_scale_get_only_the_delay_from_the_start() -> None:
    start = START + DAY_MS + 3600_000
    result = result_with([("air-1", "shift", "pm25", start + 25 * MINUTE, True)])
    report = evaluate(
        [drift_label("air-1", start, start + 100 * MINUTE, total=60.0)], result, fleet_registry()
    )
    assert report.faults["drift"].median_delay == 25.0
    assert "median_delay_from_noise_intervals" not in report.faults["drift"].as_dict()


def test_real_behaviours_are_not_faults_but_what_detectors_raise_on_them_is_counted() -> None:
    """A gap's silence is true; a spike after it, or a shift on a normal excursion, is a false alarm."""
    gap_start, gap_end = START + DAY_MS + 3600_000, START + DAY_MS + 4 * 3600_000
    excursion = START + 2 * DAY_MS
    labels = [
        Label("gap", "behaviour", "air-1", "air", None, gap_start, gap_end),
        Label("excursion", "behaviour", "air-2", "air", "pm25", excursion, excursion + 4 * MINUTE),
        Label(
            "excursion", "behaviour", "air-2", "air", "o3", excursion + DAY_MS // 2, excursion + DAY_MS // 2
        ),
        Label(
            "recalibration",
            "signal",
            "air-1",
            "air",
            "no2",
            START + 2 * DAY_MS,
            START + 2 * DAY_MS + 7200_000,
        ),
    ]
    result = result_with(
        [
            ("air-1", "silence", "device", gap_start + 3 * MINUTE, True),  # true: the device is offline
            ("air-1", "spike", "pm25", gap_end + 5 * MINUTE, True),  # misread: the first reading back
            ("air-2", "shift", "pm25", excursion + 2 * MINUTE, True),  # misread: a plume is not a fault
            ("air-1", "shift", "no2", START + 2 * DAY_MS + 20 * MINUTE, True),  # the step, seen
            ("air-1", "shift", "no2", START + 2 * DAY_MS + 5 * 3600_000, True),  # the step, not learned
        ]
    )
    report = evaluate(labels, result, fleet_registry())
    assert "gap" not in report.faults
    assert "excursion" not in report.faults
    assert report.false_alarms == {"spike": 1, "shift": 2}  # silence in the gap is not among them
    gap = report.behaviours["gap"]
    assert (gap.episodes, gap.alarmed, dict(gap.onsets)) == (1, 1, {"spike": 1})
    excursions = report.behaviours["excursion"]
    assert (excursions.episodes, excursions.alarmed, dict(excursions.onsets)) == (2, 1, {"shift": 1})
    recalibration = report.faults["recalibration"]
    assert (recalibration.episodes, recalibration.detected) == (1, 1)
    assert recalibration.false_positives == 2  # shift targets steps: its other onsets count against them
    assert recalibration.median_delay == 20.0
    as_dict = report.as_dict()["behaviours"]
    assert as_dict["gap"] == {"episodes": 1, "episodes_with_false_alarms": 1, "false_alarms": {"spike": 1}}
