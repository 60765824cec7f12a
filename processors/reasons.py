"""Why input was rejected: a closed set of codes, each counted and dead-lettered.

Codes are stable API: dashboards, alert rules and device teams key on them.
"""

from __future__ import annotations

from enum import StrEnum


class Reason(StrEnum):
    PAYLOAD_TOO_LARGE = "payload_too_large"
    OVER_LIMIT = "over_limit"
    BAD_TOPIC = "bad_topic"
    UNKNOWN_KIND = "unknown_kind"
    MALFORMED_JSON = "malformed_json"
    NOT_AN_OBJECT = "not_an_object"
    BAD_DEVICE_ID = "bad_device_id"
    UNKNOWN_DEVICE = "unknown_device"
    KIND_MISMATCH = "kind_mismatch"
    DEVICE_MISMATCH = "device_mismatch"
    GATEWAY_MISMATCH = "gateway_mismatch"
    MISSING_TIMESTAMP = "missing_timestamp"
    BAD_TIMESTAMP = "bad_timestamp"
    TIMESTAMP_IN_FUTURE = "timestamp_in_future"
    TIMESTAMP_TOO_OLD = "timestamp_too_old"
    WRONG_TYPE = "wrong_type"
    NOT_FINITE = "not_finite"
    OUT_OF_RANGE = "out_of_range"
    NO_MEASUREMENTS = "no_measurements"
    UNKNOWN_FIELD = "unknown_field"
    DUPLICATE = "duplicate"
    RATE_LIMITED = "rate_limited"


HELP: dict[Reason, str] = {
    Reason.PAYLOAD_TOO_LARGE: "split the message or raise CITYPULSE_MAX_PAYLOAD_BYTES",
    Reason.OVER_LIMIT: "keep within the limits on nesting, items per array, fields per reading, string and "
    "topic length (CITYPULSE_MAX_*)",
    Reason.BAD_TOPIC: "publish to {prefix}/readings/KIND/DEVICE or {prefix}/batches/KIND/GATEWAY",
    Reason.UNKNOWN_KIND: "use one of the kinds citypulse declares",
    Reason.MALFORMED_JSON: "send UTF-8 JSON: one object, or an array of objects",
    Reason.NOT_AN_OBJECT: "each reading must be a JSON object",
    Reason.BAD_DEVICE_ID: "device ids are 1-64 letters, digits, '_', '.', ':' or '-'",
    Reason.UNKNOWN_DEVICE: "add the device to the registry (CITYPULSE_REGISTRY) first",
    Reason.KIND_MISMATCH: "publish under the kind the registry gives the device",
    Reason.DEVICE_MISMATCH: "the payload's device must equal the topic's device",
    Reason.GATEWAY_MISMATCH: "a gateway may only forward the devices the registry puts behind it "
    "(its gateway column)",
    Reason.MISSING_TIMESTAMP: "add 'ts': RFC 3339 with offset or epoch seconds/milliseconds",
    Reason.BAD_TIMESTAMP: "'ts' must be RFC 3339 with offset or epoch seconds/milliseconds",
    Reason.TIMESTAMP_IN_FUTURE: "fix the device clock (NTP) or raise CITYPULSE_MAX_FUTURE_S",
    Reason.TIMESTAMP_TOO_OLD: "replay old data with a larger CITYPULSE_MAX_AGE_S",
    Reason.WRONG_TYPE: "measurements are JSON numbers (not strings or booleans)",
    Reason.NOT_FINITE: "NaN and Infinity are not measurements; omit the field instead",
    Reason.OUT_OF_RANGE: "the value is outside the sensor's physical range; check the sensor",
    Reason.NO_MEASUREMENTS: "send at least one of the kind's measurements",
    Reason.UNKNOWN_FIELD: "remove the field or set CITYPULSE_UNKNOWN_FIELDS=ignore",
    Reason.DUPLICATE: "the same device and timestamp was already ingested",
    Reason.RATE_LIMITED: "the device sends far more often than its registered interval; fix its firmware "
    "or its interval_s in the registry (CITYPULSE_RATE_LIMIT_FACTOR sets the margin)",
}
"""What the sender should do about each reason, shown in dead letters."""
