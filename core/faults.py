"""Named crash points for the reliability suite: off (and free) unless a test arms one.

In: the environment variable RAG_BACKUP_FAULT, read once when the process starts, as
`NAME` or `NAME:N` (N >= 1, default 1); several points are separated by commas.
Out: `point(NAME)` returns at once when NAME is not armed; on the Nth pass through an
armed point the process kills itself with SIGKILL, as a power cut or `kill -9` would,
after writing one line naming the point to stderr (tests read it to know the point
was reached). Production code names its points with `point("area.step")`; the list of
names a test may arm is `KNOWN`, so a misspelt name in a test is an error, not a
silently passing run.
"""
from __future__ import annotations

import os
import signal
import sys
import threading

FAULT_ENV = "RAG_BACKUP_FAULT"

# Every crash point in the code, with where it sits; tests/reliability checks that each
# is reached by the crash matrix.
KNOWN: dict[str, str] = {
    "backup.after_packs": "a backup's packs are stored, its index is not",
    "backup.after_index": "a backup's index is stored, its snapshot is not",
    "prune.mid_delete": "a prune has deleted some, not all, of the packs it chose",
    "restore.between_renames": "an in-place restore moved the live data aside, the new copy is not in place",
    "replicate.mid": "a replication copied some, not all, of what a tier lacks",
    "import.mid": "an import stored some of a tarball's members, not its snapshot",
}


def _parse(value: str) -> dict[str, int]:
    """`NAME[:N],...` -> {NAME: N}; ValueError naming what is wrong."""
    armed: dict[str, int] = {}
    for item in filter(None, (part.strip() for part in value.split(","))):
        name, _, count = item.partition(":")
        if name not in KNOWN:
            raise ValueError(f"{FAULT_ENV}: unknown crash point {name!r} (known: {', '.join(sorted(KNOWN))})")
        hits = int(count) if count else 1
        if hits < 1:
            raise ValueError(f"{FAULT_ENV}: {item!r}: the hit count must be at least 1")
        armed[name] = hits
    return armed


_ARMED = _parse(os.environ.get(FAULT_ENV, ""))
_passes: dict[str, int] = {}
_lock = threading.Lock()


def point(name: str) -> None:
    """Pass crash point `name`: nothing unless it is armed and this is its Nth pass."""
    if not _ARMED:
        return
    hits = _ARMED.get(name)
    if hits is None:
        return
    with _lock:
        _passes[name] = _passes.get(name, 0) + 1
        reached = _passes[name] == hits
    if reached:
        sys.stderr.write(f"rag-backup: crash point {name} reached (pass {hits}), killing the process\n")
        sys.stderr.flush()
        os.kill(os.getpid(), signal.SIGKILL)
