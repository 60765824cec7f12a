"""Contract tests run over every declared sensor kind: declaring a kind is enough to get them."""

from __future__ import annotations

import math

import pytest
from pydantic import ValidationError

from processors.kinds import KINDS, SensorKind, get_kind
from processors.reasons import Reason
from processors.registry import Device, Registry
from processors.validate import RawMessage, Validator

NOW_MS = 1_795_408_200_000
ALL_KINDS = list(KINDS.values())


def typical(kind: SensorKind) -> dict[str, object]:
    return {"ts": NOW_MS, **{m.name: (m.normal[0] + m.normal[1]) / 2 for m in kind.measures}}


def verdict(kind: SensorKind, payload: dict[str, object] | bytes) -> Reason | None:
    registry = Registry([Device(f"{kind.name}-1", kind.name, "Ba Đình", 21.03, 105.81)])
    body = payload if isinstance(payload, bytes) else __import__("json").dumps(payload).encode()
    result = Validator(registry).validate(
        [RawMessage(f"citypulse/v1/readings/{kind.name}/{kind.name}-1", body)], NOW_MS
    )
    if result.rejects:
        return result.rejects[0].reason
    assert result.valid == 1
    return None


def test_the_five_city_domains_are_declared() -> None:
    assert {"air", "water", "traffic", "lighting", "waste"} <= set(KINDS)


@pytest.mark.parametrize("kind", ALL_KINDS, ids=lambda k: k.name)
class TestEveryKind:
    def test_declaration_is_complete(self, kind: SensorKind) -> None:
        assert kind.interval_s > 0
        assert kind.title
        assert kind.fiware_type
        for m in kind.measures:
            assert m.unit, f"{kind.name}.{m.name} has no unit"
            assert m.lo < m.hi
            assert m.lo <= m.normal[0] <= m.normal[1] <= m.hi
        schema = kind.model.model_json_schema()
        assert all("unit" in schema["properties"][m.name] for m in kind.measures)

    def test_a_typical_reading_is_valid(self, kind: SensorKind) -> None:
        assert verdict(kind, typical(kind)) is None

    def test_integers_are_stored_as_floats(self, kind: SensorKind) -> None:
        first = kind.measures[0]
        reading = kind.model.model_validate({"ts": NOW_MS, first.name: int(first.normal[1])})
        value = reading.values()[0]
        assert isinstance(value, float)
        assert value == float(int(first.normal[1]))
        assert all(math.isnan(v) for v in reading.values()[1:])

    @pytest.mark.parametrize("side", ["below", "above"])
    def test_out_of_range_is_rejected(self, kind: SensorKind, side: str) -> None:
        for m in kind.measures:
            payload = typical(kind)
            payload[m.name] = m.lo - 1 if side == "below" else m.hi + 1
            assert verdict(kind, payload) is Reason.OUT_OF_RANGE, m.name

    def test_wrong_type_is_rejected(self, kind: SensorKind) -> None:
        for m in kind.measures:
            for bad in (str(m.normal[0]) + "x", [1.0], {"v": 1.0}):
                payload = typical(kind)
                payload[m.name] = bad
                assert verdict(kind, payload) is Reason.WRONG_TYPE, (m.name, bad)

    def test_booleans_are_not_numbers(self, kind: SensorKind) -> None:
        numeric = [m for m in kind.measures if m.unit != "on/off"]
        payload = typical(kind)
        payload[numeric[0].name] = True
        assert verdict(kind, payload) is Reason.WRONG_TYPE

    def test_missing_timestamp_is_rejected(self, kind: SensorKind) -> None:
        payload = typical(kind)
        del payload["ts"]
        assert verdict(kind, payload) is Reason.MISSING_TIMESTAMP

    def test_not_finite_is_rejected(self, kind: SensorKind) -> None:
        name = kind.measures[0].name
        for literal in (b"NaN", b"Infinity", b"-Infinity"):
            body = b'{"ts": %d, "%s": %s}' % (NOW_MS, name.encode(), literal)
            assert verdict(kind, body) is Reason.NOT_FINITE

    def test_a_reading_without_measurements_is_rejected(self, kind: SensorKind) -> None:
        assert verdict(kind, {"ts": NOW_MS}) is Reason.NO_MEASUREMENTS

    def test_model_rejects_garbage_directly(self, kind: SensorKind) -> None:
        with pytest.raises(ValidationError):
            kind.model.model_validate({"ts": "yesterday", kind.measures[0].name: 1})


def test_lighting_state_accepts_field_spellings() -> None:
    model = get_kind("lighting").model
    for spelling, expected in (
        ("on", 1.0),
        ("OFF", 0.0),
        (True, 1.0),
        (False, 0.0),
        (1, 1.0),
        (0, 0.0),
    ):
        assert model.model_validate({"ts": NOW_MS, "state": spelling}).values()[0] == expected
    with pytest.raises(ValidationError):
        model.model_validate({"ts": NOW_MS, "state": "dim"})


def test_unknown_kind_name_explains_choices() -> None:
    with pytest.raises(KeyError, match="known kinds: air"):
        get_kind("noise")


def test_declared_limit_lines_match_the_detectors_tables() -> None:
    """The dashboards draw the same limits the detectors judge by: they cannot drift apart."""
    from processors.aqi import WHO_2021_SHORT_TERM
    from processors.detectors.drinking_water import QCVN_01_1_2018
    from processors.kinds import get_kind

    air = {m.name: m for m in get_kind("air").measures}
    for pollutant, level in WHO_2021_SHORT_TERM.items():
        assert any(lim.value == level and lim.source.startswith("WHO 2021") for lim in air[pollutant].limits)
    water = {m.name: m for m in get_kind("water").measures}
    for name, (low, high) in QCVN_01_1_2018.items():
        drawn = {(lim.bound, lim.value) for lim in water[name].limits}
        expected = {("min", low), ("max", high)} - {("min", None), ("max", None)}
        assert drawn == expected, name


def test_a_limit_outside_the_valid_range_is_refused() -> None:
    from processors.kinds import Limit, measure

    with pytest.raises(ValueError, match="outside the valid range"):
        measure("%", 0, 100, "share", normal=(0, 50), limits=(Limit(150, "nobody"),))
