"""A small Grafana: the HTTP API endpoints ``citypulse dashboards push|check`` call, in memory."""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]
    body: Any


@dataclass
class FakeGrafana:
    """State of the fake: what was stored, every request seen, and how to misbehave."""

    token: str = "svc-token"
    refuse_all: bool = False
    datasource_healthy: bool = True
    datasources: dict[str, dict[str, Any]] = field(default_factory=dict)
    folders: dict[str, dict[str, Any]] = field(default_factory=dict)
    dashboards: dict[str, dict[str, Any]] = field(default_factory=dict)
    requests: list[Request] = field(default_factory=list)
    url: str = ""

    def answer(self, method: str, path: str, body: Any) -> tuple[int, Any]:
        if method == "GET" and path == "/api/health":
            return 200, {"database": "ok", "version": "11.6.0"}
        if m := re.fullmatch(r"/api/datasources/uid/([^/]+)/health", path):
            if m.group(1) not in self.datasources:
                return 404, {"message": "Data source not found"}
            if self.datasource_healthy:
                return 200, {"status": "OK", "message": "datasource is working. 7 measurements found"}
            return 400, {"status": "ERROR", "message": "error reading InfluxDB: 401 unauthorized"}
        if m := re.fullmatch(r"/api/datasources/uid/([^/]+)", path):
            uid = m.group(1)
            if method == "GET":
                return (
                    (200, self.datasources[uid])
                    if uid in self.datasources
                    else (404, {"message": "not found"})
                )
            if method == "PUT":
                self.datasources[uid] = body
                return 200, {"message": "Datasource updated"}
        if method == "POST" and path == "/api/datasources":
            self.datasources[body["uid"]] = body
            return 200, {"message": "Datasource added"}
        if m := re.fullmatch(r"/api/folders/([^/]+)", path):
            uid = m.group(1)
            return (200, self.folders[uid]) if uid in self.folders else (404, {"message": "folder not found"})
        if method == "POST" and path == "/api/folders":
            self.folders[body["uid"]] = body
            return 200, body
        if method == "POST" and path == "/api/dashboards/db":
            board = dict(body["dashboard"])
            board["id"] = len(self.dashboards) + 1
            board["version"] = 1
            self.dashboards[board["uid"]] = {"dashboard": board, "meta": {"folderUid": body["folderUid"]}}
            return 200, {"status": "success", "uid": board["uid"]}
        if m := re.fullmatch(r"/api/dashboards/uid/([^/]+)", path):
            uid = m.group(1)
            return (
                (200, self.dashboards[uid])
                if uid in self.dashboards
                else (404, {"message": "Dashboard not found"})
            )
        return 404, {"message": f"no route {method} {path}"}


@contextmanager
def running(fake: FakeGrafana) -> Iterator[FakeGrafana]:
    class Handler(BaseHTTPRequestHandler):
        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            body = json.loads(raw) if raw else None
            fake.requests.append(Request(self.command, self.path, dict(self.headers), body))
            if fake.refuse_all or self.headers.get("Authorization") != f"Bearer {fake.token}":
                status, answer = 401, {"message": "Unauthorized"}
            else:
                status, answer = fake.answer(self.command, self.path, body)
            data = json.dumps(answer).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            self._serve()

        def do_POST(self) -> None:
            self._serve()

        def do_PUT(self) -> None:
            self._serve()

        def log_message(self, format: str, *args: object) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    fake.url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield fake
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
