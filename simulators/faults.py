"""Bad input on purpose: message-level faults, each with the reject reason it must cause.

The pipeline's promise is that each kind of bad input gets its own dead-letter
reason and never costs a good reading. To test that promise exactly, every fault
here knows the reason code it must produce, and the simulator counts them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

from processors.reasons import Reason


class FaultScope(StrEnum):
    READING = "reading"
    """Spoils one reading; its neighbours in a batch stay valid."""
    MESSAGE = "message"
    """Spoils the whole message, so every reading in it is lost."""


@dataclass(frozen=True, slots=True)
class MessageFault:
    name: str
    reason: Reason
    scope: FaultScope
    single_only: bool = False
    """Only meaningful for one-reading topics (the topic names the device)."""
    description: str = ""


MESSAGE_FAULTS: Mapping[str, MessageFault] = {
    f.name: f
    for f in (
        MessageFault(
            "malformed_json",
            Reason.MALFORMED_JSON,
            FaultScope.MESSAGE,
            description="payload cut short",
        ),
        MessageFault(
            "oversized",
            Reason.PAYLOAD_TOO_LARGE,
            FaultScope.MESSAGE,
            description="payload over the size limit",
        ),
        MessageFault(
            "wrong_type",
            Reason.WRONG_TYPE,
            FaultScope.READING,
            description="a number sent as a string",
        ),
        MessageFault(
            "not_finite",
            Reason.NOT_FINITE,
            FaultScope.READING,
            description="NaN or Infinity as a value",
        ),
        MessageFault(
            "out_of_range",
            Reason.OUT_OF_RANGE,
            FaultScope.READING,
            description="a value beyond the sensor's range",
        ),
        MessageFault(
            "missing_timestamp", Reason.MISSING_TIMESTAMP, FaultScope.READING, description="no 'ts'"
        ),
        MessageFault(
            "unknown_device",
            Reason.UNKNOWN_DEVICE,
            FaultScope.READING,
            description="a device not in the registry",
        ),
        MessageFault(
            "device_mismatch",
            Reason.DEVICE_MISMATCH,
            FaultScope.READING,
            single_only=True,
            description="payload names another device than the topic",
        ),
    )
}


def parse_faults(spec: str) -> tuple[str, ...]:
    """``"all"``, ``""`` or a comma-separated list of fault names, checked."""
    spec = spec.strip()
    if not spec or spec == "none":
        return ()
    if spec == "all":
        return tuple(MESSAGE_FAULTS)
    names = tuple(dict.fromkeys(s.strip() for s in spec.split(",") if s.strip()))
    unknown = [n for n in names if n not in MESSAGE_FAULTS]
    if unknown:
        raise ValueError(
            f"unknown fault(s) {', '.join(unknown)}; choose from: all, {', '.join(MESSAGE_FAULTS)}"
        )
    return names
