"""Node-RED as a contender, built from its standard nodes: MQTT in -> function -> InfluxDB out.

Installed by npm into a cache directory the first time (``node-red`` 4.x, which runs on the Node.js 20
Debian ships; Node-RED 5 needs Node.js 22), then started with a flow file written here: ``mqtt in``
(QoS 1, parsed JSON) on single readings, a ``function`` node that shapes a reading into InfluxDB's
fields and tags (measurement = kind, tag ``device``, numbers as fields, the reading's timestamp in ms),
and ``influxdb out`` on a 1.x server. The editor and the HTTP nodes are off.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from bench._servers import stop_process
from ingest.broker import free_port

NODE_RED = "node-red@4.1.8"
INFLUX_NODES = "node-red-contrib-influxdb@0.7.0"
DEFAULT_CACHE = (
    Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "citypulse-bench" / "node-red"
)

SHAPE = """
const r = msg.payload;
let t = r.ts;
if (typeof t === "string") { t = Date.parse(t); } else if (t < 1e11) { t = t * 1000; }
const fields = {};
for (const k in r) { if (k !== "ts" && typeof r[k] === "number") { fields[k] = r[k]; } }
fields.time = t;
msg.measurement = msg.topic.split("/")[3];
msg.payload = [fields, { device: r.device }];
return msg;
"""


class NodeRedUnavailableError(RuntimeError):
    """Node.js or npm is missing, or the packages could not be installed; the message says which."""


def install(cache: Path = DEFAULT_CACHE) -> Path:
    """The path of Node-RED's ``red.js``, installing both packages into ``cache`` if they are missing."""
    red = cache / "node_modules" / "node-red" / "red.js"
    influx = cache / "node_modules" / "node-red-contrib-influxdb" / "influxdb.js"
    if red.is_file() and influx.is_file():
        return red
    if shutil.which("node") is None or shutil.which("npm") is None:
        raise NodeRedUnavailableError("Node.js and npm are not installed (apt-get install -y nodejs npm)")
    cache.mkdir(parents=True, exist_ok=True)
    manifest = cache / "package.json"
    if not manifest.exists():
        manifest.write_text('{"name": "citypulse-bench-node-red", "private": true}\n')
    done = subprocess.run(
        ["npm", "install", "--no-audit", "--no-fund", "--loglevel=error", NODE_RED, INFLUX_NODES],
        cwd=cache,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if done.returncode != 0 or not red.is_file():
        raise NodeRedUnavailableError(
            f"npm could not install {NODE_RED} and {INFLUX_NODES}: {done.stderr[-500:]}"
        )
    return red


def flow(
    mqtt_port: int, influx_port: int, database: str, client_id: str, auto_unsubscribe: bool
) -> list[dict[str, object]]:
    """The flow: what a user builds in the editor from the standard nodes."""
    return [
        {"id": "tab", "type": "tab", "label": "citypulse bench"},
        {
            "id": "broker", "type": "mqtt-broker", "name": "mosquitto", "broker": "127.0.0.1",
            "port": str(mqtt_port), "clientid": client_id, "autoConnect": True, "usetls": False,
            "protocolVersion": "4", "keepalive": "60", "cleansession": False,
            "autoUnsubscribe": auto_unsubscribe,
        },
        {
            "id": "in", "type": "mqtt in", "z": "tab", "topic": "citypulse/v1/readings/+/+", "qos": "1",
            "datatype": "json", "broker": "broker", "nl": False, "rap": True, "rh": 0, "inputs": 0,
            "wires": [["shape"]],
        },
        {"id": "shape", "type": "function", "z": "tab", "func": SHAPE, "outputs": 1, "wires": [["out"]]},
        {
            "id": "out", "type": "influxdb out", "z": "tab", "influxdb": "db", "measurement": "",
            "precision": "ms", "retentionPolicy": "", "wires": [],
        },
        {
            "id": "db", "type": "influxdb", "hostname": "127.0.0.1", "port": str(influx_port),
            "protocol": "http", "database": database, "influxdbVersion": "1.x", "usetls": False,
        },
    ]  # fmt: skip


@dataclass
class NodeRed:
    """One Node-RED process running the bench flow."""

    red: Path
    workdir: Path
    mqtt_port: int
    influx_port: int
    database: str
    client_id: str = "bench-node-red"
    auto_unsubscribe: bool = True
    """Node-RED's default for an MQTT broker node: unsubscribe when the flow stops."""
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def log_path(self) -> Path:
        return self.workdir / "node-red.log"

    def start(self, timeout_s: float = 60.0) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        nodes = flow(self.mqtt_port, self.influx_port, self.database, self.client_id, self.auto_unsubscribe)
        (self.workdir / "flows.json").write_text(json.dumps(nodes, indent=1))
        (self.workdir / "flows_cred.json").write_text('{"db": {"username": "", "password": ""}}')
        (self.workdir / "settings.js").write_text(
            "module.exports = {\n"
            f"  uiPort: {self.port}, uiHost: '127.0.0.1', flowFile: 'flows.json', credentialSecret: false,\n"
            "  httpAdminRoot: false, httpNodeRoot: false, diagnostics: {enabled: false},\n"
            "  logging: {console: {level: 'info', metrics: false, audit: false}},\n"
            "};\n"
        )
        log = self.log_path.open("ab")
        offset = log.tell()
        self.process = subprocess.Popen(
            ["node", str(self.red), "--settings", "settings.js", "--userDir", str(self.workdir)],
            cwd=self.workdir,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + timeout_s
        while b"Connected to broker" not in self.log_path.read_bytes()[offset:]:
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"Node-RED did not connect to the broker; see {self.log_path}")
            time.sleep(0.1)

    def stop(self) -> None:
        stop_process(self.process, grace_s=15.0)
        self.process = None

    def errors(self) -> int:
        """Lines of its log that report an error (failed writes, refused connections)."""
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return sum(1 for line in text.splitlines() if "[error]" in line)
