"""Chunk lists known to be wholly stored (IndexCache verified_lists) and the claims for prune.

In: a real local repository, a BlobWriter storing a list of blobs, and the index changes that take
blobs out (prune's swap, a vanished index object, a rebuild). Out: a list recorded at the removal
count of its backup's start is found whole until anything leaves the index; then it is checked id
by id again, so a lost chunk still fails the backup; a list found whole is claimed for prune.
"""
from __future__ import annotations

import os

import pytest

from ragbackup import errors
from ragbackup.controller import refcheck
from ragbackup.repo import chunking, inflight
from ragbackup.repo.crypto import Unlocker
from ragbackup.repo.packs import BLOB_DATA
from ragbackup.repo.writer import BlobWriter

PASS = Unlocker("passphrase", b"correct horse")
N = refcheck.BIG_LIST + 4


@pytest.fixture
def repo(make_repo):
    return make_repo(64 * 1024)


def _store(repo, tmp_path) -> list[bytes]:
    """N small blobs stored and committed by one writer, as a backup of one big file would."""
    w = BlobWriter(repo, str(tmp_path / "staging"))
    comp = chunking.Compressor()
    ids = [w.add_plain(os.urandom(700), BLOB_DATA, comp) for _ in range(N)]
    w.commit()
    w.close()
    return ids


def _check(repo, tmp_path, ids: list[bytes]) -> tuple[refcheck.RefCheck, BlobWriter]:
    w = BlobWriter(repo, str(tmp_path / "staging"))
    check = refcheck.RefCheck(w)
    try:
        check.add(ids)
        check.finish()
    finally:
        check.close()
    return check, w


def test_a_list_marked_after_commit_is_found_whole_and_claimed(repo, tmp_path):
    removals = repo.index.removals()
    ids = _store(repo, tmp_path)
    digest = refcheck.list_digest(ids)
    assert not repo.index.is_verified(digest)
    first, w = _check(repo, tmp_path, ids)
    assert first.digests == [digest] and first.whole == 0
    w.close()
    repo.index.mark_verified(first.digests, removals)
    again, w = _check(repo, tmp_path, ids)
    assert again.whole == 1 and again.digests == []
    assert all(i in w.refs.seen for i in ids)  # claimed: a prune running now keeps them
    w.close()


@pytest.mark.parametrize("removal", ["prune swap", "vanished index object", "rebuild"])
def test_anything_leaving_the_index_makes_the_list_checked_again(repo, tmp_path, removal):
    removals = repo.index.removals()
    ids = _store(repo, tmp_path)
    repo.index.mark_verified([refcheck.list_digest(ids)], removals)
    assert repo.index.is_verified(refcheck.list_digest(ids))
    lost = repo.index.lookup(ids[5]).pack
    if removal == "prune swap":
        repo.index.replace_index_files([], [], [lost])
    elif removal == "vanished index object":
        repo.index.forget_index_file(repo.index.pack_index_files()[lost])
    else:
        repo.index.clear()
    assert repo.index.removals() > removals and not repo.index.is_verified(refcheck.list_digest(ids))
    with pytest.raises(errors.IntegrityError, match="chunks named by the agent's cache are not in the repository"):
        _check(repo, tmp_path, ids)


def test_a_list_marked_with_a_stale_removal_count_is_not_recorded(repo, tmp_path):
    removals = repo.index.removals()
    ids = _store(repo, tmp_path)
    repo.index.replace_index_files([], [], [])  # a prune's swap while the backup ran
    repo.index.mark_verified([refcheck.list_digest(ids)], removals)
    assert not repo.index.is_verified(refcheck.list_digest(ids))


def test_seen_ids_keep_every_id_exactly_then_in_a_bloom_filter():
    ids = [os.urandom(32) for _ in range(3000)]
    seen = inflight.SeenIds(exact=1000, bloom_bytes=64 * 1024)
    seen.add_many(ids[:10])
    assert ids[3] in seen and ids[20] not in seen
    seen.add_many(iter(ids[10:]))  # past `exact`: the rest go to the filter
    assert all(i in seen for i in ids)
    others = [os.urandom(32) for _ in range(2000)]
    assert sum(i in seen for i in others) < 20  # the filter's false positives: few
    with pytest.raises(ValueError, match="32 bytes"):
        seen.add_many([b"short"])
    more = [os.urandom(32) for _ in range(5)]
    seen.add_joined(b"".join(more))  # the same, from the ids joined (a ChunkIds' buffer)
    assert all(i in seen for i in more)
    with pytest.raises(ValueError, match="32 bytes"):
        seen.add_joined(b"x" * 40)
