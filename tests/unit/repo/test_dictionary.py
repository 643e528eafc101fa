"""Compression dictionaries: training from SQLite pages, frames naming their dictionary,
storage in the repository (encrypted, authenticated) and the errors when one is missing."""
import os

import pytest

from ragbackup import errors
from ragbackup.repo import chunking, dictionary
from ragbackup.repo.crypto import Unlocker
from ragbackup.repo.packs import BLOB_DATA
from ragbackup.repo.repository import DICT_PREFIX, Repository
from ragbackup.repo.writer import BlobWriter
from ragbackup.storage import LocalStorage

from fixtures.sqlite_db import make_db

PASS = Unlocker("passphrase", b"correct horse")


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple[str, bytes]:
    db = make_db(str(tmp_path_factory.mktemp("db") / "store.sqlite3"))
    fd = os.open(db, os.O_RDONLY)
    try:
        d = dictionary.train_from_file(fd, os.fstat(fd).st_size, 16 * 1024)
    finally:
        os.close(fd)
    assert d is not None and 0 < len(d) <= dictionary.DICT_SIZE
    return db, d


def test_sample_offsets_are_whole_units_spread_over_the_file():
    offs = dictionary.sample_offsets(100 * 16384 + 5, 16384, count=10)
    assert len(offs) == 10 and offs[0] == 0 and offs[-1] == 90 * 16384
    assert all(o % 16384 == 0 for o in offs) and offs == sorted(set(offs))
    assert dictionary.sample_offsets(3 * 16384, 16384, count=10) == [0, 16384, 32768]
    assert dictionary.sample_offsets(100, 16384) == []


def test_small_database_trains_nothing(tmp_path):
    db = make_db(str(tmp_path / "small.sqlite3"), rows=100)
    fd = os.open(db, os.O_RDONLY)
    try:
        assert dictionary.train_from_file(fd, os.fstat(fd).st_size, 16384) is None
    finally:
        os.close(fd)


def test_dictionary_shrinks_pages_and_frames_name_it(trained):
    db, d = trained
    with open(db, "rb") as f:
        pages = [f.read(16384) for _ in range(200)]
    plain, with_dict = chunking.Compressor(3), chunking.Compressor(3, d)
    sizes = [sum(len(c.compress(p)[0]) for p in pages) for c in (plain, with_dict)]
    assert sizes[1] < 0.97 * sizes[0], sizes
    did = dictionary.dict_id(d)
    payload, compressed = with_dict.compress(pages[5])
    assert compressed and dictionary.frame_dict_id(payload) == did
    assert chunking.decompress(payload, True, 16384, dictionary.Dictionaries([d])) == pages[5]
    # Large chunks never use it: they need no dictionary to read.
    big, _ = with_dict.compress(b"".join(pages[:8]))
    assert dictionary.frame_dict_id(big) == 0


def test_frame_without_its_dictionary_is_an_integrity_error(trained):
    _, d = trained
    payload, _ = chunking.Compressor(3, d).compress(b"metadata page " * 1000)
    with pytest.raises(errors.IntegrityError, match=f"dictionary {dictionary.dict_id(d)}"):
        chunking.decompress(payload, True, 14000)


def test_bytes_that_are_no_dictionary_are_refused():
    with pytest.raises(errors.IntegrityError, match="not a zstd compression dictionary"):
        dictionary.Dictionaries([b"garbage" * 100])


def test_repository_stores_dictionaries_encrypted_and_reads_blobs_with_them(trained, tmp_path):
    db, d = trained
    repo = Repository.init(LocalStorage(str(tmp_path / "repo")), PASS, str(tmp_path / "cache"))
    assert repo.current_dictionary() is None
    did = repo.save_dictionary(d)
    assert repo.save_dictionary(d) == did  # idempotent
    stored = os.listdir(tmp_path / "repo" / DICT_PREFIX.rstrip("/"))
    assert stored == [f"{did:08x}"]
    raw = (tmp_path / "repo" / "dicts" / stored[0]).read_bytes()
    assert d[-4096:] not in raw  # encrypted at rest
    with open(db, "rb") as f:
        page = f.read(16384 * 3)[16384 * 2:]
    w = BlobWriter(repo, str(tmp_path / "staging"))
    blob = w.add_plain(page, BLOB_DATA, chunking.Compressor(3, d))
    w.commit()
    repo.close()

    again = Repository.open(LocalStorage(str(tmp_path / "repo")), PASS, str(tmp_path / "cache2"))
    again.sync_index()
    assert again.current_dictionary() == d
    assert again.read_blob(blob) == page


def test_tampered_dictionary_is_named(trained, tmp_path):
    _, d = trained
    repo = Repository.init(LocalStorage(str(tmp_path / "repo")), PASS, str(tmp_path / "cache"))
    did = repo.save_dictionary(d)
    repo.close()
    path = tmp_path / "repo" / "dicts" / f"{did:08x}"
    data = bytearray(path.read_bytes())
    data[100] ^= 1
    path.write_bytes(bytes(data))
    again = Repository.open(LocalStorage(str(tmp_path / "repo")), PASS, str(tmp_path / "cache2"))
    with pytest.raises(errors.IntegrityError, match=f"dicts/{did:08x} failed authentication"):
        again.dictionaries()
