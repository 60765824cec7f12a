from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from processors.kinds import KINDS
from processors.registry import Registry
from processors.topics import TopicScheme
from processors.validate import RawMessage, Validator
from simulators.encode import Encoder, Tally
from simulators.faults import MESSAGE_FAULTS, parse_faults
from simulators.fleet import make_registry, split_counts
from simulators.outputs import FileOutput
from simulators.plan import FleetChoices, build
from simulators.runner import Simulation
from tests.simulators.helpers import MemoryOutput

START = 1_795_400_000_000
HOUR_MS = 3_600_000


def run_fleet(
    registry: Registry, span_ms: int = HOUR_MS, **choices: object
) -> tuple[list[tuple[str, bytes]], Tally]:
    schedule, encoder = build(
        registry,
        TopicScheme(),
        FleetChoices(kinds=tuple(KINDS), seed=11, start_ms=START, **choices),  # type: ignore[arg-type]
    )
    out = MemoryOutput()
    Simulation(
        schedule,
        encoder,
        out,
        speed=0,
        end_ms=START + span_ms,
        wall_clock_ms=lambda: START + 10 * span_ms,
    ).run()
    return out.messages, encoder.tally


def test_devices_are_placed_in_hanoi() -> None:
    registry = make_registry(500, list(KINDS), seed=3)
    assert len(registry) == 500
    assert set(registry.counts().values()) == {100}
    for device in registry:
        assert 20.9 < device.lat < 21.12
        assert 105.7 < device.lon < 105.95
        assert device.interval_s == KINDS[device.kind].interval_s
        assert device.install_date is not None
    assert len({d.district for d in registry}) == 12


def test_split_counts() -> None:
    assert split_counts(7, ["a", "b", "c"]) == {"a": 3, "b": 2, "c": 2}
    with pytest.raises(ValueError, match="fewer than"):
        split_counts(2, ["a", "b", "c"])


def test_same_seed_same_bytes(tmp_path: Path, small_registry: Registry) -> None:
    def to_file(path: Path, seed: int) -> bytes:
        schedule, encoder = build(
            small_registry,
            TopicScheme(),
            FleetChoices(kinds=tuple(KINDS), seed=seed, start_ms=START, faults="all", fault_rate=0.1),
        )
        Simulation(
            schedule,
            encoder,
            FileOutput(path),
            speed=0,
            end_ms=START + HOUR_MS,
            wall_clock_ms=lambda: START + 2 * HOUR_MS,
        ).run()
        return path.read_bytes()

    first = to_file(tmp_path / "a.txt", 5)
    assert first == to_file(tmp_path / "b.txt", 5)
    assert first != to_file(tmp_path / "c.txt", 6)
    assert first.count(b"\n") > 1000


def test_every_device_reports_on_its_interval(small_registry: Registry) -> None:
    messages, tally = run_fleet(small_registry)
    per_device = Counter(topic.rsplit("/", 1)[-1] for topic, _ in messages)
    for device in small_registry:
        expected = HOUR_MS / 1000 / KINDS[device.kind].interval_s
        assert per_device[device.device_id] == pytest.approx(expected, abs=1), device.device_id
    assert tally.messages == len(messages)


def test_clean_fleet_output_is_entirely_valid(small_registry: Registry) -> None:
    messages, tally = run_fleet(small_registry)
    result = Validator(small_registry).validate([RawMessage(t, p) for t, p in messages], START + 2 * HOUR_MS)
    assert result.rejects == []
    assert result.valid == sum(tally.readings.values()) == sum(tally.valid_readings.values())
    spellings = {type(__import__("json").loads(p)["ts"]).__name__ for _, p in messages}
    assert spellings == {"str", "int"}, "devices use RFC 3339 and epoch timestamps"
    for name, batch in result.batches.items():
        kind = KINDS[name]
        lo = np.array([m.lo for m in kind.measures])
        hi = np.array([m.hi for m in kind.measures])
        assert np.all((batch.values >= lo) & (batch.values <= hi))


@pytest.mark.parametrize("batch", [0, 25])
def test_injected_faults_cause_exactly_their_reasons(small_registry: Registry, batch: int) -> None:
    messages, tally = run_fleet(
        small_registry, faults="all", fault_rate=0.05, batch=batch, max_payload_bytes=4096
    )
    from processors.validate import ValidationPolicy

    result = Validator(small_registry, ValidationPolicy(max_payload_bytes=4096)).validate(
        [RawMessage(t, p) for t, p in messages], START + 2 * HOUR_MS
    )
    got = Counter(str(r.reason) for r in result.rejects)
    assert got == tally.expected_rejects
    assert result.valid == sum(tally.valid_readings.values())
    stored = {name: len(b) for name, b in result.batches.items()}
    assert stored == dict(tally.valid_readings)
    applicable = {n for n, f in MESSAGE_FAULTS.items() if not (batch and f.single_only)}
    assert set(tally.faults) == applicable, "at this rate every applicable fault occurs"


def test_fault_names_are_checked() -> None:
    assert parse_faults("all") == tuple(MESSAGE_FAULTS)
    assert parse_faults("none") == ()
    assert parse_faults("wrong_type, wrong_type,oversized") == ("wrong_type", "oversized")
    with pytest.raises(ValueError, match="unknown fault"):
        parse_faults("spikes")


def test_encoder_without_faults_spoils_nothing(small_registry: Registry) -> None:
    encoder = Encoder(small_registry, TopicScheme(), faults=(), fault_rate=0.9)
    assert encoder.fault_rate == 0.0
