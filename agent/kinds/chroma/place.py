"""Chroma restore: with Chroma stopped, the restored persist dir put in place, then the server checked.

In: a Component of kind chroma restored in place, and the restored tree (agent/install.Restored).
Out: the snapshot's Chroma version checked against the running server's (refused across majors
unless forced), the current persist dir moved aside (agent/placement.move_aside, never deleted),
the restored tree moved in and given the service's owner, Chroma started and waited for
(heartbeat), and its collections, counts and probe queries compared with the facts (verify.py).
"""
from __future__ import annotations

import logging
import os
import shutil

from ragbackup import errors
from ragbackup.clock import SYSTEM, Clock, stamp

from ragbackup.agent.component import Component
from ragbackup.agent.install import Installed, Restored, database_service, in_container
from ragbackup.agent.kinds.chroma.api import ChromaTarget, _Api, check_version_compatible, target_of, wait_heartbeat
from ragbackup.agent.kinds.chroma.capture import SQLITE_NAME
from ragbackup.agent.kinds.chroma.verify import verify_facts
from ragbackup.agent.placement import chown_tree, move_aside
from ragbackup.agent.restore import sync_dir

log = logging.getLogger("ragbackup.agent.kinds.chroma")


def _move_into_place(restored_dir: str, persist_dir: str) -> None:
    if not os.path.exists(persist_dir):
        shutil.move(restored_dir, persist_dir)
        return
    for name in os.listdir(restored_dir):  # persist_dir stayed (mount point): fill it
        shutil.move(os.path.join(restored_dir, name), os.path.join(persist_dir, name))


def place_restored_data(restored_dir: str, persist_dir: str, owner: tuple[int, int] | None = (1000, 1000),
                        clock: Clock = SYSTEM) -> str | None:
    """With Chroma stopped: move the persist dir aside, move the restored tree in, chown -R.

    The old dir becomes `<persist_dir>.corrupted.YYYYMMDD_HHMMSS` (never deleted; None
    if there was none). `restored_dir` is consumed.
    """
    if not os.path.isfile(os.path.join(restored_dir, SQLITE_NAME)):
        raise errors.UsageError(f"restored data has no {SQLITE_NAME} in {restored_dir}")
    aside = move_aside(persist_dir, stamp(clock.now()))  # a mount point stays: its contents move
    _move_into_place(restored_dir, persist_dir)
    chown_tree(persist_dir, owner)
    return aside


def _check_version(target: ChromaTarget, facts: dict, force: bool) -> None:
    if not facts.get("version"):
        return  # facts derived from an imported chroma.sqlite3: the version that wrote it is unknown
    try:
        running = _Api(target).version()
    except errors.RagBackupError:
        return  # not running: nothing to compare against before the restore
    warning = check_version_compatible(facts.get("version", ""), running, force)
    if warning:
        log.warning("%s", warning)


def install(comp: Component, restored: Restored) -> Installed:
    """Stop Chroma, place the restored persist dir (host or container), start it, wait, compare the facts."""
    where = comp.container_path()
    target = target_of(comp)
    facts = restored.facts
    _check_version(target, facts, restored.force)
    service = database_service(comp)
    service.stop(target.timeout_s)
    if where is None:
        aside = place_restored_data(restored.path, target.persist_dir, target.owner) or ""
        sync_dir(target.persist_dir)  # a move across filesystems is a copy: on disk before Chroma opens it
    else:
        def place(work: str) -> None:
            os.rmdir(work)
            place_restored_data(restored.path, work, target.owner)
        aside = in_container(comp, restored.staging_dir, place)
    service.start()
    wait_heartbeat(target.url, target.timeout_s)
    if "collections" not in facts:
        log.warning("chroma %s: the snapshot has no facts (%s); counts and probes not verified", comp.name,
                    facts.get("unverified", "imported"))
        return Installed(aside, [])
    return Installed(aside, verify_facts(target, facts))
