"""The registry of anomaly detectors: every module in this package that defines ``DETECTOR``.

Adding a detector is adding one module here; the engine runs it on every kind it
``applies_to``, and the contract tests in ``tests/processors/test_detectors.py``
check it without being told.
"""

from __future__ import annotations

from processors.detectors._rounds import Visit
from processors.detectors._transaction import StaleScores
from processors.detectors.base import DEVICE_COLUMN, Category, Detector, DetectorConfig, Judged, Round, Scored
from processors.plugins import PluginRegistry, discover_classes

__all__ = [
    "DETECTORS",
    "DEVICE_COLUMN",
    "Category",
    "Detector",
    "DetectorConfig",
    "Judged",
    "Round",
    "Scored",
    "StaleScores",
    "Visit",
    "detectors_for",
]


def _discover() -> PluginRegistry[type[Detector]]:
    # mypy takes no abstract class for a type[T] parameter (python/mypy#4717); Detector is one.
    return discover_classes(
        __name__,
        __path__,
        "DETECTOR",
        Detector,  # type: ignore[type-abstract]
        what="detector",
        name=lambda cls: cls.name,
    )


DETECTORS = _discover()
"""All detector classes by name, in alphabetical order of their modules."""


def detectors_for(kind_name: str, names: set[str] | None = None) -> list[type[Detector]]:
    """The detector classes that run on a kind: those of ``names`` that apply to it, or (without
    ``names``) every one that applies and runs there by default."""
    from processors.kinds import get_kind

    kind = get_kind(kind_name)
    return [
        cls
        for name, cls in DETECTORS.items()
        if cls.applies_to(kind) and (cls.runs_by_default(kind) if names is None else name in names)
    ]
