"""InfluxDB, through its v2 write API (2.x, 3.x, 1.8+; the default) or its v1 API (1.x).

Schema (README, "Storage"): one measurement per sensor kind, tagged ``device``
and ``district`` (both bounded by the registry), one float field per measure,
stamped with the device's own time in milliseconds. Because a point is keyed by
measurement, tags and timestamp, a redelivered reading rewrites the same point:
at-least-once delivery never creates duplicates. Events (dead letters, alerts,
the pipeline's own metrics) go to measurements of their own, in nanoseconds so
that events of the same millisecond stay apart.

A write sends the batch in requests of at most ``batch_points`` lines (and about
4 MB): InfluxDB 1.x syncs its write-ahead log once per request, so large requests
cost it less per point (measured here: 6.1 µs a point in 5,000-point bodies, 4.0 in
50,000-point ones). Bodies are gzipped when the body is large enough for that to
pay and, by default, only when the server is on another machine: on loopback there
is no network to spare and compressing costs both ends CPU (measured: about 6 %
of the ingest's time, and 5-10 % of influxd's). When InfluxDB refuses points
(400/422/413), the request is split in halves until the refused points stand
alone; the others are written and the refused ones come back in the report with
the server's reason, to be dead-lettered. Anything else that fails raises
``SinkError``: retryable (no answer, 429, 5xx, with Retry-After) or not (a
configuration problem, with advice). Retries and the spool live in
``ingest/durable.py``.
"""

from __future__ import annotations

import bisect
import gzip
import ipaddress
import logging
from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlsplit

import numpy as np
from pydantic import Field, SecretStr

from ingest.settings_section import SettingsSection
from ingest.sinks._influx_http import InfluxHttpError, Precision, Transport
from ingest.sinks._influx_read import open_influx_reader
from ingest.sinks._influx_v1 import V1Transport
from ingest.sinks._influx_v2 import V2Transport
from ingest.sinks.base import RejectedPoint, Sink, SinkError, SinkHealth, SinkPlugin, WriteReport
from processors.batch import Event, ReadingBatch, WriteBatch
from processors.lineprotocol import LineEncoder, encode_point, event_timestamps_ns

log = logging.getLogger(__name__)


class InfluxSettings(SettingsSection):
    """InfluxDB

    InfluxDB 2.x, 3.x and 1.8+ (and VictoriaMetrics) take the v2 write API; older 1.x
    servers the v1 API. Points are one measurement per sensor kind, tagged `device`
    and `district`, with the device's own time in milliseconds.
    """

    api: Literal["v2", "v1"] = Field(
        default="v2", description="InfluxDB write API: `v2` (2.x, 3.x, 1.8+) or `v1` (`/write?db=`)."
    )
    url: str = Field(default="http://127.0.0.1:8086", description="InfluxDB base URL.")
    token: SecretStr = Field(
        default=SecretStr(""), description="InfluxDB token; for v1, `user:password` or empty."
    )
    org: str = Field(default="citypulse", description="InfluxDB organisation (v2).")
    bucket: str = Field(
        default="citypulse", description="InfluxDB bucket; for v1, the database (`db` or `db/rp`)."
    )
    batch_points: int = Field(
        default=50_000,
        ge=1,
        le=1_000_000,
        description="Most points in one InfluxDB write request (a request also stays under about 4 MB); "
        "InfluxDB 1.x takes large requests at a lower cost per point.",
    )
    gzip: Literal["auto", "on", "off"] = Field(
        default="auto",
        description="Gzip request bodies: `auto` only when the server is not on a loopback address "
        "(compressing costs CPU at both ends and saves no network there), `on`, or `off`.",
    )
    gzip_min_bytes: int = Field(
        default=1024,
        ge=0,
        description="Request bodies at least this large are gzipped (`0`: all); smaller ones gain little.",
    )
    timeout_s: float = Field(default=10.0, gt=0, description="InfluxDB request timeout.")


MAX_BODY_CHARS = 4 * 1024 * 1024
"""Requests stay well under InfluxDB 1.x's default 25 MB body limit whatever the line length."""


@dataclass
class _Readings:
    """Where a run of encoded lines came from, to name a refused point."""

    start: int
    batch: ReadingBatch
    rows: list[int] | None
    """Row of each line when some rows had nothing to write; None when line i is row i."""


class InfluxSink(Sink):
    """Line protocol over one InfluxDB write API (a ``Transport``)."""

    def __init__(
        self, transport: Transport, *, batch_points: int = 50_000, gzip_min_bytes: int | None = 1024
    ) -> None:
        """``gzip_min_bytes``: bodies at least this large are gzipped; None: none is."""
        if batch_points < 1:
            raise ValueError("batch_points must be at least 1")
        self.transport = transport
        self.batch_points = batch_points
        self.gzip_min_bytes = gzip_min_bytes
        self._encoder = LineEncoder()
        self.requests = 0
        self.bytes_sent = 0

    # --- Sink -------------------------------------------------------------------------
    def write(self, batch: WriteBatch) -> WriteReport:
        lines: list[str] = []
        sources: list[_Readings] = []
        for readings in batch.readings:
            encoded = self._encoder.readings(readings)
            if "" in encoded:
                rows = [i for i, line in enumerate(encoded) if line]
                sources.append(_Readings(len(lines), readings, rows))
                lines.extend(encoded[i] for i in rows)
            else:
                sources.append(_Readings(len(lines), readings, None))
                lines.extend(encoded)
        refused = [self._reading_refused(lines, sources, i, why) for i, why in self._send(lines, "ms")]
        written = len(lines) - len(refused)
        if batch.events:
            stamps = event_timestamps_ns(batch.events)
            event_lines: list[str] = []
            unwritable = 0
            for event, stamp in zip(batch.events, stamps, strict=True):
                try:
                    event_lines.append(encode_point(event.measurement, event.tags, event.fields, stamp))
                except ValueError as bad_name:  # a name line protocol cannot carry: refused, not raised
                    refused.append(_event_refused(event, stamp, repr(event)[:300], str(bad_name)))
                    event_lines.append("")
                    unwritable += 1
            kept = [i for i, line in enumerate(event_lines) if line]
            empty = len(event_lines) - len(kept) - unwritable
            if empty:
                log.warning("%d events had no storable field (all NaN or none) and were not written", empty)
            sent = [event_lines[i] for i in kept]
            event_refusals = self._send(sent, "ns")
            for i, why in event_refusals:
                refused.append(_event_refused(batch.events[kept[i]], stamps[kept[i]], sent[i], why))
            written += len(sent) - len(event_refusals)
        return WriteReport(written=written, rejected=tuple(refused))

    def health(self) -> SinkHealth:
        problem = self.transport.ping()
        return SinkHealth(problem is None, problem or self.transport.describe())

    def describe(self) -> str:
        return self.transport.describe()

    def close(self) -> None:
        self.transport.close()

    def prepare(self) -> None:
        """Create the v1 database or check the v2 bucket; a server that is down is not an error yet.

        Raises ``SinkError`` (not retryable) when the server positively says the
        target is unusable, so ``citypulse ingest`` can stop at start-up and say why.
        """
        try:
            self.transport.prepare()
        except InfluxHttpError as failure:
            if failure.transient:
                log.warning(
                    "%s is not answering yet (%s); readings will be spooled until it does",
                    self.describe(),
                    failure.message,
                )
                return
            raise self._error(failure) from failure

    # --- sending ------------------------------------------------------------------------
    def _send(self, lines: list[str], precision: Precision) -> list[tuple[int, str]]:
        """Write ``lines``; return (index, reason) of each line the server refused."""
        refused: list[tuple[int, str]] = []
        for start, stop in self._chunks(lines):
            refused.extend(self._send_isolating(lines, start, stop, precision))
        return refused

    def _chunks(self, lines: list[str]) -> list[tuple[int, int]]:
        """(start, stop) of each request: at most ``batch_points`` lines, and at most MAX_BODY_CHARS
        characters with the newlines between them unless a line alone is longer."""
        n = len(lines)
        # key[i]: characters of the lines before line i, plus one newline after each
        key = np.zeros(n + 1, dtype=np.int64)
        np.cumsum(np.fromiter(map(len, lines), dtype=np.int64, count=n) + 1, out=key[1:])
        chunks = []
        start = 0
        while start < n:
            stop = min(start + self.batch_points, n)
            if key[stop] - key[start] - 1 > MAX_BODY_CHARS:
                fit = int(np.searchsorted(key, key[start] + MAX_BODY_CHARS + 1, side="right")) - 1
                stop = max(min(fit, stop), start + 1)
            chunks.append((start, stop))
            start = stop
        return chunks

    def _send_isolating(
        self, lines: list[str], start: int, stop: int, precision: Precision
    ) -> list[tuple[int, str]]:
        """Post lines[start:stop]; on a refusal about points, bisect until each refused line stands alone."""
        refused: list[tuple[int, str]] = []
        pending = [(start, stop)]
        while pending:
            lo, hi = pending.pop()
            try:
                self._post(lines[lo:hi], precision)
            except InfluxHttpError as failure:
                if not failure.about_points:
                    raise self._error(failure) from failure
                if hi - lo == 1:
                    refused.append((lo, failure.message))
                else:
                    mid = (lo + hi) // 2
                    pending += [(mid, hi), (lo, mid)]
        return refused

    def _post(self, lines: list[str], precision: Precision) -> None:
        body = "\n".join(lines).encode("utf-8")
        gzipped = self.gzip_min_bytes is not None and len(body) >= self.gzip_min_bytes
        if gzipped:
            body = gzip.compress(body, compresslevel=1, mtime=0)
        self.requests += 1
        self.bytes_sent += len(body)
        self.transport.post(body, precision, gzipped)

    def _error(self, failure: InfluxHttpError) -> SinkError:
        if failure.transient:
            return SinkError(
                f"{self.describe()}: {failure}", retryable=True, retry_after_s=failure.retry_after_s
            )
        return SinkError(f"{self.describe()}: {failure}; {self.transport.advice(failure)}", retryable=False)

    @staticmethod
    def _reading_refused(
        lines: list[str], sources: list[_Readings], index: int, reason: str
    ) -> RejectedPoint:
        source = sources[bisect.bisect_right([s.start for s in sources], index) - 1]
        row = index - source.start if source.rows is None else source.rows[index - source.start]
        batch = source.batch
        return RejectedPoint(
            measurement=batch.kind.name,
            timestamp=int(batch.ts_ms[row]),
            reason=reason,
            line=lines[index],
            device=batch.table.devices[int(batch.device[row])].device_id,
            kind=batch.kind.name,
        )


def _event_refused(event: Event, stamp_ns: int, line: str, reason: str) -> RejectedPoint:
    device = event.fields.get("device")
    return RejectedPoint(
        measurement=event.measurement,
        timestamp=stamp_ns,
        reason=reason,
        line=line,
        device=device if isinstance(device, str) and device else None,
    )


def on_loopback(url: str) -> bool:
    """Whether ``url`` names this machine by a loopback address (or ``localhost``).

    >>> on_loopback("http://127.0.0.1:8086"), on_loopback("http://[::1]:8086"), on_loopback("http://db:8086")
    (True, True, False)
    """
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def open_influx(settings: InfluxSettings) -> InfluxSink:
    """The sink ``CITYPULSE_INFLUX_*`` describe, prepared (v1 database created, v2 bucket checked)."""
    token = settings.token.get_secret_value()
    transport: Transport
    if settings.api == "v1":
        transport = V1Transport(settings.url, settings.bucket, token, timeout_s=settings.timeout_s)
    else:
        transport = V2Transport(
            settings.url, token, settings.org, settings.bucket, timeout_s=settings.timeout_s
        )
    gzip = settings.gzip == "on" or (settings.gzip == "auto" and not on_loopback(settings.url))
    sink = InfluxSink(
        transport,
        batch_points=settings.batch_points,
        gzip_min_bytes=settings.gzip_min_bytes if gzip else None,
    )
    try:
        sink.prepare()
    except BaseException:
        sink.close()
        raise
    return sink


PLUGIN = SinkPlugin(
    name="influxdb",
    settings=InfluxSettings,
    factory=open_influx,
    description="InfluxDB: v2 write API (2.x, 3.x, 1.8+) or v1 /write (1.x), per CITYPULSE_INFLUX_API.",
    reader=open_influx_reader,
)
