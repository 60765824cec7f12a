"""The embedded store: one SQLite file, so citypulse runs with no database server.

Same schema ideas as InfluxDB: one table per sensor kind with a column per
measure, keyed by (device, ts) so a redelivered reading overwrites itself instead
of duplicating; events (dead letters, alerts, metrics) in one table of their own.
WAL mode with ``synchronous=NORMAL`` survives a killed process; only a power cut
can lose the last transactions.
"""

from __future__ import annotations

import json
import math
import sqlite3
import threading
from pathlib import Path

from pydantic import Field

from ingest.private_files import private_file, tighten
from ingest.settings_section import SettingsSection
from ingest.sinks.base import (
    AnomalyQuery,
    ReadError,
    Sink,
    SinkError,
    SinkHealth,
    SinkPlugin,
    StoredAnomaly,
    WriteReport,
)
from processors.batch import Event, ReadingBatch, WriteBatch
from processors.kinds import KINDS, SensorKind

EVENTS_TABLE = "events"


class SqliteSettings(SettingsSection):
    """SQLite

    One file and no server: the store that works with nothing else installed.
    """

    path: Path = Field(default=Path("citypulse.sqlite"), description="SQLite store file.")


class SqliteSink(Sink):
    """Stores readings in ``path``; creates tables and adds new measure columns as needed."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            # The store holds the city's raw readings: owner-only, and SQLite gives its
            # journal files (-wal, -shm) the database file's mode when it creates them.
            private_file(path)
            for journal in ("-wal", "-shm"):
                tighten(path.with_name(path.name + journal))
            self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute("PRAGMA busy_timeout=5000")
        except (sqlite3.Error, OSError) as bad:
            raise SinkError(f"cannot open SQLite store {path}: {bad}", retryable=False) from bad
        self._lock = threading.Lock()
        self._upserts: dict[str, str] = {}
        with self._lock:
            for kind in KINDS.values():
                self._ensure_table(kind)
            self._db.execute(
                f"CREATE TABLE IF NOT EXISTS {EVENTS_TABLE} ("
                "measurement TEXT NOT NULL, ts INTEGER NOT NULL, tags TEXT NOT NULL, fields TEXT NOT NULL)"
            )
            self._db.execute(
                f"CREATE INDEX IF NOT EXISTS {EVENTS_TABLE}_by_time ON {EVENTS_TABLE}(measurement, ts)"
            )

    def _ensure_table(self, kind: SensorKind) -> None:
        columns = ", ".join(f'"{m.name}" REAL' for m in kind.measures)
        self._db.execute(
            f'CREATE TABLE IF NOT EXISTS "{kind.name}" (device TEXT NOT NULL, district TEXT NOT NULL, '
            f"ts INTEGER NOT NULL, {columns}, PRIMARY KEY (device, ts)) WITHOUT ROWID"
        )
        present = {row[1] for row in self._db.execute(f'PRAGMA table_info("{kind.name}")')}
        for m in kind.measures:
            if m.name not in present:
                self._db.execute(f'ALTER TABLE "{kind.name}" ADD COLUMN "{m.name}" REAL')
        names = [m.name for m in kind.measures]
        quoted = ", ".join(f'"{n}"' for n in names)
        marks = ", ".join("?" for _ in range(len(names) + 3))
        # A re-sent reading merges like an InfluxDB point: reported fields overwrite, absent ones stay.
        merge = ", ".join(f'"{n}" = coalesce(excluded."{n}", "{n}")' for n in names)
        self._upserts[kind.name] = (
            f'INSERT INTO "{kind.name}" (device, district, ts, {quoted}) VALUES ({marks}) '
            f"ON CONFLICT (device, ts) DO UPDATE SET district = excluded.district, {merge}"
        )

    def write(self, batch: WriteBatch) -> WriteReport:
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                for readings in batch.readings:
                    if len(readings):
                        self._db.executemany(self._upserts[readings.kind.name], _rows(readings))
                if batch.events:
                    self._db.executemany(
                        f"INSERT INTO {EVENTS_TABLE} (measurement, ts, tags, fields) VALUES (?, ?, ?, ?)",
                        [_event_row(e) for e in batch.events],
                    )
                self._db.execute("COMMIT")
            except sqlite3.Error as bad:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                busy = isinstance(bad, sqlite3.OperationalError) and "locked" in str(bad)
                raise SinkError(f"SQLite write to {self.path} failed: {bad}", retryable=busy) from bad
        return WriteReport(written=len(batch))

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def health(self) -> SinkHealth:
        try:
            with self._lock:
                self._db.execute("SELECT 1").fetchone()
        except sqlite3.Error as bad:
            return SinkHealth(False, f"SQLite {self.path}: {bad}")
        size = sum(p.stat().st_size for p in _store_files(self.path) if p.exists())
        return SinkHealth(True, f"SQLite {self.path}", size)

    def describe(self) -> str:
        return f"sqlite:{self.path}"

    def count(self, kind: str) -> int:
        """Rows stored for ``kind`` (for summaries and tests)."""
        with self._lock:
            (n,) = self._db.execute(f'SELECT count(*) FROM "{KINDS[kind].name}"').fetchone()
        return int(n)


def _rows(batch: ReadingBatch) -> list[tuple[object, ...]]:
    ids = batch.device_ids()
    districts = batch.districts()
    values = batch.values.tolist()
    return [
        (device, district, ts, *[None if math.isnan(v) else v for v in row])
        for device, district, ts, row in zip(ids, districts, batch.ts_ms.tolist(), values, strict=True)
    ]


def _event_row(event: Event) -> tuple[object, ...]:
    return (
        event.measurement,
        event.ts_ms,
        json.dumps(event.tags, ensure_ascii=False, sort_keys=True),
        json.dumps(event.fields, ensure_ascii=False, sort_keys=True),
    )


def _store_files(path: Path) -> list[Path]:
    return [path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")]


ANOMALIES = "anomalies"
"""The measurement of anomaly onsets (``processors.anomaly.MEASUREMENT``)."""


class SqliteAnomalyReader:
    """Reads anomaly onsets back from a store a ``SqliteSink`` wrote.

    Opened in ``rw`` mode, which never creates a missing store, and only ever reads.
    Not ``ro``: a read-only connection cannot remove the ``-wal`` and ``-shm`` files
    on close, so every read would leave them behind; a read-write one removes them
    when it is the last connection, and leaves them to a running writer otherwise.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        if not path.is_file():
            raise ReadError(
                f"no SQLite store at {path}: run citypulse ingest (or citypulse demo) first, "
                "or point CITYPULSE_SQLITE_PATH (--sqlite-path) at the store"
            )
        try:
            self._db = sqlite3.connect(
                f"{path.resolve().as_uri()}?mode=rw", uri=True, check_same_thread=False
            )
            self._db.execute("PRAGMA busy_timeout=5000")
        except sqlite3.Error as bad:
            raise ReadError(f"cannot open SQLite store {path}: {bad}") from bad

    def anomalies(self, query: AnomalyQuery) -> list[StoredAnomaly]:
        where = ["measurement = ?"]
        params: list[object] = [ANOMALIES]
        if query.since_ms is not None:
            where.append("ts >= ?")
            params.append(query.since_ms)
        for column, path, wanted in (
            ("tags", "$.kind", query.kind),
            ("tags", "$.detector", query.detector),
            ("tags", "$.district", query.district),
            ("fields", "$.device", query.device),
        ):
            if wanted is not None:
                where.append(f"json_extract({column}, '{path}') = ?")
                params.append(wanted)
        params.append(query.limit)
        statement = (
            f"SELECT ts, tags, fields FROM {EVENTS_TABLE} WHERE {' AND '.join(where)} "
            "ORDER BY ts DESC LIMIT ?"
        )
        try:
            rows = self._db.execute(statement, params).fetchall()
        except sqlite3.OperationalError as bad:
            if "no such table" in str(bad):
                return []  # a store that has never held an event
            raise ReadError(f"cannot read anomalies from SQLite store {self.path}: {bad}") from bad
        except sqlite3.Error as bad:
            raise ReadError(f"cannot read anomalies from SQLite store {self.path}: {bad}") from bad
        return [_stored_anomaly(int(ts), json.loads(tags), json.loads(fields)) for ts, tags, fields in rows]

    def describe(self) -> str:
        return f"sqlite:{self.path}"

    def close(self) -> None:
        self._db.close()


def _stored_anomaly(ts_ms: int, tags: dict[str, str], fields: dict[str, object]) -> StoredAnomaly:
    value = fields.get("value")
    score = fields.get("score")
    return StoredAnomaly(
        ts_ms=ts_ms,
        kind=tags.get("kind", ""),
        detector=tags.get("detector", ""),
        category=tags.get("category", ""),
        field=tags.get("field", ""),
        district=tags.get("district", ""),
        device=str(fields.get("device", "")),
        score=float(score) if isinstance(score, int | float) else math.nan,
        value=float(value) if isinstance(value, int | float) else None,
    )


def _open(settings: SqliteSettings) -> Sink:
    return SqliteSink(settings.path)


def _read(settings: SqliteSettings) -> SqliteAnomalyReader:
    return SqliteAnomalyReader(settings.path)


PLUGIN = SinkPlugin(
    name="sqlite",
    settings=SqliteSettings,
    factory=_open,
    description="Embedded SQLite file (no server).",
    reader=_read,
)
