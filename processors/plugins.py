"""Plugin registries: a plugin is a module in a package that defines one named attribute.

Sensor kinds, detectors, sinks and simulator models all register this way (as
Telegraf plugins do), so adding one is adding a file; no central list needs
editing. Every registry is a :class:`PluginRegistry`, a read-only mapping from
name to plugin that refuses two plugins of the same name, naming both modules,
because a silently replaced plugin is a bug nobody sees.

>>> registry = PluginRegistry("colour", [("red", 1, "paint/red.py"), ("blue", 2, "paint/blue.py")])
>>> registry["red"], list(registry), registry.origin("blue")
(1, ['red', 'blue'], 'paint/blue.py')
>>> registry["green"]
Traceback (most recent call last):
KeyError: "unknown colour 'green'; known: red, blue"
>>> try:
...     PluginRegistry("colour", [("red", 1, "paint/red.py"), ("red", 3, "paint/crimson.py")])
... except DuplicatePluginError as refused:
...     print(refused)
paint/red.py and paint/crimson.py both declare the colour 'red'; rename one of them
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, TypeVar, cast

T = TypeVar("T")


class DuplicatePluginError(ValueError):
    """Two modules declare a plugin of the same name."""


class PluginRegistry(Mapping[str, T]):
    """Plugins by name, in the order they were found, read-only; each remembers its module.

    ``what`` names the kind of plugin in messages ("sensor kind", "sink"). Looking
    up an unknown name raises a ``KeyError`` that lists the known ones.
    """

    def __init__(self, what: str, entries: Iterable[tuple[str, T, str]]) -> None:
        self.what = what
        self._plugins: dict[str, T] = {}
        self._origins: dict[str, str] = {}
        for name, plugin, origin in entries:
            if name in self._plugins:
                raise DuplicatePluginError(
                    f"{self._origins[name]} and {origin} both declare the {what} {name!r}; rename one of them"
                )
            self._plugins[name] = plugin
            self._origins[name] = origin

    def __getitem__(self, name: str) -> T:
        try:
            return self._plugins[name]
        except KeyError:
            raise self._unknown(name) from None

    def __contains__(self, name: object) -> bool:
        return name in self._plugins

    def __iter__(self) -> Iterator[str]:
        return iter(self._plugins)

    def __len__(self) -> int:
        return len(self._plugins)

    def origin(self, name: str) -> str:
        """The module that declared ``name``, as a path (``processors/kinds/air.py``)."""
        try:
            return self._origins[name]
        except KeyError:
            raise self._unknown(name) from None

    def _unknown(self, name: str) -> KeyError:
        return KeyError(f"unknown {self.what} {name!r}; known: {', '.join(self._plugins) or 'none'}")

    def __repr__(self) -> str:
        return f"PluginRegistry({self.what!r}, {list(self._plugins)})"


def discover(
    package: str,
    search_path: Iterable[str],
    attribute: str,
    expected: type[T],
    *,
    what: str,
    name: Callable[[T], str],
) -> PluginRegistry[T]:
    """Every public module of ``package`` that defines ``attribute`` (an ``expected``), by ``name``.

    Modules whose names start with ``_`` or equal ``base`` hold shared code, not
    plugins, and are skipped. A plugin module without the attribute is an error:
    a forgotten declaration must fail loudly, not vanish from the registry.
    """
    found = _declarations(
        package, search_path, attribute, lambda value: isinstance(value, expected), expected.__name__
    )
    return PluginRegistry(what, ((name(cast(T, value)), cast(T, value), origin) for origin, value in found))


def discover_classes(
    package: str,
    search_path: Iterable[str],
    attribute: str,
    base: type[T],
    *,
    what: str,
    name: Callable[[type[T]], str],
) -> PluginRegistry[type[T]]:
    """As :func:`discover`, for modules that declare a class: a subclass of ``base``."""

    def accept(value: object) -> bool:
        return isinstance(value, type) and issubclass(value, base)

    found = _declarations(package, search_path, attribute, accept, f"a {base.__name__} subclass")
    return PluginRegistry(
        what, ((name(cast(type[T], value)), cast(type[T], value), origin) for origin, value in found)
    )


def _declarations(
    package: str,
    search_path: Iterable[str],
    attribute: str,
    accept: Callable[[object], bool],
    described: str,
) -> list[tuple[str, Any]]:
    """(module path, declared value) of every plugin module, in alphabetical order of the modules."""
    location = package.replace(".", "/")
    found: list[tuple[str, Any]] = []
    for info in sorted(pkgutil.iter_modules(list(search_path)), key=lambda m: m.name):
        if info.name == "base" or info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{package}.{info.name}")
        value = getattr(module, attribute, None)
        if not accept(value):
            raise TypeError(f"{location}/{info.name}.py must define {attribute} ({described})")
        found.append((f"{location}/{info.name}.py", value))
    return found
