"""A small fault-injecting HTTP proxy in front of a real influxd, for the tests.

It answers the first write requests as scripted (503, then 429 with
Retry-After, ...), then forwards writes to influxd, except that a request body
containing a poisoned point is refused with 422 and the server-style reason
InfluxDB gives for a field type conflict (nothing of that request is written).
It also translates the v2 write API (``/api/v2/write?org=&bucket=``) to influxd
1.x's ``/write?db=`` (1.6 has no v2 API), so the v2 sink goes through the same
faults against the same real database. Every write request is recorded.
"""

from __future__ import annotations

import gzip
import http.server
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Scripted:
    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""


@dataclass(frozen=True)
class Seen:
    at: float
    path: str
    status: int
    lines: int


CONFLICT = (
    b'{"code":"unprocessable entity","message":"failure writing points to database: partial write: '
    b'field type conflict: input field \\"pm25\\" on measurement \\"air\\" is type integer, '
    b'already exists as type float dropped=1"}'
)


class FaultProxy:
    def __init__(self, upstream: str, script: list[Scripted], poison_ts: set[int]) -> None:
        self.upstream = upstream.rstrip("/")
        self.script = list(script)
        self.poison = {f" {ts}".encode() for ts in poison_ts}
        self.seen: list[Seen] = []
        self._lock = threading.Lock()
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                proxy.forward(self, None)

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                proxy.handle_post(self, self.rfile.read(length))

            def log_message(self, *args: object) -> None:
                pass

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def handle_post(self, request: http.server.BaseHTTPRequestHandler, body: bytes) -> None:
        parts = urllib.parse.urlsplit(request.path)
        if parts.path not in ("/write", "/api/v2/write"):
            self.forward(request, body)
            return
        raw = gzip.decompress(body) if request.headers.get("Content-Encoding") == "gzip" else body
        lines = [line for line in raw.split(b"\n") if line]
        with self._lock:
            scripted = self.script.pop(0) if self.script else None
        if scripted is None and any(line.endswith(p) for line in lines for p in self.poison):
            scripted = Scripted(422, {"Content-Type": "application/json"}, CONFLICT)
        if scripted is not None:
            self._record(parts.path, scripted.status, len(lines))
            self._reply(request, scripted.status, scripted.headers, scripted.body)
            return
        status = self.forward(request, body)
        self._record(parts.path, status, len(lines))

    def forward(self, request: http.server.BaseHTTPRequestHandler, body: bytes | None) -> int:
        parts = urllib.parse.urlsplit(request.path)
        path, query = parts.path, parts.query
        if path == "/api/v2/write":
            params = dict(urllib.parse.parse_qsl(query))
            query = urllib.parse.urlencode(
                {"db": params["bucket"], "precision": params.get("precision", "ns")}
            )
            path = "/write"
        elif path.startswith("/api/v2/"):
            self._reply(request, 404, {"Content-Type": "text/plain"}, b"404 page not found")
            return 404
        headers = {
            k: v for k, v in request.headers.items() if k.lower() in ("content-type", "content-encoding")
        }
        upstream = urllib.request.Request(
            f"{self.upstream}{path}?{query}", data=body, headers=headers, method=request.command
        )
        try:
            with urllib.request.urlopen(upstream, timeout=30) as answer:
                status, reply_headers, data = int(answer.status), dict(answer.headers), answer.read()
        except urllib.error.HTTPError as refused:
            status, reply_headers, data = refused.code, dict(refused.headers), refused.read()
        except OSError as failed:
            status, reply_headers, data = 502, {}, str(failed).encode()
        keep = {k: v for k, v in reply_headers.items() if k.lower() == "content-type"}
        self._reply(request, status, keep, data)
        return status

    def _record(self, path: str, status: int, lines: int) -> None:
        with self._lock:
            self.seen.append(Seen(time.monotonic(), path, status, lines))

    @staticmethod
    def _reply(
        request: http.server.BaseHTTPRequestHandler, status: int, headers: dict[str, str], body: bytes
    ) -> None:
        request.send_response(status)
        for key, value in headers.items():
            request.send_header(key, value)
        request.send_header("Content-Length", str(len(body)))
        request.end_headers()
        request.wfile.write(body)

    def writes(self) -> list[Seen]:
        with self._lock:
            return list(self.seen)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@contextmanager
def fault_proxy(upstream: str, script: list[Scripted], poison_ts: set[int]) -> Iterator[FaultProxy]:
    proxy = FaultProxy(upstream, script, poison_ts)
    try:
        yield proxy
    finally:
        proxy.close()
