"""The registry of sensor kinds: every module in this package that defines ``KIND``.

Adding a kind is adding one module here (and its test); nothing else lists kinds.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from processors.kinds.base import Limit, Measure, Reading, SensorKind, measure, on_off
from processors.plugins import discover

__all__ = ["KINDS", "Limit", "Measure", "Reading", "SensorKind", "get_kind", "measure", "on_off"]


def _discover() -> dict[str, SensorKind]:
    found: dict[str, SensorKind] = {}
    for kind in discover(__name__, __path__, "KIND", SensorKind):
        if kind.name in found:
            raise ValueError(f"two modules declare the sensor kind {kind.name!r}")
        found[kind.name] = kind
    return found


KINDS: Mapping[str, SensorKind] = MappingProxyType(_discover())
"""All sensor kinds by name, in alphabetical order of their modules."""


def get_kind(name: str) -> SensorKind:
    """Return the kind called ``name`` or explain which kinds exist."""
    try:
        return KINDS[name]
    except KeyError:
        raise KeyError(f"unknown sensor kind {name!r}; known kinds: {', '.join(KINDS)}") from None
