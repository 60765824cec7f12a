from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np
import pytest

from ingest.settings import load_settings
from ingest.sinks import SINKS, open_sink
from ingest.sinks.sqlite import SqliteSink
from processors.batch import Event, ReadingBatch, WriteBatch
from processors.kinds import get_kind
from processors.registry import Registry

NAN = float("nan")


def air_batch(registry: Registry, rows: list[tuple[int, int, list[float]]]) -> ReadingBatch:
    kind = get_kind("air")
    values = np.full((len(rows), len(kind.measures)), NAN)
    for i, (_, _, vals) in enumerate(rows):
        values[i, : len(vals)] = vals
    return ReadingBatch(
        kind,
        registry.tables["air"],
        np.array([r[0] for r in rows], dtype=np.intp),
        np.array([r[1] for r in rows], dtype=np.int64),
        values,
    )


def test_sqlite_is_the_default_sink(tmp_path: Path) -> None:
    assert "sqlite" in SINKS
    sink = open_sink(load_settings(sqlite={"path": tmp_path / "s.sqlite"}))
    assert isinstance(sink, SqliteSink)
    assert sink.health().ok
    sink.close()


def test_unknown_sink_name_lists_choices(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"choose one of: .*sqlite"):
        open_sink(load_settings(sink="postgres"))


def test_redelivery_overwrites_instead_of_duplicating(tmp_path: Path, small_registry: Registry) -> None:
    path = tmp_path / "s.sqlite"
    with SqliteSink(path) as sink:
        batch = air_batch(small_registry, [(0, 1000, [10.0, 20.0]), (1, 1000, [11.0])])
        sink.write(WriteBatch(readings=(batch,)))
        sink.write(WriteBatch(readings=(batch,)))
        # A later message for the same point with other fields merges, as in InfluxDB.
        sink.write(WriteBatch(readings=(air_batch(small_registry, [(0, 1000, [NAN, NAN, 5.0])]),)))
        assert sink.count("air") == 2
    rows = (
        sqlite3.connect(path)
        .execute("SELECT device, district, ts, pm25, pm10, no2 FROM air ORDER BY device")
        .fetchall()
    )
    first = small_registry.tables["air"].devices[0]
    assert rows[0] == (first.device_id, first.district, 1000, 10.0, 20.0, 5.0)
    assert rows[1][3:] == (11.0, None, None)


def test_events_are_stored_with_tags_and_fields(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite"
    with SqliteSink(path) as sink:
        sink.write(
            WriteBatch(events=(Event("deadletters", 5, {"reason": "wrong_type"}, {"payload": 'x"\n'}),))
        )
    row = sqlite3.connect(path).execute("SELECT measurement, ts, tags, fields FROM events").fetchone()
    assert row == ("deadletters", 5, '{"reason": "wrong_type"}', '{"payload": "x\\"\\n"}')


def test_new_measures_are_added_to_old_tables(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite"
    db = sqlite3.connect(path)
    db.execute(
        "CREATE TABLE air (device TEXT NOT NULL, district TEXT NOT NULL, ts INTEGER NOT NULL, "
        "pm25 REAL, PRIMARY KEY (device, ts)) WITHOUT ROWID"
    )
    db.commit()
    db.close()
    with SqliteSink(path):
        pass
    columns = {r[1] for r in sqlite3.connect(path).execute("PRAGMA table_info(air)")}
    assert {"pm10", "humidity"} <= columns


def test_health_reports_size(tmp_path: Path) -> None:
    with SqliteSink(tmp_path / "s.sqlite") as sink:
        health = sink.health()
        assert health.ok
        assert health.size_bytes
        assert health.size_bytes > 0
