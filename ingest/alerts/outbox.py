"""The outbox: deliveries owed, on disk, until delivered or dead-lettered.

Ingest writes a cycle's deliveries in the same transaction as its alert state
(``AlertStore.save``) before it acknowledges the cycle's MQTT messages; each
channel's delivery thread reads and clears them through its own connection
here. A delivery leaves the outbox when the subscriber took it, or after the
last retry into ``dead_letters`` (with the error), so nothing owed is silently
forgotten: at least once, the event id for the receiver to de-duplicate on.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Collection, Sequence
from pathlib import Path

from ingest.alerts.db import connect
from ingest.alerts.store import Delivery, wall_ms

OUTBOX_FULL = "outbox full: dropped the oldest undelivered events"


class Outbox:
    """One thread's view of the outbox (its own SQLite connection)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.db = connect(path)

    def close(self) -> None:
        self.db.close()

    def pending(self, channel: str, exclude: Collection[int] = (), limit: int = 1000) -> list[Delivery]:
        """The oldest undelivered events of ``channel`` not among ``exclude`` (seqs already held)."""
        found: list[Delivery] = []
        rows = self.db.execute(
            "SELECT seq, subscriber, event_id, rule, district, body, attempts, created_ms FROM outbox "
            "WHERE channel = ? ORDER BY seq",
            (channel,),
        )
        for seq, subscriber, event_id, rule, district, body, attempts, created in rows:
            if seq in exclude:
                continue
            found.append(
                Delivery(channel, subscriber, event_id, rule, district, body, seq, attempts, created)
            )
            if len(found) >= limit:
                break
        return found

    def count(self, channel: str) -> int:
        (n,) = self.db.execute("SELECT count(*) FROM outbox WHERE channel = ?", (channel,)).fetchone()
        return int(n)

    def delivered(self, deliveries: Sequence[Delivery]) -> None:
        self._write(
            lambda db: db.executemany("DELETE FROM outbox WHERE seq = ?", [(d.seq,) for d in deliveries])
        )

    def failed(self, deliveries: Sequence[Delivery], error: str) -> None:
        """Count one more failed attempt for each (kept across restarts)."""
        self._write(
            lambda db: db.executemany(
                "UPDATE outbox SET attempts = attempts + 1, last_error = ? WHERE seq = ?",
                [(error[:500], d.seq) for d in deliveries],
            )
        )

    def dead_letter(self, deliveries: Sequence[Delivery], error: str) -> None:
        """Give up on these: record them with the error, then take them off the outbox."""
        now = wall_ms()

        def move(db: sqlite3.Connection) -> None:
            db.executemany(
                "INSERT INTO dead_letters (channel, subscriber, event_id, body, attempts, error, created_ms, "
                "failed_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (d.channel, d.subscriber, d.event_id, d.body, d.attempts, error[:500], d.created_ms, now)
                    for d in deliveries
                ],
            )
            db.executemany("DELETE FROM outbox WHERE seq = ?", [(d.seq,) for d in deliveries])

        self._write(move)

    def trim(self, channel: str, keep: int) -> list[Delivery]:
        """Dead-letter the oldest undelivered events beyond ``keep``; returns them (they are dropped)."""
        excess = self.count(channel) - keep
        if excess <= 0:
            return []
        oldest = self.pending(channel, limit=excess)
        self.dead_letter(oldest, OUTBOX_FULL)
        return oldest

    def _write(self, work: Callable[[sqlite3.Connection], object]) -> None:
        self.db.execute("BEGIN IMMEDIATE")
        try:
            work(self.db)
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")
