"""Sinks, one module each; a module registers by defining ``PLUGIN = SinkPlugin(...)``."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING

from ingest.sinks.base import RejectedPoint, Sink, SinkError, SinkHealth, SinkPlugin, WriteReport
from processors.plugins import discover

if TYPE_CHECKING:
    from ingest.settings import Settings

__all__ = [
    "SINKS",
    "RejectedPoint",
    "Sink",
    "SinkError",
    "SinkHealth",
    "SinkPlugin",
    "WriteReport",
    "open_sink",
]

SINKS: Mapping[str, SinkPlugin] = MappingProxyType(
    {plugin.name: plugin for plugin in discover(__name__, __path__, "PLUGIN", SinkPlugin)}
)


def open_sink(settings: Settings) -> Sink:
    """The sink ``CITYPULSE_SINK`` names, opened and ready to write."""
    plugin = SINKS.get(settings.sink)
    if plugin is None:
        raise ValueError(f"CITYPULSE_SINK={settings.sink!r} is not a sink; choose one of: {', '.join(SINKS)}")
    return plugin.factory(settings)
