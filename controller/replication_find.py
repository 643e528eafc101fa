"""Which source packs hold the blobs of a snapshot that a tier lacks, found a pack at a time.

In: blob ids in the order the snapshot's trees list them, the source's index cache and the tier's
(narrow interfaces below), and the packs the tier's index names already. Out: per batch of ids, the
source packs to copy. Next: replication.TierCopy copies them as they are found.
"""
from __future__ import annotations

from collections import OrderedDict
from typing import Iterable, Protocol

from ragbackup import errors
from ragbackup.repo.packs import BlobLocation

LOADED_IDS = 100_000  # ids of loaded source packs held at once (the pack being read is always kept)
MIN_RESOLVED = 8  # a loaded pack that resolves fewer ids of a batch ends loading for it: the rest are looked up


class SourceIndex(Protocol):
    def lookup(self, blob_id: bytes) -> BlobLocation | None: ...
    def blob_ids_in_pack(self, pack_id: str) -> set[bytes]: ...
    def packs_of(self, ids: Iterable[bytes]) -> tuple[set[str], set[bytes]]: ...


class TierIndex(Protocol):
    def missing(self, ids: list[bytes]) -> set[bytes]: ...


class PackFinder:
    """The source packs holding those of a batch of blob ids the tier lacks.

    A backup writes a file's chunks back to back, so the ids of a tree come a pack at a time (in
    the scale-0.5 snapshot every pack's ids form one run): one lookup names the pack of the first
    unresolved id and the pack's ids, read from the covering blobs_pack index, resolve its
    neighbours. The tier is asked about a pack's ids only until one is missing (then the pack is
    needed, and asked about no more), and not at all for a pack its index names (the tier's rows of
    a pack are the source's). Looking up every id in both (two primary-key searches per id) was 5.7
    of 7.2 s of that snapshot's planning.
    """

    def __init__(self, src: SourceIndex, tier: TierIndex, tier_packs: set[str]):
        self.src, self.tier, self.tier_packs = src, tier, tier_packs
        self.where: dict[bytes, str] = {}  # id -> source pack, for the ids of the loaded packs
        self.loaded: OrderedDict[str, set[bytes]] = OrderedDict()
        self.held = 0  # ids in `loaded`
        self.needed: set[str] = set()  # packs found needed so far

    def packs_needed(self, ids: list[bytes]) -> set[str]:
        """Source packs holding those of `ids` the tier's index lacks; IntegrityError for an id the
        source does not index."""
        found, rest = self._resolve(list(dict.fromkeys(ids)))
        by_pack: dict[str, list[bytes]] = {}
        for i, pack in found.items():
            if pack not in self.needed and pack not in self.tier_packs:
                by_pack.setdefault(pack, []).append(i)
        needed = {pack for pack, pids in by_pack.items() if self._tier_lacks_any(pids)}
        if rest:
            packs, lost = self.src.packs_of(self.tier.missing(rest))
            if lost:
                raise errors.IntegrityError(f"blob {next(iter(lost)).hex()} is referenced but not in the "
                                            "source's index")
            needed |= packs
        self.needed |= needed
        return needed

    def _tier_lacks_any(self, ids: list[bytes]) -> bool:
        """Whether the tier's index lacks one of `ids` (the first asked alone: one is enough)."""
        return bool(self.tier.missing(ids[:1]) or (len(ids) > 1 and self.tier.missing(ids[1:])))

    def _resolve(self, ids: list[bytes]) -> tuple[dict[bytes, str], list[bytes]]:
        """(id -> source pack for the ids the loaded packs hold, after loading the packs of the first
        ids left while each resolves at least MIN_RESOLVED; the ids left, in order)."""
        found: dict[bytes, str] = {}
        rest = []
        for i in ids:
            pack = self.where.get(i)
            if pack is None:
                rest.append(i)
            else:
                found[i] = pack
        while rest:
            loc = self.src.lookup(rest[0])
            if loc is None:  # not indexed: packs_of reports it
                break
            held = self._load(loc.pack)
            left = [i for i in rest if i not in held]
            found.update(dict.fromkeys((i for i in rest if i in held), loc.pack))
            if len(rest) - len(left) < MIN_RESOLVED:
                return found, left
            rest = left
        return found, rest

    def _load(self, pack: str) -> set[bytes]:
        """The ids of source pack `pack`, now among the loaded (the least recently loaded dropped)."""
        held = self.loaded.pop(pack, None)
        if held is None:
            held = self.src.blob_ids_in_pack(pack)
            self.where.update(dict.fromkeys(held, pack))
            self.held += len(held)
        self.loaded[pack] = held
        while self.held > LOADED_IDS and len(self.loaded) > 1:
            old, ids = self.loaded.popitem(last=False)
            self.held -= len(ids)
            for i in ids:
                if self.where.get(i) == old:
                    del self.where[i]
        return held
