"""The bridge people write first: paho callback -> influxdb-client ``Point`` -> one synchronous write each.

Run: ``python bench/naive_bridge.py MQTT_URL INFLUX_URL DATABASE CLIENT_ID``

It resumes a persistent MQTT 3.1.1 session (clean session off) subscribed at QoS 1 to single
readings, and for each message builds an ``influxdb_client.Point`` (measurement = kind, tag
``device``, every number a float field, the reading's timestamp) and writes it before the callback
returns; paho sends the PUBACK after the callback, so each message is acknowledged after its write.

InfluxDB 1.6 has no ``/api/v2/write`` (it arrived in 1.8), so influxdb-client's ``WriteApi`` cannot
talk to it; the Point's line protocol (``Point.to_line_protocol()``) is POSTed to the v1 ``/write``
endpoint over one kept-alive HTTP connection instead, which is what the client's v1.8 compatibility
path would send. Messages it cannot read are skipped (and counted on stderr at exit).
"""

from __future__ import annotations

import http.client
import signal
import sys
import threading
import urllib.parse
from datetime import datetime
from typing import Any

import orjson
import paho.mqtt.client as mqtt
from influxdb_client.client.write.point import Point
from influxdb_client.domain.write_precision import WritePrecision
from paho.mqtt.enums import CallbackAPIVersion


def timestamp_ms(value: Any) -> int:
    """RFC 3339 strings and epoch seconds or milliseconds, as devices send them."""
    if isinstance(value, str):
        return int(datetime.fromisoformat(value).timestamp() * 1000)
    number = float(value)
    return int(number if number >= 1e11 else number * 1000)


class Bridge:
    def __init__(self, influx_url: str, database: str) -> None:
        parts = urllib.parse.urlsplit(influx_url)
        self.connection = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port or 8086)
        self.path = "/write?" + urllib.parse.urlencode({"db": database, "precision": "ms"})
        self.skipped = 0

    def on_message(self, client: mqtt.Client, userdata: object, msg: mqtt.MQTTMessage) -> None:
        try:
            reading = orjson.loads(msg.payload)
            point = Point(msg.topic.split("/")[3])
            point.tag("device", reading["device"])
            for name, value in reading.items():
                if isinstance(value, int | float) and not isinstance(value, bool):
                    point.field(name, float(value))
            point.time(timestamp_ms(reading["ts"]), WritePrecision.MS)
            self.write(point.to_line_protocol().encode())
        except Exception:  # one bad message must not stop the bridge (nor make paho retry it forever)
            self.skipped += 1

    def write(self, body: bytes) -> None:
        for _ in range(3):
            try:
                self.connection.request("POST", self.path, body)
                reply = self.connection.getresponse()
                reply.read()
                if reply.status == 204:
                    return
            except (OSError, http.client.HTTPException):
                self.connection.close()
        raise RuntimeError("InfluxDB refused a write three times")


def main() -> None:
    mqtt_url, influx_url, database, client_id = sys.argv[1:5]
    broker = urllib.parse.urlsplit(mqtt_url)
    bridge = Bridge(influx_url, database)
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=False)
    client.on_message = bridge.on_message

    def on_connect(c: mqtt.Client, *args: object) -> None:
        c.subscribe("citypulse/v1/readings/+/+", qos=1)
        print("naive bridge: connected", file=sys.stderr, flush=True)

    client.on_connect = on_connect
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *args: stop.set())
    client.connect(broker.hostname or "127.0.0.1", broker.port or 1883)
    client.loop_start()
    stop.wait()
    client.disconnect()
    client.loop_stop()
    print(f"naive bridge: {bridge.skipped} messages skipped", file=sys.stderr)


if __name__ == "__main__":
    main()
