"""``citypulse storage setup``: retention, the hourly rollup and the dashboards' policy switch, idempotently.

InfluxDB 1.x (``CITYPULSE_INFLUX_API=v1``): the default retention policy
``autogen`` keeps ``CITYPULSE_RETENTION_RAW_DAYS``; ``rollup_1h`` keeps
``CITYPULSE_RETENTION_ROLLUP_DAYS``; one continuous query per measurement fills
the rollup every hour (recomputing the last 6 hours, for late readings).

InfluxDB 2.x (``v2``): bucket ``db`` keeps the raw data, bucket ``db/rollup_1h``
the rollup (InfluxDB 2.7+ maps both to InfluxQL as database ``db``, policies
``autogen`` and ``rollup_1h``), and one task per measurement does what the
continuous query does.

Both: the ``rp_config`` rows that tell the dashboards which policy serves a time
range, and, on request, a backfill of the rollup from the raw data already
stored (continuous queries and tasks only ever cover the hours after they exist).
Each step reports whether it created, changed or found the object as wanted.
"""

from __future__ import annotations

import base64
import json
import re
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import Field

from ingest.settings_section import SettingsSection
from ingest.sinks._influx_v1 import parse_credentials, parse_database
from processors.retention import (
    DAY_MS,
    RAW_RP,
    ROLLUP_RP,
    continuous_query,
    continuous_query_name,
    duration,
    flux_task,
    policy_choices,
    quote,
    rollup_measurements,
    rollup_select,
)

CQ_PREFIX = "citypulse_rollup_"
INGEST_TOKEN_FILE = "ingest.token"
"""Where ``--tokens-dir`` leaves the ingest service's write-only token."""
GRAFANA_TOKEN_FILE = "grafana.token"
"""Where ``--tokens-dir`` leaves Grafana's read-only token."""
TOKENS = {
    INGEST_TOKEN_FILE: ("citypulse ingest (write only)", "write"),
    GRAFANA_TOKEN_FILE: ("citypulse Grafana (read only)", "read"),
}


class RetentionSettings(SettingsSection):
    """How long history is kept, set up by ``citypulse storage setup`` (``CITYPULSE_RETENTION_*``)."""

    raw_days: float = Field(default=30.0, gt=0, description="Raw readings and events are kept this long.")
    rollup_days: float = Field(
        default=5 * 365.0, gt=0, description="The hourly rollup (mean, min, max, count) is kept this long."
    )
    rollup_from_days: float = Field(
        default=3.0,
        gt=0,
        description="Dashboards read the hourly rollup for time ranges longer than this.",
    )


class StorageSetupError(Exception):
    """The database refused a setup step; the message says which and what to do."""


@dataclass
class SetupReport:
    """One line per object: what was done to it."""

    lines: list[str] = field(default_factory=list)
    changed: int = 0

    def note(self, line: str, changed: bool) -> None:
        self.lines.append(line)
        self.changed += int(changed)


def _hours(text: str) -> float:
    """InfluxDB's ``720h0m0s`` (``0s`` is infinite) in hours."""
    parts = {unit: float(n) for n, unit in re.findall(r"([0-9.]+)([hms])", text)}
    return parts.get("h", 0.0) + parts.get("m", 0.0) / 60 + parts.get("s", 0.0) / 3600


class V1Setup:
    """Setup over InfluxDB 1.x's ``/query`` endpoint."""

    def __init__(self, url: str, bucket: str, token: str, timeout_s: float = 30.0) -> None:
        self.url = url.rstrip("/")
        self.database, _ = parse_database(bucket)
        credentials = parse_credentials(token)
        self.headers: dict[str, str] = {}
        if credentials:
            pair = f"{credentials[0]}:{credentials[1]}".encode()
            self.headers["Authorization"] = "Basic " + base64.b64encode(pair).decode("ascii")
        self.timeout_s = timeout_s

    def query(self, statement: str) -> list[dict[str, Any]]:
        """Run one statement; its result's series (an error becomes :class:`StorageSetupError`)."""
        body = urllib.parse.urlencode({"db": self.database, "q": statement}).encode()
        request = urllib.request.Request(f"{self.url}/query", data=body, method="POST", headers=self.headers)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as answer:
                data = json.loads(answer.read())
        except urllib.error.HTTPError as refused:
            detail = refused.read().decode(errors="replace")[:300]
            raise StorageSetupError(
                f"InfluxDB at {self.url} refused {statement[:40]!r} (HTTP {refused.code}: {detail}); "
                "check CITYPULSE_INFLUX_TOKEN (an admin 'user:password' is needed for retention policies)"
            ) from None
        except (urllib.error.URLError, OSError) as failed:
            raise StorageSetupError(
                f"cannot reach InfluxDB at {self.url} ({failed}): is it running? CITYPULSE_INFLUX_URL right?"
            ) from None
        result = data["results"][0]
        if "error" in result:
            raise StorageSetupError(f"InfluxDB refused {statement[:80]!r}: {result['error']}")
        series: list[dict[str, Any]] = result.get("series", [])
        return series

    def write(self, lines: list[str], policy: str) -> None:
        query = urllib.parse.urlencode({"db": self.database, "rp": policy, "precision": "ms"})
        request = urllib.request.Request(
            f"{self.url}/write?{query}", data="\n".join(lines).encode(), method="POST", headers=self.headers
        )
        try:
            urllib.request.urlopen(request, timeout=self.timeout_s).close()
        except (urllib.error.URLError, OSError) as failed:
            raise StorageSetupError(f"InfluxDB at {self.url} refused the rp_config rows ({failed})") from None

    def _policies(self) -> dict[str, tuple[float, bool]]:
        found: dict[str, tuple[float, bool]] = {}
        for series in self.query(f"SHOW RETENTION POLICIES ON {quote(self.database)}"):
            columns = series["columns"]
            for row in series.get("values", []):
                item = dict(zip(columns, row, strict=True))
                found[item["name"]] = (_hours(item["duration"]), bool(item["default"]))
        return found

    def _policy(self, report: SetupReport, name: str, days: float, default: bool) -> None:
        wanted = duration(days)
        hours = float(wanted.rstrip("h"))
        existing = self._policies().get(name)
        suffix = " DEFAULT" if default else ""
        target = f"{quote(name)} ON {quote(self.database)} DURATION {wanted}"
        if existing is None:
            self.query(f"CREATE RETENTION POLICY {target} REPLICATION 1{suffix}")
            report.note(f"retention policy {name}: created, keeps {wanted}", True)
        elif existing[0] != hours or (default and not existing[1]):
            self.query(f"ALTER RETENTION POLICY {target}{suffix}")
            report.note(f"retention policy {name}: now keeps {wanted} (was {existing[0]:g}h)", True)
        else:
            report.note(f"retention policy {name}: unchanged, keeps {wanted}", False)

    def _continuous_queries(self) -> dict[str, str]:
        found: dict[str, str] = {}
        for series in self.query("SHOW CONTINUOUS QUERIES"):
            if series.get("name") != self.database:
                continue
            for name, text in series.get("values", []):
                found[name] = text
        return found

    def setup(self, retention: RetentionSettings, backfill_days: float = 0.0) -> SetupReport:
        report = SetupReport()
        self.query(f"CREATE DATABASE {quote(self.database)}")
        self._policy(report, RAW_RP, retention.raw_days, default=True)
        self._policy(report, ROLLUP_RP, retention.rollup_days, default=False)
        existing = self._continuous_queries()
        measurements = rollup_measurements()
        for measurement, fields in measurements.items():
            name = continuous_query_name(measurement)
            statement = continuous_query(self.database, measurement, fields)
            stored = existing.get(name)
            if stored is not None and _same(stored, statement):
                report.note(f"continuous query {name}: unchanged", False)
                continue
            if stored is not None:
                self.query(f"DROP CONTINUOUS QUERY {quote(name)} ON {quote(self.database)}")
            self.query(statement)
            report.note(f"continuous query {name}: {'replaced' if stored else 'created'}", True)
        for name in sorted(set(existing) - {continuous_query_name(m) for m in measurements}):
            if name.startswith(CQ_PREFIX):
                self.query(f"DROP CONTINUOUS QUERY {quote(name)} ON {quote(self.database)}")
                report.note(f"continuous query {name}: dropped (no such measurement any more)", True)
        now_ms = time.time_ns() // 1_000_000
        self.write([choice.line(now_ms) for choice in policy_choices(retention.rollup_from_days)], ROLLUP_RP)
        report.note(
            f"rp_config: dashboards read {ROLLUP_RP} beyond {retention.rollup_from_days:g} days", False
        )
        if backfill_days > 0:
            self.backfill(report, now_ms, backfill_days)
        return report

    def backfill(self, report: SetupReport, now_ms: int, days: float) -> None:
        """Roll up the raw data of the last ``days``, one day at a time (rewrites the same points)."""
        start = (now_ms - round(days * DAY_MS)) // 3_600_000 * 3_600_000
        for measurement, fields in rollup_measurements().items():
            written = 0
            at = start
            while at < now_ms:
                end = min(at + DAY_MS, now_ms + 3_600_000)
                where = f"time >= {at}ms AND time < {end}ms"
                for series in self.query(rollup_select(self.database, measurement, fields, where)):
                    written += int(series["values"][0][1])
                at = end
            report.note(
                f"backfill {measurement}: {written} hourly points from the last {days:g} days", written > 0
            )


def _same(stored: str, wanted: str) -> bool:
    """InfluxDB keeps a continuous query's text with identifiers unquoted: compare them so."""

    def norm(text: str) -> str:
        return " ".join(text.replace('"', "").split())

    return norm(stored) == norm(wanted)


class V2Setup:
    """Setup through influxdb-client's bucket and task APIs (InfluxDB 2.x)."""

    def __init__(self, url: str, bucket: str, token: str, org: str, timeout_s: float = 30.0) -> None:
        from influxdb_client.client.influxdb_client import InfluxDBClient

        self.bucket = bucket.split("/", 1)[0]
        self.org = org
        self.client = InfluxDBClient(url=url, token=token, org=org, timeout=int(timeout_s * 1000))

    def _bucket(self, report: SetupReport, name: str, days: float) -> None:
        from influxdb_client.domain.bucket_retention_rules import BucketRetentionRules

        seconds = round(days * 86_400)
        api = self.client.buckets_api()
        found = api.find_bucket_by_name(name)  # type: ignore[no-untyped-call]
        rules = [BucketRetentionRules(type="expire", every_seconds=seconds)]  # type: ignore[no-untyped-call]
        if found is None:
            api.create_bucket(bucket_name=name, retention_rules=rules, org=self.org)
            report.note(f"bucket {name}: created, keeps {days:g} days", True)
        elif [r.every_seconds for r in found.retention_rules] != [seconds]:
            found.retention_rules = rules
            api.update_bucket(found)
            report.note(f"bucket {name}: now keeps {days:g} days", True)
        else:
            report.note(f"bucket {name}: unchanged, keeps {days:g} days", False)

    def tokens(self, report: SetupReport, directory: Path, org_id: str) -> None:
        """A write-only token for ingest (the raw bucket) and a read-only one for Grafana (every bucket).

        Each is kept as long as its file is there; a missing file means the token is lost (InfluxDB
        2.9 stores tokens hashed), so its authorization is replaced and the new token written.
        """
        from influxdb_client.domain.authorization import Authorization
        from influxdb_client.domain.permission import Permission
        from influxdb_client.domain.permission_resource import PermissionResource

        api = self.client.authorizations_api()
        bucket = self.client.buckets_api().find_bucket_by_name(self.bucket)  # type: ignore[no-untyped-call]
        existing = api.find_authorizations(org_id=org_id)  # type: ignore[no-untyped-call]
        directory.mkdir(parents=True, exist_ok=True)
        for file_name, (description, action) in TOKENS.items():
            path = directory / file_name
            found = [a for a in existing if a.description == description]
            if found and path.is_file() and path.read_text().strip():
                report.note(f"token {description!r}: unchanged ({path})", False)
                continue
            for stale in found:
                api.delete_authorization(stale)  # type: ignore[no-untyped-call]
            resource = (
                PermissionResource(type="buckets", id=bucket.id, org_id=org_id)  # type: ignore[no-untyped-call]
                if action == "write"
                else PermissionResource(type="buckets", org_id=org_id)  # type: ignore[no-untyped-call]
            )
            made = api.create_authorization(
                authorization=Authorization(  # type: ignore[no-untyped-call]
                    org_id=org_id,
                    description=description,
                    permissions=[Permission(action=action, resource=resource)],  # type: ignore[no-untyped-call]
                )
            )
            partial = path.with_name(path.name + ".partial")
            partial.write_text(made.token + "\n")
            partial.chmod(0o644)  # read by the ingest and Grafana containers, which run as other users
            partial.replace(path)
            report.note(f"token {description!r}: created ({path})", True)

    def setup(
        self, retention: RetentionSettings, backfill_days: float = 0.0, tokens_dir: Path | None = None
    ) -> SetupReport:
        from influxdb_client.client.write_api import SYNCHRONOUS
        from influxdb_client.domain.task_create_request import TaskCreateRequest

        report = SetupReport()
        rollup_bucket = f"{self.bucket}/{ROLLUP_RP}"
        self._bucket(report, self.bucket, retention.raw_days)
        self._bucket(report, rollup_bucket, retention.rollup_days)
        tasks = self.client.tasks_api()
        org_id = self.client.organizations_api().find_organizations(org=self.org)[0].id  # type: ignore[no-untyped-call]
        for measurement, fields in rollup_measurements().items():
            name = continuous_query_name(measurement)
            flux = flux_task(self.bucket, measurement, fields)
            existing = tasks.find_tasks(name=name)  # type: ignore[no-untyped-call]
            if not existing:
                tasks.create_task(
                    task_create_request=TaskCreateRequest(  # type: ignore[no-untyped-call]
                        flux=flux, org_id=org_id, status="active", description=name
                    )
                )
                report.note(f"task {name}: created", True)
            elif existing[0].flux.strip() != flux.strip():
                existing[0].flux = flux
                tasks.update_task(existing[0])
                report.note(f"task {name}: replaced", True)
            else:
                report.note(f"task {name}: unchanged", False)
        if tokens_dir is not None:
            self.tokens(report, tokens_dir, org_id)
        now_ms = time.time_ns() // 1_000_000
        lines = [choice.line(now_ms) for choice in policy_choices(retention.rollup_from_days)]
        with self.client.write_api(write_options=SYNCHRONOUS) as writer:
            writer.write(bucket=rollup_bucket, record=lines, write_precision="ms")
        report.note(
            f"rp_config: dashboards read {ROLLUP_RP} beyond {retention.rollup_from_days:g} days", False
        )
        if backfill_days > 0:
            for measurement, fields in rollup_measurements().items():
                flux = flux_task(self.bucket, measurement, fields).split("\n\n", 1)[1]
                flux = flux.replace("range(start: -6h)", f"range(start: -{round(backfill_days * 24)}h)")
                self.client.query_api().query(flux)
                report.note(f"backfill {measurement}: the last {backfill_days:g} days", True)
        return report

    def close(self) -> None:
        self.client.close()  # type: ignore[no-untyped-call]
