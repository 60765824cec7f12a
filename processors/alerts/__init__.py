"""Alerts: problems someone should act on, raised from the detectors' alarms by rules.

Pure logic only (no I/O, no clock): the alert and event types (``model``), the
rule files (``rules``, with ``default_rules.toml``), a cycle's judgements
(``conditions``), the engine that turns them into alert events (``engine``, over
its staged changes in ``staging``), what the clock alone brings (``due``), how
alerts and events are built (``events``), acknowledgements (``acks``), area
rules, flapping, silences and notification grouping. ``ingest/alerts`` stores
and delivers what this package decides.
"""

from processors.alerts.areas import AreaIndex
from processors.alerts.conditions import Judged, Judgement, judge
from processors.alerts.engine import AlertEngine
from processors.alerts.model import (
    MEASUREMENT,
    SCHEMA_VERSION,
    Alert,
    AlertCategory,
    AlertEvent,
    AlertState,
    EventType,
    Severity,
)
from processors.alerts.rules import DEFAULT_RULES_FILE, Rule, RulesError, RuleSet, parse_rules
from processors.alerts.silences import Silence
from processors.alerts.state import Ack, AckResult, CycleInput, Outcome, Target

__all__ = [
    "DEFAULT_RULES_FILE",
    "MEASUREMENT",
    "SCHEMA_VERSION",
    "Ack",
    "AckResult",
    "Alert",
    "AlertCategory",
    "AlertEngine",
    "AlertEvent",
    "AlertState",
    "AreaIndex",
    "CycleInput",
    "EventType",
    "Judged",
    "Judgement",
    "Outcome",
    "Rule",
    "RuleSet",
    "RulesError",
    "Severity",
    "Silence",
    "Target",
    "judge",
    "parse_rules",
]
