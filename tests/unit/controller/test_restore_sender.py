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

    def read_tree(self, tree):
        return iter(self.entries)

    def read_payloads(self, ids):
        self.asked.append(list(ids))
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
