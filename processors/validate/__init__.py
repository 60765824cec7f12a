"""Validation: raw MQTT messages in, columnar batches of good readings and rejects out.

One bad reading never costs a good one: each item of a batch message is judged on
its own, and every rejection carries a reason code, a detail and the original
payload (size-bounded) so the device team can fix the sender.

Three paths give the same answers:

- the **reference path** (:mod:`~processors.validate.reference`) validates one
  message, or one item of a batch, at a time with the kind's pydantic model. It is
  the definition of what is valid and produces every reason code and detail.
- the **column path** (:mod:`~processors.validate.column_path`, with the checks in
  :mod:`~processors.validate.columns`) parses a cycle's payloads with orjson and
  checks each kind's readings a column at a time.
- the **plain path** (:mod:`~processors.validate.plain`) decodes plainly valid
  readings with msgspec straight into the kind's fields, no dict per payload, and
  checks them in C.

The fast paths only ever *accept*, and only what the model would accept with the
same values; anything they are not sure of goes on to the next path and, in the
end, to the reference path, so reasons and details stay exact while the common
case costs a few microseconds instead of tens.

:class:`Validator` (:mod:`~processors.validate.validator`) takes a cycle of
messages through the paths and assembles what they accepted into batches,
dead-lettering duplicates; :mod:`~processors.validate.cycle` holds what a cycle
accumulates, and :mod:`~processors.validate.context` what the paths share from one
cycle to the next.
"""

from __future__ import annotations

from processors.validate.messages import (
    MAX_FIELD_NAMES,
    OTHER_FIELDS,
    UNKNOWN,
    MessageColumns,
    RawMessage,
    Reject,
    UnknownFieldPolicy,
    ValidationPolicy,
    ValidationResult,
)
from processors.validate.validator import Validator

__all__ = [
    "MAX_FIELD_NAMES",
    "OTHER_FIELDS",
    "UNKNOWN",
    "MessageColumns",
    "RawMessage",
    "Reject",
    "UnknownFieldPolicy",
    "ValidationPolicy",
    "ValidationResult",
    "Validator",
]
