"""Sinks, one module each; a module registers by defining ``PLUGIN = SinkPlugin(...)``.

A sink's options are a :class:`~ingest.settings_section.SettingsSection` declared
in its module and named by its plugin (``settings=InfluxSettings``); ``Settings``
nests that section, and ``open_sink`` hands the sink its own section.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ingest.sinks.base import (
    AnomalyQuery,
    AnomalyReader,
    ReadError,
    RejectedPoint,
    Sink,
    SinkError,
    SinkHealth,
    SinkPlugin,
    StoredAnomaly,
    WriteReport,
)
from processors.plugins import PluginRegistry, discover

if TYPE_CHECKING:
    from ingest.settings import Settings

__all__ = [
    "SINKS",
    "AnomalyQuery",
    "AnomalyReader",
    "ReadError",
    "RejectedPoint",
    "Sink",
    "SinkError",
    "SinkHealth",
    "SinkPlugin",
    "StoredAnomaly",
    "WriteReport",
    "open_reader",
    "open_sink",
]


def _discover() -> PluginRegistry[SinkPlugin[Any]]:
    return discover(__name__, __path__, "PLUGIN", SinkPlugin, what="sink", name=lambda plugin: plugin.name)


SINKS = _discover()
"""All sinks by name (``CITYPULSE_SINK``), in alphabetical order of their modules."""


def open_sink(settings: Settings) -> Sink:
    """The sink ``CITYPULSE_SINK`` names, opened and ready to write."""
    plugin = SINKS.get(settings.sink)
    if plugin is None:
        raise ValueError(f"CITYPULSE_SINK={settings.sink!r} is not a sink; choose one of: {', '.join(SINKS)}")
    return plugin.factory(settings.section(plugin.settings))


def open_reader(settings: Settings) -> AnomalyReader:
    """The store ``CITYPULSE_SINK`` names, opened for reading back; ``ReadError`` if it cannot be read."""
    plugin = SINKS.get(settings.sink)
    if plugin is None:
        raise ReadError(f"CITYPULSE_SINK={settings.sink!r} is not a sink; choose one of: {', '.join(SINKS)}")
    if plugin.reader is None:
        readable = ", ".join(name for name, p in SINKS.items() if p.reader is not None)
        raise ReadError(
            f"the {plugin.name} sink stores anomalies but cannot read them back; "
            f"query the store directly, or use a sink that can ({readable})"
        )
    return plugin.reader(settings.section(plugin.settings))
