"""Preparing a simulated fleet from command-line choices: its registry, schedule and encoder."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ingest.registry_file import load_registry, save_registry
from processors.kinds import KINDS
from processors.registry import Registry
from processors.topics import TopicScheme
from simulators.encode import Encoder
from simulators.faults import parse_faults
from simulators.fleet import make_registry
from simulators.schedule import Schedule

log = logging.getLogger(__name__)


def parse_kinds(spec: str) -> list[str]:
    """``"all"`` or a comma-separated list of kind names, checked."""
    if spec.strip() in ("", "all"):
        return list(KINDS)
    kinds = list(dict.fromkeys(k.strip() for k in spec.split(",") if k.strip()))
    unknown = [k for k in kinds if k not in KINDS]
    if unknown:
        raise ValueError(f"unknown kind(s) {', '.join(unknown)}; choose from: all, {', '.join(KINDS)}")
    return kinds


def fleet_registry(path: Path | None, devices: int, kinds: Sequence[str], seed: int) -> tuple[Registry, bool]:
    """Reuse the registry at ``path`` if it exists, else generate one (and save it there).

    Returns the registry and whether it was reused.
    """
    if path is not None and path.exists():
        registry = load_registry(path)
        log.info("reusing device registry %s (%d devices)", path, len(registry))
        return registry, True
    registry = make_registry(devices, kinds, seed)
    if path is not None:
        save_registry(registry, path)
        log.info("wrote device registry %s (%d devices)", path, len(registry))
    return registry, False


@dataclass(frozen=True)
class FleetChoices:
    kinds: tuple[str, ...]
    seed: int
    start_ms: int
    faults: str = ""
    fault_rate: float = 0.01
    batch: int = 0
    max_payload_bytes: int = 256 * 1024


def build(registry: Registry, topics: TopicScheme, choices: FleetChoices) -> tuple[Schedule, Encoder]:
    kinds = [k for k in choices.kinds if len(registry.tables[k])]
    if not kinds:
        raise ValueError(f"the registry has no devices of the kinds asked for ({', '.join(choices.kinds)})")
    schedule = Schedule(registry, kinds, choices.start_ms, choices.seed)
    encoder = Encoder(
        registry,
        topics,
        faults=parse_faults(choices.faults),
        fault_rate=choices.fault_rate,
        batch_size=choices.batch,
        max_payload_bytes=choices.max_payload_bytes,
        seed=choices.seed,
    )
    return schedule, encoder
