"""A replicated pack's part size; index objects of a replicated snapshot: a source index object is
copied as it is once the tier holds every pack it names, the rest are written anew, each names only
packs already on the tier, every pack reported is indexed once, and a failed write stops the copy.

In: pack ids reported to an IndexPlan, and to an IndexWriter whose copier is a recording stand-in
(the write order is what is tested, not S3). Out: the objects copied and the groups written.
"""
from __future__ import annotations

import threading

import pytest

from ragbackup import errors
from ragbackup.controller.replication import (
    INDEX_PACKS, MIN_PART, IndexPlan, IndexWriter, index_objects, pack_part_size,
)
from ragbackup.repo.index import RECOVERED

MiB = 1024 * 1024


@pytest.mark.parametrize("size,part", [
    (34 * MiB, 8.5 * MiB),  # a default pack: 4 equal parts
    (128 * MiB, 32 * MiB),
    (20 * MiB, MIN_PART),  # 8 + 8 + 4
    (6 * MiB, MIN_PART),  # one PUT (put_checked: at most part_size)
])
def test_pack_part_size(size, part):
    assert pack_part_size(size) == part


class Recorder:
    """The copier as IndexWriter sees it: a tier name, copy_index and write_index, recorded."""

    def __init__(self, fail: bool = False, refuse: frozenset = frozenset()) -> None:
        self.tier = type("T", (), {"name": "s3"})()
        self.copied: list[tuple[str, tuple[str, ...]]] = []
        self.written: list[tuple[str, ...]] = []
        self.fail, self.refuse = fail, refuse  # refuse: source objects that turn out to name other packs
        self.lock = threading.Lock()

    def copy_index(self, name: str, packs: tuple[str, ...]) -> bool:
        if self.fail:
            raise errors.StorageUnavailable("S3 endpoint gone")
        if name in self.refuse:
            return False
        with self.lock:
            self.copied.append((name, packs))
        return True

    def write_index(self, group: tuple[str, ...]) -> None:
        if self.fail:
            raise errors.StorageUnavailable("S3 endpoint gone")
        with self.lock:
            self.written.append(group)


OBJECTS = {"x": frozenset({"p1", "p2"}), "y": frozenset({"p3"}), "z": frozenset({"p4", "p5"})}


@pytest.mark.parametrize("indexed,landing,copied,rest", [
    # every pack of x, then of y: both copied as they are, as each completes
    (set(), ["p1", "p2", "p3"], ["x", "y"], []),
    # z's p5 is not needed by this snapshot: p4 is written anew at the end
    (set(), ["p2", "p4", "p1"], ["x"], [("p4",)]),
    # the tier's index names p5 already (an earlier copy): z is never copied whole
    ({"p5"}, ["p4", "p3"], ["y"], [("p4",)]),
    # a pack no source object names (recovered) and a pack landing twice
    (set(), ["q", "p3", "q", "p3"], ["y"], [("q",)]),
])
def test_index_plan_copies_an_object_once_the_tier_holds_all_its_packs(indexed, landing, copied, rest):
    plan = IndexPlan(OBJECTS, indexed)
    assert [n for n in map(plan.land, landing) if n] == copied
    assert plan.rest() == rest
    assert plan.land(landing[0]) is None and plan.rest() == []  # indexed now


def test_index_plan_groups_the_rest():
    plan = IndexPlan({}, set())
    reported = [f"p{i:04d}" for i in range(2 * INDEX_PACKS + 1)]
    for pid in reported:
        plan.land(pid)
    groups = plan.rest()
    assert [p for g in groups for p in g] == reported and max(map(len, groups)) == INDEX_PACKS


def test_index_objects_from_the_cache_leave_recovered_packs_out():
    assert index_objects({"p1": "x", "p2": "x", "p3": "y", "r": RECOVERED}) == {
        "x": frozenset({"p1", "p2"}), "y": frozenset({"p3"})}


def test_each_reported_pack_is_indexed_once_copied_or_written():
    rec = Recorder(refuse=frozenset({"z"}))
    w = IndexWriter(rec, IndexPlan(OBJECTS, set()))
    try:
        for pid in ["p1", "p4", "p2", "p5", "q", "p1"]:
            w.on_tier(pid)
        w.finish()
    finally:
        w.close()
    assert rec.copied == [("x", ("p1", "p2"))]
    assert sorted(p for g in rec.written for p in g) == ["p4", "p5", "q"]  # z refused: written anew


def test_close_without_finish_writes_nothing_more():
    rec = Recorder()
    w = IndexWriter(rec, IndexPlan(OBJECTS, set()))
    w.on_tier("p1")
    w.close()  # the copy was cut short: one pack on the tier, not indexed
    assert rec.written == [] and rec.copied == []


def test_a_failed_write_stops_the_copy():
    w = IndexWriter(Recorder(fail=True), IndexPlan(OBJECTS, set()))
    try:
        w.on_tier("p3")  # y is complete: its copy fails
        w.thread.join(5)
        with pytest.raises(errors.StorageUnavailable):
            w.on_tier("later")
        with pytest.raises(errors.StorageUnavailable):
            w.finish()
    finally:
        w.close()
