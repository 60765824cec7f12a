"""The durable alert state: what is open, what was said, what operators asked, in one SQLite file.

Ingest saves each cycle's alert changes in one transaction: the changed engine
targets, the events (history for ``tail`` and ``list``), the acknowledgements it
applied, and the deliveries it owes (the outbox, ``ingest/alerts/outbox.py``).
Only then are the cycle's MQTT messages acknowledged, so an alert raised just
before a crash is restored and delivered after the restart.

``citypulse alerts ack`` and ``silence`` write here too: an acknowledgement is a
request ingest applies in its next cycle (or when it next starts), a silence is
read by ingest as it is. So both work whether ingest is running or not.
"""

from __future__ import annotations

import json
import sqlite3
import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from ingest.alerts.db import AlertStoreError, connect
from processors.alerts import Ack, Alert, Outcome, Silence, Target
from processors.alerts.state import Key, Member, SilentDevice


@dataclass(frozen=True, slots=True)
class Delivery:
    """One event owed to one subscriber of one channel (an outbox row)."""

    channel: str
    subscriber: str
    event_id: str
    rule: str
    district: str
    body: str
    """The event as JSON (``AlertEvent.to_dict``)."""
    seq: int = 0
    attempts: int = 0
    created_ms: int = 0


@dataclass(frozen=True)
class Restored:
    targets: dict[Key, Target]
    members: dict[Key, Member]
    silent: dict[str, SilentDevice]
    clock_ms: int


def wall_ms() -> int:
    return time.time_ns() // 1_000_000


class AlertStore:
    """The store as ingest and the command line use it (one connection, used from one thread)."""

    def __init__(self, path: Path, create: bool = True) -> None:
        self.path = path
        self.db = connect(path, create)
        self._version = -1

    def close(self) -> None:
        self.db.close()

    # --- ingest: restore and save ----------------------------------------------------------
    def restore(self) -> Restored:
        targets = {
            (rule, target): Target.from_dict(json.loads(state))
            for rule, target, state in self.db.execute("SELECT rule, target, state FROM targets")
        }
        members = {
            (rule, device): Member(kind, district, value)
            for rule, device, kind, district, value in self.db.execute(
                "SELECT rule, device, kind, district, value FROM members"
            )
        }
        silent = {
            device: SilentDevice(kind, district, since)
            for device, kind, district, since in self.db.execute(
                "SELECT device, kind, district, since_ms FROM silent"
            )
        }
        row = self.db.execute("SELECT value FROM meta WHERE key = 'clock_ms'").fetchone()
        return Restored(targets, members, silent, int(row[0]) if row else 0)

    def save(self, outcome: Outcome, deliveries: Sequence[Delivery], clock_ms: int) -> list[Delivery]:
        """A cycle's alert changes and owed deliveries in one transaction; returns the deliveries' seqs."""
        now = wall_ms()
        saved: list[Delivery] = []
        db = self.db
        try:
            db.execute("BEGIN IMMEDIATE")
            for (rule, target_id), target in outcome.targets.items():
                if target is None:
                    db.execute("DELETE FROM targets WHERE rule = ? AND target = ?", (rule, target_id))
                else:
                    alert = target.alert
                    db.execute(
                        "INSERT OR REPLACE INTO targets (rule, target, alert_id, open, state) "
                        "VALUES (?, ?, ?, ?, ?)",
                        (
                            rule,
                            target_id,
                            None if alert is None else alert.id,
                            int(alert is not None),
                            json.dumps(target.to_dict(), ensure_ascii=False),
                        ),
                    )
            for (rule, device), member in outcome.members.items():
                if member is None:
                    db.execute("DELETE FROM members WHERE rule = ? AND device = ?", (rule, device))
                else:
                    db.execute(
                        "INSERT OR REPLACE INTO members (rule, device, kind, district, value) "
                        "VALUES (?, ?, ?, ?, ?)",
                        (rule, device, member.kind, member.district, member.value),
                    )
            for device, silent in outcome.silent.items():
                if silent is None:
                    db.execute("DELETE FROM silent WHERE device = ?", (device,))
                else:
                    db.execute(
                        "INSERT OR REPLACE INTO silent (device, kind, district, since_ms) "
                        "VALUES (?, ?, ?, ?)",
                        (device, silent.kind, silent.district, silent.since_ms),
                    )
            db.executemany(
                "INSERT INTO events (event_id, alert_id, at_ms, stored_ms, silenced_by, body) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                [
                    (
                        e.event_id,
                        e.alert.id,
                        e.at_ms,
                        now,
                        e.silenced_by,
                        json.dumps(e.to_dict(), ensure_ascii=False),
                    )
                    for e in outcome.events
                ],
            )
            db.executemany(
                "UPDATE acks SET applied_ms = ?, outcome = ? WHERE request = ?",
                [(now, a.outcome, a.request) for a in outcome.acks],
            )
            for d in deliveries:
                cursor = db.execute(
                    "INSERT INTO outbox (channel, subscriber, event_id, rule, district, body, created_ms) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (d.channel, d.subscriber, d.event_id, d.rule, d.district, d.body, now),
                )
                assert cursor.lastrowid is not None
                saved.append(
                    Delivery(
                        d.channel,
                        d.subscriber,
                        d.event_id,
                        d.rule,
                        d.district,
                        d.body,
                        cursor.lastrowid,
                        0,
                        now,
                    )
                )
            db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('clock_ms', ?)", (str(clock_ms),))
            db.execute("COMMIT")
        except sqlite3.Error as bad:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise AlertStoreError(f"cannot save alerts to {self.path}: {bad}") from bad
        return saved

    def prune(self, keep_days: float) -> int:
        """Forget events older than ``keep_days`` (the history; open alerts are kept regardless)."""
        cutoff = wall_ms() - int(keep_days * 86_400_000)
        cursor = self.db.execute("DELETE FROM events WHERE stored_ms < ?", (cutoff,))
        return cursor.rowcount

    def changed(self) -> bool:
        """Whether another connection (the command line, a delivery thread) wrote since the last call."""
        (version,) = self.db.execute("PRAGMA data_version").fetchone()
        changed = bool(version != self._version)
        self._version = int(version)
        return changed

    def pending_acks(self) -> tuple[Ack, ...]:
        return tuple(
            Ack(request, alert_id, by, note)
            for request, alert_id, by, note in self.db.execute(
                "SELECT request, alert_id, by, note FROM acks WHERE applied_ms IS NULL ORDER BY request"
            )
        )

    # --- what is open -------------------------------------------------------------------------
    def open_alerts(self) -> list[Alert]:
        alerts = []
        for (state,) in self.db.execute("SELECT state FROM targets WHERE open = 1"):
            alert = Target.from_dict(json.loads(state)).alert
            if alert is not None:
                alerts.append(alert)
        return sorted(alerts, key=lambda a: (-a.severity.rank, a.started_ms))

    def find_open(self, alert_id: str) -> Alert | None:
        row = self.db.execute(
            "SELECT state FROM targets WHERE alert_id = ? AND open = 1", (alert_id,)
        ).fetchone()
        return None if row is None else Target.from_dict(json.loads(row[0])).alert

    def events_after(self, seq: int, limit: int = 1000) -> list[tuple[int, dict[str, object]]]:
        """History events after ``seq`` in store order (``tail``), each with its ``silenced_by``."""
        rows = self.db.execute(
            "SELECT seq, silenced_by, body FROM events WHERE seq > ? ORDER BY seq LIMIT ?", (seq, limit)
        )
        return [(s, {**json.loads(body), "silenced_by": silenced}) for s, silenced, body in rows]

    def last_event_seq(self) -> int:
        (seq,) = self.db.execute("SELECT coalesce(max(seq), 0) FROM events").fetchone()
        return int(seq)

    def seq_before(self, stored_ms: int) -> int:
        """The last event seq stored before ``stored_ms`` (wall clock), to tail from then on."""
        (seq,) = self.db.execute(
            "SELECT coalesce(max(seq), 0) FROM events WHERE stored_ms < ?", (stored_ms,)
        ).fetchone()
        return int(seq)

    def dead_letters(self) -> list[dict[str, object]]:
        rows = self.db.execute(
            "SELECT channel, subscriber, event_id, attempts, error, failed_ms FROM dead_letters ORDER BY seq"
        )
        keys = ("channel", "subscriber", "event_id", "attempts", "error", "failed_ms")
        return [dict(zip(keys, row, strict=True)) for row in rows]

    # --- operators: acknowledgements and silences ---------------------------------------------
    def request_ack(self, alert_id: str, by: str, note: str) -> int:
        cursor = self.db.execute(
            "INSERT INTO acks (alert_id, by, note, requested_ms) VALUES (?, ?, ?, ?)",
            (alert_id, by, note, wall_ms()),
        )
        assert cursor.lastrowid is not None
        return cursor.lastrowid

    def ack_outcome(self, request: int) -> str | None:
        row = self.db.execute("SELECT outcome FROM acks WHERE request = ?", (request,)).fetchone()
        return None if row is None else row[0]

    def pending_ack_ids(self) -> set[str]:
        return {row[0] for row in self.db.execute("SELECT alert_id FROM acks WHERE applied_ms IS NULL")}

    def add_silence(self, silence: Silence) -> Silence:
        if not silence.id:
            silence = Silence(
                uuid.uuid4().hex[:12],
                silence.starts_ms,
                silence.ends_ms,
                silence.device,
                silence.district,
                silence.rule,
                silence.kind,
                silence.created_by,
                silence.comment,
            )
        self.db.execute(
            "INSERT INTO silences (id, starts_ms, ends_ms, device, district, rule, kind, created_by, "
            "comment, created_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                silence.id,
                silence.starts_ms,
                silence.ends_ms,
                silence.device,
                silence.district,
                silence.rule,
                silence.kind,
                silence.created_by,
                silence.comment,
                wall_ms(),
            ),
        )
        return silence

    def end_silence(self, silence_id: str) -> bool:
        """End a silence now (it stays in the list as ended); False if there is none in force by that id."""
        now = wall_ms()
        cursor = self.db.execute(
            "UPDATE silences SET ends_ms = max(?, starts_ms + 1) WHERE id = ? AND ends_ms > ?",
            (now, silence_id, now),
        )
        return cursor.rowcount > 0

    def silences(self, now_ms: int | None = None, include_ended: bool = False) -> list[Silence]:
        """Silences that have not ended by ``now_ms`` (all of them with ``include_ended``)."""
        now = wall_ms() if now_ms is None else now_ms
        query = (
            "SELECT id, starts_ms, ends_ms, device, district, rule, kind, created_by, comment FROM silences"
        )
        rows: Iterable[tuple[str, int, int, str, str, str, str, str, str]]
        if include_ended:
            rows = self.db.execute(query + " ORDER BY starts_ms")
        else:
            rows = self.db.execute(query + " WHERE ends_ms > ? ORDER BY starts_ms", (now,))
        return [Silence(*row) for row in rows]


__all__ = ["AlertStore", "AlertStoreError", "Delivery", "Restored"]
