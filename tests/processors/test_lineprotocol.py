"""Line protocol: no value can add a line, a tag or a field; numbers stay floats; time stays exact."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from processors.batch import Event, ReadingBatch
from processors.kinds import get_kind
from processors.lineprotocol import LineEncoder, encode_point, event_timestamps_ns
from processors.registry import Device, DeviceTable
from tests.processors.lineprotocol_parser import parse_line, unescape_key, unescape_string

NASTY = ",= \"\\\n\r\t'#"
"""Every character line protocol treats specially, plus a few that tempt a sloppy encoder."""

texts = st.text(alphabet=st.sampled_from(NASTY) | st.characters(codec="utf-8"), max_size=20)
keys = texts.filter(lambda k: k.rstrip("\\") != "")
numbers = st.floats(allow_nan=True, allow_infinity=True) | st.integers(-(2**53), 2**53)
values = numbers | st.booleans() | texts


def stored_text(original: str) -> str:
    """What a reader gets back for a key, tag value or string: newlines become visible escapes."""
    return original.replace("\n", "\\n").replace("\r", "\\r")


def stored_key(original: str) -> str:
    return stored_text(original.rstrip("\\"))


@settings(max_examples=250, deadline=None)
@given(
    measurement=keys.filter(lambda m: not m.rstrip("\\").startswith("#")),
    tags=st.dictionaries(keys, texts, max_size=4),
    fields=st.dictionaries(keys, values, min_size=1, max_size=5),
    timestamp=st.integers(0, 2**62),
)
def test_no_value_adds_a_line_a_tag_or_a_field(
    measurement: str, tags: dict[str, str], fields: dict[str, object], timestamp: int
) -> None:
    assume(len({stored_key(k) for k in tags}) == len(tags))
    assume(len({stored_key(k) for k in fields}) == len(fields))
    line = encode_point(measurement, tags, fields, timestamp)  # type: ignore[arg-type]
    storable = {k: v for k, v in fields.items() if not (isinstance(v, float) and not math.isfinite(v))}
    if not storable:
        assert line == ""
        return
    parsed = parse_line(line)
    assert parsed.measurement == stored_key(measurement)
    kept_tags = {stored_key(k): stored_key(v) for k, v in tags.items() if stored_key(v)}
    assert {unescape_key(k): unescape_key(v) for k, v in parsed.tags} == kept_tags
    assert len(parsed.tags) == len(kept_tags)
    assert len(parsed.fields) == len(storable)
    got = {unescape_key(k): v for k, v in parsed.fields}
    for key, value in storable.items():
        text = got[stored_key(key)]
        if isinstance(value, bool):
            assert text == ("true" if value else "false")
        elif isinstance(value, str):
            assert unescape_string(text) == stored_text(value)
        else:
            assert not text.endswith("i"), "numbers are always floats"
            assert isinstance(value, int | float)
            assert float(text) == float(value)
    assert parsed.timestamp == timestamp


def test_integers_are_written_as_floats_and_nan_is_left_out() -> None:
    assert encode_point("m", {}, {"n": 21, "x": math.nan, "y": math.inf}, 7) == "m n=21.0 7"
    assert encode_point("m", {}, {"x": math.nan}, 7) == ""


def test_unwritable_names_are_refused() -> None:
    with pytest.raises(ValueError, match="starts with '#'"):
        encode_point("#m", {}, {"x": 1.0}, 1)
    with pytest.raises(ValueError, match="empty"):
        encode_point("m", {"\\": "v"}, {"x": 1.0}, 1)
    # An empty tag value cannot be stored in InfluxDB: the tag is left out, not the point.
    assert encode_point("m", {"t": ""}, {"x": 1.0}, 1) == "m x=1.0 1"


def table_of(kind_name: str, devices: list[tuple[str, str]]) -> DeviceTable:
    table = DeviceTable(get_kind(kind_name))
    for device_id, district in devices:
        table.add(Device(device_id, kind_name, district, 0.0, 0.0))  # unchecked: any text at all
    return table


@settings(max_examples=100, deadline=None)
@given(
    devices=st.lists(st.tuples(texts, texts), min_size=1, max_size=5),
    data=st.data(),
)
def test_reading_columns_encode_exactly(devices: list[tuple[str, str]], data: st.DataObject) -> None:
    kind = get_kind("air")
    assume(all(d.rstrip("\\") for d, _ in devices))
    table = table_of("air", devices)
    n = data.draw(st.integers(1, 12))
    rows = np.array(
        data.draw(st.lists(st.integers(0, len(devices) - 1), min_size=n, max_size=n)), dtype=np.intp
    )
    stamps = np.array(data.draw(st.lists(st.integers(0, 2**50), min_size=n, max_size=n)), dtype=np.int64)
    cells = st.floats(allow_nan=True, allow_infinity=True, width=64)
    grid = data.draw(st.lists(st.lists(cells, min_size=7, max_size=7), min_size=n, max_size=n))
    values = np.array(grid, dtype=np.float64).reshape(n, len(kind.measures))
    lines = LineEncoder().readings(ReadingBatch(kind, table, rows, stamps, values))
    assert len(lines) == n
    for i, line in enumerate(lines):
        finite = [(m.name, v) for m, v in zip(kind.measures, values[i], strict=True) if math.isfinite(v)]
        if not finite:
            assert line == ""
            continue
        parsed = parse_line(line)
        device_id, district = devices[rows[i]]
        assert parsed.measurement == "air"
        expected_tags = {"device": stored_key(device_id)}
        if stored_key(district):
            expected_tags["district"] = stored_key(district)
        assert {unescape_key(k): unescape_key(v) for k, v in parsed.tags} == expected_tags
        assert [(k, float(v)) for k, v in parsed.fields] == [(k, float(v)) for k, v in finite]
        assert all("." in v or "e" in v for _, v in parsed.fields), "never an integer literal"
        assert parsed.timestamp == stamps[i]


def test_encoder_matches_across_batches_and_tables() -> None:
    """The per-device cache never serves one table's keys for another table's rows."""
    encoder = LineEncoder()
    kind = get_kind("air")
    values = np.full((1, len(kind.measures)), 1.5)
    one = table_of("air", [("a", "North")])
    two = table_of("air", [("b", "South")])
    for table, expected in ((one, "air,device=a,district=North"), (two, "air,device=b,district=South")):
        batch = ReadingBatch(kind, table, np.zeros(1, np.intp), np.array([5], np.int64), values)
        assert encoder.readings(batch)[0].startswith(expected + " pm25=1.5,")
    one.add(Device("c", "air", "East", 0.0, 0.0))
    batch = ReadingBatch(kind, one, np.array([1], np.intp), np.array([5], np.int64), values)
    assert encoder.readings(batch)[0].startswith("air,device=c,district=East ")


def encode_events(events: list[Event]) -> list[str]:
    """Events as the InfluxDB sink writes them: one line each, at its nanosecond timestamp."""
    stamps = event_timestamps_ns(events)
    return [encode_point(e.measurement, e.tags, e.fields, ts) for e, ts in zip(events, stamps, strict=True)]


def test_events_of_the_same_millisecond_stay_apart_and_replay_identically() -> None:
    events = [Event("deadletters", 1000, {"reason": "wrong_type"}, {"detail": f"#{i}"}) for i in range(3)]
    events.append(Event("pipeline", 1000, {}, {"messages": 1}))
    assert event_timestamps_ns(events) == [1_000_000_000, 1_000_000_001, 1_000_000_002, 1_000_000_000]
    assert encode_events(events) == encode_events(list(events)), "deterministic: a replay rewrites, not adds"
    assert [parse_line(line).timestamp for line in encode_events(events)][:3] == [
        1_000_000_000,
        1_000_000_001,
        1_000_000_002,
    ]
