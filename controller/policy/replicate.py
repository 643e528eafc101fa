"""Replication planning (pure): which snapshots a tier lacks, and in which order their objects go.

In: the source's snapshots (id, time), the tier's, the snapshots the tier forgot, the tier's
keep_within and now; per snapshot, the packs it needs and those the tier holds. Out: the
snapshots to copy, oldest first, and for each a `Step` list in the repository's write order
(packs, then index, then keys/config/dicts, then the snapshot), so that a tier is a
consistent repository after every step. controller/replication.py executes the steps.
"""
from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass

PACKS, INDEX, METADATA, SNAPSHOT = "packs", "index", "metadata", "snapshot"
ORDER = (PACKS, INDEX, METADATA, SNAPSHOT)  # docs/FORMAT.md's write order; a reader trusts what precedes a snapshot
METADATA_PREFIXES = ("keys/", "dicts/")
CONFIG_KEY = "config"


@dataclass(frozen=True)
class SourceSnapshot:
    id: str
    time: _dt.datetime


@dataclass(frozen=True)
class Step:
    """One phase of copying one snapshot: `keys` are the objects to copy (packs: pack ids)."""

    phase: str
    snapshot: str
    keys: tuple[str, ...]


def snapshots_to_copy(source: list[SourceSnapshot], on_tier: set[str], forgotten: set[str],
                      keep_within: _dt.timedelta | None, now: _dt.datetime) -> list[str]:
    """Source snapshots the tier lacks, oldest first: not forgotten there, not already older than its keep_within.

    A snapshot the tier's own policy would forget at once is never copied (it would be
    uploaded to be deleted), nor one the tier forgot before (its cloud retention ended).
    """
    cutoff = now - keep_within if keep_within else None
    todo = [s for s in source if s.id not in on_tier and s.id not in forgotten
            and (cutoff is None or s.time >= cutoff)]
    return [s.id for s in sorted(todo, key=lambda s: (s.time, s.id))]


def too_old(source: list[SourceSnapshot], on_tier: set[str], keep_within: _dt.timedelta | None,
            now: _dt.datetime) -> list[str]:
    """Source snapshots the tier lacks and will never get: older than its keep_within."""
    if not keep_within:
        return []
    return sorted(s.id for s in source if s.id not in on_tier and s.time < now - keep_within)


def metadata_missing(source_keys: set[str], tier_keys: set[str]) -> list[str]:
    """keys/, dicts/ and config objects the tier lacks, config last (a reader opens config first)."""
    wanted = {k for k in source_keys if k == CONFIG_KEY or k.startswith(METADATA_PREFIXES)}
    missing = wanted - tier_keys
    return sorted(missing - {CONFIG_KEY}) + ([CONFIG_KEY] if CONFIG_KEY in missing else [])


def plan_snapshot(sid: str, needed_packs: set[str], tier_packs: set[str], metadata: list[str]) -> list[Step]:
    """The steps that make snapshot `sid` complete on the tier, in ORDER; empty phases are left out.

    `needed_packs` hold blobs the tier's index lacks: those the tier does not hold yet are
    copied, and all of them are indexed (a pack copied by a run that died before its index
    step is indexed, not copied again).
    """
    packs = tuple(sorted(needed_packs - tier_packs))
    steps = [Step(PACKS, sid, packs), Step(INDEX, sid, tuple(sorted(needed_packs))), Step(METADATA, sid, tuple(metadata)),
             Step(SNAPSHOT, sid, (f"snapshots/{sid}",))]
    return [s for s in steps if s.keys]


def retry_delay(failures: int, base: float = 5.0, ceiling: float = 300.0) -> float:
    """Seconds the background catch-up waits after `failures` failed runs in a row (0: run now)."""
    if failures <= 0:
        return 0.0
    return min(ceiling, base * 2 ** (failures - 1))
