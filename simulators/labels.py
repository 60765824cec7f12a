"""The ground truth: one JSON line per injected fault episode or incident, for scoring detectors.

The format is a contract with the evaluation (``processors/evaluation.py``):

``fault``, ``scope``
    The fault's name and family (``signal``, ``message``, ``incident``).
``device``, ``kind``, ``field``
    What was affected; ``field`` is null when the whole reading or device was.
``start_ms``, ``end_ms`` (and ``start``, ``end`` as RFC 3339)
    Inclusive range of the affected readings' device timestamps (``ts``): for
    ``dropout`` the readings that were never sent, for ``clock_skew`` the true
    time (arrival time) during which the clock was off.
``expected_reason``
    The reject reason the pipeline must give, or null.
``detail``
    Fault-specific numbers (magnitude, offset_ms, ...).

Labels are written when an episode ends (or when the run does), so the file is
complete and valid at any moment a run stops.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import IO

import orjson

from processors.labels import Label

__all__ = ["Label", "LabelSink"]


class LabelSink:
    """Counts labels and, given a path, writes them as JSON lines."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path
        self.counts: Counter[str] = Counter()
        self._out: IO[bytes] | None = None
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._out = path.open("wb")

    def add(self, label: Label) -> None:
        self.counts[label.fault] += 1
        if self._out is not None:
            self._out.write(orjson.dumps(label.as_dict()) + b"\n")

    def flush(self) -> None:
        if self._out is not None:
            self._out.flush()

    def close(self) -> None:
        if self._out is not None:
            self._out.close()
            self._out = None
