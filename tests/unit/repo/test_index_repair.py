"""Damaged index objects, index repair from pack headers, and key objects told apart from wrong secrets."""
import json
import os

import pytest

from ragbackup import errors
from ragbackup.repo import chunking
from ragbackup.repo import writer as writer_mod
from ragbackup.repo.crypto import Unlocker
from ragbackup.repo.packs import BLOB_DATA, pack_key, read_header
from ragbackup.repo.repair import repair_index
from ragbackup.repo.repository import RepoParams, Repository
from ragbackup.repo.writer import BlobWriter
from ragbackup.storage import LocalStorage

PASS = Unlocker("passphrase", b"correct horse", "password file /etc/rag-backup/repository.pass")


@pytest.fixture
def repo_dir(tmp_path):
    return str(tmp_path / "repo")


def _init(repo_dir, tmp_path):
    return Repository.init(LocalStorage(repo_dir), PASS, str(tmp_path / "cache"), RepoParams(pack_size=64 * 1024))


def _open(repo_dir, cache):
    return Repository.open(LocalStorage(repo_dir), PASS, cache)


def _store_job(repo, tmp_path, n):
    """One job of n 40 kB blobs (2 a pack; INDEX_PACKS=2: an index object per 2 packs)."""
    data = [os.urandom(40_000) for _ in range(n)]
    w = BlobWriter(repo, str(tmp_path / "staging"))
    ids = [w.add_plain(b, BLOB_DATA, chunking.Compressor()) for b in data]
    names = w.commit()
    return dict(zip(ids, data)), names


@pytest.fixture
def two_jobs(repo_dir, tmp_path, monkeypatch):
    """A repository with 3 index objects (2 + 1); returns (blobs by id, index names of job 1, of job 2)."""
    monkeypatch.setattr(writer_mod, "INDEX_PACKS", 2)
    repo = _init(repo_dir, tmp_path)
    blobs1, names1 = _store_job(repo, tmp_path, 7)
    blobs2, names2 = _store_job(repo, tmp_path, 3)
    repo.close()
    return {**blobs1, **blobs2}, names1, names2


def _truncate(repo_dir, key, keep=40):
    path = os.path.join(repo_dir, key)
    with open(path, "r+b") as f:
        f.truncate(keep)


def test_fresh_cache_skips_a_damaged_index_object_and_reads_its_packs_headers(two_jobs, repo_dir, tmp_path):
    blobs, names1, _ = two_jobs
    _truncate(repo_dir, f"index/{names1[0]}")
    repo = _open(repo_dir, str(tmp_path / "fresh"))
    assert repo.sync_index() == 2  # of 3
    assert list(repo.index.damaged_index_files()) == [names1[0]]
    assert "index/" + names1[0] in repo.index.damaged_index_files()[names1[0]]
    assert {i: repo.read_blob(i) for i in blobs} == blobs


def test_blobs_known_only_from_a_pack_header_are_stored_again_by_new_backups(two_jobs, repo_dir, tmp_path):
    blobs, names1, _ = two_jobs
    _truncate(repo_dir, f"index/{names1[0]}")
    repo = _open(repo_dir, str(tmp_path / "fresh"))
    repo.sync_index()
    w = BlobWriter(repo, str(tmp_path / "staging"))
    ids = list(blobs)
    missing = w.missing(ids)
    # the first index object of job 1 named its first 2 packs (4 blobs): only those are missing
    assert [ids[i] for i in missing] == ids[:4]
    for i in missing:
        w.add(ids[i], BLOB_DATA, blobs[ids[i]], False, len(blobs[ids[i]]))
    w.commit()
    assert w.missing(ids) == []  # the indexed copies replaced the header-only ones
    assert {i: repo.read_blob(i) for i in blobs} == blobs


def test_repair_index_writes_new_objects_then_deletes_the_damaged_one(two_jobs, repo_dir, tmp_path):
    blobs, names1, _ = two_jobs
    _truncate(repo_dir, f"index/{names1[0]}")
    repo = _open(repo_dir, str(tmp_path / "warm"))
    dry = repair_index(repo, dry_run=True)
    assert (dry.damaged_index.keys(), dry.packs_described, dry.new_objects, dry.written) == ({names1[0]}, 2, 1, [])
    assert os.path.exists(os.path.join(repo_dir, "index", names1[0]))
    done = repair_index(repo)
    assert done.packs_described == 2 and done.blobs_described == 4 and len(done.written) == 1
    stored = set(os.listdir(os.path.join(repo_dir, "index")))
    assert names1[0] not in stored and done.written[0] in stored
    assert repo.index.damaged_index_files() == {}
    fresh = _open(repo_dir, str(tmp_path / "fresh"))
    fresh.sync_index()
    assert fresh.index.damaged_index_files() == {}
    assert {i: fresh.read_blob(i) for i in blobs} == blobs
    assert repair_index(fresh).written == []  # nothing left to do


def test_repair_cut_short_before_deleting_keeps_everything_readable_and_a_rerun_finishes(
        two_jobs, repo_dir, tmp_path, monkeypatch):
    blobs, names1, _ = two_jobs
    _truncate(repo_dir, f"index/{names1[0]}")
    repo = _open(repo_dir, str(tmp_path / "c1"))

    def crash(key):
        raise errors.StorageUnavailable("killed")
    monkeypatch.setattr(repo.storage, "delete", crash)
    with pytest.raises(errors.StorageUnavailable):
        repair_index(repo)
    monkeypatch.undo()
    fresh = _open(repo_dir, str(tmp_path / "c2"))
    fresh.sync_index()
    assert {i: fresh.read_blob(i) for i in blobs} == blobs
    again = repair_index(fresh)
    assert again.written == [] and set(again.damaged_index) == {names1[0]}
    assert names1[0] not in os.listdir(os.path.join(repo_dir, "index"))


def test_repair_reports_a_pack_whose_header_is_damaged_too(two_jobs, repo_dir, tmp_path):
    _, names1, _ = two_jobs
    repo = _open(repo_dir, str(tmp_path / "c"))
    repo.sync_index()
    packs = sorted(p for p, f in repo.index.pack_index_files().items() if f == names1[0])
    size = os.path.getsize(os.path.join(repo_dir, pack_key(packs[0])))
    _truncate(repo_dir, pack_key(packs[0]), size - 5)
    _truncate(repo_dir, f"index/{names1[0]}")
    with pytest.raises(errors.IntegrityError, match="bad trailer"):
        read_header(repo.storage, repo.cipher, packs[0], size - 5)
    result = repair_index(repo)
    assert list(result.unreadable_packs) == [packs[0]] and result.packs_described == 1
    assert packs[0] in result.summary()


def test_truncated_key_object_is_damaged_not_a_wrong_passphrase(repo_dir, tmp_path):
    _init(repo_dir, tmp_path).close()
    [key] = os.listdir(os.path.join(repo_dir, "keys"))
    _truncate(repo_dir, f"keys/{key}", 30)
    with pytest.raises(errors.KeyDamaged, match=f"key object keys/{key} is damaged") as exc:
        _open(repo_dir, str(tmp_path / "c"))
    assert exc.value.exit_code == 4


def test_a_changed_byte_in_a_key_object_is_damage(repo_dir, tmp_path):
    _init(repo_dir, tmp_path).close()
    [key] = os.listdir(os.path.join(repo_dir, "keys"))
    path = os.path.join(repo_dir, "keys", key)
    obj = json.load(open(path))
    obj["data"] = ("B" if obj["data"][5] != "B" else "C").join([obj["data"][:5], obj["data"][6:]])
    with open(path, "w") as f:
        json.dump(obj, f)
    with pytest.raises(errors.KeyDamaged, match="checksum"):
        _open(repo_dir, str(tmp_path / "c"))


def test_wrong_passphrase_names_the_password_file(repo_dir, tmp_path):
    _init(repo_dir, tmp_path).close()
    wrong = Unlocker("passphrase", b"nope", "password file /run/secrets/other.pass")
    with pytest.raises(errors.WrongKey, match="password file /run/secrets/other.pass") as exc:
        Repository.open(LocalStorage(repo_dir), wrong, str(tmp_path / "c"))
    assert exc.value.exit_code == 4
    keyfile = Unlocker("keyfile", os.urandom(32), "key file /etc/rag-backup/repo.key")
    with pytest.raises(errors.WrongKey, match="key file /etc/rag-backup/repo.key"):
        Repository.open(LocalStorage(repo_dir), keyfile, str(tmp_path / "c"))


def test_repository_written_before_key_checksums_opens_and_repairs(two_jobs, repo_dir, tmp_path):
    """Key objects without `check` (as every key was written before) open; packs always had headers."""
    blobs, names1, _ = two_jobs
    [key] = os.listdir(os.path.join(repo_dir, "keys"))
    path = os.path.join(repo_dir, "keys", key)
    obj = json.load(open(path))
    del obj["check"]
    with open(path, "w") as f:
        json.dump(obj, f, indent=1)
    repo = _open(repo_dir, str(tmp_path / "old"))
    repo.sync_index()
    assert {i: repo.read_blob(i) for i in blobs} == blobs
    for name in names1:  # an index lost entirely: every pack of job 1 is described by its header
        os.unlink(os.path.join(repo_dir, "index", name))
    result = repair_index(_open(repo_dir, str(tmp_path / "old2")))
    assert result.packs_described == 4 and result.damaged_index == {}
    fresh = _open(repo_dir, str(tmp_path / "old3"))
    fresh.sync_index()
    assert {i: fresh.read_blob(i) for i in blobs} == blobs


@pytest.mark.parametrize("field,value", [("n", 65537), ("r", "8"), ("kdf", "argon9"), ("salt", "***")])
def test_key_object_written_before_checksums_with_a_bad_field_is_damaged(repo_dir, tmp_path, field, value):
    _init(repo_dir, tmp_path).close()
    [key] = os.listdir(os.path.join(repo_dir, "keys"))
    path = os.path.join(repo_dir, "keys", key)
    obj = json.load(open(path))
    del obj["check"]
    obj[field] = value
    with open(path, "w") as f:
        json.dump(obj, f)
    with pytest.raises(errors.KeyDamaged, match=f"key object keys/{key} is damaged"):
        _open(repo_dir, str(tmp_path / "c"))
