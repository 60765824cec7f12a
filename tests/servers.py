"""Real servers for tests: each started on a free loopback port and always stopped.

Nothing here depends on a service someone left running. When a server binary is
missing the test fails and says how to install it (CI installs them in .ci/run).
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
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ingest.broker import free_port


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


def require_binary(name: str, package: str) -> str:
    found = shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/bin:/sbin")
    if found is None:
        raise RuntimeError(f"{name} is not installed: run 'apt-get install -y {package}' (or bash .ci/run)")
    return found


@dataclass
class Mosquitto:
    """A private Mosquitto with the settings citypulse documents for production."""

    workdir: Path
    persistence: bool = False
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    def config(self) -> str:
        lines = [
            f"listener {self.port} 127.0.0.1",
            "allow_anonymous true",
            # The broker must never drop a queued QoS 1 message for a slow or absent consumer.
            "max_queued_messages 0",
            "max_inflight_messages 0",
        ]
        if self.persistence:
            lines += [
                "persistence true",
                f"persistence_location {self.workdir}/",
                "autosave_interval 1",
            ]
            if os.geteuid() == 0:
                # Started as root, Mosquitto drops to user 'mosquitto', which cannot write its
                # database into a root-owned tmp dir: persistence would fail (it only logs it).
                lines.append("user root")
        return "\n".join(lines) + "\n"

    def start(self) -> None:
        binary = require_binary("mosquitto", "mosquitto")
        self.workdir.mkdir(parents=True, exist_ok=True)
        conf = self.workdir / "mosquitto.conf"
        conf.write_text(self.config())
        log = (self.workdir / "mosquitto.log").open("ab")
        self.process = subprocess.Popen([binary, "-c", str(conf)], stdout=log, stderr=subprocess.STDOUT)
        wait_for_port(self.port)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def restart(self) -> None:
        self.stop()
        self.start()


@contextlib.contextmanager
def running_mosquitto(workdir: Path, persistence: bool = False) -> Iterator[Mosquitto]:
    broker = Mosquitto(workdir, persistence=persistence)
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


@dataclass
class Influxd:
    """A private InfluxDB 1.x (``influxd``) whose meta, data and WAL live in ``workdir``.

    Ports stay the same across :meth:`restart`, so a client configured once
    finds the server again, as it would in production.
    """

    workdir: Path
    port: int = field(default_factory=free_port)
    rpc_port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def config(self) -> str:
        return (
            "reporting-disabled = true\n"
            f'bind-address = "127.0.0.1:{self.rpc_port}"\n'
            f'[meta]\n  dir = "{self.workdir}/meta"\n'
            f'[data]\n  dir = "{self.workdir}/data"\n  wal-dir = "{self.workdir}/wal"\n'
            "  query-log-enabled = false\n"
            f'[http]\n  bind-address = "127.0.0.1:{self.port}"\n  log-enabled = false\n'
            "  max-row-limit = 0\n"
            "[monitor]\n  store-enabled = false\n"
            "[continuous_queries]\n  enabled = false\n"
        )

    def start(self, timeout_s: float = 30.0) -> None:
        binary = require_binary("influxd", "influxdb")
        self.workdir.mkdir(parents=True, exist_ok=True)
        conf = self.workdir / "influxdb.conf"
        conf.write_text(self.config())
        log = (self.workdir / "influxd.log").open("ab")
        self.process = subprocess.Popen([binary, "-config", str(conf)], stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"influxd exited with {self.process.returncode}; see {self.workdir}/influxd.log"
                )
            if self.answers():
                return
            time.sleep(0.05)
        raise TimeoutError(f"influxd did not answer /ping on port {self.port} within {timeout_s} s")

    def answers(self) -> bool:
        try:
            with urllib.request.urlopen(self.url + "/ping", timeout=1) as reply:
                return int(reply.status) == 204
        except OSError:
            return False

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def query(self, statement: str, db: str = "citypulse") -> list[dict[str, Any]]:
        """InfluxQL over ``/query`` with millisecond epochs; the result list, one entry per statement."""
        params = urllib.parse.urlencode({"db": db, "epoch": "ms", "q": statement})
        with urllib.request.urlopen(f"{self.url}/query?{params}", timeout=30) as reply:
            answer = json.loads(reply.read())
        results: list[dict[str, Any]] = answer["results"]
        for result in results:
            if "error" in result:
                raise AssertionError(f"InfluxQL {statement!r} failed: {result['error']}")
        return results

    def create_database(self, db: str = "citypulse") -> None:
        body = urllib.parse.urlencode({"q": f'CREATE DATABASE "{db}"'}).encode()
        with urllib.request.urlopen(urllib.request.Request(f"{self.url}/query", data=body), timeout=30):
            pass

    def rows(self, measurement: str, db: str = "citypulse") -> list[dict[str, Any]]:
        """Every point of ``measurement`` as a dict of column to value (``time`` in epoch ms)."""
        rows: list[dict[str, Any]] = []
        for series in self.query(f'SELECT * FROM "{measurement}"', db)[0].get("series", []):
            rows += [dict(zip(series["columns"], values, strict=True)) for values in series["values"]]
        return rows

    def points(self, measurement: str, db: str = "citypulse") -> set[tuple[str, int]]:
        """The distinct (device, time) pairs stored in ``measurement``."""
        return {(row["device"], row["time"]) for row in self.rows(measurement, db)}


@contextlib.contextmanager
def running_influxd(workdir: Path) -> Iterator[Influxd]:
    server = Influxd(workdir)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@dataclass
class VictoriaMetrics:
    """A private VictoriaMetrics: a real server that accepts InfluxDB's ``/api/v2/write``."""

    workdir: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout_s: float = 30.0) -> None:
        binary = require_binary("victoria-metrics", "victoria-metrics")
        self.workdir.mkdir(parents=True, exist_ok=True)
        log = (self.workdir / "victoria-metrics.log").open("ab")
        self.process = subprocess.Popen(
            [
                binary,
                f"-httpListenAddr=127.0.0.1:{self.port}",
                f"-storageDataPath={self.workdir}/data",
                "-retentionPeriod=100y",
                "-loggerLevel=ERROR",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"victoria-metrics exited; see {self.workdir}/victoria-metrics.log")
            try:
                with urllib.request.urlopen(self.url + "/health", timeout=1) as reply:
                    if reply.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.05)
        raise TimeoutError(f"victoria-metrics did not answer on port {self.port} within {timeout_s} s")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def export(self, metric_regex: str) -> list[dict[str, Any]]:
        """Raw samples of the metrics whose names match (each: metric labels, values, timestamps)."""
        with urllib.request.urlopen(self.url + "/internal/force_flush", timeout=10):
            pass
        params = urllib.parse.urlencode({"match[]": f'{{__name__=~"{metric_regex}"}}'})
        with urllib.request.urlopen(f"{self.url}/api/v1/export?{params}", timeout=30) as reply:
            return [json.loads(line) for line in reply.read().splitlines() if line.strip()]


@contextlib.contextmanager
def running_victoria_metrics(workdir: Path) -> Iterator[VictoriaMetrics]:
    server = VictoriaMetrics(workdir)
    server.start()
    try:
        yield server
    finally:
        server.stop()
