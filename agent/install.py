"""The steps every kind's install shares: put a restored tree in service where a rename will not do.

In: a Component restored in place whose data a database service guards (redis, chroma) or a
container holds, and the restored tree (`Restored`: where it was written, the capture's facts,
--force). Out: the service a database restore stops (UsageError when none is configured), the
current container data kept as a host copy beside the agent's staging dir (never deleted), and
the new tree imported into the container with the owner and mode the old one had. Each kind's
own install (agent/kinds/*/place.py) calls these and returns an `Installed`.
"""
from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass

from ragbackup import clock, errors
from ragbackup.mismatch import Mismatch

from ragbackup.agent.component import Component
from ragbackup.agent.placement import aside_path, take_owner_and_mode
from ragbackup.agent.scratch import SCRATCH_PREFIX
from ragbackup.agent.services.base import ServiceController, make_controller
from ragbackup.agent.services.container_fs import export_path, import_path


@dataclass(frozen=True)
class Restored:
    """A tree the Restore stream wrote, ready to be put in service."""

    path: str  # the restored tree (consumed by the install)
    facts: dict  # recorded at capture time
    force: bool  # --force: place it even where a check says the service may not read it
    staging_dir: str  # the agent's staging dir (host copies of container data go beside it)


@dataclass
class Installed:
    aside: str  # where the data it replaced went ("" when there was none)
    mismatches: list[Mismatch]


def database_service(comp: Component) -> ServiceController:
    """The service an in-place database restore stops; UsageError when none is configured."""
    service = make_controller(comp.service())
    if service.describe() == "no service":
        raise errors.UsageError(
            f"component {comp.name}: an in-place {comp.kind} restore must stop the database first; set "
            "`service` (\"docker:CONTAINER\" or \"systemd:UNIT\") or restore with --target")
    return service


def keep_container_copy(comp: Component, staging_dir: str) -> str:
    """Export the component's current container data to `STAGING/NAME.corrupted.STAMP` (never deleted)."""
    where = comp.container_path()
    aside = aside_path(os.path.join(staging_dir, comp.name), clock.stamp(clock.SYSTEM.now()))
    export_path(where.container, where.path, aside)
    return aside


def in_container(comp: Component, staging_dir: str, place: Callable[[str], None]) -> str:
    """Container data: keep a host copy of the current data, build the new tree with `place`, import it.

    The imported top directory keeps the owner and mode the container's directory had (the
    aside copy carries them): a scratch dir's root:root 0700 would lock out a non-root service.
    """
    where = comp.container_path()
    aside = keep_container_copy(comp, staging_dir)
    work = tempfile.mkdtemp(prefix=f"{SCRATCH_PREFIX}{comp.name}-new-", dir=staging_dir)
    try:
        place(work)
        take_owner_and_mode(work, os.stat(aside))
        import_path(where.container, work, where.path, spool_dir=staging_dir)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return aside
