"""The allocator setting: taken by glibc, refused cleanly where it cannot apply."""

from __future__ import annotations

import platform

import pytest

from ingest.allocator import keep_freed_memory
from ingest.cli.common import UserError, settings_from


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt is glibc's")
def test_glibc_takes_the_thresholds() -> None:
    assert keep_freed_memory(32) is True
    assert keep_freed_memory(1000) is True, "capped to glibc's largest mmap threshold, not refused"


def test_zero_leaves_the_c_library_alone() -> None:
    assert keep_freed_memory(0) is False


def test_a_value_beyond_what_glibc_accepts_is_a_configuration_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CITYPULSE_MALLOC_KEEP_MB", "64")
    with pytest.raises(UserError, match="CITYPULSE_MALLOC_KEEP_MB"):
        settings_from(None)
