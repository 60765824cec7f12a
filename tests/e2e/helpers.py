"""Driving the real ``citypulse`` command against real brokers, and watching what it did."""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from processors.endpoint import MqttEndpoint
from processors.kinds import KINDS


def citypulse_command() -> list[str]:
    """The installed console script, as users run it."""
    found = shutil.which("citypulse")
    return [found] if found else [sys.executable, "-m", "ingest.cli"]


def run_citypulse(
    *args: str, env: dict[str, str] | None = None, timeout: float = 180
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*citypulse_command(), *args],
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def last_json_line(stdout: str) -> dict[str, Any]:
    lines = [line for line in stdout.splitlines() if line.strip()]
    assert lines, "the command printed nothing on stdout"
    parsed = json.loads(lines[-1])
    assert isinstance(parsed, dict)
    return parsed


def wait_until(predicate: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")


def stored_counts(path: Path) -> dict[str, int]:
    if not path.exists():
        return {}
    db = sqlite3.connect(path)
    try:
        counts = {k: db.execute(f'SELECT count(*) FROM "{k}"').fetchone()[0] for k in KINDS}
        counts["deadletters"] = db.execute(
            "SELECT count(*) FROM events WHERE measurement = 'deadletters'"
        ).fetchone()[0]
        return {k: v for k, v in counts.items() if v}
    except sqlite3.OperationalError:
        return {}
    finally:
        db.close()


class Watcher:
    """A plain MQTT client that records what arrives on some topics."""

    def __init__(
        self, url: str, topics: list[str], protocol: MQTTProtocolVersion = MQTTProtocolVersion.MQTTv311
    ) -> None:
        endpoint = MqttEndpoint.parse(url)
        self.messages: list[tuple[str, bytes, bool]] = []
        self._lock = threading.Lock()
        self._ready = threading.Event()
        self._client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"watcher-{os.getpid()}-{id(self)}",
            protocol=protocol,
        )
        self._client.on_connect = lambda c, *_: (c.subscribe([(t, 1) for t in topics]), None)[1]
        self._client.on_subscribe = lambda *_: self._ready.set()
        self._client.on_message = self._on_message
        self._client.connect(endpoint.host, endpoint.port)
        self._client.loop_start()
        if not self._ready.wait(10):
            raise AssertionError(f"watcher could not subscribe at {url}")

    def _on_message(self, client: mqtt.Client, userdata: object, msg: mqtt.MQTTMessage) -> None:
        with self._lock:
            self.messages.append((msg.topic, bytes(msg.payload), bool(msg.retain)))

    def payloads(self, prefix: str) -> list[bytes]:
        with self._lock:
            return [p for t, p, _ in self.messages if t.startswith(prefix)]

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()


@contextmanager
def watching(url: str, topics: list[str]) -> Iterator[Watcher]:
    watcher = Watcher(url, topics)
    try:
        yield watcher
    finally:
        watcher.close()


class IngestProcess:
    """``citypulse ingest`` as a child process, configured only by environment variables."""

    def __init__(self, workdir: Path, env: dict[str, str]) -> None:
        self.log_path = workdir / "ingest.log"
        self._log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [*citypulse_command(), "ingest"],
            env={**os.environ, **env},
            cwd=workdir,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def terminate(self, timeout_s: float = 60) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout_s)
        finally:
            self._log.close()

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self._log.close()


def expected_deadletters(simulated: dict[str, Any]) -> Counter[str]:
    return Counter({k: int(v) for k, v in simulated["expected_rejects"].items()})
