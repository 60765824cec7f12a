"""Scaling out: 1, 2 and 4 ``citypulse ingest`` processes sharing one backlog through ``$share/GROUP/...``.

Each process has its own persistent session in the shared subscription (made before the backlog is
published, so the broker queues every message for one member of the group) and its own spool and
state; all write to one database. What is measured for each number of processes:

- the rate at which the backlog is stored, and each process's CPU;
- **zero loss**: the database holds every reading, checked point by point;
- **zero duplicates**: the messages the processes took add up to the messages published, and none
  of them dead-lettered a reading as a duplicate;
- **where a device's state lives**: the devices each process saw (its saved duplicate memory), and
  how many were seen by more than one. Mosquitto's shared subscriptions go round robin, message
  by message, so a device's readings are spread over the processes; the cost of that is measured
  as each detector's alarm onsets against a single process on the same backlog.
"""

from __future__ import annotations

import subprocess
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from bench._e2e_data import COUNT_FIELD, Backlog, forget_session, make_session, publish_file
from bench._e2e_drain import Progress, Servers, check_stored, ingest_env, ingest_summary, start_ingest
from bench._servers import cpu_and_peak, stop_process
from processors.topics import TopicScheme

EMPTY = np.iinfo(np.int64).min


def devices_seen(state: Path) -> set[str]:
    """Devices whose readings a process stored: those with a timestamp in its saved duplicate memory."""
    seen: set[str] = set()
    with np.load(state, allow_pickle=False) as saved:
        for key in saved.files:
            if key.startswith("duplicates/") and key.endswith("/ts"):
                ids = saved[key[: -len("ts")] + "device_id"]
                stamps = saved[key]
                seen.update(ids[(stamps != EMPTY).any(axis=1)].tolist())
    return seen


def scale_out(
    servers: Servers,
    work: Path,
    backlog: Backlog,
    processes: int,
    timeout_s: float,
    progress: Progress,
) -> dict[str, Any]:
    """Drain ``backlog`` with ``processes`` ingest processes in one shared-subscription group."""
    url = servers.mosquitto.url
    group = f"bench-scale-{processes}"
    shared = [f"$share/{group}/{topic}" for topic in TopicScheme().subscriptions()]
    names = [f"scale-{processes}-{i}" for i in range(processes)]
    db = f"bench_scale_{processes}"
    servers.influxd.create_database(db)
    for name in names:
        make_session(url, f"bench-{name}", shared)
    progress(f"scale-out: {processes} processes in {group}, publishing {backlog.messages:,} messages")
    publish_file(url, backlog.path)
    running: list[subprocess.Popen[bytes]] = []
    started = time.monotonic()
    try:
        for name in names:
            env = ingest_env(
                servers, work / name, f"bench-{name}", db, backlog.registry, mqtt_shared_group=group
            )
            process, _ = start_ingest(work / name, env)
            running.append(process)
        stored, done_at = _wait_stored(servers, db, backlog.readings, running, timeout_s, progress, group)
        cpu = [round(cpu_and_peak(p.pid)[0], 2) for p in running]
        peak = [round(cpu_and_peak(p.pid)[1] / 2**20, 1) for p in running]
    finally:
        for process in running:
            stop_process(process, grace_s=60.0)
    for name in names:
        forget_session(url, f"bench-{name}")
    summaries = [ingest_summary(work / name) or {} for name in names]
    seen = [devices_seen(work / name / "detectors.npz") for name in names]
    by_device = Counter(device for found in seen for device in found)
    onsets: Counter[str] = Counter()
    for summary in summaries:
        for kind, detectors in (summary.get("anomalies_by_detector") or {}).items():
            for detector, count in detectors.items():
                onsets[f"{kind}/{detector}"] += count
    result: dict[str, Any] = {
        "processes": processes,
        "group": group,
        "stored": stored,
        "wall_s": round(done_at - started, 3),
        "readings_per_s": round(stored / (done_at - started)),
        "cpu_s": cpu,
        "peak_rss_mb": peak,
        "messages_taken": [s.get("messages") for s in summaries],
        "messages_published": backlog.messages,
        "duplicates_rejected": sum(
            (s.get("rejected_by_reason") or {}).get("duplicate", 0) for s in summaries
        ),
        "devices_seen": [len(found) for found in seen],
        "devices_in_more_than_one_process": sum(1 for n in by_device.values() if n > 1),
        "devices": len(by_device),
        "alarm_onsets": dict(sorted(onsets.items())),
    }
    result["every_message_taken_once"] = (
        sum(m or 0 for m in result["messages_taken"]) == backlog.messages
        and result["duplicates_rejected"] == 0
    )
    result.update(check_stored(servers.influxd, db, backlog))
    servers.influxd.drop_database(db)
    return result


def _wait_stored(
    servers: Servers,
    db: str,
    target: int,
    running: list[subprocess.Popen[bytes]],
    timeout_s: float,
    progress: Progress,
    label: str,
    stall_s: float = 30.0,
) -> tuple[int, float]:
    """Poll until the database holds ``target`` readings (or nothing moves for ``stall_s``)."""
    stored = reached = 0
    began = last_change = last_report = time.monotonic()
    while stored < target:
        for process in running:
            if process.poll() is not None:
                raise RuntimeError(f"an ingest process of {label} exited with {process.returncode}")
        now = time.monotonic()
        if now - began > timeout_s or now - last_change > stall_s:
            progress(f"  {label}: gave up with {stored:,} of {target:,} readings stored")
            break
        time.sleep(0.1)
        count = servers.influxd.points_reached(db)
        if count != reached:
            reached, last_change = count, time.monotonic()
        if reached >= target or now - last_report >= 5:
            stored = sum(servers.influxd.counts(db, COUNT_FIELD).values())
        if now - last_report >= 5:
            progress(f"  {label}: {stored:,}/{target:,} stored after {now - began:.0f} s")
            last_report = now
    return stored, time.monotonic()
