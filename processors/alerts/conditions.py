"""From a cycle's scores and readings to each rule's judgements: condition present, or clear.

A rule's condition holds for a device when its detector scores at or above the
rule's ``min_score`` (or a reading crosses its threshold), and is clear again
when the score falls below ``clear_score`` (or the reading is back past the
threshold by ``hysteresis``); in between nothing changes, so a score hovering
at the threshold does not make a condition flicker.

Only what matters is turned into Python objects: every present condition (few),
and clear judgements only for the devices the engine is tracking for the rule
(those with a condition or an alert). A cycle of 5,000 healthy readings costs a
few numpy comparisons per rule, not 5,000 objects.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from processors.alerts.rules import CLEAR_SHARE, Rule
from processors.anomaly import Detection
from processors.batch import ReadingBatch
from processors.detectors import Scored
from processors.kinds import KINDS
from processors.registry import DeviceTable

SILENCE_DETECTOR = "silence"
"""The detector whose alarm means a device is silent: its other alerts are held, not resolved."""


@dataclass(frozen=True, slots=True)
class Judgement:
    """One device's condition for one rule, as one reading (or clock check) showed it."""

    device: str
    kind: str
    district: str
    present: bool
    ts_ms: int
    value: float | None = None
    field: str = ""
    unit: str = ""
    lat: float | None = None
    lon: float | None = None


@dataclass
class Judged:
    """A cycle's judgements: per rule, and the silence detector's own (for holding alerts)."""

    by_rule: dict[str, list[Judgement]] = field(default_factory=dict)
    silence: list[Judgement] = field(default_factory=list)

    def count(self) -> int:
        return sum(len(v) for v in self.by_rule.values()) + len(self.silence)


Tracked = Callable[[str, str], AbstractSet[str]]
"""The device ids of a kind the engine holds state for under a rule (their clear judgements matter)."""

_NONE: frozenset[str] = frozenset()


def judge(
    rules: Sequence[Rule],
    detection: Detection | None,
    batches: Mapping[str, ReadingBatch],
    tracked: Tracked,
    present: Tracked = lambda rule, kind: _NONE,
    silent: AbstractSet[str] = _NONE,
    events: Mapping[str, Sequence[Judgement]] | None = None,
) -> Judged:
    """Every rule's judgements for one cycle, each rule's in timestamp order.

    A clock check (silence) repeats its verdict on every silent device every
    cycle; only changes are passed on: ``present`` names the devices whose
    condition already holds under a rule, ``silent`` those already silent.
    ``events`` are the judgements of ingest events (a device flooding, by event
    name), for the rules that watch them.
    """
    judged = Judged()
    scored_by: dict[str, list[tuple[str, Scored, ReadingBatch | None]]] = {}
    if detection is not None:
        for kind_name, scored, batch in detection.scored:
            scored_by.setdefault(scored.detector.name, []).append((kind_name, scored, batch))
    for rule in rules:
        found: list[Judgement] = []
        if rule.event is not None:
            found = [j for j in (events or {}).get(rule.event, ()) if j.kind in rule.kinds]
        elif rule.detector is not None:
            for kind_name, scored, batch in scored_by.get(rule.detector, ()):
                if kind_name in rule.kinds:
                    holds = present(rule.name, kind_name) if scored.rows is None else _NONE
                    watched = tracked(rule.name, kind_name)
                    found += _detector_judgements(rule, kind_name, scored, batch, watched, holds)
        else:
            for kind_name in rule.kinds:
                batch = batches.get(kind_name)
                if batch is not None and len(batch):
                    found += _threshold_judgements(rule, batch, tracked(rule.name, kind_name))
        if found:
            found.sort(key=lambda j: j.ts_ms)
            judged.by_rule[rule.name] = found
    for kind_name, scored, _ in scored_by.get(SILENCE_DETECTOR, ()):
        threshold = scored.detector.threshold
        best = scored.scores.max(axis=1) if scored.scores.shape[1] else np.zeros(len(scored.device))
        quiet = best >= threshold
        known = _of(scored.device, scored.table, silent)
        rows = np.flatnonzero((quiet & ~known) | ((best < CLEAR_SHARE * threshold) & known))
        judged.silence += [
            _judgement(scored.table, kind_name, int(scored.device[r]), bool(quiet[r]), int(scored.ts_ms[r]))
            for r in rows.tolist()
        ]
    return judged


def _detector_judgements(
    rule: Rule,
    kind_name: str,
    scored: Scored,
    batch: ReadingBatch | None,
    tracked: AbstractSet[str],
    holds: AbstractSet[str] = _NONE,
) -> list[Judgement]:
    columns = scored.columns
    wanted = [i for i, c in enumerate(columns) if not rule.fields or c in rule.fields]
    if not wanted or not len(scored.device):
        return []
    scores = scored.scores if len(wanted) == len(columns) else scored.scores[:, wanted]
    best = scores.max(axis=1)
    minimum = rule.min_score if rule.min_score is not None else scored.detector.threshold
    clear_below = rule.clear_score if rule.clear_score is not None else CLEAR_SHARE * minimum
    present = best >= minimum
    rows = np.flatnonzero(present & ~_of(scored.device, scored.table, holds) if holds else present)
    watched = _watched(scored.device, rows, scored.table, tracked)
    if watched is not None:
        rows = np.union1d(rows, np.flatnonzero((best < clear_below) & watched))
    if rows.size == 0:
        return []  # the usual cycle: nothing alarming, nothing tracked judged
    best_col = scores[rows].argmax(axis=1)
    kind = KINDS[kind_name]
    out: list[Judgement] = []
    for i, r in enumerate(rows.tolist()):
        column = columns[wanted[int(best_col[i])]]
        value: float | None = None
        unit = ""
        if column in kind.measure_names:
            unit = kind.measures[kind.index_of(column)].unit
            if batch is not None and scored.rows is not None:
                v = float(batch.values[int(scored.rows[r]), kind.index_of(column)])
                value = None if np.isnan(v) else v
        out.append(
            _judgement(
                scored.table,
                kind_name,
                int(scored.device[r]),
                bool(present[r]),
                int(scored.ts_ms[r]),
                value,
                column if column in kind.measure_names else "",
                unit,
            )
        )
    return out


def _threshold_judgements(rule: Rule, batch: ReadingBatch, tracked: AbstractSet[str]) -> list[Judgement]:
    assert rule.field is not None
    kind = batch.kind
    column = kind.index_of(rule.field)
    unit = kind.measures[column].unit
    x = batch.values[:, column]
    with np.errstate(invalid="ignore"):
        if rule.above is not None:
            present = x > rule.above
            clear = x <= rule.above - rule.hysteresis
        else:
            assert rule.below is not None
            present = x < rule.below
            clear = x >= rule.below + rule.hysteresis
    rows = np.flatnonzero(present)
    watched = _watched(batch.device, rows, batch.table, tracked)
    if watched is not None:
        rows = np.union1d(rows, np.flatnonzero(clear & watched))
    return [
        _judgement(
            batch.table,
            kind.name,
            int(batch.device[r]),
            bool(present[r]),
            int(batch.ts_ms[r]),
            float(x[r]),
            rule.field,
            unit,
        )
        for r in rows.tolist()
    ]


def _of(device: NDArray[np.intp], table: DeviceTable, ids: AbstractSet[str]) -> NDArray[np.bool_]:
    """Rows of the devices named in ``ids``."""
    if not ids:
        return np.zeros(device.shape, dtype=np.bool_)
    positions = [p for p in (table.index.get(i) for i in ids) if p is not None]
    return np.isin(device, np.asarray(positions, dtype=np.intp))


def _watched(
    device: NDArray[np.intp], present_rows: NDArray[np.intp], table: DeviceTable, tracked: AbstractSet[str]
) -> NDArray[np.bool_] | None:
    """Rows of devices whose clear judgements matter: tracked ones, and those present in this very
    batch (a backlog's condition may start and end within one cycle). None when there are none."""
    positions = [p for p in (table.index.get(i) for i in tracked) if p is not None]
    if present_rows.size:
        positions += device[present_rows].tolist()
    if not positions:
        return None
    return np.isin(device, np.asarray(positions, dtype=np.intp))


def _judgement(
    table: DeviceTable,
    kind_name: str,
    position: int,
    present: bool,
    ts_ms: int,
    value: float | None = None,
    column: str = "",
    unit: str = "",
) -> Judgement:
    device = table.devices[position]
    return Judgement(
        device=device.device_id,
        kind=kind_name,
        district=device.district,
        present=present,
        ts_ms=ts_ms,
        value=value,
        field=column,
        unit=unit,
        lat=device.lat,
        lon=device.lon,
    )
