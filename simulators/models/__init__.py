"""Signal models by kind: every module here that defines ``MODEL`` (a :class:`ModelPlugin`).

A kind with a physics model (air, water, traffic, lighting, waste) gets it; any
other declared kind falls back to :class:`GenericModel`, derived from the kind's
normal bands, so declaring a kind is enough to simulate it. Incidents (pipe
bursts, bin fires, ...) are declared next to the physics they disturb.
"""

from __future__ import annotations

from processors.kinds import SensorKind
from processors.plugins import PluginRegistry, discover
from processors.registry import DeviceTable
from simulators.models.base import FleetContext, GenericModel, IncidentType, ModelPlugin, SignalModel
from simulators.weather import Weather

__all__ = ["INCIDENTS", "MODELS", "FleetContext", "GenericModel", "IncidentType", "SignalModel", "model_for"]


def _discover() -> PluginRegistry[ModelPlugin]:
    return discover(
        __name__, __path__, "MODEL", ModelPlugin, what="signal model", name=lambda plugin: plugin.kind
    )


def _incidents(models: PluginRegistry[ModelPlugin]) -> PluginRegistry[IncidentType]:
    return PluginRegistry(
        "incident",
        (
            (incident.name, incident, models.origin(kind))
            for kind, plugin in models.items()
            for incident in plugin.incidents
        ),
    )


MODELS = _discover()
"""Physics models by kind name."""

INCIDENTS = _incidents(MODELS)
"""Every incident a scenario can stage, by name."""


def model_for(kind: SensorKind, table: DeviceTable, seed: int, weather: Weather | None = None) -> SignalModel:
    """The signal model for ``kind``'s devices: its physics model, else the generic one."""
    context = FleetContext(kind, table, seed, weather or Weather(seed))
    plugin = MODELS.get(kind.name)
    if plugin is None:
        return GenericModel(context)
    return plugin.factory(context)
