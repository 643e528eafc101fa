"""Prune over a real local repository: what goes, what stays, running jobs, crashes at every step."""
from __future__ import annotations

import os

import pytest

from ragbackup.repo import chunking, inflight
from ragbackup.repo.crypto import Unlocker
from ragbackup.repo.packs import BLOB_DATA
from ragbackup.repo.prune import PackUse, Pruner, classify
from ragbackup.repo.refs import RefSet
from ragbackup.repo.repository import Repository
from ragbackup.repo.tree import Entry, encode_lines
from ragbackup.repo.writer import BlobWriter
from ragbackup.storage import LocalStorage

PASS = Unlocker("passphrase", b"correct horse")


@pytest.fixture
def repo(make_repo):
    return make_repo(256 * 1024)


def _snapshot(repo, tmp_path, sid: str, files: dict[str, bytes], writer: BlobWriter | None = None) -> dict:
    """Store `files` as one component and save a snapshot naming them."""
    w = writer or BlobWriter(repo, str(tmp_path / "staging"))
    comp = chunking.Compressor()
    entries = [Entry(path=name.encode(), type="file", size=len(data),
                     chunks=[w.add_plain(data[i:i + 50_000], BLOB_DATA, comp) for i in range(0, len(data), 50_000)])
               for name, data in sorted(files.items())]
    lines = tmp_path / f"tree-{sid}"
    lines.write_bytes(b"".join(encode_lines(entries)))
    trees = w.add_tree(str(lines))
    w.commit()
    manifest = {"version": 1, "id": sid, "time": "2026-11-24T02:00:00Z", "kind": "full",
                "components": {"docs": {"kind": "paths", "tree": [t.hex() for t in trees], "stats": {}}}}
    repo.save_snapshot(manifest)
    w.close()
    return manifest


def _read_all(repo, manifest) -> dict[str, bytes]:
    comp = manifest["components"]["docs"]
    return {e.path.decode(): b"".join(repo.read_blob(c) for c in e.chunks)
            for e in repo.read_tree(bytes.fromhex(t) for t in comp["tree"])}


def _fresh(tmp_path, name="fresh") -> Repository:
    """The repository opened with an empty cache: what storage alone says."""
    r = Repository.open(LocalStorage(str(tmp_path / "repo")), PASS, str(tmp_path / name))
    r.sync_index()
    return r


def _prune(repo, tmp_path, pct=50, dry_run=False, jobs: inflight.InFlight | None = None, reader_wait=0.0):
    jobs = jobs or inflight.for_repository(repo.id)
    with Pruner(repo, jobs, str(tmp_path / "prune-staging"), pct, reader_wait=reader_wait) as p:
        plan = p.plan()
        done = {} if dry_run else p.execute()
    return plan, done


def _data_bytes(tmp_path) -> int:
    root = tmp_path / "repo" / "data"
    return sum(f.stat().st_size for f in root.rglob("*") if f.is_file())


def _files(seed: int, n=6, size=120_000) -> dict[str, bytes]:
    rnd = __import__("random").Random(seed)
    return {f"f{seed}-{i}": rnd.randbytes(size) for i in range(n)}


def test_forgotten_data_goes_and_kept_snapshots_read_from_a_fresh_cache(repo, tmp_path):
    shared = _files(1)
    old = _snapshot(repo, tmp_path, "s1", {**shared, **_files(2)})
    new = _snapshot(repo, tmp_path, "s2", {**shared, **_files(3)})
    before = _data_bytes(tmp_path)
    repo.delete_snapshot("s1")
    plan, done = _prune(repo, tmp_path, pct=0)
    assert plan.snapshots == 1 and plan.reclaim > 0 and done["packs_deleted"] > 0
    after = _data_bytes(tmp_path)
    assert after < before * 0.75
    assert _read_all(repo, new) == {**shared, **_files(3)}
    fresh = _fresh(tmp_path)
    assert _read_all(fresh, new) == {**shared, **_files(3)}
    assert {p for p, _ in fresh.index.packs()} == {o.key.rsplit("/", 1)[1] for o in fresh.storage.list("data/")}
    # a second prune finds nothing left to do
    again, _ = _prune(repo, tmp_path, pct=0)
    assert (again.delete, again.repack, again.unindexed) == ({}, {}, {})
    del old


def test_dry_run_changes_nothing(repo, tmp_path):
    _snapshot(repo, tmp_path, "s1", _files(1))
    repo.delete_snapshot("s1")
    listing = sorted(o.key for o in repo.storage.list(""))
    plan, _ = _prune(repo, tmp_path, dry_run=True)
    assert plan.delete and sorted(o.key for o in repo.storage.list("")) == listing


def test_repack_keeps_live_blobs_of_mixed_packs(repo, tmp_path):
    keep, drop = _files(5, n=2, size=40_000), _files(6, n=2, size=40_000)
    _snapshot(repo, tmp_path, "s1", {**keep, **drop})  # one pack holds both (the trees have packs of their own)
    kept = _snapshot(repo, tmp_path, "s2", keep)  # only a new tree
    repo.delete_snapshot("s1")
    plan, done = _prune(repo, tmp_path, pct=100)
    assert plan.repack == {} and len(plan.delete) == 1  # 100: never repack; s1's tree pack is wholly garbage
    plan, done = _prune(repo, tmp_path, pct=0)
    assert done["packs_repacked"] >= 1 and done["packs_written"] >= 1
    assert plan.repack_live_bytes >= 80_000
    assert _read_all(_fresh(tmp_path), kept) == keep
    again, _ = _prune(repo, tmp_path, pct=0)
    assert (again.delete, again.repack, again.unindexed) == ({}, {}, {})


def test_a_reader_that_began_before_the_swap_keeps_the_old_packs_until_the_next_prune(repo, tmp_path):
    keep, drop = _files(5, n=2, size=40_000), _files(6, n=2, size=40_000)
    _snapshot(repo, tmp_path, "s1", {**keep, **drop})
    kept = _snapshot(repo, tmp_path, "s2", keep)
    repo.delete_snapshot("s1")
    jobs = inflight.InFlight(inflight.Readers())
    packs = sorted(o.key for o in repo.storage.list("data/"))
    with jobs.readers.reading("restore job 7"):  # it may hold locations in the packs the prune replaces
        plan, done = _prune(repo, tmp_path, pct=0, jobs=jobs, reader_wait=0.05)
        assert done["packs_repacked"] >= 1 and done["packs_deleted"] == 0
        assert done["packs_deferred"] == len(plan.repack) + len(plan.delete) >= 1
        assert done["deferred_for"] == ["restore job 7"] and done["bytes_deferred"] > 0
        assert set(packs) <= {o.key for o in repo.storage.list("data/")}, "a pack the reader may need was deleted"
    assert _read_all(_fresh(tmp_path), kept) == keep
    plan, done = _prune(repo, tmp_path, pct=0, jobs=jobs)  # the reader has ended: the left packs go now
    assert done["packs_deferred"] == 0 and done["packs_deleted"] >= 1 and set(plan.unindexed) <= set(
        p.rsplit("/", 1)[-1] for p in packs)
    assert _read_all(_fresh(tmp_path, "fresh2"), kept) == keep


def test_a_reader_that_began_after_the_swap_delays_nothing(repo, tmp_path):
    _snapshot(repo, tmp_path, "s1", _files(6, n=2))
    repo.delete_snapshot("s1")
    readers = inflight.Readers()
    mark = readers.mark()
    with readers.reading("verify job 9"):
        assert readers.wait_before(mark, 5.0) == [] and readers.before(mark) == []
        assert readers.before(readers.mark()) == ["verify job 9"]


def test_waiting_for_readers_returns_when_the_last_one_ends(repo, tmp_path):
    import threading
    readers, seen = inflight.Readers(), []
    started, release = threading.Event(), threading.Event()

    def reader():
        with readers.reading("export job 3"):
            started.set()
            release.wait(10)

    t = threading.Thread(target=reader)
    t.start()
    started.wait(10)
    mark = readers.mark()
    threading.Timer(0.1, release.set).start()
    assert readers.wait_before(mark, 30.0, seen.append) == []  # returned on the reader's end, not the timeout
    assert seen == [["export job 3"]]
    t.join(10)


def test_interrupted_backup_garbage_is_collected(repo, tmp_path):
    kept = _snapshot(repo, tmp_path, "s1", _files(1))
    w = BlobWriter(repo, str(tmp_path / "staging"))
    comp = chunking.Compressor()
    for data in _files(9, n=8).values():
        w.add_plain(data, BLOB_DATA, comp)
    w.flush()  # packs stored, never indexed (the job died before commit)
    w.abort()
    plan, done = _prune(repo, tmp_path)
    assert plan.unindexed and done["packs_deleted"] >= len(plan.unindexed)
    assert _read_all(_fresh(tmp_path), kept) == _files(1)


def test_a_running_job_keeps_its_packs_and_the_blobs_it_was_told_exist(repo, tmp_path):
    old_files = _files(1)
    _snapshot(repo, tmp_path, "s1", old_files)
    repo.delete_snapshot("s1")
    comp = chunking.Compressor()
    running = BlobWriter(repo, str(tmp_path / "staging"))
    ids = [chunking.prepare(repo.id_key, d[:50_000], comp).id for d in old_files.values()]
    assert running.missing(ids) == []  # told: stored (garbage, but a backup now relies on them)
    own = running.add_plain(os.urandom(300_000), BLOB_DATA, comp)
    running.flush()  # its own pack is stored, not yet indexed
    plan, done = _prune(repo, tmp_path, pct=0)
    assert done["packs_rescued"] >= 1
    # the job commits a snapshot naming both: everything it names is there
    manifest = _snapshot(repo, tmp_path, "s2", {}, writer=running)
    del manifest
    fresh = _fresh(tmp_path)
    for blob in [*ids, own]:
        fresh.read_blob(blob)


def test_a_job_asking_after_prune_is_told_to_store_again(repo, tmp_path):
    old_files = _files(1)
    _snapshot(repo, tmp_path, "s1", old_files)
    repo.delete_snapshot("s1")
    _prune(repo, tmp_path)
    comp = chunking.Compressor()
    ids = [chunking.prepare(repo.id_key, d[:50_000], comp).id for d in old_files.values()]
    w = BlobWriter(repo, str(tmp_path / "staging"))
    assert w.missing(ids) == list(range(len(ids)))
    w.abort()


STEPS = ["_repack", "_write_packs_index", "_rewrite_affected", "_swap", "delete_index", "delete_packs"]


@pytest.mark.parametrize("step", STEPS)
def test_a_crash_at_any_step_loses_nothing_and_the_next_prune_finishes(repo, tmp_path, monkeypatch, step):
    shared = _files(1, n=3)
    _snapshot(repo, tmp_path, "s1", {**shared, **_files(2)})
    kept = _snapshot(repo, tmp_path, "s2", {**shared, **_files(3)})
    _snapshot(repo, tmp_path, "s3", _files(4))
    repo.delete_snapshot("s1")
    repo.delete_snapshot("s3")

    class Crash(BaseException):
        pass

    calls = {"delete_many": 0}
    real_delete_many = repo.storage.delete_many

    def crash(*a, **k):
        raise Crash(step)

    if step.startswith("_"):
        monkeypatch.setattr(Pruner, step, crash)
    else:
        def deleting(keys):
            calls["delete_many"] += 1
            if (step == "delete_index" and calls["delete_many"] == 1) or step == "delete_packs" and calls["delete_many"] == 2:
                real_delete_many(keys[: len(keys) // 2])  # part of it done, then the process dies
                raise Crash(step)
            real_delete_many(keys)
        monkeypatch.setattr(repo.storage, "delete_many", deleting)
    with pytest.raises(Crash):
        _prune(repo, tmp_path, pct=0)
    monkeypatch.undo()
    # the controller restarts: a new cache from storage, then the next prune
    restarted = _fresh(tmp_path, "after-crash")
    assert _read_all(restarted, kept) == {**shared, **_files(3)}
    _prune(restarted, tmp_path, pct=0)
    final = _fresh(tmp_path, "final")
    assert _read_all(final, kept) == {**shared, **_files(3)}
    again, _ = _prune(final, tmp_path, pct=0)
    assert (again.delete, again.repack, again.unindexed) == ({}, {}, {})


def test_classify():
    uses = [PackUse("a", 100, 2, 0, 90, 0), PackUse("b", 100, 2, 1, 90, 20), PackUse("c", 100, 2, 1, 90, 80),
            PackUse("d", 100, 2, 2, 90, 90), PackUse("e", 100, 1, 0, 90, 0)]
    delete, repack = classify(uses, 50, protected={"e"})
    assert [u.id for u in delete] == ["a"] and [u.id for u in repack] == ["b"]
    assert [u.id for u in classify(uses, 0, set())[1]] == ["b", "c"]
    assert classify(uses, 100, set())[1] == []


def test_refset_is_a_set(tmp_path):
    refs = RefSet(str(tmp_path / "refs.sqlite"))
    ids = [os.urandom(32) for _ in range(50_000)]
    refs.add(ids + ids[:10])
    assert refs.total() == 50_000 and ids[7] in refs and os.urandom(32) not in refs
    assert refs.has_all(ids[:700]) and not refs.has_all([*ids[:3], os.urandom(32)])
    refs.close()
    assert not os.path.exists(tmp_path / "refs.sqlite")
