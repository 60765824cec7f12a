"""Where an ingest process spends its time: py-spy sampling a drain, summarised by thread and function.

``py-spy record --format raw --threads`` writes one line per distinct stack with its sample count;
idle threads are left out, so the shares are of the samples where a thread was running (``--gil``:
only the thread holding the GIL; ``--idle``: every thread, waiting or not, so shares of wall
time). *Own* time is the innermost frame's; *inclusive* counts a function once per sample
wherever it is on the stack.
"""

from __future__ import annotations

import re
import shutil
import signal
import subprocess
from collections import Counter
from pathlib import Path
from typing import Any

_FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^():]*)(?::\d+)?\)$")


def start_sampling(
    pid: int, out: Path, rate: int = 200, gil: bool = False, idle: bool = False
) -> subprocess.Popen[bytes]:
    """py-spy attached to ``pid`` until :func:`stop_sampling`; raise if py-spy is not installed."""
    binary = shutil.which("py-spy")
    if binary is None:
        raise RuntimeError("py-spy is not installed: pip install py-spy")
    args = [binary, "record", "--pid", str(pid), "--rate", str(rate), "--format", "raw", "--threads"]
    if gil:
        args.append("--gil")
    if idle:
        args.append("--idle")
    return subprocess.Popen(
        [*args, "--output", str(out)], stdout=subprocess.DEVNULL, stderr=out.with_suffix(".log").open("wb")
    )


def stop_sampling(sampler: subprocess.Popen[bytes]) -> None:
    """py-spy writes its file when interrupted."""
    sampler.send_signal(signal.SIGINT)
    try:
        sampler.wait(60)
    except subprocess.TimeoutExpired:
        sampler.kill()
        sampler.wait()


def thread_role(name: str) -> str:
    if name.startswith("paho-mqtt-client"):
        return "paho network thread"
    if name == "MainThread":
        return "pipeline (main thread)"
    return name


def frame_name(frame: str) -> str:
    """``func (path/file.py:123)`` as ``func (file.py)``: one entry per function, not per line."""
    match = _FRAME.match(frame)
    if match is None:
        return frame
    return f"{match['func']} ({Path(match['file']).name})"


def summarise(raw: Path, top: int = 25) -> dict[str, Any]:
    """Shares of samples by thread, by function's own time and by function inclusive.

    The inclusive list leaves out frames that wrap (nearly) all of their thread's samples (the
    thread's entry point, the CLI's layers), which say nothing about where time goes.
    """
    threads: Counter[str] = Counter()
    own: Counter[str] = Counter()
    inclusive: Counter[tuple[str, str]] = Counter()
    total = 0
    for line in raw.read_text(errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        head, *frames = stack.split(";")
        role = thread_role(head.split(": ", 1)[1] if ": " in head else head)
        threads[role] += count
        if frames:
            own[frame_name(frames[-1])] += count
            for name in {frame_name(f) for f in frames}:
                inclusive[role, name] += count
        total += count

    def pct(n: int) -> float:
        return round(100 * n / max(total, 1), 1)

    telling = Counter(
        {f"{name} [{role}]": n for (role, name), n in inclusive.items() if n < 0.97 * threads[role]}
    )
    return {
        "samples": total,
        "by_thread_pct": [[name, pct(n)] for name, n in threads.most_common(top)],
        "own_pct": [[name, pct(n)] for name, n in own.most_common(top)],
        "inclusive_pct": [[name, pct(n)] for name, n in telling.most_common(top)],
    }
