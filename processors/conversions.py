"""Unit conversion for recorded data: a column's unit into the unit a kind declares.

Recorded tables state their units in their own spelling (``ug/m3``, ``µg/m³``,
``degF``), and many differ from citypulse's (the Beijing records give CO in µg/m³,
citypulse's air ``co`` is mg/m³). Only conversions that need nothing but the two
units are offered: a factor and an offset. Mixing ratios (ppb, ppm) need a
molecular weight, temperature and pressure to become mass concentrations, so they
are refused with advice rather than guessed.
"""

from __future__ import annotations

from dataclasses import dataclass

_FAMILIES: dict[str, dict[str, tuple[float, float]]] = {
    # name: {spelling: (factor, offset) into the family's base unit}
    "mass concentration": {
        "ng/m3": (1e-3, 0.0),
        "ug/m3": (1.0, 0.0),
        "mg/m3": (1e3, 0.0),
        "g/m3": (1e6, 0.0),
    },
    "temperature": {"degc": (1.0, 0.0), "k": (1.0, -273.15), "degf": (5.0 / 9.0, -32.0 * 5.0 / 9.0)},
    "share": {"%": (1.0, 0.0), "fraction": (100.0, 0.0)},
    "pressure": {
        "hpa": (1.0, 0.0),
        "mbar": (1.0, 0.0),
        "pa": (0.01, 0.0),
        "kpa": (10.0, 0.0),
        "bar": (1e3, 0.0),
    },
    "speed": {"km/h": (1.0, 0.0), "m/s": (3.6, 0.0), "mph": (1.609344, 0.0), "kn": (1.852, 0.0)},
    "mass per volume of water": {"mg/l": (1.0, 0.0), "ug/l": (1e-3, 0.0), "g/l": (1e3, 0.0)},
    "flow": {"m3/h": (1.0, 0.0), "l/s": (3.6, 0.0), "m3/s": (3600.0, 0.0)},
    "power": {"w": (1.0, 0.0), "kw": (1e3, 0.0)},
}

_SPELLINGS = {
    "µ": "u",
    "μ": "u",  # Greek mu, as often typed for the micro sign
    "³": "3",
    "°c": "degc",
    "°f": "degf",
    "celsius": "degc",
    "fahrenheit": "degf",
    "kelvin": "k",
    "percent": "%",
    "kph": "km/h",
    "knots": "kn",
}

_MIXING_RATIOS = frozenset({"ppm", "ppb", "ppt"})


class UnitError(ValueError):
    """Two units that cannot be converted into each other; the message says what to do."""


def canonical_unit(unit: str) -> str:
    """One spelling per unit: ``µg/m³``, ``ug/m3`` and ``μg/m3`` are the same.

    >>> canonical_unit("µg/m³"), canonical_unit("°C"), canonical_unit("m³/h")
    ('ug/m3', 'degc', 'm3/h')
    """
    text = unit.strip().lower().replace(" ", "")
    for spelled, plain in _SPELLINGS.items():
        text = text.replace(spelled, plain)
    if text in ("c", "degreesc"):
        return "degc"
    if text in ("f", "degreesf"):
        return "degf"
    return text


def _family(unit: str) -> tuple[str, tuple[float, float]] | None:
    for name, members in _FAMILIES.items():
        if unit in members:
            return name, members[unit]
    return None


@dataclass(frozen=True, slots=True)
class Conversion:
    """``value * factor + offset`` turns a reading in ``source`` into one in ``target``."""

    source: str
    target: str
    factor: float = 1.0
    offset: float = 0.0

    @property
    def identity(self) -> bool:
        return self.factor == 1.0 and self.offset == 0.0

    def apply(self, value: float) -> float:
        return value * self.factor + self.offset


def conversion(source: str, target: str) -> Conversion:
    """How to turn values in ``source`` into ``target``; raises :class:`UnitError` if it cannot.

    >>> conversion("ug/m3", "mg/m³").apply(1500.0)
    1.5
    >>> round(conversion("degF", "°C").apply(212.0), 6)
    100.0
    """
    a, b = canonical_unit(source), canonical_unit(target)
    if a == b:
        return Conversion(source, target)
    if a in _MIXING_RATIOS or b in _MIXING_RATIOS:
        raise UnitError(
            f"cannot convert {source} to {target}: a mixing ratio needs the gas's molecular weight "
            "and the air's temperature and pressure; convert the column to a mass concentration first"
        )
    found_a, found_b = _family(a), _family(b)
    if found_a is None or found_b is None:
        unknown = source if found_a is None else target
        known = ", ".join(sorted(u for members in _FAMILIES.values() for u in members))
        raise UnitError(f"unknown unit {unknown!r}; units citypulse converts: {known}")
    if found_a[0] != found_b[0]:
        raise UnitError(f"cannot convert {source} ({found_a[0]}) to {target} ({found_b[0]})")
    (fa, oa), (fb, ob) = found_a[1], found_b[1]
    # source -> base: v * fa + oa; base -> target: (base - ob) / fb.
    return Conversion(source, target, fa / fb, (oa - ob) / fb)
