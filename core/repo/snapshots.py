"""Snapshot ids and manifest helpers (pure).

In: the time a backup starts and the ids already taken; manifests as dicts.
Out: a unique `rag-system-backup-YYYYMMDD_HHMMSS[-N]` id, summaries and the set
of blob ids a manifest's trees name (used by verify, diff and prune).
"""
from __future__ import annotations

import datetime as _dt
import re
from typing import Iterable

from ragbackup.clock import stamp
from ragbackup.repo.manifest import Manifest

PREFIX = "rag-system-backup-"
ID_RE = re.compile(r"^(rag-system-backup-\d{8}_\d{6})(?:-(\d+))?\Z")  # \Z: no newline after it


def allocate_id(when: _dt.datetime, taken: Iterable[str]) -> str:
    """First free id for `when`: the plain stamp, then `-2`, `-3`, ... for same-second starts."""
    base = PREFIX + stamp(when)
    taken = set(taken)
    if base not in taken:
        return base
    n = 2
    while f"{base}-{n}" in taken:
        n += 1
    return f"{base}-{n}"


def is_snapshot_id(text: str) -> bool:
    return bool(ID_RE.match(text))


def sort_key(sid: str) -> tuple[str, int]:
    """Order of ids started in the same second: plain, -2, -3, ..., -10 (numeric, not text)."""
    m = ID_RE.match(sid)
    return (m.group(1), int(m.group(2) or 1)) if m else (sid, 0)


def tree_ids(manifest: dict | Manifest) -> list[bytes]:
    """Tree blob ids of every component in a manifest."""
    return _typed(manifest).tree_ids()


def totals(manifest: dict | Manifest) -> dict:
    """Summed file counts and sizes across components."""
    return _typed(manifest).totals()


def _typed(manifest: dict | Manifest) -> Manifest:
    return manifest if isinstance(manifest, Manifest) else Manifest.from_dict(manifest)
