"""One plugin registry for kinds, detectors, sinks and simulator models: a duplicate name is refused.

Each test drops a twin module (declaring a name an existing plugin already has)
into a temporary folder on the package's search path and runs the package's own
discovery again, exactly as at import.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

import ingest.sinks
import processors.detectors
import processors.kinds
import simulators.models
from ingest.sinks import SinkPlugin
from processors.plugins import DuplicatePluginError, PluginRegistry, discover
from simulators.models.base import ModelPlugin

TWINS = {
    "kinds": (processors.kinds, "air", "from processors.kinds.air import KIND", "sensor kind 'air'"),
    "detectors": (
        processors.detectors,
        "spike",
        "from processors.detectors.spike import DETECTOR",
        "detector 'spike'",
    ),
    "sinks": (ingest.sinks, "sqlite", "from ingest.sinks.sqlite import PLUGIN", "sink 'sqlite'"),
    "models": (simulators.models, "air", "from simulators.models.air import MODEL", "signal model 'air'"),
}


@pytest.fixture
def extra_modules(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A folder for extra plugin modules; whatever was imported from it is forgotten afterwards."""
    importlib.invalidate_caches()
    yield tmp_path
    for name, module in list(sys.modules.items()):
        if Path(getattr(module, "__file__", None) or "/").parent.parent == tmp_path:
            del sys.modules[name]
            parent, _, child = name.rpartition(".")
            monkeypatch.delattr(sys.modules[parent], child, raising=False)


def add_module(
    package: ModuleType, folder: Path, name: str, text: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    own = folder / package.__name__
    own.mkdir(exist_ok=True)
    (own / f"{name}.py").write_text(text + "\n")
    if str(own) not in package.__path__:
        monkeypatch.setattr(package, "__path__", [*package.__path__, str(own)])


@pytest.mark.parametrize("registry", list(TWINS))
def test_a_second_module_declaring_a_taken_name_is_refused_naming_both(
    registry: str, extra_modules: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    package, original, declaration, what = TWINS[registry]
    add_module(package, extra_modules, f"{original}_twin", declaration, monkeypatch)
    location = package.__name__.replace(".", "/")
    expected = f"{location}/{original}.py and {location}/{original}_twin.py both declare the {what}"
    with pytest.raises(DuplicatePluginError, match=expected):
        package._discover()


def test_the_sink_registry_no_longer_keeps_the_last_of_two(
    extra_modules: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two sinks named alike used to leave whichever module came last; now neither is chosen silently."""
    add_module(
        ingest.sinks,
        extra_modules,
        "zz_other_sqlite",
        "from ingest.sinks.sqlite import PLUGIN as _P\n"
        "from dataclasses import replace\n"
        "PLUGIN = replace(_P, description='another store that took the name sqlite')",
        monkeypatch,
    )
    with pytest.raises(DuplicatePluginError, match="sink 'sqlite'; rename one of them"):
        ingest.sinks._discover()
    assert ingest.sinks.SINKS["sqlite"].description == "Embedded SQLite file (no server)."


def test_two_models_staging_the_same_incident_are_refused() -> None:
    air = simulators.models.MODELS["air"]
    incident = air.incidents[0]
    models = PluginRegistry(
        "signal model",
        [
            ("air", air, "simulators/models/air.py"),
            ("dust", ModelPlugin("dust", air.factory, (incident,)), "simulators/models/dust.py"),
        ],
    )
    with pytest.raises(DuplicatePluginError, match=f"both declare the incident {incident.name!r}"):
        simulators.models._incidents(models)


def test_a_plugin_module_without_its_declaration_is_an_error(
    extra_modules: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    add_module(processors.kinds, extra_modules, "forgotten", "NOT_A_KIND = 1", monkeypatch)
    with pytest.raises(TypeError, match=r"processors/kinds/forgotten\.py must define KIND \(SensorKind\)"):
        processors.kinds._discover()
    add_module(processors.detectors, extra_modules, "wrong", "DETECTOR = int", monkeypatch)
    with pytest.raises(TypeError, match=r"detectors/wrong\.py must define DETECTOR \(a Detector subclass\)"):
        processors.detectors._discover()


def test_registries_are_read_only_mappings_that_explain_an_unknown_name() -> None:
    kinds = processors.kinds.KINDS
    assert list(kinds) == sorted(kinds), "in alphabetical order of their modules"
    assert kinds.origin("air") == "processors/kinds/air.py"
    assert ingest.sinks.SINKS.origin("influxdb") == "ingest/sinks/influxdb.py"
    with pytest.raises(KeyError, match="unknown sensor kind 'noise'; known: air, "):
        kinds["noise"]
    assert kinds.get("noise") is None
    assert "noise" not in kinds
    with pytest.raises(TypeError):
        kinds["noise"] = kinds["air"]  # type: ignore[index]


def test_discover_is_the_loop_every_registry_shares() -> None:
    again = discover(
        "ingest.sinks", ingest.sinks.__path__, "PLUGIN", SinkPlugin, what="sink", name=lambda p: p.name
    )
    assert dict(again) == dict(ingest.sinks.SINKS)
