"""The production default, the v2 write API through influxdb-client, end to end against a real server."""

from __future__ import annotations

from pathlib import Path

from processors.kinds import KINDS
from tests.e2e.helpers import wait_until
from tests.faults.helpers import Fleet, Ingest, Publisher
from tests.servers import Mosquitto, VictoriaMetrics


def test_citypulse_ingest_writes_every_reading_through_the_v2_api(
    tmp_path: Path, mosquitto: Mosquitto, victoria_metrics: VictoriaMetrics
) -> None:
    fleet = Fleet.make(devices=10, per_device=20)
    ingest = Ingest(
        tmp_path,
        mosquitto.url,
        victoria_metrics.url,
        fleet.save(tmp_path / "devices.csv"),
        extra={"CITYPULSE_INFLUX_API": "v2", "CITYPULSE_INFLUX_GZIP_MIN_BYTES": "0"},
    ).start()
    publisher = Publisher(mosquitto.url, fleet.messages, rate_per_s=500).start()
    expected = fleet.expected()

    def stored() -> dict[str, set[tuple[str, int]]]:
        found: dict[str, set[tuple[str, int]]] = {}
        for kind in expected:
            # VictoriaMetrics keeps each field as a series named measurement_field.
            for series in victoria_metrics.export(f"{kind}_{KINDS[kind].measures[0].name}"):
                found.setdefault(kind, set()).update(
                    (series["metric"]["device"], t) for t in series["timestamps"]
                )
        return found

    try:
        publisher.wait()
        wait_until(lambda: stored() == expected, 60, "every reading in VictoriaMetrics")
    finally:
        publisher.close()
        code = ingest.terminate()
    assert code == 0, ingest.log()
    log = ingest.log()
    assert f"writing to influxdb v2 {victoria_metrics.url} org=citypulse bucket=citypulse" in log
    assert stored() == expected
