"""From real detector scores and readings to each rule's judgements."""

from __future__ import annotations

import numpy as np

from processors.alerts import judge, parse_rules
from processors.alerts.rules import DEFAULT_RULES_FILE
from processors.anomaly import DetectionEngine
from processors.batch import ReadingBatch
from processors.kinds import get_kind
from processors.registry import Device, Registry

RULES = """replace_defaults = true
[[rules]]
name = "water_quality"
detector = "drinking_water"
fields = ["turbidity"]
message = "m"
message_vi = "m"

[[rules]]
name = "low_pressure"
field = "pressure"
kinds = ["water"]
below = 1.5
hysteresis = 0.5
message = "m"
message_vi = "m"
"""


def water_batch(registry: Registry, ts: int, turbidity: list[float], pressure: list[float]) -> ReadingBatch:
    kind = get_kind("water")
    table = registry.tables["water"]
    values = np.full((len(table), len(kind.measures)), np.nan)
    values[:, kind.index_of("turbidity")] = turbidity
    values[:, kind.index_of("pressure")] = pressure
    return ReadingBatch(
        kind, table, np.arange(len(table)), np.full(len(table), ts, dtype=np.int64), values, None
    )


def test_judgements_are_made_for_present_conditions_and_for_tracked_devices_only() -> None:
    registry = Registry(Device(f"w{i}", "water", "Ba Đình", 21.0, 105.8) for i in range(4))
    rules = parse_rules(DEFAULT_RULES_FILE.read_text(encoding="utf-8"), RULES).rules
    engine = DetectionEngine(registry, enabled=["drinking_water"])
    batch = water_batch(registry, 1_800_000_000_000, [0.5, 5.0, 1.9, 0.5], [3.0, 1.0, 1.8, 3.0])
    detection = engine.score({"water": batch})
    judged = judge(rules, detection, {"water": batch}, lambda rule, kind: frozenset({"w0", "w2"}))
    quality = [(j.device, j.present, j.value, j.field, j.unit) for j in judged.by_rule["water_quality"]]
    # w1 is murky; w0 is clear and tracked; w2 sits between the thresholds (no judgement); w3 untracked.
    assert quality == [("w0", False, 0.5, "turbidity", "NTU"), ("w1", True, 5.0, "turbidity", "NTU")]
    pressure = [(j.device, j.present, j.value) for j in judged.by_rule["low_pressure"]]
    # Below 1.5 is present; tracked w0 at 3.0 is clear; tracked w2 at 1.8 is within the hysteresis.
    assert pressure == [("w0", False, 3.0), ("w1", True, 1.0)]
    assert judged.silence == []
    assert all(j.district == "Ba Đình" and j.lat == 21.0 for j in judged.by_rule["low_pressure"])


def test_the_silence_check_passes_on_only_changes() -> None:
    registry = Registry(Device(f"w{i}", "water", "Ba Đình", 21.0, 105.8, None, 300.0) for i in range(2))
    rules = parse_rules(DEFAULT_RULES_FILE.read_text(encoding="utf-8"), "replace_defaults = true\n").rules
    engine = DetectionEngine(registry, enabled=["silence"])
    t0 = 1_800_000_000_000
    engine.commit(engine.score({"water": water_batch(registry, t0, [0.5, 0.5], [3.0, 3.0])}, t0))
    quiet = engine.score({}, t0 + 20 * 60_000)
    unknown = judge(rules, quiet, {}, lambda rule, kind: frozenset())
    assert [(j.device, j.present) for j in unknown.silence] == [("w0", True), ("w1", True)]
    known = judge(rules, quiet, {}, lambda rule, kind: frozenset(), silent=frozenset({"w0"}))
    assert [(j.device, j.present) for j in known.silence] == [("w1", True)], "w0 is known to be silent"
