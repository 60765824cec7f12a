"""Alert rules: which detector alarms or reading thresholds raise which alerts, and when.

Rules are written in TOML (``default_rules.toml`` beside this module holds the
defaults; ``docs/alerts.md`` documents every key). The caller reads the files;
this module only parses text, so it stays pure and every rule file is checked
the same way, with errors that name the rule and the key.

A rule says:

- **what**: a detector (``detector = "aqi_vn"``, optionally ``fields`` and a
  ``min_score``), a threshold on a reading (``field = "pressure"``,
  ``below = 1.5``), or an ingest event (``event = "rate_limited"``: a device
  flooding), for some ``kinds``;
- **how bad**: ``severity`` and ``category`` (who should act);
- **when**: ``for`` (how long the condition must hold before it fires),
  ``clear_for`` (how long it must be clear before it resolves),
  ``escalate_after`` / ``escalate_to``, and the ``flapping`` limits;
- **where**: per device, or per district with ``area`` (one alert when enough of
  the district's devices see the condition);
- **what to say**: ``message`` and ``message_vi``, with placeholders such as
  ``{device}``, ``{district}``, ``{value}``.
"""

from __future__ import annotations

import string
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, model_validator

from processors.alerts.model import AlertCategory, Severity
from processors.detectors import DETECTORS, Category
from processors.kinds import KINDS
from processors.units import parse_duration

DEFAULT_RULES_FILE = Path(__file__).with_name("default_rules.toml")
"""The shipped defaults; the caller reads it (this module does no I/O)."""

PLACEHOLDERS = frozenset(
    {"rule", "kind", "device", "district", "field", "unit", "value", "limit", "count", "total", "severity"}
)
"""Names a message template may use."""

EVENTS = {
    "rate_limited": "a device sends beyond its rate limit, from its first refused reading until its "
    "allowance has refilled to half",
}
"""Conditions the ingest service itself observes, which an ``event`` rule can raise an alert on."""

CLEAR_SHARE = 0.5
"""A detector condition clears below this share of its ``min_score`` unless the rule says
``clear_score``: the same hysteresis the detectors use to end an alarm."""

_CATEGORY_OF = {
    Category.HEALTH: AlertCategory.DATA_FAULT,
    Category.STATISTICAL: AlertCategory.DATA_FAULT,
    Category.RULE: AlertCategory.CITY_CONDITION,
    Category.STANDARD: AlertCategory.CITY_CONDITION,
    Category.FORECAST: AlertCategory.FORECAST,
}


def _seconds(value: object) -> object:
    if isinstance(value, str):
        return parse_duration(value)
    return value


Duration = Annotated[float, BeforeValidator(_seconds), Field(ge=0)]
"""Seconds, written as a number or as ``"90s"``, ``"15m"``, ``"2h"``."""


class AreaSpec(BaseModel):
    """One alert per district instead of one per device."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    by: Literal["district"] = "district"
    min_share: float = Field(default=0.5, ge=0, le=1)
    """Share of the district's reporting devices (of the rule's kinds) that must see the condition."""
    min_devices: int = Field(default=1, ge=1)
    """And at least this many of them."""


class FlappingSpec(BaseModel):
    """A condition that starts ``count`` times within ``window`` is flapping: one alert, held open."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    count: int = Field(default=3, ge=2)
    window_s: Duration = Field(default=3600.0, alias="window")
    clear_for_s: Duration = Field(default=1800.0, alias="clear_for")
    """A flapping alert resolves only once its condition has stayed clear this long."""


class Rule(BaseModel):
    """One alert rule, checked against the detectors and kinds that exist."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    name: str = Field(pattern=r"^[a-z][a-z0-9_]{0,63}$")
    enabled: bool = True
    detector: str | None = None
    event: str | None = None
    """An ingest event (one of :data:`EVENTS`) instead of a detector or a threshold."""
    fields: tuple[str, ...] = ()
    """The detector's columns to watch (default: all of them)."""
    min_score: float | None = Field(default=None, gt=0, le=1)
    """Score at or above which the condition holds (default: the detection threshold)."""
    clear_score: float | None = Field(default=None, ge=0, le=1)
    """Score below which it is clear again (default: half of ``min_score``; in between, unchanged)."""
    field: str | None = None
    above: float | None = None
    below: float | None = None
    hysteresis: float = Field(default=0.0, ge=0)
    """A threshold condition clears only this far back on the right side of the threshold."""
    kinds: tuple[str, ...] = ()
    severity: Severity = Severity.WARNING
    category: AlertCategory | None = None
    for_s: Duration = Field(default=0.0, alias="for")
    clear_for_s: Duration = Field(default=600.0, alias="clear_for")
    escalate_after_s: Duration | None = Field(default=None, alias="escalate_after")
    escalate_to: Severity | None = None
    limit: float | None = None
    """The limit to report with a detector rule's value (threshold rules report their threshold)."""
    area: AreaSpec | None = None
    flapping: FlappingSpec = FlappingSpec()
    message: str
    message_vi: str

    @model_validator(mode="after")
    def _consistent(self) -> Rule:
        if sum(x is not None for x in (self.detector, self.field, self.event)) != 1:
            raise ValueError(
                "give one of detector = ..., field = ... (a threshold) or event = ... (an ingest event), "
                "not both or neither"
            )
        kinds = self.kinds
        unknown_kinds = [k for k in kinds if k not in KINDS]
        if unknown_kinds:
            raise ValueError(f"unknown kind(s) {', '.join(unknown_kinds)}; choose from {', '.join(KINDS)}")
        category = self.category
        if self.event is not None:
            if self.event not in EVENTS:
                raise ValueError(f"unknown event {self.event!r}; choose from {', '.join(EVENTS)}")
            if self.fields or self.min_score is not None or self.clear_score is not None:
                raise ValueError("fields, min_score and clear_score belong to detector rules")
            if self.above is not None or self.below is not None:
                raise ValueError("above/below belong to threshold rules (field = ...), not event rules")
            kinds = kinds or tuple(KINDS)
            category = category or AlertCategory.DATA_FAULT
        elif self.detector is not None:
            cls = DETECTORS.get(self.detector)
            if cls is None:
                raise ValueError(f"unknown detector {self.detector!r}; choose from {', '.join(DETECTORS)}")
            applicable = tuple(k for k, kind in KINDS.items() if cls.applies_to(kind))
            if not kinds:
                kinds = applicable
            elif set(kinds) - set(applicable):
                other = ", ".join(sorted(set(kinds) - set(applicable)))
                raise ValueError(f"detector {self.detector} does not run on {other}")
            columns = {c for kind in kinds for c in cls(KINDS[kind]).columns}
            missing = [f for f in self.fields if f not in columns]
            if missing:
                raise ValueError(
                    f"detector {self.detector} has no column(s) {', '.join(missing)} on {', '.join(kinds)}; "
                    f"its columns: {', '.join(sorted(columns))}"
                )
            if category is None:
                category = _CATEGORY_OF[cls.category]
            if self.above is not None or self.below is not None:
                raise ValueError("above/below belong to threshold rules (field = ...), not detector rules")
        else:
            if not kinds:
                raise ValueError(f"a threshold rule on {self.field!r} needs kinds = [...]")
            for kind in kinds:
                if self.field not in KINDS[kind].measure_names:
                    raise ValueError(
                        f"{kind} has no measure {self.field!r}; its measures: "
                        f"{', '.join(KINDS[kind].measure_names)}"
                    )
            if (self.above is None) == (self.below is None):
                raise ValueError(f"a threshold rule on {self.field!r} needs exactly one of above or below")
            if self.fields or self.min_score is not None or self.clear_score is not None:
                raise ValueError("fields, min_score and clear_score belong to detector rules")
            if category is None:
                category = AlertCategory.CITY_CONDITION
        if self.min_score is not None and self.clear_score is not None and self.clear_score > self.min_score:
            raise ValueError("clear_score must not be above min_score")
        escalate_to = self.escalate_to
        if self.escalate_after_s is not None:
            if escalate_to is None:
                escalate_to = Severity.CRITICAL if self.severity != Severity.INFO else Severity.WARNING
            if escalate_to.rank <= self.severity.rank:
                raise ValueError(
                    f"escalate_to ({escalate_to}) must be more severe than severity ({self.severity})"
                )
        for key in ("message", "message_vi"):
            check_template(getattr(self, key), key)
        object.__setattr__(self, "kinds", kinds)
        object.__setattr__(self, "category", category)
        object.__setattr__(self, "escalate_to", escalate_to)
        return self

    # --- derived values the engine reads ---------------------------------------------------
    @property
    def for_ms(self) -> int:
        return round(self.for_s * 1000)

    @property
    def clear_for_ms(self) -> int:
        return round(self.clear_for_s * 1000)

    @property
    def escalate_after_ms(self) -> int | None:
        return None if self.escalate_after_s is None else round(self.escalate_after_s * 1000)

    @property
    def alert_category(self) -> AlertCategory:
        assert self.category is not None  # set by the validator
        return self.category

    @property
    def threshold(self) -> float | None:
        """The reading threshold of a threshold rule (its ``limit``)."""
        return self.above if self.above is not None else self.below


def check_template(template: str, key: str) -> None:
    """Refuse a message template with unknown placeholders or bad format specs."""
    try:
        names = {name for _, name, _, _ in string.Formatter().parse(template) if name is not None}
    except ValueError as bad:
        raise ValueError(f"{key}: {bad}") from None
    unknown = sorted(n for n in names if n not in PLACEHOLDERS)
    if unknown:
        raise ValueError(
            f"{key} uses unknown placeholder(s) {', '.join('{' + n + '}' for n in unknown)}; "
            f"known: {', '.join(sorted(PLACEHOLDERS))}"
        )
    try:
        render(template, {})
    except (ValueError, TypeError) as bad:
        raise ValueError(f"{key}: {bad}") from None


class _Number:
    """A number for a template: ``?`` when absent, 4 significant digits unless the template says."""

    __slots__ = ("value",)

    def __init__(self, value: float | int | None) -> None:
        self.value = value

    def __format__(self, spec: str) -> str:
        if self.value is None:
            return "?"
        return format(self.value, spec or ".4g")


def render(template: str, values: Mapping[str, Any]) -> str:
    """Fill a message template; numbers format as ``.4g`` by default, missing values as ``?``.

    >>> render("PM2.5 {value} µg/m³ at {device}", {"value": 123.456, "device": "air-1"})
    'PM2.5 123.5 µg/m³ at air-1'
    """
    filled: dict[str, Any] = {}
    for name in PLACEHOLDERS:
        value = values.get(name)
        if name in ("value", "limit", "count", "total"):
            filled[name] = _Number(value)
        else:
            filled[name] = "" if value is None else str(value)
    return template.format_map(filled)


@dataclass(frozen=True)
class RuleSet:
    """The enabled rules, by name, in file order."""

    rules: tuple[Rule, ...]

    def __post_init__(self) -> None:
        names = [r.name for r in self.rules]
        if len(names) != len(set(names)):
            raise ValueError("two rules share a name")
        object.__setattr__(self, "_by_name", {r.name: r for r in self.rules})

    def __len__(self) -> int:
        return len(self.rules)

    def get(self, name: str) -> Rule | None:
        found: Rule | None = self._by_name.get(name)  # type: ignore[attr-defined]
        return found

    def names(self) -> tuple[str, ...]:
        return tuple(r.name for r in self.rules)


class RulesError(ValueError):
    """A rule file is unusable; the message names the file, the rule and the key."""


def parse_rules(default_text: str, override_text: str | None = None, where: str = "rules file") -> RuleSet:
    """The default rules, patched by an operator's rule file.

    In the override file, a ``[[rules]]`` entry whose name is a default rule
    changes only the keys it gives (``enabled = false`` switches it off); any
    other entry is a new rule. ``replace_defaults = true`` starts from no rules.
    ``[defaults]`` in either file supplies keys a rule leaves out.
    """
    base = _load(default_text, "default rules")
    override = _load(override_text, where) if override_text is not None else {}
    extra = set(override) - {"defaults", "rules", "replace_defaults"}
    if extra:
        raise RulesError(f"{where}: unknown key(s) {', '.join(sorted(extra))}; use [defaults] and [[rules]]")
    defaults = {
        **_table(base.get("defaults", {}), "default rules"),
        **_table(override.get("defaults", {}), where),
    }
    entries: dict[str, dict[str, Any]] = {}
    if not override.get("replace_defaults", False):
        for raw in _entries(base, "default rules"):
            entries[str(raw.get("name"))] = dict(raw)
    for raw in _entries(override, where):
        name = str(raw.get("name"))
        entries[name] = {**entries.get(name, {}), **raw}
    rules: list[Rule] = []
    for name, raw in entries.items():
        merged = _with_defaults(raw, defaults)
        try:
            rule = Rule.model_validate(merged)
        except ValidationError as bad:
            problems = "; ".join(_problem(e["loc"], e["msg"]) for e in bad.errors())
            raise RulesError(f"{where}: rule {name!r}: {problems}") from None
        if rule.enabled:
            rules.append(rule)
    return RuleSet(tuple(rules))


def _problem(loc: tuple[int | str, ...], message: str) -> str:
    message = message.removeprefix("Value error, ")
    return f"{'.'.join(str(p) for p in loc)}: {message}" if loc else message


def _with_defaults(raw: Mapping[str, Any], defaults: Mapping[str, Any]) -> dict[str, Any]:
    merged = {**defaults, **raw}
    if isinstance(defaults.get("flapping"), Mapping) and isinstance(raw.get("flapping"), Mapping):
        merged["flapping"] = {**defaults["flapping"], **raw["flapping"]}
    return merged


def _load(text: str, where: str) -> dict[str, Any]:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as bad:
        raise RulesError(f"{where}: not valid TOML: {bad}") from None


def _table(value: object, where: str) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        raise RulesError(f"{where}: [defaults] must be a table")
    return dict(value)


def _entries(data: Mapping[str, Any], where: str) -> Sequence[Mapping[str, Any]]:
    entries = data.get("rules", [])
    if not isinstance(entries, list) or not all(isinstance(e, Mapping) for e in entries):
        raise RulesError(f"{where}: rules must be written as [[rules]] tables")
    for i, entry in enumerate(entries, start=1):
        if not isinstance(entry.get("name"), str):
            raise RulesError(f'{where}: rule number {i} has no name = "..."')
    return entries
