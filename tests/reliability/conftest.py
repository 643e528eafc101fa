"""Reliability suite configuration: how many times each case is tried.

In: the environment variable RAG_BACKUP_RELIABILITY: unset or `fast` (the CI sample,
a few tries) or `long` (the full counts docs/RELIABILITY.md reports).
Out: `size(fast=..., long=...)`, the count for the current mode.
"""
from __future__ import annotations

import os

MODE_ENV = "RAG_BACKUP_RELIABILITY"


def mode() -> str:
    """`fast` or `long`; any other value is an error naming the variable."""
    value = os.environ.get(MODE_ENV, "").strip() or "fast"
    if value not in ("fast", "long"):
        raise ValueError(f"{MODE_ENV}={value!r}: expected 'fast' or 'long'")
    return value


def size(fast: int, long: int) -> int:
    """The count for the current mode: `fast` in CI, `long` for the full run."""
    return long if mode() == "long" else fast
