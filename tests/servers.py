"""Real servers for tests: each started on a free loopback port and always stopped.

Nothing here depends on a service someone left running. When a server binary is
missing the test fails and says how to install it (CI installs them in .ci/run).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from bench._servers import influxd_answers, influxd_config, require_binary, wait_for_port
from ingest.broker import free_port


class ServerProcess:
    """What the test servers share: a child process, stopped with SIGTERM (then SIGKILL), restartable."""

    workdir: Path
    process: subprocess.Popen[bytes] | None
    stop_grace_s: ClassVar[float] = 20.0

    def start(self) -> None:
        raise NotImplementedError

    def _spawn(self, args: list[str], log_name: str) -> subprocess.Popen[bytes]:
        self.workdir.mkdir(parents=True, exist_ok=True)
        log = (self.workdir / log_name).open("ab")
        self.process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
        return self.process

    def _wait_until_ready(
        self, ready: Callable[[], bool], timeout_s: float, what: str, log_name: str
    ) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"{what} exited with {self.process.returncode}; see {self.workdir}/{log_name}"
                )
            if ready():
                return
            time.sleep(0.05)
        raise TimeoutError(f"{what} did not answer within {timeout_s} s; see {self.workdir}/{log_name}")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(self.stop_grace_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def restart(self) -> None:
        self.stop()
        self.start()


Server = TypeVar("Server", bound=ServerProcess)


@contextlib.contextmanager
def running(server: Server) -> Iterator[Server]:
    """Start ``server``, and stop it whatever happens."""
    server.start()
    try:
        yield server
    finally:
        server.stop()


@dataclass
class Mosquitto(ServerProcess):
    """A private Mosquitto with the settings citypulse documents for production."""

    workdir: Path
    persistence: bool = False
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    stop_grace_s: ClassVar[float] = 10.0

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
        self._spawn([binary, "-c", str(conf)], "mosquitto.log")
        wait_for_port(self.port)


@contextlib.contextmanager
def running_mosquitto(workdir: Path, persistence: bool = False) -> Iterator[Mosquitto]:
    with running(Mosquitto(workdir, persistence=persistence)) as server:
        yield server


@dataclass
class ConfiguredMosquitto(ServerProcess):
    """Mosquitto started with a configuration file written elsewhere (e.g. by ``devices provision``).

    Run as root, Mosquitto would switch to the 'mosquitto' user, which cannot enter a
    test's private tmp dir: the only line added to the given file keeps it root.
    """

    workdir: Path
    config_file: Path
    ports: tuple[int, ...]
    process: subprocess.Popen[bytes] | None = None
    stop_grace_s: ClassVar[float] = 10.0

    def start(self) -> None:
        binary = require_binary("mosquitto", "mosquitto")
        config = self.config_file
        if os.geteuid() == 0:
            self.workdir.mkdir(parents=True, exist_ok=True)
            config = self.workdir / "mosquitto-as-root.conf"
            config.write_text(self.config_file.read_text() + "user root\n")
        self._spawn([binary, "-c", str(config)], "mosquitto.log")
        for port in self.ports:
            wait_for_port(port)

    def reload(self) -> None:
        """SIGHUP: Mosquitto re-reads its password file and ACL."""
        assert self.process is not None
        self.process.send_signal(signal.SIGHUP)

    def log(self) -> str:
        return (self.workdir / "mosquitto.log").read_text(errors="replace")


@dataclass
class Influxd(ServerProcess):
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
        return influxd_config(self.workdir, self.port, self.rpc_port)

    def start(self, timeout_s: float = 30.0) -> None:
        binary = require_binary("influxd", "influxdb")
        self.workdir.mkdir(parents=True, exist_ok=True)
        conf = self.workdir / "influxdb.conf"
        conf.write_text(self.config())
        self._spawn([binary, "-config", str(conf)], "influxd.log")
        self._wait_until_ready(self.answers, timeout_s, f"influxd on port {self.port}", "influxd.log")

    def answers(self) -> bool:
        return influxd_answers(self.url)

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
    with running(Influxd(workdir)) as server:
        yield server


@dataclass
class VictoriaMetrics(ServerProcess):
    """A private VictoriaMetrics: a real server that accepts InfluxDB's ``/api/v2/write``."""

    workdir: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout_s: float = 30.0) -> None:
        binary = require_binary("victoria-metrics", "victoria-metrics")
        args = [
            binary,
            f"-httpListenAddr=127.0.0.1:{self.port}",
            f"-storageDataPath={self.workdir}/data",
            "-retentionPeriod=100y",
            "-loggerLevel=ERROR",
        ]
        self._spawn(args, "victoria-metrics.log")
        self._wait_until_ready(
            self.answers, timeout_s, f"victoria-metrics on port {self.port}", "victoria-metrics.log"
        )

    def answers(self) -> bool:
        try:
            with urllib.request.urlopen(self.url + "/health", timeout=1) as reply:
                return int(reply.status) == 200
        except OSError:
            return False

    def export(self, metric_regex: str) -> list[dict[str, Any]]:
        """Raw samples of the metrics whose names match (each: metric labels, values, timestamps)."""
        with urllib.request.urlopen(self.url + "/internal/force_flush", timeout=10):
            pass
        params = urllib.parse.urlencode({"match[]": f'{{__name__=~"{metric_regex}"}}'})
        with urllib.request.urlopen(f"{self.url}/api/v1/export?{params}", timeout=30) as reply:
            return [json.loads(line) for line in reply.read().splitlines() if line.strip()]


@contextlib.contextmanager
def running_victoria_metrics(workdir: Path) -> Iterator[VictoriaMetrics]:
    with running(VictoriaMetrics(workdir)) as server:
        yield server


@dataclass
class Received:
    """One request a :class:`WebhookReceiver` answered."""

    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class WebhookReceiver:
    """A real HTTP server on a free loopback port that records POSTs and answers as scripted.

    ``script`` holds the answers to the next requests in order (an HTTP status, or
    ``"hang"`` to hold the request until :meth:`release` or the end); once it runs
    out every request gets 200. Hanging requests are not recorded as received.
    """

    def __init__(self) -> None:
        import http.server
        import threading

        self.port = free_port()
        self.received: list[Received] = []
        self.script: list[int | str] = []
        self.answered: list[int | str] = []
        self._lock = threading.Lock()
        self._released = threading.Event()
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with receiver._lock:
                    answer = receiver.script.pop(0) if receiver.script else 200
                    receiver.answered.append(answer)
                if answer == "hang":
                    receiver._released.wait(60)
                    answer = 503
                elif answer == 200:
                    with receiver._lock:
                        receiver.received.append(Received(dict(self.headers.items()), body))
                self.send_response(int(answer))
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def start(self) -> WebhookReceiver:
        self._thread.start()
        return self

    def respond(self, *answers: int | str) -> None:
        with self._lock:
            self.script = list(answers)

    def release(self) -> None:
        self._released.set()

    def stop(self) -> None:
        self._released.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)

    def bodies(self) -> list[Any]:
        with self._lock:
            return [r.json() for r in self.received]

    def events(self) -> list[dict[str, Any]]:
        """Every event received, in order, from every body."""
        return [e for body in self.bodies() for e in body["events"]]

    def attempts(self) -> list[int | str]:
        with self._lock:
            return list(self.answered)


@contextlib.contextmanager
def running_webhook_receiver() -> Iterator[WebhookReceiver]:
    receiver = WebhookReceiver().start()
    try:
        yield receiver
    finally:
        receiver.stop()


def self_signed_certificate(workdir: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and localhost (``openssl``), and its key."""
    binary = require_binary("openssl", "openssl")
    workdir.mkdir(parents=True, exist_ok=True)
    cert, key = workdir / "cert.pem", workdir / "key.pem"
    subprocess.run(
        [binary, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
         "-keyout", str(key), "-out", str(cert), "-days", "1", "-subj", "/CN=localhost",
         "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"],
        check=True, capture_output=True,
    )  # fmt: skip
    return cert, key


class SmtpServer:
    """A real SMTP server (aiosmtpd) on a free loopback port that keeps the messages it accepts.

    With ``tls`` it offers STARTTLS with a self-signed certificate (``ca_file`` to
    trust it), requires it, and requires a login as ``user``/``password``.
    """

    user = "duty"
    password = "s3cret-smtp"

    def __init__(self, workdir: Path, tls: bool = False) -> None:
        import ssl
        from email import message_from_bytes, policy
        from email.message import EmailMessage

        from aiosmtpd.controller import Controller
        from aiosmtpd.smtp import AuthResult, LoginPassword

        self.port = free_port()
        self.messages: list[EmailMessage] = []
        self.ca_file: Path | None = None
        server = self

        class Handler:
            async def handle_DATA(self, smtp: Any, session: Any, envelope: Any) -> str:  # noqa: N802
                message = message_from_bytes(
                    envelope.original_content or envelope.content, policy=policy.default
                )
                message["X-Rcpt-To"] = ", ".join(envelope.rcpt_tos)
                server.messages.append(message)
                return "250 OK"

        def authenticate(smtp: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> Any:
            ok = isinstance(data, LoginPassword) and (data.login, data.password) == (
                self.user.encode(),
                self.password.encode(),
            )
            return AuthResult(success=ok, handled=False)

        kwargs: dict[str, Any] = {}
        if tls:
            cert, key = self_signed_certificate(workdir)
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.load_cert_chain(cert, key)
            self.ca_file = cert
            kwargs = {
                "tls_context": context,
                "require_starttls": True,
                "auth_required": True,
                "authenticator": authenticate,
            }
        self._controller = Controller(Handler(), hostname="127.0.0.1", port=self.port, **kwargs)

    def start(self) -> SmtpServer:
        self._controller.start()
        return self

    def stop(self) -> None:
        self._controller.stop()


@contextlib.contextmanager
def running_smtp_server(workdir: Path, tls: bool = False) -> Iterator[SmtpServer]:
    server = SmtpServer(workdir, tls).start()
    try:
        yield server
    finally:
        server.stop()
