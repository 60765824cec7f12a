"""Streaming recordings through a runner and pooling SKAB's metrics per part."""

from __future__ import annotations

import numpy as np

from processors.realeval import POOLED, TRAIN_ROWS, Flags, Recording, evaluate, run


def recording(part: str, rows: int, start: int, stop: int) -> Recording:
    anomaly = np.zeros(rows, dtype=bool)
    anomaly[start:stop] = True
    changepoint = np.zeros(rows, dtype=bool)
    changepoint[[start, stop]] = True
    return Recording(
        name=f"{part}/x.csv",
        part=part,
        ts_ms=1_000 * np.arange(rows, dtype=np.int64),
        values=np.zeros((rows, 1)),
        measures=("x",),
        anomaly=anomaly,
        changepoint=changepoint,
    )


def late_by(rows: int):  # type: ignore[no-untyped-def]
    """A runner that alarms exactly on the labelled anomaly, ``rows`` late, scoring only its onset."""

    def runner(r: Recording) -> Flags:
        assert r.anomaly is not None
        alarm = np.roll(r.anomaly, rows)
        score = np.zeros(alarm.size)
        score[np.flatnonzero(alarm)[:1]] = 1.0
        return Flags(alarm=alarm, score=score)

    return runner


def test_parts_pool_separately_and_together() -> None:
    recordings = [recording("valve1", 1000, 500, 800), recording("other", 1000, 600, 700)]
    results = evaluate(recordings, run(recordings, late_by(0)))
    assert set(results) == {"valve1", "other", POOLED}
    for part in results.values():
        summary = part.summary()
        assert (summary["f1"], summary["far"], summary["mar"]) == (1.0, 0.0, 0.0)
        # Both changepoints of each file hit at their windows' start by the alarm's edges.
        assert summary["nab_standard_edges"] == 100.0
        # Only the start is an onset of the score: the end is a missed window.
        assert summary["nab_standard_onsets"] == 50.0
    assert results[POOLED].files == 2
    assert results[POOLED].outliers.tp == 400


def test_scored_rows_start_at_first_row_but_the_detector_sees_all() -> None:
    recordings = [recording("valve1", 1000, 100, 800)]
    seen: list[int] = []

    def runner(r: Recording) -> Flags:
        seen.append(r.ts_ms.size)
        found: Flags = late_by(10)(r)
        return found

    flags = run(recordings, runner)
    everything = evaluate(recordings, flags, 0)["valve1"]
    test_part = evaluate(recordings, flags, TRAIN_ROWS)["valve1"]
    assert seen == [1000]
    assert everything.rows == 1000
    assert test_part.rows == 600
    assert everything.outliers.fn == 10
    assert test_part.outliers.fn == 0
    assert everything.outliers.fp == test_part.outliers.fp == 10


def test_unlabelled_recordings_count_alarms_after_the_warm_up() -> None:
    quiet = Recording(
        "anomaly-free/a.csv", "anomaly-free", 1_000 * np.arange(600), np.zeros((600, 1)), ("x",)
    )
    alarm = np.zeros(600, dtype=bool)
    alarm[[10, 450, 451, 500]] = True
    result = evaluate([quiet], [Flags(alarm=alarm, score=alarm * 1.0)])["anomaly-free"]
    summary = result.summary()
    assert (summary["alarm_rows_after_warmup"], summary["alarm_onsets_after_warmup"]) == (3, 2)
    assert "f1" not in summary
