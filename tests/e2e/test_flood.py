"""One device floods through a real Mosquitto into the real ingest process: it is held, the others are not.

Twenty honest air monitors report once a second (their registered interval); a
twenty-first, with the same interval, sends 500 readings a second. The test
measures how long each honest reading takes from its timestamp (its send time)
to the store, first with the flood and then without it, side by side in one run.
The flood's excess must be dead-lettered as ``rate_limited`` exactly, reported
once, and the honest readings must all be stored without waiting longer.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

import orjson
import pytest

from processors.endpoint import MqttEndpoint
from simulators.publisher import Publisher
from tests.e2e.helpers import IngestProcess, wait_until, watching
from tests.servers import Mosquitto

HONEST = [f"air-{i:06d}" for i in range(2, 22)]
FLOODER = "air-000001"
STATUS = "citypulse/v1/status/ingest/citypulse-ingest"
SECONDS = 6
FLOOD_PER_S = 500


def registry() -> str:
    rows = [f"{d},air,Ba Đình,21.03,105.81,,1," for d in [FLOODER, *HONEST]]
    return "device_id,kind,district,lat,lon,install_date,interval_s,gateway\n" + "\n".join(rows) + "\n"


def now_ms() -> int:
    return time.time_ns() // 1_000_000


class StoreWatch:
    """Polls the store and notes when each honest reading first appears there."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.seen: dict[tuple[str, int], int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            if self.path.exists():
                try:
                    db = sqlite3.connect(self.path, timeout=1)
                    rows = db.execute("SELECT device, ts FROM air WHERE device != ?", (FLOODER,)).fetchall()
                    db.close()
                except sqlite3.Error:
                    rows = []
                at = now_ms()
                for device, ts in rows:
                    self.seen.setdefault((device, int(ts)), at)
            self._stop.wait(0.02)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def send(publisher: Publisher, flood: bool, start_ms: int) -> tuple[list[tuple[str, int]], int]:
    """SECONDS of honest readings (one per device per second), with the flood if asked; returns the
    honest (device, ts) sent and the number of flood readings."""
    honest: list[tuple[str, int]] = []
    flooded = 0
    for second in range(SECONDS):
        target = start_ms + second * 1000
        for step in range(10):  # the flood spread over the second, in tenths
            at = target + step * 100
            while now_ms() < at:
                time.sleep(0.002)
            batch: list[tuple[str, bytes]] = []
            if step == 0:
                ts = now_ms()
                for device in HONEST:
                    batch.append(
                        (f"citypulse/v1/readings/air/{device}", orjson.dumps({"ts": ts, "pm25": 12.0}))
                    )
                    honest.append((device, ts))
            if flood:
                base = now_ms()
                for k in range(FLOOD_PER_S // 10):
                    payload = orjson.dumps({"ts": base + k, "pm25": 80.0})  # a stamp of its own each
                    batch.append((f"citypulse/v1/readings/air/{FLOODER}", payload))
                flooded += FLOOD_PER_S // 10
            publisher.publish_many(batch)
    return honest, flooded


def p95(values: list[int]) -> float:
    ordered = sorted(values)
    return float(ordered[int(0.95 * (len(ordered) - 1))])


@pytest.mark.slow
def test_a_flooding_device_is_held_and_the_others_keep_their_latency(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    (tmp_path / "devices.csv").write_text(registry(), encoding="utf-8")
    store = tmp_path / "store.sqlite"
    env = {
        "CITYPULSE_MQTT_URL": mosquitto.url,
        "CITYPULSE_REGISTRY": str(tmp_path / "devices.csv"),
        "CITYPULSE_SQLITE_PATH": str(store),
        "CITYPULSE_METRICS_PORT": "0",
        "CITYPULSE_RATE_LIMIT_BURST_S": "10",  # 2 readings a second, 20 saved up
        "CITYPULSE_BATCH_LINGER_S": "0.2",
        "CITYPULSE_DETECTORS": "none",
    }
    with watching(mosquitto.url, ["citypulse/v1/deadletter/#", STATUS]) as watcher:
        ingest = IngestProcess(tmp_path, env)
        publisher = Publisher(MqttEndpoint.parse(mosquitto.url), "test-fleet")
        watch = StoreWatch(store)
        try:
            wait_until(lambda: b"online" in watcher.payloads(STATUS), 30, "ingest online")
            publisher.start()
            flood_start = now_ms() + 200
            honest_flood, flooded = send(publisher, True, flood_start)
            flood_s = (now_ms() - flood_start) / 1000 + 2  # as long as it took, and the last cycles
            calm_start = now_ms() + 12_000  # past the flood's backlog, whatever it was
            honest_calm, _ = send(publisher, False, calm_start)
            every = set(honest_flood) | set(honest_calm)
            wait_until(lambda: every <= watch.seen.keys(), 60, "every honest reading stored")
            wait_until(
                lambda: (
                    len(watcher.payloads("citypulse/v1/deadletter/rate_limited")) > 0
                    and stored_flood(store) + len(watcher.payloads("citypulse/v1/deadletter/")) == flooded
                ),
                60,
                "the flood to be stored or dead-lettered, reading by reading",
            )
        finally:
            watch.stop()
            publisher.close(10)
            code = ingest.terminate()
        assert code == 0, ingest.log()
    letters = [orjson.loads(p) for p in watcher.payloads("citypulse/v1/deadletter/")]
    assert {d["reason"] for d in letters} == {"rate_limited"}
    assert all(d["device"] == FLOODER for d in letters)
    kept = stored_flood(store)
    # 20 saved up, then 2 a second for as long as the flood lasted (and the first readings' interval).
    assert 20 <= kept <= 20 + 2 + 2 * flood_s
    assert kept + len(letters) == flooded
    assert ingest.log().count("sends far more than one reading") == 1, "one flood, reported once"
    during = [watch.seen[r] - r[1] for r in honest_flood]
    calm = [watch.seen[r] - r[1] for r in honest_calm]
    print(f"honest p95 latency: {p95(during):.0f} ms during the flood, {p95(calm):.0f} ms without it")
    assert p95(during) <= p95(calm) + 1000, (p95(during), p95(calm))


def stored_flood(store: Path) -> int:
    if not store.exists():
        return 0
    db = sqlite3.connect(store, timeout=5)
    try:
        return int(db.execute("SELECT count(*) FROM air WHERE device = ?", (FLOODER,)).fetchone()[0])
    except sqlite3.Error:
        return 0
    finally:
        db.close()
