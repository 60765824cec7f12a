"""Limits on the shape of what a client sends, checked before any path reads a message.

Everything a client controls is bounded: the payload's size (checked by the
paths), the topic's length, how deep the JSON nests, how many items an array
holds, how many fields a reading has and how long a string is. A message past
any of them is dead-lettered whole as ``over_limit``, once: a 256 KiB array of
empty objects does not become 80,000 dead letters, and no path spends time on
what it would refuse anyway.

Messages the plain path took are within every limit by construction and are
not looked at. Of the others, a small one costs a few ``bytes.count`` calls (at
most two brackets, few colons, shorter than the longest string allowed cannot
break a limit), and a gateway batch or backlog of flat readings a few more
(:meth:`Limits.flat`). Only what remains, hostile input mostly, is measured
exactly, with numpy over the payload's bytes: the unescaped quotes give each
string's length and where strings are, and depth, items and fields per object
are counted over what lies outside them.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from itertools import repeat

import numpy as np

from processors.topics import TopicScheme
from processors.validate.messages import RawMessage, ValidationPolicy


class Limits:
    """Screens a cycle's messages against a policy's shape limits."""

    def __init__(self, policy: ValidationPolicy, topics: TopicScheme) -> None:
        self.policy = policy
        # A registered device's topic is never too long, whatever the prefix.
        self.max_topic = max(policy.max_topic_bytes, len(topics.batch("x" * 16, "x" * 64)))

    def screen(self, messages: Sequence[RawMessage], indices: Iterable[int]) -> dict[int, str]:
        """The messages (of ``indices``) past a limit, by their place in the cycle, with what they broke.

        Payloads over ``max_payload_bytes`` are left to the paths, which dead-letter
        them as ``payload_too_large`` unread.
        """
        policy = self.policy
        over: dict[int, str] = {}
        quick = min(2, policy.max_json_depth)
        for i in indices:
            message = messages[i]
            topic = message.topic
            if len(topic) > self.max_topic:
                over[i] = f"topic is {len(topic)} characters; the limit is {self.max_topic}"
                continue
            payload = message.payload
            size = len(payload)
            if size > policy.max_payload_bytes or (
                size <= policy.max_string_bytes
                and payload.count(b"{") + payload.count(b"[") <= quick
                and (size < 4 * policy.max_fields or payload.count(b":") <= policy.max_fields)
            ):
                continue
            if self.flat(payload):
                continue
            broken = self.measure(payload)
            if broken is not None:
                over[i] = broken
        return over

    def flat(self, payload: bytes) -> bool:
        """True when ``payload`` is plainly within every limit: at most one array, objects that do
        not nest, few enough colons per object and commas in all, no object longer than a string may be.

        A few C-level passes over the bytes. Brackets, colons or quotes inside strings can
        only make it say False, never True wrongly: :meth:`measure` then decides exactly.
        """
        policy = self.policy
        if payload.count(b"[") > 1 or payload.count(b",") >= policy.max_batch_items:
            return False
        objects = payload.split(b"}")
        if max(map(bytes.count, objects, repeat(b"{"))) > 1:
            return False
        if max(map(bytes.count, objects, repeat(b":"))) > policy.max_fields:
            return False
        # A string is no longer than the object holding it: readings are a few hundred bytes.
        return max(map(len, objects)) <= policy.max_string_bytes

    def measure(self, payload: bytes) -> str | None:
        """What limit ``payload`` breaks, exactly; ``None`` if none (or if its quotes do not pair up,
        which only broken JSON does: the parser then rejects it as malformed)."""
        policy = self.policy
        raw = np.frombuffer(payload, dtype=np.uint8)
        n = raw.size
        # Unescaped quotes: those after an even run of backslashes.
        backslash = raw == _BACKSLASH
        position = np.arange(n)
        last_plain = np.maximum.accumulate(np.where(backslash, -1, position))
        quotes = np.flatnonzero(raw == _QUOTE)
        before = quotes - 1
        run = np.where(before >= 0, before - last_plain[np.maximum(before, 0)], 0)
        quotes = quotes[run % 2 == 0]
        if quotes.size % 2:
            return None
        opening, closing = quotes[0::2], quotes[1::2]
        if opening.size and int((closing - opening - 1).max()) > policy.max_string_bytes:
            return f"a string is longer than {policy.max_string_bytes} bytes"
        # Structure outside strings: +1 at each quote, so odd counts mark the inside of a string.
        inside = np.zeros(n + 1, dtype=np.int32)
        np.add.at(inside, quotes + 1, 1)
        outside = (np.cumsum(inside[:n]) % 2 == 0) & (raw != _QUOTE)
        opens = outside & ((raw == _LBRACKET) | (raw == _LBRACE))
        closes = outside & ((raw == _RBRACKET) | (raw == _RBRACE))
        if not opens.any():
            return None
        depth = np.cumsum(opens.astype(np.int32) - closes)
        deepest = int(depth.max())
        if deepest > policy.max_json_depth:
            return f"JSON nests {deepest} levels deep; the limit is {policy.max_json_depth}"
        level = depth - opens  # the depth of the innermost container each character is in
        first = np.flatnonzero(raw > 0x20)
        if first.size and raw[first[0]] == _LBRACKET:
            commas = int(np.count_nonzero(outside & (raw == _COMMA) & (level == 1)))
            items = commas + 1 if np.count_nonzero(level >= 1) > 1 else 0
            if items > policy.max_batch_items:
                return f"the array holds {items} items; the limit is {policy.max_batch_items}"
        colons = np.flatnonzero(outside & (raw == _COLON))
        if colons.size > policy.max_fields:
            objects = np.flatnonzero(opens & (raw == _LBRACE))
            # Each colon belongs to the innermost object opened before it at its own depth.
            colon_level, object_level = level[colons], depth[objects]
            most = 0
            for at in np.unique(colon_level).tolist():
                starts = objects[object_level == at]
                owners = np.searchsorted(starts, colons[colon_level == at], side="right") - 1
                counts = np.bincount(owners[owners >= 0])
                most = max(most, int(counts.max()) if counts.size else 0)
            if most > policy.max_fields:
                return f"a reading has {most} fields; the limit is {policy.max_fields}"
        return None


_QUOTE, _BACKSLASH, _COLON, _COMMA = ord('"'), ord("\\"), ord(":"), ord(",")
_LBRACKET, _RBRACKET, _LBRACE, _RBRACE = ord("["), ord("]"), ord("{"), ord("}")
