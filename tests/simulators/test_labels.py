"""The labels tell the truth: every labelled fault is in the data where it says, and nothing else differs.

A fleet run with faults and the same fleet run without them share every underlying
value (fault injection draws its own random numbers), so comparing the two files
message by message shows exactly what was injected. Each label must account for
its differences, and every difference must belong to a label.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from processors.kinds import KINDS
from processors.registry import Registry
from processors.topics import TopicScheme
from processors.validate import RawMessage, ValidationPolicy, Validator
from simulators.faults import FAULTS, Scope
from simulators.plan import FleetChoices, build
from tests.simulators.helpers import HOUR_MS, START, device_of, read_labels, reading_of, run_to_file, ts_of

SPAN = 8 * HOUR_MS
POLICY = ValidationPolicy(max_payload_bytes=4096)


class Run:
    """One message file, indexed by (device, send time)."""

    def __init__(self, messages: list[tuple[int, str, bytes]]) -> None:
        self.messages = messages
        self.readings: list[dict[str, Any] | None] = [reading_of(p) for _, _, p in messages]
        self.at: dict[tuple[str, int], int] = {}
        self.by_device: dict[str, list[int]] = defaultdict(list)
        self.skewed: dict[str, list[tuple[int, int]]] = defaultdict(list)
        """Per device, when its clock was skewed (from the labels): send-time windows."""
        for i, (sent, topic, _) in enumerate(messages):
            self.at.setdefault((device_of(topic), sent), i)
            self.by_device[device_of(topic)].append(i)

    def stamped(self, device: str, ts: int) -> list[int]:
        """Messages of ``device`` whose payload carries timestamp ``ts``."""
        found = []
        for i in self.by_device.get(device, []):
            reading = self.readings[i]
            if reading is not None and "ts" in reading and ts_of(reading) == ts:
                found.append(i)
        return found

    def within(self, device: str, start: int, end: int) -> list[int]:
        """Messages of ``device`` stamped within [start, end] and sent then (not clock-skewed into it)."""
        slack = 130_000  # the worst drift of any kind's clock (waste: 5 sigma of 40 ppm over 7 days)
        found = []
        for i in self.by_device.get(device, []):
            reading = self.readings[i]
            sent = self.messages[i][0]
            if reading is None or "ts" not in reading or not start - slack <= sent <= end + slack:
                continue
            if start <= ts_of(reading) <= end and not any(a <= sent <= b for a, b in self.skewed[device]):
                found.append(i)
        return found


@pytest.fixture(scope="module")
def runs(
    tmp_path_factory: pytest.TempPathFactory, small_registry: Registry
) -> tuple[Run, Run, list[dict[str, Any]]]:
    folder = tmp_path_factory.mktemp("labels")
    clean, _ = run_to_file(small_registry, folder / "clean.tsv", SPAN, seed=21)
    faulty, _ = run_to_file(
        small_registry,
        folder / "faulty.tsv",
        SPAN,
        seed=21,
        faults="all",
        fault_rates=dict.fromkeys(FAULTS, 0.003),
        max_payload_bytes=4096,
        labels=folder / "labels.jsonl",
    )
    labels = read_labels(folder / "labels.jsonl")
    faulty_run = Run(faulty)
    for label in labels:
        if label["fault"] == "clock_skew":
            faulty_run.skewed[label["device"]].append((label["start_ms"], label["end_ms"]))
    return Run(clean), faulty_run, labels


@pytest.fixture(scope="module")
def models(small_registry: Registry) -> dict[str, Any]:
    schedule, _ = build(
        small_registry, TopicScheme(), FleetChoices(kinds=tuple(KINDS), seed=21, start_ms=START)
    )
    return dict(schedule.models)


def _field_values(run: Run, rows: list[int], field: str) -> np.ndarray[Any, np.dtype[np.float64]]:
    return np.array([float(run.readings[i][field]) for i in rows])  # type: ignore[index]


def _clean_twin(clean: Run, faulty: Run, i: int) -> int:
    sent, topic, _ = faulty.messages[i]
    return clean.at[(device_of(topic), sent)]


def _spread(models: dict[str, Any], kind: str, field: str, value: float) -> float:
    model = models[kind]
    j = KINDS[kind].measure_names.index(field)
    return float(model.variation_abs[j] + model.variation_rel[j] * abs(value))


def _check(
    label: dict[str, Any], clean: Run, faulty: Run, models: dict[str, Any], registry: Registry
) -> set[int]:
    """Check one label against the data; return the faulty messages it explains."""
    fault, device, kind, field = label["fault"], label["device"], label["kind"], label["field"]
    start, end = label["start_ms"], label["end_ms"]
    measure = KINDS[kind].measures[KINDS[kind].measure_names.index(field)] if field else None
    if fault == "spike":
        assert start == end
        [i] = faulty.stamped(device, start)
        twin = _clean_twin(clean, faulty, i)
        spiked, before = float(faulty.readings[i][field]), float(clean.readings[twin][field])  # type: ignore[index]
        assert measure is not None
        moved = abs(spiked - before)
        assert moved == pytest.approx(abs(label["detail"]["magnitude"]), abs=0.011)
        assert moved >= 6 * _spread(models, kind, field, before) - 0.01
        at_limit = spiked in (measure.lo, measure.hi)
        assert at_limit or moved >= 0.25 * (measure.normal[1] - measure.normal[0]) - 0.01
        return {i}
    if fault in ("drift", "stuck", "noise_burst"):
        rows = faulty.within(device, start, end)
        twins = [_clean_twin(clean, faulty, i) for i in rows]
        got, was = _field_values(faulty, rows, field), _field_values(clean, twins, field)
        assert label["detail"]["readings"] == len(rows), label
        if fault == "stuck":
            assert len(rows) >= 8
            assert len(set(got.tolist())) == 1
            assert len(set(was.tolist())) > 1, "the field would have changed meanwhile"
            # The sensor froze at the value it had just read: the reading before the label, still true.
            earlier = [i for i in faulty.by_device[device] if i < rows[0] and faulty.readings[i] is not None]
            lead_in = faulty.readings[earlier[-1]]
            assert lead_in is not None
            assert float(lead_in[field]) == got[0], "the first repeat starts the label"
        elif fault == "drift":
            assert measure is not None
            assert len(rows) >= 12
            offset = got - was
            total = label["detail"]["total"]
            noise = label["detail"]["noise"]
            assert noise == pytest.approx(_spread(models, kind, field, float(was[0])), rel=0.05, abs=0.01)
            assert abs(total) >= 0.5 * (measure.normal[1] - measure.normal[0])
            clipped = np.isin(got, [measure.lo, measure.hi])
            assert np.all(np.sign(offset[~clipped & (np.abs(offset) > 0.02)]) == np.sign(total))
            assert np.all(np.diff(np.abs(offset[~clipped])) >= -0.02), "the offset grows"
        else:
            assert len(rows) >= 6
            spread = np.array([_spread(models, kind, field, v) for v in was])
            assert np.sqrt(np.mean(((got - was) / spread) ** 2)) >= 3.0
        return set(rows)
    if fault == "dropout":
        assert not faulty.within(device, start, end)
        assert len(clean.within(device, start, end)) == label["detail"]["readings"] >= 6
        return set()
    if fault == "clock_skew":
        rows = [i for i in faulty.by_device[device] if start <= faulty.messages[i][0] <= end]
        assert len(rows) >= 6
        offset = label["detail"]["offset_ms"]
        for i in rows:
            twin = _clean_twin(clean, faulty, i)
            assert ts_of(faulty.readings[i]) - ts_of(clean.readings[twin]) == offset  # type: ignore[arg-type]
        beyond = offset > POLICY.max_future_ms + 5_000
        assert (label["expected_reason"] == "timestamp_in_future") == beyond
        assert label["detail"]["rejected"] == (len(rows) if beyond else 0)
        return set(rows)
    if fault == "out_of_order":
        [i] = faulty.stamped(device, start)
        earlier = faulty.by_device[device][: faulty.by_device[device].index(i)]
        later = [
            j for j in earlier if (r := faulty.readings[j]) is not None and "ts" in r and ts_of(r) > start
        ]
        assert len(later) >= 2, "sent after at least two later readings"
        return {i}
    if fault == "duplicates":
        copies = faulty.stamped(device, start)
        assert len(copies) == 2
        assert faulty.messages[copies[0]][2] == faulty.messages[copies[1]][2]
        assert label["expected_reason"] == "duplicate"
        return {copies[1]}
    # Bad content: find the reading by its clean twin's send time, and ask the validator.
    assert FAULTS[fault].scope is Scope.MESSAGE
    assert label["expected_reason"]
    owner = device.removeprefix("ghost-")
    [twin] = clean.stamped(owner, start)
    sent = clean.messages[twin][0]
    i = faulty.at[(device, sent)]
    result = Validator(registry, POLICY).validate([RawMessage(*faulty.messages[i][1:])], sent)
    assert [str(r.reason) for r in result.rejects] == [label["expected_reason"]]
    return {i}


def test_every_label_is_in_the_data_and_every_difference_is_labelled(
    runs: tuple[Run, Run, list[dict[str, Any]]], models: dict[str, Any], small_registry: Registry
) -> None:
    clean, faulty, labels = runs
    explained: set[int] = set()
    for label in labels:
        explained |= _check(label, clean, faulty, models, small_registry)
    assert {label["fault"] for label in labels} == set(FAULTS), "every fault type was exercised"
    dropped = {
        (label["device"], label["start_ms"], label["end_ms"])
        for label in labels
        if label["fault"] == "dropout"
    }
    # Sent later (out of order) or under another device's name: not at their clean twin's place.
    moved = {
        (label["device"].removeprefix("ghost-"), label["start_ms"])
        for label in labels
        if label["fault"] in ("out_of_order", "unknown_device")
    }
    for i, (sent, topic, payload) in enumerate(faulty.messages):
        if i in explained:
            continue
        twin = clean.at.get((device_of(topic), sent))
        assert twin is not None, f"unlabelled message: {topic} {payload!r}"
        assert clean.messages[twin][2] == payload, f"unlabelled difference: {topic} {payload!r}"
    matched = {clean.at[(device_of(t), s)] for s, t, _ in faulty.messages if (device_of(t), s) in clean.at}
    for j, (_, topic, _) in enumerate(clean.messages):
        if j in matched:
            continue
        ts = ts_of(clean.readings[j])  # type: ignore[arg-type]
        if (device_of(topic), ts) in moved:
            continue
        assert any(d == device_of(topic) and a <= ts <= b for d, a, b in dropped), (
            f"lost without a label: {topic}"
        )


def test_labels_follow_the_contract(runs: tuple[Run, Run, list[dict[str, Any]]]) -> None:
    _, _, labels = runs
    keys = [
        "fault",
        "scope",
        "device",
        "kind",
        "field",
        "start_ms",
        "end_ms",
        "start",
        "end",
        "expected_reason",
        "detail",
    ]
    for label in labels:
        assert list(label) == keys
        assert label["scope"] in ("signal", "message", "incident")
        assert label["start_ms"] <= label["end_ms"]
        assert label["kind"] in KINDS
        assert label["field"] is None or label["field"] in KINDS[label["kind"]].measure_names
        fault = FAULTS[label["fault"]]
        assert label["scope"] == str(fault.scope)
        if fault.reason is not None:
            assert label["expected_reason"] == str(fault.reason)


def test_labels_file_is_written_even_without_faults(tmp_path: Path, small_registry: Registry) -> None:
    _, tally = run_to_file(small_registry, tmp_path / "m.tsv", HOUR_MS, labels=tmp_path / "l.jsonl")
    assert (tmp_path / "l.jsonl").read_bytes() == b""
    assert tally.labels == 0
