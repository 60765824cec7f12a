"""Scoring in rounds: a backlog scored at once equals its rounds one by one; one series, piece by piece."""

from __future__ import annotations

import numpy as np
import pytest

from processors.batch import ReadingBatch
from processors.detectors import DETECTORS
from processors.kinds import KINDS
from processors.registry import Device, DeviceTable
from processors.series import PER_MEASURE_DETECTORS, PIECE_ROWS, SeriesScorer

START = 1_795_132_800_000


def state_bytes(detector: object, table: DeviceTable) -> dict[str, bytes]:
    return {name: value.tobytes() for name, value in detector.state(table).items()}  # type: ignore[attr-defined]


@pytest.mark.parametrize("name", ["spike", "noise", "shift", "stuck", "rate", "aqi_us", "who_air"])
def test_a_backlog_scored_at_once_equals_its_rounds_one_by_one(name: str) -> None:
    """Every device reads in every round (rounds that work on the staged rows in place), then some miss."""
    kind = KINDS["air"]
    table = DeviceTable(kind)
    for i in range(6):
        table.add(Device(f"air-{i}", "air", "Ba Đình", 21.03, 105.85, None, None))
    rng = np.random.default_rng(4)
    rounds = 40
    devices = np.tile(np.arange(6), rounds)
    ts = START + np.repeat(np.arange(rounds), 6) * 60_000 + devices * 1000
    lo = np.array([m.normal[0] for m in kind.measures])
    hi = np.array([m.normal[1] for m in kind.measures])
    values = (lo + (hi - lo) * rng.uniform(0.3, 0.7, (devices.size, lo.size))).round(2)
    values[rng.random(values.shape) < 0.05] = np.nan
    values[150:156] *= 4.0  # a spike in every device
    keep = ~((devices == 2) & (np.arange(devices.size) > 180))  # device 2 falls silent: uneven rounds
    devices, ts, values = devices[keep], ts[keep], values[keep]
    order = np.random.default_rng(5).permutation(devices.size)  # arrival order is not round order
    at_once, one_by_one = DETECTORS[name](kind), DETECTORS[name](kind)
    batch = ReadingBatch(kind, table, devices[order], ts[order], values[order], ts[order] + 500)
    scores = at_once.update(batch)
    expected = np.zeros_like(scores)
    for moment in np.unique(ts // 60_000):
        rows = np.flatnonzero(ts[order] // 60_000 == moment)
        expected[rows] = one_by_one.update(batch.take(rows))
    assert scores.tobytes() == expected.tobytes()
    assert state_bytes(at_once, table) == state_bytes(one_by_one, table)


def test_a_series_scores_the_same_in_pieces_as_in_one_batch() -> None:
    rng = np.random.default_rng(7)
    n = 2 * PIECE_ROWS + 123
    ts = START + np.arange(n, dtype=np.int64) * 600_000
    values = 50 + 10 * np.sin(np.arange(n) / 24) + rng.standard_normal(n)
    values[[300, 900]] += 40
    ts[500:510] = ts[490:500]  # repeated timestamps
    ts = np.concatenate([ts[:700], ts[720:740], ts[700:720], ts[740:]])  # late rows
    seen: list[int] = []
    scorer = SeriesScorer(values[:200], ts[:200], PER_MEASURE_DETECTORS)
    scores = scorer.score(ts, values, seen.append).score
    assert seen == [min(k, n) for k in range(PIECE_ROWS, n + PIECE_ROWS, PIECE_ROWS)]

    whole = SeriesScorer(values[:200], ts[:200], PER_MEASURE_DETECTORS)
    batch = ReadingBatch(whole.kind, whole.table, np.zeros(n, dtype=np.intp), ts, values[:, None], ts)
    expected = np.zeros(n, dtype=np.float32)
    for detector in whole.detectors:
        expected = np.maximum(expected, detector.update(batch).max(axis=1, initial=0.0))
    assert scores.tobytes() == expected.tobytes()
    assert scores.max() >= 0.5, "the spikes must score, or the comparison proves little"
