"""Cutting PUBLISH packets in bulk: whatever the read boundaries, every message comes out once, intact."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from processors.mqtt_inbound import (
    MalformedPacketError,
    as_duplicate,
    cut,
    pubacks,
    publish_packet,
    suback_refusals,
    subscribe_packet,
)
from processors.mqtt_wire import Will, connect_packet, publish_block, split_packet, varint

topics = st.text(
    alphabet=st.characters(exclude_categories=["Cs"], exclude_characters="\x00"), min_size=1, max_size=40
)
messages = st.lists(st.tuples(topics, st.binary(max_size=300)), min_size=1, max_size=40)


def cut_in_reads(data: bytes, reads: list[int], v5: bool) -> tuple[list[str], list[bytes], list[bytes]]:
    """What a receiver gets reading ``data`` in pieces of the given sizes (the rest in one piece)."""
    got_topics: list[str] = []
    got_payloads: list[bytes] = []
    got_ids: list[bytes] = []
    buffer = b""
    at = 0
    for size in [*reads, len(data)]:
        buffer += data[at : at + size]
        at += size
        found = cut(buffer, v5)
        got_topics += found.topics
        got_payloads += found.payloads
        got_ids += found.packet_ids
        buffer = buffer[found.used :]
    assert not buffer, "nothing left over once every byte arrived"
    return got_topics, got_payloads, got_ids


@settings(max_examples=200, deadline=None)
@given(messages, st.lists(st.integers(0, 700), max_size=8), st.sampled_from([0, 1]), st.booleans())
def test_any_split_of_a_stream_gives_every_message_once(
    sent: list[tuple[str, bytes]], reads: list[int], qos: int, v5: bool
) -> None:
    ids = list(range(1, len(sent) + 1))
    block = publish_block(sent, ids, qos, v5, None).data
    got_topics, got_payloads, got_ids = cut_in_reads(block, reads, v5)
    assert got_topics == [t for t, _ in sent]
    assert got_payloads == [p for _, p in sent]
    assert got_ids == ([i.to_bytes(2, "big") for i in ids] if qos else [b""] * len(sent))


def test_a_read_is_cut_no_further_than_asked() -> None:
    block = publish_block([("a", b"1"), ("b", b"2"), ("c", b"3")], [1, 2, 3], 1, True, None).data
    first = cut(block, v5=True, most=2)
    assert first.payloads == [b"1", b"2"]
    rest = cut(block[first.used :], v5=True, most=2)
    assert rest.payloads == [b"3"]
    assert first.used + rest.used == len(block)
    assert cut(block, v5=True, most=0).used == 0


def test_other_packets_between_publishes_are_kept_whole_in_order() -> None:
    first = publish_packet("a/b", b"one", 7, 1, False, v5=True)
    second = publish_packet("a/c", b"two", 0, 0, False, v5=True)
    data = first + b"\x40\x02\x00\x09" + b"\xd0\x00" + second
    found = cut(data, v5=True)
    assert found.topics == ["a/b", "a/c"]
    assert found.payloads == [b"one", b"two"]
    assert found.packet_ids == [b"\x00\x07", b""]
    assert found.others == [(0x40, b"\x00\x09"), (0xD0, b"")]
    assert found.used == len(data)


def test_properties_are_skipped_and_a_redelivery_is_counted() -> None:
    properties = b"\x01\x01" + b"\x26" + b"\x00\x01k\x00\x01v"  # payload format, one user property
    body = b"\x00\x03a/b" + b"\x00\x05" + varint(len(properties)) + properties + b"{}"
    packet = b"\x3a" + varint(len(body)) + body  # QoS 1 with DUP
    found = cut(packet, v5=True)
    assert (found.topics, found.payloads, found.redelivered) == (["a/b"], [b"{}"], 1)


def test_long_packets_and_lengths_cut_off_inside_their_own_bytes() -> None:
    big = publish_packet("big", b"x" * 3_000_000, 1, 1, False, v5=False)  # a four-byte length
    for end in (1, 2, 3, 4, 5, len(big) - 1):
        assert cut(big[:end], v5=False).used == 0
    assert cut(big, v5=False).payloads == [b"x" * 3_000_000]


def test_a_topic_that_is_not_utf8_is_decoded_with_replacements() -> None:
    packet = b"\x30" + varint(2 + 3 + 2) + b"\x00\x03a\xffb" + b"{}"
    assert cut(packet, v5=False).topics == ["a\ufffdb"]


def test_nonsense_is_refused() -> None:
    with pytest.raises(MalformedPacketError):
        cut(b"\x30\xff\xff\xff\xff\x01", v5=False)
    with pytest.raises(MalformedPacketError):
        cut(b"\x30\x01\x00", v5=False)


def test_pubacks_cover_only_qos1_messages() -> None:
    assert pubacks([b"", b""]) == b""
    block = pubacks([b"\x00\x01", b"", b"\x00\x02"])
    assert [split_packet(block, at) for at in (0, 4)] == [(0x40, b"\x00\x01", 4), (0x40, b"\x00\x02", 8)]


def test_subscribe_connect_and_duplicate() -> None:
    kind, body, _ = split_packet(subscribe_packet(5, ["$share/g/a/#", "b"], 1, v5=True)) or (0, b"", 0)
    assert kind == 0x82
    assert body == b"\x00\x05\x00" + b"\x00\x0c$share/g/a/#\x01" + b"\x00\x01b\x01"
    assert suback_refusals(b"\x00\x05\x00\x01\x80", ["a", "b"], v5=True) == ["b: unspecified error"]
    connect = connect_packet(
        "ingest", "user", "pw", 30, True, clean_start=False, session_expiry_s=60, receive_maximum=100,
        will=Will("s/ingest", b"offline"),
    )  # fmt: skip
    kind, body, _ = split_packet(connect) or (0, b"", 0)
    assert kind == 0x10
    assert body[7] == 0x80 | 0x40 | 0x20 | 0x08 | 0x04, (
        "user, password, will retained at QoS 1, no clean start"
    )
    assert b"\x11\x00\x00\x00\x3c\x21\x00\x64" in body
    assert body.endswith(b"\x00\x08s/ingest\x00\x07offline\x00\x04user\x00\x02pw")
    assert as_duplicate(publish_packet("t", b"", 1, 1, False, v5=False))[0] == 0x3A
