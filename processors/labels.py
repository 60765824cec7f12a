"""One labelled fault episode: the record the simulator writes and the evaluation reads.

It lives here, in the pure package, because both sides need the same reading of
it: ``simulators`` writes labels (``simulators/labels.py`` describes the file) and
``processors.evaluation`` scores detectors against them. One class keeps the two
from drifting apart.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from processors.timestamps import format_rfc3339


@dataclass(frozen=True, slots=True)
class Label:
    """One injected episode: what was affected, over which device timestamps, and how."""

    fault: str
    scope: str
    device: str
    kind: str
    field: str | None
    start_ms: int
    end_ms: int
    expected_reason: str | None = None
    detail: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    def as_dict(self) -> dict[str, object]:
        return {
            "fault": self.fault,
            "scope": self.scope,
            "device": self.device,
            "kind": self.kind,
            "field": self.field,
            "start_ms": self.start_ms,
            "end_ms": self.end_ms,
            "start": format_rfc3339(self.start_ms),
            "end": format_rfc3339(self.end_ms),
            "expected_reason": self.expected_reason,
            "detail": dict(self.detail),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Label:
        """Reads one JSON line back; a record missing a key says which one and shows the record."""
        try:
            return cls(
                fault=str(data["fault"]),
                scope=str(data["scope"]),
                device=str(data["device"]),
                kind=str(data["kind"]),
                field=None if data.get("field") is None else str(data["field"]),
                start_ms=int(data["start_ms"]),
                end_ms=int(data["end_ms"]),
                expected_reason=None if data.get("expected_reason") is None else str(data["expected_reason"]),
                detail=dict(data.get("detail") or {}),
            )
        except (KeyError, TypeError, ValueError) as bad:
            raise ValueError(f"not a label: {bad} in {dict(data)!r}") from None
