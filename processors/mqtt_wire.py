"""The MQTT 3.1.1/5 packets citypulse's own clients write and read, encoded and parsed in bulk.

Pure bytes, no socket, so both sides of the house use it: the simulator's publisher
(:mod:`simulators.publisher`) and the ingest service's receiver (``ingest/mqtt_link.py``).
Publishing: CONNECT, PUBLISH (thousands at a time, as one block of bytes), PINGREQ and
DISCONNECT out; CONNACK (with the MQTT 5 limits it announces), PUBACK (a read full of
them parsed at once), PINGRESP and DISCONNECT in. Receiving (cutting a read full of
PUBLISH packets into columns, SUBSCRIBE, PUBACKs for a whole cycle) is in
:mod:`processors.mqtt_inbound`.
"""

from __future__ import annotations

import array
import struct
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cache

PUBACK = 0x40
CONNACK = 0x20
DISCONNECT = 0xE0
PINGREQ = b"\xc0\x00"
DISCONNECT_PACKET = b"\xe0\x00"
U16 = struct.Struct("!H")
_HEAD2 = struct.Struct("!BBBH")
"""First byte, a two-byte remaining length and the topic length: the header of a typical PUBLISH."""
_PUBACK_BYTE = bytes((PUBACK,))


@cache
def _packet_ids() -> list[bytes]:
    """Every packet id as its two bytes, made on first use: the service, which never publishes in
    bulk, does not carry them (about 3 MB)."""
    return [i.to_bytes(2, "big") for i in range(65_536)]


CONNACK_V3 = {
    1: "the broker does not accept MQTT 3.1.1; try --protocol 5",
    2: "the broker rejected the client id; choose another with --client-id",
    3: "the broker is unavailable",
    4: "bad user name or password: check the credentials in the MQTT URL",
    5: "not authorised: check the user's rights on the broker",
}
REASONS_V5 = {
    0x80: "unspecified error",
    0x81: "malformed packet",
    0x82: "protocol error",
    0x83: "implementation specific error",
    0x84: "unsupported protocol version; try --protocol 3.1.1",
    0x85: "client identifier not valid; choose another with --client-id",
    0x86: "bad user name or password: check the credentials in the MQTT URL",
    0x87: "not authorised: check the user's rights on the broker",
    0x88: "server unavailable",
    0x89: "server busy",
    0x8A: "banned",
    0x8E: "session taken over: another client connected with the same client id",
    0x90: "topic name invalid",
    0x93: "receive maximum exceeded",
    0x95: "packet too large",
    0x97: "quota exceeded",
    0x99: "payload format invalid",
    0x9C: "use another server",
    0x9D: "server moved",
}
FATAL_CONNACK = frozenset({4, 5, 0x86, 0x87, 0x84, 0x85, 1, 2, 0x8A})
"""CONNACK codes that trying again cannot cure (credentials, rights, protocol, client id, ban)."""


@dataclass(frozen=True)
class BrokerLimits:
    receive_maximum: int = 65_535
    maximum_packet_size: int | None = None
    maximum_qos: int = 1
    server_keepalive_s: int | None = None


@dataclass(frozen=True)
class Block:
    """PUBLISH packets encoded back to back, ready to be written with one call."""

    data: bytes
    count: int
    """Packets in the block."""
    ids: list[int]
    """Their packet ids (QoS 1), in order."""
    lengths: list[int]
    """Each packet's length in bytes, in order."""
    too_large: int
    """Messages left out: their packets would exceed the broker's maximum packet size."""


def publish_block(
    messages: Sequence[tuple[str, bytes]] | Sequence[tuple[int, str, bytes]],
    ids: list[int],
    qos: int,
    v5: bool,
    maximum_packet_size: int | None,
) -> Block:
    """``messages`` (``(topic, payload)``, or ``(send_ms, topic, payload)``) as one block of PUBLISH
    packets; ``ids`` are their packet ids at QoS 1."""
    properties = b"\x00" if v5 else b""
    extra = len(properties) + (2 if qos else 0)
    first = 0x32 if qos else 0x30
    names = [message[-2].encode() for message in messages]
    payloads = [message[-1] for message in messages]
    sizes = [2 + len(name) + extra + len(payload) for name, payload in zip(names, payloads, strict=True)]
    heads = [
        _HEAD2.pack(first, (size & 0x7F) | 0x80, size >> 7, len(name))
        if 128 <= size < 16_384
        else bytes((first,)) + varint(size) + U16.pack(len(name))
        for size, name in zip(sizes, names, strict=True)
    ]
    lengths = [len(head) - 2 + size for head, size in zip(heads, sizes, strict=True)]
    limit = maximum_packet_size
    too_large = 0
    if limit is not None and max(lengths) > limit:
        keep = [i for i, length in enumerate(lengths) if length <= limit]
        too_large = len(lengths) - len(keep)
        names = [names[i] for i in keep]
        payloads = [payloads[i] for i in keep]
        heads = [heads[i] for i in keep]
        lengths = [lengths[i] for i in keep]
        ids = [ids[i] for i in keep] if qos else ids
    # One % formatting builds the whole block: every packet's parts interleaved in one flat list.
    width = 4 if qos else 3
    parts: list[bytes] = [b""] * (width * len(names))
    parts[0::width] = heads
    parts[1::width] = names
    if qos:
        packet_ids = _packet_ids()
        parts[2::width] = [packet_ids[i] for i in ids]
    parts[width - 1 :: width] = payloads
    layout = (b"%b%b%b" if qos else b"%b%b") + properties + b"%b"
    block = (layout * len(names)) % tuple(parts) if names else b""
    return Block(block, len(names), ids, lengths, too_large)


@dataclass(frozen=True)
class Will:
    """The message the broker publishes for a client that vanishes without a DISCONNECT."""

    topic: str
    payload: bytes
    qos: int = 1
    retain: bool = True


def connect_packet(
    client_id: str,
    username: str | None,
    password: str | None,
    keepalive_s: int,
    v5: bool,
    *,
    clean_start: bool = True,
    session_expiry_s: int | None = None,
    receive_maximum: int | None = None,
    will: Will | None = None,
) -> bytes:
    """A CONNECT packet; by default a clean start (a publisher keeps no subscriptions worth resuming).

    A receiver keeps its session instead (``clean_start=False``): on MQTT 5 for
    ``session_expiry_s`` after a disconnect, on 3.1.1 until the broker forgets it.
    """
    flags = 0x02 if clean_start else 0x00
    payload = string(client_id.encode())
    if will is not None:
        flags |= 0x04 | (will.qos << 3) | (0x20 if will.retain else 0)
        payload += (b"\x00" if v5 else b"") + string(will.topic.encode()) + string(will.payload)
    if username is not None:
        flags |= 0x80
        payload += string(username.encode())
        if password is not None:
            flags |= 0x40
            payload += string(password.encode())
    header = string(b"MQTT") + bytes([5 if v5 else 4, flags]) + U16.pack(keepalive_s)
    if v5:
        properties = b""
        if session_expiry_s:
            properties += b"\x11" + struct.pack("!I", session_expiry_s)
        if receive_maximum is not None:
            properties += b"\x21" + U16.pack(receive_maximum)
        header += varint(len(properties)) + properties
    body = header + payload
    return b"\x10" + varint(len(body)) + body


class MalformedPacketError(ConnectionError):
    """The broker sent bytes that are not a valid MQTT packet: the connection must be dropped."""


def read_varint(data: bytes | bytearray, at: int) -> tuple[int, int] | None:
    """(value, offset after it) of the variable byte integer at ``at``; None if it is not all there yet."""
    value, shift = 0, 0
    while at < len(data):
        byte = data[at]
        at += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, at
        shift += 7
        if shift > 21:
            raise MalformedPacketError("a variable byte integer longer than four bytes")
    return None


def varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte = n % 128
        n //= 128
        out.append(byte | 0x80 if n else byte)
        if not n:
            return bytes(out)


def string(data: bytes) -> bytes:
    return U16.pack(len(data)) + data


def _pubacks(data: bytearray) -> tuple[list[int], bytes] | None:
    """All of ``data`` as PUBACKs (the common case), parsed in bulk: their packet ids and reason
    codes. None if ``data`` holds anything else."""
    for width in (4, 5):
        count = len(data) // width
        if count == 0 or len(data) % width:
            continue
        if data[0::width] == _PUBACK_BYTE * count and data[1::width] == bytes((width - 2,)) * count:
            pairs = bytearray(2 * count)
            pairs[0::2] = data[2::width]
            pairs[1::2] = data[3::width]
            ids = array.array("H", pairs)
            if sys.byteorder == "little":
                ids.byteswap()
            return ids.tolist(), bytes(data[4::width]) if width == 5 else bytes(count)
    return None


def connack(kind: int, body: bytes, v5: bool) -> tuple[int, str, BrokerLimits]:
    """A CONNACK's reason code, why the broker refused (if it did) and the limits it announced.

    ``kind`` and ``body`` are the packet's first byte and body (:func:`split_packet`).
    """
    if kind & 0xF0 != CONNACK or len(body) < 2:
        raise ConnectionError(f"expected CONNACK, got packet type {kind >> 4}")
    code = body[1]
    if code:
        why = REASONS_V5.get(code, f"reason code {code:#x}") if v5 else CONNACK_V3.get(code, str(code))
        return code, why, BrokerLimits()
    return code, "", connack_limits(body[2:]) if v5 else BrokerLimits()


def session_present(body: bytes) -> bool:
    """Whether a successful CONNACK (its body) says the broker still had the client's session."""
    return bool(body[0] & 0x01)


def take_acks(incoming: bytearray) -> tuple[list[int], bytes]:
    """The PUBACKs among the complete packets at the start of ``incoming`` (which loses them):
    their packet ids and reason codes. A DISCONNECT from the broker raises ConnectionError."""
    bulk = _pubacks(incoming)
    if bulk is not None:
        incoming.clear()
        return bulk
    # Anything else, or a packet split across reads: one packet at a time.
    acked: list[tuple[int, int]] = []
    offset = 0
    while (parsed := split_packet(incoming, offset)) is not None:
        kind, body, offset = parsed
        packet_type = kind & 0xF0
        if packet_type == PUBACK:
            acked.append((U16.unpack_from(body)[0], body[2] if len(body) > 2 else 0))
        elif packet_type == DISCONNECT:
            code = body[0] if body else 0
            raise ConnectionError(f"the broker disconnected us: {REASONS_V5.get(code, hex(code))}")
    del incoming[:offset]
    return [i for i, _ in acked], bytes(c for _, c in acked)


def resend(unacked: Iterable[tuple[int, tuple[bytes, int, int]]], queued: Iterable[bytes]) -> bytes:
    """Every unacknowledged QoS 1 packet again, in order, as one block; each is ``(packet id,
    (block, start, end))``. Those written before carry the DUP flag: all but the ones still
    in a ``queued`` block."""
    never_sent = {_packet_id(p) for block in queued for p in _packets(block)}
    again = [
        block[start:end] if i in never_sent else b"\x3a" + block[start + 1 : end]
        for i, (block, start, end) in unacked
    ]
    return b"".join(again)


def _packets(block: bytes) -> list[bytes]:
    """The packets of a block (on reconnects only)."""
    found = []
    offset = 0
    while (parsed := split_packet(block, offset)) is not None:
        found.append(block[offset : parsed[2]])
        offset = parsed[2]
    return found


def _packet_id(packet: bytes) -> int:
    """The packet id of a QoS 1 PUBLISH packet."""
    position = 1
    while packet[position] & 0x80:
        position += 1
    topic_length = U16.unpack_from(packet, position + 1)[0]
    found: int = U16.unpack_from(packet, position + 3 + topic_length)[0]
    return found


def split_packet(data: bytes | bytearray, offset: int = 0) -> tuple[int, bytes, int] | None:
    """(first byte, body, next offset) of the packet at ``offset``, or None if incomplete."""
    if len(data) - offset < 2:
        return None
    read = read_varint(data, offset + 1)
    if read is None:
        return None
    length, position = read
    end = position + length
    if end > len(data):
        return None
    return data[offset], bytes(data[position:end]), end


def connack_limits(properties: bytes) -> BrokerLimits:
    """Receive Maximum, Maximum Packet Size, Maximum QoS and Server Keep Alive from CONNACK properties."""
    if not properties:
        return BrokerLimits()
    read = read_varint(properties, 0)
    if read is None:
        raise MalformedPacketError("CONNACK properties shorter than their own length")
    length, used = read
    data = properties[used : used + length]
    values: dict[int, int] = {}
    i = 0
    while i < len(data):
        prop = data[i]
        i += 1
        if prop in (0x24, 0x25, 0x28, 0x29, 0x2A):
            values[prop] = data[i]
            i += 1
        elif prop in (0x21, 0x22, 0x13):
            values[prop] = U16.unpack_from(data, i)[0]
            i += 2
        elif prop in (0x11, 0x27):
            values[prop] = struct.unpack_from("!I", data, i)[0]
            i += 4
        elif prop in (0x12, 0x15, 0x16, 0x1A, 0x1C, 0x1F):
            i += 2 + U16.unpack_from(data, i)[0]
        elif prop == 0x26:
            i += 2 + U16.unpack_from(data, i)[0]
            i += 2 + U16.unpack_from(data, i)[0]
        else:
            break
    return BrokerLimits(
        receive_maximum=values.get(0x21, 65_535),
        maximum_packet_size=values.get(0x27),
        maximum_qos=values.get(0x24, 1),
        server_keepalive_s=values.get(0x13),
    )
