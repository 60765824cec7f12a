"""Each device's state for the city map: ``ok``, ``anomalous``, ``alerting`` or ``silent``.

The map needs where every device is and how it is, now, without scanning the
readings of 100,000 devices. So ingest writes a small ``devices`` measurement
through the same sink as the anomalies: one point per device when the service
starts, one whenever a device's state changes, and each device again at most
every ``CITYPULSE_DEVICES_REFRESH_S`` (refreshes are spread over that period, so
a large fleet never writes all at once). Tags ``device``, ``kind``, ``district``;
fields ``lat``, ``lon`` (from the registry) and ``state``.

A state is, strongest first:

- ``silent``: the silence detector says it stopped reporting. It comes first
  because it is what the device is now: a silent device's other alerts are held
  (not resolved) and it has a ``silence`` alert of its own, so "alerting" would
  tell the operator less.
- ``alerting``: the device has an open alert. The alerts service fills the hook
  :attr:`DeviceStates.open_alert_devices` (a callable returning the ids of devices
  with an open alert); without it, no device is alerting.
- ``anomalous``: a detector raised an alarm on it within the last
  ``CITYPULSE_DEVICES_ANOMALOUS_FOR_S``. Published limits (AQI, WHO, drinking
  water) and forecasts do not count: they describe the city, not the device.
- ``ok``: none of these.

Like the detectors, nothing changes until the cycle is stored: :meth:`stage`
computes the points, :meth:`commit` remembers what was written.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray
from pydantic import Field

from ingest.settings_section import SettingsSection
from processors.anomaly import Detection
from processors.batch import Event, ReadingBatch
from processors.detectors import Category
from processors.registry import Registry

MEASUREMENT = "devices"
STATES = ("ok", "anomalous", "alerting", "silent")
OK, ANOMALOUS, ALERTING, SILENT = range(len(STATES))
NEVER = np.iinfo(np.int64).min // 2
NOT_DEVICE_FAULTS = frozenset({Category.STANDARD, Category.FORECAST})
"""Alarms that say something about the city, not about the device that measured it."""
SILENCE = "silence"


class DeviceStateSettings(SettingsSection):
    """The ``devices`` measurement behind the city map (``CITYPULSE_DEVICES_*``)."""

    refresh_s: float = Field(
        default=600.0,
        ge=10,
        description="Every device's state is written again this often, besides on every change.",
    )
    anomalous_for_s: float = Field(
        default=900.0,
        ge=0,
        description="A device stays 'anomalous' on the map this long after its last alarm.",
    )


def no_open_alerts() -> Collection[str]:
    """The hook's default: no device has an open alert."""
    return frozenset()


@dataclass
class _KindState:
    last_alarm_ms: NDArray[np.int64]
    silent: NDArray[np.bool_]
    written: NDArray[np.int8]
    """The state last written per device; -1 before the first write."""
    next_refresh_ms: NDArray[np.int64]

    @classmethod
    def empty(cls, n: int) -> _KindState:
        return cls(
            np.full(n, NEVER, dtype=np.int64),
            np.zeros(n, dtype=np.bool_),
            np.full(n, -1, dtype=np.int8),
            np.zeros(n, dtype=np.int64),
        )

    def grown(self, n: int) -> _KindState:
        have = self.silent.shape[0]
        if n <= have:
            return self
        more = _KindState.empty(n - have)
        return _KindState(
            np.concatenate([self.last_alarm_ms, more.last_alarm_ms]),
            np.concatenate([self.silent, more.silent]),
            np.concatenate([self.written, more.written]),
            np.concatenate([self.next_refresh_ms, more.next_refresh_ms]),
        )


@dataclass
class StagedStates:
    """A cycle's ``devices`` points and the per-kind arrays to keep if the cycle is stored."""

    events: tuple[Event, ...] = ()
    kinds: dict[str, _KindState] = field(default_factory=dict)


class DeviceStates:
    """Tracks every registered device's state and writes the changes."""

    def __init__(
        self,
        registry: Registry,
        settings: DeviceStateSettings | None = None,
        open_alert_devices: Callable[[], Collection[str]] = no_open_alerts,
    ) -> None:
        self.registry = registry
        self.settings = settings or DeviceStateSettings()
        self.open_alert_devices = open_alert_devices
        """Hook for the alerts service: the ids of devices with an open alert."""
        self._kinds: dict[str, _KindState] = {name: _KindState.empty(0) for name in registry.tables}

    def stage(self, detection: Detection, batches: Mapping[str, ReadingBatch], now_ms: int) -> StagedStates:
        """The points this cycle must write: changed states and refreshes due; nothing kept yet."""
        hold_ms = int(self.settings.anomalous_for_s * 1000)
        refresh_ms = int(self.settings.refresh_s * 1000)
        work = {
            name: self._state(name).grown(len(table))
            for name, table in self.registry.tables.items()
            if len(table)
        }
        work = {
            name: _KindState(
                s.last_alarm_ms.copy(), s.silent.copy(), s.written.copy(), s.next_refresh_ms.copy()
            )
            for name, s in work.items()
        }
        for kind_name, scored, _ in detection.scored:
            state = work.get(kind_name)
            if state is None:
                continue
            alarming = scored.alarms().any(axis=1)
            if scored.detector.name == SILENCE:
                state.silent[scored.device] = alarming
            elif scored.detector.category not in NOT_DEVICE_FAULTS and alarming.any():
                devices = scored.device[alarming]
                state.last_alarm_ms[devices] = np.maximum(state.last_alarm_ms[devices], now_ms)
        for name, batch in batches.items():
            if name in work and len(batch):
                work[name].silent[batch.device] = False  # heard from in this very cycle: not silent
        alerting = self._alerting()
        events: list[Event] = []
        for kind_name, state in work.items():
            n = state.silent.shape[0]
            code = np.full(n, OK, dtype=np.int8)
            code[now_ms - state.last_alarm_ms < hold_ms] = ANOMALOUS
            if kind_name in alerting:
                code[alerting[kind_name]] = ALERTING
            code[state.silent] = SILENT
            first = state.written < 0
            due = (code != state.written) | (state.next_refresh_ms <= now_ms)
            positions = np.flatnonzero(due)
            if positions.size == 0:
                continue
            # The first write spreads the next refreshes over one period; later ones keep their place.
            spread = (refresh_ms * (positions + 1)) // n
            state.next_refresh_ms[positions] = now_ms + np.where(first[positions], spread, refresh_ms)
            state.written[positions] = code[positions]
            table = self.registry.tables[kind_name].devices
            for position, value in zip(positions.tolist(), code[positions].tolist(), strict=True):
                device = table[position]
                events.append(
                    Event(
                        MEASUREMENT,
                        now_ms,
                        tags={"device": device.device_id, "kind": kind_name, "district": device.district},
                        fields={"lat": device.lat, "lon": device.lon, "state": STATES[value]},
                    )
                )
        return StagedStates(tuple(events), work)

    def commit(self, staged: StagedStates) -> None:
        """Remember what a stored cycle wrote."""
        self._kinds.update(staged.kinds)

    def states(self) -> dict[str, str]:
        """The last written state of every device written so far (for tests and the live view)."""
        found: dict[str, str] = {}
        for kind_name, state in self._kinds.items():
            devices = self.registry.tables[kind_name].devices
            for position, value in enumerate(state.written.tolist()):
                if value >= 0:
                    found[devices[position].device_id] = STATES[value]
        return found

    def _state(self, kind_name: str) -> _KindState:
        return self._kinds.setdefault(kind_name, _KindState.empty(0))

    def _alerting(self) -> dict[str, NDArray[np.intp]]:
        positions: dict[str, list[int]] = {}
        for device_id in self.open_alert_devices():
            device = self.registry.get(device_id)
            if device is not None:
                positions.setdefault(device.kind, []).append(
                    self.registry.tables[device.kind].index[device_id]
                )
        return {kind: np.asarray(found, dtype=np.intp) for kind, found in positions.items()}
