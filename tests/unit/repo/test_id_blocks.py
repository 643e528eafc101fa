"""A long chunk id list passed on in blocks (tree.id_blocks), never joined whole.

In: the same ids as a list, a ChunkIds and a SpilledIds. Out: the same joined blocks of a whole
number of ids each; the tree line, the list digest, a job's claims (SeenIds) and the agent's
cache rows made from them equal those made from the list.
"""
from __future__ import annotations

import os

import pytest

from ragbackup.agent import cache
from ragbackup.controller.refcheck import list_digest
from ragbackup.repo import inflight, tree
from ragbackup.repo.tree import ChunkIds, Entry, IdBuffer, id_blocks

N = 2 * tree.PIECE_IDS + 3  # a line of three pieces, the last short


def _spilled(ids: list[bytes], tmp_path) -> tree.SpilledIds:
    buf = IdBuffer(str(tmp_path), spill_after=0)
    for i in ids:
        buf.add(i)
    got = buf.take()
    assert isinstance(got, tree.SpilledIds)
    return got


def _forms(ids: list[bytes], tmp_path) -> list:
    return [ids, ChunkIds(b"".join(ids)), ChunkIds(bytearray(b"".join(ids))), _spilled(ids, tmp_path)]


@pytest.mark.parametrize("size", [32, 100, 32 * 1000, 1 << 20])
def test_every_form_gives_the_same_whole_blocks(tmp_path, size):
    ids = [os.urandom(32) for _ in range(N)]
    for form in _forms(ids, tmp_path):
        blocks = [bytes(b) for b in id_blocks(form, size)]
        assert b"".join(blocks) == b"".join(ids), type(form)
        assert all(len(b) % 32 == 0 and 0 < len(b) <= max(32, size) for b in blocks), type(form)


def test_a_spilled_list_makes_the_line_and_the_digest_of_the_list(tmp_path):
    ids = [os.urandom(32) for _ in range(N)]
    want = Entry(path=b"dump.rdb", type=tree.FILE, size=9, chunks=ids, layout="rdb-records").to_json().encode() + b"\n"
    for form in _forms(ids, tmp_path):
        e = Entry(path=b"dump.rdb", type=tree.FILE, size=9, chunks=form, layout="rdb-records")
        pieces = list(e.json_pieces())
        assert len(pieces) > 3 and b"".join(pieces) == want, type(form)
        assert list_digest(form) == list_digest(ids), type(form)


def test_claims_taken_in_blocks_keep_every_id(monkeypatch):
    """The first `exact` ids as prefixes, in blocks of _WORDS_AT_ONCE bytes; the rest in the filter."""
    monkeypatch.setattr(inflight, "_WORDS_AT_ONCE", 32 * 7)
    ids = [os.urandom(32) for _ in range(100)]
    seen = inflight.SeenIds(exact=50, bloom_bytes=1 << 12)
    seen.add_joined(memoryview(b"".join(ids[:30])))
    seen.add_joined(b"".join(ids[30:]))
    assert all(i in seen for i in ids)
    assert len(seen._prefixes) == 50 and seen._bloom is not None
    assert sum(os.urandom(32) in seen for _ in range(200)) < 20  # not everything


def test_a_spilled_list_is_cached_in_pieces_and_read_back_spilled_or_held(tmp_path, monkeypatch):
    monkeypatch.setattr(cache, "LONG_IDS", 64 * 32)
    f = tmp_path / "dump.rdb"
    f.write_bytes(b"x")
    st = os.stat(f)
    ids = [os.urandom(32) for _ in range(N)]
    w = cache.CacheWriter(str(tmp_path / "c"), "redis", "one")
    w.record(b"dump.rdb", st, _spilled(ids, tmp_path), "rdb-records")
    w.record(b"short", st, _spilled(ids[:3], tmp_path))
    w.publish()
    r = cache.CacheReader.open(str(tmp_path / "c"), "redis", "one")
    spilled = r.lookup(b"dump.rdb", st, str(tmp_path))
    held = r.lookup(b"dump.rdb", st)
    assert isinstance(spilled.ids, tree.SpilledIds) and isinstance(held.ids, bytearray)
    assert spilled.chunks == held.chunks == ids and spilled.layout == "rdb-records"
    assert r.lookup(b"short", st, str(tmp_path)).chunks == ids[:3]
    r.close()


def test_a_full_spill_dir_is_an_os_error_naming_the_dir_and_the_work(tmp_path, monkeypatch):
    """A failed write(2) names no file: the interceptor could then name no path (core/rpc.py)."""
    from ragbackup import errors

    class _Full:
        def write(self, data):
            raise OSError(28, "No space left on device")

        def close(self):
            pass
    monkeypatch.setattr(tree.tempfile, "TemporaryFile", lambda dir=None: _Full())
    buf = IdBuffer(str(tmp_path), spill_after=32)
    buf.add(os.urandom(32))
    with pytest.raises(OSError) as got:
        buf.add(os.urandom(32))
    assert got.value.filename == str(tmp_path) and getattr(got.value, errors.OS_OP_ATTR) == "keep chunk ids in"
    assert "keep chunk ids in" in errors.no_space(got.value).message and str(tmp_path) in errors.no_space(got.value).message
