"""The replay's choices made from its options: the time zone and the constant every timestamp moves by."""

from __future__ import annotations

import pytest

from ingest.replay import chosen_shift, shift_to_now, zone

FIRST, LAST, NOW = 1_000_000, 1_000_000 + 3_600_000, 2_000_000_000_000


def test_the_shift_defaults_to_now_when_publishing_and_to_none_when_feeding() -> None:
    assert chosen_shift(None, FIRST, LAST, NOW, publishing=False, speed=0.0) == 0
    assert chosen_shift(None, FIRST, LAST, NOW, publishing=True, speed=2.0) == shift_to_now(
        FIRST, LAST, NOW, 2.0
    )
    # A feed follows the records' clock, so 'now' there stamps the last reading now whatever the speed.
    assert chosen_shift(" now ", FIRST, LAST, NOW, publishing=False, speed=2.0) == shift_to_now(
        FIRST, LAST, NOW, 0.0
    )
    assert chosen_shift("none", FIRST, LAST, NOW, publishing=True, speed=1.0) == 0
    moved = chosen_shift("2026-01-01T00:00:00Z", FIRST, LAST, NOW, publishing=True, speed=1.0)
    assert FIRST + moved == 1_767_225_600_000
    with pytest.raises(ValueError, match="not RFC 3339"):
        chosen_shift("tomorrow", FIRST, LAST, NOW, publishing=True, speed=1.0)


def test_a_time_zone_is_utc_an_offset_or_a_name_and_anything_else_says_what_to_write() -> None:
    assert str(zone(" Z ")) == "UTC"
    assert str(zone("-03:30")) == "UTC-03:30"
    with pytest.raises(ValueError, match=r"write an offset as \+08:00"):
        zone("+8:xx")
    with pytest.raises(ValueError, match="not a time zone; use UTC"):
        zone("Mars/Olympus")
