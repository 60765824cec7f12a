"""Dead letters: rejected input, kept whole enough for the device team to fix the sender.

Each reject becomes (1) an event in the store, durable with the readings of the
same cycle, for the pipeline-health dashboard, and (2) a message on
``{prefix}/deadletter/{reason}`` for live subscribers. The stored copy is the
record; the MQTT copy is a notification.
"""

from __future__ import annotations

import base64

import orjson

from processors.batch import Event
from processors.reasons import HELP
from processors.timestamps import format_rfc3339
from processors.topics import DEFAULT_PREFIX
from processors.validate import Reject

MEASUREMENT = "deadletters"


def _payload_text(payload: bytes) -> tuple[str, str]:
    """The payload as text if it is printable UTF-8, else base64, with its encoding."""
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError:
        return base64.b64encode(payload).decode("ascii"), "base64"
    if any(ord(c) < 32 and c not in "\t\n\r" for c in text):
        return base64.b64encode(payload).decode("ascii"), "base64"
    return text, "utf-8"


def deadletter_event(reject: Reject, now_ms: int) -> Event:
    """The stored form: reason and kind are tags (bounded), the rest are fields."""
    text, encoding = _payload_text(reject.payload)
    return Event(
        measurement=MEASUREMENT,
        ts_ms=now_ms,
        tags={"reason": str(reject.reason), "kind": reject.kind or "unknown"},
        fields={
            "device": reject.device or "",
            "topic": reject.topic,
            "detail": reject.detail,
            "payload": text,
            "payload_encoding": encoding,
        },
    )


def deadletter_message(reject: Reject, now_ms: int, prefix: str = DEFAULT_PREFIX) -> bytes:
    """The MQTT form: everything needed to find and fix the sender, as one JSON object.

    ``prefix`` is the service's topic prefix, which the advice names where it gives a topic.
    """
    text, encoding = _payload_text(reject.payload)
    return orjson.dumps(
        {
            "reason": str(reject.reason),
            "detail": reject.detail,
            "help": HELP[reject.reason].replace("{prefix}", prefix),
            "kind": reject.kind,
            "device": reject.device,
            "topic": reject.topic,
            "payload": text,
            "payload_encoding": encoding,
            "rejected_at": format_rfc3339(now_ms),
        }
    )
