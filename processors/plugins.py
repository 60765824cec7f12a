"""Plugin discovery: a plugin is a module in a package that defines one named attribute.

Sensor kinds, sinks and detectors all register this way (as Telegraf plugins do),
so adding one is adding a file; no central list needs editing.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Iterable
from typing import TypeVar

T = TypeVar("T")


def discover(package: str, search_path: Iterable[str], attribute: str, expected: type[T]) -> list[T]:
    """Import every public module of ``package`` and collect its ``attribute``.

    Modules whose names start with ``_`` or equal ``base`` hold shared code, not
    plugins, and are skipped. A plugin module without the attribute is an error:
    a forgotten declaration must fail loudly, not vanish from the registry.
    """
    found: list[T] = []
    for info in sorted(pkgutil.iter_modules(list(search_path)), key=lambda m: m.name):
        if info.name == "base" or info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{package}.{info.name}")
        value = getattr(module, attribute, None)
        if not isinstance(value, expected):
            location = package.replace(".", "/")
            raise TypeError(f"{location}/{info.name}.py must define {attribute} ({expected.__name__})")
        found.append(value)
    return found
