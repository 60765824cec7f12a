"""The durable alert store: one transaction per cycle, restored at start, shared with the CLI."""

from __future__ import annotations

import stat
from pathlib import Path

from ingest.alerts.outbox import Outbox
from ingest.alerts.store import AlertStore, Delivery, wall_ms
from processors.alerts import AckResult, EventType, Outcome, Silence, Target
from processors.alerts.state import Member, SilentDevice
from tests.ingest.alerts.helpers import T0, alert, event


def test_a_cycle_is_saved_in_one_transaction_and_restored(tmp_path: Path) -> None:
    path = tmp_path / "alerts.sqlite"
    store = AlertStore(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600, "acknowledgement notes and webhook bodies: owner only"
    fired = event(1)
    target = Target(
        "waste", "Đống Đa", "waste-000001", present=True, since_ms=T0, onsets=(T0,), alert=fired.alert
    )
    outcome = Outcome(
        T0,
        events=[fired],
        targets={("bin_fire", "waste-000001"): target},
        members={("bad_air", "air-1"): Member("air", "Đống Đa", 90.0)},
        silent={"air-2": SilentDevice("air", "Đống Đa", T0)},
    )
    owed = [Delivery("webhook", "ops", fired.event_id, "bin_fire", "Đống Đa", "{}")]
    saved = store.save(outcome, owed, clock_ms=T0)
    assert [d.seq for d in saved] == [1]
    store.close()

    again = AlertStore(path)
    restored = again.restore()
    assert restored.targets == {("bin_fire", "waste-000001"): target}
    assert restored.members == {("bad_air", "air-1"): Member("air", "Đống Đa", 90.0)}
    assert restored.silent == {"air-2": SilentDevice("air", "Đống Đa", T0)}
    assert restored.clock_ms == T0
    assert [a.id for a in again.open_alerts()] == [fired.alert.id]
    assert again.find_open(fired.alert.id) == fired.alert
    [(_, history)] = again.events_after(0)
    assert history["event_id"] == fired.event_id
    assert Outbox(path).pending("webhook")[0].event_id == fired.event_id
    # A later cycle resolves it: the target goes, the history grows.
    resolved = Outcome(
        T0 + 1, events=[event(1, EventType.RESOLVED)], targets={("bin_fire", "waste-000001"): None}
    )
    again.save(resolved, [], T0 + 1)
    assert again.open_alerts() == []
    assert len(again.events_after(0)) == 2


def test_acknowledgements_and_silences_written_by_the_command_line_reach_ingest(tmp_path: Path) -> None:
    path = tmp_path / "alerts.sqlite"
    ingest = AlertStore(path)
    assert ingest.changed()
    assert not ingest.changed()
    cli = AlertStore(path, create=False)
    request = cli.request_ack(alert(1).id, "lan", "crew on the way")
    now = wall_ms()
    silence = cli.add_silence(
        Silence("", now, now + 3_600_000, district="Đống Đa", created_by="lan", comment="works")
    )
    assert ingest.changed(), "another connection wrote"
    [ack] = ingest.pending_acks()
    assert (ack.request, ack.alert_id, ack.by, ack.note) == (request, alert(1).id, "lan", "crew on the way")
    assert [s.id for s in ingest.silences(now)] == [silence.id]
    ingest.save(Outcome(T0, acks=[AckResult(request, alert(1).id, "acknowledged")]), [], T0)
    assert ingest.pending_acks() == ()
    assert cli.ack_outcome(request) == "acknowledged"
    assert cli.end_silence(silence.id)
    assert ingest.silences() == []
    assert [s.id for s in ingest.silences(include_ended=True)] == [silence.id]
