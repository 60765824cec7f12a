"""Limits on the shape of what a client sends: each one dead-letters the whole message once, on every path."""

from __future__ import annotations

import orjson
import pytest

from processors.reasons import Reason
from processors.registry import Device, Registry
from processors.topics import TopicScheme
from processors.validate import RawMessage, ValidationPolicy, Validator
from processors.validate.limits import Limits

NOW = 1_795_132_800_000
TOPIC = "citypulse/v1/readings/air/air-1"
GOOD = {"ts": NOW - 1000, "pm25": 12.0}


@pytest.fixture(scope="module")
def registry() -> Registry:
    return Registry([Device("air-1", "air", "Ba Đình", 21.03, 105.81, gateway="gw-1")])


def verdicts(registry: Registry, topic: str, payload: bytes) -> list[list[tuple[Reason, str]]]:
    """What each path makes of one message: the reference path alone, the column path, the plain path."""
    out = []
    for column, plain in ((False, False), (True, False), (True, True)):
        result = Validator(registry, column_path=column, plain_path=plain).validate(
            [RawMessage(topic, payload)], NOW
        )
        out.append(
            [(r.reason, r.detail) for r in result.rejects] + [(Reason.DUPLICATE, "valid")] * result.valid
        )
    return out


@pytest.mark.parametrize(
    ("topic", "payload", "detail"),
    [
        (TOPIC, b"[" * 5 + b"]" * 5, "JSON nests 5 levels deep; the limit is 4"),
        (TOPIC, orjson.dumps({**GOOD, "meta": {"a": {"b": {"c": {}}}}}), "nests 5 levels"),
        (TOPIC, b"[" + b",".join([b"{}"] * 10_001) + b"]", "the array holds 10001 items; the limit is 10000"),
        (TOPIC, b"[" + b",".join([b"1"] * 20_000) + b"]", "the array holds 20000 items"),
        (TOPIC, orjson.dumps({**GOOD, **{f"f{i}": 1 for i in range(63)}}), "a reading has 65 fields"),
        (
            "citypulse/v1/batches/air/gw-1",
            orjson.dumps([{**GOOD, **{f"f{i}": 1 for i in range(70)}}]),
            "72 fields",
        ),
        (TOPIC, orjson.dumps({**GOOD, "note": "x" * 1025}), "a string is longer than 1024 bytes"),
        (TOPIC, orjson.dumps({**GOOD, "x" * 2000: 1}), "a string is longer than 1024 bytes"),
        ("citypulse/v1/readings/air/" + "a" * 300, orjson.dumps(GOOD), "topic is 326 characters"),
    ],
    ids=[
        "depth",
        "nested-field",
        "items",
        "scalar-items",
        "fields",
        "batch-fields",
        "string",
        "key",
        "topic",
    ],
)
def test_each_limit_dead_letters_the_whole_message_once_on_every_path(
    registry: Registry, topic: str, payload: bytes, detail: str
) -> None:
    for rejects in verdicts(registry, topic, payload):
        assert [r for r, _ in rejects] == [Reason.OVER_LIMIT]
        assert detail in rejects[0][1]


@pytest.mark.parametrize(
    "payload",
    [
        orjson.dumps(GOOD),
        orjson.dumps({**GOOD, "meta": {"fw": "1.2"}}),  # an unknown object field, depth 2
        orjson.dumps([GOOD, {**GOOD, "ts": NOW - 2000}]),
        orjson.dumps({**GOOD, **{f"f{i}": 1 for i in range(62)}}),  # 64 fields
        orjson.dumps({**GOOD, "note": "[[[[[{{{{{" * 100}),  # brackets inside a string do not nest
        orjson.dumps({**GOOD, "note": "x" * 1024}),
        orjson.dumps({**GOOD, "note": 'a "[[[[{{{{:,:," quoted, a \\ and "' + "]" * 20}),  # escapes
    ],
    ids=["reading", "object-field", "backlog", "64-fields", "brackets-in-string", "1024-string", "escapes"],
)
def test_payloads_within_the_limits_pass(registry: Registry, payload: bytes) -> None:
    for rejects in verdicts(registry, TOPIC, payload):
        assert Reason.OVER_LIMIT not in [r for r, _ in rejects]


def test_the_usual_reading_is_passed_by_the_quick_counts_alone() -> None:
    limits = Limits(ValidationPolicy(), TopicScheme())
    measured: list[bytes] = []
    limits.measure = measured.append  # type: ignore[method-assign,assignment]
    usual = [
        RawMessage(TOPIC, orjson.dumps({**GOOD, "ts": NOW - i, "pm10": 20.5, "no2": 31})) for i in range(100)
    ]
    assert limits.screen(usual, range(len(usual))) == {}
    assert measured == []


def test_an_over_limit_message_among_good_ones_costs_only_itself(registry: Registry) -> None:
    messages = [
        RawMessage(TOPIC, orjson.dumps({**GOOD, "ts": NOW - 3000})),
        RawMessage(TOPIC, b"[" * 50 + b"]" * 50),
        RawMessage("citypulse/v1/batches/air/gw-1", orjson.dumps([{**GOOD, "device": "air-1"}])),
    ]
    result = Validator(registry).validate(messages, NOW)
    assert result.valid == 2
    assert [r.reason for r in result.rejects] == [Reason.OVER_LIMIT]
    assert result.received == {"air": 3}
