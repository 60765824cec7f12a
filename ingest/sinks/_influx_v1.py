"""The InfluxDB 1.x write API: ``POST /write?db=&rp=&precision=`` with user and password.

For 1.x deployments (and what the fault tests run against: InfluxDB 1.6+). The
database is created when it does not exist, as the issue asks; a retention
policy is never created, because its duration is a decision for the operator.
"""

from __future__ import annotations

import base64
from urllib.parse import urlencode, urlsplit

import urllib3

from ingest.sinks._influx_http import InfluxHttpError, Precision, error_message, retry_after_seconds


def parse_database(bucket: str) -> tuple[str, str | None]:
    """``db`` or ``db/rp``, the 1.8 convention for naming a database and retention policy as a bucket.

    >>> parse_database("citypulse/autogen")
    ('citypulse', 'autogen')
    >>> parse_database("citypulse")
    ('citypulse', None)
    """
    database, _, policy = bucket.partition("/")
    if not database:
        raise ValueError(f"CITYPULSE_INFLUX_BUCKET={bucket!r} names no database; use 'db' or 'db/rp'")
    return database, policy or None


def parse_credentials(token: str) -> tuple[str, str] | None:
    """``user:password`` or empty, the convention InfluxDB 1.8 uses for its v2 compatibility API."""
    if not token:
        return None
    user, colon, password = token.partition(":")
    if not colon or not user:
        raise ValueError(
            "CITYPULSE_INFLUX_TOKEN must be 'user:password' (or empty) with CITYPULSE_INFLUX_API=v1"
        )
    return user, password


class V1Transport:
    """Posts line protocol to ``/write``; creates the database on first need."""

    def __init__(
        self, url: str, bucket: str, token: str, timeout_s: float = 10.0, *, create_database: bool = True
    ) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"CITYPULSE_INFLUX_URL={url!r} must be http(s)://host:port")
        self.url = url.rstrip("/")
        self.database, self.policy = parse_database(bucket)
        credentials = parse_credentials(token)
        self.user = credentials[0] if credentials else None
        self._headers: dict[str, str] = {}
        if credentials:
            pair = f"{credentials[0]}:{credentials[1]}".encode()
            self._headers["Authorization"] = "Basic " + base64.b64encode(pair).decode("ascii")
        self._create = create_database
        self._pool = urllib3.PoolManager(
            num_pools=2,
            maxsize=4,
            retries=False,
            timeout=urllib3.Timeout(connect=min(timeout_s, 5.0), read=timeout_s),
        )

    def _write(self, body: bytes, precision: Precision, gzipped: bool) -> urllib3.BaseHTTPResponse:
        params = {"db": self.database, "precision": precision}
        if self.policy:
            params["rp"] = self.policy
        headers = {"Content-Type": "text/plain; charset=utf-8"}
        if gzipped:
            headers["Content-Encoding"] = "gzip"
        url = self.url + "/write?" + urlencode(params)
        try:
            return self._pool.request("POST", url, body=body, headers={**self._headers, **headers})
        except (urllib3.exceptions.HTTPError, OSError) as failed:
            raise InfluxHttpError(None, f"InfluxDB at {self.url} did not answer: {failed}") from failed

    def post(self, body: bytes, precision: Precision, gzipped: bool) -> None:
        answer = self._write(body, precision, gzipped)
        if answer.status == 404 and self._create and b"database not found" in answer.data:
            self.prepare()
            answer = self._write(body, precision, gzipped)
        if answer.status >= 300:
            raise _failure(answer)

    def prepare(self) -> None:
        if not self._create:
            return
        name = self.database.replace("\\", "\\\\").replace('"', '\\"')
        answer = self._query(f'CREATE DATABASE "{name}"')
        if answer.status >= 300:
            raise _failure(answer)

    def _query(self, statement: str) -> urllib3.BaseHTTPResponse:
        url = self.url + "/query"
        body = urlencode({"q": statement}).encode()
        headers = {**self._headers, "Content-Type": "application/x-www-form-urlencoded"}
        try:
            return self._pool.request("POST", url, body=body, headers=headers)
        except (urllib3.exceptions.HTTPError, OSError) as failed:
            raise InfluxHttpError(None, f"InfluxDB at {self.url} did not answer: {failed}") from failed

    def ping(self) -> str | None:
        try:
            answer = self._pool.request("GET", self.url + "/ping", headers=self._headers)
        except (urllib3.exceptions.HTTPError, OSError) as failed:
            return f"InfluxDB at {self.url} did not answer: {failed}"
        return None if answer.status < 300 else f"InfluxDB at {self.url} answered /ping with {answer.status}"

    def describe(self) -> str:
        where = self.database + (f"/{self.policy}" if self.policy else "")
        who = f" as {self.user}" if self.user else ""
        return f"influxdb v1 {self.url} db={where}{who}"

    def advice(self, failure: InfluxHttpError) -> str:
        text = failure.message.lower()
        if failure.status in (401, 403) or "authoriz" in text:
            return "check the user and password in CITYPULSE_INFLUX_TOKEN ('user:password')"
        if "retention policy not found" in text:
            return (
                f'create it (CREATE RETENTION POLICY "{self.policy}" ON "{self.database}" DURATION INF '
                "REPLICATION 1) or drop '/rp' from CITYPULSE_INFLUX_BUCKET"
            )
        if "database not found" in text:
            return f'create the database (CREATE DATABASE "{self.database}") or fix CITYPULSE_INFLUX_BUCKET'
        return "check CITYPULSE_INFLUX_URL and the InfluxDB server's log"

    def close(self) -> None:
        self._pool.clear()


def _failure(answer: urllib3.BaseHTTPResponse) -> InfluxHttpError:
    return InfluxHttpError(
        answer.status,
        error_message(answer.data, answer.reason or f"HTTP {answer.status}"),
        retry_after_seconds(answer.headers.get("Retry-After")),
    )
