"""What citypulse writes that holds secrets or raw data is its owner's alone, whatever the umask."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from ingest.pipeline import Pipeline, save_state
from ingest.private_files import is_private, write_private
from ingest.sinks.sqlite import SqliteSink
from ingest.spool import Spool
from ingest.stats import PipelineStats
from processors.anomaly import DetectionEngine
from processors.validate import Validator
from tests.ingest.test_pipeline_detection import MemorySink, registry


@pytest.fixture(autouse=True)
def _permissive_umask() -> Iterator[None]:
    """The usual umask (files 0644, directories 0755), so nothing passes by the umask's grace."""
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


def test_spool_directory_segments_lock_and_set_aside_records(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool", 64 * 1024)
    spool.append(b"raw readings")
    record = spool.peek()
    assert record is not None
    aside = spool.set_aside(record, "test")
    spool.close()
    paths = [tmp_path / "spool", *(tmp_path / "spool").rglob("*")]
    assert aside in paths
    assert len(paths) >= 4
    assert all(is_private(path) for path in paths), [oct(p.stat().st_mode) for p in paths]


def test_detector_state_is_written_owner_only_even_over_an_older_readable_file(tmp_path: Path) -> None:
    path = tmp_path / "state.npz"
    (tmp_path / "state.npz.partial").write_bytes(b"left by an older run")
    (tmp_path / "state.npz.partial").chmod(0o644)
    reg = registry()
    pipeline = Pipeline(Validator(reg), MemorySink(), PipelineStats(), engine=DetectionEngine(reg))
    assert save_state(pipeline, path) > 0
    assert is_private(path)


def test_sqlite_store_and_its_journals_are_owner_only(tmp_path: Path) -> None:
    path = tmp_path / "store.sqlite"
    path.touch(mode=0o644)
    sink = SqliteSink(path)
    try:
        journals = [path.with_name(path.name + suffix) for suffix in ("-wal", "-shm")]
        assert all(p.exists() for p in journals)
        assert all(is_private(p) for p in [path, *journals])
    finally:
        sink.close()


def test_write_private_replaces_atomically_and_tightens(tmp_path: Path) -> None:
    path = tmp_path / "secret"
    path.write_text("old")
    path.chmod(0o644)
    write_private(path, b"new")
    assert path.read_bytes() == b"new"
    assert is_private(path)
    assert [p.name for p in tmp_path.iterdir()] == ["secret"]
