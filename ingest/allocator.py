"""Let the process keep the memory it frees, so detection does not page-fault every cycle.

At thousands of devices a detector's step allocates several MB of numpy
temporaries. With glibc's default thresholds, freed blocks that large go back to
the kernel at once, and the next cycle takes them again page by page: about
1,200-2,200 minor page faults per detector per cycle at 5,000 devices, up to a
third of the detection time (``python3 bench/detect_bench.py --malloc-mb 32``).
Raising ``M_TRIM_THRESHOLD`` and ``M_MMAP_THRESHOLD`` keeps that memory in the
heap for reuse; the cost is at most that much resident memory held back.

This is process-wide C-library state, set once at start-up by the long-running
commands. Other C libraries (musl) have no ``mallopt``; there it does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging

log = logging.getLogger(__name__)

M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
"""Option numbers from glibc's ``malloc.h``."""
MAX_MB = 32
"""glibc refuses an mmap threshold above half its largest heap (32 MB on 64-bit)."""


def keep_freed_memory(megabytes: int) -> bool:
    """Keep up to ``megabytes`` of freed memory; returns whether the C library took it.

    ``0`` leaves the C library's own settings (and its ``MALLOC_*`` variables) alone.
    """
    if megabytes <= 0:
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        log.info("this C library has no mallopt: freed memory is handled by its defaults")
        return False
    size = min(megabytes, MAX_MB) << 20
    taken = all(mallopt(option, size) == 1 for option in (M_TRIM_THRESHOLD, M_MMAP_THRESHOLD))
    if not taken:
        log.warning("the C library refused mallopt(%d MB); keeping its defaults", size >> 20)
    return taken
