"""A repository written before key checksums and index repair existed (golden/format1-repo) still works.

golden/format1-repo was written by golden/make_format1_repo.py with the code of that time:
its key object has no `check` field; its packs carry the same self-describing header as now.
"""
import os
import shutil

import pytest

from ragbackup import errors
from ragbackup.repo.crypto import Unlocker
from ragbackup.repo.repair import repair_index
from ragbackup.repo.repository import Repository
from ragbackup.storage import LocalStorage

GOLDEN = os.path.join(os.path.dirname(__file__), "golden", "format1-repo")
PASS = Unlocker("passphrase", b"format-1 passphrase", "password file /etc/rag-backup/old.pass")
SID = "rag-system-backup-20261101_000000"
FILES = {b"docs/a.txt": b"a document of format 1\n" * 200, b"docs/b.bin": bytes(range(256)) * 300}


@pytest.fixture
def old_repo(tmp_path):
    path = str(tmp_path / "repo")
    shutil.copytree(GOLDEN, path)
    return path


def _restore(repo) -> dict[bytes, bytes]:
    trees = [bytes.fromhex(t) for t in repo.load_snapshot(SID)["components"]["docs"]["tree"]]
    return {e.path: b"".join(repo.read_blob(c) for c in e.chunks) for e in repo.read_tree(trees) if e.type == "file"}


def _files(root):
    return sorted(os.path.relpath(os.path.join(d, n), root) for d, _, ns in os.walk(root) for n in ns)


def test_format1_repository_opens_and_restores_without_changing(old_repo, tmp_path):
    before = _files(old_repo)
    repo = Repository.open(LocalStorage(old_repo), PASS, str(tmp_path / "cache"))
    repo.sync_index()
    assert _restore(repo) == FILES
    assert _files(old_repo) == before


def test_format1_repository_wrong_passphrase_is_not_damage(old_repo, tmp_path):
    with pytest.raises(errors.WrongKey, match="password file /etc/rag-backup/wrong.pass"):
        Repository.open(LocalStorage(old_repo), Unlocker("passphrase", b"x", "password file /etc/rag-backup/wrong.pass"),
                        str(tmp_path / "cache"))


def test_format1_repository_index_is_rebuilt_from_its_packs(old_repo, tmp_path):
    [index] = os.listdir(os.path.join(old_repo, "index"))
    with open(os.path.join(old_repo, "index", index), "r+b") as f:
        f.truncate(64)
    repo = Repository.open(LocalStorage(old_repo), PASS, str(tmp_path / "cache"))
    repo.sync_index()
    assert _restore(repo) == FILES  # read through the pack's own header
    result = repair_index(repo)
    assert result.packs_described == 1 and list(result.damaged_index) == [index]
    fresh = Repository.open(LocalStorage(old_repo), PASS, str(tmp_path / "cache2"))
    fresh.sync_index()
    assert fresh.index.damaged_index_files() == {} and _restore(fresh) == FILES
