"""The secured deployment end to end: TLS, a secret per device and gateway, the ACL, a real Mosquitto.

The ingest service and the simulator both connect with ``mqtts://`` and the CA that
``devices certs`` made; the service with its own account (its password from a
``*_FILE``), the simulator with each device's (or gateway's) own secret from the
credentials ``devices provision`` wrote. Every valid reading is stored; a gateway
speaking for a device behind another gateway is dead-lettered as ``gateway_mismatch``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import orjson
import pytest

from ingest.tls import client_context
from processors.endpoint import MqttEndpoint
from processors.timestamps import format_rfc3339
from tests.e2e.helpers import IngestProcess, last_json_line, run_citypulse, stored_counts, wait_until
from tests.ingest.access.helpers import ACCEPTED, Client, SecuredBroker, connected, secured_broker

P = "citypulse/v1"
STATUS = f"{P}/status/ingest/citypulse-ingest"
REGISTRY = """device_id,kind,district,lat,lon,install_date,interval_s,gateway
air-000001,air,Ba Đình,21.03,105.81,,60,gw-north
air-000002,air,Đống Đa,21.01,105.83,,60,gw-north
air-000003,air,Hoàn Kiếm,21.02,105.85,,60,gw-south
air-000004,air,Tây Hồ,21.06,105.82,,60,gw-south
water-000001,water,Ba Đình,21.03,105.81,,300,gw-north
water-000002,water,Hoàn Kiếm,21.02,105.85,,300,gw-south
"""


@dataclass
class Stack:
    broker: SecuredBroker
    workdir: Path
    url: str
    ca: Path
    ops: Client


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    workdir = tmp_path_factory.mktemp("secure-stack")
    (workdir / "devices.csv").write_text(REGISTRY, encoding="utf-8")
    made = run_citypulse("devices", "certs", "--out", str(workdir / "tls"), "--server-name", "127.0.0.1")
    assert made.returncode == 0, made.stderr
    with secured_broker(workdir, "--operator", "ops", tls_dir=workdir / "tls") as broker:
        assert broker.tls_port is not None
        ca = workdir / "tls" / "ca.crt"
        url = f"mqtts://127.0.0.1:{broker.tls_port}"
        context = client_context(MqttEndpoint.parse(url).with_tls_files(str(ca)))
        with connected(broker.tls_port, "ops", broker.credentials["ops"], context) as ops:
            ops.subscribe(f"{P}/deadletter/#", f"{P}/status/#")
            yield Stack(broker, workdir, url, ca, ops)


@pytest.fixture(scope="module")
def ingest(stack: Stack) -> Iterator[IngestProcess]:
    secret = stack.workdir / "ingest.secret"
    secret.write_text(stack.broker.credentials["citypulse-ingest"] + "\n")
    secret.chmod(0o600)
    env = {
        "CITYPULSE_MQTT_URL": stack.url.replace("mqtts://", "mqtts://citypulse-ingest@"),
        "CITYPULSE_MQTT_PASSWORD_FILE": str(secret),
        "CITYPULSE_MQTT_CA_FILE": str(stack.ca),
        "CITYPULSE_REGISTRY": str(stack.workdir / "devices.csv"),
        "CITYPULSE_SQLITE_PATH": str(stack.workdir / "store.sqlite"),
        "CITYPULSE_METRICS_PORT": "0",
    }
    process = IngestProcess(stack.workdir, env)
    try:
        wait_until(
            lambda: any(p == b"online" for t, p in stack.ops.received() if t == STATUS), 30, "ingest online"
        )
        yield process
    finally:
        code = process.terminate()
        assert code == 0, process.log()


def simulate(stack: Stack, *extra: str) -> dict[str, object]:
    done = run_citypulse(
        "simulate", "--registry", str(stack.workdir / "devices.csv"), "--mqtt-url", stack.url,
        "--credentials", str(stack.workdir / "broker" / "credentials.csv"), "--speed", "0", "--json",
        *extra, env={"CITYPULSE_MQTT_CA_FILE": str(stack.ca)},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    summary = last_json_line(done.stdout)
    assert summary["failed"] == 0
    assert summary["acknowledged"] == summary["messages"]
    return summary


def test_devices_and_gateways_publish_over_tls_with_their_own_secrets(
    stack: Stack, ingest: IngestProcess
) -> None:
    store = stack.workdir / "store.sqlite"
    singles = simulate(stack, "--span", "30m", "--seed", "5")
    earlier = str((ingest_clock_ms() - 2 * 3600_000) // 1000)  # another half hour: no reading repeats
    batches = simulate(stack, "--span", "30m", "--seed", "6", "--batch", "4", "--start", earlier)
    valid: dict[str, int] = {}
    for run in (singles, batches):
        for kind, count in dict(run["valid_by_kind"]).items():  # type: ignore[call-overload]
            valid[kind] = valid.get(kind, 0) + int(count)
    assert sum(valid.values()) > 50
    wait_until(lambda: stored_counts(store) == valid, 60, f"store to hold {valid}")
    assert "reading mqtts://citypulse-ingest@127.0.0.1" in ingest.log()


def test_a_gateway_cannot_speak_for_a_device_behind_another(stack: Stack, ingest: IngestProcess) -> None:
    store = stack.workdir / "store.sqlite"
    before = stored_counts(store)
    port = stack.broker.tls_port
    assert port is not None
    ts = format_rfc3339(ingest_clock_ms())
    batch = [
        {"device": "air-000001", "ts": ts, "pm25": 11.0},  # its own
        {"device": "air-000003", "ts": ts, "pm25": 999.0},  # behind gw-south: a forgery
    ]
    context = client_context(MqttEndpoint.parse(stack.url).with_tls_files(str(stack.ca)))
    with connected(port, "gw-north", stack.broker.credentials["gw-north"], context) as gateway:
        assert gateway.publish(f"{P}/batches/air/gw-north", orjson.dumps(batch)) in ACCEPTED
    expected = {**before, "air": before.get("air", 0) + 1, "deadletters": before.get("deadletters", 0) + 1}
    wait_until(lambda: stored_counts(store) == expected, 30, f"store to hold {expected}")
    letters = [json.loads(p) for t, p in stack.ops.received() if t.startswith(f"{P}/deadletter/")]
    forged = [d for d in letters if d["reason"] == "gateway_mismatch"]
    assert len(forged) == 1
    assert forged[0]["device"] == "air-000003"
    assert "gw-south" in forged[0]["detail"]


def ingest_clock_ms() -> int:
    import time

    return time.time_ns() // 1_000_000
