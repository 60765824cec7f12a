"""The plain path must agree with the column path: it takes only what that accepts, with the same data."""

from __future__ import annotations

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from processors.kinds import KINDS
from processors.registry import Registry
from processors.validate import (
    RawMessage,
    UnknownFieldPolicy,
    ValidationPolicy,
    ValidationResult,
    Validator,
)
from processors.validate.columns import plan_for
from processors.validate.plain import PlainPlan
from tests.processors.test_validate_paths import NOW, SEC, messages, registry, same, topic, warm

__all__ = ["registry"]  # the fixture, shared with the column path's tests

PLAIN = b'{"device": "air-0", "ts": %d, "pm25": 12.5, "pm10": 30}' % SEC
"""A reading the plain path takes."""

FALLS_BACK = [
    b'{"device": "air-0", "ts": %d, "pm25": 12.5, "firmware": "1.2"}' % SEC,  # unknown field
    b'{"device": "air-0", "ts": %d, "pm25": null, "pm10": 3}' % SEC,  # a measure sent as null
    b'{"device": null, "ts": %d, "pm25": 1}' % SEC,
    b'{"device": "air-1", "ts": %d, "pm25": 1}' % SEC,  # names another device
    b'{"device": "air-0", "pm25": 1}',  # no timestamp
    b'{"device": "air-0", "ts": true, "pm25": 1}',
    b'{"device": "air-0", "ts": %d, "pm25": true}' % SEC,
    b'{"device": "air-0", "ts": %d, "pm25": "12.5"}' % SEC,
    b'{"device": "air-0", "ts": %d, "pm25": 1001}' % SEC,  # out of range
    b'{"device": "air-0", "ts": %d, "pm25": 1e400}' % SEC,
    b'{"device": "air-0", "ts": %d, "pm25": NaN}' % SEC,
    b'{"device": "air-0", "ts": %d, "pm25": 123456789012345678901234567890}' % SEC,
    b'{"device": "air-0", "ts": 123456789012345678901234567890, "pm25": 1}',
    b'{"device": "air-0", "ts": 18446744073709551615, "pm25": 1}',  # an int orjson reads, msgspec refuses
    b'{"device": "air-0", "ts": %d, "pm25": 2000, "pm25": 1}' % SEC,  # a repeated key, first out of range
    b'{"device": "air-0", "ts": %d, "pm25": 1, "pm25": "x"}' % SEC,
    b'{"device": "air-0", "ts": %d, "pm25": 1}}' % SEC,
    b'{"device": "air-0", "ts": "\xff", "pm25": 1}',
    b'{"device": "air-0", "ts": "\\ud800", "pm25": 1}',
    b'{"device": "air-0", "ts": "2026-11-23T04:30:00", "pm25": 1}',  # no offset
    b'{"device": "air-0", "ts": %d, "pm25": [1]}' % SEC,
    b'{"device": "air-0", "ts": %d}' % SEC,  # no measurement
    b'{"device": "air-0", "ts": %d, "pm25": 1' % SEC,
    b'[{"device": "air-0", "ts": %d, "pm25": 1}]' % SEC,
    b'\xef\xbb\xbf{"device": "air-0", "ts": %d, "pm25": 1}' % SEC,
]
"""Payloads of a registered air device that the plain path must leave to the general way."""

LAMPS = [
    b'{"ts": %d, "state": 1, "lux": 20}' % SEC,  # taken: the model's validator passes 1
    b'{"ts": %d, "state": "on"}' % SEC,  # falls back: a string
    b'{"ts": %d, "state": true}' % SEC,
    b'{"ts": %d, "state": 2}' % SEC,  # out of range, found by the model's validator
]


def validators(registry: Registry, policy: ValidationPolicy | None = None) -> tuple[Validator, Validator]:
    plain, column = Validator(registry, policy), Validator(registry, policy, plain_path=False)
    warm(plain, registry)
    warm(column, registry)
    return plain, column


def identical(a: ValidationResult, b: ValidationResult) -> None:
    """As :func:`same`, and the counts in the same order (they become stats lines in this order)."""
    same(a, b)
    assert list(a.received.items()) == list(b.received.items())
    assert list(a.ignored_fields.items()) == list(b.ignored_fields.items())


def test_the_plain_path_takes_a_plain_reading_and_refuses_the_rest() -> None:
    plan = PlainPlan(plan_for(KINDS["air"]))  # type: ignore[arg-type]
    structs, refused = plan.decode([PLAIN, *FALLS_BACK])
    assert 0 not in refused
    assert len(structs) + len(refused) == 1 + len(FALLS_BACK)
    # Each is refused by msgspec, or decoded but then not taken (other device, no ts, no measure...).
    decoded = [p for i, p in enumerate(FALLS_BACK, start=1) if i not in refused]
    assert decoded == [
        b'{"device": "air-1", "ts": %d, "pm25": 1}' % SEC,
        b'{"device": "air-0", "ts": "2026-11-23T04:30:00", "pm25": 1}',
        b'{"device": "air-0", "ts": %d}' % SEC,
    ]


@pytest.mark.parametrize("reject_unknown", [False, True])
def test_what_falls_back_gets_the_column_paths_answer(registry: Registry, reject_unknown: bool) -> None:
    policy = ValidationPolicy(
        unknown_fields=UnknownFieldPolicy.REJECT if reject_unknown else UnknownFieldPolicy.IGNORE
    )
    plain, column = validators(registry, policy)
    cycle = [RawMessage(topic("air-0"), p, NOW - i) for i, p in enumerate([PLAIN, *FALLS_BACK, PLAIN])]
    cycle += [RawMessage(topic("lamp-0"), p, NOW) for p in LAMPS]
    result = plain.validate(cycle, NOW)
    identical(result, column.validate(cycle, NOW))
    assert result.batches["air"].ts_ms.tolist() == [NOW]  # the second PLAIN is a duplicate of the first
    assert result.batches["lighting"].values[:, 0].tolist() == [1.0]


def test_a_duplicate_of_a_plain_reading_is_dead_lettered_with_its_own_payload(registry: Registry) -> None:
    plain, column = validators(registry)
    first = RawMessage(topic("air-1"), b'{"ts": %d, "pm25": 1}' % SEC)
    again = RawMessage(topic("air-1"), b'{"ts": %d, "pm25": 2}' % (SEC * 1000))
    for validator in (plain, column):
        validator.remember(validator.validate([first], NOW))
    result = plain.validate([again, first], NOW)
    identical(result, column.validate([again, first], NOW))
    assert [r.payload for r in result.rejects] == [again.payload, first.payload]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(batch=messages(), reject_unknown=st.booleans())
def test_the_plain_path_agrees_with_the_column_path(
    registry: Registry, batch: list[RawMessage], reject_unknown: bool
) -> None:
    policy = ValidationPolicy(
        unknown_fields=UnknownFieldPolicy.REJECT if reject_unknown else UnknownFieldPolicy.IGNORE
    )
    plain, column = validators(registry, policy)
    identical(plain.validate(batch, NOW), column.validate(batch, NOW))


NUMBER_TEXT = st.one_of(
    st.floats(min_value=0, max_value=14).map(repr),
    st.floats(allow_nan=False, allow_infinity=False).map(repr),
    st.integers(min_value=-(2**70), max_value=2**70).map(str),
    st.from_regex(r"(0|[1-9])(\.[0-9]{1,30})?([eE]-?[0-9])?", fullmatch=True),
    st.from_regex(r"-?(0|[1-9][0-9]{0,30})(\.[0-9]{1,30})?([eE][-+]?[0-9]{1,3})?", fullmatch=True),
)


@settings(max_examples=1000, deadline=None)
@given(texts=st.lists(NUMBER_TEXT, min_size=2, max_size=2))
def test_msgspec_reads_every_number_it_takes_as_orjson_does(texts: list[str]) -> None:
    """The plain path's values and timestamps are msgspec's, the column path's are orjson's."""
    plan = PlainPlan(plan_for(KINDS["water"]))  # type: ignore[arg-type]
    payload = f'{{"ts": {texts[0]}, "ph": {texts[1]}}}'
    structs, _ = plan.decode([payload.encode()])
    if not structs:
        return  # refused: the general way reads it
    struct = structs[0]
    parsed = orjson.loads(payload)
    assert type(struct.ts) is type(parsed["ts"])
    assert struct.ts == parsed["ts"]
    assert struct.ph == parsed["ph"]
    assert repr(struct.ph) == repr(float(parsed["ph"]))


GATEWAY = "citypulse/v1/batches/air/gw-1"
GOOD_ITEMS = [
    b'{"device": "air-0", "ts": %d, "pm25": 12.5, "pm10": 30}' % SEC,
    b'{"device": "air-1", "ts": "2026-11-23T04:29:00Z", "pm25": 3}',
    b'{"device": "air-2", "ts": %d, "no2": 0.5}' % (NOW - 1000),
]
BAD_ITEMS = [
    *(
        item.replace(b'"device": "air-0"', b'"device": "air-2"')
        for item in FALLS_BACK
        if item[:1] == b"{" and b'"air-1"' not in item  # naming another device is a gateway's business
    ),
    b'{"ts": %d, "pm25": 1}' % SEC,  # a gateway's item must name its device
    b'{"device": "ghost", "ts": %d, "pm25": 1}' % SEC,
    b'{"device": "lamp-0", "ts": %d, "pm25": 1}' % SEC,  # a device of another kind
    b'{"device": "air-2", "ts": %d, "pm25": 1}' % (SEC - 8 * 86400),  # too old
    b'{"device": "air-2", "ts": %d, "pm25": 1}' % (SEC + 3600),  # in the future
    b"3",
    b"null",
]
"""Items of a gateway batch that leave the whole batch to the general way."""


def gateway(*items: bytes, topic: str = GATEWAY, received: int | None = NOW) -> RawMessage:
    return RawMessage(topic, b"[" + b", ".join(items) + b"]", received)


def taken(validator: Validator, cycle: list[RawMessage]) -> dict[int, str]:
    """The messages of ``cycle`` the gateway plain path takes whole."""
    from processors.validate.cycle import Cycle as _Cycle

    return validator._plain_gateways(cycle, range(len(cycle)), _Cycle(NOW))[0]


@pytest.mark.parametrize("bad", BAD_ITEMS)
def test_a_gateway_batch_with_one_item_it_cannot_prove_falls_back_whole(
    registry: Registry, bad: bytes
) -> None:
    plain, column = validators(registry)
    cycle = [gateway(*GOOD_ITEMS), gateway(GOOD_ITEMS[0], bad, GOOD_ITEMS[2], received=NOW - 7)]
    assert taken(plain, cycle) == {0: "air"}
    identical(plain.validate(cycle, NOW), column.validate(cycle, NOW))


def test_gateway_batches_the_plain_path_does_not_read() -> None:
    registry = Registry([])
    plain, column = validators(registry)
    cycle = [
        gateway(),  # empty
        gateway(*GOOD_ITEMS, topic="citypulse/v1/batches/nope/gw"),
        gateway(*GOOD_ITEMS, topic="citypulse/v1/readings/air/air-0"),  # an array on a device's topic
        RawMessage(GATEWAY, b" \n" + gateway(*GOOD_ITEMS).payload + b" "),
        RawMessage(GATEWAY, b"\x0b" + gateway(*GOOD_ITEMS).payload),
        RawMessage(
            GATEWAY, b"[" + b",".join([GOOD_ITEMS[0]] * 200) + b"]"
        ),  # nests too deep for orjson's turn
        RawMessage(GATEWAY, GOOD_ITEMS[0]),
    ]
    assert taken(plain, cycle) == {}  # nobody is registered
    identical(plain.validate(cycle, NOW), column.validate(cycle, NOW))


def test_gateway_batches_the_plain_path_takes_or_leaves_agree(registry: Registry) -> None:
    plain, column = validators(registry)
    cycle = [
        RawMessage(GATEWAY, b" \n" + gateway(*GOOD_ITEMS).payload + b" ", NOW - 3),
        RawMessage(GATEWAY, b"[" + b",".join([GOOD_ITEMS[0]] * 200) + b"]"),
        gateway(*GOOD_ITEMS, topic="citypulse/v1/readings/air/air-0"),
        gateway(),
    ]
    assert taken(plain, cycle) == {0: "air"}
    identical(plain.validate(cycle, NOW), column.validate(cycle, NOW))


def test_duplicates_of_gateway_readings_are_dead_lettered_with_their_own_items(registry: Registry) -> None:
    plain, column = validators(registry)
    again = b'{"device": "air-0", "ts": %d, "pm25": 7.25}' % SEC  # GOOD_ITEMS[0]'s device and time
    cycle = [
        gateway(*GOOD_ITEMS, again),  # within the batch
        gateway(again, topic="citypulse/v1/batches/air/gw-1"),  # across batches
        RawMessage(topic("air-1"), b'{"ts": "2026-11-23T04:29:00Z", "pm25": 1}'),  # a single's duplicate
    ]
    assert taken(plain, cycle) == {0: "air", 1: "air"}
    result = plain.validate(cycle, NOW)
    identical(result, column.validate(cycle, NOW))
    assert [r.payload for r in result.rejects] == [
        b'{"device":"air-0","ts":%d,"pm25":7.25}' % SEC,
        b'{"device":"air-0","ts":%d,"pm25":7.25}' % SEC,
        b'{"ts": "2026-11-23T04:29:00Z", "pm25": 1}',
    ]
    for validator in (plain, column):  # and against what an earlier cycle stored
        validator.remember(result)
    identical(plain.validate(cycle, NOW), column.validate(cycle, NOW))


ITEMS = st.one_of(st.sampled_from(GOOD_ITEMS), st.sampled_from(GOOD_ITEMS), st.sampled_from(BAD_ITEMS))


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    batches=st.lists(st.lists(ITEMS, min_size=0, max_size=6), min_size=1, max_size=6),
    singles=messages(),
    reject_unknown=st.booleans(),
)
def test_the_gateway_plain_path_agrees_with_the_column_path(
    registry: Registry, batches: list[list[bytes]], singles: list[RawMessage], reject_unknown: bool
) -> None:
    policy = ValidationPolicy(
        unknown_fields=UnknownFieldPolicy.REJECT if reject_unknown else UnknownFieldPolicy.IGNORE
    )
    plain, column = validators(registry, policy)
    cycle = [gateway(*items, topic=f"{GATEWAY}{i}", received=NOW - i) for i, items in enumerate(batches)]
    cycle = (
        [m for pair in zip(cycle, singles, strict=False) for m in pair]
        + cycle[len(singles) :]
        + singles[len(cycle) :]
    )
    identical(plain.validate(cycle, NOW), column.validate(cycle, NOW))
