"""Real servers for tests: each started on a free loopback port and always stopped.

Nothing here depends on a service someone left running. When a server binary is
missing the test fails and says how to install it (CI installs them in .ci/run).
"""

from __future__ import annotations

import contextlib
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

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
