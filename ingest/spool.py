"""A bounded queue of records on local disk: where batches wait while the store is down.

A record is durable when :meth:`Spool.append` returns (written and fsync'd), so
the MQTT messages it came from may be acknowledged. Records come back in the
order they went in, across restarts. The spool never grows past ``max_bytes`` on disk
(taken records count until their segment, at most 1/16 of the limit, is deleted):
a full spool refuses new records (``SpoolFullError``) and the caller stops
acknowledging, so the broker keeps the messages instead (backpressure; nothing
is dropped). Filling up is loud: a log line and a metric at 50, 80 and 95 %.

Layout: segment files ``000000000001.seg``, ``...02.seg`` in ``directory``, each a
run of records framed as ``magic, length, crc32, payload``. Appends go to the
newest segment; a segment is deleted once every record in it has been taken.
After a crash, a torn record at the end of a segment (an append that never
returned, so was never acknowledged) is cut off. Records taken from the oldest
segment but not yet deleted with it are replayed again: writes are idempotent,
so that costs time, never correctness. A ``LOCK`` file (flock) keeps two
processes from sharing a spool.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import struct
import threading
import zlib
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ingest.private_files import open_private, private_directory, write_private

log = logging.getLogger(__name__)

_HEADER = struct.Struct("<4sII")
_MAGIC = b"CPS1"
WARN_LEVELS = (50, 80, 95)
"""Fill levels (percent of ``max_bytes``) that are logged on the way up."""


class SpoolFullError(Exception):
    """The record does not fit: stop taking input until the spool drains."""


class SpoolLockedError(Exception):
    """Another process uses this spool directory."""


@dataclass(frozen=True, slots=True)
class Record:
    """A record's place on disk; ``data`` is read on demand by :meth:`Spool.read`."""

    segment: int
    offset: int
    length: int


@dataclass(frozen=True, slots=True)
class SpoolState:
    records: int
    bytes: int
    max_bytes: int
    full: bool

    @property
    def percent(self) -> float:
        return 100.0 * self.bytes / self.max_bytes if self.max_bytes else 0.0


class Spool:
    """A bounded FIFO of byte records in ``directory``; thread-safe.

    The directory is created (and locked) on first use, so a run that never
    needs the spool leaves nothing behind.
    """

    def __init__(
        self,
        directory: Path,
        max_bytes: int,
        *,
        segment_bytes: int | None = None,
        on_level: Callable[[int, SpoolState], None] | None = None,
    ) -> None:
        if max_bytes < 1024:
            raise ValueError("the spool needs at least 1 KiB")
        self.directory = directory
        self.max_bytes = max_bytes
        # Space comes back a segment at a time, so a segment is at most 1/16 of the limit.
        self.segment_bytes = segment_bytes or max(1024, min(16 * 1024 * 1024, max_bytes // 16))
        self._on_level = on_level or _log_level
        self._lock = threading.Lock()
        self._records: deque[Record] = deque()
        self._sizes: dict[int, int] = {}
        """Bytes on disk per segment, consumed records included (they go when the segment goes)."""
        self._remaining: dict[int, int] = {}
        """Records not yet taken, per segment."""
        self._active: int | None = None
        self._active_fd: int | None = None
        self._lock_fd: int | None = None
        self._level = 0
        self._was_full = False
        self.recovered = 0
        if directory.is_dir():
            with self._lock:
                self._open_directory()
                self._recover()

    # --- state ----------------------------------------------------------------------
    def state(self) -> SpoolState:
        with self._lock:
            return self._state()

    def _state(self) -> SpoolState:
        return SpoolState(len(self._records), sum(self._sizes.values()), self.max_bytes, self._was_full)

    def __len__(self) -> int:
        return len(self._records)

    # --- writing ----------------------------------------------------------------------
    def append(self, payload: bytes) -> None:
        """Add a record, durably (fsync) before returning; raise ``SpoolFullError`` if it does not fit."""
        framed = _HEADER.pack(_MAGIC, len(payload), zlib.crc32(payload)) + payload
        with self._lock:
            used = sum(self._sizes.values())
            if used + len(framed) > self.max_bytes:
                if not self._was_full:
                    self._was_full = True
                    self._on_level(100, self._state())
                raise SpoolFullError(
                    f"spool {self.directory} is full ({used} of {self.max_bytes} bytes, "
                    f"{len(self._records)} batches): no more input is taken until the store drains it"
                )
            self._open_directory()
            if self._active is None or self._sizes[self._active] + len(framed) > self.segment_bytes:
                self._roll()
            assert self._active is not None
            assert self._active_fd is not None
            offset = self._sizes[self._active]
            _write_all(self._active_fd, framed)
            os.fdatasync(self._active_fd)
            self._sizes[self._active] = offset + len(framed)
            self._remaining[self._active] += 1
            self._records.append(Record(self._active, offset + _HEADER.size, len(payload)))
            self._check_level()

    def _roll(self) -> None:
        if self._active_fd is not None:
            os.close(self._active_fd)
        number = max([*self._sizes, self._active or 0]) + 1
        path = self._segment_path(number)
        self._active_fd = open_private(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
        self._active = number
        self._sizes[number] = 0
        self._remaining[number] = 0
        _fsync_directory(self.directory)

    # --- reading ----------------------------------------------------------------------
    def peek(self) -> Record | None:
        """The oldest record not yet taken."""
        with self._lock:
            return self._records[0] if self._records else None

    def read(self, record: Record) -> bytes:
        with open(self._segment_path(record.segment), "rb") as segment:
            segment.seek(record.offset)
            data = segment.read(record.length)
        if len(data) != record.length:
            raise OSError(f"spool segment {record.segment} is shorter than its index says")
        return data

    def pop(self, record: Record) -> None:
        """Mark the oldest record as taken (it must be ``record``); delete its segment when empty."""
        with self._lock:
            if not self._records or self._records[0] != record:
                raise ValueError("only the oldest spool record can be taken")
            self._records.popleft()
            self._remaining[record.segment] -= 1
            if self._remaining[record.segment] == 0:
                self._drop_segment(record.segment)
            self._check_level()

    def set_aside(self, record: Record, why: str) -> Path:
        """Move an unreadable record out of the queue into ``unreadable/``, so it cannot block the rest."""
        data = self.read(record)
        aside = self.directory / "unreadable"
        private_directory(aside)
        path = aside / f"{record.segment:012d}-{record.offset:012d}.rec"
        write_private(path, data)
        log.error("spool record set aside as %s (%s); inspect it and re-publish its readings", path, why)
        self.pop(record)
        return path

    def _drop_segment(self, number: int) -> None:
        if number == self._active:
            if self._active_fd is not None:
                os.close(self._active_fd)
            self._active, self._active_fd = None, None
        del self._sizes[number]
        del self._remaining[number]
        self._was_full = False  # space came back
        with contextlib.suppress(FileNotFoundError):
            self._segment_path(number).unlink()

    # --- levels -----------------------------------------------------------------------
    def _check_level(self) -> None:
        percent = 100.0 * sum(self._sizes.values()) / self.max_bytes
        reached = max([lvl for lvl in WARN_LEVELS if percent >= lvl], default=0)
        if reached > self._level or (reached == 0 and self._level > 0):
            self._on_level(reached, self._state())
        self._level = reached

    # --- files ------------------------------------------------------------------------
    def _segment_path(self, number: int) -> Path:
        return self.directory / f"{number:012d}.seg"

    def _open_directory(self) -> None:
        if self._lock_fd is not None:
            return
        private_directory(self.directory)
        fd = open_private(self.directory / "LOCK", os.O_RDWR | os.O_CREAT)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise SpoolLockedError(
                f"another citypulse process uses the spool {self.directory}; "
                "give each ingest process its own CITYPULSE_SPOOL_DIR"
            ) from None
        self._lock_fd = fd

    def _recover(self) -> None:
        numbers = sorted(int(p.stem) for p in self.directory.glob("*.seg") if p.stem.isdigit())
        for number in numbers:
            path = self._segment_path(number)
            data = path.read_bytes()
            good, count = 0, 0
            while good + _HEADER.size <= len(data):
                magic, length, crc = _HEADER.unpack_from(data, good)
                end = good + _HEADER.size + length
                if magic != _MAGIC or end > len(data) or zlib.crc32(data[good + _HEADER.size : end]) != crc:
                    break
                self._records.append(Record(number, good + _HEADER.size, length))
                good, count = end, count + 1
            if good < len(data):
                log.warning(
                    "spool segment %s: cut %d bytes after its last whole record (an append a crash "
                    "interrupted; its messages were never acknowledged and will be redelivered)",
                    path,
                    len(data) - good,
                )
                with open(path, "r+b") as torn:
                    torn.truncate(good)
                    os.fsync(torn.fileno())
            if count == 0:
                path.unlink()
                continue
            self._sizes[number] = good
            self._remaining[number] = count
        self.recovered = len(self._records)
        self._check_level()

    def close(self) -> None:
        with self._lock:
            if self._active_fd is not None:
                os.close(self._active_fd)
                self._active, self._active_fd = None, None
            if self._lock_fd is not None:
                os.close(self._lock_fd)
                self._lock_fd = None


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def _fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _log_level(percent: int, state: SpoolState) -> None:
    where = f"{state.records} batches, {state.bytes / 1e6:.1f} of {state.max_bytes / 1e6:.1f} MB"
    if percent >= 100:
        log.error(
            "spool FULL (%s): citypulse stops acknowledging messages and the broker keeps them; "
            "bring the store back or raise CITYPULSE_SPOOL_MAX_BYTES",
            where,
        )
    elif percent >= 80:
        log.error(
            "spool %d%% full (%s): the store has been failing for a while; check it now", percent, where
        )
    elif percent >= 50:
        log.warning("spool %d%% full (%s): the store is failing; readings wait on disk", percent, where)
    else:
        log.info("spool below 50%% again: %s", where)
