"""Running a fleet: pace simulated time, encode, publish, report progress and a summary."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

from simulators.encode import Encoder, Tally
from simulators.outputs import Output, OutputCounts
from simulators.schedule import SLICE_MS, Schedule


@dataclass(frozen=True, slots=True)
class Progress:
    elapsed_s: float
    sim_ms: int
    messages: int
    readings: int
    counts: OutputCounts


@dataclass(frozen=True)
class SimulationResult:
    tally: Tally
    counts: OutputCounts
    start_ms: int
    end_ms: int
    elapsed_s: float

    def summary(self) -> dict[str, object]:
        """The ``--json`` contract of ``citypulse simulate``."""
        return {
            **self.tally.as_dict(),
            "published": self.counts.published,
            "acknowledged": self.counts.acknowledged,
            "failed": self.counts.failed,
            "sim_start_ms": self.start_ms,
            "sim_end_ms": self.end_ms,
            "elapsed_s": round(self.elapsed_s, 3),
        }


class Simulation:
    """Drives a schedule through an encoder into an output.

    ``speed`` is simulated seconds per real second (0: as fast as possible). The
    simulated clock never passes the wall clock, so a replay that started in the
    past catches up and then continues in real time, and no reading is ever
    stamped in the future.
    """

    def __init__(
        self,
        schedule: Schedule,
        encoder: Encoder,
        output: Output,
        *,
        speed: float = 1.0,
        duration_s: float | None = None,
        end_ms: int | None = None,
        wall_clock_ms: Callable[[], int] = lambda: time.time_ns() // 1_000_000,
    ) -> None:
        if speed < 0:
            raise ValueError("--speed must be 0 (as fast as possible) or positive")
        if duration_s is None and end_ms is None:
            raise ValueError("a simulation needs a duration (real time) or an end (simulated time)")
        self.schedule = schedule
        self.encoder = encoder
        self.output = output
        self.speed = speed
        self.duration_s = duration_s
        self.end_ms = end_ms
        self.wall_clock_ms = wall_clock_ms

    def run(
        self,
        stop: threading.Event | None = None,
        progress: Callable[[Progress], None] | None = None,
        progress_every_s: float = 1.0,
        drain_timeout_s: float = 30.0,
    ) -> SimulationResult:
        stop = stop or threading.Event()
        started = time.monotonic()
        last_progress = started
        sim = self.schedule.start_ms
        while not stop.is_set():
            if self.duration_s is not None and time.monotonic() - started >= self.duration_s:
                break
            if self.end_ms is not None and sim >= self.end_ms:
                break
            slice_end = sim + SLICE_MS
            if not self._wait_until_due(slice_end, started, stop):
                break
            for chunk in self.schedule.slice(sim):
                for topic, payload in self.encoder.encode(chunk):
                    self.output.publish(topic, payload)
            sim = slice_end
            now = time.monotonic()
            if progress is not None and now - last_progress >= progress_every_s:
                progress(self._progress(started, sim))
                last_progress = now
        counts = self.output.close(drain_timeout_s)
        if progress is not None:
            progress(self._progress(started, sim))
        return SimulationResult(
            self.encoder.tally, counts, self.schedule.start_ms, sim, time.monotonic() - started
        )

    def _wait_until_due(self, slice_end_ms: int, started: float, stop: threading.Event) -> bool:
        """Sleep until the slice may be published; False if stopped or out of time meanwhile."""
        while True:
            waits = [(slice_end_ms - self.wall_clock_ms()) / 1000.0]
            if self.speed > 0:
                real_due = started + (slice_end_ms - self.schedule.start_ms) / 1000.0 / self.speed
                waits.append(real_due - time.monotonic())
            wait = max(waits)
            if wait <= 0:
                return True
            if self.duration_s is not None:
                left = started + self.duration_s - time.monotonic()
                if left <= 0:
                    return False
                wait = min(wait, left)
            if stop.wait(min(wait, 0.25)):
                return False

    def _progress(self, started: float, sim: int) -> Progress:
        tally = self.encoder.tally
        return Progress(
            elapsed_s=time.monotonic() - started,
            sim_ms=sim,
            messages=tally.messages,
            readings=sum(tally.readings.values()),
            counts=replace(self.output.counts),
        )
