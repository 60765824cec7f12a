"""What the InfluxDB write APIs answer, and what each answer means for the batch.

Shared by the v1 and v2 transports. A write either succeeds, fails for a while
(no answer, 429, 5xx: retry later, honouring Retry-After), fails because of the
configuration (credentials, a missing database, bucket or retention policy:
retrying soon will not help, an operator must act), or fails because of points
in the body (400, 422, 413: split the batch to find them).
"""

from __future__ import annotations

import json
import re
import time
from email.utils import parsedate_to_datetime
from typing import Literal, Protocol

Precision = Literal["ms", "ns"]

BAD_POINTS = frozenset({400, 413, 422})
"""Answers about the body: some points (or the body's size) are the problem."""

_REQUEST_LEVEL = re.compile(
    r"retention policy not found|database not found|bucket .*not found|organization .*not found|"
    r"database is required|authoriz|invalid precision",
    re.IGNORECASE,
)


class InfluxHttpError(Exception):
    """A write request that did not succeed; ``status`` is None when the server did not answer."""

    def __init__(self, status: int | None, message: str, retry_after_s: float | None = None) -> None:
        super().__init__(f"HTTP {status}: {message}" if status is not None else message)
        self.status = status
        self.message = message
        self.retry_after_s = retry_after_s

    @property
    def about_points(self) -> bool:
        """The server refused points of the body (so splitting it can isolate them)."""
        return self.status in BAD_POINTS and not _REQUEST_LEVEL.search(self.message)

    @property
    def transient(self) -> bool:
        """No answer, overload or a server error: the same request may succeed later."""
        if self.status is None or self.status == 429:
            return True
        return self.status >= 500 and not _REQUEST_LEVEL.search(self.message)


class Transport(Protocol):
    """One InfluxDB write API: posts a line-protocol body, or raises ``InfluxHttpError``."""

    def post(self, body: bytes, precision: Precision, gzipped: bool) -> None: ...

    def prepare(self) -> None:
        """Make the target usable (create the v1 database) or raise ``InfluxHttpError`` saying why not."""

    def ping(self) -> str | None:
        """None if the server answers, else what is wrong."""

    def describe(self) -> str: ...

    def advice(self, failure: InfluxHttpError) -> str:
        """What the operator should do about a failure that retrying will not fix."""

    def close(self) -> None: ...


def retry_after_seconds(value: str | None, now: float | None = None) -> float | None:
    """A Retry-After header (seconds or an HTTP date) as seconds from now.

    >>> retry_after_seconds("7")
    7.0
    >>> retry_after_seconds("Wed, 21 Oct 2015 07:28:05 GMT", now=1445412480.0)
    5.0
    >>> retry_after_seconds("soon") is None
    True
    """
    if not value:
        return None
    text = value.strip()
    try:
        return max(0.0, float(text))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def error_message(body: bytes | str | None, fallback: str) -> str:
    """The server's reason: InfluxDB answers JSON with ``error`` (1.x) or ``message`` (2.x, 3.x).

    >>> error_message(b'{"error":"partial write: field type conflict"}', "x")
    'partial write: field type conflict'
    >>> error_message(b"", "Service Unavailable")
    'Service Unavailable'
    """
    if not body:
        return fallback
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
    try:
        parsed = json.loads(text)
    except ValueError:
        return text.strip()[:1000] or fallback
    if isinstance(parsed, dict):
        for key in ("message", "error"):
            if isinstance(parsed.get(key), str):
                return str(parsed[key])
    return text.strip()[:1000]
