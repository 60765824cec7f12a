"""docs/alerts.md tells the truth: its examples run, its tables match the code."""

from __future__ import annotations

import json
import re

import jsonschema

from ingest.alerts.settings import AlertSettings
from processors.alerts import parse_rules
from processors.alerts.rules import DEFAULT_RULES_FILE
from tests.alerts.docs import PAGE, block, verify_function, webhook_schema

DEFAULTS = DEFAULT_RULES_FILE.read_text(encoding="utf-8")


def test_every_default_rule_and_every_setting_is_documented() -> None:
    text = PAGE.read_text(encoding="utf-8")
    table = set(re.findall(r"^\| `([a-z_]+)` \|", text, flags=re.M))
    assert {r.name for r in parse_rules(DEFAULTS).rules} <= table
    documented = set(re.findall(r"`CITYPULSE_ALERTS_([A-Z0-9_]+)`", text))
    assert {name.upper() for name in AlertSettings.model_fields} == documented


def test_the_example_rule_file_patches_the_defaults() -> None:
    rules = parse_rules(DEFAULTS, block("The rule file", "toml"), "alert-rules.toml")
    assert rules.get("sensor_stuck") is None
    low = rules.get("low_pressure")
    assert low is not None
    assert low.clear_for_s == 15 * 60


def test_the_example_webhook_body_follows_the_schema_and_its_signature_check_works() -> None:
    body = json.loads(block("Webhooks", "json"))
    jsonschema.validate(body, webhook_schema())
    verify = verify_function()
    raw = json.dumps(body).encode()
    import hashlib
    import hmac

    header = "sha256=" + hmac.new(b"k", raw, hashlib.sha256).hexdigest()
    assert verify(raw, header, "k")
    assert not verify(raw, header, "other")
