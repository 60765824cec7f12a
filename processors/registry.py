"""The device registry: which devices exist, of what kind, and where.

Readings from devices that are not here are rejected, never stored: the registry
is what keeps a typo or a rogue publisher from creating new series (and new
InfluxDB cardinality) in the city's database. Within a kind every device gets a
dense, stable index so detector state can live in plain numpy arrays.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date

import numpy as np
from numpy.typing import NDArray

from processors.kinds import KINDS, SensorKind
from processors.kinds.base import DEVICE_ID_PATTERN

_DEVICE_ID_RE = re.compile(DEVICE_ID_PATTERN)
_DISTRICT_RE = re.compile(r"^[^\x00-\x1f\x7f,\"\\]{1,64}$")

REGISTRY_COLUMNS = ("device_id", "kind", "district", "lat", "lon", "install_date", "interval_s", "gateway")
"""Columns of the registry file, in order; the last three may be empty (or absent)."""


class RegistryError(ValueError):
    """A registry row is unusable; the message names the row and the fix."""


@dataclass(frozen=True, slots=True)
class Device:
    """One registered device."""

    device_id: str
    kind: str
    district: str
    lat: float
    lon: float
    install_date: date | None = None
    interval_s: float | None = None
    gateway: str | None = None
    """The gateway allowed to forward this device's readings (None: the device publishes only itself).

    A gateway's batch may carry readings only for the devices that name it here, so
    one stolen gateway cannot speak for the whole city.
    """

    def check(self) -> None:
        """Raise ``RegistryError`` unless every attribute is usable downstream."""
        if not _DEVICE_ID_RE.match(self.device_id):
            raise RegistryError(
                f"device id {self.device_id!r} must be 1-64 letters, digits, '_', '.', ':' or '-'"
            )
        if self.kind not in KINDS:
            raise RegistryError(
                f"device {self.device_id}: unknown kind {self.kind!r}; known kinds: {', '.join(KINDS)}"
            )
        if not _DISTRICT_RE.match(self.district):
            raise RegistryError(
                f"device {self.device_id}: district {self.district!r} must be 1-64 printable characters"
            )
        if not (math.isfinite(self.lat) and -90 <= self.lat <= 90):
            raise RegistryError(f"device {self.device_id}: latitude {self.lat} is not in [-90, 90]")
        if not (math.isfinite(self.lon) and -180 <= self.lon <= 180):
            raise RegistryError(f"device {self.device_id}: longitude {self.lon} is not in [-180, 180]")
        if self.interval_s is not None and not (math.isfinite(self.interval_s) and self.interval_s > 0):
            raise RegistryError(f"device {self.device_id}: interval_s {self.interval_s} must be > 0")
        if self.gateway is not None and not _DEVICE_ID_RE.match(self.gateway):
            raise RegistryError(
                f"device {self.device_id}: gateway id {self.gateway!r} must be 1-64 letters, digits, "
                "'_', '.', ':' or '-'"
            )
        if self.gateway == self.device_id:
            raise RegistryError(
                f"device {self.device_id}: a device is not its own gateway; leave the gateway column empty"
            )

    def to_row(self) -> dict[str, str]:
        return {
            "device_id": self.device_id,
            "kind": self.kind,
            "district": self.district,
            "lat": f"{self.lat:.6f}",
            "lon": f"{self.lon:.6f}",
            "install_date": self.install_date.isoformat() if self.install_date else "",
            "interval_s": f"{self.interval_s:g}" if self.interval_s is not None else "",
            "gateway": self.gateway or "",
        }

    @classmethod
    def from_row(cls, row: Mapping[str, object], where: str) -> Device:
        """Build a device from a CSV/JSON row; ``where`` says which row, for errors."""
        try:
            device_id = str(row["device_id"]).strip()
            kind = str(row["kind"]).strip()
            district = str(row["district"]).strip()
            lat = float(row["lat"])  # type: ignore[arg-type]
            lon = float(row["lon"])  # type: ignore[arg-type]
        except KeyError as missing:
            raise RegistryError(
                f"{where}: missing column {missing}; columns are {', '.join(REGISTRY_COLUMNS)}"
            ) from None
        except (TypeError, ValueError) as bad:
            raise RegistryError(f"{where}: {bad}") from None
        install_raw = str(row.get("install_date") or "").strip()
        interval_raw = str(row.get("interval_s") or "").strip()
        gateway = str(row.get("gateway") or "").strip() or None
        try:
            install = date.fromisoformat(install_raw) if install_raw else None
            interval = float(interval_raw) if interval_raw else None
        except ValueError as bad:
            raise RegistryError(f"{where}: {bad}") from None
        device = cls(device_id, kind, district, lat, lon, install, interval, gateway)
        try:
            device.check()
        except RegistryError as bad:
            raise RegistryError(f"{where}: {bad}") from None
        return device


@dataclass
class DeviceTable:
    """The devices of one kind, indexed densely in registration order."""

    kind: SensorKind
    devices: list[Device] = field(default_factory=list)
    index: dict[str, int] = field(default_factory=dict)
    _coordinates: tuple[NDArray[np.float64], NDArray[np.float64]] = field(
        default_factory=lambda: (np.zeros(0), np.zeros(0)), init=False, repr=False, compare=False
    )

    def __len__(self) -> int:
        return len(self.devices)

    def add(self, device: Device) -> int:
        position = len(self.devices)
        self.devices.append(device)
        self.index[device.device_id] = position
        return position

    def interval_s(self, position: int) -> float:
        """The device's reporting interval, falling back to its kind's."""
        own = self.devices[position].interval_s
        return own if own is not None else self.kind.interval_s

    def coordinates(self) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """Every device's latitude and longitude, as arrays indexed like the table.

        Built once per size: devices are only ever appended, and detectors that need
        where a device is (the sun over a lamp, a road's local day) read it every round.
        """
        if self._coordinates[0].size != len(self.devices):
            self._coordinates = (
                np.array([d.lat for d in self.devices], dtype=np.float64),
                np.array([d.lon for d in self.devices], dtype=np.float64),
            )
        return self._coordinates


class Registry:
    """All registered devices, by id and by kind."""

    def __init__(self, devices: Iterable[Device] = ()) -> None:
        self.tables: dict[str, DeviceTable] = {name: DeviceTable(kind) for name, kind in KINDS.items()}
        self._by_id: dict[str, Device] = {}
        for device in devices:
            self.add(device)

    def add(self, device: Device) -> None:
        """Register ``device``; re-adding an identical device is a no-op."""
        device.check()
        existing = self._by_id.get(device.device_id)
        if existing is not None:
            if existing == device:
                return
            raise RegistryError(
                f"device id {device.device_id!r} is registered twice with different attributes"
            )
        self._by_id[device.device_id] = device
        self.tables[device.kind].add(device)

    def get(self, device_id: str) -> Device | None:
        return self._by_id.get(device_id)

    def __contains__(self, device_id: object) -> bool:
        return device_id in self._by_id

    def __len__(self) -> int:
        return len(self._by_id)

    def __iter__(self) -> Iterator[Device]:
        return iter(self._by_id.values())

    def gateways(self) -> dict[str, list[Device]]:
        """Every gateway named in the registry, with the devices behind it (in registration order)."""
        behind: dict[str, list[Device]] = {}
        for device in self._by_id.values():
            if device.gateway is not None:
                behind.setdefault(device.gateway, []).append(device)
        return behind

    def counts(self) -> dict[str, int]:
        """Number of devices per kind."""
        return {name: len(table) for name, table in self.tables.items()}
