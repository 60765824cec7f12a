"""What a sensor kind is: one pydantic model whose fields carry units and ranges.

A kind is declared once, in one file of this package, as a ``Reading`` subclass
whose measurement fields are built with :func:`measure`, plus a :class:`SensorKind`
that names it. Validation, the simulators, the storage schema and the dashboards
all read the units, ranges and intervals from that declaration, so adding a kind
never means editing a list somewhere else.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Annotated, Any, ClassVar, Literal, Self

import annotated_types
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    model_validator,
)
from pydantic.fields import FieldInfo

from processors.timestamps import parse_timestamp

DEVICE_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$"
"""Device ids are safe as MQTT topic levels, InfluxDB tags and file names alike."""

DeviceId = Annotated[str, StringConstraints(pattern=DEVICE_ID_PATTERN)]
Timestamp = Annotated[int, BeforeValidator(parse_timestamp)]

_RESERVED_FIELDS = frozenset({"device", "ts"})
_RESERVED_COLUMNS = frozenset({"device", "ts", "district", "kind", "time"})
_NAME_RE = re.compile(r"^[a-z][a-z0-9_]{0,31}$")


@dataclass(frozen=True, slots=True)
class Limit:
    """A published limit of a measure, drawn as a line on the measure's dashboard panels.

    ``bound`` says which side is wrong: ``"max"`` (above the value is too much) or
    ``"min"`` (below it is too little, as for chlorine residual or pH).
    """

    value: float
    source: str
    """Who sets it and over what averaging, e.g. ``"WHO 2021, 24-hour"``."""
    bound: Literal["max", "min"] = "max"

    def to_json(self) -> dict[str, object]:
        return {"value": self.value, "source": self.source, "bound": self.bound}


def measure(
    unit: str,
    lo: float,
    hi: float,
    description: str,
    *,
    normal: tuple[float, float],
    fiware: str | None = None,
    step: float | None = None,
    scale: str | None = None,
    max_rate: float | None = None,
    switching: bool = False,
    limits: tuple[Limit, ...] = (),
    district_total: bool = False,
) -> Any:
    """Declare one measurement: its unit, physical valid range and normal operating band.

    ``lo``/``hi`` bound what the sensor can physically report: values outside are
    rejected as ``out_of_range``. ``normal`` is the band a healthy device in a
    healthy city usually reports; simulators draw from it and dashboards colour it.
    ``fiware`` names the matching FIWARE Smart Data Models attribute for export.
    ``step`` says the sensor reports whole multiples of it (1 for counts, on/off).

    Two optional hints for anomaly detection: ``scale`` says how the measure varies
    (``"log"`` for concentrations and flows that change by factors, ``"count"`` for
    Poisson-like counts, ``"linear"``); without it the shape of the normal band
    decides. ``max_rate`` is the fastest change per hour the physical quantity can
    make (units per hour); faster changes are flagged as impossible. Without it,
    the whole normal band per reporting interval is the limit. ``switching`` marks a
    measure that jumps between levels at moments no daily profile predicts (a lamp
    switching on at dusk, a bin emptied on collection day): level-shift and noise
    detection leave it alone; spikes, stuck values and the kind's rules still apply.

    Two hints for the dashboards: ``limits`` are published limits drawn as lines
    on the measure's panels; ``district_total`` says a district is summed over its
    devices (vehicles counted, power drawn) rather than averaged (a concentration).
    """
    if not (lo <= normal[0] <= normal[1] <= hi):
        raise ValueError(f"normal band {normal} must lie inside the valid range [{lo}, {hi}]")
    if scale not in (None, "linear", "log", "count"):
        raise ValueError(f"scale {scale!r} must be 'linear', 'log' or 'count'")
    if max_rate is not None and not max_rate > 0:
        raise ValueError(f"max_rate {max_rate!r} must be positive")
    extra: dict[str, Any] = {"unit": unit, "normal": [normal[0], normal[1]]}
    if fiware is not None:
        extra["fiware"] = fiware
    if step is not None:
        extra["step"] = step
    if scale is not None:
        extra["scale"] = scale
    if max_rate is not None:
        extra["max_rate"] = max_rate
    if switching:
        extra["switching"] = True
    for limit in limits:
        if not lo <= limit.value <= hi:
            raise ValueError(
                f"limit {limit.value} ({limit.source}) lies outside the valid range [{lo}, {hi}]"
            )
    if limits:
        extra["limits"] = [limit.to_json() for limit in limits]
    if district_total:
        extra["district_total"] = True
    return Field(default=None, ge=lo, le=hi, description=description, json_schema_extra=extra)


class Reading(BaseModel):
    """One reading as a device sends it: its id, its own timestamp and its measurements.

    Strict on purpose: a string where a number belongs, a boolean, NaN or Infinity is
    a device bug that must be seen, not silently coerced. Integers are accepted and
    stored as floats so one field never changes type in the database. Unknown fields
    are kept aside (``model_extra``) for the ingest policy to ignore or reject.
    """

    model_config = ConfigDict(strict=True, extra="allow", allow_inf_nan=False, frozen=True)

    device: DeviceId | None = Field(
        default=None, description="Device id; when present it must match the topic's."
    )
    ts: Timestamp = Field(
        description="The device's own time: RFC 3339 with offset, or epoch seconds or milliseconds."
    )

    measure_names: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        cls.measure_names = tuple(n for n in cls.model_fields if n not in _RESERVED_FIELDS)

    @model_validator(mode="after")
    def _has_a_measurement(self) -> Self:
        if self.measure_names and all(getattr(self, n) is None for n in self.measure_names):
            raise ValueError("no_measurements: the reading carries none of this kind's measurements")
        return self

    def values(self) -> tuple[float, ...]:
        """The measurements in declaration order, NaN for those not reported."""
        data = self.__dict__
        return tuple(math.nan if (v := data[n]) is None else v for n in self.measure_names)


def on_off(value: object) -> object:
    """Accept the spellings of a switch state that field devices really send."""
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    if isinstance(value, str):
        lowered = value.strip().lower()
        if lowered in ("on", "true"):
            return 1.0
        if lowered in ("off", "false"):
            return 0.0
    return value


@dataclass(frozen=True, slots=True)
class Measure:
    """One measurement of a kind, as everything outside the model needs to see it."""

    name: str
    unit: str
    lo: float
    hi: float
    description: str
    normal: tuple[float, float]
    fiware: str | None
    step: float | None = None
    scale: str | None = None
    """How the quantity varies: ``linear``, ``log`` or ``count`` (None: judged from the band)."""
    max_rate: float | None = None
    """Fastest physically possible change, units per hour (None: derived from the band)."""
    switching: bool = False
    """Jumps between levels at unpredictable moments (lamp on/off, bin emptied)."""
    limits: tuple[Limit, ...] = ()
    """Published limits, drawn as lines on the measure's dashboard panels."""
    district_total: bool = False
    """A district's value is the sum over its devices (a count, a power), not their mean."""

    @property
    def is_switch(self) -> bool:
        """An on/off state reported as 0 or 1 (a lamp): dashboards count devices on and off."""
        return self.step == 1 and self.lo == 0 and self.hi == 1


@dataclass(frozen=True)
class SensorKind:
    """A sensor kind: its reading model plus what the rest of the system needs to know.

    ``measures`` is derived from the model's fields, never listed twice.
    """

    name: str
    title: str
    model: type[Reading]
    interval_s: float
    fiware_type: str
    measures: tuple[Measure, ...] = field(init=False)

    def __post_init__(self) -> None:
        if not _NAME_RE.match(self.name):
            raise ValueError(f"sensor kind name {self.name!r} must be lowercase letters, digits and '_'")
        clash = _RESERVED_COLUMNS.intersection(self.model.measure_names)
        if clash:
            raise ValueError(f"sensor kind {self.name!r}: measure names {sorted(clash)} are reserved")
        measures = tuple(_measure_of(n, self.model.model_fields[n]) for n in self.model.measure_names)
        if not measures:
            raise ValueError(f"sensor kind {self.name!r} declares no measurements")
        object.__setattr__(self, "measures", measures)

    @property
    def measure_names(self) -> tuple[str, ...]:
        return self.model.measure_names

    def index_of(self, measure_name: str) -> int:
        """Column of ``measure_name`` in this kind's value arrays."""
        return self.model.measure_names.index(measure_name)


def _measure_of(name: str, info: FieldInfo) -> Measure:
    extra = info.json_schema_extra
    if not isinstance(extra, dict) or "unit" not in extra:
        raise TypeError(f"field {name!r} must be declared with measure(...)")
    lo = hi = math.nan
    for constraint in info.metadata:
        if isinstance(constraint, annotated_types.Ge):
            lo = float(constraint.ge)  # type: ignore[arg-type]
        elif isinstance(constraint, annotated_types.Le):
            hi = float(constraint.le)  # type: ignore[arg-type]
    normal = extra["normal"]
    assert isinstance(normal, list)
    fiware = extra.get("fiware")
    step = extra.get("step")
    scale = extra.get("scale")
    max_rate = extra.get("max_rate")
    return Measure(
        name=name,
        unit=str(extra["unit"]),
        lo=lo,
        hi=hi,
        description=info.description or name,
        normal=(float(normal[0]), float(normal[1])),  # type: ignore[arg-type]
        fiware=str(fiware) if fiware is not None else None,
        step=float(step) if isinstance(step, int | float) else None,
        scale=str(scale) if scale is not None else None,
        max_rate=float(max_rate) if isinstance(max_rate, int | float) else None,
        switching=bool(extra.get("switching", False)),
        limits=tuple(_limit_of(item) for item in extra.get("limits", ()) or ()),  # type: ignore[union-attr]
        district_total=bool(extra.get("district_total", False)),
    )


def _limit_of(item: object) -> Limit:
    assert isinstance(item, dict)
    bound = item.get("bound", "max")
    assert bound in ("max", "min")
    return Limit(float(item["value"]), str(item["source"]), bound)
