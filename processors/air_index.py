"""Hourly air-quality indices per monitor, as points of the ``aqi`` measurement.

The city's dashboards show VN_AQI and the US AQI by district, and neither can be
computed in InfluxQL (piecewise-linear tables, a 12-hour NowCast). So the indices
are computed here, once per monitor and hour, with the same tables and sub-index
rules as the ``aqi_vn`` and ``aqi_us`` detectors (:mod:`processors.aqi`), and
stored beside the readings: one point per device when an hour closes, stamped
with the start of that hour, tagged ``device`` and ``district`` like the
readings. Fields: ``vn_aqi`` and ``us_aqi`` (the highest sub-index), and each
pollutant's sub-index as ``vn_<pollutant>`` and ``us_<pollutant>``.

Like the detectors, nothing is learned until the cycle is stored:
:meth:`AirIndex.stage` works on copies of the touched devices' hours,
:meth:`AirIndex.commit` keeps them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from processors.batch import Event, ReadingBatch
from processors.detectors._hourly import HOUR_MS, advance
from processors.detectors.aqi_us import UsAqiDetector, us_sub_index
from processors.detectors.aqi_vn import VnAqiDetector, vn_sub_index
from processors.kinds import KINDS, SensorKind
from processors.registry import Registry

MEASUREMENT = "aqi"
HOURS_KEPT = 12
"""The NowCast of PM2.5 and PM10 looks back 12 hours."""

State = dict[str, NDArray[Any]]


def applies_to(kind: SensorKind) -> bool:
    """Kinds that measure particulates get indices (the VN_AQI needs at least one PM)."""
    return "pm25" in kind.measure_names or "pm10" in kind.measure_names


def pollutants_of(kind: SensorKind) -> tuple[str, ...]:
    """The kind's measures either index covers, in declaration order."""
    covered = set(VnAqiDetector.POLLUTANTS) | set(UsAqiDetector.POLLUTANTS)
    return tuple(name for name in kind.measure_names if name in covered)


def index_fields(kind: SensorKind) -> tuple[str, ...]:
    """Every field the ``aqi`` points of this kind can carry, for the dashboards and the rollup."""
    names = ["vn_aqi", "us_aqi"]
    for pollutant in pollutants_of(kind):
        if pollutant in VnAqiDetector.POLLUTANTS:
            names.append(f"vn_{pollutant}")
        if pollutant in UsAqiDetector.POLLUTANTS:
            names.append(f"us_{pollutant}")
    return tuple(names)


def _empty(devices: int, pollutants: int) -> State:
    return {
        "hours": np.full((devices, pollutants, HOURS_KEPT), np.nan, dtype=np.float32),
        "hour_sum": np.zeros((devices, pollutants), dtype=np.float32),
        "hour_count": np.zeros((devices, pollutants), dtype=np.uint16),
        "hour": np.full(devices, -1, dtype=np.int64),
    }


@dataclass
class Staged:
    """A cycle's index points and the hours they leave behind, kept only if the cycle is stored."""

    events: tuple[Event, ...] = ()
    rows: dict[str, tuple[NDArray[np.intp], State]] = field(default_factory=dict)


class AirIndex:
    """VN_AQI and US AQI per air monitor and hour.

    >>> import numpy as np
    >>> from processors.batch import series_batch
    >>> from processors.kinds import get_kind
    >>> kind = get_kind("air")
    >>> batch = series_batch(kind, {"pm25": np.full(181, 50.0)})  # three hours at 50 µg/m³, one reading after
    >>> index = AirIndex(Registry([batch.table.devices[0]]))
    >>> staged = index.stage({"air": batch})
    >>> [(e.tags["device"], e.fields["vn_aqi"], e.fields["us_aqi"]) for e in staged.events][-1]
    ('air-series', 100.0, 137.0)
    """

    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        self.pollutants = {
            name: pollutants_of(kind)
            for name, kind in KINDS.items()
            if applies_to(kind) and pollutants_of(kind)
        }
        self._state: dict[str, State] = {name: _empty(0, len(p)) for name, p in self.pollutants.items()}

    def _grown(self, kind_name: str) -> State:
        state = self._state[kind_name]
        devices = len(self.registry.tables[kind_name])
        have = state["hour"].shape[0]
        if devices > have:
            more = _empty(devices - have, len(self.pollutants[kind_name]))
            state = {key: np.concatenate([state[key], more[key]]) for key in state}
            self._state[kind_name] = state
        return state

    def stage(self, batches: Mapping[str, ReadingBatch]) -> Staged:
        """The index points of hours this cycle's readings close; nothing is kept yet."""
        staged = Staged()
        events: list[Event] = []
        for kind_name, pollutants in self.pollutants.items():
            batch = batches.get(kind_name)
            if batch is None or len(batch) == 0:
                continue
            state = self._grown(kind_name)
            touched, local_of_row = np.unique(batch.device, return_inverse=True)
            local = {key: value[touched].copy() for key, value in state.items()}
            columns = [batch.kind.index_of(p) for p in pollutants]
            values = batch.values[:, columns]
            for rows in _rounds(local_of_row):
                devices = local_of_row[rows]
                part = {key: value[devices] for key, value in local.items()}
                closing_hour = part["hour"].copy()
                closed, ring = advance(part, batch.ts_ms[rows], values[rows])
                for key, value in part.items():
                    local[key][devices] = value
                if ring.shape[0]:
                    positions = touched[devices[closed]]
                    events.extend(self._points(kind_name, pollutants, positions, closing_hour[closed], ring))
            staged.rows[kind_name] = (touched, local)
        staged.events = tuple(events)
        return staged

    def commit(self, staged: Staged) -> None:
        """Keep the hours of a stored cycle."""
        for kind_name, (touched, local) in staged.rows.items():
            state = self._grown(kind_name)
            for key, value in local.items():
                state[key][touched] = value

    def _points(
        self,
        kind_name: str,
        pollutants: tuple[str, ...],
        positions: NDArray[np.intp],
        hours: NDArray[np.int64],
        ring: NDArray[np.float64],
    ) -> Iterable[Event]:
        vn: dict[str, NDArray[np.float64]] = {}
        us: dict[str, NDArray[np.float64]] = {}
        for j, pollutant in enumerate(pollutants):
            hourly = ring[:, j, :]
            if pollutant in VnAqiDetector.POLLUTANTS:
                vn[pollutant] = vn_sub_index(pollutant, hourly)
            if pollutant in UsAqiDetector.POLLUTANTS:
                us[pollutant] = us_sub_index(pollutant, hourly)
        devices = self.registry.tables[kind_name].devices
        for i, position in enumerate(positions.tolist()):
            fields: dict[str, float | int | str | bool] = {}
            for prefix, table in (("vn", vn), ("us", us)):
                present = {p: float(v[i]) for p, v in table.items() if not np.isnan(v[i])}
                if present:
                    fields[f"{prefix}_aqi"] = max(present.values())
                    fields |= {f"{prefix}_{p}": v for p, v in present.items()}
            if not fields:
                continue
            device = devices[position]
            yield Event(
                MEASUREMENT,
                int(hours[i]) * HOUR_MS,
                tags={"device": device.device_id, "district": device.district},
                fields=fields,
            )

    # --- restarts ---------------------------------------------------------------------------
    def state(self) -> dict[str, NDArray[Any]]:
        """Flat named arrays (``kind/name``, device ids included) for ``np.savez``."""
        flat: dict[str, NDArray[Any]] = {}
        for kind_name in self.pollutants:
            state = self._grown(kind_name)
            table = self.registry.tables[kind_name]
            if not len(table):
                continue
            flat[f"{kind_name}/device_ids"] = np.array([d.device_id for d in table.devices])
            for key, value in state.items():
                flat[f"{kind_name}/{key}"] = value
        return flat

    def restore(self, flat: Mapping[str, NDArray[Any]]) -> int:
        """Take back :meth:`state` for the devices still registered; returns how many."""
        restored = 0
        for kind_name, pollutants in self.pollutants.items():
            ids = flat.get(f"{kind_name}/device_ids")
            if ids is None:
                continue
            saved = {key: flat.get(f"{kind_name}/{key}") for key in _empty(0, 0)}
            if any(v is None or v.shape[0] != ids.shape[0] for v in saved.values()):
                continue
            if saved["hours"] is not None and saved["hours"].shape[1:] != (len(pollutants), HOURS_KEPT):
                continue
            state = self._grown(kind_name)
            index = self.registry.tables[kind_name].index
            for row, device_id in enumerate(ids.tolist()):
                position = index.get(device_id)
                if position is None:
                    continue
                for key, value in saved.items():
                    assert value is not None
                    state[key][position] = value[row]
                restored += 1
        return restored


def _rounds(device: NDArray[np.intp]) -> Iterable[NDArray[np.intp]]:
    """Rows in rounds: round ``r`` holds each device's ``r``-th reading, in arrival order."""
    order = np.argsort(device, kind="stable")
    ranked = device[order]
    starts = np.flatnonzero(np.r_[True, ranked[1:] != ranked[:-1]])
    rank = np.empty(device.size, dtype=np.intp)
    rank[order] = np.arange(device.size) - np.repeat(starts, np.diff(np.r_[starts, device.size]))
    by_round = np.argsort(rank, kind="stable")
    yield from np.split(by_round, np.flatnonzero(np.diff(rank[by_round])) + 1) if device.size else ()
