"""Bad input of every sort gets its own reason, and never costs a good reading."""

from __future__ import annotations

import json

import numpy as np
import pytest

from processors.reasons import HELP, Reason
from processors.registry import Device, Registry
from processors.validate import RawMessage, UnknownFieldPolicy, ValidationPolicy, Validator

NOW = 1_795_408_200_000
SEC = NOW // 1000
AIR = "citypulse/v1/readings/air/air-1"


@pytest.fixture
def registry() -> Registry:
    return Registry(
        [
            Device("air-1", "air", "Ba Đình", 21.03, 105.81, gateway="gw-1"),
            Device("air-2", "air", "Đống Đa", 21.01, 105.83, gateway="gw-1"),
            Device("water-1", "water", "Hoàn Kiếm", 21.02, 105.85),
        ]
    )


def run(registry: Registry, *messages: tuple[str, bytes], policy: ValidationPolicy | None = None):  # type: ignore[no-untyped-def]
    return Validator(registry, policy).validate([RawMessage(t, p) for t, p in messages], NOW)


def reasons(result) -> list[Reason]:  # type: ignore[no-untyped-def]
    return [r.reason for r in result.rejects]


def test_every_reason_has_advice() -> None:
    assert set(HELP) == set(Reason)


def test_three_timestamp_spellings_land_on_the_same_point(registry: Registry) -> None:
    result = run(
        registry,
        (AIR, b'{"ts": "2026-11-23T04:30:00Z", "pm25": 1}'),
        (AIR, b'{"ts": %d, "pm25": 2}' % SEC),
        (AIR, b'{"ts": %d, "pm25": 3}' % NOW),
    )
    batch = result.batches["air"]
    assert batch.ts_ms.tolist() == [NOW]
    assert batch.values[:, 0].tolist() == [1.0]
    assert batch.values.dtype == np.float64
    # Same device, same instant: the later spellings are recognised as the same reading.
    assert reasons(result) == [Reason.DUPLICATE, Reason.DUPLICATE]
    for spelling in (b'"2026-11-23T04:30:00Z"', b"%d" % SEC, b"%d" % NOW):
        alone = run(registry, (AIR, b'{"ts": %s, "pm25": 1}' % spelling))
        assert alone.batches["air"].ts_ms.tolist() == [NOW]


@pytest.mark.parametrize(
    ("topic", "payload", "reason"),
    [
        (AIR, b'{"ts": 1795408200, "pm25": 1', Reason.MALFORMED_JSON),
        (AIR, b"\xff\xfe\x00garbage", Reason.MALFORMED_JSON),
        (AIR, b"", Reason.MALFORMED_JSON),
        (AIR, b'"just a string"', Reason.NOT_AN_OBJECT),
        (AIR, b'{"ts": 1795408200, "pm25": "12.5"}', Reason.WRONG_TYPE),
        (AIR, b'{"ts": 1795408200, "pm25": NaN}', Reason.NOT_FINITE),
        (AIR, b'{"ts": 1795408200, "pm25": Infinity}', Reason.NOT_FINITE),
        (AIR, b'{"ts": 1795408200, "pm25": 1e999}', Reason.NOT_FINITE),
        (AIR, b'{"ts": 1795408200, "pm25": -1}', Reason.OUT_OF_RANGE),
        (AIR, b'{"ts": 1795408200}', Reason.NO_MEASUREMENTS),
        (AIR, b'{"pm25": 3}', Reason.MISSING_TIMESTAMP),
        (AIR, b'{"ts": "soon", "pm25": 3}', Reason.BAD_TIMESTAMP),
        (AIR, b'{"ts": 1795408200, "pm25": 3, "device": "air 1"}', Reason.BAD_DEVICE_ID),
        (AIR, b'{"ts": 1795408200, "pm25": 3, "device": "air-2"}', Reason.DEVICE_MISMATCH),
        (
            "citypulse/v1/readings/air/air-9",
            b'{"ts": 1795408200, "pm25": 3}',
            Reason.UNKNOWN_DEVICE,
        ),
        ("citypulse/v1/readings/water/air-1", b'{"ts": 1795408200, "ph": 7}', Reason.KIND_MISMATCH),
        ("citypulse/v1/readings/noise/n-1", b'{"ts": 1795408200, "db": 7}', Reason.UNKNOWN_KIND),
        ("citypulse/v1/air/air-1", b'{"ts": 1795408200, "pm25": 3}', Reason.BAD_TOPIC),
        ("other/v1/readings/air/air-1", b'{"ts": 1795408200, "pm25": 3}', Reason.BAD_TOPIC),
        ("citypulse/v1/batches/air/gw", b'{"ts": 1795408200, "pm25": 3}', Reason.NOT_AN_OBJECT),
        (AIR, b'{"ts": %d, "pm25": 3}' % (SEC + 3600), Reason.TIMESTAMP_IN_FUTURE),
        (AIR, b'{"ts": %d, "pm25": 3}' % (SEC - 30 * 86400), Reason.TIMESTAMP_TOO_OLD),
    ],
)
def test_each_kind_of_bad_input_has_its_reason(
    registry: Registry, topic: str, payload: bytes, reason: Reason
) -> None:
    result = run(registry, (topic, payload), (AIR, b'{"ts": %d, "pm25": 5}' % SEC))
    assert reasons(result) == [reason]
    reject = result.rejects[0]
    assert reject.topic == topic
    assert reject.payload == payload
    assert reject.detail
    assert result.valid == 1, "the good message next to it must still be stored"


def test_oversized_payload_is_rejected_unread(registry: Registry) -> None:
    policy = ValidationPolicy(max_payload_bytes=100, deadletter_payload_bytes=16)
    big = b'{"ts": %d, "pm25": 3, "pad": "%s"}' % (SEC, b"x" * 200)
    result = run(registry, (AIR, big), (AIR, b'{"ts": %d, "pm25": 5}' % SEC), policy=policy)
    assert reasons(result) == [Reason.PAYLOAD_TOO_LARGE]
    assert result.rejects[0].payload == big[:16], "dead letters keep a bounded prefix"
    assert result.rejects[0].kind == "air"
    assert result.valid == 1


def test_a_batch_keeps_its_good_readings(registry: Registry) -> None:
    items = [
        {"device": "air-1", "ts": SEC, "pm25": 10},
        {"device": "air-2", "ts": SEC, "pm25": "bad"},
        {"device": "air-2", "ts": SEC + 1, "pm25": 20},
        {"device": "ghost", "ts": SEC, "pm25": 20},
        {"ts": SEC, "pm25": 20},
        7,
        {"device": "water-1", "ts": SEC, "pm25": 1},
        {"device": "air-1", "ts": SEC + 2, "pm25": 5000},
    ]
    result = run(registry, ("citypulse/v1/batches/air/gw-1", json.dumps(items).encode()))
    assert reasons(result) == [
        Reason.WRONG_TYPE,
        Reason.UNKNOWN_DEVICE,
        Reason.BAD_DEVICE_ID,
        Reason.NOT_AN_OBJECT,
        Reason.KIND_MISMATCH,
        Reason.OUT_OF_RANGE,
    ]
    batch = result.batches["air"]
    assert batch.device_ids() == ["air-1", "air-2"]
    assert batch.values[:, 0].tolist() == [10.0, 20.0]
    assert result.received["air"] == len(items)
    assert json.loads(result.rejects[0].payload) == items[1], "each reject carries its own item"


def test_nan_inside_a_batch_costs_only_that_item(registry: Registry) -> None:
    payload = b'[{"device":"air-1","ts":%d,"pm25":NaN},{"device":"air-2","ts":%d,"pm25":4}]' % (
        SEC,
        SEC,
    )
    result = run(registry, ("citypulse/v1/batches/air/gw-1", payload))
    assert reasons(result) == [Reason.NOT_FINITE]
    assert result.batches["air"].device_ids() == ["air-2"]


def test_a_device_backlog_array_on_its_own_topic(registry: Registry) -> None:
    payload = json.dumps(
        [
            {"ts": SEC - 60, "pm25": 1},
            {"ts": SEC, "pm25": 2},
            {"device": "air-2", "ts": SEC, "pm25": 3},
        ]
    )
    result = run(registry, (AIR, payload.encode()))
    assert reasons(result) == [Reason.DEVICE_MISMATCH]
    assert result.batches["air"].ts_ms.tolist() == [NOW - 60_000, NOW]


def test_unknown_fields_are_ignored_and_counted_by_default(registry: Registry) -> None:
    result = run(registry, (AIR, b'{"ts": %d, "pm25": 3, "firmware": "2.1", "rssi": -70}' % SEC))
    assert result.valid == 1
    assert dict(result.ignored_fields) == {"firmware": 1, "rssi": 1}


def test_unknown_fields_can_be_rejected(registry: Registry) -> None:
    policy = ValidationPolicy(unknown_fields=UnknownFieldPolicy.REJECT)
    result = run(registry, (AIR, b'{"ts": %d, "pm25": 3, "firmware": "2.1"}' % SEC), policy=policy)
    assert reasons(result) == [Reason.UNKNOWN_FIELD]
    assert "firmware" in result.rejects[0].detail


def test_missing_measures_are_nan_not_zero(registry: Registry) -> None:
    result = run(registry, (AIR, b'{"ts": %d, "pm10": 30}' % SEC))
    row = result.batches["air"].values[0]
    assert np.isnan(row[0])
    assert row[1] == 30.0
    assert np.count_nonzero(~np.isnan(result.batches["air"].values)) == 1


def test_multiple_errors_pick_the_most_fundamental(registry: Registry) -> None:
    result = run(registry, (AIR, b'{"pm25": "x", "pm10": -3}'))
    assert reasons(result) == [Reason.MISSING_TIMESTAMP]
    assert "pm25" in result.rejects[0].detail
    assert "pm10" in result.rejects[0].detail
