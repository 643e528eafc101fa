"""Keeps the daemons' resident memory close to what they use (glibc malloc tuning).

In: nothing. Out: mallopt settings for this process: two arenas instead of one per
thread, and a fixed mmap threshold so multi-megabyte chunk and pack buffers go
back to the kernel when freed instead of staying in the heap. No-op off glibc.
"""
from __future__ import annotations

import ctypes
import ctypes.util

M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
M_ARENA_MAX = -8


def tune_malloc() -> bool:
    """Apply the settings; returns False where mallopt is unavailable."""
    name = ctypes.util.find_library("c")
    if not name:
        return False
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    ok = mallopt(M_ARENA_MAX, 2)
    ok &= mallopt(M_MMAP_THRESHOLD, 256 * 1024)
    ok &= mallopt(M_TRIM_THRESHOLD, 1024 * 1024)
    return bool(ok)
