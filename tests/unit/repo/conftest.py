"""Fixtures shared by the repository tests: a new repository on a local directory."""
from __future__ import annotations

from typing import Callable, Iterator

import pytest

from ragbackup.repo.crypto import Unlocker
from ragbackup.repo.repository import RepoParams, Repository
from ragbackup.storage import LocalStorage

PASS = Unlocker("passphrase", b"correct horse")


@pytest.fixture
def make_repo(tmp_path) -> Iterator[Callable[[int], Repository]]:
    """make(pack_size): a repository initialised in tmp_path/repo (cache tmp_path/cache), closed after the test."""
    opened: list[Repository] = []

    def make(pack_size: int) -> Repository:
        repo = Repository.init(LocalStorage(str(tmp_path / "repo")), PASS, str(tmp_path / "cache"),
                               RepoParams(pack_size=pack_size))
        opened.append(repo)
        return repo

    yield make
    for repo in opened:
        repo.close()
