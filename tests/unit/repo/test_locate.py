"""Locating a run of small blobs through their pack's own header (core/repo/locate.py)."""
import logging
import os

from ragbackup.repo import chunking
from ragbackup.repo.crypto import Unlocker
from ragbackup.repo.locate import Locator, headers_worth_reading
from ragbackup.repo.packs import _RECORD, BLOB_DATA, BlobLocation, PackHeader, pack_key, read_header
from ragbackup.repo.repository import RepoParams, Repository
from ragbackup.repo.writer import BlobWriter
from ragbackup.storage import LocalStorage

PASS = Unlocker("passphrase", b"correct horse")
BLOBS = 3000  # one pack; read_payloads locates 2,000 ids at a time


def _store(repo, staging, blobs):
    w = BlobWriter(repo, str(staging))
    comp = chunking.Compressor()
    ids = [w.add_plain(b, BLOB_DATA, comp) for b in blobs]
    w.commit()
    return ids


def _payloads(repo, ids, locator):
    return [chunking.decompress(p, loc.compressed, loc.raw_length, repo.dictionaries())
            for p, loc in repo.read_payloads(ids, locator)]


def _flip(path, offset):
    with open(path, "r+b") as f:
        f.seek(offset)
        b = f.read(1)
        f.seek(offset)
        f.write(bytes([b[0] ^ 0x40]))


def _small_blobs():
    return [os.urandom(200) for _ in range(BLOBS)]


def test_only_packs_named_often_enough_and_not_held_are_read():
    names = ["a"] * 300 + ["b"] * 255 + ["c"] * 900 + ["d"] * 256
    assert headers_worth_reading(names, {"d"}, 256) == ["c", "a"]
    assert headers_worth_reading([], set(), 1) == []


def test_a_run_of_small_blobs_is_placed_by_its_packs_header(tmp_path):
    repo = Repository.init(LocalStorage(str(tmp_path / "repo")), PASS, str(tmp_path / "cache"),
                           RepoParams(pack_size=4 * 1024 * 1024))
    blobs = _small_blobs()
    ids = _store(repo, tmp_path / "staging", blobs)
    locator = repo.locator()
    assert _payloads(repo, ids, locator) == blobs
    assert locator.from_headers == BLOBS - 2000  # the first lookup's 2,000 came from the index


def test_a_damaged_copy_a_header_placed_is_read_again_where_the_index_says(tmp_path):
    """A blob stored twice (a repair or a concurrent job stored it again): the index names the good
    copy, the big pack's header the damaged one. The read falls back to the index's copy."""
    storage_dir = str(tmp_path / "repo")
    repo = Repository.init(LocalStorage(storage_dir), PASS, str(tmp_path / "cache"),
                           RepoParams(pack_size=4 * 1024 * 1024))
    blobs = _small_blobs()
    k = 2500
    [alone] = _store(repo, tmp_path / "s1", [blobs[k]])
    other = Repository.open(LocalStorage(storage_dir), PASS, str(tmp_path / "cache2"))  # knows no blob yet
    ids = _store(other, tmp_path / "s2", blobs)
    assert ids[k] == alone
    repo.sync_index()
    big = repo.index.lookup(ids[0]).pack
    assert repo.index.lookup(alone).pack != big  # the index keeps the copy it knew first
    size = repo.index.pack_size(big)
    [in_big] = [loc for loc in read_header(repo.storage, repo.cipher, big, size) if loc.id == alone]
    _flip(os.path.join(storage_dir, pack_key(big)), in_big.offset + 20)
    locator = repo.locator()
    assert _payloads(repo, ids, locator) == blobs
    assert locator.from_headers == BLOBS - 2000


def test_a_pack_whose_header_fails_authentication_is_left_to_the_index(tmp_path, caplog):
    storage_dir = str(tmp_path / "repo")
    repo = Repository.init(LocalStorage(storage_dir), PASS, str(tmp_path / "cache"),
                           RepoParams(pack_size=4 * 1024 * 1024))
    blobs = _small_blobs()
    ids = _store(repo, tmp_path / "staging", blobs)
    pack = repo.index.lookup(ids[0]).pack
    _flip(os.path.join(storage_dir, pack_key(pack)), repo.index.pack_size(pack) - 20)  # inside the sealed header
    locator = repo.locator()
    with caplog.at_level(logging.WARNING, logger="ragbackup.repo"):
        assert _payloads(repo, ids, locator) == blobs
    assert locator.from_headers == 0
    assert f"pack {pack}: header failed authentication" in caplog.text


class _Index:
    """The index's answers for pack "p" (a stand-in for IndexCache: lookup_many and pack_size)."""

    def __init__(self, locs):
        self.locs = {loc.id: loc for loc in locs}
        self.asked = 0

    def lookup_many(self, ids):
        self.asked += len(ids)
        return {i: self.locs[i] for i in ids if i in self.locs}

    def pack_size(self, pack):
        return 1 << 20


def test_a_header_placing_a_blob_outside_its_pack_is_let_go(caplog):
    ids = [os.urandom(32) for _ in range(8)]
    locs = [BlobLocation(i, 0, 0, 8 + 100 * n, 100, 100, "p") for n, i in enumerate(ids)]
    records = b"".join(_RECORD.pack(*loc[:6]) for loc in locs[:-1])
    records += _RECORD.pack(ids[-1], 0, 0, 1 << 30, 100, 100)  # past the blobs' end
    index = _Index(locs)
    locator = Locator(index, lambda pack, size: PackHeader(records, 8 + 100 * len(ids)), min_ids=4)
    assert locator.locate(ids[:4]) == locs[:4]  # from the index; "p" is held now
    with caplog.at_level(logging.WARNING, logger="ragbackup.repo"):
        assert locator.locate(ids[4:]) == locs[4:]
    assert locator.from_headers == 3 and index.asked == 5  # the last id went back to the index
    assert "pack p: header places a blob outside the pack" in caplog.text
