"""Recorded tables read as a kind's readings: mapping, units, time, devices, gaps and bad cells."""

from __future__ import annotations

from datetime import UTC, timedelta, timezone

import numpy as np
import orjson
import pytest

from processors.conversions import UnitError, conversion
from processors.kinds import get_kind
from processors.recordings import (
    Layout,
    RecordingBuilder,
    RecordingError,
    TimeColumns,
    device_id_of,
    parse_mapping,
)
from processors.registry import Device, Registry
from processors.topics import TopicScheme

AIR = get_kind("air")
BEIJING = timezone(timedelta(hours=8))
HEADER = ["year", "month", "day", "hour", "PM2.5", "CO", "TEMP", "station"]


def layout(
    spec: str = "pm25=PM2.5,co=CO:ug/m3,temperature=TEMP", device_column: str | None = "station"
) -> Layout:
    return Layout(
        AIR, parse_mapping(spec, AIR), TimeColumns(("year", "month", "day", "hour"), BEIJING), device_column
    )


def test_units_convert_between_spellings_and_refuse_what_needs_more_than_the_units() -> None:
    assert conversion("µg/m³", "mg/m³").apply(2500.0) == pytest.approx(2.5)
    assert conversion("μg/m3", "ug/m3").identity  # Greek mu and the micro sign are one unit
    assert conversion("K", "°C").apply(273.15) == pytest.approx(0.0)
    assert conversion("fraction", "%").apply(0.42) == pytest.approx(42.0)
    with pytest.raises(UnitError, match="molecular weight"):
        conversion("ppb", "µg/m³")
    with pytest.raises(UnitError, match="cannot convert"):
        conversion("°C", "µg/m³")
    with pytest.raises(UnitError, match="unknown unit 'furlongs'"):
        conversion("furlongs", "km/h")


def test_a_mapping_names_measures_of_the_kind_once_each() -> None:
    sources = parse_mapping("temperature=TEMP, pm25=PM2.5, co=CO:ug/m3", AIR)
    assert [(s.field, s.column) for s in sources] == [
        ("pm25", "PM2.5"),
        ("co", "CO"),
        ("temperature", "TEMP"),
    ]
    assert sources[1].conversion.factor == pytest.approx(0.001)
    with pytest.raises(RecordingError, match="air has no measure 'so2'"):
        parse_mapping("so2=SO2", AIR)
    with pytest.raises(RecordingError, match="pm25 is mapped twice"):
        parse_mapping("pm25=A,pm25=B", AIR)
    with pytest.raises(RecordingError, match="not FIELD=COLUMN"):
        parse_mapping("pm25", AIR)
    with pytest.raises(RecordingError, match="--map co"):
        parse_mapping("co=CO:ppm", AIR)


def test_rows_become_a_sorted_timeline_with_gaps_and_missing_values_kept() -> None:
    builder = RecordingBuilder(layout())
    builder.add_table(
        HEADER,
        [
            ["2014", "1", "10", "1", "80", "1500", "-3.5", "Dongsi"],
            ["2014", "1", "10", "0", "NA", "1200", "-3", "Dongsi"],  # PM2.5 missing: a partial reading
            ["2014", "1", "10", "0", "40", "NA", "-5", "Huairou"],
            ["2014", "1", "10", "2", "NA", "NA", "NA", "Dongsi"],  # nothing: a gap, no reading
            ["2014", "1", "10", "3", "85", "1700", "-4", "Dongsi"],
        ],
        where="beijing.csv",
    )
    recording = builder.build()
    assert recording.devices == ("Dongsi", "Huairou")
    assert recording.rows == 5
    assert recording.gaps == 1
    assert len(recording) == 4
    midnight_utc = 1_389_283_200_000  # 2014-01-10T00:00+08:00 is 2014-01-09T16:00Z
    assert recording.ts_ms.tolist() == [
        midnight_utc,
        midnight_utc,
        midnight_utc + 3_600_000,
        midnight_utc + 10_800_000,
    ]
    assert [recording.devices[d] for d in recording.device] == ["Dongsi", "Huairou", "Dongsi", "Dongsi"]
    assert np.isnan(recording.values[0, 0])
    assert recording.values[0, 1] == pytest.approx(1.2)
    assert np.isnan(recording.values[1, 1])
    messages = list(recording.messages(TopicScheme()))
    assert messages[0][1] == "citypulse/v1/readings/air/Dongsi"
    assert orjson.loads(messages[0][2]) == {
        "device": "Dongsi",
        "ts": midnight_utc,
        "co": 1.2,
        "temperature": -3.0,
    }
    # The gap counts as a longer wait, not a shorter interval: the median step is still one hour.
    assert recording.interval_s()["Dongsi"] == 3600.0
    dongsi = recording.registry().get("Dongsi")
    assert dongsi is not None
    assert dongsi.interval_s == 3600.0


def test_unreadable_rows_and_cells_are_counted_with_their_line_not_guessed() -> None:
    builder = RecordingBuilder(layout())
    builder.add_table(
        HEADER,
        [
            ["2014", "13", "10", "0", "80", "1500", "-3", "Dongsi"],  # month 13
            ["2014", "1", "10", "1", "eighty", "1500", "-3", "Dongsi"],  # a word as a value
            ["2014", "1", "10", "2", "80"],  # a short row
        ],
        where="b.csv",
        first_line=2,
    )
    recording = builder.build()
    assert len(recording) == 1
    assert np.isnan(recording.values[0, 0])
    assert sum(recording.problems.values()) == 3
    assert recording.examples[0].startswith("b.csv:2: unreadable time")
    assert recording.examples[1] == "b.csv:3: unreadable value in PM2.5 ('eighty'), kept as missing"
    assert recording.examples[2] == "b.csv:4: 5 cells where the header has 8"


def test_a_missing_column_is_named_with_the_columns_the_file_has() -> None:
    builder = RecordingBuilder(layout("pm25=PM25"))
    with pytest.raises(RecordingError, match=r"b.csv: no column 'PM25'; its columns are 'year', .*'PM2.5'"):
        builder.add_table(HEADER, [], where="b.csv")


def test_one_device_per_file_and_single_timestamp_columns() -> None:
    one = Layout(AIR, parse_mapping("pm25=pm", AIR), TimeColumns(("t",), UTC))
    builder = RecordingBuilder(one)
    builder.add_table(
        ["t", "pm"], [["1700000000", "5"], ["1700000060000", "6"]], where="a.csv", device="site a"
    )
    builder.add_table(
        ["t", "pm"],
        [["2023-11-14T22:13:20+07:00", "7"], ["2023-11-14 15:14:20", "8"]],
        where="b.csv",
        device="b",
    )
    recording = builder.build()
    assert recording.devices == ("site-a", "b")
    by_device = {
        name: recording.ts_ms[recording.of_device(i)].tolist() for i, name in enumerate(recording.devices)
    }
    # Epoch seconds and milliseconds alike; text with an offset as given, without one in the layout's zone.
    assert by_device == {
        "site-a": [1_700_000_000_000, 1_700_000_060_000],
        "b": [1_699_974_800_000, 1_699_974_860_000],
    }
    assert recording.interval_s() == {"site-a": 60.0, "b": 60.0}


def test_device_ids_come_from_names_and_refuse_nothing_usable() -> None:
    assert device_id_of("Wanshouxigong") == "Wanshouxigong"
    assert device_id_of(" Nong Zhanguan (2) ") == "Nong-Zhanguan-2"
    with pytest.raises(RecordingError, match="no usable device id"):
        device_id_of("???")


def test_the_replay_options_give_a_layout_with_extra_missing_value_markers() -> None:
    built = Layout.of(
        AIR, "pm25=PM2.5, co=CO:ug/m3", " year,month ,day,hour,", BEIJING, "station", na="XX,--"
    )
    assert built.sources == parse_mapping("pm25=PM2.5,co=CO:ug/m3", AIR)
    assert built.time == TimeColumns(("year", "month", "day", "hour"), BEIJING)
    assert built.device_column == "station"
    assert {"XX", "--", "NA", ""} <= built.na
    assert Layout.of(AIR, "pm25=pm", "t", UTC).na == Layout(AIR, (), TimeColumns(("t",), UTC)).na
    with pytest.raises(RecordingError, match="give one timestamp column"):
        Layout.of(AIR, "pm25=pm", "year,month", UTC)


def test_a_registry_is_checked_for_missing_devices_and_misstated_intervals() -> None:
    builder = RecordingBuilder(Layout(AIR, parse_mapping("pm25=pm", AIR), TimeColumns(("t",), UTC)))
    hourly = [[str(1_700_000_000 + 3600 * i), "5"] for i in range(4)]
    builder.add_table(["t", "pm"], hourly, where="a.csv", device="a")
    builder.add_table(["t", "pm"], hourly, where="b.csv", device="b")
    builder.add_table(["t", "pm"], hourly, where="c.csv", device="c")
    recording = builder.build()
    registry = Registry(
        [
            Device("a", "air", "x", 0.0, 0.0, interval_s=3600.0),
            Device("b", "air", "x", 0.0, 0.0, interval_s=60.0),
            Device("c", "air", "x", 0.0, 0.0, interval_s=7000.0),
        ]
    )
    assert recording.missing_from(registry) == []
    assert recording.missing_from(Registry([Device("b", "air", "x", 0.0, 0.0)])) == ["a", "c"]
    # Within a factor of two of what the records show is close enough; b is off sixty times over.
    assert recording.misstated_intervals(registry) == [("b", 3600.0, 60.0)]
