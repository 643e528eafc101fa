"""Named repositories: opened and synced once, synced again only on refresh; unknown names refused.

In: a local repository in tmp_path. Out: how often the open hooks (the catalog's sync) ran.
"""
from __future__ import annotations

import pytest
from ragbackup import errors
from ragbackup.config import RepositoryConfig, TierConfig
from ragbackup.secret import Secret

from ragbackup.controller.repositories import PRIMARY, Repositories


@pytest.fixture
def repos(tmp_path):
    cfg = RepositoryConfig(type="local", path=str(tmp_path / "repo"), password=Secret("pw"), pack_size_mib=1)
    r = Repositories({PRIMARY: cfg}, str(tmp_path / "state"))
    yield r
    r.close()


def test_a_repository_is_opened_and_synced_once(repos):
    opened = []
    repos.on_open(lambda name, repo: opened.append(name))
    with pytest.raises(errors.RepositoryNotFound):
        repos.get()
    created = repos.init()
    assert opened == [PRIMARY] and repos.is_open()
    assert repos.get() is created and repos.get(PRIMARY) is created
    assert opened == [PRIMARY], "get() after init neither reopens nor syncs"
    assert repos.refresh() is created and opened == [PRIMARY, PRIMARY]


def test_a_closed_repository_is_opened_again_once(repos):
    repos.init()
    repos.close()
    opened = []
    repos.on_open(lambda name, repo: opened.append(name))
    first = repos.get()
    assert repos.get() is first and opened == [PRIMARY]


def test_unknown_names_are_a_usage_error(repos):
    with pytest.raises(errors.UsageError, match="no repository named 'dr' .configured: primary."):
        repos.get("dr")


def test_a_tier_reads_through_a_pack_cache_of_its_configured_memory(tmp_path):
    """[tiers.NAME] restore_memory and read_ahead are the budget and read-ahead of the tier's pack cache."""
    cfg = RepositoryConfig(type="local", path=str(tmp_path / "repo"), password=Secret("pw"), pack_size_mib=1)
    tier = TierConfig("s3", "bucket", endpoint_url="http://127.0.0.1:9", restore_memory=96 * 2**20, read_ahead=0)
    r = Repositories({PRIMARY: cfg}, str(tmp_path / "state"), {"s3": tier})
    try:
        assert r.storage("s3").budget == 96 * 2**20 and r.storage("s3").ahead == 0
    finally:
        r.close()
