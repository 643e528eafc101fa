"""A restore's request stream asks the repository for chunk ids in bounded parts, in order.

In: a tree of entries, one of them naming many chunks (an RDB stored by record), and a
repository that records what read_payloads is given. Out: every id asked for once, in
tree order, no call given more than READ_IDS of them.
"""
from __future__ import annotations

import os

from ragbackup.controller import restore
from ragbackup.repo.packs import BlobLocation
from ragbackup.repo.tree import Entry
from ragbackup.v1 import agent_pb2


class _Repo:
    def __init__(self, entries: list[Entry]):
        self.entries = entries
        self.asked: list[list[bytes]] = []
        self.locators: list[object] = []

    def read_tree(self, tree, spill=None):
        return iter(self.entries)

    def locator(self):
        return object()

    def read_payloads(self, ids, locator):
        self.asked.append(list(ids))
        self.locators.append(locator)
        for i in ids:
            yield b"x", BlobLocation(i, 0, 0, 0, 1, 1, "p")


def test_chunk_ids_go_to_read_payloads_in_bounded_parts_in_order(monkeypatch):
    monkeypatch.setattr(restore, "READ_IDS", 40)
    big = [os.urandom(32) for _ in range(130)]
    small = [os.urandom(32) for _ in range(3)]
    entries = [Entry(b"a", "file", size=3, chunks=small), Entry(b"dump.rdb", "file", size=130, chunks=big)]
    repo = _Repo(entries)
    list(restore._Sender(repo, agent_pb2.RestoreStart(), []))

    assert max(len(a) for a in repo.asked) <= 40
    assert [i for a in repo.asked for i in a] == small + big
    assert len(repo.locators) == 4 and len(set(map(id, repo.locators))) == 1  # headers held across parts


class _Index:
    def __init__(self, packs: dict[bytes, str]):
        self.packs = packs
        self.asked: list[int] = []

    def pack_of_each(self, ids):
        self.asked.append(len(ids))
        return {i: self.packs[i] for i in ids if i in self.packs}


def test_the_pack_order_comes_in_parts_in_first_read_order_each_pack_once(monkeypatch):
    from ragbackup.repo.manifest import ComponentManifest, Manifest
    from ragbackup.repo.packs import pack_key

    monkeypatch.setattr(restore, "PACK_ORDER_IDS", 4)
    monkeypatch.setattr(restore, "PACK_ORDER_STRIDE", 1)
    ids = [os.urandom(32) for _ in range(10)]
    where = ["pb", "pb", "pa", "pc", "pa", "pb", "pd", "pd", "pa", "pe"]
    tree_a, tree_b = os.urandom(32), os.urandom(32)
    index = _Index({**dict(zip(ids, where)), tree_a: "pt", tree_b: "pb"})
    trees = {tree_a: [Entry(b"x", "file", size=1, chunks=ids[:6]), Entry(b"d", "dir")],
             tree_b: [Entry(b"y", "file", size=1, chunks=ids[6:] + [os.urandom(32)])]}  # one chunk unindexed

    spills = []

    class _TreeRepo:
        def read_tree(self, tree, spill=None):
            spills.append(spill)
            return iter([e for t in tree for e in trees[t]])

    manifest = Manifest("s", "2026-12-03T00:00:00Z", "full",
                        {"a": ComponentManifest("paths", tree=(tree_a.hex(),)),
                         "b": ComponentManifest("paths", tree=(tree_b.hex(),))})
    parts = list(restore.pack_orders(_TreeRepo(), index, manifest, ["b", "a"], "/staging"))
    # b first (its tree's pack, then its chunks' packs), then a's packs not already named
    assert parts == [[pack_key("pb")], [pack_key("pd"), pack_key("pa"), pack_key("pe")], [], [pack_key("pt")],
                     [pack_key("pc")], []]
    assert max(index.asked) <= 4
    assert spills == ["/staging", "/staging"]  # long id lists read into the staging dir, as the restore's


def test_the_pack_order_samples_one_chunk_id_in_a_stride(monkeypatch):
    from ragbackup.repo.manifest import ComponentManifest, Manifest
    from ragbackup.repo.packs import pack_key

    monkeypatch.setattr(restore, "PACK_ORDER_STRIDE", 3)
    ids = [os.urandom(32) for _ in range(9)]
    where = ["p1", "p1", "p1", "p2", "p2", "p2", "p3", "px", "p3"]  # px: one chunk between samples
    tree = os.urandom(32)
    index = _Index({**dict(zip(ids, where)), tree: "pt"})

    class _TreeRepo:
        def read_tree(self, tree_ids, spill=None):
            return iter([Entry(b"f", "file", size=1, chunks=ids[:5]), Entry(b"g", "file", size=1, chunks=ids[5:])])

    manifest = Manifest("s", "2026-12-03T00:00:00Z", "full", {"a": ComponentManifest("paths", tree=(tree.hex(),))})
    parts = list(restore.pack_orders(_TreeRepo(), index, manifest, ["a"]))
    assert parts == [[pack_key("pt")], [pack_key("p1"), pack_key("p2"), pack_key("p3")]]
    assert index.asked == [1, 3]  # the tree, then ids 0, 3 and 6 across both files
