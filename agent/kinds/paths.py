"""Kinds `paths` and `config`: plain directory trees, captured as they are.

In: a Component (its path on this host, or a directory inside a container) and the agent's
config. Out: the directory a capture reads (the host path, checked against allowed_paths, or a
scratch export of the container's directory) with facts naming only the kind; an in-place
restore of container data (the current data kept as a host copy, the new tree imported); a
health check (the directory is there and readable). In-place restores of host paths are the
generic swap (agent/placement.py) and need nothing of this module.
"""
from __future__ import annotations

import contextlib
import json
import os
from typing import Iterator

from ragbackup.config import AgentConfig

from ragbackup.agent.component import Component
from ragbackup.agent.install import Installed, Restored, keep_container_copy
from ragbackup.agent.scratch import check_allowed, staging
from ragbackup.agent.services.container_fs import export_path, import_path


@contextlib.contextmanager
def source(comp: Component, cfg: AgentConfig) -> Iterator[tuple[str, str]]:
    """(directory to capture, facts JSON)."""
    where = comp.container_path()
    facts = json.dumps({"kind": comp.kind})
    if where is None:
        yield check_allowed(comp.path, cfg), facts
        return
    with staging(cfg, comp.name) as tmp:
        export_path(where.container, where.path, tmp)
        yield tmp, facts


def install(comp: Component, restored: Restored) -> Installed:
    """Data inside a container: keep a host copy of the current data, import the restored tree."""
    where = comp.container_path()
    aside = keep_container_copy(comp, restored.staging_dir)
    import_path(where.container, restored.path, where.path, spool_dir=restored.staging_dir)
    return Installed(aside, [])


def health(comp: Component) -> tuple[bool, str]:
    if comp.container_path() is not None:
        return True, "data inside a container (not checked from the host)"
    if not os.path.isdir(comp.path):
        return False, f"{comp.path} is missing"
    if not os.access(comp.path, os.R_OK | os.X_OK):
        return False, f"{comp.path} is not readable"
    with os.scandir(comp.path) as it:
        n = sum(1 for _ in it)
    return True, f"{comp.path} readable ({n} entries at top level)"
