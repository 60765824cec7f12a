"""The MQTT 3.1.1/5 packets a receiving client handles, cut and built in bulk.

A broker draining a backlog sends PUBLISH packets back to back; one read of the
socket holds hundreds of them. :func:`cut` takes a whole read apart in one pass
into columns (topics, payloads, packet ids) with no object per message beyond
the payload's own bytes, and :func:`pubacks` acknowledges any number of them with
one block of bytes. The rest is what a subscriber needs around that: SUBSCRIBE
and its SUBACK, a single PUBLISH (dead letters, status), PINGREQ, DISCONNECT.

Nothing here touches a socket: ``ingest/mqtt_link.py`` does.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from processors.mqtt_wire import (
    DISCONNECT_PACKET,
    PINGREQ,
    REASONS_V5,
    U16,
    MalformedPacketError,
    read_varint,
    string,
    varint,
)

__all__ = [
    "DISCONNECT_PACKET",
    "PINGREQ",
    "Cut",
    "MalformedPacketError",
    "as_duplicate",
    "cut",
    "disconnect_reason",
    "pubacks",
    "publish_packet",
    "suback_refusals",
    "subscribe_packet",
]

PUBLISH = 0x30
PUBACK = 0x40
SUBACK = 0x90
PINGRESP = 0xD0
DISCONNECT = 0xE0
_PUBACK_HEAD = b"\x40\x02"


@dataclass(slots=True)
class Cut:
    """The complete packets at the start of a read, as columns.

    PUBLISH packets become ``topics``, ``payloads`` and ``packet_ids`` (the two
    bytes of each QoS 1 message's id, ``b""`` for QoS 0), in arrival order; any
    other packet is kept whole in ``others`` as (first byte, body). ``used`` is how
    many bytes the complete packets took; the rest is the start of a packet still
    on its way.
    """

    topics: list[str] = field(default_factory=list)
    payloads: list[bytes] = field(default_factory=list)
    packet_ids: list[bytes] = field(default_factory=list)
    others: list[tuple[int, bytes]] = field(default_factory=list)
    used: int = 0
    redelivered: int = 0
    """PUBLISH packets with the DUP flag: sent before on an earlier connection."""
    qos2: int = 0
    """PUBLISH packets at QoS 2, which a QoS 1 subscription never receives (a broker bug if any)."""


def cut(data: bytes, v5: bool, most: int = 1 << 62) -> Cut:
    """Every complete packet at the start of ``data``, up to ``most`` PUBLISH packets; see :class:`Cut`.

    What is left (``data[used:]``) is the start of the next packet, or, once ``most``
    PUBLISH packets were cut, everything after them: they are cut on a later call.

    >>> packet = b"\\x32\\x0c\\x00\\x03a/b\\x00\\x07\\x00{}x\\x00"
    >>> found = cut(packet + b"\\x32", v5=True)
    >>> found.topics, found.payloads, found.packet_ids, found.used
    (['a/b'], [b'{}x\\x00'], [b'\\x00\\x07'], 14)
    """
    try:
        return _cut(data, v5, most)
    except IndexError:  # a length pointing past the packet's end, past the read's end too
        raise MalformedPacketError("a packet shorter than its own header") from None


def _cut(data: bytes, v5: bool, most: int) -> Cut:
    found = Cut()
    raw_topics: list[bytes] = []
    topic = raw_topics.append
    payload = found.payloads.append
    packet_id = found.packet_ids.append
    end_of_data = len(data)
    position = 0
    while position + 2 <= end_of_data:
        first = data[position]
        byte = data[position + 1]
        if byte < 0x80:
            start = position + 2
            end = start + byte
        elif position + 2 < end_of_data and data[position + 2] < 0x80:  # two length bytes: most readings
            start = position + 3
            end = start + (byte & 0x7F) + (data[position + 2] << 7)
        else:
            start, end = _long_length(data, position)
            if start < 0:
                break
        if end > end_of_data:
            break
        if first & 0xF0 == PUBLISH:
            if most == 0:
                break
            most -= 1
            at = start + 2 + (data[start] << 8 | data[start + 1])
            topic(data[start + 2 : at])
            if first & 0x06:
                packet_id(data[at : at + 2])
                at += 2
                if first & 0x0E != 0x02:
                    found.redelivered += (first >> 3) & 1
                    found.qos2 += first & 0x06 == 0x04
            else:
                packet_id(b"")
            if v5:
                if data[at]:
                    at = _skip_properties(data, at)
                else:  # no properties: the usual case
                    at += 1
            if at > end:
                raise MalformedPacketError("a PUBLISH packet shorter than its own header")
            payload(data[at:end])
        else:
            found.others.append((first, data[start:end]))
        position = end
    found.used = position
    found.topics = _topics(raw_topics)
    return found


def _long_length(data: bytes, position: int) -> tuple[int, int]:
    """(start, end) of the body of the packet at ``position`` whose length takes 3-4 bytes;
    (-1, -1) if the length itself is not all there yet."""
    read = read_varint(data, position + 1)
    if read is None:
        return -1, -1
    length, at = read
    return at, at + length


def _skip_properties(data: bytes, at: int) -> int:
    """The offset after the properties (a variable byte integer length, then that many bytes) at ``at``."""
    read = read_varint(data, at)
    if read is None:
        raise MalformedPacketError("properties shorter than their own length")
    length, at = read
    return at + length


def _topics(raw: list[bytes]) -> list[str]:
    """Topic names as text, decoded together: one decode for a whole read.

    MQTT forbids U+0000 in a topic, so it can join and split them; a broker that lets
    one through, or a topic that is not UTF-8, is decoded one by one (invalid bytes
    replaced: such a topic is dead-lettered as ``bad_topic`` downstream).
    """
    if not raw:
        return []
    joined = b"\x00".join(raw).decode("utf-8", "replace").split("\x00")
    if len(joined) == len(raw):
        return joined
    return [topic.decode("utf-8", "replace") for topic in raw]


def pubacks(packet_ids: Sequence[bytes]) -> bytes:
    """One block of PUBACKs (success) for the QoS 1 messages among ``packet_ids`` (``b""``: QoS 0).

    MQTT 5 lets a success PUBACK leave out its reason code, so the same bytes serve both versions.

    >>> pubacks([b"\\x00\\x01", b"", b"\\x01\\x00"])
    b'@\\x02\\x00\\x01@\\x02\\x01\\x00'
    """
    ids = [i for i in packet_ids if i]
    if not ids:
        return b""
    return _PUBACK_HEAD + _PUBACK_HEAD.join(ids)


def subscribe_packet(packet_id: int, filters: Sequence[str], qos: int, v5: bool) -> bytes:
    """One SUBSCRIBE for every filter at ``qos`` (MQTT 5: no subscription options beyond QoS)."""
    body = U16.pack(packet_id) + (b"\x00" if v5 else b"")
    for topic in filters:
        body += string(topic.encode()) + bytes((qos,))
    return b"\x82" + varint(len(body)) + body


def suback_refusals(body: bytes, filters: Sequence[str], v5: bool) -> list[str]:
    """What a SUBACK refused: one line per filter the broker did not grant, saying why.

    >>> suback_refusals(b"\\x00\\x01\\x00\\x87", ["a/#"], v5=True)
    ["a/#: not authorised: check the user's rights on the broker"]
    """
    at = 2
    if v5:
        at = _skip_properties(body, at)
    codes = body[at:]
    refused = []
    for topic, code in zip(filters, codes, strict=False):
        if code >= 0x80:
            refused.append(f"{topic}: {REASONS_V5.get(code, f'reason code {code:#x}')}")
    return refused


def publish_packet(topic: str, payload: bytes, packet_id: int, qos: int, retain: bool, v5: bool) -> bytes:
    """One PUBLISH (QoS 0 or 1); the DUP flag is set later by :func:`as_duplicate` if it is sent again."""
    body = string(topic.encode()) + (U16.pack(packet_id) if qos else b"") + (b"\x00" if v5 else b"")
    first = PUBLISH | (qos << 1) | (1 if retain else 0)
    return bytes((first,)) + varint(len(body) + len(payload)) + body + payload


def as_duplicate(packet: bytes) -> bytes:
    """A QoS 1 PUBLISH packet with its DUP flag set, to be sent again after a reconnect."""
    return bytes((packet[0] | 0x08,)) + packet[1:]


def disconnect_reason(body: bytes) -> str:
    """Why the broker disconnected us (MQTT 5 DISCONNECT body; empty: normal)."""
    code = body[0] if body else 0
    return REASONS_V5.get(code, f"reason code {code:#x}") if code else "normal disconnection"
