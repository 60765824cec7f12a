"""Preparing a simulated fleet from the user's choices: its registry, schedule, faults and encoder."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from processors.kinds import KINDS
from processors.registry import Registry
from processors.topics import TopicScheme
from processors.validate import ValidationPolicy
from simulators.encode import Encoder
from simulators.faults import fault_rates, parse_faults
from simulators.incidents import IncidentSpec, place_incidents
from simulators.labels import LabelSink
from simulators.schedule import Schedule
from simulators.weather import Weather


def parse_kinds(spec: str) -> list[str]:
    """``"all"`` or a comma-separated list of kind names, checked."""
    if spec.strip() in ("", "all"):
        return list(KINDS)
    kinds = list(dict.fromkeys(k.strip() for k in spec.split(",") if k.strip()))
    unknown = [k for k in kinds if k not in KINDS]
    if unknown:
        raise ValueError(f"unknown kind(s) {', '.join(unknown)}; choose from: all, {', '.join(KINDS)}")
    return kinds


@dataclass(frozen=True)
class FleetChoices:
    kinds: tuple[str, ...]
    seed: int
    start_ms: int
    faults: str | Sequence[str] = ""
    """"all", a comma-separated list, or a sequence of fault names."""
    fault_rate: float | None = None
    """Share of readings that start a fault (None: each fault's documented default rate)."""
    fault_rates: Mapping[str, float] = field(default_factory=dict)
    batch: int = 0
    max_payload_bytes: int = 256 * 1024
    max_future_ms: int = 5 * 60 * 1000
    max_age_ms: int = 7 * 24 * 3600 * 1000
    end_ms: int | None = None
    """The simulated end, when known: fault episodes that could not finish by then are not started."""
    incidents: Sequence[IncidentSpec] = ()
    labels: Path | None = None

    @property
    def policy(self) -> ValidationPolicy:
        return ValidationPolicy(
            max_payload_bytes=self.max_payload_bytes,
            max_future_ms=self.max_future_ms,
            max_age_ms=self.max_age_ms,
        )

    def rates(self) -> dict[str, float]:
        names = parse_faults(self.faults) if isinstance(self.faults, str) else tuple(self.faults)
        return fault_rates(names, self.fault_rate, self.fault_rates)


def build(registry: Registry, topics: TopicScheme, choices: FleetChoices) -> tuple[Schedule, Encoder]:
    """The schedule that generates the fleet's readings and the encoder that turns them into messages.

    Raises ``ValueError`` (with what to change) for choices that cannot work.
    """
    kinds = [k for k in choices.kinds if len(registry.tables[k])]
    if not kinds:
        raise ValueError(f"the registry has no devices of the kinds asked for ({', '.join(choices.kinds)})")
    rates = choices.rates()
    if choices.batch < 0:
        raise ValueError("--batch must be 0 (one reading per message) or more")
    incidents = place_incidents(choices.incidents, registry, choices.start_ms, choices.end_ms, choices.seed)
    weather = Weather(choices.seed)
    schedule = Schedule(registry, kinds, choices.start_ms, choices.seed, incidents, weather)
    encoder = Encoder(
        registry,
        topics,
        schedule.models,
        rates=rates,
        batch_size=choices.batch,
        policy=choices.policy,
        seed=choices.seed,
        labels=LabelSink(choices.labels),
        start_ms=choices.start_ms,
        end_ms=choices.end_ms,
        incidents=incidents,
    )
    return schedule, encoder
