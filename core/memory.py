"""Keeps the daemons' resident memory close to what they use (glibc malloc tuning).

In: nothing. Out: mallopt settings for this process (`tune_malloc`), and `give_back`,
which returns the heap's free pages to the kernel between jobs. One malloc arena instead of
one per thread (each gRPC and worker thread would otherwise keep its own heap of
freed chunk buffers). One arena against two: 8-10 MB lower peaks on both daemons
in a full backup and restore, and no CPU cost measurable, since the hot path
allocates few, large buffers. A fixed low mmap threshold was tried and dropped:
every chunk buffer then costs fresh page faults, +50% CPU. No-op off glibc.
"""
from __future__ import annotations

import ctypes
import ctypes.util

M_ARENA_MAX = -8
ARENAS = 1


def _libc_function(name: str):
    """`name` from the C library, or None where there is none (not glibc, no libc found)."""
    lib = ctypes.util.find_library("c")
    if not lib:
        return None
    try:
        return getattr(ctypes.CDLL(lib), name)
    except (OSError, AttributeError):
        return None


def tune_malloc() -> bool:
    """Apply the settings; returns False where mallopt is unavailable."""
    mallopt = _libc_function("mallopt")
    return bool(mallopt and mallopt(M_ARENA_MAX, ARENAS))


_trim = None


def give_back() -> bool:
    """Return the heap's free pages to the kernel (glibc malloc_trim(0)); False where unavailable.

    Why: a capture frees its buffers when it ends, but glibc keeps the freed heap for reuse,
    so the agent's resident set after a full backup stayed near 150 MB and every later restore
    peaked on top of it. Costs a walk of the heap's free chunks (milliseconds); call between jobs.
    """
    global _trim  # noqa: PLW0603 (looked up once)
    if _trim is None:
        _trim = _libc_function("malloc_trim") or False
    return bool(_trim and _trim(0))
