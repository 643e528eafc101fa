"""A restore stream names a file's chunks joined in one field (Entry.chunk_ids) to an agent that
reads it, and one field an id to any other; the agent restores the same file from either.

In: tree entries as the controller reads them (a list of ids, or a ChunkIds over a joined
buffer), sent through the controller's _Sender with and without `joined`, then written by the
agent's TreeWriter. Out: the wire form each peer gets, the same restored bytes from both, and a
typed error naming the file for a joined list that is cut or doubled.
"""
from __future__ import annotations

import os

import pytest
from ragbackup import entry_parts, errors
from ragbackup.controller import restore as controller_restore
from ragbackup.repo.packs import BlobLocation
from ragbackup.repo.tree import ChunkIds, Entry
from ragbackup.v1 import agent_pb2, common_pb2

from ragbackup.agent import restore
from ragbackup.agent.servicer import RestoreStream

KEY = b"k" * 32
CHUNKS = {os.urandom(32): os.urandom(100 + i) for i in range(5)}


class _Repo:
    def __init__(self, entries: list[Entry]):
        self.entries = entries

    def read_tree(self, tree, spill=None):
        return iter(self.entries)

    def locator(self):
        return None

    def read_payloads(self, ids, locator=None):
        for i in ids:
            yield CHUNKS[i], BlobLocation(i, 0, 0, 0, len(CHUNKS[i]), len(CHUNKS[i]), "p")


def _sent_entries(entries: list[Entry], joined: bool) -> list[common_pb2.Entry]:
    """The entries a _Sender puts on the wire, parsed back as the agent receives them."""
    sent = []
    form = controller_restore.EntryForm(joined=joined)
    for msg in controller_restore._Sender(_Repo(entries), agent_pb2.RestoreStart(), [], form=form):
        if isinstance(msg, agent_pb2.RestoreCommand) and msg.HasField("entries"):
            wire = agent_pb2.RestoreCommand.FromString(msg.SerializeToString())
            sent += list(wire.entries.entries)
    return sent


def _tree() -> list[Entry]:
    ids = list(CHUNKS)
    return [Entry(b"a.bin", "file", size=sum(len(CHUNKS[i]) for i in ids[:2]), chunks=ids[:2]),
            Entry(b"b.bin", "file", size=sum(len(CHUNKS[i]) for i in ids[2:]), chunks=ChunkIds(b"".join(ids[2:]))),
            Entry(b"empty", "file", size=0)]


def _restore(tmp_path, name: str, entries: list[common_pb2.Entry | tuple]) -> dict[str, bytes]:
    """Files written from `entries`: protobuf entries, or (entry, chunk ids) as RestoreStream gives them."""
    root = tmp_path / name
    writer = restore.TreeWriter(str(root), KEY)
    for e, ids in (e if isinstance(e, tuple) else (e, None) for e in entries):
        writer.write(e, CHUNKS.__getitem__, ids)
    writer.finish()
    return {p: (root / p).read_bytes() for p in os.listdir(root)}


@pytest.mark.parametrize("joined", [True, False])
def test_each_peer_gets_its_form_and_the_agent_restores_the_same_bytes_from_both(tmp_path, joined):
    sent = _sent_entries(_tree(), joined)
    ids = list(CHUNKS)
    a, b, empty = sent
    if joined:
        assert (a.chunk_ids, b.chunk_ids) == (b"".join(ids[:2]), b"".join(ids[2:]))
        assert not a.chunks and not b.chunks
    else:
        assert (list(a.chunks), list(b.chunks)) == (ids[:2], ids[2:])
        assert not a.chunk_ids and not b.chunk_ids
    assert not empty.chunks and not empty.chunk_ids

    files = _restore(tmp_path, f"out-{joined}", sent)
    assert files == {"a.bin": CHUNKS[ids[0]] + CHUNKS[ids[1]],
                     "b.bin": b"".join(CHUNKS[i] for i in ids[2:]), "empty": b""}


@pytest.mark.parametrize("fields, message", [
    ({"chunk_ids": b"x" * 33}, "33 bytes is not a whole number of ids"),
    ({"chunk_ids": b"x" * 32, "chunks": [b"y" * 32]}, "both chunks and chunk_ids"),
])
def test_a_joined_list_cut_or_doubled_is_refused_naming_the_file(tmp_path, fields, message):
    e = common_pb2.Entry(path=b"dump.rdb", type=common_pb2.ENTRY_TYPE_FILE, size=33, **fields)
    writer = restore.TreeWriter(str(tmp_path / "out"), KEY)
    with pytest.raises(errors.IntegrityError, match=message) as info:
        writer.write(e, CHUNKS.__getitem__)
    assert "dump.rdb" in info.value.message


@pytest.mark.parametrize("parts", [True, False])
def test_an_entry_of_more_ids_than_a_part_goes_in_parts_only_to_an_agent_that_reads_them(tmp_path, monkeypatch,
                                                                                         parts):
    """b.bin names 3 ids, over a part of 2: an agent naming wire.ENTRY_PARTS gets it in two messages
    and joins them (RestoreStream); any other gets it whole. Both restore the same bytes."""
    monkeypatch.setattr(entry_parts, "PART_IDS", 2)
    form = controller_restore.EntryForm(joined=True, parts=parts)
    sent = [m if isinstance(m, agent_pb2.RestoreCommand) else agent_pb2.RestoreCommand.FromString(m)
            for m in controller_restore._Sender(_Repo(_tree()), agent_pb2.RestoreStart(), [], form=form)]
    on_wire = [agent_pb2.RestoreCommand.FromString(m.SerializeToString()) for m in sent]
    batches = [[(e.path, e.more_chunk_ids) for e in m.entries.entries] for m in on_wire if m.HasField("entries")]
    if parts:
        assert batches == [[(b"a.bin", False)], [(b"b.bin", True)], [(b"", False)], [(b"empty", False)]]
    else:
        assert batches == [[(b"a.bin", False), (b"b.bin", False), (b"empty", False)]]
    # the servicer reads the start message itself; an agent keeps a split entry's ids in its scratch dir
    got = list(RestoreStream(iter(on_wire[1:]), str(tmp_path)).entries())
    assert [e.path for e, _ in got] == [b"a.bin", b"b.bin", b"empty"]
    ids = list(CHUNKS)
    assert _restore(tmp_path, f"out-{parts}", got) == {
        "a.bin": CHUNKS[ids[0]] + CHUNKS[ids[1]], "b.bin": b"".join(CHUNKS[i] for i in ids[2:]), "empty": b""}
