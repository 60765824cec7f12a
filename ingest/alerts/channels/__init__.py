"""Alert channels, one module each; a module registers by defining ``PLUGIN = ChannelPlugin(...)``."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ingest.alerts.channels.base import (
    AlertChannel,
    ChannelPlugin,
    DeliveryError,
    Notification,
    Pace,
    Subscriber,
)
from processors.plugins import PluginRegistry, discover

if TYPE_CHECKING:
    from ingest.settings import Settings

__all__ = [
    "CHANNELS",
    "AlertChannel",
    "ChannelPlugin",
    "DeliveryError",
    "Notification",
    "Pace",
    "Subscriber",
    "open_channels",
]


def _discover() -> PluginRegistry[ChannelPlugin]:
    return discover(
        __name__, __path__, "PLUGIN", ChannelPlugin, what="alert channel", name=lambda plugin: plugin.name
    )


CHANNELS = _discover()
"""All alert channels by name, in alphabetical order of their modules."""


def open_channels(settings: Settings) -> list[AlertChannel]:
    """Every channel the settings configure (MQTT unless switched off, webhooks and emails if any)."""
    return [channel for plugin in CHANNELS.values() if (channel := plugin.factory(settings)) is not None]
