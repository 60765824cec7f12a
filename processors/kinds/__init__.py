"""The registry of sensor kinds: every module in this package that defines ``KIND``.

Adding a kind is adding one module here (and its test); nothing else lists kinds.
"""

from __future__ import annotations

from processors.kinds.base import Limit, Measure, Reading, SensorKind, measure, on_off
from processors.plugins import PluginRegistry, discover

__all__ = ["KINDS", "Limit", "Measure", "Reading", "SensorKind", "get_kind", "measure", "on_off"]


def _discover() -> PluginRegistry[SensorKind]:
    return discover(__name__, __path__, "KIND", SensorKind, what="sensor kind", name=lambda kind: kind.name)


KINDS = _discover()
"""All sensor kinds by name, in alphabetical order of their modules."""


def get_kind(name: str) -> SensorKind:
    """Return the kind called ``name`` or explain which kinds exist."""
    try:
        return KINDS[name]
    except KeyError:
        raise KeyError(f"unknown sensor kind {name!r}; known kinds: {', '.join(KINDS)}") from None
