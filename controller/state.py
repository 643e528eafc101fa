"""The controller's long-lived state: config, named repositories, catalog, agents.

In: a validated ControllerConfig. Out: `Controller` holding the repositories by name
(opened lazily, so the daemon starts before `ragctl init`, and synced once), the catalog
kept in sync with the primary repository, and history for the planner. Jobs reach it
through the runner's JobContext (jobs/runner.py).
"""
from __future__ import annotations

import glob
import os

from ragbackup.clock import parse_iso
from ragbackup import errors
from ragbackup.config import ControllerConfig
from ragbackup.repo.repository import Repository

from ragbackup.controller.agents import Agents
from ragbackup.controller.catalog import Catalog, load_into_catalog
from ragbackup.controller.policy.plan import History
from ragbackup.controller.replication_queue import ReplicationQueue
from ragbackup.controller.repositories import PRIMARY, Repositories, make_storage, make_unlocker

SOURCE_ALIASES = {"local": PRIMARY, "": PRIMARY}  # `--from local` names the primary repository

__all__ = ["Controller", "make_storage", "make_unlocker"]


class Controller:
    def __init__(self, cfg: ControllerConfig):
        self.cfg = cfg
        self.state_dir = cfg.state_dir
        with errors.os_boundary("state_dir", "create", self.state_dir):
            os.makedirs(self.state_dir, mode=0o750, exist_ok=True)
        self.staging_dir = os.path.join(self.state_dir, "staging")
        self.agents = Agents(cfg)
        self.catalog_path = os.path.join(self.state_dir, "catalog.sqlite")
        self.catalog = Catalog(self.catalog_path)
        self.repositories = Repositories({PRIMARY: cfg.repository}, self.state_dir, cfg.tiers)
        self.tier_catalogs = {name: Catalog(os.path.join(self.state_dir, f"catalog-{name}.sqlite"))
                              for name in cfg.tiers}  # each rebuilt from its tier when opened
        self.replication = ReplicationQueue(self.catalog_path)
        self.repositories.on_open(self._opened)
        self.sweep_leftovers()

    def sweep_leftovers(self) -> None:
        """Remove a killed job's partial pack and tree files (no job runs at startup)."""
        for area, pattern in (("repository" if self.cfg.repository.type == "local" else "state_dir",
                               os.path.join(self.pack_staging, ".pack-*")),
                              ("state_dir", os.path.join(self.staging_dir, ".tree-*"))):
            for path in glob.glob(pattern):
                with errors.os_boundary(area, "remove leftover", path):
                    os.unlink(path)

    @property
    def pack_staging(self) -> str:
        """Pack staging beside a local repository (same filesystem: packs are renamed in)."""
        if self.cfg.repository.type == "local":
            return os.path.join(self.cfg.repository.path, "tmp")
        return self.staging_dir

    def init_repository(self) -> Repository:
        repo = self.repositories.init(PRIMARY)
        self.catalog.clear()  # a new repository: nothing the catalog knew is in it
        return repo

    def repository(self, name: str = PRIMARY) -> Repository:
        """The opened repository `name` (index, and the primary's catalog, synced when it was opened)."""
        return self.repositories.get(name)

    def repo(self) -> Repository:
        return self.repository(PRIMARY)

    def refresh_unknown(self, *refs: str) -> None:
        """Sync the primary again when a snapshot id is not in the catalog (another writer may have added it)."""
        known = self.catalog.ids() if self.repositories.is_open(PRIMARY) else set()
        if any(r and r != "latest" and r not in known for r in refs):
            self.repositories.refresh(PRIMARY)

    def _opened(self, name: str, repo: Repository) -> None:
        self.sync_catalog(repo, self.catalog_of(name))

    def source(self, name: str) -> str:
        """The repository a `--from`/`--tier` value names: "local" and "" are the primary; UsageError otherwise."""
        name = SOURCE_ALIASES.get(name, name)
        if name != PRIMARY and name not in self.cfg.tiers:
            raise errors.UsageError(f"no tier named {name!r} (configured: "
                                    f"{', '.join(['local', *self.cfg.tiers]) })")
        return name

    def catalog_of(self, name: str) -> Catalog:
        """The primary's catalog, or a tier's own (rebuilt from that tier's snapshots)."""
        return self.catalog if name == PRIMARY else self.tier_catalogs[name]

    def synced(self, name: str) -> tuple[Repository, Catalog]:
        """Repository `name` opened and its catalog in line with its snapshots (one listing)."""
        repo = self.repositories.get(name)
        catalog = self.catalog_of(name)
        self.sync_catalog(repo, catalog)
        return repo, catalog

    def sync_catalog(self, repo: Repository, catalog: Catalog | None = None) -> None:
        """Add stored snapshots; a known one whose object is gone is kept as vanished (see catalog.py)."""
        catalog = catalog or self.catalog
        stored = set(repo.snapshot_ids())
        known = catalog.ids()
        for sid in known - stored:
            catalog.mark_vanished(sid)
        for sid in sorted(stored - known):
            load_into_catalog(repo, catalog, sid)

    def rebuild_catalog(self) -> int:
        repo = self.repo()
        self.catalog.clear()
        repo.rebuild_index()
        self.sync_catalog(repo)
        return len(self.catalog.ids())

    def history(self, name: str = PRIMARY) -> list[History]:
        return [History(r.id, parse_iso(r.time), r.kind, r.manifest.captures()) for r in self.catalog_of(name).list()]

    def close(self) -> None:
        self.agents.close()
        self.catalog.close()
        self.replication.close()
        for catalog in self.tier_catalogs.values():
            catalog.close()
        self.repositories.close()
