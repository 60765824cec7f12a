"""Reading anomaly onsets back from InfluxDB with InfluxQL over ``/query``.

InfluxDB 1.x answers ``/query`` natively; 2.x and 3.x answer it through their v1
compatibility API, where a bucket is queried as the database of the same name
(2.7+ maps every bucket so, read-only) and the token goes in the Authorization
header. InfluxQL is also what the dashboards use, so one query language serves both.
"""

from __future__ import annotations

import base64
import json
import math
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode, urlsplit

import urllib3

from ingest.sinks._influx_v1 import parse_credentials, parse_database
from ingest.sinks.base import AnomalyQuery, ReadError, StoredAnomaly

if TYPE_CHECKING:
    from ingest.sinks.influxdb import InfluxSettings

MEASUREMENT = "anomalies"
TAGS = ("kind", "detector", "category", "field", "district")
FIELDS = ("device", "score", "value")


def influxql_string(text: str) -> str:
    """A single-quoted InfluxQL string literal.

    >>> influxql_string("it's")
    "'it\\\\'s'"
    """
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def anomalies_statement(query: AnomalyQuery) -> str:
    """The InfluxQL that selects ``query``'s onsets, newest first.

    >>> anomalies_statement(AnomalyQuery(kind="air", since_ms=1000, limit=5))
    'SELECT "device","score","value","kind","detector","category","field","district" FROM "anomalies" \
WHERE time >= 1000ms AND "kind" = \\'air\\' ORDER BY time DESC LIMIT 5'
    """
    columns = ",".join(f'"{name}"' for name in (*FIELDS, *TAGS))
    where: list[str] = []
    if query.since_ms is not None:
        where.append(f"time >= {int(query.since_ms)}ms")
    for name, wanted in (
        ("kind", query.kind),
        ("detector", query.detector),
        ("district", query.district),
        ("device", query.device),
    ):
        if wanted is not None:
            where.append(f'"{name}" = {influxql_string(wanted)}')
    condition = f" WHERE {' AND '.join(where)}" if where else ""
    return f'SELECT {columns} FROM "{MEASUREMENT}"{condition} ORDER BY time DESC LIMIT {int(query.limit)}'


class InfluxAnomalyReader:
    """InfluxQL over one server's ``/query``."""

    def __init__(
        self,
        url: str,
        database: str,
        policy: str | None,
        authorization: str | None,
        timeout_s: float = 10.0,
        api: str = "v1",
    ) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ReadError(f"CITYPULSE_INFLUX_URL={url!r} must be http(s)://host:port")
        self.url = url.rstrip("/")
        self.database = database
        self.policy = policy
        self.api = api
        self._headers = {"Authorization": authorization} if authorization else {}
        self._pool = urllib3.PoolManager(
            num_pools=1,
            maxsize=1,
            retries=False,
            timeout=urllib3.Timeout(connect=min(timeout_s, 5.0), read=timeout_s),
        )

    def anomalies(self, query: AnomalyQuery) -> list[StoredAnomaly]:
        params = {"db": self.database, "epoch": "ms", "q": anomalies_statement(query)}
        if self.policy:
            params["rp"] = self.policy
        try:
            answer = self._pool.request("GET", f"{self.url}/query?{urlencode(params)}", headers=self._headers)
        except (urllib3.exceptions.HTTPError, OSError) as failed:
            raise ReadError(
                f"InfluxDB at {self.url} did not answer ({failed}); check CITYPULSE_INFLUX_URL"
            ) from failed
        try:
            body: Any = json.loads(answer.data or b"{}")
        except ValueError:
            body = {}
        problem = _problem(answer.status, body)
        if problem is not None:
            if "database not found" in problem:
                return []  # nothing was ever written there
            raise ReadError(f"{self.describe()} refused the query: {problem}; {self._advice(answer.status)}")
        found: list[StoredAnomaly] = []
        for result in body.get("results", []):
            for series in result.get("series", []):
                columns = series["columns"]
                found += [_stored(dict(zip(columns, row, strict=True))) for row in series.get("values", [])]
        found.sort(key=lambda a: a.ts_ms, reverse=True)
        return found[: query.limit]

    def _advice(self, status: int) -> str:
        if status in (401, 403):
            if self.api == "v1":
                return "check the user and password in CITYPULSE_INFLUX_TOKEN ('user:password')"
            return "check CITYPULSE_INFLUX_TOKEN: it needs read access to the bucket"
        return "check CITYPULSE_INFLUX_URL and CITYPULSE_INFLUX_BUCKET"

    def describe(self) -> str:
        where = self.database + (f"/{self.policy}" if self.policy else "")
        return f"influxdb {self.url} (InfluxQL, database {where})"

    def close(self) -> None:
        self._pool.clear()


def _problem(status: int, body: Any) -> str | None:
    """The server's complaint, if any: an HTTP error or an ``error`` inside the results."""
    if isinstance(body, dict):
        if isinstance(body.get("error"), str):
            return str(body["error"])
        if isinstance(body.get("message"), str) and status >= 300:
            return str(body["message"])
        for result in body.get("results", []):
            if isinstance(result, dict) and isinstance(result.get("error"), str):
                return str(result["error"])
    return f"HTTP {status}" if status >= 300 else None


def _stored(row: dict[str, Any]) -> StoredAnomaly:
    score, value = row.get("score"), row.get("value")
    return StoredAnomaly(
        ts_ms=int(row["time"]),
        kind=str(row.get("kind") or ""),
        detector=str(row.get("detector") or ""),
        category=str(row.get("category") or ""),
        field=str(row.get("field") or ""),
        district=str(row.get("district") or ""),
        device=str(row.get("device") or ""),
        score=float(score) if isinstance(score, int | float) else math.nan,
        value=float(value) if isinstance(value, int | float) else None,
    )


def open_influx_reader(settings: InfluxSettings) -> InfluxAnomalyReader:
    """The reader for the server and database (v1) or bucket (v2) ``CITYPULSE_INFLUX_*`` name."""
    token = settings.token.get_secret_value()
    if settings.api == "v1":
        try:
            database, policy = parse_database(settings.bucket)
            credentials = parse_credentials(token)
        except ValueError as bad:
            raise ReadError(str(bad)) from None
        authorization = None
        if credentials:
            pair = f"{credentials[0]}:{credentials[1]}".encode()
            authorization = "Basic " + base64.b64encode(pair).decode("ascii")
        return InfluxAnomalyReader(settings.url, database, policy, authorization, settings.timeout_s, "v1")
    if not settings.bucket:
        raise ReadError("CITYPULSE_INFLUX_BUCKET is empty; name the bucket to read")
    return InfluxAnomalyReader(
        settings.url,
        settings.bucket,
        None,
        f"Token {token}" if token else None,
        settings.timeout_s,
        "v2",
    )
