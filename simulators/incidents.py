"""Staged incidents: a pipe burst, a bin fire, a pollution episode, placed in time and space.

A scenario names the incident, when it starts (an offset from the simulated
start such as ``+2h``, or an RFC 3339 time), how long it lasts, where it happens
(districts) and how many devices it hits (the ones nearest a randomly chosen
point, as a burst main affects its neighbours), or exactly which. The physics of
each incident lives with its kind's model (``simulators/models/``); here it is
placed, its intensity ramped up and down, and each affected device labelled.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from processors.registry import Registry
from processors.timestamps import parse_timestamp
from processors.units import parse_duration
from simulators.hanoi import DISTRICTS
from simulators.labels import Label, LabelSink
from simulators.models import INCIDENTS, IncidentType
from simulators.rand import stream_id
from simulators.sun import sun_times

DAY_MS = 86_400_000
MIN_LEAD_MS = 10 * 60_000


@dataclass(frozen=True)
class IncidentSpec:
    """An incident as a scenario describes it, before it is placed on a fleet."""

    type: str
    at: str | None = None
    """``+2h`` (after the simulated start) or an RFC 3339 time; default: a tenth into the run."""
    duration_s: float | None = None
    districts: tuple[str, ...] = ()
    devices: int | tuple[str, ...] | None = None
    severity: float = 1.0
    mode: str = ""

    def check(self) -> IncidentType:
        incident = INCIDENTS.get(self.type)
        if incident is None:
            raise ValueError(f"unknown incident {self.type!r}; choose from: {', '.join(INCIDENTS)}")
        if self.mode and self.mode not in incident.modes:
            modes = ", ".join(m for m in incident.modes if m) or "none"
            raise ValueError(f"{self.type} has no mode {self.mode!r}; its modes: {modes}")
        if not 0.0 < self.severity <= 5.0:
            raise ValueError(f"severity must be above 0 and at most 5, not {self.severity}")
        if self.duration_s is not None and self.duration_s <= 0:
            raise ValueError("duration must be positive")
        if isinstance(self.devices, int) and self.devices < 1:
            raise ValueError("devices must be at least 1 (or a list of device ids)")
        return incident


@dataclass(eq=False)
class PlacedIncident:
    """An incident with its time window and devices fixed, tracking what to label."""

    number: int
    type: IncidentType
    start_ms: int
    end_ms: int
    devices: NDArray[np.intp]
    """Sorted indices (within the kind) of the devices hit."""
    mask: NDArray[np.bool_]
    severity: float
    mode: str
    district: str | None
    rng: np.random.Generator = field(default_factory=np.random.default_rng)
    """The incident's own random numbers: staging it leaves the rest of the fleet unchanged."""
    first_ms: NDArray[np.int64] = field(init=False)
    last_ms: NDArray[np.int64] = field(init=False)
    readings: NDArray[np.int32] = field(init=False)
    labelled: bool = False

    def __post_init__(self) -> None:
        self.first_ms = np.full(len(self.devices), -1, dtype=np.int64)
        self.last_ms = np.full(len(self.devices), -1, dtype=np.int64)
        self.readings = np.zeros(len(self.devices), dtype=np.int32)

    @property
    def kind(self) -> str:
        return self.type.kind

    def intensity(self, ts_ms: NDArray[np.int64]) -> NDArray[np.float64]:
        """0 outside the window; inside, ramps up from the start and down towards the end."""
        inside = (ts_ms >= self.start_ms) & (ts_ms < self.end_ms)
        level = np.ones(len(ts_ms))
        if self.type.ramp_in_s > 0:
            level = np.minimum(level, (ts_ms - self.start_ms) / (self.type.ramp_in_s * 1000.0))
        if self.type.ramp_out_s > 0:
            level = np.minimum(level, (self.end_ms - ts_ms) / (self.type.ramp_out_s * 1000.0))
        # Even the first reading of an incident shows it a little, so its label is never empty.
        shown: NDArray[np.float64] = np.where(inside, np.clip(level, 0.05, 1.0), 0.0)
        return shown

    def rows(self, device: NDArray[np.intp], ts_ms: NDArray[np.int64]) -> NDArray[np.bool_]:
        hit: NDArray[np.bool_] = self.mask[device] & (ts_ms >= self.start_ms) & (ts_ms < self.end_ms)
        return hit

    def track(self, device: NDArray[np.intp], ts_ms: NDArray[np.int64]) -> None:
        """Note readings that were sent while the incident affected them (for the labels)."""
        where = np.searchsorted(self.devices, device)
        first = self.first_ms[where]
        self.first_ms[where] = np.where(first < 0, ts_ms, np.minimum(first, ts_ms))
        self.last_ms[where] = np.maximum(self.last_ms[where], ts_ms)
        self.readings[where] += 1

    def write_labels(self, registry: Registry, labels: LabelSink, truncated: bool = False) -> None:
        if self.labelled:
            return
        self.labelled = True
        table = registry.tables[self.kind]
        detail: dict[str, object] = {
            "incident": self.number,
            "severity": self.severity,
            "window_start_ms": self.start_ms,
            "window_end_ms": self.end_ms,
            "devices": len(self.devices),
        }
        if self.mode:
            detail["mode"] = self.mode
        if self.district:
            detail["district"] = self.district
        if truncated:
            detail["truncated"] = 1
        for i, dev in enumerate(self.devices.tolist()):
            if self.readings[i] == 0:
                continue
            labels.add(
                Label(
                    fault=self.type.name,
                    scope="incident",
                    device=table.devices[dev].device_id,
                    kind=self.kind,
                    field=None,
                    start_ms=int(self.first_ms[i]),
                    end_ms=int(self.last_ms[i]),
                    detail={**detail, "readings": int(self.readings[i])},
                )
            )


def incident_start(spec: IncidentSpec, run_start_ms: int, run_end_ms: int | None) -> int:
    """When the incident begins: as given, else a tenth into the run (at least 10 minutes in)."""
    if spec.at is None:
        lead = MIN_LEAD_MS if run_end_ms is None else max(MIN_LEAD_MS, (run_end_ms - run_start_ms) // 10)
        start = run_start_ms + lead
        if run_end_ms is not None and start >= run_end_ms:
            start = run_start_ms + (run_end_ms - run_start_ms) // 10
    else:
        text = spec.at.strip()
        if text.startswith("+"):
            start = run_start_ms + int(parse_duration(text[1:]) * 1000)
        else:
            start = parse_timestamp(text)
    incident = INCIDENTS[spec.type]
    if incident.starts_at_dusk and spec.at is None:
        start = _next_dusk(start)
    return start


def _next_dusk(ts_ms: int) -> int:
    """Half an hour after the first sunset at or after ``ts_ms``, when the lamps are surely lit."""
    day = ts_ms - ts_ms % DAY_MS
    for offset in range(3):
        _, sunset = sun_times(day + offset * DAY_MS)
        if sunset + 1_800_000 >= ts_ms:
            return sunset + 1_800_000
    return ts_ms


def place_incidents(
    specs: Sequence[IncidentSpec], registry: Registry, run_start_ms: int, run_end_ms: int | None, seed: int
) -> list[PlacedIncident]:
    """Fix each incident's window and devices; errors name the incident and what to change."""
    placed: list[PlacedIncident] = []
    for number, spec in enumerate(specs, start=1):
        where = f"incident {number} ({spec.type})"
        try:
            incident = spec.check()
        except ValueError as bad:
            raise ValueError(f"{where}: {bad}") from None
        table = registry.tables.get(incident.kind)
        if table is None or len(table) == 0:
            raise ValueError(
                f"{where} needs {incident.kind} devices, but the fleet has none; add --kinds {incident.kind}"
            )
        start = incident_start(spec, run_start_ms, run_end_ms)
        duration_ms = int((spec.duration_s or incident.duration_s) * 1000)
        rng = np.random.default_rng(np.random.SeedSequence([seed, stream_id("incident"), number]))
        devices, district = _choose_devices(spec, incident, registry, rng, where)
        mask = np.zeros(len(table), dtype=np.bool_)
        mask[devices] = True
        placed.append(
            PlacedIncident(
                number=number,
                type=incident,
                start_ms=start,
                end_ms=start + duration_ms,
                devices=np.sort(devices),
                mask=mask,
                severity=spec.severity,
                mode=spec.mode or incident.modes[0],
                district=district,
                rng=np.random.default_rng(
                    np.random.SeedSequence([seed, stream_id("incident-noise"), number])
                ),
            )
        )
    return placed


def _choose_devices(
    spec: IncidentSpec, incident: IncidentType, registry: Registry, rng: np.random.Generator, where: str
) -> tuple[NDArray[np.intp], str | None]:
    table = registry.tables[incident.kind]
    if isinstance(spec.devices, tuple):
        chosen = []
        for device_id in spec.devices:
            position = table.index.get(device_id)
            if position is None:
                raise ValueError(
                    f"{where}: device {device_id!r} is not a {incident.kind} device of this fleet"
                )
            chosen.append(position)
        return np.asarray(chosen, dtype=np.intp), None
    districts = [d.district for d in table.devices]
    if spec.districts:
        # A misspelt district is an error; a real one that happens to have none of these devices is not.
        real = {d.district for d in registry} | {d.name for d in DISTRICTS}
        unknown = [d for d in spec.districts if d not in real]
        if unknown:
            raise ValueError(
                f"{where}: unknown district(s) {', '.join(unknown)}; "
                f"the fleet's districts: {', '.join(sorted(real))}"
            )
        area = np.flatnonzero(np.isin(np.asarray(districts, dtype=object), list(spec.districts)))
        if area.size == 0:
            raise ValueError(
                f"{where}: the fleet has no {incident.kind} devices in {', '.join(spec.districts)}; "
                f"districts with some: {', '.join(sorted(set(districts)))}"
            )
        district = spec.districts[0] if len(spec.districts) == 1 else None
    else:
        area = np.arange(len(table))
        district = None
    count = spec.devices if isinstance(spec.devices, int) else incident.devices
    if count is None or count >= len(area):
        return area.astype(np.intp), district
    # A point-like incident: a random device of the area and its nearest neighbours.
    centre = int(area[int(rng.integers(len(area)))])
    if not spec.districts:
        district = table.devices[centre].district
        area = np.flatnonzero(np.asarray(districts, dtype=object) == district)
        if len(area) < count:
            area = np.arange(len(table))
    lat = np.array([table.devices[i].lat for i in area])
    lon = np.array([table.devices[i].lon for i in area])
    c = table.devices[centre]
    distance = (lat - c.lat) ** 2 + ((lon - c.lon) * np.cos(np.radians(c.lat))) ** 2
    nearest = area[np.argsort(distance, kind="stable")[:count]]
    return nearest.astype(np.intp), district
