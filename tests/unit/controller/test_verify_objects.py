"""Verify reads every key, index and snapshot object; the catalog remembers vanished snapshots."""
import json
import os

import pytest

from ragbackup.repo.manifest import Manifest
from ragbackup import errors
from ragbackup.controller.catalog import Catalog, repository_warnings
from ragbackup.controller.verify import run_verify
from ragbackup.repo import chunking
from ragbackup.repo.crypto import MasterKey, Unlocker
from ragbackup.repo.packs import BLOB_DATA
from ragbackup.repo.repository import Repository
from ragbackup.repo.writer import BlobWriter
from ragbackup.storage import LocalStorage

PASS = Unlocker("passphrase", b"pw")


def _report(repo, vanished=None):
    """run_verify's details and whether it raised."""
    result, raised = None, False
    try:
        for ev in run_verify(repo, False, vanished):
            if ev.WhichOneof("kind") == "result":
                result = ev.result
    except errors.IntegrityError:
        raised = True
    return json.loads(result.details_json), result.summary, raised


@pytest.fixture
def repo(tmp_path):
    r = Repository.init(LocalStorage(str(tmp_path / "repo")), PASS, str(tmp_path / "cache"))
    w = BlobWriter(r, str(tmp_path / "staging"))
    bid = w.add_plain(b"x" * 1000, BLOB_DATA, chunking.Compressor())
    w.commit()
    r.save_snapshot({"id": "rag-system-backup-20260101_000000", "time": "2026-01-01T00:00:00Z",
                     "components": {"c": {"tree": [], "stats": {}}}})
    assert r.read_blob(bid)
    yield r
    r.close()


def test_clean_repository_verifies(repo):
    d, summary, raised = _report(repo)
    assert d["ok"] and not raised and "1 index objects" in summary


def test_a_damaged_second_key_object_is_named_while_the_first_opens(repo, tmp_path):
    other = repo.add_key(Unlocker("passphrase", b"other"), MasterKey.generate())
    path = os.path.join(str(tmp_path / "repo"), other)
    with open(path, "r+b") as f:
        f.truncate(20)
    d, summary, raised = _report(repo)
    assert raised and list(d["damaged_keys"]) == [other] and other in summary


def test_a_damaged_index_object_is_named_though_the_cache_holds_its_entries(repo, tmp_path):
    [name] = os.listdir(str(tmp_path / "repo" / "index"))
    with open(str(tmp_path / "repo" / "index" / name), "r+b") as f:
        f.truncate(50)
    d, summary, raised = _report(repo)
    assert raised and list(d["damaged_index_objects"]) == [name] and f"index/{name}" in summary


def test_vanished_snapshots_fail_verify(repo):
    d, summary, raised = _report(repo, {"rag-system-backup-20250101_000000": "2025-01-01T00:00:00Z"})
    assert raised and "rag-system-backup-20250101_000000" in d["vanished_snapshots"]
    assert "vanished snapshot(s) rag-system-backup-20250101_000000" in summary


def test_catalog_keeps_a_vanished_snapshot_until_cleared_or_removed(tmp_path, repo):
    cat = Catalog(str(tmp_path / "catalog.sqlite"))
    for sid in ("rag-system-backup-20260101_000000", "rag-system-backup-20260102_000000"):
        cat.add(Manifest(id=sid, time=sid[-15:], kind="full", components={}))
    cat.mark_vanished("rag-system-backup-20260102_000000")
    assert cat.ids() == {"rag-system-backup-20260101_000000"}
    assert cat.vanished() == {"rag-system-backup-20260102_000000": "20260102_000000"}
    [warning] = repository_warnings(repo, cat)
    assert "rag-system-backup-20260102_000000" in warning and "vanished" in warning
    cat.remove("rag-system-backup-20260102_000000")  # a deliberate deletion forgets it
    assert cat.vanished() == {}
    cat.mark_vanished("rag-system-backup-20260101_000000")
    cat.clear()
    assert cat.vanished() == {} and cat.ids() == set()
    cat.close()
