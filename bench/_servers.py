"""Private Mosquitto and influxd for the benchmarks: free loopback ports, temp dirs, always stopped.

A benchmark must not import the test suite, so what starting these servers takes lives
here and the test fixtures (``tests/servers.py``) use it too. Both start the Debian packages' binaries
(``apt-get install -y mosquitto mosquitto-clients influxdb``) with their own
configuration, so nothing depends on a server someone left running.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ingest.broker import free_port


def require_binary(name: str, package: str) -> str:
    found = shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/bin:/sbin")
    if found is None:
        raise RuntimeError(f"{name} is not installed: run 'apt-get install -y {package}' (or bash .ci/run)")
    return found


def wait_for_port(port: int, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with (
            contextlib.suppress(OSError),
            socket.create_connection(("127.0.0.1", port), timeout=0.2),
        ):
            return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout_s} s")


def influxd_config(workdir: Path, port: int, rpc_port: int) -> str:
    """A private influxd's configuration: loopback ports, everything in ``workdir``, quiet logs."""
    return (
        "reporting-disabled = true\n"
        f'bind-address = "127.0.0.1:{rpc_port}"\n'
        f'[meta]\n  dir = "{workdir}/meta"\n'
        f'[data]\n  dir = "{workdir}/data"\n  wal-dir = "{workdir}/wal"\n'
        "  query-log-enabled = false\n"
        f'[http]\n  bind-address = "127.0.0.1:{port}"\n  log-enabled = false\n'
        "  max-row-limit = 0\n"
        "[monitor]\n  store-enabled = false\n"
        "[continuous_queries]\n  enabled = false\n"
    )


def influxd_answers(url: str) -> bool:
    """Whether the influxd at ``url`` answers its ``/ping``."""
    try:
        with urllib.request.urlopen(url + "/ping", timeout=1) as reply:
            return int(reply.status) == 204
    except OSError:
        return False


def stop_process(process: subprocess.Popen[bytes] | None, grace_s: float = 15.0) -> None:
    """SIGTERM, then SIGKILL after ``grace_s``; a process already gone is fine."""
    if process is None or process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(grace_s)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@dataclass
class Mosquitto:
    """A private Mosquitto that never drops a queued QoS 1 message, without persistence."""

    workdir: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    def config(self) -> str:
        return (
            f"listener {self.port} 127.0.0.1\n"
            "allow_anonymous true\n"
            # A backlog of hundreds of thousands of messages must stay queued for absent sessions.
            "max_queued_messages 0\n"
            "max_inflight_messages 0\n"
            "persistence false\n"
        )

    def start(self) -> None:
        binary = require_binary("mosquitto", "mosquitto")
        self.workdir.mkdir(parents=True, exist_ok=True)
        conf = self.workdir / "mosquitto.conf"
        conf.write_text(self.config())
        log = (self.workdir / "mosquitto.log").open("ab")
        self.process = subprocess.Popen([binary, "-c", str(conf)], stdout=log, stderr=subprocess.STDOUT)
        wait_for_port(self.port)

    def stop(self) -> None:
        stop_process(self.process)
        self.process = None


@dataclass
class Influxd:
    """A private InfluxDB 1.x whose meta, data and WAL live in ``workdir``."""

    workdir: Path
    port: int = field(default_factory=free_port)
    rpc_port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def config(self) -> str:
        return influxd_config(self.workdir, self.port, self.rpc_port)

    def start(self, timeout_s: float = 30.0) -> None:
        binary = require_binary("influxd", "influxdb")
        self.workdir.mkdir(parents=True, exist_ok=True)
        conf = self.workdir / "influxdb.conf"
        conf.write_text(self.config())
        log = (self.workdir / "influxd.log").open("ab")
        self.process = subprocess.Popen([binary, "-config", str(conf)], stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout_s
        while not self.answers():
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"influxd did not start; see {self.workdir}/influxd.log")
            time.sleep(0.05)

    def stop(self) -> None:
        stop_process(self.process, grace_s=20.0)
        self.process = None

    def answers(self) -> bool:
        return influxd_answers(self.url)

    def query(self, statement: str, db: str = "") -> list[dict[str, Any]]:
        """InfluxQL over ``/query`` (POST, so it may also create and drop), epochs in ms."""
        body = urllib.parse.urlencode({"db": db, "epoch": "ms", "q": statement}).encode()
        with urllib.request.urlopen(
            urllib.request.Request(f"{self.url}/query", data=body), timeout=120
        ) as reply:
            answer = json.loads(reply.read())
        results: list[dict[str, Any]] = answer.get("results", [])
        for result in results:
            if "error" in result and "database not found" not in result["error"]:
                raise RuntimeError(f"InfluxQL {statement!r} failed: {result['error']}")
        return results

    def create_database(self, db: str) -> None:
        self.query(f'CREATE DATABASE "{db}"')

    def drop_database(self, db: str) -> None:
        self.query(f'DROP DATABASE "{db}"')

    def counts(self, db: str, fields: dict[str, str]) -> dict[str, int]:
        """Points per measurement, counted on a field every point of it has (one request)."""
        statements = ";".join(f'SELECT count("{f}") FROM "{m}"' for m, f in fields.items())
        found: dict[str, int] = {}
        for (measurement, _), result in zip(fields.items(), self.query(statements, db), strict=True):
            series = result.get("series") or []
            found[measurement] = int(series[0]["values"][0][1]) if series else 0
        return found

    def points_reached(self, db: str) -> int:
        """Points that reached ``db``'s storage engine so far, from influxd's own counters (cheap).

        An upper bound of what is stored while it grows (an overwritten point counts twice, and
        points written with an error are counted too: influxd 1.6 reports "error syncing wal" for
        points it did keep in its cache), so a benchmark confirms the end with an exact count.
        """
        with urllib.request.urlopen(self.url + "/debug/vars", timeout=30) as reply:
            stats = json.loads(reply.read())
        return sum(
            int(v["values"].get("writePointsOk", 0)) + int(v["values"].get("writePointsErr", 0))
            for v in stats.values()
            if isinstance(v, dict) and v.get("name") == "shard" and v.get("tags", {}).get("database") == db
        )

    def points(self, db: str, measurement: str, field_name: str) -> set[tuple[str, int]]:
        """Every distinct (device, time in ms) of ``measurement``."""
        result = self.query(f'SELECT "{field_name}" FROM "{measurement}" GROUP BY "device"', db)[0]
        found: set[tuple[str, int]] = set()
        for series in result.get("series") or []:
            device = series["tags"]["device"]
            found.update((device, int(row[0])) for row in series["values"])
        return found


@contextlib.contextmanager
def running(server: Mosquitto | Influxd) -> Iterator[None]:
    server.start()
    try:
        yield
    finally:
        server.stop()


def cpu_and_peak(pid: int) -> tuple[float, int]:
    """CPU seconds (user + system) and peak resident memory in bytes of a live process, from /proc."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    cpu = (int(fields[11]) + int(fields[12])) / ticks
    peak = 0
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                peak = int(line.split()[1]) * 1024
    return cpu, peak


@dataclass(frozen=True)
class Finished:
    returncode: int
    wall_s: float
    cpu_s: float
    peak_rss_bytes: int


def run_measured(args: list[str], timeout_s: float, env: dict[str, str] | None = None) -> Finished:
    """Run a command to its end: wall time, CPU seconds and peak resident memory of that process.

    The peak is VmHWM read from /proc while it runs (every 5 ms; it only grows). ``wait4``'s
    ``ru_maxrss`` would be wrong here: Linux carries the parent's high-water mark over a fork and
    exec, so every child of a large benchmark process would report at least the parent's size.
    """
    started = time.monotonic()
    process = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    peak = 0
    deadline = started + timeout_s
    while True:
        pid, status, usage = os.wait4(process.pid, os.WNOHANG)
        if pid:
            break
        with contextlib.suppress(OSError, ValueError):
            peak = max(peak, cpu_and_peak(process.pid)[1])
        if time.monotonic() > deadline:
            process.kill()
        time.sleep(0.005)
    wall = time.monotonic() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    return Finished(process.returncode, wall, usage.ru_utime + usage.ru_stime, peak)


def post(url: str, body: bytes, timeout_s: float = 60.0) -> int:
    """POST ``body`` and return the HTTP status (an error status is returned, not raised)."""
    try:
        with urllib.request.urlopen(urllib.request.Request(url, data=body), timeout=timeout_s) as reply:
            return int(reply.status)
    except urllib.error.HTTPError as failed:
        return int(failed.code)
