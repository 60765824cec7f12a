"""Area rules: one alert for a district, not one per device that sees the same thing.

An area rule's condition holds for a district when at least ``min_devices`` of
its devices (of the rule's kinds) see the device-level condition, and they are
at least ``min_share`` of the district's devices that are reporting (registered
devices minus the silent ones). VN_AQI above 150 at half of a district's
stations is one district alert; a burst main three sensors see is one alert.

Each cycle keeps, per district, how many devices see the condition, how many
are silent, and how many saw it and then went silent (:class:`AreaCounts`): a
district whose devices all went silent, or all of whose seeing devices did, is
held as it was, neither raised nor resolved.

Across several ingest processes an area rule is exact only if one process sees
every device of the district (``docs/alerts.md``, "Several ingest processes").
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from processors.alerts.rules import AreaSpec
from processors.alerts.state import Member, SilentDevice
from processors.registry import Registry


@dataclass(frozen=True)
class AreaIndex:
    """How many devices of each kind each district has, and where the district's devices are."""

    sizes: dict[tuple[str, str], int] = field(default_factory=dict)
    centres: dict[tuple[str, str], tuple[float, float]] = field(default_factory=dict)

    @classmethod
    def of(cls, registry: Registry) -> AreaIndex:
        sums: dict[tuple[str, str], list[float]] = {}
        for device in registry:
            entry = sums.setdefault((device.kind, device.district), [0.0, 0.0, 0.0])
            entry[0] += 1
            entry[1] += device.lat
            entry[2] += device.lon
        return cls(
            sizes={key: int(n) for key, (n, _, _) in sums.items()},
            centres={key: (lat / n, lon / n) for key, (n, lat, lon) in sums.items()},
        )

    def size(self, kinds: Iterable[str], district: str) -> int:
        return sum(self.sizes.get((kind, district), 0) for kind in kinds)

    def centre(self, kinds: Iterable[str], district: str) -> tuple[float | None, float | None]:
        """The mean position of the district's devices of ``kinds`` (None if it has none)."""
        found = [
            (self.sizes[(k, district)], self.centres[(k, district)])
            for k in kinds
            if (k, district) in self.sizes
        ]
        n = sum(count for count, _ in found)
        if not n:
            return None, None
        return (
            sum(count * lat for count, (lat, _) in found) / n,
            sum(count * lon for count, (_, lon) in found) / n,
        )


def area_holds(spec: AreaSpec, count: int, total: int) -> bool:
    """Whether ``count`` of ``total`` reporting devices seeing the condition makes it the district's.

    >>> area_holds(AreaSpec(min_share=0.5, min_devices=2), 3, 6), area_holds(AreaSpec(min_share=0.5), 2, 6)
    (True, False)
    """
    return total > 0 and count >= spec.min_devices and count >= spec.min_share * total


def area_value(spec: AreaSpec, count: int, total: int) -> tuple[float, float]:
    """The (value, limit) an area alert reports: share and ``min_share``, else count and ``min_devices``."""
    if spec.min_share > 0:
        return (round(count / total, 4) if total else 0.0), spec.min_share
    return float(count), float(spec.min_devices)


class AreaCounts:
    """Per district of one area rule: devices seeing the condition, silent ones, and the reporting total."""

    def __init__(self) -> None:
        self.seeing: dict[str, int] = {}
        self.unheard: dict[str, int] = {}
        """Devices that saw the condition and then went silent."""
        self.silent: dict[str, int] = {}

    @classmethod
    def of(
        cls, kinds: Iterable[str], members: Mapping[str, Member], silent: Mapping[str, SilentDevice]
    ) -> AreaCounts:
        """The counts of a rule over ``kinds`` with these ``members`` (by device) and silent devices."""
        counts = cls()
        for device, m in members.items():
            counts.member(m.district, True, device in silent)
        for s in silent.values():
            if s.kind in kinds:
                counts.silent[s.district] = counts.silent.get(s.district, 0) + 1
        return counts

    def member(self, district: str, joined: bool, silent: bool) -> None:
        tally = self.unheard if silent else self.seeing
        tally[district] = tally.get(district, 0) + (1 if joined else -1)

    def silenced(self, district: str, is_member: bool, silent: bool) -> None:
        step = 1 if silent else -1
        self.silent[district] = self.silent.get(district, 0) + step
        if is_member:
            self.seeing[district] = self.seeing.get(district, 0) - step
            self.unheard[district] = self.unheard.get(district, 0) + step

    def unknown(self, district: str, size: int) -> bool:
        """Nothing can be said: every device went silent, or every device that saw it did."""
        if size - self.silent.get(district, 0) <= 0:
            return True
        return self.seeing.get(district, 0) == 0 and self.unheard.get(district, 0) > 0
