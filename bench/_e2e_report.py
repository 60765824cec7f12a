"""The end-to-end benchmark's outputs: ratios, a readable table, and a row for ``docs/benchmarks.md``."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "benchmarks.md"
RUNS_HEADER = "| date | commit | machine | size | broker ceiling"
"""The start of the header of the runs table in ``docs/benchmarks.md``; rows are appended below it."""


def machine() -> str:
    model = "unknown CPU"
    memory_gib = 0.0
    with open("/proc/cpuinfo") as cpuinfo:
        for line in cpuinfo:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo") as meminfo:
        for line in meminfo:
            if line.startswith("MemTotal:"):
                memory_gib = int(line.split()[1]) / 2**20
    return f"{model}, {os.cpu_count()} cores, {memory_gib:.0f} GiB"


def commit() -> str:
    def git(*args: str) -> str:
        done = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=False)
        return done.stdout.strip()

    head = git("rev-parse", "--short=10", "HEAD") or "unknown"
    return head + ("-dirty" if git("status", "--porcelain", "--untracked-files=no") else "")


def ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 2) if a and b else None


def ratios(result: dict[str, Any]) -> dict[str, float | None]:
    drain = result.get("drain", {})
    ceiling = result.get("database_ceiling", {})
    singles = drain.get("citypulse_singles", {}).get("sustained_msg_per_s")
    gateway = drain.get("citypulse_gateway", {}).get("sustained_readings_per_s")
    return {
        "broker_ceiling_over_citypulse_singles": ratio(
            drain.get("mosquitto_sub", {}).get("msg_per_s"), singles
        ),
        "citypulse_singles_over_naive_bridge": ratio(
            singles, drain.get("naive_bridge", {}).get("sustained_msg_per_s")
        ),
        "citypulse_gateway_over_database_1_connection": ratio(
            gateway, ceiling.get("one_connection", {}).get("points_per_s")
        ),
        "citypulse_gateway_over_database_2_connections": ratio(
            gateway, ceiling.get("two_connections", {}).get("points_per_s")
        ),
        "citypulse_gateway_over_database_same_readings": ratio(
            gateway, ceiling.get("same_readings_one_connection", {}).get("points_per_s")
        ),
        "citypulse_singles_over_node_red_best_load": ratio(singles, node_red_best(result)),
    }


def node_red_best(result: dict[str, Any]) -> float | None:
    """The highest rate at which Node-RED kept up: every reading queryable by the end of a load."""
    loads = result.get("latency", {}).get("node_red", [])
    kept_up = [r["published_per_s"] for r in loads if r["not_queryable_after_settle"] == 0]
    return max(kept_up) if kept_up else None


def _n(value: Any, suffix: str = "") -> str:
    if value is None:
        return "-"
    if isinstance(value, float) and value < 100:
        return f"{value:g}{suffix}"
    return f"{value:,.0f}{suffix}"


def text_table(result: dict[str, Any]) -> str:
    """What a person reads at the end of a run."""
    lines = [f"end to end, {result['size']} size, {result['machine']}, commit {result['commit']}"]
    lines.append(
        f"{'contender':<48}{'from start':>14}{'sustained':>14}{'CPU-s/10k':>11}{'peak MB':>9}  stored"
    )
    for name, row in result.get("drain", {}).items():
        unit = "msg/s" if "msg_per_s" in row else "points/s"
        stored = row.get("every_reading_stored", row.get("every_message_received"))
        lines.append(
            f"{row.get('label', name):<48}{_n(row.get('msg_per_s')):>8} {unit:<5}"
            f"{_n(row.get('sustained_msg_per_s')):>14}{_n(row.get('cpu_s_per_10k_messages')):>11}"
            f"{_n(row.get('peak_rss_mb')):>9}  {'all' if stored else 'NOT ALL'}"
        )
    for name, row in result.get("database_ceiling", {}).items():
        lines.append(f"{'influxd alone, ' + name.replace('_', ' '):<48}{_n(row['points_per_s']):>8} points/s")
    for who, loads in result.get("latency", {}).items():
        for r in loads if isinstance(loads, list) else []:
            lines.append(
                f"latency {who:<12} {r['offered_readings_per_s']:>7,} readings/s offered "
                f"({r['readings_per_message']}/msg): stored {r['queryable']:,}/{r['published_readings']:,}, "
                f"p50 {r['p50_s']} s, p95 {r['p95_s']} s, p99 {r['p99_s']} s"
            )
    for r in result.get("scale_out", []):
        lines.append(
            f"scale-out {r['processes']} process(es): {r['readings_per_s']:,} readings/s (from start), "
            f"stored {'all' if r['every_reading_stored'] else 'NOT ALL'}, "
            f"{'each message once' if r['every_message_taken_once'] else 'NOT each message once'}, "
            f"{r['devices_in_more_than_one_process']:,} of {r['devices']:,} devices in more than one process"
        )
    for n, again in enumerate(result.get("key_pairs_again", []), 1):
        lines.append(
            f"key pairs again ({n}): broker {again['mosquitto_sub_msg_per_s']:,} / citypulse "
            f"{again['citypulse_singles_msg_per_s']:,} msg/s = "
            f"{again['broker_ceiling_over_citypulse_singles']}x; "
            f"gateway {again['citypulse_gateway_readings_per_s']:,} / influxd "
            f"{again['database_1_connection_points_per_s']:,} = {again['citypulse_gateway_over_database']}x"
        )
    for key, value in result.get("ratios", {}).items():
        lines.append(f"{key.replace('_', ' ')}: {value}x")
    return "\n".join(lines)


def _p99(result: dict[str, Any]) -> str:
    """p99 at the fixed load of single readings: '-' without a latency run, 'not all stored' if lost."""
    fixed = [
        x
        for x in result.get("latency", {}).get("citypulse", [])
        if x["fixed"] and x["readings_per_message"] == 1
    ]
    if not fixed:
        return "-"
    return f"{fixed[0]['p99_s']} s" if fixed[0]["p99_s"] is not None else "not all stored"


def doc_row(result: dict[str, Any]) -> str:
    drain = result.get("drain", {})
    ceiling = result.get("database_ceiling", {})
    r = result.get("ratios", {})
    cells = [
        time.strftime("%Y-%m-%d"),
        result["commit"],
        result["machine"],
        result["size"],
        _n(drain.get("mosquitto_sub", {}).get("msg_per_s")),
        _n(drain.get("citypulse_singles", {}).get("sustained_msg_per_s")),
        _n(r.get("broker_ceiling_over_citypulse_singles"), "x"),
        _n(drain.get("citypulse_gateway", {}).get("sustained_readings_per_s")),
        f"{_n(ceiling.get('one_connection', {}).get('points_per_s'))} / "
        f"{_n(ceiling.get('two_connections', {}).get('points_per_s'))}",
        _n(r.get("citypulse_gateway_over_database_1_connection"), "x"),
        _n(drain.get("naive_bridge", {}).get("sustained_msg_per_s")),
        _n(r.get("citypulse_singles_over_naive_bridge"), "x"),
        _n(node_red_best(result)),
        _p99(result),
    ]
    return "| " + " | ".join(cells) + " |"


def write_doc(result: dict[str, Any], doc: Path = DOC) -> None:
    """Append this run's row to the runs table of ``docs/benchmarks.md``."""
    lines = doc.read_text().splitlines()
    starts = [i for i, line in enumerate(lines) if line.startswith(RUNS_HEADER)]
    if not starts:
        raise RuntimeError(f"{doc} has no runs table (a line starting {RUNS_HEADER!r}); add it back first")
    end = starts[0]
    while end + 1 < len(lines) and lines[end + 1].startswith("|"):
        end += 1
    lines.insert(end + 1, doc_row(result))
    doc.write_text("\n".join(lines) + "\n")
