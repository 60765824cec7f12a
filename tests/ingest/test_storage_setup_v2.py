"""``citypulse storage setup`` on InfluxDB 2.x, against a small stand-in for the API endpoints it calls.

InfluxDB 2.x cannot run here; this checks what setup asks of it (buckets and their
retention, one Flux task per measurement, the two least-privilege tokens, the
rp_config rows) and that a second run changes nothing.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from ingest.storage_setup import GRAFANA_TOKEN_FILE, INGEST_TOKEN_FILE
from processors.retention import continuous_query_name, rollup_measurements
from tests.e2e.helpers import run_citypulse

ORG = {"id": "0000000000000001", "name": "citypulse"}


class Influx2:
    def __init__(self) -> None:
        self.buckets: dict[str, dict[str, Any]] = {
            "citypulse": self._bucket("citypulse", 30 * 86400),
        }
        self.tasks: dict[str, dict[str, Any]] = {}
        self.auths: dict[str, dict[str, Any]] = {}
        self.written: list[str] = []
        self.tokens_made = 0

    def _bucket(self, name: str, seconds: int) -> dict[str, Any]:
        return {
            "id": f"b{len(getattr(self, 'buckets', {})) + 1:015d}",
            "orgID": ORG["id"],
            "name": name,
            "retentionRules": [{"type": "expire", "everySeconds": seconds}],
        }

    def answer(self, method: str, path: str, query: dict[str, list[str]], body: Any) -> tuple[int, Any]:
        if path == "/api/v2/orgs":
            return 200, {"orgs": [ORG]}
        if path == "/api/v2/buckets" and method == "GET":
            names = query.get("name")
            return 200, {"buckets": [b for b in self.buckets.values() if not names or b["name"] in names]}
        if path == "/api/v2/buckets" and method == "POST":
            bucket = self._bucket(body["name"], body["retentionRules"][0]["everySeconds"])
            self.buckets[bucket["name"]] = bucket
            return 201, bucket
        if (m := re.fullmatch(r"/api/v2/buckets/(\w+)", path)) and method == "PATCH":
            bucket = next(b for b in self.buckets.values() if b["id"] == m.group(1))
            bucket["retentionRules"] = body["retentionRules"]
            return 200, bucket
        if path == "/api/v2/tasks" and method == "GET":
            names = query.get("name")
            return 200, {"tasks": [t for t in self.tasks.values() if not names or t["name"] in names]}
        if path == "/api/v2/tasks" and method == "POST":
            name = re.search(r'name: "([^"]+)"', body["flux"])
            assert name, body["flux"]
            task = {"id": f"t{len(self.tasks) + 1:015d}", "orgID": body["orgID"], "name": name.group(1)}
            task |= {"flux": body["flux"], "status": body["status"]}
            self.tasks[task["name"]] = task
            return 201, task
        if (m := re.fullmatch(r"/api/v2/tasks/(\w+)", path)) and method == "PATCH":
            task = next(t for t in self.tasks.values() if t["id"] == m.group(1))
            task["flux"] = body["flux"]
            return 200, task
        if path == "/api/v2/authorizations" and method == "GET":
            return 200, {"authorizations": list(self.auths.values())}
        if path == "/api/v2/authorizations" and method == "POST":
            self.tokens_made += 1
            auth = {**body, "id": f"a{self.tokens_made:015d}", "token": f"token-{self.tokens_made}"}
            auth["status"] = "active"
            self.auths[auth["id"]] = auth
            return 201, auth
        if (m := re.fullmatch(r"/api/v2/authorizations/(\w+)", path)) and method == "DELETE":
            self.auths.pop(m.group(1))
            return 204, None
        if path == "/api/v2/write":
            assert query["bucket"] == ["citypulse/rollup_1h"]
            self.written.append(body)
            return 204, None
        return 404, {"code": "not found", "message": f"{method} {path}"}


@pytest.fixture
def influx2() -> Iterator[tuple[Influx2, str]]:
    fake = Influx2()

    class Handler(BaseHTTPRequestHandler):
        def _serve(self) -> None:
            parts = urlsplit(self.path)
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            is_json = "json" in (self.headers.get("Content-Type") or "")
            body = json.loads(raw) if raw and is_json else raw.decode()
            status, answer = fake.answer(self.command, parts.path, parse_qs(parts.query), body)
            data = b"" if answer is None else json.dumps(answer).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            self._serve()

        def do_POST(self) -> None:
            self._serve()

        def do_PATCH(self) -> None:
            self._serve()

        def do_DELETE(self) -> None:
            self._serve()

        def log_message(self, *args: object) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield fake, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_v2_setup_makes_buckets_tasks_and_least_privilege_tokens_once(
    influx2: tuple[Influx2, str], tmp_path: Path
) -> None:
    fake, url = influx2
    env = {"CITYPULSE_SINK": "influxdb", "CITYPULSE_INFLUX_URL": url, "CITYPULSE_INFLUX_TOKEN": "admin"}
    tokens = tmp_path / "tokens"
    first = run_citypulse("storage", "setup", "--tokens-dir", str(tokens), "--json", env=env)
    assert first.returncode == 0, first.stderr
    assert fake.buckets["citypulse/rollup_1h"]["retentionRules"] == [
        {"type": "expire", "everySeconds": 157_680_000}
    ]
    assert fake.buckets["citypulse"]["retentionRules"] == [{"type": "expire", "everySeconds": 2_592_000}]
    assert set(fake.tasks) == {continuous_query_name(m) for m in rollup_measurements()}
    air = fake.tasks[continuous_query_name("air")]["flux"]
    assert 'from(bucket: "citypulse")' in air
    assert 'to(bucket: "citypulse/rollup_1h")' in air
    assert 'r._measurement == "air"' in air
    by_role = {a["description"]: a for a in fake.auths.values()}
    ingest = by_role["citypulse ingest (write only)"]["permissions"]
    assert ingest == [
        {
            "action": "write",
            "resource": {"type": "buckets", "id": fake.buckets["citypulse"]["id"], "orgID": ORG["id"]},
        }
    ]
    grafana = by_role["citypulse Grafana (read only)"]["permissions"]
    assert grafana == [{"action": "read", "resource": {"type": "buckets", "orgID": ORG["id"]}}]
    assert (tokens / INGEST_TOKEN_FILE).read_text() == by_role["citypulse ingest (write only)"][
        "token"
    ] + "\n"
    assert (tokens / GRAFANA_TOKEN_FILE).read_text() == by_role["citypulse Grafana (read only)"][
        "token"
    ] + "\n"
    assert "token-" not in first.stderr + first.stdout, "tokens are written to files, never printed"
    assert any("rp_config,name=rollup" in body for body in fake.written)

    again = run_citypulse("storage", "setup", "--tokens-dir", str(tokens), "--json", env=env)
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout.splitlines()[-1])["changed"] == 0
    assert fake.tokens_made == 2

    (tokens / GRAFANA_TOKEN_FILE).unlink()  # a lost token is replaced, not duplicated
    lost = run_citypulse("storage", "setup", "--tokens-dir", str(tokens), env=env)
    assert lost.returncode == 0, lost.stderr
    assert len(fake.auths) == 2
    assert (tokens / GRAFANA_TOKEN_FILE).read_text() == "token-3\n"
