"""Injecting faults into generated readings, and writing down exactly what was injected.

Per kind, the injector keeps which devices are inside a fault episode and until
when. Each reading outside an episode may start one (one uniform draw per reading
against the chosen faults' cumulative rates); each reading inside one is changed
as the episode says. A device is in at most one episode at a time, so every label
describes data that shows that fault and nothing else.

Episodes that could not finish before a bounded run ends are not started, so
every label in a bounded run covers a complete episode.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from processors.kinds import SensorKind
from processors.reasons import Reason
from processors.registry import DeviceTable
from processors.validate import ValidationPolicy
from simulators.faults import FAULTS, Fault, Scope
from simulators.labels import Label, LabelSink
from simulators.models import SignalModel

MINUTE_MS = 60_000
HOUR_MS = 3_600_000

EPISODE_SPAN_MS: Mapping[str, tuple[int, int]] = {
    "drift": (2 * HOUR_MS, 12 * HOUR_MS),
    "stuck": (30 * MINUTE_MS, 6 * HOUR_MS),
    "dropout": (10 * MINUTE_MS, 6 * HOUR_MS),
    "noise_burst": (10 * MINUTE_MS, 2 * HOUR_MS),
    "clock_skew": (30 * MINUTE_MS, 6 * HOUR_MS),
    "gap": (HOUR_MS, 12 * HOUR_MS),
    "recalibration": (2 * HOUR_MS, 2 * HOUR_MS),
}
"""How long each episode fault lasts (uniform), before the minimum in reporting intervals applies.

A recalibration's step lasts for good; its episode is the time the evaluation gives
detectors to see it (the label's window), during which no other fault starts there."""
EXCURSION_READINGS = (3, 8)
"""How many readings an excursion spans (uniform)."""
EXCURSION_TAIL_DF = 2.0
"""Degrees of freedom of the Student-t that draws an excursion's size: heavy-tailed, as real ones."""

SPOILERS: tuple[str, ...] = tuple(
    f.name for f in FAULTS.values() if f.scope is Scope.MESSAGE and f.reason and f.name != "duplicates"
)
"""Faults that spoil a reading's content; their index + 1 is the spoil code of a row."""
SPOIL_CODE = {name: i + 1 for i, name in enumerate(SPOILERS)}
VERDICT_OK, VERDICT_FUTURE, VERDICT_OLD = 0, 1, 2


def ghost_device_id(device_id: str) -> str:
    """The unregistered device an ``unknown_device`` fault publishes as."""
    return f"ghost-{device_id}"[:64]


def timestamp_verdicts(
    ts: NDArray[np.int64], ingest_ms: NDArray[np.int64] | int, policy: ValidationPolicy
) -> NDArray[np.int8]:
    """What the pipeline's clock checks will say about each device timestamp."""
    future = ts > ingest_ms + policy.max_future_ms
    old = ts < ingest_ms - policy.max_age_ms
    verdicts: NDArray[np.int8] = np.where(
        future, VERDICT_FUTURE, np.where(old, VERDICT_OLD, VERDICT_OK)
    ).astype(np.int8)
    return verdicts


@dataclass
class Marks:
    """What happened to each reading of a chunk; the encoder acts on it."""

    keep: NDArray[np.bool_]
    ts: NDArray[np.int64]
    """The timestamp the payload carries (device clock, with any skew)."""
    spoil: NDArray[np.int8]
    spoil_field: NDArray[np.int8]
    duplicate_ms: NDArray[np.int64]
    hold_ms: NDArray[np.int64]
    marked: NDArray[np.bool_]
    """Readings taking part in any fault: no whole-message fault may be added to their batch."""

    @classmethod
    def clean(cls, ts: NDArray[np.int64]) -> Marks:
        n = len(ts)
        return cls(
            keep=np.ones(n, dtype=np.bool_),
            ts=ts.copy(),
            spoil=np.zeros(n, dtype=np.int8),
            spoil_field=np.zeros(n, dtype=np.int8),
            duplicate_ms=np.zeros(n, dtype=np.int64),
            hold_ms=np.zeros(n, dtype=np.int64),
            marked=np.zeros(n, dtype=np.bool_),
        )


@dataclass
class Episode:
    fault: Fault
    device: int
    field: int | None
    start_ms: int
    end_ms: int
    """True time the episode ends (exclusive)."""
    params: dict[str, float] = dataclasses.field(default_factory=dict)
    first_ms: int = -1
    last_ms: int = -1
    readings: int = 0
    rejected: int = 0
    lead_in: bool = False
    """The first reading is genuine and not part of the fault (a stuck sensor's last true value)."""


class KindInjector:
    """Fault episodes of one kind's devices."""

    def __init__(
        self,
        kind: SensorKind,
        table: DeviceTable,
        model: SignalModel,
        rates: Mapping[str, float],
        *,
        seed: int,
        policy: ValidationPolicy,
        labels: LabelSink,
        start_ms: int | None = None,
        end_ms: int | None = None,
    ) -> None:
        self.kind = kind
        self.table = table
        self.model = model
        self.policy = policy
        self.labels = labels
        self.end_ms = end_ms
        self.run_ms = end_ms - start_ms if end_ms is not None and start_ms is not None else None
        self.faults = [FAULTS[name] for name in FAULTS if rates.get(name, 0.0) > 0.0]
        self.cumulative = np.cumsum([rates[f.name] for f in self.faults]) if self.faults else np.zeros(0)
        self.total = float(self.cumulative[-1]) if self.faults else 0.0
        n = len(table)
        self.busy_until = np.zeros(n, dtype=np.int64)
        self.episodes: dict[int, Episode] = {}
        self.interval_ms = np.array([round(table.interval_s(i) * 1000) for i in range(n)], dtype=np.int64)
        self.offsets = np.zeros((n, len(kind.measures)))
        """Steps of past recalibrations, kept for good (each device and measure)."""
        self._offset = False
        self.lo = np.array([m.lo for m in kind.measures])
        self.hi = np.array([m.hi for m in kind.measures])
        self.band = np.array([m.normal[1] - m.normal[0] for m in kind.measures])
        self.step = np.array([m.step or 0.0 for m in kind.measures])
        self.names = kind.measure_names
        self.rng = np.random.default_rng(
            np.random.SeedSequence([seed, 0xFA017, len(kind.name), *kind.name.encode()])
        )

    # --- per chunk ---------------------------------------------------------------------------
    def process(
        self,
        device: NDArray[np.intp],
        true_ms: NDArray[np.int64],
        clock_ms: NDArray[np.int64],
        values: NDArray[np.float64],
        ingest_ms: NDArray[np.int64] | int,
    ) -> Marks:
        marks = Marks.clean(clock_ms)
        if self._offset:
            self._apply_offsets(device, values)
        if self.total <= 0.0 and not self.episodes:
            return marks
        free = np.ones(len(device), dtype=np.bool_)
        for row in np.flatnonzero(self.busy_until[device] > 0).tolist():
            dev, now = int(device[row]), int(true_ms[row])
            episode = self.episodes.get(dev)
            if episode is None:  # a cooldown after an instantaneous fault
                if now < self.busy_until[dev]:
                    free[row] = False
                else:
                    self.busy_until[dev] = 0
            elif now >= episode.end_ms:
                self._close(episode)
            else:
                self._continue(episode, row, true_ms, values, marks, ingest_ms)
                free[row] = False
        if self.total <= 0.0:
            return marks
        draws = self.rng.random(len(device))
        for row in np.flatnonzero(free & (draws < self.total)).tolist():
            which = int(np.searchsorted(self.cumulative, draws[row], side="right"))
            self._start(self.faults[which], row, device, true_ms, values, marks, ingest_ms)
        return marks

    def finish(self) -> None:
        """Label the episodes still running when the run stops (marked truncated)."""
        for episode in list(self.episodes.values()):
            episode.params["truncated"] = 1.0
            self._close(episode)

    # --- episodes ----------------------------------------------------------------------------
    def _start(
        self,
        fault: Fault,
        row: int,
        device: NDArray[np.intp],
        true_ms: NDArray[np.int64],
        values: NDArray[np.float64],
        marks: Marks,
        ingest_ms: NDArray[np.int64] | int,
    ) -> None:
        dev = int(device[row])
        now = int(true_ms[row])
        interval = int(self.interval_ms[dev])
        rng = self.rng
        name = fault.name
        if name in EPISODE_SPAN_MS or name == "excursion":
            if name == "excursion":
                low, high = EXCURSION_READINGS[0] * interval, EXCURSION_READINGS[1] * interval
            else:
                low, high = EPISODE_SPAN_MS[name]
            # One interval of slack for jitter, and one more where a genuine reading leads in.
            shortest = (fault.min_intervals + 1 + (name == "stuck")) * interval
            if self.run_ms is not None:
                # A short run still gets whole episodes: at most a third of it, never below the minimum.
                high = max(shortest, min(high, self.run_ms // 3))
                low = min(low, high)
            span = max(int(rng.uniform(low, high)), shortest)
            if self.end_ms is not None and now + span > self.end_ms:
                return
            whole_device = name in ("dropout", "clock_skew", "gap")
            target = None if whole_device else self._pick_field()
            if not whole_device and target is None:
                return
            episode = Episode(fault, dev, target, now, now + span)
            lag = (
                max(0, int(ingest_ms[row]) - now)
                if not isinstance(ingest_ms, int)
                else max(0, ingest_ms - now)
            )
            self._prepare(episode, row, values, rng, lag)
            self.episodes[dev] = episode
            self.busy_until[dev] = episode.end_ms
            self._continue(episode, row, true_ms, values, marks, ingest_ms)
            return
        ts = int(marks.ts[row])
        marks.marked[row] = True
        if name == "spike":
            target = self._pick_field()
            if target is None:
                return
            detail = self._spike(row, target, values)
            self._label(fault, dev, target, ts, ts, detail=detail)
        elif name == "duplicates":
            delay = int(rng.uniform(200.0, 30_000.0))
            if self.end_ms is not None and now + delay > self.end_ms:
                marks.marked[row] = False
                return
            marks.duplicate_ms[row] = delay
            self._label(fault, dev, None, ts, ts, reason=Reason.DUPLICATE, detail={"delay_ms": delay})
        elif name == "out_of_order":
            hold = int(rng.uniform(2.5, 4.0) * interval)
            if self.end_ms is not None and now + hold > self.end_ms:
                marks.marked[row] = False
                return
            marks.hold_ms[row] = hold
            self.busy_until[dev] = now + hold + interval
            self._label(fault, dev, None, ts, ts, detail={"delay_ms": hold})
        else:
            target = (
                int(rng.integers(len(self.names)))
                if name in ("wrong_type", "not_finite", "out_of_range")
                else -1
            )
            marks.spoil[row] = SPOIL_CODE[name]
            marks.spoil_field[row] = max(target, 0)
            device_id = self.table.devices[dev].device_id
            who = ghost_device_id(device_id) if name == "unknown_device" else device_id
            self._label(
                fault,
                dev,
                target if target >= 0 else None,
                ts,
                ts,
                reason=fault.reason,
                device_id=who,
            )

    def _prepare(
        self, episode: Episode, row: int, values: NDArray[np.float64], rng: np.random.Generator, lag_ms: int
    ) -> None:
        name = episode.fault.name
        f = episode.field
        if name == "drift" and f is not None:
            v = float(values[row, f])
            total = rng.uniform(0.5, 1.0) * self.band[f]
            up, down = self.hi[f] - v, v - self.lo[f]
            sign = 1.0 if rng.random() < 0.5 else -1.0
            if (sign > 0 and up < total) or (sign < 0 and down < total):
                sign = 1.0 if up >= down else -1.0
            episode.params["total"] = float(sign * total)
            # The sensor's noise here and now (the spread noise bursts and spikes use): the
            # evaluation measures how fast a drift is seen from when the offset exceeds it.
            episode.params["noise"] = float(
                self.model.variation_abs[f] + self.model.variation_rel[f] * abs(v)
            )
        elif name == "stuck" and f is not None:
            # The sensor freezes at the value it has just read: that reading is still true,
            # so the fault (and its label) starts with the first repeat of it.
            episode.params["value"] = self._rounded(float(values[row, f]), f)
            episode.lead_in = True
        elif name == "noise_burst":
            episode.params["factor"] = float(rng.uniform(6.0, 10.0))
        elif name == "clock_skew":
            episode.params["offset_ms"] = float(self._skew_offset(episode.device, rng, lag_ms))
        elif name == "recalibration" and f is not None:
            v = float(values[row, f])
            step = rng.uniform(0.15, 0.4) * self.band[f]
            # Re-zeroed towards whichever side leaves the reading inside the sensor's range.
            sign = 1.0 if rng.random() < 0.5 else -1.0
            if (sign > 0 and self.hi[f] - v < step) or (sign < 0 and v - self.lo[f] < step):
                sign = -sign
            episode.params["step"] = float(sign * step)
        elif name == "excursion" and f is not None:
            v = float(values[row, f])
            spread = float(self.model.variation_abs[f] + self.model.variation_rel[f] * abs(v))
            size = min(
                3.0 * spread * (1.0 + abs(float(rng.standard_t(EXCURSION_TAIL_DF)))), 0.75 * self.band[f]
            )
            # Plumes and gusts mostly push a reading up; a few pull it down (a clean breeze).
            sign = 1.0 if rng.random() < 0.8 else -1.0
            episode.params["amplitude"] = float(sign * size)
            episode.params["noise"] = spread
            episode.params["span_readings"] = float(
                max(round((episode.end_ms - episode.start_ms) / self.interval_ms[episode.device]), 3)
            )

    def _continue(
        self,
        episode: Episode,
        row: int,
        true_ms: NDArray[np.int64],
        values: NDArray[np.float64],
        marks: Marks,
        ingest_ms: NDArray[np.int64] | int,
    ) -> None:
        name = episode.fault.name
        f = episode.field
        now = int(true_ms[row])
        if episode.lead_in:
            episode.lead_in = False
            if f is not None:
                values[row, f] = episode.params["value"]
            return
        marks.marked[row] = True
        if name in ("dropout", "gap"):
            marks.keep[row] = False
        elif name == "recalibration" and f is not None:
            if episode.readings == 0:
                self.offsets[episode.device, f] += episode.params["step"]
                self._offset = True
            stepped = values[row, f] + episode.params["step"]
            values[row, f] = self._rounded(float(np.clip(stepped, self.lo[f], self.hi[f])), f)
        elif name == "excursion" and f is not None:
            # A bump: up over the first readings, down over the rest (a half sine over the span).
            weight = np.sin(np.pi * (episode.readings + 0.5) / episode.params["span_readings"])
            bumped = values[row, f] + episode.params["amplitude"] * max(float(weight), 0.0)
            values[row, f] = self._rounded(float(np.clip(bumped, self.lo[f], self.hi[f])), f)
        elif name == "drift" and f is not None:
            progress = (now - episode.start_ms) / (episode.end_ms - episode.start_ms)
            shifted = values[row, f] + episode.params["total"] * progress
            values[row, f] = self._rounded(float(np.clip(shifted, self.lo[f], self.hi[f])), f)
        elif name == "stuck" and f is not None:
            values[row, f] = episode.params["value"]
        elif name == "noise_burst" and f is not None:
            v = float(values[row, f])
            spread = self.model.variation_abs[f] + self.model.variation_rel[f] * abs(v)
            extra = np.sqrt(episode.params["factor"] ** 2 - 1.0) * spread * self.rng.standard_normal()
            values[row, f] = self._rounded(float(np.clip(v + extra, self.lo[f], self.hi[f])), f)
        elif name == "clock_skew":
            marks.ts[row] += int(episode.params["offset_ms"])
            clock = ingest_ms if isinstance(ingest_ms, int) else ingest_ms[row : row + 1]
            verdict = timestamp_verdicts(marks.ts[row : row + 1], clock, self.policy)[0]
            episode.rejected += int(verdict == VERDICT_FUTURE)
        # Labels give device timestamps, except clock skew: the true time the clock was off.
        stamp = now if name == "clock_skew" else int(marks.ts[row])
        if episode.first_ms < 0:
            episode.first_ms = stamp
        episode.last_ms = stamp
        episode.readings += 1

    def _close(self, episode: Episode) -> None:
        del self.episodes[episode.device]
        self.busy_until[episode.device] = 0
        if episode.readings == 0:
            return
        detail: dict[str, object] = {"readings": episode.readings}
        reason: Reason | None = None
        name = episode.fault.name
        for key, value in episode.params.items():
            detail[key] = int(value) if key in ("offset_ms", "truncated") else round(float(value), 4)
        if name == "clock_skew":
            detail["rejected"] = episode.rejected
            reason = Reason.TIMESTAMP_IN_FUTURE if episode.rejected else None
        self._label(
            episode.fault, episode.device, episode.field, episode.first_ms, episode.last_ms, reason, detail
        )

    # --- helpers ----------------------------------------------------------------------------------
    def _apply_offsets(self, device: NDArray[np.intp], values: NDArray[np.float64]) -> None:
        """Past recalibrations' steps on every later reading (the readings of an episode get theirs
        from the episode, which adds its step here when it ends)."""
        stepped = self.offsets[device]
        rows = np.flatnonzero(np.any(stepped != 0.0, axis=1))
        for row in rows.tolist():
            dev = int(device[row])
            episode = self.episodes.get(dev)
            shift = stepped[row].copy()
            if episode is not None and episode.fault.name == "recalibration" and episode.field is not None:
                shift[episode.field] -= episode.params["step"]
            for f in np.flatnonzero(shift != 0.0).tolist():
                moved = float(np.clip(values[row, f] + shift[f], self.lo[f], self.hi[f]))
                values[row, f] = self._rounded(moved, f)

    def _pick_field(self) -> int | None:
        fields = self.model.fault_fields
        if not fields:
            return None
        return int(fields[int(self.rng.integers(len(fields)))])

    def _rounded(self, value: float, f: int) -> float:
        if self.step[f] > 0:
            return float(round(value / self.step[f]) * self.step[f])
        return round(value, 2)

    def _spike(self, row: int, f: int, values: NDArray[np.float64]) -> dict[str, object]:
        """Displace one value by >= 6x its usual variation and >= a quarter of its normal band."""
        v = float(values[row, f])
        spread = float(self.model.variation_abs[f] + self.model.variation_rel[f] * abs(v))
        needed = max(6.0 * spread, 0.25 * self.band[f])
        size = max(8.0 * spread, 0.3 * self.band[f]) * self.rng.uniform(1.0, 1.5)
        up, down = self.hi[f] - v, v - self.lo[f]
        sign = 1.0 if self.rng.random() < 0.5 else -1.0
        if (sign > 0 and up < needed) or (sign < 0 and down < needed):
            sign = 1.0 if up >= down else -1.0
        new = self._rounded(float(np.clip(v + sign * size, self.lo[f], self.hi[f])), f)
        values[row, f] = new
        return {
            "magnitude": round(new - v, 4),
            "baseline": round(v, 4),
            "typical_variation": round(spread, 4),
        }

    def _skew_offset(self, dev: int, rng: np.random.Generator, lag_ms: int) -> int:
        """Minutes within the future limit (accepted), or well beyond it either way (hours).

        ``lag_ms`` is how far the pipeline's clock is ahead of the simulated time (a replay
        catching up with the present). A clock ahead by more than the limit is measured
        from the pipeline's clock, so its readings stay clearly in the future while the
        replay catches up, and the expected rejects stay exact.
        """
        limit = self.policy.max_future_ms
        small = rng.random() < 0.5
        size = rng.uniform(0.2, 0.6) * limit if small else rng.uniform(2.0 * limit, 2.0 * limit + 6 * HOUR_MS)
        ahead = rng.random() < 0.6
        if ahead and not small:
            size += lag_ms
        offset = round(size * (1.0 if ahead else -1.0) / 1000.0) * 1000
        # Never land on another reading's timestamp: keep clear of whole multiples of the interval.
        interval = int(self.interval_ms[dev])
        margin = interval // 10 + 3000
        rest = offset % interval
        if interval > 2 * margin and (rest < margin or rest > interval - margin):
            offset += (interval // 2) // 1000 * 1000
        return offset

    def _label(
        self,
        fault: Fault,
        dev: int,
        target: int | None,
        start_ms: int,
        end_ms: int,
        reason: Reason | None = None,
        detail: dict[str, object] | None = None,
        device_id: str | None = None,
    ) -> None:
        self.labels.add(
            Label(
                fault=fault.name,
                scope=str(fault.scope),
                device=device_id or self.table.devices[dev].device_id,
                kind=self.kind.name,
                field=self.names[target] if target is not None else None,
                start_ms=start_ms,
                end_ms=end_ms,
                expected_reason=str(reason) if reason is not None else None,
                detail=detail or {},
            )
        )


def reading_rates(rates: Mapping[str, float], batch_size: int) -> dict[str, float]:
    """The per-reading onset rates: in gateway mode whole-message faults are drawn per message."""
    return {
        name: rate
        for name, rate in rates.items()
        if not (batch_size and (FAULTS[name].whole_message or FAULTS[name].single_only))
    }


def message_rates(rates: Mapping[str, float], batch_size: int) -> dict[str, float]:
    """Faults drawn once per gateway message (they spoil all of it)."""
    if not batch_size:
        return {}
    return {name: rate for name, rate in rates.items() if FAULTS[name].whole_message}
