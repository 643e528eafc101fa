"""Named repositories: the controller's storage tiers, each opened and synced once.

In: the configured repositories by name: `primary`, from [repository], and each offsite
tier of [tiers.NAME] (an S3 bucket holding a copy of the same repository, opened with the
primary's passphrase or key file). Out: `Repositories.get(name)`, an opened Repository whose index was
synced when it was opened (the controller is its only writer, so it stays in sync), and
`on_open` hooks (the catalog syncs the primary's snapshots there); `refresh` syncs again
when a caller names something the controller has not seen (another writer added it).
"""
from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from typing import Callable

from ragbackup import errors
from ragbackup.config import RepositoryConfig, TierConfig
from ragbackup.repo.crypto import Unlocker
from ragbackup.repo.repository import RepoParams, Repository
from ragbackup.secret import read_private
from ragbackup.storage import BucketCreator, LocalSettings, S3Settings, open_storage, retrying
from ragbackup.storage.base import Storage
from ragbackup.storage.packcache import PackCache

PRIMARY = "primary"
TIER_ATTEMPTS = 2


def make_storage(cfg: RepositoryConfig) -> Storage:
    if cfg.type == "local":
        return open_storage(LocalSettings(cfg.path))
    s3 = cfg.s3
    return open_storage(S3Settings(endpoint_url=s3.endpoint_url, bucket=s3.bucket, prefix=s3.prefix,
                                   region=s3.region, access_key_id=s3.access_key_id,
                                   secret_access_key=s3.secret_access_key,
                                   connect_timeout=s3.connect_timeout, read_timeout=s3.read_timeout,
                                   max_attempts=s3.max_attempts, deadline=s3.deadline))


def make_tier_storage(tier: TierConfig) -> Storage:
    """The S3 stack of a tier: its bucket, credentials (or the AWS chain), timeouts and storage classes.

    A tier with [tiers.NAME.object_lock] writes every object with its own retain-until date and deletes
    by delete markers (storage/versions.py); its bucket must have object lock enabled (lockkeep.check).
    """
    from ragbackup.storage.s3 import S3Storage

    settings = S3Settings(endpoint_url=tier.endpoint_url, bucket=tier.bucket, prefix=tier.prefix, region=tier.region,
                          access_key_id=tier.access_key_id, secret_access_key=tier.secret_access_key,
                          connect_timeout=tier.connect_timeout, read_timeout=tier.read_timeout,
                          max_attempts=tier.max_attempts, storage_class_for=tier.storage_classes())
    if tier.object_lock is not None:
        from ragbackup.controller.lockkeep import versioned
        return retrying(versioned(tier), attempts=TIER_ATTEMPTS)
    # TIER_ATTEMPTS tries of max_attempts requests each: an endpoint that stops answering fails a call within
    # TIER_ATTEMPTS * max_attempts * (connect_timeout + read_timeout) plus under 1 s of backoff (docs/OFFSITE.md).
    return retrying(S3Storage(settings), attempts=TIER_ATTEMPTS)


def _read_secret(path: str, what: str) -> bytes:
    return read_private(path, f"repository {what}").strip()


def make_unlocker(cfg: RepositoryConfig) -> Unlocker:
    """The repository unlocker; files are read on each use, so a rotated file needs no restart."""
    if cfg.key_file:
        return Unlocker("keyfile", _read_secret(cfg.key_file, "key file"), f"key file {cfg.key_file}")
    if cfg.password_file:
        return Unlocker("passphrase", _read_secret(cfg.password_file, "password file"),
                        f"password file {cfg.password_file}")
    return Unlocker("passphrase", cfg.password.reveal().encode(), "repository.password in the controller config")


@dataclass
class _Tier:
    name: str
    cfg: RepositoryConfig
    storage: Storage
    cache_dir: str
    repo: Repository | None = None


OpenHook = Callable[[str, Repository], None]


class Repositories:
    """Repositories by name; each is opened (and its index synced) on first use, then kept."""

    def __init__(self, configs: dict[str, RepositoryConfig], state_dir: str,
                 tiers: dict[str, TierConfig] | None = None):
        self._tiers = {name: _Tier(name, cfg, make_storage(cfg), os.path.join(state_dir, _cache_name(name)))
                       for name, cfg in configs.items()}
        unlocking = configs.get(PRIMARY) or next(iter(configs.values()))
        for name, tier in (tiers or {}).items():  # a tier opens with the primary's secret: it is the same repository
            storage = PackCache(make_tier_storage(tier), budget=tier.restore_memory, ahead=tier.read_ahead)
            self._tiers[name] = _Tier(name, unlocking, storage, os.path.join(state_dir, _cache_name(name)))
        self._hooks: list[OpenHook] = []
        self._lock = threading.Lock()

    def names(self) -> list[str]:
        return list(self._tiers)

    def config(self, name: str = PRIMARY) -> RepositoryConfig:
        return self._tier(name).cfg

    def storage(self, name: str = PRIMARY) -> Storage:
        """The storage stack of repository `name` (replication writes a tier through it)."""
        return self._tier(name).storage

    def target(self, name: str, source: Repository) -> Repository:
        """Repository `name` opened as a copy of `source`, even before it holds a `config` (replication's target).

        Same master key and id as `source`; RepositoryError when `name` already holds another repository.
        """
        tier = self._tier(name)
        with self._lock:
            if tier.repo is None:
                try:
                    tier.repo = Repository.open(tier.storage, make_unlocker(tier.cfg), tier.cache_dir)
                except errors.RepositoryNotFound:  # its first copy: the source's key, no second scrypt
                    tier.repo = Repository(tier.storage, source.master, source.id, source.params, tier.cache_dir)
                tier.repo.sync_index()
            if tier.repo.id != source.id:
                raise errors.RepositoryError(
                    f"{tier.storage.describe()} holds repository {tier.repo.id}, not {source.id} "
                    f"(use another bucket or prefix for tier {name!r})")
            return tier.repo

    def add_view(self, name: str, storage: Storage, cache_dir: str) -> None:
        """A read-only repository under `name` (a tier as of a time, controller/asof.py), opened like the others."""
        with self._lock:
            if name not in self._tiers:
                self._tiers[name] = _Tier(name, self._tiers[PRIMARY].cfg, storage, cache_dir)

    def is_open(self, name: str = PRIMARY) -> bool:
        return self._tier(name).repo is not None

    def on_open(self, hook: OpenHook) -> None:
        """Call `hook(name, repo)` whenever a repository is opened or initialised."""
        self._hooks.append(hook)

    def get(self, name: str = PRIMARY) -> Repository:
        """The opened repository `name` (opened and synced on the first call only)."""
        tier = self._tier(name)
        with self._lock:
            if tier.repo is None:
                repo = self._open(name, tier)
                repo.sync_index()
                self._opened(name, repo)
                tier.repo = repo
            return tier.repo

    @staticmethod
    def _open(name: str, tier: _Tier) -> Repository:
        try:
            return Repository.open(tier.storage, make_unlocker(tier.cfg), tier.cache_dir)
        except errors.RepositoryNotFound:
            if name == PRIMARY:
                raise
            raise errors.RepositoryNotFound(f"tier {name!r} holds no repository yet at {tier.storage.describe()} "
                                            f"(`ragctl replicate --tier {name}` copies one there)") from None

    def refresh(self, name: str = PRIMARY) -> Repository:
        """Sync repository `name` again (index, then the on_open hooks): for what another writer added."""
        tier = self._tier(name)
        with self._lock:
            if tier.repo is None:
                tier.repo = Repository.open(tier.storage, make_unlocker(tier.cfg), tier.cache_dir)
            tier.repo.sync_index()
            self._opened(name, tier.repo)
            return tier.repo

    def init(self, name: str = PRIMARY) -> Repository:
        """Create repository `name` in its (empty) storage and keep it open."""
        tier = self._tier(name)
        with self._lock:
            params = RepoParams(pack_size=tier.cfg.pack_size_mib * 1024 * 1024,
                                compression_level=tier.cfg.compression_level)
            if isinstance(tier.storage, BucketCreator):
                tier.storage.create_bucket_if_missing()
            repo = Repository.init(tier.storage, make_unlocker(tier.cfg), tier.cache_dir, params)
            if tier.repo is not None:
                tier.repo.close()
            self._opened(name, repo)
            tier.repo = repo
            return repo

    def close(self) -> None:
        with self._lock:
            for tier in self._tiers.values():
                if tier.repo is not None:
                    tier.repo.close()
                    tier.repo = None

    def _opened(self, name: str, repo: Repository) -> None:
        for hook in self._hooks:
            hook(name, repo)

    def _tier(self, name: str) -> _Tier:
        try:
            return self._tiers[name]
        except KeyError:
            raise errors.UsageError(f"no repository named {name!r} (configured: {', '.join(self._tiers)})") from None


def _cache_name(name: str) -> str:
    """The primary keeps the cache directory it always had."""
    return "cache" if name == PRIMARY else f"cache-{name}"
