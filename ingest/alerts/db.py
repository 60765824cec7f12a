"""The alert store's SQLite file: opened the same way by ingest, its delivery threads and the CLI.

WAL mode lets the delivery threads and ``citypulse alerts`` read and write while
ingest does (one writer at a time, each transaction short); ``synchronous=FULL``
makes a committed cycle survive a power cut too, because ingest acknowledges the
MQTT messages right after. The file holds who acknowledged what and the outbox's
webhook bodies, so it is created readable by its owner only.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from ingest.private_files import private_file

SCHEMA_VERSION = 1

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS targets (
    rule TEXT NOT NULL, target TEXT NOT NULL, alert_id TEXT, open INTEGER NOT NULL, state TEXT NOT NULL,
    PRIMARY KEY (rule, target)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS targets_by_alert ON targets (alert_id);
CREATE TABLE IF NOT EXISTS members (
    rule TEXT NOT NULL, device TEXT NOT NULL, kind TEXT NOT NULL, district TEXT NOT NULL, value REAL,
    PRIMARY KEY (rule, device)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS silent (
    device TEXT PRIMARY KEY, kind TEXT NOT NULL, district TEXT NOT NULL, since_ms INTEGER NOT NULL)
    WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, event_id TEXT NOT NULL, alert_id TEXT NOT NULL,
    at_ms INTEGER NOT NULL, stored_ms INTEGER NOT NULL, silenced_by TEXT NOT NULL, body TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS events_by_alert ON events (alert_id);
CREATE TABLE IF NOT EXISTS acks (
    request INTEGER PRIMARY KEY AUTOINCREMENT, alert_id TEXT NOT NULL, by TEXT NOT NULL, note TEXT NOT NULL,
    requested_ms INTEGER NOT NULL, applied_ms INTEGER, outcome TEXT);
CREATE INDEX IF NOT EXISTS acks_pending ON acks (applied_ms);
CREATE TABLE IF NOT EXISTS silences (
    id TEXT PRIMARY KEY, starts_ms INTEGER NOT NULL, ends_ms INTEGER NOT NULL, device TEXT NOT NULL,
    district TEXT NOT NULL, rule TEXT NOT NULL, kind TEXT NOT NULL, created_by TEXT NOT NULL,
    comment TEXT NOT NULL, created_ms INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS outbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, channel TEXT NOT NULL, subscriber TEXT NOT NULL,
    event_id TEXT NOT NULL, rule TEXT NOT NULL, district TEXT NOT NULL, body TEXT NOT NULL,
    created_ms INTEGER NOT NULL, attempts INTEGER NOT NULL DEFAULT 0, last_error TEXT NOT NULL DEFAULT '');
CREATE INDEX IF NOT EXISTS outbox_by_channel ON outbox (channel, seq);
CREATE TABLE IF NOT EXISTS dead_letters (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, channel TEXT NOT NULL, subscriber TEXT NOT NULL,
    event_id TEXT NOT NULL, body TEXT NOT NULL, attempts INTEGER NOT NULL, error TEXT NOT NULL,
    created_ms INTEGER NOT NULL, failed_ms INTEGER NOT NULL);
"""


class AlertStoreError(Exception):
    """The alert store cannot be opened or written; the message says what to fix."""


def connect(path: Path, create: bool = True) -> sqlite3.Connection:
    """A connection to the store at ``path``, created owner-only with its schema if needed."""
    if not create and not path.exists():
        raise AlertStoreError(
            f"no alert store at {path}: start 'citypulse ingest' once, or point CITYPULSE_ALERTS_STORE at it"
        )
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        private_file(path)  # owner-only, an older file tightened
        db = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=10.0)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=FULL")
        db.execute("PRAGMA busy_timeout=10000")
        db.executescript(SCHEMA)
        db.execute("INSERT OR IGNORE INTO meta (key, value) VALUES ('schema', ?)", (str(SCHEMA_VERSION),))
    except (OSError, sqlite3.Error) as bad:
        raise AlertStoreError(
            f"cannot open the alert store {path}: {bad}; check the directory's permissions and free space, "
            "or set CITYPULSE_ALERTS_STORE"
        ) from bad
    return db
