"""The disk spool: ordered, bounded, durable across restarts, loud as it fills, one process at a time."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from ingest.spool import Spool, SpoolFullError, SpoolLockedError, SpoolState


def drain(spool: Spool) -> list[bytes]:
    taken = []
    while (record := spool.peek()) is not None:
        taken.append(spool.read(record))
        spool.pop(record)
    return taken


def test_records_come_back_in_order_across_segments_and_segments_go_when_taken(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool", max_bytes=1_000_000, segment_bytes=4096)
    records = [bytes([i % 256]) * (100 + i) for i in range(120)]
    for record in records:
        spool.append(record)
    assert len(list((tmp_path / "spool").glob("*.seg"))) > 3, "small segments roll over"
    assert drain(spool) == records
    assert spool.state() == SpoolState(records=0, bytes=0, max_bytes=1_000_000, full=False)
    assert list((tmp_path / "spool").glob("*.seg")) == []
    spool.close()


def test_nothing_is_created_until_something_is_spooled(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool", max_bytes=10_000)
    assert not (tmp_path / "spool").exists()
    spool.append(b"x")
    assert (tmp_path / "spool" / "LOCK").exists()
    spool.close()


def fill(spool: Spool, record: bytes) -> None:
    while True:
        spool.append(record)


def test_a_full_spool_refuses_and_takes_again_once_drained(tmp_path: Path) -> None:
    levels: list[int] = []
    spool = Spool(tmp_path / "s", max_bytes=10_000, on_level=lambda pct, state: levels.append(pct))
    with pytest.raises(SpoolFullError, match="full"):
        fill(spool, b"r" * 500)
    appended = len(spool)
    state = spool.state()
    assert state.full
    assert state.bytes <= 10_000
    assert appended == state.records
    assert levels == [50, 80, 95, 100], "loud on the way up, at each threshold once"
    while spool.state().full:  # space comes back a segment (here: two records) at a time
        record = spool.peek()
        assert record is not None
        spool.pop(record)
        appended -= 1
    spool.append(b"r" * 500)
    appended += 1
    assert len(drain(spool)) == appended
    assert levels[-1] == 0, "and says so when it has drained"
    spool.close()


def test_records_survive_a_restart_and_a_torn_append_is_cut_off(tmp_path: Path) -> None:
    directory = tmp_path / "s"
    spool = Spool(directory, max_bytes=100_000)
    for i in range(5):
        spool.append(f"record {i}".encode())
    taken = spool.peek()
    assert taken is not None
    spool.pop(taken)  # taken, but its segment is still on disk: replayed again after a crash
    spool.close()
    segment = sorted(directory.glob("*.seg"))[-1]
    with segment.open("ab") as torn:
        torn.write(b"CPS1\xff\x00\x00\x00garbage")  # an append a crash interrupted
    again = Spool(directory, max_bytes=100_000)
    assert again.recovered == 5
    assert drain(again) == [f"record {i}".encode() for i in range(5)]
    again.append(b"after")
    assert drain(again) == [b"after"]
    again.close()


def test_only_one_process_may_use_a_spool(tmp_path: Path) -> None:
    directory = tmp_path / "s"
    spool = Spool(directory, max_bytes=10_000)
    spool.append(b"held")
    code = (
        "import sys; from pathlib import Path; from ingest.spool import Spool; "
        "Spool(Path(sys.argv[1]), 10_000)"
    )
    other = subprocess.run(
        [sys.executable, "-c", code, str(directory)], capture_output=True, text=True, check=False
    )
    assert other.returncode != 0
    assert "another citypulse process uses the spool" in other.stderr
    assert "CITYPULSE_SPOOL_DIR" in other.stderr
    spool.close()
    first = Spool(directory, max_bytes=10_000)
    with pytest.raises(SpoolLockedError):
        Spool(directory, max_bytes=10_000)  # a second open file: flock refuses it as it would another process
    first.close()
