"""PackFinder: the source packs holding the blobs a tier lacks, found a pack at a time.

In: a source index and a tier index as dicts (the narrow interfaces PackFinder declares), blob ids
in tree order. Out: the packs needed, and how many lookups the source answered.
"""
from __future__ import annotations

import pytest

from ragbackup import errors
from ragbackup.controller import replication_find
from ragbackup.controller.replication_find import MIN_RESOLVED, PackFinder
from ragbackup.repo.packs import BlobLocation


class Source:
    def __init__(self, packs: dict[str, list[bytes]]):
        self.pack_of = {i: p for p, ids in packs.items() for i in ids}
        self.packs = packs
        self.lookups = self.loads = self.bulk = 0

    def lookup(self, blob_id):
        self.lookups += 1
        p = self.pack_of.get(blob_id)
        return None if p is None else BlobLocation(blob_id, 0, 0, 0, 1, 1, p)

    def blob_ids_in_pack(self, pack_id):
        self.loads += 1
        return set(self.packs[pack_id])

    def packs_of(self, ids):
        ids = list(ids)
        self.bulk += len(ids)
        return {self.pack_of[i] for i in ids if i in self.pack_of}, {i for i in ids if i not in self.pack_of}


class Tier:
    def __init__(self, held=()):
        self.held = set(held)

    def missing(self, ids):
        return set(ids) - self.held


def ids(pack: str, n: int) -> list[bytes]:
    return [f"{pack}-{k}".encode() for k in range(n)]


PACKS = {p: ids(p, 50) for p in ("a", "b", "c", "d")}


def test_ids_in_pack_order_cost_one_lookup_per_pack():
    src = Source(PACKS)
    finder = PackFinder(src, Tier(), set())
    stream = [i for p in "abcd" for i in PACKS[p]]
    assert finder.packs_needed(stream[:120]) | finder.packs_needed(stream[120:]) == {"a", "b", "c", "d"}
    assert (src.lookups, src.loads, src.bulk) == (4, 4, 0)


@pytest.mark.parametrize("tier_packs,held,expect", [
    ({"a"}, set(), {"b"}),  # a pack the tier's index names: its blobs are not asked of the tier
    (set(), set(PACKS["b"][:10]), {"a", "b"}),  # some of b's blobs on the tier elsewhere: b still needed
    (set(), set(PACKS["a"]), {"b"}),  # every needed blob of a on the tier (a repacked source pack)
])
def test_only_packs_holding_blobs_the_tier_lacks(tier_packs, held, expect):
    finder = PackFinder(Source(PACKS), Tier(held), tier_packs)
    assert finder.packs_needed(PACKS["a"] + PACKS["b"]) == expect


def test_scattered_ids_fall_back_to_lookups_and_a_lost_id_fails(monkeypatch):
    monkeypatch.setattr(replication_find, "LOADED_IDS", 120)
    packs = {f"p{k}": ids(f"p{k}", 50) for k in range(20)}
    src = Source(packs)
    finder = PackFinder(src, Tier(), set())
    scattered = [v[k] for k in range(MIN_RESOLVED - 1) for v in packs.values()]  # fewer than MIN_RESOLVED a pack
    assert finder.packs_needed(scattered) == set(packs)
    assert src.loads == 1 and src.bulk == len(scattered) - (MIN_RESOLVED - 1)  # one pack loaded, then lookups
    with pytest.raises(errors.IntegrityError, match="not in the source's index"):
        finder.packs_needed([b"nowhere"] + PACKS["a"][:1])


def test_a_needed_pack_is_asked_of_the_tier_once_and_loaded_ids_stay_bounded(monkeypatch):
    monkeypatch.setattr(replication_find, "LOADED_IDS", 120)
    asked = []

    class Counting(Tier):
        def missing(self, ids):
            asked.extend(ids)
            return super().missing(ids)

    packs = {f"p{k}": ids(f"p{k}", 50) for k in range(6)}
    finder = PackFinder(Source(packs), Counting(), set())
    stream = [i for v in packs.values() for i in v]
    needed = set()
    for k in range(0, len(stream), 70):
        needed |= finder.packs_needed(stream[k:k + 70])
        assert finder.held <= 120 or len(finder.loaded) == 1
    assert needed == set(packs) and len(asked) == len(packs)
