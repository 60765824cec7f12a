from __future__ import annotations

import pytest

from processors.access import AccessError, Role, ServiceAccounts, identities, render_acl
from processors.registry import Device, Registry
from processors.topics import TopicScheme


def registry(*devices: Device) -> Registry:
    return Registry(devices)


def device(device_id: str, kind: str = "air", gateway: str | None = None) -> Device:
    return Device(device_id, kind, "Ba Đình", 21.0, 105.8, gateway=gateway)


def test_every_identity_gets_only_its_own_topics() -> None:
    found = identities(
        registry(device("air-1", gateway="gw-1"), device("water-1", "water", "gw-1"), device("air-2")),
        TopicScheme("city/v2"),
        ServiceAccounts(operators=("ops",)),
    )
    by_name = {i.name: i for i in found}
    assert by_name["air-1"].write == ("city/v2/readings/air/air-1",)
    assert by_name["air-1"].read == ()
    assert by_name["gw-1"].role == Role.GATEWAY
    assert by_name["gw-1"].write == ("city/v2/batches/air/gw-1", "city/v2/batches/water/gw-1")
    ingest = by_name["citypulse-ingest"]
    assert ingest.read == ("city/v2/readings/+/+", "city/v2/batches/+/+")
    assert not any("readings" in t or "batches" in t for t in ingest.write)
    assert by_name["citypulse-alerts"].read == ("city/v2/alerts/#",)
    assert by_name["citypulse-alerts"].write == ()
    assert not any("readings" in t for t in by_name["ops"].read)
    readers_of_raw = {i.name for i in found if any("readings" in t or "batches" in t for t in i.read)}
    assert readers_of_raw == {"citypulse-ingest"}


def test_the_acl_lists_nothing_for_anonymous_clients() -> None:
    text = render_acl(identities(registry(device("air-1")), TopicScheme(), ServiceAccounts()), "d.csv")
    first_rule = next(line for line in text.splitlines() if line and not line.startswith("#"))
    assert first_rule.startswith("user ")
    assert "pattern" not in text


@pytest.mark.parametrize(
    ("devices", "services", "message"),
    [
        (
            (device("air-1", gateway="air-2"), device("air-2")),
            ServiceAccounts(),
            "gateway 'air-2' has the same",
        ),
        ((device("citypulse-ingest"),), ServiceAccounts(), "device 'citypulse-ingest' has the same"),
        ((device("air:1"),), ServiceAccounts(), "':' ends a name"),
        ((device("air-1"),), ServiceAccounts(alert_readers=("bad name",)), "cannot be a broker user name"),
    ],
)
def test_names_that_would_collide_or_break_the_files_are_refused(
    devices: tuple[Device, ...], services: ServiceAccounts, message: str
) -> None:
    with pytest.raises(AccessError, match=message):
        identities(registry(*devices), TopicScheme(), services)
