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

LOADED_PACKS = 16  # source packs whose ids are held at once (a 32 MiB pack of 1 KiB records: ~30,000 ids)
PROBES = 4  # packs loaded whole per batch; ids left after them are looked up one by one (ids scattered over packs)


class SourceIndex(Protocol):
    def lookup(self, blob_id: bytes) -> BlobLocation | None: ...
    def blob_ids_in_pack(self, pack_id: str) -> set[bytes]: ...
    def packs_of(self, ids: Iterable[bytes]) -> tuple[set[str], set[bytes]]: ...


class TierIndex(Protocol):
    def missing(self, ids: list[bytes]) -> set[bytes]: ...


class PackFinder:
    """The source packs holding those of a batch of blob ids the tier lacks.

    A backup writes a file's chunks back to back, so the ids of a tree come a pack at a time: one
    lookup names the pack of the first unresolved id and the pack's ids, read from the covering
    blobs_pack index, resolve its neighbours. Looking up every id (two primary-key searches per id,
    the source's and the tier's) was 5.7 of 7.2 s of a scale-0.5 snapshot's planning. A blob in a
    pack the tier's index names is on the tier (the tier's rows of a pack are the source's), so only
    the others are asked of the tier.
    """

    def __init__(self, src: SourceIndex, tier: TierIndex, tier_packs: set[str]):
        self.src, self.tier, self.tier_packs = src, tier, tier_packs
        self.where: dict[bytes, str] = {}  # id -> source pack, for the ids of the loaded packs
        self.loaded: OrderedDict[str, set[bytes]] = OrderedDict()

    def packs_needed(self, ids: list[bytes]) -> set[str]:
        """Source packs holding those of `ids` the tier's index lacks; IntegrityError for an id the
        source does not index."""
        found, rest = self._resolve(list(dict.fromkeys(ids)))
        ask = [i for i, pack in found.items() if pack not in self.tier_packs]
        needed = {found[i] for i in self.tier.missing(ask)} if ask else set()
        if rest:
            packs, lost = self.src.packs_of(self.tier.missing(rest))
            if lost:
                raise errors.IntegrityError(f"blob {next(iter(lost)).hex()} is referenced but not in the "
                                            "source's index")
            needed |= packs
        return needed

    def _resolve(self, ids: list[bytes]) -> tuple[dict[bytes, str], list[bytes]]:
        """(id -> source pack for the ids the loaded packs hold, after at most PROBES more are loaded;
        the ids left, in order)."""
        found: dict[bytes, str] = {}
        rest = []
        for i in ids:
            pack = self.where.get(i)
            if pack is None:
                rest.append(i)
            else:
                found[i] = pack
        for _ in range(PROBES):
            loc = self.src.lookup(rest[0]) if rest else None
            if loc is None:  # none left, or not indexed: packs_of reports it
                break
            held = self._load(loc.pack)
            left = []
            for i in rest:
                if i in held:
                    found[i] = loc.pack
                else:
                    left.append(i)
            rest = left
        return found, rest

    def _load(self, pack: str) -> set[bytes]:
        """The ids of source pack `pack`, now among the loaded (the least recently loaded dropped)."""
        held = self.loaded.pop(pack, None)
        if held is None:
            held = self.src.blob_ids_in_pack(pack)
            self.where.update(dict.fromkeys(held, pack))
        self.loaded[pack] = held
        while len(self.loaded) > LOADED_PACKS:
            old, ids = self.loaded.popitem(last=False)
            for i in ids:
                if self.where.get(i) == old:
                    del self.where[i]
        return held
