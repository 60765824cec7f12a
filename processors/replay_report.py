"""What a replay of real records says: alarms per device-day by detector, per part, and the episodes.

Real records have no labels, so a replay is judged two ways:

- **Alarm rates.** Onsets (the first alarm of a run, what becomes an event) per
  device-day, by detector, for each device and each *part* of the records (a
  named span of dates: a development part to choose settings on, a confirmation
  part looked at once). On a healthy monitor the sensor-fault detectors should be
  quiet; what they do raise is either a real fault in the records or a detector
  misreading real behaviour, and only a look at the data tells which.
- **Episodes.** For air monitors, the days whose daily VN_AQI (from the records
  themselves, :mod:`processors.aqi_daily`) is above 150, and how many of them the
  standards detectors alarmed on (an alarming score on a reading of that local day).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, tzinfo
from typing import Any

import numpy as np
from numpy.typing import NDArray

from processors.aqi_daily import DAY_MS, daily_vn_aqi, local_ms
from processors.detectors import Category
from processors.recordings import Recording
from processors.registry import Registry
from processors.replay import AlarmLog
from processors.timestamps import format_rfc3339

EPISODE_LEVEL = 150.0
"""Daily VN_AQI above this is an episode day: "Xấu" (bad) or worse, felt by everyone."""
EPISODE_DETECTORS = ("aqi_vn", "who_air", "aqi_us")
ALL = "all"


@dataclass(frozen=True, slots=True)
class AlertRecord:
    """One alert event of a replay, as the alert service emitted it."""

    alert_id: str
    event: str
    """``fired``, ``escalated``, ``acknowledged``, ``flapping`` or ``resolved``."""
    at_ms: int
    rule: str
    kind: str
    device: str
    """Empty for an area alert (a district's)."""
    district: str


@dataclass(frozen=True, slots=True)
class AlertSpan:
    """When one alert was open: from its firing to its resolution (or the end of the replay)."""

    rule: str
    device: str
    district: str
    start_ms: int
    end_ms: int


def alert_spans(history: Sequence[AlertRecord], end_ms: int) -> list[AlertSpan]:
    """The open spans of the alerts in ``history`` (an alert still open at the end runs to ``end_ms``).

    >>> spans = alert_spans([AlertRecord("a", "fired", 10, "r", "air", "", "X"),
    ...                      AlertRecord("a", "resolved", 50, "r", "air", "", "X")], 99)
    >>> [(s.district, s.start_ms, s.end_ms) for s in spans]
    [('X', 10, 50)]
    """
    opened: dict[str, AlertRecord] = {}
    spans: list[AlertSpan] = []
    for record in history:
        if record.event == "fired" and record.alert_id not in opened:
            opened[record.alert_id] = record
        elif record.event == "resolved" and record.alert_id in opened:
            first = opened.pop(record.alert_id)
            spans.append(AlertSpan(first.rule, first.device, first.district, first.at_ms, record.at_ms))
    for first in opened.values():
        spans.append(AlertSpan(first.rule, first.device, first.district, first.at_ms, end_ms))
    return spans


@dataclass(frozen=True, slots=True)
class Part:
    """A named span of the records, ``[start_ms, end_ms)``, optionally of some devices only."""

    name: str
    start_ms: int
    end_ms: int
    devices: frozenset[str] = frozenset()
    """Devices the part covers; empty: every device."""

    def covers(self, device: str) -> bool:
        return not self.devices or device in self.devices


def parse_part(text: str, tz: tzinfo) -> Part:
    """``NAME=START..END`` (local dates in ``tz``, END exclusive), optionally ``@DEVICE+DEVICE``.

    >>> from datetime import UTC
    >>> part = parse_part("dev=2013-03-01..2015-03-01@Dongsi", UTC)
    >>> part.name, part.end_ms - part.start_ms == 730 * 86_400_000, sorted(part.devices)
    ('dev', True, ['Dongsi'])
    """
    name, equals, rest = text.partition("=")
    span, at, devices = rest.partition("@")
    start_text, dots, end_text = span.partition("..")
    if not equals or not dots or not name.strip():
        raise ValueError(
            f"--part {text!r}: write NAME=START..END or NAME=START..END@DEVICE+DEVICE, "
            "e.g. dev=2013-03-01..2015-03-01"
        )
    try:
        start = _local_midnight_ms(start_text.strip(), tz)
        end = _local_midnight_ms(end_text.strip(), tz)
    except ValueError as bad:
        raise ValueError(f"--part {text!r}: {bad}; dates are YYYY-MM-DD") from None
    if end <= start:
        raise ValueError(f"--part {text!r}: the end must come after the start")
    chosen = frozenset(d.strip() for d in devices.split("+") if d.strip()) if at else frozenset()
    return Part(name.strip(), start, end, chosen)


def _local_midnight_ms(text: str, tz: tzinfo) -> int:
    return round(datetime.combine(date.fromisoformat(text), time(0), tz).timestamp() * 1000)


@dataclass
class PartReport:
    """One device over one part."""

    part: str
    device: str
    device_days: float
    readings: int = 0
    onsets: Counter[str] = field(default_factory=Counter)
    categories: dict[str, str] = field(default_factory=dict)
    episode_days: int = 0
    """Days with a daily VN_AQI above 150."""
    index_days: int = 0
    """Days with a daily VN_AQI at all (enough hourly values)."""
    episodes_alarmed: Counter[str] = field(default_factory=Counter)
    """Episode days with an alarm of each standards detector."""
    episodes_alerted: int | None = None
    """Episode days on which an alert of a standards rule was open for the device or its district
    (None: the replay raised no alerts)."""
    alerts: Counter[str] = field(default_factory=Counter)
    """Alerts fired in the part that concern the device (its own, or its district's), by rule."""

    def per_device_day(self) -> dict[str, float]:
        days = self.device_days
        return {name: round(n / days, 4) if days else float("nan") for name, n in sorted(self.onsets.items())}

    def as_dict(self) -> dict[str, Any]:
        found: dict[str, Any] = {
            "part": self.part,
            "device": self.device,
            "device_days": round(self.device_days, 2),
            "readings": self.readings,
            "onsets": dict(sorted(self.onsets.items())),
            "per_device_day": self.per_device_day(),
            "categories": dict(sorted(self.categories.items())),
        }
        if self.index_days:
            found["daily_vn_aqi_days"] = self.index_days
            found["episode_days"] = self.episode_days
            found["episode_days_alarmed"] = {d: self.episodes_alarmed.get(d, 0) for d in EPISODE_DETECTORS}
        if self.episodes_alerted is not None:
            found["alerts_fired"] = dict(sorted(self.alerts.items()))
            if self.index_days:
                found["episode_days_alerted"] = self.episodes_alerted
        return found


def report(
    recording: Recording,
    alarms: AlarmLog,
    parts: Sequence[Part],
    tz: tzinfo,
    interval_s: Mapping[str, float],
    alerts: Sequence[AlertSpan] | None = None,
    districts: Mapping[str, str] | None = None,
    episode_rules: frozenset[str] = frozenset(),
) -> list[PartReport]:
    """Alarm onsets per device-day and episode days, for every (part, device) and each device overall.

    Given the replay's ``alerts`` (with each device's district, and the rules that
    speak of the standards detectors), an episode day is *alerted* when one of those
    rules' alerts for the device, or for its district, was open at some moment of it.
    """
    arrays = alarms.arrays()
    device_of_alarm = np.asarray(arrays["device"]).astype(str)
    ts_of_alarm = np.asarray(arrays["ts_ms"], dtype=np.int64)
    onset = np.asarray(arrays["onset"], dtype=np.bool_)
    code = np.asarray(arrays["detector"], dtype=np.int16)
    names = np.array([*alarms.detectors, ""], dtype=object)
    categories = {n: str(c) for n, c in zip(alarms.detectors, alarms.categories, strict=True)}
    episodes = _episode_days(recording, tz)
    local_day_of_alarm = local_ms(ts_of_alarm, tz) // DAY_MS
    found: list[PartReport] = []
    for index, device in enumerate(recording.devices):
        rows = recording.of_device(index)
        if rows.size == 0:
            continue
        ts = recording.ts_ms[rows]
        first, last = int(ts[0]), int(ts[-1]) + round(interval_s.get(device, 0.0) * 1000)
        mine = device_of_alarm == device
        spans = [(ALL, first, last)] + [(p.name, p.start_ms, p.end_ms) for p in parts if p.covers(device)]
        for name, start, end in spans:
            lo, hi = max(first, start), min(last, end)
            if hi <= lo:
                continue
            entry = PartReport(name, device, (hi - lo) / DAY_MS, int(((ts >= lo) & (ts < hi)).sum()))
            inside = mine & (ts_of_alarm >= lo) & (ts_of_alarm < hi)
            entry.onsets.update(Counter(names[code[inside & onset]].tolist()))
            entry.categories = {n: categories[n] for n in entry.onsets}
            days = episodes.get(device)
            if days is not None:
                index_days, episode = days
                first_day, last_day = _day_range(lo, hi, tz)
                in_part = (episode >= first_day) & (episode < last_day)
                entry.index_days = int(((index_days >= first_day) & (index_days < last_day)).sum())
                entry.episode_days = int(in_part.sum())
                for detector in EPISODE_DETECTORS:
                    alarmed_days = np.unique(local_day_of_alarm[mine & (names[code] == detector)])
                    entry.episodes_alarmed[detector] = int(np.isin(episode[in_part], alarmed_days).sum())
            if alerts is not None:
                district = (districts or {}).get(device, "")
                concerning = [
                    a for a in alerts if a.device == device or (not a.device and a.district == district)
                ]
                entry.alerts.update(a.rule for a in concerning if lo <= a.start_ms < hi)
                entry.episodes_alerted = 0
                if days is not None:
                    standards = [a for a in concerning if a.rule in episode_rules]
                    entry.episodes_alerted = _days_covered(episode[in_part], standards, tz)
            found.append(entry)
    return found


def _days_covered(days: NDArray[np.int64], spans: Sequence[AlertSpan], tz: tzinfo) -> int:
    """How many of the local ``days`` some span overlaps."""
    if not spans or days.size == 0:
        return 0
    covered: set[int] = set()
    for span in spans:
        first, last = (
            local_ms(np.array([span.start_ms, max(span.end_ms - 1, span.start_ms)]), tz) // DAY_MS
        ).tolist()
        covered.update(range(int(first), int(last) + 1))
    return int(np.isin(days, np.fromiter(covered, dtype=np.int64)).sum())


def _day_range(lo_ms: int, hi_ms: int, tz: tzinfo) -> tuple[int, int]:
    """Local day numbers ``[first, last)`` whose start lies in ``[lo_ms, hi_ms)``."""
    ends = local_ms(np.array([lo_ms, hi_ms - 1], dtype=np.int64), tz) // DAY_MS
    return int(ends[0]), int(ends[1]) + 1


def _episode_days(recording: Recording, tz: tzinfo) -> dict[str, tuple[NDArray[np.int64], NDArray[np.int64]]]:
    """Per device: (days with a daily VN_AQI, days above 150), as local day numbers."""
    if "pm25" not in recording.fields and "pm10" not in recording.fields:
        return {}
    found: dict[str, tuple[NDArray[np.int64], NDArray[np.int64]]] = {}
    for index, device in enumerate(recording.devices):
        rows = recording.of_device(index)
        if rows.size == 0:
            continue
        values = {name: recording.values[rows, j] for j, name in enumerate(recording.fields)}
        daily = daily_vn_aqi(local_ms(recording.ts_ms[rows], tz), values)
        with_index = daily.first_day + np.flatnonzero(~np.isnan(daily.aqi))
        found[device] = (with_index.astype(np.int64), daily.days_above(EPISODE_LEVEL))
    return found


def totals(reports: Sequence[PartReport]) -> dict[str, dict[str, Any]]:
    """Each part summed over its devices: device-days, onsets and onsets per device-day by detector."""
    grouped: dict[str, dict[str, Any]] = {}
    for entry in reports:
        group = grouped.setdefault(
            entry.part,
            {"device_days": 0.0, "onsets": Counter(), "episode_days": 0, "episode_days_alarmed": Counter()},
        )
        group["device_days"] += entry.device_days
        group["onsets"].update(entry.onsets)
        group["episode_days"] += entry.episode_days
        group["episode_days_alarmed"].update(entry.episodes_alarmed)
        if entry.episodes_alerted is not None:
            group["episode_days_alerted"] = group.get("episode_days_alerted", 0) + entry.episodes_alerted
    for group in grouped.values():
        days = group["device_days"]
        group["per_device_day"] = (
            {n: round(c / days, 4) for n, c in sorted(group["onsets"].items())} if days else {}
        )
        group["onsets"] = dict(sorted(group["onsets"].items()))
        group["episode_days_alarmed"] = dict(sorted(group["episode_days_alarmed"].items()))
        group["device_days"] = round(days, 2)
    return grouped


def fault_detectors(categories: Mapping[str, str]) -> list[str]:
    """Detectors that speak of the sensor rather than the city (statistical and health)."""
    return sorted(n for n, c in categories.items() if c in (Category.STATISTICAL, Category.HEALTH))


def devices(recording: Recording, registry: Registry) -> dict[str, dict[str, object]]:
    """Per recorded device: its readings, its declared interval, and its first and last reading's time."""
    found: dict[str, dict[str, object]] = {}
    for index, name in enumerate(recording.devices):
        rows = recording.of_device(index)
        known = registry.get(name)
        found[name] = {
            "readings": int(rows.size),
            "interval_s": known.interval_s if known is not None else None,
            "first": format_rfc3339(int(recording.ts_ms[rows[0]])),
            "last": format_rfc3339(int(recording.ts_ms[rows[-1]])),
        }
    return found


TABLE_TITLE = (
    "alarm onsets per device-day (sensor-fault detectors); episode days (daily VN_AQI > 150), "
    "those alarmed by each standards detector and those alerted\n"
)


def table(reports: Sequence[PartReport]) -> tuple[list[str], list[list[str]]]:
    """The header and rows of :data:`TABLE_TITLE`: per part and device, the sensor-fault detectors'
    onsets per device-day, the episode days, those each standards detector alarmed and those alerted."""
    categories: dict[str, str] = {}
    for entry in reports:
        categories |= entry.categories
    faults = fault_detectors(categories)
    header = [
        "part",
        "device",
        "device-days",
        *faults,
        "episode days",
        "aqi_vn",
        "who_air",
        "aqi_us",
        "alerted",
    ]
    rows = []
    for entry in reports:
        rate = entry.per_device_day()
        rows.append(
            [
                entry.part,
                entry.device,
                f"{entry.device_days:.1f}",
                *(f"{rate.get(name, 0.0):.3f}" for name in faults),
                f"{entry.episode_days}" if entry.index_days else "-",
                *(
                    f"{entry.episodes_alarmed.get(d, 0)}" if entry.index_days else "-"
                    for d in ("aqi_vn", "who_air", "aqi_us")
                ),
                f"{entry.episodes_alerted}"
                if entry.index_days and entry.episodes_alerted is not None
                else "-",
            ]
        )
    return header, rows
