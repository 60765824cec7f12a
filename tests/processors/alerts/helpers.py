"""Driving the alert engine with plain values: rules from TOML text, judgements by hand."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace

from processors.alerts import (
    Ack,
    AlertEngine,
    AlertEvent,
    AreaIndex,
    CycleInput,
    Judged,
    Judgement,
    Silence,
    parse_rules,
)
from processors.alerts.rules import DEFAULT_RULES_FILE

MIN = 60_000
T0 = 1_800_000_000_000


def rules_only(text: str) -> str:
    """A rule file that replaces the defaults."""
    return "replace_defaults = true\n" + text


def engine_of(text: str, areas: AreaIndex | None = None, defaults: bool = False) -> AlertEngine:
    base = DEFAULT_RULES_FILE.read_text(encoding="utf-8")
    return AlertEngine(parse_rules(base, text if defaults else rules_only(text)), areas)


def seen(
    device: str, present: bool, *, district: str = "Ba Đình", kind: str = "water", value: float | None = 1.0
) -> Judgement:
    return Judgement(
        device, kind, district, present, 0, value, "turbidity" if value is not None else "", "NTU"
    )


@dataclass
class Driver:
    """Runs cycles at chosen minutes and keeps every event; commits each cycle, as the pipeline does."""

    engine: AlertEngine
    events: list[AlertEvent] = field(default_factory=list)
    silences: list[Silence] = field(default_factory=list)

    def cycle(
        self,
        minute: float,
        by_rule: dict[str, list[Judgement]] | None = None,
        silence: Iterable[Judgement] = (),
        acks: Iterable[Ack] = (),
    ) -> list[AlertEvent]:
        now = T0 + int(minute * MIN)
        at_now = {
            rule: [replace(j, ts_ms=j.ts_ms or now) for j in js] for rule, js in (by_rule or {}).items()
        }
        cycle = CycleInput(
            now,
            Judged(at_now, [replace(j, ts_ms=j.ts_ms or now) for j in silence]),
            tuple(acks),
            tuple(s for s in self.silences if s.in_force(now)),
        )
        outcome = self.engine.evaluate(cycle)
        self.engine.commit(outcome)
        self.events += outcome.events
        return outcome.events

    def kinds(self, events: list[AlertEvent] | None = None) -> list[str]:
        return [str(e.type) for e in (self.events if events is None else events)]
