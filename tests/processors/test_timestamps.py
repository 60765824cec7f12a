from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from processors.timestamps import format_rfc3339, parse_timestamp

MS_2001 = 978_307_200_000
MS_2100 = 4_102_444_800_000


@given(st.integers(min_value=MS_2001, max_value=MS_2100))
def test_rfc3339_round_trips_to_the_millisecond(ms: int) -> None:
    assert parse_timestamp(format_rfc3339(ms)) == ms


@given(st.integers(min_value=MS_2001, max_value=MS_2100))
def test_epoch_milliseconds_and_seconds_agree(ms: int) -> None:
    assert parse_timestamp(ms) == ms
    whole = ms - ms % 1000
    assert parse_timestamp(whole // 1000) == whole
    assert parse_timestamp(float(whole // 1000)) == whole


def test_offsets_are_honoured() -> None:
    assert parse_timestamp("2026-11-23T11:30:00+07:00") == parse_timestamp("2026-11-23T04:30:00Z")
    assert parse_timestamp("2026-11-23T04:30:00.123456Z") == parse_timestamp("2026-11-23T04:30:00Z") + 123


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("2026-11-23T04:30:00", "no UTC offset"),
        ("yesterday", "not RFC 3339"),
        (True, "boolean"),
        (-5, "non-negative"),
        (float("nan"), "finite"),
        (None, "not NoneType"),
        ("9" * 50, "longer"),
    ],
)
def test_bad_timestamps_say_what_to_send(value: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_timestamp(value)
