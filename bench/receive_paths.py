"""Four ways to receive a QoS 1 backlog and acknowledge each message only after a durable write.

Run: ``python bench/receive_paths.py [--devices 10000] [--span 40m] [--rounds 1]``

The same backlog (``citypulse simulate --output``, single readings) is queued at a private Mosquitto
for each receiver's persistent session, and each receiver drains it alone in a fresh process. Every
receiver takes messages in batches of at most 5,000, appends the batch's payloads to a file and
fsyncs it (the simulated durable write: the same for all), and only then acknowledges the batch's
messages. Afterwards the session is checked to hold nothing: every message was acknowledged.

1. **citypulse's receive path**, ``ingest.mqtt_source.MqttSource`` on ``ingest.mqtt_link``: one
   thread reads what the socket has, cuts every PUBLISH packet of the read at once into columns; the
   main thread takes batches and acknowledges each with one block of PUBACKs after the write.
2. **paho manual ack** (citypulse's receive path before the lean link): paho's network thread queues
   each delivery, the main thread takes batches and acknowledges with ``client.ack`` after the write.
   Once on MQTT 5, once on MQTT 3.1.1.
3. **gmqtt, MQTT 5, optimistic_acknowledgement=False** - asyncio; each message's ``on_message``
   awaits the write of its batch, and gmqtt sends the PUBACK when that coroutine returns.
4. **lean socket receiver** - one thread, one blocking socket, the simulator's own MQTT packet
   splitter (``simulators.publisher``): read what the socket has, cut it into PUBLISH packets,
   write the batch, send all its PUBACKs in one ``sendall``.

It prints messages/s by the wall clock, CPU seconds per 10,000 messages and peak RSS per receiver.
The machine may be shared: compare the receivers within one run (``--rounds`` alternates them).
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import os
import select
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, BinaryIO, cast

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench._e2e_data import forget_session, make_backlog, make_session, publish_file  # noqa: E402
from bench._servers import Mosquitto, cpu_and_peak, running  # noqa: E402

TOPIC = "citypulse/v1/readings/+/+"
BATCH = 5000
RECEIVE_MAXIMUM = 10_000
SESSION_EXPIRY_S = 7 * 24 * 3600


def durable_write(out: BinaryIO, payloads: list[bytes]) -> None:
    """The simulated durable write every receiver makes before acknowledging a batch."""
    out.write(b"\n".join(payloads) + b"\n")
    out.flush()
    os.fsync(out.fileno())


# --- 1. paho, manual acknowledgement ------------------------------------------------------------------
def receive_paho(port: int, client_id: str, expected: int, out: BinaryIO, protocol: str = "5") -> int:
    """paho's network thread queues each message; the main thread takes batches and acks after the write."""
    import queue

    import paho.mqtt.client as mqtt

    from ingest.mqtt_client import disconnect, make_client, start
    from processors.endpoint import ConnectOptions, MqttEndpoint, Protocol

    options = ConnectOptions(
        MqttEndpoint(host="127.0.0.1", port=port), client_id, protocol=cast(Protocol, protocol),
        persistent_session=True, session_expiry_s=SESSION_EXPIRY_S, receive_maximum=RECEIVE_MAXIMUM,
        manual_ack=True,
    )  # fmt: skip
    received: queue.Queue[tuple[bytes, int]] = queue.Queue(maxsize=RECEIVE_MAXIMUM)
    connected = threading.Event()
    client = make_client(options)

    def on_connect(c: mqtt.Client, *_: Any) -> None:
        c.subscribe(TOPIC, qos=1)
        connected.set()

    client.on_connect = on_connect
    client.on_message = lambda c, u, m: received.put((bytes(m.payload), m.mid))
    start(client, options, connected, 15)
    done = 0
    while done < expected:
        try:
            batch = [received.get(timeout=5.0)]
        except queue.Empty:
            break
        deadline = time.monotonic() + 0.5
        while len(batch) < BATCH and time.monotonic() < deadline:
            try:
                batch.append(received.get(timeout=0.05))
            except queue.Empty:
                break
        durable_write(out, [payload for payload, _ in batch])
        for _, mid in batch:
            client.ack(mid, 1)
        done += len(batch)
    disconnect(client)
    return done


# --- 1b. citypulse's receive path: the lean link (ingest.mqtt_source.MqttSource) ---------------------
def receive_citypulse(port: int, client_id: str, expected: int, out: BinaryIO) -> int:
    from ingest.mqtt_source import MqttSource
    from processors.endpoint import ConnectOptions, MqttEndpoint

    source = MqttSource(
        ConnectOptions(
            MqttEndpoint(host="127.0.0.1", port=port), client_id, session_expiry_s=SESSION_EXPIRY_S,
            receive_maximum=RECEIVE_MAXIMUM,
        ),
        [TOPIC],
        max_pending=RECEIVE_MAXIMUM,
    )  # fmt: skip
    source.start(15)
    received = 0
    while received < expected:
        taken = source.take(BATCH, linger_s=0.5, wait_s=5.0)
        if not len(taken):
            break
        durable_write(out, taken.messages.payloads)
        source.ack(taken)
        received += len(taken)
    source.stop()
    return received


# --- 2. gmqtt, MQTT 5, PUBACK when the async on_message returns --------------------------------------
def receive_gmqtt(port: int, client_id: str, expected: int, out: BinaryIO) -> int:
    import gmqtt  # type: ignore[import-untyped]

    async def main() -> int:
        loop = asyncio.get_running_loop()
        batch: list[bytes] = []
        written = loop.create_future()
        received = 0
        done = asyncio.Event()
        wake = asyncio.Event()

        async def on_message(client: Any, topic: str, payload: bytes, qos: int, properties: Any) -> int:
            nonlocal received
            batch.append(payload)
            mine = written
            wake.set()
            await mine
            received += 1
            if received >= expected:
                done.set()
            return 0  # success: gmqtt now sends the PUBACK

        async def writer() -> None:
            nonlocal batch, written
            while not done.is_set():
                await wake.wait()
                wake.clear()
                await asyncio.sleep(0)  # let the messages already read join this batch
                if not batch:
                    continue
                # All that is pending (at most the receive maximum): each message waits on its own batch.
                take, batch = batch, []
                finished, written = written, loop.create_future()
                await loop.run_in_executor(None, durable_write, out, take)
                finished.set_result(None)
                if batch:
                    wake.set()

        client = gmqtt.Client(
            client_id,
            clean_session=False,
            optimistic_acknowledgement=False,
            session_expiry_interval=SESSION_EXPIRY_S,
            receive_maximum=RECEIVE_MAXIMUM,
        )
        client.on_message = on_message
        task = asyncio.create_task(writer())
        await client.connect("127.0.0.1", port)
        client.subscribe(TOPIC, qos=1)
        try:
            await asyncio.wait_for(done.wait(), timeout=600)
        finally:
            task.cancel()
            await client.disconnect()
        return received

    return asyncio.run(main())


# --- 3. a lean socket receiver on the simulator's packet splitter ----------------------------------
def receive_lean(port: int, client_id: str, expected: int, out: BinaryIO) -> int:
    from processors.mqtt_wire import split_packet, string, varint

    sock = socket.create_connection(("127.0.0.1", port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    properties = b"\x11" + struct.pack("!I", SESSION_EXPIRY_S) + b"\x21" + struct.pack("!H", RECEIVE_MAXIMUM)
    body = string(b"MQTT") + bytes([5, 0x00]) + struct.pack("!H", 60)  # protocol 5, clean start off
    body += varint(len(properties)) + properties + string(client_id.encode())
    sock.sendall(b"\x10" + varint(len(body)) + body)
    subscribe = struct.pack("!H", 1) + b"\x00" + string(TOPIC.encode()) + b"\x01"
    sock.sendall(b"\x82" + varint(len(subscribe)) + subscribe)
    buffer = bytearray()
    offset = received = 0
    payloads: list[bytes] = []
    acks: list[bytes] = []
    while received < expected:
        chunk = sock.recv(1 << 20)
        if not chunk:
            raise ConnectionError("the broker closed the connection")
        buffer += chunk
        while (packet := split_packet(buffer, offset)) is not None:
            first, data, offset = packet
            if first & 0xF0 == 0x30:
                qos = (first >> 1) & 3
                topic_end = 2 + struct.unpack_from("!H", data)[0]
                position = topic_end
                if qos:
                    acks.append(b"\x40\x02" + data[position : position + 2])
                    position += 2
                length, shift = 0, 0
                while True:  # the properties' length (MQTT 5), a variable byte integer
                    byte = data[position]
                    position += 1
                    length |= (byte & 0x7F) << shift
                    shift += 7
                    if not byte & 0x80:
                        break
                payloads.append(data[position + length :])
        del buffer[:offset]
        offset = 0
        more = select.select([sock], [], [], 0)[0]
        if payloads and (len(payloads) >= BATCH or not more):
            durable_write(out, payloads)
            sock.sendall(b"".join(acks))
            received += len(payloads)
            payloads, acks = [], []
    sock.sendall(b"\xe0\x00")  # DISCONNECT; then wait for the broker to close, so no PUBACK is cut off
    sock.shutdown(socket.SHUT_WR)
    while sock.recv(1 << 16):
        pass
    sock.close()
    return received


def receive_paho_v311(port: int, client_id: str, expected: int, out: BinaryIO) -> int:
    """The same, on MQTT 3.1.1: paho builds no MQTT 5 ``Properties`` object per message."""
    return receive_paho(port, client_id, expected, out, protocol="3.1.1")


RECEIVERS = {
    "citypulse-mqtt-source": receive_citypulse,
    "paho-manual-ack": receive_paho,
    "paho-manual-ack-3.1.1": receive_paho_v311,
    "gmqtt-mqtt5": receive_gmqtt,
    "lean-socket": receive_lean,
}


def child(name: str, port: int, client_id: str, expected: int) -> None:
    """Run one receiver in this (fresh) process and print its figures as JSON."""
    with tempfile.TemporaryDirectory(prefix="receive-") as scratch, (Path(scratch) / "out").open("wb") as out:
        started = time.monotonic()
        cpu0 = time.process_time()
        received = RECEIVERS[name](port, client_id, expected, out)
        wall = time.monotonic() - started
        cpu = time.process_time() - cpu0
    # VmHWM, not ru_maxrss: Linux carries the parent's high-water mark into ru_maxrss over fork and exec.
    peak = cpu_and_peak(os.getpid())[1]
    print(json.dumps({"received": received, "wall_s": wall, "cpu_s": cpu, "peak_rss_mb": peak / 2**20}))


def left_in_session(url: str, port: int, client_id: str) -> int:
    """Messages the broker still delivers to the session (0 when every one was acknowledged)."""
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties

    count = 0

    def on_message(*args: object) -> None:
        nonlocal count
        count += 1

    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
    client.on_message = on_message
    props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
    props.SessionExpiryInterval = SESSION_EXPIRY_S
    client.connect("127.0.0.1", port, clean_start=False, properties=props)
    client.loop_start()
    time.sleep(1.0)
    client.disconnect()
    client.loop_stop()
    return count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--devices", type=int, default=10_000)
    parser.add_argument("--span", default="40m")
    parser.add_argument("--rounds", type=int, default=1, help="alternate the receivers this many times")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        name, port, client_id, expected = args.child
        child(name, int(port), client_id, int(expected))
        return
    receivers = list(RECEIVERS)
    left_out: dict[str, str] = {}
    if importlib.util.find_spec("gmqtt") is None:
        receivers.remove("gmqtt-mqtt5")
        left_out["gmqtt-mqtt5"] = "gmqtt is not installed (pip install gmqtt)"
    results: dict[str, list[dict[str, Any]]] = {name: [] for name in receivers}
    with tempfile.TemporaryDirectory(prefix="receive-paths-") as scratch:
        work = Path(scratch)
        broker = Mosquitto(work / "mosquitto")
        with running(broker):
            backlog = make_backlog(work, "singles", args.devices, args.span, 0, work / "devices.csv")
            print(f"backlog: {backlog.messages:,} single-reading messages", file=sys.stderr)
            for round_ in range(args.rounds):
                for name in receivers:
                    client_id = f"receive-{name}-{round_}"
                    make_session(broker.url, client_id, [TOPIC], v5=not name.endswith("3.1.1"))
                    publish_file(broker.url, backlog.path)
                    done = subprocess.run(
                        [sys.executable, __file__, "--child", name, str(broker.port), client_id,
                         str(backlog.messages)],
                        capture_output=True, text=True, timeout=900, check=False,
                    )  # fmt: skip
                    if done.returncode != 0:
                        raise RuntimeError(f"{name} failed: {done.stderr[-2000:]}")
                    figures = json.loads(done.stdout.strip().splitlines()[-1])
                    figures["left_unacknowledged"] = left_in_session(broker.url, broker.port, client_id)
                    forget_session(broker.url, client_id)
                    figures["msg_per_s"] = round(figures["received"] / figures["wall_s"])
                    figures["cpu_s_per_10k"] = round(figures["cpu_s"] / figures["received"] * 10_000, 3)
                    results[name].append(figures)
                    print(
                        f"{name:<22} {figures['msg_per_s']:>8,} msg/s  {figures['cpu_s_per_10k']:.3f} "
                        f"CPU-s/10k  {figures['peak_rss_mb']:.0f} MB peak  "
                        f"{figures['left_unacknowledged']} left unacknowledged",
                        file=sys.stderr,
                    )
    best = {name: max(r["msg_per_s"] for r in runs) for name, runs in results.items()}
    summary = {"messages": backlog.messages, "runs": results, "best_msg_per_s": best, "left_out": left_out}
    if args.json:
        print(json.dumps(summary))
    else:
        base = best["paho-manual-ack"]
        for name, rate in best.items():
            print(f"{name:<22} {rate:>8,} msg/s  {rate / base:.2f}x paho manual ack (MQTT 5)")
        for name, why in left_out.items():
            print(f"{name:<22} left out: {why}")


if __name__ == "__main__":
    main()
