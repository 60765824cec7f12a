"""Alert channels, one module each; a module registers by defining ``PLUGIN = ChannelPlugin(...)``."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING

from ingest.alerts.channels.base import (
    AlertChannel,
    ChannelPlugin,
    DeliveryError,
    Notification,
    Pace,
    Subscriber,
)
from processors.plugins import discover

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


def _discover() -> dict[str, ChannelPlugin]:
    found: dict[str, ChannelPlugin] = {}
    for plugin in discover(__name__, __path__, "PLUGIN", ChannelPlugin):
        if plugin.name in found:
            raise ValueError(f"two modules declare the alert channel {plugin.name!r}")
        found[plugin.name] = plugin
    return found


CHANNELS: Mapping[str, ChannelPlugin] = MappingProxyType(_discover())


def open_channels(settings: Settings) -> list[AlertChannel]:
    """Every channel the settings configure (MQTT unless switched off, webhooks and emails if any)."""
    return [channel for plugin in CHANNELS.values() if (channel := plugin.factory(settings)) is not None]
