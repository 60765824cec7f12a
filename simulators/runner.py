"""Running a fleet: pace simulated time, generate, encode, publish, report progress and a summary."""

from __future__ import annotations

import bisect
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Literal

from simulators.encode import Encoder, Tally, TimedMessage
from simulators.outputs import Output, OutputCounts, SliceOutput
from simulators.schedule import SLICE_MS, Schedule

IngestClock = Literal["wall", "publish"]


@dataclass(frozen=True, slots=True)
class Progress:
    elapsed_s: float
    sim_ms: int
    start_ms: int
    end_ms: int | None
    messages: int
    readings: int
    counts: OutputCounts

    @property
    def done(self) -> float | None:
        """Share of the simulated span covered, when the run has a simulated end."""
        if self.end_ms is None or self.end_ms <= self.start_ms:
            return None
        return min(1.0, (self.sim_ms - self.start_ms) / (self.end_ms - self.start_ms))


@dataclass(frozen=True)
class SimulationResult:
    tally: Tally
    counts: OutputCounts
    start_ms: int
    end_ms: int
    elapsed_s: float

    def summary(self) -> dict[str, object]:
        """The ``--json`` contract of ``citypulse simulate``."""
        elapsed = max(self.elapsed_s, 1e-9)
        return {
            **self.tally.as_dict(),
            "published": self.counts.published,
            "acknowledged": self.counts.acknowledged,
            "failed": self.counts.failed,
            "failures": dict(sorted(self.counts.failures.items())),
            "reconnects": self.counts.reconnects,
            "sim_start_ms": self.start_ms,
            "sim_end_ms": self.end_ms,
            "elapsed_s": round(self.elapsed_s, 3),
            "messages_per_s": round(self.tally.messages / elapsed, 1),
            "readings_per_s": round(sum(self.tally.readings.values()) / elapsed, 1),
        }


class Simulation:
    """Drives a schedule through an encoder into an output.

    ``speed`` is simulated seconds per real second (0: as fast as possible). The
    simulated clock never passes the wall clock, so a replay that started in the
    past catches up and then continues in real time, and no reading is ever
    stamped in the future (apart from deliberate clock-skew faults), not even
    when the run is stopped: what is not due yet is then not sent.

    ``ingest_clock`` says which clock the pipeline will judge timestamps by, so the
    tally of expected rejects is exact: ``wall`` when publishing live, ``publish``
    (each message's own send time) for files that are replayed later. A file may
    cover any time, so only live runs are held back by the wall clock.
    """

    def __init__(
        self,
        schedule: Schedule,
        encoder: Encoder,
        output: Output | SliceOutput,
        *,
        speed: float = 1.0,
        duration_s: float | None = None,
        end_ms: int | None = None,
        wall_clock_ms: Callable[[], int] = lambda: time.time_ns() // 1_000_000,
        ingest_clock: IngestClock = "wall",
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
        self.ingest_clock = ingest_clock
        self.live = ingest_clock == "wall"
        """Live runs never pass the wall clock; a file for later replay may be of any time."""
        self.withdrawn = 0
        """Messages generated but not sent because the run stopped before they were due."""
        self._sliced = isinstance(output, SliceOutput)

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
        try:
            while not stop.is_set():
                if self.duration_s is not None and time.monotonic() - started >= self.duration_s:
                    break
                if self.end_ms is not None and sim >= self.end_ms:
                    break
                if not self._wait_until_due(min(sim + SLICE_MS, self._block_end(sim)), started, stop):
                    break
                block_end = self._block_end(sim)
                chunks = list(self.schedule.slice(sim, block_end))
                messages = self.encoder.encode_slice(sim, chunks, self._ingest_ms(), block_end)
                times = [m[0] for m in messages]
                sent = 0
                # Generated together, sent second by second. A stop mid-block sends nothing that is
                # not due yet (live, it would be stamped ahead of the clock: false clock skew) and
                # withdraws it from the tally, so what was counted is what was sent.
                for slice_start in range(sim, block_end, SLICE_MS):
                    slice_end = min(slice_start + SLICE_MS, block_end)
                    if not self._wait_until_due(slice_end, started, stop):
                        self.withdrawn += self.encoder.withdraw(slice_start)
                        break
                    upto = bisect.bisect_left(times, slice_end, lo=sent)
                    self._send(messages[sent:upto])
                    sent = upto
                    sim = slice_end
                    now = time.monotonic()
                    if progress is not None and now - last_progress >= progress_every_s:
                        progress(self._progress(started, sim))
                        last_progress = now
                else:
                    self._send(messages[sent:])
            self._send(self.encoder.finish(self._ingest_ms()))
            self.encoder.ledger.clear()  # the held-back readings just went out, whenever they were due
        finally:
            self.encoder.labels.close()
        counts = self.output.close(drain_timeout_s)
        if progress is not None:
            progress(self._progress(started, sim))
        return SimulationResult(
            self.encoder.tally, counts, self.schedule.start_ms, sim, time.monotonic() - started
        )

    def _block_end(self, sim: int) -> int:
        end = sim + self.schedule.block_ms
        return end if self.end_ms is None else min(end, self.end_ms)

    def _ingest_ms(self) -> int | None:
        return self.wall_clock_ms() if self.ingest_clock == "wall" else None

    def _send(self, messages: list[TimedMessage]) -> None:
        if not messages:
            return
        if self._sliced:
            self.output.publish_slice(messages)  # type: ignore[union-attr]
            return
        publish = self.output.publish  # type: ignore[union-attr]
        for _, topic, payload in messages:
            publish(topic, payload)

    def _wait_until_due(self, slice_end_ms: int, started: float, stop: threading.Event) -> bool:
        """Sleep until the slice may be published; False if stopped or out of time meanwhile."""
        while True:
            waits = [(slice_end_ms - self.wall_clock_ms()) / 1000.0 if self.live else 0.0]
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
        """What was sent up to ``sim``: the tally less the rest of the block, counted but not yet due."""
        tally = self.encoder.tally
        messages, readings = self.encoder.ledger.unsent(sim)
        return Progress(
            elapsed_s=time.monotonic() - started,
            sim_ms=sim,
            start_ms=self.schedule.start_ms,
            end_ms=self.end_ms,
            messages=tally.messages - messages,
            readings=sum(tally.readings.values()) - readings,
            counts=replace(self.output.counts),
        )
