"""Device clocks: when a device really sends, and what time it believes it is.

Real fleets are not metronomes. A reading leaves some time after it was due
(radio access, sensor warm-up: *jitter*), and the device stamps it with its own
clock, which runs a few parts per million fast or slow (*drift*) until the next
time sync (NTP over cellular, LoRaWAN network time) pulls it back. Both depend
on the kind of device, so both are set per kind here:

=========  ==========  ===============  =================
kind       jitter      drift (1 sigma)  resync every
=========  ==========  ===============  =================
air        up to 2 s   20 ppm           1 h (NTP, 4G)
water      up to 5 s   20 ppm           1 day
traffic    up to 1 s   10 ppm           1 h (wired NTP)
lighting   up to 10 s  30 ppm           1 day (NB-IoT)
waste      up to 30 s  40 ppm           7 days (LoRaWAN)
others     up to 2 s   20 ppm           1 day
=========  ==========  ===============  =================

Jitter never exceeds a tenth of the interval, so readings never swap places.
Devices also disagree on how to write time: most send RFC 3339, some epoch
milliseconds, some whole epoch seconds (their stamps are truncated to the second).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

HOUR_MS = 3_600_000
DAY_MS = 86_400_000


class TimeFormat:
    """Which timestamp spelling a device uses, fixed per device (by its index within its kind)."""

    RFC3339 = 0
    EPOCH_MS = 1
    EPOCH_S = 2

    @staticmethod
    def of(device: NDArray[np.intp]) -> NDArray[np.int8]:
        slot = device % 10
        return np.where(slot < 7, 0, np.where(slot < 9, 1, 2)).astype(np.int8)


@dataclass(frozen=True, slots=True)
class ClockProfile:
    jitter_ms: int
    drift_ppm: float
    resync_ms: int


CLOCKS: dict[str, ClockProfile] = {
    "air": ClockProfile(2_000, 20.0, HOUR_MS),
    "water": ClockProfile(5_000, 20.0, DAY_MS),
    "traffic": ClockProfile(1_000, 10.0, HOUR_MS),
    "lighting": ClockProfile(10_000, 30.0, DAY_MS),
    "waste": ClockProfile(30_000, 40.0, 7 * DAY_MS),
}
DEFAULT_CLOCK = ClockProfile(2_000, 20.0, DAY_MS)


class DeviceClocks:
    """The clocks of one kind's devices: their drift rate and when each last synced."""

    def __init__(self, kind: str, interval_ms: NDArray[np.int64], rng: np.random.Generator) -> None:
        profile = CLOCKS.get(kind, DEFAULT_CLOCK)
        n = len(interval_ms)
        self.jitter_ms = np.minimum(profile.jitter_ms, interval_ms // 10).astype(np.int32)
        self.ppm = rng.normal(0.0, profile.drift_ppm, n).astype(np.float32)
        self.sync_phase_ms = rng.integers(0, profile.resync_ms, n).astype(np.int64)
        self.resync_ms = profile.resync_ms
        self.format = TimeFormat.of(np.arange(n))

    def jitter(self, device: NDArray[np.intp], rng: np.random.Generator) -> NDArray[np.int64]:
        """How late each of these devices' next reading will leave, in ms."""
        late: NDArray[np.int64] = (rng.random(len(device)) * self.jitter_ms[device]).astype(np.int64)
        return late

    def read(self, device: NDArray[np.intp], true_ms: NDArray[np.int64]) -> NDArray[np.int64]:
        """What each device's clock shows at ``true_ms``, as the device writes it."""
        since_sync = (true_ms - self.sync_phase_ms[device]) % self.resync_ms
        shown = true_ms + np.round(self.ppm[device].astype(np.float64) * 1e-6 * since_sync).astype(np.int64)
        whole = self.format[device] == TimeFormat.EPOCH_S
        result: NDArray[np.int64] = np.where(whole, shown - shown % 1000, shown)
        return result
