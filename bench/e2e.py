"""End to end: the pipeline as a user runs it, on real Mosquitto and influxd, contenders side by side.

Run: ``python bench/e2e.py [--size small|full] [--json] [--write-doc] [--profile]``
(full: about 30 minutes on two cores with --profile; small: under a minute, what CI runs).

One run starts its own Mosquitto (``max_queued_messages 0``, no persistence) and its own influxd 1.x
on free loopback ports, and makes two backlogs with ``citypulse simulate --output`` (``--size full``:
10,000 devices over 40 simulated minutes, about 197,000 single-reading messages; and the same fleet in
gateway batches of 100). Then:

1. **Drains.** Each contender's persistent QoS 1 session is made first (subscribe once, disconnect),
   the backlog is published once into all of them, and each contender then drains its session alone,
   timed until InfluxDB holds every reading, checked point by point: ``mosquitto_sub -q 1`` (the
   broker's ceiling; it discards), ``citypulse ingest`` (defaults, all detectors, v1 sink), the same
   with ``CITYPULSE_DETECTORS=none``, a naive bridge (``bench/naive_bridge.py``), Node-RED (its
   default loses a backlog queued while it was stopped, so it is shown with auto-unsubscribe off and
   its default's loss is recorded), and ``citypulse ingest`` on the gateway backlog.
2. **The database alone**: the same number of points, pre-encoded in 5,000-point bodies (4 fields,
   10,000 series), over one and two connections, and one connection gzipped.
3. **Latency** at fixed offered loads (25, 50 and 90 % of citypulse's measured maximum, and the fixed
   load the target names, also as gateway batches): p50/p95/p99 from publish to queryable, for
   citypulse and Node-RED.
4. **Memory**: ``citypulse ingest`` draining a 100,000-device backlog (singles and batches), and the
   simulator's resident memory per device with every fault and labels.
5. **Scaling out**: the singles backlog drained by 1, 2 and 4 ingest processes in one MQTT shared
   subscription (``$share/GROUP/...``): rate, every reading stored once, which process saw which
   device, and each detector's alarm onsets against one process.
6. With ``--profile``: the singles drain again under py-spy (all running threads, then ``--gil``),
   and a gateway drain with ``--idle`` (where the wall-clock time goes).

Progress goes to stderr; the result is a table (or JSON with ``--json``) on stdout; ``--write-doc``
appends a row to ``docs/benchmarks.md``. The machine may be shared: compare ratios within one run.
Needs ``mosquitto``, ``mosquitto-clients`` and ``influxdb`` (Debian), and for Node-RED, Node.js and npm.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench import _e2e_stages as stages  # noqa: E402
from bench._e2e_drain import Servers  # noqa: E402
from bench._e2e_report import commit, machine, ratios, text_table, write_doc  # noqa: E402
from bench._nodered import DEFAULT_CACHE  # noqa: E402
from bench._servers import Influxd, Mosquitto, running  # noqa: E402

SKIPPABLE = ("naive", "node-red", "latency", "memory", "scale")


def progress(line: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {line}", file=sys.stderr, flush=True)


def run(args: argparse.Namespace) -> dict[str, Any]:
    size = stages.SIZES[args.size]
    skip = set(args.skip.split(",")) if args.skip else set()
    result: dict[str, Any] = {
        "size": size.name,
        "machine": machine(),
        "commit": commit(),
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
        "note": "two shared cores: compare ratios measured side by side in this run, not absolute rates",
    }
    with tempfile.TemporaryDirectory(prefix="citypulse-e2e-") as scratch:
        work = Path(args.workdir) if args.workdir else Path(scratch)
        work.mkdir(parents=True, exist_ok=True)
        mosquitto, influxd = Mosquitto(work / "mosquitto"), Influxd(work / "influxd")
        with running(mosquitto), running(influxd):
            r = stages.Run(Servers(mosquitto, influxd), work, size, progress, baselines=tuple(args.baseline))
            stages.prepare(r, node_red="node-red" not in skip, cache=Path(args.node_red_cache))
            assert r.singles is not None
            assert r.gateway is not None
            result["backlog"] = {
                "devices": size.devices,
                "span": size.span,
                "single_messages": r.singles.messages,
                "gateway_messages": r.gateway.messages,
                "gateway_readings": r.gateway.readings,
                "readings_by_kind": r.singles.per_kind,
            }
            if "node-red" in skip:
                result["node_red"] = "left out (--skip node-red)"
            elif r.red is None:
                result["node_red"] = "left out: Node.js/npm missing or the install failed (see progress)"
            result["drain"] = stages.drains(r, naive="naive" not in skip)
            result["database_ceiling"] = stages.ceilings(r)
            if "latency" not in skip:
                best = result["drain"]["citypulse_singles"]["sustained_msg_per_s"]
                red = result["drain"].get("node_red_keep_session", {}).get("sustained_msg_per_s")
                result["latency"] = stages.latency(
                    r, float(best), node_red="node-red" not in skip, node_red_max=float(red) if red else None
                )
            if "memory" not in skip:
                result["memory"] = stages.memory(r)
            if "scale" not in skip:
                result["scale_out"] = stages.scale(r)
            if args.repeat_key:
                result["key_pairs_again"] = [stages.key_pairs(r, n) for n in range(args.repeat_key)]
            if args.profile:
                result["profile"] = [stages.profile(r, mode) for mode in ("running", "gil", "gateway-wall")]
    result["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    result["ratios"] = ratios(result)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", choices=sorted(stages.SIZES), default="full")
    parser.add_argument("--json", action="store_true", help="print the result as one JSON line on stdout")
    parser.add_argument("--out", type=Path, help="also write the JSON result to this file")
    parser.add_argument("--write-doc", action="store_true", help="append a row to docs/benchmarks.md")
    parser.add_argument("--profile", action="store_true", help="also profile a singles drain with py-spy")
    parser.add_argument(
        "--skip", default="", help=f"leave stages out, comma-separated: {', '.join(SKIPPABLE)}"
    )
    parser.add_argument(
        "--repeat-key",
        type=int,
        default=0,
        metavar="N",
        help="at the end, drain the key pairs N more times (mosquitto_sub and citypulse singles; "
        "citypulse gateway and influxd alone) to see how much a shared machine moved them",
    )
    parser.add_argument(
        "--baseline",
        type=Path,
        action="append",
        default=[],
        metavar="CHECKOUT",
        help="also drain both backlogs with the citypulse ingest of another checkout (e.g. an older "
        "commit unpacked with 'git archive'), side by side with this one; may be given several times",
    )
    parser.add_argument("--node-red-cache", default=str(DEFAULT_CACHE), help="where npm installs Node-RED")
    parser.add_argument("--workdir", help="keep servers' data and logs here instead of a temp dir")
    args = parser.parse_args()
    unknown = set(filter(None, args.skip.split(","))) - set(SKIPPABLE)
    if unknown:
        parser.error(f"--skip {','.join(sorted(unknown))}: choose from {', '.join(SKIPPABLE)}")
    # A stop request unwinds like an error: servers and contenders are stopped on the way out.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    result = run(args)
    if args.out:
        args.out.write_text(json.dumps(result, indent=1) + "\n")
    if args.write_doc:
        write_doc(result)
        progress("appended a row to docs/benchmarks.md")
    print(json.dumps(result) if args.json else text_table(result))


if __name__ == "__main__":
    main()
