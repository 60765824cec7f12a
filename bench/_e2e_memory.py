"""Memory at fleet scale: the ingest holding a large fleet's state at full rate, and the simulator per device.

The ingest figure is the peak resident memory (VmHWM) of ``citypulse ingest`` draining a backlog in
which every device of the fleet reports (detector state and duplicate memory for all of them, the
receive queue full), with the drain's rate beside it. The simulator figure is its marginal cost of
one more device: peak RSS of ``citypulse simulate --faults all --labels`` at two fleet sizes (fresh
processes, output to a file), the difference over the difference in devices.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench._e2e_data import citypulse, python_env
from bench._servers import run_measured


def simulator_peak_rss(workdir: Path, devices: int, span: str = "5m") -> int:
    """Peak RSS in bytes of one ``citypulse simulate`` run with every fault injected and labels written."""
    workdir.mkdir(parents=True, exist_ok=True)
    command = citypulse(
        "simulate", "--devices", str(devices), "--span", span, "--speed", "0", "--faults", "all",
        "--labels", str(workdir / f"labels-{devices}.jsonl"), "--output", str(workdir / f"out-{devices}.tsv"),
        "--quiet",
    )  # fmt: skip
    done = run_measured(command, timeout_s=900, env=python_env())
    if done.returncode != 0:
        raise RuntimeError(f"citypulse simulate --devices {devices} failed with {done.returncode}")
    (workdir / f"out-{devices}.tsv").unlink()
    return done.peak_rss_bytes


def simulator_marginal(workdir: Path, small: int, large: int) -> dict[str, Any]:
    low = simulator_peak_rss(workdir, small)
    high = simulator_peak_rss(workdir, large)
    return {
        "command": "citypulse simulate --devices N --span 5m --speed 0 --faults all --labels L --output F",
        "devices": [small, large],
        "peak_rss_mb": [round(low / 2**20, 1), round(high / 2**20, 1)],
        "bytes_per_device": round((high - low) / (large - small)),
    }
