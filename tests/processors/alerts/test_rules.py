"""Rule files: the defaults load, an operator's file patches them, and mistakes name the rule and key."""

from __future__ import annotations

import pytest

from processors.alerts import AlertCategory, RulesError, Severity, parse_rules
from processors.alerts.rules import DEFAULT_RULES_FILE, render
from processors.detectors import DETECTORS

DEFAULTS = DEFAULT_RULES_FILE.read_text(encoding="utf-8")


def test_the_default_rules_load_and_cover_every_kind() -> None:
    rules = parse_rules(DEFAULTS)
    assert len(rules) >= 10
    kinds = {k for r in rules.rules for k in r.kinds}
    assert kinds == {"air", "water", "traffic", "lighting", "waste"}
    assert all(r.detector in DETECTORS for r in rules.rules if r.detector)
    district = rules.get("air_quality_district")
    assert district is not None
    assert district.area is not None
    assert district.area.min_share == 0.5
    assert district.escalate_to == Severity.CRITICAL
    assert rules.get("water_main_burst").area is not None  # type: ignore[union-attr]
    assert rules.get("device_silent").category == AlertCategory.DATA_FAULT  # type: ignore[union-attr]
    assert rules.get("bin_full_soon").category == AlertCategory.FORECAST  # type: ignore[union-attr]


def test_an_operators_file_patches_switches_off_and_adds_rules() -> None:
    override = """
[defaults]
clear_for = "5m"

[[rules]]
name = "bin_fire"
severity = "warning"

[[rules]]
name = "sensor_stuck"
enabled = false

[[rules]]
name = "low_pressure"
field = "pressure"
kinds = ["water"]
below = 1.5
hysteresis = 0.2
message = "pressure {value} {unit} below {limit} at {device}"
message_vi = "áp suất {value} {unit} dưới {limit} tại {device}"
"""
    rules = parse_rules(DEFAULTS, override, "ops.toml")
    fire = rules.get("bin_fire")
    assert fire is not None
    assert fire.severity == Severity.WARNING
    assert fire.clear_for_s == 1800
    assert rules.get("sensor_stuck") is None
    low = rules.get("low_pressure")
    assert low is not None
    assert low.threshold == 1.5
    assert low.clear_for_s == 300
    assert parse_rules(DEFAULTS, "replace_defaults = true\n").rules == ()


@pytest.mark.parametrize(
    ("rule", "complaint"),
    [
        ('detector = "nope"', "unknown detector 'nope'"),
        ('detector = "aqi_vn"\nfields = ["lux"]', "no column(s) lux"),
        ('field = "pressure"\nkinds = ["water"]', "exactly one of above or below"),
        ('field = "lux"\nkinds = ["water"]\nabove = 1', "water has no measure 'lux'"),
        ('detector = "silence"\nfield = "ph"', "not both"),
        ('detector = "silence"\nseverity = "critical"\nescalate_after = "1h"', "must be more severe"),
        ('detector = "silence"\nfor = "soon"', "not a duration"),
        ('detector = "silence"\nsevere = true', "severe"),
    ],
)
def test_mistakes_name_the_rule_and_what_is_wrong(rule: str, complaint: str) -> None:
    text = f'replace_defaults = true\n[[rules]]\nname = "mine"\n{rule}\nmessage = "m"\nmessage_vi = "m"\n'
    with pytest.raises(RulesError, match=r"ops\.toml: rule 'mine'") as caught:
        parse_rules(DEFAULTS, text, "ops.toml")
    assert complaint in str(caught.value)


def test_message_templates_are_checked_when_the_file_loads() -> None:
    text = (
        'replace_defaults = true\n[[rules]]\nname = "mine"\ndetector = "silence"\n'
        'message = "{devise}"\nmessage_vi = "x"\n'
    )
    with pytest.raises(RulesError, match=r"unknown placeholder\(s\) \{devise\}"):
        parse_rules(DEFAULTS, text)
    assert render("{value:.1f} > {limit}", {"value": 3.14159, "limit": None}) == "3.1 > ?"


def test_a_broken_file_is_an_error_that_names_it() -> None:
    with pytest.raises(RulesError, match=r"ops\.toml: not valid TOML"):
        parse_rules(DEFAULTS, "[[rules]\n", "ops.toml")
    with pytest.raises(RulesError, match="unknown key"):
        parse_rules(DEFAULTS, "rulez = 1\n", "ops.toml")
