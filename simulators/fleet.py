"""Generating a fleet: how many devices of each kind, named how, standing where.

The registry it produces is the same file ``citypulse ingest`` reads, so a
simulated fleet and the pipeline always agree on which devices exist.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, timedelta

import numpy as np

from processors.kinds import KINDS
from processors.registry import Device, Registry
from simulators.hanoi import DISTRICTS


def device_id(kind: str, number: int) -> str:
    """Ids like ``air-000042``: kind first, so a glance at a topic tells what it is."""
    return f"{kind}-{number:06d}"


DEVICES_PER_GATEWAY = 200
"""How many devices of one kind share a gateway in a generated fleet (the registry's gateway column)."""


def gateway_id(kind: str, number: int) -> str:
    """The gateway device ``number`` of ``kind`` sits behind: ``gw-air-001`` for air-000001..000200."""
    return f"gw-{kind}-{(number - 1) // DEVICES_PER_GATEWAY + 1:03d}"


def split_counts(total: int, kinds: Sequence[str]) -> dict[str, int]:
    """Share ``total`` devices between ``kinds`` as evenly as possible (earlier kinds get the rest)."""
    if total < len(kinds):
        raise ValueError(f"--devices {total} is fewer than the {len(kinds)} kinds asked for")
    base, extra = divmod(total, len(kinds))
    return {k: base + (1 if i < extra else 0) for i, k in enumerate(kinds)}


def make_registry(
    total: int, kinds: Sequence[str], seed: int, install_before: date | None = None
) -> Registry:
    """A registry of ``total`` devices placed across Hanoi's districts, reproducible from ``seed``."""
    for kind in kinds:
        if kind not in KINDS:
            raise ValueError(f"unknown kind {kind!r}; known kinds: {', '.join(KINDS)}")
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0xF1EE7]))
    weights = np.array([d.weight for d in DISTRICTS])
    weights /= weights.sum()
    newest = install_before or date(2026, 1, 1)
    registry = Registry()
    for kind, count in split_counts(total, list(kinds)).items():
        picks = rng.choice(len(DISTRICTS), size=count, p=weights)
        radius = rng.uniform(0.0, 1.0, size=count) ** 0.5
        angle = rng.uniform(0.0, 2 * np.pi, size=count)
        age_days = rng.integers(0, 5 * 365, size=count)
        for number in range(count):
            district = DISTRICTS[int(picks[number])]
            r = float(radius[number]) * district.radius_deg
            registry.add(
                Device(
                    device_id=device_id(kind, number + 1),
                    kind=kind,
                    district=district.name,
                    lat=round(district.lat + r * float(np.sin(angle[number])), 6),
                    lon=round(district.lon + r * float(np.cos(angle[number])), 6),
                    install_date=newest - timedelta(days=int(age_days[number])),
                    interval_s=KINDS[kind].interval_s,
                    gateway=gateway_id(kind, number + 1),
                )
            )
    return registry
