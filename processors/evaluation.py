"""Scoring detection against the simulator's labels: precision, recall, F1 and delay per fault.

The rules (README "Anomaly detection" repeats them):

- **Window.** A label covers ``[start_ms, end_ms + grace]`` of its device, where
  ``grace`` is ``grace_intervals`` of the device's reporting intervals (an alarm
  that needs the next reading, or a device that must be overdue, comes later).
- **Time axis.** Reading alarms are placed at the reading's device timestamp;
  silence alarms and rejects at the cycle clock (arrival). Clock-skew labels span
  true time, so they are matched on arrival time.
- **Match.** A signal or incident label is detected by any alarm (a reading
  after which an alarm is on) on its device in its window, on its field if it names one. A
  message label with an ``expected_reason`` is detected only by a reject with that
  reason for that device (or, when the reject could not name a device, of that
  kind). Delivery labels without a reason (``out_of_order``, small ``clock_skew``)
  are detected by alarms, as signal labels are.
- **Delay.** From ``start_ms`` to the first matching alarm, in the device's
  reporting intervals (0 for rejects).
- **False positives.** Alarm *onsets* (the first alarm of a run) outside every
  window of their device are false positives, counted against each fault the
  detector targets (its ``targets``: what it is built to find. The statistical and
  health detectors target data faults; each incident is targeted by its own rule
  detector, so a level-shift alarm elsewhere is not held against pipe bursts or
  fires, while one on an incident's device inside its window still detects it);
  rejects with a fault's reason outside every window of its
  labels are false positives of that fault. Standards exceedances (AQI, WHO,
  drinking water) are reported apart: they are true statements about the city
  whether or not a fault was injected.
- **Probation.** As in the Numenta Anomaly Benchmark, the first part of a run
  (``probation_ms``, default one day) lets detectors learn: labels starting in it
  are not scored and alarms in it are not counted.

Precision for a fault is detected episodes / (detected episodes + false
positives attributed to it); recall is detected / scored episodes.

Drift has two delays. A drift label starts at the first affected reading, when
the injected offset is still zero (it grows linearly to ``detail["total"]`` at
``end_ms``), so the delay from the start (``median_delay_intervals``, the same rule
as every fault) is long by construction: no detector can see an offset smaller
than the sensor's noise. The simulator records that noise at the episode's start
(``detail["noise"]``, the standard deviation it draws readings with), so the
evaluation also reports ``median_delay_from_noise_intervals``: from the moment
the offset first exceeds the noise, ``t_noise = start + noise / |total| * (end -
start)``, to the first matching alarm (0 if the alarm came earlier). It is the
fair measure of how fast a drift is seen, but not a reachable 2 intervals for
slow drifts: an offset of one noise size, growing by a few per cent of it per
reading, needs tens of readings before any detector can tell it from noise
without alarming on noise itself. Labels without ``noise`` (older files) get
only the first delay.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from processors.detectors import Category
from processors.kinds import KINDS
from processors.labels import Label
from processors.registry import Registry
from processors.replay import ReplayResult

DAY_MS = 86_400_000
ARRIVAL_TIME_FAULTS = frozenset({"clock_skew"})


@dataclass
class FaultScore:
    """The figures of one fault type."""

    fault: str
    scope: str
    episodes: int = 0
    detected: int = 0
    false_positives: int = 0
    delays: list[float] = field(default_factory=list)
    noise_delays: list[float] = field(default_factory=list)
    """Drift only: delays from when the injected offset first exceeded the sensor's noise."""
    skipped: int = 0
    """Episodes in the probation period, not scored."""

    @property
    def recall(self) -> float:
        return self.detected / self.episodes if self.episodes else float("nan")

    @property
    def precision(self) -> float:
        total = self.detected + self.false_positives
        return self.detected / total if total else float("nan")

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r > 0 else 0.0

    @property
    def median_delay(self) -> float:
        return float(np.median(self.delays)) if self.delays else float("nan")

    @property
    def median_delay_from_noise(self) -> float:
        return float(np.median(self.noise_delays)) if self.noise_delays else float("nan")

    def as_dict(self) -> dict[str, Any]:
        def clean(value: float) -> float | None:
            return None if np.isnan(value) else round(value, 4)

        found: dict[str, Any] = {
            "fault": self.fault,
            "scope": self.scope,
            "episodes": self.episodes,
            "detected": self.detected,
            "false_positives": self.false_positives,
            "precision": clean(self.precision),
            "recall": clean(self.recall),
            "f1": clean(self.f1) if self.episodes else None,
            "median_delay_intervals": clean(self.median_delay),
            "in_probation": self.skipped,
        }
        if self.noise_delays:
            found["median_delay_from_noise_intervals"] = clean(self.median_delay_from_noise)
        return found


@dataclass
class Report:
    faults: dict[str, FaultScore]
    device_days: float
    false_alarms: Counter[str]
    """Onsets outside every label window, by detector (standards and forecasts excluded)."""
    exceedances: Counter[str]
    """Standards and forecast onsets, by detector: reported, not counted as false alarms."""
    overall_median_delay: float

    @property
    def false_alarms_per_device_day(self) -> float:
        return sum(self.false_alarms.values()) / self.device_days if self.device_days else float("nan")

    def as_dict(self) -> dict[str, Any]:
        return {
            "faults": {name: score.as_dict() for name, score in sorted(self.faults.items())},
            "device_days": round(self.device_days, 2),
            "false_alarms": dict(sorted(self.false_alarms.items())),
            "false_alarms_per_device_day": round(self.false_alarms_per_device_day, 4)
            if self.device_days
            else None,
            "exceedances": dict(sorted(self.exceedances.items())),
            "exceedances_per_device_day": round(sum(self.exceedances.values()) / self.device_days, 4)
            if self.device_days
            else None,
            "median_delay_intervals": None
            if np.isnan(self.overall_median_delay)
            else round(self.overall_median_delay, 3),
        }


def _interval_ms(registry: Registry, device: str, kind: str) -> float:
    found = registry.get(device)
    if found is not None:
        return (found.interval_s or KINDS[found.kind].interval_s) * 1000.0
    return KINDS[kind].interval_s * 1000.0 if kind in KINDS else 60_000.0


def evaluate(
    labels: Iterable[Label],
    result: ReplayResult,
    registry: Registry,
    *,
    grace_intervals: float = 3.0,
    probation_ms: int = DAY_MS,
) -> Report:
    """Match alarms and rejects to labels and count everything the rules above describe."""
    labels = list(labels)
    reason_of = {label.fault: label.expected_reason for label in labels if label.expected_reason}
    start = result.first_ms or 0
    end = result.last_ms or start
    scored_from = start + probation_ms
    arrays = result.alarms.arrays()
    log = result.alarms
    alarm_time = np.asarray(arrays["ts_ms"], dtype=np.int64)
    arrival = np.asarray(arrays["received_ms"], dtype=np.int64)
    keep = arrival >= scored_from
    # Index alarms by device for fast window lookups.
    by_device: dict[str, np.ndarray[Any, Any]] = defaultdict(lambda: np.zeros(0, dtype=np.intp))
    if keep.any():
        devices = arrays["device"]
        order = np.flatnonzero(keep)[np.argsort(devices[keep], kind="stable")]
        sorted_devices = devices[order]
        cuts = np.flatnonzero(np.r_[True, sorted_devices[1:] != sorted_devices[:-1], True])
        for a, b in zip(cuts[:-1].tolist(), cuts[1:].tolist(), strict=True):
            by_device[str(sorted_devices[a])] = order[a:b]
    columns = np.array([*log.columns, ""], dtype=np.str_)
    standard = np.array(
        [c in (Category.STANDARD, Category.FORECAST) for c in log.categories] + [False], dtype=np.bool_
    )
    covered = np.zeros(alarm_time.size, dtype=np.bool_)

    faults: dict[str, FaultScore] = {}
    all_delays: list[float] = []
    rejects_by_key: dict[tuple[str, str | None], list[int]] = defaultdict(list)
    rejects_kind: dict[tuple[str, str | None], list[int]] = defaultdict(list)
    for i, reject in enumerate(result.rejects):
        rejects_by_key[(reject.reason, reject.device)].append(i)
        if reject.device is None:
            rejects_kind[(reject.reason, reject.kind)].append(i)
    reject_in_window = np.zeros(len(result.rejects), dtype=np.bool_)

    for label in labels:
        score = faults.setdefault(label.fault, FaultScore(label.fault, label.scope))
        interval = _interval_ms(registry, label.device, label.kind)
        lo = label.start_ms
        hi = label.end_ms + grace_intervals * interval
        if label.start_ms < scored_from or label.start_ms > end:
            score.skipped += 1
            _cover(by_device.get(label.device), alarm_time, arrival, lo, hi, label, columns, arrays, covered)
            if label.expected_reason is not None:
                for i in rejects_by_key.get((label.expected_reason, label.device), []):
                    if lo <= result.rejects[i].at_ms <= hi:
                        reject_in_window[i] = True
            continue
        score.episodes += 1
        first: float | None = None
        if label.expected_reason is not None:
            candidates = rejects_by_key.get((label.expected_reason, label.device), []) + rejects_kind.get(
                (label.expected_reason, label.kind), []
            )
            hit = [i for i in candidates if lo <= result.rejects[i].at_ms <= hi]
            reject_in_window[hit] = True
            if hit:
                first = 0.0
        else:
            hits = _cover(
                by_device.get(label.device), alarm_time, arrival, lo, hi, label, columns, arrays, covered
            )
            if hits.size:
                times = arrival[hits] if label.fault in ARRIVAL_TIME_FAULTS else alarm_time[hits]
                first = max(float(times.min() - label.start_ms) / interval, 0.0)
                visible = _noise_crossing_ms(label)
                if visible is not None:
                    score.noise_delays.append(max(float(times.min() - visible) / interval, 0.0))
        if first is not None:
            score.detected += 1
            score.delays.append(first)
            all_delays.append(first)

    false_alarms: Counter[str] = Counter()
    exceedances: Counter[str] = Counter()
    onset = np.asarray(arrays["onset"], dtype=np.bool_)
    detector_codes = np.asarray(arrays["detector"], dtype=np.int16)
    for code, name in enumerate(log.detectors):
        mine = keep & onset & (detector_codes == code)
        if standard[code]:
            exceedances[name] += int(np.count_nonzero(mine & ~covered))
            continue
        count = int(np.count_nonzero(mine & ~covered))
        if count:
            false_alarms[name] += count
            for target in log.targets[code]:
                if target in faults:
                    faults[target].false_positives += count
    for i, reject in enumerate(result.rejects):
        if reject.at_ms < scored_from or reject_in_window[i]:
            continue
        for fault, reason in reason_of.items():
            if reason == reject.reason and fault in faults:
                faults[fault].false_positives += 1

    n_devices = len(registry)
    device_days = n_devices * max(end - scored_from, 0) / DAY_MS
    return Report(
        faults=faults,
        device_days=device_days,
        false_alarms=false_alarms,
        exceedances=exceedances,
        overall_median_delay=float(np.median(all_delays)) if all_delays else float("nan"),
    )


def _noise_crossing_ms(label: Label) -> float | None:
    """When a drift's linearly growing offset first exceeds the sensor's noise (None: not a drift
    label, or one that does not say its noise)."""
    total = label.detail.get("total")
    noise = label.detail.get("noise")
    if label.fault != "drift" or not isinstance(total, int | float) or not isinstance(noise, int | float):
        return None
    if total == 0:
        return None
    share = min(abs(float(noise)) / abs(float(total)), 1.0)
    return label.start_ms + share * (label.end_ms - label.start_ms)


def _cover(
    candidates: np.ndarray[Any, Any] | None,
    alarm_time: np.ndarray[Any, Any],
    arrival: np.ndarray[Any, Any],
    lo: float,
    hi: float,
    label: Label,
    columns: np.ndarray[Any, Any],
    arrays: Mapping[str, np.ndarray[Any, Any]],
    covered: np.ndarray[Any, Any],
) -> np.ndarray[Any, Any]:
    """Alarms of the label's device (and field) inside its window; marks them covered."""
    if candidates is None or candidates.size == 0:
        return np.zeros(0, dtype=np.intp)
    times = arrival[candidates] if label.fault in ARRIVAL_TIME_FAULTS else alarm_time[candidates]
    inside = (times >= lo) & (times <= hi)
    # Silence alarms are stamped with the clock, whatever the label's axis.
    inside |= (
        (arrival[candidates] >= lo)
        & (arrival[candidates] <= hi)
        & (alarm_time[candidates] == arrival[candidates])
    )
    if label.field is not None:
        inside &= columns[arrays["column"][candidates]] == label.field
    hits: np.ndarray[Any, Any] = candidates[inside]
    covered[hits] = True
    return hits
