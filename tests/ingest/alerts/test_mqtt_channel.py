"""The MQTT channel against a real Mosquitto: events on filterable topics, open alerts retained."""

from __future__ import annotations

import json
from pathlib import Path

from processors.alerts import EventType
from processors.topics import TopicScheme
from tests.e2e.helpers import wait_until, watching
from tests.ingest.alerts.channels import delivering, owe, settle
from tests.ingest.alerts.helpers import event
from tests.servers import Mosquitto


def test_events_are_published_and_open_alerts_retained_until_resolved(
    tmp_path: Path, mosquitto: Mosquitto, monkeypatch: object
) -> None:
    import pytest

    assert isinstance(monkeypatch, pytest.MonkeyPatch)
    monkeypatch.setenv("CITYPULSE_MQTT_URL", mosquitto.url)
    topics = TopicScheme()
    events_filter, open_filter = topics.alert_filters()
    with watching(mosquitto.url, [f"{topics.prefix}/alerts/events/critical/waste/#"]) as critical:
        with delivering(tmp_path, mqtt=True) as service:
            owe(service, event(1), event(2), event(3, district="Tây Hồ"))
            settle(service)
            owe(service, event(2, EventType.RESOLVED))
            settle(service)
        wait_until(lambda: len(critical.messages) == 4, 10, "the events on MQTT")
    topics_seen = [t for t, _, _ in critical.messages]
    assert topics_seen[0] == "citypulse/v1/alerts/events/critical/waste/Đống Đa/waste-000001"
    assert json.loads(critical.messages[0][1])["event_id"] == event(1).event_id
    # A subscriber that connects now sees what is open: 1 and 3, not 2, which resolved.
    with watching(mosquitto.url, [open_filter]) as late:
        wait_until(lambda: len(late.messages) == 2, 10, "the retained open alerts")
        retained = {json.loads(p)["id"] for _, p, r in late.messages if r}
    assert retained == {event(1).alert.id, event(3).alert.id}
    assert events_filter == "citypulse/v1/alerts/events/#"
