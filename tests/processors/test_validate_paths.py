"""The column path must agree with the reference path; duplicates, control characters, arrival times."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from processors.reasons import Reason
from processors.registry import Device, Registry
from processors.timestamps import parse_timestamp, parse_utc_strings
from processors.validate import (
    MAX_FIELD_NAMES,
    RawMessage,
    UnknownFieldPolicy,
    ValidationPolicy,
    ValidationResult,
    Validator,
)
from processors.validate.column_path import _CHUNK

NOW = 1_795_408_200_000
SEC = NOW // 1000


@pytest.fixture(scope="module")
def registry() -> Registry:
    devices = [Device(f"air-{i}", "air", "Ba Đình", 21.03, 105.81, gateway="gw-1") for i in range(3)]
    devices += [Device(f"lamp-{i}", "lighting", "Ba Đình", 21.03, 105.81) for i in range(2)]
    return Registry(devices)


def topic(device: str) -> str:
    kind = "lighting" if device.startswith("lamp") else "air"
    return f"citypulse/v1/readings/{kind}/{device}"


def warm(validator: Validator, registry: Registry) -> None:
    """One good reading per device, so every readings topic is a cached route (the column path)."""
    for device in registry:
        name = "state" if device.kind == "lighting" else "pm25"
        validator.validate(
            [RawMessage(topic(device.device_id), b'{"ts": %d, "%s": 1}' % (SEC, name.encode()))], NOW
        )


def same(a: ValidationResult, b: ValidationResult) -> None:
    assert a.batches.keys() == b.batches.keys()
    for name in a.batches:
        x, y = a.batches[name], b.batches[name]
        assert x.device.tolist() == y.device.tolist()
        assert x.ts_ms.tolist() == y.ts_ms.tolist()
        assert np.array_equal(x.values, y.values, equal_nan=True)
        assert x.received_ms is not None
        assert y.received_ms is not None
        assert x.received_ms.tolist() == y.received_ms.tolist()
    assert [(r.reason, r.detail, r.topic, r.payload, r.kind, r.device) for r in a.rejects] == [
        (r.reason, r.detail, r.topic, r.payload, r.kind, r.device) for r in b.rejects
    ]
    assert a.received == b.received
    assert a.ignored_fields == b.ignored_fields


NUMBERS = st.one_of(
    st.floats(min_value=-50, max_value=1200, allow_nan=False),
    st.integers(min_value=-5, max_value=3000),
)
ODD = st.sampled_from(
    ["12.5", "", "on", "off", " on\n", "on\x00", None, True, False, [1], {"v": 1}, 2**70, 1e300]
)
TIMESTAMPS = st.one_of(
    st.integers(min_value=SEC - 8 * 86400, max_value=SEC + 900),
    st.integers(min_value=NOW - 8 * 86400_000, max_value=NOW + 900_000),
    st.floats(min_value=SEC - 86400, max_value=SEC + 60, allow_nan=False),
    st.datetimes(min_value=datetime(2026, 11, 14), max_value=datetime(2026, 11, 24)).map(
        lambda d: d.isoformat(timespec="milliseconds") + "Z"
    ),
    st.datetimes(min_value=datetime(2026, 11, 14), max_value=datetime(2026, 11, 24)).map(
        lambda d: d.isoformat(timespec="seconds") + "+07:00"
    ),
    st.sampled_from(
        ["soon", "2026-11-23T04:30:00", "2026-02-30T00:00:00Z", "2026-11-23T04:30:00.123456Z", -1, None]
    ),
)


@st.composite
def messages(draw: st.DrawFn) -> list[RawMessage]:
    out = []
    for _ in range(draw(st.integers(min_value=1, max_value=12))):
        device = draw(st.sampled_from(["air-0", "air-1", "air-2", "lamp-0", "lamp-1"]))
        lamp = device.startswith("lamp")
        names = ["state", "dimming", "power", "lux"] if lamp else ["pm25", "pm10", "no2", "temperature"]
        item: dict[str, object] = {}
        if draw(st.booleans()):
            item["device"] = draw(st.sampled_from([device, device, "air-2", 7]))
        if draw(st.integers(0, 9)):
            item["ts"] = draw(TIMESTAMPS)
        for name in names:
            if draw(st.integers(0, 3)):
                item[name] = draw(st.one_of(NUMBERS, NUMBERS, NUMBERS, ODD))
        if draw(st.integers(0, 5)) == 0:
            item[draw(st.sampled_from(["firmware", "rssi", "x\x01y"]))] = draw(st.one_of(NUMBERS, ODD))
        body = json.dumps(item, allow_nan=True)
        if draw(st.integers(0, 15)) == 0:
            body = body[: len(body) // 2]
        if draw(st.integers(0, 15)) == 0:
            body = body.replace("1", "NaN", 1)
        out.append(RawMessage(topic(device), body.encode(), draw(st.integers(NOW - 5000, NOW))))
    return out


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(batch=messages(), reject_unknown=st.booleans())
def test_the_column_path_agrees_with_the_reference_path(
    registry: Registry, batch: list[RawMessage], reject_unknown: bool
) -> None:
    policy = ValidationPolicy(
        unknown_fields=UnknownFieldPolicy.REJECT if reject_unknown else UnknownFieldPolicy.IGNORE
    )
    fast = Validator(registry, policy)
    warm(fast, registry)
    reference = Validator(registry, policy, column_path=False)
    same(fast.validate(batch, NOW), reference.validate(batch, NOW))


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    items=st.lists(
        st.fixed_dictionaries(
            {
                "device": st.sampled_from(["air-0", "air-1", "ghost", 3]),
                "ts": TIMESTAMPS,
                "pm25": st.one_of(NUMBERS, ODD),
            }
        ),
        min_size=1,
        max_size=8,
    )
)
def test_gateway_batches_agree_too(registry: Registry, items: list[dict[str, object]]) -> None:
    message = RawMessage("citypulse/v1/batches/air/gw-1", json.dumps(items).encode(), NOW)
    fast = Validator(registry)
    same(fast.validate([message], NOW), Validator(registry, column_path=False).validate([message], NOW))


@settings(max_examples=300, deadline=None)
@given(
    moment=st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31)),
    millis=st.booleans(),
    damage=st.one_of(st.none(), st.tuples(st.integers(0, 23), st.sampled_from(list("0123456789-:TZ.x ")))),
)
def test_vectorised_timestamps_agree_with_parse_timestamp(
    moment: datetime, millis: bool, damage: tuple[int, str] | None
) -> None:
    text = (
        moment.replace(tzinfo=UTC)
        .isoformat(timespec="milliseconds" if millis else "seconds")
        .replace("+00:00", "Z")
    )
    if damage is not None and damage[0] < len(text):
        text = text[: damage[0]] + damage[1] + text[damage[0] + 1 :]
    ms, ok = parse_utc_strings([text])
    try:
        expected: int | None = parse_timestamp(text)
    except ValueError:
        expected = None
    if ok[0]:
        assert int(ms[0]) == expected
    if damage is None:
        assert ok[0], "the canonical spellings take the fast way"


class TestDuplicates:
    def test_within_a_cycle(self, registry: Registry) -> None:
        message = RawMessage(topic("air-0"), b'{"ts": %d, "pm25": 5}' % SEC)
        result = Validator(registry).validate([message, message], NOW)
        assert result.valid == 1
        assert [r.reason for r in result.rejects] == [Reason.DUPLICATE]
        assert result.rejects[0].payload == message.payload
        assert result.rejects[0].device == "air-0"

    @pytest.mark.parametrize("column_path", [True, False])
    def test_a_gateway_repeat_spelled_in_epoch_seconds(self, registry: Registry, column_path: bool) -> None:
        """The benchmark's gateway run: one reading sent twice, once in RFC 3339 and once in epoch seconds.

        Both land on the same millisecond, so the later one is a duplicate, whichever
        path takes it; the dead letter carries that item as it was sent.
        """
        validator = Validator(registry, column_path=column_path)
        warm(validator, registry)
        stamp = datetime.fromtimestamp(SEC, UTC).isoformat().replace("+00:00", "Z")
        first = {"device": "air-1", "ts": stamp, "pm25": 5.0}
        again = {"device": "air-1", "ts": SEC, "pm25": 5.0}
        other = {"device": "air-2", "ts": SEC, "pm25": 6.0}
        batch = "citypulse/v1/batches/air/gw-1"
        messages = [
            RawMessage(batch, json.dumps([first, other]).encode()),
            RawMessage(topic("air-0"), b'{"ts": %d, "pm25": 7}' % SEC),
            RawMessage(batch, json.dumps([again]).encode()),
        ]
        result = validator.validate(messages, NOW)
        assert result.valid == 3
        assert result.batches["air"].device_ids() == ["air-1", "air-2", "air-0"]
        assert [r.reason for r in result.rejects] == [Reason.DUPLICATE]
        assert json.loads(result.rejects[0].payload) == again
        assert result.rejects[0].device == "air-1"

    def test_across_cycles_only_once_remembered(self, registry: Registry) -> None:
        validator = Validator(registry)
        message = RawMessage(topic("air-1"), b'{"ts": %d, "pm25": 5}' % SEC)
        first = validator.validate([message], NOW)
        retried = validator.validate([message], NOW)  # the write failed: nothing was remembered
        assert first.valid == retried.valid == 1
        validator.remember(retried)
        again = validator.validate([message], NOW + 1000)
        assert again.valid == 0
        assert [r.reason for r in again.rejects] == [Reason.DUPLICATE]

    def test_same_timestamp_different_values_is_still_one_reading(self, registry: Registry) -> None:
        validator = Validator(registry)
        a = RawMessage(topic("air-2"), b'{"ts": %d, "pm25": 5}' % SEC)
        b = RawMessage(topic("air-2"), b'{"ts": %d, "pm25": 6}' % SEC)
        result = validator.validate([a, b], NOW)
        assert result.batches["air"].values[:, 0].tolist() == [5.0], "the first arrival wins"
        assert [r.payload for r in result.rejects] == [b.payload]

    def test_memory_is_bounded_per_device(self, registry: Registry) -> None:
        validator = Validator(registry, ValidationPolicy(dedup_window=4))
        backlog = [{"ts": SEC - 60 * k, "pm25": k} for k in range(10)]
        result = validator.validate([RawMessage(topic("air-0"), json.dumps(backlog).encode())], NOW)
        validator.remember(result)
        assert validator.recent["air"].ts.shape[1] == 4
        replay = validator.validate([RawMessage(topic("air-0"), json.dumps(backlog).encode())], NOW)
        assert len(replay.rejects) == 4, "the newest four are recognised; older ones are beyond the window"

    def test_state_survives_a_restart(self, registry: Registry) -> None:
        validator = Validator(registry)
        message = RawMessage(topic("air-0"), b'{"ts": %d, "pm25": 5}' % SEC)
        validator.remember(validator.validate([message], NOW))
        restarted = Validator(registry)
        restarted.restore(validator.state())
        assert [r.reason for r in restarted.validate([message], NOW).rejects] == [Reason.DUPLICATE]


class TestControlCharacters:
    def test_a_topic_with_control_characters_is_a_bad_topic(self, registry: Registry) -> None:
        result = Validator(registry).validate([RawMessage("citypulse/v1/readings/air/air\x00-0", b"{}")], NOW)
        assert [r.reason for r in result.rejects] == [Reason.BAD_TOPIC]

    def test_a_malformed_device_id_never_reaches_a_reject_field(self, registry: Registry) -> None:
        items = [{"device": "air\n-0", "ts": SEC, "pm25": 1}]
        result = Validator(registry).validate(
            [RawMessage("citypulse/v1/batches/air/gw-1", json.dumps(items).encode())], NOW
        )
        assert [r.reason for r in result.rejects] == [Reason.BAD_DEVICE_ID]
        assert result.rejects[0].device is None
        assert "\n" not in result.rejects[0].detail

    def test_switch_states_strip_whitespace_but_reject_other_control_characters(
        self, registry: Registry
    ) -> None:
        ok = RawMessage(topic("lamp-0"), json.dumps({"ts": SEC, "state": " on\n"}).encode())
        bad = RawMessage(topic("lamp-1"), json.dumps({"ts": SEC, "state": "on\x00"}).encode())
        result = Validator(registry).validate([ok, bad], NOW)
        assert result.batches["lighting"].values[:, 0].tolist() == [1.0]
        assert [r.reason for r in result.rejects] == [Reason.WRONG_TYPE]

    def test_unknown_field_names_are_sanitised_and_bounded(self, registry: Registry) -> None:
        validator = Validator(registry)
        warm(validator, registry)
        names = ["bad\x01name"] + [f"x{i}" for i in range(MAX_FIELD_NAMES + 10)]
        chunks = [names[i : i + 50] for i in range(0, len(names), 50)]  # within the fields limit
        bodies = [{"ts": SEC - n, "pm25": 1, **dict.fromkeys(chunk, 1)} for n, chunk in enumerate(chunks)]
        result = validator.validate([RawMessage(topic("air-0"), json.dumps(b).encode()) for b in bodies], NOW)
        assert result.valid == len(chunks)
        assert "badname" in result.ignored_fields
        assert "(other)" in result.ignored_fields
        assert len(result.ignored_fields) == MAX_FIELD_NAMES + 1


def test_arrival_times_reach_the_batch(registry: Registry) -> None:
    validator = Validator(registry)
    warm(validator, registry)
    messages = [
        RawMessage(topic("air-0"), b'{"ts": %d, "pm25": 5}' % (SEC - 10), NOW - 4000),
        RawMessage(topic("air-1"), b'{"ts": %d, "pm25": 5}' % (SEC - 10)),
    ]
    batch = validator.validate(messages, NOW).batches["air"]
    assert batch.received_ms is not None
    assert batch.received_ms.tolist() == [NOW - 4000, NOW], "without an arrival time, the cycle's clock"


def test_integers_and_floats_land_as_floats_on_both_paths(registry: Registry) -> None:
    fast = Validator(registry)
    warm(fast, registry)
    result = fast.validate([RawMessage(topic("air-0"), b'{"ts": %d, "pm25": 7, "pm10": 7.5}' % SEC)], NOW)
    values = result.batches["air"].values[0]
    assert values.dtype == np.float64
    assert values[0] == 7.0
    assert values[1] == 7.5
    assert math.isnan(values[2])


def test_readings_keep_arrival_order(registry: Registry) -> None:
    base = datetime.fromtimestamp(SEC, tz=UTC)
    fast = Validator(registry)
    warm(fast, registry)
    stamps = [(base - timedelta(minutes=k)).isoformat().replace("+00:00", "Z") for k in (1, 3, 2)]
    messages = [RawMessage(topic("air-0"), json.dumps({"ts": s, "pm25": 1}).encode()) for s in stamps]
    messages.insert(1, RawMessage(topic("air-1"), b"[{}]"))  # goes the reference way
    result = fast.validate(messages, NOW)
    assert result.batches["air"].ts_ms.tolist() == [parse_timestamp(s) for s in stamps]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    items=st.lists(
        st.one_of(
            st.fixed_dictionaries(
                {"device": st.sampled_from(["air-0", "air-1", [1], {"id": 1}, None]), "ts": TIMESTAMPS}
            ),
            st.sampled_from([5, "air-0", None, [{"device": "air-0"}]]),
        ),
        min_size=1,
        max_size=6,
    ),
    singles=st.integers(0, 3),
)
def test_odd_gateway_items_and_mixed_cycles_agree(
    registry: Registry, items: list[object], singles: int
) -> None:
    """Items that are not objects, or name a device with something unhashable, leave the quick way."""
    cycle = [RawMessage("citypulse/v1/batches/air/gw-1", json.dumps(items).encode(), NOW)]
    cycle += [
        RawMessage(topic("air-2"), b'{"ts": %d, "pm25": %d}' % (SEC - i, i), NOW) for i in range(singles)
    ]
    fast = Validator(registry)
    warm(fast, registry)
    same(fast.validate(cycle, NOW), Validator(registry, column_path=False).validate(cycle, NOW))


def test_duplicates_are_found_however_far_apart_the_timestamps(registry: Registry) -> None:
    """Within a cycle (one sort key per reading) and across any span (a sort on both columns)."""
    validator = Validator(registry)
    device = np.array([2, 0, 2, 1, 0, 2], dtype=np.intp)
    for ts in (
        np.array([5, 5, 5, 7, 6, 9], dtype=np.int64),
        np.array([2**61, 5, 2**61, -(2**61), 6, 9], dtype=np.int64),  # too far apart for one key
    ):
        found = validator._duplicates("air", device, ts)
        seen: set[tuple[int, int]] = set()
        expected = []
        for d, t in zip(device.tolist(), ts.tolist(), strict=True):
            expected.append((d, t) in seen)
            seen.add((d, t))
        assert found.tolist() == expected == [False, False, True, False, False, False]


PIECES = [
    b'{"ts": %d, "pm25": 12.5}' % SEC,
    b'{"device": "air-1", "ts": %d, "pm10": 40}' % SEC,
    b' {"ts": %d, "no2": 3}\n' % SEC,
    b'{"ts": %d, "pm25": NaN}' % SEC,
    b'{"ts": %d, "pm25": -Infinity}' % SEC,
    b'{"ts": %d, "pm25": 1, "x": "}' % SEC,  # with the next one, one object if joined by a bare comma
    b'{","y": 2}',
    b'{"ts": %d, "pm25": 1, "a": {"b": {}' % SEC,  # with the next one, one object
    b"{}}}",
    b'{"ts": %d, "pm25": 1, "a": [{}' % SEC,  # with the next one, one object
    b"{}]}",
    b"{},{}",  # two items: a join must not miss a payload that lost one
    b'{"ts": %d, "pm25": 2, "tags": ["a"]}' % SEC,
    b'{"ts": %d, "pm25": 3' % SEC,
    b"\x0b{}",
    b"",
    b"[]",
    b'"text"',
    b"{}",
]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(picks=st.lists(st.integers(0, len(PIECES) - 1), min_size=32, max_size=80))
def test_a_cycle_parsed_in_one_go_reads_each_payload_as_alone(registry: Registry, picks: list[int]) -> None:
    """Cycles large enough to be parsed as one array, with payloads that would run into each other."""
    cycle = [RawMessage(topic(f"air-{i % 3}"), PIECES[p], NOW) for i, p in enumerate(picks)]
    fast = Validator(registry)
    warm(fast, registry)
    same(fast.validate(cycle, NOW), Validator(registry, column_path=False).validate(cycle, NOW))


@pytest.mark.parametrize("pair", [(5, 6), (7, 8), (9, 10)])
def test_payloads_that_would_run_into_each_other_are_still_read_alone(
    registry: Registry, pair: tuple[int, int]
) -> None:
    """Two payloads that make one object when joined, and one that makes two, in one run of a cycle."""
    picks = [0, 1, 2] * 10 + [*pair, 11, 0, 1]
    cycle = [RawMessage(topic(f"air-{i % 3}"), PIECES[p], NOW) for i, p in enumerate(picks)]
    fast = Validator(registry)
    warm(fast, registry)
    same(fast.validate(cycle, NOW), Validator(registry, column_path=False).validate(cycle, NOW))


@pytest.mark.parametrize("opening", [b"[", b'{"x":'])
@pytest.mark.parametrize("readings", [1, 300])
def test_a_gateway_batch_nested_deeper_than_the_reference_parser_reads_is_malformed_on_both_paths(
    registry: Registry, opening: bytes, readings: int
) -> None:
    """orjson reads 1,024 levels, pydantic's parser (the reference) 200: a batch nested deeper is
    malformed JSON either way, whether its items are otherwise good or not. A large batch of
    ordinary items (hundreds of brackets, none deep) is still read. (The depth limit, 4 by
    default, is raised here so that the parsers meet such a batch at all.)"""
    closing = b"]" if opening == b"[" else b"}"
    deep = opening * 300 + b"1" + closing * 300
    good = b'{"device": "air-1", "ts": %d, "pm25": 1}'
    items = [good % (SEC - i) for i in range(readings)]
    batches = [
        b"[" + b",".join([*items, b'{"device": "air-1", "ts": %d, "pm25": 1, "x": %s}' % (SEC, deep)]) + b"]",
        b"[" + b",".join([*items, b'{"device": "air-1", "pm25": 1, "x": %s}' % deep]) + b"]",
        b"[" + b",".join(items) + b"]",
    ]
    policy = ValidationPolicy(max_json_depth=2000)
    for payload in batches:
        cycle = [RawMessage("citypulse/v1/batches/air/gw-1", payload, NOW)]
        fast = Validator(registry, policy)
        warm(fast, registry)
        result = fast.validate(cycle, NOW)
        same(result, Validator(registry, policy, column_path=False).validate(cycle, NOW))
        if payload is batches[-1]:
            assert result.valid == readings
        else:
            assert [r.reason for r in result.rejects] == [Reason.MALFORMED_JSON]


@pytest.mark.parametrize("reject_unknown", [False, True])
def test_gateway_cycles_of_several_chunks_agree_with_the_reference_path(
    registry: Registry, reject_unknown: bool
) -> None:
    """Batch items are checked a chunk at a time as they arrive, and the result assembled at the end:
    repeats across chunks, unknown fields, items the column path declines, and a readings topic's
    backlog between the batches still come out as the reference path has them."""
    items: list[dict[str, object]] = []
    for i in range(2 * _CHUNK + 700):
        item: dict[str, object] = {"device": f"air-{i % 3}", "ts": SEC - i // 3, "pm25": i % 500}
        if i % 101 == 0:
            item["firmware"] = f"v{i % 7}"
        if i % 211 == 0:
            del item["ts"]
        if i % 307 == 0:
            item["pm25"] = "12"
        if i % 401 == 400:
            item = dict(items[i // 2])  # the same reading again, often from an earlier chunk
        items.append(item)
    cycle = [
        RawMessage("citypulse/v1/batches/air/gw-1", json.dumps(items[i : i + 100]).encode(), NOW - i)
        for i in range(0, len(items), 100)
    ]
    backlog = [{"ts": SEC - 10_000 - k, "pm25": k} for k in range(50)]
    cycle.insert(40, RawMessage(topic("air-1"), json.dumps(backlog).encode(), NOW))
    policy = ValidationPolicy(
        unknown_fields=UnknownFieldPolicy.REJECT if reject_unknown else UnknownFieldPolicy.IGNORE
    )
    result = Validator(registry, policy).validate(cycle, NOW)
    same(result, Validator(registry, policy, column_path=False).validate(cycle, NOW))
    reasons = {r.reason for r in result.rejects}
    assert {Reason.DUPLICATE, Reason.MISSING_TIMESTAMP, Reason.WRONG_TYPE} <= reasons
    assert (Reason.UNKNOWN_FIELD in reasons) == reject_unknown
    assert result.valid > 2 * _CHUNK
