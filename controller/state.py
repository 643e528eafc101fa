"""The controller's long-lived state: config, repository, catalog and agent clients.

In: a validated ControllerConfig. Out: `Controller` handing the jobs an opened
Repository (opened lazily, so the daemon starts before `ragctl init`), the
catalog kept in sync with the repository, and history for the planner.
"""
from __future__ import annotations

import glob
import os
import threading

from ragbackup import errors
from ragbackup.clock import parse_iso
from ragbackup.config import ControllerConfig, RepositoryConfig
from ragbackup.repo.crypto import Unlocker
from ragbackup.repo.repository import RepoParams, Repository
from ragbackup.storage import BucketCreator, LocalSettings, S3Settings, open_storage
from ragbackup.storage.base import Storage

from ragbackup.controller.agents import Agents
from ragbackup.controller.catalog import Catalog
from ragbackup.controller.plan import History


def make_storage(cfg: RepositoryConfig) -> Storage:
    if cfg.type == "local":
        return open_storage(LocalSettings(cfg.path))
    s3 = cfg.s3
    return open_storage(S3Settings(endpoint_url=s3.endpoint_url, bucket=s3.bucket, prefix=s3.prefix,
                                   region=s3.region, access_key_id=s3.access_key_id,
                                   secret_access_key=s3.secret_access_key,
                                   connect_timeout=s3.connect_timeout, read_timeout=s3.read_timeout))


def _read_secret(path: str, what: str) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read().strip()
    except OSError as exc:
        raise errors.ConfigError(f"cannot read repository {what} {path}: {exc.strerror}") from None


def make_unlocker(cfg: RepositoryConfig) -> Unlocker:
    """The repository unlocker; files are read on each use, so a rotated file needs no restart."""
    if cfg.key_file:
        return Unlocker("keyfile", _read_secret(cfg.key_file, "key file"))
    if cfg.password_file:
        return Unlocker("passphrase", _read_secret(cfg.password_file, "password file"))
    return Unlocker("passphrase", cfg.password.reveal().encode())


class Controller:
    def __init__(self, cfg: ControllerConfig):
        self.cfg = cfg
        self.state_dir = cfg.state_dir
        with errors.os_boundary("state_dir", "create", self.state_dir):
            os.makedirs(self.state_dir, mode=0o750, exist_ok=True)
        self.staging_dir = os.path.join(self.state_dir, "staging")
        self.agents = Agents(cfg)
        self.catalog = Catalog(os.path.join(self.state_dir, "catalog.sqlite"))
        self._repo: Repository | None = None
        self._lock = threading.Lock()
        self._storage = make_storage(cfg.repository)
        self.sweep_leftovers()

    def sweep_leftovers(self) -> None:
        """Remove a killed job's partial pack and tree files (no job runs at startup)."""
        for area, pattern in (("repository" if self.cfg.repository.type == "local" else "state_dir",
                               os.path.join(self.pack_staging, ".pack-*")),
                              ("state_dir", os.path.join(self.staging_dir, ".tree-*"))):
            for path in glob.glob(pattern):
                with errors.os_boundary(area, "remove leftover", path):
                    os.unlink(path)

    def _staging_for(self) -> str:
        """Pack staging beside a local repository (same filesystem: packs are renamed in)."""
        if self.cfg.repository.type == "local":
            return os.path.join(self.cfg.repository.path, "tmp")
        return self.staging_dir

    @property
    def pack_staging(self) -> str:
        return self._staging_for()

    def init_repository(self) -> Repository:
        with self._lock:
            params = RepoParams(pack_size=self.cfg.repository.pack_size_mib * 1024 * 1024,
                                compression_level=self.cfg.repository.compression_level)
            if isinstance(self._storage, BucketCreator):
                self._storage.create_bucket_if_missing()
            self._repo = Repository.init(self._storage, make_unlocker(self.cfg.repository),
                                         os.path.join(self.state_dir, "cache"), params)
            self.catalog.clear()
            return self._repo

    def repo(self) -> Repository:
        """The opened repository, with index and catalog synced to storage."""
        with self._lock:
            if self._repo is None:
                self._repo = Repository.open(self._storage, make_unlocker(self.cfg.repository),
                                             os.path.join(self.state_dir, "cache"))
            repo = self._repo
        repo.sync_index()
        self.sync_catalog(repo)
        return repo

    def sync_catalog(self, repo: Repository) -> None:
        stored = set(repo.snapshot_ids())
        known = self.catalog.ids()
        for sid in known - stored:
            self.catalog.remove(sid)
        for sid in sorted(stored - known):
            self.catalog.add(repo.load_snapshot(sid))

    def rebuild_catalog(self) -> int:
        repo = self.repo()
        self.catalog.clear()
        repo.rebuild_index()
        self.sync_catalog(repo)
        return len(self.catalog.ids())

    def history(self) -> list[History]:
        return [History(r.id, parse_iso(r.time), r.kind,
                        {n: c.get("capture_id", "") for n, c in r.manifest["components"].items()})
                for r in self.catalog.list()]

    def close(self) -> None:
        self.agents.close()
        self.catalog.close()
        if self._repo is not None:
            self._repo.close()
