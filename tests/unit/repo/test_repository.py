"""Repository core on a local directory: keys, packs, index, snapshots, tamper detection."""
import os
import time

import pytest

from ragbackup import errors
from ragbackup.repo import chunking, repository, tree
from ragbackup.repo.crypto import Unlocker
from ragbackup.repo.packs import BLOB_DATA, pack_key
from ragbackup.repo.repository import RepoParams, Repository
from ragbackup.repo.snapshots import allocate_id, is_snapshot_id
from ragbackup.repo.tree import Entry, check_relative_path, decode_lines, encode_lines
from ragbackup.repo import writer as writer_mod
from ragbackup.repo.writer import BlobWriter
from ragbackup.storage import LocalStorage

PASS = Unlocker("passphrase", b"correct horse")


def _repo(tmp_path, params=RepoParams(pack_size=4 * 1024 * 1024)):
    return Repository.init(LocalStorage(str(tmp_path / "repo")), PASS, str(tmp_path / "cache"), params)


def _store(repo, tmp_path, blobs):
    w = BlobWriter(repo, str(tmp_path / "staging"))
    comp = chunking.Compressor()
    ids = [w.add_plain(b, BLOB_DATA, comp) for b in blobs]
    w.commit()
    return ids


def test_round_trip_and_reopen(tmp_path):
    repo = _repo(tmp_path)
    data = [os.urandom(100_000), b"text " * 50_000, b""]
    ids = _store(repo, tmp_path, data)
    repo.close()
    again = Repository.open(LocalStorage(str(tmp_path / "repo")), PASS, str(tmp_path / "cache2"))
    assert again.sync_index() == 1
    assert [again.read_blob(i) for i in ids] == data


def test_a_job_of_many_packs_commits_several_index_objects(tmp_path, monkeypatch):
    monkeypatch.setattr(writer_mod, "INDEX_PACKS", 2)
    repo = _repo(tmp_path, RepoParams(pack_size=64 * 1024))
    data = [os.urandom(40_000) for _ in range(9)]  # 2 blobs a pack: 5 packs
    w = BlobWriter(repo, str(tmp_path / "staging"))
    ids = [w.add_plain(b, BLOB_DATA, chunking.Compressor()) for b in data]
    names = w.commit()
    assert len(names) == 3 and w.stats.packs == 5
    repo.close()
    again = Repository.open(LocalStorage(str(tmp_path / "repo")), PASS, str(tmp_path / "cache2"))
    assert again.sync_index() == 3
    assert [again.read_blob(i) for i in ids] == data


def test_index_objects_are_written_while_the_job_runs_and_name_only_stored_packs(tmp_path, monkeypatch):
    monkeypatch.setattr(writer_mod, "INDEX_PACKS", 2)
    repo = _repo(tmp_path, RepoParams(pack_size=64 * 1024))
    w = BlobWriter(repo, str(tmp_path / "staging"))
    data = [os.urandom(40_000) for _ in range(9)]  # 2 blobs a pack: 4 finished packs, a 5th open
    ids = [w.add_plain(b, BLOB_DATA, chunking.Compressor()) for b in data]
    w.flush()  # stores the 5th pack too; the upload thread has named the first 4 in 2 index objects
    w.abort()  # the job fails before commit
    assert len(w.index_names) == 2
    storage = LocalStorage(str(tmp_path / "repo"))
    assert {o.key.split("/", 1)[1] for o in storage.list("index/")} == set(w.index_names)
    repo.close()
    again = Repository.open(storage, PASS, str(tmp_path / "cache2"))
    assert again.sync_index() == 2
    # what was indexed before the failure is durable and deduplicates the retry
    assert [again.read_blob(i) for i in ids[:8]] == data[:8]
    retry = BlobWriter(again, str(tmp_path / "staging"))
    assert retry.missing(ids) == [8]
    retry.abort()


def test_small_blobs_close_packs_by_count_and_index_objects_by_blob_count(tmp_path, monkeypatch):
    monkeypatch.setattr(writer_mod, "PACK_BLOBS", 10)
    monkeypatch.setattr(writer_mod, "INDEX_BLOBS", 20)
    repo = _repo(tmp_path)  # 4 MiB packs: the size bound is never reached here
    data = [b"small blob %d " % n * 20 for n in range(45)]
    ids = _store(repo, tmp_path, data)
    assert len(list(repo.index.packs())) == 5  # 10 + 10 + 10 + 10 + 5 blobs
    # an index object per 20 stored blobs while the job ran, the rest at commit: 20, 20, 5
    assert len(repo.index.known_index_files()) == 3
    assert [repo.read_blob(i) for i in ids] == data


def test_ids_named_by_a_written_index_object_leave_the_job_set_and_still_deduplicate(tmp_path, monkeypatch):
    monkeypatch.setattr(writer_mod, "PACK_BLOBS", 10)
    monkeypatch.setattr(writer_mod, "INDEX_BLOBS", 20)
    repo = _repo(tmp_path)
    w = BlobWriter(repo, str(tmp_path / "staging"))
    comp = chunking.Compressor()
    first = [w.add_plain(b"early %d " % n * 20, BLOB_DATA, comp) for n in range(40)]
    deadline = time.monotonic() + 10
    while len(w.index_names) < 2 and time.monotonic() < deadline:  # the upload thread indexes them meanwhile
        time.sleep(0.01)
    assert len(w.index_names) == 2
    w.add_plain(b"one more", BLOB_DATA, comp)  # the job thread drops the indexed ids from its set
    assert not set(first) & w._pending
    assert w.missing(first) == [] and all(w.has(i) for i in first)
    assert w.add_plain(b"early 3 " * 20, BLOB_DATA, comp) == first[3]
    w.commit()
    assert w.stats.blobs_new == 41  # nothing of the first 40 was written twice
    w.close()


def test_wrong_passphrase_is_wrongkey(tmp_path):
    _repo(tmp_path).close()
    with pytest.raises(errors.WrongKey, match="passphrase"):
        Repository.open(LocalStorage(str(tmp_path / "repo")), Unlocker("passphrase", b"nope"), str(tmp_path / "c"))


def test_keyfile_unlocker(tmp_path):
    key = Unlocker("keyfile", os.urandom(32))
    Repository.init(LocalStorage(str(tmp_path / "r")), key, str(tmp_path / "c")).close()
    Repository.open(LocalStorage(str(tmp_path / "r")), key, str(tmp_path / "c")).close()
    with pytest.raises(errors.WrongKey):
        Repository.open(LocalStorage(str(tmp_path / "r")), PASS, str(tmp_path / "c"))


def test_missing_repository(tmp_path):
    with pytest.raises(errors.RepositoryNotFound, match="ragctl init"):
        Repository.open(LocalStorage(str(tmp_path / "none")), PASS, str(tmp_path / "c"))


def test_init_twice_refused(tmp_path):
    _repo(tmp_path).close()
    with pytest.raises(errors.RepositoryExists):
        _repo(tmp_path)


def test_flipped_byte_detected(tmp_path):
    repo = _repo(tmp_path)
    [bid] = _store(repo, tmp_path, [os.urandom(50_000)])
    loc = repo.locate(bid)
    path = os.path.join(str(tmp_path / "repo"), pack_key(loc.pack))
    with open(path, "r+b") as f:
        f.seek(loc.offset + 100)
        b = f.read(1)
        f.seek(loc.offset + 100)
        f.write(bytes([b[0] ^ 1]))
    with pytest.raises(errors.IntegrityError, match=loc.pack):
        repo.read_blob(bid)


def test_dedup_within_and_across_jobs(tmp_path):
    repo = _repo(tmp_path)
    blob = os.urandom(10_000)
    _store(repo, tmp_path, [blob, blob])
    w = BlobWriter(repo, str(tmp_path / "staging"))
    prep = chunking.prepare(repo.id_key, blob, chunking.Compressor())
    assert w.missing([prep.id]) == []
    assert w.commit() == []  # nothing new: no index object


def test_snapshot_manifest_round_trip(tmp_path):
    repo = _repo(tmp_path)
    m = {"id": "rag-system-backup-20260101_000000", "time": "x", "components": {}}
    repo.save_snapshot(m)
    assert repo.load_snapshot(m["id"]) == m
    assert repo.snapshot_ids() == [m["id"]]


def test_allocate_id_unique_in_same_second():
    import datetime as dt
    t = dt.datetime(2026, 11, 24, 2, 0, 0, tzinfo=dt.timezone.utc)
    a = allocate_id(t, [])
    b = allocate_id(t, [a])
    c = allocate_id(t, [a, b])
    assert (a, b, c) == ("rag-system-backup-20261124_020000", "rag-system-backup-20261124_020000-2",
                         "rag-system-backup-20261124_020000-3")
    assert all(is_snapshot_id(x) for x in (a, b, c))


@pytest.mark.parametrize("bad", [b"", b"/etc/passwd", b"../x", b"a/../../x", b"a//b", b"./a", b"a/\0b", b"a/."])
def test_unsafe_paths_refused(bad):
    with pytest.raises(errors.UnsafePath):
        check_relative_path(bad)


def test_tree_lines_keep_odd_names():
    entries = [Entry(b"a\nb", "file", 0o644, 1, 2, 3, 4, [b"\x01" * 32]), Entry(b"\xff\xfe bin", "dir"),
               Entry(b"l", "symlink", target=b"/abs/t\xe9")]
    data = b"".join(encode_lines(entries))
    pieces = [data[i:i + 7] for i in range(0, len(data), 7)]
    assert list(decode_lines(pieces)) == entries


def test_long_chunk_lists_are_written_in_pieces_equal_to_the_whole_line(monkeypatch):
    monkeypatch.setattr(tree, "PIECE_IDS", 3)
    ids = [os.urandom(32) for _ in range(10)]
    entries = [Entry(b"big \xe9\n\"c\":[", "file", 0o600, 1, 2, 3, 4, ids),
               Entry(b"exact", "file", chunks=ids[:3]), Entry(b"odd", "file", chunks=ids[:7], target=b"t\xff")]
    for e in entries:
        pieces = list(e.json_pieces())
        assert len(pieces) == (1 if len(e.chunks) <= 3 else 2 + -(-len(e.chunks) // 3))
        assert b"".join(pieces) == e.to_json().encode() + b"\n"
    assert list(decode_lines(encode_lines(entries))) == entries


@pytest.mark.parametrize("path", [b"plain", b'q",\\"c\\":[\\"x', b"\\", b"\xff\n]", b'a\\",\\"c\\":[\\"'])
def test_long_lines_decode_into_one_id_buffer_equal_to_json(monkeypatch, path):
    monkeypatch.setattr(tree, "COMPACT_LINE", 0)
    ids = [os.urandom(32) for _ in range(50)]
    for e in (Entry(path, "file", 0o644, 1, 2, 3, 4, ids), Entry(path, "file", chunks=ids[:1], target=b"l\\"),
              Entry(path, "file", chunks=[]), Entry(path, "symlink", target=b'",\\"c\\":["')):
        line = b"".join(e.json_pieces()).rstrip(b"\n")
        back = Entry.from_json(line)
        assert back == e and Entry.from_json(line) == back
        if len(e.chunks) > 0:
            assert isinstance(back.chunks, tree.ChunkIds)
            assert list(back.chunks) == ids[:len(e.chunks)] and back.chunks[-1] == ids[len(e.chunks) - 1]
            assert back.chunks[1:3] == ids[1:3] if len(e.chunks) > 2 else True


@pytest.mark.parametrize("ids", [[b"\x01" * 31], [b"\x01" * 32, b"\x02" * 33], [b"short"]])
def test_odd_chunk_ids_fall_back_to_plain_json(monkeypatch, ids):
    monkeypatch.setattr(tree, "COMPACT_LINE", 0)
    e = Entry(b"f", "file", chunks=ids)
    back = Entry.from_json(e.to_json())
    assert back == e and isinstance(back.chunks, list)


def test_same_second_ids_sort_numerically():
    from ragbackup.repo.snapshots import sort_key
    base = "rag-system-backup-20261124_020000"
    ids = [f"{base}-10", base, f"{base}-3", f"{base}-2"]
    assert sorted(ids, key=sort_key) == [base, f"{base}-2", f"{base}-3", f"{base}-10"]


def test_index_objects_are_the_documented_json_and_decode_back(tmp_path):
    import json

    import zstandard

    from ragbackup.repo.index import INDEX_AAD, decode_index, encode_index
    from ragbackup.repo.packs import BlobLocation
    from ragbackup.repo.writer import pack_locations, unpack_locations
    repo = _repo(tmp_path)
    packs = {f"{n:064x}": (1000 + n, [BlobLocation(os.urandom(32), n % 2, 1, 40 * i, 33 + i, 99 + i, f"{n:064x}")
                                      for i in range(n * 3)]) for n in range(4)}
    sealed = encode_index(repo.cipher, ((pid, size, locs) for pid, (size, locs) in packs.items()))
    doc = {"version": 1, "packs": [
        {"id": pid, "size": size, "blobs": [[b.id.hex(), b.type, b.flags, b.offset, b.length, b.raw_length]
                                           for b in blobs]} for pid, (size, blobs) in packs.items()]}
    plain = zstandard.ZstdDecompressor().decompressobj().decompress(repo.cipher.open(sealed, INDEX_AAD))
    assert plain == json.dumps(doc, separators=(",", ":")).encode()
    assert {pid: (size, locs) for pid, size, locs in decode_index(repo.cipher, sealed)} == packs
    for size, locs in packs.values():
        assert unpack_locations(pack_locations(locs), locs[0].pack if locs else "") == locs


def test_read_runs_merge_back_to_back_blobs_of_one_pack():
    from ragbackup.repo.packs import BlobLocation, read_runs

    def loc(pack, offset, length):
        return BlobLocation(bytes([offset % 256]) * 32, BLOB_DATA, 0, offset, length, length, pack)
    a, b, c = loc("p1", 0, 10), loc("p1", 10, 10), loc("p1", 20, 10)
    gap, other, big = loc("p1", 40, 10), loc("p2", 50, 10), loc("p2", 60, 100)
    runs = list(read_runs([a, b, c, gap, other, big], max_span=30))
    assert runs == [[a, b, c], [gap], [other], [big]]
    assert list(read_runs([c, b], 100)) == [[c], [b]]  # backwards: not contiguous in that order
    assert list(read_runs([], 100)) == []


def test_read_payloads_in_order_with_merged_reads(tmp_path):
    repo = _repo(tmp_path)
    data = [os.urandom(20_000) for _ in range(40)] + [b"text " * 5000]
    ids = _store(repo, tmp_path, data)
    order = ids[::-1] + ids[:5] + ids[:5]  # backwards, then forwards, with repeats
    got = [(loc.id, chunking.decompress(p, loc.compressed, loc.raw_length)) for p, loc in repo.read_payloads(order)]
    by_id = dict(zip(ids, data))
    assert [i for i, _ in got] == order and all(d == by_id[i] for i, d in got)


def test_read_payloads_locates_in_slices_and_keeps_order(tmp_path, monkeypatch):
    repo = _repo(tmp_path)
    data = [os.urandom(5_000) for _ in range(11)]
    ids = _store(repo, tmp_path, data)
    monkeypatch.setattr(repository, "READ_LOOKUP", 3)
    queried: list[int] = []
    lookup_many = repo.index.lookup_many
    monkeypatch.setattr(repo.index, "lookup_many", lambda part: queried.append(len(part)) or lookup_many(part))
    order = ids + ids[::-1]
    got = [(loc.id, bytes(p)) for p, loc in repo.read_payloads(order)]
    assert [i for i, _ in got] == order
    assert max(queried) <= 3 and len(queried) == -(-len(order) // 3)


def test_read_payloads_names_a_missing_or_damaged_blob(tmp_path):
    repo = _repo(tmp_path)
    ids = _store(repo, tmp_path, [os.urandom(30_000) for _ in range(3)])
    with pytest.raises(errors.IntegrityError, match="not in the index"):
        list(repo.read_payloads(ids + [b"\x01" * 32]))
    loc = repo.locate(ids[1])
    with open(os.path.join(str(tmp_path / "repo"), pack_key(loc.pack)), "r+b") as f:
        f.seek(loc.offset + 50)
        b = f.read(1)
        f.seek(loc.offset + 50)
        f.write(bytes([b[0] ^ 1]))
    with pytest.raises(errors.IntegrityError, match=f"blob {ids[1].hex()} failed authentication"):
        list(repo.read_payloads(ids))


class _VanishingStorage(LocalStorage):
    """A directory where one key is listed but gone when fetched (deleted between listing and reading)."""

    def __init__(self, root, gone):
        super().__init__(root)
        self.gone = gone

    def get(self, key):
        if key == self.gone:
            raise errors.NotFound(f"{key} vanished")
        return super().get(key)


def test_index_objects_fetched_several_at_once_load_in_order_and_keep_their_outcomes(tmp_path, monkeypatch):
    monkeypatch.setattr(writer_mod, "INDEX_PACKS", 1)
    monkeypatch.setattr(repository, "INDEX_FETCH", 2)
    repo = _repo(tmp_path, RepoParams(pack_size=64 * 1024))
    data = [os.urandom(40_000) for _ in range(14)]  # 2 blobs a pack, one pack per index object
    w = BlobWriter(repo, str(tmp_path / "staging"))
    ids = [w.add_plain(b, BLOB_DATA, chunking.Compressor()) for b in data]
    names = sorted(w.commit())
    repo.close()
    assert len(names) == 7
    damaged, vanished = names[2], names[5]
    with open(tmp_path / "repo" / "index" / damaged, "r+b") as f:
        f.truncate(40)
    again = Repository.open(_VanishingStorage(str(tmp_path / "repo"), f"index/{vanished}"), PASS,
                            str(tmp_path / "cache2"))
    added = []
    real = again.index.add_index_file
    monkeypatch.setattr(again.index, "add_index_file", lambda name, packs: (added.append(name), real(name, packs)))
    assert again.sync_index() == 5
    assert added == [n for n in names if n not in (damaged, vanished)]
    assert list(again.index.damaged_index_files()) == [damaged]
    # the damaged object's packs, and the vanished one's, are described from their own headers
    assert [again.read_blob(i) for i in ids] == data


def test_each_stream_fills_packs_of_its_own_and_trees_go_to_theirs(tmp_path):
    repo = _repo(tmp_path)
    w = BlobWriter(repo, str(tmp_path / "staging"))
    comp = chunking.Compressor()
    ids = {"docs": [], "redis": []}
    for n in range(4):  # interleaved, as two components' captures run at once
        for stream in ids:
            ids[stream].append(w.add_plain(os.urandom(5000 + n), BLOB_DATA, comp, stream))
    lines = tmp_path / "tree.jsonl"
    lines.write_bytes(b'{"path": "a"}\n' * 100)
    trees = w.add_tree(str(lines))
    w.commit()
    packs = {name: set(repo.index.pack_of_each(found).values()) for name, found in [*ids.items(), ("trees", trees)]}
    assert all(len(p) == 1 for p in packs.values()) and w.stats.packs == 3
    assert len(set.union(*packs.values())) == 3  # docs, redis and the trees each in a pack of their own
    assert [repo.read_blob(i) for i in ids["docs"]][0] and repo.read_blob(trees[0]).startswith(b'{"path"')
