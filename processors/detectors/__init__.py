"""The registry of anomaly detectors: every module in this package that defines ``DETECTOR``.

Adding a detector is adding one module here; the engine runs it on every kind it
``applies_to``, and the contract tests in ``tests/processors/test_detectors.py``
check it without being told.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from processors.detectors._rounds import Visit
from processors.detectors._transaction import StaleScores
from processors.detectors.base import DEVICE_COLUMN, Category, Detector, DetectorConfig, Round, Scored
from processors.plugins import discover

__all__ = [
    "DETECTORS",
    "DEVICE_COLUMN",
    "Category",
    "Detector",
    "DetectorConfig",
    "Round",
    "Scored",
    "StaleScores",
    "Visit",
    "detectors_for",
]


def _discover() -> dict[str, type[Detector]]:
    found: dict[str, type[Detector]] = {}
    for cls in discover(__name__, __path__, "DETECTOR", type):
        if not issubclass(cls, Detector):
            raise TypeError(f"{cls.__module__}.DETECTOR must be a Detector subclass, not {cls!r}")
        if cls.name in found:
            raise ValueError(f"two modules declare the detector {cls.name!r}")
        found[cls.name] = cls
    return found


DETECTORS: Mapping[str, type[Detector]] = MappingProxyType(_discover())
"""All detector classes by name, in alphabetical order of their modules."""


def detectors_for(kind_name: str, names: set[str] | None = None) -> list[type[Detector]]:
    """The detector classes that apply to a kind, optionally limited to ``names``."""
    from processors.kinds import get_kind

    kind = get_kind(kind_name)
    return [
        cls for name, cls in DETECTORS.items() if (names is None or name in names) and cls.applies_to(kind)
    ]
