"""The fleet as a whole: placement, determinism, reporting rhythm, and exact expectations for the pipeline."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from processors.kinds import KINDS
from processors.registry import Registry
from processors.topics import TopicScheme
from processors.validate import RawMessage, ValidationPolicy, Validator
from simulators.clocks import CLOCKS
from simulators.encode import Encoder
from simulators.faults import FAULTS, fault_rates, parse_faults
from simulators.fleet import make_registry, split_counts
from simulators.hanoi import DISTRICTS
from simulators.models import MODELS
from simulators.payloads import format_timestamps, rfc3339_quoted
from simulators.plan import FleetChoices, build
from tests.simulators.helpers import (
    HOUR_MS,
    START,
    device_of,
    reading_of,
    run_fleet,
    run_timed,
    run_to_file,
    ts_of,
    validate_as_sent,
)


def test_devices_are_placed_in_hanoi() -> None:
    registry = make_registry(500, list(KINDS), seed=3)
    assert len(registry) == 500
    assert set(registry.counts().values()) == {100}
    for device in registry:
        assert 20.9 < device.lat < 21.12
        assert 105.7 < device.lon < 105.95
        assert device.interval_s == KINDS[device.kind].interval_s
        assert device.install_date is not None
    assert {d.district for d in registry} == {d.name for d in DISTRICTS}


def test_split_counts() -> None:
    assert split_counts(7, ["a", "b", "c"]) == {"a": 3, "b": 2, "c": 2}
    with pytest.raises(ValueError, match="fewer than"):
        split_counts(2, ["a", "b", "c"])


def test_every_physical_kind_has_a_model() -> None:
    assert set(MODELS) == {"air", "water", "traffic", "lighting", "waste"} <= set(KINDS)


def test_same_seed_same_bytes(tmp_path: Path, small_registry: Registry) -> None:
    def to_file(name: str, seed: int) -> bytes:
        labels = tmp_path / f"{name}.labels"
        run_to_file(small_registry, tmp_path / name, seed=seed, faults="all", fault_rate=0.1, labels=labels)
        return (tmp_path / name).read_bytes() + labels.read_bytes()

    first = to_file("a", 5)
    assert first == to_file("b", 5)
    assert first != to_file("c", 6)
    assert first.count(b"\n") > 1000


def test_pacing_and_where_a_run_ends_do_not_change_the_output(
    tmp_path: Path, small_registry: Registry
) -> None:
    """Generated in fixed blocks of simulated time from the start: how fast the run goes, or how
    long it lasts, changes nothing in what it sends."""
    fast, _ = run_to_file(small_registry, tmp_path / "fast.tsv", HOUR_MS, speed=0)
    paced, _ = run_to_file(small_registry, tmp_path / "paced.tsv", HOUR_MS, speed=7200)
    assert fast == paced
    longer, _ = run_to_file(small_registry, tmp_path / "longer.tsv", 2 * HOUR_MS, speed=0)
    assert longer[: len(fast)] == fast
    assert longer[len(fast)][0] >= START + HOUR_MS


def test_every_device_reports_on_its_interval(small_registry: Registry) -> None:
    messages, tally = run_fleet(small_registry)
    per_device = Counter(device_of(topic) for topic, _ in messages)
    for device in small_registry:
        expected = HOUR_MS / 1000 / KINDS[device.kind].interval_s
        assert per_device[device.device_id] == pytest.approx(expected, abs=1), device.device_id
    assert tally.messages == len(messages)


def test_jitter_and_clock_drift_stay_within_each_kinds_profile(
    small_registry: Registry, tmp_path: Path
) -> None:
    messages, _ = run_to_file(small_registry, tmp_path / "m.tsv", 6 * HOUR_MS)
    gaps: dict[str, list[int]] = {}
    by_device: dict[str, list[int]] = {}
    for sent, topic, payload in messages:
        reading = reading_of(payload)
        assert reading is not None
        kind = topic.split("/")[-2]
        # The device's clock differs from the true send time by its drift only (plus whole-second truncation).
        skew = ts_of(reading) - sent
        limit = CLOCKS[kind].drift_ppm * 5e-6 * CLOCKS[kind].resync_ms + 1000
        assert abs(skew) <= limit, (topic, skew)
        by_device.setdefault(device_of(topic), []).append(sent)
    for device, times in by_device.items():
        kind = device.rsplit("-", 1)[0]
        gaps.setdefault(kind, []).extend(np.diff(times).tolist())
    for kind, kind_gaps in gaps.items():
        interval = KINDS[kind].interval_s * 1000
        jitter = min(CLOCKS[kind].jitter_ms, interval // 10)
        assert interval - jitter <= min(kind_gaps)
        assert max(kind_gaps) <= interval + jitter
        assert len(set(kind_gaps)) > 1, f"{kind} reports with some jitter"


def test_clean_fleet_output_is_entirely_valid(small_registry: Registry) -> None:
    messages, tally = run_fleet(small_registry)
    result = Validator(small_registry).validate([RawMessage(t, p) for t, p in messages], START + 2 * HOUR_MS)
    assert result.rejects == []
    assert result.valid == sum(tally.readings.values()) == sum(tally.valid_readings.values())
    spellings = {type(json.loads(p)["ts"]).__name__ for _, p in messages}
    assert spellings == {"str", "int"}, "devices use RFC 3339 and epoch timestamps"
    for name, batch in result.batches.items():
        kind = KINDS[name]
        lo = np.array([m.lo for m in kind.measures])
        hi = np.array([m.hi for m in kind.measures])
        assert np.all((batch.values >= lo) & (batch.values <= hi))


@pytest.mark.parametrize("batch", [0, 25])
def test_injected_faults_cause_exactly_their_reasons(small_registry: Registry, batch: int) -> None:
    """Every reject reason and every stored reading, exactly, with the pipeline's clock at send time."""
    messages, tally = run_timed(
        small_registry,
        2 * HOUR_MS,
        faults="all",
        fault_rates=dict.fromkeys(FAULTS, 0.004),
        batch=batch,
        max_payload_bytes=4096,
    )
    rejects, stored = validate_as_sent(small_registry, messages, ValidationPolicy(max_payload_bytes=4096))
    assert rejects == tally.expected_rejects
    assert stored == tally.valid_readings
    applicable = {n for n, f in FAULTS.items() if not (batch and f.single_only)}
    assert set(tally.faults) == applicable, "at this rate every applicable fault occurs"
    assert tally.expected_rejects["duplicate"] > 0
    assert tally.expected_rejects["timestamp_in_future"] > 0, "clock skews beyond the limit are rejected"


def test_replays_expect_what_the_ingest_clock_will_say(small_registry: Registry) -> None:
    """Judged a week and a bit later, the oldest readings of a replay are too old: the tally says so."""
    span = 2 * HOUR_MS
    late = START + 7 * 24 * HOUR_MS + HOUR_MS
    schedule, encoder = build(
        small_registry,
        TopicScheme(),
        FleetChoices(kinds=tuple(KINDS), seed=11, start_ms=START, end_ms=START + span),
    )
    sent: list[tuple[str, bytes]] = []
    for block in range(START, START + span, 10_000):
        chunks = list(schedule.slice(block, block + 10_000))
        sent += [(t, p) for _, t, p in encoder.encode_slice(block, chunks, late, block + 10_000)]
    result = Validator(small_registry).validate([RawMessage(t, p) for t, p in sent], late)
    assert Counter(str(r.reason) for r in result.rejects) == encoder.tally.expected_rejects
    assert encoder.tally.expected_rejects["timestamp_too_old"] > 0
    assert result.valid == sum(encoder.tally.valid_readings.values()) > 0


def test_fault_names_and_rates_are_checked() -> None:
    assert parse_faults("all") == tuple(FAULTS)
    assert parse_faults("none") == ()
    assert parse_faults("wrong_type, wrong_type,oversized") == ("wrong_type", "oversized")
    with pytest.raises(ValueError, match="unknown fault"):
        parse_faults("spikes")
    rates = fault_rates(parse_faults("all"), total=0.02)
    assert sum(rates.values()) == pytest.approx(0.02)
    assert rates["spike"] / rates["drift"] == pytest.approx(FAULTS["spike"].rate / FAULTS["drift"].rate)
    with pytest.raises(ValueError, match="not among the faults chosen"):
        fault_rates(["spike"], overrides={"stuck": 0.1})


def test_without_faults_nothing_is_spoiled(small_registry: Registry) -> None:
    schedule, _ = build(
        small_registry, TopicScheme(), FleetChoices(kinds=tuple(KINDS), seed=1, start_ms=START)
    )
    encoder = Encoder(small_registry, TopicScheme(), schedule.models, rates={})
    chunks = list(schedule.slice(START, START + HOUR_MS))
    sent = encoder.encode_slice(START, chunks, START + HOUR_MS, START + HOUR_MS)
    assert len(sent) == encoder.tally.messages == sum(encoder.tally.valid_readings.values()) > 0
    assert encoder.tally.expected_rejects == Counter()
    assert encoder.labels.counts == Counter()


def test_timestamps_are_formatted_in_bulk_exactly_as_one_by_one() -> None:
    from processors.timestamps import format_rfc3339

    ts = np.array([0, 951_782_400_000, 1_795_408_200_250, 4_102_444_799_999] * 3, dtype=np.int64)
    assert rfc3339_quoted(ts) == [b'"%s"' % format_rfc3339(int(t)).encode() for t in ts]
    device = np.arange(len(ts))
    texts = format_timestamps(device, ts)
    for d, t, text in zip(device.tolist(), ts.tolist(), texts, strict=True):
        slot = d % 10
        expected = (
            b'"%s"' % format_rfc3339(t).encode() if slot < 7 else str(t if slot < 9 else t // 1000).encode()
        )
        assert text == expected
