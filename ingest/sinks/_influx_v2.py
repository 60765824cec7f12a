"""The InfluxDB v2 write API through ``influxdb-client``: 2.x, 3.x and 1.8+ (the production default).

Only the client's synchronous write path is used (``WriteService.post_write``,
which its synchronous ``WriteApi`` calls), never its batching ``WriteApi``: that
one buffers without bound and drops a batch after its last retry. Retries and the
spool are ours (``ingest/durable.py``). The body arrives already encoded and, when
it pays, gzipped at level 1: the client's own ``enable_gzip`` compresses at level
9, about nine times slower for bodies about a fifth smaller (bench/lineprotocol.py).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import urllib3

from ingest.sinks._influx_http import InfluxHttpError, Precision, error_message, retry_after_seconds

if TYPE_CHECKING:
    from influxdb_client.rest import ApiException


class V2Transport:
    """Posts line protocol to ``/api/v2/write?org=&bucket=``; checks that the bucket exists."""

    def __init__(self, url: str, token: str, org: str, bucket: str, timeout_s: float = 10.0) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"CITYPULSE_INFLUX_URL={url!r} must be http(s)://host:port")
        if not bucket:
            raise ValueError("CITYPULSE_INFLUX_BUCKET is empty; name the bucket to write to")
        # Imported here: the client takes about half a second to import, which
        # every other citypulse command (and a v1 or SQLite deployment) would pay.
        from influxdb_client.client.influxdb_client import InfluxDBClient
        from influxdb_client.domain.write_precision import WritePrecision
        from influxdb_client.rest import ApiException
        from influxdb_client.service.write_service import WriteService

        self._refused: type[ApiException] = ApiException
        self._precision = {"ms": WritePrecision.MS, "ns": WritePrecision.NS}
        self.url = url.rstrip("/")
        self.org = org
        self.bucket = bucket
        self._client = InfluxDBClient(
            url=self.url, token=token, org=org, timeout=int(timeout_s * 1000), enable_gzip=False
        )
        self._writes = WriteService(self._client.api_client)  # type: ignore[no-untyped-call]

    def post(self, body: bytes, precision: Precision, gzipped: bool) -> None:
        extra = {"content_encoding": "gzip"} if gzipped else {}
        try:
            self._writes.post_write(  # type: ignore[no-untyped-call]
                org=self.org,
                bucket=self.bucket,
                body=body,
                precision=self._precision[precision],
                content_type="text/plain; charset=utf-8",
                **extra,
            )
        except self._refused as refused:
            raise _failure(refused) from refused
        except (urllib3.exceptions.HTTPError, OSError) as failed:
            raise InfluxHttpError(None, f"InfluxDB at {self.url} did not answer: {failed}") from failed

    def prepare(self) -> None:
        """Raise if the server says the bucket does not exist; servers without the buckets API pass.

        InfluxDB 1.8 and VictoriaMetrics accept ``/api/v2/write`` but have no
        ``/api/v2/buckets``; for them the first write tells. The answer is read as
        plain JSON: the client's generated models refuse buckets that lack fields
        some server versions leave out.
        """
        from influxdb_client.service.buckets_service import BucketsService

        service = BucketsService(self._client.api_client)  # type: ignore[no-untyped-call]
        names = self._bucket_names(service, name=self.bucket)
        if names is None or self.bucket in names:
            return
        # A write-only token sees no bucket at all: ours is missing only if the token sees others.
        if names or self._bucket_names(service, limit=1):
            raise InfluxHttpError(404, f'bucket "{self.bucket}" not found in organization "{self.org}"')

    def _bucket_names(self, service: Any, **query: Any) -> set[str] | None:
        """Names the buckets API lists for this token (None: no such API here)."""
        try:
            answer = service.get_buckets(org=self.org, _preload_content=False, **query)
        except self._refused as refused:
            failure = _failure(refused)
            if refused.status in (401, 403) or "organization" in failure.message.lower():
                raise failure from refused
            return None  # no buckets API here (404, 405, ...): nothing to check
        except (urllib3.exceptions.HTTPError, OSError) as failed:
            raise InfluxHttpError(None, f"InfluxDB at {self.url} did not answer: {failed}") from failed
        try:
            listed = json.loads(answer.data)["buckets"]
            return {str(b.get("name")) for b in listed}
        except (ValueError, KeyError, TypeError, AttributeError):
            return None  # not the buckets API we know: let the first write tell

    def ping(self) -> str | None:
        try:
            answers = bool(self._client.ping())
        except Exception as failed:  # the client wraps some failures in its own types
            return f"InfluxDB at {self.url} did not answer: {failed}"
        return None if answers else f"InfluxDB at {self.url} did not answer /ping"

    def describe(self) -> str:
        return f"influxdb v2 {self.url} org={self.org} bucket={self.bucket}"

    def advice(self, failure: InfluxHttpError) -> str:
        text = failure.message.lower()
        if failure.status in (401, 403) or "authoriz" in text:
            return "check CITYPULSE_INFLUX_TOKEN: it needs write access to the bucket"
        if "organization" in text and "not found" in text and "bucket" not in text:
            return "check CITYPULSE_INFLUX_ORG"
        if failure.status == 404 or "not found" in text:
            return (
                f"create the bucket (influx bucket create --name {self.bucket} --org {self.org}) "
                "or fix CITYPULSE_INFLUX_BUCKET"
            )
        return "check CITYPULSE_INFLUX_URL and the InfluxDB server's log"

    def close(self) -> None:
        self._client.close()  # type: ignore[no-untyped-call]


def _failure(refused: ApiException) -> InfluxHttpError:
    headers: dict[str, str] = dict(refused.headers or {})
    status = int(refused.status) if refused.status else None
    return InfluxHttpError(
        status,
        error_message(refused.body, str(refused.reason or f"HTTP {status}")),
        retry_after_seconds(headers.get("Retry-After")),
    )
