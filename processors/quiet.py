"""How quiet detectors stay on real, unlabelled recordings of a known kind (Beijing's air monitors).

Real records carry no labels, but most of their hours are ordinary: a detector that
alarms on them many times a day is one the operators will mute. Each recording is
one device of a sensor kind; it is streamed through a detector set as the live
pipeline would (the kind's transforms and the device's interval), and its alarms
(episodes: where the alarm state turns on) are counted per device-day within time
spans, so that settings can be chosen on one span and confirmed on the others.

Real pollution episodes are what the standards detectors (AQI, WHO) report; the
statistical detectors are for data faults. So alarms are also counted by whether
they start in an hour of very unhealthy air (PM2.5 at or above
:data:`EPISODE_PM25`): an alarm there is the detector reacting to the city, not to
the sensor.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from processors.batch import series_batch
from processors.detectors import DETECTORS
from processors.detectors._generic_core import Setup
from processors.detectors._generic_series import GenericSeries
from processors.detectors._robust import Transform
from processors.kinds import SensorKind
from processors.realeval import Flags, Recording
from processors.registry import Device
from processors.series import typical_interval_s

DAY_MS = 86_400_000
EPISODE_PM25 = 125.5
"""µg/m³ of PM2.5 from which the air is "very unhealthy" (US EPA AQI 201 and up, the 2024 breakpoints)."""


@dataclass(frozen=True)
class Span:
    """A time window of one recording, counted on its own."""

    name: str
    recording: str
    start_ms: int
    end_ms: int
    """Exclusive."""


@dataclass(frozen=True)
class AlarmCount:
    """Alarms of one span."""

    rows: int
    device_days: float
    alarms: int
    """Alarm episodes started in the span."""
    alarm_rows: int
    in_episodes: int
    """Of the alarms, those that started in an hour of very unhealthy air."""

    def summary(self) -> dict[str, float | int]:
        per_day = self.alarms / self.device_days if self.device_days else 0.0
        return {
            "rows": self.rows,
            "device_days": round(self.device_days, 1),
            "alarms": self.alarms,
            "alarms_per_device_day": round(per_day, 4),
            "alarm_rows_percent": round(100.0 * self.alarm_rows / self.rows, 2) if self.rows else 0.0,
            "alarms_in_pollution_episodes": self.in_episodes,
        }


def count_alarms(
    recording: Recording, flags: Flags, span: Span, pm25: NDArray[np.float64] | None
) -> AlarmCount:
    """The alarms a runner raised within ``span`` of ``recording`` (``pm25``: its PM2.5 column, if any)."""
    inside = (recording.ts_ms >= span.start_ms) & (recording.ts_ms < span.end_ms)
    alarm = flags.alarm
    onset = alarm & ~np.concatenate([[False], alarm[:-1]])
    chosen = onset & inside
    episodes = 0
    if pm25 is not None:
        episodes = int(np.count_nonzero(chosen & (np.nan_to_num(pm25) >= EPISODE_PM25)))
    return AlarmCount(
        rows=int(np.count_nonzero(inside)),
        device_days=(span.end_ms - span.start_ms) / DAY_MS,
        alarms=int(np.count_nonzero(chosen)),
        alarm_rows=int(np.count_nonzero(alarm & inside)),
        in_episodes=episodes,
    )


KindRunner = Callable[[Recording, SensorKind], Flags]
"""Streams one recording of a known kind through a fresh detector set."""


def generic_on_kind(recording: Recording, kind: SensorKind) -> Flags:
    """The generic detector as it runs live on this kind: its transforms, the device's interval."""
    fields = tuple(kind.index_of(m) for m in recording.measures)
    setup = Setup.of(Transform.for_fields(kind, fields))
    series = GenericSeries(setup.transform, 1000.0 * typical_interval_s(recording.ts_ms))
    found = series.run(recording.values, recording.ts_ms)
    return Flags(alarm=found.alarm, score=found.score)


def detectors_on_kind(names: Sequence[str]) -> KindRunner:
    """The named detectors as they run live on this kind, one device; a row alarms if any alarm is on."""

    def run(recording: Recording, kind: SensorKind) -> Flags:
        columns = {m: recording.values[:, j] for j, m in enumerate(recording.measures)}
        interval = typical_interval_s(recording.ts_ms)
        device = Device(f"{kind.name}-replay", kind.name, "replay", 0.0, 0.0, None, interval)
        batch = series_batch(kind, columns, recording.ts_ms, device=device)
        alarm = np.zeros(recording.ts_ms.size, dtype=np.bool_)
        score = np.zeros(recording.ts_ms.size)
        for name in names:
            detector = DETECTORS[name](kind)
            if not detector.applies_to(kind):
                continue
            scored = detector.score(batch)
            detector.commit(scored)
            alarm |= scored.alarms().any(axis=1)
            np.maximum(score, scored.scores.max(axis=1, initial=0.0), out=score)
        return Flags(alarm=alarm, score=score)

    return run
