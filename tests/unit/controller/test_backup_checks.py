"""The controller's checks on what an agent sends during a capture."""
import os

import pytest

from ragbackup import entry_parts, errors
from ragbackup.agent.capture.pipeline import _entry_event, _entry_parts_events
from ragbackup.controller.backup import _Capture, _check_dictionary, to_tree_entry
from ragbackup.controller import refcheck
from ragbackup.controller.refcheck import list_digest
from ragbackup.repo import chunking, dictionary
from ragbackup.repo.crypto import Unlocker
from ragbackup.repo.repository import Repository
from ragbackup.storage import LocalStorage
from ragbackup.repo.tree import PIECE_IDS, ChunkIds
from ragbackup.v1 import agent_pb2, common_pb2

from fixtures.sqlite_db import make_db


def test_chunk_naming_an_unknown_dictionary_is_refused(tmp_path):
    db = make_db(str(tmp_path / "s.sqlite3"))
    with open(db, "rb") as f:
        d = dictionary.train_from_file(f.fileno(), len(f.read()), 16384)
    payload, compressed = chunking.Compressor(3, d).compress(b"tenant t3, page 17 " * 500)
    assert compressed
    _check_dictionary(payload, dictionary.Dictionaries([d]))
    _check_dictionary(chunking.Compressor(3).compress(b"no dictionary " * 500)[0], dictionary.Dictionaries())
    with pytest.raises(errors.IntegrityError, match="which it did not send"):
        _check_dictionary(payload, dictionary.Dictionaries())
    with pytest.raises(errors.IntegrityError, match="not a zstd frame"):
        _check_dictionary(b"\x00" * 40, dictionary.Dictionaries())


def test_only_one_dictionary_and_only_when_none_was_given(tmp_path):
    db = make_db(str(tmp_path / "s.sqlite3"))
    with open(db, "rb") as f:
        d = dictionary.train_from_file(f.fileno(), len(f.read()), 16384)
    repo = Repository.init(LocalStorage(str(tmp_path / "repo")), Unlocker("passphrase", b"pw"), str(tmp_path / "c"))
    event = agent_pb2.CaptureEvent(dictionary=d)
    cap = _Capture(repo, None, None, may_train=True)
    cap.handle(event)
    assert repo.current_dictionary() == d
    with pytest.raises(errors.IntegrityError, match="not to train"):
        cap.handle(event)
    with pytest.raises(errors.IntegrityError, match="not to train"):
        _Capture(repo, None, None, may_train=False).handle(event)
    repo.close()


def test_chunk_ids_arrive_joined_or_one_field_each_and_make_the_same_tree_line():
    ids = b"".join(os.urandom(32) for _ in range(PIECE_IDS + 3))
    base = common_pb2.Entry(path=b"dump.rdb", type=common_pb2.ENTRY_TYPE_FILE, size=9, mode=0o600)
    joined, each = (_entry_event([(base, bytearray(ids))], joined=j).entries.entries[0] for j in (True, False))
    assert joined.chunk_ids == ids and not joined.chunks
    assert not each.chunk_ids and b"".join(each.chunks) == ids
    a, b = to_tree_entry(joined), to_tree_entry(each)
    assert b"".join(a.json_pieces()) == b"".join(b.json_pieces()) == (b.to_json() + "\n").encode()
    assert list_digest(a.chunks) == list_digest(b.chunks) and list(a.chunks) == list(b.chunks)


def test_a_joined_id_list_that_is_cut_or_doubled_is_refused():
    cut = common_pb2.Entry(path=b"f", type=common_pb2.ENTRY_TYPE_FILE, chunk_ids=b"x" * 33)
    with pytest.raises(errors.IntegrityError, match="33 bytes is not a whole number of ids"):
        to_tree_entry(cut)
    both = common_pb2.Entry(path=b"f", type=common_pb2.ENTRY_TYPE_FILE, chunk_ids=b"x" * 32, chunks=[b"y" * 32])
    with pytest.raises(errors.IntegrityError, match="both chunks and chunk_ids"):
        to_tree_entry(both)


class _AllStored:
    """A BlobWriter as RefCheck asks it: every chunk stored. Notes the lists asked about whole."""

    def __init__(self):
        self.lists = []  # (digest, kind of list) of each stored_list call

    def missing(self, ids):
        return []

    def stored_list(self, digest, ids):
        self.lists.append((digest, type(ids).__name__))
        return False


@pytest.mark.parametrize("spilled", [False, True])
def test_an_entry_of_more_ids_than_a_part_crosses_in_parts_and_makes_the_same_tree_lines(monkeypatch, tmp_path,
                                                                                          spilled):
    """The agent sends an entry of more than PART_IDS ids alone, a message a part, between batches of
    the entries around it; the controller writes the tree lines it would write for whole entries.
    With a spill dir, the joined list waits in a file there (SpilledIds) while its line is written
    and its ids checked, and its digest is the one of the list held in memory."""
    monkeypatch.setattr(entry_parts, "PART_IDS", 4)
    monkeypatch.setattr(refcheck, "BIG_LIST", 8)
    small, big = bytearray(os.urandom(32 * 2)), bytearray(os.urandom(32 * 10))
    entries = [(common_pb2.Entry(path=p, type=common_pb2.ENTRY_TYPE_FILE, size=n, mode=0o600), ids)
               for p, n, ids in ((b"a", 2, small), (b"dump.rdb", 10, big), (b"z", 0, b""))]
    events = [agent_pb2.CaptureEvent.FromString(ev.SerializeToString()) for ev in _entry_parts_events(entries)]
    assert [len(ev.entries.entries) for ev in events] == [1, 1, 1, 1, 1]  # a, three parts of dump.rdb, z
    assert [len(ev.entries.entries[0].chunk_ids) // 32 for ev in events] == [2, 4, 4, 2, 0]

    repo = Repository.init(LocalStorage(str(tmp_path / "repo")), Unlocker("passphrase", b"pw"), str(tmp_path / "c"))
    tree = tmp_path / "tree.jsonl"
    writer = _AllStored()
    with open(tree, "wb") as f:
        cap = _Capture(repo, writer, f, spill=str(tmp_path) if spilled else None)
        for ev in events:
            cap.handle(ev)
        cap.handle(agent_pb2.CaptureEvent(done=agent_pb2.CaptureDone()))
    whole = _entry_event(entries, joined=True).entries.entries
    assert tree.read_bytes() == b"".join(p for e in whole for p in to_tree_entry(e).json_pieces())
    assert writer.lists == [(list_digest(ChunkIds(bytes(big))), "SpilledIds" if spilled else "ChunkIds")]
    repo.close()


def test_a_capture_that_ends_between_the_parts_of_an_entry_is_refused(monkeypatch, tmp_path):
    monkeypatch.setattr(entry_parts, "PART_IDS", 4)
    entry = common_pb2.Entry(path=b"dump.rdb", type=common_pb2.ENTRY_TYPE_FILE, size=10)
    first = next(_entry_parts_events([(entry, bytearray(os.urandom(32 * 10)))]))
    repo = Repository.init(LocalStorage(str(tmp_path / "repo")), Unlocker("passphrase", b"pw"), str(tmp_path / "c"))
    with open(tmp_path / "tree.jsonl", "wb") as f:
        cap = _Capture(repo, _AllStored(), f)
        cap.handle(first)
        with pytest.raises(errors.IntegrityError, match="ended before the last part"):
            cap.handle(agent_pb2.CaptureEvent(done=agent_pb2.CaptureDone()))
    repo.close()
