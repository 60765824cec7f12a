"""Uploading to and checking an existing Grafana, through grafana-client.

:func:`push` creates or updates the InfluxDB data source (fixed uid, the
read-only token as a secure header), the ``citypulse`` folder and every
dashboard; :func:`check` says whether Grafana answers, the data source is
healthy, and each dashboard is there and equal to what the code generates.
Every failure a user can hit becomes one :class:`GrafanaError` sentence saying
what to do.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import requests
from grafana_client import GrafanaApi
from grafana_client.client import GrafanaClientError, GrafanaException, GrafanaUnauthorizedError

from dashboards.catalog import FOLDER_TITLE, FOLDER_UID
from dashboards.influxql import DATASOURCE_NAME, DATASOURCE_TYPE, DATASOURCE_UID

IGNORED_KEYS = frozenset({"id", "version"})
"""Keys Grafana sets on every stored dashboard; the rest must equal the generated JSON."""


class GrafanaError(Exception):
    """Grafana could not do what was asked; the message says why and what to do."""


@dataclass(frozen=True)
class InfluxSource:
    """The InfluxDB that Grafana's data source reads (InfluxQL in both cases)."""

    url: str
    database: str
    token: str = ""
    api: str = "v2"
    """``v2``: a token sent as ``Authorization: Token ...`` (InfluxDB 2.x/3.x, DBRP mapping);
    ``v1``: ``user:password`` or nothing (InfluxDB 1.x)."""

    def payload(self) -> dict[str, Any]:
        """The data source as Grafana's API (and its provisioning file) describe it."""
        body: dict[str, Any] = {
            "uid": DATASOURCE_UID,
            "name": DATASOURCE_NAME,
            "type": DATASOURCE_TYPE,
            "access": "proxy",
            "url": self.url,
            "database": self.database,
            "isDefault": True,
            "jsonData": {"dbName": self.database, "httpMode": "POST", "version": "InfluxQL"},
            "secureJsonData": {},
        }
        if self.api == "v2" and self.token:
            body["jsonData"]["httpHeaderName1"] = "Authorization"
            body["secureJsonData"]["httpHeaderValue1"] = f"Token {self.token}"
        elif self.token:
            user, _, password = self.token.partition(":")
            body["user"] = user
            body["secureJsonData"]["password"] = password
        return body


@dataclass
class Report:
    """What a push or a check found, line by line; ``ok`` is false if anything needs fixing."""

    lines: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def good(self, line: str) -> None:
        self.lines.append(line)

    def bad(self, line: str) -> None:
        self.problems.append(line)
        self.lines.append(line)


def connect(url: str, token: str, timeout_s: float) -> GrafanaApi:
    return GrafanaApi.from_url(url, credential=token or None, timeout=timeout_s)


@contextmanager
def explained(url: str) -> Iterator[None]:
    """Turn grafana-client's and requests' exceptions into one sentence with advice."""
    try:
        yield
    except GrafanaUnauthorizedError:
        raise GrafanaError(
            f"Grafana at {url} refused the token (401 Unauthorized): set CITYPULSE_GRAFANA_TOKEN (or "
            "CITYPULSE_GRAFANA_TOKEN_FILE) to a service-account token with the Editor role"
        ) from None
    except GrafanaClientError as refused:
        if refused.status_code == 403:
            raise GrafanaError(
                f"Grafana at {url} forbids the change (403): give the token's service account the Editor role"
            ) from None
        raise GrafanaError(f"Grafana at {url} refused the request: {refused.message}") from None
    except GrafanaException as failed:
        raise GrafanaError(f"Grafana at {url} failed: {failed.message}; look at Grafana's log") from None
    except requests.exceptions.ConnectionError:
        raise GrafanaError(
            f"cannot reach Grafana at {url}: is it running, and is CITYPULSE_GRAFANA_URL right?"
        ) from None
    except requests.exceptions.Timeout:
        raise GrafanaError(
            f"Grafana at {url} did not answer in time: is it overloaded, or raise CITYPULSE_GRAFANA_TIMEOUT_S"
        ) from None


def _missing(call: Any, *args: Any) -> Any | None:
    """The result of a GET, or None when Grafana answers 404."""
    try:
        return call(*args)
    except GrafanaClientError as refused:
        if refused.status_code == 404:
            return None
        raise


def push(api: GrafanaApi, source: InfluxSource, boards: Mapping[str, dict[str, Any]]) -> Report:
    """Create or update the data source, the folder and every dashboard (by uid: idempotent)."""
    report = Report()
    with explained(api.url):
        api.health.check()
        payload = source.payload()
        if _missing(api.datasource.get_datasource_by_uid, DATASOURCE_UID) is None:
            api.datasource.create_datasource(payload)
            report.good(f"data source {DATASOURCE_NAME!r} created ({source.url}, database {source.database})")
        else:
            api.datasource.update_datasource_by_uid(DATASOURCE_UID, payload)
            report.good(f"data source {DATASOURCE_NAME!r} updated ({source.url}, database {source.database})")
        if _missing(api.folder.get_folder, FOLDER_UID) is None:
            api.folder.create_folder(FOLDER_TITLE, uid=FOLDER_UID)
            report.good(f"folder {FOLDER_TITLE!r} created")
        for name, board in boards.items():
            api.dashboard.update_dashboard(
                {
                    "dashboard": {**board, "id": None},
                    "folderUid": FOLDER_UID,
                    "overwrite": True,
                    "message": "citypulse dashboards push",
                }
            )
            report.good(f"dashboard {board['title']!r} uploaded ({name})")
    return report


def _comparable(board: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in board.items() if k not in IGNORED_KEYS}


def check(api: GrafanaApi, boards: Mapping[str, dict[str, Any]]) -> Report:
    """Grafana reachable, data source present and healthy, each dashboard present and current."""
    report = Report()
    with explained(api.url):
        health = api.health.check()
        version = health.get("version", "?") if isinstance(health, dict) else "?"
        report.good(f"Grafana {version} answers at {api.url}")
        if _missing(api.datasource.get_datasource_by_uid, DATASOURCE_UID) is None:
            report.bad(f"data source {DATASOURCE_UID!r} is missing: run citypulse dashboards push")
        else:
            try:
                answer = api.datasource.health(DATASOURCE_UID)
            except GrafanaClientError as failed:  # Grafana answers 400 with the reason when the check fails
                answer = failed.response if isinstance(failed.response, dict) else {"message": failed.message}
            status = str(answer.get("status", "")).upper() if isinstance(answer, dict) else ""
            message = answer.get("message", "") if isinstance(answer, dict) else str(answer)
            if status == "OK":
                report.good(f"data source {DATASOURCE_UID!r} is healthy: {message}")
            else:
                report.bad(
                    f"data source {DATASOURCE_UID!r} is unhealthy: {message}; check its URL, database and "
                    "read token (CITYPULSE_GRAFANA_INFLUX_*), then run citypulse dashboards push"
                )
        for name, board in boards.items():
            stored = _missing(api.dashboard.get_dashboard, board["uid"])
            if stored is None:
                report.bad(f"dashboard {board['title']!r} is missing: run citypulse dashboards push")
            elif _comparable(stored.get("dashboard", {})) != _comparable(board):
                report.bad(f"dashboard {board['title']!r} differs from {name}: run citypulse dashboards push")
            else:
                report.good(f"dashboard {board['title']!r} is current")
    return report
